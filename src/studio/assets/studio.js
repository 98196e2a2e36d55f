// rasp studio: the page. One execution of the user's program in rasp's deterministic
// simulator, drawn as a space-time diagram in the manner of ShiViz (Beschastnikh et al.,
// "Debugging Distributed Systems", CACM 59(8), 2016) and Runway: one horizontal lane per node,
// time runs LEFT TO RIGHT, one column per event (the x axis is the event index, so every event
// gets room; the time of each event is on the axis labels and in the cursor line), messages
// as arrows from the send event to the delivery event.
//
// Everything comes from the studio's HTTP API (see the contract the server in src/studio/
// implements): events and messages are fetched in windows of CHUNK events around the visible
// range and cached per execution; the whole run is never asked for in one call.
//
// Plain ES module, no framework, no build step; the Rust binary embeds this file.
//
// Stable element ids (browser tests rely on them):
//   #diagram (canvas)          #cursor-info ("event K / N · t = X s")   #scrub (range 0..N)
//   #play  #step-back  #step   #speed (1|10|100|1000 events per second)
//   #next-node  #next-node-btn  #next-kind  #next-kind-btn  #goto-t  #goto-t-btn
//   #vars (table; value cells td[data-node][data-var], class "diverged" when it differs)
//   #overlay (canvas)  #overlay-flags (text)  #divergence (canvas)  #detail (event details)
//   #tree (entries .exec[data-id], .current, .violating)  #violation  #jump-violation
//   branch form: #branch-action (drop|duplicate|delay|crash|restart|pause|partition|heal|update)
//     #branch-msg  #branch-node  #branch-ms  #branch-wipe  #branch-a  #branch-b  #branch-op
//     #branch-oneway  #branch-go
//   files: #download  #upload (file input)  #shiviz      status bar: #status
//   lanes: #lanes (input[data-lane] per node)  #filter-node ("all" or a node)  #collapse
//   also: #lanes-all  #lanes-none  #zoom-in  #zoom-out  #zoom-fit  #legend  #tip
// window.studio (read-only): {exec, cursor, total, rendered, lastRenderMs, lastScrubMs, timings,
//                             lanes, collapsed, playing}
//   rendered     frames of the diagram drawn so far
//   lastRenderMs performance.now() (ms since navigation start) at the first full render of the
//                diagram: every visible window loaded and drawn
//   lastScrubMs  time of the last scrub step, from the slider's input event until the diagram
//                and the panels at the cursor (variables, overlay, details) are redrawn
//   timings      {draw, panels, state}: ms spent on the last diagram frame, the last panels
//                update and the last /state round trip
//   lanes        the node lanes the diagram draws (hidden ones and the filter applied)
//   collapsed    lanes collapsed (thin) · playing: playback running

const CHUNK = 1000; // events per window request (the server caps a window at 5000)
const MAX_PARALLEL = 4; // window requests in flight at once
const STATE_CACHE = 256; // states at the cursor kept per execution
const RETRY_MS = 3000; // a window whose request failed is asked again after this long
const EVENT_KINDS = ["deliver", "timer", "input", "fault", "boot", "local", "conn", "peer"];
const AXIS_H = 30; // top axis of the diagram (index ticks and their times)
const CLUSTER_H = 16; // row for cluster-wide events (partition, heal: node null)
const GUTTER = 74; // lane labels
const RIGHT_PAD = 28; // room at the right end for open in-flight arrows

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const k of kids) e.append(k);
  return e;
};
const num = (v, d = 0) => (typeof v === "number" && Number.isFinite(v) ? v : d);
const fmtT = (t) => {
  const x = num(t);
  return Math.abs(x) >= 100 ? x.toFixed(1) : x.toFixed(3);
};
const clamp = (x, lo, hi) => Math.max(lo, Math.min(hi, x));
const nodeName = (k) => (k === null || k === undefined ? "cluster" : `n${k}`);

// ---------------------------------------------------------------------------------------
// Colours: a stable colour per message-kind string (FNV-1a hash onto the hue circle), so the
// same kind has the same colour in every execution and every session.
// Kinds whose hashed slot is taken by an earlier kind probe to the next free slot, so the
// first PALETTE.length kinds always get distinct colours; red is kept for violations.
const colourCache = new Map();
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#393b79", "#7b4173", "#b07d00"];
const usedSlots = new Set();
function kindColour(kind) {
  const key = String(kind ?? "");
  let c = colourCache.get(key);
  if (c) return c;
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 16777619) >>> 0;
  }
  let slot = h % PALETTE.length;
  for (let j = 0; j < PALETTE.length && usedSlots.has(slot); j++) slot = (slot + 1) % PALETTE.length;
  usedSlots.add(slot);
  c = PALETTE[slot];
  colourCache.set(key, c);
  return c;
}
const EVENT_STYLE = {
  deliver: { shape: "circle", colour: null, sym: "●" },
  timer: { shape: "square", colour: "#6e7781", sym: "■" },
  input: { shape: "diamond", colour: "#1a7f37", sym: "◆" },
  fault: { shape: "cross", colour: "#24292f", sym: "✕" },
  boot: { shape: "triangle", colour: "#0969da", sym: "▲" },
  local: { shape: "dot", colour: "#8c959f", sym: "·" },
  conn: { shape: "ring", colour: "#8250df", sym: "○" },
  peer: { shape: "ring", colour: "#bf3989", sym: "○" },
};

// ---------------------------------------------------------------------------------------
// Status bar: every API error lands here and stays until the next message.
function setStatus(text, kind = "info") {
  const s = $("status");
  s.textContent = text;
  s.className = kind;
  s.title = text;
}
function reportError(e) {
  const msg = e && e.message ? e.message : String(e);
  setStatus(`error: ${msg}`, "error");
  // eslint-disable-next-line no-console
  console.error(e);
}
window.addEventListener("error", (ev) => reportError(ev.error || ev.message));
window.addEventListener("unhandledrejection", (ev) => reportError(ev.reason));

// All API calls: JSON in, JSON out; `{"error": ...}` bodies become thrown Errors with the
// server's words, the method, the path and the status code.
async function api(path, opts = {}) {
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw new Error(`${opts.method || "GET"} ${path}: ${e.message || e} (is the studio server running?)`);
  }
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = null;
  }
  if (!res.ok) {
    const why = body && typeof body.error === "string" ? body.error : text.slice(0, 200) || res.statusText;
    throw new Error(`${opts.method || "GET"} ${path}: ${res.status} ${why}`);
  }
  if (body === null) throw new Error(`${opts.method || "GET"} ${path}: the answer is not JSON`);
  return body;
}

// ---------------------------------------------------------------------------------------
// State of the page.
const S = {
  app: "",
  executions: [], // Summary list
  exec: null, // current execution id
  summary: null,
  total: 0,
  cursor: 0,
  nodes: [], // [{index, role}]
  hidden: new Set(), // lanes hidden by checkbox
  filterNode: "all",
  collapsed: false,
  viewStart: 0.5, // event index at the left edge of the plot
  viewSpan: 200, // events across the plot
  playing: false,
  speed: 10,
  rendered: 0,
  lastRenderMs: null,
  lastScrubMs: null,
  scrubT0: null,
  scrubTarget: null,
  cache: null, // per-execution cache, see newCache
  state: null, // state at the cursor (API answer) or null while loading
  drawQueued: false,
  layout: null,
  timings: { draw: 0, panels: 0, state: 0 }, // ms: last diagram frame, last panels update, last state fetch
};
const caches = new Map(); // exec id -> cache

function newCache(summary) {
  return {
    events: new Array(num(summary.events) + 2), // events[i] = Event
    chunks: new Map(), // chunk index -> "loaded" | Promise | {failedAt} (retried after RETRY_MS)
    msgs: new Map(), // message id -> Msg
    msgKinds: new Set(),
    labels: new Set(),
    bands: null,
    points: null,
    states: new Map(), // K -> state
    stateReqs: new Map(), // K -> Promise of a state being fetched
  };
}

window.studio = Object.freeze({
  get exec() { return S.exec; },
  get cursor() { return S.cursor; },
  get total() { return S.total; },
  get rendered() { return S.rendered; },
  get lastRenderMs() { return S.lastRenderMs; },
  get lastScrubMs() { return S.lastScrubMs; },
  get timings() { return { ...S.timings }; },
  get lanes() { return visibleLanes(); },
  get collapsed() { return S.collapsed; },
  get playing() { return S.playing; },
});

// ---------------------------------------------------------------------------------------
// Windows of events and messages.
let inFlightLoads = 0;
const loadQueue = [];
function runLimited(fn) {
  return new Promise((resolve, reject) => {
    const go = () => {
      inFlightLoads++;
      fn().then(resolve, reject).finally(() => {
        inFlightLoads--;
        const next = loadQueue.shift();
        if (next) next();
      });
    };
    if (inFlightLoads < MAX_PARALLEL) go();
    else loadQueue.push(go);
  });
}

function chunkRange(c) {
  return [c * CHUNK + 1, (c + 1) * CHUNK];
}

// Loads events and messages of chunk `c` of the current execution (once).
function loadChunk(c) {
  const cache = S.cache;
  const exec = S.exec;
  const have = cache.chunks.get(c);
  if (have === "loaded") return Promise.resolve();
  if (have && typeof have.then === "function") return have;
  if (have && performance.now() - have.failedAt < RETRY_MS) {
    return Promise.reject(new Error(`events ${chunkRange(c).join("..")} failed to load a moment ago`));
  }
  const [a, b] = chunkRange(c);
  const p = runLimited(async () => {
    const [ev, ms] = await Promise.all([
      api(`/api/executions/${exec}/events?from=${a}&to=${b}`),
      api(`/api/executions/${exec}/messages?from=${a}&to=${b}`),
    ]);
    for (const e of Array.isArray(ev.events) ? ev.events : []) {
      const i = num(e.i, -1);
      if (i < 1) continue;
      if (i >= cache.events.length) cache.events.length = i + 2;
      cache.events[i] = e;
      if (e.label) cache.labels.add(String(e.label));
    }
    for (const m of Array.isArray(ms.messages) ? ms.messages : []) {
      if (!m || m.id === undefined) continue;
      cache.msgs.set(String(m.id), m);
      if (m.kind !== undefined) cache.msgKinds.add(String(m.kind));
    }
    if (typeof ev.total === "number" && cache === S.cache && ev.total !== S.total) {
      S.total = ev.total;
      $("scrub").max = String(S.total);
    }
    cache.chunks.set(c, "loaded");
  });
  cache.chunks.set(c, p);
  p.catch((e) => {
    if (cache.chunks.get(c) === p) cache.chunks.set(c, { failedAt: performance.now() });
    reportError(e);
  }).then(() => {
    if (cache === S.cache) {
      refreshLegend();
      refreshKindSelect();
      requestDraw();
    }
  });
  return p;
}

