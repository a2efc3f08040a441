/* Bar charts, drawn like chart.js (SVG at the container's width
   in CSS pixels, the shared round scale, the shared tooltip and frame styles): for each item,
   the series marked `down` hang below the zero line and the others stack above it —
   delivered and failed per minute (both up), added (up) and removed (down) per run. */

import { niceScale } from './chart.js';
import { el, fill, svg } from './dom.js';
import { grouped } from './format.js';

/* items: the bars, in x order.
   options:
     width, height (default 190), margin {left, right, top, bottom}
     series: [{ key, label, cls, down }]  cls styles the bar (.bar.<cls>)
     xLabel(d), tooltip(d) -> nodes, barAttrs(d) -> attributes of an item's group
     id, tipId, ariaLabel, labelSpacing (least room between two x labels, px; default 70) */
export function barChart(items, options) {
  const W = options.width;
  const H = options.height || 190;
  const m = { left: 46, right: 12, top: 10, bottom: 28, ...options.margin };
  const ups = options.series.filter((s) => !s.down);
  const downs = options.series.filter((s) => s.down);
  const sum = (d, list) => list.reduce((a, s) => a + (Number(d[s.key]) || 0), 0);
  const upScale = niceScale(Math.max(0, ...items.map((d) => sum(d, ups))));
  const downMax = Math.max(0, ...items.map((d) => sum(d, downs)));
  const downScale = downs.length && downMax > 0 ? niceScale(downMax) : { top: 0, step: 1 };
  const plotH = H - m.top - m.bottom;
  // the zero line splits the height in proportion to the two scales
  const zero = m.top + plotH * (upScale.top / (upScale.top + downScale.top));
  const unit = plotH / (upScale.top + downScale.top);
  const n = items.length;
  const colW = (W - m.left - m.right) / Math.max(n, 1);
  const barW = Math.max(1, Math.min(28, colW * 0.72));
  const cx = (i) => m.left + colW * (i + 0.5);

  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
    id: options.id, 'aria-label': options.ariaLabel });
  for (let v = upScale.step; v <= upScale.top; v += upScale.step) gridline(chart, zero - v * unit, v);
  for (let v = downScale.step; v <= downScale.top; v += downScale.step) {
    gridline(chart, zero + v * unit, -v);
  }
  chart.append(svg('line', { x1: m.left, x2: W - m.right, y1: zero, y2: zero, class: 'grid base' }),
    svg('text', { x: m.left - 8, y: zero + 4, 'text-anchor': 'end', class: 'axis' }, '0'));

  function gridline(node, y, v) {
    node.append(svg('line', { x1: m.left, x2: W - m.right, y1: y, y2: y, class: 'grid' }),
      svg('text', { x: m.left - 8, y: y + 4, 'text-anchor': 'end', class: 'axis' },
        (v < 0 ? '−' : '') + grouped(Math.abs(v))));
  }

  const tip = el('div', { class: 'chart-tip', id: options.tipId, hidden: true });
  const groups = items.map((d, i) => {
    const g = svg('g', { class: 'bar-group', ...(options.barAttrs ? options.barAttrs(d) : {}) });
    let top = zero;
    ups.forEach((s) => {
      const h = (Number(d[s.key]) || 0) * unit;
      if (h > 0) {
        top -= h;
        g.append(svg('rect', { x: cx(i) - barW / 2, y: top, width: barW, height: h,
          class: `bar ${s.cls}` }));
      }
    });
    let bottom = zero;
    downs.forEach((s) => {
      const h = (Number(d[s.key]) || 0) * unit;
      if (h > 0) {
        g.append(svg('rect', { x: cx(i) - barW / 2, y: bottom, width: barW, height: h,
          class: `bar ${s.cls}` }));
        bottom += h;
      }
    });
    const hit = svg('rect', { x: m.left + colW * i, y: m.top, width: colW, height: plotH,
      class: 'hit' });
    hit.addEventListener('mouseenter', () => show(i, top));
    g.append(hit);
    chart.append(g);
    return g;
  });
  xLabels(chart, items, options, { n, H, m, cx, W });
  chart.addEventListener('mouseleave', () => {
    tip.hidden = true;
    groups.forEach((g) => g.classList.remove('on'));
  });

  function show(i, top) {
    groups.forEach((g, j) => g.classList.toggle('on', j === i));
    fill(tip, options.tooltip(items[i]));
    tip.hidden = false;
    const gap = 10;
    const x = cx(i);
    const left = x + gap + tip.offsetWidth > W ? x - gap - tip.offsetWidth : x + gap;
    tip.style.left = Math.max(0, left) + 'px';
    tip.style.top = Math.min(Math.max(0, top - tip.offsetHeight / 2), H - tip.offsetHeight) + 'px';
  }

  const legend = el('div', 'bar-legend', options.series.map((s) =>
    el('span', 'legend-item', el('span', `legend-swatch ${s.cls}`), s.label)));
  return el('div', 'chart-frame', chart, tip, legend);
}

function xLabels(chart, items, options, { n, H, m, cx, W }) {
  if (!n) return;
  const spacing = options.labelSpacing || 70;
  const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor((W - m.left - m.right) / spacing))));
  for (let i = 0; i < n; i += every) {
    chart.append(svg('text', { x: cx(i), y: H - 9, 'text-anchor': 'middle', class: 'axis' },
      options.xLabel(items[i])));
  }
}
