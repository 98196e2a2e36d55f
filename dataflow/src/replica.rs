//! Replication of a [`Program`]'s variables between nodes: state-based or delta-based
//! synchronisation with the BP and RR optimisations (Enes, Almeida, Baquero, Leitão,
//! "Efficient Synchronization of State-based CRDTs", ICDE 2019, Algorithm 2), over the
//! membership layer's neighbours, as an atom on the runtime.
//!
//! **Delta-based sync.** Every effective change of a held variable (a local update, a derived
//! variable recomputed, a remote delta) enters a bounded *delta buffer* with a sequence number
//! and its origin. Every `sync_interval` each neighbour gets the join, per variable, of the
//! buffer entries it has not acknowledged (only for variables it holds: interest), with the
//! buffer's sequence number; it acknowledges that number, and entries every neighbour has
//! acknowledged are garbage-collected. The buffer itself is [`crate::buffer::DeltaBuffer`],
//! sans IO; this module drives it.
//! - **BP** (avoid back-propagation): entries that came from neighbour `j` are not sent to `j`;
//!   nor is any part of what `j` sent since the last sync to it (rasp's refinement of the
//!   paper's BP, [`ReplicaConfig::bp_heard`]: in a mesh, a delta often arrives from two
//!   neighbours before the next sync; RR drops the second copy, and plain BP would still send
//!   it back to the second sender).
//! - **RR** (remove redundant): a received delta enters the buffer only as its part that
//!   strictly inflates the local state ([`rasp_lattice::Lattice::delta`]), not whole.
//!
//! **State-based sync** ships every held variable's whole state to every neighbour each
//! interval (the baseline the ICDE paper measures against).
//!
//! **Catch-up at once** (a bug Lasp had: a node restarted under delta sync got nothing until the object changed again): when a neighbour appears, both sides exchange a
//! [`Hello`] (the variables they hold and the graph's declarations) and then each sends the
//! other the full state of the variables they share, without waiting for a new update. A
//! neighbour that fell behind the buffer (its acknowledged sequence was garbage-collected, or
//! the buffer overflowed its bound) gets full states too.
//!
//! A catch-up is acknowledged like a delta sync (it carries the buffer's sequence number),
//! and until it is, the neighbour gets no deltas and the catch-up is sent again from the
//! second sync interval on: the buffer no longer holds the entries the full states replace
//! (garbage-collected once the neighbour's previous incarnation acknowledged them), so a
//! lost catch-up would otherwise leave the neighbour without them for good.
//!
//! **Functions that travel.** A `map` or `filter` whose function is a WebAssembly export
//! (`Program::map_wasm`, `Program::filter_wasm`) names its module by its SHA-256 in the
//! declaration. A greeting lists the modules the sender holds ([`Hello::modules`]); a
//! replica answers a greeting that lacks a module its graph names with the module's bytes
//! ([`Modules`], after its own greeting, so the declaration arrives first), and a replica
//! that lacks a module a neighbour holds greets it back to be sent it. The receiver keeps
//! only modules its graph names, checks each against its name, validates it (no imports)
//! and instantiates the operators waiting for it; it counts `dataflow_modules_received`
//! and `dataflow_modules_refused`. A module crosses each link once.
//!
//! **Catch-up from a summary.** A greeting carries, per held variable whose type has one, a
//! compact summary of its state ([`rasp_lattice::Summarize`]: an OR-set's causal context, a
//! register's stamp), and the catch-up then ships per variable only the delta since the
//! neighbour's summary, what it lacks, instead of the whole state (the digest-driven
//! synchronisation of Enes et al., ICDE 2019, §V; the causal context as the summary:
//! Almeida, Shoker, Baquero, JPDC 2018, §7). A summary larger than half the state (a
//! grow-only counter's is its per-actor counts, the state itself) is not sent: the whole
//! state is cheaper. The summary is that of the neighbour's state when it greeted, a lower
//! bound of its state since (states only grow within an incarnation, and a restarted
//! neighbour greets again with a new one), so a resent catch-up, or the full catch-up of a
//! neighbour that fell behind the buffer, is still computed from it. A summary that does not
//! decode is counted as rejected and the whole state goes instead; a summary is only ever
//! compared against, never joined, so a hostile one can only make its sender miss data.
//! [`ReplicaConfig::catch_up_summaries`] off ships whole states (for comparisons);
//! [`ReplicaStats`] counts the summary and catch-up bytes and, on the receiving side, the
//! part of each catch-up that was missing.
//!
//! The same holds for a variable that becomes shared later (declared at run time, or newly
//! held on either side, so the neighbours greet again): its full state goes to the neighbour
//! at once, with nothing to acknowledge (the other variables' deltas are still owed), and
//! then rides along, whole, with every delta sync until one of those is acknowledged. Its
//! delta may have been buffered while the neighbour did not hold it, and acknowledged away
//! with the rest, so that state is the only copy on its way.
//!
//! **Resuming a link** (no catch-up for a neighbour that was caught up recently). Overlay
//! links come and go while both ends stay up (HyParView evicts and re-forms active links,
//! Leitão, Pereira, Rodrigues, DSN 2007, §4), and a full-state catch-up for each re-formed
//! link is most of the traffic of a partial overlay. So when a caught-up neighbour goes
//! away the replica remembers, for [`ReplicaConfig::resume_window`] and for at most
//! [`ReplicaConfig::resume_peers`] peers, what it had acknowledged here, and keeps the
//! delta-buffer entries it has not (within the buffer's bound). If the link re-forms in
//! time with the same incarnation of that peer ([`Hello::epoch`]: a restarted replica draws
//! a new one, and then gets full states), holding the same variables as before on both
//! sides, the peer resumes from its acknowledged sequence number: it gets the buffered
//! deltas it missed, not full states.
//!
//! **Plumtree carrier.** With [`Carrier::Plumtree`] local changes are broadcast through the
//! membership layer's Plumtree instead of point-to-point deltas (every node then receives every
//! variable; interest does not filter broadcasts).
//!
//! **Durability.** With `durable` on, held variables are written to the node's store each
//! interval (dirty ones only) and at every trigger firing, and loaded back at start; the
//! names of fired triggers are written as soon as they fire, so a trigger never fires twice
//! on a node, even across restarts.
//!
//! **Triggers** ([`Replica::trigger_once`]). Every node that arms trigger `t` adds itself to a
//! replicated grow-only set `__armed/t` ([`armed_id`]). When the threshold holds, a node runs
//! the action only if it is the trigger's *owner*: the smallest armed node it does not
//! suspect, and only if `t` is not in the replicated grow-only set of fired triggers
//! [`FIRED_ID`]; the action's first update adds `t` to that set, which then travels like any
//! other variable (and, after a firing, at once rather than at the next tick). Every replica
//! knows the types of these variables, so a node that arms nothing but names them in its
//! interest holds and relays them (over a partial overlay the armed nodes may never be
//! neighbours).
//!
//! - *Failure detector.* Nodes with a pending trigger add one to their own entry of the
//!   replicated counter [`ALIVE_ID`] every sync interval. A node suspects an armed node whose
//!   entry has not advanced here (and that has sent it nothing directly) for
//!   [`ReplicaConfig::suspect_after`]; ownership then moves to the next armed node. The
//!   heartbeats travel through the dataflow, not the membership layer's neighbour events,
//!   because a neighbour view is not a liveness view: under HyParView two servers are rarely
//!   neighbours, and a node leaves an active view while alive (Leitão, Pereira, Rodrigues,
//!   "HyParView", DSN 2007, §4); neighbour-up and any message from a node count as evidence
//!   that it is up. A takeover fires within `suspect_after` plus a few sync intervals of the
//!   owner's crash (asserted in `dataflow/tests/sim_replication.rs`).
//! - *Start-up wait.* A node that starts or restarts may own a trigger only after a neighbour
//!   holding the fired set sent it its catch-up, or after `suspect_after`: otherwise an old
//!   owner coming back, caught up first by a client that does not hold the fired set, would
//!   see the threshold hold and run the action again.
//! - *What "once" means.* Triggers are coordination-free, like everything in Lasp (Meiklejohn,
//!   Van Roy, "Lasp: A Language for Distributed, Coordination-Free Programming", PPDP 2015):
//!   no consensus decides who fires. rasp guarantees: **at most once per node**, across
//!   restarts with `durable` (the names of fired triggers are stored); **exactly once in a
//!   connected cluster** whose armed nodes stay up and hear each other's heartbeats within
//!   `suspect_after`; **at most once per side of a partition** that outlasts `suspect_after`
//!   (each side elects its own owner), and a crash of the owner after it fired but before its
//!   record left it counts as such a side: the takeover runs the action once more. When the
//!   sides meet, the fired sets join and nobody fires again; the actions' updates join too, so
//!   an idempotent action (removing an element, setting a flag) takes effect once. Without
//!   coordination nothing stronger is possible: a side cannot tell a dead owner from an
//!   unreachable one.
//!
//! # A complete program
//!
//! Three nodes in the deterministic simulator, each running the membership layer and an app
//! atom around a [`Replica`]: every node declares the same program (two vendors' ad sets,
//! their union, a view counter); clients' requests update it on any node; replicas converge.
//!
//! ```
//! use std::time::Duration;
//! use rasp_dataflow::replica::{HasReplica, Replica, ReplicaConfig, SERVICE};
//! use rasp_dataflow::update::{add, inc};
//! use rasp_dataflow::{causal::DSet, Program, Var};
//! use rasp_lattice::{GCounter, ORSet};
//! use rasp_membership::{Config, MembershipAtom};
//! use rasp_runtime::sim::{Sim, SimConfig};
//! use rasp_runtime::{boot, Atom, AtomAddr, AtomId, Contact, Ctx, Dest, Message, NodeId, Origin};
//! use serde::{Deserialize, Serialize};
//!
//! fn program(p: &mut Program) {
//!     let rovio = p.declare::<ORSet<String>>("ads/rovio").unwrap();
//!     let riot = p.declare::<ORSet<String>>("ads/riot").unwrap();
//!     p.union("ads", &rovio, &riot).unwrap();
//!     p.declare::<GCounter>("views").unwrap();
//! }
//!
//! /// A client request, injected by the simulation driver.
//! #[derive(Clone, Debug, Serialize, Deserialize)]
//! enum Request { NewAd(String), View }
//! impl Message for Request { const KIND: &'static str = "example/request"; }
//!
//! struct App { replica: Option<Replica> }
//! impl HasReplica for App {
//!     fn replica(&mut self) -> &mut Replica { self.replica.as_mut().unwrap() }
//! }
//! impl Atom for App {
//!     fn init(&mut self, ctx: &mut Ctx<Self>) {
//!         ctx.register(SERVICE).unwrap();
//!         let mut p = Program::new(ctx.node().0);
//!         program(&mut p);
//!         self.replica = Some(Replica::new(ctx.node(), ReplicaConfig::default(), p));
//!         Replica::install(self, ctx);
//!         ctx.on::<Request>(|app, ctx, _: &Origin, req| {
//!             let actor = ctx.node().0;
//!             let p = app.replica().program_mut();
//!             match req {
//!                 Request::NewAd(ad) => p.update(&Var::<ORSet<String>>::named("ads/riot"), add(ad), actor),
//!                 Request::View => p.update(&Var::<GCounter>::named("views"), inc(1), actor),
//!             }
//!             .unwrap();
//!         });
//!     }
//! }
//!
//! let mut sim = Sim::new(SimConfig::seeded(42)).unwrap();
//! for _ in 0..3 {
//!     sim.add_node(boot(|b| {
//!         let seeds = if b.node() == NodeId(0) { vec![] } else { vec![Contact::bare(NodeId(0))] };
//!         b.spawn(MembershipAtom::new(Config::default(), seeds).unwrap()); // AtomId(0)
//!         b.spawn(App { replica: None });                                  // AtomId(1)
//!     }));
//! }
//! sim.run_for(Duration::from_secs(2));
//! let app = |n: u64| Dest::Atom(AtomAddr::new(NodeId(n), AtomId(1)));
//! sim.inject(app(0), Request::NewAd("angry-birds".into()));
//! sim.inject(app(1), Request::NewAd("league".into()));
//! for n in 0..3 { sim.inject(app(n), Request::View); }
//! sim.run_for(Duration::from_secs(3));
//!
//! for n in 0..3 {
//!     let (ads, views) = sim
//!         .with_atom::<App, _>(AtomAddr::new(NodeId(n), AtomId(1)), |a| {
//!             let p = a.replica.as_ref().unwrap().program();
//!             (p.query(&Var::<DSet<String>>::named("ads")).unwrap(),
//!              p.query(&Var::<GCounter>::named("views")).unwrap())
//!         })
//!         .unwrap();
//!     assert_eq!(ads.len(), 2);
//!     assert_eq!(views, 3);
//! }
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rasp_lattice::{GCounter, GSet, Lattice, Threshold};
use rasp_membership::atom::{Broadcast, PeerServiceEvent, Subscribe, SERVICE as MEMBERSHIP};
use rasp_runtime::{Atom, Ctx, Dest, Message, NodeId, Origin, Platform, StoreError, Time};
use serde::{Deserialize, Serialize};

