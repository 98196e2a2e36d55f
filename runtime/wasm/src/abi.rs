//! The host's imports (module `"rasp"`, ABI v1): what each does with the guest's bytes.
//!
//! Every import reads its byte arguments from the guest's memory with bounds checks; a bad
//! pointer, a name that is not UTF-8 or too long, a body over the message cap, or more
//! output than the per-call cap is a fatal host error that stops the guest. Imports that
//! only act push a [`Command`]; imports that answer raise a [`Query`], which suspends the
//! guest until the atom has served it (`WasmAtom::call`).

use crate::{dest, duration, reply_corr, rng, Limits};
use rand::RngCore;
use rand_xoshiro::Xoshiro256PlusPlus;
use rasp_runtime::{AtomAddr, AtomId, Contact, Corr, Dest, NodeId};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use wasmi::{Caller, Engine, Error, Linker, Memory, StoreLimits, StoreLimitsBuilder};

/// The import module's name.
pub const MODULE: &str = "rasp";

/// Every import the host provides, by name.
pub const IMPORTS: &[&str] = &[
    "send",
    "reply",
    "request",
    "after",
    "every",
    "cancel",
    "on",
    "on_peer",
    "now",
    "random",
    "me_node",
    "me_atom",
    "store_get",
    "store_put",
    "store_delete",
    "store_scan",
    "result_take",
    "register",
    "lookup",
    "connect",
    "disconnect",
    "connected",
    "contact",
    "my_contact",
    "spawn",
    "stop",
    "log",
    "count",
];

/// "No such value".
pub const NONE: i64 = -1;
/// Refusals are `REFUSED - len`, the reason's length in the result buffer.
const REFUSED: i64 = -2;

/// Longest kind, service or counter name a guest may pass.
const MAX_NAME: usize = 256;
/// Longest log line kept (longer ones are cut).
const MAX_LOG: usize = 4096;
/// Distinct names interned for all guests of the process; handlers and counters keep
/// `&'static str` names, so this bounds what guests can make the host keep.
const MAX_INTERNED: usize = 4096;

/// An effect the guest asked for, applied in order after it returns or asks a question.
pub enum Command {
    Send {
        dest: Dest,
        corr: Corr,
        kind: &'static str,
        bytes: Vec<u8>,
    },
    Request {
        dest: Dest,
        kind: &'static str,
        bytes: Vec<u8>,
        resp: &'static str,
        timeout: Duration,
        token: u64,
    },
    After {
        delay: Duration,
        token: u64,
    },
    Every {
        period: Duration,
        token: u64,
    },
    On(&'static str),
    OnPeer,
    Connect(Contact),
    Disconnect(NodeId),
    Stop(AtomId),
    Log(u32, String),
    Count(&'static str, u64),
}

/// A syscall that answers: the guest is suspended until the atom serves it.
#[derive(Clone, Debug)]
pub enum Query {
    Cancel(u64),
    StoreGet(Vec<u8>),
    StorePut(Vec<u8>, Vec<u8>),
    StoreDelete(Vec<u8>),
    StoreScan(Vec<u8>),
    Register(String),
    Lookup(String),
    Connected,
    Contact(u64),
    MyContact,
    Spawn(Vec<u8>),
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "syscall {self:?} outside a resumable call")
    }
}

impl wasmi::errors::HostError for Query {}

