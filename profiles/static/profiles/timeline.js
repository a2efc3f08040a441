/* A profile's event timeline: the events API page by page, newest first, filtered by type
   and event name; each row opens to a readable table of the event's properties (or traits),
   its context and ids, with the raw JSON one click further. */

import { getJSON } from '../cdp/lib/api.js';
import { el, fill } from '../cdp/lib/dom.js';
import { truncate, when } from '../cdp/lib/format.js';
import { eventRow, payload } from './event_row.js';

function valueText(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
function pairs(obj, limit) {
  const keys = Object.keys(obj || {});
  const out = keys.slice(0, limit).map((k) => k + ': ' + truncate(valueText(obj[k]), 40));
  if (keys.length > limit) out.push('+' + (keys.length - limit) + ' more');
  return out.join(' · ');
}
function eventName(ev) {
  if (ev.type === 'track') return ev.event || '(unnamed)';
  if (ev.type === 'page' || ev.type === 'screen') return ev.name || '(unnamed)';
  if (ev.type === 'identify') return 'Identify' + (ev.userId ? ' ' + ev.userId : '');
  if (ev.type === 'group') return 'Group ' + (ev.groupId || '');
  if (ev.type === 'alias') return (ev.previousId || '') + ' → ' + (ev.userId || '');
  return ev.type;
}
function eventSummary(ev) {
  if (ev.type === 'identify' || ev.type === 'group') return pairs(ev.traits, 4) || '(no traits)';
  if (ev.type === 'alias') return 'alias';
  return pairs(ev.properties, 4);
}
// nested objects as dotted keys, two levels deep; deeper values and arrays as JSON
function flat(obj, prefix = '', depth = 0, out = []) {
  Object.entries(obj || {}).forEach(([key, value]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    if (value && typeof value === 'object' && !Array.isArray(value) && depth < 2) {
      flat(value, path, depth + 1, out);
    } else out.push([path, value]);
  });
  return out;
}

function propsTable(title, obj) {
  const rows = flat(obj);
  if (!rows.length) return null;
  return [el('div', 'props-group', title), el('table', 'props', el('tbody', {}, rows.map(([k, v]) =>
    el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, valueText(v))))))];
}

function details(ev) {
  const bag = ev.type === 'identify' || ev.type === 'group' ? ['Traits', ev.traits]
    : ['Properties', ev.properties];
  const ids = { messageId: ev.messageId, userId: ev.userId, anonymousId: ev.anonymousId,
    receivedAt: ev.receivedAt, source: ev.source };
  Object.keys(ids).forEach((k) => { if (ids[k] === undefined || ids[k] === null) delete ids[k]; });
  return el('div', 'event-detail',
    propsTable(bag[0], bag[1]) || el('p', 'muted small', `No ${bag[0].toLowerCase()}.`),
    propsTable('Context', ev.context),
    propsTable('Ids', ids),
    el('details', 'raw-json', el('summary', {}, 'Raw JSON'), payload(ev)));
}

function row(ev) {
  return eventRow({
    id: ev.id,
    headClass: 'timeline-head',
    head: [
      el('span', 'event-time muted', when(ev.timestamp)),
      el('span', 'type type-' + ev.type, ev.type),
      el('span', 'event-name', eventName(ev)),
      el('span', 'event-props muted', eventSummary(ev)),
    ],
    body: details(ev),
  });
}

export function timeline(list) {
  const more = document.getElementById('timeline-more');
  const status = document.getElementById('timeline-status');
  const empty = document.getElementById('timeline-empty');
  const error = document.getElementById('timeline-error');
  const base = list.dataset.url;
  let next = base;
  const filters = document.getElementById('timeline-filters');
  // the API's next link is absolute; the page asks its own origin, whatever the proxy says
  const sameOrigin = (url) => {
    const u = new URL(url, window.location.href);
    return u.pathname + u.search;
  };
  function load() {
    if (!next) return;
    more.disabled = true;
    more.textContent = 'Loading…';
    getJSON(sameOrigin(next)).then((data) => {
      error.hidden = true;
      list.append(...data.results.map(row));
      next = data.next;
      more.hidden = !next;
      empty.hidden = list.children.length > 0;
      status.textContent = list.children.length ?
        'Showing ' + list.children.length + ' of ' + data.count + ', newest first' : '';
    }, (err) => {
      error.textContent = 'Could not load events: ' + err.message;
      error.hidden = false;
    }).then(() => {
      more.disabled = false;
      more.textContent = 'Load more';
    });
  }
  more.addEventListener('click', load);
  if (filters) {
    // a name belongs to one type: choosing it narrows the type, a type hides other names
    const typeSelect = filters.elements.type;
    const eventSelect = filters.elements.event;
    filters.addEventListener('submit', (e) => e.preventDefault());
    filters.addEventListener('change', (e) => {
      if (e.target === eventSelect && eventSelect.value) {
        typeSelect.value = eventSelect.selectedOptions[0].dataset.type;
      }
      if (e.target === typeSelect) {
        [...eventSelect.options].forEach((o) => {
          o.hidden = Boolean(o.value && typeSelect.value && o.dataset.type !== typeSelect.value);
        });
        if (eventSelect.selectedOptions[0].hidden) eventSelect.value = '';
      }
      const url = new URL(base, window.location.href);
      if (typeSelect.value) url.searchParams.set('type', typeSelect.value);
      if (eventSelect.value) url.searchParams.set('event', eventSelect.value);
      next = url.pathname + url.search;
      fill(list);
      status.textContent = '';
      load();
    });
  }
  load();
}
