/* A suggestion list under a text input (the WAI-ARIA combobox pattern with a listbox popup):
   suggestions in labelled groups, each showing its kind (trait, computed trait, event, page,
   property, value…), its label and its key. ↓/↑ move through the options (opening the list),
   Enter picks the active one, Esc closes the list, Tab leaves it; the active option is
   announced through aria-activedescendant while the focus stays in the input. Typing filters.
   A picked suggestion is written into the input with `input` and `change` events, as if
   typed, so whatever listens to the input follows.

   suggestions(input, {
     items(text)   -> [item] or a Promise of them; item: {value, label, key, kind, kindLabel,
                     group, note, disabled}. `text` is what to match (the last entry of a
                     comma-separated list with `multi`).
     groups        [{key, label}]: the order and headings of the groups
     label         the accessible name of the list
     multi()       true when the input holds a comma-separated list: a pick replaces its last
                   entry instead of the whole text
     openOnFocus   open as soon as the input gets the focus (default: only when it is empty)
     onPick(item)
   }) -> {close()} */

import { el } from '../cdp/lib/dom.js';

const MAX_SHOWN = 150;
let lists = 0;

/* The part of the text a suggestion is matched against and replaces. */
function lastEntry(text, multi) {
  if (!multi) return text;
  const cut = text.lastIndexOf(',');
  return cut < 0 ? text : text.slice(cut + 1);
}

/* Items matching the text: starts of label or key first, then anywhere; kept in group
   order. An empty text matches everything. */
export function filterItems(items, text) {
  const q = text.trim().toLowerCase();
  if (!q) return items;
  const rank = (item) => {
    const hay = [item.value, item.key, item.label].filter((x) => x !== undefined && x !== null)
      .map((x) => String(x).toLowerCase());
    if (hay.some((h) => h.startsWith(q))) return 0;
    if (hay.some((h) => h.includes(q))) return 1;
    return 2;
  };
  return items.map((item, i) => ({ item, i, r: rank(item) })).filter((x) => x.r < 2)
    .sort((a, b) => a.r - b.r || a.i - b.i).map((x) => x.item);
}

