/* The rule as the builder edits it: a tree of nodes (groups ALL/ANY, NOT on any node, trait /
   event / segment / consent / random-bucket conditions, and raw JSON for what has no form),
   read from the rule JSON and written back to it. The operators come from the server
   (config.language, segments/rules/schema.py builder_language()). */

let nextId = 1;

function isNumeric(text) { return /^\s*-?\d+(\.\d+)?\s*$/.test(text); }
// a number when it reads as one; otherwise the text, for the API to name the problem
function number(text) { return isNumeric(String(text)) ? Number(text) : String(text); }
function integer(text) {
  const n = Number(text);
  return String(text).trim() !== '' && Number.isInteger(n) ? n : String(text);
}
function scalar(text, type) {
  const s = String(text === undefined ? '' : text);
  if (type === 'number') return number(s);
  if (type === 'boolean' || type === 'any') {
    if (s === 'true') return true;
    if (s === 'false') return false;
  }
  if (type === 'any' && isNumeric(s)) return Number(s);
  return s;
}
function blank(v) { return v === undefined || v === null || String(v).trim() === ''; }

export class RuleModel {
  constructor(language, suggest) {
    this.ops = language.families;
    this.suggest = suggest;
    this.traits = Object.fromEntries((suggest.traits || []).map((t) => [t.name, t]));
  }

  // ---- what the workspace knows of names ---------------------------------------------------
  trait(name) { return this.traits[name] || {}; }
  traitType(name) { return this.trait(name).type || 'any'; }
  properties(event) { return (this.suggest.properties || {})[event] || []; }
  propertyType(event, property) {
    const found = this.properties(event).find((p) => p.name === property);
    return found ? found.type : 'any';
  }
  property(event, name) { return this.properties(event).find((p) => p.name === name) || {}; }
  hasValue(op) { return !this.ops.presence.includes(op); }

  /* How the server will compare what the person typed (profiles/coercion.py), in words. */
  comparedAs(op, text, type) {
    const ops = this.ops;
    if (!this.hasValue(op)) return '';
    if (ops.number.includes(op) || ops.range.includes(op)) {
      return 'compared as a number; text such as "60" counts as 60';
    }
    if (ops.date.includes(op)) return 'compared as a date (ISO 8601 text, UTC if no zone)';
    if (op === 'regex') return 'text only, case-sensitive';
    if (ops.string.includes(op)) return 'text only, ignoring case';
    const items = ops.set.includes(op) ?
      String(text).split(',').map((x) => x.trim()).filter((x) => x !== '') : [String(text)];
    const kinds = new Set(items.map((x) => typeof scalar(x, type)));
    if (!kinds.size) return '';
    if (kinds.size > 1) return 'numbers by value ("60" = 60), text exactly';
    const kind = [...kinds][0];
    if (kind === 'number') return 'compared as a number: 60, 60.0 and "60" all match';
    if (kind === 'boolean') return 'true or false, not text';
    return 'compared as text, exactly (case and spaces count)';
  }

  /* A warning for a trait or property seen with more than one type of value, or ''. */
  mixedWarning(info, name, op) {
    if (!info || !info.mixed) return '';
    let text = `${name} was sent as ${info.mixed}.`;
    const numeric = this.ops.number.includes(op) || this.ops.range.includes(op);
    if (info.text_values) {
      const other = info.text_values - info.text_numbers;
      if (!other) text += ' All of its text reads as numbers, so number comparisons include it.';
      else if (numeric) {
        text += ` ${other.toLocaleString('en')} text value${other === 1 ? '' : 's'} ` +
          'that are not numbers never match a number comparison.';
      } else text += ' Text and numbers compare differently; check the count.';
    }
    return text;
  }

  // ---- new nodes ---------------------------------------------------------------------------
  group(mode, children) {
    return { id: nextId++, kind: 'group', mode, negate: false, children: children || [] };
  }