function chunksFor(a, b) {
  const lo = Math.max(0, Math.floor((Math.max(1, a) - 1) / CHUNK));
  const hi = Math.max(lo, Math.floor((Math.max(1, Math.min(b, S.total)) - 1) / CHUNK));
  const out = [];
  for (let c = lo; c <= hi; c++) out.push(c);
  return out;
}

// Makes sure the windows around the visible range (plus half a window each side) are loaded.
function ensureVisible() {
  if (!S.cache || S.total === 0) return true;
  const a = Math.floor(S.viewStart) - CHUNK / 2;
  const b = Math.ceil(S.viewStart + S.viewSpan) + CHUNK / 2;
  let all = true;
  for (const c of chunksFor(a, b)) {
    const have = S.cache.chunks.get(c);
    if (have !== "loaded") {
      const [ca, cb] = chunkRange(c);
      if (cb >= S.viewStart && ca <= S.viewStart + S.viewSpan) all = false;
      if (have && have.failedAt !== undefined) {
        // asked again once the pause is over (the error is on the status bar meanwhile)
        if (performance.now() - have.failedAt >= RETRY_MS) loadChunk(c).catch(() => {});
        else setTimeout(requestDraw, RETRY_MS);
      } else loadChunk(c).catch(() => {});
    }
  }
  return all;
}

async function eventAt(i) {
  if (i < 1 || i > S.total) return null;
  const c = Math.floor((i - 1) / CHUNK);
  await loadChunk(c);
  return S.cache.events[i] || null;
}

// ---------------------------------------------------------------------------------------
// State at the cursor: at most one request for the cursor at a time; while one is out, only
// the newest cursor waits. When idle, the next event's state is fetched ahead, so stepping
// forward shows the panels at once.
let stateBusy = false;
let statePending = null;
function fetchState(cache, exec, k) {
  let p = cache.stateReqs.get(k);
  if (p) return p;
  const t0 = performance.now();
  p = api(`/api/executions/${exec}/state?at=${k}`)
    .then((st) => {
      S.timings.state = performance.now() - t0;
      cache.states.set(k, st);
      if (cache.states.size > STATE_CACHE) cache.states.delete(cache.states.keys().next().value);
      return st;
    })
    .finally(() => cache.stateReqs.delete(k));
  cache.stateReqs.set(k, p);
  return p;
}

function requestState(k) {
  const cache = S.cache;
  if (!cache) return;
  const hit = cache.states.get(k);
  if (hit) {
    applyState(hit);
    prefetchState();
    return;
  }
  if (stateBusy) {
    statePending = k;
    return;
  }
  stateBusy = true;
  fetchState(cache, S.exec, k)
    .then((st) => {
      if (cache === S.cache && S.cursor === k) applyState(st);
    })
    .catch(reportError)
    .finally(() => {
      stateBusy = false;
      statePending = null;
      // the cursor moved (or another execution was opened) while this was out
      const now = S.cache;
      if (!now) return;
      if (now !== cache || S.cursor !== k) {
        const hit = now.states.get(S.cursor);
        if (hit) applyState(hit);
        else requestState(S.cursor);
      } else prefetchState();
    });
}

function prefetchState() {
  const cache = S.cache;
  const k = S.cursor + 1;
  if (!cache || S.playing || stateBusy || k > S.total || cache.states.has(k) || cache.stateReqs.has(k)) return;
  // a failed look-ahead is asked again, and reported, when the cursor gets there
  fetchState(cache, S.exec, k).catch(() => {});
}

function applyState(st) {
  const t0 = performance.now();
  S.state = st;
  renderVars();
  renderOverlay();
  renderBranchMsgs();
  S.timings.panels = performance.now() - t0;
  updateCursorInfo();
  requestDraw(); // lane labels show which nodes are down at the cursor
  finishScrub("panels");
}

// A scrub step is done when both the diagram and the panels show the target event.
const scrubDone = { diagram: false, panels: false };
function finishScrub(part) {
  if (S.scrubT0 === null) return;
  if (part === "panels" && S.state && num(S.state.at, -1) !== S.scrubTarget) return;
  if (part === "diagram" && S.cursor !== S.scrubTarget) return;
  scrubDone[part] = true;
  if (scrubDone.diagram && scrubDone.panels) {
    S.lastScrubMs = performance.now() - S.scrubT0;
    S.scrubT0 = null;
  }
}

// ---------------------------------------------------------------------------------------
// Cursor.
function setCursor(k, opts = {}) {
  if (!S.summary) return;
  k = clamp(Math.round(num(k)), 0, S.total);
  S.cursor = k;
  $("scrub").value = String(k);
  keepCursorInView(opts.center);
  updateCursorInfo();
  const st = S.cache.states.get(k);
  if (st) applyState(st);
  else requestState(k);
  scheduleHash();
  // the diagram first: the details' DOM change would otherwise make the canvas's font
  // setting wait for a style pass over the page
  if (opts.sync) drawNow();
  else requestDraw();
  renderDetail();
}

// The address keeps the execution and the cursor (a reload comes back to the same event);
// browsers cap history updates (about 100 per 10 s), so playback updates it twice a second.
let hashTimer = null;
function scheduleHash() {
  if (hashTimer) return;
  hashTimer = setTimeout(() => {
    hashTimer = null;
    try {
      history.replaceState(null, "", `#exec=${S.exec}&at=${S.cursor}`);
    } catch (_) {
      // a capped history update only loses the address; the page state is unaffected
    }
  }, 500);
}

function keepCursorInView(center) {
  const span = S.viewSpan;
  const lo = S.viewStart + span * 0.04;
  const hi = S.viewStart + span * 0.96;
  if (center || S.cursor < lo || S.cursor > hi) {
    S.viewStart = S.cursor - span * (center ? 0.5 : S.playing ? 0.15 : 0.3);
  }
  clampView();
}

function clampView() {
  const maxSpan = Math.max(10, S.total + 1);
  S.viewSpan = clamp(S.viewSpan, 8, maxSpan);
  S.viewStart = clamp(S.viewStart, -0.5, Math.max(-0.5, S.total + 1 - S.viewSpan));
}

function updateCursorInfo() {
  const ev = S.cache && S.cursor > 0 ? S.cache.events[S.cursor] : null;
  let t = 0;
  if (S.cursor > 0) t = ev ? num(ev.t) : S.state && num(S.state.at, -1) === S.cursor ? num(S.state.t) : NaN;
  $("cursor-info").textContent = `event ${S.cursor} / ${S.total} · t = ${Number.isNaN(t) ? "…" : fmtT(t)} s`;
}

// ---------------------------------------------------------------------------------------
// Diagram layout: visible lanes and their y.
function visibleLanes() {
  let lanes = S.nodes.map((n) => num(n.index)).filter((k) => !S.hidden.has(k));
  if (S.filterNode !== "all") {
    const x = Number(S.filterNode);
    const talk = new Set([x]);
    const a = S.viewStart;
    const b = S.viewStart + S.viewSpan;
    for (const m of S.cache.msgs.values()) {
      const s = num(m.sent_i);
      const d = m.delivered_i === null || m.delivered_i === undefined ? null : num(m.delivered_i);
      const inWin = (s >= a && s <= b) || (d !== null && d >= a && d <= b);
      if (!inWin) continue;
      if (m.from === x) talk.add(num(m.to));
      if (m.to === x) talk.add(num(m.from));
    }
    lanes = lanes.filter((k) => talk.has(k));
  }
  return lanes;
}

function computeLayout(canvasW, wrapH) {
  const lanes = visibleLanes();
  const n = Math.max(1, lanes.length);
  const avail = Math.max(40, wrapH - AXIS_H - CLUSTER_H - 8);
  let laneH;
  // a "talks to" filter keeps few lanes: those get full lanes even in the compact mode
  if (S.collapsed && S.filterNode === "all") laneH = clamp(avail / n, 3, 14);
  else laneH = clamp(avail / n, 22, 150);
  const top = AXIS_H + CLUSTER_H;
  const height = Math.max(wrapH, Math.ceil(top + lanes.length * laneH + 8));
  const y = new Map();
  lanes.forEach((k, j) => y.set(k, top + j * laneH + laneH / 2));
  const plotW = Math.max(50, canvasW - GUTTER - RIGHT_PAD);
  return { lanes, laneH, top, height, width: canvasW, y, plotW };
}

const xOf = (L, i) => GUTTER + ((i - S.viewStart) / S.viewSpan) * L.plotW;
const iOf = (L, x) => S.viewStart + ((x - GUTTER) / L.plotW) * S.viewSpan;

// Sizes of the diagram's box and the sparkline, kept by a ResizeObserver (and the scroll
// position by a scroll listener): reading clientWidth right after the panels changed the DOM
// would force a layout of the whole page on every frame (tens of ms with a 100-row table).
const sizes = { boxes: new Map(), scrollTop: 0 };
function boxSize(elem) {
  let b = sizes.boxes.get(elem);
  if (!b) {
    b = { w: elem.clientWidth, h: elem.clientHeight };
    sizes.boxes.set(elem, b);
  }
  return b;
}
const sizeObserver = new ResizeObserver((entries) => {
  for (const e of entries) {
    const box = e.contentBoxSize && e.contentBoxSize[0];
    const w = box ? box.inlineSize : e.contentRect.width;
    const h = box ? box.blockSize : e.contentRect.height;
    sizes.boxes.set(e.target, { w: Math.floor(w), h: Math.floor(h) });
  }
  requestDraw();
});

