//! A run's inputs as data ([`Plan`]), drawn from a run seed ([`Plan::generate`]), and the one
//! function that executes a plan on an [`App`] in the simulator ([`execute`]): the fuzzer,
//! `replay` and the minimiser all run it, so a plan rebuilt from a trace file reruns the
//! same execution, event for event.
//!
//! **What a plan holds.** The cluster (nodes, servers, membership, sync), the network
//! (latency range, loss until the run goes quiet, duplication), the simulator's seed (every choice the network model and
//! the nodes' random numbers make), the external events ([`External`]: partitions, symmetric
//! or one-way, each with its heal; crashes, each with its restart, keeping the durable store
//! or wiping it; pauses with their resume; clock skews; the app's workload operations), and
//! the minimiser's decisions about the internal schedule: the messages it dropped
//! ([`Plan::drops`], by [`MsgId`]), the messages it delayed ([`Plan::delays`]: how it
//! reorders deliveries) and the app timer firings it suppressed ([`Plan::skips`], by
//! [`TimerFiring`]). A decision about a message or firing that does not exist in the run is
//! never used (skipped, not forced).
//!
//! **How it runs.** Nodes are booted as `sim` boots them (the same wiring as a real node).
//! Safety invariants (the app's and [`super::builtin`]'s) are checked after every event; the
//! first failure halts the run. The run is *quiet* once every external event is over (the
//! last heal, restart, resume and workload operation, and for an app whose nodes update on
//! their own timers, [`App::self_driven`], the horizon its activity lasts:
//! [`Plan::active_until`]); such an app is then told to stop ([`App::on_quiet`]), since
//! convergence after quiescence needs the updates to end. From then on the eventual invariants
//! are checked every 100 ms of virtual time ([`SAMPLE`]). The run passes once all of them
//! have held without interruption for [`STABLE`] (or three sync intervals), or if they all
//! hold at the bound [`Plan::settle`] after quiescence; otherwise it fails at the bound with
//! the last message of one that does not hold.

use super::{builtin, sim::views, App, NodeMeta, WorkItem, WorkMsg, APP_ATOM};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rasp_membership::{Mode, Role};
use rasp_runtime::message::Payload;
use rasp_runtime::sim::{
    Cause, EventClass, Fault, Latency, LinkConfig, LinkModel, MsgId, NetConfig, NetModel, Observed,
    Schedule, Sim, SimConfig, Skew, TimerFiring, Trace, Violation,
};
use rasp_runtime::{AtomAddr, AtomId, Dest, Message, NodeId, Time};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// What the generator may draw ([`Plan::generate`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Space {
    /// Nodes.
    pub nodes: u32,
    /// Servers (the first ones).
    pub servers: u32,
    /// Membership protocol.
    pub membership: Mode,
    /// The replication flags' sync mode (`None`: the default).
    pub sync: Option<rasp_dataflow::replica::SyncMode>,
    /// Sync interval.
    pub sync_interval: Duration,
    /// Faults happen (start) within this time from the start, and workload too.
    pub horizon: Duration,
    /// At most this many faults per run.
    pub max_faults: u32,
    /// Whether a crash may wipe the node's store.
    pub wipe: bool,
    /// Largest loss probability.
    pub max_loss: f64,
    /// Largest duplication probability.
    pub max_duplicate: f64,
    /// The bound of the eventual properties after quiescence.
    pub settle: Duration,
}

/// One external event of a plan (paired with its end: a partition with its heal, a crash
/// with its restart, a pause with its resume), at `at` from the start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct External {
    /// When it starts.
    pub at: Duration,
    /// What.
    pub what: Ext,
}

/// The kinds of [`External`] events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Ext {
    /// Nodes `a` are cut from nodes `b` (only `a → b` if `one_way`) for `lasts`.
    Partition {
        /// One side.
        a: Vec<u32>,
        /// The other side.
        b: Vec<u32>,
        /// Only `a → b` is blocked.
        one_way: bool,
        /// How long.
        lasts: Duration,
    },
    /// `node` crashes and restarts after `down` (with an empty store if `wipe`).
    Crash {
        /// The node.
        node: u32,
        /// How long it stays down.
        down: Duration,
        /// Whether its durable store is lost.
        wipe: bool,
    },
    /// `node` is paused (SIGSTOP) for `lasts`.
    Pause {
        /// The node.
        node: u32,
        /// How long.
        lasts: Duration,
    },
    /// `node`'s clock is skewed from then on.
    Skew {
        /// The node.
        node: u32,
        /// Offset in milliseconds.
        offset_ms: i64,
        /// Drift in parts per million.
        drift_ppm: i32,
    },
    /// A workload operation of the app ([`App::workload`]).
    Work {
        /// The node.
        node: u32,
        /// The operation.
        op: String,
    },
}

impl External {
    /// When it is over (the heal, the restart, the resume; the start for the others).
    pub fn end(&self) -> Duration {
        match &self.what {
            Ext::Partition { lasts, .. } | Ext::Pause { lasts, .. } => self.at + *lasts,
            Ext::Crash { down, .. } => self.at + *down,
            Ext::Skew { .. } | Ext::Work { .. } => self.at,
        }
    }

