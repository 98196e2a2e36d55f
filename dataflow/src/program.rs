//! The dataflow engine of one replica: variables, the operator graph, incremental propagation,
//! threshold reads, subscriptions and triggers.
//!
//! **Reads.** Lasp's blocking `read` comes in two forms: a continuation
//! ([`Program::read`]) and a future ([`Program::read_async`], a [`ReadFuture`]). The program
//! is the futures' executor ([`Program::spawn`], [`Program::spawn_then`]): a task is polled when
//! a read it awaits resolves, right after the change that resolved it, in spawn order, with no
//! runtime or clock, so it runs unchanged in the deterministic simulator. Thresholds include
//! Lasp's strict ones (`> N`: [`Threshold::strict_value`], [`Threshold::strict_cardinality`]).
//!
//! [`Threshold::strict_value`]: rasp_lattice::Threshold::strict_value
//! [`Threshold::strict_cardinality`]: rasp_lattice::Threshold::strict_cardinality
//!
//! **`bind_to`** ([`Program::bind_to`]) makes a variable a copy of another of the same type, an
//! operator like the others (incremental, shipped with the graph, computed wherever the inputs
//! are held).
//!
//! The operators behind derived variables are in [`crate::ops`], beside their rules; reads,
//! subscriptions and triggers in `program/watch.rs`.
//!
//! A [`Program`] is sans-IO: it holds the replica's variables and evaluates the graph; the
//! replication layer ([`crate::replica`]) feeds it remote deltas ([`Program::apply_encoded`])
//! and ships what changed ([`Program::drain_changes`]).
//!
//! **Propagation.** A change to a variable is first reduced to its *effective delta* (the part
//! that strictly inflates the state, [`rasp_lattice::Lattice::delta`]); nothing happens if it is
//! bottom. Operators that need the input's previous state (intersection: it names the element
//! of a removed dot) compute their output delta first; then the delta is joined; then the other
//! operators compute theirs; then every output delta is applied the same way, depth first. Each
//! operator costs O(delta) (times the matching part of the other input for product and
//! intersection).
//!
//! **The graph is data.** Every declaration is a [`Decl`] that can be shipped to other
//! replicas ([`Program::graph`], [`Program::add_decl`]). Functions are referenced by name: the
//! typed constructor of an operator is kept in a catalog under its signature (kind, input
//! types, function name), filled when this replica's code declares the operator or registers
//! its function, so a declaration made on one node instantiates on every node that holds its
//! inputs and knows its function.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

use rasp_lattice::set::Element;
use rasp_lattice::{Actor, Lattice, Query};
use serde::{Deserialize, Serialize};

use crate::causal::{CausalSet, DSet, VarTag};
use crate::erased::{downcast, AnyLattice, TypeOps};
use crate::fold::{FoldOp, Folded};
use crate::ops::{
    self, CopyOperator, FoldOperator, IntersectionOperator, Operator, ProductOperator,
    UnaryOperator, UnionOperator,
};
use crate::update::Update;
use crate::Error;

mod wasm;
mod watch;

pub use watch::ReadFuture;
use watch::{Ready, Task, Watch};

/// A typed handle on a variable. Cheap to clone; holds no state.
pub struct Var<L> {
    id: Arc<str>,
    _l: PhantomData<fn() -> L>,
}

impl<L> Clone for Var<L> {
    fn clone(&self) -> Self {
        Var {
            id: self.id.clone(),
            _l: PhantomData,
        }
    }
}

impl<L> Debug for Var<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var({})", self.id)
    }
}

impl<L> Var<L> {
    /// A handle on the variable `id` of type `L`, for code that did not declare it (the type
    /// is checked when the handle is used).
    pub fn named(id: &str) -> Self {
        Var::new(id)
    }

    fn new(id: &str) -> Self {
        Var {
            id: Arc::from(id),
            _l: PhantomData,
        }
    }
    /// The variable's id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The tag its dots carry in derived sets.
    pub fn tag(&self) -> VarTag {
        VarTag::of(&self.id)
    }
}

/// At most this many declarations (declared and parked) in a replica's graph once learnt
/// declarations are counted: [`Program::add_decl`] refuses new ones beyond it, so a peer's
/// greeting cannot make a replica hold an unbounded graph. A program declared by its own
/// code is not bounded.
pub const MAX_GRAPH: usize = 65_536;
/// At most this many learnt declarations parked, waiting for their inputs.
pub const MAX_PARKED: usize = 4_096;
/// At most this many bytes of names in one learnt declaration (id, type, function and input
/// ids together).
pub const MAX_DECL_BYTES: usize = 4_096;
/// At most this many inputs to one learnt operator (the operators take one or two).
pub const MAX_INPUTS: usize = 8;

/// The operator kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OpKind {
    /// `map f`.
    Map,
    /// `filter p`.
    Filter,
    /// `union`.
    Union,
    /// `product`.
    Product,
    /// `intersection`.
    Intersection,
    /// `fold op`.
    Fold,
    /// `bind_to`: a copy of the input (Lasp's `bind_to`).
    Bind,
}

/// An operator's declaration: which inputs, which function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpDecl {
    /// The kind.
    pub kind: OpKind,
    /// The input variables' ids, in order.
    pub inputs: Vec<String>,
    /// The registered function's name (map, filter, fold).
    pub func: Option<String>,
}

