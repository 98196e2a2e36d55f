//! A JSON bridge for the erased engine: variables' external values as JSON, updates and
//! threshold reads from JSON, and declarations by type name. This is what a node's HTTP API
//! (and Lasp's shell: declare, update, query, read) speaks.
//!
//! The engine holds variables as `Box<dyn AnyLattice>` (see [`crate::erased`]); a
//! [`JsonTypes`] registry maps a variable's Rust type (as the program records it) to a short
//! name (`"orset"`, `"gcounter"`, ...) and to the typed functions that cross to and from JSON.
//! A program's own element types are registered with [`JsonTypes::register`] (any
//! [`rasp_lattice::set::Element`] is JSON-encodable through serde).
//!
//! # Updates
//!
//! An update is a JSON object with one operation key (a bare string for operations without an
//! argument):
//!
//! | type | operations |
//! |---|---|
//! | `gcounter` | `{"inc": n}` |
//! | `pncounter` | `{"inc": n}`, `{"dec": n}` |
//! | `maxint` | `{"raise": n}` (alias `{"set": n}`) |
//! | `gset` | `{"add": x}` |
//! | `orset` | `{"add": x}`, `{"remove": x}`, `{"add_all": [x, ...]}`, `{"remove_all": [x, ...]}`, `"clear"` |
//! | `twopset` | `{"add": x}`, `{"remove": x}` |
//! | `lexcounter` | `{"inc": n}`, `{"dec": n}` |
//! | `boolean` | `"enable"` (alias `"set"`, `true`): `false` → `true`, for good |
//! | `mvmap` | `{"put": k, "value": v}`, `{"remove": k}` |
//! | `bcounter` | `{"grant": n}`, `{"use": n}` (alias `consume`), `{"transfer": n, "to": actor}`, `{"withdraw": n}`, `"withdraw_all"` (refused when the replica holds too few rights) |
//! | `lwwregister` | `{"set": x}` or `{"set": x, "timestamp": t}` (without one: one past the stamp held here) |
//! | `mvregister` | `{"set": x}` |
//! | `ewflag`, `dwflag` | `"enable"`, `"disable"` (or `{"enable": true}`) |
//!
//! Values read as their query, except the bounded counter, which reads as
//! `{"used": u, "granted": g, "withdrawn": w, "remaining": r, "rights": {"<actor>": n, ...}}`
//! (the rights of every actor the state names, as this replica knows them).
//! | `ivar` | `{"assign": x}` (alias `{"set": x}`) |
//!
//! The operation runs on behalf of the program's actor ([`Program::actor`]) and goes through
//! the engine like any update: its delta is joined, propagated downstream and (on a replica)
//! shipped at the next sync. Derived variables cannot be updated.
//!
//! # Thresholds
//!
//! Lasp's threshold reads (see [`rasp_lattice::Threshold`]) from JSON:
//!
//! | JSON | holds when |
//! |---|---|
//! | a number `n` or `{"value": n}` | the counter's value is ≥ `n` |
//! | a number `n` or `{"cardinality": n}` | the set's size is ≥ `n` |
//! | `{"strict": {"value": n}}` / `{"strict": {"cardinality": n}}` | the value / size is > `n` (Lasp's `{strict, {value, N}}`) |
//! | `{"contains": x}` or `{"contains": [x, ...]}`, or a bare element | the set holds every element (a map: every key) |
//! | `true` / `false` | the flag (or boolean) is enabled / disabled |
//! | `{"equals": x}`, or a bare value for registers | the register's value is `x` |
//! | `"not_bottom"` | the state is not bottom |

use std::collections::BTreeMap;

use rasp_lattice::set::Element;
use rasp_lattice::{
    Actor, BCounter, Boolean, DWFlag, EWFlag, GCounter, GSet, IVar, LWWRegister, Lattice,
    LexCounter, MVMap, MVRegister, MaxInt, ORSet, PNCounter, Query, TwoPSet,
};
use serde::Serialize;
use serde_json::Value;

use crate::causal::DSet;
use crate::erased::{downcast, AnyLattice, TypeOps};
use crate::Program;

/// What can go wrong crossing from JSON to the engine. Nothing changes when one is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// No variable of that id is declared.
    #[error("unknown variable `{0}`")]
    UnknownVar(String),
    /// No registered type of that name.
    #[error("unknown type `{name}` (known: {known})")]
    UnknownType {
        /// The name asked for.
        name: String,
        /// The names known, comma-separated.
        known: String,
    },
    /// The variable's type has no JSON bridge (register it with [`JsonTypes::register`]).
    #[error("variable `{id}` has type {rust_type}, which has no JSON operations")]
    NoJson {
        /// The variable.
        id: String,
        /// Its Rust type.
        rust_type: String,
    },
    /// The operation is not one of the type's, or its argument does not fit.
    #[error("bad operation for {type_name}: {message} (operations: {ops})")]
    BadOp {
        /// The type's name.
        type_name: String,
        /// Its operations.
        ops: String,
        /// What is wrong.
        message: String,
    },
    /// The threshold does not fit the type.
    #[error("bad threshold for {type_name}: {message}")]
    BadThreshold {
        /// The type's name.
        type_name: String,
        /// What is wrong.
        message: String,
    },
    /// The engine refused (a derived variable, a conflicting declaration, ...).
    #[error(transparent)]
    Dataflow(#[from] crate::Error),
}

