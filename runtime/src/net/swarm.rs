//! The network task: drives the libp2p swarm, keeps the address book, turns connection
//! events into peer up/down events, and runs one reader task per inbound stream and one
//! writer task per peer.

use super::exec::{Inbound, WireEnvelope};
use super::frame::{encode_frame, read_frame_bounded, Budget, FrameError, Held};
use super::shared::{node_of, split_p2p, OutQueue, Shared};
use super::transport::{Behaviour, BehaviourEvent, IDENTIFY_PROTOCOL, MSG_PROTOCOL};
use super::{error_chain, NetConfig};
use crate::ids::{NodeId, PeerEvent};
use crate::message::{Envelope, Payload};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, ping, Multiaddr, PeerId, Stream, Swarm};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

/// Most inbound message streams read concurrently per peer; a further stream replaces the
/// peer's oldest (whose reader is stopped). With the frame limit this bounds the read
/// buffers a peer can make us hold.
pub const MAX_INBOUND_STREAMS_PER_PEER: usize = 4;

/// Frames written per write call (batched into one buffer, one flush).
const WRITE_BATCH: usize = 128;

/// How often join addresses are re-dialled while the node has no connection at all.
const JOIN_RETRY: Duration = Duration::from_secs(2);

/// Join rounds without any connection after which the node says it is alone (10 s).
const ALONE_AFTER_ROUNDS: u32 = 5;

/// Failed dials of one join address logged at `warn` before the log thins out to every
/// [`JOIN_WARN_EVERY`]th.
const JOIN_WARN_FIRST: u32 = 3;

/// After the first [`JOIN_WARN_FIRST`] failures, one join failure in this many is logged at
/// `warn` (the others at `debug`), so a node waiting for its seed does not flood its log.
const JOIN_WARN_EVERY: u32 = 15;

/// What the node knows about its join addresses: failures per address, and whether it has
/// said that it is alone. Join failures are a user's first sight of a wrong address, a dead
/// seed or a cluster-key mismatch, so they are logged at `warn` with the address and the
/// whole cause.
struct JoinWatch {
    /// Join address per peer id (join addresses end in `/p2p/<peer>`).
    addrs: HashMap<PeerId, Multiaddr>,
    /// Consecutive failed dials per join peer.
    failures: HashMap<PeerId, u32>,
    /// Consecutive join rounds with no connection at all.
    rounds_alone: u32,
    /// Whether "alone" was said since the last connection.
    said_alone: bool,
    /// Whether this node uses a cluster key (for the hint on handshake failures).
    keyed: bool,
}

impl JoinWatch {
    fn new(cfg: &NetConfig) -> Self {
        let addrs = cfg
            .join
            .iter()
            .filter_map(|a| split_p2p(a).1.map(|p| (p, a.clone())))
            .collect();
        JoinWatch {
            addrs,
            failures: HashMap::new(),
            rounds_alone: 0,
            said_alone: false,
            keyed: cfg.psk_file.is_some(),
        }
    }

    /// A dial of `peer` failed with `cause`.
    fn failed(&mut self, peer: PeerId, cause: &str) {
        let Some(addr) = self.addrs.get(&peer) else {
            tracing::debug!(%peer, "outgoing connection failed: {cause}");
            return;
        };
        let n = self.failures.entry(peer).or_default();
        *n += 1;
        let hint = handshake_hint(cause, self.keyed);
        if *n <= JOIN_WARN_FIRST || n.is_multiple_of(JOIN_WARN_EVERY) {
            tracing::warn!(attempt = *n, "cannot join {addr}: {cause}{hint}");
        } else {
            tracing::debug!(attempt = *n, "cannot join {addr}: {cause}{hint}");
        }
    }

    /// A connection to `peer` is up.
    fn connected(&mut self, peer: PeerId) {
        if let (Some(addr), Some(n)) = (self.addrs.get(&peer), self.failures.remove(&peer)) {
            tracing::info!(%addr, "joined after {n} failed attempts");
        }
        self.rounds_alone = 0;
        self.said_alone = false;
    }

