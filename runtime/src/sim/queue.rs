//! The simulators' event queue: a radix heap over virtual time with first-in-first-out ties.
//!
//! A discrete-event simulator pops events in `(time, sequence)` order and never schedules an
//! event before the current instant, so its keys are *monotone*: no key pushed is smaller
//! than the last one popped. A radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, "Faster
//! algorithms for the shortest path problem", J. ACM 37(2), 1990, section 2, in its
//! one-level form) uses that: bucket `i` holds the keys whose highest bit differing from
//! the last popped time `last` is bit `i - 1` (bucket 0: the keys equal to `last`). A push
//! is one append; a pop takes bucket 0's front, or, when bucket 0 is empty, moves the
//! lowest non-empty bucket's keys into lower buckets relative to that bucket's minimum,
//! which becomes `last`. A key only ever moves down, at most 64 times, so the cost per
//! event is bounded by the number of bits of the time span between the push and the pop,
//! not by the number of pending events (a binary heap's `log2 n`, whose sift-downs miss the
//! cache once the heap outgrows it). Buckets are plain vectors walked in order.
//!
//! Ties: bucket 0 holds the events due at `last`, sorted by sequence number. The
//! simulators number their events in push order, so an event pushed for the current instant
//! goes at the back; the keys a redistribution moves into bucket 0 are sorted first. The
//! pop order is exactly the `(time, sequence)` order a `BinaryHeap` of reversed keys gives
//! (property-tested below).
//!
//! Written here rather than taken from a crate: `radix-heap` (the one maintained crate for
//! the structure) is a max-heap whose equal keys pop last-in-first-out and which has no
//! removal by key; the simulators want a min-queue, first-in-first-out ties by a sequence
//! number that is not part of the radix key, and the model checker's removal of any
//! pending event ([`TimeQueue::take`]).
//!
//! A push below `last` (no simulator does it) is still correct: every pending key is
//! re-bucketed relative to the new, lower `last`, in time linear in the queue's length.

use std::collections::VecDeque;

/// Buckets 1 to 64, one per bit of a `u64` time; bucket 0 is [`TimeQueue::now`].
const BUCKETS: usize = 64;

/// The largest capacity (in keys) a bucket keeps once emptied (see `redistribute`).
const RETAINED: usize = 1024;

/// A min-priority queue of values keyed by `(time, seq)`, for times that never go back
/// below the last popped one: a radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, "Faster
/// algorithms for the shortest path problem", J. ACM 37(2), 1990, section 2).
///
/// ```
/// use rasp_runtime::sim::TimeQueue;
/// let mut q = TimeQueue::new();
/// q.push(20, 1, "b");
/// q.push(10, 2, "a");
/// q.push(20, 3, "c");
/// assert_eq!(q.peek(), Some((10, 2)));
/// assert_eq!(q.pop(), Some((10, 2, "a")));
/// q.push(10, 4, "a2"); // the current instant again: runs before the later times
/// let rest: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(_, _, v)| v).collect();
/// assert_eq!(rest, ["a2", "b", "c"]);
/// ```
pub struct TimeQueue<T> {
    /// The time of the last redistribution: every pending key's time is at least this.
    last: u64,
    /// The keys due at `last`, ordered by sequence number: `(seq, value)`.
    now: VecDeque<(u64, T)>,
    /// `buckets[i - 1]`: the keys whose time's highest bit differing from `last` is bit
    /// `i - 1`, in no order: `(time, seq, value)`.
    buckets: [Vec<(u64, u64, T)>; BUCKETS],
    /// The smallest `(time, seq)` in each bucket (meaningful only where `mask` is set).
    mins: [(u64, u64); BUCKETS],
    /// Bit `i - 1` is set when bucket `i` is non-empty.
    mask: u64,
    len: usize,
}

impl<T> Default for TimeQueue<T> {
    fn default() -> Self {
        TimeQueue {
            last: 0,
            now: VecDeque::new(),
            buckets: std::array::from_fn(|_| Vec::new()),
            mins: [(u64::MAX, u64::MAX); BUCKETS],
            mask: 0,
            len: 0,
        }
    }
}