/// A lattice type that can be updated from JSON operations.
pub trait JsonUpdate: Lattice + Query {
    /// The operation names, for messages and documentation.
    const OPS: &'static [&'static str];
    /// The delta of the JSON operation `op` against `self`, on behalf of `actor`.
    fn delta_json(&self, op: &Value, actor: Actor) -> Result<Self, String>;
    /// Whether the type-specific threshold `t` holds (`None`: not a threshold of this type;
    /// the generic ones of the module docs apply).
    fn holds_json(&self, t: &Value) -> Option<Result<bool, String>> {
        let _ = t;
        None
    }
    /// The value as JSON when it is not the query's serde form (`None`, the default: the
    /// query, serialised).
    fn json_view(&self) -> Option<Value> {
        None
    }
}

/// The delta of a JSON operation against an erased state, on behalf of an actor.
pub type DeltaFn = fn(&dyn AnyLattice, &Value, Actor) -> Result<Box<dyn AnyLattice>, String>;
/// Declares a variable of a type on a program.
pub type DeclareFn = fn(&mut Program, &str) -> Result<(), crate::Error>;
type OpParts<'a> = (
    &'a str,
    &'a Value,
    Option<&'a serde_json::Map<String, Value>>,
);

/// One registered type: its names and its typed functions, as plain function pointers.
#[derive(Clone, Copy)]
pub struct JsonType {
    /// The short name (`"orset"`, `"gcounter"`, ...).
    pub name: &'static str,
    /// The Rust type name, as the program records it ([`crate::Decl::type_name`]).
    pub rust_type: &'static str,
    /// The external value ([`Query::query`]) as JSON.
    pub to_json: fn(&dyn AnyLattice) -> Value,
    /// The operation names (empty: read-only, e.g. derived sets).
    pub ops: &'static [&'static str],
    /// The delta of a JSON operation against the state (`None` for read-only types).
    pub delta: Option<DeltaFn>,
    /// Whether a JSON threshold holds on the state.
    pub holds: fn(&dyn AnyLattice, &Value) -> Result<bool, String>,
    /// Declares a variable of this type (`None` for read-only types).
    pub declare: Option<DeclareFn>,
    /// The engine's operations of the type, for [`JsonTypes::teach`].
    pub type_ops: TypeOps,
}

impl std::fmt::Debug for JsonType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonType")
            .field("name", &self.name)
            .field("rust_type", &self.rust_type)
            .field("ops", &self.ops)
            .finish()
    }
}

/// The registry of JSON-bridged types. [`JsonTypes::standard`] knows rasp's lattices over
/// strings and integers; a program adds its own element types with [`JsonTypes::register`].
#[derive(Clone, Debug, Default)]
pub struct JsonTypes {
    by_rust: BTreeMap<&'static str, JsonType>,
    by_name: BTreeMap<&'static str, &'static str>,
}

/// The generic thresholds of the module docs.
fn holds_generic<L: Lattice + Query>(s: &L, t: &Value) -> Result<bool, String>
where
    L::Value: Serialize,
{
    let num = |v: &Value| {
        v.as_i64()
            .ok_or_else(|| format!("expected an integer, got {v}"))
    };
    let value = |n: i64| {
        s.threshold_value()
            .map(|v| v >= n)
            .ok_or_else(|| "not a counter: no value threshold".to_string())
    };
    let card = |n: i64| {
        s.threshold_cardinality()
            .map(|c| c as i64 >= n)
            .ok_or_else(|| "not a set or map: no cardinality threshold".to_string())
    };
    match t {
        Value::String(x) if x == "not_bottom" => Ok(!s.is_bottom()),
        Value::Number(_) => {
            let n = num(t)?;
            value(n).or_else(|_| card(n)).map_err(|_| {
                "a number threshold needs a counter (value) or a set (cardinality)".to_string()
            })
        }
        Value::Object(o) if o.len() == 1 => match o.iter().next().expect("one key") {
            (k, v) if k == "value" => value(num(v)?),
            (k, v) if k == "cardinality" => card(num(v)?),
            (k, v) if k == "equals" => Ok(serde_json::to_value(s.query())
                .map(|q| q == *v)
                .unwrap_or(false)),
            (k, Value::Object(inner)) if k == "strict" && inner.len() == 1 => {
                match inner.iter().next().expect("one key") {
                    (m, v) if m == "value" => {
                        let n = num(v)?;
                        s.threshold_value()
                            .map(|x| x > n)
                            .ok_or_else(|| "not a counter: no value threshold".to_string())
                    }
                    (m, v) if m == "cardinality" => {
                        let n = num(v)?;
                        s.threshold_cardinality()
                            .map(|c| c as i64 > n)
                            .ok_or_else(|| "not a set or map: no cardinality threshold".to_string())
                    }
                    (m, _) => Err(format!("unknown strict threshold `{m}`")),
                }
            }
            (k, _) => Err(format!("unknown threshold `{k}`")),
        },
        other => Err(format!("unsupported threshold {other}")),
    }
}

impl JsonTypes {
    /// An empty registry.
    pub fn new() -> Self {
        JsonTypes::default()
    }

