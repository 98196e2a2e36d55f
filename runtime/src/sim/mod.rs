//! The deterministic simulator: many nodes in one thread, a virtual clock, an event queue
//! and a network model that delays, loses, duplicates, reorders and partitions; nodes
//! crash and restart; clocks are skewed. One seed fixes every choice, so the same seed
//! gives a bit-identical run (checked by a trace hash folded over every event), and a
//! recorded [`Trace`] replays event by event.
//!
//! ```
//! use rasp_runtime::sim::{Sim, SimConfig};
//! use rasp_runtime::{boot, Atom, Ctx, Dest, NodeId, Time};
//! use std::time::Duration;
//!
//! struct Ticker { ticks: u32 }
//! impl Atom for Ticker {
//!     fn init(&mut self, ctx: &mut Ctx<Self>) {
//!         ctx.every(Duration::from_millis(10), |me, _| me.ticks += 1);
//!     }
//! }
//! let mut sim = Sim::new(SimConfig::default()).unwrap();
//! let n = sim.add_node(boot(|b| { b.spawn(Ticker { ticks: 0 }); }));
//! sim.run_until(Time::from_millis(95));
//! let addr = rasp_runtime::AtomAddr::new(n, rasp_runtime::AtomId(0));
//! assert_eq!(sim.with_atom::<Ticker, _>(addr, |t| t.ticks), Some(9));
//! ```
//!
//! ## Model and its limits
//!
//! - **Time**: a global virtual clock; each node reads it through its own skew
//!   (`local = global + offset + global * drift_ppm / 1e6`), and its timers run on local time.
//!   Events at the same instant run in scheduling order.
//! - **Local messages** are queued at the current instant and run after the current
//!   handler, in FIFO order; they never cross the network model.
//! - **Remote messages** pass the partition check at send time (packets already in flight
//!   when a partition starts still arrive), then the [`NetModel`] decides copies and delays.
//!   [`WireMode::Encode`] (default) encodes each remote payload with MessagePack and the
//!   receiver decodes it, exactly as on the network; [`WireMode::Typed`] moves the typed
//!   value and (optionally) only computes its encoded size for metrics.
//! - **Connections** (the `conn` module): sending to a node connects implicitly; a
//!   connection takes a round trip, never fails on loss (TCP retransmits) but fails if either
//!   direction is partitioned or the peer is down. Both ends get [`PeerEvent::Up`]. A crashed
//!   or partitioned peer yields [`PeerEvent::Down`] after `failure_detection`.
//! - **Crash**: the node's host (atoms, tables, timers, metrics counters aside) is dropped;
//!   its pending timers and every message in flight to it are dropped. Its [`MemStore`] is
//!   kept: a `store_put` that returned is durable (like a committed redb transaction),
//!   nothing else is. **Restart** boots a fresh host with the node's [`Boot`] closure.
//! - **Pause** ([`Fault::Pause`], [`Fault::Resume`]): SIGSTOP and SIGCONT. A paused node keeps
//!   its state and connections but runs nothing; what falls due for it (messages, connection
//!   notices, timers) is held, bounded, and runs at resume at once, its clock having jumped.
//! - **Lost disk** ([`Fault::WipeStore`]): a crashed node's store is erased, so it restarts
//!   as a node whose data directory was wiped.
//! - **External clients**: [`Sim::inject`] delivers a message from [`CLIENT`] (encoded, so
//!   it can be recorded); whatever atoms send to `CLIENT` lands in [`Sim::take_outbox`].
//! - **Controlled mode** ([`Sim::enter_control`]): nothing runs unless a driver picks it
//!   ([`Sim::pending`], [`Sim::pick`], [`Sim::discard`]); the bounded model checker
//!   ([`explore()`]) enumerates those choices; its model (per-node clocks, zero latency, what a
//!   step is) is in the [`explore`](mod@explore) module's docs.
//! - **Tools** (the `schedule` module's items, re-exported here): a [`Schedule`] hook decides per remote message
//!   ([`MsgId`]) whether it leaves and observes every event; [`Sim::halt_on_violation`]
//!   stops a run at a failed invariant instead of panicking ([`Violation`]); and
//!   [`Sim::verify_against`] checks a re-executed run against a recorded [`Trace`].

mod conn;
pub mod explore;
mod net;
mod queue;
mod schedule;
mod seed;
mod trace;

pub use explore::{
    explore, Budget, Counterexample, Event, ExploreConfig, ExploreReport, Model, Pending, Step,
    Strategy,
};

pub use net::{Latency, LinkConfig, LinkModel, LinkOverride, NetConfig, NetModel};
pub use queue::TimeQueue;
pub use schedule::{Cause, EventClass, MsgId, Observed, Schedule, TimerFiring, Violation};
pub use seed::{parse_seed, repro_command, seed_from_env, SeedGuard};
pub use trace::{replay, replay_with_model, Input, ReplayReport, Trace};

use crate::atom::Atom;
use crate::error::{Error, StoreError};
use crate::host::{AlarmId, Boot, Host, Platform};
use crate::ids::{dur_nanos, AtomAddr, AtomId, Contact, Dest, NodeId, PeerEvent, RequestId, Time};
use crate::message::{Corr, Envelope, KindId, Message, Payload};
use crate::metrics::MetricsSnapshot;
use crate::store::{KvPairs, MemStore};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use trace::{Recorder, Verifier};

/// The node id of the outside world: messages injected by the driver come from it, and
/// whatever atoms send to it is collected in [`Sim::take_outbox`].
pub const CLIENT: NodeId = NodeId(u64::MAX);

/// How remote payloads travel in the simulator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WireMode {
    /// Encode to MessagePack at the sender, decode at the receiver (faithful to the
    /// network runtime, catches serialization bugs).
    #[default]
    Encode,
    /// Move the typed value; compute the encoded size only if `measure_bytes` is set.
    Typed,
}

