//! Atoms and their syscalls.
//!
//! An [`Atom`] is a state machine with one logical thread. In [`Atom::init`] it fills its
//! **interrupt table** ([`Ctx::on`], [`Ctx::on_peer`], [`Ctx::every`]: handlers that run
//! each time a message of a kind, a peer event or a period arrives) and may recover state
//! from the durable store. Later, [`Ctx::request`] and [`Ctx::after`] add entries to its
//! **futures table**: one-shot continuations that run once (on the reply or the timeout;
//! when the timer fires) and are then disposed.
//!
//! Atoms act only through [`Ctx`], a typed layer over the object-safe [`Syscalls`]. The
//! node-local [`Host`](crate::Host) implements `Syscalls` for every runtime; a runtime
//! only provides a [`Platform`](crate::Platform) (clock, randomness, transport, store).

use crate::error::{Error, RequestError, StoreError};
use crate::ids::{
    AtomAddr, AtomId, Contact, Dest, NodeId, PeerEvent, RequestId, ServiceId, Time, TimerId,
};
use crate::message::{AnyMessage, Corr, KindId, Message, Payload};
use crate::store::KvPairs;
use rand::RngCore;
use std::any::Any;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

/// A state machine driven by the runtime.
///
/// ```
/// use rasp_runtime::{Atom, Ctx, Message, Origin};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Ping(u32);
/// impl Message for Ping { const KIND: &'static str = "doc/ping"; }
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Pong(u32);
/// impl Message for Pong { const KIND: &'static str = "doc/pong"; }
///
/// /// Answers pings; counts them.
/// struct Echo { pings: u64 }
/// impl Atom for Echo {
///     fn init(&mut self, ctx: &mut Ctx<Self>) {
///         ctx.register("echo").expect("first echo on this node");
///         ctx.on::<Ping>(|me, ctx, from: &Origin, Ping(n)| {
///             me.pings += 1;
///             ctx.reply(from, Pong(n));
///         });
///     }
/// }
/// ```
pub trait Atom: Sized + 'static {
    /// Called once when the atom is spawned (and again for a fresh instance after its node
    /// restarts): register handlers and timers; recover state from the store if needed.
    fn init(&mut self, ctx: &mut Ctx<Self>);
}

/// An atom behind a type-erased box (blanket-implemented for every [`Atom`]).
pub trait ErasedAtom: Any {
    /// Runs [`Atom::init`] through erased syscalls.
    fn init_erased(&mut self, sys: &mut dyn Syscalls);
    /// For downcasting.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// The atom's type name (for logs).
    fn type_name(&self) -> &'static str;
}

impl<A: Atom> ErasedAtom for A {
    fn init_erased(&mut self, sys: &mut dyn Syscalls) {
        self.init(&mut Ctx::new(sys));
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<A>()
    }
}

/// Who sent the message a handler is processing; pass it to [`Ctx::reply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The sending atom.
    pub from: AtomAddr,
    /// Set when the message is a request expecting a reply.
    pub request: Option<RequestId>,
}

/// Erased message handler: (atom, syscalls, origin, payload); `Err` if the payload does
/// not decode.
pub type ErasedHandler =
    Rc<dyn Fn(&mut dyn Any, &mut dyn Syscalls, &Origin, Payload) -> Result<(), Error>>;
/// Erased peer-event handler.
pub type ErasedPeerHandler = Rc<dyn Fn(&mut dyn Any, &mut dyn Syscalls, PeerEvent)>;
/// Erased request continuation: gets the reply payload or the error.
pub type ErasedContinuation =
    Box<dyn FnOnce(&mut dyn Any, &mut dyn Syscalls, Result<Payload, RequestError>)>;

/// Erased one-shot timer callback.
pub type ErasedOnce = Box<dyn FnOnce(&mut dyn Any, &mut dyn Syscalls)>;
/// Erased periodic timer callback.
pub type ErasedEvery = Rc<dyn Fn(&mut dyn Any, &mut dyn Syscalls)>;

/// An erased timer callback.
pub enum TimerFn {
    /// Runs once, then is disposed (futures table).
    Once(ErasedOnce),
    /// Runs every period until cancelled (interrupt table).
    Every(Duration, ErasedEvery),
}

