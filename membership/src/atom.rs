//! The membership atom: the [`PeerService`] core driven by the runtime, and the peer-service
//! interface the layers above use through messages.
//!
//! One [`MembershipAtom`] runs on every node and serves [`SERVICE`]. Other atoms of the node
//! talk to it with local messages (moved, never serialised):
//!
//! | send | effect |
//! |---|---|
//! | [`Join`] | join through seed contacts |
//! | [`Leave`] | leave, telling the neighbours |
//! | [`Subscribe`] | the sender gets every [`PeerServiceEvent`] from now on |
//! | [`SendTo`] | a payload to one node, arriving there as [`PeerServiceEvent::Received`] |
//! | [`Broadcast`] | a payload to every node ([`PeerServiceEvent::Delivered`] there) |
//! | [`GetView`] (request) | replies [`View`]: mode, neighbours, passive view (Sprinter's input) |
//!
//! The same atom runs in the simulator and on the network; the mode is [`Config::mode`].
//!
//! # Remembered contacts
//!
//! A node that has been in a cluster finds it again after a restart, whatever its seeds say
//! (a restarted first node has none). Each time a node becomes a neighbour the atom records
//! its [`Contact`] (node id and dialable addresses, on the network `.../p2p/<peer id>` taken
//! from the address book) in the durable store under [`CONTACTS_KEY`], at most
//! [`REMEMBERED_CONTACTS`] of them, most recent first; when full, a new neighbour replaces
//! the least recent entry that is no longer a neighbour (so a large full-membership view does
//! not rewrite the store on every change). The store is written only when the remembered set
//! or an address changes. At init the atom joins through its seeds (or, with none, the
//! remembered contacts); while it is still alone it retries through seeds and remembered
//! contacts together after [`JOIN_RETRY_FIRST`], doubling up to [`JOIN_RETRY_LAST`]; with
//! neither seeds nor contacts it starts alone as the first node. This carries HyParView's rejoin
//! through remembered contacts (the [`hyparview`](crate::hyparview) module docs) across a
//! crash: the volatile views are lost, the store is not.
//!
//! Driving rules: the atom drives its [`PeerService`] through the [`Core`] trait (a [`Wire`]
//! message is [`Core::on_message`], a timer's continuation [`Core::on_timer`]); core timers
//! become [`Ctx::after`] continuations; the runtime's [`PeerEvent::Down`] is the failure
//! detector ([`Core::peer_down`]); a core's
//! disconnect hint closes the connection only after [`DISCONNECT_GRACE`], and only if the peer
//! has not become a neighbour again (closing at once would race the DISCONNECT message, the
//! false-disconnect trap of Partisan's talk, slide 148).

use crate::plumtree::MsgId;
use crate::proto::{Core, Out, Time as CoreTime, PAYLOAD};
use crate::service::{Config, Mode, PeerService, ServiceEvent, ServiceMessage, ServiceOutbox};
use rasp_runtime::{Atom, AtomAddr, Contact, Ctx, Dest, Message, NodeId, Origin, PeerEvent};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::time::Duration;

/// The service name the membership atom registers on its node.
pub const SERVICE: &str = "membership";

/// Store key of the remembered contacts (a MessagePack list of [`Contact`]s).
pub const CONTACTS_KEY: &[u8] = b"membership/contacts";

/// Most contacts remembered in the store. 32 is far more than one live peer needed to rejoin,
/// and bounds the record (with [`REMEMBERED_ADDRS`] addresses each) to a few KiB.
pub const REMEMBERED_CONTACTS: usize = 32;

/// Most addresses kept per remembered contact (the network address book keeps 8 too).
pub const REMEMBERED_ADDRS: usize = 8;

/// Longest address kept in a remembered contact, in bytes; longer ones are dropped.
const MAX_ADDR_LEN: usize = 512;

/// First join retry at boot, if the node is still alone (a seed or remembered contact it
/// picked may be dead). A join takes a connection and a round trip: 500 ms is several of
/// them in the simulator's 10–50 ms links and on loopback.
pub const JOIN_RETRY_FIRST: Duration = Duration::from_millis(500);

