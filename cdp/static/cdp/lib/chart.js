/* SVG charts drawn at the container's width in CSS pixels (1 unit = 1 px): crisp text,
   nothing stretched. Styled by app.css (.chart-frame .grid, .line, .area, .point, …). */

import { el, fill, svg } from './dom.js';
import { grouped } from './format.js';

/* A round top for a y axis from 0 to `max`, and the step between its gridlines
   (1, 2 or 5 × 10^k, about four of them). */
export function niceScale(max) {
  if (max <= 0) return { top: 1, step: 1 };
  const raw = max / 4;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = Math.max(1, [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw));
  return { top: Math.ceil(max / step) * step, step };
}

/* The <svg> of a chart, W × H px, read by screen readers as an image named by its label. */
export function plotArea(W, H, options) {
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
    id: options.id, 'aria-label': options.ariaLabel });
}

/* Horizontal gridlines at each step of `scale`, labelled on the left (`y` maps a value to
   its height). */
export function yGrid(chart, { scale, m, W, y, label = grouped }) {
  for (let v = 0; v <= scale.top; v += scale.step) {
    chart.append(
      svg('line', { x1: m.left, x2: W - m.right, y1: y(v), y2: y(v), class: v ? 'grid' : 'grid base' }),
      svg('text', { x: m.left - 8, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, label(v)));
  }
}

/* A line over a filled area, one point per item of `points` (in x order, evenly spaced), with
   gridlines and y labels, x labels spaced out, and a tooltip for the item nearest the pointer.
   Returns the chart's frame element (an svg and its tooltip) to insert into the page.

   options:
     width, height, margin {left, right, top, bottom}
     value(d)       the y value of an item (≥ 0)
     xLabel(d)      the text of an item's x label
     yLabel(v)      the text of a y label (default: grouped thousands)
     tooltip(d)     the nodes shown in the tooltip
     pointTitle(d)  the <title> of an item's point (read by screen readers and on hover)
     pointAttrs(d), bandAttrs(d)  extra attributes of an item's point and hover band
     id, tipId, ariaLabel
     labelSpacing   the least room between two x labels, in px (default 90) */
export function lineChart(points, options) {
  const W = options.width;
  const H = options.height || 210;
  const m = { left: 46, right: 14, top: 12, bottom: 30, ...options.margin };
  const yLabel = options.yLabel || grouped;
  const n = points.length;
  const values = points.map(options.value);
  const scale = niceScale(Math.max(...values));
  const colW = (W - m.left - m.right) / Math.max(n - 1, 1);
  const x = (i) => (n === 1 ? (m.left + W - m.right) / 2 : m.left + i * colW);
  const y = (v) => m.top + (H - m.top - m.bottom) * (1 - v / scale.top);
  const chart = plotArea(W, H, options);
  yGrid(chart, { scale, m, W, y, label: yLabel });
  xLabels(chart, points, options, { n, H, m, x, W });
  const line = values.map((v, i) => `${x(i)},${y(v)}`).join(' ');
  chart.append(
    svg('polygon', { points: `${x(0)},${y(0)} ${line} ${x(n - 1)},${y(0)}`, class: 'area' }),
    svg('polyline', { points: line, class: 'line' }));
  const guide = svg('line', { y1: m.top, y2: H - m.bottom, class: 'guide', visibility: 'hidden' });
  chart.append(guide);
  const dots = points.map((d, i) => {
    const dot = svg('circle', { cx: x(i), cy: y(values[i]), r: n > 40 ? 2.5 : 3.5, class: 'point',
      ...(options.pointAttrs ? options.pointAttrs(d) : {}) },
    options.pointTitle ? svg('title', {}, options.pointTitle(d)) : null);
    chart.append(dot);
    return dot;
  });
  const tip = el('div', { class: 'chart-tip', id: options.tipId, hidden: true });
  function show(i) {
    dots.forEach((dot, j) => dot.classList.toggle('on', j === i));
    guide.setAttribute('x1', x(i));
    guide.setAttribute('x2', x(i));
    guide.setAttribute('visibility', 'visible');
    fill(tip, options.tooltip(points[i]));
    tip.hidden = false;
    // beside the point (right of it, or left near the right edge), never over it
    const px = x(i), py = y(values[i]), gap = 12;
    const left = px + gap + tip.offsetWidth > W ? px - gap - tip.offsetWidth : px + gap;
    const top = Math.min(Math.max(0, py - tip.offsetHeight / 2), H - tip.offsetHeight);
    tip.style.left = Math.max(0, left) + 'px';
    tip.style.top = top + 'px';
  }
  function hide() {
    tip.hidden = true;
    guide.setAttribute('visibility', 'hidden');
    dots.forEach((dot) => dot.classList.remove('on'));
  }
  // one invisible column per item, so the nearest one shows wherever the pointer is
  points.forEach((d, i) => {
    const band = svg('rect', { x: n === 1 ? m.left : x(i) - colW / 2, y: m.top,
      width: n === 1 ? W - m.left - m.right : colW, height: H - m.top - m.bottom, class: 'hit',
      ...(options.bandAttrs ? options.bandAttrs(d) : {}) });
    band.addEventListener('mouseenter', () => show(i));
    chart.append(band);
  });
  chart.addEventListener('mouseleave', hide);
  return el('div', 'chart-frame', chart, tip);
}

// an x label every `labelSpacing` px at most, the last item always labelled
function xLabels(chart, points, options, { n, H, m, x, W }) {
  const spacing = options.labelSpacing || 90;
  const every = Math.max(1, Math.ceil((n - 1) / Math.max(1, Math.floor((W - m.left - m.right) / spacing))));
  for (let i = 0; i < n; i += every) {
    if (i !== n - 1 && n - 1 - i < every * 0.6) continue;
    chart.append(
      svg('line', { x1: x(i), x2: x(i), y1: H - m.bottom, y2: H - m.bottom + 4, class: 'tick' }),
      svg('text', { x: x(i), y: H - 10, 'text-anchor': 'middle', class: 'axis' },
        options.xLabel(points[i])));
  }
  if ((n - 1) % every) {
    chart.append(svg('text', { x: x(n - 1), y: H - 10, 'text-anchor': 'end', class: 'axis' },
      options.xLabel(points[n - 1])));
  }
}

/* Paired bars around a zero line, one pair per item of `points` (in x order): `up(d)` above
   the line, `down(d)` below it (a day's entries and exits, gains and losses). Items sit at
   the x positions lineChart gives the same items for the same width and margins, so a
   barsChart drawn under a lineChart lines up with it column by column. A tooltip shows the
   item nearest the pointer. Returns the chart's frame element (an svg and its tooltip).

   options:
     width, height (default 110), margin {left, right, top, bottom}
     up(d), down(d)         the two values of an item (≥ 0; down is drawn below the line)
     tooltip(d)             the nodes shown in the tooltip
     upTitle(d), downTitle(d)  the <title> of each bar (read by screen readers and on hover)
     barAttrs(d)            extra attributes of an item's group of bars (e.g. data-*)
     xLabel(d)              x labels as lineChart draws them (default: none)
     yLabel(v)              the text of the scale's labels (default: +n above, −n below)
     upColor, downColor     the bars' fill (default green and red; CSS .bar.up/.bar.down win)
     id, tipId, ariaLabel, labelSpacing */
export function barsChart(points, options) {
  const W = options.width;
  const H = options.height || 110;
  const m = { left: 46, right: 14, top: 8, bottom: options.xLabel ? 30 : 8, ...options.margin };
  const n = points.length;
  const ups = points.map(options.up);
  const downs = points.map(options.down);
  const scale = niceScale(Math.max(...ups, ...downs));
  const colW = (W - m.left - m.right) / Math.max(n - 1, 1);
  const x = (i) => (n === 1 ? (m.left + W - m.right) / 2 : m.left + i * colW);
  const half = (H - m.top - m.bottom) / 2;
  const mid = m.top + half;
  const length = (v) => (v > 0 ? Math.max(1.5, (half * v) / scale.top) : 0);
  const barW = Math.max(1, Math.min(16, n === 1 ? 16 : colW * 0.6));
  const yLabel = options.yLabel || ((v, sign) => (v ? sign + grouped(v) : '0'));
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
    id: options.id, 'aria-label': options.ariaLabel, class: 'bars-chart' });
  chart.append(
    svg('line', { x1: m.left, x2: W - m.right, y1: mid - half, y2: mid - half, class: 'grid' }),
    svg('line', { x1: m.left, x2: W - m.right, y1: mid + half, y2: mid + half, class: 'grid' }),
    svg('text', { x: m.left - 8, y: mid - half + 4, 'text-anchor': 'end', class: 'axis' },
      yLabel(scale.top, '+')),
    svg('text', { x: m.left - 8, y: mid + half + 4, 'text-anchor': 'end', class: 'axis' },
      yLabel(scale.top, '−')));
  if (options.xLabel) xLabels(chart, points, options, { n, H, m, x, W });
  const guide = svg('line', { y1: m.top, y2: H - m.bottom, class: 'guide', visibility: 'hidden' });
  chart.append(guide);
  const groups = points.map((d, i) => {
    const up = length(ups[i]), down = length(downs[i]);
    const group = svg('g', { class: 'bar-pair', ...(options.barAttrs ? options.barAttrs(d) : {}) },
      up ? svg('rect', { x: x(i) - barW / 2, y: mid - up, width: barW, height: up, class: 'bar up',
        fill: options.upColor || '#16794c' },
      options.upTitle ? svg('title', {}, options.upTitle(d)) : null) : null,
      down ? svg('rect', { x: x(i) - barW / 2, y: mid, width: barW, height: down,
        class: 'bar down', fill: options.downColor || '#b42318' },
      options.downTitle ? svg('title', {}, options.downTitle(d)) : null) : null);
    chart.append(group);
    return group;
  });
  chart.append(svg('line', { x1: m.left, x2: W - m.right, y1: mid, y2: mid, class: 'grid base' }));
  const tip = el('div', { class: 'chart-tip', id: options.tipId, hidden: true });
  function show(i) {
    groups.forEach((g, j) => g.classList.toggle('on', j === i));
    guide.setAttribute('x1', x(i));
    guide.setAttribute('x2', x(i));
    guide.setAttribute('visibility', 'visible');
    if (!options.tooltip) return;
    fill(tip, options.tooltip(points[i]));
    tip.hidden = false;
    const px = x(i), gap = 12;
    const left = px + gap + tip.offsetWidth > W ? px - gap - tip.offsetWidth : px + gap;
    tip.style.left = Math.max(0, left) + 'px';
    tip.style.top = Math.max(0, Math.min(mid - tip.offsetHeight / 2, H - tip.offsetHeight)) + 'px';
  }
  function hide() {
    tip.hidden = true;
    guide.setAttribute('visibility', 'hidden');
    groups.forEach((g) => g.classList.remove('on'));
  }
  points.forEach((d, i) => {
    const band = svg('rect', { x: n === 1 ? m.left : x(i) - colW / 2, y: m.top,
      width: n === 1 ? W - m.left - m.right : colW, height: H - m.top - m.bottom, class: 'hit' });
    band.addEventListener('mouseenter', () => show(i));
    chart.append(band);
  });
  chart.addEventListener('mouseleave', hide);
  return el('div', 'chart-frame', chart, tip);
}
