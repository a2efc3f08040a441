/* The decisions page: a card per placement with its offers by priority (added, edited and
   switched on or off through the API, each rule read out in words) and the code a site or a
   server pastes; the new-placement form; the preview: a real person (or an unknown visitor's
   traits) in a context, what each placement would show, and every offer's outcome with the
   condition that failed. */

import { ApiError, api, fieldErrors, getJSON } from '../cdp/lib/api.js';
import { el, fill, pageData } from '../cdp/lib/dom.js';
import { shortDay, truncate } from '../cdp/lib/format.js';

const config = pageData('decisions-config');
const $ = (id) => document.getElementById(id);
const placements = config.placements;
const offers = config.offers;
const opLabels = config.op_labels;
const origin = window.location.origin;

const pretty = (value) => JSON.stringify(value, null, 2);
const byKey = (a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
// as the decision engine ranks them: the highest priority first
const byPriority = (a, b) => b.priority - a.priority || byKey(a, b);
const offersOf = (key) => offers.filter((o) => o.placement === key).sort(byPriority);
const unreachable = 'Could not reach the server; try again.';

// ---- errors at their fields -----------------------------------------------------------------

/* A validation error found before asking the server, in the API's shape. */
function invalid(fields) {
  return { message: 'Not saved: correct the fields marked.', detail: { fields } };
}

/* The JSON of a textarea: `undefined` when empty, else the value; a parse error is collected
   in `problems` under the field's name. */
function jsonOf(form, name, problems) {
  const text = form.elements[name].value.trim();
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    problems[name] = [`not valid JSON: ${e.message}`];
    return undefined;
  }
}

function clearErrors(form, box) {
  box.hidden = true;
  form.querySelectorAll('.field-error').forEach((n) => n.remove());
  form.querySelectorAll('.invalid').forEach((n) => {
    n.classList.remove('invalid');
    n.removeAttribute('aria-invalid');
  });
}

/* Each message next to the field its path starts with ("eligibility.all[0].segment" ->
   eligibility, said as "all[0].segment: …"); the rest, or a non-validation error, in `box`. */
function showErrors(form, box, err) {
  const fields = fieldErrors(err);
  const unplaced = [];
  Object.entries(fields).forEach(([path, messages]) => {
    const name = path.split(/[.[]/)[0];
    const input = form.elements[name];
    const holder = input instanceof Element ? input.closest('.form-field') : null;
    if (!holder) {
      unplaced.push(`${path}: ${messages.join(' ')}`);
      return;
    }
    input.classList.add('invalid');
    input.setAttribute('aria-invalid', 'true');
    const where = path.slice(name.length).replace(/^\./, '');
    holder.append(el('p', { class: 'field-error', dataset: { errorFor: path } },
      where ? el('code', null, where) : null, where ? ': ' : null, messages.join(' ')));
  });
  if (!Object.keys(fields).length) unplaced.push(err instanceof ApiError || err.detail ? err.message : unreachable);
  fill(box, unplaced.length ? unplaced.join(' · ') : 'Not saved: correct the fields marked.');
  box.hidden = false;
  const first = form.querySelector('.invalid');
  if (first) first.focus();
}

// ---- how things read ------------------------------------------------------------------------

function day(iso) {
  const d = String(iso).slice(0, 10);
  return `${shortDay(d)} ${d.slice(0, 4)}`;
}

function dates(o) {
  if (o.starts_at && o.ends_at) return `${day(o.starts_at)} → ${day(o.ends_at)}`;
  if (o.starts_at) return `from ${day(o.starts_at)}`;
  if (o.ends_at) return `until ${day(o.ends_at)}`;
  return null;
}

function caps(o) {
  const parts = [];
  if (o.cap_day) parts.push(`${o.cap_day} a day`);
  if (o.cap_week) parts.push(`${o.cap_week} a week`);
  if (o.cap_lifetime) parts.push(`${o.cap_lifetime} ever`);
  return parts.length ? parts.join(' · ') : null;
}

function quoted(v) {
  return typeof v === 'string' ? `“${v}”` : JSON.stringify(v);
}

function valueText(op, value) {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value) && (op === 'between')) return `${quoted(value[0])} and ${quoted(value[1])}`;
  if (Array.isArray(value)) return value.map(quoted).join(', ');
  if (op === 'within_last' && typeof value === 'object') {
    return Object.entries(value).map(([unit, n]) => `${n} ${unit}`).join(' ');
  }
  if (typeof value === 'object' && 'days_ago' in value) return `${value.days_ago} days ago`;
  return quoted(value);
}

