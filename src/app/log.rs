//! The log of one execution, event by event: what the studio shows (`<app> studio`).
//!
//! [`super::plan::execute`] with [`super::plan::Collect::log`] records, for every event the
//! simulator processes, what it was (a delivery, a timer, a workload input, a fault, a boot,
//! a local message, a connection or peer notice), on which node and when; every remote
//! message with its send and delivery events (dropped ones, duplicates); after each event,
//! the variables, the membership neighbours and the up state of the nodes it touched (only
//! their changes are kept), and how many variables differ between live replicas. From it,
//! [`ExecLog::state_at`] rebuilds the cluster as it was right after any event without running
//! the simulator again.
//!
//! The log watches the run through the simulator's schedule hook
//! ([`rasp_runtime::sim::Schedule::observe`]) and a callback after each event
//! ([`rasp_runtime::sim::Sim::run_until_each`]); it decides nothing, so a logged run is the
//! same run (same events, same trace hash) as an unlogged one.

use super::plan::{Ext, Plan};
use super::{AppAtom, APP_ATOM};
use crate::app::App;
use rasp_runtime::sim::{EventClass, MsgId, Observed, Sim, Violation};
use rasp_runtime::{AtomAddr, AtomId, NodeId, Time};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// At most this many events are logged (the rest of a longer run is not shown).
pub const MAX_LOGGED_EVENTS: usize = 2_000_000;

/// What an event was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    /// A remote message handed to its node.
    Deliver,
    /// A timer of an atom fired.
    Timer,
    /// A workload operation injected on a node.
    Input,
    /// A fault (crash, restart, partition, heal, pause, resume, skew, wipe).
    Fault,
    /// A node started.
    Boot,
    /// A message between atoms of one node.
    Local,
    /// A connection set-up, check or close notice.
    Conn,
    /// A peer up or down notice.
    Peer,
}

/// One processed event.
#[derive(Clone, Debug)]
pub struct LogEvent {
    /// Its index in the run (from 1, the simulator's event counter).
    pub i: u64,
    /// Global time.
    pub t: Time,
    /// The node it ran on (`None` for partitions and heals).
    pub node: Option<u32>,
    /// What it was.
    pub kind: LogKind,
    /// A short name: the message kind, the timer's atom, the fault, the operation.
    pub label: String,
    /// The decoded contents of a delivered dataflow message (empty otherwise).
    pub detail: String,
    /// The delivered message (index into [`ExecLog::messages`]).
    pub msg: Option<usize>,
}

/// One remote message.
#[derive(Clone, Debug)]
pub struct LogMsg {
    /// Its identity (stable across runs that agree up to its send).
    pub id: MsgId,
    /// Its kind's name.
    pub kind: String,
    /// The event that sent it.
    pub sent_i: u64,
    /// When.
    pub sent_t: Time,
    /// Its first delivery.
    pub delivered: Option<(u64, Time)>,
    /// Lost: dropped by the schedule, the network model or a partition.
    pub dropped: bool,
    /// Deliveries after the first.
    pub duplicates: u32,
    /// The decoded contents (dataflow messages), at its first delivery.
    pub detail: String,
}

impl LogMsg {
    /// `"0>1:dataflow/sync#3"`: sender, receiver, kind, sequence number.
    pub fn name(&self) -> String {
        msg_name(&self.id, &self.kind)
    }
}

/// The textual name of a message (see [`LogMsg::name`]).
pub fn msg_name(id: &MsgId, kind: &str) -> String {
    format!("{}>{}:{kind}#{}", id.from.0, id.to.0, id.seq)
}

/// A change of one node's observable state, after event `i`.
#[derive(Clone, Debug)]
pub struct Change<T> {
    /// After this event.
    pub i: u64,
    /// The node.
    pub node: u32,
    /// The new value.
    pub value: T,
}

