/* A model's page: what it predicts, the active run's progress (polled), the champion's
   held-out metrics against the baseline with its charts (ROC, calibration, lift by decile,
   feature importance), drift, versions (promote / roll back) and runs with their logs. */

import { ApiError, api, getJSON } from '../cdp/lib/api.js';
import { el, expandable, fill, pageData, svg } from '../cdp/lib/dom.js';
import { dateTime, grouped } from '../cdp/lib/format.js';
import { clusterChampion, recommendationChampion } from './ml_kinds.js';

const config = pageData('model-config');
const $ = (id) => document.getElementById(id);
let model = config.model;
const ACTIVE = ['queued', 'running'];
const pct = (v) => (v * 100).toFixed(1) + ' %';
const fixed = (v, n = 3) => (typeof v === 'number' && !Number.isNaN(v) ? v.toFixed(n) : '—');

const METRICS = { roc_auc: 'ROC-AUC', silhouette: 'Silhouette', ndcg_at_10: 'NDCG@10' };

function describe() {
  const c = model.config;
  if (model.kind === 'clusters') {
    fill($('model-what'), 'Which kinds of customers there are: each profile with events goes to one cluster, ' +
      'its label written to the trait ', el('code', null, model.key),
    ' (segments use it as “in cluster”)', model.scored_at ?
      ` for ${grouped(model.scored_count)} profiles, ${dateTime(model.scored_at)}.` : '.');
    return;
  }
  if (model.kind === 'recommendations') {
    fill($('model-what'), `What each person should see next: the ${c.top_n || 10} best items per person, ` +
      'written to the trait ', el('code', null, model.key), ' (item ids)',
    model.scored_at ? ` for ${grouped(model.scored_count)} profiles, ${dateTime(model.scored_at)}` : '',
    '; the API folds in a person\'s newest events on request.');
    return;
  }
  const event = c.event || 'Order Completed';
  const days = c.horizon_days || (model.kind === 'churn' ? 90 : 30);
  const what = model.kind === 'churn' ?
    `The probability that a customer does no “${event}” in the next ${days} days.` :
    `The probability that a profile does “${event}” within the next ${days} days.`;
  fill($('model-what'), what + ' Written to the traits ', el('code', null, model.key),
    ' (0–1) and ', el('code', null, model.key + '_decile'), ' (1–10, 10 = most likely)',
    model.scored_at ? ` for ${grouped(model.scored_count)} profiles, ${dateTime(model.scored_at)}.` :
      '.');
}

function fail(err) {
  const message = err instanceof ApiError ? err.message : 'Could not reach the server; try again.';
  fill($('model-actions'), el('p', 'msg error', message));
}

function actions(run) {
  if (!config.can_manage) return fill($('model-actions'));
  const busy = run && ACTIVE.includes(run.status);
  const train = el('button', { class: 'button primary', type: 'button', id: 'train-now',
    disabled: busy, onclick: () => api('POST', config.api + 'train/').then(refresh, fail) },
  busy ? 'Training…' : 'Train now');
  const cancel = busy ? el('button', { class: 'button', type: 'button', id: 'cancel-run',
    onclick: () => api('POST', `${config.api}runs/${run.id}/cancel/`).then(refresh, fail) },
  'Cancel') : null;
  fill($('model-actions'), train, cancel);
}

function runNow(run) {
  const card = $('run-card');
  card.hidden = !run || !ACTIVE.includes(run.status);
  if (card.hidden) return;
  fill($('run-now'),
    el('progress', { class: 'run-progress wide', max: 100, value: run.percent,
      'aria-label': 'Training progress' }),
    el('p', 'small', el('strong', null, run.stage), ` · ${run.percent} %`,
      run.cancel_requested ? ' · cancelling…' : ''),
    el('pre', 'run-log small', run.log || 'waiting for a worker…'));
}

// ---- charts ---------------------------------------------------------------------------------
const W = 340, H = 240, M = { l: 44, r: 12, t: 12, b: 36 };

