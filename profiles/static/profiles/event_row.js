/* A row of a list of events (the profile timeline, the source debugger): a one-line head that
   opens and closes the event's full payload below it. */

import { el, expandable } from '../cdp/lib/dom.js';

/* A stored payload, pretty-printed. */
export function payload(value) {
  return el('pre', 'payload', JSON.stringify(value, null, 2));
}

/* options: {id, cls (extra classes of the row), headClass, head: [nodes], body: node} */
export function eventRow({ id, cls, headClass, head, body }) {
  const top = el('div', 'event-head' + (headClass ? ' ' + headClass : ''), head);
  const li = el('li', { class: 'event-row' + (cls ? ' ' + cls : ''), dataset: { id } }, top, body);
  body.hidden = true;
  expandable(li, top, body);
  return li;
}