    /// One join round passed with no connection at all.
    fn round_alone(&mut self) {
        self.rounds_alone += 1;
        if self.rounds_alone >= ALONE_AFTER_ROUNDS && !self.said_alone && !self.addrs.is_empty() {
            self.said_alone = true;
            tracing::warn!(
                "no join address answered after {} attempts ({:?}): this node is alone; \
                 still retrying every {:?}",
                self.rounds_alone,
                JOIN_RETRY * self.rounds_alone,
                JOIN_RETRY
            );
        }
    }
}

/// Why a dial failed, without libp2p's wrapping: for a transport failure, the cause per
/// address tried (`Connection refused (os error 111)`), not "Failed to negotiate transport
/// protocol(s)", which libp2p says of every transport error.
fn dial_cause(e: &libp2p::swarm::DialError) -> String {
    match e {
        libp2p::swarm::DialError::Transport(errs) if !errs.is_empty() => {
            let mut causes: Vec<String> = errs.iter().map(|(_, e)| error_chain(e)).collect();
            causes.dedup();
            causes.join("; ")
        }
        other => error_chain(other),
    }
}

/// A hint to append to a connection error that looks like a failed security handshake:
/// with a cluster key on one side only, or different keys, the pnet stream decrypts to noise
/// and the next protocol negotiation fails.
fn handshake_hint(cause: &str, keyed: bool) -> &'static str {
    let c = cause.to_ascii_lowercase();
    let handshake = [
        "multistream",
        "protocol negotiation",
        "invalid message",
        "noise",
        "handshake",
        "decrypt",
        "unexpected eof",
    ]
    .iter()
    .any(|m| c.contains(m));
    match (handshake, keyed) {
        (false, _) => "",
        (true, true) => " (the peer may use another cluster key, or none)",
        (true, false) => " (the peer may use a cluster key: start this node with --psk-file)",
    }
}

/// Requests to the network task (from the executor, readers and writers), over a bounded
/// channel.
#[derive(Debug)]
pub(crate) enum Command {
    /// Make sure a writer task serves `node`'s queue (created by the executor).
    EnsureWriter(NodeId),
    /// Open a connection to `node` (addresses may end in `/p2p/<peer>`).
    Connect { node: NodeId, addrs: Vec<Multiaddr> },
    /// Close every connection to `node`.
    Disconnect(NodeId),
    /// A writer wants `node` dialled with the address book's addresses.
    Dial(NodeId),
    /// Dial an address (from the driver).
    DialAddr(Multiaddr),
    /// A reader saw garbage from this peer: close its connections.
    BadPeer(PeerId, String),
}

pub(crate) struct NetTask {
    pub swarm: Swarm<Behaviour>,
    pub shared: Arc<Shared>,
    pub cfg: NetConfig,
    pub cmd_rx: mpsc::Receiver<Command>,
    pub cmd_tx: mpsc::Sender<Command>,
    pub inbound: mpsc::Sender<Inbound>,
    pub stop: watch::Receiver<bool>,
}

