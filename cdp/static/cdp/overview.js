/* The overview's charts: each <figure data-kind> reads its numbers from the json_script named
   by data-data and draws them (cdp/lib charts); the table under each holds the same numbers. */

import { barChart } from './lib/bars.js';
import { el, fill, pageData } from './lib/dom.js';
import { grouped, shortDay } from './lib/format.js';
import { heatGrid, sparkline, stackedArea } from './lib/plots.js';

function widthOf(node) {
  return Math.max(260, Math.floor(node.getBoundingClientRect().width));
}

function drawStacked(figure, value, days) {
  const box = figure.querySelector('.ov-chart');
  const from = Math.max(0, value.days.length - days);
  const shown = value.days.slice(from);
  const series = value.series.map((s) => ({ ...s, values: s.values.slice(from) }));
  const label = `${figure.querySelector('h2').textContent}, last ${shown.length} days`;
  if (value.style === 'bars') {
    const items = shown.map((day, i) => {
      const item = { day };
      series.forEach((s) => { item[s.key] = s.values[i]; });
      return item;
    });
    fill(box, barChart(items, {
      width: widthOf(box), height: 200, ariaLabel: label,
      series: series.map((s, k) => ({ key: s.key, label: s.label, cls: `s${k % 6}` })),
      xLabel: (d) => shortDay(d.day),
      tooltip: (d) => [el('strong', {}, shortDay(d.day)),
        ...series.map((s) => el('div', {}, `${s.label}: ${grouped(d[s.key])}`))],
    }));
    return;
  }
  fill(box, stackedArea(shown, series, {
    width: widthOf(box), ariaLabel: label,
    href: value.day_href ? (day) => value.day_href.replace('DAY', day) : null,
  }));
}

function drawSpark(figure, value) {
  const box = figure.querySelector('.ov-chart');
  const rows = value.items.map((item) => el('li', 'ov-spark-row',
    el('div', 'ov-spark-name',
      el(item.href ? 'a' : 'span', { class: 'ov-spark-label', href: item.href || null }, item.label),
      item.hint ? el('div', 'small muted', item.hint) : null),
    sparkline(item.values, { width: 120, height: 26,
      ariaLabel: `${item.label}: from ${grouped(item.values[0] || 0)} to ${grouped(item.value)}` }),
    el('span', 'num ov-spark-value', grouped(item.value))));
  fill(box, el('ul', 'ov-spark', rows));
}

function drawGrid(figure, value) {
  const box = figure.querySelector('.ov-chart');
  fill(box, heatGrid(value, {
    ariaLabel: figure.querySelector('h2').textContent,
    href: value.hrefs ? (i, j) => value.hrefs[i][j] : null,
  }));
}

function draw(figure) {
  const node = document.getElementById(figure.dataset.data);
  if (!node) return;
  const value = pageData(node.id);
  const kind = figure.dataset.kind;
  if (kind === 'stacked') {
    const pressed = figure.querySelector('.ov-range [aria-pressed="true"]');
    drawStacked(figure, value, pressed ? Number(pressed.dataset.days) : value.days.length);
  } else if (kind === 'spark') drawSpark(figure, value);
  else if (kind === 'grid') drawGrid(figure, value);
}

const figures = [...document.querySelectorAll('.ov-widget[data-kind]')];
figures.forEach(draw);

document.addEventListener('click', (e) => {
  const button = e.target.closest('.ov-range [data-days]');
  if (!button) return;
  const figure = button.closest('.ov-widget');
  figure.querySelectorAll('.ov-range [data-days]').forEach((b) => {
    b.setAttribute('aria-pressed', String(b === button));
  });
  draw(figure);
});

let resizing = 0;
window.addEventListener('resize', () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => figures.forEach(draw), 150);
});

// widgets computed for the first time: ask until they are ready, then show them (a minute at
// most: after that the message stays and a reload shows what is ready)
const waiting = document.getElementById('ov-waiting');
if (waiting) {
  let tries = 0;
  const ask = () => {
    tries += 1;
    fetch(`${waiting.dataset.url}?keys=${encodeURIComponent(waiting.dataset.keys)}`,
      { headers: { Accept: 'application/json' } })
      .then((r) => r.json())
      .then((data) => {
        if (!data.pending.length) window.location.reload();
        else if (tries < 30) setTimeout(ask, 2000);
      })
      .catch(() => { if (tries < 30) setTimeout(ask, 2000); });
  };
  setTimeout(ask, 1500);
}
