//! Bounded model checking: every interleaving of a small cluster's events, up to a depth.
//!
//! The simulator normally pops its earliest event. In **controlled mode**
//! ([`Sim::enter_control`]) it runs nothing by itself: [`Sim::pending`] lists the events that
//! may happen next and the driver picks one ([`Sim::pick`]) or loses an in-flight message
//! ([`Sim::discard`]); faults go through [`Sim::apply`] as usual. The atoms are the real
//! ones, never a model of them. [`explore`] enumerates the choices breadth-first (the first
//! violation found is a shortest counterexample) or depth-first, and returns the
//! counterexample as a [`Trace`] that [`replay`](super::replay) loads.
//!
//! # The controlled model
//!
//! - **Choices**: every in-flight remote message (in any order: the network is asynchronous,
//!   as in the simulator's reordering model), the next timer of each node (a node's own
//!   timers fire in due order), connection set-up, link checks and close notices, and, within
//!   a [`Budget`], crashes, restarts, partitions, heals and message losses.
//! - **Steps**: a step is one chosen event plus what it makes happen on the same node at once:
//!   messages between atoms of one node and local connection notices run right after it, in
//!   FIFO order, as the simulator runs them at the same instant. Messages to a crashed
//!   incarnation and alarms of cancelled timers or answered requests are removed (they do
//!   nothing).
//! - **Time**: each node has its own clock. An event happens at the later of its node's clock
//!   and its own time (the send time of a message, the due time of a timer), and that node's
//!   clock moves there: a message picked "late" was simply slow, and a clock never runs
//!   backwards. Remote messages are sent with zero latency and connections open in zero time
//!   (the order is the explorer's choice, not the latency model's). [`Sim::now`] is the
//!   latest node clock.
//! - **Randomness**: each node draws from its own generator (seeded from the seed and the node
//!   index), so what a node does depends on its own history only.
//!
//! Under these rules an event changes only the nodes it is addressed to, which is what the
//! reductions below rely on.
//!
//! # State hashing
//!
//! Atoms are trait objects that cannot be cloned or compared, so a node's state is digested
//! by its **history**: the content of every event it processed (message bytes, sender, kind,
//! timer id, time), folded in order. The atoms are deterministic functions of that history
//! (their clock and random numbers come from it), so two equal histories mean two equal
//! states: the visited set never merges different states (sound, up to 64-bit hash
//! collisions). The global digest adds what is not in any node's history: the multiset of
//! in-flight events by content, each node's up/incarnation flag and connection table, the
//! partitions and the fault budget spent. What it does **not** do is merge states that are
//! equal but were reached by different histories (a duplicate delivery that changed nothing,
//! two updates whose joins commute on one node): those are explored twice (under-pruning,
//! never over-pruning).
//!
//! # Eventual properties
//!
//! A bounded eventual property ("once faults stop, within T every replica holds the same
//! value") fails in most states of a path (a message is still in flight), so it is not
//! checked in every state. [`Model::eventually`] adds one, checked in every state at the
//! depth bound after a **settle**: partitions healed, crashed nodes restarted, then every
//! pending event picked in the order of its own time (send or due time; nothing lost, no
//! choice) until nothing more is due within [`Model::settle`] of the state's time. The safety
//! invariants are checked after every settle step too. The settle is one fair continuation of
//! the state, not all of them: the property is checked as "after this prefix, a fault-free
//! network brings it about within T", which is how `fuzz` checks it after the last fault
//! heals. A counterexample is the path plus its settle ([`Counterexample::settle_from`]);
//! breadth-first search reports the first one at the depth bound, so a shorter prefix may
//! fail as well.
//!
//! # Partial-order reduction
//!
//! Sleep sets (Godefroid, *Partial-Order Methods for the Verification of Concurrent Systems*,
//! LNCS 1032, 1996, ch. 5): two events on different nodes commute (both orders reach the same
//! state, by the rules above), so after exploring `a` then `b` from a state, the branch `b`
//! does not explore `a` first again. Connection set-ups share the simulator's connection
//! counter and depend on each other; faults depend on everything; losing a message depends
//! only on delivering it. With state caching, a state is pruned only if it was reached before
//! at no greater depth and with a sleep set included in the current one; otherwise it is
//! explored again with the intersection (ch. 5 of the same book).
//!
//! # Replay rather than snapshots
//!
//! A state is rebuilt by booting the cluster afresh and replaying the path of choices
//! (choices are named by sequence numbers, which a replay reproduces exactly). Atoms cannot
//! be cloned (their handlers, timers and request continuations are closures, the dataflow
//! program holds trigger actions and futures), so there is no snapshot to copy. Depth-first
//! search reuses the live simulator for the first child of each state and rebuilds for the
//! others; breadth-first rebuilds every child. Both use [`ExploreConfig::threads`]:
//!
//! - breadth-first spreads each frontier over the threads (children are merged in a fixed
//!   order);
//! - depth-first keeps the search itself (order, sleep sets, visited set, counters) on the
//!   calling thread and the simulators on worker threads, each simulator named by a handle
//!   and staying on the worker that built it (a simulator holds `Rc`s and never moves). When
//!   a state is expanded, the rebuilds of all its children but the first are queued at once,
//!   and the workers run them while the search goes down the first child's subtree. Every
//!   answer is a function of the path alone, so the search sees exactly what one thread
//!   sees. Simulators alive at once: at most the children queued along the current path
//!   (depth × branching).
//!
//! The result (states, transitions, replayed steps, counterexample) does not depend on the
//! number of threads (`runtime/tests/explore.rs` checks it). The README's "Model checking"
//! section has the figures.

use super::{kind_hash, mix, Ev, EvKind, Fault, Input, Queue, Sim, SimConfig, Trace, WireMode};
use crate::host::Boot;
use crate::ids::{NodeId, Time};
use crate::message::{Corr, KindId, Payload};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The explorer's part of the simulator core: per-node clocks, generators and histories.
pub(super) struct Control {
    pub(super) clocks: Vec<Time>,
    pub(super) rngs: Vec<ChaCha8Rng>,
    /// Each node's history digest (see the module docs).
    hist: Vec<u64>,
}

/// What a pending event is (see [`Pending`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message in flight.
    Deliver {
        /// Sender node ([`super::CLIENT`] for injected messages).
        from: NodeId,
        /// Receiver node.
        to: NodeId,
        /// Its kind.
        kind: KindId,
        /// Whether it answers a request.
        reply: bool,
    },
    /// The next timer (or request timeout) of a node.
    Timer {
        /// The node.
        node: NodeId,
    },
    /// A connection from `a` to `b` is established (or fails).
    Connect {
        /// The node that connects.
        a: NodeId,
        /// The node connected to.
        b: NodeId,
    },
    /// A node's failure detector checks its link to `peer`.
    LinkCheck {
        /// The node.
        node: NodeId,
        /// Its peer.
        peer: NodeId,
    },
    /// A node learns that `peer` closed their connection.
    Close {
        /// The node.
        node: NodeId,
        /// Its peer.
        peer: NodeId,
    },
    /// Any other queued event (a scheduled fault, a boot).
    Other,
}