/// A fault that lasts (a crash until its restart, a partition until its heal, a pause).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Band {
    /// `"crash"`, `"partition"` or `"pause"`.
    pub kind: &'static str,
    /// The nodes it concerns (a partition's both sides).
    pub nodes: Vec<u32>,
    /// A partition's one side.
    pub a: Vec<u32>,
    /// Its other side.
    pub b: Vec<u32>,
    /// The first event at or after its start.
    pub from_i: u64,
    /// Its start (seconds).
    pub from_t: f64,
    /// The first event at or after its end (`None`: after the log's end).
    pub to_i: Option<u64>,
    /// Its end (seconds).
    pub to_t: f64,
    /// In words.
    pub label: String,
}

/// The log of one execution (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct ExecLog {
    /// Every event, in order (`events[k].i == k + 1`).
    pub events: Vec<LogEvent>,
    /// Every remote message, in send order.
    pub messages: Vec<LogMsg>,
    /// Message index by identity.
    pub by_id: BTreeMap<MsgId, usize>,
    /// Variable changes: (after event, node, variable, value; `None` when the node lost it).
    pub vars: Vec<(u64, u32, String, Option<String>)>,
    /// Membership neighbour changes.
    pub neighbours: Vec<Change<Vec<u32>>>,
    /// Up/down changes.
    pub up: Vec<Change<bool>>,
    /// (after event, time, variables that differ between live replicas), at each change.
    pub divergence: Vec<(u64, Time, u32)>,
    /// Faults that last.
    pub bands: Vec<Band>,
    /// The invariant that failed, if one did.
    pub violation: Option<Violation>,
    /// The log stopped at [`MAX_LOGGED_EVENTS`].
    pub truncated: bool,
    /// Nodes in the run.
    pub nodes: u32,
}

/// The cluster right after one event ([`ExecLog::state_at`]).
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    /// Per node: up, variables, neighbours.
    pub nodes: Vec<NodeState>,
    /// Variables whose values differ between live nodes that hold them.
    pub diverged: Vec<String>,
    /// Messages sent at or before the event and not yet delivered or lost.
    pub in_flight: Vec<usize>,
}

/// One node in a [`ClusterState`].
#[derive(Clone, Debug, Default)]
pub struct NodeState {
    /// Up (started and not crashed).
    pub up: bool,
    /// Variable id → value as the program renders it.
    pub vars: BTreeMap<String, String>,
    /// Membership neighbours.
    pub neighbours: Vec<u32>,
}

impl ExecLog {
    /// The cluster right after event `at` (0: before the first event).
    pub fn state_at(&self, at: u64) -> ClusterState {
        let n = self.nodes as usize;
        let mut nodes = vec![NodeState::default(); n];
        for c in self.up.iter().take_while(|c| c.i <= at) {
            if let Some(s) = nodes.get_mut(c.node as usize) {
                s.up = c.value;
            }
        }
        for c in self.neighbours.iter().take_while(|c| c.i <= at) {
            if let Some(s) = nodes.get_mut(c.node as usize) {
                s.neighbours = c.value.clone();
            }
        }
        for (_, node, var, value) in self.vars.iter().take_while(|c| c.0 <= at) {
            if let Some(s) = nodes.get_mut(*node as usize) {
                match value {
                    Some(v) => s.vars.insert(var.clone(), v.clone()),
                    None => s.vars.remove(var),
                };
            }
        }
        let diverged = diverged(&nodes);
        let in_flight = self
            .messages
            .iter()
            .enumerate()
            .take_while(|(_, m)| m.sent_i <= at)
            .filter(|(_, m)| !m.dropped && m.delivered.is_none_or(|(i, _)| i > at))
            .map(|(k, _)| k)
            .collect();
        ClusterState {
            nodes,
            diverged,
            in_flight,
        }
    }

    /// The first event at or after time `t` (the number of events + 1 if none).
    pub fn first_at(&self, t: Time) -> u64 {
        self.events.partition_point(|e| e.t < t) as u64 + 1
    }

    /// The name of message `k`.
    pub fn msg_name(&self, k: usize) -> String {
        self.messages[k].name()
    }

    /// The message named `name` ([`LogMsg::name`]).
    pub fn find_msg(&self, name: &str) -> Option<&LogMsg> {
        self.messages.iter().find(|m| m.name() == name)
    }
}

