/* What the builder's suggestion lists offer (suggest.js draws them): traits and computed
   traits, events by their type (track events; pages and screens, which event conditions do
   not count), an event's properties, and the values of a trait or a property — those the
   page data names (built-in computed traits, clusters, deciles), else the few seen in the
   workspace (the segments API's values/, asked once per name and remembered). */

import { api } from '../cdp/lib/api.js';
import { grouped } from '../cdp/lib/format.js';

export const TRAIT_GROUPS = [
  { key: 'trait', label: 'Traits, as sent' },
  { key: 'computed', label: 'Computed traits' },
];
export const EVENT_GROUPS = [
  { key: 'track', label: 'Track events' },
  { key: 'page', label: 'Pages (event conditions count track events only)' },
  { key: 'screen', label: 'Screens (event conditions count track events only)' },
];
export const PROPERTY_GROUPS = [{ key: 'property', label: 'Properties of the event' }];
export const VALUE_GROUPS = [
  { key: 'known', label: 'Values' },
  { key: 'seen', label: 'Values seen, most frequent first' },
];

const TYPE_NOTES = { string: 'text', number: 'number', boolean: 'true/false',
  datetime: 'date' };

function typeNote(entry) {
  if (entry.mixed) return 'mixed types';
  return TYPE_NOTES[entry.type] || '';
}

export function traitItems(model) {
  return (model.suggest.traits || []).map((t) => {
    const computed = t.kind === 'computed';
    return {
      value: t.name,
      key: t.name,
      label: t.title || t.label || t.name,
      kind: computed ? 'computed' : 'trait',
      kindLabel: computed ? 'computed trait' : 'trait',
      group: computed ? 'computed' : 'trait',
      note: [t.note, typeNote(t)].filter((x) => x && x !== 'computed').join(' · '),
    };
  });
}

export function eventItems(model) {
  const kinds = model.suggest.event_kinds ||
    (model.suggest.events || []).map((name) => ({ name, type: 'track' }));
  return kinds.map((e) => {
    const track = e.type === 'track';
    return {
      value: e.name,
      key: e.name,
      label: e.name,
      kind: e.type,
      kindLabel: track ? 'event (track)' : e.type,
      group: e.type,
      note: e.count ? 'seen ' + grouped(e.count) + '×' : '',
      disabled: !track,
    };
  });
}

export function propertyItems(model, event) {
  return model.properties(event).map((p) => ({
    value: p.name,
    key: p.name,
    label: p.title || p.name,
    kind: 'property',
    kindLabel: 'property',
    group: 'property',
    note: typeNote(p),
  }));
}

const seen = new Map();  // url -> Promise of the values/ answer

function seenValues(model, query, unit) {
  const url = (model.valuesUrl || '/api/v1/segments/values/') + '?' + new URLSearchParams(query);
  if (!seen.has(url)) {
    seen.set(url, api('GET', url).catch((err) => { seen.delete(url); throw err; }));
  }
  return seen.get(url).then((answer) => (answer.values || []).map((v) => ({
    value: v.value,
    label: v.value,
    kind: 'value',
    kindLabel: 'value',
    group: 'seen',
    note: grouped(v.count) + ' ' + unit + (v.count === 1 ? '' : 's'),
  })));
}

/* The values to suggest for a trait: those the page data lists, else those seen. */
export function traitValueItems(model, name) {
  const trait = model.trait(name);
  if (!name || !trait.name) return [];  // only names the workspace knows have values to show
  if (trait.values && trait.values.length) {
    const titles = trait.value_titles || {};
    return trait.values.map((v) => ({ value: v, label: titles[v] || v, key: v, kind: 'value',
      kindLabel: 'value', group: 'known' }));
  }
  if (trait.type === 'datetime') return [];
  return seenValues(model, { trait: name }, 'profile');
}

export function propertyValueItems(model, event, property) {
  if (!event || !property || !model.property(event, property).name) return [];
  return seenValues(model, { event, property }, 'event');
}
