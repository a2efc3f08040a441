/* An experiment's results: SRM and guardrail banners, units per variant, a table per metric
   with each treatment's lift and its interval drawn as a bar around zero, the primary
   metric's lift over time, a sample-size calculator; start, stop and ship. */

import { ApiError, api, getJSON } from '../cdp/lib/api.js';
import { el, fill, pageData, svg } from '../cdp/lib/dom.js';
import { dateTime, grouped } from '../cdp/lib/format.js';

const config = pageData('experiment-config');
const $ = (id) => document.getElementById(id);
let experiment = config.experiment;
let results = null;
let drawnActions = null;  // what the action buttons were drawn for
const pct = (v, d = 1) => (v === null || v === undefined ? '—' : (v * 100).toFixed(d) + ' %');
const signed = (v, d = 1) => (v === null || v === undefined ? '—' :
  (v > 0 ? '+' : '') + (v * 100).toFixed(d) + ' %');
const num = (v) => (v === null || v === undefined ? '—' :
  Math.abs(v) >= 100 ? grouped(Math.round(v)) : v.toFixed(3));

function fail(err) {
  fill($('banners'), el('p', 'msg error', err instanceof ApiError ? err.message :
    'Could not reach the server; try again.'));
}

function header() {
  const status = $('experiment-status');
  status.textContent = experiment.status + (experiment.winner ? ` → ${experiment.winner}` : '');
  status.className = 'pill ' + (['running', 'shipped'].includes(experiment.status) ? 'ok' : 'off');
  fill($('experiment-what'), experiment.hypothesis ? `“${experiment.hypothesis}” · ` : '',
    `${experiment.variants.map((v) => v.key).join(' vs ')}, ${pct(experiment.coverage, 0)} of traffic, `,
    'decided by ', el('code', null, experiment.primary_metric), ' · ',
    experiment.sequential ? 'sequential statistics: read the results any day' : 'fixed-horizon statistics',
    experiment.cuped ? ' · CUPED on' : '');
  if (!config.can_manage) return fill($('experiment-actions'));
  const state = `${experiment.status}:${results ? results.can_ship : '?'}`;
  if (state === drawnActions) return undefined;
  drawnActions = state;
  const act = (label, id, path, body, cls = 'button') => el('button', { class: cls, id, type: 'button',
    onclick: () => api('POST', config.api + path, body).then((e) => { experiment = e; load(); }, fail) }, label);
  const buttons = [];
  if (experiment.status === 'draft') buttons.push(act('Start', 'start-experiment', 'start/', undefined, 'button primary'));
  if (experiment.status === 'running') buttons.push(act('Stop', 'stop-experiment', 'stop/'));
  if (['running', 'stopped'].includes(experiment.status)) {
    const blocked = results && !results.can_ship;
    const pick = el('select', { id: 'ship-variant', 'aria-label': 'Variant to ship' },
      experiment.variants.map((v) => el('option', { value: v.key }, v.key)));
    buttons.push(pick, el('button', { class: 'button', id: 'ship-experiment', type: 'button', disabled: blocked,
      title: blocked ? 'A sample-ratio mismatch: the assignment is broken, no result can be trusted' : '',
      onclick: () => api('POST', config.api + 'ship/', { variant: pick.value })
        .then((e) => { experiment = e; load(); }, fail) }, 'Ship variant'));
  }
  fill($('experiment-actions'), ...buttons);
}

function banners() {
  const out = [];
  if (results.srm && results.srm.flagged) {
    out.push(el('div', { class: 'msg error', id: 'srm-banner' }, el('strong', null, 'Sample-ratio mismatch. '),
      `The units per variant (${Object.values(results.units).map(grouped).join(' / ')}) are not what the weights plan ` +
      `(p = ${results.srm.p_value.toExponential(1)}): something in assignment or exposure logging is broken. Do not ship on these results.`));
  }
  results.guardrails_failed.forEach((g) => out.push(el('div', { class: 'msg warn', id: 'guardrail-banner' },
    el('strong', null, 'Guardrail: '), `${g.variant} makes ${g.metric} significantly worse.`)));
  fill($('banners'), ...out);
}