    /// rasp's lattices over strings (the short names) and over `i64` (`<i64>` suffix):
    /// `gcounter`, `pncounter`, `maxint`, `orset`, `gset`, `twopset`, `lwwregister`,
    /// `mvregister`, `ewflag`, `dwflag`, `ivar`, `boolean`, `lexcounter`, `bcounter`, `mvmap`
    /// (string keys and values), and the derived sets `dset` (read-only).
    pub fn standard() -> Self {
        let mut t = JsonTypes::new();
        t.register::<Boolean>("boolean");
        t.register::<LexCounter>("lexcounter");
        t.register::<BCounter>("bcounter");
        t.register::<MVMap<String, String>>("mvmap");
        t.register::<GCounter>("gcounter");
        t.register::<PNCounter>("pncounter");
        t.register::<MaxInt>("maxint");
        t.register::<EWFlag>("ewflag");
        t.register::<DWFlag>("dwflag");
        t.register::<ORSet<String>>("orset");
        t.register::<GSet<String>>("gset");
        t.register::<TwoPSet<String>>("twopset");
        t.register::<LWWRegister<String>>("lwwregister");
        t.register::<MVRegister<String>>("mvregister");
        t.register::<IVar<String>>("ivar");
        t.register::<ORSet<i64>>("orset<i64>");
        t.register::<GSet<i64>>("gset<i64>");
        t.register::<TwoPSet<i64>>("twopset<i64>");
        t.register::<LWWRegister<i64>>("lwwregister<i64>");
        t.register::<MVRegister<i64>>("mvregister<i64>");
        t.register::<IVar<i64>>("ivar<i64>");
        t.register_read_only::<DSet<String>>("dset");
        t.register_read_only::<DSet<i64>>("dset<i64>");
        t
    }

    /// Registers `L` under `name`, with its JSON operations; a later registration of the same
    /// name or type replaces the earlier one.
    pub fn register<L>(&mut self, name: &'static str) -> &mut Self
    where
        L: JsonUpdate,
        L::Value: Serialize + std::fmt::Debug,
    {
        self.insert(JsonType {
            name,
            rust_type: std::any::type_name::<L>(),
            to_json: |s| match downcast::<L>(s).and_then(JsonUpdate::json_view) {
                Some(v) => v,
                None => to_json::<L>(s),
            },
            ops: L::OPS,
            delta: Some(|s, op, actor| {
                let s = downcast::<L>(s).ok_or("state of another type")?;
                s.delta_json(op, actor)
                    .map(|d| Box::new(d) as Box<dyn AnyLattice>)
            }),
            holds: |s, t| {
                let s = downcast::<L>(s).ok_or("state of another type")?;
                match s.holds_json(t) {
                    Some(r) => r,
                    None => holds_generic(s, t),
                }
            },
            declare: Some(|p, id| p.declare::<L>(id).map(|_| ())),
            type_ops: TypeOps::of::<L>(),
        });
        self
    }

    /// Registers `L` under `name` for reading only (values and generic thresholds): derived
    /// variables' types, or types without JSON operations.
    pub fn register_read_only<L>(&mut self, name: &'static str) -> &mut Self
    where
        L: Lattice + Query,
        L::Value: Serialize + std::fmt::Debug,
    {
        self.insert(JsonType {
            name,
            rust_type: std::any::type_name::<L>(),
            to_json: to_json::<L>,
            ops: &[],
            delta: None,
            holds: |s, t| {
                let s = downcast::<L>(s).ok_or("state of another type")?;
                holds_generic(s, t)
            },
            declare: None,
            type_ops: TypeOps::of::<L>(),
        });
        self
    }

    fn insert(&mut self, t: JsonType) {
        if let Some(old) = self.by_rust.insert(t.rust_type, t) {
            self.by_name.remove(old.name);
        }
        if let Some(old_rust) = self.by_name.insert(t.name, t.rust_type) {
            if old_rust != t.rust_type {
                self.by_rust.remove(old_rust);
            }
        }
    }

    /// Makes every registered type known to `p` ([`Program::know_type`]), so declarations
    /// of these types made on other nodes at run time are held here too.
    pub fn teach(&self, p: &mut Program) {
        for t in self.by_rust.values() {
            p.know_type(t.type_ops);
        }
    }

    /// The type registered for a Rust type name.
    pub fn by_rust_type(&self, rust_type: &str) -> Option<&JsonType> {
        self.by_rust.get(rust_type)
    }

    /// The type registered under a short name.
    pub fn by_name(&self, name: &str) -> Option<&JsonType> {
        self.by_name.get(name).and_then(|r| self.by_rust.get(r))
    }

    /// The short names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.by_name.keys().copied().collect()
    }

    /// The short name of a Rust type name, or the Rust name itself if unregistered.
    pub fn display_name<'a>(&self, rust_type: &'a str) -> &'a str {
        match self.by_rust.get(rust_type) {
            Some(t) => t.name,
            None => rust_type,
        }
    }

    /// Declares variable `id` of the type named `name` on `p`. Declaring an existing
    /// variable again with the same type is accepted (returns `false`); with another type it
    /// is an error.
    pub fn declare(&self, p: &mut Program, id: &str, name: &str) -> Result<bool, JsonError> {
        let t = self
            .by_name(name)
            .filter(|t| t.declare.is_some())
            .ok_or_else(|| JsonError::UnknownType {
                name: name.to_string(),
                known: self
                    .by_name
                    .iter()
                    .filter(|(_, r)| self.by_rust[*r].declare.is_some())
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let existed = p.state_dyn(id).is_ok() || p.graph().iter().any(|d| d.id == id);
        (t.declare.expect("filtered"))(p, id)?;
        Ok(!existed)
    }

    /// The external value of `id` as JSON (`None`: its type is not registered).
    pub fn value(&self, p: &Program, id: &str) -> Result<Option<Value>, JsonError> {
        let (state, rust) = self.state(p, id)?;
        Ok(self.by_rust.get(rust).map(|t| (t.to_json)(state)))
    }

    /// Applies the JSON update `op` to `id` on behalf of the program's actor; whether the
    /// state changed. On an error nothing changed.
    pub fn update(&self, p: &mut Program, id: &str, op: &Value) -> Result<bool, JsonError> {
        if p.is_derived(id).map_err(|e| match e {
            crate::Error::UnknownVar(v) => JsonError::UnknownVar(v),
            e => e.into(),
        })? {
            return Err(crate::Error::Derived(id.to_string()).into());
        }
        let (state, rust) = self.state(p, id)?;
        let t = self.typed(id, rust)?;
        let delta = t.delta.ok_or_else(|| JsonError::BadOp {
            type_name: t.name.to_string(),
            ops: "none: read-only".into(),
            message: "this type cannot be updated".into(),
        })?;
        let d = delta(state, op, p.actor()).map_err(|message| JsonError::BadOp {
            type_name: t.name.to_string(),
            ops: t.ops.join(", "),
            message,
        })?;
        Ok(p.apply_dyn(id, &*d)?)
    }

    /// Whether the JSON threshold `t` holds on `id` now.
    pub fn holds(&self, p: &Program, id: &str, t: &Value) -> Result<bool, JsonError> {
        let (state, rust) = self.state(p, id)?;
        let ty = self.typed(id, rust)?;
        (ty.holds)(state, t).map_err(|message| JsonError::BadThreshold {
            type_name: ty.name.to_string(),
            message,
        })
    }

    fn typed(&self, id: &str, rust: &str) -> Result<&JsonType, JsonError> {
        self.by_rust.get(rust).ok_or_else(|| JsonError::NoJson {
            id: id.to_string(),
            rust_type: rust.to_string(),
        })
    }

    fn state<'p>(
        &self,
        p: &'p Program,
        id: &str,
    ) -> Result<(&'p dyn AnyLattice, &'static str), JsonError> {
        match p.state_dyn(id) {
            Ok(s) => Ok((s, s.type_name())),
            Err(crate::Error::UnknownVar(_)) => Err(JsonError::UnknownVar(id.to_string())),
            Err(e) => Err(e.into()),
        }
    }
}

