//! `rasp node`: start one node and run it until SIGINT or SIGTERM.
//!
//! Every node runs a [`NodeInfo`] atom (atom 0): it counts the node's boots in the durable
//! store (key `rasp/boots`) and answers [`InfoRequest`]s on the `rasp/info` service.

use super::config::{resolve, NetArgs};
use super::demo::{Demo, DemoConfig};
use super::{config_error, runtime, ShutdownSignal};
use clap::Args;
use rasp_runtime::net::{Node, NodeHandle};
use rasp_runtime::{boot, Atom, AtomId, Boot, Ctx, Message};
use serde::{Deserialize, Serialize};
use std::process::ExitCode;

/// `rasp node` flags.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Network settings.
    #[command(flatten)]
    pub net: NetArgs,
    /// Run the demo protocol (ping-pong + gossiped grow-only counter) for a cluster of this
    /// many nodes; prints `demo=<json outcome>` when this node is done
    #[arg(long, env = "RASP_DEMO_NODES", value_name = "N")]
    pub demo_nodes: Option<u32>,
    /// Demo: increments per node
    #[arg(
        long,
        env = "RASP_DEMO_INCREMENTS",
        value_name = "K",
        default_value_t = 20
    )]
    pub demo_increments: u64,
    /// Demo: ping-pong rounds with each peer
    #[arg(long, env = "RASP_DEMO_PINGS", value_name = "P", default_value_t = 3)]
    pub demo_pings: u32,
}

/// Store key of the boot counter.
pub const BOOTS_KEY: &[u8] = b"rasp/boots";

/// Asks a node's `rasp/info` service for an [`Info`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InfoRequest;
impl Message for InfoRequest {
    const KIND: &'static str = "rasp/info-request";
}

/// What a node says about itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Info {
    /// How many times this node (this data directory) has started, this start included.
    pub boots: u64,
}
impl Message for Info {
    const KIND: &'static str = "rasp/info";
}

/// Counts boots durably and serves `rasp/info`.
#[derive(Debug, Default)]
pub struct NodeInfo {
    /// Boots so far, this one included (0 if the store failed).
    pub boots: u64,
}

impl Atom for NodeInfo {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        let previous: u64 = match ctx.store_get_as(BOOTS_KEY) {
            Ok(v) => v.unwrap_or(0),
            Err(e) => {
                tracing::error!("reading the boot counter: {e}");
                return;
            }
        };
        match ctx.store_put_as(BOOTS_KEY, &(previous + 1)) {
            Ok(()) => self.boots = previous + 1,
            Err(e) => tracing::error!("writing the boot counter: {e}"),
        }
        ctx.register("rasp/info").expect("first atom of the node");
        ctx.on::<InfoRequest>(|me, ctx, from, _| ctx.reply(from, Info { boots: me.boots }));
    }
}

/// Runs `rasp node`.
pub fn run(args: NodeArgs) -> ExitCode {
    let cfg = match resolve(&args.net) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    let demo = match args.demo_nodes {
        Some(0) => return config_error("--demo-nodes must be at least 1"),
        Some(nodes) => Some(DemoConfig {
            nodes,
            increments: args.demo_increments,
            pings: args.demo_pings,
        }),
        None => None,
    };
    let demo_boot = demo.clone();
    let boot: Boot = boot(move |b| {
        b.spawn(NodeInfo::default());
        if let Some(d) = &demo_boot {
            b.spawn(Demo::new(d.clone(), Vec::new()));
        }
    });
    runtime().block_on(async move {
        let signals = ShutdownSignal::install();
        let node = match Node::start(cfg, boot).await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("rasp: cannot start node: {e}");
                return ExitCode::FAILURE;
            }
        };
        let boots = node
            .call(|h, _| h.with_atom::<NodeInfo, _>(AtomId(0), |a| a.boots))
            .await
            .flatten()
            .unwrap_or(0);
        println!(
            "node_id={} peer_id={} boots={boots}",
            node.id().0,
            node.peer_id()
        );
        for a in node.listen_addrs() {
            println!("listen={a}");
        }
        if demo.is_some() {
            tokio::spawn(report_demo(node.clone_handle()));
        }
        signals.wait().await;
        node.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Prints `demo=<json outcome>` once the demo atom (atom 1) is done.
async fn report_demo(node: NodeHandle) {
    loop {
        let done = node
            .call(|h, _| h.with_atom::<Demo, _>(AtomId(1), |d| d.done.clone()))
            .await;
        match done {
            None => return, // node stopped
            Some(Some(Some((_, outcome)))) => {
                println!("demo={}", serde_json::to_string(&outcome).expect("json"));
                return;
            }
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}
