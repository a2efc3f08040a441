/* The new-sync form: segment, destination, the mapping editor (identifier rows: type, hashing
   and the name sent; field rows: a trait path or a constant, and the name sent), mode and
   schedule; a payload preview (the sync-preview API: the first members' payloads and the
   share of members with a usable identifier) kept up to date as the form changes; creating
   the sync through the syncs API, with each refusal shown at its field.

   The identifier types, hashing rules and default mapping of each destination kind come from
   Python (the page's json_script), not as a copy here. */

import { api, fieldErrors } from '../cdp/lib/api.js';
import { el, fill, pageData } from '../cdp/lib/dom.js';
import { grouped } from '../cdp/lib/format.js';

const config = pageData('sync-form-config');
const form = document.getElementById('sync-form');

const segmentSelect = document.getElementById('f-segment');
const destinationSelect = document.getElementById('f-destination');
const nameInput = document.getElementById('f-name');
const identifierRows = document.getElementById('identifier-rows');
const fieldRows = document.getElementById('field-rows');
const previewBody = document.getElementById('preview-body');
const errorBox = document.getElementById('sync-error');
const saveStatus = document.getElementById('save-status');
let nameTouched = false;
let mappingTouched = false;
let previewTimer = null;
let previewSequence = 0;

const byId = (list, id) => list.find((x) => String(x.id) === String(id));
const destination = () => byId(config.destinations, destinationSelect.value);
const segment = () => byId(config.segments, segmentSelect.value);
const kindOf = () => { const d = destination(); return d ? config.kinds[d.kind] : null; };
const defaultKind = () => Object.values(config.kinds)[0] || { identifier_types: [], hashed_only: false,
  default_mapping: { identifiers: [], fields: [] } };

// ---- the mapping editor ---------------------------------------------------------------------

function options(select, values, chosen) {
  fill(select, values.map(([value, label]) => el('option', { value, selected: value === chosen }, label)));
}

function removeButton(row, what) {
  return el('button', { type: 'button', class: 'button small remove', title: 'Remove this ' + what,
    'aria-label': 'Remove this ' + what, onclick: () => { row.remove(); changed(true); } }, '×');
}

function identifierRow(rule) {
  const kind = kindOf() || defaultKind();
  const row = el('div', 'map-row identifier-row');
  const type = el('select', { class: 'id-type', 'data-field': 'type', 'aria-label': 'Identifier type' });
  const types = kind.identifier_types.includes(rule.type) ? kind.identifier_types : [rule.type, ...kind.identifier_types];
  options(type, types.map((t) => [t, t.replace('_', ' ')]), rule.type);
  const hash = el('select', { class: 'id-hash', 'data-field': 'hash', 'aria-label': 'Hashing' });
  options(hash, [['sha256', 'SHA-256 digest'], ['none', 'as is']], kind.hashed_only ? 'sha256' : (rule.hash || 'none'));
  hash.disabled = kind.hashed_only;
  if (kind.hashed_only) hash.title = `${kind.label} takes identifiers as SHA-256 digests only`;
  const as = el('input', { class: 'id-as', 'data-field': 'as', 'aria-label': 'Sent as',
    value: rule.as && rule.as !== defaultIdName(rule.type, rule.hash) ? rule.as : '' });
  const placeholder = () => { as.placeholder = defaultIdName(type.value, hash.value); };
  placeholder();
  [type, hash].forEach((s) => s.addEventListener('change', placeholder));
  row.append(el('span', 'row-label', 'Identifier'), type, hash, el('span', 'row-label', 'as'), as,
    removeButton(row, 'identifier'));
  identifierRows.append(row);
  return row;
}

function defaultIdName(type, hash) {
  const kind = kindOf() || defaultKind();
  return kind.hashed_only || hash === 'sha256' ? `${type}_sha256` : type;
}

function fieldRow(rule) {
  const row = el('div', 'map-row field-row');
  const source = el('select', { class: 'field-source', 'data-field': 'source', 'aria-label': 'From' });
  const isConstant = Object.prototype.hasOwnProperty.call(rule, 'constant');
  options(source, [['trait', 'Trait'], ['constant', 'Constant']], isConstant ? 'constant' : 'trait');
  const value = el('input', { class: 'field-value', 'aria-label': 'Trait path or constant value' });
  const as = el('input', { class: 'field-as', 'data-field': 'as', 'aria-label': 'Sent as', value: rule.as || '' });
  function shape() {
    const constant = source.value === 'constant';
    value.setAttribute('data-field', constant ? 'constant' : 'trait');
    value.placeholder = constant ? 'e.g. spring-sale, 1 or true' : 'e.g. plan or address.city';
    if (constant) value.removeAttribute('list'); else value.setAttribute('list', 'dl-traits');
    as.placeholder = constant ? 'name (required)' : (value.value || 'same as the trait');
  }
  value.value = isConstant ? (typeof rule.constant === 'string' ? rule.constant : JSON.stringify(rule.constant))
    : (rule.trait || '');
  source.addEventListener('change', shape);
  value.addEventListener('input', shape);
  shape();
  row.append(el('span', 'row-label', 'Field'), source, value, el('span', 'row-label', 'as'), as,
    removeButton(row, 'field'));
  fieldRows.append(row);
  return row;
}