    /// The nodes it names.
    pub fn nodes(&self) -> Vec<u32> {
        match &self.what {
            Ext::Partition { a, b, .. } => a.iter().chain(b).copied().collect(),
            Ext::Crash { node, .. }
            | Ext::Pause { node, .. }
            | Ext::Skew { node, .. }
            | Ext::Work { node, .. } => vec![*node],
        }
    }

    /// Whether it is a fault (not a workload operation).
    pub fn is_fault(&self) -> bool {
        !matches!(self.what, Ext::Work { .. })
    }

    /// One plain line.
    pub fn describe(&self) -> String {
        let t = secs(self.at);
        let ns = |v: &[u32]| {
            v.iter()
                .map(|n| format!("n{n}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        match &self.what {
            Ext::Partition {
                a,
                b,
                one_way,
                lasts,
            } => format!(
                "t={t} {} {} {} cut for {} s (heals at t={})",
                ns(a),
                if *one_way { "→" } else { "↔" },
                ns(b),
                secs(*lasts),
                secs(self.end())
            ),
            Ext::Crash { node, down, wipe } => format!(
                "t={t} n{node} crashes{}; restarts at t={}",
                if *wipe { ", its store wiped" } else { "" },
                secs(self.at + *down)
            ),
            Ext::Pause { node, lasts } => format!(
                "t={t} n{node} paused (SIGSTOP) until t={}",
                secs(self.at + *lasts)
            ),
            Ext::Skew {
                node,
                offset_ms,
                drift_ppm,
            } => format!("t={t} n{node} clock skewed by {offset_ms} ms, drift {drift_ppm} ppm"),
            Ext::Work { node, op } => format!("t={t} n{node} {op}"),
        }
    }
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
        .trim_end_matches(" s")
        .to_string()
}

/// A run's inputs (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The simulator's seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: u32,
    /// The first this many nodes are servers.
    pub servers: u32,
    /// Membership protocol (its name).
    pub membership: String,
    /// Sync mode (its name; `None`: the default).
    pub sync: Option<String>,
    /// Sync interval.
    pub sync_interval: Duration,
    /// Smallest one-way latency.
    pub min_latency: Duration,
    /// Largest one-way latency.
    pub max_latency: Duration,
    /// Loss probability.
    pub loss: f64,
    /// Duplication probability.
    pub duplicate: f64,
    /// External events, by start time.
    pub events: Vec<External>,
    /// Remote messages dropped at their sender (the minimiser's decisions): losses, so
    /// like every fault they act only before the run goes quiet ([`Plan::quiet`]); a
    /// listed message sent later is delivered.
    pub drops: Vec<MsgId>,
    /// Remote messages delivered later than the network model would (the minimiser's
    /// reorderings): each copy of `msg` arrives `by` later, at any time of the run; at most
    /// [`MAX_DELAY`] each.
    #[serde(default)]
    pub delays: Vec<Delay>,
    /// App timer firings suppressed (the minimiser's decisions): like drops, they act only
    /// before the run goes quiet; a suppressed periodic timer fires again a period later.
    #[serde(default)]
    pub skips: Vec<TimerFiring>,
    /// Until when drops and suppressed firings act ([`Plan::window`]); `None`: until the run
    /// goes quiet. The minimiser sets it to the failing event's time for a safety
    /// violation: a finite run that ends at the failure may lose anything before it.
    #[serde(default)]
    pub schedule_until: Option<Duration>,
    /// Bound of the eventual properties after quiescence.
    pub settle: Duration,
    /// Whether the loss ends when the run goes quiet, like every other fault (the eventual
    /// properties are "after the last fault heals"; a network that keeps losing a fifth of
    /// all messages never heals). Every generated plan sets it; trace files written before
    /// it existed read `false` and replay as they were recorded (loss for the whole run).
    #[serde(default)]
    pub loss_heals: bool,
    /// Remote messages delivered twice (the studio's hand-made duplications): one more copy
    /// arrives a millisecond after the first, at any time of the run.
    #[serde(default)]
    pub duplicates: Vec<MsgId>,
    /// The app's own activity lasts this long from the start ([`App::self_driven`]: its
    /// nodes update on their own timers until the run goes quiet), so the run goes quiet no
    /// earlier ([`Plan::quiet`]). Every generated plan of a self-driven app sets it to the
    /// space's horizon, as its workload would last; zero otherwise, and in trace files
    /// written before it existed.
    #[serde(default)]
    pub active_until: Duration,
}

/// A message delivered `by` later than the network model would deliver it ([`Plan::delays`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Delay {
    /// The message.
    pub msg: MsgId,
    /// How much later.
    pub by: Duration,
}

/// The largest delay a plan may add to one message ([`Plan::delays`]): a bounded delay is
/// an ordering, not a loss.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