/// Last join retry at boot (retries double from [`JOIN_RETRY_FIRST`]): 4 s, under HyParView's
/// 5 s promotion period, whose rejoin takes over.
pub const JOIN_RETRY_LAST: Duration = Duration::from_secs(4);

/// How long after a core drops a peer its connection is closed (if it is still not needed).
pub const DISCONNECT_GRACE: Duration = Duration::from_secs(2);

/// A peer as the cores see it: a node's [`Contact`], compared by node id only (addresses may
/// differ between reports of the same node), so views carry dialable addresses.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerRef(pub Contact);

impl PeerRef {
    /// The node.
    pub fn node(&self) -> NodeId {
        self.0.node
    }
}

impl PartialEq for PeerRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.node == other.0.node
    }
}
impl Eq for PeerRef {}
impl PartialOrd for PeerRef {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PeerRef {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.node.cmp(&other.0.node)
    }
}

/// The payload type of broadcasts and direct sends: bytes (encode your own type, e.g. with
/// MessagePack).
pub type Bytes = Vec<u8>;

/// A protocol message between membership atoms of different nodes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Wire(pub ServiceMessage<PeerRef, Bytes>);
impl Message for Wire {
    const KIND: &'static str = "membership/wire";
}

/// Join the cluster through these seed contacts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Join {
    /// Contact nodes.
    pub seeds: Vec<Contact>,
}
impl Message for Join {
    const KIND: &'static str = "membership/join";
}

/// Leave the cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Leave;
impl Message for Leave {
    const KIND: &'static str = "membership/leave";
}

/// Subscribe the sending atom to [`PeerServiceEvent`]s.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Subscribe;
impl Message for Subscribe {
    const KIND: &'static str = "membership/subscribe";
}

/// Send a payload to one node's membership atom (and its subscribers).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SendTo {
    /// The destination node.
    pub to: NodeId,
    /// The payload.
    pub payload: Bytes,
}
impl Message for SendTo {
    const KIND: &'static str = "membership/send-to";
}

/// Broadcast a payload to every node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Broadcast {
    /// The payload.
    pub payload: Bytes,
}
impl Message for Broadcast {
    const KIND: &'static str = "membership/broadcast";
}

/// Ask for this node's view (request; the reply is a [`View`]). Works from other nodes too:
/// it is Sprinter's debug request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetView;
impl Message for GetView {
    const KIND: &'static str = "membership/get-view";
}

/// A node's view, the reply to [`GetView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The node.
    pub node: NodeId,
    /// The mode it runs.
    pub mode: Mode,
    /// Its neighbours, sorted.
    pub neighbours: Vec<NodeId>,
    /// Its passive view (HyParView), sorted.
    pub passive: Vec<NodeId>,
}
impl Message for View {
    const KIND: &'static str = "membership/view";
}

/// What subscribers hear.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerServiceEvent {
    /// A new neighbour.
    NeighbourUp(NodeId),
    /// A neighbour is gone.
    NeighbourDown(NodeId),
    /// A broadcast arrived (once per message).
    Delivered {
        /// The broadcasting node.
        origin: NodeId,
        /// Its sequence number there.
        seq: u64,
        /// Hops travelled.
        round: u32,
        /// The payload.
        payload: Bytes,
    },
    /// A direct payload arrived.
    Received {
        /// The sender.
        from: NodeId,
        /// The payload.
        payload: Bytes,
    },
}
impl Message for PeerServiceEvent {
    const KIND: &'static str = "membership/event";
}

/// The membership atom. Spawn one per node (in its boot closure), with the seeds to join
/// through (none for the first node).
pub struct MembershipAtom {
    config: Config,
    seeds: Vec<Contact>,
    /// Contacts of past neighbours, most recent first, as last written to the store.
    remembered: Vec<Contact>,
    core: Option<PeerService<PeerRef, Bytes>>,
    subscribers: Vec<AtomAddr>,
    /// Deliveries and counters for tests and reports.
    stats: AtomStats,
}

/// Counters kept by the atom (readable in the simulator through `Sim::with_atom`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtomStats {
    /// Broadcasts delivered here: (origin, seq, round).
    pub delivered: Vec<(NodeId, u64, u32)>,
    /// Wire messages sent.
    pub sent: u64,
    /// Payload-carrying broadcast messages sent (for RMR).
    pub payload_sent: u64,
}

