/* The editors of each kind of condition: trait (name, operator, value), event (name, count,
   time window, property filters), segment, consent and random bucket, and raw JSON for a
   condition the editor has no form for. Each edits its node in place and calls
   ctx.changed(rerender) after a change. Names and values are suggested as they are typed
   (suggest.js; what to suggest comes from ctx.model, see suggestions_data.js). */

import { el } from '../cdp/lib/dom.js';
import { eventItems, propertyItems, propertyValueItems, traitItems, traitValueItems,
  EVENT_GROUPS, PROPERTY_GROUPS, TRAIT_GROUPS, VALUE_GROUPS } from './suggestions_data.js';
import { suggestions } from './suggest.js';

// the label at the start of a condition's row
export const KIND_LABELS = { trait: 'Trait', event: 'Event', segment: 'In segment',
  random_bucket: 'Random', consent: 'Consent', model: 'In cluster', raw: 'JSON' };

/* The controls of a condition's row, after its NOT toggle and kind label. */
export function conditionParts(node, ctx) {
  const editors = { trait: traitParts, event: eventParts, segment: segmentParts,
    consent: consentParts, random_bucket: bucketParts, model: clusterParts };
  return (editors[node.kind] || rawParts)(node, ctx);
}

function bindInput(inp, target, key, ctx) {
  inp.addEventListener('input', () => { target[key] = inp.value; ctx.changed(false); });
  return inp;
}
function bindSelect(sel, onChange) {
  sel.addEventListener('change', () => onChange(sel.value));
  return sel;
}

// ---- operator + value ---------------------------------------------------------------------
function opSelect(target, type, ctx, onChange) {
  const { ops_by_type: byType, op_labels: labels } = ctx.language;
  let ops = byType[type] || byType.any;
  if (!ops.includes(target.op)) ops = ops.concat([target.op]);
  return bindSelect(ctx.controls.select('cond-op', ops.map((o) => [o, labels[o] || o]),
    target.op, 'Operator'), (value) => { target.op = value; onChange(); });
}

/* Suggest values for a value input when the condition has a source of them. */
function suggestValues(inp, target, valuesOf, ctx) {
  if (!valuesOf || !ctx.editable) return inp;
  suggestions(inp, {
    items: () => valuesOf() || [],
    groups: VALUE_GROUPS,
    label: 'Values',
    openOnFocus: true,
    multi: () => ctx.language.families.set.includes(target.op),
  });
  return inp;
}

function valueInputs(target, type, valuesOf, rebuild, ctx) {
  const { input, select } = ctx.controls;
  const families = ctx.language.families;
  const box = el('span', 'cond-values');
  const op = target.op;
  const bind = (inp, key) => bindInput(inp, target, key, ctx);
  if (!ctx.model.hasValue(op)) return box;
  const numeric = type === 'number' || families.number.includes(op) || families.range.includes(op);
  if (families.range.includes(op)) {
    box.append(
      bind(input('cond-value short', target.value, { inputmode: 'decimal', 'aria-label': 'From' }), 'value'),
      el('span', 'muted', 'and'),
      bind(input('cond-value2 short', target.value2, { inputmode: 'decimal', 'aria-label': 'To' }), 'value2'));
  } else if (op === 'within_last') {
    box.append(
      bind(input('cond-value short', target.value, { inputmode: 'numeric', 'aria-label': 'Days' }), 'value'),
      el('span', 'muted', 'days'));
  } else if (families.date.includes(op)) {  // before / after: a date, or a number of days ago
    const mode = bindSelect(select('cond-date-mode', [['date', 'date'], ['days_ago', 'days ago']],
      target.dateMode || 'date', 'Date kind'), (value) => {
      target.dateMode = value;
      target.value = '';
      rebuild();
      ctx.changed(false);
    });
    const relative = target.dateMode === 'days_ago';
    box.append(bind(input('cond-value' + (relative ? ' short' : ''), target.value,
      relative ? { inputmode: 'numeric', 'aria-label': 'Days ago' } :
        { type: 'date', 'aria-label': 'Date' }), 'value'), mode);
  } else {
    const attrs = { 'aria-label': 'Value' };
    if (families.set.includes(op)) attrs.placeholder = 'a, b, c';
    else if (numeric) attrs.inputmode = 'decimal';
    else attrs.placeholder = 'value';
    box.append(suggestValues(bind(input('cond-value', target.value, attrs), 'value'), target,
      valuesOf, ctx));
  }
  return box;
}

/* Operator + value inputs, rebuilt in place (never the whole tree) when the operator or the
   type of the named trait/property changes, so typing and tabbing keep the focus. valuesOf()
   gives the values to suggest for the name as it is now (a list or a Promise of one). */
