//! The store: the in-memory map, the log that makes it durable, and the data directory they live in.
//!
//! The invariant this module keeps is the write-ahead rule: **a change reaches the log before it
//! reaches the map.** [`Store::set`] and [`Store::delete`] append the record (and push it from the
//! `BufWriter` into the file) first; only when that succeeded do they change the map. So a reader
//! can never see a value that a crash would take back, and a failed write changes nothing.
//!
//! The data directory holds the log's files (a snapshot and segments, see [`crate::wal`] and
//! its *Data directory* section; side files of a recovery or a repair are described in
//! [`crate::wal::files`]) and `LOCK`, which the store holds an exclusive `flock` on for its
//! whole life, so that two servers can never append to the same log, and a repair never runs
//! under a server. The store also keeps the sum of what its live keys take in a snapshot
//! (`live_bytes`) and the files before the segment being written ([`Layout`]), which is what a
//! compaction merges ([`Store::begin_compaction`]).
//!
//! The map is std's hash table with its default SipHash, which keeps lookups safe against
//! crafted keys. Each key, its value and the seq of the record that set it (its ETag) live in one
//! allocation, an `Entry`, and the table holds
//! only a 16-byte pointer to it: with 1M keys of 100-byte values that is about a third less memory
//! than a `HashMap<Vec<u8>, Vec<u8>>` (two allocations and 48 bytes of slot per key), and replay
//! allocates half as often. The log sits behind a mutex only because the sync thread needs it too.

