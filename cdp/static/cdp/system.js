/* The System page: the throughput chart (events processed per hour, from the json_script named
   by the box's data-data); the table under it holds the same numbers. */

import { barChart } from './lib/bars.js';
import { el, fill, pageData } from './lib/dom.js';
import { clock, dateTime, grouped } from './lib/format.js';

function draw(box) {
  const rows = pageData(box.dataset.data);
  if (!rows) return;
  fill(box, barChart(rows, {
    width: Math.max(260, Math.floor(box.getBoundingClientRect().width)),
    height: 180,
    ariaLabel: 'Events processed per hour, last 24 hours',
    series: [{ key: 'count', label: 'Events', cls: 's0' }],
    xLabel: (d) => clock(d.hour),
    tooltip: (d) => [el('strong', {}, dateTime(d.hour)), el('div', {}, `${grouped(d.count)} events`)],
  }));
}

const boxes = [...document.querySelectorAll('.sys-chart[data-data]')];
boxes.forEach(draw);

let resizing = 0;
window.addEventListener('resize', () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => boxes.forEach(draw), 150);
});
