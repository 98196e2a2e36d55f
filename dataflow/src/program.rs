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
//! **`bind_to`** ([`Program::bind_to`]) makes a variable a copy of another of the same type, an
//! operator like the others (incremental, shipped with the graph, computed wherever the inputs
//! are held).
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

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use rasp_lattice::set::Element;
use rasp_lattice::{Actor, Lattice, Query, Threshold};
use serde::{Deserialize, Serialize};

use crate::causal::{CausalSet, DSet, VarTag};
use crate::erased::{downcast, AnyLattice, TypeOps};
use crate::fold::{FoldOp, Folded};
use crate::ops;
use crate::update::Update;
use crate::Error;

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

/// The operator behind a derived variable, erased.
trait Operator {
    /// Whether input `pos` must be seen *before* its delta is joined.
    fn needs_before(&self, pos: usize) -> bool;
    /// The output delta for `delta` arriving on input `pos`; `inputs` are the inputs' states.
    fn apply(
        &self,
        pos: usize,
        delta: &dyn AnyLattice,
        inputs: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice>;
    /// The output computed from scratch (used when the operator is instantiated on a replica
    /// that already holds input state).
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice>;
}

type Ctor = Arc<dyn Fn(&[VarTag]) -> (Box<dyn Operator>, TypeOps)>;

struct OpSlot {
    op: Box<dyn Operator>,
    inputs: Vec<usize>,
    output: usize,
}

type OnceFn = Box<dyn FnOnce(&mut Program, &dyn AnyLattice)>;
type EveryFn = Box<dyn FnMut(&mut Program, &dyn AnyLattice)>;
type Check = Box<dyn Fn(&dyn AnyLattice) -> bool>;
type Guard = Box<dyn Fn(&Program) -> bool>;

enum Watch {
    /// A threshold read: runs once, when the threshold holds.
    Read { check: Check, f: OnceFn },
    /// A trigger: like a read, but named and recorded as fired; with a guard, it fires only
    /// when the guard also holds (re-checked on every change of the variable and at
    /// [`Program::recheck_triggers`]).
    Trigger {
        name: String,
        check: Check,
        guard: Option<Guard>,
        f: OnceFn,
    },
    /// A subscription: runs on every change (the slot is empty while it runs).
    Every { id: u64, f: Option<EveryFn> },
}

struct VarSlot {
    id: Arc<str>,
    ty: TypeOps,
    state: Box<dyn AnyLattice>,
    producer: Option<usize>,
    consumers: Vec<(usize, usize)>,
    watches: Vec<Watch>,
}

enum Ready {
    Once(OnceFn, usize),
    Every(u64, usize),
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

/// The action a finished task leaves for the program.
type TaskDone = Box<dyn FnOnce(&mut Program)>;

struct Task {
    fut: Pin<Box<dyn Future<Output = TaskDone>>>,
    wake: Arc<TaskWake>,
}

/// A task's wake flag: set by its waker, read (and cleared) by the program's poll loop.
struct TaskWake(AtomicBool);

impl Wake for TaskWake {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct ReadSlot<L> {
    value: Option<L>,
    waker: Option<Waker>,
}

/// A threshold read as a future ([`Program::read_async`]): resolves to the first state of the
/// variable on which the threshold holds, when the program sees it.
///
/// It is a plain [`std::future::Future`], resolved by the program itself (no runtime, no
/// clock), so it works inside the deterministic simulator: await it in a task given to
/// [`Program::spawn`] / [`Program::spawn_then`], which the program polls when it resolves, or
/// poll it from synchronous code with [`ReadFuture::try_take`]. Dropping it before it resolves
/// is allowed: the read then resolves into nothing.
pub struct ReadFuture<L> {
    slot: Rc<RefCell<ReadSlot<L>>>,
}

impl<L> ReadFuture<L> {
    /// Whether the threshold held (the value is waiting to be taken).
    pub fn is_ready(&self) -> bool {
        self.slot.borrow().value.is_some()
    }