/// A declaration of the graph: a variable, and the operator producing it if it is derived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decl {
    /// The variable's id.
    pub id: String,
    /// Its lattice type (`std::any::type_name`).
    pub type_name: String,
    /// The operator computing it, for derived variables.
    pub op: Option<OpDecl>,
}

/// Which variables this replica holds (Selective Hearing: a client holds what it reads and
/// writes, not the whole program).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Interest {
    /// Every variable of the graph (servers).
    #[default]
    All,
    /// Only these ids (clients); [`Program::hold`] adds more.
    Only(BTreeSet<String>),
}

impl Interest {
    fn wants(&self, id: &str) -> bool {
        match self {
            Interest::All => true,
            Interest::Only(ids) => ids.contains(id),
        }
    }
}

/// A named function usable by map, filter and fold: the name is how declarations refer to it.
pub struct Func<F> {
    name: String,
    f: F,
}

impl<F> Func<F> {
    /// `f`, registered under `name`.
    pub fn new(name: &str, f: F) -> Self {
        Func {
            name: name.to_string(),
            f,
        }
    }
}

/// Operator constructors and variable types known to a replica's code, by signature: what
/// lets a declaration received as data become a running operator.
#[derive(Clone, Default)]
pub struct Functions {
    catalog: BTreeMap<String, Ctor>,
    types: BTreeMap<String, TypeOps>,
    wasm: wasm::WasmParts,
}

impl Debug for Functions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Functions")
            .field("operators", &self.catalog.keys().collect::<Vec<_>>())
            .field("types", &self.types.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The constructor of a two-input operator producing `Out`.
fn binary<Out, O>(make: fn([VarTag; 2]) -> O) -> Ctor
where
    Out: Lattice + Query,
    Out::Value: Debug,
    O: Operator + 'static,
{
    Arc::new(move |tags| {
        let op = make([tags[0], tags[1]]);
        (Box::new(op) as Box<dyn Operator>, TypeOps::of::<Out>())
    })
}

type Ctor = Arc<dyn Fn(&[VarTag]) -> (Box<dyn Operator>, TypeOps) + Send + Sync>;

/// An instantiated operator: stateless (its output is a function of the deltas and states it
/// is given), so compiled programs share it ([`CompiledProgram`]).
#[derive(Clone)]
struct OpSlot {
    op: Arc<dyn Operator>,
    inputs: Vec<usize>,
    output: usize,
}

struct VarSlot {
    id: Arc<str>,
    ty: TypeOps,
    state: Box<dyn AnyLattice>,
    producer: Option<usize>,
    consumers: Vec<(usize, usize)>,
    watches: Vec<Watch>,
}

/// Historical bugs of Lasp's operators and replication, put back on request: **for the bug
/// zoo only** (`tests/zoo/`, README "Bug zoo"), where the tools must find, shrink and explain
/// them. Every switch is off by default, and off is the code as it is; a program opts in with
/// [`Program::reintroduce`] before it declares its graph. Runtime switches, never Cargo
/// features: feature unification would build the bugs into every binary.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Defects {
    /// `map` keeps the metadata of only the last element of a delta with a given image,
    /// instead of the union of every source's dots (Lasp's non-injective `map` before it
    /// unioned the metadata of elements with one image, Meiklejohn, Van Roy, PPDP 2015, §3:
    /// "the output element carries the union of the metadata").
    pub map_keeps_last_source: bool,
    /// `intersection` gives an element both sides' own tokens, concatenated, instead of
    /// their pairs, so the removal on one side leaves the other side's tokens alive (the
    /// token concatenation of Lasp's early `intersection`; PPDP 2015 §3 pairs them).
    pub intersection_concatenates: bool,
    /// A replica greeted by a neighbour takes it as caught up without sending it its states:
    /// a node restarted under delta sync gets nothing until the object changes again (a bug
    /// Lasp had; the fix is the catch-up of the `replica` module docs, "Catch-up at once").
    pub hello_skips_catch_up: bool,
}

/// The dataflow engine of one replica. See the [module docs](self).
pub struct Program {
    /// Historical bugs put back (the bug zoo only, see [`Defects`]).
    defects: Defects,
    actor: Actor,
    interest: Interest,
    vars: Vec<VarSlot>,
    by_id: BTreeMap<Arc<str>, usize>,
    ops: Vec<OpSlot>,
    decls: BTreeMap<String, Decl>,
    /// Declarations waiting for their inputs' declarations (graph shipped out of order).
    parked: BTreeMap<String, Decl>,
    catalog: BTreeMap<String, Ctor>,
    types: BTreeMap<String, TypeOps>,
    /// WebAssembly function modules held and the operator shapes they may take here.
    wasm: wasm::WasmParts,
    fired: BTreeSet<String>,
    /// Triggers whose action ran on this program (not those learnt fired), in order.
    firings: Vec<String>,
    ready: Vec<Ready>,
    changes: Vec<(usize, Box<dyn AnyLattice>)>,
    record_changes: bool,
    next_sub: u64,
    running: bool,
    /// Spawned futures ([`Program::spawn`]), polled in id order when woken.
    tasks: BTreeMap<u64, Task>,
    next_task: u64,
}

fn signature(kind: OpKind, input_types: &[&str], func: Option<&str>) -> String {
    format!(
        "{kind:?}({})[{}]",
        input_types.join(","),
        func.unwrap_or("")
    )
}

