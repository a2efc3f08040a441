/* A published segment's size over time: members at the end of each UTC day with the day's
   entries and exits (the sizes API), for 7, 30 or 90 days, redrawn at the card's width. */

import { api } from '../cdp/lib/api.js';
import { lineChart } from '../cdp/lib/chart.js';
import { el, fill } from '../cdp/lib/dom.js';
import { grouped, longDay, shortDay } from '../cdp/lib/format.js';

function tooltip(d) {
  return [
    el('div', 'tip-date', longDay(d.date)),
    el('div', 'tip-size', grouped(d.size) + (d.size === 1 ? ' member' : ' members')),
    el('div', 'tip-moves',
      el('span', 'tip-in', '+' + grouped(d.entered) + ' entered'),
      el('span', 'tip-out', '−' + grouped(d.exited) + ' left')),
  ];
}

function summary(days) {
  const first = days[0], last = days[days.length - 1];
  const entered = days.reduce((a, d) => a + d.entered, 0);
  const left = days.reduce((a, d) => a + d.exited, 0);
  const net = entered - left;
  return el('p', { class: 'size-summary small', id: 'size-summary' },
    el('strong', null, 'Now ' + grouped(last.size) + ' members'),
    ' · ' + grouped(entered) + ' entered and ' + grouped(left) + ' left since ' +
      shortDay(first.date) + ' ',
    el('span', 'trend-net ' + (net > 0 ? 'up' : net < 0 ? 'down' : ''),
      net > 0 ? '(↑ +' + grouped(net) + ')' : net < 0 ? '(↓ −' + grouped(-net) + ')' : '(±0)'),
    el('span', 'muted', ' · days in UTC; hover the chart for each day'));
}

function draw(target, days) {
  const width = Math.max(target.clientWidth, 320);
  target.textContent = '';
  if (!days.length) return;
  const chart = lineChart(days, {
    width,
    id: 'size-svg',
    tipId: 'size-tip',
    ariaLabel: 'Members at the end of each day, ' + shortDay(days[0].date) + ' to ' +
      shortDay(days[days.length - 1].date),
    value: (d) => d.size,
    xLabel: (d) => shortDay(d.date),
    tooltip,
    pointTitle: (d) => longDay(d.date) + ': ' + grouped(d.size) + ' members (+' +
      grouped(d.entered) + ' entered, −' + grouped(d.exited) + ' left)',
    pointAttrs: (d) => ({ 'data-date': d.date, 'data-size': d.size }),
    bandAttrs: (d) => ({ 'data-date': d.date }),
  });
  target.append(chart, summary(days));
}

export function sizeChart(config, segment) {
  const target = document.getElementById('size-chart');
  if (!target || segment.status !== 'published') return;
  const toggles = document.querySelectorAll('#size-card .seg-toggle [data-days]');
  let sequence = 0, shown = null, resizeTimer = null;

  function load(days) {
    const mine = ++sequence;
    toggles.forEach((b) => {
      const on = b.getAttribute('data-days') === String(days);
      b.classList.toggle('active', on);
      b.setAttribute('aria-pressed', on ? 'true' : 'false');
    });
    target.setAttribute('data-period', String(days));
    target.classList.add('loading');
    api('GET', `${config.api}${segment.id}/sizes/?days=${days}`).then((data) => {
      if (mine !== sequence) return;  // a later toggle won
      target.classList.remove('loading');
      shown = data.days || [];
      draw(target, shown);
    }).catch((err) => {
      if (mine !== sequence) return;
      target.classList.remove('loading');
      fill(target, el('p', 'msg error', 'Could not load the sizes: ' + err.message));
    });
  }
  toggles.forEach((b) => b.addEventListener('click', () => load(Number(b.getAttribute('data-days')))));
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (shown) draw(target, shown); }, 150);
  });
  load(30);
}
