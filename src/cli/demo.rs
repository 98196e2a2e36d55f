//! The demo protocol of issue 3 §4: ping-pong plus a gossiped grow-only counter across N
//! nodes, written once as an atom and run both in the simulator and as real processes
//! (`rasp node --demo-nodes N`). Its [`DemoOutcome`] does not depend on node ids, timing or
//! topology, so the two worlds must agree exactly.
//!
//! Each node:
//! - increments its own entry of a grow-only counter (a map node → count, merged by
//!   pointwise max) `increments` times, one every [`INCREMENT_EVERY`], persisting its own
//!   count in the durable store (key `demo/count`) so a restarted node resumes;
//! - every [`GOSSIP_EVERY`] sends its whole counter to every connected peer (state-based
//!   anti-entropy; idempotent, so lost or duplicated gossip is harmless and a star topology
//!   suffices);
//! - plays `pings` request/reply rounds with every peer that comes up (retrying a round
//!   whose reply times out);
//! - is done when the counter has `nodes` entries of `increments` each and every peer it
//!   met has answered all its rounds.
//!
//! This file is compiled into the `rasp` binary and, unchanged, into the parity test
//! (`tests/net_parity.rs`) that runs it under the simulator.
#![allow(dead_code)]

use rasp_runtime::{Atom, Contact, Ctx, Dest, Message, NodeId, PeerEvent, RequestError, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Period of the increments.
pub const INCREMENT_EVERY: Duration = Duration::from_millis(10);
/// Period of the counter gossip.
pub const GOSSIP_EVERY: Duration = Duration::from_millis(25);
/// Timeout of one ping round.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Service name of the demo atom.
pub const SERVICE: &str = "demo";
/// Store key of this node's own count.
pub const COUNT_KEY: &[u8] = b"demo/count";

/// The demo's parameters (the same on every node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoConfig {
    /// Nodes in the cluster.
    pub nodes: u32,
    /// Increments per node.
    pub increments: u64,
    /// Ping-pong rounds with each peer.
    pub pings: u32,
}

/// What one node reports when done; equal on every node and in both worlds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoOutcome {
    /// Entries of the counter (= nodes).
    pub entries: usize,
    /// The counter's value (= nodes × increments).
    pub total: u64,
    /// The entries' values, sorted (ids differ between worlds, values do not).
    pub per_node: Vec<u64>,
    /// Ping-pong rounds completed with each peer met (all equal to `pings`).
    pub ping_rounds: Vec<u32>,
}

/// A ping round.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ping(pub u32);
impl Message for Ping {
    const KIND: &'static str = "demo/ping";
}

/// The answer to a ping round.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pong(pub u32);
impl Message for Pong {
    const KIND: &'static str = "demo/pong";
}

/// A whole grow-only counter state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Gossip(pub BTreeMap<NodeId, u64>);
impl Message for Gossip {
    const KIND: &'static str = "demo/gossip";
}

/// The demo atom.
#[derive(Debug)]
pub struct Demo {
    cfg: DemoConfig,
    /// Contacts to connect to at start (the simulator's way to join; on the network
    /// `--join` connects instead).
    contacts: Vec<Contact>,
    counter: BTreeMap<NodeId, u64>,
    /// Completed rounds per peer met.
    rounds: BTreeMap<NodeId, u32>,
    /// The outcome, once done (and when).
    pub done: Option<(Time, DemoOutcome)>,
}

impl Demo {
    /// A demo atom with `cfg`, connecting to `contacts` at start.
    pub fn new(cfg: DemoConfig, contacts: Vec<Contact>) -> Self {
        Demo {
            cfg,
            contacts,
            counter: BTreeMap::new(),
            rounds: BTreeMap::new(),
            done: None,
        }
    }

    /// The outcome as it stands.
    pub fn outcome(&self) -> DemoOutcome {
        let mut per_node: Vec<u64> = self.counter.values().copied().collect();
        per_node.sort_unstable();
        DemoOutcome {
            entries: self.counter.len(),
            total: self.counter.values().sum(),
            per_node,
            ping_rounds: self.rounds.values().copied().collect(),
        }
    }

    fn check_done(&mut self, now: Time) {
        if self.done.is_some() {
            return;
        }
        let complete = self.counter.len() == self.cfg.nodes as usize
            && self.counter.values().all(|&c| c == self.cfg.increments)
            && (self.cfg.nodes == 1 || !self.rounds.is_empty())
            && self.rounds.values().all(|&r| r == self.cfg.pings);
        if complete {
            self.done = Some((now, self.outcome()));
        }
    }

    fn ping(&mut self, ctx: &mut Ctx<Self>, peer: NodeId, round: u32) {
        if round > self.cfg.pings {
            return;
        }
        ctx.request(
            Dest::service(peer, SERVICE),
            Ping(round),
            PING_TIMEOUT,
            move |me: &mut Demo, ctx, r: Result<Pong, RequestError>| match r {
                Ok(Pong(n)) if n == round => {
                    let r = me.rounds.entry(peer).or_insert(0);
                    *r = (*r).max(round);
                    me.check_done(ctx.now());
                    me.ping(ctx, peer, round + 1);
                }
                // A timeout or a stale answer: retry the round while connected.
                _ if ctx.connected().contains(&peer) => me.ping(ctx, peer, round),
                _ => {}
            },
        );
    }
}

impl Atom for Demo {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.register(SERVICE).expect("one demo atom per node");
        let me = ctx.node();
        let mine: u64 = ctx.store_get_as(COUNT_KEY).ok().flatten().unwrap_or(0);
        self.counter.insert(me, mine);
        for c in std::mem::take(&mut self.contacts) {
            ctx.connect(&c);
        }
        ctx.every(INCREMENT_EVERY, move |a, ctx| {
            let c = a.counter.entry(me).or_insert(0);
            if *c < a.cfg.increments {
                *c += 1;
                let v = *c;
                if let Err(e) = ctx.store_put_as(COUNT_KEY, &v) {
                    tracing::warn!("demo: cannot persist count: {e}");
                }
                a.check_done(ctx.now());
            }
        });
        ctx.every(GOSSIP_EVERY, |a, ctx| {
            for p in ctx.connected() {
                ctx.send(Dest::service(p, SERVICE), Gossip(a.counter.clone()));
            }
        });
        ctx.on::<Gossip>(|a, ctx, _, Gossip(theirs)| {
            for (n, v) in theirs {
                let e = a.counter.entry(n).or_insert(0);
                *e = (*e).max(v);
            }
            a.check_done(ctx.now());
        });
        ctx.on::<Ping>(|_, ctx, from, Ping(n)| ctx.reply(from, Pong(n)));
        ctx.on_peer(|a, ctx, ev| {
            if let PeerEvent::Up(p) = ev {
                // First meeting, or a reconnection that interrupted the rounds: (re)start
                // from the first unanswered round.
                let done = *a.rounds.entry(p).or_insert(0);
                if done < a.cfg.pings {
                    a.ping(ctx, p, done + 1);
                }
            }
        });
    }
}