/// Variables whose values differ between live nodes that hold them.
fn diverged(nodes: &[NodeState]) -> Vec<String> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out: BTreeSet<String> = BTreeSet::new();
    for s in nodes.iter().filter(|s| s.up) {
        for (var, v) in &s.vars {
            match seen.get(var.as_str()) {
                None => {
                    seen.insert(var, v);
                }
                Some(w) if w != v => {
                    out.insert(var.clone());
                }
                Some(_) => {}
            }
        }
    }
    out.into_iter().collect()
}

/// Records an [`ExecLog`] while [`super::plan::execute`] runs (see the module docs).
#[derive(Default)]
pub(crate) struct LogBuilder {
    log: ExecLog,
    /// A timer firing seen before its event: its atom.
    timer: Option<AtomId>,
    /// The plan's workload, in schedule order: (time, node, op).
    work: VecDeque<(Time, u32, String)>,
    /// The current state per node (to record changes only).
    now: Vec<NodeState>,
    diverged: u32,
    full: bool,
}

impl LogBuilder {
    /// A builder for `plan`'s run.
    pub(crate) fn new(plan: &Plan) -> Self {
        let mut work: Vec<(Time, u32, String)> = plan
            .events
            .iter()
            .filter_map(|e| match &e.what {
                Ext::Work { node, op } => Some((time(e.at), *node, op.clone())),
                _ => None,
            })
            .collect();
        work.sort_by_key(|w| w.0);
        LogBuilder {
            log: ExecLog {
                nodes: plan.nodes,
                ..ExecLog::default()
            },
            work: work.into(),
            now: vec![NodeState::default(); plan.nodes as usize],
            ..LogBuilder::default()
        }
    }

    /// Names the driver's input to `node` at `at` that is not a workload operation of the
    /// plan (the quiet notice of a self-driven app: [`super::App::on_quiet`]) `label`.
    pub(crate) fn expect_input(&mut self, at: Time, node: u32, label: &str) {
        self.work.push_back((at, node, label.to_string()));
    }

    fn last(&mut self) -> Option<&mut LogEvent> {
        if self.full {
            return None;
        }
        self.log.events.last_mut()
    }