function comparison(c) {
  const label = opLabels[c.op] || c.op;
  const value = valueText(c.op, c.value);
  return value ? ` ${label} ${value}` : ` ${label}`;
}

function condition(c) {
  if ('segment' in c) return ['in segment ', el('strong', null, String(c.segment))];
  if ('trait' in c) return [el('code', null, c.trait), comparison(c)];
  if ('context' in c) return [el('span', 'muted', 'context '), el('code', null, c.context), comparison(c)];
  if ('consent' in c) return [`consent to ${c.consent} `, c.status || 'granted'];
  if ('random_bucket' in c) {
    const pct = typeof c.random_bucket === 'object' ? c.random_bucket.percent : c.random_bucket;
    return `a random ${pct} %`;
  }
  if ('model' in c) {
    const labels = Array.isArray(c.cluster) ? c.cluster.join(', ') : c.cluster;
    return [`cluster ${labels} of `, el('code', null, c.model)];
  }
  return el('code', null, JSON.stringify(c));
}

const isGroup = (c) => c && typeof c === 'object' && ('all' in c || 'any' in c);

/* An eligibility rule in words, the condition at `failed` (a path as the preview names it,
   "eligibility.all[1]") marked. */
function ruleText(rule, failed = null, path = 'eligibility') {
  let out;
  if (isGroup(rule)) {
    const kind = 'all' in rule ? 'all' : 'any';
    out = [];
    rule[kind].forEach((child, i) => {
      if (i) out.push(el('span', 'rule-join', kind === 'all' ? ' and ' : ' or '));
      const inner = ruleText(child, failed, `${path}.${kind}[${i}]`);
      out.push(isGroup(child) ? ['(', inner, ')'] : inner);
    });
  } else if (rule && typeof rule === 'object' && 'not' in rule) {
    const inner = ruleText(rule.not, failed, `${path}.not`);
    out = ['not ', isGroup(rule.not) ? ['(', inner, ')'] : inner];
  } else {
    out = condition(rule);
  }
  return path === failed ? el('mark', { class: 'failed-cond', title: 'the condition that failed' }, out) : out;
}

function who(rule, failed) {
  if (rule === null || rule === undefined) return el('span', 'muted', 'everyone');
  return el('span', 'rule-text', ruleText(rule, failed));
}

/* A content schema's properties in a line: "title* string · image string". */
function schemaSummary(schema) {
  const props = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const keys = Object.keys(props).sort((a, b) => required.has(b) - required.has(a) || (a < b ? -1 : 1));
  if (!keys.length) return el('p', 'muted small', 'Any JSON (the schema lists no properties).');
  return el('p', 'schema-props', keys.map((k, i) => [i ? el('span', 'muted', ' · ') : null,
    el('code', null, k), required.has(k) ? el('span', { class: 'req', title: 'required' }, '*') : null,
    props[k] && props[k].type ? el('span', 'muted small', ` ${props[k].type}`) : null]));
}

function contentBlock(content, id) {
  return el('pre', { class: 'content-json', id }, pretty(content));
}

// ---- placements -----------------------------------------------------------------------------

const editing = {};  // placement key -> the offer its form edits (null: a new one)

/* The empty state, or the button that opens the new-placement form. */
function chrome() {
  $('no-placements').hidden = placements.length > 0;
  const open = $('placement-new-open');
  if (open) open.hidden = placements.length === 0;
  const close = $('placement-new-close');
  if (close) close.hidden = placements.length === 0;
}

function render() {
  placements.sort(byKey);
  fill($('placements'), placements.map(placementCard));
  chrome();
}

/* A new placement's card, in key order among the others (their forms left as they are). */
function add(p) {
  placements.sort(byKey);
  const card = placementCard(p);
  const next = placements[placements.indexOf(p) + 1];
  $('placements').insertBefore(card, next ? document.querySelector(`section.placement[data-placement="${next.key}"]`) : null);
  chrome();
  return card;
}

/* Draw one placement's card again (its offers changed), its snippets left open if they were. */
function refresh(key) {
  const old = document.querySelector(`section.placement[data-placement="${key}"]`);
  const card = placementCard(placements.find((x) => x.key === key));
  card.querySelector('details.snippets').open = old.querySelector('details.snippets').open;
  old.replaceWith(card);
  return card;
}

