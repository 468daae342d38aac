// report.html's pictures of a fleet (inlined into html-reporter.ts's viewer, in its scope: el, secs): each mesh
// network of a try as SVG (members where their topology put them, links, the links down at the end dashed, the links
// batman-adv's routes went through at the end drawn thicker by how many routes used them, each member coloured by
// whether it had a route to every other), a smaller picture of each partition's islands, and a grid of a fleet's
// machines (one cell each: how it started and how long it took, its resets, its console checks outlined).

export const TOPOLOGY_CSS = `
svg.topology { max-width: 100%; background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 4px 8px 4px 0; }
svg.topology .link { stroke: #afb8c1; stroke-width: 1; }
svg.topology .link.down { stroke: var(--fail); stroke-dasharray: 4 3; }
svg.topology .link.used { stroke: #0969da; }
svg.topology .node { stroke: #24292f; stroke-width: 0.6; fill: #afb8c1; }
svg.topology .node.all-routes { fill: #2da44e; } svg.topology .node.some-routes { fill: #d4a72c; } svg.topology .node.no-routes { fill: var(--fail); }
svg.topology .label { font-size: 9px; fill: #424a53; }
svg.topology .caption { font-size: 11px; fill: #57606a; }
.figures { display: flex; flex-wrap: wrap; align-items: flex-start; }
.fleet-grid { display: inline-grid; gap: 2px; margin: 4px 0 8px; }
.fleet-grid .cell { width: 14px; height: 14px; border-radius: 2px; background: #afb8c1; cursor: pointer; }
.fleet-grid .cell.cold { background: #54aeff; } .fleet-grid .cell.warm { background: #2da44e; }
.fleet-grid .cell.flagged { outline: 2px solid var(--fail); }
`;