    /// The state the read resolved to, if it has (taken once: later calls return `None`).
    pub fn try_take(&mut self) -> Option<L> {
        self.slot.borrow_mut().value.take()
    }
}

impl<L> Debug for ReadFuture<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadFuture(ready: {})", self.is_ready())
    }
}

impl<L> Future for ReadFuture<L> {
    type Output = L;
    /// Ready with the state once the threshold held; pending before (and after the value was
    /// taken).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<L> {
        let mut slot = self.slot.borrow_mut();
        match slot.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn signature(kind: OpKind, input_types: &[&str], func: Option<&str>) -> String {
    format!(
        "{kind:?}({})[{}]",
        input_types.join(","),
        func.unwrap_or("")
    )
}

impl Program {
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
        let operator: Box<dyn Operator> = if op.kind == OpKind::Bind {
            // A copy needs no function: any replica holding the type can run it.
            if types.len() != 1 || types[0] != self.vars[output].ty.name {
                return;
            }
            Box::new(CopyOp)
        } else {
            let sig = signature(op.kind, &types, op.func.as_deref());
            let Some(ctor) = self.catalog.get(&sig).cloned() else {
                return;
            };
            let tags: Vec<VarTag> = op.inputs.iter().map(|i| VarTag::of(i)).collect();
            ctor(&tags).0
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
            let op = Unary::<T, U, In, _> {
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
            let op = Unary::<T, T, In, _> {
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
        let ctor: Ctor = Arc::new(|_| (Box::new(CopyOp) as Box<dyn Operator>, TypeOps::of::<L>()));
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
        let ctor = binary::<DSet<T>, _>(|tags| UnionOp::<T, A, B> {
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
        let ctor = binary::<DSet<(T, U)>, _>(|tags| ProductOp::<T, U, A, B> {
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
            let op = IntersectionOp::<T, A, B> {
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

    /// Runs `f` once, as soon as `threshold` holds on `var` (at once if it already does):
    /// Lasp's blocking `read`, as a continuation.
    pub fn read<L, F>(&mut self, var: &Var<L>, threshold: Threshold<L>, f: F) -> Result<(), Error>
    where
        L: Lattice,
        F: FnOnce(&mut Program, &L) + 'static,
    {
        threshold.validate()?;
        let i = self.slot(var.id())?;
        self.state(var)?;
        let check: Check = Box::new(move |s| {
            threshold
                .holds(downcast::<L>(s).expect("typed at registration"))
                .unwrap_or(false)
        });
        let f: OnceFn = Box::new(move |p, s| f(p, downcast::<L>(s).expect("typed")));
        self.vars[i].watches.push(Watch::Read { check, f });
        self.check_watches(i, false);
        self.run_ready();
        Ok(())
    }

    /// Lasp's blocking `read` as a future: resolves to the state of `var` at the first change
    /// where `threshold` holds (at once if it already does). The same read as
    /// [`Program::read`]; see [`ReadFuture`] for how to await it.
    ///
    /// ```
    /// use rasp_dataflow::update::inc;
    /// use rasp_dataflow::Program;
    /// use rasp_lattice::{GCounter, Query, Threshold};
    ///
    /// let mut p = Program::new(1);
    /// let c = p.declare::<GCounter>("c").unwrap();
    /// let read = p.read_async(&c, Threshold::strict_value(1)).unwrap();
    /// let c2 = c.clone();
    /// p.spawn_then(read, move |p, seen: GCounter| {
    ///     p.update(&c2, inc(10), 1).unwrap(); // act on the program when it resolves
    ///     assert_eq!(seen.query(), 2);
    /// });
    /// p.update(&c, inc(1), 1).unwrap();
    /// assert_eq!(p.query(&c).unwrap(), 1);
    /// p.update(&c, inc(1), 1).unwrap();
    /// assert_eq!(p.query(&c).unwrap(), 12);
    /// ```
    pub fn read_async<L>(
        &mut self,
        var: &Var<L>,
        threshold: Threshold<L>,
    ) -> Result<ReadFuture<L>, Error>
    where
        L: Lattice,
    {
        let slot = Rc::new(RefCell::new(ReadSlot {
            value: None,
            waker: None,
        }));
        let weak = Rc::downgrade(&slot);
        self.read(var, threshold, move |_, s: &L| {
            if let Some(slot) = weak.upgrade() {
                let waker = {
                    let mut slot = slot.borrow_mut();
                    slot.value = Some(s.clone());
                    slot.waker.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
            }
        })?;
        Ok(ReadFuture { slot })
    }

    /// Runs the future `fut` on this program, then `then` with its output and the program.
    /// The program is the executor: it polls the task once now and again whenever its waker
    /// is woken (a [`ReadFuture`] it awaits resolved), in spawn order, right after the
    /// continuations of the change that woke it. No runtime and no clock are involved, so
    /// tasks are deterministic in the simulator. Returns the task's id.
    pub fn spawn_then<T, Fut, G>(&mut self, fut: Fut, then: G) -> u64
    where
        T: 'static,
        Fut: Future<Output = T> + 'static,
        G: FnOnce(&mut Program, T) + 'static,
    {
        let id = self.next_task;
        self.next_task += 1;
        let fut = async move {
            let out = fut.await;
            Box::new(move |p: &mut Program| then(p, out)) as TaskDone
        };
        self.tasks.insert(
            id,
            Task {
                fut: Box::pin(fut),
                wake: Arc::new(TaskWake(AtomicBool::new(true))),
            },
        );
        self.run_ready();
        id
    }

    /// Runs the future `fut` on this program (see [`Program::spawn_then`]).
    pub fn spawn<Fut>(&mut self, fut: Fut) -> u64
    where
        Fut: Future<Output = ()> + 'static,
    {
        self.spawn_then(fut, |_, ()| {})
    }

    /// The number of spawned tasks not finished yet.
    pub fn pending_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Runs `f` after every change of `var`. Returns an id for [`Program::unsubscribe`].
    pub fn subscribe<L, F>(&mut self, var: &Var<L>, mut f: F) -> Result<u64, Error>
    where
        L: Lattice,
        F: FnMut(&mut Program, &L) + 'static,
    {
        let i = self.slot(var.id())?;
        self.state(var)?;
        let id = self.next_sub;
        self.next_sub += 1;
        let f: EveryFn = Box::new(move |p, s| f(p, downcast::<L>(s).expect("typed")));
        self.vars[i].watches.push(Watch::Every { id, f: Some(f) });
        Ok(id)
    }

    /// [`Program::subscribe`] by id, for code that knows a variable only by name (the HTTP
    /// API's long-polls and event streams): runs `f` with the erased state after every change
    /// of `id`, from inside the update or merge that changed it. `f` may call
    /// [`Program::unsubscribe`] with its own id (it then does not run again). Returns an id
    /// for [`Program::unsubscribe`]; an unknown or not-held variable is an error.
    pub fn subscribe_dyn<F>(&mut self, id: &str, f: F) -> Result<u64, Error>
    where
        F: FnMut(&mut Program, &dyn AnyLattice) + 'static,
    {
        let i = self.slot(id)?;
        let sub = self.next_sub;
        self.next_sub += 1;
        self.vars[i].watches.push(Watch::Every {
            id: sub,
            f: Some(Box::new(f)),
        });
        Ok(sub)
    }

    /// Stops a subscription (nothing happens for an id that is not subscribed, e.g. one
    /// already stopped). A subscription may stop itself from inside its callback.
    pub fn unsubscribe(&mut self, id: u64) {
        for v in &mut self.vars {
            v.watches
                .retain(|w| !matches!(w, Watch::Every { id: i, .. } if *i == id));
        }
    }

    /// How many subscriptions ([`Program::subscribe`], [`Program::subscribe_dyn`]) are
    /// registered now, over every variable: what shows that the ones of departed readers
    /// were stopped.
    pub fn subscriptions(&self) -> usize {
        self.vars
            .iter()
            .flat_map(|v| v.watches.iter())
            .filter(|w| matches!(w, Watch::Every { .. }))
            .count()
    }

    /// A trigger named `name`: runs `action` once when `threshold` holds on `var`, and never
    /// again on this replica (a trigger already recorded as fired, see
    /// [`Program::fired_triggers`], is not armed). Which replica arms a trigger is the
    /// replication layer's choice (see [`crate::replica::Replica::trigger`], which arms a
    /// guarded trigger on every armed node and lets ownership decide).
    pub fn trigger<L, F>(
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
        self.arm_trigger(name, var, threshold, None, action)
    }

    /// Like [`Program::trigger`], but the trigger fires only when `guard` also holds on the
    /// program; it stays armed while the threshold holds and the guard does not. The guard is
    /// evaluated on every change of `var` and at [`Program::recheck_triggers`] (call it when
    /// something the guard reads outside the program changed). The replication layer uses it
    /// for ownership: "this node is the owner and the fired set lacks `name`".
    pub fn trigger_guarded<L, G, F>(
        &mut self,
        name: &str,
        var: &Var<L>,
        threshold: Threshold<L>,
        guard: G,
        action: F,
    ) -> Result<(), Error>
    where
        L: Lattice,
        G: Fn(&Program) -> bool + 'static,
        F: FnOnce(&mut Program, &L) + 'static,
    {
        self.arm_trigger(name, var, threshold, Some(Box::new(guard)), action)
    }

    fn arm_trigger<L, F>(
        &mut self,
        name: &str,
        var: &Var<L>,
        threshold: Threshold<L>,
        guard: Option<Guard>,
        action: F,
    ) -> Result<(), Error>
    where
        L: Lattice,
        F: FnOnce(&mut Program, &L) + 'static,
    {
        threshold.validate()?;
        if self.fired.contains(name) {
            return Ok(());
        }
        let i = self.slot(var.id())?;
        self.state(var)?;
        if self.vars[i]
            .watches
            .iter()
            .any(|w| matches!(w, Watch::Trigger { name: n, .. } if n == name))
        {
            return Err(Error::DuplicateTrigger(name.to_string()));
        }
        let check: Check = Box::new(move |s| {
            threshold
                .holds(downcast::<L>(s).expect("typed at registration"))
                .unwrap_or(false)
        });
        let f: OnceFn = Box::new(move |p, s| action(p, downcast::<L>(s).expect("typed")));
        self.vars[i].watches.push(Watch::Trigger {
            name: name.to_string(),
            check,
            guard,
            f,
        });
        self.check_watches(i, false);
        self.run_ready();
        Ok(())
    }

    /// Re-evaluates every armed trigger (threshold and guard) and runs those that now hold.
    pub fn recheck_triggers(&mut self) {
        for v in 0..self.vars.len() {
            if self.vars[v]
                .watches
                .iter()
                .any(|w| matches!(w, Watch::Trigger { .. }))
            {
                self.check_watches(v, false);
            }
        }
        self.run_ready();
    }

    /// Names of the triggers armed here that have not fired.
    pub fn armed_triggers(&self) -> BTreeSet<String> {
        self.vars
            .iter()
            .flat_map(|v| v.watches.iter())
            .filter_map(|w| match w {
                Watch::Trigger { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// Names of the triggers that fired here (persist them to never fire twice across
    /// restarts; restore with [`Program::mark_fired`]).
    pub fn fired_triggers(&self) -> &BTreeSet<String> {
        &self.fired
    }

    /// The triggers whose action ran on this program (since it was built: a restarted
    /// replica starts a new list), in firing order; unlike [`Program::fired_triggers`], not
    /// those learnt fired from other replicas. The tools check "a trigger fires at most once
    /// per node" on it.
    pub fn trigger_firings(&self) -> &[String] {
        &self.firings
    }

    /// Records `name` as fired (a trigger of that name will not be armed).
    pub fn mark_fired(&mut self, name: &str) {
        self.fired.insert(name.to_string());
        for v in &mut self.vars {
            v.watches
                .retain(|w| !matches!(w, Watch::Trigger { name: n, .. } if n == name));
        }
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

    /// Moves the watches of `v` whose condition holds to the ready list; subscriptions only
    /// when `v` changed (not when a new watch is registered).
    fn check_watches(&mut self, v: usize, changed: bool) {
        let mut i = 0;
        while i < self.vars[v].watches.len() {
            let hit = match &self.vars[v].watches[i] {
                Watch::Read { check, .. } => check(&*self.vars[v].state),
                Watch::Trigger { check, guard, .. } => {
                    check(&*self.vars[v].state) && guard.as_ref().is_none_or(|g| g(self))
                }
                Watch::Every { id, .. } => {
                    if changed {
                        self.ready.push(Ready::Every(*id, v));
                    }
                    false
                }
            };
            if hit {
                match self.vars[v].watches.remove(i) {
                    Watch::Read { f, .. } => self.ready.push(Ready::Once(f, v)),
                    Watch::Trigger { name, f, .. } => {
                        self.firings.push(name.clone());
                        self.fired.insert(name);
                        self.ready.push(Ready::Once(f, v));
                    }
                    Watch::Every { .. } => unreachable!("subscriptions are never removed here"),
                }
            } else {
                i += 1;
            }
        }
    }

    /// Runs the continuations whose conditions became true, in order; they may update
    /// variables, which may make more ready.
    fn run_ready(&mut self) {
        if self.running {
            return;
        }
        self.running = true;
        loop {
            self.run_ready_batches();
            let woken: Vec<u64> = self
                .tasks
                .iter()
                .filter(|(_, t)| t.wake.0.swap(false, Ordering::SeqCst))
                .map(|(id, _)| *id)
                .collect();
            if woken.is_empty() {
                break;
            }
            for id in woken {
                let Some(mut task) = self.tasks.remove(&id) else {
                    continue;
                };
                let waker = Waker::from(task.wake.clone());
                let mut cx = Context::from_waker(&waker);
                match task.fut.as_mut().poll(&mut cx) {
                    Poll::Ready(done) => done(self),
                    Poll::Pending => {
                        self.tasks.insert(id, task);
                    }
                }
            }
        }
        self.running = false;
    }

    fn run_ready_batches(&mut self) {
        while !self.ready.is_empty() {
            let batch = std::mem::take(&mut self.ready);
            for r in batch {
                match r {
                    Ready::Once(f, v) => {
                        let state = self.vars[v].state.clone_box();
                        f(self, &*state);
                    }
                    Ready::Every(id, v) => {
                        let taken = self.vars[v].watches.iter_mut().find_map(|w| match w {
                            Watch::Every { id: i, f } if *i == id => f.take(),
                            _ => None,
                        });
                        if let Some(mut f) = taken {
                            let state = self.vars[v].state.clone_box();
                            f(self, &*state);
                            if let Some(Watch::Every { f: slot, .. }) = self.vars[v]
                                .watches
                                .iter_mut()
                                .find(|w| matches!(w, Watch::Every { id: i, .. } if *i == id))
                            {
                                *slot = Some(f);
                            }
                        }
                    }
                }
            }
        }
    }
}

// ----- operators ------------------------------------------------------------------------------

/// bind_to: the output is a copy of the input, delta for delta.
struct CopyOp;

impl Operator for CopyOp {
    fn needs_before(&self, _: usize) -> bool {
        false
    }
    fn apply(
        &self,
        _: usize,
        delta: &dyn AnyLattice,
        _: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice> {
        delta.clone_box()
    }
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice> {
        inputs[0].clone_box()
    }
}

fn input<L: 'static>(v: &dyn AnyLattice) -> &L {
    downcast::<L>(v).expect("operator inputs are typed at declaration")
}

/// map and filter: stateless, one input.
struct Unary<T, U, In, F> {
    tag: VarTag,
    f: F,
    _t: PhantomData<fn(T, In) -> U>,
}

impl<T, U, In, F> Operator for Unary<T, U, In, F>
where
    T: Element,
    U: Element,
    In: CausalSet<T>,
    F: Fn(&DSet<T>) -> DSet<U>,
{
    fn needs_before(&self, _: usize) -> bool {
        false
    }
    fn apply(
        &self,
        _: usize,
        delta: &dyn AnyLattice,
        _: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice> {
        Box::new((self.f)(&input::<In>(delta).lift(self.tag)))
    }
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice> {
        Box::new((self.f)(&input::<In>(inputs[0]).lift(self.tag)))
    }
}

struct FoldOperator<T, In, F> {
    tag: VarTag,
    _t: PhantomData<fn(T, In, F)>,
}

impl<T: Element, In: CausalSet<T>, F: FoldOp<T>> Operator for FoldOperator<T, In, F> {
    fn needs_before(&self, _: usize) -> bool {
        false
    }
    fn apply(
        &self,
        _: usize,
        delta: &dyn AnyLattice,
        _: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice> {
        Box::new(Folded::<T, F>::from_set(input::<In>(delta).lift(self.tag)))
    }
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice> {
        Box::new(Folded::<T, F>::from_set(
            input::<In>(inputs[0]).lift(self.tag),
        ))
    }
}

struct UnionOp<T, A, B> {
    tags: [VarTag; 2],
    _t: PhantomData<fn(T, A, B)>,
}

impl<T: Element, A: CausalSet<T>, B: CausalSet<T>> Operator for UnionOp<T, A, B> {
    fn needs_before(&self, _: usize) -> bool {
        false
    }
    fn apply(
        &self,
        pos: usize,
        delta: &dyn AnyLattice,
        _: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice> {
        let d = if pos == 0 {
            input::<A>(delta).lift(self.tags[0])
        } else {
            input::<B>(delta).lift(self.tags[1])
        };
        Box::new(ops::union_delta(&d, self.tags[pos]))
    }
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice> {
        let mut out = ops::union_delta(&input::<A>(inputs[0]).lift(self.tags[0]), self.tags[0]);
        out.join(&ops::union_delta(
            &input::<B>(inputs[1]).lift(self.tags[1]),
            self.tags[1],
        ));
        Box::new(out)
    }
}

struct ProductOp<T, U, A, B> {
    tags: [VarTag; 2],
    _t: PhantomData<fn(T, U, A, B)>,
}

impl<T: Element, U: Element, A: CausalSet<T>, B: CausalSet<U>> Operator for ProductOp<T, U, A, B> {
    fn needs_before(&self, _: usize) -> bool {
        false
    }
    fn apply(
        &self,
        pos: usize,
        delta: &dyn AnyLattice,
        inputs: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice> {
        if pos == 0 {
            let d = input::<A>(delta).lift(self.tags[0]);
            Box::new(ops::product_left_delta(
                &d,
                input::<B>(inputs[1]),
                self.tags[1],
            ))
        } else {
            let d = input::<B>(delta).lift(self.tags[1]);
            Box::new(ops::product_right_delta(
                input::<A>(inputs[0]),
                self.tags[0],
                &d,
            ))
        }
    }
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice> {
        let a = input::<A>(inputs[0]).lift(self.tags[0]);
        Box::new(ops::product_left_delta(
            &a,
            input::<B>(inputs[1]),
            self.tags[1],
        ))
    }
}

struct IntersectionOp<T, A, B> {
    tags: [VarTag; 2],
    /// [`Defects::intersection_concatenates`].
    concat: bool,
    _t: PhantomData<fn(T, A, B)>,
}

impl<T: Element, A: CausalSet<T>, B: CausalSet<T>> Operator for IntersectionOp<T, A, B> {
    fn needs_before(&self, _: usize) -> bool {
        true
    }
    fn apply(
        &self,
        pos: usize,
        delta: &dyn AnyLattice,
        inputs: &[&dyn AnyLattice],
    ) -> Box<dyn AnyLattice> {
        let (a, b) = (input::<A>(inputs[0]), input::<B>(inputs[1]));
        if self.concat {
            return Box::new(if pos == 0 {
                let d = input::<A>(delta).lift(self.tags[0]);
                ops::intersection_concat_delta(&d, (b, self.tags[1]))
            } else {
                let d = input::<B>(delta).lift(self.tags[1]);
                ops::intersection_concat_delta(&d, (a, self.tags[0]))
            });
        }
        if pos == 0 {
            let d = input::<A>(delta).lift(self.tags[0]);
            Box::new(ops::intersection_left_delta(
                &d,
                (a, self.tags[0]),
                (b, self.tags[1]),
            ))
        } else {
            let d = input::<B>(delta).lift(self.tags[1]);
            Box::new(ops::intersection_right_delta(
                (a, self.tags[0]),
                &d,
                (b, self.tags[1]),
            ))
        }
    }
    fn initial(&self, inputs: &[&dyn AnyLattice]) -> Box<dyn AnyLattice> {
        let a = input::<A>(inputs[0]).lift(self.tags[0]);
        let b = input::<B>(inputs[1]);
        Box::new(ops::intersection_left_delta(
            &a,
            (&DSet::<T>::bottom(), self.tags[0]),
            (b, self.tags[1]),
        ))
    }
}
