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
  <form id="search" class="search" role="search">
    <input id="search-input" name="search" type="search" placeholder="Key, run id or pg-boss job id" aria-label="Search by key, run id or pg-boss job id">
    <button type="submit">Search</button>
  </form>
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
      <thead><tr><th>Run</th><th>State</th><th class="wide">Progress</th><th>Rate</th><th>ETA</th><th>Chunks</th><th>Skipped</th><th>Attempt</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="runs-empty" class="empty">No runs yet.</p>
  </section>
  <section id="run-detail" class="detail" hidden>
    <div class="detail-head"><h2>Run <span id="run-detail-id"></span></h2><span class="detail-actions"><button id="run-redrive" type="button" class="control-only">Redrive failed items</button> <button id="run-detail-close" type="button">Close</button></span></div>
    <dl id="run-fields"></dl>
    <h3>Throughput <span class="hint">items per second over the run's life</span></h3>
    <div id="run-chart" class="chart"></div>
    <h3>Chunks</h3>
    <table id="chunks">
      <thead><tr><th>Chunk</th><th>State</th><th class="wide">Progress</th><th>Attempt</th><th>Skipped</th><th>Error</th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="chunks-more" class="empty" hidden>More chunks than shown: search by the run id to page through them.</p>
    <h3>Failed items <span id="run-ledger-count"></span> <button id="run-redrive-selected" type="button" class="control-only" disabled>Redrive selected</button></h3>
    <table id="run-ledger" class="ledger">
      <thead><tr><th class="pick"></th><th>Key</th><th>Item</th><th>Error</th><th>Attempt</th><th>Failed at</th><th>Value</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="run-ledger-empty" class="empty">No failed items.</p>
  </section>
  <section>
    <h2>Keys</h2>
    <nav id="tabs" class="tabs" aria-label="Keys by state"></nav>
    <p id="searching" class="searching" hidden>Matching <span id="searching-text"></span> <button id="search-clear" type="button">Clear</button></p>
    <table id="keys">
      <thead><tr><th>Key</th><th>State</th><th class="wide">Progress</th><th>Rate</th><th>ETA</th><th>Attempt</th><th>Skipped</th><th>Error</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="keys-empty" class="empty">No keys match.</p>
    <div class="pager"><button id="prev" type="button">‹ Newer</button><span id="page"></span><button id="next" type="button">Older ›</button></div>
  </section>
  <section id="detail" class="detail" hidden>
    <div class="detail-head"><h2>Key <span id="detail-key"></span></h2><span class="detail-actions"><button id="key-retry" type="button" class="control-only">Retry</button> <button id="key-redrive" type="button" class="control-only">Redrive failed items</button> <button id="detail-close" type="button">Close</button></span></div>
    <dl id="detail-fields"></dl>
    <h3>Last error</h3>
    <pre id="detail-error" class="error-text"></pre>
    <h3>Failed items <span id="ledger-count"></span> <button id="redrive-selected" type="button" class="control-only" disabled>Redrive selected</button></h3>
    <table id="ledger" class="ledger">
      <thead><tr><th class="pick"></th><th>Item</th><th>Error</th><th>Attempt</th><th>Failed at</th><th>Value</th><th></th></tr></thead>
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
