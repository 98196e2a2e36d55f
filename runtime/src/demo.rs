//! The demo protocol, written once as an atom for the simulator (tests) and real processes
//! alike: ping-pong plus a gossiped grow-only counter across N nodes. [`demo_boot`] gives
//! the boot closure; the config and outcome are plain serde structs.
//!
//! Each node's [`Demo`] atom (service `"demo"`):
//! - increments its own entry of a grow-only counter `increments` times, one every
//!   `increment_every_ms`, persisting its own count (store key `demo/count`) so a restarted
//!   node resumes where it was;
//! - every `gossip_every_ms` sends its whole counter and the contacts it knows to every
//!   connected peer (state-based anti-entropy: merge is pointwise max, so lost, duplicated
//!   or reordered gossip is harmless);
//! - learns peers from its boot config (`join` contacts), from [`PeerEvent::Up`] and from
//!   gossiped contacts, connects to them and pings each until it gets one pong (a timed-out
//!   ping is retried);
//! - is done when the counter has `nodes` entries of `increments` each and every other node
//!   answered a ping: it then writes its [`DemoOutcome`] to the store key
//!   [`OUTCOME_KEY`] (MessagePack) and logs it at `info`.
//!
//! The runtime knows nothing of the lattice crate (it sits below it), so the counter here
//! is a tiny per-node max-merged map rather than `rasp_lattice`'s G-Counter.
//!
//! Expected outcome on every node: `entries == nodes`, `total == nodes * increments`,
//! `pongs == nodes - 1`.

use crate::host::{boot, Boot};
use crate::ids::{Contact, Dest, NodeId, PeerEvent, Time};
use crate::{Atom, Ctx, Message, RequestError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Service name of the demo atom.
pub const SERVICE: &str = "demo";
/// Store key of this node's own count.
pub const COUNT_KEY: &[u8] = b"demo/count";
/// Store key of the outcome, written once done (MessagePack of [`DemoOutcome`]).
pub const OUTCOME_KEY: &[u8] = b"demo/outcome";

/// The demo's parameters: the same on every node except `join`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoConfig {
    /// Nodes in the cluster.
    pub nodes: u32,
    /// Increments per node.
    pub increments: u64,
    /// Period of the increments, in milliseconds.
    pub increment_every_ms: u64,
    /// Period of the gossip, in milliseconds.
    pub gossip_every_ms: u64,
    /// Ping timeout (and retry delay), in milliseconds.
    pub ping_timeout_ms: u64,
    /// Nodes to connect to at start.
    pub join: Vec<Contact>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            nodes: 3,
            increments: 10,
            increment_every_ms: 10,
            gossip_every_ms: 50,
            ping_timeout_ms: 500,
            join: Vec::new(),
        }
    }
}

/// What a node reports when done; the same on every node and in both runtimes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoOutcome {
    /// Entries of the counter (expected: `nodes`).
    pub entries: u32,
    /// The counter's value (expected: `nodes * increments`).
    pub total: u64,
    /// Pongs received, one per other node (expected: `nodes - 1`).
    pub pongs: u32,
}

/// A ping.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ping;
impl Message for Ping {
    const KIND: &'static str = "demo/ping";
}

/// The answer to a ping.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pong;
impl Message for Pong {
    const KIND: &'static str = "demo/pong";
}

/// The counter state and the contacts the sender knows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Gossip {
    /// Per-node counts (merge: pointwise max).
    pub counter: BTreeMap<NodeId, u64>,
    /// Contacts of nodes the sender knows, itself included.
    pub contacts: Vec<Contact>,
}
impl Message for Gossip {
    const KIND: &'static str = "demo/gossip";
}

/// The demo atom. See the [module docs](self).
#[derive(Debug)]
pub struct Demo {
    cfg: DemoConfig,
    counter: BTreeMap<NodeId, u64>,
    known: BTreeMap<NodeId, Contact>,
    ponged: BTreeSet<NodeId>,
    pinging: BTreeSet<NodeId>,
    /// The outcome and the (node-local) time it was reached.
    pub done: Option<(Time, DemoOutcome)>,
}

/// A boot closure spawning one demo atom with `cfg`.
pub fn demo_boot(cfg: DemoConfig) -> Boot {
    boot(move |b| {
        b.spawn(Demo::new(cfg.clone()));
    })
}

/// Decodes the outcome stored under [`OUTCOME_KEY`].
pub fn decode_outcome(bytes: &[u8]) -> Result<DemoOutcome, crate::Error> {
    crate::wire::decode(bytes, "demo outcome")
}

