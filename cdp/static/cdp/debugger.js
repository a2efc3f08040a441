/* Live event debugger: polls the management API (session auth) for new events of one
   source, renders them newest first; each row expands to its stored payload. Failed events
   show their reason and, for admins, a Replay button. */
(function () {
  var root = document.getElementById('debugger');
  if (!root) return;
  var sourceId = root.dataset.source;
  var canReplay = root.dataset.canReplay === '1';
  var csrf = (document.querySelector('[name=csrfmiddlewaretoken]') || {}).value;
  var live = true, lastId = 0, timer = null, seen = {};
  var list = document.getElementById('event-list');
  var failedList = document.getElementById('failed-list');
  var filters = {
    user_id: document.getElementById('filter-user'),
    anonymous_id: document.getElementById('filter-anon'),
    type: document.getElementById('filter-type'),
    event: document.getElementById('filter-event')
  };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function when(iso) {
    var d = new Date(iso);
    return d.toLocaleTimeString() + ' ' + d.toLocaleDateString();
  }
  function query() {
    var p = new URLSearchParams({ source: sourceId, page_size: '100' });
    Object.keys(filters).forEach(function (k) { if (filters[k].value) p.set(k, filters[k].value); });
    return p;
  }
  function summary(ev) {
    if (ev.type === 'track') return ev.event;
    if (ev.type === 'page' || ev.type === 'screen') return ev.name || '(unnamed)';
    if (ev.type === 'identify') return Object.keys(ev.traits || {}).join(', ') || '(no traits)';
    if (ev.type === 'group') return ev.groupId;
    if (ev.type === 'alias') return ev.previousId + ' → ' + ev.userId;
    return '';
  }
  function row(ev) {
    var li = el('li', 'event-row');
    li.dataset.id = ev.id;
    var head = el('div', 'event-head');
    head.appendChild(el('span', 'type type-' + ev.type, ev.type));
    head.appendChild(el('span', 'event-name', summary(ev)));
    head.appendChild(el('span', 'event-who muted', ev.userId || ev.anonymousId || ''));
    head.appendChild(el('span', 'event-time muted', when(ev.receivedAt)));
    var body = el('pre', 'payload');
    body.hidden = true;
    body.textContent = JSON.stringify(ev, null, 2);
    head.addEventListener('click', function () { body.hidden = !body.hidden; li.classList.toggle('open'); });
    li.appendChild(head); li.appendChild(body);
    return li;
  }
  function failedRow(f) {
    var li = el('li', 'event-row failed');
    li.dataset.id = f.id;
    var head = el('div', 'event-head');
    head.appendChild(el('span', 'pill bad', f.reason));
    head.appendChild(el('span', 'event-name', f.message));
    var status = el('span', 'muted status', f.status === 'failed' ? '' : f.status);
    head.appendChild(status);
    head.appendChild(el('span', 'event-time muted', when(f.received_at)));
    var body = el('div', 'payload-wrap');
    body.hidden = true;
    var pre = el('pre', 'payload');
    pre.textContent = f.payload !== null ? JSON.stringify(f.payload, null, 2) : f.raw;
    body.appendChild(pre);
    if (f.last_replay_error) body.appendChild(el('p', 'msg error', 'Last replay failed: ' + f.last_replay_error));
    if (canReplay && f.status === 'failed') {
      var btn = el('button', 'button small primary replay', 'Replay');
      btn.addEventListener('click', function (e) {
        e.stopPropagation();
        btn.disabled = true;
        fetch('/api/v1/failed-events/' + f.id + '/replay/', {
          method: 'POST', credentials: 'same-origin',
          headers: { 'X-CSRFToken': csrf, 'Accept': 'application/json' }
        }).then(function (r) { return r.json().then(function (j) { return [r.ok, j]; }); })
          .then(function (res) {
            if (res[0]) { status.textContent = res[1].status; btn.remove(); lastId = 0; refresh(true); }
            else { btn.disabled = false; body.appendChild(el('p', 'msg error', res[1].error.message)); }
          });
      });
      body.appendChild(btn);
    }
    head.addEventListener('click', function () { body.hidden = !body.hidden; li.classList.toggle('open'); });
    li.appendChild(head); li.appendChild(body);
    return li;
  }
  function getJSON(url) {
    return fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); });
  }
  function refresh(full) {
    var p = query();
    if (!full && lastId) p.set('after_id', lastId);
    var eventsDone = getJSON('/api/v1/events/?' + p).then(function (data) {
      if (full) { list.innerHTML = ''; seen = {}; }
      var fresh = data.results.filter(function (ev) { return !seen[ev.id]; });
      for (var i = fresh.length - 1; i >= 0; i--) {
        seen[fresh[i].id] = true;
        var r = row(fresh[i]);
        if (!full) r.classList.add('new');
        list.insertBefore(r, list.firstChild);
      }
      if (data.results.length) lastId = Math.max(lastId, data.results[0].id);
      while (list.children.length > 200) list.removeChild(list.lastChild);
      document.getElementById('events-count').textContent = list.children.length;
      document.getElementById('events-empty').hidden = list.children.length > 0;
    });
    var failedDone = getJSON('/api/v1/failed-events/?source=' + sourceId + '&page_size=100').then(function (data) {
      var open = {};
      failedList.querySelectorAll('.open').forEach(function (li) { open[li.dataset.id] = true; });
      failedList.innerHTML = '';
      data.results.forEach(function (f) {
        var r = failedRow(f);
        if (open[f.id]) { r.classList.add('open'); r.querySelector('.payload-wrap').hidden = false; }
        failedList.appendChild(r);
      });
      var pending = data.results.filter(function (f) { return f.status === 'failed'; }).length;
      document.getElementById('failed-count').textContent = pending;
      document.getElementById('failed-empty').hidden = data.results.length > 0;
    });
    return Promise.all([eventsDone, failedDone]).catch(function () {});
  }
  function schedule() {
    clearTimeout(timer);
    if (live) timer = setTimeout(function () { refresh(false).then(schedule); }, 2000);
  }
  document.getElementById('live-toggle').addEventListener('click', function () {
    live = !live;
    this.querySelector('.dot').classList.toggle('live', live);
    this.querySelector('span:last-child').textContent = live ? 'Live' : 'Paused';
    schedule();
  });
  root.querySelectorAll('.tab').forEach(function (tab) {
    tab.addEventListener('click', function () {
      root.querySelectorAll('.tab').forEach(function (t) { t.classList.toggle('active', t === tab); });
      document.getElementById('events-panel').hidden = tab.dataset.view !== 'events';
      document.getElementById('failed-panel').hidden = tab.dataset.view !== 'failed';
    });
  });
  Object.keys(filters).forEach(function (k) {
    filters[k].addEventListener('change', function () { lastId = 0; refresh(true); });
  });
  refresh(true).then(schedule);
})();
