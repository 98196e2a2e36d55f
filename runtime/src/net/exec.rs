//! The atom executor: one dedicated OS thread running a current-thread tokio runtime, which
//! owns the node's [`Host`] (atoms need not be `Send`) and implements [`Platform`] for it.
//!
//! Its loop: deliver queued local envelopes, fire due alarms, then wait for the next
//! inbound event (remote message, peer up/down, driver call) or the next alarm deadline.
//!
//! - Local sends never leave the thread and are never serialized: the boxed message value
//!   goes through an in-memory FIFO (`local`), bounded by
//!   [`LOCAL_QUEUE_CAPACITY`]; beyond it a send is dropped and counted (`net.local_dropped`):
//!   only a runaway atom loop gets there.
//! - Remote sends are encoded here (MessagePack envelope) and pushed to the peer's bounded
//!   drop-oldest queue; the executor never blocks on the network.
//! - Timers: a binary heap of deadlines on the monotonic clock; its size is the number of
//!   pending timers and requests of the atoms.
//! - `now()` is monotonic: Unix-epoch nanoseconds at start plus monotonic time elapsed.

use super::shared::{node_of, split_p2p, OutQueue, Shared};
use super::store::RedbStore;
use super::Command;
use crate::error::StoreError;
use crate::host::{AlarmId, Boot, Host, Platform};
use crate::ids::{AtomAddr, Contact, Dest, NodeId, PeerEvent, Time};
use crate::message::{Corr, Envelope, KindId, Payload};
use crate::store::KvPairs;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Most local envelopes queued inside the executor at once (see the module docs).
pub const LOCAL_QUEUE_CAPACITY: usize = 1 << 20;

/// Inbound events processed per wake-up before alarms are checked again (fairness).
const INBOUND_BATCH: usize = 256;

/// A remote envelope decoded by a stream reader, in a `Send` form.
pub(crate) struct WireEnvelope {
    pub from: AtomAddr,
    pub to: Dest,
    pub kind: KindId,
    pub corr: Corr,
    pub payload: Vec<u8>,
    /// The frame's share of the inbound byte budget, returned when the envelope is handled.
    pub held: super::frame::Held,
}

/// A closure run on the executor thread with the node's host (driver access).
pub(crate) type HostCall = Box<dyn FnOnce(&mut Host, &mut dyn Platform) + Send>;

/// What the network side hands to the executor (through a bounded channel).
pub(crate) enum Inbound {
    Remote(WireEnvelope),
    Peer(PeerEvent),
    Call(HostCall),
}

/// The executor's [`Platform`].
pub(crate) struct NetPlatform {
    shared: Arc<Shared>,
    store: RedbStore,
    cmd: mpsc::Sender<Command>,
    rng: StdRng,
    origin: Instant,
    epoch_nanos: u64,
    local: VecDeque<Envelope>,
    alarms: BinaryHeap<Reverse<(Instant, u64, AlarmId)>>,
    alarm_seq: u64,
    connected: BTreeSet<NodeId>,
    peer_queue_capacity: usize,
    max_frame_bytes: usize,
    local_dropped: u64,
    pending_counts: Vec<(&'static str, u64)>,
}

impl NetPlatform {
    pub fn new(
        shared: Arc<Shared>,
        store: RedbStore,
        cmd: mpsc::Sender<Command>,
        peer_queue_capacity: usize,
        max_frame_bytes: usize,
    ) -> Self {
        let epoch_nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        NetPlatform {
            shared,
            store,
            cmd,
            rng: StdRng::from_os_rng(),
            origin: Instant::now(),
            epoch_nanos,
            local: VecDeque::new(),
            alarms: BinaryHeap::new(),
            alarm_seq: 0,
            connected: BTreeSet::new(),
            peer_queue_capacity,
            max_frame_bytes,
            local_dropped: 0,
            pending_counts: Vec::new(),
        }
    }

    fn command(&self, c: Command) {
        if let Err(e) = self.cmd.try_send(c) {
            // Bounded command queue: a command that does not fit is dropped (contacts are
            // retried by the protocols that need them).
            tracing::warn!("network command queue full or closed, dropping command: {e}");
        }
    }

    fn count(&mut self, name: &'static str) {
        match self.pending_counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v += 1,
            None => self.pending_counts.push((name, 1)),
        }
    }

    fn push_frame(&mut self, node: NodeId, frame: Vec<u8>) {
        let q: OutQueue = match self.shared.queue(node) {
            Some(q) => q,
            None => {
                if self.shared.lookup(node).is_none() {
                    self.shared.count_unreachable();
                    self.count("net.unreachable");
                    tracing::debug!(?node, "no address for node: message dropped");
                    return;
                }
                let (q, created) = self.shared.queue_or_create(node, self.peer_queue_capacity);
                if created {
                    self.command(Command::EnsureWriter(node));
                }
                q
            }
        };
        if q.push(frame).is_some() {
            self.shared.peer_stats(node, |s| s.dropped += 1);
            self.count("net.dropped");
        }
    }
}

