//! The simulator's schedule hook: a per-message decision keyed by a stable message identity,
//! an observer of every event, and invariant violations that halt a run instead of panicking.
//!
//! These are what the tools built on the simulator need (the fuzzer, the minimiser; see the
//! `rasp::app` module docs): DEMi's internal-schedule minimisation (Scott et al.,
//! "Minimizing Faulty Executions of Distributed Systems", NSDI 2016, §4.2) removes message
//! deliveries one by one and re-runs the real program, so every remote message needs a name
//! that means the same in the next run: [`MsgId`] is (sender, receiver, kind, the number of
//! messages of that kind the sender sent that receiver before). A [`Schedule`] installed with
//! [`Sim::set_schedule`] decides at each remote send whether the message leaves (a dropped
//! message is skipped, not forced: a message that no longer exists in a candidate run is
//! simply never asked about), and sees each processed event ([`Observed`]), which the tools
//! use for coverage and for the story of a run.
//!
//! Two more decisions make DEMi's reordering and timer removal possible on rasp's inputs
//! (NSDI 2016 §4.2–4.3): [`Schedule::delay`] adds a chosen delay to a kept message (so it
//! arrives after deliveries it used to precede), and [`Schedule::fire`] suppresses a timer
//! firing, named by [`TimerFiring`] (node, incarnation, alarm, how many times that alarm fell
//! due before). A suppressed firing is not an event of the run: it is neither counted nor
//! hashed, its callback does not run, and a periodic timer is re-armed for its next period.
//! Every [`Observed::Send`] names its [`Cause`], the delivery or timer firing the sender was
//! running: the run's causal order, which lets a minimiser know that removing a delivery
//! also removes what it caused (such a message then never exists, and is skipped).
//!
//! Without a schedule the simulator does none of this work; with one, the trace hash of a run
//! whose schedule keeps every message, adds no delay and fires every timer is the same as
//! without it.

use super::{EvKind, Fault, Sim};
use crate::ids::{AtomId, NodeId, PeerEvent, Time};
use crate::message::{KindId, Payload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The identity of one remote message, stable across runs whose earlier behaviour is the
/// same (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MsgId {
    /// The sending node.
    pub from: NodeId,
    /// The receiving node.
    pub to: NodeId,
    /// The message kind.
    pub kind: KindId,
    /// How many messages of this kind `from` sent `to` before this one (from 0).
    pub seq: u64,
}

/// The identity of one timer firing, stable across runs whose earlier behaviour on that
/// node is the same: (node, incarnation, the host's alarm number, how many times this alarm
/// fell due before). A suppressed firing still counts in `nth`, so suppressing one firing
/// of a periodic timer leaves the names of its later firings unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimerFiring {
    /// The node.
    pub node: NodeId,
    /// Its incarnation (0 for the first boot, one more at every restart).
    pub boot: u32,
    /// The alarm number the node's host gave the timer.
    pub alarm: u64,
    /// How many times this alarm fell due before (from 0).
    pub nth: u64,
}

/// What a node was doing when it sent a message ([`Observed::Send`]): the message's causal
/// parent in the run (Lamport's happened-before, restricted to the one event that ran).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Cause {
    /// Handling the delivery of this remote message.
    Deliver(MsgId),
    /// Running this timer firing.
    Timer(TimerFiring),
    /// Anything else: a boot, an injected message, a local message, a connection notice.
    Other,
}

/// What a [`Schedule`] sees.
#[derive(Clone, Debug)]
pub enum Observed<'a> {
    /// A remote message was sent (`kept`: the schedule let it leave; `copies`: how many
    /// copies the network model made, 0 if lost, partitioned or dropped).
    Send {
        /// Its identity.
        id: MsgId,
        /// Its kind's name, when the sender gave a typed value.
        kind: Option<&'static str>,
        /// Global time.
        at: Time,
        /// Whether the schedule kept it.
        kept: bool,
        /// Copies in flight.
        copies: usize,
        /// The event the sender was running.
        cause: Cause,
    },
    /// A remote message arrived at a live node and was handed to it.
    Deliver {
        /// Its identity.
        id: MsgId,
        /// Global time.
        at: Time,
        /// Its content (MessagePack bytes, or the typed value in the typed wire mode).
        payload: &'a Payload,
    },
    /// A timer fell due on a live node (`fired`: the schedule let its callback run).
    Timer {
        /// Its identity.
        id: TimerFiring,
        /// The atom whose timer it is.
        atom: AtomId,
        /// Global time.
        at: Time,
        /// Whether the callback ran.
        fired: bool,
    },
    /// A message injected by the driver (from [`super::CLIENT`]) was handed to `node`.
    Inject {
        /// The node.
        node: NodeId,
        /// Its kind.
        kind: KindId,
        /// Global time.
        at: Time,
    },
    /// A fault was applied.
    Fault {
        /// The fault.
        fault: &'a Fault,
        /// Global time.
        at: Time,
    },
    /// Any processed event, for coverage: its class, the node it ran on (if any) and whether
    /// a fault was in force (a partition, a node down or paused).
    Event {
        /// The class of the event.
        class: EventClass,
        /// The node it concerns.
        node: Option<NodeId>,
        /// Whether a partition was active or a node was down or paused.
        faulty: bool,
        /// Global time.
        at: Time,
    },
}

