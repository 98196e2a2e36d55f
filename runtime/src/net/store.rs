//! The node's durable key-value store: one [redb](https://docs.rs/redb) file in the data
//! directory.
//!
//! Crash model: every `put` and `delete` is its own committed write transaction with redb's
//! default `Durability::Immediate` (fsync before the call returns), so whatever a call reported
//! as written survives `kill -9` and power loss; a write interrupted by a crash is either fully
//! there or absent. redb locks the file, so two processes cannot share a data directory.

//! # Opening, and a damaged or lost file
//!
//! [`RedbStore::open`] opens an existing file and never creates one; [`RedbStore::create`]
//! makes a new one and never overwrites. Neither panics on a bad file: a missing file is
//! [`OpenError::Missing`], a zero-length one [`OpenError::Empty`] (redb itself would quietly
//! initialise a fresh database in it), anything redb cannot read [`OpenError::Damaged`],
//! each naming the file. Whether a node may then start with an empty store is the caller's
//! decision (the network [`Node`](super::Node) refuses unless told to reset, and
//! [`move_aside`] keeps the bad file).
//!
//! redb 2 checks some damage with assertions rather than errors: a file cut short
//! (`truncate -s 50%`) trips `assert!(storage.raw_file_len()? >= header.layout().len())` in
//! its page manager, and redb offers no check that runs before `open` (its
//! `check_integrity` needs an open database). Predicting the assertion means re-deriving
//! redb's private region layout from its header, which would silently drift from the
//! library. So opening runs inside [`std::panic::catch_unwind`]: a panic there becomes
//! [`OpenError::Damaged`] with redb's message, and its default report on stderr is suppressed
//! for that thread only. A file redb opens can still make it panic on reading a damaged page
//! (the decoder fuzzing found one: "range end index … out of range for slice of length 4096"
//! in its b-tree code), so opening also reads every record once, and every later read and
//! write runs the same way, a panic becoming a [`StoreError`]. Nothing is shared with the
//! code that panicked: it owns only the path, and the half-opened database (and its file
//! handle and lock) is dropped while unwinding, which is why `AssertUnwindSafe` is sound.

use crate::error::StoreError;
use crate::store::KvPairs;
use redb::{Database, DatabaseError, StorageError, TableDefinition};
use std::cell::Cell;
use std::path::{Path, PathBuf};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "store.redb";

/// Why the store file could not be opened or created. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// There is no store file.
    #[error("store file {} does not exist", .0.display())]
    Missing(PathBuf),
    /// The store file has zero bytes (truncated, or never written): its data is gone.
    #[error("store file {} is empty (0 bytes)", .0.display())]
    Empty(PathBuf),
    /// The store file is not a readable redb database (truncated, overwritten, corrupted).
    #[error("store file {} is damaged: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What redb said.
        reason: String,
    },
    /// The file could not be used for another reason (in use by another process,
    /// permissions, a newer or older file format): nothing says its data is lost.
    #[error("store file {}: {reason}", path.display())]
    Unavailable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl OpenError {
    /// Whether the store's durable state is gone or unreadable (missing, empty or damaged),
    /// as opposed to merely unavailable right now.
    pub fn is_lost(&self) -> bool {
        matches!(
            self,
            OpenError::Missing(_) | OpenError::Empty(_) | OpenError::Damaged { .. }
        )
    }
}

fn err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::caused_by(e)
}

/// Sorts a redb error into damaged (the bytes are bad) or unavailable (they may be fine).
fn classify(path: &Path, e: DatabaseError) -> OpenError {
    let damaged = |reason: String| OpenError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let unavailable = |reason: String| OpenError::Unavailable {
        path: path.to_path_buf(),
        reason,
    };
    match e {
        DatabaseError::DatabaseAlreadyOpen => unavailable(
            "in use by another process (is another node running on this data directory?)".into(),
        ),
        DatabaseError::Storage(StorageError::Corrupted(m)) => damaged(m),
        DatabaseError::Storage(StorageError::Io(io))
            if matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            damaged(format!("not a redb database ({io})"))
        }
        DatabaseError::RepairAborted => damaged("redb's repair was aborted".into()),
        other => unavailable(other.to_string()),
    }
}