impl MembershipAtom {
    /// A membership atom; it joins through `seeds` at init (if any). The configuration is
    /// checked here; an invalid one is reported as an error before anything runs.
    pub fn new(config: Config, seeds: Vec<Contact>) -> Result<Self, crate::Error> {
        config.validate()?;
        Ok(MembershipAtom {
            config,
            seeds,
            remembered: Vec::new(),
            core: None,
            subscribers: Vec::new(),
            stats: AtomStats::default(),
        })
    }

    /// The core (after init).
    pub fn core(&self) -> Option<&PeerService<PeerRef, Bytes>> {
        self.core.as_ref()
    }

    /// Current neighbours, sorted.
    pub fn neighbours(&self) -> Vec<NodeId> {
        self.core
            .as_ref()
            .map(|c| c.neighbours().iter().map(PeerRef::node).collect())
            .unwrap_or_default()
    }

    /// This node's view.
    pub fn view(&self, node: NodeId) -> View {
        let (neighbours, passive) = match &self.core {
            Some(c) => {
                let mut p: Vec<NodeId> = c.passive().iter().map(PeerRef::node).collect();
                p.sort();
                (self.neighbours(), p)
            }
            None => (Vec::new(), Vec::new()),
        };
        View {
            node,
            mode: self.config.mode,
            neighbours,
            passive,
        }
    }

    /// The remembered contacts, most recent first (see the module docs).
    pub fn remembered(&self) -> &[Contact] {
        &self.remembered
    }

    /// Counters.
    pub fn stats(&self) -> &AtomStats {
        &self.stats
    }

    /// Broadcasts from inside this atom (what a [`Broadcast`] message does); the id.
    pub fn broadcast(&mut self, ctx: &mut Ctx<Self>, payload: Bytes) -> Option<(NodeId, u64)> {
        let mut out = Vec::new();
        let core = self.core.as_mut()?;
        let id = core.broadcast(payload, &mut ctx.rng(), &mut out);
        self.execute(ctx, out);
        Some((id.origin.node(), id.seq))
    }

    fn with_core(
        &mut self,
        ctx: &mut Ctx<Self>,
        f: impl FnOnce(
            &mut PeerService<PeerRef, Bytes>,
            CoreTime,
            &mut dyn rand::RngCore,
            &mut ServiceOutbox<PeerRef, Bytes>,
        ),
    ) {
        let now = Duration::from_nanos(ctx.now().as_nanos());
        let mut out = Vec::new();
        if let Some(core) = self.core.as_mut() {
            f(core, now, ctx.rng(), &mut out);
        }
        self.execute(ctx, out);
    }

    fn notify(&self, ctx: &mut Ctx<Self>, ev: PeerServiceEvent) {
        for s in &self.subscribers {
            ctx.send(*s, ev.clone());
        }
    }

    fn execute(&mut self, ctx: &mut Ctx<Self>, out: ServiceOutbox<PeerRef, Bytes>) {
        for o in out {
            match o {
                Out::Send { to, msg } => {
                    self.stats.sent += 1;
                    if <PeerService<PeerRef, Bytes> as Core<PeerRef>>::kind(&msg) == PAYLOAD {
                        self.stats.payload_sent += 1;
                    }
                    if !to.0.addrs.is_empty() && ctx.contact(to.node()).is_none() {
                        ctx.connect(&to.0);
                    }
                    ctx.send(Dest::service(to.node(), SERVICE), Wire(msg));
                }
                Out::Connect(p) => ctx.connect(&p.0),
                Out::Disconnect(p) => {
                    let node = p.node();
                    ctx.after(DISCONNECT_GRACE, move |me: &mut Self, ctx| {
                        let needed = me
                            .core
                            .as_ref()
                            .is_some_and(|c| c.neighbours().iter().any(|n| n.node() == node));
                        if !needed {
                            ctx.disconnect(node);
                        }
                    });
                }
                Out::Timer { after, timer } => {
                    ctx.after(after, move |me: &mut Self, ctx| {
                        me.with_core(ctx, |c, now, rng, out| c.on_timer(timer, now, rng, out));
                    });
                }
                Out::Event(e) => {
                    let ev = match e {
                        ServiceEvent::NeighbourUp(p) => {
                            self.remember(ctx, p.0.clone());
                            PeerServiceEvent::NeighbourUp(p.node())
                        }
                        ServiceEvent::NeighbourDown(p) => PeerServiceEvent::NeighbourDown(p.node()),
                        ServiceEvent::Delivered {
                            id: MsgId { origin, seq },
                            payload,
                            round,
                        } => {
                            self.stats.delivered.push((origin.node(), seq, round));
                            PeerServiceEvent::Delivered {
                                origin: origin.node(),
                                seq,
                                round,
                                payload,
                            }
                        }
                        ServiceEvent::Received { from, payload } => PeerServiceEvent::Received {
                            from: from.node(),
                            payload,
                        },
                    };
                    self.notify(ctx, ev);
                }
            }
        }
    }
}

