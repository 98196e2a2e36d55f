//! `<app> node`: one node of an [`App`] as a real process, until SIGINT or SIGTERM.
//!
//! Every flag, `RASP_*` variable and TOML key of `rasp node` ([`NodeArgs`], see
//! [`crate::cli::config`]) plus:
//!
//! | flag | variable | TOML key | what |
//! |---|---|---|---|
//! | `--index I` | `RASP_INDEX` | `index` | the node's index ([`super::NodeCtx::index`]) |
//! | `--sync MODE` | `RASP_SYNC` | `sync` | state, delta, delta-bp, delta-rr or delta-bp-rr |
//! | `--sync-interval-ms MS` | `RASP_SYNC_INTERVAL_MS` | `sync_interval_ms` | time between two syncs |
//! | `--print-values` | | | print `values=<json>` (the node's user variables, [`AppAtom::values`]) on stdout whenever they change (checked every 200 ms) |
//!
//! The node is booted like every rasp node ([`crate::cli::node::run_with`]): the app's atom is
//! at [`APP_ATOM`]. Hooks given to [`super::Main::on_node_start`] run once the node is up.

use super::{app_boot, App, AppAtom, NodeStartHook, ReplicationArgs, APP_ATOM};
use crate::cli::config::FileConfig;
use crate::cli::node::{run_with, NodeArgs, NodeOptions, StartedNode};
use clap::Args;
use rasp_dataflow::replica::SyncMode;
use rasp_runtime::net::NodeHandle;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `node` with the app's own flags.
#[derive(Clone, Debug, Args)]
pub struct NodeCmd<U: Args> {
    /// The node's flags.
    #[command(flatten)]
    pub node: AppNodeArgs,
    /// The app's flags.
    #[command(flatten)]
    pub user: U,
}

/// The flags of an app's node (see the module docs).
#[derive(Clone, Debug, Args)]
pub struct AppNodeArgs {
    /// Every `rasp node` flag.
    #[command(flatten)]
    pub node: NodeArgs,
    /// Replication settings.
    #[command(flatten)]
    pub replication: ReplicationArgs,
    /// This node's index in the cluster (what the app sees as `NodeCtx::index`)
    #[arg(long, env = "RASP_INDEX", value_name = "I")]
    pub index: Option<u32>,
    /// Print `values=<json>` on stdout whenever the node's variables change
    #[arg(long)]
    pub print_values: bool,
}

/// Resolves the app settings: flag > environment > the TOML file > default.
fn resolve(
    args: &AppNodeArgs,
) -> crate::Result<(Option<u32>, rasp_dataflow::replica::ReplicaConfig)> {
    let file = match &args.node.net.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let sync = match (&args.replication.sync, &file.sync) {
        (Some(s), _) => Some(*s),
        (None, Some(s)) => Some(
            s.parse::<SyncMode>()
                .map_err(|e| format!("config file: sync: {e}"))?,
        ),
        (None, None) => None,
    };
    let replication = ReplicationArgs {
        sync,
        sync_interval_ms: args.replication.sync_interval_ms.or(file.sync_interval_ms),
    };
    let mut config = replication.config()?;
    // --reset-store also sets unreadable variable records aside instead of refusing to start
    // (README, "Bad input").
    config.set_aside_unreadable = args.node.net.reset_store || file.reset_store.unwrap_or(false);
    Ok((args.index.or(file.index), config))
}

/// Runs one node of `app` (exit 2 on bad settings, 0 on SIGINT/SIGTERM).
pub fn run<A: App>(app: A, args: AppNodeArgs, hooks: Vec<NodeStartHook>) -> ExitCode {
    let (index, config) = match resolve(&args) {
        Ok(r) => r,
        Err(e) => return crate::cli::config_error(e),
    };
    let print = args.print_values;
    let types = app.json_types();
    let opts = NodeOptions {
        extra_boot: Some(app_boot(app, index, config)),
        on_start: Some(Arc::new(move |n: StartedNode| {
            tracing::info!(index = ?index, node = n.id.0, "app node started");
            for h in &hooks {
                h(&n);
            }
            if print {
                tokio::spawn(print_values::<A>(n.handle.clone()));
            }
        })),
        // The HTTP API (unless --no-http) serves the app's replica.
        replica: Some(crate::http::ReplicaAtom::of::<AppAtom<A>>(APP_ATOM).with_types(types)),
    };
    run_with(args.node, opts)
}

/// Prints `values=<json>` whenever the app's values change, until the node stops.
async fn print_values<A: App>(node: NodeHandle) {
    let mut last: Option<BTreeMap<String, String>> = None;
    loop {
        let now = node
            .call(|h, _| h.with_atom::<AppAtom<A>, _>(APP_ATOM, |a| a.values()))
            .await;
        match now {
            None => return, // node stopped
            Some(Some(v)) if last.as_ref() != Some(&v) => {
                println!("values={}", serde_json::to_string(&v).expect("json"));
                last = Some(v);
            }
            Some(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        node: AppNodeArgs,
    }

    fn parse(args: &[&str]) -> AppNodeArgs {
        Cli::try_parse_from(std::iter::once("node").chain(args.iter().copied()))
            .expect("flags parse")
            .node
    }

    #[test]
    fn index_and_sync_come_from_flags_then_the_toml_file() {
        let dir = std::env::temp_dir().join(format!("rasp-app-node-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("node.toml");
        std::fs::write(
            &file,
            "index = 2\nsync = \"state\"\nsync_interval_ms = 250\nmembership = \"full\"\n",
        )
        .unwrap();
        let f = file.display().to_string();
        let (index, cfg) = resolve(&parse(&["--config", &f])).unwrap();
        assert_eq!(index, Some(2));
        assert_eq!(cfg.sync, SyncMode::State);
        assert_eq!(cfg.sync_interval, Duration::from_millis(250));
        assert!(cfg.durable, "app variables are durable in both worlds");
        let (index, cfg) =
            resolve(&parse(&["--config", &f, "--index", "0", "--sync", "delta"])).unwrap();
        assert_eq!((index, cfg.sync), (Some(0), SyncMode::Delta));
        std::fs::write(&file, "sync = \"gossip\"\n").unwrap();
        let e = resolve(&parse(&["--config", &f])).unwrap_err().to_string();
        assert!(e.contains("sync") && e.contains("gossip"), "{e}");
        let e = resolve(&parse(&["--sync-interval-ms", "0"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sync-interval-ms"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
