#!/usr/bin/env python3
"""Developer tool: a mock of the rasp studio server, for working on the page without Rust.

It is not part of rasp and is not shipped: the real server is `src/studio/` (Rust, axum). This
script serves the page's assets from `src/studio/assets/` and answers the HTTP contract of the
studio (`/work/prompts/studio-api.md` at the time of writing: executions, event and message
windows, bands, state at the cursor, divergence, branch, download, upload, ShiViz log) with
synthetic executions of a small "todo" program (an add/remove set gossiped between nodes).

Two roots are made at start:
  * id 0: 3 nodes, a few hundred events, a crash, a partition and a pause;
  * id 1: 100 nodes, 10,000 events (to check readability and speed), with a violation.

A branch re-runs the synthetic generator with the parent's plan plus the user's choice, so the
prefix up to the cursor is identical and the rest differs, as in the real simulator.

Python 3 standard library only. Usage:
    python3 src/studio/dev/mock_server.py [--port 8765]
then open http://127.0.0.1:8765/

With `--proxy http://127.0.0.1:PORT` (a running `<app> studio`), the synthetic executions are
not made: the working tree's assets are served and every /api/ request is passed to that
server, so the page can be changed and reloaded against a real execution without rebuilding
the binary (which embeds the assets).
"""

import argparse
import bisect
import heapq
import json
import os
import random
import re
import threading
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets")
WORDS = ["milk", "eggs", "bread", "tea", "rice", "salt", "soap", "jam", "figs", "oats",
         "kale", "leek", "plum", "pear", "nuts", "honey", "flour", "beans", "limes", "olives"]
CHECKPOINT = 200
MAX_WINDOW = 5000