function offerCount(list) {
  const on = list.filter((o) => o.enabled).length;
  return list.length ? `${list.length} offer${list.length === 1 ? '' : 's'}, ${on} on` : 'no offer yet';
}

function placementCard(p) {
  const list = offersOf(p.key);
  const card = el('section', { class: 'card placement', id: `placement-${p.key}`, dataset: { placement: p.key } },
    el('div', 'card-head',
      el('h2', null, p.name, ' ', el('code', 'key placement-key', p.key)),
      el('span', 'muted small offer-count', offerCount(list))),
    p.description ? el('p', 'muted placement-description', p.description) : null,
    el('div', 'placement-facts',
      el('div', 'fact',
        el('h3', 'small-head', 'Default content'),
        p.default_content === null || p.default_content === undefined
          ? el('p', 'muted small default-content', 'None: when no offer applies, the site keeps what it has.')
          : contentBlock(p.default_content, null)),
      el('div', 'fact',
        el('h3', 'small-head', 'Content shape'),
        schemaSummary(p.content_schema),
        p.recommendations_model && p.recommendations_count
          ? [el('h3', 'small-head', 'Recommendations'),
            el('p', 'small', `${p.recommendations_count} items from `, el('code', null, p.recommendations_model))]
          : null)),
    el('h3', 'small-head', 'Offers, highest priority first'),
    offersTable(p, list),
    el('p', { class: 'msg error offer-error', role: 'alert', hidden: true }),
    config.can_manage ? offerArea(p, list) : null,
    snippets(p));
  return card;
}

function offersTable(p, list) {
  if (!list.length) {
    if (p.recommendations_model && p.recommendations_count) {
      return el('p', 'muted no-offers', `No offer needed: each person gets their ${p.recommendations_count} ` +
        'recommended items (the most popular ones without personalisation consent). Add an offer to show ' +
        'something else to some people.');
    }
    return el('p', 'muted no-offers', 'No offer yet: everyone gets the default content.');
  }
  const ranked = list.some((o) => o.rank_by);  // a column only when an offer ranks by a score
  const head = ['Offer', 'Who', 'Priority', 'Weight', 'Dates', 'Caps', ranked ? 'Rank by' : null, 'On'];
  return el('table', 'table compact offers-table',
    el('thead', null, el('tr', null, head.filter(Boolean).map((h) => el('th', ['Priority', 'Weight'].includes(h) ? 'num' : null, h)),
      config.can_manage ? el('th', null, el('span', 'sr-only', 'Edit')) : null)),
    el('tbody', null, list.map((o) => offerRow(p, o, ranked))));
}

function offerRow(p, o, ranked) {
  const summary = truncate(JSON.stringify(o.content), 60);
  return el('tr', { class: o.enabled ? 'offer-row' : 'offer-row off', dataset: { offer: o.key } },
    el('td', 'offer-cell', el('strong', null, o.name), ' ', el('code', 'small', o.key),
      el('div', { class: 'muted small content-line', title: pretty(o.content) }, summary)),
    el('td', 'who-cell', who(o.eligibility)),
    el('td', 'num', String(o.priority)),
    el('td', 'num', String(o.weight)),
    el('td', 'small dates-cell', dates(o) || el('span', 'muted', 'always')),
    el('td', 'small caps-cell', caps(o) || el('span', 'muted', 'none')),
    ranked ? el('td', 'small', o.rank_by ? el('code', null, o.rank_by) : el('span', 'muted', '—')) : null,
    el('td', null, config.can_manage ? toggle(p, o) : el('span', `pill ${o.enabled ? 'ok' : 'off'}`, o.enabled ? 'on' : 'off')),
    config.can_manage ? el('td', 'right', el('button', {
      class: 'button small', type: 'button', dataset: { edit: o.key },
      onclick: () => openOfferForm(p, o),
    }, 'Edit')) : null);
}

/* PATCH an offer. Its dates go along even when unchanged: the offer service re-checks the
   stored dates it is not sent as if they were text input, and refuses them. */
function patchOffer(o, changes) {
  const kept = {};
  if (o.starts_at && !('starts_at' in changes)) kept.starts_at = o.starts_at;
  if (o.ends_at && !('ends_at' in changes)) kept.ends_at = o.ends_at;
  return api('PATCH', `/api/v1/offers/${o.id}/`, { ...changes, ...kept });
}