function comparisonEditor(target, typeOf, valuesOf, ctx, infoOf) {
  const box = el('span', 'cond-comparison');
  // under the row: how the value will be compared (kept current as it is typed), and a
  // warning when the name was seen with mixed types
  const how = el('span', 'cond-how muted');
  const warning = el('div', { class: 'cond-warning', role: 'note', hidden: true });
  let shownType = null;
  function warn() {
    const [info, name] = infoOf();
    how.textContent = ctx.model.comparedAs(target.op, target.value, shownType);
    warning.textContent = ctx.model.mixedWarning(info, name, target.op);
    warning.hidden = !warning.textContent;
  }
  box.addEventListener('input', warn);
  function values() {
    const old = box.querySelector('.cond-values');
    const fresh = valueInputs(target, shownType, valuesOf, values, ctx);
    if (old) box.replaceChild(fresh, old);
    else box.insertBefore(fresh, how);
    warn();
  }
  function build() {
    shownType = typeOf();
    const { ops_by_type: byType } = ctx.language;
    const ops = byType[shownType] || byType.any;
    if (!ops.includes(target.op)) target.op = ops[0];
    box.replaceChildren(opSelect(target, shownType, ctx, () => { values(); ctx.changed(false); }),
      how, warning);
    values();
  }
  build();
  return {
    box,
    refresh() {
      if (typeOf() !== shownType) { build(); ctx.changed(false); return; }
      warn();
    },
  };
}

// ---- the kinds ----------------------------------------------------------------------------
/* A name input with its suggestion list. */
function nameInput(cls, value, attrs, source, ctx) {
  const inp = ctx.controls.input(cls, value, attrs);
  if (ctx.editable) suggestions(inp, source);
  return inp;
}

function traitParts(node, ctx) {
  const name = bindInput(nameInput('cond-trait', node.trait,
    { placeholder: 'trait, e.g. plan', 'aria-label': 'Trait' },
    { items: () => traitItems(ctx.model), groups: TRAIT_GROUPS, label: 'Traits' }, ctx),
  node, 'trait', ctx);
  const editor = comparisonEditor(node, () => ctx.model.traitType(node.trait),
    () => traitValueItems(ctx.model, node.trait.trim()), ctx,
    () => [ctx.model.trait(node.trait.trim()), node.trait.trim()]);
  name.addEventListener('change', editor.refresh);
  return [name, editor.box];
}

function eventParts(node, ctx) {
  const { input, select } = ctx.controls;
  const labels = ctx.language.op_labels;
  const ev = bindInput(nameInput('cond-event', node.event,
    { placeholder: 'event, e.g. Order Completed', 'aria-label': 'Event' },
    { items: () => eventItems(ctx.model), groups: EVENT_GROUPS, label: 'Events' }, ctx),
  node, 'event', ctx);
  const parts = [ev, bindSelect(select('cond-performed',
    [['count', 'performed'], ['never', 'never performed']], node.never ? 'never' : 'count',
    'Performed'), (value) => { node.never = value === 'never'; ctx.changed(true); })];
  if (!node.never) {
    parts.push(
      bindSelect(select('cond-count-op', ctx.language.count_ops.map((o) => [o, labels[o]]),
        node.countOp, 'Count operator'), (value) => { node.countOp = value; ctx.changed(false); }),
      bindInput(input('cond-count-value short', node.countValue,
        { inputmode: 'numeric', 'aria-label': 'Count' }), node, 'countValue', ctx),
      el('span', 'muted', 'times'));
  }
  parts.push(bindSelect(select('cond-window', [['last', 'in the last'], ['between', 'between']],
    node.window, 'Time window'), (value) => { node.window = value; ctx.changed(true); }));
  if (node.window === 'between') {
    parts.push(
      bindInput(input('cond-from', node.from, { type: 'date', 'aria-label': 'From (UTC day)' }),
        node, 'from', ctx),
      el('span', 'muted', 'and'),
      bindInput(input('cond-to', node.to, { type: 'date', 'aria-label': 'To (UTC day, included)' }),
        node, 'to', ctx));
  } else {
    parts.push(
      bindInput(input('cond-days short', node.days,
        { inputmode: 'numeric', placeholder: 'all', 'aria-label': 'Window length' }), node, 'days', ctx),
      bindSelect(select('cond-unit', [['days', 'days'], ['hours', 'hours']], node.unit,
        'Window unit'), (value) => { node.unit = value; ctx.changed(false); }));
  }
  return parts;
}

