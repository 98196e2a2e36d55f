//! A bounded drop-oldest queue between the atom executor and one peer's writer task.
//!
//! Policy when full: **drop the oldest** item and count it. Outbound traffic in rasp is gossip
//! and state exchange, which is idempotent and superseded by newer messages, so the newest
//! messages are the valuable ones; the executor never blocks on a slow or dead peer, and the
//! memory a peer can hold is `capacity` messages.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::Notify;

/// A bounded multi-producer, single-consumer queue that drops its oldest item when full.
#[derive(Debug)]
pub struct DropOldest<T> {
    inner: Mutex<Inner<T>>,
    notify: Notify,
    capacity: usize,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Inner<T> {
    items: VecDeque<T>,
    closed: bool,
}

impl<T> DropOldest<T> {
    /// A queue holding at most `capacity` items (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                closed: false,
            }),
            notify: Notify::new(),
            capacity,
            dropped: AtomicU64::new(0),
        }
    }

    /// Maximum number of items held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Pushes `item`; when full, the oldest item is removed and returned (and counted).
    /// A closed queue drops `item` itself and returns it.
    pub fn push(&self, item: T) -> Option<T> {
        let evicted = {
            let mut inner = self.inner.lock().expect("queue lock poisoned");
            if inner.closed {
                Some(item)
            } else {
                let evicted = if inner.items.len() >= self.capacity {
                    inner.items.pop_front()
                } else {
                    None
                };
                inner.items.push_back(item);
                evicted
            }
        };
        if evicted.is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.notify.notify_one();
        evicted
    }

    /// Moves up to `max` items into `out`, waiting while the queue is empty. Returns `false`
    /// once the queue is closed and drained.
    pub async fn pop_batch(&self, out: &mut Vec<T>, max: usize) -> bool {
        loop {
            {
                let mut inner = self.inner.lock().expect("queue lock poisoned");
                if !inner.items.is_empty() {
                    let n = inner.items.len().min(max.max(1));
                    out.extend(inner.items.drain(..n));
                    return true;
                }
                if inner.closed {
                    return false;
                }
            }
            self.notify.notified().await;
        }
    }

    /// Closes the queue: later pushes are refused, the consumer drains what is left and stops.
    /// Returns the number of items still queued.
    pub fn close(&self) -> usize {
        let n = {
            let mut inner = self.inner.lock().expect("queue lock poisoned");
            inner.closed = true;
            inner.items.len()
        };
        self.notify.notify_one();
        n
    }

    /// Removes every queued item, returning how many were removed (they count as dropped).
    pub fn clear(&self) -> usize {
        let n = {
            let mut inner = self.inner.lock().expect("queue lock poisoned");
            let n = inner.items.len();
            inner.items.clear();
            n
        };
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Items currently queued.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("queue lock poisoned").items.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Items dropped so far (evicted when full, or cleared).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn drops_oldest_when_full() {
        let q = DropOldest::new(3);
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped(), 2);
        let mut out = Vec::new();
        assert!(block_on(q.pop_batch(&mut out, 10)));
        assert_eq!(out, vec![2, 3, 4]);
    }

    #[test]
    fn close_drains_then_ends() {
        let q = DropOldest::new(4);
        q.push(1);
        assert_eq!(q.close(), 1);
        assert_eq!(q.push(2), Some(2));
        let mut out = Vec::new();
        assert!(block_on(q.pop_batch(&mut out, 10)));
        assert_eq!(out, vec![1]);
        assert!(!block_on(q.pop_batch(&mut out, 10)));
    }
}