use crate::buffer::{DeltaBuffer, Overflow};
use crate::erased::{AnyLattice, TypeOps};
use crate::program::{Decl, Interest, Program, Var};
use crate::update::{add, inc};
use crate::Error;

/// The service name of the dataflow atom on each node.
pub const SERVICE: &str = "dataflow";

rasp_runtime::string_enum! {
    /// How variables are synchronised; named `state`, `delta`, `delta-bp`, `delta-rr` and
    /// `delta-bp-rr` on command lines, in config files and in serialised form.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    #[non_exhaustive]
    pub enum SyncMode: Error = Error::UnknownSyncMode {
        /// Whole states every interval.
        State = "state",
        /// Classic delta-based: buffered deltas, acknowledged, garbage-collected.
        Delta = "delta",
        /// Delta-based, avoiding back-propagation.
        DeltaBp = "delta-bp",
        /// Delta-based, removing redundant state from received deltas.
        DeltaRr = "delta-rr",
        /// Delta-based with both optimisations (the default: ICDE'19's best).
        #[default]
        DeltaBpRr = "delta-bp-rr",
    }
}

impl SyncMode {
    /// Every mode, in the order of the ICDE'19 tables.
    pub const ALL: [SyncMode; 5] = [
        SyncMode::State,
        SyncMode::Delta,
        SyncMode::DeltaBp,
        SyncMode::DeltaRr,
        SyncMode::DeltaBpRr,
    ];
    /// Whether deltas (not states) are shipped.
    pub fn is_delta(self) -> bool {
        self != SyncMode::State
    }
    /// Whether back-propagation is avoided.
    pub fn bp(self) -> bool {
        matches!(self, SyncMode::DeltaBp | SyncMode::DeltaBpRr)
    }
    /// Whether redundant state is removed from received deltas.
    pub fn rr(self) -> bool {
        matches!(self, SyncMode::DeltaRr | SyncMode::DeltaBpRr)
    }
}

/// How deltas travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub enum Carrier {
    /// Point-to-point to each neighbour, with acknowledgements.
    #[default]
    Direct,
    /// Plumtree broadcast through the membership layer.
    Plumtree,
}

/// Replication settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// State- or delta-based, with which optimisations.
    pub sync: SyncMode,
    /// How often neighbours are synchronised. Default 1 s (ICDE'19's setup).
    pub sync_interval: Duration,
    /// Direct or Plumtree.
    pub carrier: Carrier,
    /// Which variables this node holds.
    pub interest: Interest,
    /// Persist held variables and fired triggers in the node's store.
    pub durable: bool,
    /// What to do with a stored variable record that does not decode at start (see
    /// [`Replica::unreadable`]): `false` (the default) keeps it untouched and halts the
    /// replica's writes to the store, so the node can refuse to start; `true` (a node's
    /// `--reset-store`) moves it aside to `df/lost/<id>` in the store, counts it
    /// (`dataflow.unreadable_records`) and starts without it.
    pub set_aside_unreadable: bool,
    /// Bound of the delta buffer, in entries; when full the oldest entries are dropped and a
    /// neighbour that had not acknowledged them gets full states instead (no data is lost).
    pub buffer_limit: usize,
    /// With BP, also leave out of a neighbour's delta every part it sent us itself since the
    /// last sync to it (see the module docs). On by default; off runs the ICDE'19 paper's
    /// Algorithm 2 exactly (for comparisons).
    pub bp_heard: bool,
    /// The trigger failure detector's timeout: an armed node whose heartbeat has not advanced
    /// here for this long is suspected and loses the ownership of its triggers; a node that
    /// starts (or restarts) waits at most this long for a neighbour's catch-up before it may
    /// own a trigger (see the module docs on triggers). Default 10 s, ten default sync
    /// intervals: a heartbeat crosses one hop of a partial overlay per interval.
    pub suspect_after: Duration,
    /// How long a neighbour that went away caught up is remembered so that a link re-formed
    /// with it resumes from what it acknowledged instead of a full-state catch-up (see the
    /// module docs). Default 60 s: a HyParView link evicted or lost to a short partition
    /// re-forms within a few promotion ticks (5 s each) or a reconnect-probe hold-off (30 s).
    pub resume_window: Duration,
    /// At most this many departed neighbours are remembered for resuming (the oldest is
    /// forgotten first); zero turns resuming off. Default 16: three times HyParView's
    /// active view (5).
    pub resume_peers: usize,
    /// Catch up a neighbour from its summary (module docs, "Catch-up from a summary"): its
    /// [`Hello`] carries the compact summaries of the variables it holds, and the catch-up
    /// ships per variable only the delta since that summary, not the whole state. On by
    /// default; off ships whole states (for comparisons).
    pub catch_up_summaries: bool,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            sync: SyncMode::default(),
            sync_interval: Duration::from_secs(1),
            carrier: Carrier::Direct,
            interest: Interest::All,
            durable: false,
            set_aside_unreadable: false,
            buffer_limit: 65_536,
            bp_heard: true,
            suspect_after: Duration::from_secs(10),
            resume_window: Duration::from_secs(60),
            resume_peers: 16,
            catch_up_summaries: true,
        }
    }
}

