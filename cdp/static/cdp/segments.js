/* Segment builder: edits the rule as a tree (groups ALL/ANY, NOT on any node, trait / event /
   segment / random-bucket conditions), builds the rule JSON from it, previews the count and a
   sample through the segments API (debounced) and saves, diffs and publishes the segment.
   The API is the authority on rules: its 400 names the path of the bad node, which is mapped
   back onto the tree. */
(function () {
  // a message left by the page that sent us here (saved, published, deleted…), shown once
  var FLASH = 'cdp-segment-flash';
  try {
    var flashText = sessionStorage.getItem(FLASH);
    var head = document.querySelector('.content > .page-head');
    if (flashText && head) {
      sessionStorage.removeItem(FLASH);
      var flashNote = document.createElement('div');
      flashNote.className = 'msg success';
      flashNote.id = 'segment-flash';
      flashNote.setAttribute('role', 'status');
      flashNote.textContent = flashText;
      head.parentNode.insertBefore(flashNote, head.nextSibling);
    }
  } catch (e) { /* private mode */ }

  // the segments list: a changed filter or order applies at once (the search waits for Enter)
  var filterForm = document.getElementById('segment-filters');
  if (filterForm) {
    filterForm.querySelectorAll('select').forEach(function (select) {
      select.addEventListener('change', function () { filterForm.submit(); });
    });
  }

  var configNode = document.getElementById('segment-config');
  var treeRoot = document.getElementById('rule-tree');
  if (!configNode || !treeRoot) return;
  var config = JSON.parse(configNode.textContent);
  var segment = config.segment;
  var editable = !!config.can_manage;
  var suggest = config.suggestions || {};
  var csrf = (document.querySelector('[name=csrfmiddlewaretoken]') || {}).value;
  var DEBOUNCE_MS = 400;
  var SAMPLE = 10;

  var OP_LABELS = {
    eq: 'is', neq: 'is not', gt: '>', gte: '≥', lt: '<', lte: '≤', between: 'is between',
    'in': 'is one of', not_in: 'is not one of', contains: 'contains',
    not_contains: 'does not contain', starts_with: 'starts with', ends_with: 'ends with',
    regex: 'matches regex', exists: 'is set', not_exists: 'is not set', before: 'is before',
    after: 'is after', within_last: 'is within the last'
  };
  var DATE_OPS = ['before', 'after', 'within_last'];
  var OPS_BY_TYPE = {
    string: ['eq', 'neq', 'in', 'not_in', 'contains', 'not_contains', 'starts_with', 'ends_with',
      'regex', 'exists', 'not_exists', 'before', 'after', 'within_last'],
    number: ['eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'between', 'in', 'not_in', 'exists',
      'not_exists'],
    boolean: ['eq', 'neq', 'exists', 'not_exists'],
    datetime: ['before', 'after', 'within_last', 'exists', 'not_exists']
  };
  OPS_BY_TYPE.any = Object.keys(OP_LABELS);
  var COUNT_OPS = ['gte', 'gt', 'eq', 'neq', 'lte', 'lt'];
  var KINDS = [['trait', 'Trait'], ['event', 'Event'], ['segment', 'Segment'],
    ['random_bucket', 'Random %']];
  // consent conditions need the workspace's purposes (the privacy center defines them)
  if ((suggest.purposes || []).length) KINDS.push(['consent', 'Consent']);

  var traitsByName = {};
  (suggest.traits || []).forEach(function (t) { traitsByName[t.name] = t; });

  // ---- small helpers ----------------------------------------------------------------------
  var nextId = 1;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function input(cls, value, attrs) {
    var e = el('input', cls);
    e.value = value === undefined || value === null ? '' : String(value);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (!editable) e.disabled = true;
    return e;
  }
  function select(cls, options, value, label) {
    var e = el('select', cls);
    if (label) e.setAttribute('aria-label', label);
    options.forEach(function (o) {
      var opt = el('option', null, o[1]);
      opt.value = o[0];
      if (o[0] === value) opt.selected = true;
      e.appendChild(opt);
    });
    if (!editable) e.disabled = true;
    return e;
  }
  function button(cls, text, onClick, title) {
    var b = el('button', 'button small ' + cls, text);
    b.type = 'button';
    if (title) b.title = title;
    b.addEventListener('click', onClick);
    if (!editable) b.hidden = true;
    return b;
  }
  function datalist(id, values) {
    var dl = document.getElementById(id);
    if (!dl) {
      dl = el('datalist');
      dl.id = id;
      document.body.appendChild(dl);
    }
    dl.textContent = '';
    values.forEach(function (v) {
      var o = el('option');
      o.value = typeof v === 'string' ? v : v.name;
      if (v.label) o.label = v.label;
      dl.appendChild(o);
    });
    return id;
  }
  function api(method, url, body) {
    var opts = {
      method: method, credentials: 'same-origin',
      headers: { 'Accept': 'application/json', 'X-CSRFToken': csrf }
    };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.ok) return data;
        var err = new Error((data.error && data.error.message) || ('HTTP ' + r.status));
        err.status = r.status;
        err.body = data;
        throw err;
      });
    });
  }
  function isNumeric(text) { return /^\s*-?\d+(\.\d+)?\s*$/.test(text); }
  function number(text) {
    // a number when it reads as one; otherwise the text, for the API to name the problem
    return isNumeric(String(text)) ? Number(text) : String(text);
  }
  function scalar(text, type) {
    text = String(text === undefined ? '' : text);
    if (type === 'number') return number(text);
    if (type === 'boolean' || type === 'any') {
      if (text === 'true') return true;
      if (text === 'false') return false;
    }
    if (type === 'any' && isNumeric(text)) return Number(text);
    return text;
  }
  function integer(text) {
    var n = Number(text);
    return String(text).trim() !== '' && Number.isInteger(n) ? n : String(text);
  }

  // ---- the tree ---------------------------------------------------------------------------
  function group(mode, children) {
    return { id: nextId++, kind: 'group', mode: mode, negate: false, children: children || [] };
  }
  function condition(kind) {
    var node = { id: nextId++, kind: kind, negate: false };
    if (kind === 'trait') { node.trait = ''; node.op = 'eq'; node.value = ''; }
    if (kind === 'event') {
      node.event = ''; node.never = false; node.countOp = 'gte'; node.countValue = '1';
      node.days = ''; node.where = [];
      node.window = 'last';  // last (N days or hours; empty = all time) | between (two dates)
      node.unit = 'days';
      node.from = ''; node.to = ''; node.fromOriginal = ''; node.toOriginal = '';
    }
    if (kind === 'segment') node.segment = (suggest.segments[0] || {}).key || '';
    if (kind === 'random_bucket') node.percent = '10';
    if (kind === 'consent') {
      node.purpose = ((suggest.purposes || [])[0] || {}).key || '';
      node.status = 'granted';
    }
    return node;
  }
  function comparisonFrom(data, target) {
    target.op = data.op;
    var v = data.value;
    target.value = ''; target.value2 = ''; target.dateMode = 'date';
    if (v === undefined || v === null) return;
    if (data.op === 'between' && Array.isArray(v)) { target.value = v[0]; target.value2 = v[1]; }
    else if (Array.isArray(v)) target.value = v.join(', ');
    else if (data.op === 'within_last' && typeof v === 'object') {
      target.value = v.days !== undefined ? v.days : (v.hours || 0) / 24;
    } else if (typeof v === 'object' && v.days_ago !== undefined) {
      target.dateMode = 'days_ago'; target.value = v.days_ago;
    } else if (DATE_OPS.indexOf(data.op) >= 0) target.value = String(v).slice(0, 10);
    else target.value = String(v);
  }
  function fromJSON(data, negate) {
    var node;
    if (data && typeof data === 'object' && !Array.isArray(data)) {
      var keys = Object.keys(data);
      if (keys.length === 1 && data.not) return fromJSON(data.not, !negate);
      if (keys.length === 1 && Array.isArray(data.all || data.any)) {
        var mode = data.all ? 'all' : 'any';
        node = group(mode, data[mode].map(function (c) { return fromJSON(c, false); }));
      } else if (typeof data.trait === 'string') {
        node = condition('trait');
        node.trait = data.trait;
        comparisonFrom(data, node);
      } else if (typeof data.event === 'string' &&
                 (!data.between || (Array.isArray(data.between) && data.between.length === 2 &&
                   data.between.every(function (d) { return typeof d === 'string'; })))) {
        node = condition('event');
        node.event = data.event;
        node.never = !!data.never;
        if (data.count) { node.countOp = data.count.op; node.countValue = String(data.count.value); }
        if (data.within && data.within.hours !== undefined) {
          node.unit = 'hours'; node.days = String(data.within.hours);
        } else if (data.within) node.days = String(data.within.days);
        if (data.between) {
          node.window = 'between';
          node.fromOriginal = data.between[0]; node.toOriginal = data.between[1];
          node.from = data.between[0].slice(0, 10); node.to = data.between[1].slice(0, 10);
        }
        node.where = (data.where || []).map(function (w) {
          var row = { property: w.property };
          comparisonFrom(w, row);
          return row;
        });
      } else if (keys.length === 1 && data.segment !== undefined) {
        node = condition('segment');
        node.segment = String(data.segment);
      } else if (typeof data.consent === 'string' &&
                 keys.every(function (k) { return k === 'consent' || k === 'status'; }) &&
                 (data.status === undefined || data.status === 'granted' ||
                  data.status === 'denied')) {
        node = condition('consent');
        node.purpose = data.consent;
        node.status = data.status || 'granted';
      } else if (keys.length === 1 && data.random_bucket !== undefined) {
        node = condition('random_bucket');
        var spec = data.random_bucket;
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

  var initialRule = segment && (segment.draft || segment.published) ?
    (segment.draft || segment.published).rule : null;
  var root = initialRule ? fromJSON(initialRule, false) : group('all', []);
  if (root.kind !== 'group') root = group('all', [root]);

  // ---- tree -> rule JSON (and path -> node, to place the API's errors) --------------------
  var paths = {};
  function comparisonJSON(node, type, out) {
    var op = node.op;
    out.op = op;
    if (op === 'exists' || op === 'not_exists') return out;
    var v = node.value === undefined ? '' : node.value;
    if (op === 'between') out.value = [number(v), number(node.value2 || '')];
    else if (op === 'in' || op === 'not_in') {
      out.value = String(v).split(',').map(function (s) { return s.trim(); })
        .filter(function (s) { return s !== ''; })
        .map(function (s) { return scalar(s, type); });
    } else if (op === 'within_last') out.value = { days: integer(v) };
    else if (op === 'before' || op === 'after') {
      out.value = node.dateMode === 'days_ago' ? { days_ago: integer(v) } : String(v);
    } else if (['gt', 'gte', 'lt', 'lte'].indexOf(op) >= 0) out.value = number(v);
    else if (op === 'eq' || op === 'neq') out.value = scalar(v, type);
    else out.value = String(v);
    return out;
  }
  function propertyType(eventName, property) {
    var props = (suggest.properties || {})[eventName] || [];
    for (var i = 0; i < props.length; i++) if (props[i].name === property) return props[i].type;
    return 'any';
  }
  function traitType(name) { return (traitsByName[name] || {}).type || 'any'; }
  function toJSON(node, path) {
    var inner = path, out;
    if (node.negate) { paths[path] = node.id; inner = path + '.not'; }
    paths[inner] = node.id;
    if (node.kind === 'group') {
      out = {};
      out[node.mode] = node.children.map(function (c, i) {
        return toJSON(c, inner + '.' + node.mode + '[' + i + ']');
      });
    } else if (node.kind === 'trait') {
      out = comparisonJSON(node, traitType(node.trait), { trait: node.trait.trim() });
    } else if (node.kind === 'event') {
      out = { event: node.event.trim() };
      var where = node.where.filter(function (w) { return w.property.trim() !== ''; });
      if (where.length) {
        out.where = where.map(function (w) {
          return comparisonJSON(w, propertyType(node.event, w.property),
            { property: w.property.trim() });
        });
      }
      if (node.never) out.never = true;
      else out.count = { op: node.countOp, value: integer(node.countValue) };
      if (node.window === 'between') {
        // dates are whole UTC days: from the start of the first to the end of the last; a
        // bound read from a saved rule is sent back as it was unless its day was changed
        var from = node.fromOriginal && node.from === node.fromOriginal.slice(0, 10) ?
          node.fromOriginal : node.from;
        var to = node.toOriginal && node.to === node.toOriginal.slice(0, 10) ?
          node.toOriginal : (node.to ? node.to + 'T23:59:59.999999Z' : '');
        out.between = [from, to];
      } else if (String(node.days).trim() !== '') {
        out.within = {};
        out.within[node.unit === 'hours' ? 'hours' : 'days'] = integer(node.days);
      }
    } else if (node.kind === 'segment') {
      out = { segment: node.segment };
    } else if (node.kind === 'random_bucket') {
      out = { random_bucket: { percent: number(node.percent) } };
    } else if (node.kind === 'consent') {
      out = { consent: node.purpose, status: node.status };
    } else {
      try { out = JSON.parse(node.text); } catch (e) { out = node.text; }
    }
    return node.negate ? { not: out } : out;
  }
  function currentRule() {
    paths = {};
    return toJSON(root, 'rule');
  }

  // ---- rendering --------------------------------------------------------------------------
  var elements = {};
  function changed(rerender) {
    if (rerender) render();
    else updateJSON();
    schedulePreview();
  }
  function notToggle(node) {
    var b = button('toggle-not' + (node.negate ? ' on' : ''), 'NOT', function () {
      node.negate = !node.negate;
      changed(true);
    }, 'Negate: match profiles for which this does not hold');
    b.setAttribute('aria-pressed', node.negate ? 'true' : 'false');
    if (!editable && node.negate) { b.hidden = false; b.disabled = true; }
    return b;
  }
  function removeButton(parent, node) {
    return button('remove', '✕', function () {
      parent.children.splice(parent.children.indexOf(node), 1);
      changed(true);
    }, 'Remove');
  }
  function opSelect(target, type, onChange) {
    var ops = OPS_BY_TYPE[type] || OPS_BY_TYPE.any;
    if (ops.indexOf(target.op) < 0) ops = ops.concat([target.op]);
    var s = select('cond-op', ops.map(function (o) { return [o, OP_LABELS[o] || o]; }),
      target.op, 'Operator');
    s.addEventListener('change', function () { target.op = s.value; onChange(); });
    return s;
  }
  function valueInputs(target, type, listId, rebuild) {
    var box = el('span', 'cond-values');
    var op = target.op;
    if (op === 'exists' || op === 'not_exists') return box;
    function bind(inp, key) {
      inp.addEventListener('input', function () { target[key] = inp.value; changed(false); });
      return inp;
    }
    var numeric = type === 'number' || ['gt', 'gte', 'lt', 'lte', 'between'].indexOf(op) >= 0;
    if (op === 'between') {
      box.appendChild(bind(input('cond-value short', target.value,
        { inputmode: 'decimal', 'aria-label': 'From' }), 'value'));
      box.appendChild(el('span', 'muted', 'and'));
      box.appendChild(bind(input('cond-value2 short', target.value2,
        { inputmode: 'decimal', 'aria-label': 'To' }), 'value2'));
    } else if (op === 'within_last') {
      box.appendChild(bind(input('cond-value short', target.value,
        { inputmode: 'numeric', 'aria-label': 'Days' }), 'value'));
      box.appendChild(el('span', 'muted', 'days'));
    } else if (op === 'before' || op === 'after') {
      var mode = select('cond-date-mode', [['date', 'date'], ['days_ago', 'days ago']],
        target.dateMode || 'date', 'Date kind');
      mode.addEventListener('change', function () {
        target.dateMode = mode.value; target.value = ''; rebuild(); changed(false);
      });
      var relative = target.dateMode === 'days_ago';
      box.appendChild(bind(input('cond-value' + (relative ? ' short' : ''), target.value,
        relative ? { inputmode: 'numeric', 'aria-label': 'Days ago' } :
          { type: 'date', 'aria-label': 'Date' }), 'value'));
      box.appendChild(mode);
    } else {
      var attrs = { 'aria-label': 'Value' };
      if (op === 'in' || op === 'not_in') attrs.placeholder = 'a, b, c';
      else if (numeric) attrs.inputmode = 'decimal';
      else attrs.placeholder = 'value';
      if (listId) attrs.list = listId;
      box.appendChild(bind(input('cond-value', target.value, attrs), 'value'));
    }
    return box;
  }
  // operator + value inputs, rebuilt in place (never the whole tree) when the operator or the
  // type of the named trait/property changes, so typing and tabbing keep the focus
  function comparisonEditor(target, typeOf, listIdOf) {
    var box = el('span', 'cond-comparison'), shownType = null;
    function values() {
      var old = box.querySelector('.cond-values');
      var fresh = valueInputs(target, shownType, listIdOf(), values);
      if (old) box.replaceChild(fresh, old);
      else box.appendChild(fresh);
    }
    function build() {
      shownType = typeOf();
      var ops = OPS_BY_TYPE[shownType] || OPS_BY_TYPE.any;
      if (ops.indexOf(target.op) < 0) target.op = ops[0];
      box.textContent = '';
      box.appendChild(opSelect(target, shownType, function () {
        values(); changed(false);
      }));
      values();
    }
    build();
    return {
      box: box,
      refresh: function () {
        if (typeOf() !== shownType) { build(); changed(false); return; }
        var value = box.querySelector('.cond-value'), listId = listIdOf();
        if (value && listId) value.setAttribute('list', listId);
        else if (value) value.removeAttribute('list');
      }
    };
  }
  function nodeError(node) {
    var box = el('div', 'node-error');
    box.hidden = true;
    box.setAttribute('role', 'alert');
    return box;
  }

  function renderCondition(node, parent) {
    var wrap = el('div', 'rule-node rule-cond');
    wrap.dataset.kind = node.kind;
    wrap.dataset.node = node.id;
    if (node.negate) wrap.classList.add('negated');
    var row = el('div', 'cond-row');
    row.appendChild(notToggle(node));
    var kindLabel = { trait: 'Trait', event: 'Event', segment: 'In segment',
      random_bucket: 'Random', consent: 'Consent', raw: 'JSON' }[node.kind];
    row.appendChild(el('span', 'cond-kind', kindLabel));
    if (node.kind === 'trait') {
      var name = input('cond-trait', node.trait,
        { list: 'dl-traits', placeholder: 'trait, e.g. plan', 'aria-label': 'Trait' });
      name.addEventListener('input', function () { node.trait = name.value; changed(false); });
      row.appendChild(name);
      var traitEditor = comparisonEditor(node, function () { return traitType(node.trait); },
        function () {
          var values = (traitsByName[node.trait] || {}).values || [];
          return values.length ? datalist('dl-values-' + node.id, values) : null;
        });
      name.addEventListener('change', traitEditor.refresh);
      row.appendChild(traitEditor.box);
    } else if (node.kind === 'event') {
      var ev = input('cond-event', node.event,
        { list: 'dl-events', placeholder: 'event, e.g. Order Completed', 'aria-label': 'Event' });
      ev.addEventListener('input', function () { node.event = ev.value; changed(false); });
      ev.addEventListener('change', function () {
        datalist('dl-props-' + node.id, (suggest.properties || {})[node.event.trim()] || []);
      });
      row.appendChild(ev);
      var performed = select('cond-performed',
        [['count', 'performed'], ['never', 'never performed']],
        node.never ? 'never' : 'count', 'Performed');
      performed.addEventListener('change', function () {
        node.never = performed.value === 'never'; changed(true);
      });
      row.appendChild(performed);
      if (!node.never) {
        var cop = select('cond-count-op', COUNT_OPS.map(function (o) { return [o, OP_LABELS[o]]; }),
          node.countOp, 'Count operator');
        cop.addEventListener('change', function () { node.countOp = cop.value; changed(false); });
        row.appendChild(cop);
        var cval = input('cond-count-value short', node.countValue,
          { inputmode: 'numeric', 'aria-label': 'Count' });
        cval.addEventListener('input', function () { node.countValue = cval.value; changed(false); });
        row.appendChild(cval);
        row.appendChild(el('span', 'muted', 'times'));
      }
      var windowMode = select('cond-window',
        [['last', 'in the last'], ['between', 'between']], node.window, 'Time window');
      windowMode.addEventListener('change', function () {
        node.window = windowMode.value; changed(true);
      });
      row.appendChild(windowMode);
      if (node.window === 'between') {
        var from = input('cond-from', node.from, { type: 'date', 'aria-label': 'From (UTC day)' });
        from.addEventListener('input', function () { node.from = from.value; changed(false); });
        row.appendChild(from);
        row.appendChild(el('span', 'muted', 'and'));
        var to = input('cond-to', node.to, { type: 'date', 'aria-label': 'To (UTC day, included)' });
        to.addEventListener('input', function () { node.to = to.value; changed(false); });
        row.appendChild(to);
      } else {
        var days = input('cond-days short', node.days,
          { inputmode: 'numeric', placeholder: 'all', 'aria-label': 'Window length' });
        days.addEventListener('input', function () { node.days = days.value; changed(false); });
        row.appendChild(days);
        var unit = select('cond-unit', [['days', 'days'], ['hours', 'hours']], node.unit,
          'Window unit');
        unit.addEventListener('change', function () { node.unit = unit.value; changed(false); });
        row.appendChild(unit);
      }
    } else if (node.kind === 'segment') {
      var options = (suggest.segments || []).map(function (s) { return [s.key, s.name]; });
      if (node.segment && !options.some(function (o) { return o[0] === node.segment; })) {
        options.unshift([node.segment, node.segment + ' (not published)']);
      }
      if (!options.length) options = [['', '— no published segments —']];
      var seg = select('cond-segment', options, node.segment, 'Segment');
      seg.addEventListener('change', function () { node.segment = seg.value; changed(false); });
      row.appendChild(seg);
    } else if (node.kind === 'consent') {
      var allows = select('cond-consent-status',
        [['granted', 'allows use for'], ['denied', 'does not allow use for']],
        node.status, 'Consent answer');
      allows.addEventListener('change', function () { node.status = allows.value; changed(false); });
      row.appendChild(allows);
      var purposes = (suggest.purposes || []).map(function (p) {
        return [p.key, p.name];
      });
      if (node.purpose && !purposes.some(function (o) { return o[0] === node.purpose; })) {
        purposes.unshift([node.purpose, node.purpose + ' (not a purpose)']);
      }
      var purpose = select('cond-purpose', purposes, node.purpose, 'Purpose');
      purpose.addEventListener('change', function () { node.purpose = purpose.value; changed(false); });
      row.appendChild(purpose);
      row.appendChild(el('span', 'muted small',
        'as decided, or by the purpose\'s default without a decision'));
    } else if (node.kind === 'random_bucket') {
      var pct = input('cond-percent short', node.percent,
        { inputmode: 'decimal', 'aria-label': 'Percent' });
      pct.addEventListener('input', function () { node.percent = pct.value; changed(false); });
      row.appendChild(pct);
      row.appendChild(el('span', 'muted', '% of profiles (stable per profile)'));
    } else {
      var text = el('textarea', 'cond-raw');
      text.value = node.text;
      text.rows = Math.min(8, node.text.split('\n').length);
      text.disabled = !editable;
      text.addEventListener('input', function () { node.text = text.value; changed(false); });
      row.appendChild(text);
    }
    // the condition's parts wrap inside the body; its remove button stays top right
    var body = el('div', 'cond-body');
    body.appendChild(row);
    if (node.kind === 'event') body.appendChild(renderWhere(node));
    wrap.appendChild(body);
    if (parent) wrap.appendChild(removeButton(parent, node));
    wrap.appendChild(nodeError(node));
    elements[node.id] = wrap;
    return wrap;
  }

  function renderWhere(node) {
    var box = el('div', 'where-list');
    var props = (suggest.properties || {})[node.event.trim()] || [];
    var listId = datalist('dl-props-' + node.id, props);
    node.where.forEach(function (w, i) {
      var row = el('div', 'where-row');
      row.appendChild(el('span', 'muted', i ? 'and' : 'where'));
      var prop = input('where-property', w.property,
        { list: listId, placeholder: 'property, e.g. revenue', 'aria-label': 'Property' });
      prop.addEventListener('input', function () { w.property = prop.value; changed(false); });
      row.appendChild(prop);
      var editor = comparisonEditor(w, function () {
        return propertyType(node.event.trim(), w.property.trim());
      }, function () { return null; });
      prop.addEventListener('change', editor.refresh);
      row.appendChild(editor.box);
      row.appendChild(button('remove', '✕', function () {
        node.where.splice(i, 1); changed(true);
      }, 'Remove filter'));
      box.appendChild(row);
    });
    box.appendChild(button('add-where', '+ property filter', function () {
      node.where.push({ property: '', op: 'eq', value: '' });
      render();
      var inputs = box.ownerDocument.querySelectorAll(
        '[data-node="' + node.id + '"] .where-property');
      if (inputs.length) inputs[inputs.length - 1].focus();
    }));
    return box;
  }

  function renderGroup(node, parent, depth) {
    var wrap = el('div', 'rule-node rule-group depth-' + Math.min(depth, 4));
    wrap.dataset.node = node.id;
    wrap.dataset.mode = node.mode;
    if (node.negate) wrap.classList.add('negated');
    var head = el('div', 'group-head');
    head.appendChild(notToggle(node));
    var modes = el('span', 'mode-toggle');
    modes.setAttribute('role', 'group');
    modes.setAttribute('aria-label', 'Match');
    [['all', 'ALL'], ['any', 'ANY']].forEach(function (m) {
      var b = el('button', 'mode-' + m[0] + (node.mode === m[0] ? ' active' : ''), m[1]);
      b.type = 'button';
      b.setAttribute('aria-pressed', node.mode === m[0] ? 'true' : 'false');
      b.disabled = !editable;
      b.addEventListener('click', function () { node.mode = m[0]; changed(true); });
      modes.appendChild(b);
    });
    head.appendChild(modes);
    head.appendChild(el('span', 'muted small',
      node.mode === 'all' ? 'of these must match' : 'of these must match (at least one)'));
    head.appendChild(el('span', 'spacer'));
    if (parent) head.appendChild(removeButton(parent, node));
    wrap.appendChild(head);
    var list = el('div', 'group-children');
    if (!node.children.length) {
      list.appendChild(el('div', 'muted small group-empty', editable ?
        'Empty group: add a condition below.' : 'Empty group.'));
    }
    node.children.forEach(function (child) {
      list.appendChild(child.kind === 'group' ?
        renderGroup(child, node, depth + 1) : renderCondition(child, node));
    });
    wrap.appendChild(list);
    var foot = el('div', 'group-foot');
    KINDS.forEach(function (k) {
      foot.appendChild(button('add-' + k[0].replace('_', '-'), '+ ' + k[1], function () {
        node.children.push(condition(k[0]));
        render();
        var added = elements[node.children[node.children.length - 1].id];
        var first = added && added.querySelector('input, select');
        if (first) first.focus();
      }));
    });
    foot.appendChild(button('add-group', '+ Group', function () {
      node.children.push(group(node.mode === 'all' ? 'any' : 'all', []));
      changed(true);
    }, 'A nested group with its own ALL / ANY'));
    wrap.appendChild(foot);
    wrap.appendChild(nodeError(node));
    elements[node.id] = wrap;
    return wrap;
  }

  var jsonOut = document.getElementById('rule-json');
  function updateJSON() {
    jsonOut.textContent = JSON.stringify(currentRule(), null, 2);
  }
  function render() {
    elements = {};
    treeRoot.textContent = '';
    treeRoot.appendChild(renderGroup(root, null, 0));
    updateJSON();
  }

  // ---- errors -----------------------------------------------------------------------------
  var topError = document.getElementById('builder-error');
  function showTop(message) {
    topError.textContent = message || '';
    topError.hidden = !message;
  }
  function clearErrors() {
    Object.keys(elements).forEach(function (id) {
      var e = elements[id];
      e.classList.remove('has-error');
      var box = e.querySelector(':scope > .node-error');
      if (box) { box.textContent = ''; box.hidden = true; }
    });
  }
  function showRuleErrors(errors) {
    clearErrors();
    var unplaced = [];
    currentRule();  // refresh paths
    errors.forEach(function (err) {
      var path = err.path || '', id = null, probe = path;
      while (probe) {
        if (paths[probe] !== undefined) { id = paths[probe]; break; }
        var cut = Math.max(probe.lastIndexOf('.'), probe.lastIndexOf('['));
        probe = cut > 0 ? probe.slice(0, cut) : '';
      }
      var target = id !== null && elements[id];
      if (!target || (path === 'rule' && id === root.id && !root.negate)) {
        unplaced.push(path + ': ' + err.message);
        return;
      }
      target.classList.add('has-error');
      var box = target.querySelector(':scope > .node-error');
      var rest = path.slice(probe.length).replace(/^\./, '');
      var line = el('div', null, (rest ? rest + ': ' : '') + err.message);
      box.appendChild(line);
      box.hidden = false;
    });
    showTop(unplaced.join('\n'));
  }

  // ---- live preview -----------------------------------------------------------------------
  var countOut = document.getElementById('preview-count');
  var metaOut = document.getElementById('preview-meta');
  var sampleOut = document.getElementById('preview-sample');
  var previewPanel = document.getElementById('preview');
  var timer = null, sequence = 0;
  function schedulePreview() {
    clearTimeout(timer);
    previewPanel.classList.add('stale');
    timer = setTimeout(preview, DEBOUNCE_MS);
  }
  function personName(p) {
    return p.display_name || ('Profile #' + p.id);
  }
  function blank(v) { return v === undefined || v === null || String(v).trim() === ''; }
  function needsValue(c) {
    return c.op !== 'exists' && c.op !== 'not_exists' &&
      (blank(c.value) || (c.op === 'between' && blank(c.value2)));
  }
  function incomplete(node) {
    // a condition still being filled in: no request (and no error) until it has its parts
    if (node.kind === 'group') return !node.children.length || node.children.some(incomplete);
    if (node.kind === 'trait') return blank(node.trait) || needsValue(node);
    if (node.kind === 'event') {
      return blank(node.event) || (!node.never && blank(node.countValue)) ||
        node.where.some(function (w) { return !blank(w.property) && needsValue(w); });
    }
    if (node.kind === 'segment') return blank(node.segment);
    if (node.kind === 'random_bucket') return blank(node.percent);
    return false;
  }
  function idle(message) {
    clearErrors(); showTop('');
    countOut.textContent = '—';
    delete countOut.dataset.count;
    metaOut.textContent = message;
    sampleOut.textContent = '';
    previewPanel.classList.remove('stale', 'invalid');
  }
  function preview() {
    var mine = ++sequence;
    if (!root.children.length) { idle('Add a condition to see who matches.'); return; }
    if (incomplete(root)) { idle('Finish the conditions to see who matches.'); return; }
    metaOut.textContent = 'Counting…';
    api('POST', config.api + 'preview/', { rule: currentRule(), sample: SAMPLE })
      .then(function (data) {
        if (mine !== sequence) return;
        clearErrors(); showTop('');
        previewPanel.classList.remove('stale', 'invalid');
        countOut.textContent = data.count.toLocaleString('en');
        countOut.dataset.count = data.count;
        metaOut.textContent = (data.count === 1 ? 'profile' : 'profiles') + ' · counted in ' +
          data.milliseconds + ' ms';
        sampleOut.textContent = '';
        data.sample.forEach(function (p) {
          var li = el('li');
          var a = el('a', null, personName(p));
          a.href = config.profile_url + p.id + '/';
          li.appendChild(a);
          var ids = (p.identities || []).filter(function (i) { return i.type !== 'anonymous_id'; });
          if (ids.length) li.appendChild(el('span', 'muted small', ' ' + ids[0].value));
          sampleOut.appendChild(li);
        });
        if (data.count > data.sample.length) {
          sampleOut.appendChild(el('li', 'muted small more',
            '… and ' + (data.count - data.sample.length).toLocaleString('en') + ' more'));
        }
      })
      .catch(function (err) {
        if (mine !== sequence) return;
        previewPanel.classList.remove('stale');
        previewPanel.classList.add('invalid');
        countOut.textContent = '—';
        delete countOut.dataset.count;
        sampleOut.textContent = '';
        var detail = err.body && err.body.error && err.body.error.detail;
        if (err.status === 400 && detail && detail.errors) {
          metaOut.textContent = 'Fix the rule to see a count.';
          showRuleErrors(detail.errors);
        } else {
          metaOut.textContent = 'Could not count.';
          showTop(err.message);
        }
      });
  }

  // ---- save, diff, publish ----------------------------------------------------------------
  var nameInput = document.getElementById('segment-name');
  var descInput = document.getElementById('segment-description');
  var tagsInput = document.getElementById('segment-tags');
  var openedRule = null;  // the rule as the page opened, serialised (set once drawn)
  var status = document.getElementById('save-status');
  var diffPanel = document.getElementById('diff-panel');

  function setBusy(busy, text) {
    ['save-draft', 'publish', 'confirm-publish'].forEach(function (id) {
      var b = document.getElementById(id);
      if (b) b.disabled = busy;
    });
    if (status) status.textContent = text || '';
  }
  function failed(err) {
    setBusy(false, '');
    var detail = err.body && err.body.error && err.body.error.detail;
    if (err.status === 400 && detail && detail.errors) showRuleErrors(detail.errors);
    else showTop(err.message);
    if (err.status === 400 && detail && detail.field === 'tags' && tagsInput) {
      tagsInput.classList.add('invalid');
      tagsInput.focus();
    }
  }
  if (tagsInput) tagsInput.addEventListener('input', function () {
    tagsInput.classList.remove('invalid');
  });
  function payload() {
    var tags = tagsInput ? tagsInput.value.split(',').map(function (t) { return t.trim(); })
      .filter(function (t) { return t; }) : [];
    var body = { name: nameInput.value.trim(), description: descInput.value, tags: tags };
    // an untouched rule is not sent: renaming or tagging a segment creates no draft
    var rule = currentRule();
    if (!segment || JSON.stringify(rule) !== openedRule) body.rule = rule;
    return body;
  }
  function checkName() {
    if (nameInput.value.trim()) return true;
    showTop('Give the segment a name.');
    nameInput.focus();
    return false;
  }
  function reloadWith(message, id) {
    try { sessionStorage.setItem(FLASH, message); } catch (e) { /* private mode */ }
    window.location.href = config.list_url + (id || segment.id) + '/';
  }
  function save(publish) {
    if (!checkName()) return;
    showTop('');
    setBusy(true, publish ? 'Publishing…' : 'Saving…');
    if (!segment) {
      var body = payload();
      body.publish = publish;
      api('POST', config.api, body).then(function (created) {
        reloadWith(publish ? 'Published: ' + created.member_count + ' members.' :
          'Saved as a draft.', created.id);
      }).catch(failed);
      return;
    }
    api('PATCH', config.api + segment.id + '/', payload()).then(function (updated) {
      segment = updated;
      var pending = updated.draft && !updated.draft.published_at;
      if (!pending && updated.published) {
        // the rule is the live one (only the name, description or tags changed)
        reloadWith('Saved. The rule is the live one (version ' + updated.published.number +
          '): nothing to publish.');
        return;
      }
      if (!publish) { reloadWith('Draft saved (version ' + updated.draft.number + ').'); return; }
      if (updated.status !== 'published') return publishNow();
      return api('GET', config.api + segment.id + '/diff/').then(showDiff);
    }).catch(failed);
  }
  function sampleList(target, people) {
    target.textContent = '';
    if (!people.length) target.appendChild(el('li', 'muted', 'nobody'));
    people.forEach(function (p) {
      var li = el('li');
      var a = el('a', null, personName(p));
      a.href = config.profile_url + p.id + '/';
      li.appendChild(a);
      target.appendChild(li);
    });
  }
  function showDiff(diff) {
    setBusy(false, 'Review the change, then publish.');
    document.getElementById('diff-now').textContent = diff.members_now;
    document.getElementById('diff-after').textContent = diff.members_after;
    document.getElementById('diff-entering').textContent = '+' + diff.entering;
    document.getElementById('diff-leaving').textContent = '−' + diff.leaving;
    document.getElementById('diff-version').textContent = 'v' + diff.draft_version;
    sampleList(document.getElementById('diff-entering-sample'), diff.entering_sample);
    sampleList(document.getElementById('diff-leaving-sample'), diff.leaving_sample);
    diffPanel.hidden = false;
    diffPanel.scrollIntoView({ block: 'nearest' });
  }
  function publishNow() {
    setBusy(true, 'Publishing…');
    return api('POST', config.api + segment.id + '/publish/').then(function (result) {
      reloadWith('Published version ' + result.version + ': ' + result.members + ' members (' +
        result.entered + ' entered, ' + result.exited + ' left).');
    }).catch(failed);
  }
  if (editable) {
    document.getElementById('save-draft').addEventListener('click', function () { save(false); });
    document.getElementById('publish').addEventListener('click', function () { save(true); });
    document.getElementById('confirm-publish').addEventListener('click', publishNow);
    document.getElementById('cancel-publish').addEventListener('click', function () {
      diffPanel.hidden = true;
      setBusy(false, 'Not published; the draft is saved.');
    });
  }

  // ---- an existing segment: size over time, discard, delete, sharing ---------------------
  var SVG = 'http://www.w3.org/2000/svg';
  var MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov',
    'Dec'];
  var WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmt(n) { return Number(n).toLocaleString('en'); }
  // the API's days are UTC dates (YYYY-MM-DD); they are shown as such, whatever the browser's zone
  function dayParts(iso) {
    var p = iso.split('-').map(Number);
    return { y: p[0], m: p[1] - 1, d: p[2], wd: new Date(Date.UTC(p[0], p[1] - 1, p[2])).getUTCDay() };
  }
  function shortDay(iso) { var p = dayParts(iso); return p.d + ' ' + MONTHS[p.m]; }
  function longDay(iso) {
    var p = dayParts(iso);
    return WEEKDAYS[p.wd] + ' ' + p.d + ' ' + MONTHS[p.m] + ' ' + p.y;
  }
  // a round top for the y axis and the step between its gridlines (1, 2 or 5 × 10^k)
  function yScale(max) {
    if (max <= 0) return { top: 1, step: 1 };
    var raw = max / 4, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 5, 10].map(function (f) { return f * mag; })
      .filter(function (s) { return s >= raw; })[0];
    step = Math.max(1, step);
    return { top: Math.ceil(max / step) * step, step: step };
  }
  function drawSizes(target, days) {
    // drawn at the card's width in CSS pixels (1 unit = 1 px): crisp text, nothing stretched
    var W = Math.max(target.clientWidth, 320), H = 210, L = 46, R = 14, T = 12, B = 30;
    target.textContent = '';
    if (!days.length) return;
    var n = days.length;
    var scale = yScale(Math.max.apply(null, days.map(function (d) { return d.size; })));
    var colW = (W - L - R) / Math.max(n - 1, 1);
    var x = function (i) { return n === 1 ? (L + W - R) / 2 : L + i * colW; };
    var y = function (v) { return T + (H - T - B) * (1 - v / scale.top); };
    var chart = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img',
      id: 'size-svg',
      'aria-label': 'Members at the end of each day, ' + shortDay(days[0].date) + ' to ' +
        shortDay(days[n - 1].date) });
    for (var v = 0; v <= scale.top; v += scale.step) {
      chart.appendChild(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v),
        'class': v ? 'grid' : 'grid base' }));
      chart.appendChild(svg('text', { x: L - 8, y: y(v) + 4, 'text-anchor': 'end',
        'class': 'axis' }, fmt(v)));
    }
    // a date label every ~90 px at most, the last day always labelled
    var every = Math.max(1, Math.ceil((n - 1) / Math.max(1, Math.floor((W - L - R) / 90))));
    for (var i = 0; i < n; i += every) {
      if (i !== n - 1 && n - 1 - i < every * 0.6) continue;
      chart.appendChild(svg('line', { x1: x(i), x2: x(i), y1: H - B, y2: H - B + 4,
        'class': 'tick' }));
      chart.appendChild(svg('text', { x: x(i), y: H - 10, 'text-anchor': 'middle',
        'class': 'axis' }, shortDay(days[i].date)));
    }
    if ((n - 1) % every) {
      chart.appendChild(svg('text', { x: x(n - 1), y: H - 10, 'text-anchor': 'end',
        'class': 'axis' }, shortDay(days[n - 1].date)));
    }
    var line = days.map(function (d, i) { return x(i) + ',' + y(d.size); }).join(' ');
    chart.appendChild(svg('polygon', { points: x(0) + ',' + y(0) + ' ' + line + ' ' +
      x(n - 1) + ',' + y(0), 'class': 'area' }));
    chart.appendChild(svg('polyline', { points: line, 'class': 'line' }));
    var guide = svg('line', { y1: T, y2: H - B, 'class': 'guide', visibility: 'hidden' });
    chart.appendChild(guide);
    var dots = days.map(function (d, i) {
      var label = longDay(d.date) + ': ' + fmt(d.size) + ' members (+' + fmt(d.entered) +
        ' entered, −' + fmt(d.exited) + ' left)';
      var dot = svg('circle', { cx: x(i), cy: y(d.size), r: n > 40 ? 2.5 : 3.5,
        'class': 'point', 'data-date': d.date, 'data-size': d.size });
      dot.appendChild(svg('title', {}, label));
      chart.appendChild(dot);
      return dot;
    });
    var tip = el('div', 'chart-tip');
    tip.id = 'size-tip';
    tip.hidden = true;
    function show(i) {
      var d = days[i];
      dots.forEach(function (dot, j) { dot.classList.toggle('on', j === i); });
      guide.setAttribute('x1', x(i));
      guide.setAttribute('x2', x(i));
      guide.setAttribute('visibility', 'visible');
      tip.textContent = '';
      tip.appendChild(el('div', 'tip-date', longDay(d.date)));
      tip.appendChild(el('div', 'tip-size', fmt(d.size) + (d.size === 1 ? ' member' : ' members')));
      var moves = el('div', 'tip-moves');
      moves.appendChild(el('span', 'tip-in', '+' + fmt(d.entered) + ' entered'));
      moves.appendChild(el('span', 'tip-out', '−' + fmt(d.exited) + ' left'));
      tip.appendChild(moves);
      tip.hidden = false;
      // beside the point (right of it, or left near the right edge), never over it
      var px = x(i), py = y(d.size), gap = 12;
      var left = px + gap + tip.offsetWidth > W ? px - gap - tip.offsetWidth : px + gap;
      var top = Math.min(Math.max(0, py - tip.offsetHeight / 2), H - tip.offsetHeight);
      tip.style.left = Math.max(0, left) + 'px';
      tip.style.top = top + 'px';
    }
    function hide() {
      tip.hidden = true;
      guide.setAttribute('visibility', 'hidden');
      dots.forEach(function (dot) { dot.classList.remove('on'); });
    }
    // one invisible column per day, so the nearest day shows wherever the pointer is
    days.forEach(function (d, i) {
      var band = svg('rect', { x: x(i) - colW / 2, y: T, width: n === 1 ? W - L - R : colW,
        height: H - T - B, 'class': 'hit', 'data-date': d.date });
      if (n === 1) band.setAttribute('x', L);
      band.addEventListener('mouseenter', function () { show(i); });
      chart.appendChild(band);
    });
    chart.addEventListener('mouseleave', hide);
    var frame = el('div', 'chart-frame');
    frame.appendChild(chart);
    frame.appendChild(tip);
    target.appendChild(frame);
    var first = days[0], last = days[n - 1];
    var entered = days.reduce(function (a, d) { return a + d.entered; }, 0);
    var left = days.reduce(function (a, d) { return a + d.exited; }, 0);
    var net = entered - left;
    var summary = el('p', 'size-summary small');
    summary.id = 'size-summary';
    summary.appendChild(el('strong', null, 'Now ' + fmt(last.size) + ' members'));
    summary.appendChild(document.createTextNode(' · ' + fmt(entered) + ' entered and ' +
      fmt(left) + ' left since ' + shortDay(first.date) + ' '));
    summary.appendChild(el('span', 'trend-net ' + (net > 0 ? 'up' : net < 0 ? 'down' : ''),
      net > 0 ? '(↑ +' + fmt(net) + ')' : net < 0 ? '(↓ −' + fmt(-net) + ')' : '(±0)'));
    summary.appendChild(el('span', 'muted', ' · days in UTC; hover the chart for each day'));
    target.appendChild(summary);
  }
  var sizesSequence = 0, shownSizes = null, resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      var target = document.getElementById('size-chart');
      if (target && shownSizes) drawSizes(target, shownSizes);
    }, 150);
  });
  function loadSizes(days) {
    var target = document.getElementById('size-chart');
    if (!target || segment.status !== 'published') return;
    var mine = ++sizesSequence;
    document.querySelectorAll('#size-card .seg-toggle [data-days]').forEach(function (b) {
      var on = b.getAttribute('data-days') === String(days);
      b.classList.toggle('active', on);
      b.setAttribute('aria-pressed', on ? 'true' : 'false');
    });
    target.setAttribute('data-period', String(days));
    target.classList.add('loading');
    api('GET', config.api + segment.id + '/sizes/?days=' + days).then(function (data) {
      if (mine !== sizesSequence) return;  // a later toggle won
      target.classList.remove('loading');
      shownSizes = data.days || [];
      drawSizes(target, shownSizes);
    }).catch(function (err) {
      if (mine !== sizesSequence) return;
      target.classList.remove('loading');
      target.textContent = '';
      target.appendChild(el('p', 'msg error', 'Could not load the sizes: ' + err.message));
    });
  }

  // the top of the page shows one message at a time: a new error replaces the last flash
  function clearFlash() {
    var flash = document.getElementById('segment-flash');
    if (flash) flash.remove();
  }
  function inUseMessage(err) {
    var used = (err.body && err.body.error && err.body.error.detail &&
      err.body.error.detail.segments) || [];
    var box = el('div', 'in-use');
    box.appendChild(el('strong', null, '“' + segment.name + '” was not deleted: '));
    box.appendChild(document.createTextNode(used.length === 1 ?
      'another segment uses it in its rule. ' :
      used.length + ' other segments use it in their rules. '));
    box.appendChild(document.createTextNode('Remove the condition from ' +
      (used.length === 1 ? 'that segment' : 'those segments') + ' (or delete ' +
      (used.length === 1 ? 'it' : 'them') + ') first:'));
    var list = el('ul', 'in-use-list');
    used.forEach(function (s) {
      var li = el('li');
      var a = el('a', null, s.name);
      a.href = config.list_url + s.id + '/';
      li.appendChild(a);
      li.appendChild(el('span', 'muted small', ' ' + s.key));
      list.appendChild(li);
    });
    box.appendChild(list);
    return box;
  }

  // sharing: the grants table and the select are redrawn from the API's answer
  function wireSharing() {
    var table = document.getElementById('grants-table');
    if (!table) return;
    var body = table.querySelector('tbody');
    var choose = document.getElementById('grant-user');
    var grantForm = document.getElementById('grant-form');
    var noCandidates = document.getElementById('no-candidates');
    var errorBox = document.getElementById('sharing-error');
    var statusBox = document.getElementById('sharing-status');
    var grantButton = document.getElementById('grant');
    function say(message, isError) {
      errorBox.textContent = isError ? message : '';
      errorBox.hidden = !isError;
      statusBox.textContent = isError ? '' : message;
      statusBox.hidden = isError;
    }
    function syncCandidates() {
      var any = choose.options.length > 0;
      grantForm.hidden = !any;
      noCandidates.hidden = any;
    }
    function addCandidate(id, name) {
      var opt = el('option', null, name);
      opt.value = String(id);
      var before = Array.prototype.find.call(choose.options, function (o) { return o.text > name; });
      choose.insertBefore(opt, before || null);
      syncCandidates();
    }
    function grantRow(g) {
      var tr = el('tr');
      tr.dataset.user = g.user_id;
      tr.dataset.username = g.username;
      tr.appendChild(el('td', null, g.username));
      var access = el('td');
      access.appendChild(el('span', 'pill off', 'Can edit'));
      tr.appendChild(access);
      var cell = el('td', 'num');
      var b = el('button', 'button small danger', 'Revoke');
      b.type = 'button';
      b.setAttribute('data-revoke', g.user_id);
      cell.appendChild(b);
      tr.appendChild(cell);
      return tr;
    }
    function showGrants(grants) {
      body.querySelectorAll('tr:not(.owner-row)').forEach(function (tr) { tr.remove(); });
      var shared = grants.filter(function (g) { return !g.owner; });
      shared.forEach(function (g) { body.appendChild(grantRow(g)); });
      if (!shared.length) {
        var empty = el('tr', 'no-grants');
        var td = el('td', 'muted', 'Not shared with anyone yet.');
        td.colSpan = 3;
        empty.appendChild(td);
        body.appendChild(empty);
      }
    }
    if (grantButton) grantButton.addEventListener('click', function () {
      var option = choose.selectedOptions[0];
      if (!option) return;
      grantButton.disabled = true;
      api('POST', config.api + segment.id + '/grants/', { user_id: Number(option.value) })
        .then(function (data) {
          option.remove();
          syncCandidates();
          showGrants(data.grants || []);
          say(option.text + ' can now edit and publish this segment.');
        })
        .catch(function (err) { say(err.message, true); })
        .then(function () { grantButton.disabled = false; });
    });
    body.addEventListener('click', function (e) {
      var b = e.target.closest('[data-revoke]');
      if (!b) return;
      var row = b.closest('tr');
      var name = row.dataset.username;
      b.disabled = true;
      api('DELETE', config.api + segment.id + '/grants/' + b.getAttribute('data-revoke') + '/')
        .then(function () {
          row.remove();
          if (!body.querySelector('tr[data-user]')) showGrants([]);
          addCandidate(b.getAttribute('data-revoke'), name);
          say('Access revoked: ' + name + ' can no longer edit this segment.');
        })
        .catch(function (err) { b.disabled = false; say(err.message, true); });
    });
  }

  function wireExisting() {
    document.querySelectorAll('#size-card .seg-toggle [data-days]').forEach(function (b) {
      b.addEventListener('click', function () { loadSizes(Number(b.getAttribute('data-days'))); });
    });
    loadSizes(30);
    var duplicate = document.getElementById('duplicate-segment');
    if (duplicate) duplicate.addEventListener('click', function () {
      duplicate.disabled = true;
      api('POST', config.api + segment.id + '/duplicate/', {}).then(function (copy) {
        try {
          sessionStorage.setItem(FLASH, 'Duplicated "' + segment.name + '" as "' + copy.name +
            '": a draft of your own, not published. Rename it and change the rule.');
        } catch (e) { /* private mode */ }
        window.location.href = config.list_url + copy.id + '/';
      }).catch(function (err) { duplicate.disabled = false; clearFlash(); failed(err); });
    });
    if (!editable) return;
    var discard = document.getElementById('discard-draft');
    if (discard) discard.addEventListener('click', function () {
      if (!window.confirm('Discard the unpublished changes to "' + segment.name + '"? ' +
          'The published version (v' + segment.published.number + ') stays live.')) return;
      discard.disabled = true;
      api('DELETE', config.api + segment.id + '/draft/').then(function () {
        reloadWith('Draft discarded: the published version is unchanged.');
      }).catch(function (err) { discard.disabled = false; clearFlash(); failed(err); });
    });
    var remove = document.getElementById('delete-segment');
    if (remove) remove.addEventListener('click', function () {
      if (!window.confirm('Delete "' + segment.name + '" and its membership history? ' +
          'This cannot be undone.')) return;
      remove.disabled = true;
      api('DELETE', config.api + segment.id + '/').then(function () {
        try { sessionStorage.setItem(FLASH, 'Deleted "' + segment.name + '".'); } catch (e) { /* private mode */ }
        window.location.href = config.list_url;
      }).catch(function (err) {
        remove.disabled = false;
        clearFlash();
        if (err.body && err.body.error && err.body.error.code === 'segment_in_use') {
          topError.textContent = '';
          topError.appendChild(inUseMessage(err));
          topError.hidden = false;
          topError.scrollIntoView({ block: 'center' });
        } else { failed(err); }
      });
    });
    wireSharing();
    document.querySelectorAll('#versions-table [data-restore]').forEach(function (b) {
      b.addEventListener('click', function () {
        var number = b.getAttribute('data-restore');
        b.disabled = true;
        api('POST', config.api + segment.id + '/versions/' + number + '/restore/').then(
          function (updated) {
            reloadWith(updated.draft ?
              'Version ' + number + ' restored as the draft (v' + updated.draft.number +
              '): publish to make it live.' :
              'Version ' + number + ' has the live rule: there is nothing to publish.');
          }).catch(function (err) { b.disabled = false; clearFlash(); failed(err); });
      });
    });
  }

  // ---- start ------------------------------------------------------------------------------
  datalist('dl-traits', suggest.traits || []);
  datalist('dl-events', suggest.events || []);
  render();
  openedRule = JSON.stringify(currentRule());
  preview();
  if (segment) wireExisting();
})();