function toggle(p, o) {
  const box = el('input', {
    type: 'checkbox', checked: o.enabled, class: 'switch', role: 'switch',
    'aria-label': `${o.name} on`, title: o.enabled ? 'On: switch it off' : 'Off: switch it on',
  });
  box.addEventListener('change', async () => {
    const card = box.closest('section.placement');
    const problem = card.querySelector('.offer-error');
    problem.hidden = true;
    box.disabled = true;
    try {
      Object.assign(o, await patchOffer(o, { enabled: box.checked }));
      // in place: a form being filled in below stays as it is
      box.closest('tr').classList.toggle('off', !o.enabled);
      box.title = o.enabled ? 'On: switch it off' : 'Off: switch it on';
      card.querySelector('.offer-count').textContent = offerCount(offersOf(p.key));
      previewStale(`${o.name} was switched ${o.enabled ? 'on' : 'off'}: preview again to see the effect.`);
    } catch (err) {
      box.checked = o.enabled;
      fill(problem, `${o.name} was not switched: `, err instanceof ApiError ? err.message : unreachable);
      problem.hidden = false;
    }
    box.disabled = false;
  });
  return box;
}

// ---- the offer form -------------------------------------------------------------------------

function offerArea(p, list) {
  const template = $('offer-form-template');
  const form = template.content.firstElementChild.cloneNode(true);
  const holder = el('div', { class: 'offer-form-holder', hidden: true }, form);
  const openButton = el('button', { class: 'button offer-new', type: 'button', onclick: () => openOfferForm(p, null) }, 'New offer');
  form.querySelectorAll('[data-for]').forEach((label) => {
    const input = form.elements[label.dataset.for];
    input.id = `offer-${p.key}-${label.dataset.for}`;
    label.htmlFor = input.id;
  });
  form.addEventListener('submit', (e) => { e.preventDefault(); saveOffer(p, form); });
  form.querySelector('[data-cancel]').addEventListener('click', () => {
    delete editing[p.key];
    holder.hidden = true;
    openButton.hidden = false;
  });
  form.querySelector('[data-delete]').addEventListener('click', () => deleteOffer(p, form));
  const area = el('div', 'offer-area', openButton, holder);
  // a placement without offers asks for its first one (a recommendations rail needs none)
  const rail = Boolean(p.recommendations_model && p.recommendations_count);
  if (p.key in editing || (!list.length && !rail)) fillOfferForm(p, form, editing[p.key] || null, holder, openButton);
  return area;
}

function openOfferForm(p, offer) {
  editing[p.key] = offer;
  const card = document.querySelector(`section.placement[data-placement="${p.key}"]`);
  const form = card.querySelector('form.offer-form');
  fillOfferForm(p, form, offer, form.parentElement, card.querySelector('button.offer-new'));
  form.scrollIntoView({ block: 'nearest' });
  form.elements[offer ? 'name' : 'key'].focus();
}

function fillOfferForm(p, form, offer, holder, openButton) {
  const f = form.elements;
  const box = form.querySelector('[data-form-error]');
  clearErrors(form, box);
  holder.hidden = false;
  openButton.hidden = true;
  fill(form.querySelector('[data-title]'), offer ? ['Edit offer ', el('code', null, offer.key)] : 'New offer');
  form.querySelector('[data-submit]').textContent = offer ? 'Save offer' : 'Add offer';
  form.querySelector('[data-delete]').hidden = !offer;
  f.key.value = offer ? offer.key : '';
  f.key.readOnly = Boolean(offer);
  f.key.title = offer ? 'An offer keeps its key: impressions count by it' : '';
  f.name.value = offer ? offer.name : '';
  // a new offer's content starts from the default, or from the fields the schema requires
  f.content.value = pretty(offer ? offer.content : p.default_content ?? skeleton(p.content_schema));
  f.eligibility.value = offer && offer.eligibility ? pretty(offer.eligibility) : '';
  f.starts_at.value = offer && offer.starts_at ? offer.starts_at.slice(0, 10) : '';
  f.ends_at.value = offer && offer.ends_at ? offer.ends_at.slice(0, 10) : '';
  f.priority.value = offer ? offer.priority : 0;
  f.weight.value = offer ? offer.weight : 1;
  f.cap_day.value = offer && offer.cap_day ? offer.cap_day : '';
  f.cap_week.value = offer && offer.cap_week ? offer.cap_week : '';
  f.cap_lifetime.value = offer && offer.cap_lifetime ? offer.cap_lifetime : '';
  f.rank_by.value = offer ? offer.rank_by : '';
  f.enabled.checked = offer ? offer.enabled : true;
  form.dataset.initial = JSON.stringify(offerBody(form, {}));
}

