// The dashboard's detail panels (part of dashboard.js, in the same closure): a key with its
// ledger, Retry and Redrive; a run with its throughput chart (inline SVG), chunks and ledger.
// No backquotes, dollar-brace or backslashes below: this is a TypeScript template literal.
export const DASHBOARD_DETAIL_JS = `
  var SVG = 'http://www.w3.org/2000/svg';

  function showDetail(view) {
    el('detail').hidden = false;
    el('detail').setAttribute('data-key', view.key);
    el('detail-key').textContent = view.key;
    var fields = el('detail-fields');
    fields.textContent = '';
    [['State', view.state + (view.control ? ' (' + view.control + ' requested)' : '')],
      ['Attempt', view.attempt], ['Hand-backs', view.handBacks], ['Epoch', view.epoch], ['Items', number(view.processedItems) + ' / ' + number(view.totalItems)],
      ['Batches', number(view.processedBatches)], ['Skipped items', number(view.skippedItems)],
      ['Rate', rate(view)], ['ETA', eta(view)], ['Run', view.runId || '–'], ['Queue', view.queue || '–'],
      ['Job', view.jobId || '–'], ['Owner', view.owner || '–'], ['Last update', view.lastUpdate]]
      .forEach(function (pair) {
        fields.appendChild(make('dt', '', pair[0]));
        fields.appendChild(make('dd', '', pair[1]));
      });
    el('detail-error').textContent = view.error ? errorText(view.error) : 'none';
    state.selectedView = view;
    if (el('key-retry')) el('key-retry').disabled = !(view.state === 'failed' && view.jobId);
    if (el('key-redrive')) el('key-redrive').disabled = !(view.skippedItems > 0 && view.state !== 'running');
    if (state.ledgerOf !== view.key + '@' + view.skippedItems + '@' + view.state) {
      state.ledgerOf = view.key + '@' + view.skippedItems + '@' + view.state;
      loadLedger(view.key);
    }
  }
  function select(key) {
    state.selected = key;
    keyRows.forEach(function (row, k) { row.classList.toggle('selected', k === key); });
    api('keys/' + encodeURIComponent(key)).then(showDetail).catch(function (error) { notice(error.message); });
  }
  function loadLedger(key) {
    api('keys/' + encodeURIComponent(key) + '/failed-items?limit=200').then(function (page) {
      if (state.selected !== key) return;
      renderLedger('ledger', page, false);
    }).catch(function (error) { notice(error.message); });
  }

  // A ledger table: a row per item, with a box to pick it and its own Redrive (control only).
  function renderLedger(id, page, withKey) {
    var body = el(id).tBodies[0];
    body.textContent = '';
    page.items.forEach(function (item) {
      var row = make('tr');
      row.setAttribute('data-key', item.key);
      row.setAttribute('data-item', String(item.itemIndex));
      var pick = row.appendChild(make('td', 'pick'));
      if (state.controls) {
        var box = make('input', 'pick-item');
        box.type = 'checkbox';
        box.addEventListener('change', function () { picked(id); });
        pick.appendChild(box);
      }
      if (withKey) row.appendChild(make('td', 'ledger-key', item.key));
      row.appendChild(make('td', 'index', '#' + item.itemIndex));
      row.appendChild(make('td', 'ledger-error', (item.errorClass || item.errorName) + (item.errorCode == null ? '' : ' (' + item.errorCode + ')') + ': ' + item.errorMessage));
      row.appendChild(make('td', '', item.attempt));
      row.appendChild(make('td', '', item.failedAt));
      row.appendChild(make('td', 'value', item.item === null ? '' : JSON.stringify(item.item)));
      var actions = row.appendChild(make('td', 'actions'));
      if (state.controls) {
        var button = make('button', 'item-redrive', 'Redrive');
        button.type = 'button';
        button.addEventListener('click', function () {
          redrive(button, [{ key: item.key, items: [item.itemIndex] }]);
        });
        actions.appendChild(button);
      }
      body.appendChild(row);
    });
    var count = el(id === 'ledger' ? 'ledger-count' : 'run-ledger-count');
    count.textContent = page.items.length ? '(' + page.items.length + (page.more ? ' shown' : '') + ')' : '';
    el(id + '-empty').hidden = page.items.length > 0;
    picked(id);
  }
  function pickedItems(id) {
    var byKey = new Map();
    Array.prototype.forEach.call(el(id).querySelectorAll('input.pick-item:checked'), function (box) {
      var row = box.closest('tr');
      var key = row.getAttribute('data-key');
      if (!byKey.has(key)) byKey.set(key, []);
      byKey.get(key).push(Number(row.getAttribute('data-item')));
    });
    return Array.from(byKey, function (entry) { return { key: entry[0], items: entry[1] }; });
  }
  function picked(id) {
    var button = el(id === 'ledger' ? 'redrive-selected' : 'run-redrive-selected');
    if (button) button.disabled = pickedItems(id).length === 0;
  }
  // Redrive runs the chosen items again, once each (a settled job is sent again with it); the
  // ledger rows go as they pass. One request per key, one after the other.
  function howRedriven(sent) {
    return sent > 0 ? sent + ' job(s) sent again to run them.' : 'they run at the next attempt of their key.';
  }
  function redrive(button, targets) {
    var asked = 0;
    var sent = 0;
    button.disabled = true;
    var chain = Promise.resolve();
    targets.forEach(function (target) {
      chain = chain.then(function () {
        return api('keys/' + encodeURIComponent(target.key) + '/redrive', { method: 'POST', body: { items: target.items } })
          .then(function (answer) { asked += answer.items; sent += answer.sent.length; });
      });
    });
    return chain.then(function () {
      notice('Redrive asked for ' + asked + ' item(s): ' + howRedriven(sent));
      refreshLedgers();
    }).catch(function (error) { notice('Redrive failed: ' + error.message); })
      .then(function () { button.disabled = false; });
  }
  function refreshLedgers() {
    if (state.selected !== null) { state.ledgerOf = null; select(state.selected); }
    if (state.run !== null) loadRunParts(state.run);
  }

  function selectRun(id) {
    state.run = id;
    runRows.forEach(function (row, r) { row.classList.toggle('selected', r === id); });
    api('runs/' + encodeURIComponent(id)).then(function (view) {
      showRun(view);
      loadRunParts(id);
    }).catch(function (error) { notice(error.message); });
  }
  function showRun(view) {
    el('run-detail').hidden = false;
    el('run-detail').setAttribute('data-run', view.id);
    el('run-detail-id').textContent = view.id;
    var fields = el('run-fields');
    fields.textContent = '';
    var chunks = STATES.filter(function (s) { return view.counts[s]; })
      .map(function (s) { return view.counts[s] + ' ' + s; }).join(', ');
    [['State', view.state], ['Chunks', view.chunks + (chunks ? ' (' + chunks + ')' : '')],
      ['Items', number(view.processedItems) + ' / ' + number(view.totalItems) + ' (' + view.percentage + '%)'],
      ['Skipped items', number(view.skippedItems)], ['Rate', rate(view)], ['ETA', eta(view)],
      ['Attempt', view.attempt], ['Created', view.createdAt], ['Last update', view.lastUpdate]]
      .forEach(function (pair) {
        fields.appendChild(make('dt', '', pair[0]));
        fields.appendChild(make('dd', '', pair[1]));
      });
    if (el('run-redrive')) el('run-redrive').disabled = !(view.skippedItems > 0);
  }
  // A chunk of the open run changed: its chunks, ledger and chart again, at most every 2 s.
  function runChanged() {
    if (state.runTimer) return;
    var id = state.run;
    state.runTimer = setTimeout(function () {
      state.runTimer = null;
      if (state.run === id) loadRunParts(id);
    }, 2000);
  }
  function loadRunParts(id) {
    var path = 'runs/' + encodeURIComponent(id);
    api(path + '/chunks?limit=200').then(function (page) {
      if (state.run !== id) return;
      var body = el('chunks').tBodies[0];
      body.textContent = '';
      page.items.forEach(function (view) {
        var row = make('tr');
        row.setAttribute('data-key', view.key);
        row.setAttribute('data-state', view.state);
        var key = row.appendChild(make('td', 'key', view.key));
        key.title = view.key;
        key.addEventListener('click', function () { select(view.key); });
        stateCell(row.appendChild(make('td', 'state-cell')), view);
        bar(row.appendChild(make('td', 'progress')), view);
        row.appendChild(make('td', 'attempt', view.attempt));
        row.appendChild(make('td', 'skipped', view.skippedItems ? number(view.skippedItems) : ''));
        var error = row.appendChild(make('td', 'error', errorText(view.error)));
        error.title = error.textContent;
        body.appendChild(row);
      });
      el('chunks-more').hidden = !page.more;
    }).catch(function (error) { notice(error.message); });
    api(path + '/failed-items?limit=200').then(function (page) {
      if (state.run === id) renderLedger('run-ledger', page, true);
    }).catch(function (error) { notice(error.message); });
    api(path + '/throughput?slices=60').then(function (answer) {
      if (state.run === id) chart(el('run-chart'), answer);
    }).catch(function (error) { notice(error.message); });
  }

  // The throughput chart: one step per slice of the run's life, scaled to its busiest slice.
  function chart(box, answer) {
    var W = 640, H = 140, left = 48, right = 8, top = 10, bottom = 20;
    var points = answer.points;
    var svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img');
    var max = points.reduce(function (m, p) { return Math.max(m, p.itemsPerSecond); }, 0);
    svg.setAttribute('data-points', String(points.length));
    svg.setAttribute('data-max', String(max));
    svg.setAttribute('aria-label', points.length ? 'items per second, at most ' + max : 'no items yet');
    var shape = function (name, attributes) {
      var node = document.createElementNS(SVG, name);
      Object.keys(attributes).forEach(function (a) { node.setAttribute(a, String(attributes[a])); });
      return svg.appendChild(node);
    };
    var base = H - bottom;
    shape('line', { x1: left, y1: base, x2: W - right, y2: base, class: 'axis' });
    shape('line', { x1: left, y1: top, x2: left, y2: base, class: 'axis' });
    var label = function (x, y, text, anchor) {
      shape('text', { x: x, y: y, 'text-anchor': anchor || 'start' }).textContent = text;
    };
    if (points.length === 0 || max === 0) {
      label(W / 2, H / 2, 'no items processed yet', 'middle');
    } else {
      var step = (W - left - right) / points.length;
      var y = function (v) { return top + (1 - v / max) * (base - top); };
      var line = '';
      points.forEach(function (p, i) {
        var x0 = left + i * step;
        line += (i === 0 ? 'M' + x0 + ',' + y(p.itemsPerSecond) : 'L' + x0 + ',' + y(p.itemsPerSecond)) +
          'L' + (x0 + step) + ',' + y(p.itemsPerSecond);
      });
      shape('path', { d: 'M' + left + ',' + base + line.replace('M', 'L') + 'L' + (W - right) + ',' + base + 'Z', class: 'area' });
      shape('path', { d: line, class: 'line' });
      label(left - 4, top + 10, number(Math.round(max * 10) / 10) + '/s', 'end');
      label(left - 4, base, '0', 'end');
      var seconds = (Date.parse(answer.to) - Date.parse(answer.from)) / 1000;
      label(left, H - 4, new Date(answer.from).toLocaleTimeString());
      label(W - right, H - 4, seconds < 120 ? Math.round(seconds) + ' s' : Math.round(seconds / 60) + ' min', 'end');
    }
    box.textContent = '';
    box.appendChild(svg);
  }

  el('detail-close').addEventListener('click', function () {
    state.selected = null;
    el('detail').hidden = true;
    keyRows.forEach(function (row) { row.classList.remove('selected'); });
  });
  el('run-detail-close').addEventListener('click', function () {
    state.run = null;
    el('run-detail').hidden = true;
    runRows.forEach(function (row) { row.classList.remove('selected'); });
  });
  if (el('key-retry')) el('key-retry').addEventListener('click', function () {
    var key = state.selected;
    act(el('key-retry'), 'Retry', 'keys/' + encodeURIComponent(key) + '/retry', undefined, function (view) {
      notice('Retry sent: the job of ' + key + ' runs again from its last committed batch.');
      renderKey(view);
    });
  });
  if (el('key-redrive')) el('key-redrive').addEventListener('click', function () {
    var key = state.selected;
    act(el('key-redrive'), 'Redrive', 'keys/' + encodeURIComponent(key) + '/redrive', {}, function (answer) {
      notice('Redrive asked for ' + answer.items + ' item(s) of ' + key + ': ' + howRedriven(answer.sent.length));
      refreshLedgers();
    });
  });
  if (el('redrive-selected')) el('redrive-selected').addEventListener('click', function () {
    redrive(el('redrive-selected'), pickedItems('ledger'));
  });
  if (el('run-redrive-selected')) el('run-redrive-selected').addEventListener('click', function () {
    redrive(el('run-redrive-selected'), pickedItems('run-ledger'));
  });
  if (el('run-redrive')) el('run-redrive').addEventListener('click', function () {
    var id = state.run;
    act(el('run-redrive'), 'Redrive', 'runs/' + encodeURIComponent(id) + '/redrive', undefined, function (answer) {
      notice('Redrive asked for ' + answer.items + ' item(s) in ' + answer.keys.length + ' chunk(s) of run ' + id + ': ' +
        howRedriven(answer.sent.length));
      refreshLedgers();
    });
  });
`;