function requestDraw() {
  if (S.drawQueued) return;
  S.drawQueued = true;
  requestAnimationFrame(() => {
    S.drawQueued = false;
    drawNow();
  });
}

let hatch = null;
function hatchPattern(ctx) {
  if (hatch) return hatch;
  const c = document.createElement("canvas");
  c.width = 8;
  c.height = 8;
  const g = c.getContext("2d");
  g.fillStyle = "rgba(110,119,129,0.16)";
  g.fillRect(0, 0, 8, 8);
  g.strokeStyle = "rgba(87,96,106,0.45)";
  g.lineWidth = 1.2;
  g.beginPath();
  g.moveTo(0, 8);
  g.lineTo(8, 0);
  g.moveTo(-2, 2);
  g.lineTo(2, -2);
  g.moveTo(6, 10);
  g.lineTo(10, 6);
  g.stroke();
  hatch = ctx.createPattern(c, "repeat");
  return hatch;
}

function drawNow() {
  const t0 = performance.now();
  const canvas = $("diagram");
  const wrap = $("diagram-wrap");
  if (!S.summary || !S.cache) return;
  const complete = ensureVisible();
  const dpr = window.devicePixelRatio || 1;
  const { w: cssW, h: wrapH } = boxSize(wrap);
  const L = computeLayout(cssW, wrapH);
  S.layout = L;
  if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(L.height * dpr)) {
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(L.height * dpr);
    canvas.style.width = `${cssW}px`;
    canvas.style.height = `${L.height}px`;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, L.height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";

  const a = Math.max(1, Math.floor(S.viewStart));
  const b = Math.min(S.total, Math.ceil(S.viewStart + S.viewSpan));
  const ppe = L.plotW / S.viewSpan; // pixels per event
  const plotR = GUTTER + L.plotW;
  const lanesBottom = L.top + L.lanes.length * L.laneH;

  // lane backgrounds
  L.lanes.forEach((k, j) => {
    const y0 = L.top + j * L.laneH;
    if (j % 2 === 1) {
      ctx.fillStyle = "#f7f8fa";
      ctx.fillRect(GUTTER, y0, L.plotW + RIGHT_PAD, L.laneH);
    }
  });
  // end of the run
  const xEnd = xOf(L, S.total + 0.5);
  if (xEnd < plotR + RIGHT_PAD) {
    ctx.fillStyle = "#eceef1";
    ctx.fillRect(Math.max(GUTTER, xEnd), AXIS_H, plotR + RIGHT_PAD - Math.max(GUTTER, xEnd), lanesBottom - AXIS_H);
  }

  ctx.save();
  ctx.beginPath();
  ctx.rect(GUTTER, 0, L.plotW + RIGHT_PAD, L.height);
  ctx.clip();

  drawBands(ctx, L, plotR);

  // lane lines
  ctx.strokeStyle = S.collapsed ? "#e4e7eb" : "#d8dde3";
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (const k of L.lanes) {
    const y = Math.round(L.y.get(k)) + 0.5;
    ctx.moveTo(GUTTER, y);
    ctx.lineTo(Math.min(plotR + RIGHT_PAD, xEnd), y);
  }
  ctx.stroke();

  drawCursor(ctx, L, lanesBottom); // under the marks, so a violation's red ring stays visible
  drawMessages(ctx, L, a, b, ppe, xEnd);
  drawEvents(ctx, L, a, b, ppe);
  ctx.restore();

  drawLaneLabels(ctx, L);
  // the axis stays at the top of the scrolled lanes (tall, uncollapsed 100-node diagrams)
  ctx.save();
  ctx.translate(0, sizes.scrollTop);
  drawAxis(ctx, L, a, b, ppe, plotR);
  ctx.restore();

  S.rendered++;
  S.timings.draw = performance.now() - t0;
  if (complete) {
    if (S.lastRenderMs === null) S.lastRenderMs = performance.now();
    finishScrub("diagram");
  }
  drawDivergence();
}

function laneSpanY(L, nodes) {
  // rows of the given nodes that are visible: [[y0, y1], ...] merged when adjacent
  const rows = [];
  L.lanes.forEach((k, j) => {
    if (nodes.has(k)) {
      const y0 = L.top + j * L.laneH;
      const last = rows[rows.length - 1];
      if (last && Math.abs(last[1] - y0) < 0.5) last[1] = y0 + L.laneH;
      else rows.push([y0, y0 + L.laneH]);
    }
  });
  return rows;
}

function drawBands(ctx, L, plotR) {
  const bands = (S.cache.bands || []).filter((x) => x && typeof x === "object");
  for (const band of bands) {
    const x0 = xOf(L, num(band.from_i) - 0.5);
    const x1 = band.to_i === null || band.to_i === undefined ? xOf(L, S.total + 0.5) : xOf(L, num(band.to_i) + 0.5);
    if (x1 < GUTTER || x0 > plotR + RIGHT_PAD) continue;
    const w = Math.max(2, x1 - x0);
    const kind = String(band.kind || "");
    const label = String(band.label || kind);
    if (kind === "partition") {
      const sa = new Set((band.a || []).map(Number));
      const sb = new Set((band.b || []).map(Number));
      if (sa.size === 0 && sb.size === 0) for (const k of band.nodes || []) sa.add(Number(k));
      ctx.fillStyle = "rgba(207,34,46,0.10)";
      for (const [y0, y1] of laneSpanY(L, sa)) ctx.fillRect(x0, y0, w, y1 - y0);
      ctx.fillStyle = "rgba(9,105,218,0.10)";
      for (const [y0, y1] of laneSpanY(L, sb)) ctx.fillRect(x0, y0, w, y1 - y0);
      const all = laneSpanY(L, new Set([...sa, ...sb]));
      const yTop = AXIS_H + 1;
      const yBot = all.length ? all[all.length - 1][1] : L.top;
      ctx.strokeStyle = "rgba(207,34,46,0.7)";
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      ctx.moveTo(x0 + 0.5, yTop);
      ctx.lineTo(x0 + 0.5, yBot);
      ctx.moveTo(x1 - 0.5, yTop);
      ctx.lineTo(x1 - 0.5, yBot);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = "rgba(207,34,46,0.18)";
      ctx.fillRect(x0, AXIS_H + 1, w, CLUSTER_H - 2);
      bandLabel(ctx, label.length > 48 ? `${label.slice(0, 46)}…` : label, x0, x1, AXIS_H + CLUSTER_H / 2, "#a40e26");
    } else {
      const nodes = new Set((band.nodes || []).map(Number));
      const rows = laneSpanY(L, nodes);
      ctx.fillStyle = kind === "crash" ? hatchPattern(ctx) : "rgba(212,167,44,0.22)";
      for (const [y0, y1] of rows) ctx.fillRect(x0, y0 + 1, w, y1 - y0 - 2);
      if (!S.collapsed || L.laneH >= 12) {
        for (const [y0] of rows) {
          bandLabel(ctx, label, x0, x1, y0 + Math.min(8, L.laneH / 2), kind === "crash" ? "#57606a" : "#7d4e00");
        }
      }
    }
  }
}

function bandLabel(ctx, text, x0, x1, y, colour) {
  const w = ctx.measureText(text).width;
  const left = Math.max(x0 + 3, GUTTER + 3);
  if (x1 - left < w + 4) return;
  ctx.fillStyle = colour;
  ctx.fillText(text, left, y);
}

