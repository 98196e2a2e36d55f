//! The peer service: one sans-IO core behind one interface whatever the membership mode.
//!
//! [`PeerService`] composes a membership core (HyParView, or full / client-server) with a
//! broadcast core (Plumtree or fanout gossip): membership's neighbour changes feed the
//! broadcast core and are reported upward; the layer above sees only
//! [`ServiceEvent`]s and calls [`PeerService::join`], [`PeerService::leave`],
//! [`PeerService::neighbours`], [`PeerService::send`] and [`PeerService::broadcast`]. The mode
//! is a configuration value ([`Mode`], parsed from `full`, `client-server`, `hyparview`);
//! nothing above this interface changes with it.

use crate::error::Error;
use crate::full::{self, FullMembership, Role, Topology};
use crate::gossip::{self, Gossip};
use crate::hyparview::{self, HyParView};
use crate::plumtree::{self, MsgId, Plumtree};
use crate::proto::{Core, Out, Outbox, Peer, Time, PAYLOAD};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

rasp_runtime::string_enum! {
    /// Which membership protocol runs.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum Mode: Error = Error::UnknownMode {
        /// Every node knows and heartbeats every node.
        Full = "full",
        /// Servers connect to all, clients to servers.
        ClientServer = "client-server",
        /// HyParView partial views (Partisan's default, and ours).
        #[default]
        HyParView = "hyparview",
    }
}

rasp_runtime::string_enum! {
    /// Which broadcast protocol runs.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum BroadcastMode: Error = Error::UnknownBroadcast {
        /// Epidemic broadcast trees.
        #[default]
        Plumtree = "plumtree",
        /// Fanout gossip.
        Gossip = "gossip",
    }
}

/// Everything the peer service is configured with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Membership protocol.
    pub mode: Mode,
    /// This node's role (client-server mode only).
    pub role: Role,
    /// Broadcast protocol.
    pub broadcast: BroadcastMode,
    /// HyParView parameters.
    pub hyparview: hyparview::Config,
    /// Full / client-server parameters.
    pub full: full::Config,
    /// Plumtree parameters.
    pub plumtree: plumtree::Config,
    /// Fanout gossip parameters.
    pub gossip: gossip::Config,
}

impl Config {
    /// Checks the configuration once, at start.
    pub fn validate(&self) -> Result<(), Error> {
        self.hyparview.validate()?;
        if self.full.heartbeat_interval.is_zero() || self.full.gossip_interval.is_zero() {
            return Err(Error::Config("full: intervals must be positive".into()));
        }
        if self.full.failure_timeout < self.full.heartbeat_interval {
            return Err(Error::Config(
                "full: failure_timeout is shorter than heartbeat_interval".into(),
            ));
        }
        if self.plumtree.digest_capacity >= self.plumtree.seen_capacity {
            return Err(Error::Config(
                "plumtree: digest_capacity must be below seen_capacity".into(),
            ));
        }
        if self.gossip.fanout == 0 {
            return Err(Error::Config("gossip: fanout must be at least 1".into()));
        }
        Ok(())
    }
}

/// A [`Config`] validated once, its per-protocol parts behind shared pointers: build many
/// nodes from it with [`PeerService::with_shared`].
#[derive(Clone, Debug)]
pub struct SharedConfig {
    config: Config,
    hyparview: Arc<hyparview::Config>,
    plumtree: Arc<plumtree::Config>,
}