    /// What the schedule hook saw (`names`: kind names by id; `render`: a delivered
    /// payload's contents in words).
    pub(crate) fn observe(
        &mut self,
        ev: &Observed<'_>,
        names: &BTreeMap<u64, &'static str>,
        render: impl FnOnce() -> Option<String>,
    ) {
        match ev {
            Observed::Timer {
                atom, fired: true, ..
            } => self.timer = Some(*atom),
            Observed::Timer { .. } => {}
            Observed::Event { class, node, .. } => {
                if self.log.events.len() >= MAX_LOGGED_EVENTS {
                    self.full = true;
                    self.log.truncated = true;
                    return;
                }
                let (kind, label) = match class {
                    EventClass::Deliver(k) => (
                        LogKind::Local,
                        names
                            .get(&k.0)
                            .map_or_else(|| "local message".to_string(), |n| n.to_string()),
                    ),
                    EventClass::Alarm => {
                        let who = match self.timer.take() {
                            Some(a) if a == APP_ATOM => "timer of the app",
                            Some(AtomId(1)) => "timer of membership",
                            Some(AtomId(0)) => "timer of node-info",
                            Some(_) => "timer of an atom",
                            None => "timer",
                        };
                        (LogKind::Timer, who.to_string())
                    }
                    EventClass::ConnOpen => (LogKind::Conn, "connection opened".into()),
                    EventClass::Link => (LogKind::Conn, "link check".into()),
                    EventClass::PeerUp => (LogKind::Peer, "peer up".into()),
                    EventClass::PeerDown => (LogKind::Peer, "peer down".into()),
                    EventClass::Fault => (LogKind::Fault, "fault".into()),
                    EventClass::Boot => (LogKind::Boot, "starts".into()),
                };
                let i = self.log.events.len() as u64 + 1;
                self.log.events.push(LogEvent {
                    i,
                    t: Time(0),
                    node: node.map(|n| n.0 as u32),
                    kind,
                    label,
                    detail: String::new(),
                    msg: None,
                });
            }
            Observed::Send {
                id,
                kind,
                at,
                kept,
                copies,
                ..
            } => {
                if self.full {
                    return;
                }
                let sent_i = self.log.events.len() as u64;
                let kind = kind
                    .or_else(|| names.get(&id.kind.0).copied())
                    .unwrap_or("message")
                    .to_string();
                self.log.by_id.insert(*id, self.log.messages.len());
                self.log.messages.push(LogMsg {
                    id: *id,
                    kind,
                    sent_i,
                    sent_t: *at,
                    delivered: None,
                    dropped: !kept || *copies == 0,
                    duplicates: 0,
                    detail: String::new(),
                });
            }
            Observed::Deliver { id, at, .. } => {
                let Some(&k) = self.log.by_id.get(id) else {
                    return;
                };
                let i = self.log.events.len() as u64;
                let m = &mut self.log.messages[k];
                if m.delivered.is_some() {
                    m.duplicates += 1;
                } else {
                    m.delivered = Some((i, *at));
                    m.detail = render().unwrap_or_default();
                }
                let (label, detail) = (m.kind.clone(), m.detail.clone());
                if let Some(e) = self.last() {
                    e.kind = LogKind::Deliver;
                    e.label = label;
                    e.detail = detail;
                    e.msg = Some(k);
                }
            }
            Observed::Inject { node, at, .. } => {
                let n = node.0 as u32;
                let op = self
                    .work
                    .iter()
                    .position(|(t, w, _)| *t == *at && *w == n)
                    .and_then(|p| self.work.remove(p))
                    .map_or_else(|| "input".to_string(), |(_, _, op)| op);
                if let Some(e) = self.last() {
                    e.kind = LogKind::Input;
                    e.label = op;
                }
            }
            Observed::Fault { fault, .. } => {
                let (label, node) = describe_fault(fault);
                if let Some(e) = self.last() {
                    e.kind = LogKind::Fault;
                    e.label = label;
                    if node.is_some() {
                        e.node = node;
                    }
                }
            }
        }
    }

    /// After each event: its time, and the changes of the nodes it touched.
    pub(crate) fn after_event<A: App>(&mut self, sim: &Sim) {
        let now = sim.now();
        let Some(e) = self.last() else { return };
        e.t = now;
        let (i, node, kind) = (e.i, e.node, e.kind);
        if let (LogKind::Local, Some(n)) = (kind, node) {
            // A workload operation whose node is down is processed (and lost) unobserved.
            if !sim.is_up(NodeId(n as u64)) {
                if let Some(p) = self.work.iter().position(|(t, w, _)| *t == now && *w == n) {
                    let (_, _, op) = self.work.remove(p).expect("found");
                    if let Some(e) = self.last() {
                        e.kind = LogKind::Input;
                        e.label = format!("{op} (lost: the node is down)");
                    }
                }
            }
        }
        let touched: Vec<u32> = match (kind, node) {
            (LogKind::Fault | LogKind::Boot, _) | (_, None) => (0..self.log.nodes).collect(),
            (_, Some(n)) => vec![n],
        };
        let mut changed = false;
        for n in touched {
            changed |= self.observe_node::<A>(sim, i, n);
        }
        if changed {
            let d = diverged(&self.now).len() as u32;
            if d != self.diverged || self.log.divergence.is_empty() {
                self.diverged = d;
                self.log.divergence.push((i, now, d));
            }
        }
    }