/// An event the explorer may pick next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Its sequence number: what [`Sim::pick`] and [`Sim::discard`] take (stable under
    /// replay of the same choices).
    pub seq: u64,
    /// Its own time (send time, due time).
    pub at: Time,
    /// A digest of its content, equal for equal events on any path.
    pub id: u64,
    /// What it is.
    pub what: Event,
}

impl Event {
    /// The nodes whose state the event changes.
    fn nodes(&self) -> [Option<u32>; 2] {
        let n = |x: NodeId| Some(x.0 as u32);
        match *self {
            Event::Deliver { to, .. } => [n(to), None],
            Event::Timer { node } | Event::Close { node, .. } => [n(node), None],
            Event::Connect { a, b } => [n(a), n(b)],
            Event::LinkCheck { node, peer } => [n(node), n(peer)],
            Event::Other => [None, None],
        }
    }
}

fn what(kind: &EvKind) -> Event {
    let id = |n: u32| NodeId(n as u64);
    match kind {
        EvKind::Deliver { node, env, .. } => Event::Deliver {
            from: env.from.node,
            to: id(*node),
            kind: env.kind,
            reply: matches!(env.corr, Corr::Reply(_)),
        },
        EvKind::Alarm { node, .. } => Event::Timer { node: id(*node) },
        EvKind::ConnOpen { a, b, .. } => Event::Connect {
            a: id(*a),
            b: id(*b),
        },
        EvKind::LinkCheck { node, peer, .. } => Event::LinkCheck {
            node: id(*node),
            peer: id(*peer),
        },
        EvKind::CloseNote { node, peer, .. } => Event::Close {
            node: id(*node),
            peer: id(*peer),
        },
        EvKind::PeerNote { .. } | EvKind::Fault(_) | EvKind::Boot { .. } => Event::Other,
    }
}

/// The content digest of a queued event (its time included, its sequence number not).
fn content(at: u64, kind: &EvKind) -> u64 {
    let h = kind_hash(mix(0x6a09_e667_f3bc_c908, at), kind);
    match kind {
        // `kind_hash` reads wire bytes only; a typed payload is digested by its encoding.
        EvKind::Deliver {
            env:
                super::Envelope {
                    payload: Payload::Local(m),
                    ..
                },
            ..
        } => m
            .encode()
            .unwrap_or_default()
            .iter()
            .fold(h, |h, b| mix(h, *b as u64)),
        _ => h,
    }
}

impl Queue {
    /// Removes the event with sequence number `seq`: `(time, event)`.
    fn take(&mut self, seq: u64) -> Option<(u64, EvKind)> {
        let (at, slot) = self.keys.take(seq)?;
        let kind = self.slab[slot as usize].take()?;
        self.free.push(slot);
        Some((at, kind))
    }

    /// `(time, seq, event)` of every queued event, in no particular order.
    fn iter(&self) -> impl Iterator<Item = (u64, u64, &EvKind)> {
        self.keys
            .iter()
            .filter_map(|(at, seq, &slot)| self.slab[slot as usize].as_ref().map(|e| (at, seq, e)))
    }
}

/// Whether a queued event is part of the step that queued it (see the module docs), dead
/// (removed), or a choice.
enum Class {
    Internal,
    Dead,
    Choice,
}

impl Sim {
    /// Enters the explorer's controlled mode (see the [module docs](self)): from now on
    /// nothing runs unless picked. Call it after the nodes booted (e.g. after
    /// `run_until(Time::ZERO)`); recorded in traces.
    pub fn enter_control(&mut self) {
        self.record(|| Input::Control);
        let n = self.nodes.len();
        let seed = self.core.seed;
        self.core.control = Some(Control {
            clocks: vec![self.core.now; n],
            rngs: (0..n)
                .map(|i| ChaCha8Rng::seed_from_u64(mix(seed, i as u64 + 1)))
                .collect(),
            hist: vec![0; n],
        });
        self.settle();
    }

    /// Whether the simulator is in controlled mode.
    pub fn is_controlled(&self) -> bool {
        self.core.control.is_some()
    }

    fn class(&self, kind: &EvKind) -> Class {
        match kind {
            EvKind::Deliver { node, inc, env, .. } => {
                if !self.core.alive(*node, *inc) {
                    Class::Dead
                } else if env.from.node.0 == *node as u64 {
                    Class::Internal
                } else {
                    Class::Choice
                }
            }
            EvKind::Alarm { node, inc, alarm } => {
                let live = self.core.alive(*node, *inc)
                    && self.nodes[*node as usize]
                        .host
                        .as_ref()
                        .is_some_and(|h| h.alarm_live(*alarm));
                if live {
                    Class::Choice
                } else {
                    Class::Dead
                }
            }
            EvKind::PeerNote { node, inc, .. } | EvKind::Boot { node, inc } => {
                if self.core.alive(*node, *inc) {
                    Class::Internal
                } else {
                    Class::Dead
                }
            }
            EvKind::ConnOpen { .. }
            | EvKind::LinkCheck { .. }
            | EvKind::CloseNote { .. }
            | EvKind::Fault(_) => Class::Choice,
        }
    }

    /// Runs the internal events left by the last step and removes the dead ones.
    fn settle(&mut self) {
        loop {
            let mut next: Option<(u64, bool)> = None;
            for (_, seq, kind) in self.core.queue.iter() {
                let internal = match self.class(kind) {
                    Class::Choice => continue,
                    Class::Internal => true,
                    Class::Dead => false,
                };
                if next.is_none_or(|(s, _)| seq < s) {
                    next = Some((seq, internal));
                }
            }
            let Some((seq, internal)) = next else {
                return;
            };
            let (at, kind) = self.core.queue.take(seq).expect("found above");
            if internal {
                self.run_controlled(at, seq, kind);
            } else if matches!(kind, EvKind::Deliver { .. }) {
                self.core.count("sim.dropped_node_down");
            }
        }
    }

    fn run_controlled(&mut self, at: u64, seq: u64, kind: EvKind) {
        let id = content(at, &kind);
        let nodes: Vec<u32> = match &kind {
            EvKind::PeerNote { node, .. } | EvKind::Boot { node, .. } => vec![*node],
            k => what(k).nodes().into_iter().flatten().collect(),
        };
        let ctl = self.core.control.as_mut().expect("rasp: controlled mode");
        let mut t = Time(at);
        for &n in &nodes {
            t = t.max(ctl.clocks[n as usize]);
        }
        for &n in &nodes {
            ctl.clocks[n as usize] = t;
            ctl.hist[n as usize] = mix(mix(ctl.hist[n as usize], id), t.0);
        }
        if nodes.is_empty() {
            t = t.max(self.core.now);
        }
        self.core.now = t;
        self.core.events += 1;
        let ev = Ev { at: t.0, seq, kind };
        let h = mix(self.core.hash, super::ev_hash(&ev));
        self.core.hash = h;
        if let Some(r) = &mut self.recorder {
            r.hashes.push(h);
        }
        if let Some(v) = &mut self.verifier {
            v.check(self.core.events, self.core.now, h);
        }
        self.process(ev.kind);
        self.core.now = self.global_clock();
    }

