//! # rasp-wasm: WebAssembly atoms on the rasp runtime
//!
//! The atoms design defines the runtime–atom interface as exported WebAssembly functions,
//! so that any binary that compiles to WebAssembly runs on any runtime embedding an engine.
//! This crate is the host half of that ABI (version [`ABI_VERSION`]; the project's
//! `docs/wasm-abi.md` specifies every export and import): a [`WasmModule`] is a validated
//! module, and a [`WasmAtom`] is one instance of it running as an ordinary
//! [`rasp_runtime::Atom`], so it runs unchanged in the deterministic simulator and on a
//! real node, beside native atoms, and exchanges the same messages with them (MessagePack
//! bytes, [`RawMessage`] inside the runtime).
//!
//! **Engine.** [wasmi](https://docs.rs/wasmi), an interpreter, everywhere: its execution is
//! deterministic (no JIT, no host-dependent floating point), it meters every instruction
//! with fuel, and it can suspend a guest inside a syscall and resume it
//! ([`wasmi::Func::call_resumable`]), which is how syscalls that answer (store reads,
//! discovery) reach the node without the host ever holding the runtime's syscalls across
//! calls. The price is speed; the project's README gives the measured ratio to native.
//!
//! **Containment** ([`Limits`]). Every call into the guest gets a fuel budget; a guest
//! that spends it (an endless loop), grows its memory past its cap, traps, passes an
//! out-of-range pointer or sends more than its output cap in one call is stopped with the
//! reason logged and counted (`wasm_atoms_stopped`), and the node keeps running. A module
//! that imports anything the ABI does not provide, lacks an export, or speaks another ABI
//! version is refused when loaded ([`WasmError`]).
//!
//! **Effects.** Syscalls that only act (send, timers, handlers, logs) are buffered in order
//! and applied when the guest returns or reaches a syscall that answers, so the node sees
//! them in program order. Syscalls that answer are served at once. The guest's clock is the
//! node's at the start of the call; its randomness is its own stream, seeded from the
//! node's random source when it starts (deterministic in the simulator).

mod abi;
pub mod build;
pub mod func;

use abi::{Command, HostData, Query};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rasp_runtime::{
    boot, AtomAddr, AtomId, Boot, Corr, Ctx, Dest, KindId, Origin, Payload, PeerEvent, RawMessage,
    RequestError, ServiceId, Syscalls, TimerFn, TimerId,
};
use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use wasmi::{Engine, Func, Linker, Module, ResumableCall, Store, TypedFunc, Val};

/// The ABI version this host speaks (the guest exports its own as `rasp_abi_version`).
pub const ABI_VERSION: u32 = 1;

/// What one guest instance may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (about one unit per WebAssembly instruction) per call into the guest: a
    /// handler, a timer, an init. 10 million by default, tens of milliseconds of
    /// interpretation; a guest that needs more is stopped.
    pub fuel_per_call: u64,
    /// Linear memory cap in bytes (64 MiB by default); growing past it stops the guest.
    pub memory_bytes: usize,
    /// Largest message body the guest may send or receive (4 MiB by default); a larger
    /// incoming one is dropped and counted (`wasm_dropped_oversized`).
    pub message_bytes: usize,
    /// Bytes the guest may send (bodies) in one call (64 MiB by default).
    pub output_bytes_per_call: usize,
    /// Message kinds the guest may handle (256 by default).
    pub kinds: usize,
    /// Instances the guest may spawn over its life (64 by default).
    pub spawns: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel_per_call: 10_000_000,
            memory_bytes: 64 << 20,
            message_bytes: 4 << 20,
            output_bytes_per_call: 64 << 20,
            kinds: 256,
            spawns: 64,
        }
    }
}