/// Simulator configuration (a plain struct; recorded in traces).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// The seed fixing every random choice.
    pub seed: u64,
    /// Let `RASP_SEED` override `seed` (see [`seed_from_env`]).
    pub seed_from_env: bool,
    /// The default network model's configuration.
    pub net: NetConfig,
    /// How remote payloads travel.
    pub wire: WireMode,
    /// In [`WireMode::Typed`], compute encoded sizes for the byte metrics.
    pub measure_bytes: bool,
    /// Delay before a crashed or partitioned peer is reported [`PeerEvent::Down`] (the
    /// connection model's one setting).
    pub failure_detection: Duration,
    /// Each node's clock offset is drawn uniformly in `[-max, max]`.
    pub max_clock_offset: Duration,
    /// Each node's clock drift is drawn uniformly in `[-max, max]` parts per million.
    pub max_clock_drift_ppm: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            seed_from_env: true,
            net: NetConfig::default(),
            wire: WireMode::Encode,
            measure_bytes: true,
            // Typical of TCP keepalive / ping-based detectors tuned for LANs.
            failure_detection: Duration::from_secs(1),
            max_clock_offset: Duration::ZERO,
            max_clock_drift_ppm: 0,
        }
    }
}

impl SimConfig {
    /// The default configuration with `seed`.
    pub fn seeded(seed: u64) -> Self {
        SimConfig {
            seed,
            ..Self::default()
        }
    }
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), Error> {
        self.net.validate()?;
        if self.max_clock_drift_ppm >= 1_000_000 {
            return Err(Error::Config("clock drift must be < 1e6 ppm".into()));
        }
        Ok(())
    }
}

/// A partition's id (chosen by the driver, used to heal it).
pub type PartitionId = u32;

/// Clock skew of a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skew {
    /// Offset in nanoseconds added to the global clock.
    pub offset_ns: i64,
    /// Rate error in parts per million (positive: the node's clock runs fast).
    pub drift_ppm: i32,
}

/// A fault or environment change, applied now ([`Sim::apply`]) or later
/// ([`Sim::schedule`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Fault {
    /// The node crashes: volatile state, timers and in-flight messages to it are lost.
    Crash(NodeId),
    /// A crashed node restarts: its boot closure runs on a fresh host.
    Restart(NodeId),
    /// Messages from `a` to `b` are dropped, and from `b` to `a` unless `one_way`.
    Partition {
        /// Id used to heal it.
        id: PartitionId,
        /// One side.
        a: Vec<NodeId>,
        /// The other side.
        b: Vec<NodeId>,
        /// Only `a -> b` is blocked.
        one_way: bool,
    },
    /// Removes the partition with this id.
    Heal(PartitionId),
    /// Removes every partition.
    HealAll,
    /// Sets a node's clock skew.
    Skew(NodeId, Skew),
    /// The node stops (SIGSTOP): it handles nothing, but keeps its state, its connections and
    /// its timers. Messages to it, connection notices and its due timers are held (as a
    /// kernel buffers a stopped process's sockets) and all run at [`Fault::Resume`], in the
    /// order they fell due; the node's clock has jumped meanwhile, so its timers fire late,
    /// all at once. At most [`PAUSE_HELD_MESSAGES`] messages are held; later ones are
    /// dropped (counter `sim.dropped_paused`), as a full socket buffer would.
    Pause(NodeId),
    /// A paused node continues (SIGCONT): what was held runs now.
    Resume(NodeId),
    /// The node's durable store is erased (a lost disk). Meant for a crashed node: at its
    /// [`Fault::Restart`] it boots with an empty store, as a node whose data directory was
    /// wiped. A live node keeps running on its volatile state.
    WipeStore(NodeId),
}

/// How many messages a paused node holds ([`Fault::Pause`]) before dropping more: the bound on
/// what a stopped process's socket buffers would keep.
pub const PAUSE_HELD_MESSAGES: usize = 1 << 16;

struct Partition {
    id: PartitionId,
    a: Vec<NodeId>,
    b: Vec<NodeId>,
    one_way: bool,
}

#[derive(Default)]
struct NodeMeta {
    up: bool,
    /// Bumped at every crash and restart; stamps alarms and messages in flight.
    inc: u32,
    skew: Skew,
    /// Open connections and connection attempts.
    conns: conn::Conns,
    /// Stopped by [`Fault::Pause`].
    paused: bool,
    /// Events for this node that fell due while it was paused, in order.
    held: Vec<EvKind>,
    /// How many of `held` are messages.
    held_messages: usize,
}

struct SimNode {
    host: Option<Host>,
    store: MemStore,
    boot: Boot,
    /// Metrics of past incarnations.
    past: Option<Box<MetricsSnapshot>>,
}

enum EvKind {
    Deliver {
        node: u32,
        inc: u32,
        bytes: u32,
        env: Envelope,
        /// [`MsgId::seq`] of a remote message while a schedule hook is installed, else
        /// `u64::MAX` (not hashed: the hook changes nothing else).
        link_seq: u64,
    },
    Alarm {
        node: u32,
        inc: u32,
        alarm: AlarmId,
    },
    ConnOpen {
        a: u32,
        b: u32,
        a_inc: u32,
    },
    LinkCheck {
        node: u32,
        peer: u32,
        conn: u64,
    },
    CloseNote {
        node: u32,
        peer: u32,
        conn: u64,
    },
    PeerNote {
        node: u32,
        inc: u32,
        ev: PeerEvent,
    },
    Fault(Fault),
    Boot {
        node: u32,
        inc: u32,
    },
}

struct Ev {
    at: u64,
    seq: u64,
    kind: EvKind,
}

/// The event queue: a [`TimeQueue`] of slab slots ordered by (time, sequence) over a slab
/// of events, so that the queue moves 24-byte keys, not whole events.
#[derive(Default)]
struct Queue {
    keys: TimeQueue<u32>,
    slab: Vec<Option<EvKind>>,
    free: Vec<u32>,
}

impl Queue {
    fn push(&mut self, at: u64, seq: u64, kind: EvKind) {
        let slot = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(kind);
                i
            }
            None => {
                self.slab.push(Some(kind));
                (self.slab.len() - 1) as u32
            }
        };
        self.keys.push(at, seq, slot);
    }
    fn peek_time(&self) -> Option<u64> {
        self.keys.peek().map(|(at, _)| at)
    }
    fn pop(&mut self) -> Option<Ev> {
        let (at, seq, slot) = self.keys.pop()?;
        let kind = self.slab[slot as usize]
            .take()
            .expect("rasp: queued event present");
        if self.keys.is_empty() && self.slab.len() > 4096 {
            // Drained after a burst (e.g. booting many nodes): give the memory back.
            self.keys.clear();
            self.slab = Vec::new();
            self.free = Vec::new();
        } else {
            self.free.push(slot);
        }
        Some(Ev { at, seq, kind })
    }
    fn len(&self) -> usize {
        self.keys.len()
    }
    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[inline]
