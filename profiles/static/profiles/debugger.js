/* Live event debugger: polls the management API (session auth) for new events of one
   source, renders them newest first; each row expands to its stored payload. Failed events
   show their reason and, for admins, a Replay button. */

import { ApiError, api, getJSON } from '../cdp/lib/api.js';
import { el } from '../cdp/lib/dom.js';
import { timeThenDate } from '../cdp/lib/format.js';
import { eventRow, payload } from './event_row.js';

const STATUS_LABELS = { replayed: 'Replayed', duplicate: 'Already stored' };

function summary(ev) {
  if (ev.type === 'track') return ev.event;
  if (ev.type === 'page' || ev.type === 'screen') return ev.name || '(unnamed)';
  if (ev.type === 'identify') return Object.keys(ev.traits || {}).join(', ') || '(no traits)';
  if (ev.type === 'group') return ev.groupId;
  if (ev.type === 'alias') return ev.previousId + ' → ' + ev.userId;
  return '';
}

function row(ev) {
  return eventRow({
    id: ev.id,
    head: [
      el('span', 'type type-' + ev.type, ev.type),
      el('span', 'event-name', summary(ev)),
      el('span', 'event-who muted', ev.userId || ev.anonymousId || ''),
      el('span', 'event-time muted', timeThenDate(ev.receivedAt)),
    ],
    body: payload(ev),
  });
}

