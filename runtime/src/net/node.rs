//! [`Node`]: start, query and stop one network node.

use super::exec::{Executor, Inbound, NetPlatform};
use super::shared::{with_p2p, NetStats, Shared};
use super::store::{self, OpenError, RedbStore};
use super::swarm::{Command, NetTask};
use super::{error_chain, identity, transport, NetConfig, NetError};
use crate::host::{Boot, Host, Platform};
use crate::ids::{Contact, NodeId};
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How long [`Node::start`] waits for its listeners to report an address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A running network node: a libp2p swarm on the caller's tokio runtime plus the atom
/// executor on its own thread. Dropping it without [`Node::shutdown`] leaves both running
/// until the tokio runtime ends.
///
/// ```no_run
/// use rasp_runtime::net::{NetConfig, Node};
/// use rasp_runtime::{boot, Atom, Ctx};
///
/// struct Hello;
/// impl Atom for Hello {
///     fn init(&mut self, ctx: &mut Ctx<Self>) {
///         ctx.on_peer(|_, _, ev| println!("{ev:?}"));
///     }
/// }
///
/// # async fn run() -> Result<(), rasp_runtime::net::NetError> {
/// let cfg = NetConfig {
///     listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
///     data_dir: "./rasp-data".into(),
///     ..NetConfig::default()
/// };
/// let node = Node::start(cfg, boot(|b| {
///     b.spawn(Hello);
/// }))
/// .await?;
/// println!("{:?} listening on {:?}", node.id(), node.listen_addrs());
/// node.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Node {
    shared: Arc<Shared>,
    inbound: mpsc::Sender<Inbound>,
    cmd: mpsc::Sender<Command>,
    stop: watch::Sender<bool>,
    net: JoinHandle<()>,
    exec: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.shared.me)
            .field("peer_id", &self.shared.peer_id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Validates `cfg`, opens the data directory (key and store), listens, dials the join
    /// addresses and boots the atoms. Must be called inside a tokio runtime (with IO and
    /// time enabled). Returns once every listener has an address.
    ///
    /// # The data directory
    ///
    /// A data directory with a `node.key` belongs to a node that has run before, so its
    /// store holds durable state. If that store (`store.redb`) is missing, empty or damaged
    /// the node refuses to start with [`NetError::DataDir`] naming the file, unless
    /// [`NetConfig::reset_store`] is set: then the bad file is moved aside to
    /// `store.redb.lost-<n>` (never deleted) and the node starts with an empty store. An
    /// empty or damaged `node.key` is always an error (it is the node's identity). On the
    /// first start the store is created before the key, so a crash in between leaves no
    /// key and the next start is a first start again; a store left unreadable by such a
    /// crash (no key yet, so no state) is moved aside with a warning.
    pub async fn start(cfg: NetConfig, boot: Boot) -> Result<Node, NetError> {
        cfg.validate()?;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            NetError::Io(
                format!("creating data directory {}", cfg.data_dir.display()),
                e,
            )
        })?;
        let key = identity::load_keypair(&cfg.data_dir)?;
        let psk = cfg
            .psk_file
            .as_deref()
            .map(identity::load_psk)
            .transpose()?;
        let store = open_store(&cfg.data_dir, key.is_some(), cfg.reset_store)?;
        let key = match key {
            Some(k) => k,
            None => identity::create_keypair(&cfg.data_dir)?,
        };
        let peer_id = key.public().to_peer_id();
        let shared = Arc::new(Shared::new(peer_id));

        let mut swarm = transport::build_swarm(key, psk, &cfg)?;
        let mut pending = HashSet::new();
        for a in &cfg.listen {
            probe_listen(a)?;
            let id = swarm.listen_on(a.clone()).map_err(|e| {
                NetError::transport(format!("cannot listen on {a}: {}", error_chain(&e)), e)
            })?;
            pending.insert(id);
        }
        let wait = async {
            while !pending.is_empty() {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr {
                        listener_id,
                        address,
                    } => {
                        shared.add_listen(address);
                        pending.remove(&listener_id);
                    }
                    SwarmEvent::ListenerClosed { reason, .. } => {
                        return Err(match reason {
                            Ok(()) => NetError::Transport {
                                what: "listener closed: closed".into(),
                                source: None,
                            },
                            Err(e) => NetError::transport(
                                format!("listener closed: {}", error_chain(&e)),
                                e,
                            ),
                        });
                    }
                    SwarmEvent::ListenerError { error, .. } => {
                        return Err(NetError::transport(
                            format!("listener error: {}", error_chain(&error)),
                            error,
                        ));
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        tokio::time::timeout(LISTEN_TIMEOUT, wait)
            .await
            .map_err(|_| NetError::Transport {
                what: "no listen address reported in time".into(),
                source: None,
            })??;

        let (cmd_tx, cmd_rx) = mpsc::channel(cfg.command_queue_capacity);
        let (in_tx, in_rx) = mpsc::channel(cfg.inbound_queue_capacity);
        let (stop_tx, stop_rx) = watch::channel(false);

        let (exec_shared, exec_cmd) = (shared.clone(), cmd_tx.clone());
        let (peer_cap, max_frame) = (cfg.peer_queue_capacity, cfg.max_frame_bytes);
        let mut exec_stop = stop_rx.clone();
        let exec = std::thread::Builder::new()
            .name(format!("rasp-atoms-{:?}", shared.me))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("executor runtime");
                rt.block_on(async move {
                    let plat = NetPlatform::new(exec_shared, store, exec_cmd, peer_cap, max_frame);
                    let exec = Executor::new(plat, in_rx, &boot);
                    tokio::select! {
                        _ = exec.run() => {}
                        _ = exec_stop.changed() => {}
                    }
                });
            })
            .map_err(|e| NetError::Io("spawning the executor thread".into(), e))?;

        let task = NetTask {
            swarm,
            shared: shared.clone(),
            cfg,
            cmd_rx,
            cmd_tx: cmd_tx.clone(),
            inbound: in_tx.clone(),
            stop: stop_rx,
        };
        let net = tokio::spawn(task.run());
        Ok(Node {
            shared,
            inbound: in_tx,
            cmd: cmd_tx,
            stop: stop_tx,
            net,
            exec: Some(exec),
        })
    }

    /// This node's id (a hash of its peer id).
    pub fn id(&self) -> NodeId {
        self.shared.me
    }

    /// This node's libp2p peer id.
    pub fn peer_id(&self) -> PeerId {
        self.shared.peer_id
    }

    /// The addresses the node listens on, each ending in `/p2p/<peer id>` (ready for
    /// `--join`).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.shared
            .listen_addrs()
            .iter()
            .map(|a| with_p2p(a, self.shared.peer_id))
            .collect()
    }

    /// This node's contact (id and addresses).
    pub fn contact(&self) -> Contact {
        self.shared.my_contact()
    }

    /// A snapshot of the network counters.
    pub fn stats(&self) -> NetStats {
        self.shared.stats()
    }

    /// Runs `f` on the executor thread with the node's host and platform (to read atom
    /// state, spawn atoms, inject events). Waits in the bounded inbound queue like any
    /// event. `None` if the node has stopped.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Host, &mut dyn Platform) -> R + Send + 'static,
    ) -> Option<R> {
        call(&self.inbound, f).await
    }

    /// A cloneable handle for [`NodeHandle::call`] from other tasks.
    pub fn clone_handle(&self) -> NodeHandle {
        NodeHandle {
            inbound: self.inbound.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Asks the network task to open a connection to `addr` (e.g. after start).
    pub async fn dial(&self, addr: Multiaddr) {
        let _ = self.cmd.send(Command::DialAddr(addr)).await;
    }

    /// Stops the node: the executor finishes the event it is handling, the swarm closes its
    /// connections, and the store is closed. Queued outbound messages are discarded.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.net).await;
        if let Some(t) = self.exec.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// A store that cannot be opened as a [`NetError::DataDir`] naming it.
fn data_dir(e: OpenError) -> NetError {
    NetError::DataDir {
        what: e.to_string(),
        source: Some(e),
    }
}

/// Opens the store of a data directory by the rules of [`Node::start`]; `ran_before`: the
/// directory has a node key.
fn open_store(dir: &Path, ran_before: bool, reset: bool) -> Result<RedbStore, NetError> {
    let lost = match RedbStore::open(dir) {
        Ok(s) => return Ok(s),
        Err(e) if !e.is_lost() => return Err(data_dir(e)),
        Err(e) => e,
    };
    let fresh = |dir: &Path| RedbStore::create(dir).map_err(data_dir);
    let set_aside = |dir: &Path| {
        store::move_aside(dir).map_err(|e| {
            NetError::Io(
                format!("moving {} aside", dir.join(store::STORE_FILE).display()),
                e,
            )
        })
    };
    match (&lost, ran_before, reset) {
        (OpenError::Missing(_), false, _) => fresh(dir),
        (OpenError::Missing(p), true, true) => {
            tracing::warn!(store = %p.display(), "store missing: starting with an empty store (reset_store)");
            fresh(dir)
        }
        (_, true, true) => {
            let aside = set_aside(dir)?;
            tracing::warn!(
                "{lost}; moved it aside to {} and starting with an empty store (reset_store)",
                aside.display()
            );
            fresh(dir)
        }
        (_, false, _) => {
            // No key: a first start that crashed while creating the store; nothing was lost.
            let aside = set_aside(dir)?;
            tracing::warn!(
                "{lost}; no node key yet, so this is a first start: moved it aside to {} and \
                 starting with an empty store",
                aside.display()
            );
            fresh(dir)
        }
        (_, true, false) => Err(NetError::DataDir {
            what: format!(
                "{lost}. This node has run before ({} exists), so its durable state is lost. \
                 Restore the file from a backup, or start with --reset-store \
                 (RASP_RESET_STORE=1, reset_store = true) to move it aside and start with an \
                 empty store",
                dir.join(identity::KEY_FILE).display()
            ),
            source: Some(lost),
        }),
    }
}

/// A cloneable handle to a running [`Node`] for driver calls from other tasks.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    inbound: mpsc::Sender<Inbound>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// How full the node's bounded queues are (see the README's "Bounded everything").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueDepths {
    /// Events waiting in the network → executor queue.
    pub inbound: usize,
    /// Its bound ([`super::NetConfig::inbound_queue_capacity`]).
    pub inbound_capacity: usize,
    /// Outbound messages waiting, summed over the per-peer queues.
    pub outbound: usize,
    /// The longest per-peer outbound queue.
    pub outbound_max: usize,
    /// Per-peer outbound queues open.
    pub peer_queues: usize,
}

impl NodeHandle {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.shared.me
    }

    /// A snapshot of the network counters (see [`Node::stats`]).
    pub fn stats(&self) -> NetStats {
        self.shared.stats()
    }

    /// How full the bounded queues are now.
    pub fn queue_depths(&self) -> QueueDepths {
        let (outbound, outbound_max, peer_queues) = self.shared.queue_lengths();
        QueueDepths {
            inbound: self.inbound.max_capacity() - self.inbound.capacity(),
            inbound_capacity: self.inbound.max_capacity(),
            outbound,
            outbound_max,
            peer_queues,
        }
    }

    /// See [`Node::call`].
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Host, &mut dyn Platform) -> R + Send + 'static,
    ) -> Option<R> {
        call(&self.inbound, f).await
    }
}