fn to_json<L: Lattice + Query>(s: &dyn AnyLattice) -> Value
where
    L::Value: Serialize,
{
    downcast::<L>(s)
        .and_then(|s| serde_json::to_value(s.query()).ok())
        .unwrap_or(Value::Null)
}

/// Splits `op` into its operation name and argument: `"enable"` → (`enable`, null),
/// `{"add": x}` → (`add`, x); other keys of the object are returned as `rest`.
fn op_parts(op: &Value) -> Result<OpParts<'_>, String> {
    match op {
        Value::String(s) => Ok((s.as_str(), &Value::Null, None)),
        Value::Object(o) if !o.is_empty() => {
            // The operation is the first key that is not a modifier.
            let (k, v) = o
                .iter()
                .find(|(k, _)| !MODIFIERS.contains(&k.as_str()))
                .ok_or("no operation key")?;
            Ok((k.as_str(), v, Some(o)))
        }
        other => Err(format!(
            "an update is an object with one operation key, e.g. {{\"add\": x}}; got {other}"
        )),
    }
}

/// Keys of an update object that qualify the operation rather than name it.
const MODIFIERS: &[&str] = &["timestamp", "to", "value"];

fn arg<T: serde::de::DeserializeOwned>(op: &str, v: &Value) -> Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("argument of `{op}`: {e}"))
}

fn only_one(o: Option<&serde_json::Map<String, Value>>, allowed: usize) -> Result<(), String> {
    match o {
        Some(o) if o.len() > allowed => Err(format!(
            "unexpected keys {:?}",
            o.keys().collect::<Vec<_>>()
        )),
        _ => Ok(()),
    }
}

fn unknown(op: &str) -> String {
    format!("unknown operation `{op}`")
}

fn set_contains<T: Element>(has: impl Fn(&T) -> bool, t: &Value) -> Option<Result<bool, String>> {
    let elems = match t {
        Value::Object(o) if o.len() == 1 && o.contains_key("contains") => &o["contains"],
        Value::Number(_) => return None,
        Value::String(s) if s == "not_bottom" => return None,
        Value::Object(_) => return None,
        other => other,
    };
    let list: Vec<T> = match elems {
        Value::Array(a) => match a.iter().map(|x| arg::<T>("contains", x)).collect() {
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        },
        x => match arg::<T>("contains", x) {
            Ok(v) => vec![v],
            Err(e) => return Some(Err(e)),
        },
    };
    Some(Ok(list.iter().all(has)))
}

impl JsonUpdate for GCounter {
    const OPS: &'static [&'static str] = &["inc"];
    fn delta_json(&self, op: &Value, actor: Actor) -> Result<Self, String> {
        match op_parts(op)? {
            ("inc", v, o) => {
                only_one(o, 1)?;
                Ok(self.inc_delta(actor, arg("inc", v)?))
            }
            (k, _, _) => Err(unknown(k)),
        }
    }
}

