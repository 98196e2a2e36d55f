// rasp studio, live view: draws the snapshots of `rasp studio --attach ...` (GET /api/live,
// then the server-sent events of GET /api/live/stream). Plain JavaScript, no framework, no
// build step. The snapshot's shape is `rasp::studio::live::Snapshot`.
(function () {
  'use strict';

  const live = (window.live = { updates: 0, snapshot: null, stream: 'connecting' });
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children || []) e.append(c);
    return e;
  }

  // Node ids are decimal texts (64 bits); the last digits tell nodes apart on screen.
  const shortId = (id) => (id ? '…' + String(id).slice(-5) : '?');
  const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);
  const fmtRate = (r) => (r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(1).replace(/\.0$/, ''));
  const fmtTime = (d) => d.toTimeString().slice(0, 8);

  let lastUpdate = null;

  // When every attached node is on one host, tables name nodes by `:port` alone.
  const hostOf = (addr) => addr.slice(0, addr.lastIndexOf(':'));
  let commonHost = null;
  function label(addr) {
    return commonHost !== null && hostOf(addr) === commonHost ? addr.slice(commonHost.length) : addr;
  }

  function apply(snap) {
    if (live.snapshot && live.snapshot.seq === snap.seq) return;
    live.snapshot = snap;
    live.updates += 1;
    lastUpdate = new Date();
    render();
  }

  function render() {
    const s = live.snapshot;
    renderStatus();
    if (!s) return;
    const isolated = new Set(s.checks.isolated);
    const hosts = new Set(s.nodes.map((n) => hostOf(n.addr)));
    commonHost = hosts.size === 1 && s.nodes.length > 1 ? [...hosts][0] : null;
    document.querySelectorAll('.host-hint').forEach((e) => {
      e.textContent = commonHost !== null ? `nodes on ${commonHost}, by port` : '';
    });
    renderGraph(s, isolated);
    renderChecks(s);
    renderNodes(s, isolated);
    renderVars(s);
    renderRates(s);
  }

  function renderStatus() {
    const s = live.snapshot;
    const st = $('live-status');
    const parts = [];
    let cls = 'status';
    if (s) {
      const c = s.checks;
      parts.push(`${s.nodes.length} nodes`, `${c.live} up`, `${c.down.length} down`);
      parts.push(c.connected ? 'connected' : 'not connected');
      if (c.diverged.length) parts.push(`${c.diverged.length} diverged`);
      parts.push(`snapshot #${s.seq}`);
      if (lastUpdate) parts.push(`last change ${fmtTime(lastUpdate)}`);
      cls += c.down.length || !c.connected || c.diverged.length ? ' bad' : ' ok';
    }
    if (live.stream !== 'open') {
      parts.push(live.stream === 'connecting' ? 'stream connecting…' : 'stream lost, reconnecting…');
      cls = 'status bad';
    }
    st.className = cls;
    st.textContent = parts.join(' · ') || 'connecting…';
  }

  // --- the overlay graph -------------------------------------------------------------------

  function renderGraph(s, isolated) {
    const canvas = $('live-graph');
    const W = 560, H = 440;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== W * dpr) {
      canvas.width = W * dpr;
      canvas.height = H * dpr;
    }
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const n = s.nodes.length;
    const R = n > 1 ? Math.min(W, H) / 2 - 70 : 0;
    const pos = s.nodes.map((_, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
      return { x: W / 2 + R * Math.cos(a), y: H / 2 + R * Math.sin(a) };
    });
    const index = new Map();
    s.nodes.forEach((node, i) => { if (node.node_id && !index.has(node.node_id)) index.set(node.node_id, i); });
    const lists = (i, id) => s.nodes[i].neighbours.includes(id);
    const r = 27;

    function line(a, b, style) {
      const p = pos[a], q = pos[b];
      const dx = q.x - p.x, dy = q.y - p.y, d = Math.hypot(dx, dy) || 1;
      const ux = dx / d, uy = dy / d;
      const x1 = p.x + ux * r, y1 = p.y + uy * r, x2 = q.x - ux * (r + 2), y2 = q.y - uy * (r + 2);
      g.save();
      g.strokeStyle = style.color;
      g.lineWidth = style.width || 2;
      g.setLineDash(style.dash || []);
      g.beginPath(); g.moveTo(x1, y1); g.lineTo(x2, y2); g.stroke();
      if (style.arrow) {
        g.setLineDash([]);
        g.fillStyle = style.color;
        g.beginPath();
        g.moveTo(x2, y2);
        g.lineTo(x2 - ux * 11 - uy * 5, y2 - uy * 11 + ux * 5);
        g.lineTo(x2 - ux * 11 + uy * 5, y2 - uy * 11 - ux * 5);
        g.closePath(); g.fill();
      }
      g.restore();
    }

    s.nodes.forEach((node, a) => {
      if (!node.up) return;
      for (const id of node.neighbours) {
        const b = index.get(id);
        if (b === undefined || b === a) continue;
        const other = s.nodes[b];
        if (!other.up) line(a, b, { color: '#9aa0a8', dash: [2, 4], arrow: true });
        else if (lists(b, node.node_id)) { if (a < b) line(a, b, { color: '#5b6476', width: 2.5 }); }
        else line(a, b, { color: '#c62828', dash: [7, 5], arrow: true });
      }
    });

    s.nodes.forEach((node, i) => {
      const p = pos[i];
      const iso = node.up && isolated.has(node.addr);
      g.beginPath();
      g.arc(p.x, p.y, r, 0, 2 * Math.PI);
      g.fillStyle = node.up ? (iso ? '#ffffff' : '#1f8a4c') : '#c9ccd1';
      g.fill();
      g.lineWidth = iso ? 4 : 1.5;
      g.strokeStyle = iso ? '#c62828' : node.up ? '#166a3a' : '#9aa0a8';
      g.stroke();
      g.textAlign = 'center';
      g.textBaseline = 'middle';
      g.font = '600 10px system-ui, sans-serif';
      g.fillStyle = node.up ? (iso ? '#c62828' : '#ffffff') : '#5f6570';
      g.fillText(shortId(node.node_id), p.x, p.y);
      // Labels outside the circle, away from the centre.
      const below = p.y >= H / 2 - 1 || n === 1;
      let y = below ? p.y + r + 14 : p.y - r - 28;
      g.font = '12px system-ui, sans-serif';
      g.fillStyle = node.up ? '#1d2330' : '#9aa0a8';
      g.fillText(node.addr, p.x, y);
      y += 15;
      g.font = '600 12px system-ui, sans-serif';
      if (!node.up) { g.fillStyle = '#c62828'; g.fillText('down', p.x, y); }
      else if (iso) { g.fillStyle = '#c62828'; g.fillText('isolated', p.x, y); }
      else { g.fillStyle = '#6b7385'; g.font = '11px system-ui, sans-serif'; const k = node.neighbours.length; g.fillText(`${k} ${k === 1 ? 'neighbour' : 'neighbours'}`, p.x, y); }
    });

    if (n === 0) {
      g.fillStyle = '#6b7385';
      g.font = '14px system-ui, sans-serif';
      g.textAlign = 'center';
      g.fillText('no nodes attached', W / 2, H / 2);
    }
  }

  // --- checks, nodes, variables, rates -----------------------------------------------------

  function check(kind, label, text, key) {
    return el('div', { class: 'check', 'data-check': key }, [
      el('span', { class: kind, text: label }),
      text ? ' ' + text : '',
    ]);
  }

  function renderChecks(s) {
    const c = s.checks;
    const box = $('live-checks');
    const rows = [];
    rows.push(c.connected
      ? check('ok', 'connected', `(${c.live} live ${c.live === 1 ? 'node' : 'nodes'}, one component)`, 'connected')
      : check('bad', 'not connected', c.live ? `(components of ${c.components.join(', ')} nodes)` : '(no live node)', 'connected'));
    rows.push(c.isolated.length
      ? check('bad', `isolated: ${c.isolated.length}`, c.isolated.join(', '), 'isolated')
      : check('ok', 'isolated: none', '', 'isolated'));
    rows.push(c.asymmetric.length
      ? check('bad', `asymmetric: ${c.asymmetric.length}`, c.asymmetric.map(([a, b]) => `${a} → ${b}`).join(', '), 'asymmetric')
      : check('ok', 'asymmetric: none', '', 'asymmetric'));
    rows.push(c.down.length
      ? check('bad', `down: ${c.down.length}`, c.down.join(', '), 'down')
      : check('ok', 'down: none', '', 'down'));
    if (c.dangling.length) {
      rows.push(check('warn', `links to down or unattached nodes: ${c.dangling.length}`,
        c.dangling.map(([a, id]) => `${a} → ${shortId(id)}`).join(', '), 'dangling'));
    }
    if (!c.vars.length) rows.push(check('ok', 'variables: none held', '', 'vars'));
    else if (c.diverged.length) rows.push(check('bad', `diverged: ${c.diverged.length} of ${c.vars.length}`, c.diverged.join(', '), 'vars'));
    else rows.push(check('ok', `variables: all ${c.vars.length} equal on the live replicas`, '', 'vars'));
    box.replaceChildren(...rows);
  }

  function renderNodes(s, isolated) {
    const tbody = $('live-nodes').tBodies[0];
    const byId = new Map(s.nodes.filter((n) => n.node_id).map((n) => [n.node_id, n]));
    const rows = s.nodes.map((node) => {
      const total = Object.values(node.rates).reduce((t, r) => t + r.sent + r.received, 0);
      const neigh = node.neighbours.map((id) => (byId.has(id) ? label(byId.get(id).addr) : shortId(id)));
      const cls = [node.up ? 'up' : 'down', node.up && isolated.has(node.addr) ? 'isolated' : ''].join(' ').trim();
      const held = node.vars_held > Object.keys(node.vars).length
        ? `${node.vars_held} (first ${Object.keys(node.vars).length} shown)` : String(node.vars_held);
      const head = [
        el('td', { class: 'state', text: node.up ? 'up' : 'down' }),
        el('td', { class: 'addr', text: node.addr }),
        el('td', { class: 'ids nodeid', text: node.node_id || '?', title: node.node_id || '' }),
      ];
      if (!node.up) {
        // A down node has no live view: its error takes the rest of the row.
        return el('tr', { 'data-addr': node.addr, class: cls }, [
          ...head,
          el('td', { class: 'error', colspan: '5', text: node.error ? clip(node.error, 240) : '', title: node.error || '' }),
        ]);
      }
      return el('tr', { 'data-addr': node.addr, class: cls }, [
        ...head,
        el('td', { text: node.mode || '' }),
        el('td', { class: 'ids neigh' }, neigh.length ? neigh.map((a) => el('span', { text: a })) : ['none']),
        el('td', { class: 'num', text: String(node.passive.length) }),
        el('td', { class: 'num', text: held }),
        el('td', { class: 'num', text: fmtRate(total) }),
      ]);
    });
    tbody.replaceChildren(...rows);
  }

  function renderVars(s) {
    const table = $('live-vars');
    const ids = [...new Set(s.nodes.flatMap((n) => Object.keys(n.vars)))].sort();
    const byId = new Map(s.checks.vars.map((v) => [v.id, v]));
    if (!ids.length) {
      table.tHead.replaceChildren();
      table.tBodies[0].replaceChildren(el('tr', {}, [el('td', { class: 'empty-cell', text: 'no variables held yet' })]));
      return;
    }
    table.tHead.replaceChildren(el('tr', {}, [
      el('th', { text: 'variable' }),
      el('th', { text: 'type' }),
      ...s.nodes.map((n) => el('th', { class: n.up ? '' : 'down', title: n.addr, text: n.up ? label(n.addr) : `${label(n.addr)} (down)` })),
      el('th', { text: 'replicas' }),
    ]));
    const rows = ids.map((id) => {
      const chk = byId.get(id);
      const differing = new Set(chk ? chk.differing : []);
      const holder = s.nodes.find((n) => n.vars[id]);
      const cells = s.nodes.map((n) => {
        const v = n.vars[id];
        if (!v) return el('td', { class: 'missing', 'data-node': n.addr, 'data-var': id, text: '—' });
        const text = v.error ? `error: ${v.error}` : v.truncated ? String(v.value) : JSON.stringify(v.value);
        const cls = [!n.up ? 'stale' : '', n.up && differing.has(n.addr) ? 'diverged' : ''].join(' ').trim();
        return el('td', { class: cls, 'data-node': n.addr, 'data-var': id, text: clip(text, 90), title: text.length > 90 ? clip(text, 2000) : null });
      });
      let verdict;
      if (!chk) verdict = el('td', { class: 'verdict', text: 'no live replica' });
      else if (chk.equal) verdict = el('td', { class: 'verdict equal', text: `equal on ${chk.replicas}` });
      else verdict = el('td', { class: 'verdict diverged', text: `diverged: ${chk.differing.length} of ${chk.replicas} differ` });
      return el('tr', { 'data-var': id }, [
        el('td', { class: 'var', text: id }),
        el('td', { class: 'type', text: holder ? holder.vars[id].type + (holder.vars[id].derived ? ' (derived)' : '') : '' }),
        ...cells,
        verdict,
      ]);
    });
    table.tBodies[0].replaceChildren(...rows);
  }

  function renderRates(s) {
    const box = $('live-rates');
    const up = s.nodes.filter((n) => n.up);
    const kinds = [...new Set(up.flatMap((n) => Object.keys(n.rates)))];
    if (!kinds.length) {
      box.replaceChildren(el('div', { class: 'empty', text: 'no message rates yet (two answers of a node are needed)' }));
      return;
    }
    const total = (k) => up.reduce((t, n) => t + (n.rates[k] ? n.rates[k].sent + n.rates[k].received : 0), 0);
    kinds.sort((a, b) => total(b) - total(a) || (a < b ? -1 : 1));
    const max = Math.max(...kinds.map(total), 1);
    const head = el('tr', {}, [
      el('th', { text: 'kind' }),
      ...up.map((n) => el('th', { title: n.addr, text: label(n.addr) })),
      el('th', { text: 'total msg/s' }),
      el('th', { text: '' }),
    ]);
    const rows = kinds.map((k) => el('tr', { 'data-kind': k }, [
      el('td', { text: k }),
      ...up.map((n) => {
        const r = n.rates[k];
        return el('td', { class: 'rate', 'data-node': n.addr }, r
          ? [`↑${fmtRate(r.sent)} `, el('span', { class: 'r', text: `↓${fmtRate(r.received)}` })]
          : ['—']);
      }),
      el('td', { class: 'num', text: fmtRate(total(k)) }),
      el('td', { class: 'bar' }, [el('i', { style: `width:${(100 * total(k)) / max}%` })]),
    ]));
    box.replaceChildren(el('table', {}, [el('thead', {}, [head]), el('tbody', {}, rows)]));
  }

  // --- data --------------------------------------------------------------------------------

  fetch('/api/live', { cache: 'no-store' })
    .then((r) => r.json())
    .then(apply)
    .catch(() => {});
  const es = new EventSource('/api/live/stream');
  es.addEventListener('snapshot', (e) => {
    try { apply(JSON.parse(e.data)); } catch (err) { /* a torn event: the next one follows */ }
  });
  es.onopen = () => { live.stream = 'open'; renderStatus(); };
  es.onerror = () => { live.stream = es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting'; renderStatus(); };
  render();
})();