use crate::error::Error;
use crate::wal::dir::Opened;
use crate::wal::layout::Layout;
use crate::wal::snapshot::entry_bytes;
use crate::wal::{self, Body, Op, Options, Recovery, Wal, compact};
use entry::Entry;
use std::collections::{BinaryHeap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

mod entry;

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

pub struct Store {
    map: HashSet<Entry>,
    /// The sum of [`entry_bytes`] over the map: what a snapshot of it takes.
    live_bytes: u64,
    dir: PathBuf,
    /// The snapshot and sealed segments before the segment being written.
    layout: Layout,
    wal: Arc<Mutex<Wal>>,
    /// True once the log has stopped taking writes (see [`Wal::sync`]); read without locking.
    log_failed: Arc<AtomicBool>,
    /// Held open for the store's life: closing it releases the lock.
    _lock: File,
}

impl Store {
    /// Opens the store in `dir` (created if missing): takes the lock, replays the log into the
    /// map (the snapshot, then every segment), and brings the log to a clean end (see the
    /// recovery rules in [`crate::wal`]). Refuses a corrupt log or a directory another process
    /// holds.
    pub fn open(dir: &Path, options: Options) -> Result<(Store, Recovery), Error> {
        Store::open_dir(dir, options).map(|(store, recovery, _)| (store, recovery))
    }

    /// [`Store::open`], also returning what opening the directory found and did.
    pub fn open_dir(dir: &Path, options: Options) -> Result<(Store, Recovery, Opened), Error> {
        Store::open_dir_while(dir, options, || {})
    }

    /// [`Store::open_dir`], calling `between` on this thread between batches of the replay
    /// (every 256 records, and at least every 50 ms): the server answers requests there while
    /// it replays.
    pub fn open_dir_while(
        dir: &Path,
        options: Options,
        mut between: impl FnMut(),
    ) -> Result<(Store, Recovery, Opened), Error> {
        let lock = lock_data_dir(dir)?;
        let mut replay = Replay::new(estimate_keys(dir));
        let (changes, batches) = mpsc::sync_channel::<Vec<Change>>(Replay::IN_FLIGHT);
        let opened = thread::scope(|scope| {
            let reader = thread::Builder::new()
                .name("replay".into())
                .spawn_scoped(scope, move || read_log(dir, options, changes))
                .map_err(|e| Error::io("start the replay thread", e))?;
            loop {
                match batches.recv_timeout(Duration::from_millis(50)) {
                    Ok(batch) => replay.apply(batch),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                between();
            }
            reader.join().unwrap_or_else(|_| {
                Err(Error::Failed { reason: "the replay thread panicked".to_string() })
            })
        });
        let (wal, layout, recovery, opened) = opened?;
        let (map, live_bytes) = replay.finish();
        let log_failed = wal.failed_flag();
        let store = Store {
            map,
            live_bytes,
            dir: dir.to_path_buf(),
            layout,
            wal: Arc::new(Mutex::new(wal)),
            log_failed,
            _lock: lock,
        };
        Ok((store, recovery, opened))
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(Entry::value)
    }

    /// The value of `key` and the seq of the record that set it (its ETag), if it has one.
    pub fn get_versioned(&self, key: &[u8]) -> Option<(&[u8], u64)> {
        self.map.get(key).map(|e| (e.value(), e.seq()))
    }

    /// The seq of the record that set `key`'s value (its ETag), if it has one.
    pub fn version(&self, key: &[u8]) -> Option<u64> {
        self.map.get(key).map(Entry::seq)
    }

    /// The first `limit` keys in byte order that start with `prefix` and sort after `after`,
    /// and whether more follow. The table has no order, so this looks at every key, keeping the
    /// `limit + 1` smallest in a heap (see [`crate::http::list`] for what that costs).
    pub fn keys_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> (Vec<&[u8]>, bool) {
        let mut heap: BinaryHeap<&[u8]> = BinaryHeap::with_capacity(limit.saturating_add(1));
        // Once the heap is full, the largest key in it: a key must sort before it to get in.
        let mut bound: Option<&[u8]> = None;
        for entry in &self.map {
            let key = entry.key();
            if !key.starts_with(prefix) || after.is_some_and(|a| key <= a) {
                continue;
            }
            match bound {
                Some(largest) if key >= largest => continue,
                Some(_) => {
                    if let Some(mut top) = heap.peek_mut() {
                        *top = key; // sifted into place when `top` is dropped
                    }
                }
                None => heap.push(key),
            }
            if heap.len() > limit {
                bound = heap.peek().copied();
            }
        }
        let mut keys = heap.into_sorted_vec();
        let more = keys.len() > limit;
        keys.truncate(limit);
        (keys, more)
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
        let old = put(&mut self.map, &mut self.live_bytes, Entry::new(seq, key, value));
        Ok((seq, old.is_none()))
    }

    /// Deletes `key`: log first, then map. Deleting a missing key writes nothing and returns
    /// `None`; deleting is idempotent either way.
    pub fn delete(&mut self, key: &[u8]) -> Result<Option<u64>, Error> {
        if !self.map.contains(key) {
            wal::check_lengths(key, b"")?;
            return Ok(None);
        }
        let seq = self.wal()?.append(Op::Delete, key, b"")?;
        take(&mut self.map, &mut self.live_bytes, key);
        Ok(Some(seq))
    }

    /// Bytes the live keys take in a snapshot: the `live_bytes` of `/status`.
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Bytes in the files of the log: the snapshot and every segment.
    pub fn log_bytes(&self) -> Result<u64, Error> {
        Ok(self.layout.bytes().saturating_add(self.wal()?.bytes()))
    }

    /// Bytes of every file in the data directory (the `disk_bytes` of `/status`).
    pub fn disk_bytes(&self) -> u64 {
        wal::layout::disk_bytes(&self.dir)
    }

    /// Prepares a compaction: seals the segment being written (unless it holds no writes) and
    /// returns what to merge, with the map's key count and live bytes as of the last sealed
    /// seq. `None` if there is nothing to merge (no sealed segment).
    pub fn begin_compaction(&mut self, boot: wal::BootId) -> Result<Option<compact::Job>, Error> {
        let mut wal = lock_wal(&self.wal)?;
        if !wal.holds_no_writes() {
            let sealed = wal.rotate()?;
            self.layout.sealed.push(sealed);
        }
        if self.layout.sealed.is_empty() {
            return Ok(None);
        }
        Ok(Some(compact::Job {
            dir: self.dir.clone(),
            base: self.layout.snapshot.clone(),
            sealed: self.layout.sealed.clone(),
            upto: wal.last_seq(),
            keys: self.map.len() as u64,
            live_bytes: self.live_bytes,
            boot,
        }))
    }

    /// Takes a finished compaction's snapshot into the layout: it is in charge now, and the
    /// segments it covers are gone.
    pub fn finish_compaction(&mut self, done: &compact::Done) {
        let upto = done.snapshot.upto;
        self.layout.snapshot = Some(done.snapshot.clone());
        self.layout.sealed.retain(|s| s.first > upto);
    }

    /// Flushes and fsyncs the log; returns the last synced sequence number.
    pub fn sync(&self) -> Result<u64, Error> {
        self.wal()?.sync()
    }

    /// For a clean stop: releases the log's reserved space and fsyncs it; the last synced seq.
    pub fn close(&self) -> Result<u64, Error> {
        self.wal()?.close()
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

/// Puts `entry` in `map`, keeping `live_bytes` the sum of the map's [`Entry::bytes`]; returns
/// the entry it replaced.
fn put(map: &mut HashSet<Entry>, live_bytes: &mut u64, entry: Entry) -> Option<Entry> {
    *live_bytes += entry.bytes();
    let old = map.replace(entry);
    if let Some(old) = &old {
        *live_bytes -= old.bytes();
    }
    old
}

/// Takes `key` out of `map`, keeping `live_bytes` the sum of the map's [`Entry::bytes`].
fn take(map: &mut HashSet<Entry>, live_bytes: &mut u64, key: &[u8]) -> Option<Entry> {
    let old = map.take(key);
    if let Some(old) = &old {
        *live_bytes -= old.bytes();
    }
    old
}

/// What the replay thread opened: the log, the files before its newest segment, and what
/// recovery and the opening did.
type OpenedLog = (Wal, Layout, Recovery, Opened);

/// A change read from the log, on its way from the replay thread to the table.
enum Change {
    Set(Entry),
    Delete(Box<[u8]>),
}

/// The replay thread: opens the log in `dir` (every recovery rule is [`wal::dir::open`]'s),
/// checking each record and copying it into its `Entry`, and sends the changes in log order,
/// [`Replay::BATCH`] at a time.
fn read_log(
    dir: &Path,
    options: Options,
    changes: mpsc::SyncSender<Vec<Change>>,
) -> Result<OpenedLog, Error> {
    if let Some(delay) = crate::failpoint::replay_delay() {
        thread::sleep(delay);
    }
    let mut batch = Vec::with_capacity(Replay::BATCH);
    let mut progress = Progress::new(wal::layout::log_bytes(dir), Instant::now());
    let opened = wal::dir::open(dir, options, |record| {
        match record.body {
            Body::Set { key, value } => {
                progress.note(entry_bytes(key, value));
                batch.push(Change::Set(Entry::new(record.seq, key, value)));
            }
            Body::Delete { key } => {
                progress.note(entry_bytes(key, b""));
                batch.push(Change::Delete(key.into()));
            }
            Body::Mark(_) | Body::Gap { .. } => return,
        }
        if progress.records.is_multiple_of(Progress::EVERY)
            && let Some(line) = progress.report(Instant::now())
        {
            crate::log!("{line}");
            // A replay that keeps moving is not a start that hangs (see crate::notify).
            crate::notify::send(&format!("STATUS={line}\nEXTEND_TIMEOUT_USEC=5000000"));
        }
        if batch.len() == Replay::BATCH {
            // The receiver only goes away if the main thread panicked: nothing left to do.
            let _ = changes.send(std::mem::replace(&mut batch, Vec::with_capacity(Replay::BATCH)));
        }
    });
    if !batch.is_empty() {
        let _ = changes.send(batch);
    }
    opened
}

/// How far a replay has come, for a line on stderr about once a second when it takes longer
/// than that (the summary comes after, from the server).
struct Progress {
    records: u64,
    bytes: u64,
    /// The bytes of the log's files.
    total: u64,
    started: Instant,
    next: Instant,
}

impl Progress {
    /// The clock is looked at once per this many records.
    const EVERY: u64 = 4096;

    fn new(total: u64, now: Instant) -> Progress {
        Progress { records: 0, bytes: 0, total, started: now, next: now + Duration::from_secs(1) }
    }

    fn note(&mut self, bytes: u64) {
        self.records += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// The progress line, if a second has passed since the last one (or the start).
    fn report(&mut self, now: Instant) -> Option<String> {
        if now < self.next {
            return None;
        }
        self.next = now + Duration::from_secs(1);
        let percent = (self.bytes as f64 * 100.0 / self.total.max(1) as f64).min(100.0);
        Some(format!(
            "replaying: {} records, {} of {} bytes of the log ({percent:.0}%) in {:.1} s",
            self.records,
            self.bytes,
            self.total,
            now.duration_since(self.started).as_secs_f64()
        ))
    }
}

/// The map being rebuilt from the log at startup, on the main thread while the replay thread
/// reads the log.
///
/// The work splits in two about evenly: reading, checking every record's CRC and copying it
/// into an `Entry` (the replay thread), and putting entries into the table (here). With a
/// million keys the table is larger than the CPU's caches, so every insert waits for memory;
/// a loop that does nothing but insert lets several of those waits overlap. So changes come in
/// batches, in log order. Measured on a snapshot of 1M keys (125 MiB), five starts each on 2
/// shared cores: one thread inserting record by record 0.60–0.73 s; one thread in batches of
/// 256 0.39–0.48 s (0.346 s median in a later run); two threads 0.268 s median (0.262–0.280),
/// in that later run, alternating with the one-thread build.
struct Replay {
    map: HashSet<Entry>,
    live_bytes: u64,
}

impl Replay {
    const BATCH: usize = 256;
    /// Batches read ahead of the table, at most.
    const IN_FLIGHT: usize = 64;

    fn new(keys: usize) -> Replay {
        // Sized up front: growing the table one doubling at a time rehashes every key each time.
        Replay { map: HashSet::with_capacity(keys), live_bytes: 0 }
    }

    fn apply(&mut self, batch: Vec<Change>) {
        for change in batch {
            match change {
                Change::Set(entry) => put(&mut self.map, &mut self.live_bytes, entry),
                Change::Delete(key) => take(&mut self.map, &mut self.live_bytes, &key),
            };
        }
    }

    /// The map and its live bytes.
    fn finish(self) -> (HashSet<Entry>, u64) {
        let mut map = self.map;
        if map.capacity() / 2 > map.len() {
            // Many records were overwrites or deletes. Keep room to grow, so that the first new
            // key after startup does not rehash the whole table while a client waits.
            map.shrink_to(map.len() * 2);
        }
        (map, self.live_bytes)
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

/// About how many keys replaying `dir` will produce (the SET records in its files, counted
/// without checking them): for sizing the map before replay.
fn estimate_keys(dir: &Path) -> usize {
    let Ok(listing) = wal::layout::list(dir) else { return 0 };
    if !listing.is_segmented() {
        return wal::count_sets(&wal_path(dir));
    }
    let snapshot = listing.snapshots.last().map(|&n| dir.join(wal::layout::snapshot_name(n)));
    let segments = listing.segments.iter().map(|&n| dir.join(wal::layout::segment_name(n)));
    snapshot.into_iter().chain(segments).map(|p| wal::count_sets(&p)).sum()
}

/// True if another process (a running server, a repair) holds `dir`'s lock. Creates nothing.
pub fn is_locked(dir: &Path) -> Result<bool, Error> {
    let path = dir.join(LOCK_FILE);
    let file = match OpenOptions::new().write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(format!("open lock file {}", path.display()), e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(false), // released when `file` is dropped, at once
        Err(fs::TryLockError::WouldBlock) => Ok(true),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(format!("lock {}", path.display()), e)),
    }
}

/// True if a process holds `dir`'s lock, found without taking it, even for a moment: from the
/// kernel's table of file locks, `/proc/locks`, so that a server starting at that very moment
/// can never find the lock taken by a reader (`walkv dump`, `walkv export`). Where that table
/// cannot be read, falls back to [`is_locked`]'s probe.
pub fn is_held(dir: &Path) -> Result<bool, Error> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(LOCK_FILE);
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(format!("stat lock file {}", path.display()), e)),
    };
    match fs::read_to_string("/proc/locks") {
        Ok(table) => Ok(table.lines().any(|line| names_inode(line, meta.dev(), meta.ino()))),
        Err(_) => is_locked(dir),
    }
}

/// True if a line of `/proc/locks` (`1: FLOCK ADVISORY WRITE 4321 08:01:1234 0 EOF`, the device
/// in hex, the inode in decimal) is a lock on the file with device `dev` and inode `ino`.
fn names_inode(line: &str, dev: u64, ino: u64) -> bool {
    let (major, minor) =
        ((dev >> 8) & 0xfff | (dev >> 32) & !0xfff, (dev & 0xff) | (dev >> 12) & !0xff);
    line.split_whitespace().any(|field| {
        let mut parts = field.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(ma), Some(mi), Some(i), None) => {
                u64::from_str_radix(ma, 16) == Ok(major)
                    && u64::from_str_radix(mi, 16) == Ok(minor)
                    && i.parse::<u64>() == Ok(ino)
            }
            _ => false,
        }
    })
}

/// Creates `dir` if needed (durably: every new level's parent is fsynced, see
/// [`wal::files::create_dir_durably`]) and takes an exclusive lock on its `LOCK` file.
pub fn lock_data_dir(dir: &Path) -> Result<File, Error> {
    wal::files::create_dir_durably(dir)?;
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

    fn test_options() -> Options {
        Options { mode: wal::SyncMode::Interval, boot: [7; 16] }
    }

    /// A progress line comes once a second at most, none in the first second, and says how
    /// many records and what share of the log's bytes.
    #[test]
    fn replay_progress_is_reported_about_once_a_second() {
        let start = Instant::now();
        let mut p = Progress::new(1000, start);
        p.note(250);
        assert_eq!(p.report(start + Duration::from_millis(999)), None, "not in the first second");
        let line = p.report(start + Duration::from_millis(1200)).unwrap();
        assert_eq!(line, "replaying: 1 records, 250 of 1000 bytes of the log (25%) in 1.2 s");
        assert_eq!(p.report(start + Duration::from_millis(2100)), None, "not twice a second");
        p.note(2000);
        let line = p.report(start + Duration::from_millis(2300)).unwrap();
        assert!(line.contains("2 records, 2250 of 1000 bytes of the log (100%)"), "{line}");
    }

    /// Sets and deletes come back after reopening, in the order they were made.
    #[test]
    fn reopen_replays_sets_and_deletes() {
        let dir = TempDir::new("replay");
        {
            let (mut store, rec) = Store::open(&dir, test_options()).unwrap();
            assert!(rec.created);
            assert_eq!(store.set(b"a", b"1").unwrap(), (1, true));
            assert_eq!(store.set(b"a", b"2").unwrap(), (2, false));
            store.set(b"b", b"x").unwrap();
            assert_eq!(store.delete(b"b").unwrap(), Some(4));
            assert_eq!(store.delete(b"b").unwrap(), None);
        }
        let (store, rec) = Store::open(&dir, test_options()).unwrap();
        assert_eq!((rec.records, rec.last_seq, rec.created), (4, 4, false));
        assert_eq!(store.get(b"a"), Some(&b"2"[..]));
        assert_eq!(store.get(b"b"), None);
        assert_eq!(store.len(), 1);
    }

    /// A second store on the same directory is refused while the first holds it; the lock is
    /// seen without taking it (`/proc/locks`), and not seen once it is released.
    #[test]
    fn second_open_is_refused_while_locked() {
        let dir = TempDir::new("lock");
        assert!(!is_held(&dir).unwrap(), "no lock file yet");
        drop(Store::open(&dir, test_options()).unwrap());
        assert!(!is_held(&dir).unwrap() && !is_locked(&dir).unwrap(), "released");
        let (_first, _) = Store::open(&dir, test_options()).unwrap();
        assert!(is_held(&dir).unwrap() && is_locked(&dir).unwrap());
        assert!(!names_inode("1: FLOCK  ADVISORY  WRITE 7 08:01:12 0 EOF", 0x801, 13));
        assert!(names_inode("1: FLOCK  ADVISORY  WRITE 7 08:01:12 0 EOF", 0x801, 12));
        assert!(names_inode(
            "2: -> FLOCK  ADVISORY  WRITE 7 103:02:12 0 EOF",
            (0x103 << 8) | 2,
            12
        ));
        match Store::open(&dir, test_options()) {
            Err(Error::Locked { .. }) => {}
            other => panic!("expected Locked, got {:?}", other.err()),
        }
    }

    /// Limits are enforced before anything is written, and a refused write changes nothing.
    #[test]
    fn oversized_writes_are_refused_and_change_nothing() {
        let dir = TempDir::new("limits");
        let (mut store, _) = Store::open(&dir, test_options()).unwrap();
        let big = vec![0u8; wal::MAX_VALUE_LEN + 1];
        assert!(matches!(store.set(b"k", &big), Err(Error::TooLarge(_))));
        assert!(matches!(store.set(b"", b"v"), Err(Error::Invalid(_))));
        assert!(store.is_empty());
        assert_eq!(store.set(b"k", b"v").unwrap().0, 1);
    }

    /// The one-allocation entries behave like a `HashMap<Vec<u8>, Vec<u8>>` (the oracle) under
    /// random sets, deletes and gets, keys of every length up to the maximum included.
    #[test]
    fn entries_behave_like_a_plain_map() {
        let dir = TempDir::new("store-oracle");
        let (mut store, _) = Store::open(&dir, test_options()).unwrap();
        let mut oracle = std::collections::HashMap::new();
        let mut rng = crate::testutil::Rng::new(3);
        let keys: Vec<Vec<u8>> = [1, 2, 255, 256, 257, 4095, wal::MAX_KEY_LEN]
            .iter()
            .map(|&n| rng.bytes(n))
            .chain((0..20).map(|i| vec![i as u8]))
            .collect();
        for _ in 0..3000 {
            let key = &keys[rng.below(keys.len())];
            match rng.below(3) {
                0 => {
                    let len = rng.below(300);
                    let value = rng.bytes(len);
                    let created = store.set(key, &value).unwrap().1;
                    assert_eq!(created, oracle.insert(key.clone(), value).is_none());
                }
                1 => {
                    let deleted = store.delete(key).unwrap().is_some();
                    assert_eq!(deleted, oracle.remove(key).is_some());
                }
                _ => assert_eq!(store.get(key), oracle.get(key).map(Vec::as_slice)),
            }
            assert_eq!(store.len(), oracle.len());
        }
        drop(store);
        let (store, _) = Store::open(&dir, test_options()).unwrap();
        for key in &keys {
            assert_eq!(store.get(key), oracle.get(key).map(Vec::as_slice), "after replay");
        }
    }
}