function constantValue(text) {
  // numbers and true/false/null are sent as such; anything else as the text typed
  if (/^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)$/.test(text.trim())) return JSON.parse(text.trim());
  return text;
}

function mapping() {
  const identifiers = [...identifierRows.children].map((row) => {
    const out = { type: row.querySelector('.id-type').value, hash: row.querySelector('.id-hash').value };
    const as = row.querySelector('.id-as').value.trim();
    if (as) out.as = as;
    return out;
  });
  const fields = [...fieldRows.children].map((row) => {
    const value = row.querySelector('.field-value').value;
    const out = row.querySelector('.field-source').value === 'constant'
      ? { constant: constantValue(value) } : { trait: value.trim() };
    const as = row.querySelector('.field-as').value.trim();
    if (as) out.as = as;
    return out;
  });
  return { identifiers, fields };
}

function loadMapping(rule) {
  fill(identifierRows);
  fill(fieldRows);
  (rule.identifiers || []).forEach(identifierRow);
  (rule.fields || []).forEach(fieldRow);
  noFields();
}

function noFields() {
  document.getElementById('no-fields').hidden = fieldRows.children.length > 0;
}

// ---- errors at their fields -----------------------------------------------------------------

function clearErrors() {
  errorBox.hidden = true;
  form.querySelectorAll('.field-error').forEach((n) => n.remove());
  form.querySelectorAll('.invalid').forEach((n) => n.classList.remove('invalid'));
}

// "mapping.identifiers[1].hash" -> the hash select of the second identifier row
function elementFor(path) {
  const m = path.match(/^mapping\.(identifiers|fields)\[(\d+)\](?:\.(\w+))?$/);
  if (m) {
    const row = (m[1] === 'identifiers' ? identifierRows : fieldRows).children[Number(m[2])];
    if (!row) return null;
    return (m[3] && row.querySelector(`[data-field="${m[3]}"]`)) || row;
  }
  return form.querySelector(`[data-path="${path}"]`);
}

function showErrors(err) {
  const fields = fieldErrors(err);
  const unplaced = [];
  Object.entries(fields).forEach(([path, messages]) => {
    const node = elementFor(path);
    if (!node) { unplaced.push(`${path}: ${messages[0]}`); return; }
    node.classList.add('invalid');
    const holder = node.closest('.map-row, .form-field, fieldset, .map-rows') || node.parentElement;
    holder.append(el('p', { class: 'field-error', 'data-error-for': path }, messages[0]));
  });
  if (!Object.keys(fields).length) unplaced.push(err.message);
  if (unplaced.length) {
    fill(errorBox, unplaced.join(' · '));
    errorBox.hidden = false;
  }
}

// ---- preview --------------------------------------------------------------------------------

function percent(rate) {
  return rate === null || rate === undefined ? '—' : `${Math.round(rate * 1000) / 10} %`;
}

function renderPreview(data) {
  const d = destination();
  if (!data.members) {
    fill(previewBody, el('p', { class: 'muted', id: 'preview-empty' },
      segment() && !segment().published
        ? 'This segment is not published: it has no members yet. Publish it, then its members are sent.'
        : 'The segment has no members right now: nothing would be sent until people enter it.'));
    return;
  }
  const sample = data.sampled < data.members
    ? ` (measured on ${grouped(data.sampled)} of them)` : '';
  fill(previewBody,
    el('p', { class: 'match-text', id: 'match-text' },
      el('span', { class: 'match-rate', id: 'match-rate' }, percent(data.match_rate)),
      ` of ${grouped(data.members)} member${data.members === 1 ? '' : 's'} have a usable ` +
      `identifier${sample}.`),
    el('p', { class: 'muted small', id: 'sendable-text' },
      `${percent(data.sendable_rate)} can be sent now: with an identifier and allowed by consent ` +
      `for “${d ? d.purpose : 'the purpose'}”.`),
    el('h3', 'small-head', `First payload${data.examples.length === 1 ? '' : 's'}`),
    data.examples.length
      ? el('ol', { class: 'payloads', id: 'preview-examples' }, data.examples.map(example))
      : el('p', 'muted small', 'No member can be sent with this mapping yet.'));
}

// a digest is long: its ends tell members apart (the whole of it in the title)
function shortValue(value) {
  const s = String(value);
  return s.length > 24 ? s.slice(0, 10) + '…' + s.slice(-8) : s;
}

function example(x) {
  const rows = [];
  Object.entries(x.identifiers).forEach(([name, values]) => values.forEach((v) =>
    rows.push([name, el('code', { title: v }, shortValue(v))])));
  Object.entries(x.fields).forEach(([name, v]) =>
    rows.push([name, el('code', null, JSON.stringify(v))]));
  return el('li', null,
    el('a', { href: config.profile_url.replace('/0/', `/${x.profile_id}/`), class: 'small' },
      `Profile ${x.profile_id}`),
    el('table', 'payload-table', el('tbody', null, rows.map(([name, value]) =>
      el('tr', null, el('th', null, name), el('td', null, value))))));
}