impl Plan {
    /// The plan of run seed `seed` in `space`, with the app's workload.
    pub fn generate<A: App>(app: &A, space: &Space, seed: u64) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = space.nodes;
        let ms = |lo: u64, hi: u64, rng: &mut ChaCha8Rng| {
            Duration::from_millis(rng.random_range(lo..=hi.max(lo)))
        };
        let min_latency = ms(0, 5, &mut rng);
        let max_latency = min_latency + ms(1, 100, &mut rng);
        let loss = if rng.random_bool(0.5) {
            rng.random::<f64>() * space.max_loss
        } else {
            0.0
        };
        let duplicate = if rng.random_bool(0.3) {
            rng.random::<f64>() * space.max_duplicate
        } else {
            0.0
        };
        let horizon_ms = space.horizon.as_millis().max(1) as u64;
        let mut events = Vec::new();
        let faults = if n > 1 {
            rng.random_range(0..=space.max_faults)
        } else {
            0
        };
        for _ in 0..faults {
            let at = ms(0, horizon_ms, &mut rng);
            let lasts = ms(100, 5_000, &mut rng);
            let node = rng.random_range(0..n);
            let what = match rng.random_range(0..5u32) {
                0 | 1 => {
                    // A random split: each node on side a or b, both non-empty.
                    let mut a = Vec::new();
                    let mut b = Vec::new();
                    for i in 0..n {
                        if rng.random_bool(0.5) {
                            a.push(i)
                        } else {
                            b.push(i)
                        }
                    }
                    if a.is_empty() {
                        a.push(b.remove(0));
                    } else if b.is_empty() {
                        b.push(a.remove(0));
                    }
                    Ext::Partition {
                        a,
                        b,
                        one_way: rng.random_bool(0.3),
                        lasts,
                    }
                }
                2 => Ext::Crash {
                    node,
                    down: lasts,
                    wipe: space.wipe && rng.random_bool(0.3),
                },
                3 => Ext::Pause { node, lasts },
                _ => Ext::Skew {
                    node,
                    offset_ms: rng.random_range(-2_000..=2_000),
                    drift_ppm: rng.random_range(-500..=500),
                },
            };
            events.push(External { at, what });
        }
        let metas: Vec<NodeMeta> = (0..n)
            .map(|i| NodeMeta {
                index: Some(i),
                role: role(i, space.servers),
                membership: space.membership,
            })
            .collect();
        for w in app.workload(&metas, space.horizon, &mut rng) {
            if w.node < n {
                events.push(External {
                    at: w.at,
                    what: Ext::Work {
                        node: w.node,
                        op: w.op,
                    },
                });
            }
        }
        events.sort_by_key(|e| e.at);
        Plan {
            seed: rng.next_u64(),
            nodes: n,
            servers: space.servers,
            membership: space.membership.to_string(),
            sync: space.sync.map(|s| s.to_string()),
            sync_interval: space.sync_interval,
            min_latency,
            max_latency,
            loss,
            duplicate,
            events,
            drops: Vec::new(),
            delays: Vec::new(),
            skips: Vec::new(),
            duplicates: Vec::new(),
            schedule_until: None,
            settle: space.settle,
            loss_heals: true,
            active_until: if app.self_driven() {
                space.horizon
            } else {
                Duration::ZERO
            },
        }
    }

    /// When the run goes quiet: every external event is over, and the app's own activity
    /// ([`Plan::active_until`]).
    pub fn quiet(&self) -> Duration {
        self.events
            .iter()
            .map(External::end)
            .max()
            .unwrap_or(Duration::ZERO)
            .max(self.active_until)
    }

    /// Until when the schedule decisions that remove something (drops, suppressed firings)
    /// act: [`Plan::schedule_until`], or the quiet time, whichever is later.
    pub fn window(&self) -> Duration {
        self.schedule_until
            .map_or(self.quiet(), |t| t.max(self.quiet()))
    }

    /// Whether the run stays inside the triggers' "connected cluster" contract: no crash,
    /// partition or pause (see [`super::builtin`]).
    pub fn connected(&self) -> bool {
        self.events
            .iter()
            .all(|e| matches!(e.what, Ext::Skew { .. } | Ext::Work { .. }))
    }

    /// How many external inputs it has (events, and the nodes' starts).
    pub fn external_inputs(&self) -> usize {
        self.events.len() + self.nodes as usize
    }

    /// The membership mode.
    pub fn mode(&self) -> crate::Result<Mode> {
        Ok(self.membership.parse::<Mode>()?)
    }
}

/// The role of node `i` when the first `servers` are servers.
pub fn role(i: u32, servers: u32) -> Role {
    if i < servers {
        Role::Server
    } else {
        Role::Client
    }
}

/// What [`execute`] should collect.
#[derive(Clone, Copy, Debug, Default)]
pub struct Collect {
    /// Record the simulator trace.
    pub trace: bool,
    /// Coverage: the distinct (event class, node role, fault state) tuples.
    pub coverage: bool,
    /// The story (one line per meaningful event) and the delivered messages.
    pub story: bool,
    /// The full event log ([`super::log::ExecLog`], what the studio shows).
    pub log: bool,
}

