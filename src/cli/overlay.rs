//! `rasp overlay`: gather the membership views of running nodes over the network and report
//! on the overlay they form (what Lasp's Sprinter did, talk slides 122–129).
//!
//! The command starts a throw-away node (fresh key, temporary data directory, no
//! membership, listening on `--listen`, loopback by default), sends the [`GetView`] debug request to the `membership` service of every
//! `--peer`, retrying until `--timeout-ms`, and prints one JSON object on stdout:
//!
//! ```text
//! {"asked":20,"answered":20,"unreachable":[],
//!  "nodes":{"<node id>":{"addr":"/ip4/…/p2p/…","mode":"hyparview","neighbours":[…],"passive":[…]},…},
//!  "views":{"<node id>":[<neighbour ids>],…},
//!  "report":{"nodes":20,"links":…,"connected":true,"components":[20],"isolated":[],
//!            "asymmetric":[],"degree_histogram":{"4":8,"5":12}}}
//! ```
//!
//! `report` is [`rasp_membership::overlay::Report`] over the active views (the neighbours) of
//! the nodes that answered: a link to a node that did not answer counts as asymmetric.
//! `--dot` prints Graphviz DOT instead. `--check` exits 1 unless every peer answered and the
//! overlay is connected with no isolated node and no asymmetric link.

use super::config::seed_contact;
use super::{config_error, runtime};
use clap::Args;
use rasp_membership::atom::{GetView, View, SERVICE as MEMBERSHIP};
use rasp_membership::overlay::Overlay;
use rasp_runtime::net::{Multiaddr, NetConfig, Node};
use rasp_runtime::{boot, Atom, AtomId, Contact, Ctx, Dest, NodeId, RequestError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long one [`GetView`] attempt waits before it is sent again.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(300);

/// `rasp overlay` flags.
#[derive(Debug, Clone, Args)]
pub struct OverlayArgs {
    /// A node to ask, with its /p2p/ suffix as printed at its start (repeatable, or
    /// comma-separated)
    #[arg(
        long = "peer",
        required = true,
        value_delimiter = ',',
        value_name = "MULTIADDR"
    )]
    pub peers: Vec<Multiaddr>,
    /// The cluster key file, if the cluster has one
    #[arg(long, env = "RASP_PSK_FILE", value_name = "PATH")]
    pub psk_file: Option<PathBuf>,
    /// Where the probing node listens (repeatable, or comma-separated); loopback by default,
    /// so the probe is not reachable from other hosts. Give an address on the cluster's
    /// network when the nodes are on other hosts
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "MULTIADDR",
        default_value = "/ip4/127.0.0.1/tcp/0"
    )]
    pub listen: Vec<Multiaddr>,
    /// How long to wait for all answers, in milliseconds
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub timeout_ms: u64,
    /// Print Graphviz DOT instead of JSON
    #[arg(long)]
    pub dot: bool,
    /// Exit 1 unless every peer answered and the overlay is connected, with no isolated node
    /// and no asymmetric link
    #[arg(long)]
    pub check: bool,
}

/// The probing atom: asks every target's membership service for its view until it answers.
#[derive(Debug)]
pub struct ViewProbe {
    targets: Vec<Contact>,
    /// The views received, by the node that answered.
    pub views: BTreeMap<NodeId, View>,
}

impl ViewProbe {
    /// A probe of `targets`.
    pub fn new(targets: Vec<Contact>) -> Self {
        ViewProbe {
            targets,
            views: BTreeMap::new(),
        }
    }

    fn ask(&mut self, ctx: &mut Ctx<Self>, target: Contact) {
        ctx.connect(&target);
        let node = target.node;
        ctx.request(
            Dest::service(node, MEMBERSHIP),
            GetView,
            ATTEMPT_TIMEOUT,
            move |me: &mut ViewProbe, ctx, r: Result<View, RequestError>| match r {
                Ok(v) if v.node == node => {
                    me.views.insert(node, v);
                }
                Ok(v) => tracing::warn!(?node, answered = ?v.node, "view from another node"),
                Err(e) => {
                    tracing::debug!(?node, "no view yet: {e}");
                    me.ask(ctx, target);
                }
            },
        );
    }
}

impl Atom for ViewProbe {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        for t in self.targets.clone() {
            self.ask(ctx, t);
        }
    }
}

/// What [`gather`] found.
#[derive(Clone, Debug)]
pub struct Gathered {
    /// The peers asked, with their node ids.
    pub asked: Vec<(Contact, Multiaddr)>,
    /// The views of the nodes that answered.
    pub views: BTreeMap<NodeId, View>,
}

