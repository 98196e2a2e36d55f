//! The delta buffer of delta-based synchronisation, sans IO (Enes, Almeida, Baquero, Leitão,
//! "Efficient Synchronization of State-based CRDTs", ICDE 2019, Algorithm 2): the buffer of
//! delta-groups `D_i` with their sequence numbers and origins, the next sequence number `c_i`,
//! the acknowledgement map `A_i` (per neighbour, everything below it acknowledged), the
//! delta-group a neighbour is owed, and garbage collection of what every neighbour
//! acknowledged.
//!
//! [`crate::replica::Replica`] drives it: it pushes the changes of its program, asks for each
//! neighbour's delta-group at every sync, and reports acknowledgements and neighbours that come
//! and go. The buffer knows nothing of messages, timers or atoms, so it is tested on its own.
//!
//! - **BP** (avoid back-propagation): a neighbour's delta-group leaves out the entries that
//!   came from it ([`DeltaBuffer::delta_group`] with `bp`), and, with rasp's refinement
//!   ([`crate::replica::ReplicaConfig::bp_heard`]), every part of what it sent since the last
//!   sync to it ([`DeltaBuffer::heard`]).
//! - **RR** (remove redundant): a received delta enters the buffer only as its part that
//!   strictly inflated the local state ([`DeltaBuffer::push_received`] with `rr`).
//! - **Bounds.** At most `limit` entries: the oldest is dropped when a push goes beyond it,
//!   and the neighbours that had not acknowledged it are reported behind (they need full
//!   states, see [`Overflow`]).
//! - **Remembered neighbours.** A neighbour that went away may leave its acknowledgement
//!   behind ([`DeltaBuffer::remember`]), so that what it had not acknowledged is kept for a
//!   re-formed link to resume from (the replica's "Resuming a link").

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rasp_runtime::NodeId;

use crate::erased::AnyLattice;

/// One buffered delta.
#[derive(Debug)]
pub struct Entry {
    /// Its sequence number.
    pub seq: u64,
    /// The variable it changes.
    pub var: Arc<str>,
    /// The delta.
    pub delta: Box<dyn AnyLattice>,
    /// The neighbour the delta came from (`None`: made here).
    pub origin: Option<NodeId>,
}

/// What a push beyond the bound dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overflow {
    /// The sequence number of the dropped entry.
    pub seq: u64,
    /// The current neighbours that had not acknowledged it: they need full states.
    pub behind: Vec<NodeId>,
    /// The remembered neighbours that had not acknowledged it: forgotten (their link can no
    /// longer resume).
    pub forgotten: Vec<NodeId>,
}

/// What the buffer knows of one current neighbour.
#[derive(Debug, Default)]
struct Neighbour {
    /// Everything below this sequence number is acknowledged (Algorithm 2's `A_i[j]`).
    acked: u64,
    /// With rasp's BP refinement: the join, per variable, of what it sent us since our last
    /// sync to it. It holds all of that, so those parts are not sent back to it, whichever
    /// entry carries them (BP only skips entries whose *first* copy came from it; a copy that
    /// arrived from it second was dropped by RR but would still travel back to it).
    heard: BTreeMap<Arc<str>, Box<dyn AnyLattice>>,
}

/// The delta buffer of one replica (see the [module docs](self)).
#[derive(Debug)]
pub struct DeltaBuffer {
    entries: VecDeque<Entry>,
    /// The next sequence number (Algorithm 2's `c_i`); entries have smaller ones.
    next: u64,
    limit: usize,
    neighbours: BTreeMap<NodeId, Neighbour>,
    /// Acknowledgements of neighbours that went away, kept for resuming.
    remembered: BTreeMap<NodeId, u64>,
}

impl DeltaBuffer {
    /// An empty buffer of at most `limit` entries; the first sequence number is 1 (0 means
    /// "nothing to acknowledge" on the wire).
    pub fn new(limit: usize) -> Self {
        DeltaBuffer {
            entries: VecDeque::new(),
            next: 1,
            limit,
            neighbours: BTreeMap::new(),
            remembered: BTreeMap::new(),
        }
    }

