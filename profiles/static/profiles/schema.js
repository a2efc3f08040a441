/* The observed schema: each event's row ([data-toggle] = the id of its properties' row) opens
   and closes the list of its properties. */

import { onActivate } from '../cdp/lib/dom.js';

document.querySelectorAll('.schema-event[data-toggle]').forEach((row) => {
  onActivate(row, () => {
    const target = document.getElementById(row.dataset.toggle);
    if (!target) return;
    target.hidden = !target.hidden;
    row.classList.toggle('open', !target.hidden);
    row.setAttribute('aria-expanded', String(!target.hidden));
  });
});