impl SharedConfig {
    /// Validates `config` ([`Config::validate`]) and wraps it.
    pub fn new(config: Config) -> Result<Self, Error> {
        config.validate()?;
        Ok(SharedConfig {
            hyparview: Arc::new(config.hyparview.clone()),
            plumtree: Arc::new(config.plumtree.clone()),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// The service's wire messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceMessage<P: Ord, B> {
    /// HyParView.
    HyParView(hyparview::Message<P>),
    /// Full / client-server membership.
    Full(full::Message<P>),
    /// Plumtree.
    Plumtree(plumtree::Message<P, B>),
    /// Fanout gossip.
    Gossip(gossip::Message<P, B>),
    /// A payload sent to one neighbour.
    Direct(B),
}

/// The service's timers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceTimer<P> {
    /// HyParView's.
    HyParView(hyparview::Timer<P>),
    /// Full / client-server's.
    Full(full::Timer),
    /// Plumtree's.
    Plumtree(plumtree::Timer<P>),
}

/// What the service reports to the layer above.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceEvent<P, B> {
    /// A new neighbour.
    NeighbourUp(P),
    /// A neighbour is gone.
    NeighbourDown(P),
    /// A broadcast arrived (first time only).
    Delivered {
        /// Its id.
        id: MsgId<P>,
        /// The payload.
        payload: B,
        /// Hops it travelled.
        round: u32,
    },
    /// A direct message from a peer.
    Received {
        /// The sender.
        from: P,
        /// The payload.
        payload: B,
    },
}

/// The buffer the service appends to.
pub type ServiceOutbox<P, B> = Outbox<P, ServiceMessage<P, B>, ServiceTimer<P>, ServiceEvent<P, B>>;

// One per node, never moved in bulk (as `Broadcast` below): no box needed.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Membership<P: Ord> {
    HyParView(HyParView<P>),
    Full(FullMembership<P>),
}

// One per node, never moved in bulk: boxing the larger variant would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Broadcast<P, B> {
    Plumtree(Plumtree<P, B>),
    Gossip(Gossip<P, B>),
}

/// The peer service of one node.
#[derive(Clone, Debug)]
pub struct PeerService<P: Ord, B> {
    me: P,
    mode: Mode,
    membership: Membership<P>,
    broadcast: Broadcast<P, B>,
    neighbours: BTreeSet<P>,
}

impl<P: Peer, B: Clone> PeerService<P, B> {
    /// Builds the service for node `me`; fails on invalid configuration.
    pub fn new(me: P, config: Config) -> Result<Self, Error> {
        Ok(Self::with_shared(me, &SharedConfig::new(config)?))
    }

    /// Builds the service for node `me` from a configuration validated once and shared by
    /// many nodes (a simulation of millions): the HyParView and Plumtree parameters are not
    /// copied per node. The same service as [`PeerService::new`] with that configuration.
    pub fn with_shared(me: P, shared: &SharedConfig) -> Self {
        let config = &shared.config;
        let membership = match config.mode {
            Mode::HyParView => {
                Membership::HyParView(HyParView::new(me.clone(), shared.hyparview.clone()))
            }
            Mode::Full => Membership::Full(FullMembership::new(
                me.clone(),
                Topology::Full,
                config.full.clone(),
            )),
            Mode::ClientServer => Membership::Full(FullMembership::new(
                me.clone(),
                Topology::ClientServer(config.role),
                config.full.clone(),
            )),
        };
        let broadcast = match config.broadcast {
            BroadcastMode::Plumtree => {
                Broadcast::Plumtree(Plumtree::new(me.clone(), shared.plumtree.clone()))
            }
            BroadcastMode::Gossip => {
                Broadcast::Gossip(Gossip::new(me.clone(), config.gossip.clone()))
            }
        };
        PeerService {
            me,
            mode: config.mode,
            membership,
            broadcast,
            neighbours: BTreeSet::new(),
        }
    }

    /// This node.
    pub fn me(&self) -> &P {
        &self.me
    }

    /// The membership mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Current neighbours (HyParView's active view; the reachable members otherwise).
    pub fn neighbours(&self) -> &BTreeSet<P> {
        &self.neighbours
    }

    /// HyParView's passive view (empty in the other modes).
    pub fn passive(&self) -> Vec<P> {
        match &self.membership {
            Membership::HyParView(h) => h.passive().to_vec(),
            Membership::Full(_) => Vec::new(),
        }
    }