/// Why a module cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The reason.
        source: std::io::Error,
    },
    /// Neither valid WebAssembly nor valid WebAssembly text.
    #[error("not a valid WebAssembly module: {0}")]
    Invalid(String),
    /// An import the ABI does not provide.
    #[error(
        "the module imports {module}.{name}, which this host does not provide (ABI v{ABI_VERSION} \
         provides, in module \"rasp\": {provided})",
        provided = abi::IMPORTS.join(", ")
    )]
    UnknownImport {
        /// The import's module.
        module: String,
        /// The import's name.
        name: String,
    },
    /// A required export is missing or has the wrong type.
    #[error("the module does not export {name} as {expected} (found: {found})")]
    Export {
        /// The export.
        name: &'static str,
        /// What the ABI wants.
        expected: &'static str,
        /// What the module has.
        found: String,
    },
    /// The module speaks another ABI version.
    #[error("the module speaks rasp ABI v{found}; this host speaks v{ABI_VERSION}")]
    Version {
        /// The module's version.
        found: u32,
    },
    /// Instantiation failed (an import of the wrong type, memory above the cap, a start
    /// function that traps).
    #[error("cannot instantiate the module: {0}")]
    Instantiate(String),
}

/// A validated WebAssembly module and the limits its instances run under. Cheap to share
/// (`Arc`); every [`WasmAtom`] of it has its own instance and memory.
pub struct WasmModule {
    engine: Engine,
    module: Module,
    linker: Linker<HostData>,
    limits: Limits,
    hash: u64,
    size: usize,
}

impl std::fmt::Debug for WasmModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmModule")
            .field("hash", &format_args!("{:016x}", self.hash))
            .field("bytes", &self.size)
            .field("limits", &self.limits)
            .finish()
    }
}

/// The exports every module has, with their types as (params, results) in wasm types.
const EXPORTS: &[(&str, &str, &[wasmi::ValType], &[wasmi::ValType])] = {
    use wasmi::ValType::{I32, I64};
    &[
        ("rasp_abi_version", "fn() -> i32", &[], &[I32]),
        ("rasp_alloc", "fn(i32) -> i32", &[I32], &[I32]),
        ("rasp_init", "fn(i32, i32)", &[I32, I32], &[]),
        (
            "rasp_message",
            "fn(i64, i64, i32, i32, i64, i32, i32) -> i32",
            &[I64, I64, I32, I32, I64, I32, I32],
            &[I32],
        ),
        (
            "rasp_future",
            "fn(i64, i32, i32, i32)",
            &[I64, I32, I32, I32],
            &[],
        ),
        ("rasp_peer", "fn(i64, i32)", &[I64, I32], &[]),
    ]
};

impl WasmModule {
    /// Validates a module given as WebAssembly bytes or WebAssembly text (`wat`).
    pub fn new(bytes: &[u8], limits: Limits) -> Result<Arc<Self>, WasmError> {
        let binary = wat::parse_bytes(bytes).map_err(|e| {
            WasmError::Invalid(if bytes.starts_with(b"\0asm") {
                e.to_string()
            } else {
                format!("no \\0asm header, and not WebAssembly text either: {e}")
            })
        })?;
        let mut config = wasmi::Config::default();
        config.consume_fuel(true);
        let engine = Engine::new(&config);
        let module =
            Module::new(&engine, &binary[..]).map_err(|e| WasmError::Invalid(e.to_string()))?;
        for import in module.imports() {
            if import.module() != abi::MODULE || !abi::IMPORTS.contains(&import.name()) {
                return Err(WasmError::UnknownImport {
                    module: import.module().to_string(),
                    name: import.name().to_string(),
                });
            }
        }
        for (name, expected, params, results) in EXPORTS {
            let found = module.exports().find(|e| e.name() == *name);
            let ok = match found.as_ref().map(|e| e.ty()) {
                Some(wasmi::ExternType::Func(f)) => {
                    f.params() == *params && f.results() == *results
                }
                _ => false,
            };
            if !ok {
                return Err(WasmError::Export {
                    name,
                    expected,
                    found: match found {
                        None => "nothing".to_string(),
                        Some(e) => format!("{:?}", e.ty()),
                    },
                });
            }
        }
        if !module
            .exports()
            .any(|e| e.name() == "memory" && matches!(e.ty(), wasmi::ExternType::Memory(_)))
        {
            return Err(WasmError::Export {
                name: "memory",
                expected: "a memory",
                found: "nothing".to_string(),
            });
        }
        let linker = abi::linker(&engine).map_err(|e| WasmError::Instantiate(e.to_string()))?;
        let m = Arc::new(WasmModule {
            engine,
            module,
            linker,
            limits,
            hash: content_hash(&binary),
            size: binary.len(),
        });
        // A trial instance: imports of the wrong type, memory above the cap, a trapping
        // start function and the ABI version are refused now rather than on every node.
        let mut live = m.instantiate(0).map_err(WasmError::Instantiate)?;
        live.store
            .set_fuel(limits.fuel_per_call)
            .map_err(|e| WasmError::Instantiate(e.to_string()))?;
        let version = live
            .version
            .call(&mut live.store, ())
            .map_err(|e| WasmError::Instantiate(format!("rasp_abi_version: {e}")))?;
        if version != ABI_VERSION {
            return Err(WasmError::Version { found: version });
        }
        Ok(m)
    }