function skeleton(schema) {
  const props = (schema && schema.properties) || {};
  return Object.fromEntries(((schema && schema.required) || []).map((k) =>
    [k, { string: '', number: 0, integer: 0, boolean: false, array: [], object: {} }[(props[k] || {}).type] ?? null]));
}

function numberOr(input, empty) {
  const text = input.value.trim();
  return text === '' ? empty : Number(text);
}

/* The form as the API's offer fields (a date as its day, an empty cap as null). */
function offerBody(form, problems) {
  const f = form.elements;
  const eligibility = jsonOf(form, 'eligibility', problems);
  return {
    key: f.key.value.trim(),
    name: f.name.value.trim(),
    content: jsonOf(form, 'content', problems) ?? null,
    eligibility: eligibility === undefined ? null : eligibility,
    starts_at: f.starts_at.value || null,
    ends_at: f.ends_at.value || null,
    priority: numberOr(f.priority, 0),
    weight: numberOr(f.weight, 1),
    cap_day: numberOr(f.cap_day, null),
    cap_week: numberOr(f.cap_week, null),
    cap_lifetime: numberOr(f.cap_lifetime, null),
    rank_by: f.rank_by.value.trim(),
    enabled: f.enabled.checked,
  };
}

async function saveOffer(p, form) {
  const box = form.querySelector('[data-form-error]');
  clearErrors(form, box);
  const problems = {};
  const body = offerBody(form, problems);
  if (Object.keys(problems).length) return showErrors(form, box, invalid(problems));
  const current = editing[p.key] || null;
  const button = form.querySelector('[data-submit]');
  button.disabled = true;
  try {
    let saved;
    if (current) {
      // only what changed: a date set through the API to the minute stays as it was
      const initial = JSON.parse(form.dataset.initial);
      const changed = Object.fromEntries(Object.entries(body)
        .filter(([k, v]) => k !== 'key' && JSON.stringify(v) !== JSON.stringify(initial[k])));
      saved = await patchOffer(current, changed);
      Object.assign(current, saved);
    } else {
      saved = await api('POST', '/api/v1/offers/', { ...body, placement: p.key });
      offers.push(saved);
      const placement = placements.find((x) => x.key === p.key);
      placement.offers = [...placement.offers, saved.key];
    }
    delete editing[p.key];
    const row = refresh(p.key).querySelector(`tr[data-offer="${saved.key}"]`);
    if (row) row.classList.add('just-saved');
    previewStale('The offers changed: preview again to see the effect.');
  } catch (err) {
    button.disabled = false;
    showErrors(form, box, err);
  }
  return undefined;
}

async function deleteOffer(p, form) {
  const current = editing[p.key];
  if (!current || !window.confirm(`Delete the offer ${current.key}? Sites stop showing it at once.`)) return;
  const box = form.querySelector('[data-form-error]');
  try {
    await api('DELETE', `/api/v1/offers/${current.id}/`);
    offers.splice(offers.indexOf(current), 1);
    const placement = placements.find((x) => x.key === p.key);
    placement.offers = placement.offers.filter((k) => k !== current.key);
    delete editing[p.key];
    refresh(p.key);
    previewStale('The offers changed: preview again to see the effect.');
  } catch (err) { showErrors(form, box, err); }
}

// ---- the code a site pastes -----------------------------------------------------------------

function snippetBlock(id, text) {
  return el('div', 'snippet-wrap',
    el('pre', { class: 'snippet', id }, text),
    el('button', { class: 'button small copy', type: 'button', dataset: { copyFrom: id } }, 'Copy'));
}