function units() {
  fill($('units'), el('div', 'metric-tiles', Object.entries(results.units).map(([key, n]) =>
    el('div', 'metric-tile', el('div', 'muted small', key), el('div', 'metric-value', grouped(n)),
      el('div', 'muted small', 'exposed units')))),
  results.srm ? el('p', 'muted small', `Sample ratio check: p = ${results.srm.p_value.toFixed(3)} ` +
    `(flagged below 0.001) · ${results.method}`) : null);
}

/* A relative lift's interval as a bar on an axis centred at zero. */
function ciBar(c, span, higherIsBetter) {
  const W = 220, H = 26, mid = W / 2, sx = (v) => mid + (v / span) * (W / 2 - 8);
  const [lo, hi] = c.relative_ci || [0, 0];
  const change = c.relative ?? c.absolute;  // no relative lift when the control's mean is 0
  const good = higherIsBetter ? change > 0 : change < 0;
  const cls = c.significant_adjusted ? (good ? 'win' : 'loss') : 'flat';
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'ci-bar', role: 'img',
    'aria-label': `lift ${signed(c.relative)} (${signed(lo)} to ${signed(hi)})` },
  svg('line', { x1: mid, x2: mid, y1: 2, y2: H - 2, class: 'zero' }),
  svg('rect', { x: Math.min(sx(lo), sx(hi)).toFixed(1), y: 8, width: Math.abs(sx(hi) - sx(lo)).toFixed(1),
    height: 10, rx: 3, class: 'range ' + cls }),
  svg('circle', { cx: sx(c.relative).toFixed(1), cy: 13, r: 4, class: 'point ' + cls }));
}

function metricCard(m) {
  const control = m.variants[0];
  const span = Math.max(0.05, ...m.comparisons.flatMap((c) => (c.relative_ci || [0, 0]).map(Math.abs)));
  const rows = m.comparisons.map((c) => {
    const v = m.variants.find((x) => x.variant === c.variant) || {};
    return el('tr', { dataset: { variant: c.variant } },
      el('td', null, el('strong', null, c.variant)),
      el('td', 'num', num(control.mean)), el('td', 'num', num(v.mean)),
      // with a control at 0 there is no relative lift: the absolute change says it instead
      el('td', 'num', el('strong', null, c.relative === null ?
        `${c.absolute > 0 ? '+' : ''}${num(c.absolute)}` : signed(c.relative))),
      el('td', null, ciBar(c, span, m.higher_is_better)),
      el('td', 'num small', c.relative_ci ? `${signed(c.relative_ci[0])} … ${signed(c.relative_ci[1])}` :
        `${num(c.absolute_ci[0])} … ${num(c.absolute_ci[1])}`),
      el('td', 'num', c.p_value_adjusted.toFixed(4)),
      el('td', null, el('span', 'pill ' + (c.significant_adjusted ? 'ok' : 'off'),
        c.significant_adjusted ? 'significant' : 'not yet')));
  });
  const unit = { conversion: 'rate', count: 'per unit', sum: 'per unit' }[m.kind];
  return el('section', { class: 'card metric-result', dataset: { metric: m.metric } },
    el('h2', null, m.name, ' ', el('span', 'pill off small', m.role),
      m.higher_is_better ? null : el('span', 'muted small', ' lower is better')),
    m.error ? el('p', 'muted', `No result yet: ${m.error}.`) : el('table', 'table compact', el('thead', null, el('tr', null,
      el('th', null, 'Variant'), el('th', 'num', `${control.variant} (${unit})`), el('th', 'num', 'this variant'),
      el('th', 'num', 'Lift'), el('th', null, 'Interval'), el('th', 'num', ''), el('th', 'num', 'p (Holm)'),
      el('th', null, ''))), el('tbody', null, rows)),
    m.cuped ? el('p', 'muted small', `CUPED: the pre-exposure ${m.name.toLowerCase()} removes ` +
      `${pct(m.cuped.variance_reduction)} of the variance (θ = ${m.cuped.theta.toFixed(3)}).`) : null);
}