    /// Reads and validates a `.wasm` (or `.wat`) file.
    pub fn from_file(path: &Path, limits: Limits) -> Result<Arc<Self>, WasmError> {
        let bytes = std::fs::read(path).map_err(|source| WasmError::Io {
            path: path.display().to_string(),
            source,
        })?;
        WasmModule::new(&bytes, limits)
    }

    /// The 64-bit FNV-1a hash of the module's binary (its identity in logs).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The limits its instances run under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn instantiate(&self, seed: u64) -> Result<Live, String> {
        let mut store = Store::new(&self.engine, HostData::new(&self.limits, seed));
        store.limiter(|d| &mut d.limits);
        store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(|e| e.to_string())?;
        let instance = self
            .linker
            .instantiate_and_start(&mut store, &self.module)
            .map_err(|e| e.to_string())?;
        let memory = instance
            .get_memory(&store, "memory")
            .ok_or("no memory export")?;
        store.data_mut().memory = Some(memory);
        let inbox = match instance.get_typed_func::<(), u64>(&store, "rasp_inbox") {
            Ok(f) => {
                let packed = f
                    .call(&mut store, ())
                    .map_err(|e| format!("rasp_inbox: {e}"))?;
                let (ptr, cap) = ((packed >> 32) as u32, packed as u32);
                let end = u64::from(ptr) + u64::from(cap);
                if end > memory.data(&store).len() as u64 {
                    return Err(format!(
                        "rasp_inbox reports {cap} bytes at {ptr}, outside the guest's memory"
                    ));
                }
                Some((ptr, cap))
            }
            Err(_) => None,
        };
        let func = |name: &str| {
            instance
                .get_func(&store, name)
                .ok_or_else(|| format!("no export {name}"))
        };
        Ok(Live {
            inbox,
            alloc: instance
                .get_typed_func::<u32, u32>(&store, "rasp_alloc")
                .map_err(|e| e.to_string())?,
            version: instance
                .get_typed_func::<(), u32>(&store, "rasp_abi_version")
                .map_err(|e| e.to_string())?,
            init: func("rasp_init")?,
            message: func("rasp_message")?,
            future: func("rasp_future")?,
            peer: func("rasp_peer")?,
            store,
        })
    }
}

/// 64-bit FNV-1a over bytes.
fn content_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A running instance.
struct Live {
    store: Store<HostData>,
    alloc: TypedFunc<u32, u32>,
    /// The guest's inbox (`rasp_inbox`, optional): bodies up to its capacity are written
    /// there without a call to `rasp_alloc`.
    inbox: Option<(u32, u32)>,
    version: TypedFunc<(), u32>,
    init: Func,
    message: Func,
    future: Func,
    peer: Func,
}