function snippets(p) {
  const script = new URL(config.decide_js, origin).href;
  const browser = `<div data-placement="${p.key}"></div>

<script type="module">
  import { createDecide } from "${script}";

  const decide = createDecide({ writeKey: "YOUR_WRITE_KEY" });
  decide.fill();  // every [data-placement] on the page gets its content
</script>`;
  const body = `{"userId": "USER_ID", "placements": ["${p.key}"], "context": {"page": {"url": "https://www.example.com/"}}}`;
  const server = `curl -s ${origin}/v1/decide \\
  -H "Authorization: Bearer sk_…" \\
  -H "Content-Type: application/json" \\
  -d '${body}'`;
  return el('details', 'snippets',
    el('summary', null, 'Show it on a site'),
    el('div', 'snippet-stack',
      el('h4', null, 'In the browser'),
      snippetBlock(`snippet-browser-${p.key}`, browser),
      el('p', 'hint', 'With a source\'s write key, the site\'s origin among that source\'s allowed origins (',
        el('a', { href: config.sources_url }, 'Sources'), '). Only allowlisted traits reach the browser.'),
      el('h4', null, 'From a server'),
      snippetBlock(`snippet-server-${p.key}`, server),
      el('p', 'hint', 'With a server key (', el('code', null, 'POST /api/v1/server-keys/'), '). The answer\'s ',
        el('code', null, `placements.${p.key}`), ' holds the offer and its content; add ',
        el('code', null, '"explain": true'), ' for every offer\'s outcome.')));
}

// ---- the new placement ----------------------------------------------------------------------

function showPlacementForm(show) {
  $('placement-new').hidden = !show;
  if (show) {
    $('placement-new').scrollIntoView({ block: 'nearest' });
    $('placement-key').focus();
  }
}

const placementForm = $('placement-form');
if (placementForm) {
  $('placement-new-open').addEventListener('click', () => showPlacementForm(true));
  $('placement-new-close').addEventListener('click', () => showPlacementForm(false));
  placementForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const box = $('placement-error');
    clearErrors(placementForm, box);
    const f = placementForm.elements;
    const problems = {};
    const body = {
      key: f.key.value.trim(),
      name: f.name.value.trim(),
      description: f.description.value.trim(),
      content_schema: jsonOf(placementForm, 'content_schema', problems) ?? {},
      default_content: jsonOf(placementForm, 'default_content', problems) ?? null,
      recommendations_model: f.recommendations_model.value,
      recommendations_count: numberOr(f.recommendations_count, 0),
    };
    if (Object.keys(problems).length) return showErrors(placementForm, box, invalid(problems));
    $('placement-create').disabled = true;
    try {
      const made = await api('POST', '/api/v1/placements/', body);
      placements.push(made);
      placementForm.reset();
      showPlacementForm(false);
      add(made).scrollIntoView({ block: 'start' });
    } catch (err) {
      showErrors(placementForm, box, err);
    }
    $('placement-create').disabled = false;
    return undefined;
  });
}

// ---- the preview ----------------------------------------------------------------------------

const previewForm = $('preview-form');
const result = $('preview-result');
let picked = null;  // the profile previewed: {id, display_name, identities}
let searchTimer = null;
let searchSeq = 0;

function previewStale(note) {
  if (!result.querySelector('.preview-answer')) return;
  result.classList.add('stale');
  const existing = result.querySelector('.stale-note');
  if (existing) existing.remove();
  result.prepend(el('p', 'msg warn stale-note', note));
}

function whoMode() {
  return previewForm.elements.who.value;
}

previewForm.addEventListener('change', (e) => {
  if (e.target.name === 'who') {
    previewForm.querySelectorAll('[data-who]').forEach((n) => { n.hidden = n.dataset.who !== whoMode(); });
  }
});

function identityChips(identities, most = 2) {
  return el('span', 'chips', identities.slice(0, most).map((i) =>
    el('span', `chip chip-${i.type}`, el('span', 'chip-type', i.type), el('span', 'chip-value', i.value))),
  identities.length > most ? el('span', 'muted small', `+${identities.length - most}`) : null);
}

function pick(profile) {
  picked = profile;
  const box = $('preview-picked');
  $('profile-matches').hidden = true;
  if (!profile) {
    box.hidden = true;
    $('preview-search').hidden = false;
    $('preview-search-hint').hidden = false;
    $('preview-search').focus();
    return;
  }
  $('preview-search').hidden = true;
  $('preview-search-hint').hidden = true;
  fill(box, el('div', 'picked-who',
    el('a', { href: `/profiles/${profile.id}/`, class: 'picked-name' }, profile.display_name || `Profile ${profile.id}`),
    el('span', 'muted small', ` #${profile.id}`)),
  identityChips(profile.identities),
  el('button', { class: 'button small', type: 'button', id: 'preview-unpick', onclick: () => pick(null) }, 'Change'));
  box.hidden = false;
}