impl NetTask {
    pub async fn run(mut self) {
        let mut control = self.swarm.behaviour().stream.new_control();
        let mut incoming = control
            .accept(MSG_PROTOCOL)
            .expect("message protocol registered once");
        let mut writers: HashMap<NodeId, (JoinHandle<()>, Arc<Notify>)> = HashMap::new();
        let readers: Readers = Arc::default();
        let budget = Budget::new(self.cfg.inbound_buffer_bytes);
        let mut up: HashSet<PeerId> = HashSet::new();
        let mut established: usize = 0;
        let mut join_tick = tokio::time::interval(JOIN_RETRY);
        join_tick.tick().await;
        let mut joins = JoinWatch::new(&self.cfg);
        for a in &self.cfg.join {
            if let Err(e) = self.swarm.dial(a.clone()) {
                tracing::warn!(addr = %a, "cannot dial join address: {}", error_chain(&e));
            }
        }
        loop {
            tokio::select! {
                _ = self.stop.changed() => break,
                ev = self.swarm.select_next_some() => {
                    match &ev {
                        SwarmEvent::OutgoingConnectionError { peer_id: Some(p), error, .. } => {
                            joins.failed(*p, &dial_cause(error));
                        }
                        SwarmEvent::ConnectionEstablished { peer_id, .. } => joins.connected(*peer_id),
                        _ => {}
                    }
                    self.on_swarm_event(ev, &mut up, &mut established, &mut writers, &control).await;
                }
                Some(cmd) = self.cmd_rx.recv() => {
                    self.on_command(cmd, &mut writers, &control);
                }
                Some((peer, stream)) = incoming.next() => {
                    self.spawn_reader(peer, stream, &readers, &budget);
                }
                _ = join_tick.tick() => {
                    if established == 0 {
                        joins.round_alone();
                        for a in &self.cfg.join {
                            let _ = self.swarm.dial(a.clone());
                        }
                    }
                }
            }
        }
        for (_, (w, _)) in writers {
            w.abort();
        }
        tracing::debug!("network task stopped");
    }

    fn ensure_writer(
        &mut self,
        node: NodeId,
        writers: &mut HashMap<NodeId, (JoinHandle<()>, Arc<Notify>)>,
        control: &libp2p_stream::Control,
    ) {
        if let Some((w, wake)) = writers.get(&node) {
            if !w.is_finished() {
                // A new connection: make sure the writer has a stream on it.
                wake.notify_one();
                return;
            }
        }
        let Some(entry) = self.shared.lookup(node) else {
            return;
        };
        let (queue, _) = self
            .shared
            .queue_or_create(node, self.cfg.peer_queue_capacity);
        let w = Writer {
            node,
            peer: entry.peer,
            queue,
            control: control.clone(),
            cmd: self.cmd_tx.clone(),
            shared: self.shared.clone(),
            retry_for: self.cfg.peer_retry_for,
            io_timeout: self.cfg.io_timeout,
            wake: Arc::new(Notify::new()),
        };
        let wake = w.wake.clone();
        writers.insert(node, (tokio::spawn(w.run()), wake));
    }

    fn dial_node(&mut self, node: NodeId, extra: Vec<Multiaddr>) {
        let Some(entry) = self.shared.lookup(node) else {
            return;
        };
        if self.swarm.is_connected(&entry.peer) {
            return;
        }
        let mut addrs = extra;
        addrs.extend(entry.addrs);
        let opts = DialOpts::peer_id(entry.peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(?node, "dial: {e}");
        }
    }