/// A program as its code declared it, before anything ran on it: its variables, operators,
/// declarations and registered functions, with no read, subscription, trigger or task
/// (those hold closures). [`Program::compile`] takes it, [`CompiledProgram::instantiate`]
/// gives a program equal to the one it was taken from: a process that builds the same
/// program again and again (the model checker boots a cluster for every state it rebuilds)
/// declares it once and instantiates it each time. It is `Send + Sync` (operators are
/// stateless and shared), so threads share one.
#[derive(Clone)]
pub struct CompiledProgram {
    defects: Defects,
    actor: Actor,
    interest: Interest,
    vars: Vec<CompiledVar>,
    by_id: BTreeMap<Arc<str>, usize>,
    ops: Vec<OpSlot>,
    decls: BTreeMap<String, Decl>,
    parked: BTreeMap<String, Decl>,
    catalog: BTreeMap<String, Ctor>,
    types: BTreeMap<String, TypeOps>,
    /// WebAssembly function modules held and the operator shapes they may take here.
    wasm: wasm::WasmParts,
    fired: BTreeSet<String>,
    firings: Vec<String>,
    record_changes: bool,
    next_sub: u64,
    next_task: u64,
}

/// A variable of a [`CompiledProgram`]: a [`VarSlot`] without watches.
struct CompiledVar {
    id: Arc<str>,
    ty: TypeOps,
    state: Box<dyn AnyLattice>,
    producer: Option<usize>,
    consumers: Vec<(usize, usize)>,
}

impl Clone for CompiledVar {
    fn clone(&self) -> Self {
        CompiledVar {
            id: self.id.clone(),
            ty: self.ty,
            state: self.state.clone_box(),
            producer: self.producer,
            consumers: self.consumers.clone(),
        }
    }
}