function eventDebugger(root) {
  const sourceId = root.dataset.source;
  const canReplay = root.dataset.canReplay === '1';
  // generation: bumped by every full reload, so a poll that was already in flight with the
  // old filters cannot add rows that do not match the new ones.
  let live = true, lastId = 0, timer = null, seen = {}, generation = 0, failedShown = null;
  const $ = (id) => document.getElementById(id);
  const list = $('event-list');
  const failedList = $('failed-list');
  const eventsEmpty = $('events-empty');
  const waiting = Array.from(eventsEmpty.childNodes, (node) => node.cloneNode(true));
  const pollError = $('poll-error');
  const liveButton = $('live-toggle');
  const filters = { user_id: $('filter-user'), anonymous_id: $('filter-anon'),
    type: $('filter-type'), event: $('filter-event'), message_id: $('filter-message') };
  // a link may open the debugger on given filters (the schema page's example events)
  const given = new URLSearchParams(window.location.search);
  Object.entries(filters).forEach(([k, f]) => { if (given.get(k)) f.value = given.get(k); });

  const filtering = () => Object.values(filters).some((f) => f.value);
  function query() {
    const p = new URLSearchParams({ source: sourceId, page_size: '100' });
    Object.entries(filters).forEach(([k, f]) => { if (f.value) p.set(k, f.value.trim()); });
    return p;
  }
  function replay(f, btn, bar) {
    btn.disabled = true;
    const old = bar.parentNode.querySelector('.replay-error');
    if (old) old.remove();
    api('POST', '/api/v1/failed-events/' + f.id + '/replay/').then(() => {
      lastId = 0;
      refresh(true);
    }, (err) => {
      btn.disabled = false;
      let message = 'Could not reach the server; try again.';
      if (err instanceof ApiError) message = err.code ? err.message : 'Replay failed; try again.';
      bar.parentNode.append(el('p', 'msg error replay-error', message));
    });
  }
  function failedRow(f) {
    const pending = f.status === 'failed';
    const body = el('div', 'payload-wrap',
      f.payload !== null ? payload(f.payload) : el('pre', 'payload', f.raw));
    if (pending) {
      const bar = el('div', 'replay-bar');
      if (canReplay) {
        const btn = el('button', { class: 'button small primary replay', type: 'button' }, 'Replay');
        btn.addEventListener('click', (e) => { e.stopPropagation(); replay(f, btn, bar); });
        bar.append(btn, el('span', 'muted small',
          'Runs the event through the collector again with the source’s current settings.'));
      } else {
        bar.append(el('span', 'muted small',
          'An admin of this workspace can replay this event once the cause is fixed.'));
      }
      body.append(bar);
      if (f.last_replay_error) {
        body.append(el('p', 'msg error replay-error', 'Last replay failed: ' + f.last_replay_error));
      }
    } else if (f.replayed_at) {
      body.append(el('div', 'replay-bar',
        el('span', 'muted small', 'Replayed ' + timeThenDate(f.replayed_at) + '.')));
    }
    return eventRow({
      id: f.id,
      cls: 'failed' + (pending ? '' : ' resolved'),
      head: [
        el('span', 'pill bad', f.reason),
        el('span', 'event-name', f.message),
        el('span', pending ? 'status' : 'status pill ok',
          pending ? '' : (STATUS_LABELS[f.status] || f.status)),
        el('span', 'event-time muted', timeThenDate(f.received_at)),
      ],
      body,
    });
  }
  function showError(err) {
    pollError.textContent = err && (err.status === 401 || err.status === 403)
      ? 'Your session has ended or you lost access. Reload the page to sign in again.'
      : 'Cannot reach the server; retrying…';
    pollError.hidden = false;
    liveButton.querySelector('.dot').classList.add('error');
  }
  function clearError() {
    pollError.hidden = true;
    liveButton.querySelector('.dot').classList.remove('error');
  }
  function showEvents(data, full) {
    if (full) { list.replaceChildren(); seen = {}; }
    const fresh = data.results.filter((ev) => !seen[ev.id]);
    for (let i = fresh.length - 1; i >= 0; i--) {
      seen[fresh[i].id] = true;
      const r = row(fresh[i]);
      if (!full) r.classList.add('new');
      list.insertBefore(r, list.firstChild);
    }
    if (data.results.length) lastId = Math.max(lastId, data.results[0].id);
    while (list.children.length > 200) list.removeChild(list.lastChild);
    $('events-count').textContent = list.children.length;
    if (!list.children.length) {
      if (filtering()) eventsEmpty.textContent = 'No events match these filters.';
      else eventsEmpty.replaceChildren(...waiting.map((node) => node.cloneNode(true)));
    }
    eventsEmpty.hidden = list.children.length > 0;
  }
  function showFailed(data) {
    // Rebuild only when something changed, so a poll does not wipe a text selection.
    const shown = JSON.stringify(data.results.map((f) =>
      [f.id, f.status, f.last_replay_error, f.replay_attempts]));
    if (shown === failedShown) return;
    failedShown = shown;
    const open = {};
    failedList.querySelectorAll('.open').forEach((li) => { open[li.dataset.id] = true; });
    failedList.replaceChildren();
    data.results.forEach((f) => {
      const r = failedRow(f);
      if (open[f.id]) r.querySelector('.event-head').click();
      failedList.append(r);
    });
    const pending = data.results.filter((f) => f.status === 'failed').length;
    const count = $('failed-count');
    count.textContent = pending;
    count.classList.toggle('bad', pending > 0);
    $('failed-empty').hidden = data.results.length > 0;
  }
  function refresh(full) {
    if (full) generation++;
    const mine = generation;
    const p = query();
    if (!full && lastId) p.set('after_id', lastId);
    const eventsDone = getJSON('/api/v1/events/?' + p).then((data) => {
      if (mine === generation) showEvents(data, full);
    });
    const failedDone = getJSON('/api/v1/failed-events/?source=' + sourceId + '&page_size=100')
      .then(showFailed);
    return Promise.all([eventsDone, failedDone]).then(clearError, showError);
  }
  function schedule() {
    clearTimeout(timer);
    if (live) timer = setTimeout(() => refresh(false).then(schedule), 2000);
  }
  liveButton.addEventListener('click', () => {
    live = !live;
    liveButton.querySelector('.dot').classList.toggle('live', live);
    liveButton.querySelector('.label').textContent = live ? 'Live' : 'Paused';
    if (live) refresh(false);
    schedule();
  });
  root.querySelectorAll('.tab').forEach((tab) => {
    tab.addEventListener('click', () => {
      root.querySelectorAll('.tab').forEach((t) => t.classList.toggle('active', t === tab));
      $('events-panel').hidden = tab.dataset.view !== 'events';
      $('failed-panel').hidden = tab.dataset.view !== 'failed';
      // the filters only apply to stored events
      $('filters').hidden = tab.dataset.view !== 'events';
    });
  });
  let typing = null;
  // a note while the filters a link set are on, so a list of one is not taken for all
  const linked = $('linked-filters');
  linked.hidden = !filtering() || !window.location.search.includes('message_id=');
  function refilter() {
    clearTimeout(typing);
    lastId = 0;
    if (!filters.message_id.value) linked.hidden = true;
    refresh(true);
  }
  Object.values(filters).forEach((f) => {
    f.addEventListener('change', refilter);
    f.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(refilter, 400); });
  });
  refresh(true).then(schedule);
}

const root = document.getElementById('debugger');
if (root) eventDebugger(root);
