//! `rasp node`: start one node and run it until SIGINT or SIGTERM.
//!
//! `rasp node` is the node of an app with no program of its own
//! ([`crate::app::NoProgram`], through [`crate::app::node::run`]): its extra atom is an empty
//! replica at [`crate::app::APP_ATOM`], and it takes the app node's flags too (`--index`,
//! `--sync`, `--sync-interval-ms`, `--print-values`). Apps' nodes are booted by this module's
//! [`node_boot`] and [`run_with`], in the simulator as on the network.
//!
//! # What a node runs
//!
//! Its boot closure spawns, in this order (so the first ids are fixed):
//!
//! | atom | what |
//! |---|---|
//! | [`INFO_ATOM`] (0) | [`NodeInfo`]: counts boots in the durable store (key `rasp/boots`), serves `rasp/info` |
//! | [`MEMBERSHIP_ATOM`] (1) | [`MembershipAtom`] serving `membership`, in the mode of `--membership` / `RASP_MEMBERSHIP` / the config file's `membership` key (default `hyparview`), joining through the `--join` addresses |
//! | 2… | the atoms of [`NodeOptions::extra_boot`]: an app's [`crate::app::AppAtom`], or a command's own atoms; under a plain `rasp node`, an app with an empty program ([`crate::app::NoProgram`]) whose variables are declared at run time through the HTTP API |
//! | last | with `--demo-nodes N`: the demo protocol, [`rasp_runtime::demo::Demo`] (service `demo`) |
//!
//! # Data directory
//!
//! `--data-dir` holds the node key (`node.key`, the node's identity) and the durable store
//! (`store.redb`). A directory whose key exists belongs to a node that has run before: if
//! its store is then missing, empty or damaged, the node refuses to start (exit 2, naming
//! the file) unless `--reset-store` / `RASP_RESET_STORE=1` / `reset_store = true` is given,
//! which moves the bad file aside to `store.redb.lost-<n>` and starts with an empty store.
//! An empty or damaged key is always an error naming the file. See
//! [`rasp_runtime::net::Node::start`].
//!
//! # Seeds
//!
//! Every `--join` address must end in `/p2p/<peer id>` (as printed in a node's `listen=` start
//! line): membership joins through the node with that id ([`seed_contact`]). A node started
//! without `--join` is the first node of its cluster. Besides its seeds, a node joins
//! through the contacts of past neighbours it remembered in its store (the membership
//! atom's "Remembered contacts"), so a restarted node finds its cluster again whatever its
//! flags say, the first node included.
//!
//! # The demo
//!
//! With `--demo-nodes N` the node also runs the demo protocol of `rasp_runtime::demo` (the
//! same atom the simulator tests run; `tests/net_parity.rs` compares the two) and prints
//! `demo=<json outcome>` once it is done. The demo finds its peers on its own (it connects to
//! every node it hears of), beside whatever membership mode runs.
//!
//! # Start lines (stdout)
//!
//! ```text
//! node_id=<u64> peer_id=<peer> boots=<n> membership=<mode> role=<role>
//! listen=<multiaddr with /p2p/>     (one per address)
//! http=<host:port>                  (the HTTP API, unless --no-http: see rasp::http)
//! ```