    /// The HyParView core, in that mode.
    pub fn hyparview(&self) -> Option<&HyParView<P>> {
        match &self.membership {
            Membership::HyParView(h) => Some(h),
            Membership::Full(_) => None,
        }
    }

    /// The full / client-server core, in those modes.
    pub fn full(&self) -> Option<&FullMembership<P>> {
        match &self.membership {
            Membership::Full(f) => Some(f),
            Membership::HyParView(_) => None,
        }
    }

    /// The Plumtree core, if that is the broadcast.
    pub fn plumtree(&self) -> Option<&Plumtree<P, B>> {
        match &self.broadcast {
            Broadcast::Plumtree(p) => Some(p),
            Broadcast::Gossip(_) => None,
        }
    }

    /// Arms the timers (once).
    pub fn start<R: Rng + ?Sized>(&mut self, rng: &mut R, out: &mut ServiceOutbox<P, B>) {
        self.membership(
            rng,
            out,
            |h, rng, o| h.start(rng, o),
            |f, rng, o| f.start(rng, o),
        );
    }

    /// Joins the cluster through seed nodes (starting the timers if needed).
    pub fn join<R: Rng + ?Sized>(
        &mut self,
        seeds: Vec<P>,
        now: Time,
        rng: &mut R,
        out: &mut ServiceOutbox<P, B>,
    ) {
        let again = seeds.clone();
        self.membership(
            rng,
            out,
            |h, rng, o| h.join(seeds, rng, o),
            |f, rng, o| f.join(again, now, rng, o),
        );
    }

    /// Leaves the cluster, telling the neighbours.
    pub fn leave<R: Rng + ?Sized>(&mut self, rng: &mut R, out: &mut ServiceOutbox<P, B>) {
        self.membership(rng, out, |h, _, o| h.leave(o), |f, _, o| f.leave(o));
    }

    /// Sends `payload` to `to` (normally a neighbour; the driver dials otherwise). It arrives
    /// as [`ServiceEvent::Received`].
    pub fn send(&mut self, to: P, payload: B, out: &mut ServiceOutbox<P, B>) {
        out.push(Out::Send {
            to,
            msg: ServiceMessage::Direct(payload),
        });
    }

    /// Broadcasts `payload` to every node (not delivered locally); returns its id.
    pub fn broadcast<R: Rng + ?Sized>(
        &mut self,
        payload: B,
        rng: &mut R,
        out: &mut ServiceOutbox<P, B>,
    ) -> MsgId<P> {
        match &mut self.broadcast {
            Broadcast::Plumtree(p) => {
                let mut o = Vec::new();
                let id = p.broadcast(payload, &mut o);
                lift_broadcast(o, out, ServiceMessage::Plumtree, ServiceTimer::Plumtree);
                id
            }
            Broadcast::Gossip(g) => {
                let mut o = Vec::new();
                let id = g.broadcast(payload, rng, &mut o);
                lift_broadcast(o, out, ServiceMessage::Gossip, |t| match t {});
                id
            }
        }
    }

    fn neighbour_event(&mut self, e: hyparview::Event<P>, out: &mut ServiceOutbox<P, B>) {
        match e {
            hyparview::Event::NeighbourUp(p) => {
                if self.neighbours.insert(p.clone()) {
                    match &mut self.broadcast {
                        Broadcast::Plumtree(b) => {
                            let mut o = Vec::new();
                            b.neighbour_up(p.clone(), &mut o);
                            lift_broadcast(
                                o,
                                out,
                                ServiceMessage::Plumtree,
                                ServiceTimer::Plumtree,
                            );
                        }
                        Broadcast::Gossip(g) => g.neighbour_up(p.clone()),
                    }
                    out.push(Out::Event(ServiceEvent::NeighbourUp(p)));
                }
            }
            hyparview::Event::NeighbourDown(p) => {
                if self.neighbours.remove(&p) {
                    match &mut self.broadcast {
                        Broadcast::Plumtree(b) => b.neighbour_down(&p),
                        Broadcast::Gossip(g) => g.neighbour_down(&p),
                    }
                    out.push(Out::Event(ServiceEvent::NeighbourDown(p)));
                }
            }
        }
    }