/// The class of a processed event ([`Observed::Event`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventClass {
    /// A message delivery of this kind (local, remote or injected).
    Deliver(KindId),
    /// A timer.
    Alarm,
    /// A connection opened.
    ConnOpen,
    /// A connection check or close notice.
    Link,
    /// A peer up notice.
    PeerUp,
    /// A peer down notice.
    PeerDown,
    /// A fault.
    Fault,
    /// A node boot.
    Boot,
}

/// The schedule hook (see the module docs).
pub trait Schedule {
    /// Whether the remote message `id`, sent at global time `at`, leaves its sender
    /// (`false`: it is dropped, counted as `sim.dropped_by_schedule`).
    fn keep(&mut self, _id: &MsgId, _at: Time) -> bool {
        true
    }
    /// Extra delay for the kept remote message `id`, on top of the latency the network
    /// model draws (zero by default): how a minimiser reorders deliveries. Every copy of
    /// the message is delayed by the same amount.
    fn delay(&mut self, _id: &MsgId, _at: Time) -> Duration {
        Duration::ZERO
    }
    /// Whether the kept remote message `id` is delivered twice: one more copy arrives a
    /// millisecond after the first the network model made (false by default; how the studio
    /// duplicates a chosen message). A message the network model loses is not brought back.
    fn duplicate(&mut self, _id: &MsgId, _at: Time) -> bool {
        false
    }
    /// Whether the timer firing `id` of `atom`, due at global time `at`, runs its callback
    /// (`false`: suppressed; a periodic timer is re-armed for its next period, a one-shot
    /// timer is gone, counted as `sim.timers_suppressed`). Request timeouts are not asked
    /// about.
    fn fire(&mut self, _id: &TimerFiring, _atom: AtomId, _at: Time) -> bool {
        true
    }
    /// Sees what happens (in event order).
    fn observe(&mut self, _ev: &Observed<'_>) {}
}

/// The schedule state kept in the simulator's core.
pub(super) struct Hook {
    pub(super) schedule: Box<dyn Schedule>,
    /// Messages sent per (from, to, kind).
    pub(super) seqs: BTreeMap<(u32, u32, u64), u64>,
    /// Firings per (node, incarnation, alarm).
    pub(super) fires: BTreeMap<(u32, u32, u64), u64>,
    /// The event being processed (the cause of what it sends).
    pub(super) current: Cause,
}

/// An invariant that failed in a run with [`Sim::halt_on_violation`] set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The invariant's name.
    pub invariant: String,
    /// What its check said.
    pub message: String,
    /// The event after which it failed (1-based).
    pub event: u64,
    /// Global time of that event.
    pub time: Time,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invariant `{}` violated at event {} (t={:.3} s): {}",
            self.invariant,
            self.event,
            self.time.0 as f64 / 1e9,
            self.message
        )
    }
}

pub(super) fn class_of(kind: &EvKind) -> (EventClass, Option<NodeId>) {
    let n = |i: u32| Some(NodeId(i as u64));
    match kind {
        EvKind::Deliver { node, env, .. } => (EventClass::Deliver(env.kind), n(*node)),
        EvKind::Alarm { node, .. } => (EventClass::Alarm, n(*node)),
        EvKind::ConnOpen { a, .. } => (EventClass::ConnOpen, n(*a)),
        EvKind::LinkCheck { node, .. } | EvKind::CloseNote { node, .. } => {
            (EventClass::Link, n(*node))
        }
        EvKind::PeerNote { node, ev, .. } => match ev {
            PeerEvent::Up(_) => (EventClass::PeerUp, n(*node)),
            PeerEvent::Down(_) => (EventClass::PeerDown, n(*node)),
        },
        EvKind::Fault(_) => (EventClass::Fault, None),
        EvKind::Boot { node, .. } => (EventClass::Boot, n(*node)),
    }
}

impl Sim {
    /// Installs a schedule hook (see the module docs); call before any input.
    pub fn set_schedule(&mut self, schedule: Box<dyn Schedule>) {
        self.core.hook = Some(Hook {
            schedule,
            seqs: BTreeMap::new(),
            fires: BTreeMap::new(),
            current: Cause::Other,
        });
    }