impl Platform for NetPlatform {
    fn now(&self) -> Time {
        let d = self.origin.elapsed();
        Time(
            self.epoch_nanos
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
    fn rng(&mut self) -> &mut dyn RngCore {
        &mut self.rng
    }
    fn send_local(&mut self, env: Envelope) {
        if self.local.len() >= LOCAL_QUEUE_CAPACITY {
            self.local_dropped += 1;
            self.count("net.local_dropped");
            return;
        }
        self.local.push_back(env);
    }
    fn send_remote(&mut self, env: Envelope) -> usize {
        let node = env.to.node();
        let len = env.payload.encoded_len();
        let frame = match env.encode() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(?node, "cannot encode message: {e}");
                self.count("net.encode_errors");
                return 0;
            }
        };
        if frame.len() > self.max_frame_bytes {
            tracing::warn!(
                ?node,
                bytes = frame.len(),
                limit = self.max_frame_bytes,
                "message exceeds the frame limit: dropped"
            );
            self.count("net.oversized_out");
            return 0;
        }
        self.push_frame(node, frame);
        len
    }
    fn set_alarm(&mut self, after: Duration, alarm: AlarmId) {
        let at = Instant::now() + after.min(Duration::from_secs(100 * 365 * 86_400));
        self.alarm_seq += 1;
        self.alarms.push(Reverse((at, self.alarm_seq, alarm)));
    }
    fn store_get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(key)
    }
    fn store_put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.store.put(key, value)
    }
    fn store_delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.store.delete(key).map(|_| ())
    }
    fn store_scan_prefix(&mut self, prefix: &[u8]) -> Result<KvPairs, StoreError> {
        self.store.scan_prefix(prefix)
    }
    fn connect(&mut self, contact: &Contact) {
        if contact.node == self.shared.me || self.connected.contains(&contact.node) {
            return;
        }
        let addrs: Vec<_> = contact
            .addrs
            .iter()
            .filter_map(|a| match a.parse() {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!(addr = %a, "ignoring unparsable contact address: {e}");
                    None
                }
            })
            .collect();
        // Record `/p2p/` addresses at once (the network task does it again), so a message
        // sent right after `connect` finds the node in the address book instead of being
        // dropped as unreachable.
        for a in &addrs {
            if let (t, Some(p)) = split_p2p(a) {
                if node_of(&p) == contact.node {
                    self.shared.learn(p, [t]);
                }
            }
        }
        self.command(Command::Connect {
            node: contact.node,
            addrs,
        });
    }
    fn disconnect(&mut self, node: NodeId) {
        self.command(Command::Disconnect(node));
    }
    fn connected(&self) -> Vec<NodeId> {
        self.connected.iter().copied().collect()
    }
    fn contact(&self, node: NodeId) -> Option<Contact> {
        if node == self.shared.me {
            return Some(self.shared.my_contact());
        }
        self.shared.contact(node)
    }
    fn my_contact(&self) -> Contact {
        self.shared.my_contact()
    }
}

/// The executor: host, platform and the inbound channel.
pub(crate) struct Executor {
    host: Host,
    plat: NetPlatform,
    inbound: mpsc::Receiver<Inbound>,
}

impl Executor {
    pub fn new(mut plat: NetPlatform, inbound: mpsc::Receiver<Inbound>, boot: &Boot) -> Self {
        let mut host = Host::new(plat.shared.me, plat.rng.next_u64());
        host.boot(&mut plat, boot);
        Executor {
            host,
            plat,
            inbound,
        }
    }

    /// Delivers queued local envelopes and fires due alarms until neither is left.
    fn settle(&mut self) {
        loop {
            while let Some(env) = self.plat.local.pop_front() {
                self.host.deliver(&mut self.plat, env, 0);
            }
            let now = Instant::now();
            match self.plat.alarms.peek() {
                Some(Reverse((at, _, _))) if *at <= now => {
                    let Some(Reverse((_, _, id))) = self.plat.alarms.pop() else {
                        unreachable!()
                    };
                    self.host.fire_alarm(&mut self.plat, id);
                }
                _ => break,
            }
        }
        self.flush_counts();
    }

    /// Moves the platform's counts (drops, unreachable nodes) into the host's metrics.
    fn flush_counts(&mut self) {
        for (name, n) in self.plat.pending_counts.drain(..) {
            self.host.metrics_mut().count(name, "", n);
        }
    }

    fn handle(&mut self, ev: Inbound) {
        match ev {
            Inbound::Remote(w) => {
                let len = w.payload.len();
                let env = Envelope {
                    from: w.from,
                    to: w.to,
                    kind: w.kind,
                    corr: w.corr,
                    payload: Payload::Wire(w.payload),
                };
                self.host.deliver(&mut self.plat, env, len);
                drop(w.held);
            }
            Inbound::Peer(ev) => {
                match ev {
                    PeerEvent::Up(n) => self.plat.connected.insert(n),
                    PeerEvent::Down(n) => self.plat.connected.remove(&n),
                };
                self.host.peer_event(&mut self.plat, ev);
            }
            Inbound::Call(f) => {
                // A driver reading the metrics sees the counts of every event handled so far,
                // even when several events were handled before the next settle.
                self.flush_counts();
                f(&mut self.host, &mut self.plat)
            }
        }
    }

    /// Runs until the inbound channel closes (node shutdown).
    pub async fn run(mut self) {
        loop {
            self.settle();
            let next = self.plat.alarms.peek().map(|Reverse((at, _, _))| *at);
            let ev = match next {
                Some(at) => {
                    tokio::select! {
                        biased;
                        ev = self.inbound.recv() => ev,
                        _ = tokio::time::sleep_until(at.into()) => continue,
                    }
                }
                None => self.inbound.recv().await,
            };
            let Some(ev) = ev else { break };
            self.handle(ev);
            for _ in 1..INBOUND_BATCH {
                match self.inbound.try_recv() {
                    Ok(ev) => {
                        self.settle_local();
                        self.handle(ev)
                    }
                    Err(_) => break,
                }
            }
        }
        tracing::debug!(node = ?self.host.node(), "executor stopped");
    }

    fn settle_local(&mut self) {
        while let Some(env) = self.plat.local.pop_front() {
            self.host.deliver(&mut self.plat, env, 0);
        }
    }
}