class Execution:
    """One synthetic execution: its plan, its events, messages, bands and state checkpoints."""

    def __init__(self, ex_id, plan, parent=None, label=None):
        self.id = ex_id
        self.plan = plan
        self.parent = parent
        self.label = label or "seed %d" % plan["seed"]
        self.violation = None
        self.generate()

    # ---- generation -------------------------------------------------------------------
    def generate(self):
        plan = self.plan
        n = plan["nodes"]
        rng = random.Random(plan["seed"] * 7919 + n)
        limit = plan["events"]
        big = n > 10
        roles = ["server"] + ["client"] * (n - 1) if n <= 10 else \
            ["server" if k % 10 == 0 else "client" for k in range(n)]
        self.nodes = [{"index": k, "role": roles[k]} for k in range(n)]
        # static overlay: full mesh for small clusters, random active views for big ones
        if not big:
            self.topology = [[j for j in range(n) if j != k] for k in range(n)]
        else:
            views = [set() for _ in range(n)]
            for k in range(n):
                while len(views[k]) < 3:
                    j = rng.randrange(n)
                    if j != k:
                        views[k].add(j)
                        if rng.random() < 0.93:
                            views[j].add(k)
            self.topology = [sorted(v) for v in views]

        events, msgs = [], {}
        effects = []  # per event: list of ("set", node, frozenset) / ("up", node, bool)
        items = [frozenset() for _ in range(n)]
        up = [False] * n
        paused_until = [0.0] * n
        seqs = Counter()
        q = []
        counter = [0]

        def push(t, kind, data):
            counter[0] += 1
            heapq.heappush(q, (t, counter[0], kind, data))

        for k in range(n):
            push(0.001 * (k + 1), "boot", k)
        period = 1.0 if big else 0.35
        input_gap = 0.12 if big else 0.9
        push(0.4, "input", None)
        # scripted faults of the root
        for f in plan.get("faults", []):
            push(f["t"], "fault", f)
        # user's choices (branches)
        drops, dups, delays = set(), set(), {}
        for c in plan.get("choices", []):
            a = c["action"]
            if a["type"] == "drop":
                drops.add(a["msg"])
            elif a["type"] == "duplicate":
                dups.add(a["msg"])
            elif a["type"] == "delay":
                delays[a["msg"]] = a.get("by_ms", 500) / 1000.0
            elif a["type"] == "update":
                push(c["t"] + 1e-6, "input", {"node": a["node"], "op": a["op"]})
            elif a["type"] == "crash":
                push(c["t"] + 1e-6, "fault", {"type": "crash", "node": a["node"],
                                             "lasts": a.get("down_ms", 2000) / 1000.0,
                                             "wipe": bool(a.get("wipe"))})
            elif a["type"] == "pause":
                push(c["t"] + 1e-6, "fault", {"type": "pause", "node": a["node"],
                                             "lasts": a.get("lasts_ms", 1000) / 1000.0})
            elif a["type"] == "partition":
                push(c["t"] + 1e-6, "fault", {"type": "partition", "a": a["a"], "b": a["b"],
                                             "lasts": a.get("lasts_ms", 3000) / 1000.0})
        partitions = []  # active: (set a, set b)
        bands = []
        open_bands = {}
        wiped_acked = []

        def add_event(t, node, kind, label, detail, msg=None, eff=None):
            ev = {"i": len(events) + 1, "t": round(t, 6), "node": node, "kind": kind,
                  "label": label, "detail": detail, "msg": msg, "violation": False}
            events.append(ev)
            effects.append(eff or [])
            return ev

        def cut(a, b):
            for pa, pb in partitions:
                if (a in pa and b in pb) or (a in pb and b in pa):
                    return True
            return False

        def send(ev, frm, to, kind, detail, payload=None):
            seqs[(frm, to, kind)] += 1
            seq = seqs[(frm, to, kind)]
            mid = "%d>%d:%s#%d" % (frm, to, kind, seq)
            lat = rng.lognormvariate(-3.3, 0.5) + (delays.get(mid, 0.0))
            m = {"id": mid, "from": frm, "to": to, "kind": kind, "seq": seq,
                 "sent_i": ev["i"], "sent_t": ev["t"], "delivered_i": None,
                 "delivered_t": None, "dropped": False, "duplicates": 0, "detail": detail}
            msgs[mid] = m
            if rng.random() < 0.01 or cut(frm, to):
                m["dropped"] = True
                return
            push(ev["t"] + lat, "deliver", (mid, payload))
            if mid in dups:
                m["duplicates"] = 1
                push(ev["t"] + lat * 1.7, "deliver", (mid, payload))

        while q and len(events) < limit:
            t, _, kind, data = heapq.heappop(q)
            if kind == "boot":
                k = data
                up[k] = True
                add_event(t, k, "boot", "node/boot", "n%d boots as %s" % (k, roles[k]),
                          eff=[("up", k, True)])
                for j in self.topology[k][:3]:
                    e = add_event(t + 1e-4, k, "conn", "conn/open", "n%d dials n%d" % (k, j))
                    send(e, k, j, "hyparview/join", "join n%d" % k)
                push(t + rng.uniform(0, period), "timer", k)
            elif kind == "timer":
                k = data
                if not up[k]:
                    continue
                if paused_until[k] > t:
                    push(paused_until[k] + rng.uniform(0, 0.01), "timer", k)
                    continue
                nb = [j for j in self.topology[k] if not cut(k, j)]
                e = add_event(t, k, "timer", "dataflow/tick",
                              "anti-entropy round, %d items" % len(items[k]))
                if nb:
                    j = rng.choice(nb)
                    send(e, k, j, "dataflow/sync", "deltas {items: %s}" %
                         ", ".join(sorted(items[k])[:4]) + (" …" if len(items[k]) > 4 else ""),
                         items[k])
                    if rng.random() < 0.15:
                        j2 = rng.choice(self.topology[k])
                        send(e, k, j2, "hyparview/shuffle", "shuffle %s" % nb[:3])
                push(t + period * rng.uniform(0.85, 1.15), "timer", k)
            elif kind == "input":
                if data is None:
                    push(t + rng.expovariate(1.0 / input_gap), "input", None)
                    k = rng.randrange(n)
                    w = rng.choice(WORDS)
                    op = ("remove " if (w in items[k] and rng.random() < 0.3) else "add ") + w
                else:
                    k, op = data["node"], data["op"]
                if not up[k]:
                    continue
                verb, _, w = op.partition(" ")
                new = items[k] | {w} if verb == "add" else items[k] - {w}
                items[k] = frozenset(new)
                add_event(t, k, "input", "todo/" + verb, op, eff=[("set", k, items[k])])
                if rng.random() < 0.3:
                    add_event(t + 2e-4, k, "local", "atom/store",
                              "store atom persists %s" % w)
            elif kind == "deliver":
                mid, payload = data
                m = msgs[mid]
                k = m["to"]
                if mid in drops and m["delivered_i"] is None:
                    m["dropped"] = True
                    continue
                if not up[k]:
                    if m["delivered_i"] is None:
                        m["dropped"] = True
                    continue
                if paused_until[k] > t:
                    push(paused_until[k] + rng.uniform(0, 0.005), "deliver", data)
                    continue
                ref = {x: m[x] for x in ("id", "from", "to", "kind", "seq", "sent_i", "sent_t")}
                eff = []
                if payload is not None and m["kind"] == "dataflow/sync":
                    merged = items[k] | payload
                    if merged != items[k]:
                        items[k] = frozenset(merged)
                        eff = [("set", k, items[k])]
                e = add_event(t, k, "deliver", m["kind"], m["detail"], msg=ref, eff=eff)
                if m["delivered_i"] is None:
                    m["delivered_i"], m["delivered_t"] = e["i"], e["t"]
                if m["kind"] == "hyparview/join":
                    add_event(t + 1e-4, k, "peer", "peer/up", "n%d sees n%d up" % (k, m["from"]))
                if m["kind"] == "dataflow/sync" and rng.random() < 0.35:
                    send(e, k, m["from"], "dataflow/ack", "ack %d items" % len(items[k]))
            elif kind == "fault":
                f = data
                if f["type"] == "crash":
                    k = f["node"]
                    if not up[k]:
                        continue
                    up[k] = False
                    e = add_event(t, k, "fault", "fault/crash", "n%d crashes" % k,
                                  eff=[("up", k, False)])
                    band = {"kind": "crash", "nodes": [k], "a": [], "b": [], "from_i": e["i"],
                            "from_t": e["t"], "to_i": None, "to_t": None,
                            "label": "n%d down" % k}
                    bands.append(band)
                    push(t + f["lasts"], "fault", {"type": "restart", "node": k,
                                                   "wipe": f.get("wipe", False), "band": band})
                elif f["type"] == "restart":
                    k = f["node"]
                    up[k] = True
                    eff = [("up", k, True)]
                    detail = "n%d restarts" % k
                    if f.get("wipe"):
                        if items[k]:
                            wiped_acked.append((k, sorted(items[k])[0]))
                        items[k] = frozenset()
                        eff.append(("set", k, items[k]))
                        detail += ", store wiped"
                    e = add_event(t, k, "fault", "fault/restart", detail, eff=eff)
                    f["band"]["to_i"], f["band"]["to_t"] = e["i"], e["t"]
                    if wiped_acked and self.violation is None:
                        node, w = wiped_acked[0]
                        e["violation"] = True
                        self.violation = {"invariant": "durability",
                                          "message": "acknowledged add of %r lost on n%d" % (w, node),
                                          "i": e["i"], "t": e["t"]}
                    push(t + rng.uniform(0, period), "timer", k)
                elif f["type"] == "pause":
                    k = f["node"]
                    paused_until[k] = t + f["lasts"]
                    e = add_event(t, k, "fault", "fault/pause", "n%d paused (SIGSTOP)" % k)
                    band = {"kind": "pause", "nodes": [k], "a": [], "b": [], "from_i": e["i"],
                            "from_t": e["t"], "to_i": None, "to_t": None,
                            "label": "n%d paused" % k}
                    bands.append(band)
                    push(t + f["lasts"], "fault", {"type": "resume", "node": k, "band": band})
                elif f["type"] == "resume":
                    k = f["node"]
                    e = add_event(t, k, "fault", "fault/resume", "n%d resumed (SIGCONT)" % k)
                    f["band"]["to_i"], f["band"]["to_t"] = e["i"], e["t"]
                elif f["type"] == "partition":
                    pa, pb = set(f["a"]), set(f["b"])
                    partitions.append((pa, pb))
                    e = add_event(t, None, "fault", "fault/partition",
                                  "partition %s | %s" % (sorted(pa), sorted(pb)))
                    band = {"kind": "partition", "nodes": sorted(pa | pb), "a": sorted(pa),
                            "b": sorted(pb), "from_i": e["i"], "from_t": e["t"], "to_i": None,
                            "to_t": None, "label": "partition %s | %s" % (sorted(pa), sorted(pb))}
                    bands.append(band)
                    push(t + f["lasts"], "fault", {"type": "heal", "p": (pa, pb), "band": band})
                elif f["type"] == "heal":
                    if f["p"] in partitions:
                        partitions.remove(f["p"])
                    e = add_event(t, None, "fault", "fault/heal", "partition healed")
                    f["band"]["to_i"], f["band"]["to_t"] = e["i"], e["t"]

        # a scripted violation for the big root (a convergence check failing late in the run)
        if plan.get("violation_at") and self.violation is None and len(events) >= plan["violation_at"]:
            e = events[plan["violation_at"] - 1]
            e["violation"] = True
            self.violation = {"invariant": "convergence",
                              "message": "todo/items differs between n3 and n41 5 s after the last input",
                              "i": e["i"], "t": e["t"]}

        self.events = events
        self.ts = [e["t"] for e in events]
        self.msgs = list(msgs.values())
        self.msgs.sort(key=lambda m: m["sent_i"])
        self.bands = bands
        self.effects = effects
        self.partitions_at = self._partition_spans()
        # checkpoints of (items, up) every CHECKPOINT events, and divergence points
        self.checkpoints = []
        cur_items = [frozenset() for _ in range(n)]
        cur_up = [False] * n
        vals = Counter()
        points = []
        last_nd = None
        for idx in range(len(events) + 1):
            if idx % CHECKPOINT == 0:
                self.checkpoints.append((list(cur_items), list(cur_up)))
            if idx == len(events):
                break
            for eff in effects[idx]:
                if eff[0] == "set":
                    k = eff[1]
                    if cur_up[k]:
                        vals[cur_items[k]] -= 1
                        if vals[cur_items[k]] == 0:
                            del vals[cur_items[k]]
                        vals[eff[2]] += 1
                    cur_items[k] = eff[2]
                else:
                    k, u = eff[1], eff[2]
                    if u and not cur_up[k]:
                        vals[cur_items[k]] += 1
                    elif not u and cur_up[k]:
                        vals[cur_items[k]] -= 1
                        if vals[cur_items[k]] == 0:
                            del vals[cur_items[k]]
                    cur_up[k] = u
            nd = 2 if len(vals) > 1 else 0
            if nd != last_nd:
                points.append([idx + 1, events[idx]["t"], nd])
                last_nd = nd
        self.points = points

    def _partition_spans(self):
        return [(b["from_i"], b["to_i"] or 10 ** 9, set(b["a"]), set(b["b"]))
                for b in self.bands if b["kind"] == "partition"]

    # ---- answers ----------------------------------------------------------------------
    def summary(self):
        return {"id": self.id, "parent": self.parent, "label": self.label,
                "events": len(self.events), "end_t": self.events[-1]["t"] if self.events else 0.0,
                "nodes": self.nodes, "violation": self.violation}

    def state(self, at):
        n = len(self.nodes)
        at = max(0, min(at, len(self.events)))
        base = at // CHECKPOINT
        items, up = self.checkpoints[base]
        items, up = list(items), list(up)
        for idx in range(base * CHECKPOINT, at):
            for eff in self.effects[idx]:
                if eff[0] == "set":
                    items[eff[1]] = eff[2]
                else:
                    up[eff[1]] = eff[2]
        parts = [(a, b) for (fi, ti, a, b) in self.partitions_at if fi <= at < ti]
        nodes = []
        for k in range(n):
            nb = [] if not up[k] else [j for j in self.topology[k] if not any(
                (k in a and j in b) or (k in b and j in a) for a, b in parts)]
            s = sorted(items[k])
            vars_ = {"todo/items": "{" + ", ".join('"%s"' % w for w in s) + "}",
                     "todo/count": str(len(s))}
            if self.nodes[k]["role"] == "server":
                vars_["todo/served"] = str(len(s) * 3)
            nodes.append({"index": k, "role": self.nodes[k]["role"], "up": up[k],
                          "vars": vars_, "neighbours": nb})
        diverged = []
        for var in ("todo/items", "todo/count", "todo/served"):
            vs = {nd["vars"][var] for nd in nodes if nd["up"] and var in nd["vars"]}
            if len(vs) > 1:
                diverged.append(var)
        in_flight = []
        for m in self.msgs:
            if m["sent_i"] > at:
                break
            d = m["delivered_i"]
            if (d is not None and d > at) or (d is None and not m["dropped"]):
                in_flight.append({x: m[x] for x in ("id", "from", "to", "kind", "seq",
                                                     "sent_i", "sent_t")})
        live = [k for k in range(n) if up[k]]
        adj = {k: set() for k in live}
        asym = []
        for k in live:
            for j in nodes[k]["neighbours"]:
                if j in adj:
                    adj[k].add(j)
                    adj[j].add(k)
                    if k not in nodes[j]["neighbours"]:
                        asym.append([k, j])
        isolated = [k for k in live if not adj[k]]
        seen = set()
        if live:
            stack = [live[0]]
            while stack:
                x = stack.pop()
                if x in seen:
                    continue
                seen.add(x)
                stack.extend(adj[x] - seen)
        t = self.events[at - 1]["t"] if at > 0 else 0.0
        return {"at": at, "t": t, "nodes": nodes, "diverged": diverged, "in_flight": in_flight,
                "overlay": {"connected": len(seen) == len(live), "isolated": isolated,
                            "asymmetric": asym}}

    def shiviz(self):
        n = len(self.nodes)
        vc = [dict() for _ in range(n)]
        sent_vc = {}
        by_sent = {}
        for m in self.msgs:
            by_sent.setdefault(m["sent_i"], []).append(m["id"])
        out = ["# ShiViz regex: (?<host>\\S*) (?<clock>{.*})\\n(?<event>.*)"]
        for e in self.events:
            k = e["node"]
            if k is None:
                continue
            v = vc[k]
            if e["msg"] and e["msg"]["id"] in sent_vc:
                for h, c in sent_vc[e["msg"]["id"]].items():
                    v[h] = max(v.get(h, 0), c)
            v["n%d" % k] = v.get("n%d" % k, 0) + 1
            for mid in by_sent.get(e["i"], []):
                sent_vc[mid] = dict(v)
            out.append("n%d %s" % (k, json.dumps(v, separators=(",", ":"), sort_keys=True)))
            out.append("%s %s" % (e["label"], e["detail"]))
        return "\n".join(out) + "\n"