export const TOPOLOGY_SCRIPT = `
  var SVGNS = 'http://www.w3.org/2000/svg';
  function svgEl(tag, attrs, parent, title) {
    var n = document.createElementNS(SVGNS, tag);
    for (var k in attrs) n.setAttribute(k, attrs[k]);
    if (title) { var t = document.createElementNS(SVGNS, 'title'); t.textContent = title; n.appendChild(t); }
    if (parent) parent.appendChild(n);
    return n;
  }
  // Where each member lies: its topology's place, or a circle in member order.
  function places(p) {
    var at = {}, n = p.members.length;
    p.members.forEach(function (m, i) {
      at[m] = p.positions && p.positions[m] ? p.positions[m] : [Math.sin(2 * Math.PI * i / n) * n / 6, -Math.cos(2 * Math.PI * i / n) * n / 6];
    });
    return at;
  }
  // One picture of network p: island (member -> index) colours the members of a partition instead of their routes.
  function networkSvg(p, opts) {
    var at = places(p), xs = [], ys = [];
    p.members.forEach(function (m) { xs.push(at[m][0]); ys.push(at[m][1]); });
    var minX = Math.min.apply(null, xs), maxX = Math.max.apply(null, xs), minY = Math.min.apply(null, ys), maxY = Math.max.apply(null, ys);
    // Room on the right for the labels (written right of each member, up to 32 members).
    var span = Math.max(maxX - minX, maxY - minY, 1), size = opts.size, pad = 18, right = p.members.length <= 32 ? 48 : pad, scale = (size - pad - right) / span;
    var w = Math.round((maxX - minX) * scale + pad + right), h = Math.round((maxY - minY) * scale + 2 * pad) + 16;
    var X = function (m) { return (pad + (at[m][0] - minX) * scale).toFixed(1); }, Y = function (m) { return (pad + (at[m][1] - minY) * scale).toFixed(1); };
    var svg = svgEl('svg', { class: 'topology', 'data-network': p.name, 'data-view': opts.view, width: String(w), height: String(h), viewBox: '0 0 ' + w + ' ' + h });
    var used = {}, most = 1, routes = p.routes || {};
    Object.keys(routes).forEach(function (from) {
      routes[from].forEach(function (r) { var k = from < r[1] ? from + ' ' + r[1] : r[1] + ' ' + from; used[k] = (used[k] || 0) + 1; most = Math.max(most, used[k]); });
    });
    var r = Math.max(2.5, Math.min(7, scale / 4));
    p.links.forEach(function (l) {
      var k = l.a < l.b ? l.a + ' ' + l.b : l.b + ' ' + l.a, cls = 'link', title = l.a + ' \\u2194 ' + l.b;
      if (opts.island) { if (opts.island[l.a] !== opts.island[l.b]) { cls += ' down'; title += ': cut by the partition'; } }
      else if (!l.up) { cls += ' down'; title += ': down at the end'; }
      else if (used[k]) { cls += ' used'; title += ': ' + used[k] + ' route' + (used[k] > 1 ? 's' : '') + ' through it at the end'; }
      var line = svgEl('line', { class: cls, x1: X(l.a), y1: Y(l.a), x2: X(l.b), y2: Y(l.b), 'data-link': l.a + ' ' + l.b }, svg, title);
      if (!opts.island && used[k] && l.up) line.setAttribute('style', 'stroke-width:' + (1 + 4 * used[k] / most).toFixed(2));
    });
    var others = p.members.length - 1, palette = ['#0969da', '#bf3989', '#1a7f37', '#bc4c00', '#8250df', '#9a6700'];
    p.members.forEach(function (m) {
      var cls = 'node', title = m, style;
      if (opts.island) {
        var g = opts.island[m];
        title += g === undefined ? ': in no island' : ': island ' + (g + 1);
        if (g !== undefined) style = 'fill:' + palette[g % palette.length];
      } else if (routes[m]) {
        var n = routes[m].length;
        cls += n >= others ? ' all-routes' : n ? ' some-routes' : ' no-routes';
        title += ': routes to ' + n + ' of ' + others + (routes[m].length ? '\\n' + routes[m].slice(0, 12).map(function (x) { return '\\u2192 ' + x[0] + ' via ' + x[1]; }).join('\\n') + (routes[m].length > 12 ? '\\n\\u2026' : '') : '');
      } else if (p.routesMissing && p.routesMissing[m]) title += ': routes not read (' + p.routesMissing[m] + ')';
      var c = svgEl('circle', { class: cls, cx: X(m), cy: Y(m), r: r.toFixed(1), 'data-machine': m }, svg, title);
      if (style) c.setAttribute('style', style);
      if (p.members.length <= 32) svgEl('text', { class: 'label', x: (Number(X(m)) + r + 1).toFixed(1), y: (Number(Y(m)) - r).toFixed(1) }, svg).textContent = m;
    });
    svgEl('text', { class: 'caption', x: '4', y: String(h - 4) }, svg).textContent = opts.caption;
    return svg;
  }
  // A try's mesh networks: at the end (with routes), then each partition's islands.
  function topologyFigures(a) {
    if (!a.topology || !a.topology.length) return null;
    var box = el('div', { cls: 'figures' }), t0 = Date.parse(a.startedAt);
    a.topology.forEach(function (p) {
      var down = p.links.filter(function (l) { return !l.up; }).length;
      var routed = p.routes ? Object.keys(p.routes).length : 0;
      box.appendChild(networkSvg(p, { view: 'end', size: 420, caption: p.name + ' at the end: ' + p.members.length + ' machines, ' + p.links.length + ' links' + (down ? ', ' + down + ' down' : '') + (p.batman ? ', routes of ' + routed + ' read' : '') }));
      p.partitions.slice(0, 4).forEach(function (part, i) {
        var island = {};
        part.groups.forEach(function (g, gi) { g.forEach(function (m) { island[m] = gi; }); });
        box.appendChild(networkSvg(p, { view: 'partition-' + (i + 1), island: island, size: 220, caption: 'partition at ' + secs(part.t - t0) + ': ' + part.groups.map(function (g) { return g.length; }).join(' | ') }));
      });
    });
    return box;
  }
  // A fleet's machines as a grid of cells: cold or warm start, outlined when a console check hit; a click shows its box.
  function fleetGrids(a) {
    var fleets = {};
    a.machines.forEach(function (m) { if (m.fleet) (fleets[m.fleet] = fleets[m.fleet] || []).push(m); });
    var names = Object.keys(fleets);
    if (!names.length) return null;
    var box = el('div');
    names.forEach(function (f) {
      var ms = fleets[f], width = Math.ceil(Math.sqrt(ms.length));
      var grid = el('div', { cls: 'fleet-grid', 'data-fleet': f, style: 'grid-template-columns: repeat(' + width + ', 14px)' });
      ms.forEach(function (m) {
        var st = (m.facts && m.facts.start) || null, ev = m.events || [];
        var checks = ev.filter(function (e) { return e.kind === 'console-check'; }).map(function (e) { return e.detail; });
        var resets = ev.filter(function (e) { return e.kind === 'reset'; }).length;
        var cell = el('div', { cls: 'cell' + (st ? ' ' + st.mode : '') + (checks.length ? ' flagged' : ''), 'data-machine': m.name, title: m.name + ': ' + (st ? st.mode + ' start in ' + secs(st.ms) : 'no start recorded') + (resets ? ', ' + resets + ' reset' + (resets > 1 ? 's' : '') : '') + (checks.length ? ', console checks: ' + checks.join(', ') : '') });
        cell.onclick = function () { var b = cell.closest('.body'), t = b && b.querySelector('.machine[data-name="' + m.name + '"]'); if (t) t.scrollIntoView(); };
        grid.appendChild(cell);
      });
      box.appendChild(el('div', { cls: 'dim', text: f + ' (' + ms.length + ')' }));
      box.appendChild(grid);
    });
    return box;
  }
`;