export function suggestions(input, options) {
  const id = 'suggest-' + (++lists);
  const multi = () => !!(options.multi && options.multi());
  let list = null, shown = [], active = -1, sequence = 0, optionEls = [];

  input.setAttribute('role', 'combobox');
  input.setAttribute('aria-autocomplete', 'list');
  input.setAttribute('aria-expanded', 'false');
  input.setAttribute('aria-controls', id);
  input.setAttribute('autocomplete', 'off');

  function place() {
    if (!list) return;
    if (!input.isConnected) { close(); return; }  // the rule was redrawn without this input
    const box = input.getBoundingClientRect();
    list.style.minWidth = Math.max(box.width, 260) + 'px';
    const room = window.scrollX + document.documentElement.clientWidth - list.offsetWidth - 8;
    list.style.left = Math.max(window.scrollX + 4, Math.min(window.scrollX + box.left, room)) + 'px';
    list.style.top = (window.scrollY + box.bottom + 3) + 'px';
  }
  function close() {
    sequence++;
    if (!list) return;
    list.remove();
    list = null;
    shown = [];
    optionEls = [];
    active = -1;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    window.removeEventListener('resize', place);
    window.removeEventListener('scroll', place, true);
  }
  function setActive(index, scroll) {
    active = index;
    optionEls.forEach((o, i) => {
      o.classList.toggle('active', i === index);
      o.setAttribute('aria-selected', i === index ? 'true' : 'false');
    });
    if (index < 0) { input.removeAttribute('aria-activedescendant'); return; }
    input.setAttribute('aria-activedescendant', optionEls[index].id);
    if (scroll) optionEls[index].scrollIntoView({ block: 'nearest' });
  }
  function move(step) {
    const n = shown.length;
    if (!n) return;
    let i = active;
    for (let tries = 0; tries < n; tries++) {
      i = i < 0 ? (step > 0 ? 0 : n - 1) : (i + step + n) % n;
      if (!shown[i].disabled) { setActive(i, true); return; }
    }
  }
  function pick(item) {
    if (!item || item.disabled) return;
    const text = input.value;
    let value = String(item.value);
    if (multi()) {
      const cut = text.lastIndexOf(',');
      value = cut < 0 ? value : text.slice(0, cut + 1).trimEnd() + ' ' + value;
    }
    input.value = value;
    close();
    input.dispatchEvent(new Event('input', { bubbles: true }));
    input.dispatchEvent(new Event('change', { bubbles: true }));
    if (options.onPick) options.onPick(item);
  }
  function optionOf(item, index) {
    const showKey = item.key !== undefined && item.key !== null && item.key !== '' &&
      String(item.key) !== String(item.label);
    const option = el('div', { class: 'suggest-option' + (item.disabled ? ' disabled' : ''),
      id: `${id}-${index}`, role: 'option', 'aria-selected': 'false',
      'aria-disabled': item.disabled ? 'true' : null, dataset: { value: String(item.value) } },
    el('span', `suggest-kind kind-${item.kind}`, item.kindLabel || item.kind),
    el('span', 'suggest-label', String(item.label)),
    showKey ? el('code', 'suggest-key', String(item.key)) : null,
    item.note ? el('span', 'suggest-note', item.note) : null);
    option.addEventListener('mousedown', (e) => { e.preventDefault(); pick(item); });
    option.addEventListener('mousemove', () => { if (!item.disabled && active !== index) setActive(index, false); });
    return option;
  }
  function render(items) {
    const text = lastEntry(input.value, multi()).trim();
    // nothing to suggest: no match, or the text is already the only match
    if (!items.length || (items.length === 1 && String(items[0].value) === text)) {
      close();
      return;
    }
    shown = items.slice(0, MAX_SHOWN);
    optionEls = [];
    const groups = options.groups || [];
    const order = groups.map((g) => g.key);
    shown.forEach((item) => { if (!order.includes(item.group)) order.push(item.group); });
    shown = order.flatMap((key) => shown.filter((item) => item.group === key));
    const body = order.map((key, g) => {
      const members = shown.filter((item) => item.group === key);
      if (!members.length) return null;
      const heading = (groups.find((x) => x.key === key) || {}).label || key;
      const headId = `${id}-g${g}`;
      return el('div', { role: 'group', class: 'suggest-group', 'aria-labelledby': headId },
        el('div', { class: 'suggest-heading', id: headId, role: 'presentation' }, heading),
        members.map((item) => {
          const option = optionOf(item, shown.indexOf(item));
          optionEls[shown.indexOf(item)] = option;
          return option;
        }));
    });
    if (!list) {
      list = el('div', { class: 'suggest-list', id, role: 'listbox',
        'aria-label': options.label || 'Suggestions' });
      document.body.append(list);
      input.setAttribute('aria-expanded', 'true');
      window.addEventListener('resize', place);
      window.addEventListener('scroll', place, true);
    }
    const more = items.length > shown.length ?
      [el('div', 'suggest-more', `${items.length - shown.length} more: type to narrow`)] : [];
    list.replaceChildren(...body.filter((x) => x), ...more);
    active = -1;
    input.removeAttribute('aria-activedescendant');
    place();
  }
  /* (Re)open the list for the input's current text; `then` runs once it is drawn. */
  function open(then) {
    if (!input.isConnected || input.disabled) return;
    const mine = ++sequence;
    const text = lastEntry(input.value, multi());
    Promise.resolve(options.items(text)).then((items) => {
      if (mine !== sequence || document.activeElement !== input) return;
      render(filterItems(items || [], text));
      if (then) then();
    }).catch(() => { if (mine === sequence) close(); });
  }

  input.addEventListener('input', (e) => { if (e.isTrusted !== false || list) open(); });
  input.addEventListener('focus', () => {
    if (options.openOnFocus || !input.value.trim()) open();
  });
  input.addEventListener('click', () => { if (!list) open(); });
  input.addEventListener('blur', close);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const step = e.key === 'ArrowDown' ? 1 : -1;
      if (list) move(step);
      else open(() => move(step));
    } else if (e.key === 'Enter') {
      if (list && active >= 0) {
        e.preventDefault();
        pick(shown[active]);
      } else close();
    } else if (e.key === 'Escape') {
      if (list) {
        e.preventDefault();
        e.stopPropagation();
        close();
      }
    } else if (e.key === 'Tab') close();
  });
  return { close };
}