/// Which export a call enters.
#[derive(Clone, Copy)]
enum Entry {
    Init,
    Message,
    Future,
    Peer,
}

/// One instance of a [`WasmModule`] running as a native atom.
pub struct WasmAtom {
    module: Arc<WasmModule>,
    arg: Vec<u8>,
    live: Option<Live>,
    /// Guest timer tokens to the node's timers (for `cancel`, and to forget fired ones).
    timers: HashMap<u64, TimerId>,
    kinds: usize,
    spawned: usize,
    peer_handler: bool,
    stopped: Option<String>,
    fuel_used: u64,
}

impl WasmAtom {
    /// An atom that instantiates `module` when spawned and passes the guest `arg`.
    pub fn new(module: Arc<WasmModule>, arg: Vec<u8>) -> Self {
        WasmAtom {
            module,
            arg,
            live: None,
            timers: HashMap::new(),
            kinds: 0,
            spawned: 0,
            peer_handler: false,
            stopped: None,
            fuel_used: 0,
        }
    }

    /// Why the guest was stopped, if it was (out of fuel, memory cap, a trap...).
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// Fuel the guest has used over its life (about one unit per instruction it ran).
    pub fn fuel_used(&self) -> u64 {
        self.fuel_used
    }

    /// The guest's linear memory in bytes (0 once stopped).
    pub fn memory_bytes(&self) -> usize {
        self.live
            .as_ref()
            .and_then(|l| l.store.data().memory.map(|m| m.data(&l.store).len()))
            .unwrap_or(0)
    }

    /// Stops the guest: logs why and counts it (`wasm_atoms_stopped`, labelled by cause:
    /// `fuel`, `memory`, `trap`, `fault` for bad syscall arguments, `instantiate`).
    fn fail(&mut self, sys: &mut dyn Syscalls, cause: &'static str, reason: String) {
        let me = sys.me();
        tracing::error!(
            node = me.node.0,
            atom = me.atom.0,
            module = format_args!("{:016x}", self.module.hash),
            cause,
            "wasm atom stopped: {reason}"
        );
        sys.count("wasm_atoms_stopped", cause, 1);
        self.live = None;
        self.timers.clear();
        self.stopped = Some(reason);
        sys.stop(me.atom);
    }

    /// Calls an export: writes `body` into guest memory first (its pointer and length go
    /// last in the arguments), serves the guest's syscalls, applies its effects. The
    /// export's `i32` result, if it has one; `None` if the guest is (now) stopped.
    fn call(
        &mut self,
        sys: &mut dyn Syscalls,
        entry: Entry,
        mut args: Vec<Val>,
        body: &[u8],
    ) -> Option<i32> {
        let mut live = self.live.take()?;
        {
            let d = live.store.data_mut();
            d.now = sys.now().0;
            d.me = sys.me();
            d.out_bytes = 0;
        }
        if let Err(e) = live.store.set_fuel(self.module.limits.fuel_per_call) {
            self.fail(sys, "fault", format!("cannot set fuel: {e}"));
            return None;
        }
        let ptr = if body.is_empty() {
            0
        } else {
            match write_body(&mut live, body) {
                Ok(p) => p,
                Err(reason) => {
                    self.fail(sys, "fault", reason);
                    return None;
                }
            }
        };
        args.push(Val::I32(ptr as i32));
        args.push(Val::I32(body.len() as i32));
        let func = match entry {
            Entry::Init => live.init,
            Entry::Message => live.message,
            Entry::Future => live.future,
            Entry::Peer => {
                args.truncate(2);
                live.peer
            }
        };
        let mut out = [Val::I32(0)];
        let n_out = usize::from(matches!(entry, Entry::Message));
        let mut step = func.call_resumable(&mut live.store, &args, &mut out[..n_out]);
        loop {
            match step {
                Ok(ResumableCall::Finished) => {
                    let left = live.store.get_fuel().unwrap_or(0);
                    self.fuel_used += self.module.limits.fuel_per_call.saturating_sub(left);
                    self.flush(sys, &mut live);
                    self.live = Some(live);
                    return Some(match out[0] {
                        Val::I32(v) => v,
                        _ => 0,
                    });
                }
                Ok(ResumableCall::HostTrap(inv)) => {
                    let query = inv.host_error().downcast_ref::<Query>().cloned();
                    match query {
                        Some(q) => {
                            self.flush(sys, &mut live);
                            let answer = self.answer(sys, &mut live, q);
                            step =
                                inv.resume(&mut live.store, &[Val::I64(answer)], &mut out[..n_out]);
                        }
                        None => {
                            let reason = inv.host_error().to_string();
                            self.flush(sys, &mut live);
                            self.fail(sys, "fault", reason);
                            return None;
                        }
                    }
                }
                Ok(ResumableCall::OutOfFuel(_)) => {
                    self.flush(sys, &mut live);
                    self.fail(
                        sys,
                        "fuel",
                        format!(
                            "ran out of fuel: more than {} units in one call",
                            self.module.limits.fuel_per_call
                        ),
                    );
                    return None;
                }
                Err(e) => {
                    self.flush(sys, &mut live);
                    let (cause, reason) = abi::describe(&e);
                    self.fail(sys, cause, reason);
                    return None;
                }
            }
        }
    }