/// One line of a run's story.
#[derive(Clone, Debug, PartialEq)]
pub struct StoryLine {
    /// Global time.
    pub at: Time,
    /// The line.
    pub text: String,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The invariant that failed, if one did.
    pub violation: Option<Violation>,
    /// Events processed.
    pub events: u64,
    /// The final trace hash.
    pub hash: u64,
    /// The recorded trace ([`Collect::trace`]).
    pub trace: Option<Trace>,
    /// Coverage keys ([`Collect::coverage`]).
    pub coverage: BTreeSet<u64>,
    /// The remote messages delivered, in delivery order, each once, with the time of their
    /// first delivery ([`Collect::story`]).
    pub delivered: Vec<(MsgId, Time)>,
    /// The story ([`Collect::story`]).
    pub story: Vec<StoryLine>,
    /// Every remote message sent, with its send time and [`Cause`] ([`Collect::story`]).
    pub sent: BTreeMap<MsgId, (Time, Cause)>,
    /// The app atom's timer firings that ran, in order, with their time ([`Collect::story`]).
    pub timers: Vec<(TimerFiring, Time)>,
    /// Events that are not in the story (timers, connection notices, local messages).
    pub unstoried: u64,
    /// Events processed before the run went quiet ([`Plan::quiet`]): the part of a run in
    /// which faults, the workload and the schedule's decisions act ([`Collect::story`]).
    pub events_before_quiet: u64,
    /// With a trace to verify against: the result of the per-event hash check.
    pub verified: Option<Result<u64, String>>,
    /// The event log ([`Collect::log`]).
    pub log: Option<super::log::ExecLog>,
}

#[derive(Default)]
struct Watch {
    drops: BTreeSet<MsgId>,
    delays: BTreeMap<MsgId, Duration>,
    skips: BTreeSet<TimerFiring>,
    duplicates: BTreeSet<MsgId>,
    /// The app's program, to render the contents of dataflow messages in the story.
    decoder: Option<rasp_dataflow::Program>,
    sent: BTreeMap<MsgId, (Time, Cause)>,
    timers: Vec<(TimerFiring, Time)>,
    /// Drops and suppressions act only before this time ([`Plan::window`]).
    quiet: Time,
    roles: Vec<Role>,
    collect: Collect,
    coverage: BTreeSet<u64>,
    delivered: Vec<(MsgId, Time)>,
    seen: BTreeSet<MsgId>,
    names: BTreeMap<u64, &'static str>,
    story: Vec<StoryLine>,
    storied: u64,
    /// When the run goes quiet ([`Plan::quiet`]), and the events processed before then.
    quiet_at: Time,
    before_quiet: u64,
    log: Option<super::log::LogBuilder>,
}

struct Hook(Rc<RefCell<Watch>>);

impl Schedule for Hook {
    fn keep(&mut self, id: &MsgId, at: Time) -> bool {
        let w = self.0.borrow();
        at >= w.quiet || !w.drops.contains(id)
    }
    fn delay(&mut self, id: &MsgId, _at: Time) -> Duration {
        let w = self.0.borrow();
        w.delays.get(id).copied().unwrap_or_default()
    }
    fn duplicate(&mut self, id: &MsgId, _at: Time) -> bool {
        self.0.borrow().duplicates.contains(id)
    }
    fn fire(&mut self, id: &TimerFiring, _atom: AtomId, at: Time) -> bool {
        let w = self.0.borrow();
        at >= w.quiet || !w.skips.contains(id)
    }
    fn observe(&mut self, ev: &Observed<'_>) {
        let mut w = self.0.borrow_mut();
        if w.log.is_some() {
            let w = &mut *w;
            let (names, decoder) = (&w.names, &w.decoder);
            if let Some(log) = &mut w.log {
                log.observe(ev, names, || match ev {
                    Observed::Deliver { id, payload, .. } => {
                        decoder.as_ref().and_then(|p| contents(p, id.kind, payload))
                    }
                    _ => None,
                });
            }
        }
        match ev {
            Observed::Event {
                class,
                node,
                faulty,
                at,
            } => {
                if w.collect.story && *at < w.quiet_at {
                    w.before_quiet += 1;
                }
                if w.collect.coverage {
                    let role = node
                        .and_then(|n| w.roles.get(n.0 as usize).copied())
                        .map_or(0u64, |r| 1 + u64::from(r == Role::Server));
                    let c = match class {
                        EventClass::Deliver(k) => k.0,
                        EventClass::Alarm => 1,
                        EventClass::ConnOpen => 2,
                        EventClass::Link => 3,
                        EventClass::PeerUp => 4,
                        EventClass::PeerDown => 5,
                        EventClass::Fault => 6,
                        EventClass::Boot => 7,
                    };
                    let key = c.rotate_left(7) ^ (role << 1) ^ u64::from(*faulty);
                    w.coverage.insert(key);
                }
            }
            Observed::Send {
                id,
                kind,
                at,
                kept,
                cause,
                ..
            } => {
                if let Some(k) = kind {
                    w.names.insert(id.kind.0, k);
                }
                if w.collect.story {
                    w.sent.insert(*id, (*at, *cause));
                }
                if w.collect.story && !kept {
                    let kind = w.names.get(&id.kind.0).copied().unwrap_or("message");
                    let text = format!(
                        "t={} n{} → n{} {kind} #{} dropped (lost by the schedule)",
                        secs(Duration::from_nanos(at.0)),
                        id.from.0,
                        id.to.0,
                        id.seq
                    );
                    w.story.push(StoryLine { at: *at, text });
                }
            }
            Observed::Deliver { id, at, payload } => {
                if w.collect.story {
                    if w.seen.insert(*id) {
                        w.delivered.push((*id, *at));
                    }
                    let kind = w.names.get(&id.kind.0).copied().unwrap_or("message");
                    let what = w
                        .decoder
                        .as_ref()
                        .and_then(|p| contents(p, id.kind, payload))
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default();
                    let late = w
                        .delays
                        .get(id)
                        .map(|d| format!(" ({} s late: reordered by the schedule)", secs(*d)))
                        .unwrap_or_default();
                    let text = format!(
                        "t={} n{} → n{} {kind} #{}{what} delivered{late}",
                        secs(Duration::from_nanos(at.0)),
                        id.from.0,
                        id.to.0,
                        id.seq
                    );
                    w.story.push(StoryLine { at: *at, text });
                    w.storied += 1;
                }
            }
            Observed::Timer {
                id,
                atom,
                at,
                fired,
            } => {
                if w.collect.story && *atom == APP_ATOM && *fired {
                    w.timers.push((*id, *at));
                    if *at < w.quiet {
                        let text = format!(
                            "t={} n{} app timer fires (its firing #{})",
                            secs(Duration::from_nanos(at.0)),
                            id.node.0,
                            id.nth
                        );
                        w.story.push(StoryLine { at: *at, text });
                        w.storied += 1;
                    }
                }
            }
            Observed::Inject { .. } => {
                w.storied += 1;
            }
            Observed::Fault { .. } => {
                w.storied += 1;
            }
        }
    }
}