async function search(text) {
  const list = $('profile-matches');
  const seq = ++searchSeq;
  if (!text) { list.hidden = true; return; }
  // "email:ann@example.com" is one exact identifier; anything else any identifier's beginning
  const exact = /^[a-z_]+:\S/.test(text) && !text.startsWith('http');
  const url = exact ? `/api/v1/profiles/?identifier=${encodeURIComponent(text)}`
    : `/api/v1/profiles/?q=${encodeURIComponent(text)}`;
  let found;
  try {
    found = await getJSON(url);
  } catch (err) {
    if (seq !== searchSeq) return;
    fill(list, el('li', 'muted small', err instanceof ApiError ? err.message : unreachable));
    list.hidden = false;
    return;
  }
  if (seq !== searchSeq) return;  // a later search answered first
  const rows = found.results.slice(0, 8);
  fill(list, rows.length ? rows.map((p) => el('li', null, el('button', {
    type: 'button', class: 'match', dataset: { profile: p.id }, onclick: () => pick(p),
  }, el('span', 'match-name', p.display_name || `Profile ${p.id}`), identityChips(p.identities))))
    : el('li', 'muted small', `Nobody with an identifier “${text}”${exact ? '' : ' or starting with it'}.`));
  list.hidden = false;
}

if ($('preview-search')) {
  const input = $('preview-search');
  input.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => search(input.value.trim()), 250);
  });
  input.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    e.preventDefault();
    clearTimeout(searchTimer);
    const first = $('profile-matches').querySelector('button.match');
    if (first && !$('profile-matches').hidden) first.click();
    else search(input.value.trim());
  });
}

function contextOf(f) {
  const context = {};
  const page = {};
  if (f.url.value.trim()) page.url = f.url.value.trim();
  if (f.referrer.value.trim()) page.referrer = f.referrer.value.trim();
  if (Object.keys(page).length) context.page = page;
  if (f.device.value) context.device = { type: f.device.value };
  if (f.locale.value.trim()) context.locale = f.locale.value.trim();
  return context;
}

previewForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const box = $('preview-error');
  clearErrors(previewForm, box);
  const f = previewForm.elements;
  const problems = {};
  const known = whoMode() === 'profile';
  const traits = known ? {} : jsonOf(previewForm, 'traits', problems) ?? {};
  if (Object.keys(problems).length) return showErrors(previewForm, box, invalid(problems));
  if (known && !picked) {
    fill(box, 'Pick a person first, or preview an unknown visitor.');
    box.hidden = false;
    return undefined;
  }
  const body = {
    profile_id: known ? picked.id : null,
    context: contextOf(f),
    traits,
    placements: null,
    experiments: [...previewForm.querySelectorAll('input[name=experiments]:checked')].map((i) => i.value),
  };
  $('preview-run').disabled = true;
  result.classList.add('loading');
  try {
    const answer = await api('POST', '/api/v1/decisions/preview/', body);
    showAnswer(answer, known ? picked : null);
  } catch (err) {
    showErrors(previewForm, box, err);
  }
  result.classList.remove('loading');
  $('preview-run').disabled = false;
  return undefined;
});

const OUTCOME_CLASS = {
  chosen: 'ok', outranked: 'outranked', disabled: 'off', 'not started': 'warn', ended: 'off',
  capped: 'off', 'not eligible': 'off',
};

function outcomeWhy(entry, offer) {
  if (entry.outcome === 'not eligible') {
    return [el('div', null, el('code', 'failed-path', entry.path), ' ', el('span', null, entry.detail)),
      offer && offer.eligibility ? el('div', 'small rule-line', who(offer.eligibility, entry.path)) : null];
  }
  if (entry.outcome === 'outranked') return el('span', 'muted', 'eligible, but another offer ranks higher');
  if (entry.outcome === 'chosen') return el('span', 'muted', `eligible, priority ${offer ? offer.priority : ''}`);
  if (entry.outcome === 'disabled') return el('span', 'muted', 'switched off');
  return entry.detail || '';
}

