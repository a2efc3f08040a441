/* Live event debugger: polls the management API (session auth) for new events of one
   source, renders them newest first; each row expands to its stored payload. Failed events
   show their reason and, for admins, a Replay button. */
(function () {
  var root = document.getElementById('debugger');
  if (!root) return;
  var sourceId = root.dataset.source;
  var canReplay = root.dataset.canReplay === '1';
  var csrf = (document.querySelector('[name=csrfmiddlewaretoken]') || {}).value;
  // generation: bumped by every full reload, so a poll that was already in flight with the
  // old filters cannot add rows that do not match the new ones.
  var live = true, lastId = 0, timer = null, seen = {}, generation = 0, failedShown = null;
  var list = document.getElementById('event-list');
  var failedList = document.getElementById('failed-list');
  var eventsEmpty = document.getElementById('events-empty');
  var waitingHTML = eventsEmpty.innerHTML;
  var pollError = document.getElementById('poll-error');
  var liveButton = document.getElementById('live-toggle');
  var filters = {
    user_id: document.getElementById('filter-user'),
    anonymous_id: document.getElementById('filter-anon'),
    type: document.getElementById('filter-type'),
    event: document.getElementById('filter-event')
  };
  var STATUS_LABELS = { replayed: 'Replayed', duplicate: 'Already stored' };

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
  function filtering() {
    return Object.keys(filters).some(function (k) { return filters[k].value; });
  }
  function query() {
    var p = new URLSearchParams({ source: sourceId, page_size: '100' });
    Object.keys(filters).forEach(function (k) { if (filters[k].value) p.set(k, filters[k].value.trim()); });
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
  function expandable(li, head, body) {
    head.setAttribute('role', 'button');
    head.setAttribute('aria-expanded', 'false');
    head.tabIndex = 0;
    function toggle() {
      body.hidden = !body.hidden;
      li.classList.toggle('open', !body.hidden);
      head.setAttribute('aria-expanded', String(!body.hidden));
    }
    head.addEventListener('click', toggle);
    head.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(); }
    });
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
    expandable(li, head, body);
    li.appendChild(head); li.appendChild(body);
    return li;
  }
  function replay(f, btn, bar) {
    btn.disabled = true;
    var old = bar.parentNode.querySelector('.replay-error');
    if (old) old.remove();
    fetch('/api/v1/failed-events/' + f.id + '/replay/', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'X-CSRFToken': csrf, 'Accept': 'application/json' }
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) { return [r.ok, j]; });
    }).then(function (res) {
      if (res[0]) { lastId = 0; refresh(true); return; }
      btn.disabled = false;
      var message = (res[1].error && res[1].error.message) || 'Replay failed; try again.';
      bar.parentNode.appendChild(el('p', 'msg error replay-error', message));
    }, function () {
      btn.disabled = false;
      bar.parentNode.appendChild(el('p', 'msg error replay-error', 'Could not reach the server; try again.'));
    });
  }
  function failedRow(f) {
    var pending = f.status === 'failed';
    var li = el('li', 'event-row failed' + (pending ? '' : ' resolved'));
    li.dataset.id = f.id;
    var head = el('div', 'event-head');
    head.appendChild(el('span', 'pill bad', f.reason));
    head.appendChild(el('span', 'event-name', f.message));
    var status = el('span', pending ? 'status' : 'status pill ok', pending ? '' : (STATUS_LABELS[f.status] || f.status));
    head.appendChild(status);
    head.appendChild(el('span', 'event-time muted', when(f.received_at)));
    var body = el('div', 'payload-wrap');
    body.hidden = true;
    var pre = el('pre', 'payload');
    pre.textContent = f.payload !== null ? JSON.stringify(f.payload, null, 2) : f.raw;
    body.appendChild(pre);
    if (pending) {
      var bar = el('div', 'replay-bar');
      if (canReplay) {
        var btn = el('button', 'button small primary replay', 'Replay');
        btn.type = 'button';
        btn.addEventListener('click', function (e) { e.stopPropagation(); replay(f, btn, bar); });
        bar.appendChild(btn);
        bar.appendChild(el('span', 'muted small', 'Runs the event through the collector again with the source’s current settings.'));
      } else {
        bar.appendChild(el('span', 'muted small', 'An admin of this workspace can replay this event once the cause is fixed.'));
      }
      body.appendChild(bar);
      if (f.last_replay_error) body.appendChild(el('p', 'msg error replay-error', 'Last replay failed: ' + f.last_replay_error));
    } else if (f.replayed_at) {
      var done = el('div', 'replay-bar');
      done.appendChild(el('span', 'muted small', 'Replayed ' + when(f.replayed_at) + '.'));
      body.appendChild(done);
    }
    expandable(li, head, body);
    li.appendChild(head); li.appendChild(body);
    return li;
  }
  function getJSON(url) {
    return fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (r) {
        if (r.ok) return r.json();
        var err = new Error('HTTP ' + r.status);
        err.status = r.status;
        throw err;
      });
  }
  function showError(err) {
    var msg = err && (err.status === 401 || err.status === 403)
      ? 'Your session has ended or you lost access. Reload the page to sign in again.'
      : 'Cannot reach the server; retrying…';
    pollError.textContent = msg;
    pollError.hidden = false;
    liveButton.querySelector('.dot').classList.add('error');
  }
  function clearError() {
    pollError.hidden = true;
    liveButton.querySelector('.dot').classList.remove('error');
  }
  function refresh(full) {
    if (full) generation++;
    var mine = generation;
    var p = query();
    if (!full && lastId) p.set('after_id', lastId);
    var eventsDone = getJSON('/api/v1/events/?' + p).then(function (data) {
      if (mine !== generation) return;
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
      if (!list.children.length) {
        if (filtering()) eventsEmpty.textContent = 'No events match these filters.';
        else eventsEmpty.innerHTML = waitingHTML;
      }
      eventsEmpty.hidden = list.children.length > 0;
    });
    var failedDone = getJSON('/api/v1/failed-events/?source=' + sourceId + '&page_size=100').then(function (data) {
      // Rebuild only when something changed, so a poll does not wipe a text selection.
      var shown = JSON.stringify(data.results.map(function (f) {
        return [f.id, f.status, f.last_replay_error, f.replay_attempts];
      }));
      if (shown === failedShown) return;
      failedShown = shown;
      var open = {};
      failedList.querySelectorAll('.open').forEach(function (li) { open[li.dataset.id] = true; });
      failedList.innerHTML = '';
      data.results.forEach(function (f) {
        var r = failedRow(f);
        if (open[f.id]) r.querySelector('.event-head').click();
        failedList.appendChild(r);
      });
      var pending = data.results.filter(function (f) { return f.status === 'failed'; }).length;
      var count = document.getElementById('failed-count');
      count.textContent = pending;
      count.classList.toggle('bad', pending > 0);
      document.getElementById('failed-empty').hidden = data.results.length > 0;
    });
    return Promise.all([eventsDone, failedDone]).then(clearError, showError);
  }
  function schedule() {
    clearTimeout(timer);
    if (live) timer = setTimeout(function () { refresh(false).then(schedule); }, 2000);
  }
  liveButton.addEventListener('click', function () {
    live = !live;
    this.querySelector('.dot').classList.toggle('live', live);
    this.querySelector('.label').textContent = live ? 'Live' : 'Paused';
    if (live) refresh(false);
    schedule();
  });
  root.querySelectorAll('.tab').forEach(function (tab) {
    tab.addEventListener('click', function () {
      root.querySelectorAll('.tab').forEach(function (t) { t.classList.toggle('active', t === tab); });
      document.getElementById('events-panel').hidden = tab.dataset.view !== 'events';
      document.getElementById('failed-panel').hidden = tab.dataset.view !== 'failed';
      // the filters only apply to stored events
      document.getElementById('filters').hidden = tab.dataset.view !== 'events';
    });
  });
  var typing = null;
  function refilter() { clearTimeout(typing); lastId = 0; refresh(true); }
  Object.keys(filters).forEach(function (k) {
    filters[k].addEventListener('change', refilter);
    filters[k].addEventListener('input', function () { clearTimeout(typing); typing = setTimeout(refilter, 400); });
  });
  refresh(true).then(schedule);
})();