impl Debug for CompiledProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledProgram")
            .field("actor", &self.actor)
            .field("interest", &self.interest)
            .field("vars", &self.by_id.keys().collect::<Vec<_>>())
            .field("decls", &self.decls.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CompiledProgram {
    /// The actor id of the program it was taken from ([`Program::actor`]).
    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// The interest of the program it was taken from.
    pub fn interest(&self) -> &Interest {
        &self.interest
    }

    /// A program equal to the one this was taken from, as it was then.
    pub fn instantiate(&self) -> Program {
        Program {
            defects: self.defects,
            actor: self.actor,
            interest: self.interest.clone(),
            vars: self
                .vars
                .iter()
                .map(|v| VarSlot {
                    id: v.id.clone(),
                    ty: v.ty,
                    state: v.state.clone_box(),
                    producer: v.producer,
                    consumers: v.consumers.clone(),
                    watches: Vec::new(),
                })
                .collect(),
            by_id: self.by_id.clone(),
            ops: self.ops.clone(),
            decls: self.decls.clone(),
            parked: self.parked.clone(),
            catalog: self.catalog.clone(),
            types: self.types.clone(),
            wasm: self.wasm.clone(),
            fired: self.fired.clone(),
            firings: self.firings.clone(),
            ready: Vec::new(),
            changes: Vec::new(),
            record_changes: self.record_changes,
            next_sub: self.next_sub,
            running: false,
            tasks: BTreeMap::new(),
            next_task: self.next_task,
        }
    }
}

impl Program {
    /// The program as declared so far ([`CompiledProgram`]), or `None` if it holds
    /// something a compiled program cannot: a pending read, a subscription, a trigger, a
    /// task, recorded changes, or a propagation under way.
    pub fn compile(&self) -> Option<CompiledProgram> {
        let closures = self.running
            || !self.ready.is_empty()
            || !self.tasks.is_empty()
            || !self.changes.is_empty()
            || self.vars.iter().any(|v| !v.watches.is_empty());
        if closures {
            return None;
        }
        Some(CompiledProgram {
            defects: self.defects,
            actor: self.actor,
            interest: self.interest.clone(),
            vars: self
                .vars
                .iter()
                .map(|v| CompiledVar {
                    id: v.id.clone(),
                    ty: v.ty,
                    state: v.state.clone_box(),
                    producer: v.producer,
                    consumers: v.consumers.clone(),
                })
                .collect(),
            by_id: self.by_id.clone(),
            ops: self.ops.clone(),
            decls: self.decls.clone(),
            parked: self.parked.clone(),
            catalog: self.catalog.clone(),
            types: self.types.clone(),
            wasm: self.wasm.clone(),
            fired: self.fired.clone(),
            firings: self.firings.clone(),
            record_changes: self.record_changes,
            next_sub: self.next_sub,
            next_task: self.next_task,
        })
    }

    /// An empty program for the replica acting as `actor`, holding every variable.
    pub fn new(actor: Actor) -> Self {
        Program {
            defects: Defects::default(),
            actor,
            interest: Interest::All,
            vars: Vec::new(),
            by_id: BTreeMap::new(),
            ops: Vec::new(),
            decls: BTreeMap::new(),
            parked: BTreeMap::new(),
            catalog: BTreeMap::new(),
            types: BTreeMap::new(),
            wasm: wasm::WasmParts::default(),
            fired: BTreeSet::new(),
            firings: Vec::new(),
            ready: Vec::new(),
            changes: Vec::new(),
            record_changes: false,
            next_sub: 0,
            running: false,
            tasks: BTreeMap::new(),
            next_task: 0,
        }
    }

    /// Puts historical bugs back (the bug zoo only, see [`Defects`]): call before declaring
    /// the graph; operators read it when they are declared.
    #[doc(hidden)]
    pub fn reintroduce(&mut self, defects: Defects) {
        self.defects = defects;
    }

    /// The historical bugs put back ([`Program::reintroduce`]); none by default.
    #[doc(hidden)]
    pub fn defects(&self) -> Defects {
        self.defects
    }

    /// An empty program holding only the variables `interest` names.
    pub fn with_interest(actor: Actor, interest: Interest) -> Self {
        let mut p = Program::new(actor);
        p.interest = interest;
        p
    }

    /// The actor id this program was built with, the replica's own identity: pass it to
    /// [`Program::update`] for updates this replica makes (`update` takes its actor explicitly).
    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// Records effective deltas for [`Program::drain_changes`] (the replication layer turns
    /// this on).
    pub fn record_changes(&mut self, on: bool) {
        self.record_changes = on;
    }

    // ----- declarations -------------------------------------------------------------------

    /// Declares the variable `id` of type `L`. Declaring an existing id with the same type
    /// returns it; with another type it is an error.
    pub fn declare<L>(&mut self, id: &str) -> Result<Var<L>, Error>
    where
        L: Lattice + Query,
        L::Value: Debug,
    {
        let ty = TypeOps::of::<L>();
        self.declare_var(id, ty, None)?;
        Ok(Var::new(id))
    }

    /// Makes type `ty` known to this replica without declaring a variable: a declaration of
    /// that type arriving from another replica's graph ([`Program::add_decl`]) is then held
    /// and computed here, not kept as data only. A node whose program is declared at run time
    /// (a plain `rasp node`) learns the types it may be asked to hold this way.
    pub fn know_type(&mut self, ty: TypeOps) {
        self.types.insert(ty.name.to_string(), ty);
    }

    fn check_type(&self, id: &str, ty: &TypeOps) -> Result<Option<&Decl>, Error> {
        match self.decls.get(id) {
            Some(d) if d.type_name != ty.name => Err(Error::TypeMismatch {
                id: id.to_string(),
                declared: d.type_name.clone(),
                requested: ty.name.to_string(),
            }),
            other => Ok(other),
        }
    }

    fn declare_var(&mut self, id: &str, ty: TypeOps, op: Option<OpDecl>) -> Result<(), Error> {
        if id.is_empty() {
            return Err(Error::InvalidId(id.to_string()));
        }
        self.types.insert(ty.name.to_string(), ty);
        if let Some(existing) = self.check_type(id, &ty)? {
            match (&existing.op, &op) {
                (_, None) => return Ok(()),
                (Some(a), Some(b)) if a == b => return Ok(()),
                (Some(_), Some(_)) => {
                    return Err(Error::AlreadyDerived(id.to_string()));
                }
                (None, Some(b)) => {
                    // Attaching an operator to a declared variable: reject cycles.
                    for input in &b.inputs {
                        if input == id || self.depends_on(input, id) {
                            return Err(Error::Cycle {
                                id: id.to_string(),
                                through: input.clone(),
                            });
                        }
                    }
                }
            }
        }
        let decl = Decl {
            id: id.to_string(),
            type_name: ty.name.to_string(),
            op,
        };
        self.decls.insert(id.to_string(), decl.clone());
        self.materialize(&decl);
        Ok(())
    }

    /// Whether `id` depends (transitively) on `on` through operators.
    fn depends_on(&self, id: &str, on: &str) -> bool {
        let mut stack = vec![id.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(v) = stack.pop() {
            if v == on {
                return true;
            }
            if !seen.insert(v.clone()) {
                continue;
            }
            if let Some(op) = self.decls.get(&v).and_then(|d| d.op.as_ref()) {
                stack.extend(op.inputs.iter().cloned());
            }
        }
        false
    }

    /// Creates the variable's slot if this replica is interested, and its operator if every
    /// input is held and the function is known.
    fn materialize(&mut self, decl: &Decl) {
        if !self.interest.wants(&decl.id) {
            return;
        }
        let Some(ty) = self.types.get(&decl.type_name).copied() else {
            return;
        };
        let idx = match self.by_id.get(decl.id.as_str()) {
            Some(&i) => i,
            None => {
                let id: Arc<str> = Arc::from(decl.id.as_str());
                self.vars.push(VarSlot {
                    id: id.clone(),
                    ty,
                    state: (ty.bottom)(),
                    producer: None,
                    consumers: Vec::new(),
                    watches: Vec::new(),
                });
                self.by_id.insert(id, self.vars.len() - 1);
                self.vars.len() - 1
            }
        };
        if let Some(op) = &decl.op {
            self.instantiate(idx, op);
        }
        // Operators downstream of this variable may now have all their inputs.
        let downstream: Vec<Decl> = self
            .decls
            .values()
            .filter(|d| d.op.as_ref().is_some_and(|o| o.inputs.contains(&decl.id)))
            .cloned()
            .collect();
        for d in downstream {
            if let Some(&out) = self.by_id.get(d.id.as_str()) {
                if let Some(op) = &d.op {
                    self.instantiate(out, op);
                }
            }
        }
    }

    fn instantiate(&mut self, output: usize, op: &OpDecl) {
        if self.vars[output].producer.is_some() {
            return;
        }
        let mut inputs = Vec::new();
        let mut types = Vec::new();
        for i in &op.inputs {
            match self.by_id.get(i.as_str()) {
                Some(&v) => {
                    inputs.push(v);
                    types.push(self.vars[v].ty.name);
                }
                None => return,
            }
        }
        let operator: Arc<dyn Operator> = if op.kind == OpKind::Bind {
            // A copy needs no function: any replica holding the type can run it.
            if types.len() != 1 || types[0] != self.vars[output].ty.name {
                return;
            }
            Arc::new(CopyOperator)
        } else {
            let sig = signature(op.kind, &types, op.func.as_deref());
            let found = self.catalog.get(&sig).cloned().or_else(|| {
                let made = self.wasm.ctor(
                    op.kind,
                    &types,
                    self.vars[output].ty.name,
                    op.func.as_deref(),
                )?;
                self.catalog.insert(sig.clone(), made.clone());
                Some(made)
            });
            let Some(ctor) = found else {
                return;
            };
            let tags: Vec<VarTag> = op.inputs.iter().map(|i| VarTag::of(i)).collect();
            Arc::from(ctor(&tags).0)
        };
        let states: Vec<&dyn AnyLattice> = inputs.iter().map(|&v| &*self.vars[v].state).collect();
        let initial = operator.initial(&states);
        let op_idx = self.ops.len();
        for (pos, &v) in inputs.iter().enumerate() {
            self.vars[v].consumers.push((op_idx, pos));
        }
        self.ops.push(OpSlot {
            op: operator,
            inputs,
            output,
        });
        self.vars[output].producer = Some(op_idx);
        if !initial.is_bottom() {
            self.apply_idx(output, &*initial);
        }
    }

    fn derive<L>(
        &mut self,
        id: &str,
        kind: OpKind,
        inputs: &[&str],
        func: Option<&str>,
        ctor: Ctor,
    ) -> Result<Var<L>, Error>
    where
        L: Lattice,
    {
        let mut types = Vec::new();
        for i in inputs {
            let d = self
                .decls
                .get(*i)
                .ok_or_else(|| Error::UnknownVar(i.to_string()))?;
            types.push(d.type_name.clone());
        }
        let distinct: BTreeSet<&&str> = inputs.iter().collect();
        if distinct.len() != inputs.len() {
            return Err(Error::SameInputs(id.to_string()));
        }
        let type_refs: Vec<&str> = types.iter().map(String::as_str).collect();
        let sig = signature(kind, &type_refs, func);
        let tags: Vec<VarTag> = inputs.iter().map(|i| VarTag::of(i)).collect();
        let (_, ty) = ctor(&tags);
        self.catalog.insert(sig, ctor);
        let op = OpDecl {
            kind,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            func: func.map(str::to_string),
        };
        self.declare_var(id, ty, Some(op))?;
        self.run_ready();
        Ok(Var::new(id))
    }

    /// `map f`: the set of `f(x)` for `x` in `input`.
    pub fn map<T, U, In, F>(
        &mut self,
        id: &str,
        input: &Var<In>,
        f: Func<F>,
    ) -> Result<Var<DSet<U>>, Error>
    where
        T: Element,
        U: Element,
        In: CausalSet<T>,
        F: Fn(&T) -> U + Send + Sync + 'static,
    {
        let name = f.name.clone();
        let f = Arc::new(f.f);
        let last_only = self.defects.map_keeps_last_source;
        let ctor: Ctor = Arc::new(move |tags| {
            let f = f.clone();
            let tag = tags[0];
            let op = UnaryOperator::<T, U, In, _> {
                tag,
                f: move |d: &DSet<T>| {
                    if last_only {
                        ops::map_delta_last_source(d, |x| f(x))
                    } else {
                        ops::map_delta(d, |x| f(x))
                    }
                },
                _t: PhantomData,
            };
            (Box::new(op) as Box<dyn Operator>, TypeOps::of::<DSet<U>>())
        });
        self.derive(id, OpKind::Map, &[input.id()], Some(&name), ctor)
    }

    /// `filter p`: the elements of `input` satisfying `p` (the others read as removed).
    pub fn filter<T, In, F>(
        &mut self,
        id: &str,
        input: &Var<In>,
        p: Func<F>,
    ) -> Result<Var<DSet<T>>, Error>
    where
        T: Element,
        In: CausalSet<T>,
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let name = p.name.clone();
        let p = Arc::new(p.f);
        let ctor: Ctor = Arc::new(move |tags| {
            let p = p.clone();
            let op = UnaryOperator::<T, T, In, _> {
                tag: tags[0],
                f: move |d: &DSet<T>| ops::filter_delta(d, |x| p(x)),
                _t: PhantomData,
            };
            (Box::new(op) as Box<dyn Operator>, TypeOps::of::<DSet<T>>())
        });
        self.derive(id, OpKind::Filter, &[input.id()], Some(&name), ctor)
    }

    /// `fold op`: `input` folded by the registered operation `F`.
    pub fn fold<T, In, F>(&mut self, id: &str, input: &Var<In>) -> Result<Var<Folded<T, F>>, Error>
    where
        T: Element,
        In: CausalSet<T>,
        F: FoldOp<T>,
        F::Acc: Debug,
    {
        let ctor: Ctor = Arc::new(move |tags| {
            let op = FoldOperator::<T, In, F> {
                tag: tags[0],
                _t: PhantomData,
            };
            (
                Box::new(op) as Box<dyn Operator>,
                TypeOps::of::<Folded<T, F>>(),
            )
        });
        self.derive(id, OpKind::Fold, &[input.id()], Some(F::NAME), ctor)
    }

    /// `bind_to` (Lasp's `bind_to(Id, Source)`): `id` becomes a copy of `source`, of the same
    /// type, source or derived; every change of `source` is joined into it, incrementally (its
    /// effective delta, like any operator) and on every replica that holds both (the
    /// declaration ships with the graph; a copy needs no registered function). `id` may be
    /// declared already, but not written: its dots would clash with the source's (dots are
    /// minted per variable), so a target holding state is refused
    /// ([`Error::BindTargetWritten`]). Like every derived variable it cannot be updated
    /// directly afterwards.
    pub fn bind_to<L>(&mut self, id: &str, source: &Var<L>) -> Result<Var<L>, Error>
    where
        L: Lattice + Query,
        L::Value: Debug,
    {
        self.state(source)?;
        if let Some(d) = self.decls.get(id) {
            let want = std::any::type_name::<L>();
            if d.type_name != want {
                return Err(Error::TypeMismatch {
                    id: id.to_string(),
                    declared: d.type_name.clone(),
                    requested: want.to_string(),
                });
            }
            if d.op.is_none() && self.by_id.contains_key(id) && !self.state_dyn(id)?.is_bottom() {
                return Err(Error::BindTargetWritten(id.to_string()));
            }
        }
        let ctor: Ctor = Arc::new(|_| {
            (
                Box::new(CopyOperator) as Box<dyn Operator>,
                TypeOps::of::<L>(),
            )
        });
        self.derive(id, OpKind::Bind, &[source.id()], None, ctor)
    }

    /// `union`: the elements of either input.
    pub fn union<T, A, B>(
        &mut self,
        id: &str,
        a: &Var<A>,
        b: &Var<B>,
    ) -> Result<Var<DSet<T>>, Error>
    where
        T: Element,
        A: CausalSet<T>,
        B: CausalSet<T>,
    {
        let ctor = binary::<DSet<T>, _>(|tags| UnionOperator::<T, A, B> {
            tags,
            _t: PhantomData,
        });
        self.derive(id, OpKind::Union, &[a.id(), b.id()], None, ctor)
    }

    /// `product`: every pair `(x, y)` of `a × b`.
    pub fn product<T, U, A, B>(
        &mut self,
        id: &str,
        a: &Var<A>,
        b: &Var<B>,
    ) -> Result<Var<DSet<(T, U)>>, Error>
    where
        T: Element,
        U: Element,
        A: CausalSet<T>,
        B: CausalSet<U>,
    {
        let ctor = binary::<DSet<(T, U)>, _>(|tags| ProductOperator::<T, U, A, B> {
            tags,
            _t: PhantomData,
        });
        self.derive(id, OpKind::Product, &[a.id(), b.id()], None, ctor)
    }

    /// `intersection`: the elements present in both inputs.
    pub fn intersection<T, A, B>(
        &mut self,
        id: &str,
        a: &Var<A>,
        b: &Var<B>,
    ) -> Result<Var<DSet<T>>, Error>
    where
        T: Element,
        A: CausalSet<T>,
        B: CausalSet<T>,
    {
        let concat = self.defects.intersection_concatenates;
        let ctor: Ctor = Arc::new(move |tags| {
            let op = IntersectionOperator::<T, A, B> {
                tags: [tags[0], tags[1]],
                concat,
                _t: PhantomData,
            };
            (Box::new(op) as Box<dyn Operator>, TypeOps::of::<DSet<T>>())
        });
        self.derive(id, OpKind::Intersection, &[a.id(), b.id()], None, ctor)
    }

    /// Every declaration, in id order (ship it to let other replicas instantiate the graph).
    pub fn graph(&self) -> Vec<Decl> {
        self.decls.values().cloned().collect()
    }

    /// Adds a declaration made elsewhere. Returns whether it was new. A declaration whose
    /// inputs are not declared yet is parked until they are; one that conflicts with the
    /// local graph (another type, another operator, a cycle) is an error. An operator whose
    /// function this replica's code does not know is declared but not run here.
    pub fn add_decl(&mut self, decl: Decl) -> Result<bool, Error> {
        Self::check_bounds(&decl)?;
        if self.decls.get(&decl.id) == Some(&decl) {
            return Ok(false);
        }
        let known = self.decls.contains_key(&decl.id) || self.parked.contains_key(&decl.id);
        if !known && self.decls.len() + self.parked.len() >= MAX_GRAPH {
            return Err(Error::GraphLimit(format!(
                "`{}`: the graph already has {MAX_GRAPH} declarations",
                decl.id
            )));
        }
        // One declaration, then those it unparks: a work list, not recursion, since a chain
        // of parked declarations can be as long as the parked bound.
        let mut work = vec![decl];
        let mut first = true;
        while let Some(d) = work.pop() {
            let parked = self.add_one(d, first)?;
            first = false;
            if !parked {
                let ready: Vec<String> = self
                    .parked
                    .values()
                    .filter(|p| {
                        p.op.as_ref()
                            .is_some_and(|o| o.inputs.iter().all(|i| self.decls.contains_key(i)))
                    })
                    .map(|p| p.id.clone())
                    .collect();
                work.extend(ready.iter().filter_map(|id| self.parked.remove(id)));
            }
        }
        self.run_ready();
        Ok(true)
    }

    fn check_bounds(decl: &Decl) -> Result<(), Error> {
        let (inputs, func) = decl.op.as_ref().map_or((&[][..], 0), |o| {
            (&o.inputs[..], o.func.as_ref().map_or(0, String::len))
        });
        if inputs.len() > MAX_INPUTS {
            return Err(Error::GraphLimit(format!(
                "`{}`: {} inputs (at most {MAX_INPUTS})",
                decl.id.chars().take(64).collect::<String>(),
                inputs.len()
            )));
        }
        let bytes = decl.id.len()
            + decl.type_name.len()
            + func
            + inputs.iter().map(String::len).sum::<usize>();
        if bytes > MAX_DECL_BYTES {
            return Err(Error::GraphLimit(format!(
                "`{}…`: {bytes} bytes of names (at most {MAX_DECL_BYTES})",
                decl.id.chars().take(64).collect::<String>()
            )));
        }
        Ok(())
    }

    /// Declares `decl` or parks it; whether it was parked. Only the first declaration of an
    /// [`Program::add_decl`] call may be refused for the parked bound (the others come out of
    /// the parked set).
    fn add_one(&mut self, decl: Decl, first: bool) -> Result<bool, Error> {
        if let Some(op) = &decl.op {
            if op.inputs.iter().any(|i| !self.decls.contains_key(i)) {
                if first && !self.parked.contains_key(&decl.id) && self.parked.len() >= MAX_PARKED {
                    return Err(Error::GraphLimit(format!(
                        "`{}`: {MAX_PARKED} declarations already wait for their inputs",
                        decl.id
                    )));
                }
                self.parked.insert(decl.id.clone(), decl);
                return Ok(true);
            }
        }
        if let Some(existing) = self.decls.get(&decl.id) {
            if existing.type_name != decl.type_name {
                return Err(Error::TypeMismatch {
                    id: decl.id.clone(),
                    declared: existing.type_name.clone(),
                    requested: decl.type_name.clone(),
                });
            }
        }
        match self.types.get(&decl.type_name).copied() {
            Some(ty) => self.declare_var(&decl.id, ty, decl.op.clone())?,
            // A type this replica's code never named: keep the declaration as data only.
            None => {
                self.decls.insert(decl.id.clone(), decl);
            }
        }
        Ok(false)
    }

    /// The functions and types this replica's code registered (by declaring operators and
    /// variables), to hand to another [`Program`] of the same process.
    pub fn functions(&self) -> Functions {
        Functions {
            catalog: self.catalog.clone(),
            types: self.types.clone(),
            wasm: self.wasm.clone(),
        }
    }

    /// Makes `functions` known here, so declarations received with [`Program::add_decl`]
    /// that use them are instantiated.
    pub fn use_functions(&mut self, functions: &Functions) {
        for (k, v) in &functions.catalog {
            self.catalog.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &functions.types {
            self.types.entry(k.clone()).or_insert(*v);
        }
        self.wasm.merge(&functions.wasm);
        let decls: Vec<Decl> = self.decls.values().cloned().collect();
        for d in decls {
            self.materialize(&d);
        }
        self.run_ready();
    }

    /// Starts holding `id` (and instantiates what that enables).
    pub fn hold(&mut self, id: &str) {
        if let Interest::Only(ids) = &mut self.interest {
            if ids.insert(id.to_string()) {
                if let Some(d) = self.decls.get(id).cloned() {
                    self.materialize(&d);
                }
            }
        }
    }

    /// Whether this replica holds `id`.
    pub fn holds(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Whether `id` is computed by an operator on this replica.
    pub fn computes(&self, id: &str) -> bool {
        self.by_id
            .get(id)
            .is_some_and(|&i| self.vars[i].producer.is_some())
    }

    /// Ids of the variables held here.
    pub fn held(&self) -> Vec<String> {
        self.by_id.keys().map(|k| k.to_string()).collect()
    }

    // ----- reads ----------------------------------------------------------------------------

    fn slot(&self, id: &str) -> Result<usize, Error> {
        match self.by_id.get(id) {
            Some(&i) => Ok(i),
            None if self.decls.contains_key(id) => Err(Error::NotHeld(id.to_string())),
            None => Err(Error::UnknownVar(id.to_string())),
        }
    }

    /// The current state of `var`.
    pub fn state<L: Lattice>(&self, var: &Var<L>) -> Result<&L, Error> {
        let i = self.slot(var.id())?;
        downcast::<L>(&*self.vars[i].state).ok_or_else(|| Error::TypeMismatch {
            id: var.id().to_string(),
            declared: self.vars[i].ty.name.to_string(),
            requested: std::any::type_name::<L>().to_string(),
        })
    }

    /// The current value of `var` (never blocks).
    pub fn query<L: Lattice + Query>(&self, var: &Var<L>) -> Result<L::Value, Error> {
        self.state(var).map(Query::query)
    }

    /// The erased state of the variable `id`.
    pub fn state_dyn(&self, id: &str) -> Result<&dyn AnyLattice, Error> {
        self.slot(id).map(|i| &*self.vars[i].state)
    }

    /// The query value of `id`, rendered with `Debug`.
    pub fn show(&self, id: &str) -> Result<String, Error> {
        let i = self.slot(id)?;
        Ok((self.vars[i].ty.show)(&*self.vars[i].state))
    }

    /// `value` (a state or delta of `id`'s type, e.g. from [`Program::decode`]) rendered as
    /// [`Program::show`] renders the variable: its query value, with `Debug`.
    pub fn show_value(&self, id: &str, value: &dyn AnyLattice) -> Result<String, Error> {
        let i = self.slot(id)?;
        if value.type_name() != self.vars[i].ty.name {
            return Err(Error::TypeMismatch {
                id: id.to_string(),
                declared: self.vars[i].ty.name.to_string(),
                requested: value.type_name().to_string(),
            });
        }
        Ok((self.vars[i].ty.show)(value))
    }

    // ----- writes ---------------------------------------------------------------------------

    /// Applies the update `op` to `var` on behalf of `actor`; returns whether it changed.
    /// Derived variables cannot be updated directly.
    pub fn update<L, O>(&mut self, var: &Var<L>, op: O, actor: Actor) -> Result<bool, Error>
    where
        L: Lattice,
        O: Update<L>,
    {
        let i = self.slot(var.id())?;
        if self.vars[i].producer.is_some() {
            return Err(Error::Derived(var.id().to_string()));
        }
        let delta = op.delta(self.state(var)?, actor)?;
        let changed = self.apply_idx(i, &delta);
        self.run_ready();
        Ok(changed)
    }

    /// Whether `id` is computed by an operator (and so cannot be updated directly).
    pub fn is_derived(&self, id: &str) -> Result<bool, Error> {
        let i = self.slot(id)?;
        Ok(self.vars[i].producer.is_some())
    }

    /// Joins `value` into `var` (Lasp's `bind`); returns whether it changed.
    pub fn bind<L: Lattice>(&mut self, var: &Var<L>, value: &L) -> Result<bool, Error> {
        let i = self.slot(var.id())?;
        self.state(var)?;
        let changed = self.apply_idx(i, value);
        self.run_ready();
        Ok(changed)
    }

    /// Joins a value of `id`'s type received from another replica (MessagePack). Malformed
    /// bytes are an error and change nothing.
    pub fn apply_encoded(&mut self, id: &str, bytes: &[u8]) -> Result<bool, Error> {
        let i = self.slot(id)?;
        let value = (self.vars[i].ty.decode)(bytes)?;
        let changed = self.apply_idx(i, &*value);
        self.run_ready();
        Ok(changed)
    }

    /// Joins an erased value of `id`'s type; returns whether it changed. A value of another
    /// type is an error.
    pub fn apply_dyn(&mut self, id: &str, value: &dyn AnyLattice) -> Result<bool, Error> {
        let i = self.slot(id)?;
        if value.type_name() != self.vars[i].ty.name {
            return Err(Error::TypeMismatch {
                id: id.to_string(),
                declared: self.vars[i].ty.name.to_string(),
                requested: value.type_name().to_string(),
            });
        }
        let changed = self.apply_idx(i, value);
        self.run_ready();
        Ok(changed)
    }

    /// Decodes a value of `id`'s type.
    pub fn decode(&self, id: &str, bytes: &[u8]) -> Result<Box<dyn AnyLattice>, Error> {
        let i = self.slot(id)?;
        Ok((self.vars[i].ty.decode)(bytes)?)
    }

    /// The effective deltas recorded since the last call, per variable id, in the order they
    /// happened (only while [`Program::record_changes`] is on).
    pub fn drain_changes(&mut self) -> Vec<(Arc<str>, Box<dyn AnyLattice>)> {
        let changes = std::mem::take(&mut self.changes);
        changes
            .into_iter()
            .map(|(i, d)| (self.vars[i].id.clone(), d))
            .collect()
    }

    /// Joins `incoming` into variable `v` and propagates its effective delta.
    fn apply_idx(&mut self, v: usize, incoming: &dyn AnyLattice) -> bool {
        let eff = incoming.delta_dyn(&*self.vars[v].state);
        if eff.is_bottom() {
            return false;
        }
        self.propagate(v, eff);
        true
    }

    fn propagate(&mut self, v: usize, delta: Box<dyn AnyLattice>) {
        let consumers = self.vars[v].consumers.clone();
        let mut outs: Vec<(usize, Box<dyn AnyLattice>)> = Vec::with_capacity(consumers.len());
        for &(op, pos) in &consumers {
            if self.ops[op].op.needs_before(pos) {
                outs.push((op, self.run_op(op, pos, &*delta)));
            }
        }
        let changed = self.vars[v].state.join_dyn(&*delta);
        debug_assert!(changed, "an effective delta always changes the state");
        for &(op, pos) in &consumers {
            if !self.ops[op].op.needs_before(pos) {
                outs.push((op, self.run_op(op, pos, &*delta)));
            }
        }
        self.check_watches(v, true);
        if self.record_changes {
            self.changes.push((v, delta));
        }
        for (op, out) in outs {
            let o = self.ops[op].output;
            let eff = out.delta_dyn(&*self.vars[o].state);
            if !eff.is_bottom() {
                self.propagate(o, eff);
            }
        }
    }

    fn run_op(&self, op: usize, pos: usize, delta: &dyn AnyLattice) -> Box<dyn AnyLattice> {
        let slot = &self.ops[op];
        let states: Vec<&dyn AnyLattice> =
            slot.inputs.iter().map(|&i| &*self.vars[i].state).collect();
        slot.op.apply(pos, delta, &states)
    }
}
