//! The crate's error type.

/// What callers of this crate can get wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `--membership` (or `RASP_MEMBERSHIP`) named no known mode.
    #[error("unknown membership mode {0:?} (expected {expected})", expected = crate::Mode::expected())]
    UnknownMode(String),
    /// A role other than server or client.
    #[error("unknown role {0:?} (expected {expected})", expected = crate::Role::expected())]
    UnknownRole(String),
    /// A broadcast other than plumtree or gossip.
    #[error("unknown broadcast {0:?} (expected {expected})", expected = crate::BroadcastMode::expected())]
    UnknownBroadcast(String),
    /// HyParView parameters do not hold together.
    #[error(transparent)]
    HyParView(#[from] crate::hyparview::ConfigError),
    /// Other invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
}