function placementAnswer(key, d, outcomes, recommended) {
  const p = placements.find((x) => x.key === key);
  const fromDefault = d.offer === null;
  return el('section', { class: 'preview-placement', dataset: { placement: key } },
    el('div', 'answer-head',
      el('h3', null, p ? p.name : key, ' ', el('code', 'key small', key)),
      fromDefault ? el('span', 'pill off answer-offer', 'default content')
        : el('span', 'pill ok answer-offer', 'offer ', d.offer)),
    el('p', 'answer-reason', d.reason),
    el('div', 'answer-body',
      el('div', 'answer-content',
        el('h4', 'small-head', 'Content'),
        d.content === null || d.content === undefined ? el('p', 'muted small', 'None.') : contentBlock(d.content, null),
        recommended ? el('p', 'small recs', el('span', 'muted', 'Recommended items: '), recommended.length
          ? recommended.map((item, i) => [i ? ', ' : '', el('code', null, item.name || item.id)])
          : el('span', 'muted', 'none yet')) : null),
      el('div', 'answer-outcomes',
        el('h4', 'small-head', 'Every offer'),
        outcomes.length ? el('table', 'table compact outcomes-table',
          el('thead', null, el('tr', null, el('th', null, 'Offer'), el('th', null, 'Outcome'), el('th', null, 'Why'))),
          el('tbody', null, outcomes.map((entry) => {
            const offer = offers.find((o) => o.key === entry.offer);
            return el('tr', { dataset: { offer: entry.offer, outcome: entry.outcome } },
              el('td', null, offer ? offer.name : entry.offer, el('div', 'muted small', el('code', null, entry.offer))),
              el('td', null, el('span', `pill ${OUTCOME_CLASS[entry.outcome] || 'off'}`, entry.outcome)),
              el('td', 'why-cell', outcomeWhy(entry, offer)));
          })))
          : el('p', 'muted small no-outcomes', !p || !offersOf(key).length ? 'No offer to consider.'
            : 'No offer was considered: ' + d.reason.replace(/^default: /, '') + '.'))));
}

function traitsTable(traits) {
  const keys = Object.keys(traits).sort();
  if (!keys.length) return el('p', 'muted small', 'None.');
  return el('table', 'table compact kv traits-table', el('tbody', null, keys.map((k) =>
    el('tr', null, el('th', null, k), el('td', null, el('code', null, typeof traits[k] === 'string' ? traits[k] : JSON.stringify(traits[k])))))));
}

function showAnswer(answer, profile) {
  const explain = answer.explain || { placements: {}, experiments: {} };
  const experimentKeys = Object.keys(answer.experiments || {});
  const recs = answer.recommendations || {};
  result.classList.remove('stale');
  fill(result, el('div', 'preview-answer',
    el('p', 'answer-who', profile
      ? ['For ', el('a', { href: `/profiles/${profile.id}/` }, profile.display_name || `profile ${profile.id}`), ` (#${answer.profile_id})`]
      : 'For an unknown visitor', answer.degraded ? el('span', 'pill warn', ' degraded: the store did not answer in time') : null),
    Object.entries(answer.placements).map(([key, d]) => placementAnswer(key, d, explain.placements[key] || [], recs[key])),
    experimentKeys.length ? el('section', 'preview-experiments',
      el('h4', 'small-head', 'Experiments'),
      el('table', 'table compact experiments-answer',
        el('thead', null, el('tr', null, el('th', null, 'Experiment'), el('th', null, 'Variant'), el('th', null, 'Why'))),
        el('tbody', null, experimentKeys.map((k) => {
          const v = answer.experiments[k];
          return el('tr', { dataset: { experiment: k } }, el('td', null, el('code', null, k)),
            el('td', null, v.variant ? el('span', 'pill ok', v.variant) : el('span', 'muted', 'none')),
            el('td', 'small', explain.experiments[k] || ''));
        })))) : null,
    profile ? el('section', 'preview-profile',
      el('div', 'profile-facts',
        el('div', null, el('h4', 'small-head', 'Segments'),
          answer.segments.length
            ? el('div', { class: 'chips', id: 'preview-segments' }, answer.segments.map((s) => el('span', 'pill rfm', s)))
            : el('p', 'muted small', 'In no segment.')),
        el('div', null, el('h4', 'small-head', 'Traits the API answers'), traitsTable(answer.traits)))) : null));
}

render();