/// At most this many variables are shown per dataflow message in a story line.
const SHOWN_VARS: usize = 4;
/// At most this many characters of one variable's rendering are shown.
const SHOWN_CHARS: usize = 48;

fn short(s: &str) -> String {
    if s.chars().count() <= SHOWN_CHARS {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(SHOWN_CHARS - 1).collect();
        t.push('…');
        t
    }
}

/// The contents of a dataflow message in a few words: a sync's variable ids with their
/// delta (or state) rendered as the variable's query value, a hello's held variables, an
/// ack's number. `None` for other kinds or an undecodable payload.
fn contents(
    program: &rasp_dataflow::Program,
    kind: rasp_runtime::KindId,
    payload: &Payload,
) -> Option<String> {
    use rasp_dataflow::replica::{Ack, Hello, Sync};
    let bytes = payload.to_bytes().ok()?;
    if kind == Sync::KIND_ID {
        let s: Sync = rasp_runtime::wire::decode(&bytes, "sync").ok()?;
        let mut parts: Vec<String> = s
            .vars
            .iter()
            .take(SHOWN_VARS)
            .map(|(id, b)| {
                let v = program
                    .decode(id, b)
                    .ok()
                    .and_then(|d| program.show_value(id, &*d).ok())
                    .unwrap_or_else(|| format!("{} bytes", b.len()));
                format!("{id}: {}", short(&v))
            })
            .collect();
        if s.vars.len() > SHOWN_VARS {
            parts.push(format!("+{} more", s.vars.len() - SHOWN_VARS));
        }
        let what = if s.state { "states" } else { "deltas" };
        return Some(format!("{what} {{{}}}", parts.join(", ")));
    }
    if kind == Hello::KIND_ID {
        let h: Hello = rasp_runtime::wire::decode(&bytes, "hello").ok()?;
        return Some(format!(
            "({}holds {} variables)",
            if h.reply { "reply; " } else { "" },
            h.held.len()
        ));
    }
    if kind == Ack::KIND_ID {
        let a: Ack = rasp_runtime::wire::decode(&bytes, "ack").ok()?;
        return Some(format!("(acknowledges #{})", a.seq));
    }
    None
}

/// The plan's links, losing messages until the run goes quiet and none after
/// ([`Plan::loss_heals`]). Both halves draw from the simulator's generator, so the run stays a
/// function of the plan.
struct HealingLoss {
    lossy: LinkModel,
    clean: LinkModel,
    healed: Rc<Cell<bool>>,
}

impl NetModel for HealingLoss {
    fn transmit(
        &mut self,
        from: NodeId,
        to: NodeId,
        rng: &mut dyn RngCore,
        out: &mut Vec<Duration>,
    ) {
        if self.healed.get() {
            self.clean.transmit(from, to, rng, out)
        } else {
            self.lossy.transmit(from, to, rng, out)
        }
    }

