//! Length-delimited frames over a byte stream.
//!
//! A frame is a 4-byte big-endian length `n` followed by `n` bytes of payload. The reader checks
//! `n` against the configured limit before reading the body, and never allocates the announced
//! length up front: the buffer grows only as body bytes arrive, in reads of at most
//! [`READ_CHUNK`] bytes. A peer that sends a header announcing 4 MiB and then nothing costs
//! us the header, not 4 MiB.
//!
//! [`read_frame_bounded`] (what a node's stream readers use) adds two bounds:
//!
//! - a **deadline**: once the first header byte arrived, the whole frame must arrive within
//!   the given time, else [`FrameError::Timeout`];
//! - a **budget** shared by every reader of the node: each byte of buffer is paid for with
//!   one permit of a [`Budget`] before it is allocated, and the permits travel with the frame
//!   until its consumer drops them. When the budget is exhausted a reader waits (it stops
//!   reading, so yamux flow control stops the sender): backpressure, with the deadline still
//!   running, so a frame that cannot complete in time ends its stream with a timeout.
//!
//! An oversized, truncated or late frame is an error for that stream; the caller closes the
//! peer's connection (see [`super`]'s module docs).

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;

/// Most bytes one read of a frame body asks for (and allocates before they arrive).
pub const READ_CHUNK: usize = 8 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer announced a frame larger than the limit.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The frame did not arrive completely within the deadline after its first byte.
    #[error("frame of {len} bytes not complete after {after:?} ({got} bytes arrived)")]
    Timeout {
        /// Announced length (0 if the header itself did not complete).
        len: usize,
        /// Body bytes that arrived.
        got: usize,
        /// The deadline.
        after: Duration,
    },
    /// The stream failed or ended in the middle of a frame.
    #[error("stream error: {0}")]
    Io(#[from] io::Error),
}

/// A node-wide budget of buffered inbound frame bytes: one permit per byte.
#[derive(Clone, Debug)]
pub struct Budget(Arc<Semaphore>);

impl Budget {
    /// A budget of `bytes` bytes.
    pub fn new(bytes: usize) -> Self {
        Budget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    /// Bytes not currently held by any frame.
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }
}

/// The share of a [`Budget`] one frame holds; returned to the budget when dropped.
#[derive(Debug, Default)]
pub struct Held(Option<OwnedSemaphorePermit>);

impl Held {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }

    async fn grow(&mut self, budget: &Budget, n: usize) {
        if n == 0 {
            return;
        }
        let n = u32::try_from(n).expect("frames are at most u32::MAX bytes");
        let p = budget
            .0
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the budget's semaphore is never closed");
        match &mut self.0 {
            Some(h) => h.merge(p),
            None => self.0 = Some(p),
        }
    }
}

/// Reads one frame into `buf` (cleared first). Returns `Ok(false)` on a clean end of stream
/// before any header byte, `Ok(true)` when a whole frame was read. No deadline, no budget
/// (tools and tests); the buffer still grows only as bytes arrive.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<bool, FrameError> {
    let Some(len) = read_header(reader, limit).await? else {
        return Ok(false);
    };
    buf.clear();
    read_body(reader, buf, len, None).await?;
    Ok(true)
}

/// Reads one frame into `buf` (cleared first) within `deadline` of its first byte, paying
/// for its buffer from `budget`. Returns `Ok(None)` on a clean end of stream before any
/// header byte, else the budget share the frame holds (keep it as long as the frame's bytes
/// are kept). Waiting for the first byte has no deadline: idle streams between frames are
/// normal (writers keep one open per peer).
pub async fn read_frame_bounded<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
    budget: &Budget,
    deadline: Duration,
) -> Result<Option<Held>, FrameError> {
    let mut first = [0u8; 1];
    if reader.read(&mut first).await? == 0 {
        return Ok(None);
    }
    buf.clear();
    let mut held = Held::default();
    let mut len = 0;
    let body = async {
        let mut header = [0u8; HEADER_LEN];
        header[0] = first[0];
        reader.read_exact(&mut header[1..]).await?;
        len = checked_len(header, limit)?;
        read_body(reader, buf, len, Some((budget, &mut held))).await
    };
    match tokio::time::timeout(deadline, body).await {
        Ok(Ok(())) => Ok(Some(held)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(FrameError::Timeout {
            len,
            got: buf.len(),
            after: deadline,
        }),
    }
}

fn checked_len(header: [u8; HEADER_LEN], limit: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    Ok(len)
}

/// The announced length, or `None` on a clean end before the first byte.
async fn read_header<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<usize>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    // Distinguish "closed between frames" (fine) from "closed mid-frame" (error).
    if reader.read(&mut header[..1]).await? == 0 {
        return Ok(None);
    }
    reader.read_exact(&mut header[1..]).await?;
    checked_len(header, limit).map(Some)
}