    /// Applies the guest's buffered effects to the node, in order.
    fn flush(&mut self, sys: &mut dyn Syscalls, live: &mut Live) {
        let commands = std::mem::take(&mut live.store.data_mut().out);
        for c in commands {
            match c {
                Command::Send {
                    dest,
                    corr,
                    kind,
                    bytes,
                } => sys.send(dest, corr, Box::new(RawMessage { kind, bytes })),
                Command::Request {
                    dest,
                    kind,
                    bytes,
                    resp,
                    timeout,
                    token,
                } => {
                    let k = Box::new(
                        move |atom: &mut dyn Any,
                              sys: &mut dyn Syscalls,
                              r: Result<Payload, RequestError>| {
                            if let Some(w) = atom.downcast_mut::<WasmAtom>() {
                                w.complete(sys, token, r);
                            }
                        },
                    );
                    sys.request(
                        dest,
                        Box::new(RawMessage { kind, bytes }),
                        timeout,
                        (KindId::of(resp), resp),
                        k,
                    );
                }
                Command::After { delay, token } => {
                    let id = sys.set_timer(
                        delay,
                        TimerFn::Once(Box::new(move |atom, sys| {
                            if let Some(w) = atom.downcast_mut::<WasmAtom>() {
                                w.timers.remove(&token);
                                w.fire(sys, token);
                            }
                        })),
                    );
                    self.timers.insert(token, id);
                }
                Command::Every { period, token } => {
                    let id = sys.set_timer(
                        period,
                        TimerFn::Every(
                            period,
                            Rc::new(move |atom, sys| {
                                if let Some(w) = atom.downcast_mut::<WasmAtom>() {
                                    w.fire(sys, token);
                                }
                            }),
                        ),
                    );
                    self.timers.insert(token, id);
                }
                Command::On(kind) => {
                    if self.kinds >= self.module.limits.kinds {
                        sys.count("wasm_kinds_refused", "", 1);
                        continue;
                    }
                    self.kinds += 1;
                    let id = KindId::of(kind);
                    sys.on_kind(
                        id,
                        kind,
                        Rc::new(move |atom, sys, origin, payload| {
                            if let Some(w) = atom.downcast_mut::<WasmAtom>() {
                                w.deliver(sys, id, kind, origin, payload);
                            }
                            Ok(())
                        }),
                    );
                }
                Command::OnPeer => {
                    if !self.peer_handler {
                        self.peer_handler = true;
                        sys.on_peer(Rc::new(|atom, sys, ev| {
                            if let Some(w) = atom.downcast_mut::<WasmAtom>() {
                                w.peer(sys, ev);
                            }
                        }));
                    }
                }
                Command::Connect(contact) => sys.connect(&contact),
                Command::Disconnect(node) => sys.disconnect(node),
                Command::Stop(atom) => sys.stop(atom),
                Command::Log(level, text) => {
                    let me = sys.me();
                    let (node, atom) = (me.node.0, me.atom.0);
                    match level {
                        1 => tracing::error!(node, atom, "wasm: {text}"),
                        2 => tracing::warn!(node, atom, "wasm: {text}"),
                        3 => tracing::info!(node, atom, "wasm: {text}"),
                        _ => tracing::debug!(node, atom, "wasm: {text}"),
                    }
                }
                Command::Count(name, n) => sys.count(name, "", n),
            }
        }
    }

