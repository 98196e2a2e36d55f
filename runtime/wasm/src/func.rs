//! Pure functions in WebAssembly: what a dataflow `map` or `filter` runs when its function
//! ships with the program graph instead of being compiled into every node's binary.
//!
//! A function module imports nothing (a function sees only its argument, so it computes
//! the same result on every node) and exports `memory`, `rasp_alloc` (and optionally
//! `rasp_inbox`, as atoms do) and its functions, each `(ptr: i32, len: i32) -> i64`: the
//! argument is the MessagePack of one element; a map returns its image's MessagePack in
//! guest memory as `(ptr << 32) | len`, a filter returns 1 (keep) or 0; a negative result
//! means the argument did not decode. `rasp_guest::export_map!` and
//! `rasp_guest::export_filter!` write such exports.
//!
//! A module is named by the SHA-256 of its binary ([`PureModule::hash_hex`]): a program
//! graph refers to a function as `wasm:<hash>:<export>`, and a node that receives the
//! module's bytes checks them against the name before it runs them.

use crate::{Limits, WasmError};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use wasmi::{Engine, Linker, Module, Store, StoreLimits, StoreLimitsBuilder, TypedFunc};

/// Largest function module accepted (shipped in greetings, so bounded).
pub const MAX_MODULE_BYTES: usize = 4 << 20;

/// Why a call of a function failed (the element it was called on is dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The module has no such function.
    #[error("no function {0} in the module")]
    NoFunction(String),
    /// The guest trapped, ran out of fuel or memory, or returned a bad address.
    #[error("the function failed: {0}")]
    Failed(String),
    /// The guest could not decode its argument.
    #[error("the function could not decode its argument")]
    BadArgument,
}

struct Instance {
    instance: wasmi::Instance,
    store: Store<StoreLimits>,
    alloc: TypedFunc<u32, u32>,
    inbox: Option<(u32, u32)>,
    memory: wasmi::Memory,
}

/// A validated function module. `Send + Sync`: calls from several threads take turns on
/// its one instance.
pub struct PureModule {
    engine: Engine,
    module: Module,
    bytes: Arc<[u8]>,
    hash: [u8; 32],
    limits: Limits,
    instance: Mutex<Option<Instance>>,
}