/// The counters that go up and down (`{"inc": n}`, `{"dec": n}`), one implementation.
macro_rules! inc_dec_json {
    ($($t:ty),*) => {$(
        impl JsonUpdate for $t {
            const OPS: &'static [&'static str] = &["inc", "dec"];
            fn delta_json(&self, op: &Value, actor: Actor) -> Result<Self, String> {
                match op_parts(op)? {
                    ("inc", v, o) => {
                        only_one(o, 1)?;
                        Ok(self.inc_delta(actor, arg("inc", v)?))
                    }
                    ("dec", v, o) => {
                        only_one(o, 1)?;
                        Ok(self.dec_delta(actor, arg("dec", v)?))
                    }
                    (k, _, _) => Err(unknown(k)),
                }
            }
        }
    )*};
}

inc_dec_json!(PNCounter, LexCounter);

impl JsonUpdate for MaxInt {
    const OPS: &'static [&'static str] = &["raise", "set"];
    fn delta_json(&self, op: &Value, _: Actor) -> Result<Self, String> {
        match op_parts(op)? {
            (k @ ("raise" | "set"), v, o) => {
                only_one(o, 1)?;
                Ok(self.set_delta(arg(k, v)?))
            }
            (k, _, _) => Err(unknown(k)),
        }
    }
}

impl JsonUpdate for EWFlag {
    const OPS: &'static [&'static str] = &["enable", "disable"];
    fn delta_json(&self, op: &Value, actor: Actor) -> Result<Self, String> {
        match op_parts(op)? {
            ("enable", _, o) => only_one(o, 1).map(|_| self.enable_delta(actor)),
            ("disable", _, o) => only_one(o, 1).map(|_| self.disable_delta(actor)),
            (k, _, _) => Err(unknown(k)),
        }
    }
    fn holds_json(&self, t: &Value) -> Option<Result<bool, String>> {
        t.as_bool().map(|b| Ok(self.is_enabled() == b))
    }
}

impl JsonUpdate for DWFlag {
    const OPS: &'static [&'static str] = &["enable", "disable"];
    fn delta_json(&self, op: &Value, actor: Actor) -> Result<Self, String> {
        match op_parts(op)? {
            ("enable", _, o) => only_one(o, 1).map(|_| self.enable_delta(actor)),
            ("disable", _, o) => only_one(o, 1).map(|_| self.disable_delta(actor)),
            (k, _, _) => Err(unknown(k)),
        }
    }
    fn holds_json(&self, t: &Value) -> Option<Result<bool, String>> {
        t.as_bool().map(|b| Ok(self.is_enabled() == b))
    }
}

impl<T: Element> JsonUpdate for ORSet<T> {
    const OPS: &'static [&'static str] = &["add", "remove", "add_all", "remove_all", "clear"];
    fn delta_json(&self, op: &Value, actor: Actor) -> Result<Self, String> {
        match op_parts(op)? {
            ("add_all", v, o) => {
                only_one(o, 1)?;
                Ok(self.add_all_delta(actor, arg::<Vec<T>>("add_all", v)?))
            }
            ("remove_all", v, o) => {
                only_one(o, 1)?;
                Ok(self.remove_all_delta(&arg::<Vec<T>>("remove_all", v)?))
            }
            ("clear", _, o) => only_one(o, 1).map(|_| self.clear_delta()),
            ("add", v, o) => {
                only_one(o, 1)?;
                Ok(self.add_delta(actor, arg("add", v)?))
            }
            ("remove", v, o) => {
                only_one(o, 1)?;
                Ok(self.remove_delta(&arg("remove", v)?))
            }
            (k, _, _) => Err(unknown(k)),
        }
    }
    fn holds_json(&self, t: &Value) -> Option<Result<bool, String>> {
        set_contains::<T>(|x| self.contains(x), t)
    }
}

impl<T: Element> JsonUpdate for GSet<T> {
    const OPS: &'static [&'static str] = &["add"];
    fn delta_json(&self, op: &Value, _: Actor) -> Result<Self, String> {
        match op_parts(op)? {
            ("add", v, o) => {
                only_one(o, 1)?;
                Ok(self.add_delta(arg("add", v)?))
            }
            (k, _, _) => Err(unknown(k)),
        }
    }
    fn holds_json(&self, t: &Value) -> Option<Result<bool, String>> {
        set_contains::<T>(|x| self.contains(x), t)
    }
}

impl<T: Element> JsonUpdate for TwoPSet<T> {
    const OPS: &'static [&'static str] = &["add", "remove"];
    fn delta_json(&self, op: &Value, _: Actor) -> Result<Self, String> {
        match op_parts(op)? {
            ("add", v, o) => {
                only_one(o, 1)?;
                Ok(self.add_delta(arg("add", v)?))
            }
            ("remove", v, o) => {
                only_one(o, 1)?;
                Ok(self.remove_delta(&arg("remove", v)?))
            }
            (k, _, _) => Err(unknown(k)),
        }
    }
    fn holds_json(&self, t: &Value) -> Option<Result<bool, String>> {
        let q = self.query();
        set_contains::<T>(|x| q.contains(x), t)
    }
}

fn register_equals<T: Element>(current: Option<T>, t: &Value) -> Option<Result<bool, String>> {
    match t {
        Value::Object(o) if o.len() == 1 && o.contains_key("equals") => None,
        Value::Object(_) | Value::Number(_) => None,
        Value::String(s) if s == "not_bottom" => None,
        x => Some(arg::<T>("equals", x).map(|v| current.as_ref() == Some(&v))),
    }
}