    /// Serves a syscall that answers; the value the import returns.
    fn answer(&mut self, sys: &mut dyn Syscalls, live: &mut Live, q: Query) -> i64 {
        let d = live.store.data_mut();
        match q {
            Query::Cancel(token) => match self.timers.remove(&token) {
                Some(id) => i64::from(sys.cancel(id)),
                None => 0,
            },
            Query::StoreGet(key) => match sys.store_get(&key) {
                Ok(Some(v)) => d.result(v),
                Ok(None) => abi::NONE,
                Err(e) => d.refuse(e.to_string()),
            },
            Query::StorePut(key, value) => match sys.store_put(&key, &value) {
                Ok(()) => 0,
                Err(e) => d.refuse(e.to_string()),
            },
            Query::StoreDelete(key) => match sys.store_delete(&key) {
                Ok(()) => 0,
                Err(e) => d.refuse(e.to_string()),
            },
            Query::StoreScan(prefix) => match sys.store_scan_prefix(&prefix) {
                Ok(pairs) => d.result_encoded(&pairs),
                Err(e) => d.refuse(e.to_string()),
            },
            Query::Register(name) => match sys.register(ServiceId::of(&name), &name) {
                Ok(()) => 0,
                Err(e) => d.refuse(e.to_string()),
            },
            Query::Lookup(name) => sys
                .lookup(ServiceId::of(&name))
                .map_or(abi::NONE, |a| i64::from(a.0)),
            Query::Connected => {
                let nodes: Vec<u64> = sys.connected().into_iter().map(|n| n.0).collect();
                d.result_encoded(&nodes)
            }
            Query::Contact(node) => match sys.contact(rasp_runtime::NodeId(node)) {
                Some(c) => d.result_encoded(&c),
                None => abi::NONE,
            },
            Query::MyContact => {
                let c = sys.my_contact();
                d.result_encoded(&c)
            }
            Query::Spawn(arg) => {
                if self.spawned >= self.module.limits.spawns {
                    return d.refuse(format!(
                        "spawn limit reached ({} instances)",
                        self.module.limits.spawns
                    ));
                }
                self.spawned += 1;
                let child = WasmAtom::new(self.module.clone(), arg);
                i64::from(sys.spawn(Box::new(child)).0)
            }
        }
    }

    fn deliver(
        &mut self,
        sys: &mut dyn Syscalls,
        kind: KindId,
        name: &'static str,
        origin: &Origin,
        payload: Payload,
    ) {
        if payload.encoded_len() > self.module.limits.message_bytes {
            sys.count("wasm_dropped_oversized", name, 1);
            return;
        }
        let bytes = match payload.into_bytes() {
            Ok(b) => b,
            Err(_) => {
                sys.count("dropped_decode_error", name, 1);
                return;
            }
        };
        let (has, req) = match origin.request {
            Some(r) => (1, r.0),
            None => (0, 0),
        };
        let args = vec![
            Val::I64(kind.0 as i64),
            Val::I64(origin.from.node.0 as i64),
            Val::I32(origin.from.atom.0 as i32),
            Val::I32(has),
            Val::I64(req as i64),
        ];
        match self.call(sys, Entry::Message, args, &bytes) {
            Some(1) => sys.count("dropped_unknown_kind", name, 1),
            Some(2) => sys.count("dropped_decode_error", name, 1),
            _ => {}
        }
    }