/// A guest fault the host found in a syscall's arguments.
#[derive(Debug)]
struct Fatal(String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl wasmi::errors::HostError for Fatal {}

fn fatal(msg: impl Into<String>) -> Error {
    Error::host(Fatal(msg.into()))
}

/// The host's state in one instance's store.
pub struct HostData {
    pub limits: StoreLimits,
    pub memory: Option<Memory>,
    pub me: AtomAddr,
    pub now: u64,
    rng: Xoshiro256PlusPlus,
    next_token: u64,
    pub out: Vec<Command>,
    pub out_bytes: usize,
    out_cap: usize,
    message_cap: usize,
    result: Vec<u8>,
    /// Kind names this instance used, by their bytes.
    names: HashMap<Vec<u8>, &'static str>,
}

impl HostData {
    pub fn new(limits: &Limits, seed: u64) -> Self {
        HostData {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .memories(1)
                .tables(4)
                .table_elements(1 << 16)
                .instances(1)
                .trap_on_grow_failure(true)
                .build(),
            memory: None,
            me: AtomAddr::default(),
            now: 0,
            rng: rng(seed),
            next_token: 0,
            out: Vec::new(),
            out_bytes: 0,
            out_cap: limits.output_bytes_per_call,
            message_cap: limits.message_bytes,
            result: Vec::new(),
            names: HashMap::new(),
        }
    }

    /// Leaves `v` in the result buffer; its length.
    pub fn result(&mut self, v: Vec<u8>) -> i64 {
        let n = v.len() as i64;
        self.result = v;
        n
    }

    /// MessagePack of `v` in the result buffer.
    pub fn result_encoded<T: serde::Serialize>(&mut self, v: &T) -> i64 {
        match rmp_serde::to_vec(v) {
            Ok(b) => self.result(b),
            Err(e) => self.refuse(format!("cannot encode the answer: {e}")),
        }
    }

    /// A refusal with its reason in the result buffer.
    pub fn refuse(&mut self, reason: String) -> i64 {
        let n = reason.len() as i64;
        self.result = reason.into_bytes();
        REFUSED - n
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn push(&mut self, c: Command, bytes: usize) -> Result<(), Error> {
        self.out_bytes += bytes;
        if self.out_bytes > self.out_cap {
            return Err(fatal(format!(
                "sent more than {} bytes in one call",
                self.out_cap
            )));
        }
        self.out.push(c);
        Ok(())
    }
}

type Cx<'a> = Caller<'a, HostData>;

/// Copies `len` bytes at `ptr` out of the guest's memory.
fn read(caller: &Cx<'_>, ptr: i32, len: i32, cap: usize, what: &str) -> Result<Vec<u8>, Error> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    if len > cap {
        return Err(fatal(format!(
            "{what} of {len} bytes is over the cap of {cap}"
        )));
    }
    let memory = caller.data().memory.ok_or_else(|| fatal("no memory"))?;
    let data = memory.data(caller);
    ptr.checked_add(len)
        .and_then(|end| data.get(ptr..end))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            fatal(format!(
                "{what}: bytes {ptr}..{} are outside the guest's {} bytes of memory",
                ptr.saturating_add(len),
                data.len()
            ))
        })
}

fn read_str(caller: &Cx<'_>, ptr: i32, len: i32, what: &str) -> Result<String, Error> {
    let b = read(caller, ptr, len, MAX_NAME, what)?;
    String::from_utf8(b).map_err(|_| fatal(format!("{what} is not UTF-8")))
}

/// A guest-given name as `&'static str`, shared by every guest of the process.
fn intern(name: String) -> Result<&'static str, Error> {
    static NAMES: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = names.get(&name) {
        return Ok(s);
    }
    if names.len() >= MAX_INTERNED {
        return Err(fatal(format!(
            "more than {MAX_INTERNED} distinct kind, service or counter names"
        )));
    }
    let s: &'static str = Box::leak(name.clone().into_boxed_str());
    names.insert(name, s);
    Ok(s)
}

