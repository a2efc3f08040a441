/* The rule-tree editor: draws the tree (groups with their ALL / ANY toggle and add buttons,
   conditions through conditions.js), keeps the JSON view up to date, and places the API's
   errors on the nodes they name. */

import { el } from '../cdp/lib/dom.js';
import { controls } from './controls.js';
import { KIND_LABELS, conditionParts, whereList } from './conditions.js';

/* options: {model, language, editable, rule (the JSON to start from, or null), container
   (the tree's element), jsonOut (the <pre> of the JSON view), onChange() (after every
   edit)}. */
export function ruleTree(options) {
  const { model, language, editable, container, jsonOut } = options;
  let root = options.rule ? model.fromJSON(options.rule) : model.group('all', []);
  if (root.kind !== 'group') root = model.group('all', [root]);
  let elements = {};  // node id -> its element
  // the condition kinds to offer; consent needs the workspace's purposes (the privacy center)
  // and a cluster condition a trained clusters model
  const kinds = language.kinds.filter((k) =>
    (k.key !== 'consent' || (model.suggest.purposes || []).length) &&
    (k.key !== 'model' || (model.suggest.clusters || []).length));
  const ctx = {
    model, language, editable, controls: controls(editable), render, changed,
  };
  const { button } = ctx.controls;

  function changed(rerender) {
    if (rerender) render();
    else updateJSON();
    options.onChange();
  }
  function rule() { return model.toJSON(root).rule; }
  function updateJSON() { jsonOut.textContent = JSON.stringify(rule(), null, 2); }
  function render() {
    elements = {};
    container.replaceChildren(renderGroup(root, null, 0));
    updateJSON();
  }

  function notToggle(node) {
    const b = button('toggle-not' + (node.negate ? ' on' : ''), 'NOT', () => {
      node.negate = !node.negate;
      changed(true);
    }, 'Negate: match profiles for which this does not hold');
    b.setAttribute('aria-pressed', node.negate ? 'true' : 'false');
    if (!editable && node.negate) { b.hidden = false; b.disabled = true; }
    return b;
  }
  function removeButton(parent, node) {
    return button('remove', '✕', () => {
      parent.children.splice(parent.children.indexOf(node), 1);
      changed(true);
    }, 'Remove');
  }
  function nodeError() {
    return el('div', { class: 'node-error', hidden: true, role: 'alert' });
  }
  function nodeElement(cls, node, ...children) {
    const wrap = el('div', { class: `rule-node ${cls}${node.negate ? ' negated' : ''}`,
      dataset: { node: node.id } }, ...children, nodeError());
    elements[node.id] = wrap;
    return wrap;
  }

  function renderCondition(node, parent) {
    // the condition's parts wrap inside the body; its remove button stays top right
    const row = el('div', 'cond-row', notToggle(node), el('span', 'cond-kind', KIND_LABELS[node.kind]),
      conditionParts(node, ctx));
    const wrap = nodeElement('rule-cond', node,
      el('div', 'cond-body', row, node.kind === 'event' ? whereList(node, ctx) : null),
      parent ? removeButton(parent, node) : null);
    wrap.dataset.kind = node.kind;
    return wrap;
  }

  function renderGroup(node, parent, depth) {
    const modes = el('span', { class: 'mode-toggle', role: 'group', 'aria-label': 'Match' },
      [['all', 'ALL'], ['any', 'ANY']].map(([mode, label]) => el('button', {
        class: `mode-${mode}${node.mode === mode ? ' active' : ''}`, type: 'button',
        'aria-pressed': node.mode === mode ? 'true' : 'false', disabled: !editable,
        onclick: () => { node.mode = mode; changed(true); },
      }, label)));
    const head = el('div', 'group-head', notToggle(node), modes,
      el('span', 'muted small',
        node.mode === 'all' ? 'of these must match' : 'of these must match (at least one)'),
      el('span', 'spacer'),
      parent ? removeButton(parent, node) : null);
    const list = el('div', 'group-children',
      node.children.length ? null : el('div', 'muted small group-empty',
        editable ? 'Empty group: add a condition below.' : 'Empty group.'),
      node.children.map((child) => (child.kind === 'group' ?
        renderGroup(child, node, depth + 1) : renderCondition(child, node))));
    const foot = el('div', 'group-foot',
      kinds.map((k) => button('add-' + k.key.replace('_', '-'), '+ ' + k.label, () => {
        node.children.push(model.condition(k.key));
        changed(true);  // a condition that starts complete (a cluster, a segment) counts at once
        const added = elements[node.children[node.children.length - 1].id];
        const first = added && added.querySelector('input, select');
        if (first) first.focus();
      })),
      button('add-group', '+ Group', () => {
        node.children.push(model.group(node.mode === 'all' ? 'any' : 'all', []));
        changed(true);
      }, 'A nested group with its own ALL / ANY'));
    const wrap = nodeElement(`rule-group depth-${Math.min(depth, 4)}`, node, head, list, foot);
    wrap.dataset.mode = node.mode;
    return wrap;
  }

  // ---- errors -----------------------------------------------------------------------------
  function clearErrors() {
    Object.values(elements).forEach((e) => {
      e.classList.remove('has-error');
      const box = e.querySelector(':scope > .node-error');
      if (box) { box.textContent = ''; box.hidden = true; }
    });
  }
  /* errors: [{path, message}] with paths such as "rule.all[1].count.value"; each goes to the
     deepest node on its path. Returns the lines of those that have no node. */
  function showErrors(errors) {
    clearErrors();
    const unplaced = [];
    const { paths } = model.toJSON(root);
    errors.forEach(({ path, message }) => {
      let id = null, probe = path;
      while (probe) {
        if (paths[probe] !== undefined) { id = paths[probe]; break; }
        const cut = Math.max(probe.lastIndexOf('.'), probe.lastIndexOf('['));
        probe = cut > 0 ? probe.slice(0, cut) : '';
      }
      const target = id !== null && elements[id];
      if (!target || (path === 'rule' && id === root.id && !root.negate)) {
        unplaced.push(path + ': ' + message);
        return;
      }
      target.classList.add('has-error');
      const box = target.querySelector(':scope > .node-error');
      const rest = path.slice(probe.length).replace(/^\./, '');
      box.appendChild(el('div', null, (rest ? rest + ': ' : '') + message));
      box.hidden = false;
    });
    return unplaced;
  }

  return {
    render, rule, clearErrors, showErrors,
    isEmpty: () => !root.children.length,
    isIncomplete: () => model.incomplete(root),
  };
}
