/* The identity graph of a profile: its identifiers as nodes (coloured by type), the links
   between them, and the identifiers of other profiles they touch, drawn as SVG from the graph
   API at the container's own size, with a legend and a tooltip per node. */

import { getJSON } from '../cdp/lib/api.js';
import { el, fill, svg } from '../cdp/lib/dom.js';
import { dateTime, truncate } from '../cdp/lib/format.js';

const TYPE_COLORS = {
  user_id: '#4f46e5', email: '#0b84b5', phone: '#2f9e44', anonymous_id: '#7d8598',
  device_id: '#d9822b', group_id: '#a23ba2',
};
const EXTRA_COLORS = ['#c2410c', '#0f766e', '#be185d', '#4d7c0f', '#7c3aed', '#0369a1'];

function colorOf(type) {
  if (TYPE_COLORS[type]) return TYPE_COLORS[type];
  let h = 0;
  for (let i = 0; i < type.length; i++) h = (h * 31 + type.charCodeAt(i)) >>> 0;
  return EXTRA_COLORS[h % EXTRA_COLORS.length];
}

function legendItem(swatch, label) {
  return el('span', 'legend-item', swatch, label);
}

function drawLegend(legend, nodes, edges) {
  const types = [...new Set(nodes.map((n) => n.type))];
  types.forEach((t) => legend.append(legendItem(
    el('span', { class: 'swatch', style: { background: colorOf(t) } }), t)));
  if (nodes.some((n) => n.foreign)) {
    legend.append(legendItem(el('span', 'swatch foreign'), 'other profile'));
  }
  if (edges.some((e) => e.cross)) {
    legend.append(legendItem(el('span', 'swatch cross'), 'link to another profile'));
  }
}

export function identityGraph(root) {
  const legend = document.getElementById('graph-legend');
  const status = root.querySelector('.graph-status');
  const tip = el('div', { class: 'graph-tip', hidden: true });
  function fail(message) { status.textContent = message; status.hidden = false; }
  function showTip(n, g) {
    fill(tip, el('strong', null, n.type), ' ' + n.value,
      n.first_seen ? el('div', 'muted', 'first seen ' + dateTime(n.first_seen)) : null,
      n.foreign ? el('div', 'muted', 'in profile #' + n.profile_id + ' · click to open') : null);
    tip.hidden = false;
    const box = root.getBoundingClientRect(), r = g.getBoundingClientRect();
    tip.style.left = Math.max(0, Math.min(r.left - box.left + r.width / 2 - tip.offsetWidth / 2,
      box.width - tip.offsetWidth)) + 'px';
    tip.style.top = (r.top - box.top - tip.offsetHeight - 6) + 'px';
  }

  function draw(data) {
    const nodes = data.nodes || [], edges = data.edges || [];
    if (!nodes.length) { fail('No identifiers to draw.'); return; }
    status.hidden = true;
    // drawn at the container's own size, so labels keep their font size at any width
    const W = Math.max(320, Math.round(root.clientWidth || 640));
    const H = Math.round(Math.min(440, Math.max(260, W * (nodes.length > 14 ? 0.75 : 0.6))));
    const padX = 80, padY = 30;
    const byId = {};
    nodes.forEach((n) => {
      n.px = padX + Math.min(Math.max(+n.x || 0, 0), 1) * (W - 2 * padX);
      n.py = padY + Math.min(Math.max(+n.y || 0, 0), 1) * (H - 2 * padY);
      byId[n.id] = n;
    });
    const edgeLayer = svg('g', { class: 'edges' });
    edges.forEach((e) => {
      const a = byId[e.source], b = byId[e.target];
      if (!a || !b) return;
      edgeLayer.append(svg('line', { x1: a.px, y1: a.py, x2: b.px, y2: b.py,
        class: 'edge' + (e.cross ? ' cross' : '') }));
    });
    // Labels for every node only while they fit; in a crowded graph only the types with few
    // values (a user id, an email), and the other profiles' nodes. Hover shows the rest.
    const perType = {};
    nodes.forEach((n) => { if (!n.foreign) perType[n.type] = (perType[n.type] || 0) + 1; });
    const crowded = nodes.length > 12, radius = crowded ? 7 : 9;
    const labelled = (n) => !crowded || n.foreign || perType[n.type] <= 3;
    const nodeLayer = svg('g', { class: 'nodes' }, nodes.map((n) => {
      const color = colorOf(n.type);
      const g = svg('g', { class: 'node' + (n.foreign ? ' foreign' : ''), 'data-type': n.type,
        tabindex: '0', transform: `translate(${n.px.toFixed(1)},${n.py.toFixed(1)})` },
      svg('title', {}, n.type + ':' + n.value + (n.foreign ? ' (profile #' + n.profile_id + ')' : '')),
      svg('circle', { r: 15, class: 'hit' }),  // an easier target than 9px
      svg('circle', { r: n.foreign ? radius - 1 : radius, fill: n.foreign ? '#fff' : color,
        stroke: color, 'stroke-width': n.foreign ? 2 : 1.5,
        'stroke-dasharray': n.foreign ? '3 2' : 'none' }),
      labelled(n) ? svg('text', { y: radius + 13, 'text-anchor': 'middle', class: 'node-label' },
        truncate(n.value, 22)) : null);
      ['mouseenter', 'focus'].forEach((on) => g.addEventListener(on, () => showTip(n, g)));
      ['mouseleave', 'blur'].forEach((on) => g.addEventListener(on, () => { tip.hidden = true; }));
      return n.foreign && n.profile_id ?
        svg('a', { href: '/profiles/' + n.profile_id + '/', class: 'node-link' }, g) : g;
    }));
    root.append(svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'graph-svg',
      id: 'graph-svg',
      'aria-label': `Identity graph: ${nodes.length} identifiers, ${edges.length} links` },
    edgeLayer, nodeLayer), tip);
    if (data.truncated) {
      root.append(el('p', 'muted small',
        'The graph is large: only part of it is drawn. The identities table lists them all.'));
    }
    drawLegend(legend, nodes, edges);
  }

  getJSON(root.dataset.url).then(draw, (err) => {
    fail(err.status === 404 ? 'The identity graph is not available.'
      : 'Could not load the identity graph: ' + err.message);
  });
}
