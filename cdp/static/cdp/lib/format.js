/* How the pages write numbers and dates. */

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov',
  'Dec'];
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/* 1234567 -> "1,234,567" (as the server-rendered counts are grouped). */
export function grouped(n) {
  return Number(n).toLocaleString('en');
}

/* An amount in the workspace's currency (the page's <html data-currency>, default USD):
   1234.5 -> "$1,234.50". */
export function money(n, currency) {
  const code = currency || document.documentElement.dataset.currency || 'USD';
  if (n === null || n === undefined || n === '') return '—';
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency: code }).format(Number(n));
  } catch (e) {
    return `${grouped(n)} ${code}`;
  }
}

/* Moments are written as on the server (cdp/present.py), in the reader's own zone, named:
   "4 Dec 2026, 22:03 CET"; the exact UTC time is the title of their <time> element. */
const CLOCK = new Intl.DateTimeFormat('en-GB', { year: 'numeric', month: 'numeric',
  day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  timeZoneName: 'short' });

// the parts of a moment in the reader's zone (month names are ours: browsers differ)
function parts(d) {
  const p = {};
  CLOCK.formatToParts(d).forEach(({ type, value }) => { p[type] = value; });
  return { day: Number(p.day), month: MONTHS[Number(p.month) - 1], year: p.year,
    clock: `${p.hour}:${p.minute}`, seconds: p.second, zone: p.timeZoneName };
}

function moment(d, withSeconds) {
  const p = parts(d);
  return `${p.day} ${p.month} ${p.year}, ${p.clock}${withSeconds ? ':' + p.seconds : ''} ${p.zone}`;
}

/* "4 Dec 2026, 22:03 CET" */
export function dateTime(iso) {
  if (!iso) return '';
  return moment(new Date(iso), false);
}

/* "22:03:27 CET, 4 Dec 2026": a live stream of events, the time first, to the second. */
export function timeThenDate(iso) {
  const p = parts(new Date(iso));
  return `${p.clock}:${p.seconds} ${p.zone}, ${p.day} ${p.month} ${p.year}`;
}

/* "22:03" in the reader's zone: a chart's axis over one day. */
export function clock(iso) {
  return parts(new Date(iso)).clock;
}

/* "4 Dec" in the reader's zone: a chart's axis over several days. */
export function dayMonth(iso) {
  const p = parts(new Date(iso));
  return `${p.day} ${p.month}`;
}

/* "2026-12-04 21:03:27 UTC": the exact time, for titles. */
export function utcText(iso) {
  return new Date(iso).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

const UNITS = [['year', 365 * 86400], ['month', 30 * 86400], ['week', 7 * 86400],
  ['day', 86400], ['hour', 3600], ['minute', 60]];

/* "just now", "5 minutes ago", "in 2 days" */
export function relative(iso, now = Date.now()) {
  const delta = (now - new Date(iso).getTime()) / 1000;
  const span = Math.abs(delta);
  if (span < 45) return 'just now';
  for (const [unit, size] of UNITS) {
    if (span >= size) {
      const n = Math.floor(span / size);
      const text = `${n} ${unit}${n === 1 ? '' : 's'}`;
      return delta > 0 ? `${text} ago` : `in ${text}`;
    }
  }
  return 'just now';
}

/* A <time> element for a moment: `mode` "abs" (default), "seconds" or "ago". */
export function when(iso, mode = 'abs') {
  const t = document.createElement('time');
  if (!iso) {
    t.textContent = '—';
    return t;
  }
  t.dateTime = iso;
  t.dataset.when = mode;
  localise(t);
  return t;
}

/* Rewrite a server-rendered <time data-when> in the reader's zone (app.js does it for every
   page, and again every minute for relative times). */
export function localise(t) {
  const iso = t.getAttribute('datetime');
  if (!iso) return;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return;
  const mode = t.dataset.when;
  t.title = utcText(iso);
  if (mode === 'ago') t.textContent = relative(iso);
  else if (mode === 'seconds') t.textContent = moment(d, true);
  else if (mode === 'day') {
    const p = parts(d);
    t.textContent = `${p.day} ${p.month} ${p.year}`;
  } else t.textContent = moment(d, false);
}

export function localiseAll(root = document) {
  root.querySelectorAll('time[data-when]').forEach(localise);
}

// the API's days are UTC dates (YYYY-MM-DD); they are shown as such, whatever the browser's zone
function dayParts(iso) {
  const [y, m, d] = iso.split('-').map(Number);
  return { y, m: m - 1, d, wd: new Date(Date.UTC(y, m - 1, d)).getUTCDay() };
}

/* "2026-01-05" -> "5 Jan" */
export function shortDay(iso) {
  const p = dayParts(iso);
  return `${p.d} ${MONTHS[p.m]}`;
}

/* "2026-01-05" -> "Mon 5 Jan 2026" */
export function longDay(iso) {
  const p = dayParts(iso);
  return `${WEEKDAYS[p.wd]} ${p.d} ${MONTHS[p.m]} ${p.y}`;
}

/* Cut a text to n characters, with an ellipsis when cut. */
export function truncate(text, n) {
  const s = String(text);
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}