  condition(kind) {
    const node = { id: nextId++, kind, negate: false };
    if (kind === 'trait') Object.assign(node, { trait: '', op: 'eq', value: '' });
    if (kind === 'event') {
      Object.assign(node, { event: '', never: false, countOp: 'gte', countValue: '1', days: '',
        where: [],
        window: 'last',  // last (N days or hours; empty = all time) | between (two dates)
        unit: 'days', from: '', to: '', fromOriginal: '', toOriginal: '' });
    }
    if (kind === 'segment') node.segment = ((this.suggest.segments || [])[0] || {}).key || '';
    if (kind === 'random_bucket') node.percent = '10';
    if (kind === 'model') {
      const first = (this.suggest.clusters || [])[0];
      node.model = first ? first.key : '';
      node.clusters = first && first.clusters.length ? [first.clusters[0].label] : [];
    }
    if (kind === 'consent') {
      node.purpose = ((this.suggest.purposes || [])[0] || {}).key || '';
      node.status = 'granted';
    }
    return node;
  }

  // ---- rule JSON -> tree -------------------------------------------------------------------
  comparisonFrom(data, target) {
    target.op = data.op;
    const v = data.value;
    Object.assign(target, { value: '', value2: '', dateMode: 'date' });
    if (v === undefined || v === null) return;
    if (this.ops.range.includes(data.op) && Array.isArray(v)) [target.value, target.value2] = v;
    else if (Array.isArray(v)) target.value = v.join(', ');
    else if (data.op === 'within_last' && typeof v === 'object') {
      target.value = v.days !== undefined ? v.days : (v.hours || 0) / 24;
    } else if (typeof v === 'object' && v.days_ago !== undefined) {
      target.dateMode = 'days_ago';
      target.value = v.days_ago;
    } else if (this.ops.date.includes(data.op)) target.value = String(v).slice(0, 10);
    else target.value = String(v);
  }

  fromJSON(data, negate = false) {
    let node = null;
    if (data && typeof data === 'object' && !Array.isArray(data)) {
      const keys = Object.keys(data);
      if (keys.length === 1 && data.not) return this.fromJSON(data.not, !negate);
      if (keys.length === 1 && Array.isArray(data.all || data.any)) {
        const mode = data.all ? 'all' : 'any';
        node = this.group(mode, data[mode].map((c) => this.fromJSON(c, false)));
      } else if (typeof data.trait === 'string') {
        node = this.condition('trait');
        node.trait = data.trait;
        this.comparisonFrom(data, node);
      } else if (typeof data.event === 'string' && (!data.between ||
          (Array.isArray(data.between) && data.between.length === 2 &&
           data.between.every((d) => typeof d === 'string')))) {
        node = this.eventFrom(data);
      } else if (keys.length === 1 && data.segment !== undefined) {
        node = this.condition('segment');
        node.segment = String(data.segment);
      } else if (typeof data.consent === 'string' &&
                 keys.every((k) => k === 'consent' || k === 'status') &&
                 [undefined, 'granted', 'denied'].includes(data.status)) {
        node = this.condition('consent');
        node.purpose = data.consent;
        node.status = data.status || 'granted';
      } else if (typeof data.model === 'string' && keys.every((k) => k === 'model' || k === 'cluster') &&
                 (typeof data.cluster === 'string' || (Array.isArray(data.cluster) &&
                  data.cluster.every((c) => typeof c === 'string')))) {
        node = this.condition('model');
        node.model = data.model;
        node.clusters = Array.isArray(data.cluster) ? [...data.cluster] : [data.cluster];
      } else if (keys.length === 1 && data.random_bucket !== undefined) {
        node = this.condition('random_bucket');
        const spec = data.random_bucket;
        node.percent = String(typeof spec === 'object' ? spec.percent : spec);
      }
    }
    if (!node) {
      // anything the editor has no form for (date ranges, hour windows…) stays editable as JSON
      node = { id: nextId++, kind: 'raw', negate: false, text: JSON.stringify(data, null, 2) };
    }
    node.negate = !!negate;
    return node;
  }

  eventFrom(data) {
    const node = this.condition('event');
    node.event = data.event;
    node.never = !!data.never;
    if (data.count) { node.countOp = data.count.op; node.countValue = String(data.count.value); }
    if (data.within && data.within.hours !== undefined) {
      node.unit = 'hours';
      node.days = String(data.within.hours);
    } else if (data.within) node.days = String(data.within.days);
    if (data.between) {
      node.window = 'between';
      [node.fromOriginal, node.toOriginal] = data.between;
      node.from = data.between[0].slice(0, 10);
      node.to = data.between[1].slice(0, 10);
    }
    node.where = (data.where || []).map((w) => {
      const row = { property: w.property };
      this.comparisonFrom(w, row);
      return row;
    });
    return node;
  }

