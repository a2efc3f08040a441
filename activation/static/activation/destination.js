/* A destination's page: "Send test" (the request made and the answer) and the deliveries per
   minute of the last hour, delivered vs failed (the health API), redrawn at the card's width
   and every 30 seconds. */

import { api } from '../cdp/lib/api.js';
import { el, fill, pageData } from '../cdp/lib/dom.js';
import { clock, dateTime, grouped } from '../cdp/lib/format.js';
import { barChart } from '../cdp/lib/bars.js';

const config = pageData('destination-config');

// ---- send test ------------------------------------------------------------------------------

function kvTable(rows) {
  return el('table', 'table compact kv', el('tbody', null,
    rows.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) =>
      el('tr', null, el('th', null, k), el('td', null, el('code', null, String(v)))))));
}

function sentence(text) {
  const s = String(text || '');
  return s.charAt(0).toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? '' : '.');
}

function prettyBody(body) {
  if (!body) return '';
  try { return JSON.stringify(JSON.parse(body), null, 2); } catch (e) { return body; }
}

function showTest(result) {
  const card = document.getElementById('test-card');
  const request = result.request || {};
  const response = result.response || {};
  const answered = response.status !== undefined && response.status !== null;
  fill(document.getElementById('test-result'),
    el('p', { class: 'test-verdict', id: 'test-verdict' },
      el('span', { class: 'pill big ' + (result.ok ? 'ok' : 'bad') }, result.ok ? 'Delivered' : 'Failed'),
      ' ', el('span', { id: 'test-message' }, sentence(result.message))),
    el('div', 'grid-2 test-panes',
      el('div', null, el('h3', 'small-head', 'Request'),
        Object.keys(request).length
          ? kvTable(Object.entries(request))
          : el('p', 'muted small', 'No request was made: the settings are incomplete.')),
      el('div', null, el('h3', 'small-head', 'Answer'),
        answered
          ? [el('p', null, el('span', { class: 'pill ' + (result.ok ? 'ok' : 'bad'), id: 'test-status-code' },
            'HTTP ' + response.status)),
          response.body ? el('pre', 'payload test-body', prettyBody(response.body)) : null]
          : el('p', { class: 'muted small', id: 'test-no-answer' },
            'No answer: the destination could not be reached. Check the URL, and that the host ' +
            'is up and accepts connections from this server.'))));
  card.hidden = false;
}

const testButton = document.getElementById('send-test');
if (testButton) {
  testButton.addEventListener('click', () => {
    const status = document.getElementById('test-status');
    testButton.disabled = true;
    document.getElementById('test-card').hidden = false;
    status.textContent = 'Sending…';
    api('POST', config.test_url).then((result) => {
      status.textContent = 'Sent ' + dateTime(new Date().toISOString());
      showTest(result);
    }).catch((err) => {
      status.textContent = '';
      fill(document.getElementById('test-result'),
        el('p', 'msg error', 'The test could not be run: ' + err.message));
    }).finally(() => { testButton.disabled = false; });
  });
}

// ---- health chart ---------------------------------------------------------------------------

const target = document.getElementById('health-chart');
let minutes = null;

function hhmm(date) {
  return clock(date.toISOString());
}

// one bar per minute of the window, zero where nothing was sent
function perMinute(health) {
  const byMinute = new Map(health.per_minute.map((m) => [new Date(m.minute).getTime(), m]));
  const end = new Date();
  end.setSeconds(0, 0);
  const out = [];
  for (let i = health.minutes - 1; i >= 0; i -= 1) {
    const t = end.getTime() - i * 60000;
    const found = byMinute.get(t);
    out.push({ at: new Date(t), delivered: found ? found.delivered : 0,
      failed: found ? found.failed : 0, requests: found ? found.requests : 0 });
  }
  return out;
}

function draw() {
  if (!minutes) return;
  const total = minutes.reduce((a, m) => a + m.delivered + m.failed, 0);
  if (!total) {
    fill(target, el('div', { class: 'size-empty', id: 'health-empty' },
      el('strong', null, 'Nothing sent in the last hour'),
      el('p', 'muted', 'Deliveries appear here per minute, delivered and failed, as syncs, streams ' +
        'and deletions send to this destination.')));
    return;
  }
  const width = Math.max(target.clientWidth, 320);
  const chart = barChart(minutes, {
    width,
    id: 'health-svg',
    tipId: 'health-tip',
    ariaLabel: 'Deliveries per minute over the last hour: delivered and failed',
    series: [
      { key: 'delivered', label: 'Delivered', cls: 'ok' },
      { key: 'failed', label: 'Failed (will retry or dead)', cls: 'bad' },
    ],
    xLabel: (d) => hhmm(d.at),
    tooltip: (d) => [
      el('div', 'tip-date', hhmm(d.at)),
      el('div', 'tip-in', grouped(d.delivered) + ' delivered'),
      el('div', 'tip-out', grouped(d.failed) + ' failed'),
      el('div', 'tip-date', grouped(d.requests) + ' request' + (d.requests === 1 ? '' : 's')),
    ],
    barAttrs: (d) => ({ 'data-delivered': d.delivered, 'data-failed': d.failed }),
  });
  fill(target, chart);
}

function load() {
  api('GET', config.health_url).then((health) => {
    minutes = perMinute(health);
    draw();
  }).catch((err) => {
    fill(target, el('p', 'msg error', 'Could not load the health: ' + err.message));
  });
}

if (target) {
  load();
  setInterval(load, 30000);
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(draw, 150);
  });
}