function frame(title, id, xLabel, yLabel) {
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'ml-chart', role: 'img',
    'aria-label': title, id });
  const x0 = M.l, x1 = W - M.r, y0 = H - M.b, y1 = M.t;
  for (let i = 0; i <= 4; i++) {
    const y = y0 - (i / 4) * (y0 - y1);
    box.append(svg('line', { x1: x0, x2: x1, y1: y, y2: y, class: 'grid' }),
      svg('text', { x: x0 - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' }, (i / 4).toFixed(2)));
  }
  box.append(svg('text', { x: (x0 + x1) / 2, y: H - 6, class: 'axis', 'text-anchor': 'middle' },
    xLabel), svg('text', { x: 12, y: (y0 + y1) / 2, class: 'axis', 'text-anchor': 'middle',
    transform: `rotate(-90 12 ${(y0 + y1) / 2})` }, yLabel));
  const sx = (v) => x0 + v * (x1 - x0), sy = (v) => y0 - v * (y0 - y1);
  return { box, sx, sy };
}

function line(f, xs, ys, cls, label) {
  const d = xs.map((x, i) => `${i ? 'L' : 'M'}${f.sx(x).toFixed(1)},${f.sy(ys[i]).toFixed(1)}`);
  f.box.append(svg('path', { d: d.join(''), class: 'series ' + cls }, svg('title', null, label)));
}

function card(title, note, chart, legend) {
  return el('section', 'card chart-card', el('h3', null, title),
    el('p', 'muted small', note), chart, legend ? el('div', 'chart-legend small', legend) : null);
}

function key(cls, text) { return el('span', 'key', el('span', 'swatch ' + cls), text); }

function rocChart(charts) {
  const f = frame('ROC curves of the model and the baseline', 'roc-chart',
    'false positive rate', 'true positive rate');
  line(f, [0, 1], [0, 1], 'chance', 'chance');
  if (charts.roc_baseline) line(f, charts.roc_baseline.fpr, charts.roc_baseline.tpr, 'baseline', 'baseline');
  line(f, charts.roc.fpr, charts.roc.tpr, 'model', 'model');
  return f.box;
}

function calibrationChart(charts) {
  const f = frame('Calibration: predicted against observed rates', 'calibration-chart',
    'predicted probability', 'observed rate');
  line(f, [0, 1], [0, 1], 'chance', 'perfect calibration');
  const { predicted, observed } = charts.calibration;
  line(f, predicted, observed, 'model', 'model');
  predicted.forEach((p, i) => f.box.append(svg('circle', { cx: f.sx(p), cy: f.sy(observed[i]),
    r: 3, class: 'point' }, svg('title', null, `predicted ${pct(p)}, observed ${pct(observed[i])}`))));
  return f.box;
}

function bars(values, labels, id, title, format) {
  const rowH = 20, width = 340, left = 150, height = values.length * rowH + 8;
  const box = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'ml-chart bars', role: 'img',
    'aria-label': title, id });
  const max = Math.max(...values.map(Math.abs), 1e-9);
  values.forEach((v, i) => {
    const y = 4 + i * rowH, w = Math.max(0, (v / max) * (width - left - 60));
    box.append(svg('text', { x: left - 6, y: y + 13, class: 'tick', 'text-anchor': 'end' }, labels[i]),
      svg('rect', { x: left, y: y + 2, width: w.toFixed(1), height: rowH - 6, class: 'bar' },
        svg('title', null, `${labels[i]}: ${format(v)}`)),
      svg('text', { x: left + w + 4, y: y + 13, class: 'tick' }, format(v)));
  });
  return box;
}

function label(feature) {
  const text = config.feature_labels[feature];
  return text ? feature.replace(/_/g, ' ') : feature;
}