    fn global_clock(&self) -> Time {
        let c = self.core.control.as_ref().expect("rasp: controlled mode");
        c.clocks.iter().copied().fold(self.core.now, Time::max)
    }

    /// The events that may happen next, in (time, sequence) order (controlled mode).
    pub fn pending(&self) -> Vec<Pending> {
        let mut out: Vec<Pending> = Vec::new();
        // Each node's earliest live alarm: (time, seq) and its index in `out`.
        let mut timers: Vec<Option<(u64, u64, usize)>> = vec![None; self.nodes.len()];
        for (at, seq, kind) in self.core.queue.iter() {
            if !matches!(self.class(kind), Class::Choice) {
                continue;
            }
            let p = Pending {
                seq,
                at: Time(at),
                id: content(at, kind),
                what: what(kind),
            };
            if let EvKind::Alarm { node, .. } = kind {
                let slot = &mut timers[*node as usize];
                match *slot {
                    Some((a, s, i)) if (a, s) <= (at, seq) => {
                        let _ = i;
                    }
                    Some((_, _, i)) => {
                        out[i] = p;
                        *slot = Some((at, seq, i));
                    }
                    None => {
                        *slot = Some((at, seq, out.len()));
                        out.push(p);
                    }
                }
                continue;
            }
            out.push(p);
        }
        out.sort_by_key(|p| (p.at, p.seq));
        out
    }

    /// Runs the pending event `seq` and what it makes happen at once on its node (see the
    /// [module docs](self)); `false` if no such event is pending. Controlled mode only.
    pub fn pick(&mut self, seq: u64) -> bool {
        self.record(|| Input::Pick(seq));
        let Some((at, kind)) = self.core.queue.take(seq) else {
            return false;
        };
        self.run_controlled(at, seq, kind);
        self.settle();
        true
    }

    /// Loses the in-flight message `seq` (counted as `sim.lost`); `false` if it is not a
    /// pending message. Controlled mode only.
    pub fn discard(&mut self, seq: u64) -> bool {
        self.record(|| Input::Discard(seq));
        let is_msg = self
            .core
            .queue
            .iter()
            .any(|(_, s, k)| s == seq && matches!(k, EvKind::Deliver { .. }));
        if !is_msg || self.core.queue.take(seq).is_none() {
            return false;
        }
        self.core.count("sim.lost");
        true
    }

    /// Applies a fault in controlled mode: as [`Sim::apply`], then the step settles (a
    /// restarted node boots at the current clock, its clock and history continue).
    fn apply_controlled(&mut self, fault: Fault) {
        let marker = kind_hash(0x7f4a_7c15, &EvKind::Fault(fault.clone()));
        let node = match &fault {
            Fault::Crash(n) | Fault::Restart(n) => Some(n.0 as usize),
            _ => None,
        };
        let now = self.global_clock();
        self.core.now = now;
        if let (Some(n), Some(c)) = (node, self.core.control.as_mut()) {
            if n < c.clocks.len() {
                c.hist[n] = mix(c.hist[n], marker);
                c.clocks[n] = now;
            }
        }
        self.apply(fault);
        self.settle();
    }

    /// A digest of the whole state (controlled mode; see the [module docs](self)): equal
    /// digests mean equal states.
    pub fn state_digest(&self) -> u64 {
        let c = self.core.control.as_ref().expect("rasp: controlled mode");
        let mut h = 0x3c6e_f372_fe94_f82b_u64;
        for (i, m) in self.core.meta.iter().enumerate() {
            h = mix(mix(h, c.hist[i]), c.clocks[i].0);
            h = mix(mix(h, m.up as u64), m.inc as u64);
            for &(p, conn) in &m.conns.open {
                h = mix(mix(h, p.0), conn);
            }
            h = mix(h, 0xc0);
            for p in &m.conns.connecting {
                h = mix(h, p.0);
            }
            h = mix(h, 0xc1);
        }
        for p in &self.core.partitions {
            h = mix(mix(h, p.id as u64), p.one_way as u64);
            for n in p.a.iter().chain([&NodeId(u64::MAX)]).chain(&p.b) {
                h = mix(h, n.0);
            }
        }
        let mut inflight: Vec<u64> = self
            .core
            .queue
            .iter()
            .map(|(at, _, k)| content(at, k))
            .collect();
        inflight.sort_unstable();
        inflight.into_iter().fold(mix(h, 0xf1), mix)
    }

