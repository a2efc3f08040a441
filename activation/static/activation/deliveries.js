/* The delivery log: a row opens to its payload, its last error and answer, and the log of its
   attempts (the delivery API, loaded when first opened). */

import { api } from '../cdp/lib/api.js';
import { el, fill, pageData } from '../cdp/lib/dom.js';
import { dateTime } from '../cdp/lib/format.js';

const config = pageData('deliveries-config');

const OUTCOME_PILLS = { ok: 'ok', retry: 'warn', throttled: 'warn', dead: 'bad' };

function attemptLog(attempts) {
  if (!attempts.length) return el('p', 'muted small', 'Not attempted yet.');
  return el('table', 'table compact attempts',
    el('thead', null, el('tr', null, ['When', 'Outcome', 'Answer', 'Time', 'Error', 'Response']
      .map((h) => el('th', null, h)))),
    el('tbody', null, attempts.map((a) => el('tr', null,
      el('td', 'nowrap small', dateTime(a.at)),
      el('td', null, el('span', 'pill ' + (OUTCOME_PILLS[a.outcome] || 'off'), a.outcome)),
      el('td', 'nowrap', a.status_code ? 'HTTP ' + a.status_code : el('code', null, a.reason || '—')),
      el('td', 'num nowrap small', Math.round(a.duration_ms) + ' ms'),
      el('td', 'small', a.error || ''),
      el('td', null, a.response ? el('code', 'small response', a.response) : '')))));
}

function detail(d) {
  const last = d.attempt_log.length ? d.attempt_log[d.attempt_log.length - 1] : null;
  return el('div', 'delivery-body',
    el('div', 'grid-2',
      el('div', null,
        el('h3', 'small-head', 'Payload'),
        el('pre', 'payload', JSON.stringify(d.payload, null, 2)),
        el('p', 'muted small', 'Idempotency key ', el('code', null, d.key),
          ' · the same on every retry, so the receiver can drop duplicates.')),
      el('div', null,
        el('h3', 'small-head', 'Last error'),
        d.error || d.reason
          ? el('p', null, d.reason ? el('code', null, d.reason) : null, ' ', d.error)
          : el('p', 'muted small', d.status === 'delivered' ? 'None: delivered.' : 'None.'),
        last && last.response ? [el('h3', 'small-head', 'Last answer'),
          el('pre', 'payload small', last.response)] : null,
        el('p', 'muted small',
          d.finished_at ? 'Finished ' + dateTime(d.finished_at)
            : d.status === 'pending' ? 'Next attempt ' + dateTime(d.next_attempt_at) : ''))),
    el('h3', 'small-head', 'Attempts'),
    attemptLog(d.attempt_log));
}

document.querySelectorAll('#deliveries-table button.expand').forEach((button) => {
  const id = button.getAttribute('data-id');
  const row = document.getElementById('detail-' + id);
  const group = button.closest('tbody');
  let loaded = false;
  button.addEventListener('click', () => {
    row.hidden = !row.hidden;
    group.classList.toggle('open', !row.hidden);
    button.setAttribute('aria-expanded', String(!row.hidden));
    button.firstChild.textContent = (row.hidden ? '▸ ' : '▾ ') + id;
    if (row.hidden || loaded) return;
    loaded = true;
    const body = row.querySelector('.detail-body');
    api('GET', config.detail_url.replace('/0/', `/${id}/`)).then((d) => {
      body.classList.remove('muted');
      fill(body, detail(d));
    }).catch((err) => {
      loaded = false;
      fill(body, el('p', 'msg error', 'Could not load the delivery: ' + err.message));
    });
  });
});
