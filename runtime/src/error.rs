//! The runtime's error types.

use thiserror::Error;

/// Errors callers of the runtime can handle.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A value could not be encoded to MessagePack.
    #[error("encode error: {0}")]
    Encode(String),
    /// Bytes could not be decoded (bad input from a peer, or a kind/type mismatch).
    #[error("decode error: {0}")]
    Decode(String),
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
    #[error("io error: {0}")]
    Io(String),
    /// A replayed run diverged from its recording.
    #[error("replay diverged at event {event}: {detail}")]
    ReplayDiverged {
        /// Number of the first event that differs.
        event: u64,
        /// What differs.
        detail: String,
    },
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

/// An error of the durable per-node key-value store.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("store error: {0}")]
pub struct StoreError(pub String);

/// Why a request's continuation got no response.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// No reply arrived before the timeout (lost, partitioned, crashed, or no handler).
    #[error("request timed out")]
    Timeout,
    /// A reply arrived but did not decode as the expected response type.
    #[error("bad reply: {0}")]
    BadReply(String),
}