    /// A pending event in plain words, e.g. `n1 → n0 dataflow/delta delivered`.
    pub fn describe(&self, p: &Pending) -> String {
        let host = |n: NodeId| self.host(n);
        match p.what {
            Event::Deliver {
                from,
                to,
                kind,
                reply,
            } => {
                let name = host(to)
                    .and_then(|h| h.kind_name(kind))
                    .map_or_else(|| format!("{kind:?}"), str::to_string);
                let from = if from == super::CLIENT {
                    "client".to_string()
                } else {
                    format!("n{}", from.0)
                };
                let r = if reply { " (reply)" } else { "" };
                format!("{from} → n{} {name}{r} delivered", to.0)
            }
            Event::Timer { node } => {
                let what = self
                    .core
                    .queue
                    .iter()
                    .find(|(_, s, _)| *s == p.seq)
                    .and_then(|(_, _, k)| match k {
                        EvKind::Alarm { alarm, .. } => host(node)?.alarm_owner(*alarm),
                        _ => None,
                    })
                    .unwrap_or_else(|| "timer".into());
                format!("n{} {what} fires", node.0)
            }
            Event::Connect { a, b } => format!("n{} connects to n{}", a.0, b.0),
            Event::LinkCheck { node, peer } => {
                format!("n{} checks its link to n{}", node.0, peer.0)
            }
            Event::Close { node, peer } => {
                format!("n{} learns n{} closed their connection", node.0, peer.0)
            }
            Event::Other => "a scheduled event".into(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The explorer.

/// An invariant over the simulated cluster: `Err` with a message when it fails.
pub type Check = Arc<dyn Fn(&Sim) -> Result<(), String> + Send + Sync>;

/// What to explore: the cluster (one boot closure per node, booted at time zero) and its
/// invariants.
#[derive(Clone)]
pub struct Model {
    /// The simulator's configuration (the seed fixes what atoms draw at boot and the nodes'
    /// generators; payloads are always encoded).
    pub config: SimConfig,
    /// Node `i` runs `boots[i]`.
    pub boots: Vec<Boot>,
    /// Checked in every state reached.
    pub invariants: Vec<(String, Check)>,
    /// Bounded eventual properties: checked in every state at the depth bound after
    /// [`Model::settle`] of fault-free running (see the module docs, "Eventual properties").
    pub eventual: Vec<(String, Check)>,
    /// How long a state at the depth bound runs, faults healed, before the eventual
    /// properties are checked (zero: they are not checked).
    pub settle: Duration,
}

impl Model {
    /// A model of `boots` under the default configuration with `seed`.
    pub fn new(seed: u64, boots: Vec<Boot>) -> Self {
        Model {
            config: SimConfig::seeded(seed),
            boots,
            invariants: Vec::new(),
            eventual: Vec::new(),
            settle: Duration::ZERO,
        }
    }

    /// Adds a bounded eventual property, checked after `settle` of fault-free running from
    /// every state at the depth bound (the longest `settle` given is used).
    pub fn eventually(
        mut self,
        name: impl Into<String>,
        settle: Duration,
        check: impl Fn(&Sim) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.eventual.push((name.into(), Arc::new(check)));
        self.settle = self.settle.max(settle);
        self
    }

    /// Whether states at the depth bound are settled and their eventual properties checked.
    fn settles(&self) -> bool {
        !self.eventual.is_empty() && !self.settle.is_zero()
    }

    /// From `sim`'s state (at the depth bound): partitions healed and crashed nodes
    /// restarted, then every pending event in the order of its own time (no loss, no
    /// reordering beyond what the path left in flight) until nothing is due within
    /// [`Model::settle`] of the state's time; the safety invariants are checked after every
    /// step and the eventual ones at the end. Returns the steps taken and the failure.
    fn settle_check(&self, sim: &mut Sim) -> Option<Failure> {
        let mut steps = Vec::new();
        if !sim.core.partitions.is_empty() {
            steps.push(Step::Fault(Fault::HealAll));
        }
        for i in 0..sim.node_count() {
            let n = NodeId(i as u64);
            if !sim.is_up(n) {
                steps.push(Step::Fault(Fault::Restart(n)));
            }
        }
        for s in &steps {
            s.apply(sim);
        }
        let end = Time(sim.now().0.saturating_add(self.settle.as_nanos() as u64));
        for _ in 0..MAX_SETTLE_STEPS {
            let Some(next) = sim
                .pending()
                .into_iter()
                .filter(|p| p.at <= end)
                .min_by_key(|p| (p.at, p.seq))
            else {
                break;
            };
            let step = Step::Pick(next.seq);
            step.apply(sim);
            steps.push(step);
            if let Some((name, msg)) = self.violated(sim) {
                return Some((steps, name, msg));
            }
        }
        let secs = self.settle.as_secs_f64();
        self.eventual.iter().find_map(|(name, check)| {
            check(sim).err().map(|m| {
                let m =
                    format!("{m} (after {secs} s with no fault from a state at the depth bound)");
                (steps.clone(), name.clone(), m)
            })
        })
    }

    /// Adds an invariant.
    pub fn invariant(
        mut self,
        name: impl Into<String>,
        check: impl Fn(&Sim) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.invariants.push((name.into(), Arc::new(check)));
        self
    }

    /// A fresh simulator in controlled mode: the nodes added and booted.
    pub fn boot(&self, record: bool) -> Sim {
        let cfg = SimConfig {
            seed_from_env: false,
            wire: WireMode::Encode,
            ..self.config.clone()
        };
        let mut sim = Sim::new(cfg).expect("rasp: the model's configuration is valid");
        if record {
            sim.start_recording();
        }
        for b in &self.boots {
            sim.add_node(b.clone());
        }
        sim.run_until(Time::ZERO);
        sim.enter_control();
        sim
    }

    fn violated(&self, sim: &Sim) -> Option<(String, String)> {
        self.invariants
            .iter()
            .find_map(|(name, check)| check(sim).err().map(|m| (name.clone(), m)))
    }
}

/// A failing path: its steps, the invariant's name and its message.
type Failure = (Vec<Step>, String, String);

/// The most events one settle runs ([`Model::settle`]): a bound on zero-latency message
/// storms, far above what a few nodes do in the bound.
const MAX_SETTLE_STEPS: usize = 100_000;

/// How many faults a path may contain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Budget {
    /// Node crashes (each crashed node may then restart).
    pub crashes: u32,
    /// Lost messages.
    pub drops: u32,
    /// Partitions (each may then heal).
    pub partitions: u32,
}

/// Search order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Strategy {
    /// Breadth-first: the first violation found is a shortest one.
    #[default]
    Bfs,
    /// Depth-first: less memory; the counterexample found first may be longer.
    Dfs,
}

/// Bounds and switches of [`explore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExploreConfig {
    /// The longest path explored, in steps.
    pub depth: u32,
    /// Search order.
    pub strategy: Strategy,
    /// Faults allowed on a path.
    pub faults: Budget,
    /// Partial-order reduction (sleep sets).
    pub por: bool,
    /// State hashing (the visited set).
    pub hashing: bool,
    /// Stop after this many distinct states (bounds the visited set and the frontier).
    pub max_states: u64,
    /// Threads (1: none). Breadth-first search spreads each frontier over them;
    /// depth-first search keeps its simulators on that many workers and rebuilds siblings
    /// ahead of need. The result does not depend on it.
    pub threads: usize,
}

impl Default for ExploreConfig {
    fn default() -> Self {
        ExploreConfig {
            depth: 12,
            strategy: Strategy::Bfs,
            faults: Budget::default(),
            por: true,
            hashing: true,
            max_states: 500_000,
            threads: 1,
        }
    }
}

/// One choice on a path: replayed exactly by the same calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// [`Sim::pick`].
    Pick(u64),
    /// [`Sim::discard`].
    Drop(u64),
    /// A crash, restart, partition or heal.
    Fault(Fault),
}

impl Step {
    fn apply(&self, sim: &mut Sim) {
        match self {
            Step::Pick(s) => {
                sim.pick(*s);
            }
            Step::Drop(s) => {
                sim.discard(*s);
            }
            Step::Fault(f) => sim.apply_controlled(f.clone()),
        }
    }
}

/// A counterexample.
#[derive(Clone, Debug)]
pub struct Counterexample {
    /// The invariant that failed.
    pub invariant: String,
    /// Its message.
    pub message: String,
    /// The choices from boot.
    pub steps: Vec<Step>,
    /// The run as a trace ([`replay`](super::replay) loads it with the model's boots).
    pub trace: Trace,
    /// One line per step in plain words, then the failing invariant.
    pub story: Vec<String>,
    /// For an eventual property: where the settle starts in `steps` (the path before it is
    /// the explored part, the rest the fault-free running of [`Model::settle`]).
    pub settle_from: Option<usize>,
}

