/* The parts of a model's page that depend on its kind: clusters (elbow and silhouette by k,
   the PCA map, each cluster in words with its size, rename, "create segment") and
   recommendations (the candidates graded side by side, the most popular items, the
   catalogue with availability, and a "try it" box that asks the API for a profile). */

import { ApiError, api, getJSON } from '../cdp/lib/api.js';
import { el, fill, svg } from '../cdp/lib/dom.js';
import { grouped } from '../cdp/lib/format.js';

const fixed = (v, n = 3) => (typeof v === 'number' && !Number.isNaN(v) ? v.toFixed(n) : '—');
const pct = (v) => (v * 100).toFixed(1) + ' %';
const W = 340, H = 240, M = { l: 48, r: 14, t: 12, b: 36 };
export const COLOURS = 10;

function message(err) {
  return err instanceof ApiError ? err.message : 'Could not reach the server; try again.';
}

/* An x/y line chart with its own scales: xs and ys numbers, `mark` the x to highlight. */
function xyChart({ id, title, xs, ys, xLabel, yLabel, mark, format }) {
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'ml-chart', role: 'img', 'aria-label': title, id });
  const x0 = M.l, x1 = W - M.r, y0 = H - M.b, y1 = M.t;
  const lo = Math.min(0, ...ys), hi = Math.max(...ys, 1e-9);
  const xmin = Math.min(...xs), xmax = Math.max(...xs);
  const sx = (v) => x0 + ((v - xmin) / Math.max(1e-9, xmax - xmin)) * (x1 - x0);
  const sy = (v) => y0 - ((v - lo) / Math.max(1e-9, hi - lo)) * (y0 - y1);
  for (let i = 0; i <= 4; i++) {
    const v = lo + (i / 4) * (hi - lo), y = sy(v);
    box.append(svg('line', { x1: x0, x2: x1, y1: y, y2: y, class: 'grid' }),
      svg('text', { x: x0 - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' }, format(v)));
  }
  xs.forEach((x) => box.append(svg('text', { x: sx(x), y: y0 + 14, class: 'tick', 'text-anchor': 'middle' }, String(x))));
  box.append(svg('text', { x: (x0 + x1) / 2, y: H - 4, class: 'axis', 'text-anchor': 'middle' }, xLabel),
    svg('text', { x: 12, y: (y0 + y1) / 2, class: 'axis', 'text-anchor': 'middle',
      transform: `rotate(-90 12 ${(y0 + y1) / 2})` }, yLabel));
  const d = xs.map((x, i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(ys[i]).toFixed(1)}`).join('');
  box.append(svg('path', { d, class: 'series model' }));
  xs.forEach((x, i) => box.append(svg('circle', { cx: sx(x), cy: sy(ys[i]), r: x === mark ? 5 : 3,
    class: x === mark ? 'point chosen' : 'point' }, svg('title', null, `k = ${x}: ${format(ys[i])}`))));
  return box;
}

function scatterChart(scatter, names) {
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'ml-chart scatter', role: 'img',
    'aria-label': 'Profiles on the two main axes, coloured by cluster', id: 'scatter-chart' });
  const x0 = 8, x1 = W - 8, y0 = H - 8, y1 = 8;
  const qx = [...scatter.x].sort((a, b) => a - b), qy = [...scatter.y].sort((a, b) => a - b);
  // 1st–99th percentile: a few far-out profiles must not squash everyone into a corner
  const q = (arr, p) => arr[Math.min(arr.length - 1, Math.floor(p * (arr.length - 1)))];
  const [xa, xb, ya, yb] = [q(qx, 0.01), q(qx, 0.99), q(qy, 0.01), q(qy, 0.99)];
  const clamp = (v, a, b) => Math.max(a, Math.min(b, v));
  const sx = (v) => x0 + ((clamp(v, xa, xb) - xa) / Math.max(1e-9, xb - xa)) * (x1 - x0);
  const sy = (v) => y0 - ((clamp(v, ya, yb) - ya) / Math.max(1e-9, yb - ya)) * (y0 - y1);
  box.append(svg('rect', { x: 0, y: 0, width: W, height: H, class: 'plot-bg' }));
  scatter.x.forEach((x, i) => {
    const c = scatter.cluster[i];
    box.append(svg('circle', { cx: sx(x).toFixed(1), cy: sy(scatter.y[i]).toFixed(1), r: 2.2,
      class: `dot cl${c % COLOURS}` }, svg('title', null, names[c] || `cluster ${c}`)));
  });
  return box;
}

function card(title, note, chart, legend) {
  return el('section', 'card chart-card', el('h3', null, title), el('p', 'muted small', note), chart,
    legend ? el('div', 'chart-legend small', legend) : null);
}

function tile(name, value, sub, hint) {
  return el('div', 'metric-tile', el('div', 'muted small', name), el('div', 'metric-value', value),
    sub ? el('div', 'small muted', sub) : null, el('div', 'muted small', hint));
}

// ---- clusters -------------------------------------------------------------------------------

const SHOWN_MEDIANS = [['recency_days', 'days since last seen'], ['orders', 'orders'],
  ['revenue_sum', 'spent'], ['tenure_days', 'days a customer']];

export function clusterChampion(ctx, best) {
  const { model, config, refresh, fail } = ctx;
  const m = best.metrics, charts = best.charts || {};
  const named = Object.fromEntries((model.clusters || []).map((c) => [c.label, c.name]));
  const byIndex = {};
  (charts.clusters || []).forEach((c) => { byIndex[c.index] = named[c.label] || c.description; });
  const header = [
    el('p', 'lead', m.summary || ''),
    el('p', 'muted small', `v${best.number} · ${m.algorithm} on ${grouped(best.rows.train)} profiles, graded on ` +
      `${grouped(best.rows.eval)} it never saw · ${best.reason}`),
    el('div', 'metric-tiles',
      tile('Clusters', String(m.k), m.chosen_by === 'fixed' ? 'fixed in the settings' : 'chosen by silhouette',
        'kinds of customers'),
      tile('Silhouette', fixed(m.silhouette), 'random labels ' + fixed(best.baseline_metrics.silhouette),
        'separation: −1 … 1, higher is clearer'),
      m.labels_kept !== null && m.labels_kept !== undefined ?
        tile('Labels kept', pct(m.labels_kept), 'from the previous champion', 'same people, same label') : null),
  ];
  const total = (charts.clusters || []).reduce((s, c) => s + c.size, 0) || 1;
  const pop = charts.population_medians || {};
  const rows = (charts.clusters || []).map((c) => {
    const name = named[c.label] || c.description;
    const input = el('input', { class: 'cluster-name', value: name, 'aria-label': `Name of ${c.label}`,
      maxlength: 80, size: Math.max(14, name.length + 2), disabled: !config.can_manage });
    const save = () => {
      if (input.value.trim() === name) return;
      api('PATCH', config.api, { cluster_names: { [c.label]: input.value.trim() || null } })
        .then(refresh, fail);
    };
    input.addEventListener('change', save);
    const segment = config.can_manage ? el('button', { class: 'button small make-segment', type: 'button',
      onclick: (e) => createSegment(e.target, model, c.label, name) }, 'Create segment') : null;
    return el('tr', { dataset: { label: c.label } },
      el('td', null, el('span', `swatch cl${c.index % COLOURS}`), ' ', input,
        el('div', 'muted small', c.description, ' · ', el('code', null, c.label))),
      el('td', 'num', el('div', 'share-bar', el('span', { style: { width: `${(100 * c.size / total).toFixed(1)}%` } })),
        grouped(c.size), el('span', 'muted small', ` (${pct(c.share)})`)),
      ...SHOWN_MEDIANS.map(([f]) => el('td', 'num', c.medians[f] === undefined || c.medians[f] === null ? '—' :
        grouped(Math.round(c.medians[f])))),
      el('td', null, segment));
  });
  const table = el('table', 'table compact', el('thead', null, el('tr', null, el('th', null, 'Cluster'),
    el('th', 'num', 'Profiles'), ...SHOWN_MEDIANS.map(([f, label]) => el('th', 'num', el('span', null, label),
      el('div', 'muted small', 'all: ' + (pop[f] === undefined ? '—' : grouped(Math.round(pop[f])))))),
    el('th', null, ''))), el('tbody', null, rows));
  const cards = [];
  const elbow = charts.elbow || [];
  if (elbow.length) {
    const ks = elbow.map((p) => p.k);
    cards.push(card('Silhouette by k', 'How clearly the profiles separate with k clusters; the largest is chosen unless k is fixed.',
      xyChart({ id: 'silhouette-chart', title: 'Silhouette by number of clusters', xs: ks,
        ys: elbow.map((p) => p.silhouette), xLabel: 'clusters (k)', yLabel: 'silhouette', mark: m.k,
        format: (v) => v.toFixed(2) })));
    cards.push(card('Elbow', 'Spread left inside the clusters: where the curve bends, more clusters stop helping.',
      xyChart({ id: 'elbow-chart', title: 'Inertia by number of clusters', xs: ks,
        ys: elbow.map((p) => p.inertia), xLabel: 'clusters (k)', yLabel: 'inertia', mark: m.k,
        format: (v) => (v >= 1000 ? (v / 1000).toFixed(0) + 'k' : v.toFixed(0)) })));
  }
  if (charts.scatter && charts.scatter.x) {
    const legend = (charts.clusters || []).map((c) => el('span', 'key', el('span', `swatch dot-key cl${c.index % COLOURS}`),
      named[c.label] || c.description));
    cards.push(card('Map of the profiles', `A sample on the two directions the features vary most ` +
      `(${pct((charts.scatter.explained || []).reduce((a, b) => a + b, 0))} of the variation).`,
    scatterChart(charts.scatter, byIndex), legend));
  }
  return { header, extra: el('section', 'card', el('h3', null, 'The clusters'),
    el('p', 'muted small', 'Medians per cluster; the words compare each cluster\'s centre with everyone\'s. Rename a cluster: its label, which segments use, stays.'),
    table), cards };
}

async function createSegment(button, model, label, name) {
  button.disabled = true;
  try {
    const segment = await api('POST', '/api/v1/segments/', {
      name: `${model.name}: ${name}`, rule: { model: model.key, cluster: label }, publish: true,
      description: `Profiles the model “${model.name}” puts in the cluster ${label}.`,
    });
    window.location.href = `/segments/${segment.id}/`;
  } catch (err) {
    button.disabled = false;
    button.after(el('span', 'msg error small', ' ' + message(err)));
  }
}

// ---- recommendations ------------------------------------------------------------------------

const REC_METRICS = [['ndcg_at_10', 'NDCG@10'], ['precision_at_10', 'P@10'], ['recall_at_20', 'Recall@20'],
  ['coverage', 'Coverage']];

function algorithmBars(algorithms, chosen) {
  const names = Object.keys(algorithms);
  const rowH = 18, groupH = names.length * rowH + 14, left = 92, width = 340;
  const height = REC_METRICS.length * groupH + 6;
  const box = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'ml-chart bars', role: 'img',
    'aria-label': 'The candidates graded on the held-out interactions', id: 'algorithms-chart' });
  REC_METRICS.forEach(([key, label], g) => {
    const top = g * groupH + 4;
    box.append(svg('text', { x: 0, y: top + 10, class: 'axis' }, label));
    const max = Math.max(...names.map((n) => algorithms[n][key]), 1e-9);
    names.forEach((n, i) => {
      const y = top + 14 + i * rowH - 12, v = algorithms[n][key], w = (v / max) * (width - left - 50);
      box.append(svg('text', { x: left - 6, y: y + 12, class: 'tick', 'text-anchor': 'end' }, n),
        svg('rect', { x: left, y: y + 2, width: w.toFixed(1), height: rowH - 6,
          class: n === chosen ? 'bar' : 'bar other' }, svg('title', null, `${n}: ${v.toFixed(3)}`)),
        svg('text', { x: left + w + 4, y: y + 12, class: 'tick' }, v.toFixed(3)));
    });
  });
  return box;
}

export function recommendationChampion(ctx, best) {
  const m = best.metrics, b = best.baseline_metrics, charts = best.charts || {};
  const header = [
    el('p', 'lead', m.summary || ''),
    el('p', 'muted small', `v${best.number} · ${m.algorithm} · ${grouped(best.rows.train)} people × ` +
      `${grouped(best.rows.items)} items, ${grouped(best.rows.interactions)} interactions; 20 % held out · ${best.reason}`),
    el('div', 'metric-tiles',
      tile('NDCG@10', fixed(m.ndcg_at_10), 'popularity ' + fixed(b.ndcg_at_10), 'held-out items ranked high: 0 … 1'),
      tile('Precision@10', fixed(m.precision_at_10), 'popularity ' + fixed(b.precision_at_10), 'share of the top 10 that were right'),
      tile('Recall@20', fixed(m.recall_at_20), 'popularity ' + fixed(b.recall_at_20), 'share of held-out items in the top 20'),
      tile('Coverage', pct(m.coverage), 'popularity ' + pct(b.coverage), 'catalogue items anyone is shown')),
  ];
  const cards = [];
  if (charts.algorithms) {
    cards.push(card('The candidates', 'Each fitted on the same 80 % and graded on the same held-out 20 %; the best NDCG@10 is used.',
      algorithmBars(charts.algorithms, m.algorithm)));
  }
  if (charts.popular && charts.popular.length) {
    cards.push(el('section', 'card chart-card', el('h3', null, 'Most popular'),
      el('p', 'muted small', 'What people without personalisation consent (or history) are shown.'),
      el('ol', 'rec-list small', charts.popular.slice(0, 10).map((p) => el('li', { dataset: { item: p.item } },
        el('span', 'item-name', p.name || p.item), el('span', 'muted', ` · ${grouped(p.people)} people`))))));
  }
  return { header, extra: el('div', null, tryIt(ctx), catalogue(ctx)), cards };
}

function itemRow(item, ctx) {
  const toggle = el('input', { type: 'checkbox', checked: item.available, disabled: !ctx.config.can_manage,
    'aria-label': `${item.item_id} available` });
  toggle.addEventListener('change', () => api('PATCH', `/api/v1/items/${encodeURIComponent(item.item_id)}/`,
    { available: toggle.checked }).catch((err) => { toggle.checked = !toggle.checked; ctx.fail(err); }));
  return el('tr', { dataset: { item: item.item_id } }, el('td', null, item.name || item.item_id,
    el('div', 'muted small', item.item_id)), el('td', null, item.category || '—'),
  el('td', 'num', item.price === null ? '—' : item.price.toFixed(2)),
  el('td', 'num', grouped(item.interactions)), el('td', null, el('label', 'small', toggle, ' available')));
}

function catalogue(ctx) {
  const body = el('tbody');
  const search = el('input', { type: 'search', placeholder: 'Search items', 'aria-label': 'Search items', id: 'item-search' });
  const count = el('span', 'muted small');
  const load = () => getJSON(`/api/v1/items/?page_size=15&q=${encodeURIComponent(search.value)}`).then((page) => {
    count.textContent = ` ${grouped(page.count)} items`;
    fill(body, page.results.length ? page.results.map((i) => itemRow(i, ctx)) :
      el('tr', null, el('td', { colspan: 5, class: 'muted' }, 'No item matches.')));
  }, ctx.fail);
  let timer = null;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(load, 250); });
  load();
  return el('section', { class: 'card', id: 'catalogue' }, el('h3', null, 'Catalogue', count),
    el('p', 'muted small', 'Built from the product events; an item marked unavailable is never recommended. Edits survive rebuilds.'),
    search, el('table', 'table compact', el('thead', null, el('tr', null, el('th', null, 'Item'),
      el('th', null, 'Category'), el('th', 'num', 'Price'), el('th', 'num', 'Interactions'), el('th', null, ''))), body));
}

function tryIt(ctx) {
  const input = el('input', { type: 'text', inputmode: 'numeric', placeholder: 'profile id', id: 'try-profile',
    'aria-label': 'Profile id', value: ctx.config.sample_profile ? String(ctx.config.sample_profile) : '' });
  const out = el('div', { id: 'try-result' });
  const go = async (e) => {
    e.preventDefault();
    try {
      const r = await getJSON(`/api/v1/profiles/${encodeURIComponent(input.value.trim())}/recommendations/?model=${ctx.model.key}`);
      fill(out, el('p', 'small', el('span', 'pill ' + (r.source === 'personalised' ? 'ok' : 'off'), r.source),
        ` ${r.reason} · v${r.version} · ${r.milliseconds.toFixed(1)} ms`),
      el('ol', 'rec-list small', r.items.map((i) => el('li', null, i.name || i.item_id,
        el('span', 'muted', i.category ? ` · ${i.category}` : '')))));
    } catch (err) { fill(out, el('p', 'msg error', message(err))); }
  };
  return el('section', { class: 'card', id: 'try-it' }, el('h3', null, 'Try it'),
    el('p', 'muted small', 'What the API answers for a profile now, folded in from its newest events.'),
    el('form', { class: 'inline-form', onsubmit: go }, input,
      el('button', { class: 'button', type: 'submit' }, 'Recommend')), out);
}
