//! One definition of a program, run anywhere: the [`App`] trait and [`main`].
//!
//! A user writes one [`App`] (the dataflow graph, the interest of each role, what a node does
//! when it starts, the invariants) and one `main`:
//!
//! ```no_run
//! use rasp::app::{App, NoArgs, NodeCtx};
//! use rasp::dataflow::{update::add, Error, Program, Var};
//! use rasp::lattice::ORSet;
//!
//! #[derive(Clone, Default)]
//! struct Shopping;
//!
//! impl App for Shopping {
//!     type Args = NoArgs;
//!     fn program(&self, p: &mut Program) -> Result<(), Error> {
//!         p.declare::<ORSet<String>>("cart")?;
//!         Ok(())
//!     }
//!     fn start(&mut self, node: &mut NodeCtx<'_, Self>) {
//!         if node.index() == Some(0) {
//!             let cart = Var::<ORSet<String>>::named("cart");
//!             node.update(&cart, add("milk".to_string())).expect("declared above");
//!         }
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     rasp::main(Shopping)
//! }
//! ```
//!
//! The binary then has the subcommands `sim` (N nodes in the deterministic simulator: see
//! [`sim`]), `node` (one real process: see [`node`]), and the tools that find bugs: `fuzz`
//! (random schedules and faults until an invariant fails, written as a trace file: see
//! [`fuzz`]), `replay TRACE` (the same execution again, checked event by event), `shrink
//! TRACE` (the failing execution cut down to what matters, with its story: see [`shrink`])
//! and `check` (bounded model checking of a small cluster: see [`check`]); `--help` lists
//! their flags, and the app's own flags ([`App::Args`]) extend `sim`, `node`, `fuzz` and
//! `check` (a trace file stores them for `replay` and `shrink`).
//!
//! # The same wiring in both worlds
//!
//! Every node, simulated or real, is booted by the same closure ([`crate::cli::node::node_boot`]):
//!
//! | atom | what |
//! |---|---|
//! | `AtomId(0)` | [`crate::cli::node::NodeInfo`]: the boot counter in the durable store |
//! | `AtomId(1)` | the membership atom, in the mode of `--membership` (seeds: node 0 in the simulator, `--join` on the network) |
//! | [`APP_ATOM`] = `AtomId(2)` | [`AppAtom`]: the node's [`Replica`] of the app's program (it implements [`HasReplica`]), the interest of the node's role, the app's start hook, its timers, handlers and triggers |
//!
//! Variables are durable in both worlds ([`ReplicaConfig::durable`]): a simulated node that
//! restarts reloads them from its store as a real node reloads them from its data directory.
//!
//! **Node numbers.** [`NodeCtx::index`] is the node's place in the cluster, the one number
//! that means the same in both worlds: simulated node `i` has index `i`; a real node has the
//! index of its `--index` flag (`RASP_INDEX`, TOML key `index`), none without it.
//! [`NodeCtx::id`] is the runtime address (and the CRDT actor): the index in the simulator,
//! derived from the node key on the network; programs should not depend on its value.
//!
//! # Invariants
//!
//! [`App::invariants`] returns [`Invariant`]s: a name and a closure over the live nodes'
//! [`NodeView`]s (index, role, program). `sim` checks each after every event (or every
//! `--check-every` events) and stops at the first violation with the seed and the command
//! that reproduces it; the fuzzer and the minimiser evaluate the same values. Besides the
//! safety properties ([`Invariant::each`], [`Invariant::all`]) an app may state bounded
//! liveness ([`Invariant::eventually`]), and every app gets the built-ins of [`builtin`]
//! (convergence and the operator property after quiescence, triggers firing once).
//!
//! # Workload
//!
//! What nodes do on their own (timers, subscriptions) runs under every tool. Client
//! operations the minimiser should be able to remove one by one are the app's workload
//! ([`App::workload`], [`App::on_work`]): the fuzzer draws them per run and injects each
//! into the node's app atom at its time ([`plan`]).

pub mod builtin;
pub mod check;
pub mod fuzz;
pub mod log;
pub mod node;
pub mod plan;
pub mod shrink;
pub mod sim;

