//! Membership messages, fuzzed with `rasp_fuzzkit`: the protocol message between nodes
//! (`membership/wire`: HyParView, full and client-server member lists, Plumtree, gossip,
//! direct payloads), the atom's other messages a peer can address to it, and the remembered
//! contacts record of the store. Valid messages are the ones a small cluster of the real
//! protocol cores sends to itself; every `membership/wire` message that decodes is then
//! delivered to a fresh node of each mode, which must not panic either. `RASP_FUZZ_CASES`
//! sets the inputs per decoder; the long run is in the README's "Bad input" section.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rasp_fuzzkit::{target, FuzzRng};
use rasp_membership::atom::{Broadcast, Bytes, Join, PeerRef, SendTo, View, Wire};
use rasp_membership::proto::Out;
use rasp_membership::service::{BroadcastMode, Config, Mode, PeerService, ServiceMessage};
use rasp_membership::{Core, PeerServiceEvent, Role};
use rasp_runtime::{Contact, Message, NodeId, Payload};
use std::collections::VecDeque;
use std::time::Duration;

type Msg = ServiceMessage<PeerRef, Bytes>;

fn peer(i: u64) -> PeerRef {
    PeerRef(Contact {
        node: NodeId(i),
        addrs: vec![format!("/ip4/127.0.0.1/tcp/{}", 7000 + i)],
    })
}

fn config(mode: Mode, broadcast: BroadcastMode, role: Role) -> Config {
    Config {
        mode,
        role,
        broadcast,
        ..Config::default()
    }
}

fn random_payload(rng: &mut impl RngCore) -> Bytes {
    let mut v = vec![0u8; rng.random_range(0..24)];
    rng.fill_bytes(&mut v);
    v
}

/// Every message a small cluster of real cores sends while it joins, broadcasts, sends
/// directly, loses a node and runs its timers (random mode, size and order).
fn cluster_messages(rng: &mut FuzzRng) -> Vec<Msg> {
    let mode = [Mode::HyParView, Mode::Full, Mode::ClientServer][rng.random_range(0..3)];
    let bm = [BroadcastMode::Plumtree, BroadcastMode::Gossip][rng.random_range(0..2)];
    let n = rng.random_range(2..6u64);
    let mut core_rng = ChaCha8Rng::seed_from_u64(rng.random());
    let mut nodes: Vec<PeerService<PeerRef, Bytes>> = (0..n)
        .map(|i| {
            let role = if i == 0 { Role::Server } else { Role::Client };
            PeerService::new(peer(i), config(mode, bm, role)).expect("config")
        })
        .collect();
    let mut queue: VecDeque<(u64, u64, Msg)> = VecDeque::new();
    let mut timers = Vec::new();
    let mut sent = Vec::new();
    let route = |from: u64, out: Vec<_>, queue: &mut VecDeque<_>, timers: &mut Vec<_>| {
        for o in out {
            match o {
                Out::Send { to, msg } => {
                    let to: PeerRef = to;
                    queue.push_back((from, to.0.node.0, msg));
                }
                Out::Timer { timer, .. } => timers.push((from, timer)),
                _ => {}
            }
        }
    };
    let mut now = Duration::ZERO;
    for i in 0..n {
        let mut out = Vec::new();
        nodes[i as usize].start(&mut core_rng, &mut out);
        if i > 0 {
            nodes[i as usize].join(vec![peer(0)], now, &mut core_rng, &mut out);
        }
        route(i, out, &mut queue, &mut timers);
    }
    for _ in 0..rng.random_range(10..80) {
        now += Duration::from_millis(rng.random_range(1..200));
        let mut out = Vec::new();
        let who = rng.random_range(0..n);
        match rng.random_range(0..10) {
            0 => {
                nodes[who as usize].broadcast(random_payload(rng), &mut core_rng, &mut out);
            }
            1 => nodes[who as usize].send(
                peer(rng.random_range(0..n)),
                random_payload(rng),
                &mut out,
            ),
            2 if !timers.is_empty() => {
                let (node, t) = timers.swap_remove(rng.random_range(0..timers.len()));
                nodes[node as usize].on_timer(t, now, &mut core_rng, &mut out);
                route(node, out, &mut queue, &mut timers);
                continue;
            }
            3 => {
                let down = peer(rng.random_range(0..n));
                nodes[who as usize].peer_down(&down, now, &mut core_rng, &mut out);
            }
            _ => {
                if let Some((from, to, msg)) = queue.pop_front() {
                    sent.push(msg.clone());
                    if (to as usize) < nodes.len() {
                        nodes[to as usize].on_message(
                            peer(from),
                            msg,
                            now,
                            &mut core_rng,
                            &mut out,
                        );
                    }
                    route(to, out, &mut queue, &mut timers);
                    continue;
                }
            }
        }
        route(who, out, &mut queue, &mut timers);
    }
    sent.extend(queue.into_iter().map(|(_, _, m)| m));
    sent
}