function champion() {
  const versions = config.versions;
  const best = versions.find((v) => v.status === 'champion');
  if (!best) {
    fill($('champion'), el('p', 'muted', versions.length ?
      'No champion: promote a version below.' :
      {
        clusters: 'Not trained yet. A run builds every profile\'s features, chooses how many clusters by silhouette and grades them on profiles it did not fit.',
        recommendations: 'Not trained yet. A run builds the catalogue from product events, fits popularity, item-kNN and EASE on 80 % of the interactions and keeps the one that finds the other 20 % best.',
      }[model.kind] || 'Not trained yet. A run builds features as of two past moments, learns on the first and grades itself on the second.'));
    fill($('charts'));
    fill($('kind-extra'));
    return;
  }
  if (model.kind === 'clusters' || model.kind === 'recommendations') {
    const ctx = { model, config, refresh, fail };
    const part = (model.kind === 'clusters' ? clusterChampion : recommendationChampion)(ctx, best);
    fill($('champion'), ...part.header);
    fill($('charts'), ...part.cards);
    fill($('kind-extra'), part.extra);
    return;
  }
  const m = best.metrics, b = best.baseline_metrics;
  const tile = (name, value, base, better, hint) => el('div', 'metric-tile',
    el('div', 'muted small', name), el('div', 'metric-value', value),
    base !== null ? el('div', 'small ' + (better ? 'up' : 'muted'), 'baseline ' + base) : null,
    el('div', 'muted small', hint));
  fill($('champion'),
    el('p', 'lead', m.summary || ''),
    el('p', 'muted small', `v${best.number} · ${m.algorithm || ''} · learned on ` +
      `${grouped(best.rows.train)} profiles as of ${best.window.train_as_of.slice(0, 10)}, graded on ` +
      `${grouped(best.rows.eval)} as of ${best.window.eval_as_of.slice(0, 10)} ` +
      `(${pct(m.base_rate)} positive) · ${best.reason}`),
    el('div', 'metric-tiles',
      tile('ROC-AUC', fixed(m.roc_auc), fixed(b.roc_auc), m.roc_auc >= b.roc_auc,
        'ranking: 0.5 is chance, 1 perfect'),
      tile('PR-AUC', fixed(m.pr_auc), fixed(b.pr_auc), m.pr_auc >= b.pr_auc, 'precision over recall'),
      tile('Brier score', fixed(m.brier), fixed(b.brier), m.brier <= b.brier,
        'squared error of the probabilities (lower is better)'),
      tile('Lift, top 10 %', fixed(m.lift_top_decile, 2) + '×', fixed(b.lift_top_decile, 2) + '×',
        m.lift_top_decile >= b.lift_top_decile, 'positive rate in the top tenth vs overall')));
  const charts = best.charts || {};
  const cards = [];
  if (charts.roc) {
    cards.push(card('ROC curve', 'Higher and further left is better; the dashed line is chance.',
      rocChart(charts), [key('model', 'model'), key('baseline', 'baseline (logistic regression)')]));
  }
  if (charts.calibration) {
    cards.push(card('Calibration', 'Among profiles given about p, about p should turn out positive.',
      calibrationChart(charts), [key('model', 'model'), key('chance', 'perfect')]));
  }
  if (charts.lift_by_decile) {
    const deciles = charts.lift_by_decile;
    cards.push(card('Lift by decile', 'Positive rate in each tenth of the scores, highest first, over the overall rate.',
      bars(deciles, deciles.map((_, i) => `decile ${10 - i}`), 'lift-chart', 'Lift by decile',
        (v) => v.toFixed(2) + '×')));
  }
  if (charts.importance && charts.importance.length) {
    const top = charts.importance.slice(0, 10);
    cards.push(card('What it looks at', 'Drop in ROC-AUC when a feature is shuffled (permutation importance).',
      bars(top.map((i) => Math.max(0, i.importance)), top.map((i) => label(i.feature)),
        'importance-chart', 'Feature importance', (v) => v.toFixed(3))));
  }
  fill($('charts'), ...cards);
}

function drift() {
  const latest = model.drift && model.drift.latest;
  $('drift-card').hidden = !latest;
  if (!latest) return;
  const rows = Object.entries(latest.psi).sort((a, b) => b[1] - a[1]).slice(0, 12);
  fill($('drift'), el('table', 'table compact', el('thead', null, el('tr', null,
    el('th', null, 'Feature'), el('th', 'num', 'PSI'), el('th', null, ''))),
  el('tbody', null, rows.map(([name, value]) => el('tr', null, el('td', null, label(name)),
    el('td', 'num', value.toFixed(3)),
    el('td', null, value > 0.2 ? el('span', 'pill warn', 'shifted') : el('span', 'muted small', 'stable')))))),
  el('p', 'muted small', `Measured ${dateTime(latest.at)} against v${latest.version}.`),
  driftChart(model.drift.series || []));
}