function preview(now) {
  clearTimeout(previewTimer);
  if (!segmentSelect.value || !destinationSelect.value) return;
  // a row being filled in is not an error yet: wait for it (unless asked)
  const rule = mapping();
  if (!now && rule.fields.some((f) => f.trait === '' || (f.constant === '' && !f.as))) return;
  previewTimer = setTimeout(() => {
    const mine = ++previewSequence;
    document.getElementById('preview').classList.add('stale');
    api('POST', config.api.preview, {
      segment: Number(segmentSelect.value),
      destination: Number(destinationSelect.value),
      mapping: mapping(),
    }).then((data) => {
      if (mine !== previewSequence) return;
      clearErrors();
      renderPreview(data);
    }).catch((err) => {
      if (mine !== previewSequence) return;
      clearErrors();
      showErrors(err);
      fill(previewBody, el('p', { class: 'muted', id: 'preview-invalid' },
        'Correct the mapping to see the preview.'));
    }).finally(() => {
      if (mine === previewSequence) document.getElementById('preview').classList.remove('stale');
    });
  }, now ? 0 : 400);
}

// ---- the rest of the form -------------------------------------------------------------------

function suggestName() {
  if (nameTouched) return;
  const s = segment(), d = destination();
  nameInput.value = s && d ? `${s.name} → ${d.name}` : '';
}

function destinationChanged() {
  const d = destination();
  document.getElementById('purpose-hint').textContent = d
    ? `Members are sent only with consent for “${d.purpose}”.` : '';
  const kind = kindOf();
  // a kind's own defaults, unless the mapping was edited (then only its rules are re-applied)
  if (kind && !mappingTouched) loadMapping(kind.default_mapping);
  else if (kind) loadMapping(mapping());
  suggestName();
  preview();
}

function changed(byUser) {
  if (byUser) mappingTouched = true;
  noFields();
  preview();
}

function schedule() {
  const interval = form.querySelector('input[name=schedule][value=interval]');
  document.getElementById('f-interval').disabled = !(interval && interval.checked);
}

function submit(e) {
  e.preventDefault();
  clearErrors();
  const button = document.getElementById('create-sync');
  const body = {
    name: nameInput.value.trim(),
    segment: Number(segmentSelect.value) || 0,
    destination: Number(destinationSelect.value) || 0,
    mapping: mapping(),
    mode: document.getElementById('f-mode').value,
    schedule: form.querySelector('input[name=schedule]:checked').value,
  };
  if (body.schedule === 'interval') {
    const minutes = document.getElementById('f-interval').value;
    body.interval_minutes = /^\d+$/.test(minutes) ? Number(minutes) : minutes;
  }
  const missing = {};
  if (!body.segment) missing.segment = ['choose a segment'];
  if (!body.destination) missing.destination = ['choose a destination'];
  if (Object.keys(missing).length) {
    showErrors({ message: '', detail: { fields: missing } });
    return;
  }
  button.disabled = true;
  saveStatus.textContent = 'Creating…';
  api('POST', config.api.create, body).then((sync) => {
    saveStatus.textContent = 'Created';
    window.location.assign(config.detail_url.replace('/0/', `/${sync.id}/`));
  }).catch((err) => {
    saveStatus.textContent = Object.keys(fieldErrors(err)).length
      ? 'Not created: correct what is marked.' : '';
    button.disabled = false;
    showErrors(err);
  });
}

if (form) {
  fill(document.getElementById('dl-traits'), config.traits.map((t) => el('option', { value: t })));
  loadMapping((kindOf() || defaultKind()).default_mapping);
  destinationChanged();
  segmentSelect.addEventListener('change', () => { suggestName(); preview(); });
  destinationSelect.addEventListener('change', destinationChanged);
  nameInput.addEventListener('input', () => { nameTouched = nameInput.value.trim() !== ''; });
  document.getElementById('add-identifier').addEventListener('click', () => {
    const kind = kindOf() || defaultKind();
    identifierRow({ type: kind.identifier_types[0], hash: 'sha256' }).querySelector('select').focus();
    changed(true);
  });
  document.getElementById('add-field').addEventListener('click', () => {
    fieldRow({ trait: '' }).querySelector('.field-value').focus();
    changed(true);
  });
  // any edit of a row: a fresh preview
  [identifierRows, fieldRows].forEach((rows) => {
    rows.addEventListener('input', () => changed(true));
    rows.addEventListener('change', () => changed(true));
  });
  form.querySelectorAll('input[name=schedule]').forEach((r) => r.addEventListener('change', schedule));
  schedule();
  document.getElementById('preview-button').addEventListener('click', () => preview(true));
  form.addEventListener('submit', submit);
}