    /// The next sequence number: what a sync sent now carries for the neighbour to
    /// acknowledge (every entry buffered so far has a smaller one).
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Skips a sequence number, so that only a sync sent from now on can acknowledge what is
    /// sent from now on.
    pub fn skip_seq(&mut self) {
        self.next += 1;
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is buffered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The encoded bytes of the entries (for memory reports).
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.delta.encoded_size()).sum()
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Buffers `delta` of `var` (its `origin`: the neighbour it came from, `None` if made
    /// here) under the next sequence number. Beyond the bound the oldest entry is dropped,
    /// and who had not acknowledged it is reported.
    pub fn push(
        &mut self,
        var: Arc<str>,
        delta: Box<dyn AnyLattice>,
        origin: Option<NodeId>,
    ) -> Option<Overflow> {
        let seq = self.next;
        self.next += 1;
        self.entries.push_back(Entry {
            seq,
            var,
            delta,
            origin,
        });
        if self.entries.len() <= self.limit {
            return None;
        }
        let dropped = self.entries.pop_front().expect("non-empty").seq;
        let behind = self
            .neighbours
            .iter()
            .filter(|(_, p)| p.acked <= dropped)
            .map(|(n, _)| *n)
            .collect();
        let forgotten: Vec<NodeId> = self
            .remembered
            .iter()
            .filter(|(_, &acked)| acked <= dropped)
            .map(|(n, _)| *n)
            .collect();
        for n in &forgotten {
            self.remembered.remove(n);
        }
        Some(Overflow {
            seq: dropped,
            behind,
            forgotten,
        })
    }

    /// Buffers a delta of `var` received from neighbour `from`: with `rr` (remove redundant)
    /// only `effective`, its part that strictly inflated the local state; without, `received`
    /// whole (classic delta sync).
    pub fn push_received(
        &mut self,
        var: Arc<str>,
        received: Box<dyn AnyLattice>,
        effective: Box<dyn AnyLattice>,
        from: NodeId,
        rr: bool,
    ) -> Option<Overflow> {
        let delta = if rr { effective } else { received };
        self.push(var, delta, Some(from))
    }

    /// Starts tracking neighbour `n` (nothing acknowledged) unless it is tracked already.
    pub fn add_neighbour(&mut self, n: NodeId) {
        self.neighbours.entry(n).or_default();
    }

    /// Tracks neighbour `n` afresh: nothing acknowledged, nothing heard (a new incarnation).
    pub fn reset_neighbour(&mut self, n: NodeId) {
        self.neighbours.insert(n, Neighbour::default());
    }

    /// Stops tracking neighbour `n`; what it had acknowledged, if it was tracked.
    pub fn remove_neighbour(&mut self, n: NodeId) -> Option<u64> {
        self.neighbours.remove(&n).map(|p| p.acked)
    }

    /// Everything below this sequence number `n` acknowledged (0 for a neighbour not tracked).
    pub fn acked(&self, n: NodeId) -> u64 {
        self.neighbours.get(&n).map_or(0, |p| p.acked)
    }

    /// Neighbour `n` acknowledged `seq` (Algorithm 2: `A_i[j] = max(A_i[j], n)`); its
    /// acknowledgement now, `None` for a neighbour not tracked (nothing changes).
    pub fn ack(&mut self, n: NodeId, seq: u64) -> Option<u64> {
        let p = self.neighbours.get_mut(&n)?;
        p.acked = p.acked.max(seq);
        Some(p.acked)
    }

    /// Sets what neighbour `n` acknowledged to `seq`, lower or higher (a resumed link, or a
    /// neighbour taken as caught up); nothing for a neighbour not tracked.
    pub fn set_acked(&mut self, n: NodeId, seq: u64) {
        if let Some(p) = self.neighbours.get_mut(&n) {
            p.acked = seq;
        }
    }

    /// How many entries neighbour `n` has not acknowledged.
    pub fn lag(&self, n: NodeId) -> usize {
        let acked = self.acked(n);
        self.entries.iter().filter(|e| e.seq >= acked).count()
    }

    /// Records what neighbour `n` sent us (rasp's BP refinement): joined into what it is
    /// known to hold until the next [`DeltaBuffer::delta_group`] for it. Nothing for a
    /// neighbour not tracked.
    pub fn heard(&mut self, n: NodeId, var: &str, value: &dyn AnyLattice) {
        let Some(p) = self.neighbours.get_mut(&n) else {
            return;
        };
        match p.heard.get_mut(var) {
            Some(h) => {
                h.join_dyn(value);
            }
            None => {
                p.heard.insert(Arc::from(var), value.clone_box());
            }
        }
    }

    /// The delta-group owed to neighbour `n`: per variable it `holds`, in id order, the join
    /// of the entries it has not acknowledged; with `bp`, leaving out the entries that came
    /// from it, and with `bp_heard` also the parts of what it sent since the last call (which
    /// this call forgets). Variables left with nothing are left out.
    pub fn delta_group(
        &mut self,
        n: NodeId,
        bp: bool,
        bp_heard: bool,
        holds: impl Fn(&str) -> bool,
    ) -> Vec<(String, Box<dyn AnyLattice>)> {
        let acked = self.acked(n);
        let entries = self
            .entries
            .iter()
            .filter(|e| e.seq >= acked)
            .filter(|e| !(bp && e.origin == Some(n)))
            .filter(|e| holds(&e.var));
        let heard = self
            .neighbours
            .get_mut(&n)
            .map(|p| std::mem::take(&mut p.heard));
        let known = heard.as_ref().filter(|_| bp && bp_heard);
        join(entries, known)
    }

    /// Empties the buffer (the sequence numbers go on): the join, per variable in id order, of
    /// the entries made here (not received). The broadcast carrier ships it at every sync.
    pub fn take_local(&mut self) -> Vec<(String, Box<dyn AnyLattice>)> {
        let entries = std::mem::take(&mut self.entries);
        join(entries.iter().filter(|e| e.origin.is_none()), None)
    }

    /// Keeps what neighbour `n`, gone, had acknowledged, so that garbage collection keeps
    /// the entries it had not (for a re-formed link to resume).
    pub fn remember(&mut self, n: NodeId, acked: u64) {
        self.remembered.insert(n, acked);
    }

    /// Forgets a remembered neighbour; what it had acknowledged, if it was remembered.
    pub fn forget(&mut self, n: NodeId) -> Option<u64> {
        self.remembered.remove(&n)
    }

    /// Whether every entry from `acked` on is still buffered: a neighbour that acknowledged
    /// everything below `acked` can be sent the rest as deltas.
    pub fn covers(&self, acked: u64) -> bool {
        match self.entries.front() {
            Some(e) => e.seq <= acked,
            None => acked >= self.next,
        }
    }

    /// Drops the entries every neighbour, current or remembered, has acknowledged; with no
    /// neighbour at all, keeps everything (within the bound) for the next one.
    pub fn collect_garbage(&mut self) {
        let Some(low) = self
            .neighbours
            .values()
            .map(|p| p.acked)
            .chain(self.remembered.values().copied())
            .min()
        else {
            return;
        };
        while self.entries.front().is_some_and(|e| e.seq < low) {
            self.entries.pop_front();
        }
    }
}

/// Joins the entries per variable (one delta per variable), in id order, and removes the parts
/// below what the receiver is `known` to hold; variables left with nothing are left out.
fn join<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    known: Option<&BTreeMap<Arc<str>, Box<dyn AnyLattice>>>,
) -> Vec<(String, Box<dyn AnyLattice>)> {
    let mut joined: BTreeMap<&str, Box<dyn AnyLattice>> = BTreeMap::new();
    for e in entries {
        match joined.get_mut(&*e.var) {
            Some(acc) => {
                acc.join_dyn(&*e.delta);
            }
            None => {
                joined.insert(&e.var, e.delta.clone_box());
            }
        }
    }
    joined
        .into_iter()
        .filter_map(|(id, d)| match known.and_then(|k| k.get(id)) {
            Some(k) => {
                let d = d.delta_dyn(&**k);
                (!d.is_bottom()).then_some((id.to_string(), d))
            }
            None => Some((id.to_string(), d)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rasp_lattice::{GSet, Lattice};

    use super::*;
    use crate::erased::downcast;

    fn set(xs: &[u64]) -> Box<dyn AnyLattice> {
        let mut s = GSet::bottom();
        for &x in xs {
            s.join(&s.add_delta(x));
        }
        Box::new(s)
    }

    fn elems(d: &dyn AnyLattice) -> Vec<u64> {
        downcast::<GSet<u64>>(d)
            .expect("a set")
            .iter()
            .copied()
            .collect()
    }

    fn group(b: &mut DeltaBuffer, n: u64, bp: bool, heard: bool) -> Vec<(String, Vec<u64>)> {
        b.delta_group(NodeId(n), bp, heard, |_| true)
            .into_iter()
            .map(|(id, d)| (id, elems(&*d)))
            .collect()
    }

    fn x() -> Arc<str> {
        Arc::from("x")
    }

    #[test]
    fn sequence_numbers_start_at_one_and_skip() {
        let mut b = DeltaBuffer::new(8);
        assert_eq!(b.next_seq(), 1);
        assert!(b.covers(1), "an empty buffer covers what comes next");
        b.push(x(), set(&[1]), None);
        b.skip_seq();
        b.push(x(), set(&[2]), None);
        let seqs: Vec<u64> = b.entries().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 3]);
        assert_eq!(b.next_seq(), 4);
        assert_eq!(b.len(), 2);
        assert!(b.bytes() > 0);
    }

    #[test]
    fn a_neighbour_gets_what_it_has_not_acknowledged_joined_per_variable() {
        let mut b = DeltaBuffer::new(8);
        b.add_neighbour(NodeId(1));
        b.push(x(), set(&[1]), None);
        b.push(Arc::from("y"), set(&[7]), None);
        b.push(x(), set(&[2]), None);
        assert_eq!(
            group(&mut b, 1, false, false),
            vec![("x".to_string(), vec![1, 2]), ("y".to_string(), vec![7])]
        );
        assert_eq!(b.lag(NodeId(1)), 3);
        // It acknowledges the sync that carried sequence number 3: entry 3 is still owed.
        assert_eq!(b.ack(NodeId(1), 3), Some(3));
        assert_eq!(
            group(&mut b, 1, false, false),
            vec![("x".to_string(), vec![2])]
        );
        // A late, older acknowledgement changes nothing.
        assert_eq!(b.ack(NodeId(1), 2), Some(3));
        assert_eq!(b.ack(NodeId(9), 5), None, "not a neighbour");
        // Interest: only the variables it holds.
        let only_y = b.delta_group(NodeId(1), false, false, |v| v == "y");
        assert!(only_y.is_empty());
    }

    #[test]
    fn garbage_collection_keeps_what_some_neighbour_still_needs() {
        let mut b = DeltaBuffer::new(8);
        for i in 0..4 {
            b.push(x(), set(&[i]), None);
        }
        b.collect_garbage();
        assert_eq!(b.len(), 4, "no neighbour: everything kept for the next one");
        b.add_neighbour(NodeId(1));
        b.add_neighbour(NodeId(2));
        b.ack(NodeId(1), 5);
        b.ack(NodeId(2), 3);
        b.collect_garbage();
        let seqs: Vec<u64> = b.entries().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![3, 4], "neighbour 2 has not acknowledged 3 and 4");
        // A neighbour that went away but is remembered still pins its entries.
        let acked = b.remove_neighbour(NodeId(2));
        assert_eq!(acked, Some(3));
        b.remember(NodeId(2), 3);
        b.collect_garbage();
        assert_eq!(b.len(), 2);
        assert!(b.covers(3) && !b.covers(2));
        assert_eq!(b.forget(NodeId(2)), Some(3));
        b.collect_garbage();
        assert!(b.is_empty());
        assert!(b.covers(5));
    }

    #[test]
    fn bp_leaves_out_what_came_from_the_neighbour() {
        let mut b = DeltaBuffer::new(8);
        b.add_neighbour(NodeId(1));
        b.add_neighbour(NodeId(2));
        b.push(x(), set(&[1]), Some(NodeId(1)));
        b.push(x(), set(&[2]), None);
        assert_eq!(
            group(&mut b, 1, true, false),
            vec![("x".to_string(), vec![2])]
        );
        assert_eq!(
            group(&mut b, 1, false, false),
            vec![("x".to_string(), vec![1, 2])]
        );
        assert_eq!(
            group(&mut b, 2, true, false),
            vec![("x".to_string(), vec![1, 2])]
        );
    }

    #[test]
    fn bp_heard_leaves_out_what_the_neighbour_sent_since_the_last_sync() {
        let mut b = DeltaBuffer::new(8);
        b.add_neighbour(NodeId(1));
        // Element 3 came first from neighbour 2, then from neighbour 1 (RR dropped that copy).
        b.push(x(), set(&[3]), Some(NodeId(2)));
        b.heard(NodeId(1), "x", &*set(&[3]));
        b.push(x(), set(&[4]), None);
        assert_eq!(
            group(&mut b, 1, true, true),
            vec![("x".to_string(), vec![4])]
        );
        // What was heard is forgotten at the sync: the next one sends everything unacknowledged.
        assert_eq!(
            group(&mut b, 1, true, true),
            vec![("x".to_string(), vec![3, 4])]
        );
        // Plain BP ignores it.
        b.heard(NodeId(1), "x", &*set(&[3, 4]));
        assert_eq!(
            group(&mut b, 1, true, false),
            vec![("x".to_string(), vec![3, 4])]
        );
        // A variable it sent whole is left out altogether.
        b.heard(NodeId(1), "x", &*set(&[3, 4]));
        assert!(group(&mut b, 1, true, true).is_empty());
    }

    #[test]
    fn rr_buffers_only_the_effective_part_of_a_received_delta() {
        let mut b = DeltaBuffer::new(8);
        b.push_received(x(), set(&[1, 2]), set(&[2]), NodeId(1), true);
        b.push_received(x(), set(&[1, 5]), set(&[5]), NodeId(1), false);
        let buffered: Vec<(Vec<u64>, Option<NodeId>)> =
            b.entries().map(|e| (elems(&*e.delta), e.origin)).collect();
        assert_eq!(
            buffered,
            vec![(vec![2], Some(NodeId(1))), (vec![1, 5], Some(NodeId(1)))]
        );
    }

    #[test]
    fn beyond_the_bound_the_oldest_entry_goes_and_who_needed_it_is_behind() {
        let mut b = DeltaBuffer::new(2);
        b.add_neighbour(NodeId(1));
        b.add_neighbour(NodeId(2));
        b.remember(NodeId(3), 1);
        b.remember(NodeId(4), 2);
        b.ack(NodeId(2), 2);
        assert_eq!(b.push(x(), set(&[1]), None), None);
        assert_eq!(b.push(x(), set(&[2]), None), None);
        let o = b.push(x(), set(&[3]), None).expect("over the bound");
        assert_eq!(
            o,
            Overflow {
                seq: 1,
                behind: vec![NodeId(1)],
                forgotten: vec![NodeId(3)],
            }
        );
        assert_eq!(b.len(), 2);
        assert!(!b.covers(1));
        assert_eq!(b.forget(NodeId(3)), None, "forgotten by the overflow");
        assert_eq!(b.forget(NodeId(4)), Some(2));
    }

    #[test]
    fn the_broadcast_carrier_takes_the_local_changes() {
        let mut b = DeltaBuffer::new(8);
        b.push(x(), set(&[1]), Some(NodeId(1)));
        b.push(x(), set(&[2]), None);
        b.push(x(), set(&[3]), None);
        let local: Vec<(String, Vec<u64>)> = b
            .take_local()
            .into_iter()
            .map(|(id, d)| (id, elems(&*d)))
            .collect();
        assert_eq!(local, vec![("x".to_string(), vec![2, 3])]);
        assert!(b.is_empty());
        assert_eq!(b.next_seq(), 4);
    }

    #[test]
    fn a_new_incarnation_starts_from_nothing() {
        let mut b = DeltaBuffer::new(8);
        b.add_neighbour(NodeId(1));
        b.ack(NodeId(1), 7);
        b.add_neighbour(NodeId(1));
        assert_eq!(b.acked(NodeId(1)), 7, "adding a tracked neighbour keeps it");
        b.reset_neighbour(NodeId(1));
        assert_eq!(b.acked(NodeId(1)), 0);
        b.set_acked(NodeId(1), 4);
        assert_eq!(b.acked(NodeId(1)), 4);
        b.set_acked(NodeId(1), 2);
        assert_eq!(b.acked(NodeId(1)), 2);
    }
}
