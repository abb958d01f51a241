//! The store: the in-memory map, the log that makes it durable, and the data directory they live in.
//!
//! The invariant this module keeps is the write-ahead rule: **a change reaches the log before it
//! reaches the map.** [`Store::set`] and [`Store::delete`] append the record (and push it from the
//! `BufWriter` into the file) first; only when that succeeded do they change the map. So a reader
//! can never see a value that a crash would take back, and a failed write changes nothing.
//!
//! The data directory holds two files: `walkv.wal` (see [`crate::wal`]) and `LOCK`, which the
//! store holds an exclusive `flock` on for its whole life, so that two servers can never append to
//! the same log.
//!
//! The map is a plain `HashMap` with std's default SipHash, which keeps lookups safe against
//! crafted keys. The log sits behind a mutex only because the periodic sync thread needs it too.

use crate::error::Error;
use crate::wal::{self, Op, Recovery, Wal};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

pub struct Store {
    map: HashMap<Vec<u8>, Vec<u8>>,
    wal: Arc<Mutex<Wal>>,
    /// True once the log has stopped taking writes (see [`Wal::sync`]); read without locking.
    log_failed: Arc<AtomicBool>,
    /// Held open for the store's life: closing it releases the lock.
    _lock: File,
}

impl Store {
    /// Opens the store in `dir` (created if missing): takes the lock, replays the log into the
    /// map, and trims a torn tail. Refuses a corrupt log or a directory another process holds.
    pub fn open(dir: &Path) -> Result<(Store, Recovery), Error> {
        let lock = lock_data_dir(dir)?;
        let mut map = HashMap::new();
        let (wal, recovery) = Wal::open(&wal_path(dir), |record| match record.op {
            Op::Set => {
                map.insert(record.key.to_vec(), record.value.to_vec());
            }
            Op::Delete => {
                map.remove(record.key);
            }
        })?;
        let log_failed = wal.failed_flag();
        let store = Store { map, wal: Arc::new(Mutex::new(wal)), log_failed, _lock: lock };
        Ok((store, recovery))
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(Vec::as_slice)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sets `key` to `value`: log first, then map. Returns the record's sequence number and
    /// whether the key is new.
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(u64, bool), Error> {
        let seq = self.wal()?.append(Op::Set, key, value)?;
        let created = self.map.insert(key.to_vec(), value.to_vec()).is_none();
        Ok((seq, created))
    }

    /// Deletes `key`: log first, then map. Deleting a missing key writes nothing and returns
    /// `None`; deleting is idempotent either way.
    pub fn delete(&mut self, key: &[u8]) -> Result<Option<u64>, Error> {
        if !self.map.contains_key(key) {
            wal::check_lengths(key, b"")?;
            return Ok(None);
        }
        let seq = self.wal()?.append(Op::Delete, key, b"")?;
        self.map.remove(key);
        Ok(Some(seq))
    }

    /// Flushes and fsyncs the log; returns the last synced sequence number.
    pub fn sync(&self) -> Result<u64, Error> {
        self.wal()?.sync()
    }

    /// (last sequence number written, last sequence number synced).
    pub fn seqs(&self) -> Result<(u64, u64), Error> {
        let wal = self.wal()?;
        Ok((wal.last_seq(), wal.synced_seq()))
    }

    /// Fails the log as a failed fsync would, for tests of what follows.
    #[cfg(test)]
    pub(crate) fn fail_log_for_test(&self) {
        lock_wal(&self.wal).expect("log mutex").fail_for_test();
    }

    /// True once the log has stopped taking writes; a restart is the way out.
    pub fn log_failed(&self) -> bool {
        self.log_failed.load(Ordering::SeqCst)
    }

    /// A handle on the log for the periodic sync thread.
    pub fn shared_wal(&self) -> Arc<Mutex<Wal>> {
        Arc::clone(&self.wal)
    }

    fn wal(&self) -> Result<MutexGuard<'_, Wal>, Error> {
        lock_wal(&self.wal)
    }
}

/// Locks the shared log. A poisoned mutex means a thread panicked while writing or syncing; the
/// log's state is then unknown, so no more writes are accepted.
pub fn lock_wal(wal: &Mutex<Wal>) -> Result<MutexGuard<'_, Wal>, Error> {
    wal.lock()
        .map_err(|_| Error::Failed { reason: "a thread panicked while using the log".to_string() })
}

/// The log file's path in `dir`.
pub fn wal_path(dir: &Path) -> PathBuf {
    dir.join(wal::FILE_NAME)
}

/// Creates `dir` if needed and takes an exclusive lock on its `LOCK` file.
pub fn lock_data_dir(dir: &Path) -> Result<File, Error> {
    if !dir.exists() {
        fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create data directory {}", dir.display()), e))?;
        if let Some(parent) = dir.parent() {
            wal::sync_dir(parent)?;
        }
    }
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("open lock file {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked { path: dir.to_path_buf() }),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(format!("lock {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    /// Sets and deletes come back after reopening, in the order they were made.
    #[test]
    fn reopen_replays_sets_and_deletes() {
        let dir = TempDir::new("replay");
        {
            let (mut store, rec) = Store::open(&dir).unwrap();
            assert!(rec.created);
            assert_eq!(store.set(b"a", b"1").unwrap(), (1, true));
            assert_eq!(store.set(b"a", b"2").unwrap(), (2, false));
            store.set(b"b", b"x").unwrap();
            assert_eq!(store.delete(b"b").unwrap(), Some(4));
            assert_eq!(store.delete(b"b").unwrap(), None);
        }
        let (store, rec) = Store::open(&dir).unwrap();
        assert_eq!((rec.records, rec.last_seq, rec.created), (4, 4, false));
        assert_eq!(store.get(b"a"), Some(&b"2"[..]));
        assert_eq!(store.get(b"b"), None);
        assert_eq!(store.len(), 1);
    }

    /// A second store on the same directory is refused while the first holds it.
    #[test]
    fn second_open_is_refused_while_locked() {
        let dir = TempDir::new("lock");
        let (_first, _) = Store::open(&dir).unwrap();
        match Store::open(&dir) {
            Err(Error::Locked { .. }) => {}
            other => panic!("expected Locked, got {:?}", other.err()),
        }
    }

    /// Limits are enforced before anything is written, and a refused write changes nothing.
    #[test]
    fn oversized_writes_are_refused_and_change_nothing() {
        let dir = TempDir::new("limits");
        let (mut store, _) = Store::open(&dir).unwrap();
        let big = vec![0u8; wal::MAX_VALUE_LEN + 1];
        assert!(matches!(store.set(b"k", &big), Err(Error::TooLarge(_))));
        assert!(matches!(store.set(b"", b"v"), Err(Error::Invalid(_))));
        assert!(store.is_empty());
        assert_eq!(store.set(b"k", b"v").unwrap().0, 1);
    }
}