function history() {
  const points = results.history || [];
  if (points.length < 2) {
    return fill($('history'), el('p', 'muted', 'The lift is charted from the second analysis on (every 6 hours while it runs).'));
  }
  const keys = Object.keys(points[points.length - 1].lifts);
  const values = points.flatMap((p) => keys.flatMap((k) => (p.lifts[k] ? p.lifts[k].relative_ci || [] : [])));
  const span = Math.max(0.05, ...values.map(Math.abs));
  const W = 340, H = 200, L = 44, R = 10, T = 10, B = 28;
  const sx = (i) => L + (i / (points.length - 1)) * (W - L - R);
  const sy = (v) => T + (1 - (v + span) / (2 * span)) * (H - T - B);
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'ml-chart', role: 'img', id: 'lift-history',
    'aria-label': 'Relative lift of the primary metric over time' });
  [-span, 0, span].forEach((v) => box.append(svg('line', { x1: L, x2: W - R, y1: sy(v), y2: sy(v), class: 'grid' }),
    svg('text', { x: L - 6, y: sy(v) + 4, class: 'tick', 'text-anchor': 'end' }, signed(v, 0))));
  keys.forEach((k, n) => {
    const band = points.map((p, i) => [sx(i), p.lifts[k] && p.lifts[k].relative_ci]).filter(([, ci]) => ci);
    if (band.length > 1) {
      const d = band.map(([x, ci], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${sy(ci[1]).toFixed(1)}`).join('') +
        [...band].reverse().map(([x, ci]) => `L${x.toFixed(1)},${sy(ci[0]).toFixed(1)}`).join('') + 'Z';
      box.append(svg('path', { d, class: `band cl${n}` }));
    }
    const d = points.map((p, i) => `${i ? 'L' : 'M'}${sx(i).toFixed(1)},${sy((p.lifts[k] || {}).relative || 0).toFixed(1)}`);
    box.append(svg('path', { d: d.join(''), class: `series cl${n}` }, svg('title', null, k)));
  });
  fill($('history'), box, el('p', 'muted small', `${dateTime(points[0].at)} → ${dateTime(points[points.length - 1].at)}; the band is each analysis's interval.`));
}

/* A number of days in words a planner reads at a glance. */
function span(days) {
  if (days === null || days === undefined) return '—';
  if (days > 730) return `about ${grouped(Math.round(days / 365))} years (not feasible at this traffic)`;
  if (days > 60) return `about ${Math.round(days / 30)} months`;
  return `${days.toFixed(days < 10 ? 1 : 0)} days`;
}

function power() {
  if (!Object.values(results.units).some((n) => n > 1)) {
    return fill($('power'), el('p', 'muted', 'Once units are exposed, this plans how many each variant needs and how long that takes at the current traffic.'));
  }
  const input = el('input', { type: 'number', min: 0.5, max: 100, step: 0.5, value: 5, id: 'power-mde',
    'aria-label': 'Relative change to detect (%)' });
  const out = el('div', { id: 'power-result' });
  const go = (e) => {
    if (e) e.preventDefault();
    getJSON(`${config.api}power/?mde=${Number(input.value) / 100}`).then((p) => fill(out,
      el('p', null, el('strong', null, grouped(p.per_variant)), ' units per variant (', grouped(p.total),
        ' in all) to detect ', signed(p.mde_relative, 1), ` of a ${experiment.primary_metric} at `,
        num(p.baseline), ' with 80 % power.'),
      el('p', 'muted small', p.daily_units ? `At ${grouped(Math.round(p.daily_units))} exposures a day: ` +
        `${span(p.days_total)} in all, ${span(p.days_left)} left.` : 'No exposure yet to measure the traffic.')),
    (err) => fill(out, el('p', 'muted', err instanceof ApiError ? err.message : 'Not available.')));
  };
  fill($('power'), el('form', { class: 'inline-form', onsubmit: go }, el('label', 'small', 'Detect a change of ', input, ' %'),
    el('button', { class: 'button', type: 'submit' }, 'Plan')), out);
  go();
}

async function load() {
  try {
    results = await getJSON(config.api + 'results/');
  } catch (err) { return fail(err); }
  header();
  banners();
  units();
  fill($('metrics'), ...results.metrics.map(metricCard));
  history();
  power();
}

header();
load();
