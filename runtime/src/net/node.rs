//! [`Node`]: start, query and stop one network node.

use super::exec::{Executor, Inbound, NetPlatform};
use super::shared::{with_p2p, NetStats, Shared};
use super::store::RedbStore;
use super::swarm::{Command, NetTask};
use super::{identity, transport, NetConfig, NetError};
use crate::host::{Boot, Host, Platform};
use crate::ids::{Contact, NodeId};
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashSet;
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
    pub async fn start(cfg: NetConfig, boot: Boot) -> Result<Node, NetError> {
        cfg.validate()?;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            NetError::Io(
                format!("creating data directory {}", cfg.data_dir.display()),
                e,
            )
        })?;
        let key = identity::load_or_create_keypair(&cfg.data_dir)?;
        let psk = cfg
            .psk_file
            .as_deref()
            .map(identity::load_psk)
            .transpose()?;
        let store = RedbStore::open(&cfg.data_dir)?;
        let peer_id = key.public().to_peer_id();
        let shared = Arc::new(Shared::new(peer_id));

        let mut swarm = transport::build_swarm(key, psk, &cfg)?;
        let mut pending = HashSet::new();
        for a in &cfg.listen {
            let id = swarm
                .listen_on(a.clone())
                .map_err(|e| NetError::Transport(format!("cannot listen on {a}: {e}")))?;
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
                        return Err(NetError::Transport(format!("listener closed: {reason:?}")));
                    }
                    SwarmEvent::ListenerError { error, .. } => {
                        return Err(NetError::Transport(format!("listener error: {error}")));
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        tokio::time::timeout(LISTEN_TIMEOUT, wait)
            .await
            .map_err(|_| NetError::Transport("no listen address reported in time".into()))??;

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