fn mix(h: u64, x: u64) -> u64 {
    (h.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95)
}

fn ev_hash(ev: &Ev) -> u64 {
    kind_hash(mix(ev.at, ev.seq), &ev.kind)
}

/// Folds an event's content (everything but its time and sequence number) into `h`.
fn kind_hash(mut h: u64, kind: &EvKind) -> u64 {
    match kind {
        EvKind::Deliver { node, inc, env, .. } => {
            h = mix(mix(mix(h, 1), *node as u64), *inc as u64);
            h = mix(mix(h, env.from.node.0), env.from.atom.0 as u64);
            h = match env.to {
                Dest::Atom(a) => mix(mix(h, a.node.0), a.atom.0 as u64),
                Dest::Service(n, s) => mix(mix(h, n.0 ^ 0xff), s.0),
            };
            h = mix(h, env.kind.0);
            h = match env.corr {
                Corr::None => mix(h, 0),
                Corr::Request(r) => mix(mix(h, 1), r.0),
                Corr::Reply(r) => mix(mix(h, 2), r.0),
            };
            if let Payload::Wire(b) = &env.payload {
                for c in b.chunks(8) {
                    let mut w = [0u8; 8];
                    w[..c.len()].copy_from_slice(c);
                    h = mix(h, u64::from_le_bytes(w));
                }
            }
            h
        }
        EvKind::Alarm { node, inc, alarm } => {
            mix(mix(mix(mix(h, 2), *node as u64), *inc as u64), alarm.0)
        }
        EvKind::ConnOpen { a, b, a_inc } => {
            mix(mix(mix(mix(h, 3), *a as u64), *b as u64), *a_inc as u64)
        }
        EvKind::LinkCheck { node, peer, conn } => {
            mix(mix(mix(mix(h, 4), *node as u64), *peer as u64), *conn)
        }
        EvKind::CloseNote { node, peer, conn } => {
            mix(mix(mix(mix(h, 5), *node as u64), *peer as u64), *conn)
        }
        EvKind::PeerNote { node, inc, ev } => {
            let (t, p) = match ev {
                PeerEvent::Up(p) => (1, p.0),
                PeerEvent::Down(p) => (2, p.0),
            };
            mix(mix(mix(mix(mix(h, 6), *node as u64), *inc as u64), t), p)
        }
        EvKind::Boot { node, inc } => mix(mix(mix(h, 8), *node as u64), *inc as u64),
        EvKind::Fault(f) => {
            // Faults are rare: hash their encoding.
            let bytes = rmp_serde::to_vec(f).unwrap_or_default();
            bytes.iter().fold(mix(h, 7), |h, b| mix(h, *b as u64))
        }
    }
}

/// Everything but the nodes' hosts and stores: what a node's platform needs.
struct Core {
    cfg: SimConfig,
    seed: u64,
    now: Time,
    seq: u64,
    events: u64,
    hash: u64,
    queue: Queue,
    rng: ChaCha8Rng,
    net: Box<dyn NetModel>,
    meta: Vec<NodeMeta>,
    partitions: Vec<Partition>,
    counters: BTreeMap<&'static str, u64>,
    outbox: Vec<Envelope>,
    scratch: Vec<Duration>,
    /// The last connection id handed out (the `conn` module).
    next_conn: u64,
    /// Set in the explorer's controlled mode ([`Sim::enter_control`]).
    control: Option<explore::Control>,
    hook: Option<schedule::Hook>,
}

impl Core {
    #[inline]
    fn push(&mut self, at: Time, kind: EvKind) {
        self.seq += 1;
        self.queue.push(at.0, self.seq, kind);
    }

    fn count(&mut self, name: &'static str) {
        *self.counters.entry(name).or_insert(0) += 1;
    }

    #[allow(clippy::too_many_arguments)]
    fn observe_send(
        &mut self,
        from: NodeId,
        to: NodeId,
        kind: KindId,
        seq: u64,
        name: Option<&'static str>,
        kept: bool,
        copies: usize,
    ) {
        if let Some(h) = &mut self.hook {
            let id = MsgId {
                from,
                to,
                kind,
                seq,
            };
            let cause = h.current;
            h.schedule.observe(&Observed::Send {
                id,
                kind: name,
                at: self.now,
                kept,
                copies,
                cause,
            });
        }
    }

    fn index(&self, node: NodeId) -> Option<u32> {
        (node.0 < self.meta.len() as u64).then_some(node.0 as u32)
    }

    fn alive(&self, node: u32, inc: u32) -> bool {
        let m = &self.meta[node as usize];
        m.up && m.inc == inc
    }

    fn local_now(&self, node: u32) -> Time {
        if let Some(c) = &self.control {
            return c.clocks[node as usize];
        }
        let s = self.meta[node as usize].skew;
        if s == Skew::default() {
            return self.now;
        }
        let g = self.now.0 as i128;
        let t = g + s.offset_ns as i128 + g * s.drift_ppm as i128 / 1_000_000;
        Time(t.clamp(0, u64::MAX as i128) as u64)
    }

    /// Global delay corresponding to `d` of node-local time.
    fn to_global(&self, node: u32, d: Duration) -> Duration {
        let ppm = self.meta[node as usize].skew.drift_ppm;
        if ppm == 0 {
            return d;
        }
        let n = dur_nanos(d) as u128 * 1_000_000;
        let den = (1_000_000i64 + ppm as i64) as u128;
        Duration::from_nanos(u64::try_from(n.div_ceil(den)).unwrap_or(u64::MAX))
    }

    fn blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.partitions.iter().any(|p| {
            let (fa, tb) = (
                p.a.binary_search(&from).is_ok(),
                p.b.binary_search(&to).is_ok(),
            );
            (fa && tb)
                || (!p.one_way
                    && p.b.binary_search(&from).is_ok()
                    && p.a.binary_search(&to).is_ok())
        })
    }
}