    /// Records node `n`'s changes after event `i`; whether anything changed.
    fn observe_node<A: App>(&mut self, sim: &Sim, i: u64, n: u32) -> bool {
        let Some(cur) = self.now.get_mut(n as usize) else {
            return false;
        };
        let id = NodeId(n as u64);
        let up = sim.is_up(id);
        let vars = sim
            .with_atom::<AppAtom<A>, _>(AtomAddr::new(id, APP_ATOM), |a| a.values())
            .unwrap_or_default();
        let neighbours: Vec<u32> = sim
            .host(id)
            .and_then(|h| h.atom::<rasp_membership::MembershipAtom>(AtomId(1)))
            .map(|m| m.neighbours().iter().map(|p| p.0 as u32).collect())
            .unwrap_or_default();
        let mut changed = false;
        if up != cur.up {
            cur.up = up;
            self.log.up.push(Change {
                i,
                node: n,
                value: up,
            });
            changed = true;
        }
        if neighbours != cur.neighbours {
            cur.neighbours = neighbours.clone();
            self.log.neighbours.push(Change {
                i,
                node: n,
                value: neighbours,
            });
        }
        if vars != cur.vars {
            for (var, v) in &vars {
                if cur.vars.get(var) != Some(v) {
                    self.log.vars.push((i, n, var.clone(), Some(v.clone())));
                }
            }
            for var in cur.vars.keys().filter(|k| !vars.contains_key(*k)) {
                self.log.vars.push((i, n, var.clone(), None));
            }
            cur.vars = vars;
            changed = true;
        }
        changed
    }

    /// The log, with the run's violation and the plan's lasting faults.
    pub(crate) fn finish(mut self, plan: &Plan, violation: Option<Violation>) -> ExecLog {
        let secs = |t: std::time::Duration| t.as_secs_f64();
        let mut bands = Vec::new();
        for e in &plan.events {
            let (kind, nodes, a, b, label) = match &e.what {
                Ext::Crash { node, wipe, .. } => (
                    "crash",
                    vec![*node],
                    Vec::new(),
                    Vec::new(),
                    format!("n{node} down{}", if *wipe { " (store wiped)" } else { "" }),
                ),
                Ext::Pause { node, .. } => (
                    "pause",
                    vec![*node],
                    Vec::new(),
                    Vec::new(),
                    format!("n{node} paused"),
                ),
                Ext::Partition { a, b, one_way, .. } => {
                    let mut nodes: Vec<u32> = a.iter().chain(b).copied().collect();
                    nodes.sort_unstable();
                    let arrow = if *one_way { "→" } else { "|" };
                    (
                        "partition",
                        nodes,
                        a.clone(),
                        b.clone(),
                        format!("partition {a:?} {arrow} {b:?}"),
                    )
                }
                _ => continue,
            };
            let to = self.log.first_at(time(e.end()));
            bands.push(Band {
                kind,
                nodes,
                a,
                b,
                from_i: self.log.first_at(time(e.at)),
                from_t: secs(e.at),
                to_i: (to <= self.log.events.len() as u64).then_some(to),
                to_t: secs(e.end()),
                label,
            });
        }
        self.log.bands = bands;
        self.log.violation = violation;
        self.log
    }
}

fn time(d: std::time::Duration) -> Time {
    Time(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A fault in words, and the node it concerns.
fn describe_fault(f: &rasp_runtime::sim::Fault) -> (String, Option<u32>) {
    use rasp_runtime::sim::Fault;
    let n = |id: &NodeId| id.0 as u32;
    let list = |v: &[NodeId]| {
        v.iter()
            .map(|x| format!("n{}", x.0))
            .collect::<Vec<_>>()
            .join(",")
    };
    match f {
        Fault::Crash(x) => ("crash".into(), Some(n(x))),
        Fault::Restart(x) => ("restart".into(), Some(n(x))),
        Fault::Partition { a, b, one_way, .. } => (
            format!(
                "partition {} {} {}",
                list(a),
                if *one_way { "→" } else { "|" },
                list(b)
            ),
            None,
        ),
        Fault::Heal(_) | Fault::HealAll => ("heal".into(), None),
        Fault::Skew(x, s) => (
            format!(
                "clock skew {} ms, {} ppm",
                s.offset_ns / 1_000_000,
                s.drift_ppm
            ),
            Some(n(x)),
        ),
        Fault::Pause(x) => ("pause".into(), Some(n(x))),
        Fault::Resume(x) => ("resume".into(), Some(n(x))),
        Fault::WipeStore(x) => ("store wiped".into(), Some(n(x))),
        #[allow(unreachable_patterns)]
        _ => ("fault".into(), None),
    }
}
