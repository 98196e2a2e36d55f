//! # rasp-guest: rasp atoms written in Rust, compiled to WebAssembly
//!
//! The atoms design gives the runtime–atom interface as exported WebAssembly functions: a
//! module exports its init, interrupt and future functions, and the runtime provides
//! storage, communication, discovery and node utilities as imported syscalls. This crate is
//! the guest half of that ABI (version [`ABI_VERSION`], specified in the project's
//! `docs/wasm-abi.md`): it gives an atom compiled to `wasm32-unknown-unknown` the shape of
//! a native `rasp_runtime::Atom`: an interrupt table ([`Ctx::on`], [`Ctx::on_peer`],
//! [`Ctx::every`]), a futures table ([`Ctx::request`], [`Ctx::after`]), [`Ctx::send`],
//! [`Ctx::reply`], the durable store, discovery, connections, logs and counters.
//!
//! ```no_run
//! use rasp_guest::{Atom, Ctx, Message, Origin};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Ping(u32);
//! impl Message for Ping { const KIND: &'static str = "doc/ping"; }
//! #[derive(Serialize, Deserialize)]
//! struct Pong(u32);
//! impl Message for Pong { const KIND: &'static str = "doc/pong"; }
//!
//! /// Answers pings.
//! struct Echo;
//! impl Atom for Echo {
//!     fn new(_arg: &[u8]) -> Self { Echo }
//!     fn init(&mut self, ctx: &mut Ctx<Self>) {
//!         ctx.register("echo").expect("first echo on this node");
//!         ctx.on::<Ping>(|_me, ctx, from: &Origin, Ping(n)| ctx.reply(from, &Pong(n)));
//!     }
//! }
//! rasp_guest::export_atom!(Echo);
//! ```
//!
//! Messages cross the boundary as MessagePack bytes (`rmp-serde`, the encoding native
//! atoms use on the wire), so a guest message type with the same `KIND` and the same serde
//! shape as a native one is the same message: guest and native atoms talk to each other.
//!
//! Time and randomness reach the guest only through syscalls ([`Ctx::now`],
//! [`Ctx::random_u64`]), so the same module replays bit for bit in the simulator.
//!
//! Built for any other target the crate compiles (so the workspace checks it), but every
//! syscall panics there with "rasp-guest: syscalls exist only inside a rasp WebAssembly
//! host": a guest runs only when a host instantiates it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

mod sys;

/// The ABI version this crate speaks; the module exports it as `rasp_abi_version`.
pub const ABI_VERSION: u32 = 1;

/// A message atoms exchange. `KIND` is its wire name, shared with native atoms.
pub trait Message: Serialize + DeserializeOwned + 'static {
    /// The wire name of this message kind (unique across the program).
    const KIND: &'static str;
}

/// 64-bit FNV-1a, the hash the runtime names kinds and services by.
pub const fn fnv1a(s: &str) -> u64 {
    let bytes = s.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// A node of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

/// An atom on its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AtomId(pub u32);

/// An atom's full address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AtomAddr {
    /// Its node.
    pub node: NodeId,
    /// The atom there.
    pub atom: AtomId,
}

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    /// A specific atom.
    Atom(AtomAddr),
    /// Whatever atom serves this service (its name's [`fnv1a`]) on that node.
    Service(NodeId, u64),
}

impl Dest {
    /// The service called `name` on `node`.
    pub const fn service(node: NodeId, name: &str) -> Self {
        Dest::Service(node, fnv1a(name))
    }
}

impl From<AtomAddr> for Dest {
    fn from(a: AtomAddr) -> Self {
        Dest::Atom(a)
    }
}

/// A node and its transport addresses (the runtime's `Contact`, same encoding).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Contact {
    /// The node.
    pub node: NodeId,
    /// Its addresses, best first.
    pub addrs: Vec<String>,
}

/// Who sent the message a handler is processing; pass it to [`Ctx::reply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The sending atom.
    pub from: AtomAddr,
    /// Set when the message is a request expecting a reply.
    pub request: Option<u64>,
}

/// A change in connectivity with another node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// A connection to the node is up.
    Up(NodeId),
    /// The connection is down.
    Down(NodeId),
}