  // ---- tree -> rule JSON (and the path of each node, to place the API's errors) -----------
  /* {rule, paths}: paths maps "rule.all[0].not" etc. to the id of the node there. */
  toJSON(root) {
    const paths = {};
    const rule = this.nodeJSON(root, 'rule', paths);
    return { rule, paths };
  }

  nodeJSON(node, path, paths) {
    let inner = path, out;
    if (node.negate) { paths[path] = node.id; inner = path + '.not'; }
    paths[inner] = node.id;
    if (node.kind === 'group') {
      out = { [node.mode]: node.children.map((c, i) =>
        this.nodeJSON(c, `${inner}.${node.mode}[${i}]`, paths)) };
    } else if (node.kind === 'trait') {
      out = this.comparisonJSON(node, this.traitType(node.trait), { trait: node.trait.trim() });
    } else if (node.kind === 'event') {
      out = this.eventJSON(node);
    } else if (node.kind === 'segment') {
      out = { segment: node.segment };
    } else if (node.kind === 'random_bucket') {
      out = { random_bucket: { percent: number(node.percent) } };
    } else if (node.kind === 'consent') {
      out = { consent: node.purpose, status: node.status };
    } else if (node.kind === 'model') {
      out = { model: node.model, cluster: node.clusters.length === 1 ? node.clusters[0] : node.clusters };
    } else {
      try { out = JSON.parse(node.text); } catch (e) { out = node.text; }
    }
    return node.negate ? { not: out } : out;
  }

  comparisonJSON(node, type, out) {
    const op = node.op;
    out.op = op;
    if (!this.hasValue(op)) return out;
    const v = node.value === undefined ? '' : node.value;
    if (this.ops.range.includes(op)) out.value = [number(v), number(node.value2 || '')];
    else if (this.ops.set.includes(op)) {
      out.value = String(v).split(',').map((s) => s.trim()).filter((s) => s !== '')
        .map((s) => scalar(s, type));
    } else if (op === 'within_last') out.value = { days: integer(v) };
    else if (this.ops.date.includes(op)) {
      out.value = node.dateMode === 'days_ago' ? { days_ago: integer(v) } : String(v);
    } else if (this.ops.number.includes(op)) out.value = number(v);
    else if (this.ops.scalar.includes(op)) out.value = scalar(v, type);
    else out.value = String(v);
    return out;
  }

  eventJSON(node) {
    const out = { event: node.event.trim() };
    const where = node.where.filter((w) => w.property.trim() !== '');
    if (where.length) {
      out.where = where.map((w) => this.comparisonJSON(w, this.propertyType(node.event, w.property),
        { property: w.property.trim() }));
    }
    if (node.never) out.never = true;
    else out.count = { op: node.countOp, value: integer(node.countValue) };
    if (node.window === 'between') {
      // dates are whole UTC days: from the start of the first to the end of the last; a
      // bound read from a saved rule is sent back as it was unless its day was changed
      const from = node.fromOriginal && node.from === node.fromOriginal.slice(0, 10) ?
        node.fromOriginal : node.from;
      const to = node.toOriginal && node.to === node.toOriginal.slice(0, 10) ?
        node.toOriginal : (node.to ? node.to + 'T23:59:59.999999Z' : '');
      out.between = [from, to];
    } else if (String(node.days).trim() !== '') {
      out.within = { [node.unit === 'hours' ? 'hours' : 'days']: integer(node.days) };
    }
    return out;
  }

  // ---- a condition still being filled in: no preview (and no error) until it has its parts
  incomplete(node) {
    const needsValue = (c) => this.hasValue(c.op) &&
      (blank(c.value) || (this.ops.range.includes(c.op) && blank(c.value2)));
    if (node.kind === 'group') {
      return !node.children.length || node.children.some((c) => this.incomplete(c));
    }
    if (node.kind === 'trait') return blank(node.trait) || needsValue(node);
    if (node.kind === 'event') {
      return blank(node.event) || (!node.never && blank(node.countValue)) ||
        node.where.some((w) => !blank(w.property) && needsValue(w));
    }
    if (node.kind === 'segment') return blank(node.segment);
    if (node.kind === 'random_bucket') return blank(node.percent);
    if (node.kind === 'model') return blank(node.model) || !node.clusters.length;
    return false;
  }
}