impl<T: Element> JsonUpdate for LWWRegister<T> {
    const OPS: &'static [&'static str] = &["set"];
    fn delta_json(&self, op: &Value, actor: Actor) -> Result<Self, String> {
        match op_parts(op)? {
            ("set", v, o) => {
                let ts = match o.and_then(|o| o.get("timestamp")) {
                    Some(t) => {
                        only_one(o, 2)?;
                        arg("timestamp", t)?
                    }
                    None => {
                        only_one(o, 1)?;
                        // Without a timestamp: one past what this replica holds, so the write
                        // wins here (Lamport's rule; deterministic, no clock).
                        self.stamp().map_or(1, |(t, _)| t.saturating_add(1))
                    }
                };
                Ok(self.set_delta(actor, ts, arg("set", v)?))
            }
            (k, _, _) => Err(unknown(k)),
        }
    }
    fn holds_json(&self, t: &Value) -> Option<Result<bool, String>> {
        register_equals(self.get().cloned(), t)
    }
}

impl<T: Element> JsonUpdate for MVRegister<T> {
    const OPS: &'static [&'static str] = &["set"];
    fn delta_json(&self, op: &Value, actor: Actor) -> Result<Self, String> {
        match op_parts(op)? {
            ("set", v, o) => {
                only_one(o, 1)?;
                Ok(self.write_delta(actor, arg("set", v)?))
            }
            (k, _, _) => Err(unknown(k)),
        }
    }
}

impl<T: Element> JsonUpdate for IVar<T> {
    const OPS: &'static [&'static str] = &["assign", "set"];
    fn delta_json(&self, op: &Value, _: Actor) -> Result<Self, String> {
        match op_parts(op)? {
            (k @ ("assign" | "set"), v, o) => {
                only_one(o, 1)?;
                self.assign_delta(arg(k, v)?).map_err(|e| e.to_string())
            }
            (k, _, _) => Err(unknown(k)),
        }
    }
    fn holds_json(&self, t: &Value) -> Option<Result<bool, String>> {
        register_equals(self.query(), t)
    }
}

impl JsonUpdate for Boolean {
    const OPS: &'static [&'static str] = &["enable", "set", "true"];
    fn delta_json(&self, op: &Value, actor: Actor) -> Result<Self, String> {
        if op == &Value::Bool(true) {
            return Ok(self.enable_delta(actor));
        }
        match op_parts(op)? {
            ("enable" | "set" | "true", _, o) => only_one(o, 1).map(|_| self.enable_delta(actor)),
            (k, _, _) => Err(unknown(k)),
        }
    }
    fn holds_json(&self, t: &Value) -> Option<Result<bool, String>> {
        t.as_bool().map(|b| Ok(self.get() == b))
    }
}

impl<K: Element, V: Element> JsonUpdate for MVMap<K, V> {
    const OPS: &'static [&'static str] = &["put", "remove"];
    fn delta_json(&self, op: &Value, actor: Actor) -> Result<Self, String> {
        match op_parts(op)? {
            ("put", k, o) => {
                let v = o
                    .and_then(|o| o.get("value"))
                    .ok_or("`put` needs a \"value\" key: {\"put\": k, \"value\": v}")?;
                only_one(o, 2)?;
                Ok(self.write_delta(actor, arg("put", k)?, arg("value", v)?))
            }
            ("remove", k, o) => {
                only_one(o, 1)?;
                Ok(self.remove_delta(&arg("remove", k)?))
            }
            (k, _, _) => Err(unknown(k)),
        }
    }
    fn holds_json(&self, t: &Value) -> Option<Result<bool, String>> {
        set_contains::<K>(|k| self.contains_key(k), t)
    }
}