use crate::cli::node::{ExtraBoot, NodeEnv, StartedNode};
use clap::{Args, Parser, Subcommand};
use rasp_dataflow::json::JsonTypes;
use rasp_dataflow::replica::{HasReplica, Replica, ReplicaConfig, SyncMode, SERVICE};
use rasp_dataflow::{CompiledProgram, Error, Interest, Program, Var};
use rasp_lattice::{Lattice, Query, Threshold};
use rasp_membership::{Mode, Role};
use rasp_runtime::{
    Atom, AtomAddr, AtomId, Ctx, Dest, Message, NodeId, Origin, PeerEvent, Time, TimerId,
};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The atom id of the [`AppAtom`] (the replica-holding atom) on every node of an app, in the
/// simulator and on the network: after the node-info atom (0) and the membership atom (1).
pub const APP_ATOM: AtomId = AtomId(2);

/// A program that runs in the simulator, as a real node and under the tools.
///
/// The value is cloned once per node at every boot: `start` and the handlers it registers
/// get that node's own copy (volatile, like every atom state: a restarted node starts from a
/// fresh clone of the configured value).
pub trait App: Clone + Send + Sync + 'static {
    /// The app's own command-line flags, flattened into `sim` and `node` (use [`NoArgs`] for
    /// none). Their names must not clash with rasp's.
    type Args: Args + Clone + Debug + Send + Sync + 'static;

    /// Takes the parsed [`App::Args`] (called once by [`main`], before any node starts). A
    /// bad value is an error: the binary stops with it and exit code 2.
    fn configure(&mut self, _args: &Self::Args) -> Result<(), String> {
        Ok(())
    }

    /// Declares the dataflow graph: the same on every node, and a function of the app's
    /// configuration only. A node's boot closure ([`app_boot`]) calls it at the node's first
    /// start and instantiates the compiled result ([`rasp_dataflow::CompiledProgram`]) at
    /// the later ones in the same process (the model checker boots every node once per
    /// state it rebuilds); a program that registers reads, subscriptions or tasks here is
    /// declared afresh every time.
    fn program(&self, p: &mut Program) -> Result<(), Error>;

    /// Which variables `node` holds (Selective Hearing, PPDP'15 §5), from its role (and, if
    /// it matters, its index or the membership mode: a partial overlay such as HyParView may
    /// need clients to relay what servers exchange). Every node holds everything by default.
    fn interest(&self, _node: &NodeMeta) -> Interest {
        Interest::All
    }

    /// The variable types the node's HTTP API can show and update as JSON: the standard ones
    /// by default ([`JsonTypes::standard`]); register the program's own types here.
    fn json_types(&self) -> JsonTypes {
        JsonTypes::standard()
    }

    /// Runs when the node's replica exists (at every boot): set timers, handlers and
    /// triggers, make the node's first updates.
    fn start(&mut self, _node: &mut NodeCtx<'_, Self>) {}

    /// Properties the tools check (see the module docs).
    fn invariants(&self) -> Vec<Invariant> {
        Vec::new()
    }

    /// The app's own workload for one fuzzed run: client operations as external inputs
    /// (`node` performs `op` at `at`), drawn from `rng` (seeded by the run's seed) for a
    /// cluster of `nodes` nodes whose activity lasts about `horizon`. The fuzzer injects each
    /// into the node's app atom, where [`App::on_work`] performs it; the minimiser removes the
    /// ones a failure does not need. None by default (an app whose nodes act on their own
    /// timers needs none).
    fn workload(
        &self,
        _nodes: &[NodeMeta],
        _horizon: Duration,
        _rng: &mut dyn rand::RngCore,
    ) -> Vec<WorkItem> {
        Vec::new()
    }

    /// Performs one workload operation ([`App::workload`]) on `node`.
    fn on_work(&mut self, _node: &mut NodeCtx<'_, Self>, _op: &str) {}

    /// Whether `op` is an operation [`App::on_work`] performs; the reason if not (what the
    /// app's operations look like). The studio checks an update typed by hand with it before
    /// it simulates the branch. By default no operation is accepted: an app that performs
    /// workload operations says which here.
    fn check_op(&self, op: &str) -> Result<(), String> {
        Err(format!(
            "this app takes no workload operations, so {op:?} cannot be injected \
             (an app accepts them with App::on_work and App::check_op)"
        ))
    }

    /// Whether the nodes keep updating variables on their own timers for as long as they
    /// run (not only in answer to workload operations), so that a run is never quiescent
    /// unless they are told to stop. If so, the fuzzer, `replay`, the minimiser and the
    /// studio call [`App::on_quiet`] on every node when the run goes quiet (the last fault
    /// over: see [`plan`]), and the eventual properties ([`builtin::CONVERGENCE`]:
    /// convergence *after quiescence*) are checked from then on. `false` by default: an app
    /// whose own timers only make a bounded number of updates needs no notice.
    fn self_driven(&self) -> bool {
        false
    }

    /// The run went quiet ([`App::self_driven`] apps only): stop making updates of your own
    /// (cancel the timers that update variables); answering peers may go on.
    fn on_quiet(&mut self, _node: &mut NodeCtx<'_, Self>) {}

    /// Smaller variants of the workload operation `op`, most promising first, for the
    /// minimiser's last phase (the `shrink` module docs): smaller values, fewer elements in a
    /// batch. Only the app knows what its operations mean, so this is where "smaller
    /// contents where the type allows" is decided; [`plan::smaller_numbers`] and
    /// [`plan::fewer_items`] cover the usual shapes. Every variant must be an operation
    /// [`App::on_work`] accepts. None by default: operations are kept as they are.
    fn shrink_op(&self, _op: &str) -> Vec<String> {
        Vec::new()
    }
    /// Adjusts the membership configuration every simulated node of the app boots with
    /// (`sim`, `fuzz`, `shrink`, `check`): a protocol's parameters, such as HyParView's view
    /// sizes. rasp's defaults are kept by default.
    fn membership_config(&self, _config: &mut rasp_membership::Config) {}
}

/// One client operation of an app's workload ([`App::workload`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkItem {
    /// When (virtual time from the start of the run).
    pub at: Duration,
    /// The node's index.
    pub node: u32,
    /// The operation, in the app's own words (shown as is in a failure's story).
    pub op: String,
}

/// The message that carries a [`WorkItem`]'s operation to a node's app atom.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkMsg {
    /// The operation.
    pub op: String,
}