function drawMessages(ctx, L, a, b, ppe, xEnd) {
  const lo = S.viewStart - 1;
  const hi = S.viewStart + S.viewSpan + 1;
  const byColour = new Map();
  const heads = new Map();
  const drops = new Map();
  const open = new Map();
  const push = (map, col, item) => {
    let arr = map.get(col);
    if (!arr) map.set(col, (arr = []));
    arr.push(item);
  };
  const cursorEv = S.cache.events[S.cursor];
  const cursorMsg = cursorEv && cursorEv.msg ? String(cursorEv.msg.id) : null;
  let highlight = null;
  for (const m of S.cache.msgs.values()) {
    const s = num(m.sent_i, NaN);
    if (Number.isNaN(s)) continue;
    const yF = L.y.get(num(m.from, -1));
    const yT = L.y.get(num(m.to, -1));
    if (yF === undefined || yT === undefined) continue;
    const col = kindColour(m.kind);
    const delivered = m.delivered_i !== null && m.delivered_i !== undefined;
    if (delivered) {
      const d = num(m.delivered_i);
      if (d < lo || s > hi) continue;
      const seg = [xOf(L, s), yF, xOf(L, d), yT];
      push(byColour, col, seg);
      push(heads, col, seg);
      // the cursor event's own message, and the messages it sends, drawn bold on top
      if (String(m.id) === cursorMsg || s === S.cursor) (highlight = highlight || []).push([seg, col]);
    } else if (m.dropped) {
      if (s > hi || s < lo - 8) continue;
      const x0 = xOf(L, s);
      const dx = Math.max(14, Math.min(40, 3 * ppe));
      const dy = (yT - yF) * 0.45;
      const seg = [x0, yF, x0 + dx, yF + dy];
      push(byColour, col, seg);
      push(drops, col, seg);
    } else {
      if (s > hi) continue;
      const x0 = xOf(L, s);
      const x1 = Math.max(x0 + 20, xEnd + 14);
      push(open, col, [x0, yF, x1, yT]);
    }
  }
  ctx.lineWidth = S.collapsed ? 0.8 : 1.2;
  for (const [col, segs] of byColour) {
    ctx.strokeStyle = col;
    ctx.globalAlpha = S.collapsed ? 0.55 : 0.85;
    ctx.beginPath();
    for (const [x0, y0, x1, y1] of segs) {
      ctx.moveTo(x0, y0);
      ctx.lineTo(x1, y1);
    }
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  const headLen = S.collapsed ? 4 : Math.min(8, Math.max(4, ppe * 0.8));
  if (ppe >= 1.5) {
    for (const [col, segs] of heads) {
      ctx.fillStyle = col;
      ctx.beginPath();
      for (const seg of segs) arrowHead(ctx, seg, headLen);
      ctx.fill();
    }
  }
  ctx.lineWidth = 1.6;
  for (const [col, segs] of drops) {
    ctx.strokeStyle = col;
    ctx.beginPath();
    for (const [, , x1, y1] of segs) {
      const r = S.collapsed ? 2.5 : 4;
      ctx.moveTo(x1 - r, y1 - r);
      ctx.lineTo(x1 + r, y1 + r);
      ctx.moveTo(x1 - r, y1 + r);
      ctx.lineTo(x1 + r, y1 - r);
    }
    ctx.stroke();
  }
  ctx.lineWidth = 1.2;
  ctx.setLineDash([5, 4]);
  for (const [col, segs] of open) {
    ctx.strokeStyle = col;
    ctx.beginPath();
    for (const [x0, y0, x1, y1] of segs) {
      ctx.moveTo(x0, y0);
      ctx.lineTo(x1, y1);
    }
    ctx.stroke();
  }
  ctx.setLineDash([]);
  if (highlight) {
    ctx.lineWidth = 3;
    for (const [seg, col] of highlight) {
      ctx.strokeStyle = col;
      ctx.beginPath();
      ctx.moveTo(seg[0], seg[1]);
      ctx.lineTo(seg[2], seg[3]);
      ctx.stroke();
      ctx.fillStyle = col;
      ctx.beginPath();
      arrowHead(ctx, seg, 10);
      ctx.fill();
    }
  }
  // duplicates: a deliver event whose message was first delivered elsewhere
  ctx.lineWidth = 1;
  ctx.setLineDash([2, 2]);
  for (let i = a; i <= b; i++) {
    const e = S.cache.events[i];
    if (!e || !e.msg) continue;
    const m = S.cache.msgs.get(String(e.msg.id));
    if (!m || num(m.delivered_i, -1) === i) continue;
    const yF = L.y.get(num(e.msg.from, -1));
    const yT = L.y.get(num(e.node, -1));
    if (yF === undefined || yT === undefined) continue;
    ctx.strokeStyle = kindColour(e.msg.kind);
    ctx.beginPath();
    ctx.moveTo(xOf(L, num(e.msg.sent_i)), yF);
    ctx.lineTo(xOf(L, i), yT);
    ctx.stroke();
  }
  ctx.setLineDash([]);
}

function arrowHead(ctx, [x0, y0, x1, y1], len) {
  const ang = Math.atan2(y1 - y0, x1 - x0);
  ctx.moveTo(x1, y1);
  ctx.lineTo(x1 - len * Math.cos(ang - 0.38), y1 - len * Math.sin(ang - 0.38));
  ctx.lineTo(x1 - len * Math.cos(ang + 0.38), y1 - len * Math.sin(ang + 0.38));
  ctx.closePath();
}

function drawEvents(ctx, L, a, b, ppe) {
  const r = S.collapsed ? clamp(L.laneH * 0.35, 1.2, 3) : clamp(ppe * 0.38, 1.6, 4.5);
  const groups = new Map(); // colour|shape -> [[x,y]]
  const violations = [];
  const clusterY = AXIS_H + CLUSTER_H / 2;
  for (let i = a; i <= b; i++) {
    const e = S.cache.events[i];
    if (!e) continue;
    const node = e.node === null || e.node === undefined ? null : num(e.node);
    const y = node === null ? clusterY : L.y.get(node);
    if (y === undefined) continue;
    const x = xOf(L, i);
    const st = EVENT_STYLE[e.kind] || EVENT_STYLE.local;
    const colour = st.colour || kindColour(e.msg ? e.msg.kind : e.label);
    const key = `${colour}|${ppe < 2.5 ? "px" : st.shape}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(x, y);
    if (e.violation) violations.push([x, y]);
  }
  for (const [key, pts] of groups) {
    const [colour, shape] = key.split("|");
    ctx.fillStyle = colour;
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.4;
    ctx.beginPath();
    for (let j = 0; j < pts.length; j += 2) shapePath(ctx, shape, pts[j], pts[j + 1], r);
    if (shape === "cross" || shape === "ring") ctx.stroke();
    else ctx.fill();
  }
  // violation marks: red ring and a red tick on the axis
  ctx.strokeStyle = "#cf222e";
  ctx.fillStyle = "#cf222e";
  ctx.lineWidth = 2.2;
  for (const [x, y] of violations) {
    ctx.beginPath();
    ctx.arc(x, y, r + 5, 0, Math.PI * 2);
    ctx.stroke();
  }
  const v = S.summary && S.summary.violation;
  if (v && typeof v.i === "number") {
    const x = xOf(L, v.i);
    ctx.globalAlpha = 0.35;
    ctx.fillRect(x - 0.75, AXIS_H, 1.5, L.top + L.lanes.length * L.laneH - AXIS_H);
    ctx.globalAlpha = 1;
  }
}

function shapePath(ctx, shape, x, y, r) {
  switch (shape) {
    case "px":
      ctx.rect(x - r * 0.6, y - r, r * 1.2, r * 2);
      break;
    case "square":
      ctx.rect(x - r * 0.85, y - r * 0.85, r * 1.7, r * 1.7);
      break;
    case "diamond":
      ctx.moveTo(x, y - r * 1.25);
      ctx.lineTo(x + r * 1.25, y);
      ctx.lineTo(x, y + r * 1.25);
      ctx.lineTo(x - r * 1.25, y);
      ctx.closePath();
      break;
    case "triangle":
      ctx.moveTo(x, y - r * 1.3);
      ctx.lineTo(x + r * 1.2, y + r);
      ctx.lineTo(x - r * 1.2, y + r);
      ctx.closePath();
      break;
    case "cross":
      ctx.moveTo(x - r, y - r);
      ctx.lineTo(x + r, y + r);
      ctx.moveTo(x - r, y + r);
      ctx.lineTo(x + r, y - r);
      break;
    case "ring":
      ctx.moveTo(x + r, y);
      ctx.arc(x, y, r, 0, Math.PI * 2);
      break;
    case "dot":
      ctx.moveTo(x + r * 0.6, y);
      ctx.arc(x, y, r * 0.6, 0, Math.PI * 2);
      break;
    default:
      ctx.moveTo(x + r, y);
      ctx.arc(x, y, r, 0, Math.PI * 2);
  }
}

function drawCursor(ctx, L, lanesBottom) {
  const x = Math.round(xOf(L, S.cursor)) + 0.5;
  ctx.strokeStyle = "#0969da";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  ctx.moveTo(x, AXIS_H);
  ctx.lineTo(x, lanesBottom);
  ctx.stroke();
  const e = S.cache.events[S.cursor];
  if (e) {
    const node = e.node === null || e.node === undefined ? null : num(e.node);
    const y = node === null ? AXIS_H + CLUSTER_H / 2 : L.y.get(node);
    if (y !== undefined) {
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(x, y, S.collapsed ? 5 : 8, 0, Math.PI * 2);
      ctx.stroke();
    }
  }
}

function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(Math.max(1, raw)));
  for (const m of [1, 2, 5, 10]) if (p * m >= raw) return p * m;
  return p * 10;
}

function drawAxis(ctx, L, a, b, ppe, plotR) {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, L.width, AXIS_H);
  ctx.strokeStyle = "#d0d7de";
  ctx.beginPath();
  ctx.moveTo(GUTTER, AXIS_H + 0.5);
  ctx.lineTo(plotR + RIGHT_PAD, AXIS_H + 0.5);
  ctx.stroke();
  const step = niceStep(90 / ppe);
  ctx.fillStyle = "#57606a";
  ctx.textAlign = "center";
  ctx.strokeStyle = "#afb8c1";
  ctx.beginPath();
  const first = Math.ceil(Math.max(1, S.viewStart) / step) * step;
  for (let i = first; i <= Math.min(S.total, S.viewStart + S.viewSpan); i += step) {
    const x = Math.round(xOf(L, i)) + 0.5;
    ctx.moveTo(x, AXIS_H - 4);
    ctx.lineTo(x, AXIS_H);
    ctx.fillStyle = "#24292f";
    ctx.fillText(`#${i}`, x, 8);
    const e = S.cache.events[i];
    ctx.fillStyle = "#6a737d";
    ctx.fillText(e ? `${fmtT(e.t)} s` : "", x, 19);
  }
  ctx.stroke();
  // the violation's event: a red triangle on the axis
  const v = S.summary && S.summary.violation;
  if (v && typeof v.i === "number") {
    const x = xOf(L, v.i);
    if (x >= GUTTER && x <= plotR + RIGHT_PAD) {
      ctx.fillStyle = "#cf222e";
      ctx.beginPath();
      ctx.moveTo(x - 6, AXIS_H - 9);
      ctx.lineTo(x + 6, AXIS_H - 9);
      ctx.lineTo(x, AXIS_H);
      ctx.closePath();
      ctx.fill();
    }
  }
  ctx.textAlign = "left";
  ctx.fillStyle = "#6a737d";
  ctx.fillText("event", 6, 8);
  ctx.fillText("time", 6, 19);
}

function drawLaneLabels(ctx, L) {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, AXIS_H + CLUSTER_H, GUTTER - 2, L.height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#8c959f";
  ctx.fillText("cluster", 6, AXIS_H + CLUSTER_H / 2);
  ctx.textAlign = "left";
  const every = Math.max(1, Math.ceil(13 / L.laneH));
  const role = new Map(S.nodes.map((n) => [num(n.index), String(n.role ?? "")]));
  const up = new Map();
  if (S.state && Array.isArray(S.state.nodes)) for (const n of S.state.nodes) up.set(num(n.index), n.up !== false);
  L.lanes.forEach((k, j) => {
    if (j % every !== 0 && k !== Number(S.filterNode)) return;
    const y = L.y.get(k);
    const down = up.get(k) === false;
    ctx.fillStyle = down ? "#9aa1a9" : k === Number(S.filterNode) ? "#0969da" : "#24292f";
    const thin = L.laneH < 14;
    ctx.font = thin ? "10px system-ui, sans-serif" : "600 12px system-ui, sans-serif";
    const name = `n${k}`;
    ctx.fillText(name, 6, thin || L.laneH < 30 ? y : y - 6);
    if (!thin) {
      const nameW = ctx.measureText(name).width;
      ctx.font = "10px system-ui, sans-serif";
      ctx.fillStyle = "#6a737d";
      const text = `${role.get(k) || ""}${down ? " (down)" : ""}`;
      if (L.laneH < 30) ctx.fillText(text, 6 + nameW + 4, y, GUTTER - nameW - 12);
      else ctx.fillText(text, 6, y + 7, GUTTER - 10);
    }
  });
  ctx.font = "11px system-ui, sans-serif";
  if (L.lanes.length === 0) {
    ctx.fillStyle = "#6a737d";
    ctx.fillText("no lanes shown: tick some in the lane bar", GUTTER + 10, L.top + 14);
  }
}

// ---------------------------------------------------------------------------------------
// Divergence sparkline.
function drawDivergence() {
  const canvas = $("divergence");
  const dpr = window.devicePixelRatio || 1;
  const { w, h } = boxSize(canvas);
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pts = (S.cache && Array.isArray(S.cache.points) ? S.cache.points : []).filter((p) => Array.isArray(p));
  const total = Math.max(1, S.total);
  const left = GUTTER;
  const right = w - RIGHT_PAD;
  const xi = (i) => left + (clamp(i, 0, total) / total) * (right - left);
  const maxN = Math.max(1, ...pts.map((p) => num(p[2])));
  const top = 14;
  const bottom = h - 4;
  const yn = (n) => bottom - (num(n) / maxN) * (bottom - top);
  // visible window
  ctx.fillStyle = "rgba(9,105,218,0.08)";
  ctx.fillRect(xi(S.viewStart), 0, Math.max(2, xi(S.viewStart + S.viewSpan) - xi(S.viewStart)), h);
  ctx.beginPath();
  ctx.moveTo(left, bottom);
  let prevN = 0;
  let prevX = left;
  for (const p of pts) {
    const x = xi(num(p[0]));
    ctx.lineTo(x, yn(prevN));
    ctx.lineTo(x, yn(p[2]));
    prevN = num(p[2]);
    prevX = x;
  }
  ctx.lineTo(Math.max(prevX, right), yn(prevN));
  ctx.lineTo(right, bottom);
  ctx.closePath();
  ctx.fillStyle = "rgba(212,167,44,0.35)";
  ctx.fill();
  ctx.strokeStyle = "#9a6700";
  ctx.lineWidth = 1;
  ctx.stroke();
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = "#6a737d";
  ctx.textBaseline = "middle";
  ctx.fillText(`max ${maxN}`, 6, top + 4);
  ctx.fillText("0", 6, bottom - 3);
  // violation tick
  const v = S.summary && S.summary.violation;
  if (v && typeof v.i === "number") {
    ctx.fillStyle = "#cf222e";
    ctx.fillRect(xi(v.i) - 1, 0, 2, h);
  }
  // cursor
  const x = xi(S.cursor);
  ctx.strokeStyle = "#0969da";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  ctx.moveTo(x, 0);
  ctx.lineTo(x, h);
  ctx.stroke();
  // n at the cursor
  let nAt = 0;
  for (const p of pts) if (num(p[0]) <= S.cursor) nAt = num(p[2]);
  ctx.fillStyle = "#0969da";
  const label = `${nAt} diverged`;
  const tw = ctx.measureText(label).width;
  ctx.fillText(label, x + 4 + tw > right ? x - tw - 4 : x + 4, top + 4);
}

// ---------------------------------------------------------------------------------------
// Panels at the cursor.
// The table is rebuilt only when its shape changes (other variables or nodes); a cursor
// move on the same shape rewrites the cells in place, which keeps scrubbing at 100 nodes cheap.
let varsShape = "";
let varsCells = new Map(); // "node|var" -> td
let varsNodeCells = new Map(); // node -> [cell showing the node, row or column class holder]
function renderVars() {
  const st = S.state;
  const table = $("vars");
  $("vars-at").textContent = st ? `(event ${num(st.at)}, t = ${fmtT(st.t)} s)` : "";
  if (!st || !Array.isArray(st.nodes)) {
    table.replaceChildren();
    varsShape = "";
    return;
  }
  const nodes = st.nodes.filter((n) => n && typeof n === "object");
  const names = new Set();
  for (const n of nodes) for (const v of Object.keys(n.vars && typeof n.vars === "object" ? n.vars : {})) names.add(v);
  const vars = [...names].sort();
  const diverged = new Set(Array.isArray(st.diverged) ? st.diverged.map(String) : []);
  // the cells that differ: values not held by the most live nodes (all of them on a tie)
  const odd = new Map();
  for (const v of vars) {
    if (!diverged.has(v)) continue;
    const counts = new Map();
    for (const n of nodes) {
      if (n.up === false || !n.vars || !(v in n.vars)) continue;
      counts.set(n.vars[v], (counts.get(n.vars[v]) || 0) + 1);
    }
    const max = Math.max(0, ...counts.values());
    const tops = [...counts.values()].filter((c) => c === max).length;
    const set = new Set();
    for (const [val, c] of counts) if (c < max || tops > 1) set.add(val);
    odd.set(v, set);
  }
  const byVar = nodes.length <= 6;
  const shape = `${byVar}|${vars.join("\n")}|${nodes.map((n) => `${num(n.index)}:${n.role ?? ""}:${n.vars ? Object.keys(n.vars).sort().join(",") : ""}`).join(";")}`;
  const nodeText = (n) => `n${num(n.index)} ${n.role ?? ""}${n.up === false ? " (down)" : ""}`;
  if (shape !== varsShape) {
    varsShape = shape;
    varsCells = new Map();
    varsNodeCells = new Map();
    table.replaceChildren();
    const mk = (n, v) => {
      const td = el("td", { class: "val", "data-node": String(num(n.index)), "data-var": v }, el("div", { class: "clip" }));
      varsCells.set(`${num(n.index)}|${v}`, td);
      return td;
    };
    const body = el("tbody");
    const head = el("tr");
    if (byVar) {
      // few nodes: one row per variable, one column per node (values wrap)
      table.className = "by-var";
      head.append(el("th", { text: "variable" }));
      for (const n of nodes) {
        const th = el("th");
        head.append(th);
        varsNodeCells.set(num(n.index), [th, th]);
      }
      for (const v of vars) {
        const tr = el("tr", {}, el("th", { text: v, class: "var", "data-var": v }));
        for (const n of nodes) tr.append(mk(n, v));
        body.append(tr);
      }
    } else {
      // many nodes: one row per node, one column per variable
      table.className = "by-node";
      head.append(el("th", { text: "node" }));
      for (const v of vars) head.append(el("th", { text: v, "data-var": v }));
      for (const n of nodes) {
        const td = el("td", { class: "node" });
        const tr = el("tr", {}, td);
        for (const v of vars) tr.append(mk(n, v));
        body.append(tr);
        varsNodeCells.set(num(n.index), [td, tr]);
      }
    }
    table.append(el("thead", {}, head), body);
  }
  for (const th of table.querySelectorAll("th[data-var]")) {
    const d = diverged.has(th.dataset.var);
    th.classList.toggle("diverged", d);
    th.title = d ? "differs between live nodes" : "";
  }
  for (const n of nodes) {
    const k = num(n.index);
    const down = n.up === false;
    const [label, holder] = varsNodeCells.get(k) || [];
    if (label) label.textContent = nodeText(n);
    if (holder) holder.classList.toggle("down", down);
    for (const v of vars) {
      const td = varsCells.get(`${k}|${v}`);
      if (!td) continue;
      const has = n.vars && v in n.vars;
      const val = has ? String(n.vars[v]) : "";
      const text = has ? val : "–";
      if (td.firstChild.textContent !== text) td.firstChild.textContent = text;
      td.title = val;
      td.classList.toggle("diverged", Boolean(has && !down && odd.has(v) && odd.get(v).has(n.vars[v])));
      if (byVar) td.classList.toggle("down", down);
    }
  }
}

function renderOverlay() {
  const st = S.state;
  const canvas = $("overlay");
  const flags = $("overlay-flags");
  const dpr = window.devicePixelRatio || 1;
  const W = 260;
  const H = 220;
  if (canvas.width !== W * dpr) {
    canvas.width = W * dpr;
    canvas.height = H * dpr;
    canvas.style.width = `${W}px`;
    canvas.style.height = `${H}px`;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  flags.replaceChildren();
  if (!st || !Array.isArray(st.nodes)) return;
  const nodes = st.nodes;
  const n = nodes.length;
  const ov = st.overlay && typeof st.overlay === "object" ? st.overlay : {};
  const isolated = new Set((ov.isolated || []).map(Number));
  const asym = new Set((ov.asymmetric || []).filter(Array.isArray).map((p) => `${p[0]}>${p[1]}`));
  const cx = W / 2;
  const cy = H / 2;
  const R = Math.min(W, H) / 2 - (n > 30 ? 10 : 22);
  const pos = new Map();
  nodes.forEach((nd, j) => {
    const ang = -Math.PI / 2 + (j / Math.max(1, n)) * Math.PI * 2;
    pos.set(num(nd.index), [cx + R * Math.cos(ang), cy + R * Math.sin(ang)]);
  });
  const nb = new Map(nodes.map((nd) => [num(nd.index), new Set((nd.neighbours || []).map(Number))]));
  // symmetric edges first, then the asymmetric ones on top in orange with an arrow a -> b
  ctx.lineWidth = n > 30 ? 0.6 : 1.2;
  ctx.strokeStyle = "rgba(87,96,106,0.55)";
  ctx.beginPath();
  const asymSegs = [];
  for (const [a, set] of nb) {
    for (const b of set) {
      const pa = pos.get(a);
      const pb = pos.get(b);
      if (!pa || !pb) continue;
      const mutual = nb.get(b) && nb.get(b).has(a);
      if (asym.has(`${a}>${b}`) || !mutual) asymSegs.push([pa, pb]);
      else if (a < b) {
        ctx.moveTo(pa[0], pa[1]);
        ctx.lineTo(pb[0], pb[1]);
      }
    }
  }
  ctx.stroke();
  ctx.strokeStyle = "#e16f24";
  ctx.fillStyle = "#e16f24";
  ctx.lineWidth = n > 30 ? 1 : 1.8;
  for (const [pa, pb] of asymSegs) {
    ctx.beginPath();
    ctx.moveTo(pa[0], pa[1]);
    ctx.lineTo(pb[0], pb[1]);
    ctx.stroke();
    const ang = Math.atan2(pb[1] - pa[1], pb[0] - pa[0]);
    const rr = n > 30 ? 3 : 9;
    const tip = [pb[0] - rr * Math.cos(ang), pb[1] - rr * Math.sin(ang)];
    ctx.beginPath();
    arrowHead(ctx, [pa[0], pa[1], tip[0], tip[1]], n > 30 ? 4 : 7);
    ctx.fill();
  }
  const r = n > 30 ? 2.6 : 8;
  ctx.font = "600 10px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  for (const nd of nodes) {
    const k = num(nd.index);
    const [x, y] = pos.get(k);
    ctx.beginPath();
    ctx.arc(x, y, isolated.has(k) ? r + 1.5 : r, 0, Math.PI * 2);
    if (nd.up === false) {
      ctx.fillStyle = "#fff";
      ctx.fill();
      ctx.strokeStyle = "#9aa1a9";
      ctx.lineWidth = 1;
      ctx.stroke();
    } else {
      ctx.fillStyle = isolated.has(k) ? "#cf222e" : k === Number(S.filterNode) ? "#0969da" : "#57606a";
      ctx.fill();
    }
    if (n <= 30) {
      ctx.fillStyle = nd.up === false ? "#6a737d" : "#fff";
      ctx.fillText(String(k), x, y + 0.5);
    } else if (k % 10 === 0) {
      ctx.fillStyle = "#24292f";
      const ox = (x - cx) / R;
      const oy = (y - cy) / R;
      ctx.fillText(`n${k}`, x + ox * 10, y + oy * 9);
    }
  }
  const connected = ov.connected !== false;
  flags.append(el("span", { class: connected ? "ok" : "bad", text: connected ? "connected" : "NOT connected" }));
  if (isolated.size) flags.append(" · ", el("span", { class: "bad", text: `isolated: ${[...isolated].map(nodeName).join(", ")}` }));
  const asymList = (ov.asymmetric || []).filter(Array.isArray);
  if (asymList.length) {
    const shown = asymList.slice(0, 8).map((p) => `n${p[0]}→n${p[1]}`).join(", ");
    flags.append(" · ", el("span", { class: "warn", text: `asymmetric: ${shown}${asymList.length > 8 ? ` (+${asymList.length - 8})` : ""}` }));
  }
  const down = nodes.filter((nd) => nd.up === false).map((nd) => `n${num(nd.index)}`);
  if (down.length) flags.append(" · ", el("span", { class: "muted", text: `down: ${down.join(", ")}` }));
}

function renderDetail() {
  const d = $("detail");
  d.replaceChildren();
  const k = S.cursor;
  if (k === 0) {
    d.append(el("div", { class: "head", text: "before the first event" }), el("div", { class: "kv", text: `${S.total} events in this execution; step or scrub to move.` }));
    return;
  }
  const e = S.cache.events[k];
  if (!e) {
    d.append(el("div", { class: "head", text: `event ${k} (loading…)` }));
    eventAt(k).then(() => {
      if (S.cursor === k) {
        renderDetail();
        updateCursorInfo();
      }
    }).catch(reportError);
    return;
  }
  const head = el("div", { class: "head" });
  head.append(`#${num(e.i)} · ${nodeName(e.node)} · ${e.kind ?? "?"} · `, el("code", { text: String(e.label ?? "") }), ` · t = ${fmtT(e.t)} s`);
  if (e.violation) head.append(el("span", { class: "bad", text: " · invariant failed here", style: "color:#b42318" }));
  d.append(head);
  if (e.detail) d.append(el("div", { text: String(e.detail) }));
  const ref = e.msg && typeof e.msg === "object" ? e.msg : null;
  if (ref) {
    const m = S.cache.msgs.get(String(ref.id));
    const line = el("div", { class: "kv" });
    line.append("message ", el("code", { text: String(ref.id) }), ` n${ref.from}→n${ref.to}: sent at `);
    line.append(jumpButton(num(ref.sent_i), `#${num(ref.sent_i)}`), ` (t = ${fmtT(ref.sent_t)} s) → delivered at `);
    line.append(jumpButton(k, `#${k}`), ` (t = ${fmtT(e.t)} s)`);
    if (m && num(m.delivered_i, k) !== k) line.append(" (a duplicate; first delivery ", jumpButton(num(m.delivered_i), `#${m.delivered_i}`), ")");
    if (m && num(m.duplicates) > 0) line.append(` · ${m.duplicates} duplicate(s)`);
    d.append(line);
  }
  // messages sent by this event
  const sent = [...S.cache.msgs.values()].filter((m) => num(m.sent_i) === k);
  for (const m of sent.slice(0, 6)) {
    const line = el("div", { class: "kv" });
    line.append("sends ", el("code", { text: String(m.id) }), " → ");
    if (m.delivered_i !== null && m.delivered_i !== undefined) line.append("delivered at ", jumpButton(num(m.delivered_i), `#${m.delivered_i}`), ` (t = ${fmtT(m.delivered_t)} s)`);
    else if (m.dropped) line.append(el("span", { text: "dropped", style: "color:#b42318" }));
    else line.append("still in flight at the end of the run");
    d.append(line);
  }
  if (sent.length > 6) d.append(el("div", { class: "kv", text: `… and ${sent.length - 6} more` }));
}

function jumpButton(i, text) {
  const b = el("button", { text, title: `move the cursor to event ${i}` });
  b.addEventListener("click", () => setCursor(i));
  return b;
}

function renderViolation() {
  const v = S.summary && S.summary.violation;
  const box = $("violation");
  const btn = $("jump-violation");
  if (v && typeof v === "object") {
    box.className = "bad";
    box.textContent = `${v.invariant ?? "invariant"}: ${v.message ?? ""} (event ${v.i ?? "?"}, t = ${fmtT(v.t)} s)`;
    btn.disabled = typeof v.i !== "number";
  } else {
    box.className = "";
    box.textContent = "none in this execution";
    btn.disabled = true;
  }
}

function renderBranchMsgs() {
  const sel = $("branch-msg");
  const prev = sel.value;
  const list = S.state && Array.isArray(S.state.in_flight) ? S.state.in_flight.filter((m) => m && m.id !== undefined) : [];
  // the same messages in flight as at the last cursor: nothing to rebuild
  const key = list.map((m) => String(m.id)).join("\n");
  if (sel.dataset.key === key && sel.options.length) return;
  sel.dataset.key = key;
  sel.replaceChildren();
  if (!list.length) sel.append(el("option", { value: "", text: "(no message in flight at the cursor)" }));
  for (const m of list) {
    sel.append(el("option", { value: String(m.id), text: `n${m.from}→n${m.to} ${m.kind ?? ""} #${m.seq ?? "?"} (sent #${m.sent_i ?? "?"})` }));
  }
  if (list.some((m) => String(m.id) === prev)) sel.value = prev;
}

function refreshLegend() {
  const lg = $("legend");
  const kinds = [...(S.cache ? S.cache.msgKinds : [])].sort();
  const key = kinds.join("\n");
  if (lg.dataset.key === key) return;
  lg.dataset.key = key;
  lg.replaceChildren();
  for (const k of kinds) {
    const sw = el("span", { class: "sw" });
    sw.style.background = kindColour(k);
    lg.append(el("span", {}, sw, k));
  }
  lg.append(el("span", { class: "sep", text: "|" }));
  for (const k of EVENT_KINDS) {
    const st = EVENT_STYLE[k];
    const sh = el("span", { class: "shape", text: st.sym });
    sh.style.color = st.colour || "#57606a";
    lg.append(el("span", {}, sh, k));
  }
  lg.append(el("span", { class: "sep", text: "|" }));
  lg.append(el("span", { text: "✕ dropped  ┄ in flight at the end  ▨ down  ▭ paused  red band: partition" }));
}

function refreshKindSelect() {
  const sel = $("next-kind");
  const labels = [...(S.cache ? S.cache.labels : [])].sort();
  const key = labels.join("\n");
  if (sel.dataset.key === key) return;
  sel.dataset.key = key;
  const prev = sel.value;
  sel.replaceChildren();
  for (const k of EVENT_KINDS) sel.append(el("option", { value: k, text: k }));
  if (labels.length) {
    const group = el("optgroup", { label: "label" });
    // labels name the fault in full (a partition lists every node): the option text is cut
    for (const l of labels.slice(0, 80)) group.append(el("option", { value: `label:${l}`, text: l.length > 40 ? `${l.slice(0, 38)}…` : l, title: l }));
    sel.append(group);
  }
  if (prev) sel.value = prev;
  if (!sel.value) sel.value = "deliver";
}

// ---------------------------------------------------------------------------------------
// Executions.
function renderTree() {
  const box = $("tree");
  box.replaceChildren();
  const byParent = new Map();
  for (const s of S.executions) {
    const p = s.parent && typeof s.parent === "object" ? num(s.parent.id, -1) : -1;
    if (!byParent.has(p)) byParent.set(p, []);
    byParent.get(p).push(s);
  }
  const ids = new Set(S.executions.map((s) => num(s.id)));
  const build = (list) => {
    const ul = el("ul");
    for (const s of list) {
      const id = num(s.id);
      const cls = ["exec"];
      if (id === S.exec) cls.push("current");
      if (s.violation) cls.push("violating");
      const div = el("div", { class: cls.join(" "), "data-id": String(id), title: s.violation ? `${s.violation.invariant ?? ""}: ${s.violation.message ?? ""}` : String(s.label ?? "") });
      div.append(`#${id} ${s.label ?? ""} `, el("span", { class: "n", text: `${num(s.events)} ev${s.parent ? ` · from #${s.parent.id} at ${s.parent.at}` : ""}` }));
      if (s.violation) div.append(el("span", { text: " ⚠ violation" }));
      div.addEventListener("click", () => switchExec(id, s.parent && s.parent.id !== undefined ? num(s.parent.at, S.cursor) : undefined).catch(reportError));
      const li = el("li", {}, div);
      const kids = byParent.get(id);
      if (kids) li.append(build(kids));
      ul.append(li);
    }
    return ul;
  };
  // roots: no parent, or a parent this list does not hold
  const roots = S.executions.filter((s) => !(s.parent && ids.has(num(s.parent.id, -1))));
  box.append(build(roots));
}

async function loadExecutions() {
  const r = await api("/api/executions");
  S.app = String(r.app ?? "");
  S.executions = Array.isArray(r.executions) ? r.executions.filter((s) => s && typeof s === "object") : [];
  $("app-name").textContent = S.app ? `app: ${S.app}` : "";
}

async function switchExec(id, at) {
  stopPlay();
  const summary = await api(`/api/executions/${id}`);
  const prevNodes = S.nodes.length;
  S.exec = num(summary.id, id);
  S.summary = summary;
  S.total = num(summary.events);
  S.nodes = Array.isArray(summary.nodes) ? summary.nodes.filter((n) => n && typeof n === "object") : [];
  if (!caches.has(S.exec)) caches.set(S.exec, newCache(summary));
  S.cache = caches.get(S.exec);
  S.state = null;
  statePending = null;
  // A branch has its parent's nodes: the lanes shown, the filter and the collapse stay as
  // the user set them; another cluster starts from the defaults.
  const sameNodes = S.nodes.length === prevNodes;
  if (!sameNodes) {
    S.hidden.clear();
    S.filterNode = "all";
    S.collapsed = S.nodes.length >= 60;
  }
  $("collapse").checked = S.collapsed;
  // a log cut short (the server logs a bounded number of events) says so
  const cut = summary.truncated === true ? ` (log cut: ${typeof summary.events_run === "number" ? `${summary.events_run} events run` : "longer run"})` : "";
  $("exec-label").textContent = `#${S.exec} ${summary.label ?? ""} · ${S.total} events${cut} · ${fmtT(summary.end_t)} s · ${S.nodes.length} nodes`;
  $("download").href = `/api/executions/${S.exec}/download`;
  $("download").setAttribute("download", `rasp-${S.exec}.json`);
  $("shiviz").href = `/api/executions/${S.exec}/shiviz`;
  $("shiviz").setAttribute("download", `rasp-${S.exec}.shiviz.log`);
  $("scrub").max = String(S.total);
  renderLanes();
  renderNodeSelects(sameNodes);
  refreshLegend();
  refreshKindSelect();
  renderViolation();
  renderTree();
  const wrap = $("diagram-wrap");
  const plotW = Math.max(50, wrap.clientWidth - GUTTER - RIGHT_PAD);
  S.viewSpan = Math.min(S.total + 1, Math.max(40, Math.round(plotW / (S.collapsed ? 4 : 9))));
  S.viewStart = 0.5;
  const cache = S.cache;
  if (!cache.bands) {
    api(`/api/executions/${S.exec}/bands`).then((r) => {
      cache.bands = Array.isArray(r.bands) ? r.bands : [];
      if (cache === S.cache) requestDraw();
    }).catch(reportError);
  }
  if (!cache.points) {
    api(`/api/executions/${S.exec}/divergence`).then((r) => {
      cache.points = Array.isArray(r.points) ? r.points : [];
      if (cache === S.cache) drawDivergence();
    }).catch(reportError);
  }
  setCursor(at === undefined ? 0 : at, { center: at !== undefined && at > 0 });
  setStatus(`execution #${S.exec}: ${summary.label ?? ""}`);
}

function renderLanes() {
  const box = $("lanes");
  box.replaceChildren();
  for (const n of S.nodes) {
    const k = num(n.index);
    const cb = el("input", { type: "checkbox", checked: !S.hidden.has(k), "data-lane": String(k) });
    cb.addEventListener("change", () => {
      if (cb.checked) S.hidden.delete(k);
      else S.hidden.add(k);
      requestDraw();
    });
    box.append(el("label", { title: `${n.role ?? ""}` }, cb, `n${k}`));
  }
}

// Rebuilt for each execution; a choice the user made stays when the node still exists.
function renderNodeSelects(sameNodes) {
  for (const id of ["next-node", "branch-node"]) {
    const sel = $(id);
    const keep = sel.value;
    sel.replaceChildren();
    for (const n of S.nodes) sel.append(el("option", { value: String(num(n.index)), text: `n${num(n.index)} ${n.role ?? ""}` }));
    if (keep !== "" && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
  }
  const f = $("filter-node");
  f.replaceChildren(el("option", { value: "all", text: "all nodes" }));
  for (const n of S.nodes) f.append(el("option", { value: String(num(n.index)), text: `n${num(n.index)}` }));
  f.value = [...f.options].some((o) => o.value === S.filterNode) ? S.filterNode : "all";
  S.filterNode = f.value;
  if (S.nodes.length > 1 && !sameNodes) {
    $("branch-a").value = "0";
    $("branch-b").value = S.nodes.slice(1).map((n) => num(n.index)).slice(0, 50).join(",");
  }
}

// ---------------------------------------------------------------------------------------
// Playback.
let playRaf = null;
let playLast = 0;
let playAcc = 0;
function startPlay() {
  if (S.playing || !S.summary) return;
  if (S.cursor >= S.total) setCursor(0);
  S.playing = true;
  $("play").textContent = "❚❚ Pause";
  $("play").classList.add("playing");
  playLast = performance.now();
  playAcc = 0;
  const tick = (now) => {
    if (!S.playing) return;
    playAcc += ((now - playLast) / 1000) * S.speed;
    playLast = now;
    const steps = Math.floor(playAcc);
    if (steps > 0) {
      playAcc -= steps;
      setCursor(S.cursor + steps, { sync: true });
      if (S.cursor >= S.total) {
        stopPlay();
        return;
      }
    }
    playRaf = requestAnimationFrame(tick);
  };
  playRaf = requestAnimationFrame(tick);
}
function stopPlay() {
  S.playing = false;
  if (playRaf) cancelAnimationFrame(playRaf);
  playRaf = null;
  $("play").textContent = "▶ Play";
  $("play").classList.remove("playing");
}

// Scans forward from the cursor, window by window, for the next event matching `pred`.
async function nextWhere(pred, what) {
  const exec = S.exec;
  for (let i = S.cursor + 1; i <= S.total; i++) {
    const e = S.cache.events[i] || (await eventAt(i));
    if (exec !== S.exec) return;
    if (e && pred(e)) {
      setCursor(i);
      setStatus(`next ${what}: event ${i}`);
      return;
    }
  }
  setStatus(`no ${what} after event ${S.cursor}`);
}

// The first event at or after time t: asks the server for time windows that grow from a
// guess (about 50 events wide) until one holds an event or the run's end is passed.
async function gotoTime(t) {
  if (!Number.isFinite(t)) throw new Error("go to t: type a number of seconds");
  const end = typeof S.summary.end_t === "number" ? S.summary.end_t : Infinity;
  if (t <= 0) return setCursor(0, { center: true });
  const exec = S.exec;
  const span = Number.isFinite(end) && end > 0 ? end : 60;
  let w = Math.max(0.001, (span / Math.max(1, S.total)) * 50);
  for (let tries = 0; tries < 16 && t <= end; tries++) {
    const r = await api(`/api/executions/${exec}/events?t0=${t}&t1=${t + w}`);
    if (exec !== S.exec) return;
    const evs = Array.isArray(r.events) ? r.events.filter((e) => e && typeof e.i === "number") : [];
    if (evs.length) {
      const first = evs.reduce((x, y) => (y.i < x.i ? y : x));
      setCursor(first.i, { center: true });
      setStatus(`t = ${t} s: event ${first.i} at t = ${fmtT(first.t)} s`);
      return;
    }
    if (t + w > end) break;
    w *= 4;
  }
  setCursor(S.total, { center: true });
  setStatus(`no event at or after t = ${t} s (the run ends at t = ${Number.isFinite(end) ? fmtT(end) : "?"} s)`);
}

// ---------------------------------------------------------------------------------------
// Branching.
function parseNodes(text, what) {
  const parts = String(text).split(/[\s,]+/).filter(Boolean);
  const out = parts.map((p) => Number(p.replace(/^n/, "")));
  if (!out.length || out.some((x) => !Number.isInteger(x) || x < 0 || x >= S.nodes.length)) {
    throw new Error(`${what}: give node indices between 0 and ${S.nodes.length - 1}, e.g. "0,1"`);
  }
  return out;
}

function branchAction() {
  const type = $("branch-action").value;
  const ms = Number($("branch-ms").value);
  const needMs = () => {
    if (!Number.isFinite(ms) || ms < 0) throw new Error("give a duration in ms (a number, 0 or more)");
    return Math.round(ms);
  };
  const node = Number($("branch-node").value);
  switch (type) {
    case "drop":
    case "duplicate":
    case "delay": {
      const msg = $("branch-msg").value;
      if (!msg) throw new Error(`${type}: no message is in flight at event ${S.cursor}; move the cursor`);
      return type === "delay" ? { type, msg, by_ms: needMs() } : { type, msg };
    }
    case "crash":
      return { type, node, down_ms: needMs(), wipe: $("branch-wipe").checked };
    case "restart":
      return { type, node };
    case "heal":
      return { type };
    case "pause":
      return { type, node, lasts_ms: needMs() };
    case "partition":
      return { type, a: parseNodes($("branch-a").value, "side a"), b: parseNodes($("branch-b").value, "side b"), lasts_ms: needMs(), one_way: $("branch-oneway").checked };
    case "update": {
      const op = $("branch-op").value.trim();
      if (!op) throw new Error("update: type an operation of the app, e.g. add milk");
      return { type, node, op };
    }
    default:
      throw new Error(`unknown action ${type}`);
  }
}

async function doBranch() {
  const action = branchAction();
  const at = S.cursor;
  setStatus(`branching #${S.exec} at event ${at}: ${action.type}…`, "busy");
  $("branch-go").disabled = true;
  try {
    const s = await api(`/api/executions/${S.exec}/branch`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ at, action }) });
    await loadExecutions();
    await switchExec(num(s.id), at);
    setStatus(`new execution #${num(s.id)}: ${s.label ?? ""}${s.violation ? ` · violation: ${s.violation.message ?? ""}` : ""}`);
  } finally {
    $("branch-go").disabled = false;
  }
}

// Fields the chosen action does not use are dimmed, not hidden: they keep their place and
// values, so switching actions does not move the form around.
function updateBranchForm() {
  const type = $("branch-action").value;
  for (const lab of document.querySelectorAll("#branch-panel label[data-for]")) {
    lab.classList.toggle("off", !lab.dataset.for.split(" ").includes(type));
  }
  $("branch-ms-label").textContent = { delay: "delay by (ms)", crash: "down for (ms)", pause: "paused for (ms)", partition: "lasts (ms)" }[type] || "ms";
}

// ---------------------------------------------------------------------------------------
// Diagram interaction: click moves the cursor, drag pans, the wheel zooms around the mouse.
function eventNear(mx, my) {
  const L = S.layout;
  if (!L) return null;
  const i0 = Math.round(iOf(L, mx));
  const ppe = L.plotW / S.viewSpan;
  const reach = Math.max(1, Math.ceil(10 / ppe));
  let lane = null;
  if (my < L.top) lane = "cluster";
  else {
    for (const [k, y] of L.y) if (Math.abs(y - my) <= L.laneH / 2) lane = k;
  }
  let best = null;
  let bestD = Infinity;
  for (let i = i0 - reach; i <= i0 + reach; i++) {
    const e = S.cache.events[i];
    if (!e) continue;
    const node = e.node === null || e.node === undefined ? "cluster" : num(e.node);
    if (node !== lane) continue;
    const d = Math.abs(xOf(L, i) - mx);
    if (d < bestD) {
      bestD = d;
      best = i;
    }
  }
  return best;
}

function setupDiagram() {
  const canvas = $("diagram");
  const tip = $("tip");
  let drag = null;
  const pos = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [ev.clientX - r.left, ev.clientY - r.top];
  };
  canvas.addEventListener("mousedown", (ev) => {
    const [x, y] = pos(ev);
    drag = { x, y, start: S.viewStart, moved: false };
  });
  window.addEventListener("mousemove", (ev) => {
    if (!drag || !S.layout) return;
    const [x] = pos(ev);
    if (Math.abs(x - drag.x) > 4) drag.moved = true;
    if (drag.moved) {
      S.viewStart = drag.start - ((x - drag.x) / S.layout.plotW) * S.viewSpan;
      clampView();
      requestDraw();
    }
  });
  window.addEventListener("mouseup", (ev) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    if (d.moved || !S.layout) return;
    const [x, y] = pos(ev);
    if (x < GUTTER) return;
    const hit = eventNear(x, y);
    const i = hit ?? clamp(Math.round(iOf(S.layout, x)), 0, S.total);
    setCursor(i);
  });
  canvas.addEventListener("mousemove", (ev) => {
    if (drag || !S.layout) return;
    const [x, y] = pos(ev);
    const i = x >= GUTTER ? eventNear(x, y) : null;
    const e = i ? S.cache.events[i] : null;
    if (!e) {
      tip.hidden = true;
      return;
    }
    tip.textContent = `#${e.i} ${nodeName(e.node)} · ${e.kind} ${e.label ?? ""} · t = ${fmtT(e.t)} s\n${e.detail ?? ""}${e.msg ? `\n${e.msg.id}` : ""}`;
    tip.hidden = false;
    const wrap = $("diagram-wrap");
    const left = Math.min(x + 14, wrap.clientWidth - tip.offsetWidth - 4);
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${y + 14}px`;
  });
  canvas.addEventListener("mouseleave", () => {
    tip.hidden = true;
  });
  canvas.addEventListener("wheel", (ev) => {
    if (!S.layout) return;
    ev.preventDefault();
    const [x] = pos(ev);
    if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
      S.viewStart += ((ev.deltaX || ev.deltaY) / S.layout.plotW) * S.viewSpan;
    } else {
      const at = iOf(S.layout, x);
      const f = Math.exp(clamp(ev.deltaY, -200, 200) * 0.002);
      S.viewSpan *= f;
      clampView();
      S.viewStart = at - ((x - GUTTER) / S.layout.plotW) * S.viewSpan;
    }
    clampView();
    requestDraw();
  }, { passive: false });
  sizeObserver.observe($("diagram-wrap"));
  sizeObserver.observe($("divergence"));
  $("diagram-wrap").addEventListener("scroll", () => {
    sizes.scrollTop = $("diagram-wrap").scrollTop;
    requestDraw();
  }, { passive: true });
  $("divergence").addEventListener("click", (ev) => {
    const c = $("divergence");
    const r = c.getBoundingClientRect();
    const x = ev.clientX - r.left;
    const f = (x - GUTTER) / (c.clientWidth - GUTTER - RIGHT_PAD);
    setCursor(Math.round(clamp(f, 0, 1) * S.total), { center: true });
  });
}

function zoom(f) {
  const mid = S.cursor;
  S.viewSpan *= f;
  clampView();
  S.viewStart = mid - S.viewSpan / 2;
  clampView();
  requestDraw();
}

// ---------------------------------------------------------------------------------------
// Wiring.
function wire() {
  const safe = (fn) => (...args) => {
    try {
      const r = fn(...args);
      if (r && typeof r.catch === "function") r.catch(reportError);
    } catch (e) {
      reportError(e);
    }
  };
  $("play").addEventListener("click", safe(() => (S.playing ? stopPlay() : startPlay())));
  $("step").addEventListener("click", safe(() => { stopPlay(); setCursor(S.cursor + 1); }));
  $("step-back").addEventListener("click", safe(() => { stopPlay(); setCursor(S.cursor - 1); }));
  $("speed").addEventListener("change", safe(() => { S.speed = Number($("speed").value) || 10; }));
  $("scrub").addEventListener("input", safe(() => {
    S.scrubT0 = performance.now();
    S.scrubTarget = Number($("scrub").value);
    scrubDone.diagram = false;
    scrubDone.panels = false;
    setCursor(S.scrubTarget, { sync: true });
  }));
  // a value set by script (or a keyboard change) without an input event
  $("scrub").addEventListener("change", safe(() => {
    const k = Number($("scrub").value);
    if (k !== S.cursor) setCursor(k);
  }));
  $("next-node-btn").addEventListener("click", safe(() => {
    const k = Number($("next-node").value);
    return nextWhere((e) => e.node === k, `event of n${k}`);
  }));
  $("next-kind-btn").addEventListener("click", safe(() => {
    const v = $("next-kind").value;
    if (v.startsWith("label:")) {
      const l = v.slice(6);
      return nextWhere((e) => String(e.label) === l, `${l} event`);
    }
    return nextWhere((e) => e.kind === v, `${v} event`);
  }));
  const go = safe(() => gotoTime(parseFloat($("goto-t").value)));
  $("goto-t-btn").addEventListener("click", go);
  $("goto-t").addEventListener("keydown", (ev) => { if (ev.key === "Enter") go(); });
  $("jump-violation").addEventListener("click", safe(() => {
    const v = S.summary && S.summary.violation;
    if (v && typeof v.i === "number") setCursor(v.i, { center: true });
  }));
  $("filter-node").addEventListener("change", safe(() => { S.filterNode = $("filter-node").value; requestDraw(); }));
  $("collapse").addEventListener("change", safe(() => { S.collapsed = $("collapse").checked; requestDraw(); }));
  $("zoom-in").addEventListener("click", safe(() => zoom(0.5)));
  $("zoom-out").addEventListener("click", safe(() => zoom(2)));
  $("zoom-fit").addEventListener("click", safe(() => { S.viewSpan = S.total + 1; S.viewStart = -0.5; clampView(); requestDraw(); }));
  const allLanes = (show) => {
    S.hidden.clear();
    if (!show) for (const n of S.nodes) S.hidden.add(num(n.index));
    for (const cb of document.querySelectorAll("#lanes input[data-lane]")) cb.checked = show;
    requestDraw();
  };
  $("lanes-all").addEventListener("click", safe(() => allLanes(true)));
  $("lanes-none").addEventListener("click", safe(() => allLanes(false)));
  $("branch-action").addEventListener("change", updateBranchForm);
  $("branch-go").addEventListener("click", safe(doBranch));
  $("upload").addEventListener("change", safe(async () => {
    const f = $("upload").files && $("upload").files[0];
    if (!f) return;
    setStatus(`uploading ${f.name}…`, "busy");
    // the bytes as they are: a download is JSON text, a trace of fuzz/shrink/check is
    // MessagePack (runtime/src/sim/trace.rs), which a text decoding would corrupt
    const bytes = await f.arrayBuffer();
    let isJson = true;
    try {
      JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (_) {
      isJson = false;
    }
    try {
      const s = await api("/api/upload", { method: "POST", headers: { "Content-Type": isJson ? "application/json" : "application/octet-stream" }, body: bytes });
      await loadExecutions();
      await switchExec(num(s.id));
      setStatus(`uploaded ${f.name}: execution #${num(s.id)} ${s.label ?? ""}`);
    } finally {
      $("upload").value = "";
    }
  }));
  document.addEventListener("keydown", safe((ev) => {
    const t = ev.target;
    const tag = t && t.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return;
    if (tag === "INPUT" && t.type !== "range" && t.type !== "checkbox") return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "ArrowRight") {
      ev.preventDefault();
      stopPlay();
      setCursor(S.cursor + 1);
    } else if (ev.key === "ArrowLeft") {
      ev.preventDefault();
      stopPlay();
      setCursor(S.cursor - 1);
    } else if (ev.key === " " || ev.code === "Space") {
      ev.preventDefault();
      if (S.playing) stopPlay();
      else startPlay();
    }
  }));
  setupDiagram();
  updateBranchForm();
}

async function start() {
  wire();
  refreshKindSelect();
  await loadExecutions();
  if (!S.executions.length) {
    setStatus("the server lists no execution", "error");
    return;
  }
  const h = new URLSearchParams(location.hash.slice(1));
  const want = h.has("exec") ? Number(h.get("exec")) : num(S.executions[0].id);
  const id = S.executions.some((s) => num(s.id) === want) ? want : num(S.executions[0].id);
  const at = h.has("at") ? Number(h.get("at")) : undefined;
  await switchExec(id, Number.isFinite(at) ? at : undefined);
}

start().catch(reportError);
