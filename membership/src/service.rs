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
use crate::proto::{Out, Outbox, Peer, Time};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Which membership protocol runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every node knows and heartbeats every node.
    Full,
    /// Servers connect to all, clients to servers.
    ClientServer,
    /// HyParView partial views (Partisan's default, and ours).
    #[default]
    #[serde(rename = "hyparview")]
    HyParView,
}

impl FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "full" => Ok(Mode::Full),
            "client-server" => Ok(Mode::ClientServer),
            "hyparview" => Ok(Mode::HyParView),
            other => Err(Error::UnknownMode(other.to_string())),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Full => "full",
            Mode::ClientServer => "client-server",
            Mode::HyParView => "hyparview",
        })
    }
}

/// Which broadcast protocol runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BroadcastMode {
    /// Epidemic broadcast trees.
    #[default]
    Plumtree,
    /// Fanout gossip.
    Gossip,
}

impl FromStr for BroadcastMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "plumtree" => Ok(BroadcastMode::Plumtree),
            "gossip" => Ok(BroadcastMode::Gossip),
            other => Err(Error::UnknownBroadcast(other.to_string())),
        }
    }
}

impl fmt::Display for BroadcastMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BroadcastMode::Plumtree => "plumtree",
            BroadcastMode::Gossip => "gossip",
        })
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
        if self.gossip.fanout == 0 {
            return Err(Error::Config("gossip: fanout must be at least 1".into()));
        }
        Ok(())
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
        config.validate()?;
        let membership = match config.mode {
            Mode::HyParView => Membership::HyParView(HyParView::new(me.clone(), config.hyparview)),
            Mode::Full => {
                Membership::Full(FullMembership::new(me.clone(), Topology::Full, config.full))
            }
            Mode::ClientServer => Membership::Full(FullMembership::new(
                me.clone(),
                Topology::ClientServer(config.role),
                config.full,
            )),
        };
        let broadcast = match config.broadcast {
            BroadcastMode::Plumtree => {
                Broadcast::Plumtree(Plumtree::new(me.clone(), config.plumtree))
            }
            BroadcastMode::Gossip => Broadcast::Gossip(Gossip::new(me.clone(), config.gossip)),
        };
        Ok(PeerService {
            me,
            mode: config.mode,
            membership,
            broadcast,
            neighbours: BTreeSet::new(),
        })
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
        match &mut self.membership {
            Membership::HyParView(h) => {
                let mut o = Vec::new();
                h.start(rng, &mut o);
                self.lift_membership(o, rng, out);
            }
            Membership::Full(f) => {
                let mut o = Vec::new();
                f.start(rng, &mut o);
                self.lift_full(o, rng, out);
            }
        }
    }

    /// Joins the cluster through seed nodes (starting the timers if needed).
    pub fn join<R: Rng + ?Sized>(
        &mut self,
        seeds: Vec<P>,
        now: Time,
        rng: &mut R,
        out: &mut ServiceOutbox<P, B>,
    ) {
        match &mut self.membership {
            Membership::HyParView(h) => {
                let mut o = Vec::new();
                h.join(seeds, rng, &mut o);
                self.lift_membership(o, rng, out);
            }
            Membership::Full(f) => {
                let mut o = Vec::new();
                f.join(seeds, now, rng, &mut o);
                self.lift_full(o, rng, out);
            }
        }
    }

    /// Leaves the cluster, telling the neighbours.
    pub fn leave<R: Rng + ?Sized>(&mut self, rng: &mut R, out: &mut ServiceOutbox<P, B>) {
        match &mut self.membership {
            Membership::HyParView(h) => {
                let mut o = Vec::new();
                h.leave(&mut o);
                self.lift_membership(o, rng, out);
            }
            Membership::Full(f) => {
                let mut o = Vec::new();
                f.leave(&mut o);
                self.lift_full(o, rng, out);
            }
        }
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
                lift_plumtree(o, out);
                id
            }
            Broadcast::Gossip(g) => {
                let mut o = Vec::new();
                let id = g.broadcast(payload, rng, &mut o);
                lift_gossip(o, out);
                id
            }
        }
    }

    /// The driver lost the connection to `peer` (the failure detector).
    pub fn peer_down<R: Rng + ?Sized>(
        &mut self,
        peer: &P,
        now: Time,
        rng: &mut R,
        out: &mut ServiceOutbox<P, B>,
    ) {
        match &mut self.membership {
            Membership::HyParView(h) => {
                let mut o = Vec::new();
                h.peer_down(peer, now, rng, &mut o);
                self.lift_membership(o, rng, out);
            }
            Membership::Full(f) => {
                let mut o = Vec::new();
                f.peer_down(peer, &mut o);
                self.lift_full(o, rng, out);
            }
        }
    }

    /// Handles a timer.
    pub fn on_timer<R: Rng + ?Sized>(
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
                self.lift_membership(o, rng, out);
            }
            (ServiceTimer::Full(t), Membership::Full(f), _) => {
                let mut o = Vec::new();
                f.on_timer(t, now, rng, &mut o);
                self.lift_full(o, rng, out);
            }
            (ServiceTimer::Plumtree(t), _, Broadcast::Plumtree(p)) => {
                let mut o = Vec::new();
                p.on_timer(t, now, rng, &mut o);
                lift_plumtree(o, out);
            }
            // A timer of a protocol not running here (config changed across a restart): ignore.
            _ => {}
        }
    }

    /// Handles a message from `from`. Messages for a protocol not running here are dropped
    /// (a peer configured differently).
    pub fn on_message<R: Rng + ?Sized>(
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
                self.lift_membership(o, rng, out);
            }
            (ServiceMessage::Full(m), Membership::Full(f), _) => {
                let mut o = Vec::new();
                f.on_message(from, m, now, rng, &mut o);
                self.lift_full(o, rng, out);
            }
            (ServiceMessage::Plumtree(m), _, Broadcast::Plumtree(p)) => {
                let mut o = Vec::new();
                p.on_message(from, m, now, rng, &mut o);
                lift_plumtree(o, out);
            }
            (ServiceMessage::Gossip(m), _, Broadcast::Gossip(g)) => {
                let mut o = Vec::new();
                g.on_message(from, m, now, rng, &mut o);
                lift_gossip(o, out);
            }
            (ServiceMessage::Direct(payload), _, _) => {
                out.push(Out::Event(ServiceEvent::Received { from, payload }))
            }
            _ => {}
        }
    }

    fn neighbour_event<R: Rng + ?Sized>(
        &mut self,
        e: hyparview::Event<P>,
        _rng: &mut R,
        out: &mut ServiceOutbox<P, B>,
    ) {
        match e {
            hyparview::Event::NeighbourUp(p) => {
                if self.neighbours.insert(p.clone()) {
                    match &mut self.broadcast {
                        Broadcast::Plumtree(b) => b.neighbour_up(p.clone()),
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

    fn lift_membership<R: Rng + ?Sized>(
        &mut self,
        o: hyparview::HvOutbox<P>,
        rng: &mut R,
        out: &mut ServiceOutbox<P, B>,
    ) {
        for x in o {
            match x {
                Out::Send { to, msg } => out.push(Out::Send {
                    to,
                    msg: ServiceMessage::HyParView(msg),
                }),
                Out::Connect(p) => out.push(Out::Connect(p)),
                Out::Disconnect(p) => out.push(Out::Disconnect(p)),
                Out::Timer { after, timer } => out.push(Out::Timer {
                    after,
                    timer: ServiceTimer::HyParView(timer),
                }),
                Out::Event(e) => self.neighbour_event(e, rng, out),
            }
        }
    }

    fn lift_full<R: Rng + ?Sized>(
        &mut self,
        o: full::FullOutbox<P>,
        rng: &mut R,
        out: &mut ServiceOutbox<P, B>,
    ) {
        for x in o {
            match x {
                Out::Send { to, msg } => out.push(Out::Send {
                    to,
                    msg: ServiceMessage::Full(msg),
                }),
                Out::Connect(p) => out.push(Out::Connect(p)),
                Out::Disconnect(p) => out.push(Out::Disconnect(p)),
                Out::Timer { after, timer } => out.push(Out::Timer {
                    after,
                    timer: ServiceTimer::Full(timer),
                }),
                Out::Event(e) => self.neighbour_event(e, rng, out),
            }
        }
    }
}

fn delivered<P, B>(e: plumtree::Event<P, B>) -> ServiceEvent<P, B> {
    let plumtree::Event::Delivered {
        id, payload, round, ..
    } = e;
    ServiceEvent::Delivered { id, payload, round }
}

fn lift_plumtree<P: Ord, B>(o: plumtree::PtOutbox<P, B>, out: &mut ServiceOutbox<P, B>) {
    for x in o {
        out.push(match x {
            Out::Send { to, msg } => Out::Send {
                to,
                msg: ServiceMessage::Plumtree(msg),
            },
            Out::Connect(p) => Out::Connect(p),
            Out::Disconnect(p) => Out::Disconnect(p),
            Out::Timer { after, timer } => Out::Timer {
                after,
                timer: ServiceTimer::Plumtree(timer),
            },
            Out::Event(e) => Out::Event(delivered(e)),
        });
    }
}

fn lift_gossip<P: Ord, B>(o: gossip::GossipOutbox<P, B>, out: &mut ServiceOutbox<P, B>) {
    for x in o {
        match x {
            Out::Send { to, msg } => out.push(Out::Send {
                to,
                msg: ServiceMessage::Gossip(msg),
            }),
            Out::Connect(p) => out.push(Out::Connect(p)),
            Out::Disconnect(p) => out.push(Out::Disconnect(p)),
            Out::Timer { timer, .. } => match timer {},
            Out::Event(e) => out.push(Out::Event(delivered(e))),
        }
    }
}