impl Demo {
    /// A demo atom.
    pub fn new(cfg: DemoConfig) -> Self {
        Demo {
            cfg,
            counter: BTreeMap::new(),
            known: BTreeMap::new(),
            ponged: BTreeSet::new(),
            pinging: BTreeSet::new(),
            done: None,
        }
    }

    /// The outcome as it stands.
    pub fn outcome(&self) -> DemoOutcome {
        DemoOutcome {
            entries: self.counter.len() as u32,
            total: self.counter.values().sum(),
            pongs: self.ponged.len() as u32,
        }
    }

    fn check_done(&mut self, ctx: &mut Ctx<Self>) {
        if self.done.is_some() {
            return;
        }
        let o = self.outcome();
        let complete = o.entries == self.cfg.nodes
            && self.counter.values().all(|&c| c >= self.cfg.increments)
            && o.pongs + 1 == self.cfg.nodes;
        if complete {
            tracing::info!(
                node = ctx.node().0,
                entries = o.entries,
                total = o.total,
                pongs = o.pongs,
                "demo done"
            );
            if let Err(e) = ctx.store_put_as(OUTCOME_KEY, &o) {
                tracing::warn!("demo: cannot store outcome: {e}");
            }
            ctx.count("demo_done", 1);
            self.done = Some((ctx.now(), o));
        }
    }

    fn learn(&mut self, ctx: &mut Ctx<Self>, c: Contact) {
        if c.node == ctx.node() {
            return;
        }
        let new = !self.known.contains_key(&c.node);
        // Prefer a contact with addresses over a bare one.
        let better = self
            .known
            .get(&c.node)
            .is_none_or(|k| k.addrs.is_empty() && !c.addrs.is_empty());
        if better {
            self.known.insert(c.node, c.clone());
        }
        if new {
            ctx.connect(&c);
            self.ping(ctx, c.node);
        }
    }

    fn ping(&mut self, ctx: &mut Ctx<Self>, peer: NodeId) {
        if self.ponged.contains(&peer) || !self.pinging.insert(peer) {
            return;
        }
        let timeout = Duration::from_millis(self.cfg.ping_timeout_ms);
        ctx.request(
            Dest::service(peer, SERVICE),
            Ping,
            timeout,
            move |me: &mut Demo, ctx, r: Result<Pong, RequestError>| {
                me.pinging.remove(&peer);
                match r {
                    Ok(Pong) => {
                        me.ponged.insert(peer);
                        ctx.count("demo_pongs", 1);
                        me.check_done(ctx);
                    }
                    Err(_) => {
                        ctx.count("demo_ping_retries", 1);
                        me.ping(ctx, peer);
                    }
                }
            },
        );
    }
}

impl Atom for Demo {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.register(SERVICE).expect("one demo atom per node");
        let me = ctx.node();
        let mine = ctx
            .store_get_as::<u64>(COUNT_KEY)
            .ok()
            .flatten()
            .unwrap_or(0);
        self.counter.insert(me, mine);
        for c in self.cfg.join.clone() {
            self.learn(ctx, c);
        }
        ctx.every(
            Duration::from_millis(self.cfg.increment_every_ms),
            move |a, ctx| {
                let c = a.counter.entry(me).or_insert(0);
                if *c < a.cfg.increments {
                    *c += 1;
                    let v = *c;
                    if let Err(e) = ctx.store_put_as(COUNT_KEY, &v) {
                        tracing::warn!("demo: cannot persist count: {e}");
                    }
                    a.check_done(ctx);
                }
            },
        );
        ctx.every(Duration::from_millis(self.cfg.gossip_every_ms), |a, ctx| {
            let mut contacts: Vec<Contact> = a.known.values().cloned().collect();
            contacts.push(ctx.my_contact());
            let msg = Gossip {
                counter: a.counter.clone(),
                contacts,
            };
            for p in ctx.connected() {
                ctx.send(Dest::service(p, SERVICE), msg.clone());
            }
        });
        ctx.on::<Gossip>(|a, ctx, _, g| {
            for (n, v) in g.counter {
                let e = a.counter.entry(n).or_insert(0);
                *e = (*e).max(v);
            }
            for c in g.contacts {
                a.learn(ctx, c);
            }
            a.check_done(ctx);
        });
        ctx.on::<Ping>(|_, ctx, from, Ping| ctx.reply(from, Pong));
        ctx.on_peer(|a, ctx, ev| {
            if let PeerEvent::Up(p) = ev {
                let c = ctx.contact(p).unwrap_or_else(|| Contact::bare(p));
                a.learn(ctx, c);
            }
        });
    }
}
