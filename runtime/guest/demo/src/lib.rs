//! rasp's demo protocol (`rasp_runtime::demo`) written against the guest SDK and compiled
//! to WebAssembly: the same messages (kinds `demo/ping`, `demo/pong`, `demo/gossip`, same
//! MessagePack shapes), the same store keys and the same outcome, so a cluster can mix
//! native and WebAssembly demo atoms, and a run of this module is compared with the native
//! one in the simulator and on real processes.
//!
//! The atom's argument is the MessagePack encoding of [`DemoConfig`]; an empty argument is
//! the default config. When done it stores its [`DemoOutcome`] under [`OUTCOME_KEY`] and
//! logs `demo done`.
#![allow(unsafe_code)] // `export_atom!` writes `#[no_mangle]` exports.

use rasp_guest::{Atom, Contact, Ctx, Dest, Level, Message, NodeId, PeerEvent, RequestError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Service name of the demo atom.
pub const SERVICE: &str = "demo";
/// Store key of this node's own count.
pub const COUNT_KEY: &[u8] = b"demo/count";
/// Store key of the outcome, written once done.
pub const OUTCOME_KEY: &[u8] = b"demo/outcome";

/// The demo's parameters (the native `DemoConfig`, same encoding).
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

/// What a node reports when done (the native `DemoOutcome`, same encoding).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoOutcome {
    /// Entries of the counter.
    pub entries: u32,
    /// The counter's value.
    pub total: u64,
    /// Pongs received.
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

/// The demo atom.
pub struct Demo {
    cfg: DemoConfig,
    counter: BTreeMap<NodeId, u64>,
    known: BTreeMap<NodeId, Contact>,
    ponged: BTreeSet<NodeId>,
    pinging: BTreeSet<NodeId>,
    done: bool,
}

impl Demo {
    fn outcome(&self) -> DemoOutcome {
        DemoOutcome {
            entries: self.counter.len() as u32,
            total: self.counter.values().sum(),
            pongs: self.ponged.len() as u32,
        }
    }

    fn check_done(&mut self, ctx: &mut Ctx<Self>) {
        if self.done {
            return;
        }
        let o = self.outcome();
        let complete = o.entries == self.cfg.nodes
            && self.counter.values().all(|&c| c >= self.cfg.increments)
            && o.pongs + 1 == self.cfg.nodes;
        if complete {
            ctx.log(
                Level::Info,
                &format!(
                    "demo done: entries={} total={} pongs={}",
                    o.entries, o.total, o.pongs
                ),
            );
            if let Err(e) = ctx.store_put_as(OUTCOME_KEY, &o) {
                ctx.log(Level::Warn, &format!("demo: cannot store outcome: {e}"));
            }
            ctx.count("demo_done", 1);
            self.done = true;
        }
    }

    fn learn(&mut self, ctx: &mut Ctx<Self>, c: Contact) {
        if c.node == ctx.node() {
            return;
        }
        let new = !self.known.contains_key(&c.node);
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
            &Ping,
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
    fn new(arg: &[u8]) -> Self {
        let cfg = if arg.is_empty() {
            DemoConfig::default()
        } else {
            // A config that does not decode is the spawner's mistake; the default keeps
            // the atom running, and `init` logs the reason.
            rmp_serde::from_slice(arg).unwrap_or_default()
        };
        Demo {
            cfg,
            counter: BTreeMap::new(),
            known: BTreeMap::new(),
            ponged: BTreeSet::new(),
            pinging: BTreeSet::new(),
            done: false,
        }
    }

    fn init(&mut self, ctx: &mut Ctx<Self>) {
        if let Err(e) = ctx.register(SERVICE) {
            ctx.log(Level::Error, &format!("demo: {e}"));
            ctx.stop_self();
            return;
        }
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
                        ctx.log(Level::Warn, &format!("demo: cannot persist count: {e}"));
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
                ctx.send(Dest::service(p, SERVICE), &msg);
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
        ctx.on::<Ping>(|_, ctx, from, Ping| ctx.reply(from, &Pong));
        ctx.on_peer(|a, ctx, ev| {
            if let PeerEvent::Up(p) = ev {
                let c = ctx.contact(p).unwrap_or(Contact {
                    node: p,
                    addrs: Vec::new(),
                });
                a.learn(ctx, c);
            }
        });
    }
}

rasp_guest::export_atom!(Demo);