impl Message for WorkMsg {
    const KIND: &'static str = "rasp/app-work";
}

/// The message that tells a node's app that the run went quiet ([`App::on_quiet`]); the
/// simulator's driver sends it to every node of a [`App::self_driven`] app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuietMsg;

impl Message for QuietMsg {
    const KIND: &'static str = "rasp/app-quiet";
}

/// Tells the app atom of each of the first `nodes` nodes of `sim`, at `at`, that the run went
/// quiet ([`QuietMsg`], from the simulator's client; the `fuzz` and `sim` drivers send it to
/// a [`App::self_driven`] app).
pub(crate) fn tell_quiet(sim: &mut rasp_runtime::sim::Sim, nodes: u32, at: Time) {
    let bytes = rmp_serde::to_vec(&QuietMsg).expect("a unit struct encodes");
    for i in 0..nodes {
        sim.inject_raw(
            at,
            Dest::Atom(AtomAddr::new(NodeId(u64::from(i)), APP_ATOM)),
            QuietMsg::KIND_ID,
            rasp_runtime::message::Corr::None,
            bytes.clone(),
        );
    }
}

/// The app with no program of its own: `rasp node` runs it, so a plain node has the same
/// atoms as every app's node (an empty replica at [`APP_ATOM`]) and the same flags. Its
/// program knows the standard JSON types ([`rasp_dataflow::json::JsonTypes::standard`]), so
/// variables declared at run time through the HTTP API (`PUT /vars/{id}`) on any node are
/// held and replicated on every node.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgram;

impl App for NoProgram {
    type Args = NoArgs;
    fn program(&self, p: &mut Program) -> Result<(), Error> {
        JsonTypes::standard().teach(p);
        Ok(())
    }
}

/// No flags of the app's own.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct NoArgs {}

/// What an [`Invariant`] sees of one live node.
#[derive(Clone, Copy)]
pub struct NodeView<'a> {
    /// The node's index (see the module docs).
    pub index: u32,
    /// Its runtime id.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its program: query variables with [`Program::query`].
    pub program: &'a Program,
    /// The node's copy of the app (read it with [`NodeView::app`]).
    pub app: &'a dyn Any,
    /// Which start of the node this is ([`NodeCtx::boot`]).
    pub boot: u64,
    /// Virtual time at which this incarnation started.
    pub started: Time,
    /// The node's membership atom, for invariants over the overlay (its neighbours:
    /// [`rasp_membership::MembershipAtom::neighbours`]); `None` where there is none.
    pub membership: Option<&'a rasp_membership::MembershipAtom>,
}

impl NodeView<'_> {
    /// The node's copy of the app, if it is an `A`: for invariants over what the app keeps
    /// beside its variables (what a node saw, what it refused).
    pub fn app<A: App>(&self) -> Option<&A> {
        self.app.downcast_ref::<A>()
    }
}

