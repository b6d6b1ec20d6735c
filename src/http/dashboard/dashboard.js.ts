// The dashboard's script (a string module: tsc ships it in dist/). Plain browser JavaScript, no
// framework, no build step. Everything that comes from the database is set with textContent
// (never innerHTML), so an item's error text is shown as text, whatever it contains.
// No backquotes, dollar-brace or backslashes below: this is a TypeScript template literal.
import { DASHBOARD_DETAIL_JS } from './dashboard-detail.js.js';

// The lists: runs, keys by state and search, live updates, and the buttons of a row.
const DASHBOARD_LISTS_JS = `
  var PAGE = 25;
  var STATES = ['running', 'pending', 'paused', 'released', 'failed', 'cancelled', 'completed'];
  var state = { pages: [''], filter: { state: '', search: '' }, selected: null, run: null, controls: false };
  var keyRows = new Map();
  var runRows = new Map();
  var el = function (id) { return document.getElementById(id); };

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function number(n) { return n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'); }
  function rate(view) {
    return view.itemsPerSecond === null || view.state !== 'running' ? '–' : number(Math.round(view.itemsPerSecond * 10) / 10) + '/s';
  }
  function eta(view) {
    if (view.state === 'completed') return 'done';
    if (view.etaSeconds === null || view.state !== 'running') return '–';
    var s = Math.round(view.etaSeconds);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }
  function errorText(error) {
    if (!error) return '';
    return typeof error === 'object' ? (error.name || 'Error') + ': ' + (error.message || '') : String(error);
  }
  function notice(text) {
    var node = el('notice');
    node.textContent = text || '';
    node.hidden = !text;
  }
  function api(path, options) {
    var headers = { accept: 'application/json' };
    if (options && options.body) headers['content-type'] = 'application/json';
    return fetch('api/' + path, {
      method: (options && options.method) || 'GET',
      headers: headers,
      body: options && options.body ? JSON.stringify(options.body) : undefined,
      credentials: 'same-origin',
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (response.status === 401) denied();
        if (!response.ok) {
          var message = Array.isArray(body.message) ? body.message.join('; ') : body.message;
          throw new Error(response.status + ': ' + (message || response.statusText));
        }
        return body;
      });
    });
  }
  // A POST of a button: disabled while it runs, the answer or the refusal said in the notice.
  function act(button, label, path, body, then) {
    button.disabled = true;
    return api(path, { method: 'POST', body: body }).then(function (answer) {
      notice('');
      if (then) then(answer);
    }).catch(function (error) {
      notice(label + ' failed: ' + error.message);
    }).then(function () { button.disabled = false; });
  }

  function bar(cell, view) {
    var outer = cell.querySelector('.bar');
    if (!outer) {
      outer = make('div', 'bar');
      outer.appendChild(make('div', 'fill'));
      outer.appendChild(make('div', 'label'));
      cell.appendChild(outer);
    }
    var percent = Math.max(0, Math.min(100, Number(view.percentage) || 0));
    outer.firstChild.style.width = percent + '%';
    outer.setAttribute('data-percent', String(percent));
    outer.setAttribute('data-processed', String(view.processedItems));
    outer.lastChild.textContent = number(view.processedItems) + ' / ' + number(view.totalItems) +
      ' (' + percent + '%)';
  }
  function stateCell(cell, view) {
    cell.textContent = '';
    cell.appendChild(make('span', 'state ' + view.state, view.state));
    if (view.control) cell.appendChild(make('span', 'control', view.control + ' requested'));
  }
  // The buttons are made once per row and only enabled or disabled afterwards: a row updates
  // several times a second, and a button replaced under the pointer would swallow the click.
  function buttons(cell, kind, id, view) {
    if (!state.controls) { cell.textContent = ''; return; }
    if (!cell.firstChild) {
      [['pause', 'Pause'], ['resume', 'Resume'], ['cancel', 'Cancel']].forEach(function (pair) {
        var button = make('button', 'action-' + pair[0], pair[1]);
        button.type = 'button';
        button.setAttribute('data-action', pair[0]);
        button.addEventListener('click', function (event) {
          event.stopPropagation();
          button.disabled = true;
          api(kind + '/' + encodeURIComponent(id) + '/' + pair[0], { method: 'POST' })
            .then(function (updated) { notice(''); if (kind === 'keys') renderKey(updated); else renderRun(updated); })
            .catch(function (error) { notice(pair[1] + ' failed: ' + error.message); enable(cell, cell.view); });
        });
        cell.appendChild(button);
      });
    }
    cell.view = view;
    enable(cell, view);
  }
  function enable(cell, view) {
    var done = view.state === 'completed' || view.state === 'cancelled';
    Array.prototype.forEach.call(cell.querySelectorAll('button'), function (button) {
      var action = button.getAttribute('data-action');
      button.disabled = done || (action === 'resume' ? !(view.control === 'pause' || view.state === 'paused') :
        action === 'pause' && (view.control === 'pause' || view.state === 'paused'));
    });
  }

  function renderKey(view) {
    var row = keyRows.get(view.key);
    if (row) {
      var cells = row.cells;
      cells[0].textContent = view.key;
      cells[0].title = view.key;
      stateCell(cells[1], view);
      bar(cells[2], view);
      cells[3].textContent = rate(view);
      cells[4].textContent = eta(view);
      cells[5].textContent = String(view.attempt);
      cells[6].textContent = view.skippedItems ? number(view.skippedItems) : '';
      cells[7].textContent = errorText(view.error);
      cells[7].title = cells[7].textContent;
      buttons(cells[8], 'keys', view.key, view);
      row.setAttribute('data-state', view.state);
    }
    if (state.selected === view.key) showDetail(view);
  }
  function keyRow(view) {
    var row = make('tr');
    row.setAttribute('data-key', view.key);
    ['key', 'state-cell', 'progress', 'rate', 'eta', 'attempt', 'skipped', 'error', 'actions'].forEach(function (c) {
      row.appendChild(make('td', c));
    });
    row.addEventListener('click', function () { select(view.key); });
    keyRows.set(view.key, row);
    return row;
  }
  function renderRun(view) {
    var row = runRows.get(view.id);
    if (!row) {
      row = make('tr');
      row.setAttribute('data-run', view.id);
      ['run', 'state-cell', 'progress', 'rate', 'eta', 'chunks', 'skipped', 'attempt', 'actions'].forEach(function (c) {
        row.appendChild(make('td', c));
      });
      row.addEventListener('click', function () { selectRun(view.id); });
      runRows.set(view.id, row);
      el('runs').tBodies[0].insertBefore(row, el('runs').tBodies[0].firstChild);
      el('runs-empty').hidden = true;
    }
    var cells = row.cells;
    cells[0].textContent = view.id;
    cells[0].title = view.id;
    stateCell(cells[1], view);
    bar(cells[2], view);
    cells[3].textContent = rate(view);
    cells[4].textContent = eta(view);
    cells[5].textContent = view.counts.completed + ' / ' + view.chunks + ' done' +
      (view.counts.running ? ', ' + view.counts.running + ' running' : '') +
      (view.counts.failed ? ', ' + view.counts.failed + ' failed' : '');
    cells[6].textContent = view.skippedItems ? number(view.skippedItems) : '';
    cells[7].textContent = String(view.attempt);
    buttons(cells[8], 'runs', view.id, view);
    row.setAttribute('data-state', view.state);
    if (state.run === view.id) showRun(view);
  }

  // Tabs per state, with the counts of api/counts (read again at most every 3 s while keys change).
  function tabs() {
    var nav = el('tabs');
    [''].concat(STATES).forEach(function (name) {
      var tab = make('button', 'tab', name || 'all');
      tab.type = 'button';
      tab.setAttribute('data-state', name);
      tab.appendChild(make('span', 'count'));
      tab.addEventListener('click', function () {
        state.filter = { state: name, search: state.filter.search };
        state.pages = [''];
        loadKeys();
      });
      nav.appendChild(tab);
    });
  }
  function showTabs() {
    Array.prototype.forEach.call(el('tabs').children, function (tab) {
      tab.classList.toggle('active', tab.getAttribute('data-state') === state.filter.state);
    });
  }
  function loadCounts() {
    state.countsAt = Date.now();
    return api('counts').then(function (answer) {
      var total = 0;
      Array.prototype.forEach.call(el('tabs').children, function (tab) {
        var name = tab.getAttribute('data-state');
        if (!name) return;
        var n = answer.counts[name] || 0;
        total += n;
        tab.lastChild.textContent = n > answer.cap ? number(answer.cap) + '+' : number(n);
      });
      el('tabs').firstChild.lastChild.textContent = number(total);
    }).catch(function (error) { notice(error.message); });
  }
  function countsLater() {
    if (state.countsTimer) return;
    var wait = Math.max(0, 3000 - (Date.now() - (state.countsAt || 0)));
    state.countsTimer = setTimeout(function () { state.countsTimer = null; loadCounts(); }, wait);
  }

  function loadKeys() {
    var after = state.pages[state.pages.length - 1];
    var query = 'limit=' + PAGE + (after ? '&after=' + encodeURIComponent(after) : '');
    if (state.filter.state) query += '&state=' + encodeURIComponent(state.filter.state);
    if (state.filter.search) query += '&search=' + encodeURIComponent(state.filter.search);
    showTabs();
    el('searching').hidden = !state.filter.search;
    el('searching-text').textContent = state.filter.search;
    return api('keys?' + query).then(function (page) {
      var body = el('keys').tBodies[0];
      body.textContent = '';
      keyRows.clear();
      page.items.forEach(function (view) { body.appendChild(keyRow(view)); renderKey(view); });
      state.next = page.after;
      el('keys-empty').hidden = page.items.length > 0;
      el('page').textContent = page.items.length === 0 && state.pages.length === 1 ? '' : 'page ' + state.pages.length;
      el('prev').disabled = state.pages.length === 1;
      el('next').disabled = !page.more;
      // A search that names one key exactly (by its key or its job id) opens it.
      if (state.filter.search && page.items.length === 1 && !page.more) select(page.items[0].key);
    }).catch(function (error) { notice(error.message); });
  }
  function loadRuns() {
    return api('runs?limit=20').then(function (page) {
      page.items.slice().reverse().forEach(renderRun);
    }).catch(function (error) { notice(error.message); });
  }
  function matches(view) {
    var f = state.filter;
    return (!f.state || view.state === f.state) && (!f.search || view.key.indexOf(f.search) >= 0 ||
      view.runId === f.search || view.jobId === f.search);
  }

  function live() {
    var source = new EventSource('api/events');
    state.source = source;
    source.addEventListener('open', function () { el('live').textContent = 'live'; el('live').className = 'live on'; });
    source.addEventListener('error', function () { el('live').textContent = 'reconnecting…'; el('live').className = 'live'; });
    // The stream hears every change from 'ready' on (after a reconnect too): read again what a
    // change before it, or during a lost connection, may have left stale.
    source.addEventListener('ready', function () {
      loadRuns();
      loadKeys();
      loadCounts();
      refreshLedgers();
    });
    source.addEventListener('key', function (event) {
      var view = JSON.parse(event.data).key;
      var row = keyRows.get(view.key);
      if (!row || row.getAttribute('data-state') !== view.state) countsLater();
      if (row) renderKey(view);
      else if (state.pages.length === 1 && matches(view)) {
        var body = el('keys').tBodies[0];
        body.insertBefore(keyRow(view), body.firstChild);
        renderKey(view);
        el('keys-empty').hidden = true;
      } else if (state.selected === view.key) showDetail(view);
      if (state.run !== null && view.runId === state.run) runChanged();
    });
    source.addEventListener('run', function (event) { renderRun(JSON.parse(event.data).run); });
  }

  el('search').addEventListener('submit', function (event) {
    event.preventDefault();
    state.filter = { state: '', search: el('search-input').value.trim() };
    state.pages = [''];
    loadKeys();
    // A run id opens that run's detail (404 is no error here: the search named no run).
    if (state.filter.search && runRows.has(state.filter.search)) selectRun(state.filter.search);
  });
  el('search-clear').addEventListener('click', function () {
    el('search-input').value = '';
    state.filter = { state: state.filter.state, search: '' };
    state.pages = [''];
    loadKeys();
  });
  // Keyset paging: each page starts after the last key of the one before; Newer goes back.
  el('prev').addEventListener('click', function () { if (state.pages.length > 1) state.pages.pop(); loadKeys(); });
  el('next').addEventListener('click', function () { if (state.next) state.pages.push(state.next); loadKeys(); });
  // Signed out (or the session ended): show nothing but the way to sign in.
  function denied() {
    state.denied = true;
    el('main').hidden = true;
    el('denied').hidden = false;
    el('live').textContent = 'signed out';
    el('live').className = 'live';
    el('search').hidden = true;
    if (state.source) state.source.close();
  }
`;

// Start: ask what this session may do; a reader's page has no control at all (not hidden: absent).
const DASHBOARD_START_JS = `
  tabs();
  api('info').then(function (info) {
    state.controls = info.controls;
    if (!info.controls) {
      document.body.classList.add('read-only');
      Array.prototype.forEach.call(document.querySelectorAll('.control-only'), function (node) { node.remove(); });
      notice('Read-only: your session may read but not control.');
    }
    el('main').hidden = false;
    return Promise.all([loadRuns(), loadKeys(), loadCounts()]).then(live);
  }).catch(function (error) { if (!state.denied) notice(error.message); });
`;

export const DASHBOARD_JS = `'use strict';
(function () {
${DASHBOARD_LISTS_JS}
${DASHBOARD_DETAIL_JS}
${DASHBOARD_START_JS}
})();
`;