/// A neighbour's greeting: what it holds and the graph it knows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hello {
    /// Whether this answers the receiver's greeting (greetings are re-sent every interval
    /// until answered, so a lost one costs one interval, not the neighbour).
    pub reply: bool,
    /// Ids of the variables the sender holds.
    pub held: Vec<String>,
    /// The sender's graph declarations.
    pub graph: Vec<Decl>,
    /// The sender replica's incarnation (random at start, new after a restart): a link
    /// re-formed with the same incarnation may resume without full states (module docs).
    #[serde(default)]
    pub epoch: u64,
    /// `(variable id, encoded summary)` of the held variables whose type has a compact
    /// summary ([`rasp_lattice::Summarize`], at most half the size of the state): the
    /// receiver catches the sender up with the deltas since them (module docs, "Catch-up
    /// from a summary"). Empty under state-based sync or with
    /// [`ReplicaConfig::catch_up_summaries`] off.
    #[serde(default)]
    pub summaries: Vec<(String, Vec<u8>)>,
    /// Hashes of the WebAssembly function modules the sender holds: the receiver sends it
    /// those its graph names that it lacks ([`Modules`]).
    #[serde(default)]
    pub modules: Vec<String>,
}
impl Message for Hello {
    const KIND: &'static str = "dataflow/hello";
}

/// WebAssembly function modules a neighbour lacks, `(hash, binary)` (module docs,
/// "Functions that travel"); each is checked against its hash before it runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Modules {
    /// `(SHA-256 in hex, module binary)`.
    pub modules: Vec<(String, Vec<u8>)>,
}
impl Message for Modules {
    const KIND: &'static str = "dataflow/modules";
}

/// Modules one [`Modules`] message carries at most (a larger batch is refused whole).
pub const MAX_MODULES_PER_MESSAGE: usize = 16;

/// Deltas (or states) of several variables, MessagePack-encoded per variable.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sync {
    /// The sender's buffer sequence number to acknowledge (0: nothing to acknowledge).
    pub seq: u64,
    /// Whether the payloads are whole states.
    pub state: bool,
    /// `(variable id, encoded value)`.
    pub vars: Vec<(String, Vec<u8>)>,
}
impl Message for Sync {
    const KIND: &'static str = "dataflow/sync";
}

/// Acknowledges a [`Sync`]'s sequence number.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ack {
    /// The acknowledged sequence number.
    pub seq: u64,
}
impl Message for Ack {
    const KIND: &'static str = "dataflow/ack";
}

#[derive(Default)]
struct Peer {
    /// Whether its [`Hello`] arrived (until then `held` is unknown and nothing is sent).
    greeted: bool,
    held: BTreeSet<String>,
    /// Needs full states (new, or fell behind the buffer).
    behind: bool,
    /// How many variables we held when we last greeted it: a variable declared here later
    /// (at run time, or learnt from another neighbour's graph) makes us greet it again.
    told: usize,
    /// Its incarnation, from its [`Hello`].
    epoch: Option<u64>,
    /// The variables it was caught up on (their full states sent, or its link resumed).
    caught: BTreeSet<String>,
    /// A full-state catch-up sent and not acknowledged yet: the sequence number it carried
    /// (an acknowledgement at or above it means one arrived, since no delta is sent to the
    /// neighbour meanwhile) and the sync intervals that ended since it was sent.
    catching: Option<(u64, u32)>,
    /// Variables whose full states went to it unacknowledged after a later greeting (sent
    /// with nothing to acknowledge, since the deltas of the others are still owed): they
    /// ride along, whole, with every delta sync until one carrying `owed_from` or more is
    /// acknowledged (module docs, "Catch-up at once").
    owed: BTreeSet<String>,
    /// The sequence number the syncs carrying `owed` start at (one that no earlier sync
    /// carried).
    owed_from: u64,
    /// The encoded summaries from its latest [`Hello`], per variable it holds: lower bounds
    /// of its states (states only grow within an incarnation), so a catch-up sends the
    /// deltas since them. Bounded by the frame limit of the one greeting they came in.
    summaries: BTreeMap<String, Vec<u8>>,
}

/// A neighbour that went away caught up, remembered to resume a re-formed link.
struct Departed {
    /// Its incarnation.
    epoch: u64,
    /// What it held.
    held: BTreeSet<String>,
    /// What we held then.
    ours: Vec<String>,
    /// When it went away.
    left: Time,
}

/// Replication counters of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStats {
    /// Payload bytes sent, per variable.
    pub bytes_sent: BTreeMap<String, u64>,
    /// Payload bytes received, per variable.
    pub bytes_received: BTreeMap<String, u64>,
    /// Sync messages sent carrying whole states.
    pub state_msgs: u64,
    /// Sync messages sent carrying deltas.
    pub delta_msgs: u64,
    /// Entries received that did not decode, or named a variable not held here.
    pub rejected: u64,
    /// Buffer entries dropped because the buffer was full.
    pub buffer_overflows: u64,
    /// Largest delta-buffer length seen.
    pub max_buffer: usize,
    /// Bytes of variable summaries sent in greetings ([`Hello::summaries`]).
    #[serde(default)]
    pub summary_bytes_sent: u64,
    /// Payload bytes sent in catch-ups (whole states, or deltas since a summary).
    #[serde(default)]
    pub catch_up_bytes_sent: u64,
    /// Payload bytes received in catch-ups.
    #[serde(default)]
    pub catch_up_bytes_received: u64,
    /// Of the catch-ups received, the encoded size of the part that was missing here when
    /// it arrived (per variable, the minimal delta `received.delta(state)` against the state
    /// before the message applied): what an ideal catch-up would have sent.
    #[serde(default)]
    pub catch_up_missing_bytes: u64,
}

type Build = Arc<dyn Fn(&mut Program)>;
type Setup = Arc<dyn Fn(&mut Replica)>;

/// The replication state of one node around its [`Program`]. Embed it in an atom that
/// implements [`HasReplica`] and call [`Replica::install`] from the atom's `init`, or use the
/// ready-made [`DataflowAtom`].
pub struct Replica {
    config: ReplicaConfig,
    program: Program,
    me: NodeId,
    peers: BTreeMap<NodeId, Peer>,
    /// The delta buffer, its sequence numbers and the neighbours' acknowledgements.
    buffer: DeltaBuffer,
    dirty: BTreeSet<Arc<str>>,
    persisted_fired: BTreeSet<String>,
    stats: ReplicaStats,
    /// Triggers armed through [`Replica::trigger_once`] that have not fired here nor been seen in
    /// the replicated fired set.
    pending: BTreeSet<String>,
    /// What the trigger guards read (shared with them).
    view: Rc<RefCell<OwnerView>>,
    /// Per other node: its last heartbeat count seen here, and when it last advanced (or the
    /// node was last heard from directly).
    heard: BTreeMap<u64, (u64, Time)>,
    /// When this replica started (installed).
    booted_at: Time,
    /// Whether a neighbour holding the fired set has sent its catch-up since the start.
    caught_up: bool,
    /// This replica's incarnation (see [`Hello::epoch`]).
    epoch: u64,
    /// Neighbours that went away caught up (bounded by `resume_peers`, kept for
    /// `resume_window`): their entries stay in the buffer so a re-formed link resumes.
    departed: BTreeMap<NodeId, Departed>,
    /// Links resumed without a full-state catch-up.
    resumed: u64,
    /// Stored records that did not decode at start (at most [`MAX_UNREADABLE_KEPT`]).
    unreadable: Vec<UnreadableRecord>,
    /// Whether the replica writes nothing to the store (an unreadable record was kept).
    halted: bool,
}

/// Most unreadable records a replica lists (each is logged; all are counted).
pub const MAX_UNREADABLE_KEPT: usize = 64;

/// A stored variable record that did not decode when the replica restored its durable state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadableRecord {
    /// The store key (`df/var/<id>`).
    pub key: String,
    /// The variable.
    pub var: String,
    /// Why it did not decode.
    pub error: String,
    /// Where it was moved with [`ReplicaConfig::set_aside_unreadable`]; `None`: left in place.
    pub moved_to: Option<String>,
}

/// What the ownership guard of the triggers reads from the replica.
#[derive(Default)]
struct OwnerView {
    /// Whether this node may own triggers yet (it has heard the cluster's fired set, or
    /// waited `suspect_after` since it started).
    eligible: bool,
    /// Armed nodes whose heartbeat stopped for `suspect_after`.
    suspected: BTreeSet<u64>,
}