/// The syscalls, object-safe and untyped. Implemented by the [`Host`](crate::Host)'s
/// per-dispatch context for every runtime; atoms use the typed [`Ctx`] instead.
/// See the `Ctx` method of the same name for each method's contract.
#[allow(missing_docs)]
pub trait Syscalls {
    fn me(&self) -> AtomAddr;
    fn now(&self) -> Time;
    fn rng(&mut self) -> &mut dyn RngCore;
    fn on_kind(&mut self, kind: KindId, name: &'static str, handler: ErasedHandler);
    fn on_peer(&mut self, handler: ErasedPeerHandler);
    fn send(&mut self, to: Dest, corr: Corr, msg: Box<dyn AnyMessage>);
    fn request(
        &mut self,
        to: Dest,
        msg: Box<dyn AnyMessage>,
        timeout: Duration,
        resp_kind: (KindId, &'static str),
        k: ErasedContinuation,
    ) -> RequestId;
    fn set_timer(&mut self, after: Duration, f: TimerFn) -> TimerId;
    fn cancel(&mut self, timer: TimerId) -> bool;
    fn spawn(&mut self, atom: Box<dyn ErasedAtom>) -> AtomId;
    fn stop(&mut self, atom: AtomId);
    fn store_get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn store_put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn store_delete(&mut self, key: &[u8]) -> Result<(), StoreError>;
    fn store_scan_prefix(&mut self, prefix: &[u8]) -> Result<KvPairs, StoreError>;
    fn register(&mut self, service: ServiceId, name: &str) -> Result<(), Error>;
    fn lookup(&self, service: ServiceId) -> Option<AtomId>;
    fn connect(&mut self, contact: &Contact);
    fn disconnect(&mut self, node: NodeId);
    fn connected(&self) -> Vec<NodeId>;
    fn contact(&self, node: NodeId) -> Option<Contact>;
    fn my_contact(&self) -> Contact;
    fn count(&mut self, name: &'static str, label: &'static str, n: u64);
}

/// The syscalls available to atom `A` while one of its handlers runs.
///
/// Every callback receives `&mut A` and a fresh `&mut Ctx<A>`, so handlers may use both
/// freely; nothing is borrowed across calls.
pub struct Ctx<'a, A> {
    sys: &'a mut dyn Syscalls,
    _atom: PhantomData<fn(&mut A)>,
}

fn downcast<A: 'static>(atom: &mut dyn Any) -> &mut A {
    // Broken invariant if it fails: the host only passes an atom its own callbacks.
    atom.downcast_mut::<A>()
        .expect("rasp: callback invoked with another atom type")
}

impl<'a, A: Atom> Ctx<'a, A> {
    /// Wraps erased syscalls (runtimes and the host use this; atoms never need to).
    pub fn new(sys: &'a mut dyn Syscalls) -> Self {
        Ctx {
            sys,
            _atom: PhantomData,
        }
    }

    /// The erased syscalls underneath.
    pub fn sys(&mut self) -> &mut dyn Syscalls {
        self.sys
    }

    // ---- identity, time, randomness ----

    /// This atom's address.
    pub fn me(&self) -> AtomAddr {
        self.sys.me()
    }
    /// This node.
    pub fn node(&self) -> NodeId {
        self.sys.me().node
    }
    /// The node-local clock (in the simulator it includes the node's clock skew).
    pub fn now(&self) -> Time {
        self.sys.now()
    }
    /// The node's random source: seeded (deterministic) in the simulator. Use it with
    /// `rand::Rng` methods (`ctx.rng().random_range(0..n)`).
    pub fn rng(&mut self) -> &mut dyn RngCore {
        self.sys.rng()
    }
    /// A random `u64`.
    pub fn random_u64(&mut self) -> u64 {
        self.sys.rng().next_u64()
    }

    // ---- interrupt table ----