impl Debug for NodeView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeView")
            .field("index", &self.index)
            .field("id", &self.id)
            .field("role", &self.role)
            .field("held", &self.program.held())
            .finish()
    }
}

type Check = Arc<dyn Fn(&[NodeView<'_>]) -> Result<(), String> + Send + Sync>;

/// A named property of the running cluster: a closure over the live nodes.
///
/// Two kinds: **safety** ([`Invariant::each`], [`Invariant::all`]), checked after every
/// simulator event; **bounded liveness** ([`Invariant::eventually`]), which must come to
/// hold, and stay, within a bound after the run goes quiet (the last fault healed, every crashed node
/// back, the workload done). [`builtin`] has the properties every app gets.
#[derive(Clone)]
pub struct Invariant {
    name: &'static str,
    check: Check,
    within: Option<Duration>,
}

impl Debug for Invariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invariant")
            .field("name", &self.name)
            .finish()
    }
}

impl Invariant {
    /// A property of every node on its own: `check` runs once per live node.
    pub fn each(
        name: &'static str,
        check: impl Fn(&NodeView<'_>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Invariant {
            name,
            check: Arc::new(move |nodes| {
                for n in nodes {
                    check(n).map_err(|e| format!("node {}: {e}", n.index))?;
                }
                Ok(())
            }),
            within: None,
        }
    }