    /// Runs the membership core (`on_hyparview` or `on_full`, whichever runs here) and lifts
    /// what it wrote.
    fn membership<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        out: &mut ServiceOutbox<P, B>,
        on_hyparview: impl FnOnce(&mut HyParView<P>, &mut R, &mut hyparview::HvOutbox<P>),
        on_full: impl FnOnce(&mut FullMembership<P>, &mut R, &mut full::FullOutbox<P>),
    ) {
        match &mut self.membership {
            Membership::HyParView(h) => {
                let mut o = Vec::new();
                on_hyparview(h, rng, &mut o);
                self.lift_membership(o, ServiceMessage::HyParView, ServiceTimer::HyParView, out);
            }
            Membership::Full(f) => {
                let mut o = Vec::new();
                on_full(f, rng, &mut o);
                self.lift_membership(o, ServiceMessage::Full, ServiceTimer::Full, out);
            }
        }
    }

    /// [`lift`] for a membership core: its neighbour changes feed the broadcast core and go
    /// upward.
    fn lift_membership<M, T>(
        &mut self,
        o: Outbox<P, M, T, hyparview::Event<P>>,
        msg: impl Fn(M) -> ServiceMessage<P, B>,
        timer: impl Fn(T) -> ServiceTimer<P>,
        out: &mut ServiceOutbox<P, B>,
    ) {
        lift(o, out, msg, timer, |e, out| self.neighbour_event(e, out));
    }
}

impl<P: Peer, B: Clone> Core<P> for PeerService<P, B> {
    type Message = ServiceMessage<P, B>;
    type Timer = ServiceTimer<P>;
    type Event = ServiceEvent<P, B>;

    /// Handles a message from `from`. Messages for a protocol not running here are dropped
    /// (a peer configured differently).
    fn on_message<R: Rng + ?Sized>(
        &mut self,
        from: P,
        msg: ServiceMessage<P, B>,
        now: Time,
        rng: &mut R,
        out: &mut ServiceOutbox<P, B>,
    ) {
        match (msg, &mut self.membership, &mut self.broadcast) {
            (ServiceMessage::HyParView(m), Membership::HyParView(h), _) => {
                let mut o = Vec::new();
                h.on_message(from, m, now, rng, &mut o);
                self.lift_membership(o, ServiceMessage::HyParView, ServiceTimer::HyParView, out);
            }
            (ServiceMessage::Full(m), Membership::Full(f), _) => {
                let mut o = Vec::new();
                f.on_message(from, m, now, rng, &mut o);
                self.lift_membership(o, ServiceMessage::Full, ServiceTimer::Full, out);
            }
            (ServiceMessage::Plumtree(m), _, Broadcast::Plumtree(p)) => {
                let mut o = Vec::new();
                p.on_message(from, m, now, rng, &mut o);
                lift_broadcast(o, out, ServiceMessage::Plumtree, ServiceTimer::Plumtree);
            }
            (ServiceMessage::Gossip(m), _, Broadcast::Gossip(g)) => {
                let mut o = Vec::new();
                g.on_message(from, m, now, rng, &mut o);
                lift_broadcast(o, out, ServiceMessage::Gossip, |t| match t {});
            }
            (ServiceMessage::Direct(payload), _, _) => {
                out.push(Out::Event(ServiceEvent::Received { from, payload }))
            }
            _ => {}
        }
    }

