/* Event debugger: the events of one source, newest first, each with when it happened (its
   timestamp) and when it was received; a row expands to its stored payload.

   - Older events page in by keyset ("Load more", or scrolling to the end of the list): the
     API's `before_id` cursor, so a page is one index range scan and events arriving
     meanwhile neither repeat nor skip a row.
   - Live mode polls for newer events (`after_id`). It looks back a few polls, because an
     event's id is taken before its batch commits and a slower batch may commit a lower id
     after a faster one was shown; rows are placed in id order and never shown twice. When
     more arrived between two polls than a page holds, a marker in the list offers the rest.
   - The filters (user, type, event name, messageId) live in the URL's query string.
   Failed events show their reason and, for admins, a Replay button. */

import { ApiError, api, getJSON } from '../cdp/lib/api.js';
import { el } from '../cdp/lib/dom.js';
import { grouped, timeThenDate } from '../cdp/lib/format.js';
import { eventRow, payload } from './event_row.js';

const STATUS_LABELS = { replayed: 'Replayed', duplicate: 'Already stored' };
const PAGE_SIZE = 100;
const POLL_MS = 2000;
const LOOKBACK_POLLS = 3; // a poll asks again for what arrived since this many polls ago
const MAX_ROWS = 5000; // live rows past this push the oldest out (they can be loaded again)

function summary(ev) {
  if (ev.type === 'track') return ev.event;
  if (ev.type === 'page' || ev.type === 'screen') return ev.name || '(unnamed)';
  if (ev.type === 'identify') return Object.keys(ev.traits || {}).join(', ') || '(no traits)';
  if (ev.type === 'group') return ev.groupId;
  if (ev.type === 'alias') return ev.previousId + ' → ' + ev.userId;
  return '';
}

function moment(cls, label, iso) {
  return el('time', { class: 'event-time muted ' + cls, datetime: iso, title: label + ': ' + iso },
    timeThenDate(iso));
}

function row(ev) {
  return eventRow({
    id: ev.id,
    head: [
      el('span', 'type type-' + ev.type, ev.type),
      el('span', 'event-name', summary(ev)),
      el('span', 'event-who muted', ev.userId || ev.anonymousId || ''),
      moment('event-at', 'Event time (timestamp)', ev.timestamp),
      moment('received-at', 'Received', ev.receivedAt),
    ],
    body: payload(ev),
  });
}