/// A kind name, through the instance's cache: a name seen before costs a lookup by its
/// bytes in guest memory, with no copy, lock or allocation.
fn kind(caller: &mut Cx<'_>, ptr: i32, len: i32) -> Result<&'static str, Error> {
    let memory = caller.data().memory.ok_or_else(|| fatal("no memory"))?;
    let (start, n) = (ptr as u32 as usize, len as u32 as usize);
    let (data, host) = memory.data_and_store_mut(&mut *caller);
    if let Some(bytes) = start.checked_add(n).and_then(|end| data.get(start..end)) {
        if let Some(&name) = host.names.get(bytes) {
            return Ok(name);
        }
    }
    let name = intern(read_str(caller, ptr, len, "kind name")?)?;
    let names = &mut caller.data_mut().names;
    if names.len() < MAX_INTERNED {
        names.insert(name.as_bytes().to_vec(), name);
    }
    Ok(name)
}

fn body(caller: &Cx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Error> {
    let cap = caller.data().message_cap;
    read(caller, ptr, len, cap, "message body")
}

fn ask(q: Query) -> Result<i64, Error> {
    Err(Error::host(q))
}

/// The linker with every import of [`IMPORTS`].
pub fn linker(engine: &Engine) -> Result<Linker<HostData>, Error> {
    let mut l = Linker::<HostData>::new(engine);
    l.func_wrap(
        MODULE,
        "send",
        |mut c: Cx<'_>, node: i64, service: i32, id: i64, kp: i32, kl: i32, bp: i32, bl: i32| {
            let kind = kind(&mut c, kp, kl)?;
            let bytes = body(&c, bp, bl)?;
            let n = bytes.len();
            let dest = dest(node as u64, service, id as u64);
            c.data_mut().push(
                Command::Send {
                    dest,
                    corr: Corr::None,
                    kind,
                    bytes,
                },
                n,
            )
        },
    )?;
    l.func_wrap(
        MODULE,
        "reply",
        |mut c: Cx<'_>, req: i64, node: i64, atom: i32, kp: i32, kl: i32, bp: i32, bl: i32| {
            let kind = kind(&mut c, kp, kl)?;
            let bytes = body(&c, bp, bl)?;
            let n = bytes.len();
            let to = AtomAddr::new(NodeId(node as u64), AtomId(atom as u32));
            c.data_mut().push(
                Command::Send {
                    dest: Dest::Atom(to),
                    corr: reply_corr(req as u64),
                    kind,
                    bytes,
                },
                n,
            )
        },
    )?;
    l.func_wrap(
        MODULE,
        "request",
        |mut c: Cx<'_>,
         node: i64,
         service: i32,
         id: i64,
         kp: i32,
         kl: i32,
         bp: i32,
         bl: i32,
         rp: i32,
         rl: i32,
         timeout: i64| {
            let kind = kind(&mut c, kp, kl)?;
            let bytes = body(&c, bp, bl)?;
            let resp = self::kind(&mut c, rp, rl)?;
            let n = bytes.len();
            let d = c.data_mut();
            let token = d.token();
            d.push(
                Command::Request {
                    dest: dest(node as u64, service, id as u64),
                    kind,
                    bytes,
                    resp,
                    timeout: duration(timeout),
                    token,
                },
                n,
            )?;
            Ok(token as i64)
        },
    )?;
    l.func_wrap(MODULE, "after", |mut c: Cx<'_>, ns: i64| {
        let d = c.data_mut();
        let token = d.token();
        d.push(
            Command::After {
                delay: duration(ns),
                token,
            },
            0,
        )?;
        Ok(token as i64)
    })?;
    l.func_wrap(MODULE, "every", |mut c: Cx<'_>, ns: i64| {
        let d = c.data_mut();
        let token = d.token();
        let period = duration(ns).max(Duration::from_nanos(1));
        d.push(Command::Every { period, token }, 0)?;
        Ok(token as i64)
    })?;
    l.func_wrap(MODULE, "cancel", |_: Cx<'_>, token: i64| {
        ask(Query::Cancel(token as u64))
    })?;
    l.func_wrap(MODULE, "on", |mut c: Cx<'_>, kp: i32, kl: i32| {
        let kind = kind(&mut c, kp, kl)?;
        c.data_mut().push(Command::On(kind), 0)
    })?;
    l.func_wrap(MODULE, "on_peer", |mut c: Cx<'_>| {
        c.data_mut().push(Command::OnPeer, 0)
    })?;
    l.func_wrap(MODULE, "now", |c: Cx<'_>| c.data().now as i64)?;
    l.func_wrap(MODULE, "random", |mut c: Cx<'_>| {
        c.data_mut().rng.next_u64() as i64
    })?;
    l.func_wrap(MODULE, "me_node", |c: Cx<'_>| c.data().me.node.0 as i64)?;
    l.func_wrap(MODULE, "me_atom", |c: Cx<'_>| c.data().me.atom.0 as i32)?;
    l.func_wrap(MODULE, "store_get", |c: Cx<'_>, kp: i32, kl: i32| {
        let key = body(&c, kp, kl)?;
        ask(Query::StoreGet(key))
    })?;
    l.func_wrap(
        MODULE,
        "store_put",
        |c: Cx<'_>, kp: i32, kl: i32, vp: i32, vl: i32| {
            let key = body(&c, kp, kl)?;
            let value = body(&c, vp, vl)?;
            ask(Query::StorePut(key, value))
        },
    )?;
    l.func_wrap(MODULE, "store_delete", |c: Cx<'_>, kp: i32, kl: i32| {
        let key = body(&c, kp, kl)?;
        ask(Query::StoreDelete(key))
    })?;
    l.func_wrap(MODULE, "store_scan", |c: Cx<'_>, pp: i32, pl: i32| {
        let prefix = body(&c, pp, pl)?;
        ask(Query::StoreScan(prefix))
    })?;
    l.func_wrap(MODULE, "result_take", |mut c: Cx<'_>, ptr: i32| {
        let result = std::mem::take(&mut c.data_mut().result);
        let memory = c.data().memory.ok_or_else(|| fatal("no memory"))?;
        memory
            .write(&mut c, ptr as u32 as usize, &result)
            .map_err(|_| fatal(format!("result_take: {ptr} is outside the guest's memory")))
    })?;
    l.func_wrap(MODULE, "register", |c: Cx<'_>, p: i32, n: i32| {
        let name = read_str(&c, p, n, "service name")?;
        ask(Query::Register(name))
    })?;
    l.func_wrap(MODULE, "lookup", |c: Cx<'_>, p: i32, n: i32| {
        let name = read_str(&c, p, n, "service name")?;
        ask(Query::Lookup(name))
    })?;
    l.func_wrap(MODULE, "connect", |mut c: Cx<'_>, p: i32, n: i32| {
        let bytes = read(&c, p, n, 64 << 10, "contact")?;
        let contact: Contact = rmp_serde::from_slice(&bytes)
            .map_err(|e| fatal(format!("connect: the contact does not decode: {e}")))?;
        c.data_mut().push(Command::Connect(contact), 0)
    })?;
    l.func_wrap(MODULE, "disconnect", |mut c: Cx<'_>, node: i64| {
        c.data_mut()
            .push(Command::Disconnect(NodeId(node as u64)), 0)
    })?;
    l.func_wrap(MODULE, "connected", |_: Cx<'_>| ask(Query::Connected))?;
    l.func_wrap(MODULE, "contact", |_: Cx<'_>, node: i64| {
        ask(Query::Contact(node as u64))
    })?;
    l.func_wrap(MODULE, "my_contact", |_: Cx<'_>| ask(Query::MyContact))?;
    l.func_wrap(MODULE, "spawn", |c: Cx<'_>, p: i32, n: i32| {
        let arg = body(&c, p, n)?;
        ask(Query::Spawn(arg))
    })?;
    l.func_wrap(MODULE, "stop", |mut c: Cx<'_>, atom: i32| {
        c.data_mut().push(Command::Stop(AtomId(atom as u32)), 0)
    })?;
    l.func_wrap(
        MODULE,
        "log",
        |mut c: Cx<'_>, level: i32, p: i32, n: i32| {
            let len = (n as u32 as usize).min(MAX_LOG) as i32;
            let bytes = read(&c, p, len, MAX_LOG, "log line")?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            c.data_mut()
                .push(Command::Log(level as u32, text), len as usize)
        },
    )?;
    l.func_wrap(MODULE, "count", |mut c: Cx<'_>, p: i32, n: i32, by: i64| {
        let name = intern(read_str(&c, p, n, "counter name")?)?;
        c.data_mut().push(Command::Count(name, by as u64), 0)
    })?;
    Ok(l)
}

/// A guest error as (cause, words): the trap, the limit it hit, or the host's reason.
pub fn describe(e: &Error) -> (&'static str, String) {
    use wasmi::TrapCode;
    match e.as_trap_code() {
        Some(TrapCode::OutOfFuel) => ("fuel", "ran out of fuel".to_string()),
        Some(TrapCode::GrowthOperationLimited | TrapCode::OutOfSystemMemory) => (
            "memory",
            "tried to grow its memory past its cap".to_string(),
        ),
        Some(code) => ("trap", format!("trapped: {code}")),
        None => ("fault", e.to_string()),
    }
}
