//! The node-local host: atom table, interrupt and futures tables, timers, service
//! registry, dispatch and per-node metrics. Shared by the simulator and the network
//! runtime, so both dispatch exactly alike.
//!
//! A runtime owns one [`Host`] per node and a [`Platform`] for it (clock, randomness,
//! transport, alarms, durable store, connections). It drives the host with four calls:
//!
//! - [`Host::boot`] at node start and after every restart (with a fresh `Host`);
//! - [`Host::deliver`] for every envelope addressed to this node: local ones that the
//!   platform queued in [`Platform::send_local`] and remote ones decoded with
//!   [`Envelope::decode`](crate::Envelope::decode);
//! - [`Host::fire_alarm`] when an alarm set with [`Platform::set_alarm`] is due (the host
//!   ignores alarms of cancelled timers and answered requests, so platforms never cancel);
//! - [`Host::peer_event`] when a transport connection goes up or down.
//!
//! The host holds `Rc`s and is not `Send`: keep each node's host on one thread (e.g. a
//! dedicated thread or a tokio `LocalSet`). Calls must not be re-entrant: the platform
//! queues, the runtime's loop dispatches.

use crate::atom::{
    Atom, ErasedAtom, ErasedContinuation, ErasedHandler, ErasedPeerHandler, Origin, Syscalls,
    TimerFn,
};
use crate::error::{Error, RequestError, StoreError};
use crate::ids::{
    AtomAddr, AtomId, Contact, Dest, NodeId, PeerEvent, RequestId, ServiceId, Time, TimerId,
};
use crate::message::{AnyMessage, Corr, Envelope, KindId, Payload};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::store::KvPairs;
use rand::RngCore;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// An alarm the host asked the platform for (a timer or a request timeout). Unique within
/// one incarnation of a node.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct AlarmId(pub u64);

/// What a runtime provides to a node's [`Host`]. Implemented once by the simulator and
/// once by the network runtime.
pub trait Platform {
    /// The node-local clock.
    fn now(&self) -> Time;
    /// The node's random source (seeded in the simulator).
    fn rng(&mut self) -> &mut dyn RngCore;
    /// Queues an envelope for an atom of this same node. It must be handed to
    /// [`Host::deliver`] later (never from inside this call), in FIFO order.
    fn send_local(&mut self, env: Envelope);
    /// Sends an envelope to another node (`env.to.node()`), connecting first if needed.
    /// Returns the encoded payload size in bytes for metrics (0 if not measured).
    /// Failures (unreachable, encoding) are the platform's to log and count; the sender
    /// learns through timeouts, as over a real network.
    fn send_remote(&mut self, env: Envelope) -> usize;
    /// Calls [`Host::fire_alarm`] with `alarm` after `after` of node-local time.
    fn set_alarm(&mut self, after: Duration, alarm: AlarmId);
    /// Durable store: read.
    fn store_get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Durable store: write; durable once it returns `Ok`.
    fn store_put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Durable store: delete; durable once it returns `Ok`.
    fn store_delete(&mut self, key: &[u8]) -> Result<(), StoreError>;
    /// Durable store: pairs with the prefix, in key order.
    fn store_scan_prefix(&mut self, prefix: &[u8]) -> Result<KvPairs, StoreError>;
    /// Opens a connection (no-op if open); report success with [`Host::peer_event`].
    fn connect(&mut self, contact: &Contact);
    /// Closes a connection; report it with [`Host::peer_event`].
    fn disconnect(&mut self, node: NodeId);
    /// Nodes with an open connection, sorted.
    fn connected(&self) -> Vec<NodeId>;
    /// The address book.
    fn contact(&self, node: NodeId) -> Option<Contact>;
    /// This node's contact.
    fn my_contact(&self) -> Contact;
}

