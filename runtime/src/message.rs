//! Messages, type-erased payloads and envelopes (with their wire form).
//!
//! A message sent to an atom on the same node travels as a boxed value and is never
//! serialized. A message to another node is encoded with MessagePack (`rmp-serde`), put
//! in a frame ([`Envelope::encode`]) and decoded on arrival by the handler registered for
//! its [`KindId`].

use crate::error::Error;
use crate::ids::{fnv1a, AtomAddr, Dest, RequestId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::fmt;

/// The kind of a message: 64-bit FNV-1a of [`Message::KIND`]. Handlers are keyed by it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KindId(pub u64);

impl KindId {
    /// The id of a kind name.
    pub const fn of(kind: &str) -> Self {
        KindId(fnv1a(kind))
    }
}

impl fmt::Debug for KindId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kind#{:016x}", self.0)
    }
}

/// A message atoms exchange.
///
/// `KIND` names the message on the wire; it must be unique across the program (prefix it
/// with your crate or protocol, e.g. `"membership/join"`). Changing it breaks
/// compatibility with running nodes.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Ping(u64);
/// impl rasp_runtime::Message for Ping {
///     const KIND: &'static str = "doc/ping";
/// }
/// ```
pub trait Message: Serialize + DeserializeOwned + Clone + 'static {
    /// The wire name of this message kind.
    const KIND: &'static str;
    /// `KindId::of(Self::KIND)`; do not override.
    const KIND_ID: KindId = KindId::of(Self::KIND);
}

/// A type-erased message value (blanket-implemented for every [`Message`]).
pub trait AnyMessage: Any {
    /// The kind's wire name.
    fn kind_name(&self) -> &'static str;
    /// The kind's id.
    fn kind_id(&self) -> KindId;
    /// A boxed clone (the simulator's duplication fault needs it).
    fn clone_box(&self) -> Box<dyn AnyMessage>;
    /// MessagePack encoding of the value.
    fn encode(&self) -> Result<Vec<u8>, Error>;
    /// Size of the MessagePack encoding, without allocating the buffer.
    fn encoded_len(&self) -> usize;
    /// Upcast for downcasting to the concrete type.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    /// The MessagePack encoding, consuming the value (a [`RawMessage`] hands over its
    /// bytes without a copy).
    fn into_bytes(self: Box<Self>) -> Result<Vec<u8>, Error> {
        self.encode()
    }
}

/// A `Write` sink that only counts bytes.
struct CountingWriter(usize);

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<M: Message> AnyMessage for M {
    fn kind_name(&self) -> &'static str {
        M::KIND
    }
    fn kind_id(&self) -> KindId {
        M::KIND_ID
    }
    fn clone_box(&self) -> Box<dyn AnyMessage> {
        Box::new(self.clone())
    }
    fn encode(&self) -> Result<Vec<u8>, Error> {
        rmp_serde::to_vec(self).map_err(|e| Error::encode(M::KIND, e))
    }
    fn encoded_len(&self) -> usize {
        let mut w = CountingWriter(0);
        match rmp_serde::encode::write(&mut w, self) {
            Ok(()) => w.0,
            Err(_) => 0,
        }
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// A message whose kind is known only at run time: its kind's name, id and MessagePack
/// bytes. A WebAssembly atom sends these (its types live in the guest), and the runtime
/// carries them like any other message: a native handler for the same kind decodes the
/// bytes as its own type ([`Payload::decode`]), and on the wire they are the same bytes a
/// native [`Message`] of that kind would be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    /// The kind's wire name (`&'static` because handlers and metrics keep kind names; a
    /// runtime that takes names from guests interns them).
    pub kind: &'static str,
    /// The MessagePack encoding of the body.
    pub bytes: Vec<u8>,
}

impl AnyMessage for RawMessage {
    fn kind_name(&self) -> &'static str {
        self.kind
    }
    fn kind_id(&self) -> KindId {
        KindId::of(self.kind)
    }
    fn clone_box(&self) -> Box<dyn AnyMessage> {
        Box::new(self.clone())
    }
    fn encode(&self) -> Result<Vec<u8>, Error> {
        Ok(self.bytes.clone())
    }
    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
    fn into_bytes(self: Box<Self>) -> Result<Vec<u8>, Error> {
        Ok(self.bytes)
    }
}

/// A message body: a typed value moved in memory, or MessagePack bytes from the wire.
pub enum Payload {
    /// A value moved without serialization (same node, or the simulator's typed mode).
    Local(Box<dyn AnyMessage>),
    /// MessagePack bytes received from another node.
    Wire(Vec<u8>),
}

impl Payload {
    /// Wraps a message value.
    pub fn local<M: Message>(m: M) -> Self {
        Payload::Local(Box::new(m))
    }

    /// Recovers the message: downcasts a local value, decodes wire bytes.
    pub fn decode<M: Message>(self) -> Result<M, Error> {
        match self {
            Payload::Local(b) => match b.into_any().downcast::<M>() {
                Ok(m) => Ok(*m),
                // A message of this kind from an atom whose types the runtime does not know
                // (a WebAssembly guest): its bytes decode as `M`, as if from the wire.
                Err(other) => match other.downcast::<RawMessage>() {
                    Ok(raw) => crate::wire::decode(&raw.bytes, M::KIND),
                    Err(_) => Err(Error::refused(format!(
                        "{}: local payload of another type",
                        M::KIND
                    ))),
                },
            },
            Payload::Wire(bytes) => crate::wire::decode(&bytes, M::KIND),
        }
    }

