/* A published segment's size over time: members at the end of each UTC day (a line), the
   day's entries and exits (bars above and below a zero line, aligned with the line's days),
   and the same numbers as a table, for the last 7, 30 or 90 days — from the day the segment
   was first published (before it there was no audience, not an audience of zero). Data from
   the sizes API; redrawn at the card's width. */

import { api } from '../cdp/lib/api.js';
import { barsChart, lineChart } from '../cdp/lib/chart.js';
import { el, fill } from '../cdp/lib/dom.js';
import { grouped, longDay, shortDay } from '../cdp/lib/format.js';

const MARGIN = { left: 54, right: 16 };  // shared by both charts, so their days line up

const members = (n) => grouped(n) + (n === 1 ? ' member' : ' members');

function tooltip(d) {
  return [
    el('div', 'tip-date', longDay(d.date)),
    el('div', 'tip-size', members(d.size)),
    el('div', 'tip-moves',
      el('span', 'tip-in', '+' + grouped(d.entered) + ' entered'),
      el('span', 'tip-out', '−' + grouped(d.exited) + ' left')),
  ];
}

function dayText(d) {
  return longDay(d.date) + ': ' + members(d.size) + ' (+' + grouped(d.entered) + ' entered, −' +
    grouped(d.exited) + ' left)';
}

function summary(days, fromPublication) {
  const first = days[0], last = days[days.length - 1];
  const entered = days.reduce((a, d) => a + d.entered, 0);
  const left = days.reduce((a, d) => a + d.exited, 0);
  const net = entered - left;
  return el('p', { class: 'size-summary small', id: 'size-summary' },
    el('strong', null, 'Now ' + members(last.size)),
    ' · ' + grouped(entered) + ' entered and ' + grouped(left) + ' left ' +
      (fromPublication ? 'since it was published on ' : 'since ') + shortDay(first.date) + ' ',
    el('span', 'trend-net ' + (net > 0 ? 'up' : net < 0 ? 'down' : ''),
      net > 0 ? '(↑ +' + grouped(net) + ')' : net < 0 ? '(↓ −' + grouped(-net) + ')' : '(±0)'),
    el('span', 'muted', ' · days in UTC; hover the chart for each day'));
}

function legend() {
  return el('div', { class: 'chart-legend small size-legend', id: 'size-legend' },
    el('span', 'key', el('span', 'swatch line size-line'), 'members at the end of the day'),
    el('span', 'key', el('span', 'swatch size-in'), 'entered'),
    el('span', 'key', el('span', 'swatch size-out'), 'left'));
}

/* The same numbers as the charts, newest day first, for screen readers and copying. */
function table(days, open) {
  const rows = [...days].reverse().map((d) => el('tr', { dataset: { date: d.date } },
    el('td', 'nowrap', longDay(d.date)),
    el('td', 'num', grouped(d.size)),
    el('td', 'num ok-ink', '+' + grouped(d.entered)),
    el('td', 'num bad-ink', '−' + grouped(d.exited))));
  const details = el('details', { class: 'size-table', id: 'size-table' },
    el('summary', 'small', 'The numbers as a table (' + days.length +
      (days.length === 1 ? ' day)' : ' days)')),
    el('table', 'table compact',
      el('thead', null, el('tr', null, el('th', null, 'Day (UTC)'), el('th', 'num', 'Members'),
        el('th', 'num', 'Entered'), el('th', 'num', 'Left'))),
      el('tbody', null, rows)));
  details.open = open;
  return details;
}

function draw(target, data) {
  const days = data.days;
  const width = Math.max(target.clientWidth, 320);
  const wasOpen = !!target.querySelector('#size-table[open]');
  target.textContent = '';
  if (!days.length) {
    fill(target, el('p', 'muted size-loading', 'No history in this period.'));
    return;
  }
  const span = shortDay(days[0].date) + ' to ' + shortDay(days[days.length - 1].date);
  // the period reaches back to the first publication: the chart starts there, without
  // the zeros of the days before the segment existed
  const fromPublication = !!data.published_at &&
    data.published_at.slice(0, 10) === days[0].date;
  const line = lineChart(days, {
    width,
    margin: MARGIN,
    id: 'size-svg',
    tipId: 'size-tip',
    ariaLabel: 'Members at the end of each day, ' + span,
    value: (d) => d.size,
    xLabel: (d) => shortDay(d.date),
    tooltip,
    pointTitle: dayText,
    pointAttrs: (d) => ({ 'data-date': d.date, 'data-size': d.size }),
    bandAttrs: (d) => ({ 'data-date': d.date }),
  });
  const bars = barsChart(days, {
    width,
    height: 96,
    margin: MARGIN,
    id: 'size-bars',
    tipId: 'size-bars-tip',
    ariaLabel: 'Members who entered (above the line) and left (below it) each day, ' + span,
    up: (d) => d.entered,
    down: (d) => d.exited,
    tooltip,
    upTitle: (d) => longDay(d.date) + ': ' + grouped(d.entered) + ' entered',
    downTitle: (d) => longDay(d.date) + ': ' + grouped(d.exited) + ' left',
    barAttrs: (d) => ({ 'data-date': d.date, 'data-entered': d.entered, 'data-exited': d.exited }),
  });
  target.append(line, bars, legend(), summary(days, fromPublication), table(days, wasOpen));
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
      shown = { days: data.days || [], published_at: data.published_at };
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
