/* More SVG charts in the style of chart.js and bars.js (drawn at the container's width in CSS
   pixels, the shared round scale, tooltip and frame styles): a stacked area over days, a heat
   grid, and a sparkline. Every chart is an <svg role="img"> with an aria-label; the pages put
   the same numbers in a table beside it. */

import { niceScale, plotArea, yGrid } from './chart.js';
import { el, fill, svg } from './dom.js';
import { grouped, shortDay } from './format.js';

/* Series stacked over days, as areas. days: ["YYYY-MM-DD", …]; series: [{ key, label, values }]
   options: width, height (default 220), ariaLabel, id, href(day) (a click opens it) */
export function stackedArea(days, series, options) {
  const W = options.width;
  const H = options.height || 220;
  const m = { left: 50, right: 14, top: 12, bottom: 28 };
  const n = days.length;
  const totals = days.map((_, i) => series.reduce((a, s) => a + (s.values[i] || 0), 0));
  const scale = niceScale(Math.max(0, ...totals));
  const colW = (W - m.left - m.right) / Math.max(n - 1, 1);
  const x = (i) => (n === 1 ? (m.left + W - m.right) / 2 : m.left + i * colW);
  const y = (v) => m.top + (H - m.top - m.bottom) * (1 - v / scale.top);
  const chart = plotArea(W, H, options);
  yGrid(chart, { scale, m, W, y });
  const below = days.map(() => 0);
  series.forEach((s, k) => {
    const top = below.map((b, i) => b + (s.values[i] || 0));
    const upper = top.map((v, i) => `${x(i)},${y(v)}`);
    const lower = below.map((v, i) => `${x(i)},${y(v)}`).reverse();
    chart.append(svg('polygon', { points: [...upper, ...lower].join(' '), class: `band s${k % 6}` },
      svg('title', {}, s.label)));
    top.forEach((v, i) => { below[i] = v; });
  });
  dayLabels(chart, days, { n, H, m, x, W });
  const guide = svg('line', { y1: m.top, y2: H - m.bottom, class: 'guide', visibility: 'hidden' });
  chart.append(guide);
  const tip = el('div', { class: 'chart-tip', hidden: true });
  days.forEach((day, i) => {
    const band = svg('rect', { x: n === 1 ? m.left : x(i) - colW / 2, y: m.top,
      width: n === 1 ? W - m.left - m.right : colW, height: H - m.top - m.bottom, class: 'hit',
      'data-day': day });
    band.addEventListener('mouseenter', () => {
      guide.setAttribute('x1', x(i));
      guide.setAttribute('x2', x(i));
      guide.setAttribute('visibility', 'visible');
      fill(tip, [el('strong', {}, shortDay(day)), ` · ${grouped(totals[i])}`,
        ...series.slice().reverse().map((s, r) => el('div', 'tip-row',
          el('span', `legend-swatch s${(series.length - 1 - r) % 6}`), ` ${s.label}: `,
          grouped(s.values[i] || 0)))]);
      tip.hidden = false;
      const left = x(i) + 12 + tip.offsetWidth > W ? x(i) - 12 - tip.offsetWidth : x(i) + 12;
      tip.style.left = Math.max(0, left) + 'px';
      tip.style.top = m.top + 'px';
    });
    if (options.href) {
      band.style.cursor = 'pointer';
      band.addEventListener('click', () => { window.location.href = options.href(day); });
    }
    chart.append(band);
  });
  chart.addEventListener('mouseleave', () => {
    tip.hidden = true;
    guide.setAttribute('visibility', 'hidden');
  });
  return el('div', 'chart-frame', chart, tip, legend(series));
}

export function legend(series) {
  return el('div', 'bar-legend', series.map((s, k) =>
    el('span', 'legend-item', el('span', `legend-swatch ${s.cls || `s${k % 6}`}`), s.label)));
}

