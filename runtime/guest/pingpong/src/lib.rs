//! A ping-pong atom for WebAssembly: the guest half of `rasp-wasm`'s `wasm_pingpong`
//! benchmark, which runs the same logic as a native atom beside it.
//!
//! The argument is the MessagePack of [`PingPong`]: a ponger serves `pingpong` and answers
//! every [`Ping`] request with a [`Pong`]; a pinger keeps `window` requests outstanding to
//! its peer's ponger until `count` have been answered, then counts `pp_done`.
#![allow(unsafe_code)] // `export_atom!` writes `#[no_mangle]` exports.

use rasp_guest::{Atom, Ctx, Dest, Message, NodeId, RequestError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The atom's role and workload (shared with the native twin).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingPong {
    /// `false`: answer pings; `true`: send them.
    pub pinger: bool,
    /// The node whose ponger a pinger pings.
    pub peer: u64,
    /// Round trips a pinger makes.
    pub count: u64,
    /// Requests a pinger keeps outstanding.
    pub window: u64,
}

/// A ping.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ping(pub u64);
impl Message for Ping {
    const KIND: &'static str = "pp/ping";
}

/// Its answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pong(pub u64);
impl Message for Pong {
    const KIND: &'static str = "pp/pong";
}

/// The atom.
pub struct Atomic {
    cfg: PingPong,
    sent: u64,
    answered: u64,
}

impl Atomic {
    fn ping(&mut self, ctx: &mut Ctx<Self>) {
        if self.sent >= self.cfg.count {
            return;
        }
        self.sent += 1;
        ctx.request(
            Dest::service(NodeId(self.cfg.peer), "pingpong"),
            &Ping(self.sent),
            Duration::from_secs(1),
            |me: &mut Atomic, ctx, r: Result<Pong, RequestError>| {
                if r.is_ok() {
                    me.answered += 1;
                    if me.answered == me.cfg.count {
                        ctx.count("pp_done", 1);
                    }
                } else {
                    // Not answered (the peer not up yet, a lost message): ask again.
                    me.sent -= 1;
                }
                me.ping(ctx);
            },
        );
    }
}

impl Atom for Atomic {
    fn new(arg: &[u8]) -> Self {
        Atomic {
            cfg: rmp_serde::from_slice(arg).unwrap_or_default(),
            sent: 0,
            answered: 0,
        }
    }

    fn init(&mut self, ctx: &mut Ctx<Self>) {
        if !self.cfg.pinger {
            if ctx.register("pingpong").is_ok() {
                ctx.on::<Ping>(|_, ctx, from, Ping(n)| ctx.reply(from, &Pong(n)));
            }
            return;
        }
        // A moment for the node to connect (on a real node); retries cover the rest.
        ctx.after(Duration::from_millis(200), |me, ctx| {
            for _ in 0..me.cfg.window {
                me.ping(ctx);
            }
        });
    }
}

rasp_guest::export_atom!(Atomic);
