//! The node's durable key-value store: one [redb](https://docs.rs/redb) file in the data
//! directory.
//!
//! Crash model: every `put` and `delete` is its own committed write transaction with redb's
//! default `Durability::Immediate` (fsync before the call returns), so whatever a call reported
//! as written survives `kill -9` and power loss; a write interrupted by a crash is either fully
//! there or absent. redb locks the file, so two processes cannot share a data directory.

use crate::error::StoreError;
use crate::store::KvPairs;
use redb::{Database, TableDefinition};
use std::path::Path;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "store.redb";

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// A durable, ordered byte-string key-value store backed by redb.
pub struct RedbStore {
    db: Database,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens (or creates) the store file `dir/store.redb`; `dir` must exist.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = Database::create(dir.join(STORE_FILE)).map_err(err)?;
        // Create the table up front so reads never see "table does not exist".
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(TABLE).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(Self { db })
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(TABLE).map_err(err)?;
        Ok(table.get(key).map_err(err)?.map(|v| v.value().to_vec()))
    }

    /// Sets `key` to `value` in one committed, durable transaction.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut table = txn.open_table(TABLE).map_err(err)?;
            table.insert(key, value).map_err(err)?;
        }
        txn.commit().map_err(err)?;
        Ok(())
    }

    /// Removes `key` in one committed, durable transaction; returns whether it was there.
    pub fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(err)?;
        let existed = {
            let mut table = txn.open_table(TABLE).map_err(err)?;
            let old = table.remove(key).map_err(err)?;
            old.is_some()
        };
        txn.commit().map_err(err)?;
        Ok(existed)
    }

    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<KvPairs, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(TABLE).map_err(err)?;
        let mut out = Vec::new();
        for entry in table.range(prefix..).map_err(err)? {
            let (k, v) = entry.map_err(err)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_scan_and_reopen() {
        let dir = std::env::temp_dir().join(format!("rasp-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            let s = RedbStore::open(&dir).unwrap();
            s.put(b"a/1", b"x").unwrap();
            s.put(b"a/2", b"y").unwrap();
            s.put(b"b/1", b"z").unwrap();
            assert_eq!(s.get(b"a/1").unwrap().as_deref(), Some(&b"x"[..]));
            assert!(s.delete(b"a/1").unwrap());
            assert!(!s.delete(b"a/1").unwrap());
            let scan = s.scan_prefix(b"a/").unwrap();
            assert_eq!(scan, vec![(b"a/2".to_vec(), b"y".to_vec())]);
        }
        let s = RedbStore::open(&dir).unwrap();
        assert_eq!(s.get(b"b/1").unwrap().as_deref(), Some(&b"z"[..]));
        assert_eq!(s.get(b"a/1").unwrap(), None);
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
