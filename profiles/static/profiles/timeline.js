/* A profile's event timeline: the events API page by page, newest first; each row opens to
   the event's payload. */

import { getJSON } from '../cdp/lib/api.js';
import { el } from '../cdp/lib/dom.js';
import { dateTime, truncate } from '../cdp/lib/format.js';
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
function row(ev) {
  return eventRow({
    id: ev.id,
    headClass: 'timeline-head',
    head: [
      el('span', 'event-time muted', dateTime(ev.timestamp)),
      el('span', 'type type-' + ev.type, ev.type),
      el('span', 'event-name', eventName(ev)),
      el('span', 'event-props muted', eventSummary(ev)),
    ],
    body: payload(ev),
  });
}

export function timeline(list) {
  const more = document.getElementById('timeline-more');
  const status = document.getElementById('timeline-status');
  const empty = document.getElementById('timeline-empty');
  const error = document.getElementById('timeline-error');
  let next = list.dataset.url;
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
  load();
}