impl<T> TimeQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of pending values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no value is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bucket of `at` relative to `last` (1 to 64; 0 when equal).
    #[inline]
    fn bucket(&self, at: u64) -> usize {
        (u64::BITS - (at ^ self.last).leading_zeros()) as usize
    }

    /// Queues `value` at `(at, seq)`. Constant time when `at` is at least the last popped
    /// time; linear in the queue's length otherwise (every pending key is placed again).
    #[inline]
    pub fn push(&mut self, at: u64, seq: u64, value: T) {
        if at < self.last {
            self.lower(at);
        }
        self.len += 1;
        self.place(at, seq, value);
    }

    /// Puts a key into its bucket (`at >= last`).
    #[inline]
    fn place(&mut self, at: u64, seq: u64, value: T) {
        let b = self.bucket(at);
        if b == 0 {
            match self.now.back() {
                Some(&(s, _)) if s > seq => {
                    let i = self.now.partition_point(|&(s, _)| s <= seq);
                    self.now.insert(i, (seq, value));
                }
                _ => self.now.push_back((seq, value)),
            }
            return;
        }
        let i = b - 1;
        let bit = 1u64 << i;
        if self.mask & bit == 0 || (at, seq) < self.mins[i] {
            self.mins[i] = (at, seq);
        }
        self.mask |= bit;
        self.buckets[i].push((at, seq, value));
    }

    /// Makes `at` (below `last`) the new `last`: every pending key is placed again.
    #[cold]
    fn lower(&mut self, at: u64) {
        let old = self.last;
        self.last = at;
        let now = std::mem::take(&mut self.now);
        let mut moved: Vec<(u64, u64, T)> = now.into_iter().map(|(s, v)| (old, s, v)).collect();
        for b in &mut self.buckets {
            moved.append(b);
        }
        self.mask = 0;
        for (t, s, v) in moved {
            self.place(t, s, v);
        }
    }

    /// The smallest pending `(time, seq)`, if any.
    #[inline]
    pub fn peek(&self) -> Option<(u64, u64)> {
        if let Some(&(s, _)) = self.now.front() {
            return Some((self.last, s));
        }
        (self.mask != 0).then(|| self.mins[self.mask.trailing_zeros() as usize])
    }

    /// Removes the value with the smallest `(time, seq)`: `(time, seq, value)`.
    #[inline]
    pub fn pop(&mut self) -> Option<(u64, u64, T)> {
        if self.now.is_empty() {
            if self.mask == 0 {
                return None;
            }
            self.redistribute();
        }
        let (s, v) = self.now.pop_front().expect("rasp: bucket 0 filled");
        self.len -= 1;
        Some((self.last, s, v))
    }

    /// Bucket 0 is empty: the lowest non-empty bucket's minimum becomes `last`, and its
    /// keys move to lower buckets (those due at the new `last` into bucket 0, by sequence).
    fn redistribute(&mut self) {
        let i = self.mask.trailing_zeros() as usize;
        self.mask &= !(1u64 << i);
        self.last = self.mins[i].0;
        let mut keys = std::mem::take(&mut self.buckets[i]);
        let mut due = 0;
        for (t, s, v) in keys.drain(..) {
            if t == self.last {
                self.now.push_back((s, v));
                due += 1;
            } else {
                self.place(t, s, v);
            }
        }
        // Hand a small emptied vector back: its capacity serves the next fill. A large one
        // is freed: its keys now sit in lower buckets, which hold their own capacity, and
        // keeping both would double the queue's footprint at scale.
        if keys.capacity() <= RETAINED {
            self.buckets[i] = keys;
        }
        if due > 1 {
            self.now.make_contiguous().sort_unstable_by_key(|&(s, _)| s);
        }
    }

    /// Every pending `(time, seq, value)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, &T)> {
        let last = self.last;
        self.now
            .iter()
            .map(move |(s, v)| (last, *s, v))
            .chain(self.buckets.iter().flatten().map(|(t, s, v)| (*t, *s, v)))
    }

    /// Removes the value queued with sequence number `seq` (the first found, if several):
    /// `(time, value)`. Linear in the queue's length.
    pub fn take(&mut self, seq: u64) -> Option<(u64, T)> {
        if let Some(i) = self.now.iter().position(|&(s, _)| s == seq) {
            let (_, v) = self.now.remove(i).expect("found");
            self.len -= 1;
            return Some((self.last, v));
        }
        let i = self
            .buckets
            .iter()
            .position(|b| b.iter().any(|k| k.1 == seq))?;
        let bucket = &mut self.buckets[i];
        let j = bucket.iter().position(|k| k.1 == seq).expect("found");
        let (t, _, v) = bucket.swap_remove(j);
        match bucket.iter().map(|&(t, s, _)| (t, s)).min() {
            Some(m) => self.mins[i] = m,
            None => self.mask &= !(1u64 << i),
        }
        self.len -= 1;
        Some((t, v))
    }

    /// Drops every pending value and gives the buffers' memory back.
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    #[derive(Clone, Debug)]
    enum Op {
        /// Push `delta` after the last popped time (0: the current instant).
        Push(u64),
        /// Push this far before the last popped time (the slow path).
        PushBefore(u64),
        Pop,
        /// Remove the pending value with the `k`-th smallest sequence number (modulo).
        Take(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            // Ties at the current instant, small gaps, and far-apart times (every bucket).
            3 => Just(Op::Push(0)),
            4 => (0u64..64).prop_map(Op::Push),
            3 => (0u64..64).prop_map(|b| Op::Push(1u64 << b)),
            2 => any::<u32>().prop_map(|x| Op::Push(x as u64)),
            1 => (1u64..1000).prop_map(Op::PushBefore),
            8 => Just(Op::Pop),
            1 => any::<usize>().prop_map(Op::Take),
        ]
    }

    /// Runs `ops` on a [`TimeQueue`] and on a `BinaryHeap` of reversed `(time, seq)` keys
    /// (the simulators' old queue); sequence numbers are handed out in push order, or in a
    /// scrambled order when `scramble` is set. Every pop, peek and removal must agree.
    fn agree(ops: &[Op], scramble: bool, start: u64) -> Result<(), TestCaseError> {
        let mut q: TimeQueue<u64> = TimeQueue::new();
        let mut heap: BinaryHeap<Reverse<(u64, u64, u64)>> = BinaryHeap::new();
        let mut last = start;
        let mut n = 0u64;
        for op in ops {
            match *op {
                Op::Push(d) | Op::PushBefore(d) => {
                    let at = if matches!(op, Op::Push(_)) {
                        last.saturating_add(d)
                    } else {
                        last.saturating_sub(d)
                    };
                    n += 1;
                    // Distinct sequence numbers either way (a bijection on u64).
                    let seq = if scramble {
                        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    } else {
                        n
                    };
                    q.push(at, seq, n);
                    heap.push(Reverse((at, seq, n)));
                }
                Op::Pop => {
                    let want = heap.pop().map(|Reverse(k)| k);
                    let got = q.pop();
                    prop_assert_eq!(got, want);
                    if let Some((at, _, _)) = got {
                        last = at;
                    }
                }
                Op::Take(k) => {
                    if heap.is_empty() {
                        prop_assert_eq!(q.take(0), None);
                        continue;
                    }
                    let mut seqs: Vec<u64> = heap.iter().map(|Reverse(k)| k.1).collect();
                    seqs.sort_unstable();
                    let seq = seqs[k % seqs.len()];
                    let want = heap.iter().find(|Reverse(k)| k.1 == seq).map(|r| r.0);
                    heap.retain(|Reverse(k)| k.1 != seq);
                    let got = q.take(seq);
                    prop_assert_eq!(got, want.map(|(at, _, v)| (at, v)));
                }
            }
            prop_assert_eq!(q.len(), heap.len());
            prop_assert_eq!(q.peek(), heap.peek().map(|Reverse(k)| (k.0, k.1)));
            let mut all: Vec<(u64, u64, u64)> = q.iter().map(|(t, s, v)| (t, s, *v)).collect();
            let mut want: Vec<(u64, u64, u64)> = heap.iter().map(|r| r.0).collect();
            all.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(all, want);
        }
        // Drain: the rest comes out in the same order.
        while let Some(Reverse(k)) = heap.pop() {
            prop_assert_eq!(q.pop(), Some(k));
        }
        prop_assert_eq!(q.pop(), None);
        prop_assert!(q.is_empty());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Same pop order as `BinaryHeap`, ties included, with sequence numbers in push
        /// order (as the simulators number their events).
        #[test]
        fn pops_in_binary_heap_order(ops in proptest::collection::vec(op(), 0..400)) {
            agree(&ops, false, 0)?;
        }

        /// The same with sequence numbers out of push order (ties sorted on insertion).
        #[test]
        fn pops_in_binary_heap_order_with_any_sequence(
            ops in proptest::collection::vec(op(), 0..400),
        ) {
            agree(&ops, true, 0)?;
        }

        /// The same near the end of time (the top bucket, saturating times).
        #[test]
        fn pops_in_binary_heap_order_near_the_top(
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            agree(&ops, false, u64::MAX - 5000)?;
        }
    }

    /// A simulator-like load: many events spread over a window ahead of the clock, popped
    /// and refilled; the order matches the heap's over a long run.
    #[test]
    fn a_long_run_matches_the_heap() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut q: TimeQueue<u32> = TimeQueue::new();
        let mut heap = BinaryHeap::new();
        let mut seq = 0u64;
        let mut push = |q: &mut TimeQueue<u32>, heap: &mut BinaryHeap<_>, at: u64| {
            seq += 1;
            q.push(at, seq, seq as u32);
            heap.push(Reverse((at, seq, seq as u32)));
        };
        for _ in 0..10_000 {
            let at = rng.random_range(0..50_000_000);
            push(&mut q, &mut heap, at);
        }
        for _ in 0..200_000 {
            let Reverse(want) = heap.pop().expect("never drained");
            assert_eq!(q.pop(), Some(want));
            let now = want.0;
            // A local message now, or a delivery 10–50 ms on, or a timer seconds away.
            let at = match rng.random_range(0..10) {
                0..=2 => now,
                3..=8 => now + rng.random_range(10_000_000..=50_000_000),
                _ => now + rng.random_range(1..5) * 1_000_000_000,
            };
            push(&mut q, &mut heap, at);
        }
        assert_eq!(q.len(), heap.len());
    }
}
