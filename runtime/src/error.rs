//! The runtime's error types.
//!
//! Each error keeps the error that caused it (a MessagePack error, an I/O error, a store
//! error, the reason a decode was refused) as its [`source`](std::error::Error::source), and
//! its message also names that cause, so a caller that prints only the top error still reads
//! why.

use std::fmt;
use thiserror::Error;

/// The cause an error keeps as its [`source`](std::error::Error::source).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors callers of the runtime can handle.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A value could not be encoded to MessagePack.
    #[error("encode error: {}", Context(.what, Some(.source)))]
    Encode {
        /// What was being encoded (a message kind, `envelope`, ...); may be empty.
        what: String,
        /// The encoder's error.
        source: rmp_serde::encode::Error,
    },
    /// Bytes could not be decoded (bad input from a peer, or a kind/type mismatch).
    #[error("decode error: {}", Context(.what, cause(.source)))]
    Decode {
        /// What was being decoded, and why it failed when there is no `source`.
        what: String,
        /// The error that refused the bytes (the structural check of [`crate::wire`], the
        /// decoder, an invalid decoded value), if any.
        source: Option<BoxError>,
    },
    /// The durable store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another live atom on this node already serves that service name.
    #[error("service {0:?} is already registered on this node")]
    ServiceTaken(String),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An I/O error (trace files, ...).
    #[error("io error: {}", Context(.what, Some(.source)))]
    Io {
        /// The file or operation; may be empty.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A replayed run diverged from its recording.
    #[error("replay diverged at event {event}: {detail}")]
    ReplayDiverged {
        /// Number of the first event that differs.
        event: u64,
        /// What differs.
        detail: String,
    },
}

impl Error {
    /// An [`Error::Encode`] of `what`.
    pub fn encode(what: impl Into<String>, source: rmp_serde::encode::Error) -> Self {
        Error::Encode {
            what: what.into(),
            source,
        }
    }

    /// An [`Error::Decode`] of `what`, caused by `source`.
    pub fn decode(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Decode {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::Decode`] without a cause: `what` says what was refused and why.
    pub fn refused(what: impl Into<String>) -> Self {
        Error::Decode {
            what: what.into(),
            source: None,
        }
    }

    /// An [`Error::Io`] on `what` (a file, an operation).
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::io("", source)
    }
}

/// The cause of an optional cause, for `Display`.
fn cause(source: &Option<BoxError>) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
    source.as_deref()
}

/// `what: cause`, or whichever of the two is there.
struct Context<'a, C: ?Sized>(&'a str, Option<&'a C>);

impl<C: fmt::Display + ?Sized> fmt::Display for Context<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            ("", Some(cause)) => write!(f, "{cause}"),
            (what, Some(cause)) => write!(f, "{what}: {cause}"),
            (what, None) => f.write_str(what),
        }
    }
}

/// An error of the durable per-node key-value store.
#[derive(Debug, Error)]
#[error("store error: {message}")]
pub struct StoreError {
    message: String,
    source: Option<BoxError>,
}

impl StoreError {
    /// A store error with a message and no underlying cause.
    pub fn new(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            source: None,
        }
    }

    /// A store error caused by `source` (the storage engine's error), with its message.
    pub fn caused_by(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError {
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// What went wrong (without the `store error:` prefix of the `Display` form).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Why a request's continuation got no response.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No reply arrived before the timeout (lost, partitioned, crashed, or no handler).
    #[error("request timed out")]
    Timeout,
    /// A reply arrived but did not decode as the expected response type (shared, so the
    /// outcome of a request can be kept and copied).
    #[error("bad reply: {0}")]
    BadReply(#[source] std::sync::Arc<Error>),
}

/// Two request errors are equal when they are the same variant; two bad replies when their
/// messages are the same (the causes are compared by their text: most error types, I/O and
/// decoding errors among them, cannot be compared).
impl PartialEq for RequestError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (RequestError::Timeout, RequestError::Timeout) => true,
            (RequestError::BadReply(a), RequestError::BadReply(b)) => {
                a.to_string() == b.to_string()
            }
            _ => false,
        }
    }
}

impl Eq for RequestError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_io_error_keeps_its_source() {
        let e = Error::from(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
        assert_eq!(e.to_string(), "io error: gone");
        let source = e.source().expect("the io error is the source");
        assert_eq!(source.to_string(), "gone");
        assert!(source.downcast_ref::<std::io::Error>().is_some());

        let e = Error::io(
            "trace file t.bin",
            std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        );
        assert_eq!(e.to_string(), "io error: trace file t.bin: gone");
        assert!(e.source().is_some());
    }

    #[test]
    fn decode_errors_keep_their_cause() {
        let e = crate::wire::decode::<u32>(&[0xc1], "thing").unwrap_err();
        assert!(e.to_string().starts_with("decode error: thing: "), "{e}");
        assert!(e.source().is_some());
        let e = crate::wire::decode::<u32>(&[0xa1, b'x'], "thing").unwrap_err();
        let cause = e.source().expect("the decoder's error");
        assert!(cause.downcast_ref::<rmp_serde::decode::Error>().is_some());

        let e = Error::refused("trace version 9");
        assert_eq!(e.to_string(), "decode error: trace version 9");
        assert!(e.source().is_none());
    }

    #[test]
    fn store_and_request_errors_keep_their_cause() {
        let io = std::io::Error::other("disk full");
        let e = Error::from(StoreError::caused_by(io));
        assert_eq!(e.to_string(), "store error: disk full");
        assert!(e.source().is_some());

        let bad = RequestError::BadReply(std::sync::Arc::new(Error::refused(
            "pong: local payload of another type",
        )));
        assert_eq!(
            bad.to_string(),
            "bad reply: decode error: pong: local payload of another type"
        );
        assert!(bad.source().is_some());
        assert_ne!(bad, RequestError::Timeout);
    }
}