/// What [`explore`] found.
#[derive(Clone, Debug)]
pub struct ExploreReport {
    /// Distinct states reached (the root included).
    pub states: u64,
    /// Steps executed to reach new states or revisits (not counting replays).
    pub transitions: u64,
    /// Events run to rebuild states (boot replays of paths).
    pub replayed_steps: u64,
    /// The deepest state reached.
    pub depth_reached: u32,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether no state was left unexplored for lack of depth (the state space is finite
    /// and was covered).
    pub exhausted: bool,
    /// Whether the search stopped at [`ExploreConfig::max_states`].
    pub truncated: bool,
    /// The first violation found (breadth-first: a shortest one).
    pub violation: Option<Counterexample>,
    /// States at the depth bound settled to check the eventual properties.
    pub settled: u64,
}

impl ExploreReport {
    /// Distinct states per second.
    pub fn states_per_sec(&self) -> f64 {
        self.states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How a choice relates to others (partial-order reduction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dep {
    /// An event on these nodes; `conn`: it opens a connection.
    Local { nodes: [Option<u32>; 2], conn: bool },
    /// Losing the message with this id.
    DropOf(u64),
    /// A fault: depends on everything.
    Global,
}

#[derive(Clone, Debug)]
struct Choice {
    step: Step,
    /// Stable across paths: the event's content id (a drop: mixed with a tag).
    id: u64,
    dep: Dep,
    cost: Budget,
}

/// What a sleep set keeps of a choice: its id and dependency (small and `Copy`, so a large
/// breadth-first frontier stays compact).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Asleep {
    id: u64,
    dep: Dep,
}

impl Choice {
    fn asleep(&self) -> Asleep {
        Asleep {
            id: self.id,
            dep: self.dep,
        }
    }
}

fn independent(x: &Asleep, y: &Asleep) -> bool {
    match (x.dep, y.dep) {
        (Dep::Global, _) | (_, Dep::Global) => false,
        (Dep::DropOf(a), Dep::DropOf(b)) => a != b,
        (Dep::DropOf(m), Dep::Local { .. }) => m != y.id,
        (Dep::Local { .. }, Dep::DropOf(m)) => m != x.id,
        (Dep::Local { nodes: a, conn: ca }, Dep::Local { nodes: b, conn: cb }) => {
            let shared = a.iter().flatten().any(|n| b.contains(&Some(*n)));
            let both_connect = ca && cb;
            !shared && !both_connect
        }
    }
}

const DROP_TAG: u64 = 0xd20b_d20b_d20b_d20b;

/// Every choice in the current state within the budget left (`used` of `budget`).
fn choices(sim: &Sim, used: Budget, budget: Budget) -> Vec<Choice> {
    let mut out = Vec::new();
    let pending = sim.pending();
    for p in &pending {
        out.push(Choice {
            step: Step::Pick(p.seq),
            id: p.id,
            dep: Dep::Local {
                nodes: p.what.nodes(),
                conn: matches!(p.what, Event::Connect { .. }),
            },
            cost: Budget::default(),
        });
    }
    if used.drops < budget.drops {
        for p in pending
            .iter()
            .filter(|p| matches!(p.what, Event::Deliver { .. }))
        {
            out.push(Choice {
                step: Step::Drop(p.seq),
                id: mix(p.id, DROP_TAG),
                dep: Dep::DropOf(p.id),
                cost: Budget {
                    drops: 1,
                    ..Budget::default()
                },
            });
        }
    }
    let n = sim.node_count();
    let fault = |f: Fault, cost: Budget| Choice {
        id: kind_hash(0xfa, &EvKind::Fault(f.clone())),
        step: Step::Fault(f),
        dep: Dep::Global,
        cost,
    };
    for i in 0..n {
        let id = NodeId(i as u64);
        if sim.is_up(id) {
            if used.crashes < budget.crashes {
                let cost = Budget {
                    crashes: 1,
                    ..Budget::default()
                };
                out.push(fault(Fault::Crash(id), cost));
            }
        } else {
            out.push(fault(Fault::Restart(id), Budget::default()));
        }
    }
    if sim.core.partitions.is_empty() {
        if used.partitions < budget.partitions && n >= 2 {
            // Every split into two sides, the side with node 0 first.
            for mask in 1..(1u64 << (n - 1)) {
                let mut a = vec![NodeId(0)];
                let mut b = Vec::new();
                for i in 1..n {
                    if mask >> (i - 1) & 1 == 1 {
                        b.push(NodeId(i as u64));
                    } else {
                        a.push(NodeId(i as u64));
                    }
                }
                let cost = Budget {
                    partitions: 1,
                    ..Budget::default()
                };
                out.push(fault(
                    Fault::Partition {
                        id: 1,
                        a,
                        b,
                        one_way: false,
                    },
                    cost,
                ));
            }
        }
    } else {
        out.push(fault(Fault::HealAll, Budget::default()));
    }
    out
}

fn add(a: Budget, b: Budget) -> Budget {
    Budget {
        crashes: a.crashes + b.crashes,
        drops: a.drops + b.drops,
        partitions: a.partitions + b.partitions,
    }
}

/// A state to expand: how to reach it and what not to explore from it.
#[derive(Clone)]
struct Node {
    steps: Vec<Step>,
    sleep: Vec<Asleep>,
    used: Budget,
}

/// Identity hasher for digests (already well mixed).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = mix(self.0, *b as u64);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The visited set: digest → (depth first reached, sleep set ids, sorted).
type Visited = HashMap<u64, (u32, Vec<u64>), BuildHasherDefault<IdHasher>>;

/// Whether a state reached at `depth` with `sleep` must be expanded; if so, the sleep set to
/// expand it with (see the module docs) and the visited set updated.
fn admit(
    visited: &mut Visited,
    key: u64,
    depth: u32,
    mut sleep: Vec<Asleep>,
) -> Option<Vec<Asleep>> {
    let ids = |s: &[Asleep]| {
        let mut v: Vec<u64> = s.iter().map(|c| c.id).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    match visited.get_mut(&key) {
        None => {
            visited.insert(key, (depth, ids(&sleep)));
            Some(sleep)
        }
        Some((d0, z0)) => {
            let subset = z0.iter().all(|z| sleep.iter().any(|c| c.id == *z));
            if *d0 <= depth && subset {
                return None;
            }
            if *d0 <= depth {
                sleep.retain(|c| z0.binary_search(&c.id).is_ok());
            }
            *d0 = (*d0).min(depth);
            *z0 = ids(&sleep);
            Some(sleep)
        }
    }
}

fn key(sim: &Sim, used: Budget) -> u64 {
    key_of(sim.state_digest(), used)
}

/// The visited set's key: the state digest and the fault budget spent.
fn key_of(digest: u64, used: Budget) -> u64 {
    mix(
        mix(mix(digest, used.crashes as u64), used.drops as u64),
        used.partitions as u64,
    )
}

/// The children of a state: for each choice not asleep, the child's sleep set.
fn expand(node: &Node, choices: Vec<Choice>, por: bool) -> Vec<(Choice, Vec<Asleep>)> {
    let mut done: Vec<Asleep> = Vec::new();
    let mut out = Vec::new();
    for c in choices {
        if por && node.sleep.iter().any(|z| z.id == c.id) {
            continue;
        }
        let me = c.asleep();
        let sleep = if por {
            node.sleep
                .iter()
                .chain(&done)
                .filter(|z| independent(z, &me))
                .copied()
                .collect()
        } else {
            Vec::new()
        };
        done.push(me);
        out.push((c, sleep));
    }
    out
}

struct Search<'a> {
    model: &'a Model,
    cfg: &'a ExploreConfig,
    visited: Visited,
    states: u64,
    transitions: u64,
    replayed: u64,
    depth_reached: u32,
    cut_by_depth: bool,
    truncated: bool,
    found: Option<Failure>,
    /// Where the settle of a liveness counterexample starts in `found`'s steps.
    settled_at: Option<usize>,
    /// States settled.
    settled: u64,
}

impl Search<'_> {
    /// Settles a state at the depth bound reached by `path` (see [`Model::settle_check`]).
    fn settle_leaf(&mut self, mut sim: Sim, path: &[Step]) {
        self.settled += 1;
        if let Some((more, name, msg)) = self.model.settle_check(&mut sim) {
            let mut steps = path.to_vec();
            self.settled_at = Some(steps.len());
            steps.extend(more);
            self.found = Some((steps, name, msg));
        }
    }

    fn rebuild(&mut self, steps: &[Step]) -> Sim {
        let mut sim = self.model.boot(false);
        for s in steps {
            s.apply(&mut sim);
        }
        self.replayed += steps.len() as u64;
        sim
    }

    fn full(&mut self) -> bool {
        if self.states >= self.cfg.max_states {
            self.truncated = true;
        }
        self.truncated
    }

    /// Depth-first from `node`, whose state `sim` holds.
    fn dfs(&mut self, sim: Sim, node: Node) {
        let depth = node.steps.len() as u32;
        self.depth_reached = self.depth_reached.max(depth);
        let cs = choices(&sim, node.used, self.cfg.faults);
        if depth >= self.cfg.depth {
            self.cut_by_depth |= !cs.is_empty();
            if self.model.settles() {
                self.settle_leaf(sim, &node.steps);
            }
            return;
        }
        // The first child takes this simulator; the others rebuild it.
        let mut spare = Some(sim);
        for (c, sleep) in expand(&node, cs, self.cfg.por) {
            if self.found.is_some() || self.full() {
                return;
            }
            let mut s = match spare.take() {
                Some(s) => s,
                None => self.rebuild(&node.steps),
            };
            c.step.apply(&mut s);
            self.transitions += 1;
            let mut steps = node.steps.clone();
            steps.push(c.step.clone());
            if let Some((name, msg)) = self.model.violated(&s) {
                self.found = Some((steps, name, msg));
                return;
            }
            let used = add(node.used, c.cost);
            let sleep = if self.cfg.hashing {
                match admit(&mut self.visited, key(&s, used), depth + 1, sleep) {
                    Some(z) => z,
                    None => continue,
                }
            } else {
                sleep
            };
            self.states += 1;
            self.dfs(s, Node { steps, sleep, used });
        }
    }

    /// Breadth-first, level by level.
    fn bfs(&mut self, root: Node) {
        let mut frontier = vec![root];
        let threads = self.cfg.threads.max(1);
        while !frontier.is_empty() && self.found.is_none() && !self.full() {
            let depth = frontier[0].steps.len() as u32;
            self.depth_reached = self.depth_reached.max(depth);
            if depth >= self.cfg.depth {
                // States are left at the bound (their successors, if any, unexplored).
                self.cut_by_depth = true;
                if self.model.settles() {
                    self.settle_frontier(&frontier);
                }
                return;
            }
            let (model, cfg) = (self.model, self.cfg);
            let results: Vec<Vec<Kid>> =
                over_frontier(&frontier, threads, |node| Some(children(model, cfg, node)))
                    .into_iter()
                    .map(|(_, k)| k)
                    .collect();
            let mut next = Vec::new();
            for kids in results {
                for k in kids {
                    self.transitions += 1;
                    self.replayed += k.replayed;
                    if let Some((name, msg)) = k.violation {
                        self.found = Some((k.node.steps, name, msg));
                        return;
                    }
                    let sleep = if self.cfg.hashing {
                        match admit(&mut self.visited, k.key, depth + 1, k.node.sleep) {
                            Some(z) => z,
                            None => continue,
                        }
                    } else {
                        k.node.sleep
                    };
                    self.states += 1;
                    next.push(Node { sleep, ..k.node });
                    if self.full() {
                        return;
                    }
                }
            }
            frontier = next;
        }
    }
}

/// `f` over every node of `frontier` on `threads` threads (each takes the next index), the
/// results that are `Some` in frontier order whatever the thread count.
fn over_frontier<T: Send>(
    frontier: &[Node],
    threads: usize,
    f: impl Fn(&Node) -> Option<T> + Sync,
) -> Vec<(usize, T)> {
    let next_i = AtomicUsize::new(0);
    let work = || {
        let mut mine = Vec::new();
        loop {
            let i = next_i.fetch_add(1, Ordering::Relaxed);
            if i >= frontier.len() {
                break mine;
            }
            if let Some(t) = f(&frontier[i]) {
                mine.push((i, t));
            }
        }
    };
    let mut all: Vec<(usize, T)> = if threads <= 1 {
        work()
    } else {
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..threads).map(|_| sc.spawn(work)).collect();
            hs.into_iter()
                .flat_map(|h| h.join().expect("rasp: explorer thread panicked"))
                .collect()
        })
    };
    all.sort_by_key(|(i, _)| *i);
    all
}