/// An atom that holds a [`Replica`].
pub trait HasReplica: Atom {
    /// The replica.
    fn replica(&mut self) -> &mut Replica;
}

const VAR_KEY: &str = "df/var/";
const LOST_KEY: &str = "df/lost/";
const FIRED_KEY: &str = "df/fired/";
/// Variables declared while the node runs (not by its program at boot): `df/decl/<id>` →
/// the declarer's name of its type ([`Replica::remember_declaration`]).
const DECL_KEY: &str = "df/decl/";

/// The replicated grow-only set of the names of fired triggers (see the module docs).
pub const FIRED_ID: &str = "__fired";

/// The replicated heartbeat counter of the nodes with armed triggers: each adds one to its
/// own entry every sync interval (see the module docs).
pub const ALIVE_ID: &str = "__alive";

/// The id of the replicated set of the nodes that armed trigger `name`.
pub fn armed_id(name: &str) -> String {
    format!("__armed/{name}")
}

impl Replica {
    /// A replica for `node` with `config`; `program` is the node's program (already built).
    pub fn new(node: NodeId, config: ReplicaConfig, mut program: Program) -> Self {
        program.record_changes(true);
        // The types of the trigger-ownership variables (`__armed/<t>`, the fired set, the
        // heartbeats), known on every node, armed or not: a node that never arms a trigger
        // (a client) but whose interest names them must hold them when it learns their
        // declarations from a neighbour's graph, or it cannot relay them, and over a partial
        // overlay the armed nodes then neither learn each other's firings nor, once the
        // heartbeats stop, that the owner is up (module docs, "Triggers").
        program.know_type(TypeOps::of::<GSet<u64>>());
        program.know_type(TypeOps::of::<GSet<String>>());
        program.know_type(TypeOps::of::<GCounter>());
        let buffer = DeltaBuffer::new(config.buffer_limit);
        Replica {
            config,
            program,
            me: node,
            peers: BTreeMap::new(),
            buffer,
            dirty: BTreeSet::new(),
            persisted_fired: BTreeSet::new(),
            stats: ReplicaStats::default(),
            pending: BTreeSet::new(),
            view: Rc::default(),
            heard: BTreeMap::new(),
            booted_at: Time::ZERO,
            caught_up: false,
            epoch: 0,
            departed: BTreeMap::new(),
            resumed: 0,
            unreadable: Vec::new(),
            halted: false,
        }
    }

    /// The program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The program, to update variables (changes are shipped at the next sync).
    pub fn program_mut(&mut self) -> &mut Program {
        &mut self.program
    }

    /// Stored variable records that did not decode when this replica restored its durable
    /// state, with what was done about them ([`ReplicaConfig::set_aside_unreadable`]).
    pub fn unreadable(&self) -> &[UnreadableRecord] {
        &self.unreadable
    }