/// Reads `len` body bytes into `buf`, growing it only as bytes arrive, at most
/// [`READ_CHUNK`] bytes ahead of them; with a budget, each growth of the buffer's capacity
/// is paid for before it is allocated.
async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
    mut budget: Option<(&Budget, &mut Held)>,
) -> Result<(), FrameError> {
    let mut chunk = [0u8; READ_CHUNK];
    while buf.len() < len {
        let want = (len - buf.len()).min(READ_CHUNK);
        let n = reader.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        let need = buf.len() + n;
        if need > buf.capacity() {
            // Double (amortised O(1) per byte) but never beyond the announced length.
            let target = need.max(buf.capacity() * 2).min(len);
            if let Some((b, held)) = budget.as_mut() {
                let paid = held.bytes().max(buf.capacity());
                held.grow(b, target.saturating_sub(paid)).await;
            }
            buf.reserve_exact(target - buf.len());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
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

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// A stream that yields `bytes`, then never anything more (an attacker holding it open).
    fn stalled(bytes: Vec<u8>) -> impl AsyncRead + Unpin {
        Cursor::new(bytes).chain(Pending)
    }

    struct Pending;
    impl AsyncRead for Pending {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::task::Poll::Pending
        }
    }

    #[test]
    fn a_header_alone_allocates_nothing_and_times_out() {
        let budget = Budget::new(1 << 20);
        let mut r = stalled((4u32 << 20).to_be_bytes().to_vec());
        let mut buf = Vec::new();
        let err = rt()
            .block_on(read_frame_bounded(
                &mut r,
                &mut buf,
                4 << 20,
                &budget,
                Duration::from_millis(50),
            ))
            .unwrap_err();
        assert!(
            matches!(err, FrameError::Timeout { len, got: 0, .. } if len == 4 << 20),
            "{err}"
        );
        assert_eq!(buf.capacity(), 0);
        assert_eq!(budget.available(), 1 << 20);
    }

    #[test]
    fn buffer_grows_with_the_bytes_that_arrived() {
        let mut wire = (4u32 << 20).to_be_bytes().to_vec();
        wire.extend(vec![7u8; 10_000]);
        let budget = Budget::new(8 << 20);
        let mut r = stalled(wire);
        let mut buf = Vec::new();
        let err = rt()
            .block_on(read_frame_bounded(
                &mut r,
                &mut buf,
                4 << 20,
                &budget,
                Duration::from_millis(50),
            ))
            .unwrap_err();
        assert!(
            matches!(err, FrameError::Timeout { got: 10_000, .. }),
            "{err}"
        );
        assert!(buf.capacity() < 32 * 1024, "capacity {}", buf.capacity());
        // The budget share went with the failed read.
        assert_eq!(budget.available(), 8 << 20);
    }

    #[test]
    fn frames_hold_their_share_of_the_budget_until_dropped() {
        let mut wire = Vec::new();
        encode_frame(&vec![1u8; 100_000], &mut wire);
        encode_frame(&vec![2u8; 100_000], &mut wire);
        let budget = Budget::new(150_000);
        let mut r = Cursor::new(wire);
        rt().block_on(async {
            let mut buf = Vec::new();
            let d = Duration::from_millis(200);
            let held = read_frame_bounded(&mut r, &mut buf, 1 << 20, &budget, d)
                .await
                .unwrap()
                .expect("a frame");
            assert_eq!(buf.len(), 100_000);
            assert!(held.bytes() >= 100_000);
            assert_eq!(budget.available(), 150_000 - held.bytes());
            // The second frame does not fit while the first is held: backpressure, then
            // the deadline.
            let mut buf2 = Vec::new();
            let err = read_frame_bounded(&mut r, &mut buf2, 1 << 20, &budget, d)
                .await
                .unwrap_err();
            assert!(matches!(err, FrameError::Timeout { .. }), "{err}");
            drop(held);
            assert_eq!(budget.available(), 150_000);
        });
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