/* PSI of the most important features at each scoring, with the 0.2 line. */
function driftChart(series) {
  if (series.length < 2) return el('p', 'muted small', 'The chart over time appears after the second scoring.');
  const features = Object.keys(series[series.length - 1].psi);
  const top = Math.max(0.3, ...series.flatMap((p) => Object.values(p.psi).filter((v) => v !== null)));
  const f = frame('Drift of the most important features over time', 'drift-chart', 'scorings, oldest first', 'PSI');
  const sx = (i) => f.sx(i / (series.length - 1));
  const sy = (v) => f.sy(Math.min(v, top) / top);
  f.box.append(svg('line', { x1: f.sx(0), x2: f.sx(1), y1: sy(0.2), y2: sy(0.2), class: 'series chance' },
    svg('title', null, 'PSI 0.2: a shift worth retraining for')));
  features.forEach((name, k) => {
    const d = series.map((p, i) => `${i ? 'L' : 'M'}${sx(i).toFixed(1)},${sy(p.psi[name] || 0).toFixed(1)}`);
    f.box.append(svg('path', { d: d.join(''), class: `series drift cl${k}` }, svg('title', null, label(name))));
  });
  // the y ticks of frame() run 0–1: relabel them in PSI
  f.box.querySelectorAll('text.tick').forEach((t, i) => { t.textContent = ((i / 4) * top).toFixed(2); });
  return el('div', 'drift-over-time', f.box, el('div', 'chart-legend small', features.map((name, k) =>
    el('span', 'key', el('span', `swatch line cl${k}`), label(name)))));
}

function versions() {
  const rows = config.versions.map((v) => el('tr', { dataset: { version: v.number } },
    el('td', null, 'v' + v.number),
    el('td', null, el('span', 'pill ' + (v.status === 'champion' ? 'ok' : 'off'), v.status)),
    el('td', 'num', fixed(v.score)),
    el('td', 'num', fixed(v.baseline_metrics[v.score_metric])),
    el('td', 'small', v.reason),
    el('td', 'nowrap small', dateTime(v.created_at)),
    el('td', null, config.can_manage && v.status !== 'champion' ? el('button', {
      class: 'button small promote', type: 'button',
      onclick: () => api('POST', config.api + 'promote/', { version: v.number }).then(refresh, fail),
    }, model.champion && v.number < model.champion.number ? 'Roll back to it' : 'Promote') : null)));
  fill($('versions'), rows.length ? el('table', 'table', el('thead', null, el('tr', null,
    el('th', null, 'Version'), el('th', null, 'Status'),
    el('th', 'num', METRICS[(config.versions[0] || {}).score_metric] || 'Score'),
    el('th', 'num', model.kind === 'recommendations' ? 'Popularity' :
      (model.kind === 'clusters' ? 'Random labels' : 'Baseline')), el('th', null, 'Why'), el('th', null, 'Made'), el('th', null, ''))),
  el('tbody', null, rows)) : el('p', 'muted', 'No version yet.'));
}

function runs() {
  const items = config.runs.map((r) => {
    const body = el('pre', { class: 'run-log small', hidden: true }, r.log || '(no log)');
    const head = el('div', 'run-head',
      el('span', 'pill ' + ({ succeeded: 'ok', failed: 'bad' }[r.status] || 'off'), r.status),
      el('span', 'small', ` ${r.trigger} · ${dateTime(r.created_at)}`),
      r.version ? el('span', 'small muted', ` · made v${r.version}`) : null,
      r.error ? el('span', 'small bad-text', ' · ' + r.error) : null);
    const item = el('div', 'run-item', head, body);
    expandable(item, head, body);
    return item;
  });
  fill($('runs'), items.length ? items : el('p', 'muted', 'No run yet.'));
}

function render() {
  const run = config.runs[0];
  describe();
  actions(run);
  runNow(run);
  champion();
  drift();
  versions();
  runs();
  if (run && ACTIVE.includes(run.status)) setTimeout(refresh, 1000);
}

async function refresh() {
  try {
    const [m, v, r] = await Promise.all([getJSON(config.api), getJSON(config.api + 'versions/'),
      getJSON(config.api + 'runs/')]);
    model = m;
    config.versions = v.results;
    config.runs = r.results;
    render();
  } catch (err) { fail(err); }
}

render();