    /// Handles a timer. A timer of a protocol not running here (the configuration changed
    /// across a restart) is ignored.
    fn on_timer<R: Rng + ?Sized>(
        &mut self,
        timer: ServiceTimer<P>,
        now: Time,
        rng: &mut R,
        out: &mut ServiceOutbox<P, B>,
    ) {
        match (timer, &mut self.membership, &mut self.broadcast) {
            (ServiceTimer::HyParView(t), Membership::HyParView(h), _) => {
                let mut o = Vec::new();
                h.on_timer(t, now, rng, &mut o);
                self.lift_membership(o, ServiceMessage::HyParView, ServiceTimer::HyParView, out);
            }
            (ServiceTimer::Full(t), Membership::Full(f), _) => {
                let mut o = Vec::new();
                f.on_timer(t, now, rng, &mut o);
                self.lift_membership(o, ServiceMessage::Full, ServiceTimer::Full, out);
            }
            (ServiceTimer::Plumtree(t), _, Broadcast::Plumtree(p)) => {
                let mut o = Vec::new();
                p.on_timer(t, now, rng, &mut o);
                lift_broadcast(o, out, ServiceMessage::Plumtree, ServiceTimer::Plumtree);
            }
            _ => {}
        }
    }

    /// The driver lost the connection to `peer` (the failure detector): the membership core
    /// decides; the broadcast core hears of it as a neighbour change.
    fn peer_down<R: Rng + ?Sized>(
        &mut self,
        peer: &P,
        now: Time,
        rng: &mut R,
        out: &mut ServiceOutbox<P, B>,
    ) {
        self.membership(
            rng,
            out,
            |h, rng, o| h.peer_down(peer, now, rng, o),
            |f, rng, o| f.peer_down(peer, now, rng, o),
        );
    }

    fn kind(msg: &ServiceMessage<P, B>) -> &'static str {
        match msg {
            ServiceMessage::HyParView(hyparview::Message::KeepAlive) => "hv_keepalive",
            ServiceMessage::HyParView(_) => "hv",
            ServiceMessage::Full(full::Message::Heartbeat) => "full_heartbeat",
            ServiceMessage::Full(_) => "full_state",
            ServiceMessage::Plumtree(plumtree::Message::Gossip { .. }) => PAYLOAD,
            ServiceMessage::Plumtree(_) => "pt_control",
            ServiceMessage::Gossip(gossip::Message::Push { .. }) => PAYLOAD,
            ServiceMessage::Direct(_) => "direct",
        }
    }
}

/// Moves a sub-core's outputs into the service's outbox, in order: messages and timers
/// wrapped by `msg` and `timer`, events handed to `event`, connection hints as they are.
fn lift<P, B, M, T, E>(
    o: Outbox<P, M, T, E>,
    out: &mut ServiceOutbox<P, B>,
    msg: impl Fn(M) -> ServiceMessage<P, B>,
    timer: impl Fn(T) -> ServiceTimer<P>,
    mut event: impl FnMut(E, &mut ServiceOutbox<P, B>),
) where
    P: Ord,
{
    for x in o {
        match x {
            Out::Send { to, msg: m } => out.push(Out::Send { to, msg: msg(m) }),
            Out::Connect(p) => out.push(Out::Connect(p)),
            Out::Disconnect(p) => out.push(Out::Disconnect(p)),
            Out::Timer { after, timer: t } => out.push(Out::Timer {
                after,
                timer: timer(t),
            }),
            Out::Event(e) => event(e, out),
        }
    }
}

/// [`lift`] for a broadcast core: a delivery goes upward as [`ServiceEvent::Delivered`].
fn lift_broadcast<P: Ord, B, M, T>(
    o: Outbox<P, M, T, plumtree::Event<P, B>>,
    out: &mut ServiceOutbox<P, B>,
    msg: impl Fn(M) -> ServiceMessage<P, B>,
    timer: impl Fn(T) -> ServiceTimer<P>,
) {
    lift(o, out, msg, timer, |e, out| {
        let plumtree::Event::Delivered {
            id, payload, round, ..
        } = e;
        out.push(Out::Event(ServiceEvent::Delivered { id, payload, round }));
    });
}