    fn latency(&mut self, from: NodeId, to: NodeId, rng: &mut dyn RngCore) -> Duration {
        self.lossy.latency(from, to, rng)
    }
}

/// How the event log names the notice a [`App::self_driven`] app's nodes get when the run
/// goes quiet ([`App::on_quiet`]).
pub const QUIET_LABEL: &str = "the run went quiet (the app stops its own updates)";

/// How often the eventual properties are checked once the run is quiet.
pub const SAMPLE: Duration = Duration::from_millis(100);

/// How long the eventual properties must hold without interruption (at least; three sync
/// intervals if that is longer) before a quiet run passes early: a property that holds
/// only until the next synchronisation spreads a lost update has not settled.
pub const STABLE: Duration = Duration::from_secs(3);

fn at(d: Duration) -> Time {
    Time(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Executes `plan` on `app` (see the module docs). With `verify`, every event's hash is
/// checked against that trace ([`Outcome::verified`]).
pub fn execute<A: App>(
    app: &A,
    plan: &Plan,
    collect: Collect,
    verify: Option<&Trace>,
) -> crate::Result<Outcome> {
    let mode = plan.mode()?;
    let replication = super::ReplicationArgs {
        sync: plan
            .sync
            .as_deref()
            .map(str::parse::<rasp_dataflow::replica::SyncMode>)
            .transpose()?,
        sync_interval_ms: Some(plan.sync_interval.as_millis().max(1) as u64),
    };
    let config = replication.config()?;
    if plan.min_latency > plan.max_latency {
        return Err("the plan's min latency is above its max".into());
    }
    if let Some(d) = plan.delays.iter().find(|d| d.by > MAX_DELAY) {
        return Err(format!(
            "the plan delays a message by {} s, more than the {} s allowed",
            secs(d.by),
            secs(MAX_DELAY)
        )
        .into());
    }
    let cfg = SimConfig {
        seed: plan.seed,
        seed_from_env: false,
        net: NetConfig {
            default: LinkConfig {
                latency: Latency::Uniform {
                    min: plan.min_latency,
                    max: plan.max_latency,
                },
                loss: plan.loss,
                duplicate: plan.duplicate,
                ..LinkConfig::default()
            },
            links: Vec::new(),
        },
        ..SimConfig::default()
    };
    // Loss that ends at quiescence (`Plan::loss_heals`): the network model switches to the
    // same links without loss when the driver reaches the quiet time.
    let healed = (plan.loss_heals && plan.loss > 0.0).then(|| Rc::new(Cell::new(false)));
    let mut sim = match &healed {
        Some(flag) => {
            cfg.validate().map_err(|e| e.to_string())?;
            let mut clean = cfg.net.clone();
            clean.default.loss = 0.0;
            let model = HealingLoss {
                lossy: LinkModel::new(&cfg.net),
                clean: LinkModel::new(&clean),
                healed: flag.clone(),
            };
            Sim::with_model(cfg, Box::new(model))
        }
        None => Sim::new(cfg),
    }
    .map_err(|e| e.to_string())?;
    sim.halt_on_violation(true);
    let roles: Vec<Role> = (0..plan.nodes).map(|i| role(i, plan.servers)).collect();
    let decoder = if collect.story || collect.log {
        let mut p = rasp_dataflow::Program::new(0);
        app.program(&mut p).ok().map(|_| p)
    } else {
        None
    };
    let watch = Rc::new(RefCell::new(Watch {
        drops: plan.drops.iter().copied().collect(),
        delays: plan.delays.iter().map(|d| (d.msg, d.by)).collect(),
        skips: plan.skips.iter().copied().collect(),
        duplicates: plan.duplicates.iter().copied().collect(),
        decoder,
        quiet: at(plan.window()),
        quiet_at: at(plan.quiet()),
        roles: roles.clone(),
        collect,
        log: collect.log.then(|| super::log::LogBuilder::new(plan)),
        ..Watch::default()
    }));
    sim.set_schedule(Box::new(Hook(watch.clone())));
    if collect.trace {
        sim.start_recording();
    }
    if let Some(t) = verify {
        sim.verify_against(t);
    }
    for (i, &role) in roles.iter().enumerate() {
        sim.add_node(super::sim::app_node_boot(
            app, i as u32, mode, role, &config,
        )?);
    }
    let mut eventual = Vec::new();
    let invariants =
        app.invariants()
            .into_iter()
            .chain(builtin::all(app, plan.settle, plan.connected()));
    for inv in invariants {
        if inv.within().is_some() {
            eventual.push(inv);
        } else {
            sim.add_invariant(inv.name(), 1, move |s| inv.check(&views::<A>(s)));
        }
    }
    let node = |n: u32| NodeId(n as u64);
    for (k, e) in plan.events.iter().enumerate() {
        if e.nodes().iter().any(|&n| n >= plan.nodes) {
            return Err(format!("event {k} names a node beyond the plan's {}", plan.nodes).into());
        }
        let start = at(e.at);
        let end = at(e.end());
        match &e.what {
            Ext::Partition { a, b, one_way, .. } => {
                let id = 4_000_000 + k as u32;
                sim.schedule(
                    start,
                    Fault::Partition {
                        id,
                        a: a.iter().map(|&n| node(n)).collect(),
                        b: b.iter().map(|&n| node(n)).collect(),
                        one_way: *one_way,
                    },
                );
                sim.schedule(end, Fault::Heal(id));
            }
            Ext::Crash { node: n, wipe, .. } => {
                sim.schedule(start, Fault::Crash(node(*n)));
                if *wipe {
                    sim.schedule(start, Fault::WipeStore(node(*n)));
                }
                sim.schedule(end, Fault::Restart(node(*n)));
            }
            Ext::Pause { node: n, .. } => {
                sim.schedule(start, Fault::Pause(node(*n)));
                sim.schedule(end, Fault::Resume(node(*n)));
            }
            Ext::Skew {
                node: n,
                offset_ms,
                drift_ppm,
            } => sim.schedule(
                start,
                Fault::Skew(
                    node(*n),
                    Skew {
                        offset_ns: offset_ms * 1_000_000,
                        drift_ppm: *drift_ppm,
                    },
                ),
            ),
            Ext::Work { node: n, op } => {
                let bytes =
                    rmp_serde::to_vec(&WorkMsg { op: op.clone() }).map_err(|e| e.to_string())?;
                sim.inject_raw(
                    start,
                    Dest::Atom(AtomAddr::new(node(*n), APP_ATOM)),
                    WorkMsg::KIND_ID,
                    rasp_runtime::message::Corr::None,
                    bytes,
                );
            }
        }
    }

    // An app whose nodes update on their own timers is told that the run went quiet
    // (`App::self_driven`): after every fault's end (pushed after them, so a restart or a
    // resume at the quiet time comes first), to every node.
    let quiet = at(plan.quiet());
    if app.self_driven() {
        if let Some(l) = watch.borrow_mut().log.as_mut() {
            for i in 0..plan.nodes {
                l.expect_input(quiet, i, QUIET_LABEL);
            }
        }
        super::tell_quiet(&mut sim, plan.nodes, quiet);
    }

    // Run to quiescence in steps, then check the eventual properties every SAMPLE.
    let bound = |inv: &super::Invariant| at(plan.quiet() + inv.within().unwrap_or(plan.settle));
    // Since when each eventual property holds without interruption.
    let mut since: Vec<Option<Time>> = vec![None; eventual.len()];
    let mut last: Vec<String> = vec![String::new(); eventual.len()];
    let stable = at(STABLE.max(plan.sync_interval * 3));
    loop {
        let mut next = Time(sim.now().0 + at(SAMPLE).0);
        let healing = healed.as_ref().filter(|h| !h.get());
        if healing.is_some() {
            next = next.min(quiet);
        }
        if collect.log {
            sim.run_until_each(next, |s| {
                if let Some(l) = watch.borrow_mut().log.as_mut() {
                    l.after_event::<A>(s);
                }
            });
        } else {
            sim.run_until(next);
        }
        if let Some(h) = healing.filter(|_| sim.now() >= quiet) {
            h.set(true);
        }
        if sim.violation().is_some() || verify_diverged(&sim, verify) {
            break;
        }
        if sim.now() < quiet {
            continue;
        }
        let all_up = (0..plan.nodes).all(|i| sim.is_up(node(i)));
        let v = views::<A>(&sim);
        let now = sim.now();
        for (k, inv) in eventual.iter().enumerate() {
            let r = if all_up {
                inv.check(&v)
            } else {
                Err("a node is down".into())
            };
            match r {
                Ok(()) => {
                    since[k].get_or_insert(now);
                }
                Err(m) => {
                    since[k] = None;
                    last[k] = m;
                }
            }
        }
        drop(v);
        let settled = since
            .iter()
            .all(|s| s.is_some_and(|t| now.0 - t.0 >= stable.0));
        if settled {
            break;
        }
        let late = (0..eventual.len()).find(|&k| since[k].is_none() && now >= bound(&eventual[k]));
        if let Some(k) = late {
            let msg = format!(
                "did not hold within {} s after the run went quiet at t={} s: {}",
                secs(eventual[k].within().unwrap_or(plan.settle)),
                secs(plan.quiet()),
                last[k]
            );
            sim.record_violation(eventual[k].name(), msg);
            break;
        }
        if eventual.iter().all(|inv| now >= bound(inv)) {
            break; // every property holds at its bound
        }
    }

    let verified = verify.map(|_| sim.replay_divergence().map_err(|e| e.to_string()));
    let trace = if collect.trace { sim.trace() } else { None };
    let _ = sim.take_schedule();
    let w = std::mem::take(&mut *watch.borrow_mut());
    let mut story = Vec::new();
    if collect.story {
        for e in &plan.events {
            story.push(StoryLine {
                at: at(e.at),
                text: e.describe(),
            });
        }
        story.extend(w.story);
        if let Some(v) = sim.violation() {
            story.push(StoryLine {
                at: v.time,
                text: format!(
                    "t={} invariant `{}` fails: {}",
                    secs(Duration::from_nanos(v.time.0)),
                    v.invariant,
                    v.message
                ),
            });
        }
        story.sort_by_key(|l| l.at);
    }
    Ok(Outcome {
        violation: sim.violation().cloned(),
        events: sim.events(),
        hash: sim.trace_hash(),
        trace,
        coverage: w.coverage,
        delivered: w.delivered,
        story,
        sent: w.sent,
        timers: w.timers,
        unstoried: sim.events().saturating_sub(w.storied),
        events_before_quiet: w.before_quiet,
        verified,
        log: w.log.map(|l| l.finish(plan, sim.violation().cloned())),
    })
}

fn verify_diverged(sim: &Sim, verify: Option<&Trace>) -> bool {
    verify.is_some()
        && matches!(sim.replay_divergence(), Err(rasp_runtime::Error::ReplayDiverged { event, .. }) if event <= sim.events())
}

/// The workload helper most apps want: `per_node` operations on each of `nodes`, at uniform
/// random times within `horizon`, named by `op(node, k)`.
pub fn spread_workload(
    nodes: &[NodeMeta],
    horizon: Duration,
    per_node: u32,
    rng: &mut dyn RngCore,
    op: impl Fn(u32, u32) -> String,
) -> Vec<WorkItem> {
    let mut out = Vec::new();
    let h = horizon.as_millis().max(1) as u64;
    for n in nodes {
        let Some(i) = n.index else { continue };
        for k in 0..per_node {
            out.push(WorkItem {
                at: Duration::from_millis(rng.next_u64() % h),
                node: i,
                op: op(i, k),
            });
        }
    }
    out.sort_by_key(|w| w.at);
    out
}

/// Variants of `op` with one of its decimal numbers made smaller (0, 1, half, one less;
/// each only if smaller), for [`App::shrink_op`]: e.g. `"adds 40 copies of 7"` gives
/// `"adds 0 copies of 7"`, `"adds 1 copies of 7"`, `"adds 20 copies of 7"`, …, `"adds 40
/// copies of 6"`. Numbers that are part of a word (`rovio3`, `x2y`) or too long for a `u64`
/// are left alone.
pub fn smaller_numbers(op: &str) -> Vec<String> {
    let b = op.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let word = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_');
        if word(start.checked_sub(1).and_then(|k| b.get(k))) || word(b.get(i)) {
            continue;
        }
        let Ok(n) = op[start..i].parse::<u64>() else {
            continue;
        };
        let mut seen = BTreeSet::new();
        for m in [0, 1, n / 2, n.saturating_sub(1)] {
            if m < n && seen.insert(m) {
                out.push(format!("{}{m}{}", &op[..start], &op[i..]));
            }
        }
    }
    out
}

/// Variants of `op` with fewer elements in its first bracketed, comma-separated list
/// (`"adds [a, b, c, d]"`), for [`App::shrink_op`]: the first half, the second half, then
/// (for lists of at most 16) each list with one element removed.
pub fn fewer_items(op: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (op.find('['), op.find(']')) else {
        return Vec::new();
    };
    if close < open {
        return Vec::new();
    }
    let inner = &op[open + 1..close];
    let items: Vec<&str> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.len() < 2 {
        return Vec::new();
    }
    let with = |xs: &[&str]| format!("{}[{}]{}", &op[..open], xs.join(", "), &op[close + 1..]);
    let half = items.len() / 2;
    let mut out = vec![with(&items[..half]), with(&items[half..])];
    if items.len() <= 16 {
        for k in 0..items.len() {
            let rest: Vec<&str> = items
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != k)
                .map(|(_, x)| *x)
                .collect();
            out.push(with(&rest));
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaller_numbers_shrinks_standalone_numbers_only() {
        assert_eq!(
            smaller_numbers("adds 40 to x3"),
            vec![
                "adds 0 to x3",
                "adds 1 to x3",
                "adds 20 to x3",
                "adds 39 to x3"
            ]
        );
        assert_eq!(
            smaller_numbers("adds 1 of 2"),
            vec!["adds 0 of 2", "adds 1 of 0", "adds 1 of 1"]
        );
        assert!(smaller_numbers("adds 0 to rovio3").is_empty());
        assert!(smaller_numbers("adds 99999999999999999999999").is_empty());
    }

    #[test]
    fn fewer_items_halves_then_removes_one() {
        assert_eq!(
            fewer_items("adds [a, b, c] now"),
            vec![
                "adds [a] now",
                "adds [b, c] now",
                "adds [b, c] now",
                "adds [a, c] now",
                "adds [a, b] now"
            ]
            .into_iter()
            .fold(Vec::<String>::new(), |mut v, x| {
                if v.last().map(String::as_str) != Some(x) {
                    v.push(x.to_string())
                }
                v
            })
        );
        assert!(fewer_items("adds [a]").is_empty());
        assert!(fewer_items("adds ] a [").is_empty());
    }
}
