/* Profile pages: the identity graph (SVG from the graph API), the event timeline (the events
   API, page by page) and the identity rules form (priority order, trait strategy rows). */
(function () {
  var TYPE_COLORS = {
    user_id: '#4f46e5', email: '#0b84b5', phone: '#2f9e44', anonymous_id: '#7d8598',
    device_id: '#d9822b', group_id: '#a23ba2'
  };
  var EXTRA_COLORS = ['#c2410c', '#0f766e', '#be185d', '#4d7c0f', '#7c3aed', '#0369a1'];
  var SVG = 'http://www.w3.org/2000/svg';

  function colorOf(type) {
    if (TYPE_COLORS[type]) return TYPE_COLORS[type];
    var h = 0;
    for (var i = 0; i < type.length; i++) h = (h * 31 + type.charCodeAt(i)) >>> 0;
    return EXTRA_COLORS[h % EXTRA_COLORS.length];
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }
  function getJSON(url) {
    return fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (r.ok) return body;
          var err = new Error((body.error && body.error.message) || ('HTTP ' + r.status));
          err.status = r.status;
          throw err;
        });
      });
  }
  function when(iso) {
    if (!iso) return '';
    var d = new Date(iso);
    return d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' }) + ' ' +
      d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  }
  function short(text, n) {
    text = String(text);
    return text.length > n ? text.slice(0, n - 1) + '…' : text;
  }

  // ---- identity graph ----------------------------------------------------------------------
  function drawGraph(root) {
    var legend = document.getElementById('graph-legend');
    var status = root.querySelector('.graph-status');
    var tip = el('div', 'graph-tip');
    tip.hidden = true;
    function fail(message) { status.textContent = message; status.hidden = false; }
    getJSON(root.dataset.url).then(function (data) {
      var nodes = data.nodes || [], edges = data.edges || [];
      if (!nodes.length) { fail('No identifiers to draw.'); return; }
      status.hidden = true;
      // drawn at the container's own size, so labels keep their font size at any width
      var W = Math.max(320, Math.round(root.clientWidth || 640));
      var H = Math.round(Math.min(440, Math.max(260, W * (nodes.length > 14 ? 0.75 : 0.6))));
      var padX = 80, padY = 30;
      var byId = {};
      nodes.forEach(function (n) {
        n.px = padX + Math.min(Math.max(+n.x || 0, 0), 1) * (W - 2 * padX);
        n.py = padY + Math.min(Math.max(+n.y || 0, 0), 1) * (H - 2 * padY);
        byId[n.id] = n;
      });
      var canvas = svg('svg', {
        viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'class': 'graph-svg', id: 'graph-svg',
        'aria-label': 'Identity graph: ' + nodes.length + ' identifiers, ' + edges.length + ' links'
      });
      var edgeLayer = svg('g', { 'class': 'edges' }), nodeLayer = svg('g', { 'class': 'nodes' });
      edges.forEach(function (e) {
        var a = byId[e.source], b = byId[e.target];
        if (!a || !b) return;
        edgeLayer.appendChild(svg('line', {
          x1: a.px, y1: a.py, x2: b.px, y2: b.py, 'class': 'edge' + (e.cross ? ' cross' : '')
        }));
      });
      // Labels for every node only while they fit; in a crowded graph only the types with few
      // values (a user id, an email), and the other profiles' nodes. Hover shows the rest.
      var perType = {};
      nodes.forEach(function (n) { if (!n.foreign) perType[n.type] = (perType[n.type] || 0) + 1; });
      var crowded = nodes.length > 12, radius = crowded ? 7 : 9;
      function labelled(n) { return !crowded || n.foreign || perType[n.type] <= 3; }
      nodes.forEach(function (n) {
        var color = colorOf(n.type);
        var g = svg('g', {
          'class': 'node' + (n.foreign ? ' foreign' : ''), 'data-type': n.type, tabindex: '0',
          transform: 'translate(' + n.px.toFixed(1) + ',' + n.py.toFixed(1) + ')'
        });
        var title = svg('title');
        title.textContent = n.type + ':' + n.value + (n.foreign ? ' (profile #' + n.profile_id + ')' : '');
        g.appendChild(title);
        g.appendChild(svg('circle', { r: 15, 'class': 'hit' }));  // an easier target than 9px
        g.appendChild(svg('circle', {
          r: n.foreign ? radius - 1 : radius, fill: n.foreign ? '#fff' : color, stroke: color,
          'stroke-width': n.foreign ? 2 : 1.5, 'stroke-dasharray': n.foreign ? '3 2' : 'none'
        }));
        if (labelled(n)) {
          var label = svg('text', { y: radius + 13, 'text-anchor': 'middle', 'class': 'node-label' });
          label.textContent = short(n.value, 22);
          g.appendChild(label);
        }
        g.addEventListener('mouseenter', function () { showTip(n, g); });
        g.addEventListener('focus', function () { showTip(n, g); });
        g.addEventListener('mouseleave', function () { tip.hidden = true; });
        g.addEventListener('blur', function () { tip.hidden = true; });
        var target = g;
        if (n.foreign && n.profile_id) {
          target = svg('a', { href: '/profiles/' + n.profile_id + '/', 'class': 'node-link' });
          target.appendChild(g);
        }
        nodeLayer.appendChild(target);
      });
      canvas.appendChild(edgeLayer);
      canvas.appendChild(nodeLayer);
      root.appendChild(canvas);
      root.appendChild(tip);
      if (data.truncated) {
        root.appendChild(el('p', 'muted small', 'The graph is large: only part of it is drawn. The identities table lists them all.'));
      }
      drawLegend(nodes, edges);
    }, function (err) {
      fail(err.status === 404 ? 'The identity graph is not available.'
        : 'Could not load the identity graph: ' + err.message);
    });

    function showTip(n, g) {
      tip.innerHTML = '';
      tip.appendChild(el('strong', '', n.type));
      tip.appendChild(document.createTextNode(' ' + n.value));
      if (n.first_seen) tip.appendChild(el('div', 'muted', 'first seen ' + when(n.first_seen)));
      if (n.foreign) tip.appendChild(el('div', 'muted', 'in profile #' + n.profile_id + ' · click to open'));
      tip.hidden = false;
      var box = root.getBoundingClientRect(), r = g.getBoundingClientRect();
      tip.style.left = Math.max(0, Math.min(r.left - box.left + r.width / 2 - tip.offsetWidth / 2, box.width - tip.offsetWidth)) + 'px';
      tip.style.top = (r.top - box.top - tip.offsetHeight - 6) + 'px';
    }
    function drawLegend(nodes, edges) {
      var types = [];
      nodes.forEach(function (n) { if (types.indexOf(n.type) < 0) types.push(n.type); });
      types.forEach(function (t) {
        var item = el('span', 'legend-item');
        var swatch = el('span', 'swatch');
        swatch.style.background = colorOf(t);
        item.appendChild(swatch);
        item.appendChild(document.createTextNode(t));
        legend.appendChild(item);
      });
      if (nodes.some(function (n) { return n.foreign; })) {
        var f = el('span', 'legend-item');
        f.appendChild(el('span', 'swatch foreign'));
        f.appendChild(document.createTextNode('other profile'));
        legend.appendChild(f);
      }
      if (edges.some(function (e) { return e.cross; })) {
        var c = el('span', 'legend-item');
        c.appendChild(el('span', 'swatch cross'));
        c.appendChild(document.createTextNode('link to another profile'));
        legend.appendChild(c);
      }
    }
  }

  // ---- event timeline ----------------------------------------------------------------------
  function valueText(v) {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }
  function pairs(obj, limit) {
    var keys = Object.keys(obj || {});
    var out = keys.slice(0, limit).map(function (k) { return k + ': ' + short(valueText(obj[k]), 40); });
    if (keys.length > limit) out.push('+' + (keys.length - limit) + ' more');
    return out.join(' · ');
  }
  function eventName(ev) {
    if (ev.type === 'track') return ev.event || '(unnamed)';
    if (ev.type === 'page' || ev.type === 'screen') return ev.name || '(unnamed)';
    if (ev.type === 'identify') return 'Identify' + (ev.userId ? ' ' + ev.userId : '');
    if (ev.type === 'group') return 'Group ' + (ev.groupId || '');
    if (ev.type === 'alias') return (ev.previousId || '') + ' → ' + (ev.userId || '');
    return ev.type;
  }
  function eventSummary(ev) {
    if (ev.type === 'identify' || ev.type === 'group') return pairs(ev.traits, 4) || '(no traits)';
    if (ev.type === 'alias') return 'alias';
    return pairs(ev.properties, 4);
  }
  function timelineRow(ev) {
    var li = el('li', 'event-row');
    li.dataset.id = ev.id;
    var head = el('div', 'event-head timeline-head');
    head.appendChild(el('span', 'event-time muted', when(ev.timestamp)));
    head.appendChild(el('span', 'type type-' + ev.type, ev.type));
    head.appendChild(el('span', 'event-name', eventName(ev)));
    head.appendChild(el('span', 'event-props muted', eventSummary(ev)));
    var body = el('pre', 'payload');
    body.hidden = true;
    body.textContent = JSON.stringify(ev, null, 2);
    head.setAttribute('role', 'button');
    head.setAttribute('aria-expanded', 'false');
    head.tabIndex = 0;
    function toggle() {
      body.hidden = !body.hidden;
      li.classList.toggle('open', !body.hidden);
      head.setAttribute('aria-expanded', String(!body.hidden));
    }
    head.addEventListener('click', toggle);
    head.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(); }
    });
    li.appendChild(head);
    li.appendChild(body);
    return li;
  }
  function timeline(list) {
    var more = document.getElementById('timeline-more');
    var status = document.getElementById('timeline-status');
    var empty = document.getElementById('timeline-empty');
    var error = document.getElementById('timeline-error');
    var next = list.dataset.url;
    function sameOrigin(url) {
      var u = new URL(url, window.location.href);
      return u.pathname + u.search;
    }
    function load() {
      if (!next) return;
      more.disabled = true;
      more.textContent = 'Loading…';
      getJSON(sameOrigin(next)).then(function (data) {
        error.hidden = true;
        data.results.forEach(function (ev) { list.appendChild(timelineRow(ev)); });
        next = data.next;
        more.hidden = !next;
        empty.hidden = list.children.length > 0;
        status.textContent = list.children.length ? 'Showing ' + list.children.length + ' of ' + data.count + ', newest first' : '';
      }, function (err) {
        error.textContent = 'Could not load events: ' + err.message;
        error.hidden = false;
      }).then(function () {
        more.disabled = false;
        more.textContent = 'Load more';
      });
    }
    more.addEventListener('click', load);
    load();
  }

  // ---- identity rules form -----------------------------------------------------------------
  function rulesForm(form) {
    var list = document.getElementById('priority-list');
    var input = document.getElementById('priority-input');
    var addBox = document.getElementById('priority-add');
    var addType = document.getElementById('priority-add-type');
    function sync() {
      var types = [];
      list.querySelectorAll('li').forEach(function (li, i) {
        types.push(li.dataset.type);
        li.querySelector('.rank').textContent = String(i + 1);
        li.querySelector('[data-move=up]').disabled = i === 0;
        li.querySelector('[data-move=down]').disabled = i === list.children.length - 1;
      });
      input.value = types.join(',');
      addBox.hidden = addType.options.length === 0;
    }
    function item(type) {
      var li = el('li');
      li.dataset.type = type;
      li.appendChild(el('span', 'rank'));
      li.appendChild(el('span', 'chip-type chip-' + type, type));
      li.appendChild(el('span', 'grow'));
      [['up', '↑', 'Move up'], ['down', '↓', 'Move down']].forEach(function (m) {
        var b = el('button', 'button small', m[1]);
        b.type = 'button'; b.dataset.move = m[0]; b.title = m[2];
        b.setAttribute('aria-label', m[2].replace('Move', 'Move ' + type));
        li.appendChild(b);
      });
      var rm = el('button', 'button small danger', '✕');
      rm.type = 'button'; rm.dataset.remove = ''; rm.title = 'Remove from the list';
      rm.setAttribute('aria-label', 'Remove ' + type);
      li.appendChild(rm);
      return li;
    }
    list.addEventListener('click', function (e) {
      var btn = e.target.closest('button');
      if (!btn) return;
      var li = btn.closest('li');
      if (btn.dataset.move === 'up' && li.previousElementSibling) list.insertBefore(li, li.previousElementSibling);
      else if (btn.dataset.move === 'down' && li.nextElementSibling) list.insertBefore(li.nextElementSibling, li);
      else if (btn.hasAttribute('data-remove')) {
        var opt = el('option', '', li.dataset.type);
        opt.value = li.dataset.type;
        addType.appendChild(opt);
        li.remove();
      }
      sync();
      if (li.isConnected && btn.dataset.move) btn.focus();
    });
    document.getElementById('priority-add-button').addEventListener('click', function () {
      var type = addType.value;
      if (!type) return;
      list.appendChild(item(type));
      addType.remove(addType.selectedIndex);
      sync();
    });
    var rows = document.getElementById('strategy-rows');
    var blank = rows.querySelector('.strategy-row:last-child').cloneNode(true);
    blank.querySelector('input').value = '';
    blank.querySelector('input').classList.remove('invalid');
    blank.querySelectorAll('.field-error').forEach(function (e) { e.remove(); });
    document.getElementById('strategy-add').addEventListener('click', function () {
      var row = blank.cloneNode(true);
      rows.appendChild(row);
      row.querySelector('input').focus();
    });
    rows.addEventListener('click', function (e) {
      if (!e.target.closest('[data-remove-row]')) return;
      var row = e.target.closest('tr');
      if (rows.children.length > 1) row.remove();
      else row.querySelector('input').value = '';
    });
    sync();
  }

  var graph = document.getElementById('identity-graph');
  if (graph) drawGraph(graph);
  var list = document.getElementById('timeline');
  if (list) timeline(list);
  var form = document.getElementById('rules-form');
  if (form) rulesForm(form);
})();