/// Spawns a node's initial atoms. Called at node start and again, on a fresh host, after
/// every restart (atoms then recover from the durable store in their `init`).
pub type Boot = Arc<dyn Fn(&mut BootCtx<'_>) + Send + Sync>;

/// Wraps a closure as a [`Boot`].
pub fn boot(f: impl Fn(&mut BootCtx<'_>) + Send + Sync + 'static) -> Boot {
    Arc::new(f)
}

/// What a [`Boot`] closure can do.
pub struct BootCtx<'a> {
    host: &'a mut Host,
    platform: &'a mut dyn Platform,
}

impl BootCtx<'_> {
    /// The node being booted.
    pub fn node(&self) -> NodeId {
        self.host.node
    }
    /// The node-local clock.
    pub fn now(&self) -> Time {
        self.platform.now()
    }
    /// Spawns an atom (its `init` runs now). The first atom gets `AtomId(0)`, then 1, ...
    pub fn spawn<A: Atom>(&mut self, atom: A) -> AtomId {
        self.host.spawn_erased(self.platform, Box::new(atom))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Live,
    /// Its atom is taken out of the slot while one of its callbacks runs.
    Running,
    /// `stop` was called while running: dropped when the callback returns.
    Stopping,
    Dead,
}

struct Slot {
    atom: Option<Box<dyn ErasedAtom>>,
    handlers: Vec<(KindId, &'static str, ErasedHandler)>,
    peer: Vec<ErasedPeerHandler>,
    state: SlotState,
}

struct TimerEntry {
    atom: AtomId,
    f: TimerFn,
}

struct RequestEntry {
    atom: AtomId,
    resp_kind: (KindId, &'static str),
    k: ErasedContinuation,
}

/// The atoms of one node and their tables. See the [module docs](self).
pub struct Host {
    node: NodeId,
    atoms: Vec<Slot>,
    services: Vec<(ServiceId, AtomId)>,
    timers: BTreeMap<u64, TimerEntry>,
    requests: BTreeMap<u64, RequestEntry>,
    next_id: u64,
    metrics: Metrics,
}

impl Host {
    /// An empty host for `node`. `id_seed` starts the node's timer/request id counter:
    /// pass a random value at each (re)start so replies addressed to a previous
    /// incarnation do not match new requests.
    pub fn new(node: NodeId, id_seed: u64) -> Self {
        Host {
            node,
            atoms: Vec::new(),
            services: Vec::new(),
            timers: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_id: id_seed >> 1,
            metrics: Metrics::default(),
        }
    }

    /// The node.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Runs a boot closure.
    pub fn boot(&mut self, platform: &mut dyn Platform, boot: &Boot) {
        boot(&mut BootCtx {
            host: self,
            platform,
        });
    }

    /// Spawns an atom from outside any handler (drivers, tests).
    pub fn spawn<A: Atom>(&mut self, platform: &mut dyn Platform, atom: A) -> AtomId {
        self.spawn_erased(platform, Box::new(atom))
    }

    /// Spawns a boxed atom and runs its `init`.
    pub fn spawn_erased(
        &mut self,
        platform: &mut dyn Platform,
        atom: Box<dyn ErasedAtom>,
    ) -> AtomId {
        let id =
            AtomId(u32::try_from(self.atoms.len()).expect("rasp: more than 2^32 atoms on a node"));
        if self.atoms.capacity() == 0 {
            // Most nodes run a handful of atoms: do not let Vec's growth overshoot.
            self.atoms.reserve_exact(1);
        }
        self.atoms.push(Slot {
            atom: Some(atom),
            handlers: Vec::new(),
            peer: Vec::new(),
            state: SlotState::Live,
        });
        self.run_init(platform, id);
        id
    }

    fn run_init(&mut self, platform: &mut dyn Platform, id: AtomId) {
        let Some(mut atom) = self.take(id) else {
            return;
        };
        {
            let _span = tracing::debug_span!("atom", node = self.node.0, atom = id.0).entered();
            let mut cx = HostCtx {
                host: self,
                platform,
                me: id,
            };
            atom.init_erased(&mut cx);
        }
        self.put_back(id, atom);
    }

    fn take(&mut self, id: AtomId) -> Option<Box<dyn ErasedAtom>> {
        let slot = self.atoms.get_mut(id.0 as usize)?;
        if slot.state != SlotState::Live {
            return None;
        }
        slot.state = SlotState::Running;
        slot.atom.take()
    }

    fn put_back(&mut self, id: AtomId, atom: Box<dyn ErasedAtom>) {
        let slot = &mut self.atoms[id.0 as usize];
        if slot.state == SlotState::Running {
            slot.atom = Some(atom);
            slot.state = SlotState::Live;
        } else {
            slot.state = SlotState::Dead;
            drop(atom);
        }
    }

    /// Runs `f` on atom `id` (if live) with syscalls for that atom. Returns whether it ran.
    fn run_on(
        &mut self,
        platform: &mut dyn Platform,
        id: AtomId,
        f: impl FnOnce(&mut dyn Any, &mut dyn Syscalls),
    ) -> bool {
        let Some(mut atom) = self.take(id) else {
            return false;
        };
        {
            let _span = tracing::debug_span!("atom", node = self.node.0, atom = id.0).entered();
            let mut cx = HostCtx {
                host: self,
                platform,
                me: id,
            };
            f(atom.as_any_mut(), &mut cx);
        }
        self.put_back(id, atom);
        true
    }

    /// Dispatches an envelope addressed to this node. `wire_bytes` is the encoded payload
    /// size if it came from another node (for metrics), else 0.
    ///
    /// Plain messages and requests go to the target's interrupt table (by kind), replies to
    /// its futures table (by request id). Undeliverable envelopes are dropped and counted:
    /// `dropped_misrouted`, `dropped_no_service`, `dropped_no_atom`,
    /// `dropped_unknown_kind`, `dropped_decode_error`, `late_replies`.
    pub fn deliver(&mut self, platform: &mut dyn Platform, env: Envelope, wire_bytes: usize) {
        if env.to.node() != self.node {
            self.metrics.count("dropped_misrouted", "", 1);
            return;
        }
        let id = match env.to {
            Dest::Atom(a) => a.atom,
            Dest::Service(_, s) => match self.lookup_service(s) {
                Some(a) => a,
                None => {
                    tracing::debug!(node = self.node.0, service = ?s, "no atom serves this service");
                    self.metrics.count("dropped_no_service", "", 1);
                    return;
                }
            },
        };
        let live = matches!(self.atoms.get(id.0 as usize), Some(s) if s.state == SlotState::Live);
        if !live {
            self.metrics.count("dropped_no_atom", "", 1);
            return;
        }
        match env.corr {
            Corr::Reply(rid) => {
                let entry = match self.requests.get(&rid.0) {
                    Some(e) if e.atom == id => self.requests.remove(&rid.0),
                    _ => None,
                };
                let Some(entry) = entry else {
                    self.metrics.count("late_replies", "", 1);
                    return;
                };
                self.metrics
                    .received(entry.resp_kind.0, entry.resp_kind.1, wire_bytes);
                let payload = env.payload;
                self.run_on(platform, id, move |atom, sys| {
                    (entry.k)(atom, sys, Ok(payload))
                });
            }
            Corr::None | Corr::Request(_) => {
                let slot = &self.atoms[id.0 as usize];
                let Some((_, name, h)) = slot.handlers.iter().find(|(k, _, _)| *k == env.kind)
                else {
                    tracing::debug!(node = self.node.0, atom = id.0, kind = ?env.kind, "no handler for kind");
                    self.metrics.count("dropped_unknown_kind", "", 1);
                    return;
                };
                let (name, h) = (*name, h.clone());
                self.metrics.received(env.kind, name, wire_bytes);
                let origin = Origin {
                    from: env.from,
                    request: match env.corr {
                        Corr::Request(r) => Some(r),
                        _ => None,
                    },
                };
                let mut result = Ok(());
                self.run_on(platform, id, |atom, sys| {
                    result = h(atom, sys, &origin, env.payload)
                });
                if let Err(e) = result {
                    tracing::warn!(node = self.node.0, atom = id.0, kind = name, from = ?env.from, "dropping message: {e}");
                    self.metrics.count("dropped_decode_error", "", 1);
                }
            }
        }
    }

    /// Handles a due alarm: runs the timer's callback (re-arming a periodic one) or the
    /// request's continuation with [`RequestError::Timeout`]. Alarms of cancelled timers
    /// and answered requests are ignored.
    pub fn fire_alarm(&mut self, platform: &mut dyn Platform, alarm: AlarmId) {
        let key = alarm.0;
        if let Some(entry) = self.timers.get(&key) {
            let atom = entry.atom;
            match &entry.f {
                TimerFn::Every(period, f) => {
                    let (period, f) = (*period, f.clone());
                    self.run_on(platform, atom, |a, sys| f(a, sys));
                    // Re-arm unless the callback cancelled it or the atom stopped.
                    if self.timers.contains_key(&key) {
                        platform.set_alarm(period, alarm);
                    }
                }
                TimerFn::Once(_) => {
                    let Some(TimerEntry {
                        f: TimerFn::Once(f),
                        ..
                    }) = self.timers.remove(&key)
                    else {
                        unreachable!()
                    };
                    self.run_on(platform, atom, f);
                }
            }
        } else if let Some(entry) = self.requests.remove(&key) {
            self.metrics.count("request_timeouts", "", 1);
            self.run_on(platform, entry.atom, move |a, sys| {
                (entry.k)(a, sys, Err(RequestError::Timeout))
            });
        }
    }

    /// The atom whose timer `alarm` is (`None` for a request timeout, a cancelled timer or
    /// an unknown alarm): what a schedule hook that suppresses timer firings asks about.
    pub fn timer_atom(&self, alarm: AlarmId) -> Option<AtomId> {
        self.timers.get(&alarm.0).map(|t| t.atom)
    }

    /// Handles a due timer alarm *without* running its callback: a periodic timer is
    /// re-armed for its next period, a one-shot timer is forgotten (the firing was
    /// suppressed by the simulator's schedule hook). Anything else is left to
    /// [`Host::fire_alarm`].
    pub fn skip_alarm(&mut self, platform: &mut dyn Platform, alarm: AlarmId) {
        let key = alarm.0;
        match self.timers.get(&key).map(|t| &t.f) {
            Some(TimerFn::Every(period, _)) => {
                let period = *period;
                platform.set_alarm(period, alarm);
            }
            Some(TimerFn::Once(_)) => {
                self.timers.remove(&key);
            }
            None => {}
        }
    }

    /// Runs every atom's peer handlers (in atom id order) for a connection change.
    pub fn peer_event(&mut self, platform: &mut dyn Platform, ev: PeerEvent) {
        for i in 0..self.atoms.len() {
            if self.atoms[i].peer.is_empty() {
                continue;
            }
            let hs = self.atoms[i].peer.clone();
            let id = AtomId(i as u32);
            for h in hs {
                self.run_on(platform, id, |a, sys| h(a, sys, ev));
            }
        }
    }

    /// Stops an atom (see [`Ctx::stop`](crate::Ctx::stop)).
    pub fn stop(&mut self, id: AtomId) {
        let Some(slot) = self.atoms.get_mut(id.0 as usize) else {
            return;
        };
        match slot.state {
            SlotState::Live => {
                slot.atom = None;
                slot.state = SlotState::Dead;
            }
            SlotState::Running => slot.state = SlotState::Stopping,
            SlotState::Stopping | SlotState::Dead => return,
        }
        slot.handlers = Vec::new();
        slot.peer = Vec::new();
        self.timers.retain(|_, t| t.atom != id);
        self.requests.retain(|_, r| r.atom != id);
        self.services.retain(|(_, a)| *a != id);
    }

    /// The local atom serving a service.
    pub fn lookup_service(&self, s: ServiceId) -> Option<AtomId> {
        self.services.iter().find(|(k, _)| *k == s).map(|(_, a)| *a)
    }

    /// Reads the state of atom `id` if it is live and of type `A`.
    pub fn with_atom<A: Atom, R>(&self, id: AtomId, f: impl FnOnce(&A) -> R) -> Option<R> {
        let slot = self.atoms.get(id.0 as usize)?;
        slot.atom.as_ref()?.as_any().downcast_ref::<A>().map(f)
    }

    /// A reference to atom `id` if it is live and of type `A` (drivers that read several
    /// nodes at once, e.g. invariants over a whole simulated cluster).
    pub fn atom<A: Atom>(&self, id: AtomId) -> Option<&A> {
        let slot = self.atoms.get(id.0 as usize)?;
        slot.atom.as_ref()?.as_any().downcast_ref::<A>()
    }

    /// Mutates the state of atom `id` if it is live and of type `A` (drivers and tests).
    pub fn with_atom_mut<A: Atom, R>(
        &mut self,
        id: AtomId,
        f: impl FnOnce(&mut A) -> R,
    ) -> Option<R> {
        let slot = self.atoms.get_mut(id.0 as usize)?;
        slot.atom.as_mut()?.as_any_mut().downcast_mut::<A>().map(f)
    }

    /// Ids of the live atoms, in order.
    pub fn atom_ids(&self) -> Vec<AtomId> {
        (0..self.atoms.len())
            .filter(|&i| self.atoms[i].state == SlotState::Live)
            .map(|i| AtomId(i as u32))
            .collect()
    }

    /// Whether `alarm` will do something when it fires: a pending timer's or an unanswered
    /// request's (the model checker skips the others).
    pub fn alarm_live(&self, alarm: AlarmId) -> bool {
        self.timers.contains_key(&alarm.0) || self.requests.contains_key(&alarm.0)
    }

    /// What `alarm` is, in words: the type of the atom whose timer or request timeout it is.
    pub fn alarm_owner(&self, alarm: AlarmId) -> Option<String> {
        let name = |a: AtomId| {
            self.atoms
                .get(a.0 as usize)
                .and_then(|s| s.atom.as_ref())
                .map_or("a stopped atom", |x| x.type_name())
        };
        if let Some(t) = self.timers.get(&alarm.0) {
            return Some(format!("timer of {}", short_type(name(t.atom))));
        }
        let r = self.requests.get(&alarm.0)?;
        Some(format!(
            "request timeout of {} (awaiting {})",
            short_type(name(r.atom)),
            r.resp_kind.1
        ))
    }

    /// The name of a message kind some atom of this node handles, or a reply to one of its
    /// requests awaits.
    pub fn kind_name(&self, kind: KindId) -> Option<&'static str> {
        self.atoms
            .iter()
            .flat_map(|s| s.handlers.iter())
            .find(|(k, _, _)| *k == kind)
            .map(|(_, n, _)| *n)
            .or_else(|| {
                self.requests
                    .values()
                    .find(|r| r.resp_kind.0 == kind)
                    .map(|r| r.resp_kind.1)
            })
    }

    /// Pending timers and requests (alarms that will do something).
    pub fn pending_alarms(&self) -> usize {
        self.timers.len() + self.requests.len()
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The node's metrics, for runtimes that record their own counters.
    pub fn metrics_mut(&mut self) -> &mut Metrics {
        &mut self.metrics
    }

    /// A snapshot of the node's metrics.
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }
}

/// `a::b::C<d::E>` as `C<E>`.
fn short_type(t: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    for c in t.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            out.push_str(word.rsplit("::").next().unwrap_or(""));
            word.clear();
            out.push(c);
        }
    }
    out.push_str(word.rsplit("::").next().unwrap_or(""));
    out
}

