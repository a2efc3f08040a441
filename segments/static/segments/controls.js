/* The builder's form controls. On a read-only page they are drawn disabled, and the buttons
   that would change the rule are hidden. */

import { el } from '../cdp/lib/dom.js';

export function controls(editable) {
  function input(cls, value, attrs) {
    const e = el('input', { ...attrs, class: cls });
    e.value = value === undefined || value === null ? '' : String(value);
    e.disabled = !editable;
    return e;
  }
  // options: [[value, label], …]
  function select(cls, options, value, label) {
    return el('select', { class: cls, 'aria-label': label, disabled: !editable },
      options.map(([v, text]) => el('option', { value: v, selected: v === value }, text)));
  }
  function button(cls, text, onClick, title) {
    return el('button', { class: 'button small ' + cls, type: 'button', title, onclick: onClick,
      hidden: !editable }, text);
  }
  return { input, select, button };
}

/* A <datalist> of suggestions (strings, or {name, label}), created once per id and refilled;
   returns its id for an input's list attribute. */
export function datalist(id, values) {
  let list = document.getElementById(id);
  if (!list) {
    list = el('datalist', { id });
    document.body.appendChild(list);
  }
  list.replaceChildren(...values.map((v) =>
    el('option', { value: typeof v === 'string' ? v : v.name, label: v.label || null })));
  return id;
}
