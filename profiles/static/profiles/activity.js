/* A profile's activity above its timeline: events per week stacked by type, and orders per
   month with their revenue (cdp/lib/bars.js; the tables under the charts hold the same
   numbers). */

import { barChart } from '../cdp/lib/bars.js';
import { el, fill, pageData } from '../cdp/lib/dom.js';
import { grouped, money, shortDay } from '../cdp/lib/format.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const monthLabel = (iso) => `${MONTHS[Number(iso.slice(5, 7)) - 1]} ${iso.slice(2, 4)}`;
const width = (node) => Math.max(260, Math.floor(node.getBoundingClientRect().width));

function weekly(box, data) {
  const items = data.weeks.map((week, i) => {
    const item = { week };
    data.series.forEach((s) => { item[s.key] = s.values[i]; });
    return item;
  });
  fill(box, barChart(items, {
    width: width(box), height: 180, ariaLabel: 'Events per week by type',
    series: data.series.map((s, k) => ({ key: s.key, label: s.label, cls: `s${k % 6}` })),
    xLabel: (d) => shortDay(d.week),
    tooltip: (d) => [el('strong', {}, `Week of ${shortDay(d.week)}`),
      ...data.series.filter((s) => d[s.key]).map((s) => el('div', {}, `${s.label}: ${grouped(d[s.key])}`))],
  }));
}

function monthly(box, data) {
  const items = data.months.map((month, i) => ({ month, orders: data.orders[i],
    revenue: data.revenue[i] }));
  fill(box, barChart(items, {
    width: width(box), height: 180, ariaLabel: 'Orders per month, with revenue',
    series: [{ key: 'orders', label: 'Orders', cls: 's0' }],
    xLabel: (d) => monthLabel(d.month),
    tooltip: (d) => [el('strong', {}, monthLabel(d.month)),
      el('div', {}, `${grouped(d.orders)} order${d.orders === 1 ? '' : 's'}`),
      el('div', {}, `Revenue: ${money(d.revenue)}`)],
  }));
}

export function activity() {
  const data = pageData('activity-data');
  if (!data || !data.weeks.length) return;
  const draw = () => {
    const weeks = document.getElementById('activity-weeks');
    const months = document.getElementById('activity-months');
    if (weeks) weekly(weeks, data);
    if (months) monthly(months, data);
  };
  draw();
  let timer = 0;
  window.addEventListener('resize', () => { clearTimeout(timer); timer = setTimeout(draw, 150); });
}