/// The syscalls of one atom during one callback: the host plus the platform.
struct HostCtx<'h> {
    host: &'h mut Host,
    platform: &'h mut dyn Platform,
    me: AtomId,
}

impl HostCtx<'_> {
    fn slot(&mut self) -> &mut Slot {
        &mut self.host.atoms[self.me.0 as usize]
    }
}

impl Syscalls for HostCtx<'_> {
    fn me(&self) -> AtomAddr {
        AtomAddr::new(self.host.node, self.me)
    }
    fn now(&self) -> Time {
        self.platform.now()
    }
    fn rng(&mut self) -> &mut dyn RngCore {
        self.platform.rng()
    }
    fn on_kind(&mut self, kind: KindId, name: &'static str, handler: ErasedHandler) {
        let hs = &mut self.slot().handlers;
        match hs.iter_mut().find(|(k, _, _)| *k == kind) {
            Some(e) => *e = (kind, name, handler),
            None => hs.push((kind, name, handler)),
        }
    }
    fn on_peer(&mut self, handler: ErasedPeerHandler) {
        self.slot().peer.push(handler);
    }
    fn send(&mut self, to: Dest, corr: Corr, msg: Box<dyn AnyMessage>) {
        let (kind, name) = (msg.kind_id(), msg.kind_name());
        let env = Envelope {
            from: self.me(),
            to,
            kind,
            corr,
            payload: Payload::Local(msg),
        };
        let bytes = if to.node() == self.host.node {
            self.platform.send_local(env);
            0
        } else {
            self.platform.send_remote(env)
        };
        self.host.metrics.sent(kind, name, bytes);
    }
    fn request(
        &mut self,
        to: Dest,
        msg: Box<dyn AnyMessage>,
        timeout: Duration,
        resp_kind: (KindId, &'static str),
        k: ErasedContinuation,
    ) -> RequestId {
        let id = self.host.fresh_id();
        self.host.requests.insert(
            id,
            RequestEntry {
                atom: self.me,
                resp_kind,
                k,
            },
        );
        self.platform.set_alarm(timeout, AlarmId(id));
        self.send(to, Corr::Request(RequestId(id)), msg);
        RequestId(id)
    }
    fn set_timer(&mut self, after: Duration, f: TimerFn) -> TimerId {
        let id = self.host.fresh_id();
        self.host.timers.insert(id, TimerEntry { atom: self.me, f });
        self.platform.set_alarm(after, AlarmId(id));
        TimerId(id)
    }
    fn cancel(&mut self, timer: TimerId) -> bool {
        self.host.timers.remove(&timer.0).is_some()
    }
    fn spawn(&mut self, atom: Box<dyn ErasedAtom>) -> AtomId {
        self.host.spawn_erased(self.platform, atom)
    }
    fn stop(&mut self, atom: AtomId) {
        self.host.stop(atom)
    }
    fn store_get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.platform.store_get(key)
    }
    fn store_put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.platform.store_put(key, value)
    }
    fn store_delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.platform.store_delete(key)
    }
    fn store_scan_prefix(&mut self, prefix: &[u8]) -> Result<KvPairs, StoreError> {
        self.platform.store_scan_prefix(prefix)
    }
    fn register(&mut self, service: ServiceId, name: &str) -> Result<(), Error> {
        let me = self.me;
        match self.host.services.iter().find(|(s, _)| *s == service) {
            Some((_, a)) if *a == me => Ok(()),
            Some(_) => Err(Error::ServiceTaken(name.to_string())),
            None => {
                self.host.services.push((service, me));
                Ok(())
            }
        }
    }
    fn lookup(&self, service: ServiceId) -> Option<AtomId> {
        self.host.lookup_service(service)
    }
    fn connect(&mut self, contact: &Contact) {
        if contact.node != self.host.node {
            self.platform.connect(contact)
        }
    }
    fn disconnect(&mut self, node: NodeId) {
        self.platform.disconnect(node)
    }
    fn connected(&self) -> Vec<NodeId> {
        self.platform.connected()
    }
    fn contact(&self, node: NodeId) -> Option<Contact> {
        self.platform.contact(node)
    }
    fn my_contact(&self) -> Contact {
        self.platform.my_contact()
    }
    fn count(&mut self, name: &'static str, label: &'static str, n: u64) {
        self.host.metrics.count(name, label, n)
    }
}