    /// Whether the replica stopped writing to the store because a record it could not read
    /// was kept in place: the node should not run on (a real node exits; see the README's
    /// "Bad input").
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// The configuration.
    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }

    /// Replication counters.
    pub fn stats(&self) -> &ReplicaStats {
        &self.stats
    }

    /// How many re-formed links resumed from what the neighbour had acknowledged, without a
    /// full-state catch-up (see the module docs).
    pub fn resumed_links(&self) -> u64 {
        self.resumed
    }

    /// Current neighbours.
    pub fn neighbours(&self) -> Vec<NodeId> {
        self.peers.keys().copied().collect()
    }

    /// Per neighbour, how many delta-buffer entries it has not acknowledged yet (its
    /// replication lag in entries; 0 under state-based sync, which buffers nothing).
    pub fn lag(&self) -> BTreeMap<NodeId, u64> {
        self.peers
            .keys()
            .map(|n| (*n, self.buffer.lag(*n) as u64))
            .collect()
    }

    /// Current delta-buffer length.
    pub fn buffer_len(&self) -> usize {
        self.buffer.len()
    }

    /// Current delta-buffer size: the encoded bytes of its entries (for memory reports).
    pub fn buffer_bytes(&self) -> usize {
        self.buffer.bytes()
    }

    /// Registers the handlers and the sync timer on atom `A` (call it from `A::init`),
    /// subscribes to the membership atom of this node, and restores durable state.
    pub fn install<A: HasReplica>(atom: &mut A, ctx: &mut Ctx<A>) {
        ctx.on::<PeerServiceEvent>(|a, ctx, _, ev| a.replica().on_membership(ctx, ev));
        ctx.on::<Hello>(|a, ctx, from, m| a.replica().on_hello(ctx, from, m));
        ctx.on::<Sync>(|a, ctx, from, m| a.replica().on_sync(ctx, from, m));
        ctx.on::<Modules>(|a, ctx, from, m| a.replica().on_modules(ctx, from, m));
        ctx.on::<Ack>(|a, ctx, from, m| {
            let r = a.replica();
            r.touch(from.from.node, ctx.now());
            r.on_ack(from.from.node, m.seq);
        });
        let node = ctx.node();
        ctx.send(Dest::service(node, MEMBERSHIP), Subscribe);
        let r = atom.replica();
        r.me = node;
        r.booted_at = ctx.now();
        r.epoch = ctx.random_u64();
        r.restore(ctx);
        ctx.every(r.config.sync_interval, |a, ctx| a.replica().tick(ctx));
    }

    fn restore<A: Atom>(&mut self, ctx: &mut Ctx<A>) {
        if !self.config.durable {
            return;
        }
        match ctx.store_scan_prefix(FIRED_KEY.as_bytes()) {
            Ok(pairs) => {
                for (k, _) in pairs {
                    let name = String::from_utf8_lossy(&k[FIRED_KEY.len()..]).to_string();
                    self.program.mark_fired(&name);
                    self.persisted_fired.insert(name);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read fired triggers"),
        }
        for id in self.program.held() {
            let key = format!("{VAR_KEY}{id}");
            match ctx.store_get(key.as_bytes()) {
                Ok(Some(bytes)) => {
                    if let Err(e) = self.program.apply_encoded(&id, &bytes) {
                        self.on_unreadable(ctx, &id, key, &bytes, e.to_string());
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(var = %id, error = %e, "cannot read stored state"),
            }
        }
        // What was restored is already durable and known to be old news for nobody: ship it
        // like any change (neighbours that have it drop it as redundant).
        self.absorb_changes(None);
        self.dirty.clear();
    }

    /// A stored record of `var` that does not decode: never silently replaced. Either kept
    /// in place with the replica's store writes halted, or moved aside to `df/lost/<var>`
    /// (the first free `df/lost/<var>.<n>` if that exists), per the configuration.
    fn on_unreadable<A: Atom>(
        &mut self,
        ctx: &mut Ctx<A>,
        var: &str,
        key: String,
        bytes: &[u8],
        error: String,
    ) {
        ctx.count("dataflow.unreadable_records", 1);
        let moved_to = if self.config.set_aside_unreadable {
            let mut to = format!("{LOST_KEY}{var}");
            let mut n = 1;
            while matches!(ctx.store_get(to.as_bytes()), Ok(Some(_))) && n < 10_000 {
                n += 1;
                to = format!("{LOST_KEY}{var}.{n}");
            }
            let moved = ctx
                .store_put(to.as_bytes(), bytes)
                .and_then(|()| ctx.store_delete(key.as_bytes()));
            match moved {
                Ok(()) => {
                    tracing::error!(
                        record = %key, var, error = %error, moved_to = %to,
                        "stored variable record does not decode: moved it aside and starting \
                         without it (reset_store)"
                    );
                    Some(to)
                }
                Err(e) => {
                    tracing::error!(record = %key, error = %e, "cannot move the unreadable record aside");
                    self.halted = true;
                    None
                }
            }
        } else {
            tracing::error!(
                record = %key, var, error = %error,
                "stored variable record does not decode: keeping it and writing nothing to \
                 the store"
            );
            self.halted = true;
            None
        };
        if self.unreadable.len() < MAX_UNREADABLE_KEPT {
            self.unreadable.push(UnreadableRecord {
                key,
                var: var.to_string(),
                error,
                moved_to,
            });
        }
    }

    /// Moves the program's recorded changes into the buffer; the first one is attributed to
    /// `first_origin` if it concerns `first_var`.
    fn absorb_changes(&mut self, first: Option<(&str, NodeId)>) {
        let changes = self.program.drain_changes();
        for (k, (var, delta)) in changes.into_iter().enumerate() {
            let origin = match first {
                Some((id, from)) if k == 0 && *var == *id => Some(from),
                _ => None,
            };
            self.dirty.insert(var.clone());
            self.push(var, delta, origin);
        }
    }

    /// Whether changes are buffered: for delta-based sync and for the broadcast carrier
    /// (state-based sync with the direct carrier ships states, not buffered deltas).
    fn buffering(&self) -> bool {
        self.config.sync.is_delta() || self.config.carrier != Carrier::Direct
    }

    fn push(&mut self, var: Arc<str>, delta: Box<dyn AnyLattice>, origin: Option<NodeId>) {
        if !self.buffering() {
            return;
        }
        let overflow = self.buffer.push(var, delta, origin);
        self.after_push(overflow);
    }

    /// Counts a push; the neighbours that had not acknowledged an entry the bound dropped
    /// need full states, and the departed ones can no longer resume.
    fn after_push(&mut self, overflow: Option<Overflow>) {
        if let Some(o) = overflow {
            self.stats.buffer_overflows += 1;
            for n in o.behind {
                if let Some(p) = self.peers.get_mut(&n) {
                    p.behind = true;
                }
            }
            for n in o.forgotten {
                self.departed.remove(&n);
            }
        }
        self.stats.max_buffer = self.stats.max_buffer.max(self.buffer.len());
    }

    fn on_membership<A: HasReplica>(&mut self, ctx: &mut Ctx<A>, ev: PeerServiceEvent) {
        match ev {
            PeerServiceEvent::NeighbourUp(n) => {
                self.touch(n, ctx.now());
                // Its hello may have come first (the two ends see the link at different
                // times): keep what it said.
                self.peers.entry(n).or_insert_with(|| Peer {
                    behind: true,
                    ..Peer::default()
                });
                self.buffer.add_neighbour(n);
                self.greet(ctx, n, false);
            }
            PeerServiceEvent::NeighbourDown(n) => {
                if let Some(p) = self.peers.remove(&n) {
                    let acked = self.buffer.remove_neighbour(n).unwrap_or(0);
                    self.remember_departed(n, p, acked, ctx.now());
                }
                self.collect_garbage();
            }
            PeerServiceEvent::Delivered {
                origin, payload, ..
            } => {
                if origin == self.me {
                    return;
                }
                match rasp_lattice::decode::<Sync>(&payload) {
                    Ok(m) => {
                        let before = self.program.fired_triggers().len();
                        self.apply_sync(origin, m);
                        self.after_remote(ctx, before);
                    }
                    Err(e) => {
                        self.stats.rejected += 1;
                        tracing::warn!(from = ?origin, error = %e, "malformed broadcast");
                    }
                }
            }
            PeerServiceEvent::Received { .. } => {}
        }
    }

    fn greet<A: Atom>(&mut self, ctx: &mut Ctx<A>, to: NodeId, reply: bool) {
        let summaries = self.summaries();
        self.stats.summary_bytes_sent += summaries
            .iter()
            .map(|(id, b)| (id.len() + b.len()) as u64)
            .sum::<u64>();
        let hello = Hello {
            reply,
            held: self.program.held(),
            graph: self.program.graph(),
            epoch: self.epoch,
            summaries,
            modules: self.program.modules(),
        };
        if let Some(p) = self.peers.get_mut(&to) {
            p.told = hello.held.len();
        }
        ctx.send(Dest::service(to, SERVICE), hello);
    }

    /// The summaries a greeting carries: per held variable whose type has a summary at most
    /// half the size of its state (a larger one, e.g. a grow-only counter's, which is its
    /// state, would cost more than the whole state it saves), only under delta-based sync
    /// with the direct carrier (the others never catch up from a greeting).
    fn summaries(&self) -> Vec<(String, Vec<u8>)> {
        if !self.config.catch_up_summaries
            || !self.config.sync.is_delta()
            || self.config.carrier != Carrier::Direct
        {
            return Vec::new();
        }
        self.program
            .held()
            .into_iter()
            .filter_map(|id| {
                let state = self.program.state_dyn(&id).ok()?;
                let summary = state.summary_dyn()?;
                (2 * summary.len() <= state.encoded_size()).then_some((id, summary))
            })
            .collect()
    }

    fn on_hello<A: HasReplica>(&mut self, ctx: &mut Ctx<A>, from: &Origin, m: Hello) {
        let n = from.from.node;
        self.touch(n, ctx.now());
        // One log line per greeting, not per declaration: a hostile graph can hold thousands.
        let (mut refused, mut last) = (0usize, None);
        for d in m.graph {
            if let Err(e) = self.program.add_decl(d) {
                refused += 1;
                last = Some(e);
            }
        }
        if let Some(e) = last {
            tracing::warn!(from = ?n, refused, last = %e, "declarations from a neighbour ignored");
        }
        self.absorb_changes(None);
        let peer = self.peers.entry(n).or_insert_with(|| Peer {
            behind: true,
            ..Peer::default()
        });
        self.buffer.add_neighbour(n);
        if peer.epoch.is_some_and(|e| e != m.epoch) {
            // A new incarnation on a link that never went down here (it restarted before
            // the membership noticed): what it acknowledged, was caught up on and sent us
            // belongs to the one before, which may have held more than this one does now.
            // Start over as with a new neighbour: full states, acknowledgements from zero.
            tracing::debug!(from = ?n, "neighbour restarted: a new incarnation, caught up again");
            *peer = Peer {
                behind: true,
                ..Peer::default()
            };
            self.buffer.reset_neighbour(n);
        }
        peer.greeted = true;
        peer.held = m.held.into_iter().collect();
        peer.epoch = Some(m.epoch);
        let held = &peer.held;
        peer.summaries = m
            .summaries
            .into_iter()
            .filter(|(id, _)| held.contains(id))
            .collect();
        // A neighbour holding a module our graph names and we lack is greeted back, so it
        // sends it (it sends modules in answer to greetings that do not list them).
        let held_here = self.program.modules();
        let wanted = self
            .program
            .named_modules()
            .iter()
            .any(|h| !held_here.contains(h) && m.modules.contains(h));
        if !m.reply || wanted {
            self.greet(ctx, n, true);
        }
        // After our greeting: it names the modules' operators before their bytes arrive.
        self.send_modules(ctx, n, &m.modules);
        if self.program.defects().hello_skips_catch_up {
            // The bug zoo only (`Defects::hello_skips_catch_up`): Lasp's restart bug, the
            // neighbour taken as caught up, so it gets only the deltas made from now on.
            if let Some(p) = self.peers.get_mut(&n) {
                p.behind = false;
            }
            self.buffer.set_acked(n, self.buffer.next_seq());
            return;
        }
        if self.resume(n, m.epoch) {
            return; // it gets the deltas it missed at the next sync
        }
        // Catch the neighbour up at once (module docs, "Catch-up at once"); on a later greeting (both sides greet
        // a new link, and greet again when they hold a new variable) only with what it was
        // not caught up on.
        let only_new = self.peers.get(&n).is_some_and(|p| !p.behind);
        self.send_states(ctx, n, only_new);
    }

    /// Sends `to` the function modules our graph names that it does not hold (`theirs`).
    fn send_modules<A: Atom>(&mut self, ctx: &mut Ctx<A>, to: NodeId, theirs: &[String]) {
        let missing: Vec<(String, Vec<u8>)> = self
            .program
            .named_modules()
            .into_iter()
            .filter(|h| !theirs.contains(h))
            .filter_map(|h| {
                let bytes = self.program.module_bytes(&h)?;
                Some((h, bytes.to_vec()))
            })
            .take(MAX_MODULES_PER_MESSAGE)
            .collect();
        if !missing.is_empty() {
            ctx.count("dataflow_modules_sent", missing.len() as u64);
            ctx.send(Dest::service(to, SERVICE), Modules { modules: missing });
        }
    }

    fn on_modules<A: HasReplica>(&mut self, ctx: &mut Ctx<A>, from: &Origin, m: Modules) {
        let n = from.from.node;
        if m.modules.len() > MAX_MODULES_PER_MESSAGE {
            tracing::warn!(from = ?n, count = m.modules.len(), "too many modules in one message: ignored");
            ctx.count("dataflow_modules_refused", m.modules.len() as u64);
            return;
        }
        let named = self.program.named_modules();
        for (hash, bytes) in m.modules {
            if !named.contains(&hash) {
                // Only modules our graph names are kept: a peer cannot fill our memory.
                ctx.count("dataflow_modules_refused", 1);
                continue;
            }
            match self.program.add_module(&hash, &bytes) {
                Ok(true) => ctx.count("dataflow_modules_received", 1),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(from = ?n, %e, "function module refused");
                    ctx.count("dataflow_modules_refused", 1);
                }
            }
        }
        self.absorb_changes(None);
    }

    /// Remembers a neighbour that went away caught up, for [`Replica::resume`].
    fn remember_departed(&mut self, n: NodeId, p: Peer, acked: u64, now: Time) {
        let resumable = self.config.resume_peers > 0
            && self.config.sync.is_delta()
            && self.config.carrier == Carrier::Direct
            && p.greeted
            && !p.behind;
        let Some(epoch) = p.epoch.filter(|_| resumable) else {
            return;
        };
        self.expire_departed(now);
        while self.departed.len() >= self.config.resume_peers {
            let oldest = self
                .departed
                .iter()
                .min_by_key(|(k, d)| (d.left, **k))
                .map(|(k, _)| *k)
                .expect("non-empty");
            self.departed.remove(&oldest);
            self.buffer.forget(oldest);
        }
        self.departed.insert(
            n,
            Departed {
                epoch,
                held: p.held,
                ours: self.program.held(),
                left: now,
            },
        );
        self.buffer.remember(n, acked);
    }

    /// Forgets departed neighbours older than `resume_window`.
    fn expire_departed(&mut self, now: Time) {
        let window = self.config.resume_window;
        let expired: Vec<NodeId> = self
            .departed
            .iter()
            .filter(|(_, d)| now.since(d.left) > window)
            .map(|(n, _)| *n)
            .collect();
        for n in expired {
            self.departed.remove(&n);
            self.buffer.forget(n);
        }
    }

    /// Whether the re-formed link to `n` (incarnation `epoch`) resumes from what `n` had
    /// acknowledged before it went away: same incarnation, same variables held on both
    /// sides, and every buffer entry it had not acknowledged still buffered. Sets it up if so.
    fn resume(&mut self, n: NodeId, epoch: u64) -> bool {
        let Some(d) = self.departed.remove(&n) else {
            return false;
        };
        let acked = self.buffer.forget(n).unwrap_or(0);
        let buffered = self.buffer.covers(acked);
        let Some(p) = self.peers.get_mut(&n) else {
            return false;
        };
        if d.epoch != epoch || d.held != p.held || d.ours != self.program.held() || !buffered {
            return false;
        }
        p.behind = false;
        self.buffer.set_acked(n, acked);
        p.caught = d
            .held
            .intersection(&d.ours.iter().cloned().collect())
            .cloned()
            .collect();
        self.resumed += 1;
        true
    }

    fn shared(&self, n: NodeId) -> Vec<String> {
        match self.peers.get(&n) {
            Some(p) => self
                .program
                .held()
                .into_iter()
                .filter(|id| p.held.contains(id))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Sends `n` the full states of the variables we share: all of them (a catch-up, with
    /// the buffer's sequence number to acknowledge), or with `only_new` those it was not
    /// caught up on yet (after a later greeting: a variable newly held on either side),
    /// with nothing to acknowledge, since the deltas of the others are still owed.
    fn send_states<A: Atom>(&mut self, ctx: &mut Ctx<A>, n: NodeId, only_new: bool) {
        if !self.peers.get(&n).is_some_and(|p| p.greeted) {
            return; // what it holds is not known yet
        }
        let shared = self.shared(n);
        let todo: Vec<String> = match self.peers.get_mut(&n) {
            Some(p) if only_new => shared
                .into_iter()
                .filter(|id| p.caught.insert(id.clone()))
                .collect(),
            Some(p) => {
                p.caught = shared.iter().cloned().collect();
                shared
            }
            None => return,
        };
        let mut vars = Vec::new();
        for id in todo {
            let Ok(state) = self.program.state_dyn(&id) else {
                continue;
            };
            let since = self
                .peers
                .get(&n)
                .and_then(|p| p.summaries.get(&id))
                .filter(|_| self.config.catch_up_summaries)
                .and_then(|summary| state.delta_since_dyn(summary));
            let bytes = match since {
                Some(Ok(delta)) if delta.is_bottom() => continue,
                Some(Ok(delta)) => delta.encode(),
                Some(Err(e)) => {
                    // Its summary did not decode: whole state, as for a type without one.
                    self.stats.rejected += 1;
                    tracing::warn!(to = ?n, var = %id, error = %e, "malformed summary");
                    if state.is_bottom() {
                        continue;
                    }
                    state.encode()
                }
                None if state.is_bottom() => continue,
                None => state.encode(),
            };
            *self.stats.bytes_sent.entry(id.clone()).or_default() += bytes.len() as u64;
            if self.config.sync.is_delta() {
                self.stats.catch_up_bytes_sent += bytes.len() as u64;
            }
            vars.push((id, bytes));
        }
        let seq = if self.config.sync.is_delta() && !only_new {
            self.buffer.next_seq()
        } else {
            0
        };
        let acked_later =
            only_new && self.config.sync.is_delta() && self.config.carrier == Carrier::Direct;
        if acked_later && !vars.is_empty() {
            // Skip a sequence number, so that only a sync sent from now on (carrying these
            // states) can acknowledge them.
            self.buffer.skip_seq();
        }
        let next = self.buffer.next_seq();
        if let Some(p) = self.peers.get_mut(&n) {
            if acked_later && !vars.is_empty() {
                p.owed.extend(vars.iter().map(|(id, _)| id.clone()));
                p.owed_from = next;
            }
            p.behind = false;
            if !only_new && self.config.carrier == Carrier::Direct {
                // Kept until acknowledged (module docs, "Catch-up at once"); the first
                // outstanding sequence number stays: any later resend acknowledges it too.
                p.catching = match (seq, p.catching) {
                    (0, _) => None,
                    _ if vars.is_empty() => None,
                    (_, Some((first, _))) => Some((first, 0)),
                    (s, None) => Some((s, 0)),
                };
            }
        }
        if vars.is_empty() {
            return;
        }
        self.stats.state_msgs += 1;
        ctx.send(
            Dest::service(n, SERVICE),
            Sync {
                seq,
                state: true,
                vars,
            },
        );
    }

    fn on_sync<A: HasReplica>(&mut self, ctx: &mut Ctx<A>, from: &Origin, m: Sync) {
        let n = from.from.node;
        let seq = m.seq;
        self.touch(n, ctx.now());
        // A catch-up (whole states) from a neighbour that holds the fired set: after applying
        // it this node knows which triggers the cluster fired (as far as that neighbour knows).
        let catch_up = m.state
            && (m.vars.iter().any(|(id, _)| id == FIRED_ID)
                || self
                    .peers
                    .get(&n)
                    .is_some_and(|p| p.held.contains(FIRED_ID)));
        let before = self.program.fired_triggers().len();
        self.apply_sync(n, m);
        if catch_up {
            self.caught_up = true;
        }
        self.after_remote(ctx, before);
        if seq > 0 {
            ctx.send(Dest::service(n, SERVICE), Ack { seq });
        }
    }

    fn apply_sync(&mut self, n: NodeId, m: Sync) {
        // Local changes made since the last handler are ours, not the sender's.
        self.absorb_changes(None);
        let catch_up = m.state && self.config.sync.is_delta();
        if catch_up {
            // What each variable lacked before any of the message applied (a derived
            // variable is recomputed from its inputs as they apply): the minimal catch-up.
            for (id, bytes) in &m.vars {
                let (Ok(state), Ok(value)) =
                    (self.program.state_dyn(id), self.program.decode(id, bytes))
                else {
                    continue;
                };
                if value.type_name() == state.type_name() {
                    let missing = value.delta_dyn(state).encoded_size() as u64;
                    self.stats.catch_up_missing_bytes += missing;
                }
            }
        }
        for (id, bytes) in m.vars {
            *self.stats.bytes_received.entry(id.clone()).or_default() += bytes.len() as u64;
            if catch_up {
                self.stats.catch_up_bytes_received += bytes.len() as u64;
            }
            if !self.program.holds(&id) {
                self.stats.rejected += 1;
                continue;
            }
            let value = match self.program.decode(&id, &bytes) {
                Ok(v) => v,
                Err(e) => {
                    self.stats.rejected += 1;
                    tracing::warn!(from = ?n, var = %id, error = %e, "malformed delta");
                    continue;
                }
            };
            if self.config.sync.bp()
                && self.config.bp_heard
                && self.config.carrier == Carrier::Direct
            {
                self.buffer.heard(n, &id, &*value);
            }
            let classic = !self.config.sync.rr();
            let redundant = classic && {
                let state = self.program.state_dyn(&id).expect("held");
                value.leq_dyn(state)
            };
            match self.program.apply_dyn(&id, &*value) {
                Ok(true) => {
                    // Classic delta sync buffers the received delta whole, RR its effective
                    // delta (the first change recorded); downstream variables' effective
                    // deltas follow either way.
                    let whole = classic && !redundant && self.config.sync.is_delta();
                    let mut changes = self.program.drain_changes().into_iter();
                    if let Some((var, effective)) = changes.next() {
                        debug_assert_eq!(*var, *id);
                        self.dirty.insert(var.clone());
                        if self.buffering() {
                            let overflow =
                                self.buffer.push_received(var, value, effective, n, !whole);
                            self.after_push(overflow);
                        }
                    }
                    for (v, d) in changes {
                        self.dirty.insert(v.clone());
                        self.push(v, d, None);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    self.stats.rejected += 1;
                    tracing::warn!(from = ?n, var = %id, error = %e, "delta rejected");
                }
            }
        }
    }

    fn on_ack(&mut self, n: NodeId, seq: u64) {
        if let (Some(acked), Some(p)) = (self.buffer.ack(n, seq), self.peers.get_mut(&n)) {
            if p.catching.is_some_and(|(first, _)| acked >= first) {
                p.catching = None;
            }
            if acked >= p.owed_from {
                p.owed.clear();
            }
        }
        self.collect_garbage();
    }

    /// Drops buffer entries every neighbour has acknowledged (the broadcast carrier empties
    /// the buffer at every sync instead).
    fn collect_garbage(&mut self) {
        if self.config.carrier == Carrier::Plumtree {
            return;
        }
        self.buffer.collect_garbage();
    }

    /// The periodic synchronisation.
    fn tick<A: HasReplica>(&mut self, ctx: &mut Ctx<A>) {
        if !self.pending.is_empty() {
            let me = self.me.0;
            let alive = Var::<GCounter>::named(ALIVE_ID);
            if let Err(e) = self.program.update(&alive, inc(1), me) {
                tracing::error!(error = %e, "cannot beat the trigger heartbeat");
            }
        }
        self.refresh_triggers(ctx.now());
        self.absorb_changes(None);
        if !self.departed.is_empty() {
            self.expire_departed(ctx.now());
            self.collect_garbage();
        }
        self.persist(ctx);
        self.send_all(ctx);
    }

    /// Greets silent neighbours and sends each what it lacks (the periodic part of a tick;
    /// also right after a trigger fired, so its record leaves this node at once).
    fn send_all<A: HasReplica>(&mut self, ctx: &mut Ctx<A>) {
        let silent: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.greeted)
            .map(|(n, _)| *n)
            .collect();
        for n in silent {
            self.greet(ctx, n, false);
        }
        // Variables declared since a neighbour was greeted (a run-time declaration, or one
        // learnt from another neighbour's graph): greet it again, so it learns the
        // declaration and that we hold the variable, and answers with its own holdings.
        let held = self.program.held().len();
        let stale: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.greeted && p.told < held)
            .map(|(n, _)| *n)
            .collect();
        for n in stale {
            self.greet(ctx, n, false);
        }
        match (self.config.carrier, self.config.sync) {
            (Carrier::Plumtree, _) => self.broadcast(ctx),
            (Carrier::Direct, SyncMode::State) => {
                let peers: Vec<NodeId> = self.peers.keys().copied().collect();
                for n in peers {
                    self.send_states(ctx, n, false);
                }
            }
            (Carrier::Direct, mode) => {
                let peers: Vec<NodeId> = self.peers.keys().copied().collect();
                for n in peers {
                    // A neighbour is behind when new, or when the buffer overflowed past what
                    // it had acknowledged (garbage collection never drops unacknowledged
                    // entries of a current neighbour).
                    if self.peers[&n].behind {
                        self.send_states(ctx, n, false);
                        continue;
                    }
                    // A catch-up not acknowledged: no deltas (they would acknowledge it
                    // without it), and sent again once a whole interval passed without
                    // its acknowledgement (lost on the way, or its neighbour restarted).
                    let waited = self.peers.get_mut(&n).and_then(|p| {
                        let (_, ticks) = p.catching.as_mut()?;
                        *ticks += 1;
                        Some(*ticks)
                    });
                    match waited {
                        Some(ticks) if ticks >= 2 => self.send_states(ctx, n, false),
                        Some(_) => {}
                        None => self.send_deltas(ctx, n, mode.bp()),
                    }
                }
            }
        }
    }

    fn send_deltas<A: Atom>(&mut self, ctx: &mut Ctx<A>, n: NodeId, bp: bool) {
        let p = &self.peers[&n];
        if !p.greeted {
            return;
        }
        let group = self
            .buffer
            .delta_group(n, bp, self.config.bp_heard, |v| p.held.contains(v));
        let mut vars = encode_counted(group, &mut self.stats);
        // States owed since a later greeting, whole (they contain any delta of theirs).
        let owed: Vec<String> = if p.owed.is_empty() {
            Vec::new()
        } else {
            p.owed
                .iter()
                .filter(|id| p.held.contains(*id))
                .cloned()
                .collect()
        };
        for id in owed {
            let Ok(state) = self.program.state_dyn(&id) else {
                continue;
            };
            let bytes = state.encode();
            *self.stats.bytes_sent.entry(id.clone()).or_default() += bytes.len() as u64;
            match vars.iter_mut().find(|(v, _)| *v == id) {
                Some(slot) => slot.1 = bytes,
                None => vars.push((id, bytes)),
            }
        }
        if vars.is_empty() {
            return;
        }
        self.stats.delta_msgs += 1;
        ctx.send(
            Dest::service(n, SERVICE),
            Sync {
                seq: self.buffer.next_seq(),
                state: false,
                vars,
            },
        );
    }

    /// Plumtree carrier: broadcast the changes made here since the last tick.
    fn broadcast<A: Atom>(&mut self, ctx: &mut Ctx<A>) {
        let vars = encode_counted(self.buffer.take_local(), &mut self.stats);
        if vars.is_empty() {
            return;
        }
        self.stats.delta_msgs += 1;
        let sync = Sync {
            seq: 0,
            state: false,
            vars,
        };
        match rasp_lattice::encode(&sync) {
            Ok(payload) => ctx.send(Dest::service(self.me, MEMBERSHIP), Broadcast { payload }),
            Err(e) => tracing::error!(error = %e, "cannot encode broadcast"),
        }
    }

    fn persist<A: Atom>(&mut self, ctx: &mut Ctx<A>) {
        if !self.config.durable {
            return;
        }
        self.persist_fired(ctx);
        self.persist_dirty(ctx);
    }

    /// Writes the names of newly fired triggers (and, since a trigger's action usually
    /// updates variables, every dirty variable) to the store.
    fn persist_fired<A: Atom>(&mut self, ctx: &mut Ctx<A>) {
        if !self.config.durable
            || self.halted
            || self.program.fired_triggers().len() == self.persisted_fired.len()
        {
            return;
        }
        self.absorb_changes(None);
        for name in self.program.fired_triggers().clone() {
            if self.persisted_fired.insert(name.clone()) {
                let key = format!("{FIRED_KEY}{name}");
                if let Err(e) = ctx.store_put(key.as_bytes(), b"1") {
                    tracing::error!(trigger = %name, error = %e, "cannot persist trigger");
                }
            }
        }
        self.persist_dirty(ctx);
    }

    /// Records in the store that `id` was declared while the node runs, with `type_name`
    /// (the declarer's name for its type, e.g. the JSON type name of the HTTP API), so that
    /// the restarted node can declare it again before restoring its state
    /// ([`Replica::declared_at_runtime`], [`Replica::restore_var`]). Without
    /// [`ReplicaConfig::durable`] it stores nothing.
    pub fn remember_declaration(
        &mut self,
        platform: &mut dyn Platform,
        id: &str,
        type_name: &str,
    ) -> Result<(), StoreError> {
        if !self.config.durable {
            return Ok(());
        }
        platform.store_put(format!("{DECL_KEY}{id}").as_bytes(), type_name.as_bytes())
    }

    /// The variables [`Replica::remember_declaration`] recorded: (id, type name), in id order.
    pub fn declared_at_runtime(
        &self,
        platform: &mut dyn Platform,
    ) -> Result<Vec<(String, String)>, StoreError> {
        if !self.config.durable {
            return Ok(Vec::new());
        }
        Ok(platform
            .store_scan_prefix(DECL_KEY.as_bytes())?
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(&k[DECL_KEY.len()..]).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect())
    }

    /// Joins the stored state of `id` (a variable declared after the replica started, so not
    /// restored at boot) into the program, and ships it like any change; whether there was
    /// one. A record that does not decode is an error and changes nothing (it stays in the
    /// store). Without [`ReplicaConfig::durable`], nothing.
    pub fn restore_var(&mut self, platform: &mut dyn Platform, id: &str) -> Result<bool, String> {
        if !self.config.durable {
            return Ok(false);
        }
        let key = format!("{VAR_KEY}{id}");
        let Some(bytes) = platform
            .store_get(key.as_bytes())
            .map_err(|e| e.to_string())?
        else {
            return Ok(false);
        };
        self.program
            .apply_encoded(id, &bytes)
            .map_err(|e| format!("the stored record {key} does not decode: {e}"))?;
        self.absorb_changes(None);
        Ok(true)
    }

    /// Writes every variable changed since the last write to the store now, instead of at
    /// the next sync interval, and returns the first store error. Callers that acknowledge
    /// an update to someone outside the node (the HTTP API's `POST /vars/{id}`) call it
    /// before answering, so an acknowledged update survives a crash of the node right after
    /// the answer (kill -9, power loss: the store commits each write with an fsync). Does
    /// nothing without [`ReplicaConfig::durable`].
    pub fn persist_now(&mut self, platform: &mut dyn Platform) -> Result<(), StoreError> {
        if !self.config.durable {
            return Ok(());
        }
        self.absorb_changes(None);
        let mut first = Ok(());
        for id in std::mem::take(&mut self.dirty) {
            if &*id == ALIVE_ID {
                continue; // heartbeats are only news while they advance
            }
            let Ok(state) = self.program.state_dyn(&id) else {
                continue;
            };
            let key = format!("{VAR_KEY}{id}");
            if let Err(e) = platform.store_put(key.as_bytes(), &state.encode()) {
                tracing::error!(var = %id, error = %e, "cannot persist variable");
                // Still dirty: the next interval tries again.
                self.dirty.insert(id);
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    fn persist_dirty<A: Atom>(&mut self, ctx: &mut Ctx<A>) {
        if self.halted {
            self.dirty.clear();
            return;
        }
        for id in std::mem::take(&mut self.dirty) {
            if &*id == ALIVE_ID {
                continue; // heartbeats are only news while they advance
            }
            let Ok(state) = self.program.state_dyn(&id) else {
                continue;
            };
            let key = format!("{VAR_KEY}{id}");
            if let Err(e) = ctx.store_put(key.as_bytes(), &state.encode()) {
                tracing::error!(var = %id, error = %e, "cannot persist variable");
            }
        }
    }

    /// After remote state arrived (`fired_before`: the number of fired triggers before it
    /// was applied): settle the triggers, persist what fired, and if a trigger fired (or was
    /// learnt fired), ship its record and its action's updates at once rather than at the
    /// next tick, which narrows the window in which a crash loses an unshipped record.
    fn after_remote<A: HasReplica>(&mut self, ctx: &mut Ctx<A>, fired_before: usize) {
        self.refresh_triggers(ctx.now());
        self.persist_fired(ctx);
        if self.program.fired_triggers().len() > fired_before {
            self.absorb_changes(None);
            self.send_all(ctx);
        }
    }

    /// Direct evidence that `n` is up: a message from it, or its arrival as a neighbour.
    fn touch(&mut self, n: NodeId, now: Time) {
        if n == self.me {
            return;
        }
        self.heard.entry(n.0).or_insert((0, now)).1 = now;
    }

    /// The failure detector and the start-up wait of the triggers: reads the heartbeats,
    /// updates the guards' view, drops pending triggers the cluster already fired, and
    /// re-checks the others when the view grew (a new suspect, or eligibility).
    fn refresh_triggers(&mut self, now: Time) {
        if self.pending.is_empty() {
            return;
        }
        let me = self.me.0;
        if let Ok(beats) = self.program.state(&Var::<GCounter>::named(ALIVE_ID)) {
            for (&n, &count) in beats.counts() {
                if n == me {
                    continue;
                }
                let e = self.heard.entry(n).or_insert((count, now));
                if count > e.0 {
                    *e = (count, now);
                }
            }
        }
        self.settle_pending();
        let mut armed = BTreeSet::new();
        for name in &self.pending {
            if let Ok(s) = self
                .program
                .state(&Var::<GSet<u64>>::named(&armed_id(name)))
            {
                armed.extend(s.iter().copied());
            }
        }
        let booted_at = self.booted_at;
        let suspected: BTreeSet<u64> = armed
            .into_iter()
            .filter(|&n| n != me)
            .filter(|n| {
                let last = self.heard.get(n).map_or(booted_at, |h| h.1.max(booted_at));
                now - last >= self.config.suspect_after
            })
            .collect();
        let eligible = self.caught_up || now - booted_at >= self.config.suspect_after;
        let grew = {
            let mut v = self.view.borrow_mut();
            let grew = (eligible && !v.eligible) || !suspected.is_subset(&v.suspected);
            v.eligible = eligible;
            v.suspected = suspected;
            grew
        };
        if grew {
            self.program.recheck_triggers();
        }
    }

    /// Drops from `pending` the triggers that fired here, and records as fired (so they are
    /// never armed again, across restarts too) those in the replicated fired set.
    fn settle_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let done: Vec<String> = match self.program.state(&Var::<GSet<String>>::named(FIRED_ID)) {
            Ok(fired) => self
                .pending
                .iter()
                .filter(|t| fired.contains(t) || self.program.fired_triggers().contains(*t))
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        for t in done {
            if !self.program.fired_triggers().contains(&t) {
                self.program.mark_fired(&t);
            }
            self.pending.remove(&t);
        }
    }

    /// Arms trigger `name` on this node: `action` runs once in the cluster when `threshold`
    /// holds on `var`, on the owner: the smallest node among those that armed it and that
    /// this node does not suspect (see the module docs for the failure detector and for what
    /// "once" means under partitions and crashes). Unlike [`Program::trigger_local`], whose
    /// action runs on every replica that arms it, the action runs on one owner.
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
        let armed_id = armed_id(name);
        let armed = self.program.declare::<GSet<u64>>(&armed_id)?;
        self.program.hold(&armed_id);
        let fired = self.program.declare::<GSet<String>>(FIRED_ID)?;
        self.program.hold(FIRED_ID);
        self.program.declare::<GCounter>(ALIVE_ID)?;
        self.program.hold(ALIVE_ID);
        let me = self.me.0;
        self.program
            .update(&armed, |s: &GSet<u64>, _| s.add_delta(me), me)?;
        if self.program.fired_triggers().contains(name) {
            // Fired (or learnt fired) before a restart: say so again to the cluster.
            self.program.update(&fired, add(name.to_string()), me)?;
            return Ok(());
        }
        self.pending.insert(name.to_string());
        let view = self.view.clone();
        let owned = name.to_string();
        let guard_fired = fired.clone();
        let guard = move |p: &Program| {
            let v = view.borrow();
            if !v.eligible {
                return false;
            }
            if p.state(&guard_fired).is_ok_and(|f| f.contains(&owned)) {
                return false;
            }
            let owner = p.state(&armed).ok().and_then(|s| {
                s.iter()
                    .copied()
                    .find(|n| *n == me || !v.suspected.contains(n))
            });
            owner.unwrap_or(me) == me
        };
        let record = name.to_string();
        self.program
            .trigger_local_guarded(name, var, threshold, guard, move |p, v| {
                // The record first: the action's own updates ship with it.
                if let Err(e) = p.update(&fired, add(record.clone()), me) {
                    tracing::error!(trigger = %record, error = %e, "cannot record the firing");
                }
                action(p, v);
            })?;
        self.settle_pending();
        Ok(())
    }
}

/// Encodes the deltas of a sync, counting the bytes per variable.
fn encode_counted(
    vars: Vec<(String, Box<dyn AnyLattice>)>,
    stats: &mut ReplicaStats,
) -> Vec<(String, Vec<u8>)> {
    vars.into_iter()
        .map(|(id, d)| {
            let bytes = d.encode();
            *stats.bytes_sent.entry(id.clone()).or_default() += bytes.len() as u64;
            (id, bytes)
        })
        .collect()
}

/// A ready-made dataflow atom: builds the node's [`Program`] with `build` (the same code on
/// every node), replicates it with [`Replica`], and runs `setup` (e.g. to arm triggers) once
/// the replica exists. Registers the [`SERVICE`] name. Needs a membership atom on the node.
pub struct DataflowAtom {
    config: ReplicaConfig,
    build: Build,
    setup: Option<Setup>,
    replica: Option<Replica>,
}

impl DataflowAtom {
    /// A dataflow atom running the program `build` declares.
    pub fn new(config: ReplicaConfig, build: impl Fn(&mut Program) + 'static) -> Self {
        DataflowAtom {
            config,
            build: Arc::new(build),
            setup: None,
            replica: None,
        }
    }

    /// Runs `setup` on the replica at start (and after every restart).
    pub fn with_setup(mut self, setup: impl Fn(&mut Replica) + 'static) -> Self {
        self.setup = Some(Arc::new(setup));
        self
    }

    /// The replica (`None` before the atom started).
    pub fn get(&self) -> Option<&Replica> {
        self.replica.as_ref()
    }

    /// The replica, mutably (`None` before the atom started).
    pub fn get_mut(&mut self) -> Option<&mut Replica> {
        self.replica.as_mut()
    }
}

impl HasReplica for DataflowAtom {
    fn replica(&mut self) -> &mut Replica {
        self.replica
            .as_mut()
            .expect("handlers run only after init created the replica")
    }
}

impl Atom for DataflowAtom {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        if let Err(e) = ctx.register(SERVICE) {
            tracing::error!(error = %e, "a dataflow atom already runs on this node");
            ctx.stop_self();
            return;
        }
        let node = ctx.node();
        let mut program = Program::with_interest(node.0, self.config.interest.clone());
        (self.build)(&mut program);
        self.replica = Some(Replica::new(node, self.config.clone(), program));
        Replica::install(self, ctx);
        if let Some(setup) = self.setup.clone() {
            setup(self.replica());
        }
    }
}
