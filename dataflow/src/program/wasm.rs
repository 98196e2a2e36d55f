//! Dataflow functions that travel with the graph: `map` and `filter` whose function is a
//! WebAssembly export (`rasp_wasm::func`), named in the declaration as
//! `wasm:<sha-256 of the module>:<export>`.
//!
//! A replica instantiates such an operator when it holds the module (declared here with
//! [`Program::map_wasm`] / [`Program::filter_wasm`], or received with
//! [`Program::add_module`], whose bytes must hash to the name) and its code accepts the
//! operator's shape: the element types, which a binary must know to hold the variables at
//! all ([`Program::accept_wasm_map`], [`Program::accept_wasm_filter`]; declaring a wasm
//! operator accepts its own shape). The replication layer ships modules a neighbour lacks
//! once per link (`crate::replica`, "Functions that travel").
//!
//! An element the function cannot take (it traps, runs out of fuel, returns bytes that do
//! not decode as the output type) is left out of the output, the same on every replica,
//! and counted in [`Program::wasm_failures`].

use super::{Ctor, OpKind, Program, Var};
use crate::causal::{CausalSet, DSet};
use crate::erased::TypeOps;
use crate::ops::{self, Operator, UnaryOperator};
use crate::Error;
use rasp_lattice::set::Element;
use rasp_wasm::func::{sha256_hex, PureModule};
use rasp_wasm::Limits;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Function modules a replica may hold.
pub const MAX_MODULES: usize = 64;

/// Builds an operator's constructor from a module and an export name.
type Factory = Arc<dyn Fn(Arc<PureModule>, String, Arc<AtomicU64>) -> Ctor + Send + Sync>;

/// The modules a program holds and the operator shapes its code accepts.
#[derive(Clone, Default)]
pub(crate) struct WasmParts {
    modules: BTreeMap<String, Arc<PureModule>>,
    /// By shape: `Map(input type)->output type` or `Filter(input type)->output type`.
    factories: BTreeMap<String, Factory>,
    failures: Arc<AtomicU64>,
}

fn shape(kind: OpKind, input: &str, output: &str) -> String {
    format!("{kind:?}({input})->{output}")
}

/// `wasm:<hash>:<export>` split, if `func` names a WebAssembly function.
fn parse(func: &str) -> Option<(&str, &str)> {
    let rest = func.strip_prefix("wasm:")?;
    rest.split_once(':')
}