/* The property filters under an event condition ("where revenue > 100 and …"). */
export function whereList(node, ctx) {
  const { button } = ctx.controls;
  const box = el('div', 'where-list');
  node.where.forEach((w, i) => {
    const prop = bindInput(nameInput('where-property', w.property,
      { placeholder: 'property, e.g. revenue', 'aria-label': 'Property' },
      { items: () => propertyItems(ctx.model, node.event.trim()), groups: PROPERTY_GROUPS,
        label: 'Properties' }, ctx),
    w, 'property', ctx);
    const editor = comparisonEditor(w,
      () => ctx.model.propertyType(node.event.trim(), w.property.trim()),
      () => propertyValueItems(ctx.model, node.event.trim(), w.property.trim()), ctx,
      () => [ctx.model.property(node.event.trim(), w.property.trim()), w.property.trim()]);
    prop.addEventListener('change', editor.refresh);
    box.append(el('div', 'where-row', el('span', 'muted', i ? 'and' : 'where'), prop, editor.box,
      button('remove', '✕', () => { node.where.splice(i, 1); ctx.changed(true); }, 'Remove filter')));
  });
  box.append(button('add-where', '+ property filter', () => {
    node.where.push({ property: '', op: 'eq', value: '' });
    ctx.render();
    const inputs = document.querySelectorAll(`[data-node="${node.id}"] .where-property`);
    if (inputs.length) inputs[inputs.length - 1].focus();
  }));
  return box;
}

function segmentParts(node, ctx) {
  let options = (ctx.model.suggest.segments || []).map((s) => [s.key, s.name]);
  if (node.segment && !options.some((o) => o[0] === node.segment)) {
    options.unshift([node.segment, node.segment + ' (not published)']);
  }
  if (!options.length) options = [['', '— no published segments —']];
  return [bindSelect(ctx.controls.select('cond-segment', options, node.segment, 'Segment'),
    (value) => { node.segment = value; ctx.changed(false); })];
}

function consentParts(node, ctx) {
  const { select } = ctx.controls;
  const purposes = (ctx.model.suggest.purposes || []).map((p) => [p.key, p.name]);
  if (node.purpose && !purposes.some((o) => o[0] === node.purpose)) {
    purposes.unshift([node.purpose, node.purpose + ' (not a purpose)']);
  }
  return [
    bindSelect(select('cond-consent-status',
      [['granted', 'allows use for'], ['denied', 'does not allow use for']], node.status,
      'Consent answer'), (value) => { node.status = value; ctx.changed(false); }),
    bindSelect(select('cond-purpose', purposes, node.purpose, 'Purpose'),
      (value) => { node.purpose = value; ctx.changed(false); }),
    el('span', 'muted small', 'as decided, or by the purpose\'s default without a decision'),
  ];
}

/* A clusters model, then one or more of its clusters (by name; the rule keeps the label). */
function clusterParts(node, ctx) {
  const models = ctx.model.suggest.clusters || [];
  const options = models.map((m) => [m.key, m.name]);
  if (node.model && !options.some((o) => o[0] === node.model)) {
    options.unshift([node.model, node.model + ' (not a trained clusters model)']);
  }
  const current = models.find((m) => m.key === node.model);
  const picker = bindSelect(ctx.controls.select('cond-model', options, node.model, 'Clusters model'),
    (value) => {
      node.model = value;
      const chosen = models.find((m) => m.key === value);
      node.clusters = chosen && chosen.clusters.length ? [chosen.clusters[0].label] : [];
      ctx.changed(true);
    });
  const known = current ? current.clusters : [];
  const boxes = known.map((c) => {
    const box = el('input', { type: 'checkbox', class: 'cond-cluster', value: c.label,
      checked: node.clusters.includes(c.label), disabled: !ctx.editable });
    box.addEventListener('change', () => {
      node.clusters = known.map((k) => k.label).filter((label) =>
        label === c.label ? box.checked : node.clusters.includes(label));
      ctx.changed(false);
    });
    return el('label', { class: 'cluster-choice small', title: `${c.description} · ${c.label}` },
      box, ` ${c.name} `, el('span', 'muted', `(${c.size.toLocaleString('en-US')})`));
  });
  const unknown = node.clusters.filter((label) => !known.some((c) => c.label === label));
  return [picker, el('span', 'cond-clusters', boxes,
    unknown.map((label) => el('span', 'pill warn small', `${label} (not made now)`)))];
}

function bucketParts(node, ctx) {
  return [
    bindInput(ctx.controls.input('cond-percent short', node.percent,
      { inputmode: 'decimal', 'aria-label': 'Percent' }), node, 'percent', ctx),
    el('span', 'muted', '% of profiles (stable per profile)'),
  ];
}

function rawParts(node, ctx) {
  const text = el('textarea', { class: 'cond-raw', rows: Math.min(8, node.text.split('\n').length),
    disabled: !ctx.editable });
  text.value = node.text;
  return [bindInput(text, node, 'text', ctx)];
}