class Store:
    """All executions, guarded by a lock (the handler is threaded)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.execs = []
        self.add({"nodes": 3, "seed": 1, "events": 420, "faults": [
            {"type": "crash", "node": 1, "t": 3.0, "lasts": 2.0},
            {"type": "partition", "a": [0], "b": [1, 2], "t": 7.5, "lasts": 2.5},
            {"type": "pause", "node": 2, "t": 11.0, "lasts": 1.0}]})
        self.add({"nodes": 100, "seed": 2, "events": 10000, "violation_at": 8321, "faults": [
            {"type": "crash", "node": 7, "t": 12.0, "lasts": 6.0},
            {"type": "partition", "a": list(range(0, 20)), "b": list(range(20, 100)),
             "t": 25.0, "lasts": 5.0},
            {"type": "pause", "node": 42, "t": 31.0, "lasts": 2.0}]},
            label="seed 2 (100 nodes)")

    def add(self, plan, parent=None, label=None):
        ex = Execution(len(self.execs), plan, parent, label)
        self.execs.append(ex)
        return ex


def describe(ex, at, a):
    t = a["type"]
    if t in ("drop", "duplicate", "delay"):
        m = re.match(r"(\d+)>(\d+):(.*)#(\d+)$", a.get("msg", ""))
        what = "n%s→n%s %s #%s" % m.groups() if m else a.get("msg", "?")
        extra = " by %d ms" % a.get("by_ms", 500) if t == "delay" else ""
        return "%s %s%s at event %d" % (t, what, extra, at)
    if t == "crash":
        return "crash n%d for %d ms%s at event %d" % (a["node"], a.get("down_ms", 2000),
                                                    " (wipe)" if a.get("wipe") else "", at)
    if t == "pause":
        return "pause n%d for %d ms at event %d" % (a["node"], a.get("lasts_ms", 1000), at)
    if t == "partition":
        return "partition %s | %s for %d ms at event %d" % (a["a"], a["b"],
                                                           a.get("lasts_ms", 3000), at)
    return "update n%d %r at event %d" % (a["node"], a["op"], at)


def check_action(ex, a):
    """Returns an error text, or None when the action is well formed for `ex`."""
    if not isinstance(a, dict) or "type" not in a:
        return "action must be an object with a type"
    n = len(ex.nodes)
    t = a["type"]
    if t in ("drop", "duplicate", "delay"):
        if not isinstance(a.get("msg"), str) or not any(m["id"] == a["msg"] for m in ex.msgs):
            return "unknown message %r" % a.get("msg")
    elif t in ("crash", "pause", "update"):
        if not isinstance(a.get("node"), int) or not 0 <= a["node"] < n:
            return "node must be an index below %d" % n
        if t == "update" and not str(a.get("op", "")).strip():
            return "update needs an op, e.g. \"add milk\""
        if t == "update" and not re.match(r"^(add|remove) \S+$", a["op"].strip()):
            return "unknown todo operation %r (add X | remove X)" % a["op"]
    elif t == "partition":
        for side in ("a", "b"):
            v = a.get(side)
            if not isinstance(v, list) or not v or not all(isinstance(x, int) and 0 <= x < n
                                                          for x in v):
                return "partition side %s must be a non-empty list of node indices" % side
    else:
        return "unknown action type %r" % t
    return None


STORE = None
PROXY = None


def forward(handler, method, body=None):
    """Passes an /api/ request to the studio at PROXY and its answer back."""
    req = urllib.request.Request(PROXY.rstrip("/") + handler.path, data=body, method=method)
    ctype = handler.headers.get("Content-Type")
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            code, headers, data = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        code, headers, data = e.code, e.headers, e.read()
    except OSError as e:
        return handler.err(502, "the studio at %s does not answer: %s" % (PROXY, e))
    handler.send_response(code)
    for k in ("Content-Type", "Content-Disposition"):
        if headers.get(k):
            handler.send_header(k, headers[k])
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class Handler(BaseHTTPRequestHandler):
    """Routes of the studio contract."""

    # headers and body go out in two writes; without TCP_NODELAY the second waits for the
    # client's delayed ACK (about 40 ms per request), which would swamp every timing
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if os.environ.get("MOCK_LOG"):
            super().log_message(fmt, *args)

    def send_json(self, code, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def err(self, code, text):
        self.send_json(code, {"error": text})

    def exec_of(self, s):
        try:
            k = int(s)
            return STORE.execs[k]
        except (ValueError, IndexError):
            return None

    def do_GET(self):
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        p = u.path
        if p == "/" or p.startswith("/assets/"):
            name = "index.html" if p == "/" else p[len("/assets/"):]
            path = os.path.join(ASSETS, os.path.basename(name))
            if not os.path.isfile(path):
                return self.err(404, "no asset %s" % name)
            ctype = {"html": "text/html", "js": "text/javascript", "css": "text/css"}.get(
                name.rsplit(".", 1)[-1], "application/octet-stream")
            body = open(path, "rb").read()
            self.send_response(200)
            self.send_header("Content-Type", ctype + "; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        if PROXY and p.startswith("/api/"):
            return forward(self, "GET")
        if p == "/api/executions":
            with STORE.lock:
                return self.send_json(200, {"app": "todo",
                                            "executions": [e.summary() for e in STORE.execs]})
        m = re.match(r"^/api/executions/([^/]+)(?:/(\w+))?$", p)
        if not m:
            return self.err(404, "no route %s" % p)
        ex = self.exec_of(m.group(1))
        if ex is None:
            return self.err(404, "unknown execution %s" % m.group(1))
        what = m.group(2)
        try:
            if what is None:
                return self.send_json(200, ex.summary())
            if what == "events":
                if "from" in q or "to" in q:
                    a, b = int(q.get("from", 1)), int(q.get("to", len(ex.events)))
                    a = max(a, 1)
                    b = min(b, a + MAX_WINDOW - 1)
                    evs = ex.events[a - 1:b] if b >= a else []
                elif "t0" in q or "t1" in q:
                    t0, t1 = float(q.get("t0", 0)), float(q.get("t1", 1e18))
                    lo = bisect.bisect_left(ex.ts, t0)
                    hi = bisect.bisect_right(ex.ts, t1)
                    evs = ex.events[lo:min(hi, lo + MAX_WINDOW)]
                else:
                    return self.err(400, "events needs from&to or t0&t1")
                return self.send_json(200, {"total": len(ex.events), "events": evs})
            if what == "messages":
                a, b = int(q["from"]), int(q["to"])
                out = [mm for mm in ex.msgs if a <= mm["sent_i"] <= b or
                       (mm["delivered_i"] is not None and a <= mm["delivered_i"] <= b)]
                return self.send_json(200, {"messages": out})
            if what == "bands":
                return self.send_json(200, {"bands": ex.bands})
            if what == "state":
                return self.send_json(200, ex.state(int(q["at"])))
            if what == "divergence":
                return self.send_json(200, {"points": ex.points})
            if what == "download":
                doc = {"format": "rasp-studio/1", "app": "todo",
                       "args": ["--seed", str(ex.plan["seed"])], "plan": ex.plan,
                       "label": ex.label, "parent": ex.parent}
                return self.send_json(200, doc, {
                    "Content-Disposition": "attachment; filename=rasp-%d.json" % ex.id})
            if what == "shiviz":
                body = ex.shiviz().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Disposition",
                                 "attachment; filename=rasp-%d.shiviz.log" % ex.id)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        except (KeyError, ValueError) as e:
            return self.err(400, "bad query: %s" % e)
        return self.err(404, "no route %s" % p)

    def do_POST(self):
        u = urlparse(self.path)
        length = int(self.headers.get("Content-Length", 0))
        if length > 8 << 20:
            return self.err(413, "body too large")
        raw = self.rfile.read(length)
        if PROXY and u.path.startswith("/api/"):
            return forward(self, "POST", raw)
        try:
            body = json.loads(raw or b"null")
        except ValueError as e:
            return self.err(400, "body is not JSON: %s" % e)
        if u.path == "/api/upload":
            if not isinstance(body, dict) or body.get("format") != "rasp-studio/1" or \
                    not isinstance(body.get("plan"), dict):
                return self.err(400, "not a rasp-studio/1 file (format field missing or wrong)")
            with STORE.lock:
                ex = STORE.add(body["plan"], None, "uploaded: " + str(body.get("label", "")))
            return self.send_json(201, ex.summary())
        m = re.match(r"^/api/executions/([^/]+)/branch$", u.path)
        if not m:
            return self.err(404, "no route %s" % u.path)
        ex = self.exec_of(m.group(1))
        if ex is None:
            return self.err(404, "unknown execution %s" % m.group(1))
        if not isinstance(body, dict) or not isinstance(body.get("at"), int):
            return self.err(400, "body needs an integer at and an action")
        at = body["at"]
        if not 0 <= at <= len(ex.events):
            return self.err(400, "at %d is outside 0..%d" % (at, len(ex.events)))
        problem = check_action(ex, body.get("action"))
        if problem:
            return self.err(400, problem)
        t = ex.events[at - 1]["t"] if at > 0 else 0.0
        plan = json.loads(json.dumps(ex.plan))
        plan.setdefault("choices", []).append({"t": t, "action": body["action"]})
        with STORE.lock:
            new = STORE.add(plan, {"id": ex.id, "at": at}, describe(ex, at, body["action"]))
        return self.send_json(201, new.summary())


def main():
    global STORE, PROXY
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--proxy", metavar="URL", help="pass /api/ to this running studio")
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.proxy:
        PROXY = args.proxy
        print("assets of the working tree on http://127.0.0.1:%d/, /api/ from %s" % (
            args.port, PROXY), flush=True)
        srv.serve_forever()
        return
    STORE = Store()
    print("mock studio on http://127.0.0.1:%d/ (%s)" % (args.port, ", ".join(
        "%d: %s, %d events" % (e.id, e.label, len(e.events)) for e in STORE.execs)), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