    /// Registers the handler for messages of kind `M` (replacing any previous one). It
    /// runs every time an `M` arrives for this atom, plain or as a request (then
    /// `from.request` is set and the handler should [`reply`](Self::reply)). A message of
    /// a kind with no handler, or that fails to decode, is dropped, logged and counted
    /// (`dropped_unknown_kind`, `dropped_decode_error`), never a panic.
    pub fn on<M: Message>(&mut self, f: impl Fn(&mut A, &mut Ctx<A>, &Origin, M) + 'static) {
        let h: ErasedHandler = Rc::new(move |atom, sys, origin, payload| {
            let msg = payload.decode::<M>()?;
            f(downcast::<A>(atom), &mut Ctx::new(sys), origin, msg);
            Ok(())
        });
        self.sys.on_kind(M::KIND_ID, M::KIND, h);
    }

    /// Registers a handler for transport connection changes with other nodes
    /// ([`PeerEvent::Up`] / [`PeerEvent::Down`]); several may be registered.
    pub fn on_peer(&mut self, f: impl Fn(&mut A, &mut Ctx<A>, PeerEvent) + 'static) {
        self.sys.on_peer(Rc::new(move |atom, sys, ev| {
            f(downcast::<A>(atom), &mut Ctx::new(sys), ev)
        }));
    }

    /// Runs `f` every `period` (first after one period) until [`cancel`](Self::cancel)led
    /// or the atom stops. A zero period is treated as 1 ns.
    pub fn every(
        &mut self,
        period: Duration,
        f: impl Fn(&mut A, &mut Ctx<A>) + 'static,
    ) -> TimerId {
        let period = period.max(Duration::from_nanos(1));
        self.sys.set_timer(
            period,
            TimerFn::Every(
                period,
                Rc::new(move |atom, sys| f(downcast::<A>(atom), &mut Ctx::new(sys))),
            ),
        )
    }

    // ---- futures table ----