function eventDebugger(root) {
  const sourceId = root.dataset.source;
  const canReplay = root.dataset.canReplay === '1';
  const $ = (id) => document.getElementById(id);
  const list = $('event-list');
  const failedList = $('failed-list');
  const eventsEmpty = $('events-empty');
  const waiting = Array.from(eventsEmpty.childNodes, (node) => node.cloneNode(true));
  const pollError = $('poll-error');
  const liveButton = $('live-toggle');
  const columns = $('event-columns');
  const moreBar = $('load-more-bar');
  const moreButton = $('load-more');
  const shownText = $('events-shown');
  const clearButton = $('filters-clear');
  const form = $('filters');
  const inputs = { user: $('filter-user'), type: $('filter-type'), message_id: $('filter-message') };
  const nameSelect = $('filter-event');

  // generation: bumped by every full reload, so an answer to a request made with the old
  // filters cannot add rows that do not match the new ones
  let live = true, timer = null, generation = 0, failedShown = null;
  let seen = new Set(), top = 0, marks = [];
  // older: whether older events remain; olderLeft: how many (at least that many when capped,
  // unknown when live rows pushed the oldest out)
  let older = false, olderLeft = 0, olderCapped = false, olderUnknown = false, loadingOlder = false;

  // ---- filters, kept in the URL -------------------------------------------------------------
  const knownNames = new Set(Array.from(nameSelect.options, (o) => o.dataset.param + ':' + o.value));
  function nameGroup(param) {
    const label = param === 'event' ? 'Track events' : 'Pages and screens';
    let group = Array.from(nameSelect.querySelectorAll('optgroup')).find((g) => g.label === label);
    if (!group) {
      group = el('optgroup', { label });
      if (param === 'event') nameSelect.insertBefore(group, nameSelect.querySelector('optgroup'));
      else nameSelect.append(group);
    }
    return group;
  }
  function addName(param, value) {
    if (!value || knownNames.has(param + ':' + value)) return;
    knownNames.add(param + ':' + value);
    nameGroup(param).append(el('option', { value, dataset: { param } }, value));
  }
  function selectName(param, value) {
    addName(param, value);
    const option = Array.from(nameSelect.options)
      .find((o) => o.dataset.param === param && o.value === value);
    if (option) option.selected = true;
  }
  function filterValues() {
    const values = {};
    Object.entries(inputs).forEach(([k, f]) => { if (f.value.trim()) values[k] = f.value.trim(); });
    const chosen = nameSelect.selectedOptions[0];
    if (chosen && chosen.value) values[chosen.dataset.param] = chosen.value;
    return values;
  }
  const filtering = () => Object.keys(filterValues()).length > 0;
  function query(extra) {
    const p = new URLSearchParams({ source: sourceId, page_size: String(PAGE_SIZE) });
    Object.entries(filterValues()).forEach(([k, v]) => p.set(k, v));
    Object.entries(extra || {}).forEach(([k, v]) => p.set(k, v));
    return '/api/v1/events/?' + p;
  }
  function syncUrl() {
    const p = new URLSearchParams({ source: sourceId });
    Object.entries(filterValues()).forEach(([k, v]) => p.set(k, v));
    window.history.replaceState(window.history.state, '', window.location.pathname + '?' + p);
    clearButton.hidden = !filtering();
  }
  // a link may open the debugger on given filters (the schema page's example events)
  const given = new URLSearchParams(window.location.search);
  ['user', 'type', 'message_id'].forEach((k) => { if (given.get(k)) inputs[k].value = given.get(k); });
  if (!given.get('user')) inputs.user.value = given.get('user_id') || given.get('anonymous_id') || '';
  if (given.get('event')) selectName('event', given.get('event'));
  else if (given.get('name')) selectName('name', given.get('name'));
  clearButton.hidden = !filtering();

  // ---- the list -----------------------------------------------------------------------------
  const rows = () => list.querySelectorAll(':scope > .event-row');
  const idOf = (li) => Number(li.dataset.id);
  function place(li, id) {
    // the list is in id order, newest first; a gap marker stands for the ids between its
    // `after` and `before`, which go right above it
    for (let node = list.firstElementChild; node; node = node.nextElementSibling) {
      const gap = node.classList.contains('gap');
      if ((!gap && idOf(node) < id) || (gap && Number(node.dataset.after) < id)) {
        list.insertBefore(li, node);
        return;
      }
    }
    list.append(li);
  }
  function add(events, { append, fresh }) {
    let added = 0;
    events.forEach((ev) => {
      if (seen.has(ev.id)) return;
      seen.add(ev.id);
      const li = row(ev);
      if (fresh) li.classList.add('new');
      if (append) list.append(li); else place(li, ev.id);
      if (ev.type === 'track') addName('event', ev.event);
      else if ((ev.type === 'page' || ev.type === 'screen') && ev.name) addName('name', ev.name);
      top = Math.max(top, ev.id);
      added++;
    });
    return added;
  }
  function trim() {
    // live rows pile up while the page stays open: drop the oldest, they can be loaded again
    let count = rows().length;
    if (count <= MAX_ROWS) return;
    while (count > MAX_ROWS) {
      const last = list.lastElementChild;
      if (last.classList.contains('event-row')) { seen.delete(idOf(last)); count--; }
      last.remove();
    }
    older = true;
    olderUnknown = true;
  }
  function showState() {
    const shown = rows().length;
    $('events-count').textContent = grouped(shown);
    if (!shown) {
      if (filtering()) eventsEmpty.textContent = 'No events match these filters.';
      else eventsEmpty.replaceChildren(...waiting.map((node) => node.cloneNode(true)));
    }
    eventsEmpty.hidden = shown > 0;
    columns.hidden = shown === 0;
    moreBar.hidden = shown === 0;
    moreButton.hidden = !older;
    moreButton.disabled = loadingOlder;
    moreButton.textContent = loadingOlder ? 'Loading…' : 'Load more';
    const events = shown === 1 ? 'event' : 'events';
    const total = grouped(shown + olderLeft);
    if (!older) shownText.textContent = `All ${grouped(shown)} ${events} shown.`;
    else if (olderUnknown) shownText.textContent = `${grouped(shown)} ${events} shown; more are older.`;
    else if (olderCapped) shownText.textContent = `${grouped(shown)} of more than ${total} events shown.`;
    else shownText.textContent = `${grouped(shown)} of ${total} events shown.`;
  }
  function setOlder(data) {
    older = Boolean(data.next);
    olderCapped = Boolean(data.count_capped);
    olderUnknown = false;
    olderLeft = Math.max(0, data.count - data.results.length);
  }
  function gapMarker(after, before) {
    const button = el('button', { class: 'button small', type: 'button' },
      'Show the events that arrived in between');
    const li = el('li', { class: 'gap', dataset: { after, before } },
      el('span', 'muted small', 'More events arrived at once than one poll shows. '), button);
    button.addEventListener('click', () => fillGap(li, button));
    return li;
  }
  function fillGap(marker, button) {
    const mine = generation;
    button.disabled = true;
    getJSON(query({ after_id: marker.dataset.after, before_id: marker.dataset.before })).then((data) => {
      if (mine !== generation) return;
      add(data.results, { append: false, fresh: false });
      if (data.next && data.results.length) {
        marker.dataset.before = data.results[data.results.length - 1].id;
        button.disabled = false;
      } else {
        marker.remove();
      }
      showState();
    }, (err) => { button.disabled = false; showError(err); });
  }

  // ---- loading ------------------------------------------------------------------------------
  function loadOlder() {
    if (!older || loadingOlder) return Promise.resolve();
    const shown = rows();
    const last = shown[shown.length - 1];
    if (!last) return Promise.resolve();
    const mine = generation;
    loadingOlder = true;
    showState();
    return getJSON(query({ before_id: last.dataset.id })).then((data) => {
      if (mine !== generation) return;
      add(data.results, { append: true, fresh: false });
      setOlder(data);
    }, showError).finally(() => {
      if (mine !== generation) return;
      loadingOlder = false;
      showState();
      keepFilling();
    });
  }
  // the observer only speaks when the end of the list comes into view: on a tall screen it
  // may still be in view after a page, so look again
  let observer = null;
  function endInView() {
    if (moreBar.hidden || $('events-panel').hidden) return false;
    const box = moreBar.getBoundingClientRect();
    return box.top < window.innerHeight + 200 && box.bottom > -200;
  }
  function keepFilling() {
    if (observer && older && endInView()) loadOlder();
  }
  if ('IntersectionObserver' in window) {
    observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) loadOlder();
    }, { rootMargin: '0px 0px 200px 0px' });
    observer.observe(moreBar);
  }
  moreButton.addEventListener('click', loadOlder);

  function reload() {
    generation++;
    const mine = generation;
    return getJSON(query()).then((data) => {
      if (mine !== generation) return;
      list.replaceChildren();
      seen = new Set();
      top = 0;
      loadingOlder = false;
      add(data.results, { append: true, fresh: false });
      marks = [top];
      setOlder(data);
      showState();
      keepFilling();
    });
  }
  function poll() {
    const mine = generation;
    const since = marks[0];
    const before = top;
    const url = since ? query({ after_id: since }) : query();
    return getJSON(url).then((data) => {
      if (mine !== generation) return;
      const added = add(data.results, { append: false, fresh: true });
      const oldest = data.results.length ? data.results[data.results.length - 1].id : null;
      if (data.next && before && oldest > before && !list.querySelector(`.gap[data-before="${oldest}"]`)) {
        // more arrived than one page: say so where the missing ones belong
        place(gapMarker(before, oldest), oldest - 0.5);
      }
      if (!before && !since) setOlder(data);
      marks.push(top);
      marks = marks.slice(-LOOKBACK_POLLS);
      if (added) trim();
      showState();
    });
  }

  // ---- failed events ------------------------------------------------------------------------
  function replay(f, btn, bar) {
    btn.disabled = true;
    const old = bar.parentNode.querySelector('.replay-error');
    if (old) old.remove();
    api('POST', '/api/v1/failed-events/' + f.id + '/replay/').then(() => {
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

  // ---- polling ------------------------------------------------------------------------------
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
  function refresh(full) {
    const eventsDone = full ? reload() : poll();
    const failedDone = getJSON('/api/v1/failed-events/?source=' + sourceId + '&page_size=100')
      .then(showFailed);
    return Promise.all([eventsDone, failedDone]).then(clearError, showError);
  }
  function schedule() {
    clearTimeout(timer);
    if (live) timer = setTimeout(() => refresh(false).then(schedule), POLL_MS);
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
      form.hidden = tab.dataset.view !== 'events';
    });
  });

  let typing = null;
  // a note while the filters a link set are on, so a list of one is not taken for all
  const linked = $('linked-filters');
  linked.hidden = !inputs.message_id.value;
  function refilter() {
    clearTimeout(typing);
    if (!inputs.message_id.value) linked.hidden = true;
    syncUrl();
    refresh(true);
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); refilter(); });
  [...Object.values(inputs), nameSelect].forEach((f) => {
    f.addEventListener('change', refilter);
    if (f.tagName === 'INPUT') {
      f.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(refilter, 400); });
    }
  });
  clearButton.addEventListener('click', () => {
    Object.values(inputs).forEach((f) => { f.value = ''; });
    nameSelect.value = '';
    refilter();
  });
  refresh(true).then(schedule);
}

const root = document.getElementById('debugger');
if (root) eventDebugger(root);
