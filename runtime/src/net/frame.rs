//! Length-delimited frames over a byte stream.
//!
//! A frame is a 4-byte big-endian length `n` followed by `n` bytes of payload. The reader checks
//! `n` against the configured limit **before** allocating, so a peer announcing a huge frame
//! costs us four bytes, not gigabytes. An oversized or truncated frame is an error for that
//! stream; the caller closes the peer's connection (see [`super`]'s module docs).

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a frame larger than the limit.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The stream failed or ended in the middle of a frame.
    #[error("stream error: {0}")]
    Io(#[from] io::Error),
}

/// Reads one frame into `buf` (cleared first). Returns `Ok(false)` on a clean end of stream
/// before any header byte, `Ok(true)` when a whole frame was read.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<bool, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    // Distinguish "closed between frames" (fine) from "closed mid-frame" (error).
    let first = reader.read(&mut header[..1]).await?;
    if first == 0 {
        return Ok(false);
    }
    reader.read_exact(&mut header[1..]).await?;
    let len = u32::from_be_bytes(header) as usize;
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    buf.clear();
    buf.resize(len, 0);
    reader.read_exact(buf).await?;
    Ok(true)
}

/// Appends one frame (header and payload) to `out`, for batching several frames in one write.
///
/// # Panics
/// If `payload` is longer than `u32::MAX` bytes (the caller enforces a far smaller limit).
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("frame payload larger than 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Writes one frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, payload: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    encode_frame(payload, &mut out);
    writer.write_all(&out).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;

    #[test]
    fn round_trip_and_clean_end() {
        let mut wire = Vec::new();
        encode_frame(b"hello", &mut wire);
        encode_frame(b"", &mut wire);
        let mut r = Cursor::new(wire);
        let mut buf = Vec::new();
        block_on(async {
            assert!(read_frame(&mut r, &mut buf, 16).await.unwrap());
            assert_eq!(buf, b"hello");
            assert!(read_frame(&mut r, &mut buf, 16).await.unwrap());
            assert!(buf.is_empty());
            assert!(!read_frame(&mut r, &mut buf, 16).await.unwrap());
        });
    }

    #[test]
    fn oversized_is_rejected_before_allocation() {
        let wire = u32::MAX.to_be_bytes().to_vec();
        let mut r = Cursor::new(wire);
        let mut buf = Vec::new();
        let err = block_on(read_frame(&mut r, &mut buf, 1024)).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len, limit: 1024 } if len == u32::MAX as usize)
        );
        assert_eq!(buf.capacity(), 0);
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let mut wire = Vec::new();
        encode_frame(b"hello", &mut wire);
        wire.truncate(6);
        let mut r = Cursor::new(wire);
        let mut buf = Vec::new();
        let err = block_on(read_frame(&mut r, &mut buf, 16)).unwrap_err();
        assert!(matches!(err, FrameError::Io(_)));
    }
}