    /// Takes the schedule hook back out.
    pub fn take_schedule(&mut self) -> Option<Box<dyn Schedule>> {
        self.core.hook.take().map(|h| h.schedule)
    }

    /// With `on`, an invariant that fails ([`Sim::add_invariant`]) stops the run (every
    /// `run_*` call returns at once, [`Sim::violation`] says what failed) instead of
    /// panicking: what a fuzzer running thousands of runs needs.
    pub fn halt_on_violation(&mut self, on: bool) {
        self.halt_on_violation = on;
    }

    /// The invariant violation that halted the run, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Records a violation found by the driver (e.g. a bounded liveness property checked
    /// between `run_*` calls) and halts the run as a failed invariant does.
    pub fn record_violation(&mut self, invariant: &str, message: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation {
                invariant: invariant.to_string(),
                message,
                event: self.core.events,
                time: self.core.now,
            });
        }
    }

    /// Whether a fault is in force: a partition, or a node down or paused.
    pub(super) fn faulty(&self) -> bool {
        !self.core.partitions.is_empty() || self.core.meta.iter().any(|m| !m.up || m.paused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimConfig;
    use crate::{boot, Atom, AtomAddr, AtomId, Ctx, Message};
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    #[derive(Clone, Debug, Serialize, Deserialize)]
    struct Note(u32);
    impl Message for Note {
        const KIND: &'static str = "test/schedule-note";
    }

    /// Node 0 sends five notes to node 1; node 1 keeps what it got.
    struct Peer {
        got: Vec<u32>,
    }
    impl Atom for Peer {
        fn init(&mut self, ctx: &mut Ctx<Self>) {
            ctx.on::<Note>(|me, _, _, n| me.got.push(n.0));
            if ctx.node() == NodeId(0) {
                ctx.store_put(b"k", b"v").unwrap();
                for i in 0..5 {
                    ctx.send(AtomAddr::new(NodeId(1), AtomId(0)), Note(i));
                }
            }
        }
    }

    #[derive(Default)]
    struct Log {
        drop: Option<u64>,
        sends: Vec<(u64, bool)>,
        delivered: Vec<u64>,
    }
    struct Rec(Rc<RefCell<Log>>);
    impl Schedule for Rec {
        fn keep(&mut self, id: &MsgId, _at: Time) -> bool {
            self.0.borrow().drop != Some(id.seq) || id.kind != Note::KIND_ID
        }
        fn observe(&mut self, ev: &Observed<'_>) {
            let mut l = self.0.borrow_mut();
            match ev {
                Observed::Send { id, kept, .. } if id.kind == Note::KIND_ID => {
                    l.sends.push((id.seq, *kept))
                }
                Observed::Deliver { id, .. } if id.kind == Note::KIND_ID => {
                    l.delivered.push(id.seq)
                }
                _ => {}
            }
        }
    }

    fn run(hook: Option<Rc<RefCell<Log>>>) -> (Sim, Vec<u32>) {
        let mut sim = Sim::new(SimConfig::seeded(7)).unwrap();
        if let Some(l) = hook {
            sim.set_schedule(Box::new(Rec(l)));
        }
        for _ in 0..2 {
            sim.add_node(boot(|b| {
                b.spawn(Peer { got: Vec::new() });
            }));
        }
        sim.run_for(Duration::from_secs(1));
        let got = sim
            .with_atom::<Peer, _>(AtomAddr::new(NodeId(1), AtomId(0)), |p| p.got.clone())
            .unwrap();
        (sim, got)
    }

    #[test]
    fn the_hook_drops_one_message_by_identity_and_changes_nothing_else() {
        let (plain, got) = run(None);
        assert_eq!(got.len(), 5);
        // Keeping everything: the same run, hash for hash.
        let log = Rc::new(RefCell::new(Log::default()));
        let (kept, got_kept) = run(Some(log.clone()));
        assert_eq!(kept.trace_hash(), plain.trace_hash());
        assert_eq!(got_kept, got);
        let l = log.borrow();
        assert_eq!(l.sends, (0..5).map(|s| (s, true)).collect::<Vec<_>>());
        assert_eq!(l.delivered.len(), 5);
        drop(l);
        // Dropping note #2 (per-link sequence 2): it never arrives, the others do.
        let log = Rc::new(RefCell::new(Log {
            drop: Some(2),
            ..Log::default()
        }));
        let (sim, got) = run(Some(log.clone()));
        let mut got = got;
        got.sort();
        assert_eq!(got, vec![0, 1, 3, 4]);
        assert_eq!(sim.sim_counter("sim.dropped_by_schedule"), 1);
        let l = log.borrow();
        assert!(l.sends.contains(&(2, false)) && !l.delivered.contains(&2));
    }

    /// Node 0 sends a note to node 1 every 10 ms, numbered by the firings that ran.
    struct Ticker {
        sent: u32,
        got: Vec<u32>,
    }
    impl Atom for Ticker {
        fn init(&mut self, ctx: &mut Ctx<Self>) {
            ctx.on::<Note>(|me, _, _, n| me.got.push(n.0));
            if ctx.node() == NodeId(0) {
                ctx.every(Duration::from_millis(10), |me: &mut Ticker, ctx| {
                    ctx.send(AtomAddr::new(NodeId(1), AtomId(0)), Note(me.sent));
                    me.sent += 1;
                });
            }
        }
    }

    #[derive(Default)]
    struct Bent {
        causes: Vec<(u64, Cause)>,
        timers: Vec<(u64, bool)>,
    }
    struct BentHook(Rc<RefCell<Bent>>);
    impl Schedule for BentHook {
        fn delay(&mut self, id: &MsgId, _at: Time) -> Duration {
            if id.seq == 0 {
                Duration::from_millis(25)
            } else {
                Duration::ZERO
            }
        }
        fn fire(&mut self, id: &TimerFiring, _atom: AtomId, _at: Time) -> bool {
            id.nth != 1
        }
        fn observe(&mut self, ev: &Observed<'_>) {
            let mut b = self.0.borrow_mut();
            match ev {
                Observed::Send { id, cause, .. } if id.kind == Note::KIND_ID => {
                    b.causes.push((id.seq, *cause))
                }
                Observed::Timer { id, fired, .. } => b.timers.push((id.nth, *fired)),
                _ => {}
            }
        }
    }

    #[test]
    fn the_hook_delays_a_message_suppresses_a_timer_firing_and_names_causes() {
        let log = Rc::new(RefCell::new(Bent::default()));
        let mut sim = Sim::new(SimConfig::seeded(5)).unwrap();
        sim.set_schedule(Box::new(BentHook(log.clone())));
        for _ in 0..2 {
            sim.add_node(boot(|b| {
                b.spawn(Ticker {
                    sent: 0,
                    got: Vec::new(),
                });
            }));
        }
        // Firings at 10, 20 (suppressed), 30, 40 ms; note 0 (sent at 10 ms) is delayed by
        // 25 ms, so it arrives after note 1 (sent at 30 ms).
        sim.run_until(Time(44_000_000));
        let got = sim
            .with_atom::<Ticker, _>(AtomAddr::new(NodeId(1), AtomId(0)), |t| t.got.clone())
            .unwrap();
        assert_eq!(
            got,
            vec![1, 0, 2],
            "note 0 overtaken, firing 1 sent nothing"
        );
        assert_eq!(sim.sim_counter("sim.timers_suppressed"), 1);
        let b = log.borrow();
        assert_eq!(b.timers, vec![(0, true), (1, false), (2, true), (3, true)]);
        assert_eq!(b.causes.len(), 3);
        for (seq, cause) in &b.causes {
            let Cause::Timer(t) = cause else {
                panic!("note {seq} caused by {cause:?}")
            };
            assert_eq!(t.node, NodeId(0));
        }
    }

    #[test]
    fn a_violation_halts_the_run_instead_of_panicking_and_a_wiped_store_is_empty() {
        let mut sim = Sim::new(SimConfig::seeded(3)).unwrap();
        sim.halt_on_violation(true);
        for _ in 0..2 {
            sim.add_node(boot(|b| {
                b.spawn(Peer { got: Vec::new() });
            }));
        }
        sim.add_invariant("at most two notes", 1, |s| {
            let n = s
                .with_atom::<Peer, _>(AtomAddr::new(NodeId(1), AtomId(0)), |p| p.got.len())
                .unwrap_or(0);
            if n <= 2 {
                Ok(())
            } else {
                Err(format!("{n} notes"))
            }
        });
        sim.run_for(Duration::from_secs(1));
        let v = sim
            .violation()
            .cloned()
            .expect("the third note violates it");
        assert_eq!(
            (v.invariant.as_str(), v.message.as_str()),
            ("at most two notes", "3 notes")
        );
        assert_eq!(v.event, sim.events(), "nothing ran after the failing event");
        sim.run_for(Duration::from_secs(1));
        assert_eq!(v.event, sim.events(), "a halted run stays halted");

        let mut sim = Sim::new(SimConfig::seeded(3)).unwrap();
        sim.add_node(boot(|b| {
            b.spawn(Peer { got: Vec::new() });
        }));
        sim.run_for(Duration::from_millis(10));
        assert!(!sim.store(NodeId(0)).is_empty());
        sim.crash(NodeId(0));
        sim.apply(Fault::WipeStore(NodeId(0)));
        assert!(sim.store(NodeId(0)).is_empty());
    }
}