impl Atom for MembershipAtom {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        if let Err(e) = ctx.register(SERVICE) {
            tracing::error!("membership: cannot register the service: {e}");
            return;
        }
        let me = PeerRef(ctx.my_contact());
        let core = match PeerService::new(me, self.config.clone()) {
            Ok(c) => c,
            Err(e) => {
                // Validated in `new`; only reachable if the config was changed in between.
                tracing::error!("membership: invalid configuration: {e}");
                return;
            }
        };
        self.core = Some(core);
        ctx.on::<Wire>(|me, ctx, origin: &Origin, Wire(msg)| {
            let from = PeerRef(
                ctx.contact(origin.from.node)
                    .unwrap_or_else(|| Contact::bare(origin.from.node)),
            );
            if !from.0.addrs.is_empty() {
                me.refresh_remembered(ctx, &from.0);
            }
            me.with_core(ctx, |c, now, rng, out| {
                c.on_message(from, msg, now, rng, out)
            });
        });
        ctx.on_peer(|me, ctx, ev| {
            if let PeerEvent::Down(node) = ev {
                let peer = PeerRef(Contact::bare(node));
                me.with_core(ctx, |c, now, rng, out| c.peer_down(&peer, now, rng, out));
            }
        });
        ctx.on::<Join>(|me, ctx, _, Join { seeds }| me.join(ctx, seeds));
        ctx.on::<Leave>(|me, ctx, _, _| me.with_core(ctx, |c, _, rng, out| c.leave(rng, out)));
        ctx.on::<Subscribe>(|me, _, origin, _| {
            if !me.subscribers.contains(&origin.from) {
                me.subscribers.push(origin.from);
            }
        });
        ctx.on::<SendTo>(|me, ctx, _, SendTo { to, payload }| {
            let peer = PeerRef(ctx.contact(to).unwrap_or_else(|| Contact::bare(to)));
            me.with_core(ctx, |c, _, _, out| c.send(peer, payload, out));
        });
        ctx.on::<Broadcast>(|me, ctx, _, Broadcast { payload }| {
            me.broadcast(ctx, payload);
        });
        ctx.on::<GetView>(|me, ctx, origin, _| {
            let view = me.view(ctx.node());
            ctx.reply(origin, view);
        });
        self.remembered = load_remembered(ctx);
        let configured = std::mem::take(&mut self.seeds);
        let me = ctx.node();
        let mut all = configured.clone();
        for c in &self.remembered {
            if c.node != me && !all.iter().any(|s| s.node == c.node) {
                all.push(c.clone());
            }
        }
        if all.is_empty() {
            self.with_core(ctx, |c, _, rng, out| c.start(rng, out));
            return;
        }
        if !self.remembered.is_empty() {
            tracing::info!(
                remembered = self.remembered.len(),
                "membership: joining through remembered contacts too"
            );
        }
        // The configured seeds first (a remembered contact may be long dead), then, while
        // still alone, everything known.
        let first = if configured.is_empty() {
            all.clone()
        } else {
            configured
        };
        self.join(ctx, first);
        self.retry_join(ctx, all, JOIN_RETRY_FIRST);
    }
}