impl WasmParts {
    pub(crate) fn merge(&mut self, other: &WasmParts) {
        for (k, v) in &other.modules {
            self.modules.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &other.factories {
            self.factories.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    /// The constructor of a shipped WebAssembly operator, if this replica holds its module
    /// and accepts its shape.
    pub(crate) fn ctor(
        &self,
        kind: OpKind,
        inputs: &[&str],
        output: &str,
        func: Option<&str>,
    ) -> Option<Ctor> {
        let (hash, export) = parse(func?)?;
        let [input] = inputs else { return None };
        let module = self.modules.get(hash)?;
        if !module.has_function(export) {
            return None;
        }
        let factory = self.factories.get(&shape(kind, input, output))?;
        Some(factory(
            module.clone(),
            export.to_string(),
            self.failures.clone(),
        ))
    }
}

/// One element through a map function: its image, or `None` (counted) if the function
/// fails on it.
fn apply<T: Element, U: Element>(
    m: &PureModule,
    export: &str,
    x: &T,
    failures: &AtomicU64,
) -> Option<U> {
    let arg = rmp_serde::to_vec(x).ok()?;
    let image = m
        .map(export, &arg)
        .ok()
        .and_then(|out| rmp_serde::from_slice::<U>(&out).ok());
    if image.is_none() {
        failures.fetch_add(1, Ordering::Relaxed);
    }
    image
}

fn keep<T: Element>(m: &PureModule, export: &str, x: &T, failures: &AtomicU64) -> bool {
    let verdict = rmp_serde::to_vec(x)
        .ok()
        .and_then(|arg| m.filter(export, &arg).ok());
    if verdict.is_none() {
        failures.fetch_add(1, Ordering::Relaxed);
    }
    verdict.unwrap_or(false)
}

fn map_factory<T, U, In>() -> Factory
where
    T: Element,
    U: Element,
    In: CausalSet<T>,
{
    Arc::new(|module, export, failures| {
        Arc::new(move |tags| {
            let (m, e, fails) = (module.clone(), export.clone(), failures.clone());
            let op = UnaryOperator::<T, U, In, _> {
                tag: tags[0],
                f: move |d: &DSet<T>| {
                    ops::filter_map_delta(d, |x| apply::<T, U>(&m, &e, x, &fails))
                },
                _t: PhantomData,
            };
            (Box::new(op) as Box<dyn Operator>, TypeOps::of::<DSet<U>>())
        })
    })
}

fn filter_factory<T, In>() -> Factory
where
    T: Element,
    In: CausalSet<T>,
{
    Arc::new(|module, export, failures| {
        Arc::new(move |tags| {
            let (m, e, fails) = (module.clone(), export.clone(), failures.clone());
            let op = UnaryOperator::<T, T, In, _> {
                tag: tags[0],
                f: move |d: &DSet<T>| ops::filter_delta(d, |x| keep(&m, &e, x, &fails)),
                _t: PhantomData,
            };
            (Box::new(op) as Box<dyn Operator>, TypeOps::of::<DSet<T>>())
        })
    })
}

impl Program {
    /// Accepts shipped WebAssembly `map`s from `In` (a set of `T`) to `DSet<U>` here: a
    /// declaration of one, received with its module, becomes a running operator.
    pub fn accept_wasm_map<T, U, In>(&mut self)
    where
        T: Element,
        U: Element,
        In: CausalSet<T> + rasp_lattice::Query,
        In::Value: std::fmt::Debug,
    {
        let (i, o) = (TypeOps::of::<In>(), TypeOps::of::<DSet<U>>());
        self.types.entry(i.name.to_string()).or_insert(i);
        self.types.entry(o.name.to_string()).or_insert(o);
        self.wasm.factories.insert(
            shape(OpKind::Map, i.name, o.name),
            map_factory::<T, U, In>(),
        );
        self.rematerialize();
    }

    /// Accepts shipped WebAssembly `filter`s over `In` (a set of `T`) here.
    pub fn accept_wasm_filter<T, In>(&mut self)
    where
        T: Element,
        In: CausalSet<T> + rasp_lattice::Query,
        In::Value: std::fmt::Debug,
    {
        let (i, o) = (TypeOps::of::<In>(), TypeOps::of::<DSet<T>>());
        self.types.entry(i.name.to_string()).or_insert(i);
        self.types.entry(o.name.to_string()).or_insert(o);
        self.wasm.factories.insert(
            shape(OpKind::Filter, i.name, o.name),
            filter_factory::<T, In>(),
        );
        self.rematerialize();
    }

    /// `map` by the WebAssembly function `export` of `module`: the set of its images of
    /// `input`'s elements. The declaration names the module by its hash; replicas whose
    /// code lacks the function run it from the module, shipped with the graph.
    pub fn map_wasm<T, U, In>(
        &mut self,
        id: &str,
        input: &Var<In>,
        module: &Arc<PureModule>,
        export: &str,
    ) -> Result<Var<DSet<U>>, Error>
    where
        T: Element,
        U: Element,
        In: CausalSet<T>,
    {
        let name = self.hold_module(module, export)?;
        let failures = self.wasm.failures.clone();
        let ctor = map_factory::<T, U, In>()(module.clone(), export.to_string(), failures);
        self.accept_shape(
            OpKind::Map,
            std::any::type_name::<In>(),
            TypeOps::of::<DSet<U>>().name,
            map_factory::<T, U, In>(),
        );
        self.derive(id, OpKind::Map, &[input.id()], Some(&name), ctor)
    }

    /// `filter` by the WebAssembly predicate `export` of `module` (see [`Program::map_wasm`]).
    pub fn filter_wasm<T, In>(
        &mut self,
        id: &str,
        input: &Var<In>,
        module: &Arc<PureModule>,
        export: &str,
    ) -> Result<Var<DSet<T>>, Error>
    where
        T: Element,
        In: CausalSet<T>,
    {
        let name = self.hold_module(module, export)?;
        let failures = self.wasm.failures.clone();
        let ctor = filter_factory::<T, In>()(module.clone(), export.to_string(), failures);
        self.accept_shape(
            OpKind::Filter,
            std::any::type_name::<In>(),
            TypeOps::of::<DSet<T>>().name,
            filter_factory::<T, In>(),
        );
        self.derive(id, OpKind::Filter, &[input.id()], Some(&name), ctor)
    }

    /// Accepts a shape: `input` and `output` are type names as [`TypeOps`] gives them
    /// (`std::any::type_name`).
    fn accept_shape(&mut self, kind: OpKind, input: &str, output: &str, f: Factory) {
        self.wasm
            .factories
            .entry(shape(kind, input, output))
            .or_insert(f);
    }

    /// Keeps `module` and names its function `export`.
    fn hold_module(&mut self, module: &Arc<PureModule>, export: &str) -> Result<String, Error> {
        if !module.has_function(export) {
            return Err(Error::Wasm(format!(
                "module {} exports no function {export} of type (i32, i32) -> i64",
                module.hash_hex()
            )));
        }
        let hash = module.hash_hex();
        if !self.wasm.modules.contains_key(&hash) {
            if self.wasm.modules.len() >= MAX_MODULES {
                return Err(Error::Wasm(format!("already {MAX_MODULES} modules held")));
            }
            self.wasm.modules.insert(hash.clone(), module.clone());
        }
        Ok(format!("wasm:{hash}:{export}"))
    }

    /// Adds a function module received from another replica under the name `hash` its
    /// graph gave it: refused if the bytes hash to anything else, do not validate, or would
    /// exceed the 64 modules a replica may hold. Operators waiting for it are instantiated.
    /// Whether it was new.
    pub fn add_module(&mut self, hash: &str, bytes: &[u8]) -> Result<bool, Error> {
        if self.wasm.modules.contains_key(hash) {
            return Ok(false);
        }
        let actual = sha256_hex(bytes);
        if actual != hash {
            return Err(Error::Wasm(format!(
                "module bytes hash to {actual}, not the {hash} the graph names"
            )));
        }
        if self.wasm.modules.len() >= MAX_MODULES {
            return Err(Error::Wasm(format!("already {MAX_MODULES} modules held")));
        }
        let module = PureModule::new(bytes, Limits::default())
            .map_err(|e| Error::Wasm(format!("module {hash}: {e}")))?;
        if module.hash_hex() != hash {
            // WebAssembly text that parses to a binary of another hash.
            return Err(Error::Wasm(format!("module {hash}: not a binary module")));
        }
        self.wasm.modules.insert(hash.to_string(), module);
        self.rematerialize();
        Ok(true)
    }

    /// Hashes of the function modules held.
    pub fn modules(&self) -> Vec<String> {
        self.wasm.modules.keys().cloned().collect()
    }

    /// The binary of a held module.
    pub fn module_bytes(&self, hash: &str) -> Option<Arc<[u8]>> {
        self.wasm.modules.get(hash).map(|m| m.bytes())
    }

    /// Hashes of the modules the graph's declarations name (held or not).
    pub fn named_modules(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .decls
            .values()
            .filter_map(|d| d.op.as_ref()?.func.as_deref())
            .filter_map(|f| parse(f).map(|(h, _)| h.to_string()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Elements a WebAssembly function could not take (left out of its output).
    pub fn wasm_failures(&self) -> u64 {
        self.wasm.failures.load(Ordering::Relaxed)
    }

    /// Instantiates what newly held modules or accepted shapes enable.
    fn rematerialize(&mut self) {
        let decls: Vec<super::Decl> = self.decls.values().cloned().collect();
        for d in decls {
            self.materialize(&d);
        }
        self.run_ready();
    }
}
