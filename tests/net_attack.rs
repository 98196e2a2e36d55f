//! A memory attack on a real `rasp node`: many peer identities open message streams and send
//! only frame headers announcing the largest frame (4 MiB), then stay silent. The node must
//! not allocate the announced lengths: its resident set stays within [`RSS_BOUND_KIB`] of its
//! size before the attack, and a legitimate peer is still served during the attack.
//!
//! Before frames were read in bounded chunks, each such header pinned 4 MiB (zero-filled,
//! so resident): the 192 streams here pinned about 768 MiB.

#[path = "net_common/mod.rs"]
mod common;

use common::{start_node, tempdir};
use futures::{AsyncWriteExt, FutureExt};
use rasp_runtime::net::frame::encode_frame;
use rasp_runtime::net::raw::{RawEvent, RawPeer};
use rasp_runtime::net::swarm::MAX_INBOUND_STREAMS_PER_PEER;
use rasp_runtime::net::Multiaddr;
use rasp_runtime::{AtomAddr, AtomId, Corr, Dest, Envelope, Message, NodeId, RequestId};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Attacking identities (each a fresh key: identities cost nothing on a keyless node).
const ATTACKERS: usize = 192;
/// Streams per attacker (one each: identities are free, so spreading over identities costs
/// the attacker nothing).
const STREAMS: usize = 1;
/// The stated bound: growth of the node's resident set under the attack, KiB.
const RSS_BOUND_KIB: u64 = 64 * 1024;

#[derive(Clone, Serialize, Deserialize)]
struct InfoRequest;
impl Message for InfoRequest {
    const KIND: &'static str = "rasp/info-request";
}
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Info {
    boots: u64,
}
impl Message for Info {
    const KIND: &'static str = "rasp/info";
}

/// A fresh raw peer asks the node's `rasp/info` service and gets the answer within 5 s.
async fn served(addr: &Multiaddr, node: NodeId) -> Duration {
    let t0 = Instant::now();
    let mut raw = RawPeer::new(None).unwrap();
    let peer = raw
        .connect(addr.clone(), Duration::from_secs(5))
        .await
        .expect("node accepts new connections");
    let s = raw.open(peer).await.unwrap();
    ask(&mut raw, s, node).await;
    t0.elapsed()
}

/// Writes a `rasp/info` request with id `id` on `s`.
async fn request<S: futures::AsyncWrite + Unpin>(raw: &RawPeer, s: &mut S, node: NodeId, id: u64) {
    let mut env = Envelope::new(
        AtomAddr::new(raw.node_id(), AtomId(0)),
        Dest::service(node, "rasp/info"),
        InfoRequest,
    );
    env.corr = Corr::Request(RequestId(id));
    let mut buf = Vec::new();
    encode_frame(&env.encode().unwrap(), &mut buf);
    s.write_all(&buf)
        .await
        .unwrap_or_else(|e| panic!("request {id}: {e}"));
    s.flush()
        .await
        .unwrap_or_else(|e| panic!("request {id}: {e}"));
}

/// Sends a `rasp/info` request on `s` and waits up to 5 s for its answer (answers to other
/// requests are skipped).
async fn ask<S: futures::AsyncWrite + Unpin>(raw: &mut RawPeer, mut s: S, node: NodeId) {
    let t = Duration::from_secs(5);
    request(raw, &mut s, node, 7).await;
    loop {
        match raw.next_event(t).await {
            Some(RawEvent::Frame(_, f)) => {
                let reply = Envelope::decode(&f).unwrap();
                if reply.corr != Corr::Reply(RequestId(7)) {
                    continue;
                }
                assert_eq!(reply.payload.decode::<Info>().unwrap(), Info { boots: 1 });
                return;
            }
            Some(_) => {}
            None => panic!("no reply from the node"),
        }
    }
}

/// The started node's address and id, and a runtime for the raw peers.
fn attach(n: &common::NodeProc) -> (Multiaddr, NodeId, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    (n.addr.parse().unwrap(), NodeId(n.node_id), rt)
}