async fn call<R: Send + 'static>(
    inbound: &mpsc::Sender<Inbound>,
    f: impl FnOnce(&mut Host, &mut dyn Platform) -> R + Send + 'static,
) -> Option<R> {
    let (tx, rx) = oneshot::channel();
    let call = Box::new(move |h: &mut Host, p: &mut dyn Platform| {
        let _ = tx.send(f(h, p));
    });
    inbound.send(Inbound::Call(call)).await.ok()?;
    rx.await.ok()
}

/// Refuses a listen address whose TCP port another socket already holds.
///
/// libp2p's TCP transport sets `SO_REUSEPORT` on its listeners (for port reuse when
/// dialling), and Linux lets two such sockets of the same user bind one port: a second node
/// started on a busy port would "succeed" and share the port's connections with the first.
/// Binding a plain socket (no `SO_REUSEPORT`) first turns that into the `EADDRINUSE` a user
/// expects. The probe socket is closed before libp2p binds. Port 0 needs no check.
fn probe_listen(addr: &Multiaddr) -> Result<(), NetError> {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    let (Some(ip), Some(port)) = (ip, port) else {
        return Ok(());
    };
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((ip, port)) {
        Ok(probe) => {
            drop(probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(NetError::transport(
            format!(
                "cannot listen on {addr}: address in use (another process listens on {ip} \
                 port {port})"
            ),
            e,
        )),
        Err(e) => Err(NetError::transport(
            format!("cannot listen on {addr}: {e}"),
            e,
        )),
    }
}