    /// A property of the live nodes together.
    pub fn all(
        name: &'static str,
        check: impl Fn(&[NodeView<'_>]) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Invariant {
            name,
            check: Arc::new(check),
            within: None,
        }
    }

    /// A bounded eventual property of the live nodes together: once the run is quiet (see
    /// the type's docs), it must come to hold within `within` and keep holding (the tools
    /// check every 100 ms of virtual time, and call it settled after it held without
    /// interruption for a few seconds, see [`plan::STABLE`]); if it does not hold at the
    /// bound, the run fails with its last message.
    pub fn eventually(
        name: &'static str,
        within: Duration,
        check: impl Fn(&[NodeView<'_>]) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Invariant {
            name,
            check: Arc::new(check),
            within: Some(within),
        }
    }

    /// The bound of an eventual property ([`Invariant::eventually`]); `None` for a safety
    /// property, checked after every event.
    pub fn within(&self) -> Option<Duration> {
        self.within
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Evaluates it over `nodes`.
    pub fn check(&self, nodes: &[NodeView<'_>]) -> Result<(), String> {
        (self.check)(nodes)
    }
}

/// Replication flags shared by `sim` and `node`.
#[derive(Clone, Debug, Default, Args)]
pub struct ReplicationArgs {
    /// Sync: state, delta, delta-bp, delta-rr or delta-bp-rr [default: delta-bp-rr]
    #[arg(long, env = "RASP_SYNC", value_name = "MODE")]
    pub sync: Option<SyncMode>,
    /// Milliseconds between two synchronisations with each neighbour [default: 1000]
    #[arg(long, env = "RASP_SYNC_INTERVAL_MS", value_name = "MS")]
    pub sync_interval_ms: Option<u64>,
}

impl ReplicationArgs {
    /// The replica configuration (durable; the interest is set per role).
    pub fn config(&self) -> Result<ReplicaConfig, String> {
        let d = ReplicaConfig::default();
        let sync_interval = match self.sync_interval_ms {
            Some(0) => return Err("--sync-interval-ms must be at least 1".into()),
            Some(ms) => Duration::from_millis(ms),
            None => d.sync_interval,
        };
        Ok(ReplicaConfig {
            sync: self.sync.unwrap_or(d.sync),
            sync_interval,
            // Ten sync intervals, as the default: a trigger owner's heartbeat crosses one hop
            // of a partial overlay per interval.
            suspect_after: sync_interval * 10,
            durable: true,
            ..d
        })
    }
}

/// Per-node facts the [`AppAtom`] is booted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeMeta {
    /// The node's index (see the module docs).
    pub index: Option<u32>,
    /// Its role: `--role` on a real node, the first `--servers` nodes are servers in the
    /// simulator. Every membership mode carries it; client-server membership also shapes its
    /// topology by it.
    pub role: Role,
    /// The membership protocol the node runs.
    pub membership: Mode,
}

/// The atom that runs an [`App`] on a node, at [`APP_ATOM`]: it holds the node's
/// [`Replica`] (serving the dataflow service) and the node's copy of the app.
pub struct AppAtom<A: App> {
    app: A,
    meta: NodeMeta,
    config: ReplicaConfig,
    replica: Option<Replica>,
    boot: u64,
    started: Time,
    /// The program compiled at the first boot of this node's boot closure ([`app_boot`]),
    /// shared by its later boots.
    compiled: Option<Arc<OnceLock<CompiledProgram>>>,
}

impl<A: App> AppAtom<A> {
    /// The atom for one node: `config`'s interest is replaced by the role's.
    pub fn new(app: A, meta: NodeMeta, config: ReplicaConfig) -> Self {
        AppAtom {
            app,
            meta,
            config,
            replica: None,
            boot: 0,
            started: Time::ZERO,
            compiled: None,
        }
    }

    /// Shares `compiled` between the atoms of one boot closure: the first that builds its
    /// program stores it compiled, the others instantiate it.
    fn sharing(mut self, compiled: Arc<OnceLock<CompiledProgram>>) -> Self {
        self.compiled = Some(compiled);
        self
    }

    /// The node's program: instantiated from the compiled one if it was compiled for this
    /// actor and interest, declared by the app otherwise (and then stored compiled).
    fn build_program(&self, actor: u64, interest: &Interest) -> Result<Program, Error> {
        let shared = self.compiled.as_ref();
        if let Some(c) = shared
            .and_then(|c| c.get())
            .filter(|c| c.actor() == actor && c.interest() == interest)
        {
            return Ok(c.instantiate());
        }
        let mut p = Program::with_interest(actor, interest.clone());
        self.app.program(&mut p)?;
        if let Some((cell, compiled)) = shared.zip(p.compile()) {
            // Another thread may have stored its own first: they are equal.
            let _ = cell.set(compiled);
        }
        Ok(p)
    }

    /// Which start of the node this is ([`NodeCtx::boot`]).
    pub fn boot(&self) -> u64 {
        self.boot
    }

    /// When this incarnation started (the node's clock).
    pub fn started(&self) -> Time {
        self.started
    }

    /// The node's copy of the app.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The node's facts.
    pub fn meta(&self) -> NodeMeta {
        self.meta
    }

    /// The replica (`None` before start, or if the program failed to build).
    pub fn replica_ref(&self) -> Option<&Replica> {
        self.replica.as_ref()
    }

    /// The program (`None` before start).
    pub fn program(&self) -> Option<&Program> {
        self.replica.as_ref().map(Replica::program)
    }

    /// The value of every user variable held here ([`Program::show`]), by id; the
    /// replication layer's own variables (ids starting with `__`) are left out.
    pub fn values(&self) -> BTreeMap<String, String> {
        let Some(p) = self.program() else {
            return BTreeMap::new();
        };
        p.held()
            .into_iter()
            .filter(|id| !id.starts_with("__"))
            .filter_map(|id| p.show(&id).ok().map(|v| (id, v)))
            .collect()
    }

    /// Runs `f` on the app and a [`NodeCtx`] (nothing if the replica does not exist).
    fn with_node(&mut self, ctx: &mut Ctx<Self>, f: impl FnOnce(&mut A, &mut NodeCtx<'_, A>)) {
        let AppAtom {
            app,
            meta,
            replica,
            boot,
            ..
        } = self;
        let Some(replica) = replica.as_mut() else {
            return;
        };
        let mut n = NodeCtx {
            ctx: Ctx::new(ctx.sys()),
            replica,
            meta: *meta,
            boot: *boot,
        };
        f(app, &mut n);
    }
}

impl<A: App> HasReplica for AppAtom<A> {
    fn replica(&mut self) -> &mut Replica {
        self.replica
            .as_mut()
            .expect("handlers run only after init created the replica")
    }
}

impl<A: App> Atom for AppAtom<A> {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        if let Err(e) = ctx.register(SERVICE) {
            tracing::error!(error = %e, "a dataflow atom already runs on this node");
            ctx.stop_self();
            return;
        }
        // The boot counter of the node-info atom, which starts first (see the module docs).
        self.boot = match ctx.store_get_as::<u64>(crate::cli::node::BOOTS_KEY) {
            Ok(b) => b.unwrap_or(0),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the boot counter");
                0
            }
        };
        self.started = ctx.now();
        let node = ctx.node();
        let interest = self.app.interest(&self.meta);
        let p = match self.build_program(node.0, &interest) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the app's program");
                ctx.stop_self();
                return;
            }
        };
        let config = ReplicaConfig {
            interest,
            ..self.config.clone()
        };
        self.replica = Some(Replica::new(node, config, p));
        Replica::install(self, ctx);
        // Workload operations come from the simulator's driver only, never from a peer.
        ctx.on::<WorkMsg>(|atom: &mut Self, ctx, from, m| {
            if from.from.node == rasp_runtime::sim::CLIENT {
                atom.with_node(ctx, |app, n| app.on_work(n, &m.op))
            }
        });
        if self.app.self_driven() {
            ctx.on::<QuietMsg>(|atom: &mut Self, ctx, from, _| {
                if from.from.node == rasp_runtime::sim::CLIENT {
                    atom.with_node(ctx, |app, n| app.on_quiet(n))
                }
            });
        }
        ctx.on_peer(|_, ctx, ev| match ev {
            PeerEvent::Up(peer) => tracing::info!(node = ctx.node().0, peer = peer.0, "peer up"),
            PeerEvent::Down(peer) => {
                tracing::info!(node = ctx.node().0, peer = peer.0, "peer down")
            }
        });
        self.with_node(ctx, |app, n| app.start(n));
    }
}