impl Search<'_> {
    /// Settles every state of the last breadth-first level, on the configured threads; the
    /// failure reported is the first in frontier order, whatever the thread count.
    fn settle_frontier(&mut self, frontier: &[Node]) {
        let model = self.model;
        let found = over_frontier(frontier, self.cfg.threads.max(1), |node| {
            let mut sim = model.boot(false);
            for s in &node.steps {
                s.apply(&mut sim);
            }
            model.settle_check(&mut sim)
        });
        self.replayed += frontier.iter().map(|n| n.steps.len() as u64).sum::<u64>();
        self.settled += frontier.len() as u64;
        if let Some((i, (more, name, msg))) = found.into_iter().next() {
            let mut steps = frontier[i].steps.clone();
            self.settled_at = Some(steps.len());
            steps.extend(more);
            self.found = Some((steps, name, msg));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Depth-first search on several threads.
//
// The search itself (order, sleep sets, visited set, counters) runs on the calling thread
// exactly as `Search::dfs` does; only the simulators live on worker threads (a simulator
// holds `Rc`s and never moves). The search names each simulator by a handle and sends the
// worker that owns it commands; every answer is a pure function of the path, so the result
// does not depend on the number of threads nor on which worker ran what. Siblings are
// rebuilt ahead of need: when a state is expanded, the rebuilds of all its children but the
// first (which takes the parent's simulator, as in `Search::dfs`) are queued at once, and the
// workers run them while the search goes down the first child's subtree.

/// What the search needs of a simulator's state.
struct Info {
    digest: u64,
    violation: Option<(String, String)>,
    choices: Vec<Choice>,
}

enum Cmd {
    /// Boot, replay `path`, apply `step` (if any); keep the simulator as `h`.
    Build {
        h: u64,
        path: Arc<Vec<Step>>,
        step: Option<Step>,
        used: Budget,
    },
    /// Apply `step` to simulator `from`, which becomes `h`.
    Extend {
        from: u64,
        h: u64,
        step: Step,
        used: Budget,
    },
    /// Drop simulator `h`.
    Free(u64),
}

fn info(model: &Model, sim: &Sim, used: Budget, faults: Budget) -> Info {
    Info {
        digest: sim.state_digest(),
        violation: model.violated(sim),
        choices: choices(sim, used, faults),
    }
}

fn worker(
    model: &Model,
    faults: Budget,
    rx: std::sync::mpsc::Receiver<Cmd>,
    tx: std::sync::mpsc::Sender<(u64, Info)>,
) {
    let mut live: HashMap<u64, Sim, BuildHasherDefault<IdHasher>> = HashMap::default();
    for cmd in rx {
        let (h, sim, used) = match cmd {
            Cmd::Free(h) => {
                live.remove(&h);
                continue;
            }
            Cmd::Build {
                h,
                path,
                step,
                used,
            } => {
                let mut sim = model.boot(false);
                for s in path.iter().chain(&step) {
                    s.apply(&mut sim);
                }
                (h, sim, used)
            }
            Cmd::Extend {
                from,
                h,
                step,
                used,
            } => {
                let mut sim = live.remove(&from).expect("rasp: explorer handle is live");
                step.apply(&mut sim);
                (h, sim, used)
            }
        };
        let i = info(model, &sim, used, faults);
        live.insert(h, sim);
        if tx.send((h, i)).is_err() {
            return;
        }
    }
}

/// The calling thread's side of the workers.
struct Pool {
    to: Vec<std::sync::mpsc::Sender<Cmd>>,
    from: std::sync::mpsc::Receiver<(u64, Info)>,
    /// Which worker owns each live handle, and its answer once received.
    owner: HashMap<u64, usize, BuildHasherDefault<IdHasher>>,
    ready: HashMap<u64, Info, BuildHasherDefault<IdHasher>>,
    /// Commands queued per worker and not yet answered (for balancing).
    queued: Vec<usize>,
    next: u64,
}

impl Pool {
    fn send(&mut self, w: usize, cmd: Cmd) {
        self.to[w].send(cmd).expect("rasp: explorer worker stopped");
    }

    fn build(&mut self, path: Arc<Vec<Step>>, step: Option<Step>, used: Budget) -> u64 {
        let h = self.next;
        self.next += 1;
        let w = (0..self.to.len())
            .min_by_key(|&w| self.queued[w])
            .expect("at least one worker");
        self.queued[w] += 1;
        self.owner.insert(h, w);
        self.send(
            w,
            Cmd::Build {
                h,
                path,
                step,
                used,
            },
        );
        h
    }

    fn extend(&mut self, from: u64, step: Step, used: Budget) -> u64 {
        let h = self.next;
        self.next += 1;
        let w = self
            .owner
            .remove(&from)
            .expect("rasp: explorer handle is live");
        self.queued[w] += 1;
        self.owner.insert(h, w);
        self.send(
            w,
            Cmd::Extend {
                from,
                h,
                step,
                used,
            },
        );
        h
    }

    fn free(&mut self, h: u64) {
        self.ready.remove(&h);
        if let Some(w) = self.owner.remove(&h) {
            self.send(w, Cmd::Free(h));
        }
    }

    /// The answer for `h` (waits for it).
    fn wait(&mut self, h: u64) -> Info {
        loop {
            if let Some(i) = self.ready.remove(&h) {
                return i;
            }
            let (g, i) = self.from.recv().expect("rasp: explorer worker stopped");
            if let Some(&w) = self.owner.get(&g) {
                self.queued[w] -= 1;
            }
            self.ready.insert(g, i);
        }
    }
}

impl Search<'_> {
    /// Depth-first search with [`ExploreConfig::threads`] workers holding the simulators
    /// (see the comment above [`Info`]): the same states, transitions, replayed steps and
    /// counterexample as [`Search::dfs`].
    fn dfs_parallel(&mut self, root: Node) {
        let threads = self.cfg.threads.max(1);
        let model = self.model;
        let faults = self.cfg.faults;
        std::thread::scope(|sc| {
            let (tx, from) = std::sync::mpsc::channel();
            let mut to = Vec::new();
            for _ in 0..threads {
                let (t, rx) = std::sync::mpsc::channel();
                let tx = tx.clone();
                sc.spawn(move || worker(model, faults, rx, tx));
                to.push(t);
            }
            drop(tx);
            let mut pool = Pool {
                to,
                from,
                owner: HashMap::default(),
                ready: HashMap::default(),
                queued: vec![0; threads],
                next: 0,
            };
            let h = pool.build(Arc::new(Vec::new()), None, Budget::default());
            let i = pool.wait(h);
            self.dfs_in(&mut pool, h, i.choices, root);
            // Dropping the senders stops the workers (and drops their simulators).
            drop(pool);
        });
    }

    fn dfs_in(&mut self, pool: &mut Pool, h: u64, cs: Vec<Choice>, node: Node) {
        let depth = node.steps.len() as u32;
        self.depth_reached = self.depth_reached.max(depth);
        if depth >= self.cfg.depth {
            self.cut_by_depth |= !cs.is_empty();
            pool.free(h);
            if self.model.settles() {
                // Rebuilt here: the worker's simulator stays where it was built.
                let sim = self.rebuild(&node.steps);
                self.settle_leaf(sim, &node.steps);
            }
            return;
        }
        let kids = expand(&node, cs, self.cfg.por);
        if kids.is_empty() {
            pool.free(h);
            return;
        }
        let path = Arc::new(node.steps.clone());
        // The first child takes this simulator; the others are rebuilt ahead of need.
        let mut handles: Vec<u64> = Vec::with_capacity(kids.len());
        for (k, (c, _)) in kids.iter().enumerate() {
            let used = add(node.used, c.cost);
            handles.push(if k == 0 {
                pool.extend(h, c.step.clone(), used)
            } else {
                pool.build(path.clone(), Some(c.step.clone()), used)
            });
        }
        let mut kids = kids.into_iter().zip(handles).enumerate();
        while let Some((k, ((c, sleep), hk))) = kids.next() {
            if self.found.is_some() || self.full() {
                pool.free(hk);
                kids.for_each(|(_, (_, h))| pool.free(h));
                return;
            }
            let i = pool.wait(hk);
            if k > 0 {
                self.replayed += node.steps.len() as u64;
            }
            self.transitions += 1;
            let mut steps = node.steps.clone();
            steps.push(c.step.clone());
            if let Some((name, msg)) = i.violation {
                self.found = Some((steps, name, msg));
                pool.free(hk);
                kids.for_each(|(_, (_, h))| pool.free(h));
                return;
            }
            let used = add(node.used, c.cost);
            let key = key_of(i.digest, used);
            let sleep = if self.cfg.hashing {
                match admit(&mut self.visited, key, depth + 1, sleep) {
                    Some(z) => z,
                    None => {
                        pool.free(hk);
                        continue;
                    }
                }
            } else {
                sleep
            };
            self.states += 1;
            self.dfs_in(pool, hk, i.choices, Node { steps, sleep, used });
        }
    }
}

/// A child computed by a breadth-first worker.
struct Kid {
    node: Node,
    key: u64,
    violation: Option<(String, String)>,
    replayed: u64,
}

fn children(model: &Model, cfg: &ExploreConfig, node: &Node) -> Vec<Kid> {
    let replay = |steps: &[Step]| {
        let mut sim = model.boot(false);
        for s in steps {
            s.apply(&mut sim);
        }
        sim
    };
    let mut parent = Some(replay(&node.steps));
    let cs = choices(parent.as_ref().expect("built"), node.used, cfg.faults);
    let kids = expand(node, cs, cfg.por);
    let last = kids.len().saturating_sub(1);
    let mut out = Vec::with_capacity(kids.len());
    for (i, (c, sleep)) in kids.into_iter().enumerate() {
        // The last child takes the parent's simulator; the others rebuild it.
        let (mut sim, replayed) = if i == last {
            (parent.take().expect("once"), 0)
        } else {
            (replay(&node.steps), node.steps.len() as u64)
        };
        c.step.apply(&mut sim);
        let used = add(node.used, c.cost);
        let mut steps = node.steps.clone();
        steps.push(c.step.clone());
        out.push(Kid {
            key: key(&sim, used),
            violation: model.violated(&sim),
            node: Node { steps, sleep, used },
            replayed: replayed + if i == 0 { node.steps.len() as u64 } else { 0 },
        });
    }
    out
}

/// Explores `model` within `cfg`'s bounds (see the [module docs](self)).
pub fn explore(model: &Model, cfg: &ExploreConfig) -> ExploreReport {
    let start = Instant::now();
    let mut search = Search {
        model,
        cfg,
        visited: Visited::default(),
        states: 1,
        transitions: 0,
        replayed: 0,
        depth_reached: 0,
        cut_by_depth: false,
        truncated: false,
        found: None,
        settled_at: None,
        settled: 0,
    };
    let root_sim = model.boot(false);
    let root = Node {
        steps: Vec::new(),
        sleep: Vec::new(),
        used: Budget::default(),
    };
    if let Some((name, msg)) = model.violated(&root_sim) {
        search.found = Some((Vec::new(), name, msg));
    } else {
        search
            .visited
            .insert(key(&root_sim, Budget::default()), (0, Vec::new()));
        match cfg.strategy {
            Strategy::Dfs if cfg.threads > 1 => {
                drop(root_sim);
                search.dfs_parallel(root)
            }
            Strategy::Dfs => search.dfs(root_sim, root),
            Strategy::Bfs => {
                drop(root_sim);
                search.bfs(root)
            }
        }
    }
    let violation = search.found.take().map(|(steps, invariant, message)| {
        counterexample(model, steps, search.settled_at, invariant, message)
    });
    ExploreReport {
        states: search.states,
        transitions: search.transitions,
        replayed_steps: search.replayed,
        depth_reached: search.depth_reached,
        elapsed: start.elapsed(),
        exhausted: !search.cut_by_depth && !search.truncated && violation.is_none(),
        truncated: search.truncated,
        violation,
        settled: search.settled,
    }
}

/// Replays a failing path with recording on: its trace and its story.
fn counterexample(
    model: &Model,
    steps: Vec<Step>,
    settled_at: Option<usize>,
    invariant: String,
    message: String,
) -> Counterexample {
    let mut sim = model.boot(true);
    let mut story = Vec::new();
    for (k, s) in steps.iter().enumerate() {
        if let Some(from) = settled_at.filter(|&from| k >= from) {
            // The settle in one line: its steps are the model's fair schedule, not choices.
            s.apply(&mut sim);
            if k + 1 == steps.len() {
                story.push(format!(
                    "t={:.3} s then {} events with no fault, each in the order of its own time ({} s of settling)",
                    sim.now().0 as f64 / 1e9,
                    steps.len() - from,
                    model.settle.as_secs_f64()
                ));
            }
            continue;
        }
        let line = match s {
            Step::Pick(seq) | Step::Drop(seq) => {
                let p = sim.pending().into_iter().find(|p| p.seq == *seq);
                let words = p.map_or_else(|| format!("event #{seq}"), |p| sim.describe(&p));
                match s {
                    Step::Drop(_) => format!("lost: {}", words.trim_end_matches(" delivered")),
                    _ => words,
                }
            }
            Step::Fault(f) => fault_words(f),
        };
        s.apply(&mut sim);
        story.push(format!("t={:.3} s {line}", sim.now().0 as f64 / 1e9));
    }
    story.push(format!("invariant `{invariant}` fails: {message}"));
    let trace = sim.trace().expect("recording");
    Counterexample {
        invariant,
        message,
        steps,
        trace,
        story,
        settle_from: settled_at,
    }
}

fn fault_words(f: &Fault) -> String {
    let list = |v: &[NodeId]| {
        v.iter()
            .map(|n| format!("n{}", n.0))
            .collect::<Vec<_>>()
            .join(",")
    };
    match f {
        Fault::Crash(n) => format!("n{} crashes", n.0),
        Fault::Restart(n) => format!("n{} restarts", n.0),
        Fault::Partition { a, b, .. } => format!("partition {} | {}", list(a), list(b)),
        Fault::Heal(_) | Fault::HealAll => "the partition heals".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(nodes: [Option<u32>; 2], id: u64) -> Asleep {
        Asleep {
            id,
            dep: Dep::Local { nodes, conn: false },
        }
    }

    #[test]
    fn independence_is_by_node_and_drops_depend_on_their_message() {
        let a = local([Some(0), None], 1);
        let b = local([Some(1), None], 2);
        let c = local([Some(1), Some(0)], 3);
        assert!(independent(&a, &b));
        assert!(!independent(&a, &c) && !independent(&b, &c));
        let d = Asleep {
            id: 99,
            dep: Dep::DropOf(2),
        };
        assert!(!independent(&d, &b) && independent(&d, &a));
        let g = Asleep {
            dep: Dep::Global,
            ..a
        };
        assert!(!independent(&g, &b));
    }

    #[test]
    fn a_revisit_with_a_smaller_sleep_set_is_explored_again() {
        let mut v = Visited::default();
        let z = |ids: &[u64]| {
            ids.iter()
                .map(|&i| local([None, None], i))
                .collect::<Vec<_>>()
        };
        assert!(admit(&mut v, 7, 3, z(&[1, 2])).is_some());
        assert!(
            admit(&mut v, 7, 3, z(&[1, 2, 3])).is_none(),
            "superset: pruned"
        );
        let again = admit(&mut v, 7, 4, z(&[2])).expect("smaller sleep set");
        assert_eq!(again.iter().map(|c| c.id).collect::<Vec<_>>(), vec![2]);
        assert!(
            admit(&mut v, 7, 2, z(&[2, 5])).is_some(),
            "shallower: again"
        );
    }
}