/// A pending timer of this atom.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(pub u64);

/// Why a request got no usable reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// No reply within the timeout.
    Timeout,
    /// A reply came but does not decode as the expected type.
    BadReply(String),
    /// The host could not send the request (the reason).
    Failed(String),
}

/// A syscall the host refused (the host's message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysError(pub String);

impl std::fmt::Display for SysError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SysError {}

/// Log levels of [`Ctx::log`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Errors.
    Error = 1,
    /// Warnings.
    Warn = 2,
    /// Information.
    Info = 3,
    /// Debugging.
    Debug = 4,
}

/// A state machine driven by the runtime: the guest twin of `rasp_runtime::Atom`.
/// Export one per module with [`export_atom!`].
pub trait Atom: Sized + 'static {
    /// Builds the atom from the argument its spawner gave (`rasp node --atom-arg`, a
    /// boot closure's bytes, or [`Ctx::spawn`]'s argument; empty when none).
    fn new(arg: &[u8]) -> Self;
    /// Runs once per instance (and for a fresh instance after its node restarts): fill the
    /// interrupt table, recover state from the store.
    fn init(&mut self, ctx: &mut Ctx<Self>);
}

type Handler<A> = Rc<dyn Fn(&mut A, &mut Ctx<A>, &Origin, &[u8]) -> bool>;
type PeerHandler<A> = Rc<dyn Fn(&mut A, &mut Ctx<A>, PeerEvent)>;
type Reply<A> = Box<dyn FnOnce(&mut A, &mut Ctx<A>, Result<&[u8], RequestError>)>;
type OnceFn<A> = Box<dyn FnOnce(&mut A, &mut Ctx<A>)>;
type EveryFn<A> = Rc<dyn Fn(&mut A, &mut Ctx<A>)>;

/// Key-value pairs of a store scan, in key order.
pub type KvPairs = Vec<(Vec<u8>, Vec<u8>)>;

enum Future<A> {
    Once(OnceFn<A>),
    Every(EveryFn<A>),
    Request(Reply<A>),
}

/// The atom's interrupt and futures tables, kept by the guest: the host only knows which
/// kinds to deliver and which tokens are pending. Ordered maps: hashing a key costs more
/// than a few comparisons when every instruction is interpreted.
struct Tables<A> {
    handlers: BTreeMap<u64, Handler<A>>,
    peers: Vec<PeerHandler<A>>,
    futures: BTreeMap<u64, Future<A>>,
}

/// The syscalls available to atom `A` while one of its callbacks runs.
pub struct Ctx<'a, A> {
    tables: &'a mut Tables<A>,
}