impl MembershipAtom {
    /// After `after`, if this node still has no neighbour, joins again through `seeds` (the
    /// core picks another one at random) and retries after twice as long, up to
    /// [`JOIN_RETRY_LAST`]; the cores' own rejoin takes over from there.
    fn retry_join(&mut self, ctx: &mut Ctx<Self>, seeds: Vec<Contact>, after: Duration) {
        ctx.after(after, move |me: &mut Self, ctx| {
            if !me.neighbours().is_empty() {
                return;
            }
            me.join(ctx, seeds.clone());
            if after * 2 <= JOIN_RETRY_LAST {
                me.retry_join(ctx, seeds, after * 2);
            }
        });
    }

    fn join(&mut self, ctx: &mut Ctx<Self>, seeds: Vec<Contact>) {
        for s in &seeds {
            if !s.addrs.is_empty() {
                ctx.connect(s);
            }
        }
        let seeds: Vec<PeerRef> = seeds.into_iter().map(PeerRef).collect();
        self.with_core(ctx, |c, now, rng, out| c.join(seeds, now, rng, out));
    }
}

/// Keeps at most [`REMEMBERED_ADDRS`] addresses of at most [`MAX_ADDR_LEN`] bytes.
fn sanitize(mut c: Contact) -> Contact {
    c.addrs.retain(|a| !a.is_empty() && a.len() <= MAX_ADDR_LEN);
    c.addrs.truncate(REMEMBERED_ADDRS);
    c
}

/// The remembered contacts in the store (bounded, deduplicated, without this node); none if
/// the record is missing or unreadable (logged: joining through the seeds still works).
fn load_remembered(ctx: &mut Ctx<MembershipAtom>) -> Vec<Contact> {
    let stored: Vec<Contact> = match ctx.store_get_as(CONTACTS_KEY) {
        Ok(v) => v.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("membership: ignoring the remembered contacts: {e}");
            return Vec::new();
        }
    };
    let me = ctx.node();
    let mut out: Vec<Contact> = Vec::new();
    for c in stored {
        if out.len() >= REMEMBERED_CONTACTS {
            break;
        }
        if c.node != me && !out.iter().any(|x| x.node == c.node) {
            out.push(sanitize(c));
        }
    }
    out
}

impl MembershipAtom {
    /// Records a new neighbour's contact (see the module docs); writes the store if the
    /// remembered set or an address changed.
    fn remember(&mut self, ctx: &mut Ctx<Self>, contact: Contact) {
        let node = contact.node;
        if node == ctx.node() {
            return;
        }
        // The address book knows the addresses a peer listens on (identify) even when it
        // dialled us; the core's copy may predate them.
        let contact = sanitize(match ctx.contact(node) {
            Some(c) if !c.addrs.is_empty() => c,
            _ => contact,
        });
        let changed = match self.remembered.iter().position(|c| c.node == node) {
            Some(i) => {
                let mut old = self.remembered.remove(i);
                let changed = !contact.addrs.is_empty() && old.addrs != contact.addrs;
                if changed {
                    old.addrs = contact.addrs;
                }
                self.remembered.insert(0, old);
                changed
            }
            None if self.remembered.len() < REMEMBERED_CONTACTS => {
                self.remembered.insert(0, contact);
                true
            }
            None => {
                let neighbours = self.neighbours();
                match self
                    .remembered
                    .iter()
                    .rposition(|c| !neighbours.contains(&c.node))
                {
                    Some(i) => {
                        self.remembered.remove(i);
                        self.remembered.insert(0, contact);
                        true
                    }
                    None => false,
                }
            }
        };
        if changed {
            self.save_remembered(ctx);
        }
    }

    /// A message came from `from` with addresses: fill them in if its remembered entry had
    /// none (a peer that dialled us is known by address only once identify reports it).
    fn refresh_remembered(&mut self, ctx: &mut Ctx<Self>, from: &Contact) {
        let Some(c) = self.remembered.iter_mut().find(|c| c.node == from.node) else {
            return;
        };
        if !c.addrs.is_empty() {
            return;
        }
        c.addrs = sanitize(from.clone()).addrs;
        self.save_remembered(ctx);
    }

    fn save_remembered(&self, ctx: &mut Ctx<Self>) {
        if let Err(e) = ctx.store_put_as(CONTACTS_KEY, &self.remembered) {
            tracing::warn!("membership: cannot remember contacts: {e}");
        }
    }
}
