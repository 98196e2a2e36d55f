//! Per-node metrics: message and byte counts per kind (recorded by the runtime) and
//! named counters (recorded by atoms with [`Ctx::count`](crate::Ctx::count)).
//!
//! Everything is ordered (`BTreeMap`/sorted output) so snapshots are deterministic.

use crate::message::KindId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Traffic of one message kind on one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindStats {
    /// Messages sent (local and remote).
    pub msgs_sent: u64,
    /// Encoded payload bytes sent to other nodes (0 for local sends).
    pub bytes_sent: u64,
    /// Messages received and dispatched (local and remote).
    pub msgs_recv: u64,
    /// Encoded payload bytes received from other nodes.
    pub bytes_recv: u64,
}

/// The live metrics of a node. Cheap to update on the hot path: kinds are few, so they
/// sit in a small vector scanned linearly; named counters in a `BTreeMap`.
#[derive(Default)]
pub struct Metrics {
    kinds: Vec<(KindId, &'static str, KindStats)>,
    counters: BTreeMap<(&'static str, &'static str), u64>,
}

impl Metrics {
    fn kind(&mut self, id: KindId, name: &'static str) -> &mut KindStats {
        let i = match self.kinds.iter().position(|(k, _, _)| *k == id) {
            Some(i) => i,
            None => {
                self.kinds.push((id, name, KindStats::default()));
                self.kinds.len() - 1
            }
        };
        &mut self.kinds[i].2
    }
    /// Records one message of a kind sent, with its encoded size if it left the node.
    pub fn sent(&mut self, id: KindId, name: &'static str, bytes: usize) {
        let k = self.kind(id, name);
        k.msgs_sent += 1;
        k.bytes_sent += bytes as u64;
    }
    /// Records one message of a kind received, with its encoded size if it came from
    /// another node.
    pub fn received(&mut self, id: KindId, name: &'static str, bytes: usize) {
        let k = self.kind(id, name);
        k.msgs_recv += 1;
        k.bytes_recv += bytes as u64;
    }
    /// Adds `n` to the counter `name{label}` (`label` may be empty).
    pub fn count(&mut self, name: &'static str, label: &'static str, n: u64) {
        *self.counters.entry((name, label)).or_insert(0) += n;
    }
    /// The value of counter `name{label}`.
    pub fn counter(&self, name: &'static str, label: &'static str) -> u64 {
        self.counters.get(&(name, label)).copied().unwrap_or(0)
    }
    /// A deterministic, serializable copy.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut s = MetricsSnapshot::default();
        s.merge_from(self);
        s
    }
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty() && self.counters.is_empty()
    }
}

/// A deterministic, serializable metrics snapshot (of one node, or summed over nodes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Traffic per message kind name.
    pub kinds: BTreeMap<String, KindStats>,
    /// Counters keyed `name` or `name{label}`.
    pub counters: BTreeMap<String, u64>,
}

impl MetricsSnapshot {
    fn merge_from(&mut self, m: &Metrics) {
        for (_, name, st) in &m.kinds {
            let e = self.kinds.entry((*name).to_string()).or_default();
            add_stats(e, st);
        }
        for ((name, label), v) in &m.counters {
            *self.counters.entry(counter_key(name, label)).or_insert(0) += v;
        }
    }
    /// Adds another snapshot into this one (aggregation over nodes).
    pub fn merge(&mut self, other: &MetricsSnapshot) {
        for (k, st) in &other.kinds {
            add_stats(self.kinds.entry(k.clone()).or_default(), st);
        }
        for (k, v) in &other.counters {
            *self.counters.entry(k.clone()).or_insert(0) += v;
        }
    }
    /// The value of counter `name{label}` (`label` may be empty).
    pub fn counter(&self, name: &str, label: &str) -> u64 {
        self.counters
            .get(&counter_key(name, label))
            .copied()
            .unwrap_or(0)
    }
    /// Traffic of the kind called `kind`.
    pub fn kind(&self, kind: &str) -> KindStats {
        self.kinds.get(kind).copied().unwrap_or_default()
    }
    /// Totals over all kinds.
    pub fn total(&self) -> KindStats {
        let mut t = KindStats::default();
        for st in self.kinds.values() {
            add_stats(&mut t, st);
        }
        t
    }
}

fn add_stats(a: &mut KindStats, b: &KindStats) {
    a.msgs_sent += b.msgs_sent;
    a.bytes_sent += b.bytes_sent;
    a.msgs_recv += b.msgs_recv;
    a.bytes_recv += b.bytes_recv;
}

fn counter_key(name: &str, label: &str) -> String {
    if label.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{label}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_aggregates() {
        let mut a = Metrics::default();
        a.sent(KindId(1), "k", 10);
        a.received(KindId(1), "k", 0);
        a.count("x", "", 2);
        a.count("x", "l", 3);
        let mut s = a.snapshot();
        s.merge(&a.snapshot());
        assert_eq!(s.kind("k").msgs_sent, 2);
        assert_eq!(s.kind("k").bytes_sent, 20);
        assert_eq!(s.counter("x", ""), 4);
        assert_eq!(s.counter("x", "l"), 6);
        assert_eq!(s.total().msgs_recv, 2);
    }
}
