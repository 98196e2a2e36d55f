//! MessagePack encoding of lattice states (and anything else `Serialize`).
//!
//! All of rasp uses these three functions so that the byte counts measured by the dataflow
//! layer are the bytes actually sent. Structs are encoded in rmp-serde's **compact** form
//! (as MessagePack arrays, fields by position, no field names): smaller on the wire, at the
//! cost that field order is part of the format. Enum variants are encoded by index.

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// Encodes `value` as MessagePack (compact struct form).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    rmp_serde::encode::write(&mut buf, value)?;
    Ok(buf)
}

/// Decodes a value encoded by [`encode`]. Malformed input is an `Err`, never a panic.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    Ok(rmp_serde::from_slice(bytes)?)
}

/// The number of bytes [`encode`] would produce, computed without allocating a buffer.
/// Returns 0 if the value cannot be encoded (which [`encode`] would report as an error).
pub fn encoded_size<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = CountingWriter(0);
    match rmp_serde::encode::write(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => 0,
    }
}

/// An `io::Write` that only counts bytes.
struct CountingWriter(usize);

impl io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_matches_and_round_trips() {
        let v: Vec<(u64, String)> = (0..100).map(|i| (i, format!("x{i}"))).collect();
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes.len(), encoded_size(&v));
        let back: Vec<(u64, String)> = decode(&bytes).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn garbage_is_an_error() {
        let r: Result<Vec<String>, _> = decode(&[0xc1, 0xff, 0x00]);
        assert!(r.is_err());
    }
}
