//! Real-process tests of `rasp node`: signals, configuration errors, durability across
//! `kill -9`, the cluster key, and misbehaving peers (bad and oversized frames).

#[path = "net_common/mod.rs"]
mod common;

use common::{rasp, start_node, tempdir, Proc};
use futures::AsyncWriteExt;
use rasp_runtime::net::frame::{encode_frame, read_frame};
use rasp_runtime::net::raw::{RawEvent, RawPeer};
use rasp_runtime::net::{Multiaddr, PreSharedKey};
use rasp_runtime::{AtomAddr, AtomId, Corr, Dest, Envelope, Message, NodeId, RequestId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

fn clean_exit_on(sig: &str) {
    let dir = tempdir("sig");
    let mut n = start_node(&dir, &[]);
    n.proc.signal(sig);
    let status = n
        .proc
        .wait_exit(EXIT_TIMEOUT)
        .expect("node exits after the signal");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", n.proc.stderr_text());
}

#[test]
fn sigterm_exits_zero() {
    clean_exit_on("TERM");
}

#[test]
fn sigint_exits_zero() {
    clean_exit_on("INT");
}

/// Runs `rasp node` with `args` / `env` and expects exit 2 and `needle` on stderr.
fn bad_config(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let mut cmd = rasp();
    cmd.arg("node").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc::spawn(cmd);
    let status = p
        .wait_exit(EXIT_TIMEOUT)
        .expect("bad configuration exits at once");
    let err = p.stderr_text();
    assert_eq!(
        status.code(),
        Some(2),
        "args {args:?} env {env:?}: stderr:\n{err}"
    );
    assert!(
        err.contains(needle),
        "expected {needle:?} in stderr:\n{err}"
    );
}

#[test]
fn bad_configuration_exits_two_with_a_clear_message() {
    let dir = tempdir("badcfg");
    let d = dir.to_str().unwrap();
    bad_config(
        &["--data-dir", d, "--listen", "not-a-multiaddr"],
        &[],
        "invalid value 'not-a-multiaddr' for '--listen",
    );
    bad_config(
        &["--data-dir", d],
        &[("RASP_JOIN", "/ip4/1.2.3.4/tcp/1,garbage")],
        "invalid value 'garbage' for '--join",
    );
    let toml = dir.join("rasp.toml");
    std::fs::write(
        &toml,
        "listen = [\"/ip4/127.0.0.1/tcp/0\"]\nlisten_port = 7\n",
    )
    .unwrap();
    bad_config(
        &["--data-dir", d, "--config", toml.to_str().unwrap()],
        &[],
        "unknown field `listen_port`",
    );
    std::fs::write(&toml, "join = [\"/ip4/1.2.3.4/tcpp/1\"]\n").unwrap();
    bad_config(
        &["--data-dir", d],
        &[("RASP_CONFIG", toml.to_str().unwrap())],
        "invalid join address",
    );
    bad_config(
        &["--data-dir", d, "--psk-file", "/nonexistent/rasp.psk"],
        &[],
        "cannot read cluster key file",
    );
    let psk = dir.join("bad.psk");
    std::fs::write(&psk, "/key/swarm/psk/1.0.0/\n/base16/\n1234\n").unwrap();
    bad_config(
        &["--data-dir", d, "--psk-file", psk.to_str().unwrap()],
        &[],
        "is not a /key/swarm/psk/1.0.0/ base16 key",
    );
}

#[test]
fn store_and_identity_survive_kill_9() {
    let dir = tempdir("kill9");
    let mut peer = None;
    for expect in 1..=3 {
        let mut n = start_node(&dir, &[]);
        assert_eq!(
            n.boots, expect,
            "the boot counter written before kill -9 is there"
        );
        assert_eq!(
            peer.get_or_insert_with(|| n.peer_id.clone()),
            &n.peer_id,
            "the node key is reused"
        );
        // SIGKILL: no shutdown code runs.
        n.proc.child.kill().unwrap();
        n.proc.child.wait().unwrap();
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn gen_psk(path: &std::path::Path) {
    let out = rasp().arg("gen-psk").output().unwrap();
    assert!(out.status.success());
    std::fs::write(path, out.stdout).unwrap();
}

fn load_psk(path: &std::path::Path) -> PreSharedKey {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn cluster_key_keeps_outsiders_out() {
    let dir = tempdir("psk");
    let (key, other) = (dir.join("cluster.psk"), dir.join("other.psk"));
    gen_psk(&key);
    gen_psk(&other);
    let n = start_node(&dir.join("node"), &["--psk-file", key.to_str().unwrap()]);
    let addr: Multiaddr = n.addr.parse().unwrap();
    rt().block_on(async {
        // A member connects in milliseconds; an outsider's handshake fails or hangs (the
        // pnet stream cipher turns its bytes into noise), so 2 s is ample for "cannot".
        let t = Duration::from_secs(2);
        let mut open = RawPeer::new(None).unwrap();
        assert!(
            open.connect(addr.clone(), t).await.is_err(),
            "a peer without the key cannot connect"
        );
        let mut wrong = RawPeer::new(Some(load_psk(&other))).unwrap();
        assert!(
            wrong.connect(addr.clone(), t).await.is_err(),
            "a peer with another key cannot connect"
        );
        let mut member = RawPeer::new(Some(load_psk(&key))).unwrap();
        let p = member
            .connect(addr.clone(), t)
            .await
            .expect("a peer with the key connects");
        assert_eq!(p.to_string(), n.peer_id);
    });
}

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

/// A fresh raw peer asks the node's `rasp/info` service and gets the answer: the node is
/// up and serving.
async fn node_still_serves(addr: &Multiaddr, node: NodeId) {
    let t = Duration::from_secs(5);
    let mut raw = RawPeer::new(None).unwrap();
    let peer = raw
        .connect(addr.clone(), t)
        .await
        .expect("node accepts new connections");
    let mut s = raw.open(peer).await.unwrap();
    let mut env = Envelope::new(
        AtomAddr::new(raw.node_id(), AtomId(0)),
        Dest::service(node, "rasp/info"),
        InfoRequest,
    );
    env.corr = Corr::Request(RequestId(7));
    let mut buf = Vec::new();
    encode_frame(&env.encode().unwrap(), &mut buf);
    s.write_all(&buf).await.unwrap();
    s.flush().await.unwrap();
    loop {
        match raw.next_event(t).await {
            Some(RawEvent::Frame(_, f)) => {
                let reply = Envelope::decode(&f).unwrap();
                assert_eq!(reply.corr, Corr::Reply(RequestId(7)));
                assert_eq!(reply.payload.decode::<Info>().unwrap(), Info { boots: 1 });
                return;
            }
            Some(_) => {}
            None => panic!("no reply from the node"),
        }
    }
}

/// Writes `bytes` on a message stream and expects the node to close the connection.
async fn garbage_closes_connection(addr: &Multiaddr, bytes: Vec<u8>) {
    let t = Duration::from_secs(5);
    let mut raw = RawPeer::new(None).unwrap();
    let peer = raw.connect(addr.clone(), t).await.unwrap();
    let mut s = raw.open(peer).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    s.flush().await.unwrap();
    // The stream and then the connection are closed by the node.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(t, read_frame(&mut s, &mut buf, 1 << 20)).await;
    assert!(matches!(read, Ok(Ok(false)) | Ok(Err(_))), "stream closed");
    loop {
        match raw.next_event(t).await {
            Some(RawEvent::Closed(p)) if p == peer => return,
            Some(_) => {}
            None => panic!("the node did not close the connection"),
        }
    }
}

#[test]
fn bad_and_oversized_frames_close_the_connection_not_the_node() {
    let dir = tempdir("badframe");
    let mut n = start_node(&dir, &["--max-frame-bytes", "1024"]);
    let addr: Multiaddr = n.addr.parse().unwrap();
    let node = NodeId(n.node_id);
    rt().block_on(async {
        // Malformed: a well-delimited frame whose body is not a MessagePack envelope.
        let mut bad = Vec::new();
        encode_frame(&[0xc1, 0xff, 0x00, 0x13, 0x37], &mut bad);
        garbage_closes_connection(&addr, bad).await;
        node_still_serves(&addr, node).await;

        // Oversized: a header announcing more than --max-frame-bytes (1024).
        let mut big = Vec::new();
        encode_frame(&vec![0u8; 2048], &mut big);
        garbage_closes_connection(&addr, big).await;
        // And a header announcing 4 GiB: rejected before any allocation.
        garbage_closes_connection(&addr, u32::MAX.to_be_bytes().to_vec()).await;
        node_still_serves(&addr, node).await;
    });
    assert!(n.proc.alive());
    let err = n.proc.stderr_text();
    assert!(err.contains("malformed frame"), "stderr:\n{err}");
    assert!(
        err.contains("oversized frame (2048 bytes, limit 1024)"),
        "stderr:\n{err}"
    );
}