use super::config::{
    resolve, resolve_http, resolve_membership, seed_contact, MembershipArgs, NetArgs,
};
use super::{config_error, runtime, ShutdownSignal};
use crate::http::{HttpArgs, ReplicaAtom};
use clap::Args;
use rasp_membership::MembershipAtom;
use rasp_runtime::demo::{decode_outcome, Demo, DemoConfig, OUTCOME_KEY};
use rasp_runtime::net::{Multiaddr, Node, NodeHandle, PeerId};
use rasp_runtime::{boot, Atom, AtomId, Boot, BootCtx, Contact, Ctx, Message, NodeId, ServiceId};
use rasp_wasm::{Limits, WasmAtom, WasmModule};
use serde::{Deserialize, Serialize};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `rasp node` flags.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Network settings.
    #[command(flatten)]
    pub net: NetArgs,
    /// Membership settings.
    #[command(flatten)]
    pub membership: MembershipArgs,
    /// HTTP API settings.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Run the demo protocol (ping-pong + gossiped grow-only counter) for a cluster of this
    /// many nodes; prints `demo=<json outcome>` when this node is done
    #[arg(long, env = "RASP_DEMO_NODES", value_name = "N")]
    pub demo_nodes: Option<u32>,
    /// Demo: increments per node
    #[arg(
        long,
        env = "RASP_DEMO_INCREMENTS",
        value_name = "K",
        default_value_t = DemoConfig::default().increments
    )]
    pub demo_increments: u64,
    /// Run the demo protocol from this WebAssembly module (`rasp-guest-demo` built for
    /// wasm32) instead of the native demo atom; needs `--demo-nodes`
    #[arg(
        long,
        env = "RASP_DEMO_WASM",
        value_name = "FILE.wasm",
        requires = "demo_nodes"
    )]
    pub demo_wasm: Option<std::path::PathBuf>,
    /// Also run this WebAssembly atom (a module speaking rasp's atom ABI, e.g. built with
    /// the `rasp-guest` crate, or WebAssembly text); repeatable
    #[arg(
        long = "atom",
        env = "RASP_ATOMS",
        value_name = "FILE.wasm",
        value_delimiter = ','
    )]
    pub atoms: Vec<std::path::PathBuf>,
    /// The argument every `--atom` gets: JSON, handed to the guest as MessagePack (what
    /// `rmp_serde::from_slice` in the guest decodes); none by default
    #[arg(long, env = "RASP_ATOM_ARG_JSON", value_name = "JSON")]
    pub atom_arg_json: Option<String>,
}

/// Atom id of [`NodeInfo`] on every node.
pub const INFO_ATOM: AtomId = AtomId(0);
/// Atom id of the [`MembershipAtom`] on every node.
pub const MEMBERSHIP_ATOM: AtomId = AtomId(1);

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

/// What extra boot code and start hooks learn about the node's setup.
#[derive(Clone, Debug)]
pub struct NodeEnv {
    /// The resolved membership configuration (mode, role, parameters).
    pub membership: rasp_membership::Config,
    /// The seeds membership joins through (from `--join`; empty on the first node).
    pub seeds: Vec<Contact>,
}

/// Spawns extra atoms at boot, after [`NodeInfo`] and the [`MembershipAtom`] (so the first
/// extra atom is `AtomId(2)`), before the demo. Called at every boot of the node.
pub type ExtraBoot = Arc<dyn Fn(&mut BootCtx<'_>, &NodeEnv) + Send + Sync>;

/// Runs once the node is up and its start lines are printed, inside the node's tokio
/// runtime (so it may `tokio::spawn` tasks that poll atoms through the handle and print
/// result lines).
pub type OnStart = Arc<dyn Fn(StartedNode) + Send + Sync>;

/// A started node, as [`OnStart`] sees it.
#[derive(Clone, Debug)]
pub struct StartedNode {
    /// For [`NodeHandle::call`]: read atom state on the atoms' thread.
    pub handle: NodeHandle,
    /// This node's id.
    pub id: NodeId,
    /// Its libp2p peer id.
    pub peer_id: PeerId,
    /// Its listen addresses (with `/p2p/`).
    pub listen: Vec<Multiaddr>,
    /// Its setup.
    pub env: NodeEnv,
}

/// Hooks for commands built on `rasp node` (see [`run_with`]). The default adds nothing.
#[derive(Clone, Default)]
pub struct NodeOptions {
    /// More atoms to spawn on every boot (after membership).
    pub extra_boot: Option<ExtraBoot>,
    /// Called once the node is up.
    pub on_start: Option<OnStart>,
    /// The atom holding the node's dataflow replica, served by the HTTP API (`/vars`);
    /// `None`: the API serves health, overlay and metrics only.
    pub replica: Option<ReplicaAtom>,
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("extra_boot", &self.extra_boot.is_some())
            .field("on_start", &self.on_start.is_some())
            .field("replica", &self.replica)
            .finish()
    }
}