thread_local! {
    // One reusable buffer for outgoing encodings: the host copies the bytes before the
    // import returns, so no allocation per message.
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the MessagePack encoding of `msg`.
fn with_encoded<M: Serialize, R>(msg: &M, f: impl FnOnce(&[u8]) -> R) -> R {
    OUT.with(|buf| {
        // A nested encoding (none of the syscalls below re-enter) would find the buffer
        // taken; it then encodes into its own.
        match buf.try_borrow_mut() {
            Ok(mut b) => {
                b.clear();
                encode_into(&mut b, msg);
                f(&b)
            }
            Err(_) => {
                let mut b = Vec::new();
                encode_into(&mut b, msg);
                f(&b)
            }
        }
    })
}

fn encode_into<M: Serialize>(buf: &mut Vec<u8>, msg: &M) {
    // Encoding fails only for types serde cannot represent: a broken program, as in
    // native atoms.
    rmp_serde::encode::write(buf, msg).expect("rasp-guest: message does not encode as MessagePack")
}

impl<A: Atom> Ctx<'_, A> {
    // ---- identity, time, randomness ----

    /// This atom's address.
    pub fn me(&self) -> AtomAddr {
        AtomAddr {
            node: NodeId(sys::me_node()),
            atom: AtomId(sys::me_atom()),
        }
    }
    /// This node.
    pub fn node(&self) -> NodeId {
        NodeId(sys::me_node())
    }
    /// The node-local clock in nanoseconds (constant during one callback).
    pub fn now(&self) -> u64 {
        sys::now()
    }
    /// A random `u64` from the atom's stream (seeded by the node: deterministic in the
    /// simulator).
    pub fn random_u64(&mut self) -> u64 {
        sys::random()
    }

    // ---- interrupt table ----

    /// Registers the handler for messages of kind `M` (replacing any previous one). A
    /// message that fails to decode is dropped and counted by the host
    /// (`dropped_decode_error`).
    pub fn on<M: Message>(&mut self, f: impl Fn(&mut A, &mut Ctx<A>, &Origin, M) + 'static) {
        let kind = fnv1a(M::KIND);
        let h: Handler<A> =
            Rc::new(
                move |atom, ctx, origin, bytes| match rmp_serde::from_slice::<M>(bytes) {
                    Ok(m) => {
                        f(atom, ctx, origin, m);
                        true
                    }
                    Err(_) => false,
                },
            );
        if self.tables.handlers.insert(kind, h).is_none() {
            sys::on(M::KIND);
        }
    }

    /// Registers a handler for connection changes with other nodes.
    pub fn on_peer(&mut self, f: impl Fn(&mut A, &mut Ctx<A>, PeerEvent) + 'static) {
        if self.tables.peers.is_empty() {
            sys::on_peer();
        }
        self.tables.peers.push(Rc::new(f));
    }

    /// Runs `f` every `period` (first after one period) until cancelled.
    pub fn every(
        &mut self,
        period: Duration,
        f: impl Fn(&mut A, &mut Ctx<A>) + 'static,
    ) -> TimerId {
        let token = sys::every(nanos(period).max(1));
        self.tables.futures.insert(token, Future::Every(Rc::new(f)));
        TimerId(token)
    }

    // ---- futures table ----

    /// Runs `f` once after `delay`, unless cancelled first.
    pub fn after(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut A, &mut Ctx<A>) + 'static,
    ) -> TimerId {
        let token = sys::after(nanos(delay));
        self.tables.futures.insert(token, Future::Once(Box::new(f)));
        TimerId(token)
    }

    /// Cancels a timer; whether it was still pending.
    pub fn cancel(&mut self, timer: TimerId) -> bool {
        self.tables.futures.remove(&timer.0);
        sys::cancel(timer.0)
    }

    /// Sends `req` to `dest` as a request; `k` runs exactly once, with the first reply
    /// decoded as `Resp` or with [`RequestError::Timeout`] after `timeout`.
    pub fn request<Req: Message, Resp: Message>(
        &mut self,
        dest: impl Into<Dest>,
        req: &Req,
        timeout: Duration,
        k: impl FnOnce(&mut A, &mut Ctx<A>, Result<Resp, RequestError>) + 'static,
    ) {
        let dest = dest.into();
        let token = with_encoded(req, |body| {
            sys::request(dest, Req::KIND, body, Resp::KIND, nanos(timeout))
        });
        let reply: Reply<A> = Box::new(move |atom, ctx, res| {
            let res = res.and_then(|bytes| {
                rmp_serde::from_slice::<Resp>(bytes)
                    .map_err(|e| RequestError::BadReply(format!("{}: {e}", Resp::KIND)))
            });
            k(atom, ctx, res)
        });
        self.tables.futures.insert(token, Future::Request(reply));
    }

    /// Replies to the request being handled; a message that was not a request gets none.
    pub fn reply<M: Message>(&mut self, from: &Origin, msg: &M) {
        if let Some(req) = from.request {
            with_encoded(msg, |body| sys::reply(req, from.from, M::KIND, body));
        }
    }

    // ---- messaging ----

    /// Sends a message (fire and forget).
    pub fn send<M: Message>(&mut self, dest: impl Into<Dest>, msg: &M) {
        let dest = dest.into();
        with_encoded(msg, |body| sys::send(dest, M::KIND, body));
    }

    // ---- atoms ----

    /// Spawns another instance of this module on this node, built from `arg`.
    pub fn spawn(&mut self, arg: &[u8]) -> Result<AtomId, SysError> {
        sys::spawn(arg).map(AtomId)
    }
    /// Stops an atom of this node.
    pub fn stop(&mut self, atom: AtomId) {
        sys::stop(atom.0)
    }
    /// Stops this atom once the current callback returns.
    pub fn stop_self(&mut self) {
        sys::stop(sys::me_atom())
    }

    // ---- durable store ----

    /// Reads `key` from the node's durable store.
    pub fn store_get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, SysError> {
        sys::store_get(key)
    }
    /// Writes `key` durably.
    pub fn store_put(&mut self, key: &[u8], value: &[u8]) -> Result<(), SysError> {
        sys::store_put(key, value)
    }
    /// Deletes `key` durably.
    pub fn store_delete(&mut self, key: &[u8]) -> Result<(), SysError> {
        sys::store_delete(key)
    }
    /// All pairs whose key starts with `prefix`, in key order.
    pub fn store_scan_prefix(&mut self, prefix: &[u8]) -> Result<KvPairs, SysError> {
        sys::store_scan(prefix)
    }
    /// Reads and MessagePack-decodes a value.
    pub fn store_get_as<T: DeserializeOwned>(&mut self, key: &[u8]) -> Result<Option<T>, SysError> {
        match self.store_get(key)? {
            None => Ok(None),
            Some(b) => rmp_serde::from_slice(&b)
                .map(Some)
                .map_err(|e| SysError(format!("stored value does not decode: {e}"))),
        }
    }
    /// MessagePack-encodes and writes a value.
    pub fn store_put_as<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), SysError> {
        with_encoded(value, |bytes| sys::store_put(key, bytes))
    }

    // ---- discovery and connections ----

    /// This atom serves `name` on this node.
    pub fn register(&mut self, name: &str) -> Result<(), SysError> {
        sys::register(name)
    }
    /// The local atom serving `name`, if any.
    pub fn lookup(&self, name: &str) -> Option<AtomId> {
        sys::lookup(name).map(AtomId)
    }
    /// Connects to a node (no-op if connected).
    pub fn connect(&mut self, contact: &Contact) {
        with_encoded(contact, sys::connect)
    }
    /// Closes the connection to a node.
    pub fn disconnect(&mut self, node: NodeId) {
        sys::disconnect(node.0)
    }
    /// Nodes with an open connection, sorted.
    pub fn connected(&self) -> Vec<NodeId> {
        sys::connected().into_iter().map(NodeId).collect()
    }
    /// How to reach a connected or known node.
    pub fn contact(&self, node: NodeId) -> Option<Contact> {
        sys::contact(node.0)
    }
    /// How others reach this node.
    pub fn my_contact(&self) -> Contact {
        sys::my_contact()
    }

    // ---- logs and metrics ----

    /// Logs a line through the host's logger, tagged with this atom.
    pub fn log(&mut self, level: Level, text: &str) {
        sys::log(level as u32, text)
    }
    /// Adds `n` to the node's counter `name`.
    pub fn count(&mut self, name: &str, n: u64) {
        sys::count(name, n)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The exported entry points, called by the functions [`export_atom!`] writes. Not for
/// direct use.
#[doc(hidden)]
pub mod __rt {
    use super::*;

    struct Instance<A> {
        atom: A,
        tables: Tables<A>,
    }

    thread_local! {
        // The one atom of this module instance (a wasm instance is single-threaded).
        static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    /// Runs `f` on the instance, taken out of its slot for the length of the call.
    fn with<A: Atom, R>(f: impl FnOnce(&mut A, &mut Ctx<A>) -> R) -> Option<R> {
        let taken = INSTANCE.with(|slot| slot.borrow_mut().take())?;
        let mut inst = match taken.downcast::<Instance<A>>() {
            Ok(inst) => inst,
            Err(other) => {
                INSTANCE.with(|slot| *slot.borrow_mut() = Some(other));
                return None;
            }
        };
        let r = {
            let Instance { atom, tables } = &mut *inst;
            f(atom, &mut Ctx { tables })
        };
        INSTANCE.with(|slot| *slot.borrow_mut() = Some(inst));
        Some(r)
    }

    /// `rasp_alloc`: a buffer of `len` bytes for the host to write into; the next call
    /// that receives it takes it back.
    pub fn alloc(len: u32) -> u32 {
        sys::alloc(len)
    }

    /// `rasp_inbox`: the buffer the host may write bodies into without `rasp_alloc`.
    pub fn inbox() -> u64 {
        sys::inbox()
    }

    /// `rasp_init`: builds the atom from its argument and runs its `init`.
    pub fn init<A: Atom>(ptr: u32, len: u32) {
        let atom = sys::with_body(ptr, len, A::new);
        let inst = Instance {
            atom,
            tables: Tables::<A> {
                handlers: BTreeMap::new(),
                peers: Vec::new(),
                futures: BTreeMap::new(),
            },
        };
        INSTANCE.with(|slot| *slot.borrow_mut() = Some(Box::new(inst)));
        with::<A, _>(|atom, ctx| atom.init(ctx));
    }

    /// `rasp_message`: 0 handled, 1 no handler for the kind, 2 the body does not decode.
    pub fn message<A: Atom>(
        kind: u64,
        from_node: u64,
        from_atom: u32,
        has_request: u32,
        request: u64,
        ptr: u32,
        len: u32,
    ) -> u32 {
        let origin = Origin {
            from: AtomAddr {
                node: NodeId(from_node),
                atom: AtomId(from_atom),
            },
            request: (has_request != 0).then_some(request),
        };
        sys::with_body(ptr, len, |body| {
            with::<A, _>(|atom, ctx| match ctx.tables.handlers.get(&kind).cloned() {
                None => 1,
                Some(h) => {
                    if h(atom, ctx, &origin, body) {
                        0
                    } else {
                        2
                    }
                }
            })
            .unwrap_or(1)
        })
    }

    /// `rasp_future`: a timer fired (status 0), a reply came (1), a request timed out (2)
    /// or failed (3, the bytes are the reason).
    pub fn future<A: Atom>(token: u64, status: u32, ptr: u32, len: u32) {
        sys::with_body(ptr, len, |body| future_with::<A>(token, status, body))
    }

    fn future_with<A: Atom>(token: u64, status: u32, body: &[u8]) {
        with::<A, _>(|atom, ctx| {
            let fut = match ctx.tables.futures.get(&token) {
                Some(Future::Every(f)) => {
                    let f = f.clone();
                    return f(atom, ctx);
                }
                Some(_) => ctx.tables.futures.remove(&token),
                None => None,
            };
            match (fut, status) {
                (Some(Future::Once(f)), _) => f(atom, ctx),
                (Some(Future::Request(k)), 1) => k(atom, ctx, Ok(body)),
                (Some(Future::Request(k)), 2) => k(atom, ctx, Err(RequestError::Timeout)),
                (Some(Future::Request(k)), _) => k(
                    atom,
                    ctx,
                    Err(RequestError::Failed(
                        String::from_utf8_lossy(body).into_owned(),
                    )),
                ),
                _ => {}
            }
        });
    }

    /// A map function's export: decodes the element, applies `f`, leaves the image's
    /// encoding in the output buffer (valid until the next call) and returns
    /// `(ptr << 32) | len`; -1 if the element does not decode.
    pub fn map<T: DeserializeOwned, U: Serialize>(ptr: u32, len: u32, f: impl Fn(T) -> U) -> i64 {
        let Some(image) = sys::with_body(ptr, len, |b| rmp_serde::from_slice::<T>(b).ok()).map(f)
        else {
            return -1;
        };
        OUT.with(|buf| {
            let mut b = buf.borrow_mut();
            b.clear();
            encode_into(&mut b, &image);
            ((b.as_ptr() as usize as i64) << 32) | b.len() as i64
        })
    }

    /// A filter function's export: 1 keeps the element, 0 drops it, -1 if it does not decode.
    pub fn filter<T: DeserializeOwned>(ptr: u32, len: u32, p: impl Fn(&T) -> bool) -> i64 {
        match sys::with_body(ptr, len, |b| rmp_serde::from_slice::<T>(b).ok()) {
            Some(x) => i64::from(p(&x)),
            None => -1,
        }
    }

    /// `rasp_peer`: a connection to `node` went up (`up` = 1) or down.
    pub fn peer<A: Atom>(node: u64, up: u32) {
        let ev = if up != 0 {
            PeerEvent::Up(NodeId(node))
        } else {
            PeerEvent::Down(NodeId(node))
        };
        with::<A, _>(|atom, ctx| {
            for h in ctx.tables.peers.clone() {
                h(atom, ctx, ev);
            }
        });
    }
}

/// Exports what every module has: `rasp_abi_version` and the buffers the host writes
/// bodies into (`rasp_alloc`, `rasp_inbox`). [`export_atom!`] includes it; a module of
/// functions only ([`export_map!`], [`export_filter!`]) starts with it.
#[macro_export]
macro_rules! export_buffers {
    () => {
        /// The ABI version the module speaks.
        #[no_mangle]
        pub extern "C" fn rasp_abi_version() -> u32 {
            $crate::ABI_VERSION
        }
        /// A buffer for the host to write `len` bytes into.
        #[no_mangle]
        pub extern "C" fn rasp_alloc(len: u32) -> u32 {
            $crate::__rt::alloc(len)
        }
        /// Where the host may write a body without calling `rasp_alloc`: address in the
        /// high 32 bits, capacity in the low 32.
        #[no_mangle]
        pub extern "C" fn rasp_inbox() -> u64 {
            $crate::__rt::inbox()
        }
    };
}

/// Exports a dataflow `map` function named `$name` from `$t` to `$u` (both serde types:
/// the elements' MessagePack crosses the boundary). A program declares it with
/// `Program::map_wasm`, and the module ships with the graph to nodes whose binaries lack it.
///
/// ```ignore
/// rasp_guest::export_buffers!();
/// rasp_guest::export_map!(shout: String => String, |s: String| s.to_uppercase());
/// ```
#[macro_export]
macro_rules! export_map {
    ($name:ident : $t:ty => $u:ty, $f:expr) => {
        /// A map function of the module.
        #[no_mangle]
        pub extern "C" fn $name(ptr: u32, len: u32) -> i64 {
            $crate::__rt::map::<$t, $u>(ptr, len, $f)
        }
    };
}

/// Exports a dataflow `filter` predicate named `$name` over `$t` (see [`export_map!`]).
///
/// ```ignore
/// rasp_guest::export_filter!(long: String, |s: &String| s.len() > 4);
/// ```
#[macro_export]
macro_rules! export_filter {
    ($name:ident : $t:ty, $p:expr) => {
        /// A filter predicate of the module.
        #[no_mangle]
        pub extern "C" fn $name(ptr: u32, len: u32) -> i64 {
            $crate::__rt::filter::<$t>(ptr, len, $p)
        }
    };
}

/// Exports `$atom` (a type implementing [`Atom`]) as this module's atom: writes the
/// functions the host calls (`rasp_abi_version`, `rasp_alloc`, `rasp_inbox`, `rasp_init`,
/// `rasp_message`, `rasp_future`, `rasp_peer`). Use it once, at the crate root of a
/// `cdylib` built for `wasm32-unknown-unknown`; the crate needs `unsafe_code` allowed,
/// since `#[no_mangle]` is an unsafe attribute.
#[macro_export]
macro_rules! export_atom {
    ($atom:ty) => {
        $crate::export_buffers!();
        /// Builds and initialises the atom.
        #[no_mangle]
        pub extern "C" fn rasp_init(ptr: u32, len: u32) {
            $crate::__rt::init::<$atom>(ptr, len)
        }
        /// Delivers a message.
        #[no_mangle]
        pub extern "C" fn rasp_message(
            kind: u64,
            from_node: u64,
            from_atom: u32,
            has_request: u32,
            request: u64,
            ptr: u32,
            len: u32,
        ) -> u32 {
            $crate::__rt::message::<$atom>(
                kind,
                from_node,
                from_atom,
                has_request,
                request,
                ptr,
                len,
            )
        }
        /// Completes a timer or a request.
        #[no_mangle]
        pub extern "C" fn rasp_future(token: u64, status: u32, ptr: u32, len: u32) {
            $crate::__rt::future::<$atom>(token, status, ptr, len)
        }
        /// Delivers a peer event.
        #[no_mangle]
        pub extern "C" fn rasp_peer(node: u64, up: u32) {
            $crate::__rt::peer::<$atom>(node, up)
        }
    };
}
