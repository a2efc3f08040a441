/* The identity rules form: the priority order of identifier types (move up / down, remove,
   add back; written into a hidden input as "user_id,email,…") and the rows of trait
   strategies (add, remove). The form itself posts normally. */

import { el } from '../cdp/lib/dom.js';

function priorityList() {
  const list = document.getElementById('priority-list');
  const input = document.getElementById('priority-input');
  const addBox = document.getElementById('priority-add');
  const addType = document.getElementById('priority-add-type');
  function sync() {
    const types = [];
    list.querySelectorAll('li').forEach((li, i) => {
      types.push(li.dataset.type);
      li.querySelector('.rank').textContent = String(i + 1);
      li.querySelector('[data-move=up]').disabled = i === 0;
      li.querySelector('[data-move=down]').disabled = i === list.children.length - 1;
    });
    input.value = types.join(',');
    addBox.hidden = addType.options.length === 0;
  }
  function item(type) {
    return el('li', { dataset: { type } },
      el('span', 'rank'),
      el('span', 'chip-type chip-' + type, type),
      el('span', 'grow'),
      [['up', '↑', 'Move up'], ['down', '↓', 'Move down']].map(([move, arrow, title]) =>
        el('button', { class: 'button small', type: 'button', dataset: { move }, title,
          'aria-label': title.replace('Move', 'Move ' + type) }, arrow)),
      el('button', { class: 'button small danger', type: 'button', 'data-remove': true,
        title: 'Remove from the list', 'aria-label': 'Remove ' + type }, '✕'));
  }
  list.addEventListener('click', (e) => {
    const btn = e.target.closest('button');
    if (!btn) return;
    const li = btn.closest('li');
    if (btn.dataset.move === 'up' && li.previousElementSibling) {
      list.insertBefore(li, li.previousElementSibling);
    } else if (btn.dataset.move === 'down' && li.nextElementSibling) {
      list.insertBefore(li.nextElementSibling, li);
    } else if (btn.hasAttribute('data-remove')) {
      addType.append(el('option', { value: li.dataset.type }, li.dataset.type));
      li.remove();
    }
    sync();
    if (li.isConnected && btn.dataset.move) btn.focus();
  });
  document.getElementById('priority-add-button').addEventListener('click', () => {
    const type = addType.value;
    if (!type) return;
    list.append(item(type));
    addType.remove(addType.selectedIndex);
    sync();
  });
  sync();
}

function strategyRows() {
  const rows = document.getElementById('strategy-rows');
  const blank = rows.querySelector('.strategy-row:last-child').cloneNode(true);
  blank.querySelector('input').value = '';
  blank.querySelector('input').classList.remove('invalid');
  blank.querySelectorAll('.field-error').forEach((e) => e.remove());
  document.getElementById('strategy-add').addEventListener('click', () => {
    const row = blank.cloneNode(true);
    rows.append(row);
    row.querySelector('input').focus();
  });
  rows.addEventListener('click', (e) => {
    if (!e.target.closest('[data-remove-row]')) return;
    const row = e.target.closest('tr');
    if (rows.children.length > 1) row.remove();
    else row.querySelector('input').value = '';
  });
}

if (document.getElementById('rules-form')) {
  priorityList();
  strategyRows();
}
