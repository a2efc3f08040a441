/* A sync's page: "Run now" and "Full resync" (the sync API queues a run; the page follows the
   runs API until the run is recorded, then shows it) and the chart of members added and
   removed per run (the page's json_script, in the runs API's shape). */

import { api } from '../cdp/lib/api.js';
import { el, fill, pageData } from '../cdp/lib/dom.js';
import { clock, dateTime, dayMonth, grouped } from '../cdp/lib/format.js';
import { barChart } from '../cdp/lib/bars.js';

const config = pageData('sync-config');
const status = document.getElementById('run-status');
const POLL_MS = 1000;
const POLL_FOR_MS = 30000;

function say(text, kind) {
  status.className = 'msg' + (kind ? ' ' + kind : '');
  fill(status, text);
  status.hidden = false;
}

function follow(started) {
  api('GET', config.runs_url).then((page) => {
    const newest = (page.results || [])[0];
    if (newest && newest.id !== config.latest_run && newest.finished_at) {
      window.location.reload();
      return;
    }
    if (Date.now() - started > POLL_FOR_MS) {
      say('No new run was recorded: nothing changed since the last one (a delta sends changes ' +
        'only; “Full resync” compares every member), or no worker is running.', 'warn');
      setButtons(false);
      return;
    }
    setTimeout(() => follow(started), POLL_MS);
  }).catch((err) => { say('Could not follow the run: ' + err.message, 'error'); setButtons(false); });
}

function setButtons(busy) {
  ['run-now', 'resync'].forEach((id) => {
    const b = document.getElementById(id);
    if (b) b.disabled = busy;
  });
}

function start(url, what) {
  setButtons(true);
  say(what + ' queued: waiting for the run…');
  api('POST', url).then(() => follow(Date.now())).catch((err) => {
    say(what + ' not started: ' + err.message, 'error');
    setButtons(false);
  });
}

const runNow = document.getElementById('run-now');
if (runNow) runNow.addEventListener('click', () => start(config.run_url, 'Run'));
const resync = document.getElementById('resync');
if (resync) resync.addEventListener('click', () => start(config.resync_url, 'Full resync'));

// ---- the campaign holdout ------------------------------------------------------------------

const holdoutForm = document.getElementById('holdout-form');
if (holdoutForm) {
  holdoutForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const error = document.getElementById('holdout-error');
    const data = new FormData(holdoutForm);
    const holdout = { percent: Number(data.get('percent')), metric: data.get('metric') };
    api('PATCH', config.sync_url, { holdout }).then(() => window.location.reload())
      .catch((err) => {
        const fields = (err.detail && err.detail.fields) || {};
        fill(error, Object.entries(fields).map(([k, v]) => `${k}: ${v.join(' ')}`).join(' · ') ||
          err.message);
        error.hidden = false;
      });
  });
}
const stopHoldout = document.getElementById('stop-holdout');
if (stopHoldout) {
  stopHoldout.addEventListener('click', () => {
    if (!window.confirm(stopHoldout.dataset.question)) return;
    api('PATCH', config.sync_url, { holdout: null }).then(() => window.location.reload())
      .catch((err) => say('The holdout was not stopped: ' + err.message, 'error'));
  });
}

// ---- added and removed per run --------------------------------------------------------------

const target = document.getElementById('runs-chart');
const KINDS = { delta: 'Delta', full: 'Full resync', initial: 'Initial sync' };

function draw() {
  if (!config.runs.length) return;
  // runs of one day are told apart by their time, others by their day
  const oneDay = config.runs.every((r) => dayMonth(r.started_at) === dayMonth(config.runs[0].started_at));
  const short = (iso) => (oneDay ? clock(iso) : dayMonth(iso));
  fill(target, barChart(config.runs, {
    width: Math.max(target.clientWidth, 320),
    id: 'runs-svg',
    tipId: 'runs-tip',
    ariaLabel: 'Members added and removed per run, oldest first',
    series: [
      { key: 'added', label: 'Added', cls: 'ok' },
      { key: 'updated', label: 'Updated', cls: 'mid' },
      { key: 'removed', label: 'Removed', cls: 'bad', down: true },
    ],
    xLabel: (d) => short(d.started_at),
    labelSpacing: 80,
    tooltip: (d) => [
      el('div', 'tip-date', (KINDS[d.kind] || d.kind) + ' · ' + dateTime(d.started_at)),
      el('div', 'tip-in', '+' + grouped(d.added) + ' added'),
      el('div', null, '~' + grouped(d.updated) + ' updated'),
      el('div', 'tip-out', '−' + grouped(d.removed) + ' removed'),
      d.failed ? el('div', 'tip-out', grouped(d.failed) + ' failed') : null,
    ],
    barAttrs: (d) => ({ 'data-run': d.id }),
  }));
}

if (target && config.runs.length) {
  draw();
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(draw, 150);
  });
}