/// The platform of one simulated node during one dispatch.
struct SimPlatform<'a> {
    core: &'a mut Core,
    store: &'a mut MemStore,
    node: u32,
}

impl Platform for SimPlatform<'_> {
    fn now(&self) -> Time {
        self.core.local_now(self.node)
    }
    fn rng(&mut self) -> &mut dyn RngCore {
        match &mut self.core.control {
            Some(c) => &mut c.rngs[self.node as usize],
            None => &mut self.core.rng,
        }
    }
    fn send_local(&mut self, env: Envelope) {
        let inc = self.core.meta[self.node as usize].inc;
        let now = self.core.now;
        self.core.push(
            now,
            EvKind::Deliver {
                node: self.node,
                inc,
                bytes: 0,
                env,
                link_seq: u64::MAX,
            },
        );
    }
    fn send_remote(&mut self, mut env: Envelope) -> usize {
        let core = &mut *self.core;
        let to = env.to.node();
        let kind_name = match (&core.hook, &env.payload) {
            (Some(_), Payload::Local(m)) => Some(m.kind_name()),
            _ => None,
        };
        let bytes = match core.cfg.wire {
            WireMode::Encode => {
                match std::mem::replace(&mut env.payload, Payload::Wire(Vec::new())).into_wire() {
                    Ok(p) => {
                        env.payload = p;
                        env.payload.encoded_len()
                    }
                    Err(e) => {
                        tracing::warn!(node = self.node, "dropping unencodable message: {e}");
                        core.count("sim.encode_errors");
                        return 0;
                    }
                }
            }
            WireMode::Typed if core.cfg.measure_bytes => env.payload.encoded_len(),
            WireMode::Typed => 0,
        };
        if to == CLIENT {
            core.outbox.push(env);
            return bytes;
        }
        let Some(ti) = core.index(to) else {
            core.count("sim.dropped_unknown_node");
            return bytes;
        };
        let from = NodeId(self.node as u64);
        core.ensure_connection(self.node, ti);
        let (mut link_seq, mut kept, mut extra) = (u64::MAX, true, Duration::ZERO);
        let mut twice = false;
        if let Some(h) = &mut core.hook {
            let n = h.seqs.entry((self.node, ti, env.kind.0)).or_insert(0);
            link_seq = *n;
            *n += 1;
            let id = MsgId {
                from,
                to,
                kind: env.kind,
                seq: link_seq,
            };
            kept = h.schedule.keep(&id, core.now);
            if kept {
                extra = h.schedule.delay(&id, core.now);
                twice = h.schedule.duplicate(&id, core.now);
            }
        }
        if core.blocked(from, to) {
            core.count("sim.dropped_partitioned");
            core.observe_send(from, to, env.kind, link_seq, kind_name, kept, 0);
            return bytes;
        }
        let mut out = std::mem::take(&mut core.scratch);
        if core.control.is_some() {
            out.push(Duration::ZERO); // the explorer chooses order and loss itself
        } else {
            // Drawn even for a message the schedule drops, so the random choices after it
            // are the same as in the run that kept it.
            core.net.transmit(from, to, &mut core.rng, &mut out);
        }
        if !kept {
            out.clear();
            core.count("sim.dropped_by_schedule");
        }
        if let (true, Some(&first)) = (twice, out.first()) {
            // One more copy, a millisecond after the first (see `Schedule::duplicate`).
            out.push(first + Duration::from_millis(1));
        }
        core.observe_send(from, to, env.kind, link_seq, kind_name, kept, out.len());
        match out.len() {
            0 => core.count("sim.lost"),
            1 => {}
            _ => core.count("sim.duplicated"),
        }
        let inc = core.meta[ti as usize].inc;
        let mut env = Some(env);
        let last = out.len().saturating_sub(1);
        for (i, d) in out.drain(..).enumerate() {
            let e = if i == last {
                env.take().expect("moved once")
            } else {
                env.as_ref().expect("present").clone()
            };
            let at = core.now + d + extra;
            core.push(
                at,
                EvKind::Deliver {
                    node: ti,
                    inc,
                    bytes: bytes as u32,
                    env: e,
                    link_seq,
                },
            );
        }
        core.scratch = out;
        bytes
    }
    fn set_alarm(&mut self, after: Duration, alarm: AlarmId) {
        let inc = self.core.meta[self.node as usize].inc;
        let at = self.core.now + self.core.to_global(self.node, after);
        self.core.push(
            at,
            EvKind::Alarm {
                node: self.node,
                inc,
                alarm,
            },
        );
    }
    fn store_get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store.get(key))
    }
    fn store_put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.store.put(key, value);
        Ok(())
    }
    fn store_delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.store.delete(key);
        Ok(())
    }
    fn store_scan_prefix(&mut self, prefix: &[u8]) -> Result<KvPairs, StoreError> {
        Ok(self.store.scan_prefix(prefix))
    }
    fn connect(&mut self, contact: &Contact) {
        if let Some(b) = self.core.index(contact.node) {
            self.core.ensure_connection(self.node, b);
        }
    }
    fn disconnect(&mut self, node: NodeId) {
        self.core.disconnect(self.node, node);
    }
    fn connected(&self) -> Vec<NodeId> {
        self.core.meta[self.node as usize].conns.peers()
    }
    fn contact(&self, node: NodeId) -> Option<Contact> {
        self.core.index(node).map(|_| Contact::bare(node))
    }
    fn my_contact(&self) -> Contact {
        Contact::bare(NodeId(self.node as u64))
    }
}

type InvariantFn = Box<dyn Fn(&Sim) -> Result<(), String>>;

struct Invariant {
    name: &'static str,
    every: u64,
    check: InvariantFn,
}

/// The simulator. See the [module docs](self).
pub struct Sim {
    core: Core,
    nodes: Vec<SimNode>,
    invariants: Vec<Invariant>,
    recorder: Option<Recorder>,
    verifier: Option<Verifier>,
    next_client_req: u64,
    halt_on_violation: bool,
    violation: Option<Violation>,
    _guard: SeedGuard,
}

