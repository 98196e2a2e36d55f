//! Atoms shared by the simulator tests.
#![allow(dead_code)]

use rasp_runtime::{Atom, AtomAddr, AtomId, Ctx, Dest, Message, NodeId, Origin, PeerEvent, Time};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A numbered message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seq(pub u64);
impl Message for Seq {
    const KIND: &'static str = "test/seq";
}

/// Request and response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ask(pub u64);
impl Message for Ask {
    const KIND: &'static str = "test/ask";
}
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer(pub u64);
impl Message for Answer {
    const KIND: &'static str = "test/answer";
}

/// The first atom of a node.
pub fn atom0(node: u64) -> AtomAddr {
    AtomAddr::new(NodeId(node), AtomId(0))
}

/// Sends `count` Seq messages to `to`, one every `interval`, starting after `interval`.
pub struct Sender {
    pub to: Dest,
    pub count: u64,
    pub interval: Duration,
    pub sent: u64,
}

impl Sender {
    pub fn new(to: impl Into<Dest>, count: u64, interval: Duration) -> Self {
        Sender {
            to: to.into(),
            count,
            interval,
            sent: 0,
        }
    }
}

impl Atom for Sender {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        let t = ctx.every(self.interval, |me, ctx| {
            if me.sent < me.count {
                ctx.send(me.to, Seq(me.sent));
                me.sent += 1;
            }
        });
        let _ = t;
    }
}

/// Records every Seq it receives with the (local) arrival time; answers Ask(n) with
/// Answer(n * 2); records peer events.
#[derive(Default)]
pub struct Sink {
    pub got: Vec<(Time, u64)>,
    pub asks: u64,
    pub peers: Vec<(Time, PeerEvent)>,
}

impl Atom for Sink {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.on::<Seq>(|me, ctx, _from: &Origin, Seq(n)| me.got.push((ctx.now(), n)));
        ctx.on::<Ask>(|me, ctx, from: &Origin, Ask(n)| {
            me.asks += 1;
            ctx.reply(from, Answer(n * 2));
        });
        ctx.on_peer(|me, ctx, ev| me.peers.push((ctx.now(), ev)));
    }
}

impl Sink {
    /// Number of adjacent pairs received out of order.
    pub fn inversions(&self) -> usize {
        self.got.windows(2).filter(|w| w[1].1 < w[0].1).count()
    }
}