    /// The MessagePack bytes (encodes a local value).
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        match self {
            Payload::Local(m) => m.encode(),
            Payload::Wire(b) => Ok(b.clone()),
        }
    }

    /// The MessagePack bytes, taking them without a copy where they already exist (wire
    /// bytes, a [`RawMessage`]); encodes any other local value.
    pub fn into_bytes(self) -> Result<Vec<u8>, Error> {
        match self {
            Payload::Wire(b) => Ok(b),
            Payload::Local(m) => m.into_bytes(),
        }
    }

    /// Replaces a local value by its encoding (what crossing the network does).
    pub fn into_wire(self) -> Result<Payload, Error> {
        match self {
            Payload::Local(m) => Ok(Payload::Wire(m.encode()?)),
            w => Ok(w),
        }
    }

    /// Encoded size in bytes (computed without allocating for a local value).
    pub fn encoded_len(&self) -> usize {
        match self {
            Payload::Local(m) => m.encoded_len(),
            Payload::Wire(b) => b.len(),
        }
    }
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        match self {
            Payload::Local(m) => Payload::Local(m.clone_box()),
            Payload::Wire(b) => Payload::Wire(b.clone()),
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Local(m) => write!(f, "Local({})", m.kind_name()),
            Payload::Wire(b) => write!(f, "Wire({} bytes)", b.len()),
        }
    }
}

/// Request/reply correlation of an envelope.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Debug, Default)]
pub enum Corr {
    /// A plain message (dispatched to the interrupt table).
    #[default]
    None,
    /// A request (dispatched to the interrupt table; the handler may
    /// [`reply`](crate::Ctx::reply)).
    Request(RequestId),
    /// A reply (dispatched to the requester's futures table).
    Reply(RequestId),
}

/// A message in transit: who sent it, where it goes, its kind, correlation and body.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The sending atom.
    pub from: AtomAddr,
    /// The destination.
    pub to: Dest,
    /// The message kind.
    pub kind: KindId,
    /// Request/reply correlation.
    pub corr: Corr,
    /// The body.
    pub payload: Payload,
}

/// Bytes serialized as a MessagePack `bin` (not an array of integers).
#[derive(Clone, Debug, PartialEq, Eq)]
struct WireBytes(Vec<u8>);

impl Serialize for WireBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for WireBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = WireBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<WireBytes, E> {
                Ok(WireBytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<WireBytes, E> {
                Ok(WireBytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<WireBytes, A::Error> {
                let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(WireBytes(out))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// The serde form of an envelope in a frame between nodes.
#[derive(Serialize, Deserialize)]
struct WireEnvelope {
    from: AtomAddr,
    to: Dest,
    kind: KindId,
    corr: Corr,
    payload: WireBytes,
}

impl Envelope {
    /// A plain message envelope.
    pub fn new<M: Message>(from: AtomAddr, to: Dest, msg: M) -> Self {
        Envelope {
            from,
            to,
            kind: M::KIND_ID,
            corr: Corr::None,
            payload: Payload::local(msg),
        }
    }

    /// The wire frame of this envelope: MessagePack of (from, to, kind, corr, payload
    /// bytes). A local payload is encoded first.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let w = WireEnvelope {
            from: self.from,
            to: self.to,
            kind: self.kind,
            corr: self.corr,
            payload: WireBytes(self.payload.to_bytes()?),
        };
        rmp_serde::to_vec(&w).map_err(|e| Error::encode("envelope", e))
    }

    /// Parses a wire frame. The payload stays as bytes, decoded later by the handler.
    /// Malformed input is an error, never a panic, and is refused before anything is
    /// allocated for a length it claims ([`crate::wire`]).
    pub fn decode(frame: &[u8]) -> Result<Envelope, Error> {
        let w: WireEnvelope = crate::wire::decode(frame, "envelope")?;
        Ok(Envelope {
            from: w.from,
            to: w.to,
            kind: w.kind,
            corr: w.corr,
            payload: Payload::Wire(w.payload.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AtomId, NodeId};

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Hello {
        name: String,
        n: u64,
    }
    impl Message for Hello {
        const KIND: &'static str = "test/hello";
    }

    #[test]
    fn envelope_round_trips_through_the_wire() {
        let from = AtomAddr::new(NodeId(1), AtomId(2));
        let mut env = Envelope::new(
            from,
            Dest::service(NodeId(3), "svc"),
            Hello {
                name: "x".into(),
                n: 300,
            },
        );
        env.corr = Corr::Request(RequestId(77));
        let frame = env.encode().unwrap();
        let back = Envelope::decode(&frame).unwrap();
        assert_eq!(back.from, from);
        assert_eq!(back.to, env.to);
        assert_eq!(back.kind, Hello::KIND_ID);
        assert_eq!(back.corr, Corr::Request(RequestId(77)));
        let len = back.payload.encoded_len();
        assert_eq!(len, env.payload.encoded_len());
        assert_eq!(
            back.payload.decode::<Hello>().unwrap(),
            Hello {
                name: "x".into(),
                n: 300
            }
        );
        // The payload is embedded verbatim as a MessagePack bin (not an array of ints).
        let raw = env.payload.to_bytes().unwrap();
        assert!(frame.windows(raw.len()).any(|w| w == raw.as_slice()));
        assert!(
            frame.len() <= raw.len() + 50,
            "frame {} payload {len}",
            frame.len()
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Envelope::decode(&[0xc1, 0xff, 0x00]).is_err());
        assert!(Payload::Wire(vec![0x92, 0x01]).decode::<Hello>().is_err());
        #[derive(Clone, Serialize, Deserialize)]
        struct Other;
        impl Message for Other {
            const KIND: &'static str = "test/other";
        }
        assert!(Payload::local(Other).decode::<Hello>().is_err());
    }
}