impl Sim {
    /// A simulator with the default [`LinkModel`] built from `cfg.net`.
    pub fn new(cfg: SimConfig) -> Result<Sim, Error> {
        cfg.validate()?;
        let model = Box::new(LinkModel::new(&cfg.net));
        Self::with_model(cfg, model)
    }

    /// A simulator with a custom network model (`cfg.net` is then unused).
    pub fn with_model(cfg: SimConfig, net: Box<dyn NetModel>) -> Result<Sim, Error> {
        cfg.validate()?;
        let seed = if cfg.seed_from_env {
            seed_from_env(cfg.seed)
        } else {
            cfg.seed
        };
        Ok(Sim {
            core: Core {
                seed,
                now: Time::ZERO,
                seq: 0,
                events: 0,
                hash: mix(0x9e37_79b9_7f4a_7c15, seed),
                queue: Queue::default(),
                rng: ChaCha8Rng::seed_from_u64(seed),
                net,
                meta: Vec::new(),
                partitions: Vec::new(),
                counters: BTreeMap::new(),
                outbox: Vec::new(),
                scratch: Vec::new(),
                next_conn: 0,
                control: None,
                hook: None,
                cfg,
            },
            nodes: Vec::new(),
            invariants: Vec::new(),
            recorder: None,
            verifier: None,
            next_client_req: 0,
            halt_on_violation: false,
            violation: None,
            _guard: SeedGuard::new(seed),
        })
    }

