//! Network runtime tests with nodes inside the test process: peer up/down events reach the
//! atoms, messages flow between nodes, and a peer that stops reading cannot make a node
//! buffer without bound (drop-oldest, counted).

#[path = "net_common/mod.rs"]
mod common;

use common::tempdir;
use rasp_runtime::net::raw::RawPeer;
use rasp_runtime::net::{NetConfig, Node};
use rasp_runtime::{boot, Atom, AtomAddr, AtomId, Ctx, Dest, Message, NodeId, PeerEvent};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

fn cfg(name: &str) -> NetConfig {
    NetConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        data_dir: tempdir(name),
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(600),
        ..NetConfig::default()
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Note(u64);
impl Message for Note {
    const KIND: &'static str = "test/note";
}

/// Asks a watcher to send `Note(.1)` to node `.0`'s atom 0.
#[derive(Clone, Serialize, Deserialize)]
struct Poke(u64, u64);
impl Message for Poke {
    const KIND: &'static str = "test/poke";
}

/// Records peer events and notes; greets every peer that comes up with `Note(1)` to its
/// atom 0.
#[derive(Default)]
struct Watcher {
    events: Vec<PeerEvent>,
    notes: Vec<(NodeId, u64)>,
}

impl Atom for Watcher {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.on_peer(|me, ctx, ev| {
            me.events.push(ev);
            if let PeerEvent::Up(n) = ev {
                ctx.send(AtomAddr::new(n, AtomId(0)), Note(1));
            }
        });
        ctx.on::<Note>(|me, _, from, Note(x)| me.notes.push((from.from.node, x)));
        ctx.on::<Poke>(|_, ctx, _, Poke(n, x)| {
            ctx.send(AtomAddr::new(NodeId(n), AtomId(0)), Note(x))
        });
    }
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn watcher(node: &Node) -> (Vec<PeerEvent>, Vec<(NodeId, u64)>) {
    node.call(|h, _| h.with_atom::<Watcher, _>(AtomId(0), |w| (w.events.clone(), w.notes.clone())))
        .await
        .flatten()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_up_message_and_peer_down() {
    let a = Node::start(
        cfg("a"),
        boot(|b| {
            b.spawn(Watcher::default());
        }),
    )
    .await
    .unwrap();
    let mut cb = cfg("b");
    cb.join = vec![a.listen_addrs()[0].clone()];
    let b = Node::start(
        cb,
        boot(|b| {
            b.spawn(Watcher::default());
        }),
    )
    .await
    .unwrap();
    let (ida, idb) = (a.id(), b.id());
    until("both up and greeted", async || {
        let (ea, na) = watcher(&a).await;
        let (eb, nb) = watcher(&b).await;
        (ea == vec![PeerEvent::Up(idb)]
            && eb == vec![PeerEvent::Up(ida)]
            && na == vec![(idb, 1)]
            && nb == vec![(ida, 1)])
        .then_some(())
    })
    .await;
    // The address book learned b's listen address through identify: contact works.
    let c = a.call(move |_, p| p.contact(idb)).await.flatten().unwrap();
    assert!(
        c.addrs.iter().any(|s| s.contains("/ip4/127.0.0.1/tcp/")),
        "{c:?}"
    );
    // b hangs up; nobody redials until there is something to send.
    b.call(move |_, p| p.disconnect(ida)).await.unwrap();
    until("both see the other down", async || {
        let (ea, _) = watcher(&a).await;
        let (eb, _) = watcher(&b).await;
        (ea.last() == Some(&PeerEvent::Down(idb)) && eb.last() == Some(&PeerEvent::Down(ida)))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        watcher(&a).await.0.len(),
        2,
        "no reconnection without traffic"
    );
    // b sends to a again: dialled on demand from the address book, nothing lost.
    b.call(move |h, p| {
        let me = AtomAddr::new(h.node(), AtomId(0));
        h.deliver(
            p,
            rasp_runtime::Envelope::new(me, Dest::Atom(me), Poke(ida.0, 2)),
            0,
        )
    })
    .await
    .unwrap();
    until("a gets the note after the redial", async || {
        let (_, na) = watcher(&a).await;
        // (The reconnection also brings a second greeting.)
        na.contains(&(idb, 2)).then_some(())
    })
    .await;
    assert_eq!(
        b.stats().total().dropped,
        0,
        "the note was not lost on the stale stream"
    );
    b.shutdown().await;
    until("a sees b down", async || {
        let (ea, _) = watcher(&a).await;
        (ea.last() == Some(&PeerEvent::Down(idb))).then_some(())
    })
    .await;
    assert_eq!(a.stats().total().bad_frames, 0);
    a.shutdown().await;
}

/// Sends `n` notes to a node as fast as it can, once.
struct Blaster {
    to: NodeId,
    n: u64,
}
impl Atom for Blaster {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.on_peer(|me, ctx, ev| {
            if ev == PeerEvent::Up(me.to) {
                for i in 0..me.n {
                    ctx.send(Dest::Atom(AtomAddr::new(me.to, AtomId(0))), Note(i));
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_peer_cannot_grow_the_queue() {
    let mut stuck = RawPeer::new_stuck(None).unwrap();
    let target = stuck.node_id();
    const N: u64 = 50_000;
    // At most the queue (256) plus one batch held by the blocked writer (128).
    const QUEUED: u64 = 256 + 128;
    let mut c = cfg("blaster");
    c.peer_queue_capacity = 256;
    let node = Node::start(
        c,
        boot(move |b| {
            b.spawn(Blaster { to: target, n: N });
        }),
    )
    .await
    .unwrap();
    stuck
        .connect(node.listen_addrs()[0].clone(), Duration::from_secs(5))
        .await
        .unwrap();
    let s = until("the writer to stall and drops to be counted", async || {
        let s = node.stats();
        let p = *s.peers.get(&target)?;
        (p.dropped > 0 && p.dropped + p.frames_sent + QUEUED >= N).then_some(p)
    })
    .await;
    // Everything not written is either queued or dropped: memory is bounded by the queue
    // capacity plus what the transport's flow-control window let through.
    assert!(s.dropped + s.frames_sent + QUEUED >= N, "{s:?}");
    assert!(
        s.frames_sent < N / 2,
        "the stuck peer's window cannot absorb everything: {s:?}"
    );
    let dropped = node
        .call(|h, _| h.metrics_snapshot().counter("net.dropped", ""))
        .await
        .unwrap();
    assert!(dropped > 0, "the executor counts drops in the node metrics");
    node.shutdown().await;
}

/// Connects to a contact and sends to it in the same handler, before any connection exists.
struct Eager(rasp_runtime::Contact);

impl Atom for Eager {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        ctx.connect(&self.0);
        ctx.send(AtomAddr::new(self.0.node, AtomId(0)), Note(7));
    }
}

/// A message sent right after `connect` (no connection yet, the address known only from the
/// contact) is delivered, not dropped as unreachable: membership joins work this way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_right_after_connect_is_delivered() {
    let a = Node::start(
        cfg("eager-a"),
        boot(|b| {
            b.spawn(Watcher::default());
        }),
    )
    .await
    .unwrap();
    let contact = a.contact();
    let b = Node::start(
        cfg("eager-b"),
        boot(move |bc| {
            bc.spawn(Eager(contact.clone()));
        }),
    )
    .await
    .unwrap();
    let from = b.id();
    until("the note sent with connect", async || {
        let (_, notes) = watcher(&a).await;
        notes.contains(&(from, 7)).then_some(())
    })
    .await;
    assert_eq!(b.stats().unreachable, 0);
    b.shutdown().await;
    a.shutdown().await;
}