thread_local! {
    /// Set while this thread opens a store: the panic hook stays quiet for it.
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into `Err(message)` without the default report on stderr (for
/// this thread; other threads' panics are reported as before). See the module docs.
fn catch_quietly<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANICS.with(Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET_PANICS.with(|q| q.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET_PANICS.with(|q| q.set(false));
    r.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "redb panicked".into())
    })
}

/// Moves a bad store file aside to `store.redb.lost-<n>` (the first free `n` from 1) and
/// returns the new path; the data is kept for inspection, never deleted.
pub fn move_aside(dir: &Path) -> std::io::Result<PathBuf> {
    let from = dir.join(STORE_FILE);
    for n in 1..=10_000u32 {
        let to = dir.join(format!("{STORE_FILE}.lost-{n}"));
        if !to.exists() {
            std::fs::rename(&from, &to)?;
            return Ok(to);
        }
    }
    Err(std::io::Error::other(format!(
        "too many {STORE_FILE}.lost-* files in {}",
        dir.display()
    )))
}

/// A durable, ordered byte-string key-value store backed by redb.
pub struct RedbStore {
    /// `None` only while dropping.
    db: Option<Database>,
}

impl Drop for RedbStore {
    /// Closes the file with a redb panic turned into a log line: closing a damaged file
    /// can trip an assertion in redb (the decoder fuzzing found one, module docs).
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            if let Err(panic) = catch_quietly(move || drop(db)) {
                tracing::error!("closing the store: redb panicked ({panic}); the file is damaged");
            }
        }
    }
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the existing store file `dir/store.redb` (redb repairs it if the last run
    /// crashed). Never creates it, never panics: see [`OpenError`].
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        let path = dir.join(STORE_FILE);
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OpenError::Missing(path))
            }
            Err(e) => {
                return Err(OpenError::Unavailable {
                    path,
                    reason: e.to_string(),
                })
            }
            Ok(m) if m.len() == 0 => return Err(OpenError::Empty(path)),
            Ok(_) => {}
        }
        Self::init(&path, || Database::builder().open(&path))
    }

    /// Creates a new store file `dir/store.redb`; `dir` must exist. Fails if the file exists.
    pub fn create(dir: &Path) -> Result<Self, OpenError> {
        let path = dir.join(STORE_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| OpenError::Unavailable {
                path: path.clone(),
                reason: format!("cannot create: {e}"),
            })?;
        Self::init(&path, || Database::builder().create_file(file))
    }

    /// Opens `dir/store.redb`, creating it if there is no file (for tools and tests; a node
    /// decides itself, see [`Node`](super::Node)).
    pub fn open_or_create(dir: &Path) -> Result<Self, OpenError> {
        match Self::open(dir) {
            Err(OpenError::Missing(_)) => Self::create(dir),
            r => r,
        }
    }

    /// Runs redb's open (`db`) and creates the table, with panics caught (module docs).
    fn init(
        path: &Path,
        db: impl FnOnce() -> Result<Database, DatabaseError>,
    ) -> Result<Self, OpenError> {
        let opened = catch_quietly(|| -> Result<Self, OpenError> {
            let db = db().map_err(|e| classify(path, e))?;
            // Create the table up front so reads never see "table does not exist".
            let fail = |e: &dyn std::fmt::Display| OpenError::Damaged {
                path: path.to_path_buf(),
                reason: e.to_string(),
            };
            let txn = db.begin_write().map_err(|e| fail(&e))?;
            txn.open_table(TABLE).map_err(|e| fail(&e))?;
            txn.commit().map_err(|e| fail(&e))?;
            let store = Self { db: Some(db) };
            // Read every record once: a file redb opens may still make it panic, or fail, on
            // a damaged page (module docs), and the node reads its records at start anyway.
            store.scan_all().map_err(|e| fail(&e))?;
            Ok(store)
        });
        match opened {
            Ok(r) => r,
            Err(panic) => Err(OpenError::Damaged {
                path: path.to_path_buf(),
                reason: format!("redb cannot read it ({panic})"),
            }),
        }
    }

    fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("the database is open until the store is dropped")
    }

    /// Reads every record (their bytes are dropped), failing on the first that cannot be read.
    fn scan_all(&self) -> Result<(), StoreError> {
        let txn = self.db().begin_read().map_err(err)?;
        let table = txn.open_table(TABLE).map_err(err)?;
        for entry in table.range::<&[u8]>(..).map_err(err)? {
            let (k, v) = entry.map_err(err)?;
            std::hint::black_box((k.value().len(), v.value().len()));
        }
        Ok(())
    }

    /// Runs a read or write of the open file with redb's panics turned into errors (a page
    /// damaged after the start: see the module docs).
    fn guarded<R>(&self, f: impl FnOnce() -> Result<R, StoreError>) -> Result<R, StoreError> {
        catch_quietly(f).unwrap_or_else(|panic| {
            Err(StoreError::new(format!(
                "the store file is damaged: redb cannot read it ({panic})"
            )))
        })
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.guarded(|| {
            let txn = self.db().begin_read().map_err(err)?;
            let table = txn.open_table(TABLE).map_err(err)?;
            Ok(table.get(key).map_err(err)?.map(|v| v.value().to_vec()))
        })
    }

    /// Sets `key` to `value` in one committed, durable transaction.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.guarded(|| {
            let txn = self.db().begin_write().map_err(err)?;
            {
                let mut table = txn.open_table(TABLE).map_err(err)?;
                table.insert(key, value).map_err(err)?;
            }
            txn.commit().map_err(err)?;
            Ok(())
        })
    }

    /// Removes `key` in one committed, durable transaction; returns whether it was there.
    pub fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        self.guarded(|| {
            let txn = self.db().begin_write().map_err(err)?;
            let existed = {
                let mut table = txn.open_table(TABLE).map_err(err)?;
                let old = table.remove(key).map_err(err)?;
                old.is_some()
            };
            txn.commit().map_err(err)?;
            Ok(existed)
        })
    }

    /// Every `(key, value)` whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<KvPairs, StoreError> {
        self.guarded(|| {
            let txn = self.db().begin_read().map_err(err)?;
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
        })
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
            assert!(matches!(RedbStore::open(&dir), Err(OpenError::Missing(_))));
            let s = RedbStore::create(&dir).unwrap();
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
        assert!(RedbStore::create(&dir).is_err(), "create never overwrites");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn fresh_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rasp-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `truncate -s 50%` of a store made redb 2.6 assert in its page manager (a panic out of
    /// `open`); now it is an error naming the file.
    #[test]
    fn truncated_empty_and_garbage_files_are_errors_not_panics() {
        let dir = fresh_dir("damaged");
        let path = dir.join(STORE_FILE);
        {
            let s = RedbStore::create(&dir).unwrap();
            for i in 0..200u32 {
                s.put(&i.to_be_bytes(), &[7; 100]).unwrap();
            }
        }
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let e = RedbStore::open(&dir).unwrap_err();
        assert!(matches!(e, OpenError::Damaged { .. }) && e.is_lost(), "{e}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");

        std::fs::write(&path, b"").unwrap();
        let e = RedbStore::open(&dir).unwrap_err();
        assert!(matches!(e, OpenError::Empty(_)), "{e}");

        std::fs::write(&path, vec![0xAB; 10_000]).unwrap();
        let e = RedbStore::open(&dir).unwrap_err();
        assert!(matches!(e, OpenError::Damaged { .. }), "{e}");

        let aside = move_aside(&dir).unwrap();
        assert_eq!(aside, dir.join("store.redb.lost-1"));
        assert_eq!(std::fs::read(&aside).unwrap(), vec![0xAB; 10_000]);
        assert!(matches!(RedbStore::open(&dir), Err(OpenError::Missing(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
