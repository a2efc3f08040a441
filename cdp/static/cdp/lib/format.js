/* How the pages write numbers and dates. */

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov',
  'Dec'];
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/* 1234567 -> "1,234,567" (as the server-rendered counts are grouped). */
export function grouped(n) {
  return Number(n).toLocaleString('en');
}

/* A moment in the browser's zone and locale: "5 Jan 2026 14:03". */
export function dateTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' }) +
    ' ' + d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/* A moment with its time first, to the second (a live stream of events): "14:03:27 05/01/2026". */
export function timeThenDate(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString() + ' ' + d.toLocaleDateString();
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
