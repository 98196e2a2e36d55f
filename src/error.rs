//! The facade's error type: what the `App` road, the CLI, the HTTP API helpers and the
//! advertisement counter return when they fail.
//!
//! Errors from the layers below keep their type ([`Error::Runtime`], [`Error::Dataflow`],
//! [`Error::Membership`]) and I/O and decoding errors keep their cause, so
//! [`std::error::Error::source`] walks down to the root. Bad input a person typed (a flag, a
//! config value, a trace that does not fit the program) is [`Error::Message`], whose message
//! says what was wrong and what is expected; a `String` error converts into it, so helpers that
//! validate input keep returning `Result<_, String>`.
//!
//! Invariant checks ([`crate::Invariant`]) still return `Result<(), String>`: their message is
//! the violation a user reads, not an error of the tool.

use std::path::Path;

/// The result type of the facade's fallible functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the facade.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file (or another I/O resource) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file: "cannot read config file a.toml".
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Bytes (a file, a message, a text value) could not be decoded as what they should be.
    #[error("{context}: {source}")]
    Decode {
        /// Where the bytes came from and what they should have been: "t.bin: not a rasp
        /// trace file".
        context: String,
        /// The decoder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Encoding a value failed.
    #[error("encoding {context}: {source}")]
    Encode {
        /// What was being encoded.
        context: String,
        /// The encoder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The runtime (atoms, simulator, network, store) failed.
    #[error(transparent)]
    Runtime(#[from] rasp_runtime::Error),
    /// The dataflow layer (programs, replicas) failed.
    #[error(transparent)]
    Dataflow(#[from] rasp_dataflow::Error),
    /// The membership layer failed.
    #[error(transparent)]
    Membership(#[from] rasp_membership::Error),
    /// A failure its message alone describes: bad input (a flag, a configuration value, a
    /// trace that does not fit the program), or a step whose cause has no error type of its
    /// own (a plot that could not be drawn). The message says what was wrong and what is
    /// expected.
    #[error("{0}")]
    Message(String),
}

impl Error {
    /// An I/O error; `context` says what was being done and names the file.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An I/O error on `path`, the context being the path alone.
    pub fn io_at(path: &Path, source: std::io::Error) -> Self {
        Error::io(path.display().to_string(), source)
    }

    /// Bytes that could not be decoded; `context` says where they came from and what they
    /// should have been.
    pub fn decode(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Decode {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// Encoding `context` failed.
    pub fn encode(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Encode {
            context: context.into(),
            source: Box::new(source),
        }
    }
}

impl From<String> for Error {
    fn from(msg: String) -> Self {
        Error::Message(msg)
    }
}

impl From<&str> for Error {
    fn from(msg: &str) -> Self {
        Error::Message(msg.to_string())
    }
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io_at(path, e))
}

/// Reads a whole UTF-8 file, naming it in the error.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io_at(path, e))
}

/// Writes a whole file, naming it in the error.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io_at(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn io_errors_name_the_file_and_keep_their_cause() {
        let e = read(Path::new("/nonexistent/rasp-trace.bin")).unwrap_err();
        assert!(
            e.to_string().starts_with("/nonexistent/rasp-trace.bin: "),
            "{e}"
        );
        let src = e.source().expect("the io error is the source");
        let io = src.downcast_ref::<std::io::Error>().expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn decode_errors_keep_the_decoders_error() {
        let bad = rmp_serde::from_slice::<u64>(b"\xc1").unwrap_err();
        let e = Error::decode("t.bin: not a rasp trace file", bad);
        assert!(
            e.to_string().starts_with("t.bin: not a rasp trace file: "),
            "{e}"
        );
        assert!(e
            .source()
            .unwrap()
            .downcast_ref::<rmp_serde::decode::Error>()
            .is_some());
    }

    #[test]
    fn messages_of_invalid_input_are_shown_as_written() {
        let e: Error = format!("--nodes must be at least {}", 1).into();
        assert_eq!(e.to_string(), "--nodes must be at least 1");
        assert!(e.source().is_none());
    }

    #[test]
    fn lower_layers_errors_are_transparent() {
        let e: Error = rasp_dataflow::Error::UnknownVar("x".into()).into();
        assert_eq!(
            e.to_string(),
            rasp_dataflow::Error::UnknownVar("x".into()).to_string()
        );
    }
}