impl Gathered {
    /// The overlay of the active views (node ids as `u64`).
    pub fn overlay(&self) -> Overlay<u64> {
        let mut o = Overlay::new();
        for (n, v) in &self.views {
            o.insert(n.0, v.neighbours.iter().map(|m| m.0).collect());
        }
        o
    }

    /// The peers that did not answer.
    pub fn unreachable(&self) -> Vec<&Multiaddr> {
        self.asked
            .iter()
            .filter(|(c, _)| !self.views.contains_key(&c.node))
            .map(|(_, a)| a)
            .collect()
    }

    /// The JSON document `rasp overlay` prints (see the module docs).
    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = self.overlay().to_json();
        let nodes: serde_json::Map<String, serde_json::Value> = self
            .asked
            .iter()
            .filter_map(|(c, a)| {
                let v = self.views.get(&c.node)?;
                Some((
                    c.node.0.to_string(),
                    serde_json::json!({
                        "addr": a.to_string(),
                        "mode": v.mode.to_string(),
                        "neighbours": v.neighbours.iter().map(|n| n.0).collect::<Vec<_>>(),
                        "passive": v.passive.iter().map(|n| n.0).collect::<Vec<_>>(),
                    }),
                ))
            })
            .collect();
        let obj = doc.as_object_mut().expect("overlay JSON is an object");
        obj.insert("asked".into(), self.asked.len().into());
        obj.insert("answered".into(), self.views.len().into());
        obj.insert(
            "unreachable".into(),
            self.unreachable()
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .into(),
        );
        obj.insert("nodes".into(), nodes.into());
        doc
    }
}

/// Starts a throw-away node listening on `listen` and asks every peer for its view, for up to
/// `timeout`.
pub async fn gather(
    peers: &[Multiaddr],
    listen: Vec<Multiaddr>,
    psk_file: Option<PathBuf>,
    timeout: Duration,
) -> crate::Result<Gathered> {
    let asked: Vec<(Contact, Multiaddr)> = peers
        .iter()
        .map(|a| seed_contact(a).map(|c| (c, a.clone())))
        .collect::<Result<_, _>>()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("rasp-overlay-{}-{nanos:09}", std::process::id()));
    let cfg = NetConfig {
        data_dir: dir.clone(),
        listen,
        psk_file,
        ..NetConfig::default()
    };
    let targets: Vec<Contact> = asked.iter().map(|(c, _)| c.clone()).collect();
    let result = async {
        let node = Node::start(
            cfg,
            boot(move |b| {
                b.spawn(ViewProbe::new(targets.clone()));
            }),
        )
        .await
        .map_err(|e| format!("cannot start the probing node: {e}"))?;
        let started = Instant::now();
        let deadline = started + timeout;
        let views = loop {
            let views = node
                .call(|h, _| h.with_atom::<ViewProbe, _>(AtomId(0), |p| p.views.clone()))
                .await
                .flatten()
                .unwrap_or_default();
            if views.len() == asked.len() || Instant::now() >= deadline {
                break views;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        tracing::debug!(answered = views.len(), elapsed = ?started.elapsed(), "views gathered");
        node.shutdown().await;
        tracing::debug!(elapsed = ?started.elapsed(), "probe stopped");
        Ok(Gathered { asked, views })
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Runs `rasp overlay`.
pub fn run(args: OverlayArgs) -> ExitCode {
    if let Err(e) = args
        .peers
        .iter()
        .try_for_each(|a| seed_contact(a).map(drop))
    {
        return config_error(e);
    }
    let timeout = Duration::from_millis(args.timeout_ms);
    let gathered = match runtime().block_on(gather(
        &args.peers,
        args.listen.clone(),
        args.psk_file.clone(),
        timeout,
    )) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("rasp: {e}");
            return ExitCode::FAILURE;
        }
    };
    if gathered.views.is_empty() {
        eprintln!("rasp: no node answered within {} ms", args.timeout_ms);
        return ExitCode::FAILURE;
    }
    let overlay = gathered.overlay();
    if args.dot {
        print!("{}", overlay.to_dot());
    } else {
        println!("{}", gathered.to_json());
    }
    let r = overlay.report();
    let healthy = gathered.unreachable().is_empty()
        && r.connected
        && r.isolated.is_empty()
        && r.asymmetric.is_empty();
    if args.check && !healthy {
        eprintln!(
            "rasp: overlay check failed: unreachable={} connected={} isolated={} asymmetric={}",
            gathered.unreachable().len(),
            r.connected,
            r.isolated.len(),
            r.asymmetric.len()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