#[cfg(test)]
mod tests {
    //! The host driven by a minimal single-node loop: shows an atom with a handler, a
    //! request/reply, a periodic timer, a one-shot timer, cancellation and a timeout.
    use super::*;
    use crate::atom::Ctx;
    use crate::message::Message;
    use crate::store::MemStore;
    use rand::SeedableRng;
    use serde::{Deserialize, Serialize};

    enum Item {
        Deliver(Envelope),
        Alarm(AlarmId),
    }

    struct Loop {
        now: Time,
        seq: u64,
        queue: BTreeMap<(Time, u64), Item>,
        rng: rand_chacha::ChaCha8Rng,
        store: MemStore,
    }

    impl Loop {
        fn push(&mut self, at: Time, item: Item) {
            self.seq += 1;
            self.queue.insert((at, self.seq), item);
        }
        fn run(&mut self, host: &mut Host, until: Time) {
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > until {
                    break;
                }
                let ((t, _), item) = entry.remove_entry();
                self.now = t;
                match item {
                    Item::Deliver(env) => host.deliver(self, env, 0),
                    Item::Alarm(a) => host.fire_alarm(self, a),
                }
            }
            self.now = until;
        }
    }

    impl Platform for Loop {
        fn now(&self) -> Time {
            self.now
        }
        fn rng(&mut self) -> &mut dyn RngCore {
            &mut self.rng
        }
        fn send_local(&mut self, env: Envelope) {
            self.push(self.now, Item::Deliver(env));
        }
        fn send_remote(&mut self, _env: Envelope) -> usize {
            0 // single node: other nodes are unreachable
        }
        fn set_alarm(&mut self, after: Duration, alarm: AlarmId) {
            self.push(self.now + after, Item::Alarm(alarm));
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
        fn connect(&mut self, _: &Contact) {}
        fn disconnect(&mut self, _: NodeId) {}
        fn connected(&self) -> Vec<NodeId> {
            Vec::new()
        }
        fn contact(&self, _: NodeId) -> Option<Contact> {
            None
        }
        fn my_contact(&self) -> Contact {
            Contact::bare(NodeId(0))
        }
    }

    #[derive(Clone, Serialize, Deserialize)]
    struct Ping(u32);
    impl Message for Ping {
        const KIND: &'static str = "test/ping";
    }
    #[derive(Clone, Serialize, Deserialize)]
    struct Pong(u32);
    impl Message for Pong {
        const KIND: &'static str = "test/pong";
    }

    /// Serves "echo": answers Ping(n) with Pong(n + 1).
    struct Echo {
        served: u32,
    }
    impl Atom for Echo {
        fn init(&mut self, ctx: &mut Ctx<Self>) {
            ctx.register("echo").unwrap();
            ctx.on::<Ping>(|me, ctx, from, Ping(n)| {
                me.served += 1;
                ctx.reply(from, Pong(n + 1));
            });
        }
    }

    /// Every 10 ms asks "echo" for n+1; stops asking at 35 ms; also asks a service that
    /// does not exist and records the timeout.
    #[derive(Default)]
    struct Client {
        replies: Vec<(Time, u32)>,
        timeouts: u32,
        ticks: u32,
    }
    impl Atom for Client {
        fn init(&mut self, ctx: &mut Ctx<Self>) {
            let node = ctx.node();
            let tick = ctx.every(Duration::from_millis(10), move |me, ctx| {
                me.ticks += 1;
                ctx.request(
                    Dest::service(node, "echo"),
                    Ping(me.ticks),
                    Duration::from_millis(5),
                    |me, ctx, r: Result<Pong, _>| {
                        me.replies.push((ctx.now(), r.unwrap().0));
                    },
                );
            });
            ctx.after(Duration::from_millis(35), move |_, ctx| {
                assert!(ctx.cancel(tick));
            });
            ctx.request(
                Dest::service(node, "nobody"),
                Ping(0),
                Duration::from_millis(7),
                |me, ctx, r: Result<Pong, _>| {
                    assert_eq!(r.err(), Some(RequestError::Timeout));
                    assert_eq!(ctx.now(), Time::from_millis(7));
                    me.timeouts += 1;
                },
            );
        }
    }

    #[test]
    fn handler_request_reply_timers_and_timeout() {
        let mut lp = Loop {
            now: Time::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(1),
            store: MemStore::new(),
        };
        let mut host = Host::new(NodeId(0), 42);
        let b = boot(|b| {
            b.spawn(Echo { served: 0 });
            b.spawn(Client::default());
        });
        host.boot(&mut lp, &b);
        lp.run(&mut host, Time::from_millis(100));

        let (served, replies, timeouts, ticks) = host
            .with_atom::<Client, _>(AtomId(1), |c| (0, c.replies.clone(), c.timeouts, c.ticks))
            .map(|(_, r, t, k)| {
                (
                    host.with_atom::<Echo, _>(AtomId(0), |e| e.served).unwrap(),
                    r,
                    t,
                    k,
                )
            })
            .unwrap();
        assert_eq!(ticks, 3, "ticks at 10, 20, 30 ms; cancelled at 35 ms");
        assert_eq!(served, 3);
        assert_eq!(
            replies,
            vec![
                (Time::from_millis(10), 2),
                (Time::from_millis(20), 3),
                (Time::from_millis(30), 4)
            ]
        );
        assert_eq!(timeouts, 1);
        let m = host.metrics_snapshot();
        assert_eq!(m.kind("test/ping").msgs_sent, 4);
        assert_eq!(m.kind("test/ping").msgs_recv, 3);
        assert_eq!(m.kind("test/pong").msgs_recv, 3);
        assert_eq!(m.counter("dropped_no_service", ""), 1);
        assert_eq!(m.counter("request_timeouts", ""), 1);
        assert_eq!(host.pending_alarms(), 0);
    }

    #[test]
    fn unknown_kinds_and_bad_bytes_are_counted_not_fatal() {
        let mut lp = Loop {
            now: Time::ZERO,
            seq: 0,
            queue: BTreeMap::new(),
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(1),
            store: MemStore::new(),
        };
        let mut host = Host::new(NodeId(0), 0);
        let echo = host.spawn(&mut lp, Echo { served: 0 });
        let to = Dest::Atom(AtomAddr::new(NodeId(0), echo));
        let from = AtomAddr::new(NodeId(9), AtomId(0));
        host.deliver(&mut lp, Envelope::new(from, to, Pong(1)), 0);
        let mut bad = Envelope::new(from, to, Ping(1));
        bad.payload = Payload::Wire(vec![0xc1]);
        host.deliver(&mut lp, bad, 1);
        let m = host.metrics_snapshot();
        assert_eq!(m.counter("dropped_unknown_kind", ""), 1);
        assert_eq!(m.counter("dropped_decode_error", ""), 1);
        assert_eq!(host.with_atom::<Echo, _>(echo, |e| e.served), Some(0));
        // Stopping drops state, handlers and the service registration.
        host.stop(echo);
        assert_eq!(host.lookup_service(ServiceId::of("echo")), None);
        host.deliver(&mut lp, Envelope::new(from, to, Ping(1)), 0);
        assert_eq!(host.metrics_snapshot().counter("dropped_no_atom", ""), 1);
    }
}