    fn on_command(
        &mut self,
        cmd: Command,
        writers: &mut HashMap<NodeId, (JoinHandle<()>, Arc<Notify>)>,
        control: &libp2p_stream::Control,
    ) {
        match cmd {
            Command::EnsureWriter(node) => {
                self.dial_node(node, Vec::new());
                self.ensure_writer(node, writers, control);
            }
            Command::Dial(node) => self.dial_node(node, Vec::new()),
            Command::DialAddr(a) => {
                if let Err(e) = self.swarm.dial(a.clone()) {
                    tracing::warn!(addr = %a, "dial: {e}");
                }
            }
            Command::Connect { node, addrs } => {
                let mut plain = Vec::new();
                for a in &addrs {
                    match split_p2p(a) {
                        (t, Some(p)) if node_of(&p) == node => {
                            self.shared.learn(p, [t]);
                        }
                        (t, Some(p)) => {
                            tracing::warn!(%p, ?node, "contact address names another peer: ignored");
                            let _ = t;
                        }
                        (t, None) => plain.push(t),
                    }
                }
                if self.shared.lookup(node).is_some() {
                    self.dial_node(node, plain);
                } else {
                    for a in plain {
                        if let Err(e) = self.swarm.dial(a.clone()) {
                            tracing::debug!(addr = %a, "dial: {e}");
                        }
                    }
                }
            }
            Command::Disconnect(node) => {
                if let Some(e) = self.shared.lookup(node) {
                    let _ = self.swarm.disconnect_peer_id(e.peer);
                }
            }
            Command::BadPeer(peer, reason) => {
                tracing::warn!(%peer, "closing connection to misbehaving peer: {reason}");
                self.shared
                    .peer_stats(node_of(&peer), |s| s.bad_frames += 1);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    async fn on_swarm_event(
        &mut self,
        ev: SwarmEvent<BehaviourEvent>,
        up: &mut HashSet<PeerId>,
        established: &mut usize,
        writers: &mut HashMap<NodeId, (JoinHandle<()>, Arc<Notify>)>,
        control: &libp2p_stream::Control,
    ) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.shared.add_listen(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => self.shared.remove_listen(&address),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                *established += 1;
                if *established > self.cfg.max_connections {
                    tracing::warn!(%peer_id, "connection limit ({}) reached: closing", self.cfg.max_connections);
                    self.swarm.close_connection(connection_id);
                    return;
                }
                let addr = endpoint
                    .is_dialer()
                    .then(|| endpoint.get_remote_address().clone());
                let Some(node) = self.shared.learn(peer_id, addr) else {
                    return;
                };
                tracing::debug!(%peer_id, ?node, n = num_established.get(), "connection established");
                if up.insert(peer_id) {
                    // Eager writer: its stream keeps the connection open (no idle timeout)
                    // and is ready for the first message.
                    self.ensure_writer(node, writers, control);
                    let _ = self.inbound.send(Inbound::Peer(PeerEvent::Up(node))).await;
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                *established = established.saturating_sub(1);
                tracing::debug!(%peer_id, remaining = num_established, "connection closed: {cause:?}");
                if num_established == 0 && up.remove(&peer_id) {
                    let node = node_of(&peer_id);
                    let _ = self
                        .inbound
                        .send(Inbound::Peer(PeerEvent::Down(node)))
                        .await;
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                let cause = error_chain(&error);
                let hint = handshake_hint(&cause, self.cfg.psk_file.is_some());
                tracing::info!(%send_back_addr, "incoming connection failed: {cause}{hint}");
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: None,
                error,
                ..
            } => {
                tracing::debug!("outgoing connection failed: {}", error_chain(&error));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if info.protocol_version != IDENTIFY_PROTOCOL {
                    tracing::warn!(%peer_id, version = %info.protocol_version, "not a rasp node: closing");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                self.shared.learn(peer_id, info.listen_addrs);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            })) => {
                tracing::info!(%peer, "ping failed, closing connection: {e}");
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }

    /// Starts a reader for `peer`'s new inbound stream. At [`MAX_INBOUND_STREAMS_PER_PEER`]
    /// the peer's **oldest** reader is stopped rather than the new stream refused: a
    /// connection that died without a close (a partition, a paused process) leaves readers
    /// waiting on streams that will never speak again, and refusing the new stream would
    /// shut out the live one until those time out. A peer's own writer uses one stream at a
    /// time, so only stale streams (or a hostile peer, which gains nothing) are stopped.
    fn spawn_reader(&self, peer: PeerId, stream: Stream, readers: &Readers, budget: &Budget) {
        let reader = Reader {
            peer,
            node: node_of(&peer),
            inbound: self.inbound.clone(),
            cmd: self.cmd_tx.clone(),
            shared: self.shared.clone(),
            max_frame: self.cfg.max_frame_bytes,
            frame_timeout: self.cfg.frame_timeout,
            budget: budget.clone(),
        };
        let mut r = readers.lock().expect("readers lock");
        let (next, table) = &mut *r;
        let id = *next;
        *next += 1;
        let list = table.entry(peer).or_default();
        while list.len() >= MAX_INBOUND_STREAMS_PER_PEER {
            if let Some((_, oldest)) = list.pop_front() {
                tracing::info!(%peer, "inbound streams from one peer: dropping its oldest");
                oldest.abort();
            }
        }
        let done = readers.clone();
        let task = tokio::spawn(async move {
            reader.run(stream).await;
            let mut r = done.lock().expect("readers lock");
            if let Some(list) = r.1.get_mut(&peer) {
                list.retain(|(i, _)| *i != id);
                if list.is_empty() {
                    r.1.remove(&peer);
                }
            }
        });
        list.push_back((id, task.abort_handle()));
    }
}

/// Each peer's inbound stream readers, oldest first, by a running id (the first field).
type Readers = Arc<
    Mutex<(
        u64,
        HashMap<PeerId, VecDeque<(u64, tokio::task::AbortHandle)>>,
    )>,
>;

/// Reads frames from one inbound stream and hands envelopes to the executor.
/// Backpressure: `inbound.send().await` waits while the executor's queue is full, so we
/// stop reading and yamux flow control stops the sender.
struct Reader {
    peer: PeerId,
    node: NodeId,
    inbound: mpsc::Sender<Inbound>,
    cmd: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    max_frame: usize,
    frame_timeout: Duration,
    budget: Budget,
}

impl Reader {
    async fn run(self, mut stream: Stream) {
        let reason = loop {
            // A fresh buffer per frame: it is paid for from the budget, and freed as soon as
            // the frame is decoded (the decoded payload keeps the budget share).
            let mut buf = Vec::new();
            let held = match read_frame_bounded(
                &mut stream,
                &mut buf,
                self.max_frame,
                &self.budget,
                self.frame_timeout,
            )
            .await
            {
                Ok(None) => return,
                Ok(Some(held)) => held,
                Err(FrameError::TooLarge { len, limit }) => {
                    break format!("oversized frame ({len} bytes, limit {limit})");
                }
                Err(e @ FrameError::Timeout { .. }) => break e.to_string(),
                Err(FrameError::Io(e)) => {
                    tracing::debug!(peer = %self.peer, "inbound stream ended: {e}");
                    return;
                }
            };
            let len = buf.len();
            let wire = match decode(&buf, self.node, held) {
                Ok(w) => w,
                Err(reason) => break reason,
            };
            self.shared.peer_stats(self.node, |s| {
                s.frames_received += 1;
                s.bytes_received += len as u64;
            });
            if self.inbound.send(Inbound::Remote(wire)).await.is_err() {
                return; // node shutting down
            }
        };
        let _ = stream.close().await;
        let _ = self.cmd.send(Command::BadPeer(self.peer, reason)).await;
    }
}

/// Decodes a frame into a `Send` envelope, checking that the sender is the authenticated
/// peer (no spoofing of another node's atoms).
fn decode(frame: &[u8], peer_node: NodeId, held: Held) -> Result<WireEnvelope, String> {
    let env = Envelope::decode(frame).map_err(|e| format!("malformed frame: {e}"))?;
    if env.from.node != peer_node {
        return Err(format!(
            "frame claims to come from {:?} but the connection is from {:?}",
            env.from.node, peer_node
        ));
    }
    let Envelope {
        from,
        to,
        kind,
        corr,
        payload,
    } = env;
    let Payload::Wire(payload) = payload else {
        unreachable!("decoded envelopes carry wire payloads")
    };
    Ok(WireEnvelope {
        from,
        to,
        kind,
        corr,
        payload,
        held,
    })
}

/// Writes one peer's queue to a stream, reopening the stream (and redialling) when there is
/// something to send, with exponential backoff; gives up after `retry_for` of continuous
/// failure and drops the queue (the next send recreates it).
struct Writer {
    node: NodeId,
    peer: PeerId,
    queue: OutQueue,
    control: libp2p_stream::Control,
    cmd: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    retry_for: Duration,
    io_timeout: Duration,
    wake: Arc<Notify>,
}

impl Writer {
    /// The writer's loop. It holds at most one stream. Without one it waits for a message
    /// (then dials on demand) or a wake-up (a new connection: open a stream so the
    /// connection stays alive). With one it waits for messages and notices the stream's
    /// closure (the peer never writes on it, so a completed read means closed) without
    /// redialling: a peer that went away is only dialled again when there is something
    /// to send.
    async fn run(mut self) {
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut buf = Vec::new();
        let mut stream: Option<Stream> = None;
        let mut want_stream = true;
        loop {
            if batch.is_empty() {
                let more = match stream.as_mut() {
                    Some(s) => {
                        let mut probe = [0u8; 1];
                        tokio::select! {
                            more = self.queue.pop_batch(&mut batch, WRITE_BATCH) => more,
                            _ = s.read(&mut probe) => {
                                tracing::debug!(peer = %self.peer, "outbound stream closed");
                                stream = None;
                                continue;
                            }
                        }
                    }
                    None if want_stream => true,
                    None => tokio::select! {
                        more = self.queue.pop_batch(&mut batch, WRITE_BATCH) => more,
                        _ = self.wake.notified() => {
                            want_stream = true;
                            continue;
                        }
                    },
                };
                if !more {
                    return;
                }
            }
            let mut fresh = false;
            if stream.is_none() {
                match self.open().await {
                    Some(s) => stream = Some(s),
                    None => return,
                }
                want_stream = false;
                fresh = true;
            }
            if batch.is_empty() {
                continue;
            }
            buf.clear();
            let mut bytes = 0u64;
            for f in &batch {
                bytes += f.len() as u64;
                encode_frame(f, &mut buf);
            }
            let s = stream.as_mut().expect("opened above");
            // Every write has a deadline: a stream whose connection died without waking it
            // (or a peer that stopped reading) must not hold the writer forever.
            let res = tokio::time::timeout(self.io_timeout, async {
                s.write_all(&buf).await?;
                s.flush().await
            })
            .await
            .unwrap_or_else(|_| {
                tracing::info!(peer = %self.peer, "write missed its {:?} deadline: closing the connection", self.io_timeout);
                // The connection is wedged: close it, so the next stream is opened on a
                // fresh connection (dialled on demand by `open`).
                let _ = self.cmd.try_send(Command::Disconnect(self.node));
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "write deadline",
                ))
            });
            match res {
                Ok(()) => self.shared.peer_stats(self.node, |s| {
                    s.frames_sent += batch.len() as u64;
                    s.bytes_sent += bytes;
                }),
                Err(e) if !fresh => {
                    // The stream was stale (its connection went away unnoticed): retry the
                    // batch once on a new stream. Frames may arrive twice if part of the
                    // failed write got through; rasp's protocols are idempotent.
                    tracing::debug!(peer = %self.peer, "write on stale stream failed, retrying: {e}");
                    stream = None;
                    continue;
                }
                Err(e) => {
                    tracing::debug!(peer = %self.peer, "write failed, {} frames lost: {e}", batch.len());
                    self.shared
                        .peer_stats(self.node, |s| s.dropped += batch.len() as u64);
                    stream = None;
                }
            }
            batch.clear();
        }
    }

    /// Opens a stream (dialling if needed), each attempt within `io_timeout`, retrying with
    /// exponential backoff; after `retry_for` of failures drops the queue and returns `None`
    /// (the next message to the peer makes a new queue and writer, which dial again).
    async fn open(&mut self) -> Option<Stream> {
        let mut backoff = Duration::from_millis(50);
        let since = Instant::now();
        loop {
            let opened = tokio::time::timeout(
                self.io_timeout,
                self.control.open_stream(self.peer, MSG_PROTOCOL),
            )
            .await;
            let err = match opened {
                Ok(Ok(s)) => return Some(s),
                Ok(Err(e)) => e.to_string(),
                Err(_) => {
                    // Opening hung: the connection is wedged; replace it.
                    let _ = self.cmd.try_send(Command::Disconnect(self.node));
                    format!("no stream within {:?}", self.io_timeout)
                }
            };
            if since.elapsed() >= self.retry_for {
                tracing::info!(peer = %self.peer, "peer unreachable for {:?}: dropping its queue", self.retry_for);
                self.shared.remove_queue(self.node, &self.queue);
                return None;
            }
            tracing::debug!(peer = %self.peer, "cannot open stream: {err}");
            let _ = self.cmd.try_send(Command::Dial(self.node));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