    /// The effective seed.
    pub fn seed(&self) -> u64 {
        self.core.seed
    }
    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.core.cfg
    }
    /// The global virtual time.
    pub fn now(&self) -> Time {
        self.core.now
    }
    /// Number of events processed so far.
    pub fn events(&self) -> u64 {
        self.core.events
    }
    /// Number of events waiting.
    pub fn pending_events(&self) -> usize {
        self.core.queue.len()
    }
    /// The trace hash: the seed folded with every processed event. Equal hashes mean
    /// (with overwhelming probability) identical runs.
    pub fn trace_hash(&self) -> u64 {
        self.core.hash
    }
    /// The command that reproduces the current test with this seed ([`repro_command`]), or
    /// the one given to [`Sim::set_repro`].
    pub fn repro(&self) -> String {
        self._guard.repro()
    }
    /// Sets the command that reproduces this run (printed when an invariant fails or the run
    /// panics), for runs started from a command line rather than a test.
    pub fn set_repro(&mut self, cmd: impl Into<String>) {
        self._guard.set_repro(cmd);
    }
    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn record(&mut self, input: impl FnOnce() -> Input) {
        if let Some(r) = &mut self.recorder {
            r.inputs.push(input());
        }
    }

    /// Starts recording driver inputs and per-event hashes (call before any other input);
    /// see [`Sim::trace`] and [`Sim::save_trace`].
    pub fn start_recording(&mut self) {
        assert!(
            self.core.events == 0 && self.nodes.is_empty() && self.core.queue.is_empty(),
            "rasp: start_recording must precede every input"
        );
        self.recorder = Some(Recorder::default());
    }

    /// The trace recorded so far.
    pub fn trace(&self) -> Option<Trace> {
        self.recorder.as_ref().map(|r| Trace {
            version: trace::VERSION,
            seed: self.core.seed,
            config: self.core.cfg.clone(),
            inputs: r.inputs.clone(),
            hashes: r.hashes.clone(),
            final_hash: self.core.hash,
        })
    }

    /// Writes the recorded trace to a file (MessagePack).
    pub fn save_trace(&self, path: impl AsRef<std::path::Path>) -> Result<(), Error> {
        self.trace()
            .ok_or_else(|| Error::Config("recording was not started".into()))?
            .save(path)
    }

    // ---- nodes ----

    /// Adds a node running `boot`. Its id is its index (0, 1, ...). The boot closure runs
    /// as the next event at the current time (so nodes added together all exist before any
    /// of them boots). If the config allows clock skew, the node's skew is drawn now.
    pub fn add_node(&mut self, boot: Boot) -> NodeId {
        self.record(|| Input::AddNode);
        let i = u32::try_from(self.nodes.len()).expect("rasp: at most 2^32 simulated nodes");
        let id = NodeId(i as u64);
        let (max_off, max_ppm) = (
            dur_nanos(self.core.cfg.max_clock_offset) as i64,
            self.core.cfg.max_clock_drift_ppm as i32,
        );
        let skew = Skew {
            offset_ns: if max_off > 0 {
                self.core.rng.random_range(-max_off..=max_off)
            } else {
                0
            },
            drift_ppm: if max_ppm > 0 {
                self.core.rng.random_range(-max_ppm..=max_ppm)
            } else {
                0
            },
        };
        self.core.meta.push(NodeMeta {
            up: true,
            inc: 0,
            skew,
            ..NodeMeta::default()
        });
        let host = Host::new(id, self.core.rng.next_u64());
        self.nodes.push(SimNode {
            host: Some(host),
            store: MemStore::new(),
            boot,
            past: None,
        });
        self.core
            .push(self.core.now, EvKind::Boot { node: i, inc: 0 });
        id
    }

    /// Adds `n` nodes running the same boot closure; returns their ids.
    pub fn add_nodes(&mut self, n: usize, boot: &Boot) -> Vec<NodeId> {
        (0..n).map(|_| self.add_node(boot.clone())).collect()
    }

    fn boot_node(&mut self, i: u32) {
        let n = &mut self.nodes[i as usize];
        let boot = n.boot.clone();
        if let Some(host) = n.host.as_mut() {
            let mut p = SimPlatform {
                core: &mut self.core,
                store: &mut n.store,
                node: i,
            };
            host.boot(&mut p, &boot);
        }
    }

    fn dispatch(&mut self, i: u32, f: impl FnOnce(&mut Host, &mut dyn Platform)) {
        let n = &mut self.nodes[i as usize];
        if let Some(host) = n.host.as_mut() {
            let mut p = SimPlatform {
                core: &mut self.core,
                store: &mut n.store,
                node: i,
            };
            f(host, &mut p);
        }
    }

    fn peer_event(&mut self, i: u32, ev: PeerEvent) {
        if self.core.meta[i as usize].up {
            self.dispatch(i, |h, p| h.peer_event(p, ev));
        }
    }

    // ---- external inputs ----

    /// Delivers `msg` from [`CLIENT`] to `to` now (encoded, as it would arrive from outside).
    pub fn inject<M: Message>(&mut self, to: Dest, msg: M) {
        self.inject_at(self.core.now, to, msg)
    }

    /// Delivers `msg` from [`CLIENT`] to `to` at `at` (or now, if `at` is past).
    pub fn inject_at<M: Message>(&mut self, at: Time, to: Dest, msg: M) {
        let bytes = rmp_serde::to_vec(&msg).expect("rasp: injected message must encode");
        self.inject_raw(at, to, M::KIND_ID, Corr::None, bytes);
    }

    /// Sends `msg` from [`CLIENT`] as a request; the reply (if any) appears in
    /// [`Sim::take_outbox`] with `corr == Corr::Reply(id)`.
    pub fn inject_request<M: Message>(&mut self, to: Dest, msg: M) -> RequestId {
        self.next_client_req += 1;
        let id = RequestId(self.next_client_req);
        let bytes = rmp_serde::to_vec(&msg).expect("rasp: injected message must encode");
        self.inject_raw(self.core.now, to, M::KIND_ID, Corr::Request(id), bytes);
        id
    }

    /// Injects an already-encoded message (used by replay).
    pub fn inject_raw(&mut self, at: Time, to: Dest, kind: KindId, corr: Corr, bytes: Vec<u8>) {
        self.record(|| Input::Inject {
            at,
            to,
            kind,
            corr,
            bytes: bytes.clone(),
        });
        let at = at.max(self.core.now);
        let Some(i) = self.core.index(to.node()) else {
            self.core.count("sim.dropped_unknown_node");
            return;
        };
        let len = bytes.len() as u32;
        let env = Envelope {
            from: AtomAddr::new(CLIENT, AtomId(0)),
            to,
            kind,
            corr,
            payload: Payload::Wire(bytes),
        };
        let inc = self.core.meta[i as usize].inc;
        self.core.push(
            at,
            EvKind::Deliver {
                node: i,
                inc,
                bytes: len,
                env,
                link_seq: u64::MAX,
            },
        );
    }

    /// Takes what atoms sent to [`CLIENT`] so far.
    pub fn take_outbox(&mut self) -> Vec<Envelope> {
        std::mem::take(&mut self.core.outbox)
    }

    /// Schedules a fault at `at` (global time).
    pub fn schedule(&mut self, at: Time, fault: Fault) {
        self.record(|| Input::Schedule {
            at,
            fault: fault.clone(),
        });
        let at = at.max(self.core.now);
        self.core.push(at, EvKind::Fault(fault));
    }

    /// Applies a fault now.
    pub fn apply(&mut self, fault: Fault) {
        self.record(|| Input::Apply(fault.clone()));
        self.apply_fault(fault);
    }

    /// Crashes a node now.
    pub fn crash(&mut self, node: NodeId) {
        self.apply(Fault::Crash(node))
    }
    /// Restarts a crashed node now.
    pub fn restart(&mut self, node: NodeId) {
        self.apply(Fault::Restart(node))
    }
    /// Partitions `a` from `b` now (both directions unless `one_way`).
    pub fn partition(&mut self, id: PartitionId, a: &[NodeId], b: &[NodeId], one_way: bool) {
        self.apply(Fault::Partition {
            id,
            a: a.to_vec(),
            b: b.to_vec(),
            one_way,
        })
    }
    /// Heals a partition now.
    pub fn heal(&mut self, id: PartitionId) {
        self.apply(Fault::Heal(id))
    }
    /// Pauses a node now (SIGSTOP; see [`Fault::Pause`]).
    pub fn pause(&mut self, node: NodeId) {
        self.apply(Fault::Pause(node))
    }
    /// Resumes a paused node now (SIGCONT; see [`Fault::Resume`]).
    pub fn resume(&mut self, node: NodeId) {
        self.apply(Fault::Resume(node))
    }
    /// Whether a node is paused.
    pub fn is_paused(&self, node: NodeId) -> bool {
        self.core
            .index(node)
            .is_some_and(|i| self.core.meta[i as usize].paused)
    }

    fn apply_fault(&mut self, fault: Fault) {
        tracing::debug!(time = ?self.core.now, ?fault, "fault");
        if let Some(h) = &mut self.core.hook {
            h.schedule.observe(&Observed::Fault {
                fault: &fault,
                at: self.core.now,
            });
        }
        match fault {
            Fault::Crash(node) => {
                let Some(i) = self.core.index(node) else {
                    return;
                };
                let m = &mut self.core.meta[i as usize];
                if !m.up {
                    return;
                }
                m.up = false;
                m.inc += 1;
                m.paused = false;
                m.held.clear();
                m.held_messages = 0;
                let n = &mut self.nodes[i as usize];
                if let Some(host) = n.host.take() {
                    if !host.metrics().is_empty() {
                        n.past
                            .get_or_insert_with(Default::default)
                            .merge(&host.metrics_snapshot());
                    }
                }
                self.core.crash_connections(i);
                self.core.count("sim.crashes");
            }
            Fault::Restart(node) => {
                let Some(i) = self.core.index(node) else {
                    return;
                };
                let m = &mut self.core.meta[i as usize];
                if m.up {
                    return;
                }
                m.up = true;
                m.inc += 1;
                self.nodes[i as usize].host = Some(Host::new(node, self.core.rng.next_u64()));
                self.core.count("sim.restarts");
                self.boot_node(i);
            }
            Fault::Partition {
                id,
                mut a,
                mut b,
                one_way,
            } => {
                a.sort();
                a.dedup();
                b.sort();
                b.dedup();
                self.core.partitions.retain(|p| p.id != id);
                self.core.partitions.push(Partition { id, a, b, one_way });
                // Connections across the cut break after the detection delay (unless healed).
                self.core.check_links_across_partitions();
            }
            Fault::Heal(id) => self.core.partitions.retain(|p| p.id != id),
            Fault::HealAll => self.core.partitions.clear(),
            Fault::Skew(node, skew) => {
                if let Some(i) = self.core.index(node) {
                    self.core.meta[i as usize].skew = skew;
                }
            }
            Fault::Pause(node) => {
                if let Some(i) = self.core.index(node) {
                    let m = &mut self.core.meta[i as usize];
                    if m.up && !m.paused {
                        m.paused = true;
                        self.core.count("sim.pauses");
                    }
                }
            }
            Fault::WipeStore(node) => {
                if let Some(i) = self.core.index(node) {
                    self.nodes[i as usize].store = MemStore::new();
                    self.core.count("sim.store_wipes");
                }
            }
            Fault::Resume(node) => {
                if let Some(i) = self.core.index(node) {
                    let m = &mut self.core.meta[i as usize];
                    if !m.paused {
                        return;
                    }
                    m.paused = false;
                    m.held_messages = 0;
                    let held = std::mem::take(&mut m.held);
                    let now = self.core.now;
                    for ev in held {
                        self.core.push(now, ev);
                    }
                }
            }
        }
    }

    /// Whether `kind` is for a paused node; if so it is held (or dropped past the bound).
    fn hold_if_paused(&mut self, kind: EvKind) -> Option<EvKind> {
        let node = match &kind {
            EvKind::Deliver { node, .. }
            | EvKind::Alarm { node, .. }
            | EvKind::PeerNote { node, .. }
            | EvKind::Boot { node, .. } => *node,
            _ => return Some(kind),
        };
        let m = &mut self.core.meta[node as usize];
        if !m.paused {
            return Some(kind);
        }
        if matches!(kind, EvKind::Deliver { .. }) {
            if m.held_messages >= PAUSE_HELD_MESSAGES {
                self.core.count("sim.dropped_paused");
                return None;
            }
            m.held_messages += 1;
        }
        m.held.push(kind);
        None
    }

    // ---- running ----

    /// Processes one event; `false` if the queue is empty.
    pub fn step(&mut self) -> bool {
        self.record(|| Input::Step);
        self.step_inner()
    }

    fn halted(&self) -> bool {
        self.violation.is_some()
            || self
                .verifier
                .as_ref()
                .is_some_and(|v| v.divergence.is_some())
    }

    fn step_inner(&mut self) -> bool {
        let Some(ev) = self.core.queue.pop() else {
            return false;
        };
        if self.core.hook.is_some() && !self.timer_fires(&ev) {
            // Suppressed by the schedule: not an event of the run (not counted, not
            // hashed), but its time has come.
            self.core.now = Time(ev.at);
            return true;
        }
        self.core.now = Time(ev.at);
        self.core.events += 1;
        let h = mix(self.core.hash, ev_hash(&ev));
        self.core.hash = h;
        if let Some(r) = &mut self.recorder {
            r.hashes.push(h);
        }
        if let Some(v) = &mut self.verifier {
            v.check(self.core.events, self.core.now, h);
        }
        if self.core.hook.is_some() {
            let (class, node) = schedule::class_of(&ev.kind);
            let faulty = self.faulty();
            let at = self.core.now;
            if let Some(h) = &mut self.core.hook {
                h.schedule.observe(&Observed::Event {
                    class,
                    node,
                    faulty,
                    at,
                });
            }
        }
        self.process(ev.kind);
        if !self.invariants.is_empty() {
            self.check_invariants();
        }
        true
    }

    /// With a schedule hook: asks it whether a due timer of a live, running node fires
    /// (see [`Schedule::fire`]); a suppressed one is re-armed or forgotten here. Everything
    /// else fires.
    fn timer_fires(&mut self, ev: &Ev) -> bool {
        let EvKind::Alarm { node, inc, alarm } = ev.kind else {
            return true;
        };
        let m = &self.core.meta[node as usize];
        if !m.up || m.inc != inc || m.paused {
            return true; // dropped, or held until the resume (decided then)
        }
        let Some(atom) = self.nodes[node as usize]
            .host
            .as_ref()
            .and_then(|h| h.timer_atom(alarm))
        else {
            return true;
        };
        let at = Time(ev.at);
        let Some(h) = &mut self.core.hook else {
            return true;
        };
        let n = h.fires.entry((node, inc, alarm.0)).or_insert(0);
        let id = schedule::TimerFiring {
            node: NodeId(node as u64),
            boot: inc,
            alarm: alarm.0,
            nth: *n,
        };
        *n += 1;
        let fired = h.schedule.fire(&id, atom, at);
        h.schedule.observe(&Observed::Timer {
            id,
            atom,
            at,
            fired,
        });
        if fired {
            h.current = schedule::Cause::Timer(id);
            return true;
        }
        self.core.count("sim.timers_suppressed");
        let now = self.core.now;
        self.core.now = at; // the re-armed period counts from the due time
        self.dispatch(node, |h, p| h.skip_alarm(p, alarm));
        self.core.now = now;
        false
    }

    fn process(&mut self, kind: EvKind) {
        let Some(kind) = self.hold_if_paused(kind) else {
            return;
        };
        match kind {
            EvKind::Deliver {
                node,
                inc,
                bytes,
                env,
                link_seq,
            } => {
                // A driver's message (a client's request) goes to whichever incarnation of
                // the node is up when it arrives, as a real client's would reach a restarted
                // process; a node's messages die with the incarnation they were sent to.
                let live = self.core.alive(node, inc)
                    || (env.from.node == CLIENT && self.core.meta[node as usize].up);
                if live {
                    if let Some(h) = &mut self.core.hook {
                        let at = self.core.now;
                        if env.from.node == CLIENT {
                            h.schedule.observe(&Observed::Inject {
                                node: NodeId(node as u64),
                                kind: env.kind,
                                at,
                            });
                        } else if link_seq != u64::MAX {
                            let id = MsgId {
                                from: env.from.node,
                                to: NodeId(node as u64),
                                kind: env.kind,
                                seq: link_seq,
                            };
                            h.schedule.observe(&Observed::Deliver {
                                id,
                                at,
                                payload: &env.payload,
                            });
                            h.current = schedule::Cause::Deliver(id);
                        }
                    }
                    self.dispatch(node, |h, p| h.deliver(p, env, bytes as usize));
                    if let Some(h) = &mut self.core.hook {
                        h.current = schedule::Cause::Other;
                    }
                } else {
                    self.core.count("sim.dropped_node_down");
                }
            }
            EvKind::Alarm { node, inc, alarm } => {
                if self.core.alive(node, inc) {
                    self.dispatch(node, |h, p| h.fire_alarm(p, alarm));
                    if let Some(h) = &mut self.core.hook {
                        h.current = schedule::Cause::Other;
                    }
                }
            }
            EvKind::ConnOpen { a, b, a_inc } => self.conn_open(a, b, a_inc),
            EvKind::LinkCheck { node, peer, conn } => self.link_check(node, peer, conn),
            EvKind::CloseNote { node, peer, conn } => self.close_note(node, peer, conn),
            EvKind::PeerNote { node, inc, ev } => {
                if self.core.alive(node, inc) {
                    self.dispatch(node, |h, p| h.peer_event(p, ev));
                }
            }
            EvKind::Fault(f) => self.apply_fault(f),
            EvKind::Boot { node, inc } => {
                if self.core.alive(node, inc) {
                    self.boot_node(node);
                }
            }
        }
    }

    /// Runs every event up to and including `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Time) {
        self.record(|| Input::RunUntil(t));
        while let Some(at) = self.core.queue.peek_time() {
            if at > t.0 || self.halted() {
                break;
            }
            self.step_inner();
        }
        self.core.now = self.core.now.max(t);
    }

    /// [`Sim::run_until`], calling `each` after every event it processes (to watch a run
    /// event by event: the studio's log). The run is the same as `run_until(t)`'s: same
    /// events, same trace (the recorded input is the same `RunUntil(t)`).
    pub fn run_until_each(&mut self, t: Time, mut each: impl FnMut(&Sim)) {
        self.record(|| Input::RunUntil(t));
        while let Some(at) = self.core.queue.peek_time() {
            if at > t.0 || self.halted() {
                break;
            }
            let before = self.core.events;
            self.step_inner();
            if self.core.events != before {
                each(self);
            }
        }
        self.core.now = self.core.now.max(t);
    }

    /// Runs for `d` of global time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.core.now + d)
    }

    /// Runs until no event is left or `limit` is reached; whether the queue emptied.
    /// (Periodic timers keep a node busy forever: then this stops at `limit`.)
    pub fn run_until_idle(&mut self, limit: Time) -> bool {
        self.record(|| Input::RunUntilIdle(limit));
        while let Some(at) = self.core.queue.peek_time() {
            if at > limit.0 || self.halted() {
                return false;
            }
            self.step_inner();
        }
        true
    }

    // ---- inspection ----

    /// Reads the state of the atom at `addr` if it is live and of type `A`.
    pub fn with_atom<A: Atom, R>(&self, addr: AtomAddr, f: impl FnOnce(&A) -> R) -> Option<R> {
        let n = self.nodes.get(usize::try_from(addr.node.0).ok()?)?;
        n.host.as_ref()?.with_atom(addr.atom, f)
    }

    /// The host of a node (None if down or unknown).
    pub fn host(&self, node: NodeId) -> Option<&Host> {
        self.nodes.get(usize::try_from(node.0).ok()?)?.host.as_ref()
    }

    /// The durable store of a node.
    pub fn store(&self, node: NodeId) -> &MemStore {
        &self.nodes[node.0 as usize].store
    }

    /// The durable store of a node, to change it from outside, e.g. to damage a record of a
    /// crashed node before it restarts (the tests of unreadable records do).
    pub fn store_mut(&mut self, node: NodeId) -> &mut MemStore {
        &mut self.nodes[node.0 as usize].store
    }

    /// Whether a node is up.
    pub fn is_up(&self, node: NodeId) -> bool {
        self.core
            .index(node)
            .is_some_and(|i| self.core.meta[i as usize].up)
    }

    /// A node's local clock reading now.
    pub fn local_time(&self, node: NodeId) -> Time {
        self.core.local_now(node.0 as u32)
    }

    /// A node's open connections.
    pub fn connections(&self, node: NodeId) -> Vec<NodeId> {
        self.core.meta[node.0 as usize].conns.peers()
    }

    /// Metrics of one node, summed over its incarnations.
    pub fn node_metrics(&self, node: NodeId) -> MetricsSnapshot {
        let n = &self.nodes[node.0 as usize];
        let mut s = n.past.as_deref().cloned().unwrap_or_default();
        if let Some(h) = &n.host {
            s.merge(&h.metrics_snapshot());
        }
        s
    }

    /// Metrics summed over all nodes, plus the simulator's own counters (`sim.lost`,
    /// `sim.duplicated`, `sim.dropped_partitioned`, `sim.dropped_node_down`,
    /// `sim.connect_failed`, `sim.crashes`, `sim.restarts`, ...).
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut s = MetricsSnapshot::default();
        for i in 0..self.nodes.len() {
            s.merge(&self.node_metrics(NodeId(i as u64)));
        }
        for (k, v) in &self.core.counters {
            *s.counters.entry((*k).to_string()).or_insert(0) += v;
        }
        s
    }

    /// A simulator counter (e.g. `"sim.lost"`).
    pub fn sim_counter(&self, name: &str) -> u64 {
        self.core.counters.get(name).copied().unwrap_or(0)
    }

    /// Adds an invariant checked after every `every` events (1: after each). On failure
    /// the run panics with the invariant's message, the seed, the time, the event number
    /// and the command that reproduces it.
    pub fn add_invariant(
        &mut self,
        name: &'static str,
        every: u64,
        check: impl Fn(&Sim) -> Result<(), String> + 'static,
    ) {
        self.invariants.push(Invariant {
            name,
            every: every.max(1),
            check: Box::new(check),
        });
    }

    fn check_invariants(&mut self) {
        let invs = std::mem::take(&mut self.invariants);
        for inv in &invs {
            if self.violation.is_some() {
                break;
            }
            if self.core.events.is_multiple_of(inv.every) {
                if let Err(msg) = (inv.check)(self) {
                    if self.halt_on_violation {
                        self.record_violation(inv.name, msg);
                        break;
                    }
                    panic!(
                        "invariant `{}` violated at event {} (time {:?}, seed {}): {msg}\nreproduce: {}",
                        inv.name,
                        self.core.events,
                        self.core.now,
                        self.core.seed,
                        self.repro()
                    );
                }
            }
        }
        self.invariants = invs;
    }
}