    fn fire(&mut self, sys: &mut dyn Syscalls, token: u64) {
        self.call(
            sys,
            Entry::Future,
            vec![Val::I64(token as i64), Val::I32(0)],
            &[],
        );
    }

    fn complete(&mut self, sys: &mut dyn Syscalls, token: u64, r: Result<Payload, RequestError>) {
        let (status, bytes) = match r {
            Ok(p) => match p.into_bytes() {
                Ok(b) if b.len() <= self.module.limits.message_bytes => (1, b),
                Ok(b) => (
                    3,
                    format!("reply of {} bytes is over the cap", b.len()).into_bytes(),
                ),
                Err(e) => (3, e.to_string().into_bytes()),
            },
            Err(RequestError::Timeout) => (2, Vec::new()),
            Err(e) => (3, e.to_string().into_bytes()),
        };
        self.call(
            sys,
            Entry::Future,
            vec![Val::I64(token as i64), Val::I32(status)],
            &bytes,
        );
    }

    fn peer(&mut self, sys: &mut dyn Syscalls, ev: PeerEvent) {
        let (node, up) = match ev {
            PeerEvent::Up(n) => (n, 1),
            PeerEvent::Down(n) => (n, 0),
        };
        self.call(
            sys,
            Entry::Peer,
            vec![Val::I64(node.0 as i64), Val::I32(up)],
            &[],
        );
    }
}

/// Copies `body` into a buffer the guest allocates; its address.
fn write_body(live: &mut Live, body: &[u8]) -> Result<u32, String> {
    let len = u32::try_from(body.len()).map_err(|_| "body over 4 GiB".to_string())?;
    if let Some((ptr, cap)) = live.inbox {
        if len <= cap {
            let memory = live.store.data().memory.ok_or("no memory")?;
            memory
                .write(&mut live.store, ptr as usize, body)
                .map_err(|_| format!("the inbox at {ptr} is outside the guest's memory"))?;
            return Ok(ptr);
        }
    }
    let ptr = live
        .alloc
        .call(&mut live.store, len)
        .map_err(|e| format!("rasp_alloc({len}): {}", abi::describe(&e).1))?;
    let memory = live.store.data().memory.ok_or("no memory")?;
    memory
        .write(&mut live.store, ptr as usize, body)
        .map_err(|_| format!("rasp_alloc({len}) returned {ptr}, outside the guest's memory"))?;
    Ok(ptr)
}

impl rasp_runtime::Atom for WasmAtom {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        let seed = ctx.random_u64();
        let sys = ctx.sys();
        match self.module.instantiate(seed) {
            Ok(live) => self.live = Some(live),
            Err(reason) => {
                self.live = None;
                self.fail(sys, "instantiate", format!("cannot instantiate: {reason}"));
                return;
            }
        }
        let arg = std::mem::take(&mut self.arg);
        self.call(sys, Entry::Init, Vec::new(), &arg);
        self.arg = arg;
    }
}

/// A boot closure spawning one instance of `module` with `arg` on every (re)boot.
pub fn wasm_boot(module: Arc<WasmModule>, arg: Vec<u8>) -> Boot {
    boot(move |b| {
        b.spawn(WasmAtom::new(module.clone(), arg.clone()));
    })
}

/// Where a guest destination goes: an atom (`service == 0`, `id` its atom id) or a service
/// (`id` its name's hash) on `node`.
fn dest(node: u64, service: i32, id: u64) -> Dest {
    let node = rasp_runtime::NodeId(node);
    if service == 0 {
        Dest::Atom(AtomAddr::new(node, AtomId(id as u32)))
    } else {
        Dest::Service(node, ServiceId(id))
    }
}

fn reply_corr(request: u64) -> Corr {
    Corr::Reply(rasp_runtime::RequestId(request))
}

fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

fn duration(ns: i64) -> Duration {
    Duration::from_nanos(ns as u64)
}