/// Runs a node with nothing but [`NodeInfo`], membership and the demo if asked (`rasp node`
/// itself runs [`crate::app::NoProgram`] on top: see the module docs).
pub fn run(args: NodeArgs) -> ExitCode {
    run_with(args, NodeOptions::default())
}

/// Runs `rasp node` with more atoms: resolves and validates the flags (exit 2 on a bad
/// value), starts the node with [`NodeInfo`], the [`MembershipAtom`], `opts.extra_boot`'s
/// atoms and the demo if asked, prints the start lines, calls `opts.on_start`, and runs until
/// SIGINT/SIGTERM (exit 0).
///
/// A command that runs its own atoms on `rasp node` processes defines a (hidden) subcommand
/// whose flags flatten [`NodeArgs`] and calls this; the processes it starts get the usual node
/// flags (`--listen`, `--join`, `--membership`, ...) plus its own:
///
/// ```no_run
/// use rasp::cli::node::{run_with, NodeArgs, NodeOptions, StartedNode};
/// use rasp::runtime::{Atom, Ctx};
/// use std::sync::Arc;
///
/// #[derive(clap::Args, Debug)]
/// struct MyNodeArgs {
///     #[command(flatten)]
///     node: NodeArgs,
///     /// My own flag.
///     #[arg(long, default_value_t = 3)]
///     ads: u32,
/// }
///
/// struct Mine(u32);
/// impl Atom for Mine {
///     fn init(&mut self, ctx: &mut Ctx<Self>) {
///         ctx.register("mine").expect("one per node");
///         // Neighbours come from the membership atom: send it
///         // `rasp::membership::atom::Subscribe` (service "membership").
///     }
/// }
///
/// fn run(args: MyNodeArgs) -> std::process::ExitCode {
///     let ads = args.ads;
///     let opts = NodeOptions {
///         extra_boot: Some(Arc::new(move |b, env| {
///             tracing::info!(mode = %env.membership.mode, "spawning mine");
///             b.spawn(Mine(ads)); // AtomId(2)
///         })),
///         replica: None, // or Some(rasp::http::ReplicaAtom::of::<MyAtom>(AtomId(2)))
///         on_start: Some(Arc::new(|n: StartedNode| {
///             tokio::spawn(async move {
///                 let v = n.handle.call(|h, _| h.with_atom::<Mine, _>(rasp::runtime::AtomId(2), |m| m.0)).await;
///                 println!("mine={v:?}");
///             });
///         })),
///     };
///     run_with(args.node, opts)
/// }
/// ```
pub fn run_with(args: NodeArgs, opts: NodeOptions) -> ExitCode {
    let cfg = match resolve(&args.net) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    let membership = match resolve_membership(&args.membership, args.net.config.as_deref()) {
        Ok(m) => m,
        Err(e) => return config_error(e),
    };
    let http = match resolve_http(&args.http, args.net.config.as_deref()) {
        Ok(h) => h,
        Err(e) => return config_error(e),
    };
    let seeds = match cfg
        .join
        .iter()
        .map(seed_contact)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(s) => s,
        Err(e) => return config_error(e),
    };
    let demo = match args.demo_nodes {
        Some(0) => return config_error("--demo-nodes must be at least 1"),
        Some(nodes) => Some(DemoConfig {
            nodes,
            increments: args.demo_increments,
            ..DemoConfig::default()
        }),
        None => None,
    };
    let mut guests = match load_guests(&args.atoms, args.atom_arg_json.as_deref()) {
        Ok(g) => g,
        Err(e) => return config_error(e),
    };
    // The WebAssembly demo takes the demo's config as its argument and replaces the native
    // atom.
    let mut demo = demo;
    if let (Some(path), Some(d)) = (&args.demo_wasm, &demo) {
        match WasmModule::from_file(path, Limits::default()) {
            Ok(m) => match rmp_serde::to_vec(d) {
                Ok(arg) => guests.push((m, arg)),
                Err(e) => return config_error(format!("--demo-wasm: {e}")),
            },
            Err(e) => return config_error(format!("--demo-wasm {}: {e}", path.display())),
        }
        demo = None;
    }
    let report = args.demo_nodes.is_some();
    let extra = with_guests(opts.extra_boot.clone(), guests);
    let env = NodeEnv { membership, seeds };
    let store_file = cfg.data_dir.join(rasp_runtime::net::store::STORE_FILE);
    let boot = node_boot(env.clone(), extra, demo.clone());
    runtime().block_on(async move {
        let signals = ShutdownSignal::install();
        let node = match Node::start(cfg, boot).await {
            Ok(n) => n,
            Err(e) if e.is_setup() => return config_error(format!("cannot start node: {e}")),
            Err(e) => {
                eprintln!("rasp: cannot start node: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(r) = &opts.replica {
            if let Some(msg) = unreadable_refusal(r, &node.clone_handle(), &store_file).await {
                node.shutdown().await;
                eprintln!("rasp: cannot start node: {msg}");
                return ExitCode::from(crate::cli::EXIT_CONFIG);
            }
        }
        let boots = node
            .call(|h, _| h.with_atom::<NodeInfo, _>(INFO_ATOM, |a| a.boots))
            .await
            .flatten()
            .unwrap_or(0);
        let role = format!("{:?}", env.membership.role).to_lowercase();
        println!(
            "node_id={} peer_id={} boots={boots} membership={} role={role}",
            node.id().0,
            node.peer_id(),
            env.membership.mode,
        );
        for a in node.listen_addrs() {
            println!("listen={a}");
        }
        if let Some(h) = &http {
            if let Err(e) =
                crate::http::start_with(h, node.clone_handle(), opts.replica.clone()).await
            {
                eprintln!("rasp: {e}");
                node.shutdown().await;
                return ExitCode::FAILURE;
            }
        }
        if report {
            tokio::spawn(report_demo(node.clone_handle()));
        }
        if let Some(f) = &opts.on_start {
            f(StartedNode {
                handle: node.clone_handle(),
                id: node.id(),
                peer_id: node.peer_id(),
                listen: node.listen_addrs(),
                env: env.clone(),
            });
        }
        signals.wait().await;
        node.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Why the node must not run on, if its replica kept a stored variable record it could not
/// read (and so writes nothing to the store): the message names the file, the records and
/// what to do. With `--reset-store` such records were moved aside instead
/// ([`ReplicaConfig::set_aside_unreadable`](rasp_dataflow::replica::ReplicaConfig)), and the
/// node runs on.
async fn unreadable_refusal(
    replica: &crate::http::ReplicaAtom,
    node: &rasp_runtime::net::NodeHandle,
    store_file: &std::path::Path,
) -> Option<String> {
    let (halted, bad) = replica
        .with(node, |r| (r.is_halted(), r.unreadable().to_vec()))
        .await?;
    if !halted {
        return None;
    }
    let records: Vec<String> = bad
        .iter()
        .map(|r| format!("{} (variable {}): {}", r.key, r.var, r.error))
        .collect();
    Some(format!(
        "store file {}: {} record(s) do not decode: {}. This node's durable state of these \
         variables is unreadable, so it stops rather than run without it. Restore the store \
         from a backup, or start with --reset-store (RASP_RESET_STORE=1, reset_store = true) \
         to move unreadable records aside (kept under df/lost/ in the store) and start \
         without them; the node then catches up from its neighbours",
        store_file.display(),
        bad.len(),
        records.join("; ")
    ))
}

/// The node's boot closure: [`NodeInfo`], the [`MembershipAtom`], `extra`, the demo.
pub fn node_boot(env: NodeEnv, extra: Option<ExtraBoot>, demo: Option<DemoConfig>) -> Boot {
    boot(move |b| {
        b.spawn(NodeInfo::default());
        match MembershipAtom::new(env.membership.clone(), env.seeds.clone()) {
            Ok(m) => {
                b.spawn(m);
            }
            // Validated before the node starts; only a broken invariant gets here.
            Err(e) => panic!("membership configuration checked at start: {e}"),
        }
        if let Some(f) = &extra {
            f(b, &env);
        }
        if let Some(d) = &demo {
            b.spawn(Demo::new(d.clone()));
        }
    })
}

/// Prints `demo=<json outcome>` once the demo atom (found by its service name) is done: a
/// native [`Demo`] says so itself; a WebAssembly one (`--demo-wasm`) has stored its outcome
/// under [`OUTCOME_KEY`] (so a restarted node that was done prints it at once).
async fn report_demo(node: NodeHandle) {
    let service = ServiceId::of(rasp_runtime::demo::SERVICE);
    loop {
        let done = node
            .call(move |h, p| {
                let id = h.lookup_service(service)?;
                if let Some(native) = h.with_atom::<Demo, _>(id, |d| d.done.clone()) {
                    return native.map(|(_, o)| o);
                }
                let stored = p.store_get(OUTCOME_KEY).ok().flatten()?;
                decode_outcome(&stored).ok()
            })
            .await;
        match done {
            None => return, // node stopped
            Some(Some(outcome)) => {
                println!("demo={}", serde_json::to_string(&outcome).expect("json"));
                return;
            }
            Some(None) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `extra`, then one [`WasmAtom`] per guest module with its argument.
fn with_guests(extra: Option<ExtraBoot>, guests: Guests) -> Option<ExtraBoot> {
    if guests.is_empty() {
        return extra;
    }
    Some(Arc::new(move |b: &mut BootCtx<'_>, env: &NodeEnv| {
        if let Some(f) = &extra {
            f(b, env);
        }
        for (m, arg) in &guests {
            b.spawn(WasmAtom::new(m.clone(), arg.clone()));
        }
    }))
}

/// WebAssembly atoms to spawn on every node: each module with the argument it gets.
pub type Guests = Vec<(Arc<WasmModule>, Vec<u8>)>;

/// The modules of `--atom` flags, each with the argument of `--atom-arg-json`; the error
/// names the flag and the file.
pub fn load_guests(atoms: &[std::path::PathBuf], arg_json: Option<&str>) -> Result<Guests, String> {
    let arg = match arg_json {
        None => Vec::new(),
        Some(text) => json_to_msgpack(text).map_err(|e| format!("--atom-arg-json: {e}"))?,
    };
    atoms
        .iter()
        .map(|path| {
            WasmModule::from_file(path, Limits::default())
                .map(|m| (m, arg.clone()))
                .map_err(|e| format!("--atom {}: {e}", path.display()))
        })
        .collect()
}

/// `boot`, then one [`WasmAtom`] per guest module with its argument.
pub fn boot_with_guests(inner: Boot, guests: Guests) -> Boot {
    if guests.is_empty() {
        return inner;
    }
    boot(move |b| {
        inner(b);
        for (m, arg) in &guests {
            b.spawn(WasmAtom::new(m.clone(), arg.clone()));
        }
    })
}

/// JSON text as MessagePack bytes (maps stay maps, so a guest's serde structs decode them).
fn json_to_msgpack(text: &str) -> Result<Vec<u8>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    rmp_serde::to_vec_named(&value).map_err(|e| e.to_string())
}