/// A message that decodes is delivered to a fresh node of every mode: hostile but
/// well-formed messages must not panic the protocol cores either.
fn deliver_everywhere(msg: &Msg) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (mode, bm) in [
        (Mode::HyParView, BroadcastMode::Plumtree),
        (Mode::HyParView, BroadcastMode::Gossip),
        (Mode::Full, BroadcastMode::Plumtree),
        (Mode::ClientServer, BroadcastMode::Plumtree),
    ] {
        let mut node = PeerService::<PeerRef, Bytes>::new(peer(9), config(mode, bm, Role::Server))
            .expect("config");
        let mut out = Vec::new();
        node.start(&mut rng, &mut out);
        node.on_message(
            peer(3),
            msg.clone(),
            Duration::from_secs(5),
            &mut rng,
            &mut out,
        );
        node.on_message(
            peer(9),
            msg.clone(),
            Duration::from_secs(6),
            &mut rng,
            &mut out,
        );
    }
}

fn encode<M: Message>(m: &M) -> Vec<u8> {
    rmp_serde::to_vec(m).expect("encodes")
}

#[test]
fn membership_wire() {
    let mut pending: Vec<Msg> = Vec::new();
    target!(
        "membership_wire",
        move |rng: &mut FuzzRng| {
            while pending.is_empty() {
                pending = cluster_messages(rng);
            }
            let m = pending.swap_remove(rng.random_range(0..pending.len()));
            encode(&Wire(m))
        },
        |b: &[u8]| {
            let w = Payload::Wire(b.to_vec())
                .decode::<Wire>()
                .map_err(|e| e.to_string())?;
            deliver_everywhere(&w.0);
            Ok(encode(&w))
        }
    )
    .alloc_limit(1 << 20, 64)
    .run();
}

fn contacts(rng: &mut FuzzRng) -> Vec<Contact> {
    (0..rng.random_range(0..6))
        .map(|_| Contact {
            node: NodeId(rng.random()),
            addrs: (0..rng.random_range(0..3))
                .map(|_| {
                    format!(
                        "/ip4/10.0.0.{}/tcp/{}",
                        rng.random::<u8>(),
                        rng.random::<u16>()
                    )
                })
                .collect(),
        })
        .collect()
}

/// The atom's other messages: a peer can address any kind to the membership service.
macro_rules! fuzz_message {
    ($name:ident, $t:ty, $gen:expr) => {
        #[test]
        fn $name() {
            target!(
                stringify!($name),
                |rng: &mut FuzzRng| encode(&($gen)(rng)),
                |b: &[u8]| {
                    Payload::Wire(b.to_vec())
                        .decode::<$t>()
                        .map(|m| encode(&m))
                        .map_err(|e| e.to_string())
                }
            )
            .run();
        }
    };
}

fuzz_message!(membership_join, Join, |rng: &mut FuzzRng| Join {
    seeds: contacts(rng)
});
fuzz_message!(membership_send_to, SendTo, |rng: &mut FuzzRng| SendTo {
    to: NodeId(rng.random()),
    payload: random_payload(rng),
});
fuzz_message!(membership_broadcast, Broadcast, |rng: &mut FuzzRng| {
    Broadcast {
        payload: random_payload(rng),
    }
});
fuzz_message!(membership_view, View, |rng: &mut FuzzRng| View {
    node: NodeId(rng.random()),
    mode: [Mode::HyParView, Mode::Full, Mode::ClientServer][rng.random_range(0..3)],
    neighbours: (0..rng.random_range(0..6))
        .map(|_| NodeId(rng.random()))
        .collect(),
    passive: (0..rng.random_range(0..6))
        .map(|_| NodeId(rng.random()))
        .collect(),
});
fuzz_message!(membership_event, PeerServiceEvent, |rng: &mut FuzzRng| {
    match rng.random_range(0..4) {
        0 => PeerServiceEvent::NeighbourUp(NodeId(rng.random())),
        1 => PeerServiceEvent::NeighbourDown(NodeId(rng.random())),
        2 => PeerServiceEvent::Delivered {
            origin: NodeId(rng.random()),
            seq: rng.random(),
            round: rng.random(),
            payload: random_payload(rng),
        },
        _ => PeerServiceEvent::Received {
            from: NodeId(rng.random()),
            payload: random_payload(rng),
        },
    }
});

/// The remembered contacts record (`membership/contacts` in the store), read at every start
/// with `store_get_as`, i.e. `rasp_runtime::wire::decode`.
#[test]
fn contacts_record() {
    target!(
        "contacts_record",
        |rng: &mut FuzzRng| rmp_serde::to_vec(&contacts(rng)).expect("encodes"),
        |b: &[u8]| {
            rasp_runtime::wire::decode::<Vec<Contact>>(b, "membership/contacts")
                .map(|c| rmp_serde::to_vec(&c).expect("encodes"))
                .map_err(|e| e.to_string())
        }
    )
    .run();
}
