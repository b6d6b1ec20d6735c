// The dashboard's page. A TypeScript string module, so that `tsc` ships it in dist/ with no copy
// step. Only the base path (from the request's own URL) is put into it, attribute-escaped.

const escapeAttribute = (value: string) =>
  value.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

/**
 * The page, with relative links resolved against `basePath` (which ends with a slash). It holds
 * no data: it shows "sign in" until the API lets this browser's session read.
 */
export function dashboardHtml(basePath: string, loginUrl: string | null): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Checkpoints</title>
<base href="${escapeAttribute(basePath)}">
<link rel="stylesheet" href="dashboard.css">
</head>
<body>
<header>
  <h1>Checkpoints</h1>
  <span id="live" class="live" title="live updates">connecting…</span>
</header>
<p id="notice" class="notice" role="status" hidden></p>
<section id="denied" class="denied" hidden>
  <h2>Sign in to see checkpoints</h2>
  <p>This dashboard shows nothing until the application lets your session read it.</p>
  ${loginUrl === null ? '' : `<p><a id="login" href="${escapeAttribute(loginUrl)}">Sign in</a></p>`}
</section>
<main id="main" hidden>
  <section id="runs-section">
    <h2>Runs</h2>
    <table id="runs">
      <thead><tr><th>Run</th><th>State</th><th class="wide">Progress</th><th>Rate</th><th>ETA</th><th>Chunks</th><th>Attempt</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="runs-empty" class="empty">No runs yet.</p>
  </section>
  <section>
    <h2>Keys</h2>
    <form id="filter" class="filter">
      <label>State <select id="filter-state" name="state">
        <option value="">any</option><option>pending</option><option>running</option><option>paused</option>
        <option>released</option><option>completed</option><option>failed</option><option>cancelled</option>
      </select></label>
      <label>Key contains <input id="filter-search" name="search" type="search"></label>
      <button type="submit">Filter</button>
    </form>
    <table id="keys">
      <thead><tr><th>Key</th><th>State</th><th class="wide">Progress</th><th>Rate</th><th>ETA</th><th>Attempt</th><th>Error</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="keys-empty" class="empty">No keys match.</p>
    <div class="pager"><button id="prev" type="button">‹ Newer</button><span id="page"></span><button id="next" type="button">Older ›</button></div>
  </section>
  <section id="detail" hidden>
    <h2>Key <span id="detail-key"></span></h2>
    <dl id="detail-fields"></dl>
    <h3>Last error</h3>
    <pre id="detail-error" class="error-text"></pre>
    <h3>Failed items <span id="ledger-count"></span></h3>
    <table id="ledger">
      <thead><tr><th>Item</th><th>Error</th><th>Attempt</th><th>Failed at</th><th>Value</th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="ledger-empty" class="empty">No failed items.</p>
  </section>
</main>
<script src="dashboard.js" defer></script>
</body>
</html>
`;
}
