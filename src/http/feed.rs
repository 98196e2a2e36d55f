//! How `/read` and `/watch` hear of changes: a subscription in the node's dataflow program
//! ([`rasp_dataflow::Program::subscribe_dyn`]), registered from inside the node through
//! [`NodeHandle::call`], whose callback pushes into a feed (a `FeedTx` and `FeedRx` pair) the HTTP task awaits.
//!
//! The callback runs on the atoms' thread inside the update or merge that changed the
//! variable (a local update through the API or the app, a peer's sync), so a waiting read or
//! watch is woken at once, and nothing runs while nothing changes.
//!
//! # A slow reader
//!
//! A feed is a bounded buffer: at most [`FEED_EVENTS`] events and [`FEED_BYTES`] bytes wait
//! for one reader. A reader that keeps up gets every change, in order. When a new event
//! would go beyond either bound, the waiting events are dropped and only the new one is kept:
//! the feed coalesces to the latest value, so a slow reader skips intermediate values and
//! next gets the variable as it is now. A single event larger than [`FEED_BYTES`] is still
//! kept (alone): the memory a reader holds is at most the larger of [`FEED_BYTES`] and one
//! rendering of the variable.
//!
//! # Cleaning up
//!
//! A `Subscription` stops the program's subscription when it is dropped: when the
//! long-poll answers or times out, when the event stream ends, and when the client goes away
//! (axum drops the handler's future or the response stream). As a second guard, a callback
//! whose reader is gone stops its own subscription at the next change.

use super::ReplicaAtom;
use rasp_runtime::net::NodeHandle;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Most events waiting in one reader's feed (see the module docs).
pub const FEED_EVENTS: usize = 16;
/// Most bytes waiting in one reader's feed, beyond the latest event (see the module docs).
pub const FEED_BYTES: usize = 1 << 20;

#[derive(Default)]
struct Buffer {
    queue: VecDeque<String>,
    bytes: usize,
    /// The writer (the callback) is gone: the program dropped it or stopped it.
    closed: bool,
}

struct Shared {
    buffer: Mutex<Buffer>,
    notify: Notify,
}

/// The writing end of a feed, held by the program's callback.
pub(super) struct FeedTx(Arc<Shared>);

/// The reading end of a feed, held by the HTTP task.
pub(super) struct FeedRx(Arc<Shared>);

/// A new feed.
pub(super) fn feed() -> (FeedTx, FeedRx) {
    let shared = Arc::new(Shared {
        buffer: Mutex::new(Buffer::default()),
        notify: Notify::new(),
    });
    (FeedTx(shared.clone()), FeedRx(shared))
}

impl FeedTx {
    /// Queues `event`, coalescing to it when the bounds would be exceeded; returns how
    /// many waiting events that dropped.
    pub(super) fn push(&self, event: String) -> usize {
        let mut b = self.0.buffer.lock().expect("feed lock");
        let mut dropped = 0;
        if b.queue.len() >= FEED_EVENTS || b.bytes + event.len() > FEED_BYTES {
            dropped = b.queue.len();
            b.queue.clear();
            b.bytes = 0;
        }
        b.bytes += event.len();
        b.queue.push_back(event);
        drop(b);
        self.0.notify.notify_one();
        dropped
    }

    /// Whether the reader went away.
    pub(super) fn orphaned(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }
}

impl Drop for FeedTx {
    fn drop(&mut self) {
        if let Ok(mut b) = self.0.buffer.lock() {
            b.closed = true;
        }
        self.0.notify.notify_one();
    }
}

impl FeedRx {
    /// The next event; `None` once the writer is gone and every event was taken.
    pub(super) async fn next(&self) -> Option<String> {
        loop {
            {
                let mut b = self.0.buffer.lock().expect("feed lock");
                if let Some(e) = b.queue.pop_front() {
                    b.bytes -= e.len();
                    return Some(e);
                }
                if b.closed {
                    return None;
                }
            }
            // `notify_one` stores a permit when no one waits: a push between the check
            // above and this await is not lost.
            self.0.notify.notified().await;
        }
    }
}

/// A subscription in the node's program, stopped when dropped (see the module docs).
pub(super) struct Subscription {
    node: NodeHandle,
    replica: ReplicaAtom,
    id: u64,
}

impl Subscription {
    /// Takes charge of the program's subscription `id`.
    pub(super) fn new(node: NodeHandle, replica: ReplicaAtom, id: u64) -> Self {
        Subscription { node, replica, id }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let (node, r, id) = (self.node.clone(), self.replica.clone(), self.id);
        // Drop cannot wait: the call goes to a task (the node's inbound queue is bounded,
        // so it may have to wait its turn). Without a runtime the node is gone anyway.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                node.call(move |h, _| {
                    (r.access)(h, r.id, &mut |rep| rep.program_mut().unsubscribe(id));
                })
                .await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_that_keeps_up_gets_every_event_in_order() {
        let (tx, rx) = feed();
        for i in 0..FEED_EVENTS {
            assert_eq!(tx.push(i.to_string()), 0);
        }
        for i in 0..FEED_EVENTS {
            assert_eq!(rx.next().await, Some(i.to_string()));
        }
        drop(tx);
        assert_eq!(rx.next().await, None);
    }

    #[tokio::test]
    async fn a_slow_reader_skips_to_the_latest() {
        let (tx, rx) = feed();
        for i in 0..FEED_EVENTS {
            tx.push(i.to_string());
        }
        // The 17th event finds 16 waiting: they are dropped, the latest kept.
        assert_eq!(tx.push(FEED_EVENTS.to_string()), FEED_EVENTS);
        assert_eq!(rx.next().await, Some(FEED_EVENTS.to_string()));
        // The byte bound: two events of 600 KiB cannot wait together.
        let big = |c: char| c.to_string().repeat(600 * 1024);
        tx.push(big('a'));
        assert_eq!(tx.push(big('b')), 1);
        assert_eq!(rx.next().await, Some(big('b')));
        // One event over the bound alone is kept.
        tx.push("x".repeat(FEED_BYTES + 1));
        assert_eq!(rx.next().await.map(|e| e.len()), Some(FEED_BYTES + 1));
        assert!(!tx.orphaned());
        drop(rx);
        assert!(tx.orphaned());
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken() {
        let (tx, rx) = feed();
        let reader = tokio::spawn(async move { (rx.next().await, rx.next().await) });
        tokio::task::yield_now().await;
        tx.push("1".into());
        drop(tx);
        assert_eq!(reader.await.unwrap(), (Some("1".into()), None));
    }
}