    /// Runs `f` once after `delay` (node-local time), unless cancelled first.
    pub fn after(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut A, &mut Ctx<A>) + 'static,
    ) -> TimerId {
        self.sys.set_timer(
            delay,
            TimerFn::Once(Box::new(move |atom, sys| {
                f(downcast::<A>(atom), &mut Ctx::new(sys))
            })),
        )
    }

    /// Cancels a timer of this node; whether it was still pending.
    pub fn cancel(&mut self, timer: TimerId) -> bool {
        self.sys.cancel(timer)
    }

    /// Sends `req` to `dest` as a request. `k` runs exactly once: with the first reply
    /// (decoded as `Resp`), or with [`RequestError::Timeout`] after `timeout`. Later or
    /// duplicate replies are dropped and counted (`late_replies`). If this atom stops
    /// first, `k` never runs.
    pub fn request<Req: Message, Resp: Message>(
        &mut self,
        dest: impl Into<Dest>,
        req: Req,
        timeout: Duration,
        k: impl FnOnce(&mut A, &mut Ctx<A>, Result<Resp, RequestError>) + 'static,
    ) -> RequestId {
        let cont: ErasedContinuation = Box::new(move |atom, sys, res| {
            let res = res.and_then(|p| {
                p.decode::<Resp>()
                    .map_err(|e| RequestError::BadReply(std::sync::Arc::new(e)))
            });
            k(downcast::<A>(atom), &mut Ctx::new(sys), res)
        });
        self.sys.request(
            dest.into(),
            Box::new(req),
            timeout,
            (Resp::KIND_ID, Resp::KIND),
            cont,
        )
    }

    /// Replies to the request being handled (`from` as given to the handler). Replying to
    /// a message that was not a request sends nothing and counts `reply_to_non_request`.
    pub fn reply<M: Message>(&mut self, from: &Origin, msg: M) {
        match from.request {
            Some(id) => self
                .sys
                .send(Dest::Atom(from.from), Corr::Reply(id), Box::new(msg)),
            None => self.sys.count("reply_to_non_request", "", 1),
        }
    }

    // ---- messaging ----

    /// Sends a message (fire and forget). To an atom on this node it is moved in memory
    /// (no serialization) and delivered after the current handler returns; to another node
    /// it is encoded and sent over the transport, connecting first if needed.
    pub fn send<M: Message>(&mut self, dest: impl Into<Dest>, msg: M) {
        self.sys.send(dest.into(), Corr::None, Box::new(msg))
    }

    // ---- atoms ----

    /// Spawns an atom on this node; its `init` runs before `spawn` returns.
    pub fn spawn<B: Atom>(&mut self, atom: B) -> AtomId {
        self.sys.spawn(Box::new(atom))
    }
    /// Stops an atom of this node: its state, tables, timers, pending requests and
    /// service registrations are dropped. Messages to it are then dropped and counted.
    pub fn stop(&mut self, atom: AtomId) {
        self.sys.stop(atom)
    }
    /// Stops this atom once the current callback returns.
    pub fn stop_self(&mut self) {
        let me = self.sys.me().atom;
        self.sys.stop(me)
    }

    // ---- durable store ----

    /// Reads `key` from the node's durable key-value store. The store is shared by all
    /// atoms of the node: prefix your keys (e.g. `b"membership/..."`).
    pub fn store_get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.sys.store_get(key)
    }
    /// Writes `key`. Once this returns `Ok` the write is durable: it survives a crash of
    /// the node (like a committed database transaction).
    pub fn store_put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.sys.store_put(key, value)
    }
    /// Deletes `key` (durably, as [`store_put`](Self::store_put)).
    pub fn store_delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.sys.store_delete(key)
    }
    /// All pairs whose key starts with `prefix`, in key order.
    pub fn store_scan_prefix(&mut self, prefix: &[u8]) -> Result<KvPairs, StoreError> {
        self.sys.store_scan_prefix(prefix)
    }
    /// Reads and MessagePack-decodes a value.
    pub fn store_get_as<T: serde::de::DeserializeOwned>(
        &mut self,
        key: &[u8],
    ) -> Result<Option<T>, Error> {
        match self.sys.store_get(key)? {
            None => Ok(None),
            Some(b) => crate::wire::decode(
                &b,
                &format!("stored value {}", String::from_utf8_lossy(key)),
            )
            .map(Some),
        }
    }
    /// MessagePack-encodes and writes a value.
    pub fn store_put_as<T: serde::Serialize>(
        &mut self,
        key: &[u8],
        value: &T,
    ) -> Result<(), Error> {
        let b = rmp_serde::to_vec(value).map_err(|e| Error::encode("", e))?;
        Ok(self.sys.store_put(key, &b)?)
    }

    // ---- discovery ----

    /// This atom serves `name` on this node: messages to `Dest::service(node, name)` reach
    /// it. Fails if another live atom of the node already serves the name.
    pub fn register(&mut self, name: &str) -> Result<(), Error> {
        self.sys.register(ServiceId::of(name), name)
    }
    /// The local atom serving `name`, if any.
    pub fn lookup(&self, name: &str) -> Option<AtomId> {
        self.sys.lookup(ServiceId::of(name))
    }

    // ---- connections ----

    /// Connects to a node (no-op if connected); a [`PeerEvent::Up`] follows on success.
    /// Sending to a node also connects implicitly.
    pub fn connect(&mut self, contact: &Contact) {
        self.sys.connect(contact)
    }
    /// Closes the connection to a node; a [`PeerEvent::Down`] follows.
    pub fn disconnect(&mut self, node: NodeId) {
        self.sys.disconnect(node)
    }
    /// Nodes with an open connection, sorted.
    pub fn connected(&self) -> Vec<NodeId> {
        self.sys.connected()
    }
    /// How to reach a node, if known (the address book).
    pub fn contact(&self, node: NodeId) -> Option<Contact> {
        self.sys.contact(node)
    }
    /// How others reach this node.
    pub fn my_contact(&self) -> Contact {
        self.sys.my_contact()
    }

    // ---- metrics ----

    /// Adds `n` to the node counter `name`.
    pub fn count(&mut self, name: &'static str, n: u64) {
        self.sys.count(name, "", n)
    }
    /// Adds `n` to the node counter `name{label}`.
    pub fn count_labelled(&mut self, name: &'static str, label: &'static str, n: u64) {
        self.sys.count(name, label, n)
    }
}