impl JsonUpdate for BCounter {
    const OPS: &'static [&'static str] = &[
        "grant",
        "use",
        "consume",
        "transfer",
        "withdraw",
        "withdraw_all",
    ];
    fn delta_json(&self, op: &Value, actor: Actor) -> Result<Self, String> {
        let refused = |e: rasp_lattice::Error| e.to_string();
        match op_parts(op)? {
            ("grant", v, o) => {
                only_one(o, 1)?;
                Ok(self.grant_delta(actor, arg("grant", v)?))
            }
            (k @ ("use" | "consume"), v, o) => {
                only_one(o, 1)?;
                self.consume_delta(actor, arg(k, v)?).map_err(refused)
            }
            ("transfer", v, o) => {
                let to = o
                    .and_then(|o| o.get("to"))
                    .ok_or("`transfer` needs a \"to\" key: {\"transfer\": n, \"to\": actor}")?;
                only_one(o, 2)?;
                self.transfer_delta(actor, arg("to", to)?, arg("transfer", v)?)
                    .map_err(refused)
            }
            ("withdraw", v, o) => {
                only_one(o, 1)?;
                self.withdraw_delta(actor, arg("withdraw", v)?)
                    .map_err(refused)
            }
            ("withdraw_all", _, o) => {
                only_one(o, 1)?;
                self.withdraw_delta(actor, self.rights(actor))
                    .map_err(refused)
            }
            (k, _, _) => Err(unknown(k)),
        }
    }
    fn json_view(&self) -> Option<Value> {
        let (p, n, w, t) = self.parts();
        let mut actors: std::collections::BTreeSet<Actor> = p.counts().keys().copied().collect();
        actors.extend(n.counts().keys());
        actors.extend(w.counts().keys());
        actors.extend(t.keys().flat_map(|(a, b)| [*a, *b]));
        let rights: serde_json::Map<String, Value> = actors
            .into_iter()
            .map(|a| (a.to_string(), Value::from(self.rights(a))))
            .collect();
        Some(serde_json::json!({
            "used": self.used(),
            "granted": self.granted(),
            "withdrawn": self.withdrawn(),
            "remaining": self.remaining(),
            "rights": rights,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Func;
    use serde_json::json;

    fn program() -> (Program, JsonTypes) {
        let mut p = Program::new(7);
        let t = JsonTypes::standard();
        for (id, ty) in [
            ("cart", "orset"),
            ("views", "gcounter"),
            ("stock", "pncounter"),
            ("title", "lwwregister"),
            ("open", "ewflag"),
            ("nums", "orset<i64>"),
            ("once", "ivar"),
        ] {
            assert!(t.declare(&mut p, id, ty).unwrap(), "{id} is new");
        }
        let cart = Var::<ORSet<String>>::named("cart");
        p.filter(
            "short",
            &cart,
            Func::new("short", |s: &String| s.len() <= 4),
        )
        .unwrap();
        (p, t)
    }
    use crate::Var;

    #[test]
    fn updates_reach_the_engine_and_values_come_back_as_json() {
        let (mut p, t) = program();
        assert!(t.update(&mut p, "cart", &json!({"add": "milk"})).unwrap());
        assert!(t.update(&mut p, "cart", &json!({"add": "bread"})).unwrap());
        // Adding again adds a fresh dot (add wins over concurrent removes): a change.
        assert!(t.update(&mut p, "cart", &json!({"add": "milk"})).unwrap());
        assert!(t
            .update(&mut p, "cart", &json!({"remove": "bread"}))
            .unwrap());
        assert_eq!(t.value(&p, "cart").unwrap(), Some(json!(["milk"])));
        // The derived variable followed, and reads as JSON through the read-only entry.
        assert_eq!(t.value(&p, "short").unwrap(), Some(json!(["milk"])));
        t.update(&mut p, "views", &json!({"inc": 3})).unwrap();
        assert_eq!(t.value(&p, "views").unwrap(), Some(json!(3)));
        t.update(&mut p, "stock", &json!({"dec": 2})).unwrap();
        assert_eq!(t.value(&p, "stock").unwrap(), Some(json!(-2)));
        t.update(&mut p, "title", &json!({"set": "a"})).unwrap();
        t.update(&mut p, "title", &json!({"set": "b"})).unwrap();
        assert_eq!(t.value(&p, "title").unwrap(), Some(json!("b")));
        t.update(&mut p, "open", &json!("enable")).unwrap();
        assert_eq!(t.value(&p, "open").unwrap(), Some(json!(true)));
        t.update(&mut p, "nums", &json!({"add": 42})).unwrap();
        assert_eq!(t.value(&p, "nums").unwrap(), Some(json!([42])));
        t.update(&mut p, "once", &json!({"assign": "x"})).unwrap();
        assert_eq!(t.value(&p, "once").unwrap(), Some(json!("x")));
        // Same as the typed API.
        let typed = p.query(&Var::<GCounter>::named("views")).unwrap();
        assert_eq!(typed, 3);
    }

    #[test]
    fn bad_operations_are_errors_and_change_nothing() {
        let (mut p, t) = program();
        t.update(&mut p, "cart", &json!({"add": "milk"})).unwrap();
        let before = p.state_dyn("cart").unwrap().encode();
        for op in [
            json!({"inc": 1}),
            json!({"add": 3}),
            json!({"add": "x", "also": 1}),
            json!([1, 2]),
            json!({}),
            json!(null),
        ] {
            let e = t.update(&mut p, "cart", &op).unwrap_err();
            assert!(matches!(e, JsonError::BadOp { .. }), "{op}: {e}");
        }
        assert_eq!(p.state_dyn("cart").unwrap().encode(), before);
        assert!(matches!(
            t.update(&mut p, "views", &json!({"inc": -1})).unwrap_err(),
            JsonError::BadOp { .. }
        ));
        assert!(matches!(
            t.update(&mut p, "nope", &json!({"inc": 1})).unwrap_err(),
            JsonError::UnknownVar(_)
        ));
        assert!(matches!(
            t.update(&mut p, "short", &json!({"add": "x"})).unwrap_err(),
            JsonError::Dataflow(crate::Error::Derived(_))
        ));
        assert!(matches!(
            t.declare(&mut p, "cart", "gcounter").unwrap_err(),
            JsonError::Dataflow(crate::Error::TypeMismatch { .. })
        ));
        assert!(!t.declare(&mut p, "cart", "orset").unwrap());
        assert!(matches!(
            t.declare(&mut p, "x", "ring").unwrap_err(),
            JsonError::UnknownType { .. }
        ));
        t.update(&mut p, "once", &json!({"assign": "a"})).unwrap();
        assert!(t.update(&mut p, "once", &json!({"assign": "b"})).is_err());
        assert_eq!(t.value(&p, "once").unwrap(), Some(json!("a")));
    }

    #[test]
    fn thresholds_from_json() {
        let (mut p, t) = program();
        t.update(&mut p, "cart", &json!({"add": "milk"})).unwrap();
        t.update(&mut p, "views", &json!({"inc": 3})).unwrap();
        let h = |p: &Program, id: &str, v: Value| t.holds(p, id, &v).unwrap();
        assert!(h(&p, "views", json!(3)));
        assert!(!h(&p, "views", json!(4)));
        assert!(h(&p, "views", json!({"value": 2})));
        assert!(h(&p, "cart", json!(1)));
        assert!(!h(&p, "cart", json!({"cardinality": 2})));
        assert!(h(&p, "cart", json!("milk")));
        assert!(!h(&p, "cart", json!({"contains": ["milk", "eggs"]})));
        assert!(h(&p, "cart", json!("not_bottom")));
        assert!(!h(&p, "open", json!(true)));
        assert!(h(&p, "short", json!(1)));
        t.update(&mut p, "title", &json!({"set": "hi"})).unwrap();
        assert!(h(&p, "title", json!("hi")));
        assert!(h(&p, "title", json!({"equals": "hi"})));
        assert!(matches!(
            t.holds(&p, "views", &json!({"contains": 1})).unwrap_err(),
            JsonError::BadThreshold { .. }
        ));
        assert!(t.holds(&p, "open", &json!(5)).is_err());
    }

    #[test]
    fn registry_names() {
        let t = JsonTypes::standard();
        let r = t.by_name("orset").unwrap().rust_type;
        assert_eq!(t.display_name(r), "orset");
        assert_eq!(t.display_name("my::Type"), "my::Type");
        assert!(t.names().contains(&"gcounter"));
        assert!(t.by_name("dset").unwrap().declare.is_none());
    }

    #[test]
    fn new_types_through_json() {
        let mut p = Program::new(7);
        let t = JsonTypes::standard();
        for (id, ty) in [
            ("ok", "boolean"),
            ("lex", "lexcounter"),
            ("seats", "bcounter"),
            ("prefs", "mvmap"),
            ("cart", "orset"),
        ] {
            assert!(t.declare(&mut p, id, ty).unwrap(), "{id} is new");
        }
        let u = |p: &mut Program, id: &str, op: Value| t.update(p, id, &op);
        // boolean
        assert!(!t.holds(&p, "ok", &json!(true)).unwrap());
        assert!(u(&mut p, "ok", json!("enable")).unwrap());
        assert!(!u(&mut p, "ok", json!(true)).unwrap(), "already true");
        assert_eq!(t.value(&p, "ok").unwrap(), Some(json!(true)));
        assert!(u(&mut p, "ok", json!("disable")).is_err(), "no way back");
        // lexcounter
        u(&mut p, "lex", json!({"inc": 5})).unwrap();
        u(&mut p, "lex", json!({"dec": 7})).unwrap();
        assert_eq!(t.value(&p, "lex").unwrap(), Some(json!(-2)));
        // bounded counter: grant, use, transfer, refusal, withdrawal
        u(&mut p, "seats", json!({"grant": 5})).unwrap();
        u(&mut p, "seats", json!({"use": 2})).unwrap();
        u(&mut p, "seats", json!({"transfer": 1, "to": 9})).unwrap();
        let e = u(&mut p, "seats", json!({"consume": 3})).unwrap_err();
        assert!(e.to_string().contains("holds 2 rights"), "{e}");
        assert!(
            u(&mut p, "seats", json!({"transfer": 1})).is_err(),
            "no `to`"
        );
        assert_eq!(
            t.value(&p, "seats").unwrap(),
            Some(
                json!({"used": 2, "granted": 5, "withdrawn": 0, "remaining": 3,
                        "rights": {"7": 2, "9": 1}})
            )
        );
        assert!(t.holds(&p, "seats", &json!(2)).unwrap());
        assert!(!t
            .holds(&p, "seats", &json!({"strict": {"value": 2}}))
            .unwrap());
        u(&mut p, "seats", json!("withdraw_all")).unwrap();
        assert_eq!(
            t.value(&p, "seats").unwrap().unwrap()["remaining"],
            json!(1)
        );
        // multi-value map
        u(&mut p, "prefs", json!({"put": "color", "value": "red"})).unwrap();
        u(&mut p, "prefs", json!({"put": "size", "value": "xl"})).unwrap();
        u(&mut p, "prefs", json!({"remove": "size"})).unwrap();
        assert_eq!(
            t.value(&p, "prefs").unwrap(),
            Some(json!({"color": ["red"]}))
        );
        assert!(t.holds(&p, "prefs", &json!({"contains": "color"})).unwrap());
        assert!(u(&mut p, "prefs", json!({"put": "x"})).is_err(), "no value");
        // OR-set bulk operations and strict cardinality
        u(&mut p, "cart", json!({"add_all": ["a", "b", "c"]})).unwrap();
        u(&mut p, "cart", json!({"remove_all": ["a", "z"]})).unwrap();
        assert_eq!(t.value(&p, "cart").unwrap(), Some(json!(["b", "c"])));
        assert!(t
            .holds(&p, "cart", &json!({"strict": {"cardinality": 1}}))
            .unwrap());
        assert!(!t
            .holds(&p, "cart", &json!({"strict": {"cardinality": 2}}))
            .unwrap());
        assert!(t
            .holds(&p, "cart", &json!({"strict": {"value": 1}}))
            .is_err());
        assert!(t
            .holds(&p, "cart", &json!({"strict": {"size": 1}}))
            .is_err());
        u(&mut p, "cart", json!("clear")).unwrap();
        assert_eq!(t.value(&p, "cart").unwrap(), Some(json!([])));
    }
}