function dayLabels(chart, days, { n, H, m, x, W }) {
  const every = Math.max(1, Math.ceil((n - 1) / Math.max(1, Math.floor((W - m.left - m.right) / 70))));
  for (let i = 0; i < n; i += every) {
    if (i !== n - 1 && n - 1 - i < every * 0.6) continue;
    chart.append(svg('text', { x: x(i), y: H - 9, 'text-anchor': 'middle', class: 'axis' },
      shortDay(days[i])));
  }
  if ((n - 1) % every) {
    chart.append(svg('text', { x: x(n - 1), y: H - 9, 'text-anchor': 'end', class: 'axis' },
      shortDay(days[n - 1])));
  }
}

/* A heat grid: rows × cols of counts, darker = more. value: { rows, cols, cells, names?,
   row_title, col_title }; options: width, ariaLabel, href(r, c) (a click on a cell opens it) */
export function heatGrid(value, options) {
  const rows = value.rows;
  const cols = value.cols;
  const max = Math.max(1, ...value.cells.flat());
  const total = value.cells.flat().reduce((a, b) => a + b, 0) || 1;
  const table = el('div', { class: 'heat', role: 'group', 'aria-label': options.ariaLabel,
    style: { gridTemplateColumns: `auto repeat(${cols.length}, minmax(0, 1fr))` } });
  table.append(el('div', 'heat-corner'));
  cols.forEach((c) => table.append(el('div', 'heat-col small muted', c)));
  rows.forEach((r, i) => {
    table.append(el('div', 'heat-row small muted', r));
    cols.forEach((c, j) => {
      const n = value.cells[i][j];
      const name = value.names ? value.names[i][j] : '';
      // light cells carry dark text, dark cells white text; the shades in between (where
      // neither reads at 4.5:1) are skipped
      const level = n ? Math.sqrt(n / max) : 0;
      const dark = level >= 0.6;
      const alpha = !n ? 0 : dark ? 0.8 + ((level - 0.6) / 0.4) * 0.2 : 0.08 + level * 0.75;
      const text = `${name ? name + ': ' : ''}${grouped(n)} (${Math.round((100 * n) / total)} %) · ${value.row_title} ${r}, ${value.col_title} ${c}`;
      const cell = el(options.href && n ? 'a' : 'div', {
        class: `heat-cell${dark ? ' dark' : ''}`, title: text, 'aria-label': text,
        href: options.href && n ? options.href(i, j) : null,
        style: { background: n ? `rgba(55, 48, 163, ${alpha.toFixed(3)})` : '#f3f4f7' },
      }, el('span', 'heat-n', grouped(n)), name ? el('span', 'heat-name', name) : null);
      table.append(cell);
    });
  });
  return el('div', 'chart-frame', table, el('p', 'heat-caption small muted',
    `Rows: ${value.row_title.toLowerCase()} (5 = best) · columns: ${value.col_title.toLowerCase()} (5 = best)`));
}

/* A sparkline of `values` (no axes), `width` × `height` px, with an aria-label. */
export function sparkline(series, { width = 120, height = 28, ariaLabel = '' } = {}) {
  // one value (a segment made today) is drawn as a flat line
  const values = series.length === 1 ? [series[0], series[0]] : series;
  const n = values.length;
  const max = Math.max(...values, 1);
  const min = Math.min(...values, 0);
  const x = (i) => (n === 1 ? width / 2 : (i * (width - 2)) / (n - 1) + 1);
  const y = (v) => 2 + (height - 4) * (1 - (v - min) / (max - min || 1));
  const points = values.map((v, i) => `${x(i)},${y(v)}`).join(' ');
  return svg('svg', { class: 'spark', viewBox: `0 0 ${width} ${height}`, width, height,
    role: 'img', 'aria-label': ariaLabel },
  svg('polygon', { points: `${x(0)},${height} ${points} ${x(n - 1)},${height}`, class: 'area' }),
  svg('polyline', { points, class: 'line' }));
}