/// What [`App::start`] and the handlers it registers act through: the node's replica,
/// timers and messages, without atom ids.
pub struct NodeCtx<'a, A: App> {
    ctx: Ctx<'a, AppAtom<A>>,
    replica: &'a mut Replica,
    meta: NodeMeta,
    boot: u64,
}

impl<A: App> NodeCtx<'_, A> {
    /// The node's index (see the module docs).
    pub fn index(&self) -> Option<u32> {
        self.meta.index
    }

    /// Which start of this node this is: 1 on its first start (a fresh store), `n` on the
    /// `n`-th (after `n - 1` restarts with its store, in either world); 0 if the store
    /// could not be read. [`App::start`] runs at every start: one-off updates (a first
    /// item, seed data) belong under `boot() == 1`, or a restart would make them again, and
    /// an add made again brings back what was removed since.
    pub fn boot(&self) -> u64 {
        self.boot
    }

    /// The node's runtime id, also its actor in every update.
    pub fn id(&self) -> NodeId {
        self.ctx.node()
    }

    /// The node's role (client-server membership; `Server` in the other modes).
    pub fn role(&self) -> Role {
        self.meta.role
    }

    /// The node's clock (virtual in the simulator).
    pub fn now(&self) -> Time {
        self.ctx.now()
    }

    /// A random number from the node's generator (seeded in the simulator).
    pub fn random_u64(&mut self) -> u64 {
        self.ctx.random_u64()
    }

    /// The program, to query.
    pub fn program(&self) -> &Program {
        self.replica.program()
    }

    /// The program, to declare, subscribe or read ([`Program::read`], [`Program::subscribe`]).
    pub fn program_mut(&mut self) -> &mut Program {
        self.replica.program_mut()
    }

    /// Updates `var` as this node; returns whether it changed. Shipped at the next sync.
    pub fn update<L, O>(&mut self, var: &Var<L>, op: O) -> Result<bool, Error>
    where
        L: Lattice,
        O: rasp_dataflow::update::Update<L>,
    {
        let actor = self.id().0;
        self.replica.program_mut().update(var, op, actor)
    }

    /// The value of `var` here.
    pub fn query<L: Lattice + Query>(&self, var: &Var<L>) -> Result<L::Value, Error> {
        self.replica.program().query(var)
    }

    /// A trigger: `action` runs once in the cluster, on one node of those that arm it, when
    /// `threshold` holds on `var` ([`Replica::trigger_once`]). Arm it on nodes that hold `var`.
    pub fn trigger_once<L, F>(
        &mut self,
        name: &str,
        var: &Var<L>,
        threshold: Threshold<L>,
        action: F,
    ) -> Result<(), Error>
    where
        L: Lattice,
        F: FnOnce(&mut Program, &L) + 'static,
    {
        self.replica.trigger_once(name, var, threshold, action)
    }

    /// Current replication neighbours.
    pub fn neighbours(&self) -> Vec<NodeId> {
        self.replica.neighbours()
    }

    /// Runs `f` once after `delay`.
    pub fn after(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut A, &mut NodeCtx<'_, A>) + 'static,
    ) -> TimerId {
        self.ctx.after(delay, move |atom: &mut AppAtom<A>, ctx| {
            atom.with_node(ctx, f)
        })
    }

    /// Runs `f` every `period` (first after one period).
    pub fn every(
        &mut self,
        period: Duration,
        f: impl Fn(&mut A, &mut NodeCtx<'_, A>) + 'static,
    ) -> TimerId {
        self.ctx.every(period, move |atom: &mut AppAtom<A>, ctx| {
            atom.with_node(ctx, |app, n| f(app, n))
        })
    }

    /// Cancels a timer; whether it was pending.
    pub fn cancel(&mut self, timer: TimerId) -> bool {
        self.ctx.cancel(timer)
    }

    /// Handles messages of kind `M` sent to this node's app ([`NodeCtx::send`], or injected
    /// by a driver at [`APP_ATOM`]). Kinds of the replication layer are taken.
    pub fn on<M: Message>(
        &mut self,
        f: impl Fn(&mut A, &mut NodeCtx<'_, A>, &Origin, M) + 'static,
    ) {
        self.ctx
            .on::<M>(move |atom: &mut AppAtom<A>, ctx, from, m| {
                atom.with_node(ctx, |app, n| f(app, n, from, m))
            });
    }

    /// Sends `msg` to the app on `node`.
    pub fn send<M: Message>(&mut self, node: NodeId, msg: M) {
        self.ctx
            .send(Dest::Atom(AtomAddr::new(node, APP_ATOM)), msg);
    }

    /// Adds `n` to the node's counter `name` (runtime metrics).
    pub fn count(&mut self, name: &'static str, n: u64) {
        self.ctx.count(name, n);
    }
}

/// The boot code of an app's node: spawns the [`AppAtom`] (at [`APP_ATOM`], after the node
/// info and membership atoms of [`crate::cli::node::node_boot`]). The app's program is
/// declared at the first boot and instantiated from its compiled form at the later ones
/// (see [`App::program`]).
pub fn app_boot<A: App>(app: A, index: Option<u32>, config: ReplicaConfig) -> ExtraBoot {
    let compiled: Arc<OnceLock<CompiledProgram>> = Arc::default();
    Arc::new(move |b, env: &NodeEnv| {
        let meta = NodeMeta {
            index,
            role: env.membership.role,
            membership: env.membership.mode,
        };
        let atom = AppAtom::new(app.clone(), meta, config.clone()).sharing(compiled.clone());
        let id = b.spawn(atom);
        debug_assert_eq!(id, APP_ATOM, "the app atom comes third");
    })
}

/// Initialises tracing to stderr: `RUST_LOG` filters (e.g. `RUST_LOG=rasp=debug`), `info` by
/// default; ANSI colours only on a terminal. Called by [`main`]; call it yourself if you
/// write your own `main`. A second call does nothing.
pub fn init_tracing() {
    init_tracing_at("info")
}

/// [`init_tracing`] with another level than `info` when `RUST_LOG` is unset (`check`, `fuzz`
/// and `shrink` use `warn`: they boot clusters again and again).
pub fn init_tracing_at(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The command line of an app's binary.
#[derive(Debug, Parser)]
#[command(version, about, propagate_version = true)]
pub struct AppCli<U: Args> {
    /// What to do.
    #[command(subcommand)]
    pub command: AppCommand<U>,
}

/// The subcommands of an app's binary.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum AppCommand<U: Args> {
    /// Run N nodes of the app in the deterministic simulator; print convergence and the trace hash.
    Sim(sim::SimCmd<U>),
    /// Run one node of the app as a real process until SIGINT/SIGTERM.
    Node(node::NodeCmd<U>),
    /// Explore every interleaving of a small cluster up to a depth (bounded model checking).
    Check(check::CheckCmd<U>),
    /// Fuzz the app in the simulator: random schedules and faults from seeds, in parallel,
    /// until an invariant fails; write the failing execution as a trace file.
    Fuzz(fuzz::FuzzCmd<U>),
    /// Re-run a trace file's execution bit for bit and print its violation again.
    Replay(shrink::ReplayArgs),
    /// Shrink a trace file's failing execution to the events that matter; print its story.
    Shrink(shrink::ShrinkArgs),
    /// Serve the studio: watch, step, scrub and branch an execution in the browser
    /// (a seeded fuzz run, or a trace file with --trace).
    Studio(crate::studio::StudioCmd<U>),
}

/// The flags stored in a trace file, parsed as `fuzz` parses them.
#[derive(Debug, Parser)]
struct FuzzWords<U: Args> {
    #[command(flatten)]
    cmd: fuzz::FuzzCmd<U>,
}

/// The app's flags from the words a trace file stores ([`fuzz::TraceFile::args`]).
pub fn user_args_from_words<U: Args>(words: &[String]) -> crate::Result<U> {
    FuzzWords::<U>::try_parse_from(std::iter::once("fuzz".to_string()).chain(words.iter().cloned()))
        .map(|w| w.cmd.user)
        .map_err(|e| crate::Error::decode("the trace file's flags", e))
}

/// Called with every started real node (see [`Main::on_node_start`]).
pub type NodeStartHook = Arc<dyn Fn(&StartedNode) + Send + Sync>;

/// [`main`] with hooks: `Main::new(app).on_node_start(f).run()`.
pub struct Main<A: App> {
    app: A,
    hooks: Vec<NodeStartHook>,
}

impl<A: App> Main<A> {
    /// The entry point of `app`.
    pub fn new(app: A) -> Self {
        Main {
            app,
            hooks: Vec::new(),
        }
    }

    /// Runs `f` once a real node is up (inside its tokio runtime, so `f` may spawn tasks),
    /// with its [`StartedNode`]: the handle reads the [`AppAtom`] at [`APP_ATOM`]. Use it to
    /// serve something beside the node.
    pub fn on_node_start(mut self, f: impl Fn(&StartedNode) + Send + Sync + 'static) -> Self {
        self.hooks.push(Arc::new(f));
        self
    }

    /// Parses the process's command line and runs the subcommand.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Parses `args` (the first is the binary's name) and runs the subcommand.
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = match AppCli::<A::Args>::try_parse_from(args) {
            Ok(c) => c,
            Err(e) => e.exit(),
        };
        if matches!(
            cli.command,
            AppCommand::Check(_)
                | AppCommand::Fuzz(_)
                | AppCommand::Shrink(_)
                | AppCommand::Studio(_)
        ) {
            init_tracing_at("warn");
        } else {
            init_tracing();
        }
        self.run_command(cli.command)
    }

    /// Runs a parsed subcommand (for a binary that nests the app's subcommands under its
    /// own, as `rasp ad-counter sim|node` does). Tracing must be initialised by the caller.
    pub fn run_command(mut self, command: AppCommand<A::Args>) -> ExitCode {
        let file = match &command {
            AppCommand::Replay(shrink::ReplayArgs { trace })
            | AppCommand::Shrink(shrink::ShrinkArgs { trace, .. }) => {
                match fuzz::TraceFile::load(trace) {
                    Ok(f) => Some(f),
                    Err(e) => return crate::cli::config_error(e),
                }
            }
            AppCommand::Studio(c) => match &c.studio.trace {
                Some(trace) => match fuzz::TraceFile::load(trace) {
                    Ok(f) => Some(f),
                    Err(e) => return crate::cli::config_error(e),
                },
                None => None,
            },
            _ => None,
        };
        let from_file;
        let user = match (&command, &file) {
            (AppCommand::Sim(c), _) => &c.user,
            (AppCommand::Node(c), _) => &c.user,
            (AppCommand::Fuzz(c), _) => &c.user,
            (AppCommand::Check(c), _) => &c.user,
            (AppCommand::Studio(c), None) => &c.user,
            (_, Some(f)) => match user_args_from_words::<A::Args>(&f.args) {
                Ok(u) => {
                    from_file = u;
                    &from_file
                }
                Err(e) => return crate::cli::config_error(e),
            },
            (_, None) => unreachable!("replay and shrink load their file above"),
        };
        if let Err(e) = self.app.configure(user) {
            return crate::cli::config_error(e);
        }
        match command {
            AppCommand::Sim(c) => sim::run_cmd(self.app, &c.sim),
            AppCommand::Node(c) => node::run(self.app, c.node, self.hooks),
            AppCommand::Check(c) => check::run_cmd(self.app, &c.check),
            AppCommand::Fuzz(c) => fuzz::run_cmd(self.app, &c.fuzz),
            AppCommand::Replay(_) => fuzz::replay_cmd(self.app, &file.expect("loaded")),
            AppCommand::Shrink(a) => shrink::run_cmd(self.app, &file.expect("loaded"), &a),
            AppCommand::Studio(c) => {
                let (_, words) = fuzz::split_command_line("studio");
                crate::studio::run_cmd(self.app, &c.studio, file.as_ref(), words)
            }
        }
    }
}

/// The `main` of an app's binary: subcommands `sim`, `node`, `fuzz`, `replay`, `shrink` and
/// `check` (see the module docs).
pub fn main<A: App>(app: A) -> ExitCode {
    Main::new(app).run()
}