/// A peer's streams that went silent (a connection that died without a close, as after a
/// partition) must not keep its newest stream out: the node drops the oldest stream at the
/// per-peer bound instead of refusing the new one, so the peer is heard again at once.
///
/// Not in the default run: the raw peer speaks no membership protocol, and the node's
/// membership sometimes closes its connection within the first second, before the streams
/// reach the bound (the write then fails with "connection is closed" and the test proves
/// nothing). Run it with
/// `cargo test --release --test net_attack silent_old_streams -- --ignored` (it passes about
/// two runs in three here; the others fail that way, below the bound, old code or new).
#[test]
#[ignore]
fn silent_old_streams_do_not_shut_out_a_peers_new_stream() {
    let dir = tempdir("stale-streams");
    let n = start_node(&dir, &[]);
    let (addr, node, rt) = attach(&n);
    rt.block_on(async {
        let mut raw = RawPeer::new(None).unwrap();
        let peer = raw
            .connect(addr.clone(), Duration::from_secs(5))
            .await
            .expect("node accepts the connection");
        // Streams that carry one request and then say nothing more, up to and past the
        // node's bound.
        let mut silent = Vec::new();
        for i in 0..MAX_INBOUND_STREAMS_PER_PEER as u64 + 2 {
            let mut s = raw.open(peer).await.expect("stream opens");
            if std::panic::AssertUnwindSafe(request(&raw, &mut s, node, 100 + i))
                .catch_unwind()
                .await
                .is_err()
            {
                panic!("{}", n.proc.stderr_text());
            }
            silent.push(s);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = raw.open(peer).await.expect("stream opens");
        if std::panic::AssertUnwindSafe(ask(&mut raw, s, node))
            .catch_unwind()
            .await
            .is_err()
        {
            panic!("{}", n.proc.stderr_text());
        }
        drop(silent);
    });
    assert!(
        n.proc
            .stderr_text()
            .contains("inbound streams from one peer: dropping its oldest"),
        "{}",
        n.proc.stderr_text()
    );
}

#[test]
fn frame_headers_alone_pin_no_memory() {
    let dir = tempdir("hdr-attack");
    let n = start_node(&dir, &[]);
    let (addr, node, rt) = attach(&n);
    rt.block_on(async {
        served(&addr, node).await;
        let before = n.proc.rss_kib().expect("VmRSS");
        let header = (4u32 << 20).to_be_bytes();
        let mut attackers = Vec::new();
        let mut streams = Vec::new();
        for _ in 0..ATTACKERS {
            let mut raw = RawPeer::new(None).unwrap();
            let peer = raw
                .connect(addr.clone(), Duration::from_secs(5))
                .await
                .expect("attacker connects");
            for _ in 0..STREAMS {
                let mut s = raw.open(peer).await.expect("attacker opens a stream");
                if let Err(e) = s.write_all(&header).await {
                    panic!(
                        "attacker {} write: {e}\n{}",
                        attackers.len(),
                        n.proc.stderr_text()
                    );
                }
                s.flush().await.unwrap();
                streams.push(s);
            }
            attackers.push(raw);
        }
        // Let the node read every header.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let during = n.proc.rss_kib().expect("VmRSS");
        let took = served(&addr, node).await;
        let after = n.proc.rss_kib().expect("VmRSS");
        let peak = during.max(after);
        eprintln!(
            "{} header-only streams of 4 MiB: RSS {before} KiB before, {peak} KiB under attack \
             (+{} KiB, bound +{RSS_BOUND_KIB} KiB); legitimate request served in {took:?}",
            ATTACKERS * STREAMS,
            peak.saturating_sub(before)
        );
        assert!(
            peak <= before + RSS_BOUND_KIB,
            "RSS grew from {before} KiB to {peak} KiB under a header-only attack"
        );
        drop(streams);
        drop(attackers);
    });
}