impl std::fmt::Debug for PureModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PureModule")
            .field("hash", &self.hash_hex())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// The SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl PureModule {
    /// Validates a function module (WebAssembly binary or text): no imports; `memory` and
    /// `rasp_alloc` exported.
    pub fn new(bytes: &[u8], limits: Limits) -> Result<Arc<Self>, WasmError> {
        let binary = wat::parse_bytes(bytes)
            .map_err(|e| WasmError::Invalid(e.to_string()))?
            .into_owned();
        if binary.len() > MAX_MODULE_BYTES {
            return Err(WasmError::Invalid(format!(
                "{} bytes (function modules are at most {MAX_MODULE_BYTES})",
                binary.len()
            )));
        }
        let mut config = wasmi::Config::default();
        config.consume_fuel(true);
        let engine = Engine::new(&config);
        let module =
            Module::new(&engine, &binary[..]).map_err(|e| WasmError::Invalid(e.to_string()))?;
        if let Some(import) = module.imports().next() {
            return Err(WasmError::UnknownImport {
                module: import.module().to_string(),
                name: import.name().to_string(),
            });
        }
        let hash: [u8; 32] = Sha256::digest(&binary).into();
        let m = PureModule {
            engine,
            module,
            bytes: binary.into(),
            hash,
            limits,
            instance: Mutex::new(None),
        };
        let inst = m.instantiate().map_err(WasmError::Instantiate)?;
        *m.instance.lock().unwrap_or_else(|p| p.into_inner()) = Some(inst);
        Ok(Arc::new(m))
    }

    /// The module's name: the SHA-256 of its binary, in hex.
    pub fn hash_hex(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The module's binary (what ships with a graph).
    pub fn bytes(&self) -> Arc<[u8]> {
        self.bytes.clone()
    }

    /// Whether the module exports a function `name` of the function type.
    pub fn has_function(&self, name: &str) -> bool {
        use wasmi::ValType::{I32, I64};
        self.module.exports().any(|e| {
            e.name() == name
                && matches!(e.ty(), wasmi::ExternType::Func(f)
                    if f.params() == [I32, I32] && f.results() == [I64])
        })
    }

    fn instantiate(&self) -> Result<Instance, String> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .memories(1)
            .tables(4)
            .table_elements(1 << 16)
            .instances(1)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(&self.engine, limits);
        store.limiter(|l| l);
        store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(|e| e.to_string())?;
        let instance = Linker::<StoreLimits>::new(&self.engine)
            .instantiate_and_start(&mut store, &self.module)
            .map_err(|e| e.to_string())?;
        let memory = instance
            .get_memory(&store, "memory")
            .ok_or("the module exports no memory")?;
        let alloc = instance
            .get_typed_func::<u32, u32>(&store, "rasp_alloc")
            .map_err(|e| format!("rasp_alloc: {e}"))?;
        let inbox = match instance.get_typed_func::<(), u64>(&store, "rasp_inbox") {
            Ok(f) => {
                let packed = f
                    .call(&mut store, ())
                    .map_err(|e| format!("rasp_inbox: {e}"))?;
                Some(((packed >> 32) as u32, packed as u32))
            }
            Err(_) => None,
        };
        Ok(Instance {
            instance,
            store,
            alloc,
            inbox,
            memory,
        })
    }

    /// Runs `f` on the instance (made again after a failed call); a failure drops it.
    fn with_instance<R>(
        &self,
        f: impl FnOnce(&mut Instance) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let mut slot = self.instance.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(self.instantiate().map_err(CallError::Failed)?);
        }
        let inst = slot.as_mut().expect("just made");
        let r = f(inst);
        if matches!(r, Err(CallError::Failed(_))) {
            // A trap can leave the guest's memory half-written: start the next call afresh.
            *slot = None;
        }
        r
    }

    /// Calls `name` on `arg` (MessagePack bytes) in `inst`: the export's raw result.
    fn call_in(&self, inst: &mut Instance, name: &str, arg: &[u8]) -> Result<i64, CallError> {
        if arg.len() > self.limits.message_bytes {
            return Err(CallError::Failed(format!(
                "argument of {} bytes is over the cap",
                arg.len()
            )));
        }
        let failed = |e: wasmi::Error| CallError::Failed(crate::abi::describe(&e).1);
        if !self.has_function(name) {
            return Err(CallError::NoFunction(name.to_string()));
        }
        let f = inst
            .instance
            .get_typed_func::<(u32, u32), i64>(&inst.store, name)
            .map_err(|_| CallError::NoFunction(name.to_string()))?;
        inst.store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(failed)?;
        let len = arg.len() as u32;
        let ptr = match inst.inbox {
            _ if len == 0 => 0,
            Some((p, cap)) if len <= cap => p,
            _ => inst.alloc.call(&mut inst.store, len).map_err(failed)?,
        };
        if len > 0 {
            inst.memory
                .write(&mut inst.store, ptr as usize, arg)
                .map_err(|_| CallError::Failed(format!("address {ptr} is outside memory")))?;
        }
        f.call(&mut inst.store, (ptr, len)).map_err(failed)
    }

    /// A map function's image of `arg`: MessagePack in, MessagePack out.
    pub fn map(&self, name: &str, arg: &[u8]) -> Result<Vec<u8>, CallError> {
        let cap = self.limits.message_bytes;
        self.with_instance(|inst| {
            let r = self.call_in(inst, name, arg)?;
            if r < 0 {
                return Err(CallError::BadArgument);
            }
            let (ptr, len) = ((r as u64 >> 32) as usize, (r as u64 & 0xffff_ffff) as usize);
            if len > cap {
                return Err(CallError::Failed(format!("a result of {len} bytes")));
            }
            let data = inst.memory.data(&inst.store);
            ptr.checked_add(len)
                .and_then(|end| data.get(ptr..end))
                .map(<[u8]>::to_vec)
                .ok_or_else(|| CallError::Failed(format!("result at {ptr} outside memory")))
        })
    }

    /// A filter function's verdict on `arg`.
    pub fn filter(&self, name: &str, arg: &[u8]) -> Result<bool, CallError> {
        self.with_instance(|inst| match self.call_in(inst, name, arg)? {
            r if r < 0 => Err(CallError::BadArgument),
            r => Ok(r != 0),
        })
    }
}
