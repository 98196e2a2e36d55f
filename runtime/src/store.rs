//! An in-memory ordered key-value store implementing the durable-store syscalls.
//!
//! The simulator uses it as each node's "disk" (it survives simulated crashes); tests and
//! the network runtime may use it where durability is not needed.

use std::collections::BTreeMap;
use std::ops::Bound;

/// Key-value pairs in key order, as returned by prefix scans.
pub type KvPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Ordered map from byte keys to byte values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// The value under `key`.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }
    /// Sets `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.map.insert(key.to_vec(), value.to_vec());
    }
    /// Removes `key`; whether it was present.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        self.map.remove(key).is_some()
    }
    /// All pairs whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> KvPairs {
        self.map
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_prefix_is_ordered_and_bounded() {
        let mut s = MemStore::new();
        s.put(b"a/2", b"2");
        s.put(b"a/1", b"1");
        s.put(b"b/1", b"x");
        s.put(b"a", b"0");
        let keys: Vec<_> = s.scan_prefix(b"a/").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"a/1".to_vec(), b"a/2".to_vec()]);
        assert!(s.delete(b"a/1"));
        assert!(!s.delete(b"a/1"));
        assert_eq!(s.get(b"a/2"), Some(b"2".to_vec()));
        assert_eq!(s.len(), 3);
    }
}
