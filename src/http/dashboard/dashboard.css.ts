// The dashboard's style sheet (a string module: tsc ships it in dist/). System fonts only.
export const DASHBOARD_CSS = `
:root { color-scheme: light; --fg: #1d2430; --muted: #667085; --line: #e4e7ec; --bg: #f8f9fb;
  --accent: #2f6fde; --ok: #1f9d55; --warn: #c27c0e; --bad: #d03535; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 16px; padding: 12px 24px; background: #fff;
  border-bottom: 1px solid var(--line); }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 15px; margin: 24px 0 8px; }
h3 { font-size: 13px; margin: 16px 0 4px; color: var(--muted); }
main { padding: 0 24px 32px; }
.live { font-size: 12px; color: var(--muted); }
.live.on { color: var(--ok); }
.denied { margin: 48px auto; max-width: 420px; padding: 24px; background: #fff; text-align: center;
  border: 1px solid var(--line); border-radius: 8px; }
.notice { margin: 12px 24px 0; padding: 8px 12px; border-radius: 6px; background: #fff4e5;
  color: #7a4b00; border: 1px solid #f5d9a8; }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line);
  vertical-align: middle; }
th { font-weight: 600; font-size: 12px; color: var(--muted); background: #fcfcfd; }
th.wide { width: 30%; }
tr.selected td { background: #eef4ff; }
td.key, td.run { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px;
  max-width: 280px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; cursor: pointer; }
td.error { max-width: 260px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  color: var(--bad); font-size: 12px; }
.bar { position: relative; height: 16px; border-radius: 8px; background: #eef0f3; overflow: hidden; }
.bar .fill { height: 100%; width: 0; background: var(--accent); transition: width .3s ease; }
.bar .label { position: absolute; inset: 0; font-size: 11px; line-height: 16px; text-align: center;
  color: var(--fg); text-shadow: 0 0 3px #fff, 0 0 2px #fff; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  background: #eef0f3; }
.state.running { background: #e3edff; color: #1f4fb5; }
.state.completed { background: #e3f6ea; color: #17733f; }
.state.paused, .state.released, .state.pending, .state.created { background: #fff4e5; color: #7a4b00; }
.state.failed, .state.cancelled { background: #fde8e8; color: #a52222; }
.control { font-size: 11px; color: var(--warn); margin-left: 4px; }
.actions { white-space: nowrap; }
button { font: inherit; font-size: 12px; padding: 2px 8px; border-radius: 5px; cursor: pointer;
  border: 1px solid #cfd4dc; background: #fff; }
button:hover { border-color: var(--accent); }
button:disabled { opacity: .4; cursor: default; }
.filter { display: flex; gap: 12px; align-items: center; margin-bottom: 8px; }
.pager { display: flex; gap: 12px; align-items: center; margin-top: 8px; color: var(--muted); }
.empty { color: var(--muted); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.error-text { white-space: pre-wrap; word-break: break-word; background: #fff; padding: 8px;
  border: 1px solid var(--line); border-radius: 6px; min-height: 1.5em; }
.ledger td { font-size: 12px; }
.ledger td.ledger-error { color: var(--bad); white-space: pre-wrap; word-break: break-word; }
.ledger td.value { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; max-width: 320px;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.ledger td.ledger-key { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
th.pick, td.pick { width: 28px; }
.detail { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 4px 16px 16px;
  margin-top: 24px; }
.detail-head { display: flex; align-items: center; justify-content: space-between; gap: 12px; }
.detail-actions { white-space: nowrap; }
.search { display: flex; gap: 6px; margin-left: auto; }
.search input { font: inherit; width: 320px; padding: 3px 8px; border: 1px solid #cfd4dc;
  border-radius: 5px; }
.tabs { display: flex; flex-wrap: wrap; gap: 4px; margin-bottom: 8px; }
.tabs button { border-radius: 14px; padding: 2px 10px; }
.tabs button.active { background: var(--accent); border-color: var(--accent); color: #fff; }
.tabs .count { margin-left: 6px; opacity: .75; }
.searching { margin: 4px 0 8px; color: var(--muted); }
.searching span { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; color: var(--fg); }
.hint { font-weight: normal; margin-left: 6px; }
.chart { background: #fcfcfd; border: 1px solid var(--line); border-radius: 6px; padding: 4px; }
.chart svg { display: block; width: 100%; height: 140px; }
.chart .area { fill: #d8e5fb; }
.chart .line { fill: none; stroke: var(--accent); stroke-width: 1.5; }
.chart .axis { stroke: var(--line); }
.chart text { font-size: 11px; fill: var(--muted); }
body.read-only .control-only { display: none; }
`;
