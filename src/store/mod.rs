//! The store: the in-memory map, the log that makes it durable, and the data directory they live in.
//!
//! The invariant this module keeps is the write-ahead rule: **a change reaches the log before it
//! reaches the map**, and so **a read never shows a write that a crash could take back.** The
//! map is what reads see, and a change enters it only once the log's threads ([`crate::writer`])
//! say its record is far enough: in the file (`write(2)` returned, so it survives the process
//! being killed) in `interval` and `never` modes, on stable storage (fsynced, so it survives a
//! power cut) in `always` mode. A failed write never reaches the map.
//!
//! # What a read sees, and what a write is checked against
//! The main thread does not wait for the disk: [`Store::set`] and [`Store::delete`] give the
//! write the next sequence number, encode its record into the batch for the writer thread, and
//! keep the change among the *pending* ones (`pending.rs`) until news from the log lets
//! [`Store::poll`] move it into the map. So there are two states:
//!
//! - the **map**: what every read sees (`GET`, `HEAD`, listings, ETags), [`Store::get`] and
//!   the other read methods;
//! - the **newest** state, the map with the pending changes on top, [`Store::latest`]: what a
//!   write is checked against (`If-Match`, "created or replaced", "was there anything to
//!   delete"), so that two writes of one key in a row see each other. An answer that reveals
//!   a pending change (a 412 naming a pending ETag, `{"deleted":false}` after a pending
//!   DELETE) must wait, as the write's own answer does, until that change is in the map; the
//!   answer says which seq it waits for, and the server holds it (`crate::server`).
//!
//! # What the main thread never does
//! It makes no call on the data directory's files and takes no lock that another thread holds
//! across a disk call: the log belongs to the writer and sync threads, and every size the main
//! thread needs (the log's bytes for the compaction policy, `disk_bytes` for `/status`) is kept
//! in memory ([`crate::writer::Status`], the [`Layout`]).
//!
//! # The data directory
//! It holds the log's files (a snapshot and segments, see `docs/data-directory.md`; side files
//! of a recovery or a repair are described in [`crate::wal::files`]) and `LOCK`
//! ([`crate::wal::lock`]). The store keeps the sum of what its live keys
//! take in a snapshot (`live_bytes`) and the files before the segment being written
//! ([`Layout`]), which is what a compaction merges.
//!
//! # The map
//! An ordered set (std's `BTreeSet`) of entries, sorted by the bytes of their keys. walkv's
//! first design asked for a plain `HashMap`, and the map was a hash table until listing became
//! the one request that stalled everybody: a table has no order, so each page of a listing was a scan
//! of every key on the main thread. Measured side by side at 1M keys (`benches/stall.py`,
//! 2026-12-04): a page of 1,000 keys took 50.5 ms with the table and 0.23 ms ordered (the
//! whole request); `walkv ls` of every key 8.9 s and 0.40 s, while another client's GETs went
//! from 95 ms to 0.59 ms at the 99th percentile (134 ms to 4 ms at worst). The tree cost no
//! memory (RSS 164.6 MiB against 166.8: its nodes hold eleven pointers each, where the table
//! kept room to grow) and no GET throughput on one key (58.6k/s against 59.3k/s, 50
//! connections); a lookup compares keys down the tree instead of hashing once. What it does
//! cost: a restart that replays 1M keys written in random order takes 1.1 to 1.5 s instead of
//! 0.4 s, since each insert lands in a different leaf (keys written in order, `key:1`,
//! `key:2` ..., replay as fast as before, 0.35 s). Crafted keys cannot slow it down: a tree's
//! worst case is its depth.
//!
//! Each key, its value and the seq of the record that set it (its ETag) live in one
//! allocation, an `Entry` (`entry.rs`), and the tree holds only a 16-byte pointer to it: with
//! 1M keys of 100-byte values that is about a third less memory than a map of two `Vec`s
//! per key, and replay allocates half as often.
//!
//! # Layout
//! - This file: the [`Store`], reads, writes.
//! - `pending.rs`: the writes on their way to the log.
//! - `news.rs`: what the log's news does to the map; the store's side of compaction.
//! - `waits.rs`: waiting for the log (tools and tests), and the clean stop.
//! - `keys.rs`: every change to the map, and what is kept beside it (sums, expiring keys).
//! - `entry.rs`: the one-allocation entries (a key's expiry included, when it has one).
//! - `expiring.rs`: keys with a TTL, and the sweep that removes them once expired.
//! - `counter.rs`, `txn.rs`: increments and transactions, checked and written in one step.
//! - `watched.rs`: what blocking reads wait on, and the recent DELETEs.
//! - `replay.rs`: startup, rebuilding the map on two threads.

use crate::error::Error;
use crate::expiry;
use crate::feed::Feed;
use crate::wal::dir::Opened;
use crate::wal::layout::Layout;
use crate::wal::record::{self, BootId};
use crate::wal::{self, Body, Options, Recovery, SyncMode, compact};
use crate::writer::{Answer, Command, Log, Waker};
use entry::Entry;
use keys::{Tally, apply};
use pending::{Change, Newest, Pending};
use std::collections::BTreeSet;
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub mod counter;
mod entry;
mod expiring;
mod keys;
pub mod memory;
mod news;
mod pending;
mod replay;
pub mod txn;
mod waits;
mod watched;

pub use crate::wal::lock::{LOCK_FILE, is_held, is_locked, lock_data_dir};
pub use expiring::Swept;

/// The map's type: every visible key's [`Entry`], in the order of the keys' bytes.
type Map = BTreeSet<Entry>;

/// How the log's threads work (the server's flags; tests take the defaults).
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// How often the log is fsynced in `interval` mode.
    pub sync_interval: Duration,
    /// The most writes one fsync covers in `always` mode.
    pub max_batch: usize,
    /// How long the writer thread polls for its next batch before it sleeps.
    pub spin: Duration,
    /// `--max-memory`: writes that would take the data past this many bytes are refused.
    pub max_memory: Option<u64>,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            sync_interval: Duration::from_secs(5),
            max_batch: 128,
            spin: Duration::from_micros(120),
            max_memory: None,
        }
    }
}

pub struct Store {
    /// What reads see: the changes the log has far enough (see the module's doc).
    map: Map,
    /// What the map holds: its keys' snapshot bytes and memory.
    tally: Tally,
    /// The map's keys that have an expiry, by expiry.
    expiring: expiring::Expiring,
    /// Where the sweep of expired keys is.
    sweep_at: expiring::Sweep,
    /// Keys the sweep expired (`walkv_expired_keys_total`).
    expired_total: u64,
    /// `--max-memory`: the most bytes ([`memory`]) the map and the pending writes may take.
    max_memory: Option<u64>,
    dir: PathBuf,
    /// The snapshot and sealed segments before the segment being written.
    layout: Layout,
    /// Bytes of the data directory's other files (the layout marker, side files a recovery
    /// left), counted at open: nothing but the log's files changes while the server runs.
    other_bytes: u64,
    mode: SyncMode,
    log: Log,
    /// Changes given to the writer, not yet in the map.
    pending: Pending,
    /// Records encoded since the last [`Store::flush`], for the writer.
    batch: Batch,
    /// The seq the next write gets.
    next_seq: u64,
    /// The batch handed to the writer last ends at this seq ...
    sent: u64,
    /// ... and the writer is done with every batch through this one (written, or fsynced in
    /// `always` mode): while `sent > done`, new records wait in `batch` (see [`Store::flush`]).
    done: u64,
    /// Every record through this seq is in the file ...
    written: u64,
    /// ... through this one on stable storage ...
    synced: u64,
    /// ... and through this one in the map.
    visible: u64,
    /// A compaction asked for the segment to be sealed after this seq, with this boot id.
    rotating: Option<(u64, BootId)>,
    /// True once the log has stopped taking writes (see [`wal::Wal::sync`]).
    log_failed: Arc<AtomicBool>,
    /// The log's threads were told to stop: no more writes.
    closed: bool,
    /// A batch holding this many records goes to the writer even while one is in flight (the
    /// writer joins at most that many under one fsync: `--max-batch`).
    max_batch: u64,
    /// Keys blocking reads wait on, and the recent DELETEs (see `watched.rs`).
    watched: watched::Watched,
    /// The change feed, told of every change the map shows ([`Store::publish_to`]).
    feed: Option<Arc<Feed>>,
    /// Held open for the store's life: closing it releases the lock.
    _lock: File,
}

/// The records of a batch, encoded without their checksums (the writer seals them).
#[derive(Default)]
struct Batch {
    records: Vec<u8>,
    first: u64,
    last: u64,
    /// An answer waits for an fsync of everything written so far.
    sync: bool,
    /// Answers to its writes that the writer gives once they are durable (`always` mode).
    answers: Vec<Answer>,
}

/// The newest state of a key: what a write is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latest {
    /// The seq that set its value (its ETag), if it has one.
    pub etag: Option<u64>,
    /// The seq of the pending change this state comes from, if it is not in the map yet: an
    /// answer that reveals it waits until that seq is.
    pub pending: Option<u64>,
}

/// What [`Store::delete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The key existed; the DELETE record has this seq.
    Yes(u64),
    /// There was nothing to delete; `pending` as in [`Latest`].
    No { pending: Option<u64> },
}

/// What the log's news meant, for the server (see [`Store::poll`]).
#[derive(Debug, Default)]
pub struct Polled {
    /// The writes from this seq on were not written, for this reason; answers that depend on
    /// them must say so.
    pub failed: Vec<(u64, Error)>,
    /// A compaction's seal ended: what to merge (`None`: nothing), or why it could not seal.
    pub rotated: Option<Result<Option<compact::Job>, Error>>,
    /// The log stopped taking writes, and why.
    pub log_failed: Option<String>,
    /// The writer stopped; with a clean close, the last synced seq.
    pub stopped: Option<Result<u64, Error>>,
}

impl Store {
    /// Opens the store in `dir` (created if missing): takes the lock, replays the log into the
    /// map (the snapshot, then every segment), brings the log to a clean end (see the recovery
    /// rules in `docs/recovery.md`) and starts the log's threads. Refuses a corrupt log or a
    /// directory another process holds.
    pub fn open(dir: &Path, options: Options) -> Result<(Store, Recovery), Error> {
        Store::open_dir(dir, options).map(|(store, recovery, _)| (store, recovery))
    }

    /// [`Store::open`], also returning what opening the directory found and did.
    pub fn open_dir(dir: &Path, options: Options) -> Result<(Store, Recovery, Opened), Error> {
        Store::open_dir_while(dir, options, Tuning::default(), || {})
    }

    /// [`Store::open_dir`], with the log's threads tuned by `tuning`, calling `between` on this
    /// thread between batches of the replay (every 256 records, and at least every 50 ms): the
    /// server answers requests there while it replays.
    pub fn open_dir_while(
        dir: &Path,
        options: Options,
        tuning: Tuning,
        between: impl FnMut(),
    ) -> Result<(Store, Recovery, Opened), Error> {
        Store::open_locked_while(dir, lock_data_dir(dir)?, options, tuning, between)
    }

    /// [`Store::open_dir_while`] with the data directory's lock already taken
    /// ([`lock_data_dir`]): the server takes it before it listens, so that a directory it
    /// cannot use ends the start before anything says "listening".
    pub fn open_locked_while(
        dir: &Path,
        lock: std::fs::File,
        options: Options,
        tuning: Tuning,
        between: impl FnMut(),
    ) -> Result<(Store, Recovery, Opened), Error> {
        let (keys, (wal, layout, recovery, opened)) = replay::replay(dir, options, between)?;
        let keys::Keys { map, tally, expiring } = keys;
        let log_bytes = layout.bytes().saturating_add(wal.file_bytes());
        let other_bytes = wal::layout::disk_bytes(dir).saturating_sub(log_bytes);
        let (last, next_seq) = (wal.last_seq(), wal.next_seq());
        let log_failed = wal.failed_flag();
        let log =
            Log::start(wal, options.mode, tuning.sync_interval, tuning.max_batch, tuning.spin)
                .map_err(|e| Error::io("start the log's threads", e))?;
        let store = Store {
            map,
            tally,
            expiring,
            sweep_at: expiring::Sweep::default(),
            expired_total: 0,
            max_memory: tuning.max_memory,
            dir: dir.to_path_buf(),
            layout,
            other_bytes,
            mode: options.mode,
            log,
            pending: Pending::new(next_seq),
            batch: Batch::default(),
            next_seq,
            sent: last,
            done: last,
            written: last,
            synced: last,
            visible: last,
            rotating: None,
            closed: false,
            max_batch: tuning.max_batch.max(1) as u64,
            log_failed,
            watched: watched::Watched::new(last),
            feed: None,
            _lock: lock,
        };
        Ok((store, recovery, opened))
    }

    /// From now on every change that enters the map is published to `feed`, in the same step
    /// (see [`crate::feed`]).
    pub fn publish_to(&mut self, feed: Arc<Feed>) {
        feed.serve_from(self.visible);
        self.feed = Some(feed);
    }

    /// The change feed this store publishes to, if any.
    pub fn feed(&self) -> Option<&Feed> {
        self.feed.as_deref()
    }

    /// From now on the log's threads call `waker` whenever they have news for [`Store::poll`].
    pub fn wake_with(&self, waker: Waker) {
        self.log.wake_with(waker);
    }

    // ---- Reads: the map ----

    /// The entry of `key`, unless it has none or it has expired.
    fn live(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key).filter(|e| e.expires().is_none() || !e.expired(expiry::now_ms()))
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.live(key).map(Entry::value)
    }

    /// The value of `key` and the seq of the record that set it (its ETag), if it has one.
    pub fn get_versioned(&self, key: &[u8]) -> Option<(&[u8], u64)> {
        self.live(key).map(|e| (e.value(), e.seq()))
    }

    /// The value of `key`, its ETag, and when it expires (milliseconds since the Unix epoch)
    /// if it does.
    pub fn get_expiring(&self, key: &[u8]) -> Option<(&[u8], u64, Option<u64>)> {
        self.live(key).map(|e| (e.value(), e.seq(), e.expires()))
    }

    /// The first `limit` keys in byte order that start with `prefix` and sort after `after`,
    /// and whether more follow: a walk of the ordered map from the first key that may match,
    /// `limit + 1` keys long at most.
    pub fn keys_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> (Vec<&[u8]>, bool) {
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let now = expiry::now_ms();
        let mut keys: Vec<&[u8]> = self
            .map
            .range::<[u8], _>((start, Bound::Unbounded))
            .take_while(|e| e.key().starts_with(prefix))
            .filter(|e| !e.expired(now))
            .map(Entry::key)
            .take(limit.saturating_add(1))
            .collect();
        let more = keys.len() > limit;
        keys.truncate(limit);
        (keys, more)
    }

    /// True if `key`'s last write (its SET or its DELETE) has a seq after `index`, or if that
    /// cannot be told (a missing key whose DELETE is no longer remembered): what a blocking
    /// read waits for.
    pub fn changed_after(&self, key: &[u8], index: u64) -> bool {
        match self.map.get(key) {
            Some(entry) => entry.seq() > index,
            None => self.watched.missing_changed_after(key, index),
        }
    }

    /// A blocking read waits on `key` (until [`Store::unwatch`]): its changes are reported by
    /// [`Store::take_fired`].
    pub fn watch(&mut self, key: &[u8]) {
        self.watched.watch(key, self.visible);
    }

    pub fn unwatch(&mut self, key: &[u8]) {
        self.watched.unwatch(key);
    }

    /// The watched keys that changed since the last call.
    pub fn take_fired(&mut self) -> Vec<Box<[u8]>> {
        self.watched.take_fired()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes the live keys take in a snapshot: the `live_bytes` of `/status`.
    pub fn live_bytes(&self) -> u64 {
        self.tally.live_bytes
    }

    /// The memory the data takes as walkv counts it ([`memory`]: the map and the writes on
    /// their way to the log), and the limit (`--max-memory`), if any.
    pub fn memory(&self) -> (u64, Option<u64>) {
        (self.tally.memory.saturating_add(self.pending.cost()), self.max_memory)
    }

    // ---- Writes: the newest state ----

    /// The newest state of `key`, pending changes included: what a write is checked against.
    pub fn latest(&self, key: &[u8]) -> Latest {
        self.latest_hashed(key, self.pending.hash(key))
    }

    /// [`Store::latest`], the key's pending hash computed already.
    fn latest_hashed(&self, key: &[u8], hash: u64) -> Latest {
        self.latest_with_memory(key, hash).0
    }

    /// [`Store::latest_hashed`], and the memory the map's value of the key takes (0 when the
    /// newest state is a pending write: that memory is not freed until it is in the map).
    fn latest_with_memory(&self, key: &[u8], hash: u64) -> (Latest, u64) {
        let (latest, memory, _) = self.newest_entry(key, hash);
        (latest, memory)
    }

    /// The newest state of `key` ([`Store::latest_with_memory`]), and its entry if it has a
    /// value. A value that has expired is no value.
    fn newest_entry(&self, key: &[u8], hash: u64) -> (Latest, u64, Option<&Entry>) {
        let now = || expiry::now_ms();
        match self.pending.newest(key, hash) {
            Some(Newest::Set(e)) if e.expires().is_some() && e.expired(now()) => {
                (Latest { etag: None, pending: Some(e.seq()) }, 0, None)
            }
            Some(Newest::Set(e)) => {
                (Latest { etag: Some(e.seq()), pending: Some(e.seq()) }, 0, Some(e))
            }
            Some(Newest::Deleted(seq)) => (Latest { etag: None, pending: Some(seq) }, 0, None),
            None => match self.map.get(key) {
                Some(e) if e.expires().is_some() && e.expired(now()) => {
                    (Latest { etag: None, pending: None }, memory::of_entry(e), None)
                }
                Some(e) => {
                    (Latest { etag: Some(e.seq()), pending: None }, memory::of_entry(e), Some(e))
                }
                None => (Latest { etag: None, pending: None }, 0, None),
            },
        }
    }

    /// Refuses writes that would take the data past `--max-memory`: ones that need more memory
    /// (`new`, from [`memory::set_cost`]) than the values they replace free (`old`), once the
    /// limit is reached.
    fn check_memory(&self, new: u64, old: u64) -> Result<(), Error> {
        let Some(limit) = self.max_memory else { return Ok(()) };
        let (used, _) = self.memory();
        if new > old && used.saturating_add(new - old) > limit {
            return Err(Error::MemoryFull { used, limit });
        }
        Ok(())
    }

    /// Sets `key` to `value`: gives the write its seq and hands its record to the writer; the
    /// map shows it once the log has it ([`Store::poll`]). Returns the seq and whether the key
    /// is new (in the newest state). The key will not expire: see [`Store::set_with_ttl`].
    pub fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(u64, bool), Error> {
        self.set_with_ttl(key, value, Ttl::Clear)
    }

    /// [`Store::set`], with `ttl` saying when the key expires.
    pub fn set_with_ttl(
        &mut self,
        key: &[u8],
        value: &[u8],
        ttl: Ttl,
    ) -> Result<(u64, bool), Error> {
        self.check_writable()?;
        wal::check_lengths(key, value)?;
        let hash = self.pending.hash(key);
        let (latest, old_memory, old) = self.newest_entry(key, hash);
        let expires = ttl.expiry(old);
        let new = memory::set_cost(key.len(), value.len(), expires.is_some());
        self.check_memory(new, old_memory)?;
        let seq = self.next_seq;
        self.issue_change(Change::Set(Entry::new(seq, key, value, expires)), hash);
        Ok((seq, latest.etag.is_none()))
    }

    /// Deletes `key`, as [`Store::set`] writes. Deleting a key that has no value (in the newest
    /// state) writes nothing; deleting is idempotent either way.
    pub fn delete(&mut self, key: &[u8]) -> Result<Deleted, Error> {
        wal::check_lengths(key, b"")?;
        let hash = self.pending.hash(key);
        let latest = self.latest_hashed(key, hash);
        if latest.etag.is_none() {
            return Ok(Deleted::No { pending: latest.pending });
        }
        self.check_writable()?;
        Ok(Deleted::Yes(self.issue_change(Change::Delete(key.into()), hash)))
    }

    /// An answer waits for an fsync of everything written so far: the writer is told so with
    /// the next batch ([`Store::flush`]).
    pub fn want_sync(&mut self) {
        self.batch.sync = true;
    }

    /// The seq of the last write given a number (in the log or on its way).
    pub fn last_issued(&self) -> u64 {
        self.next_seq - 1
    }

    /// True if the writer can give the answer to the write `seq` itself once it is durable
    /// ([`Store::answer_when_durable`]): in `always` mode, for a write of the batch not yet
    /// handed over. The answer then needs no wake-up of the main thread.
    pub fn can_answer_when_durable(&self, seq: u64) -> bool {
        self.mode == SyncMode::Always
            && !self.batch.records.is_empty()
            && (self.batch.first..=self.batch.last).contains(&seq)
    }

    /// Hands `answer` to the writer with the batch, for a write that
    /// [`Store::can_answer_when_durable`].
    pub fn answer_when_durable(&mut self, answer: Answer) {
        self.batch.answers.push(answer);
    }

    fn check_writable(&self) -> Result<(), Error> {
        if self.closed {
            return Err(Error::Failed { reason: "the server is stopping".into() });
        }
        if self.log_failed() {
            return Err(Error::Failed { reason: "an earlier write or fsync failed".into() });
        }
        if self.next_seq == u64::MAX {
            return Err(Error::Failed { reason: "the log has used every sequence number".into() });
        }
        Ok(())
    }

    /// Gives a checked write the next seq: its record goes into the batch, its change among
    /// the pending ones (`hash`: its key's pending hash; a transaction's changes carry theirs).
    /// A SET's entry must have been made with the next seq.
    fn issue_change(&mut self, change: Change, hash: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.batch.records.is_empty() {
            self.batch.first = seq;
            if self.batch.records.capacity() == 0 {
                self.batch.records = self.log.spare_buffer();
            }
            // Room for a few more like it: most batches are small.
            let record = usize::try_from(change.record_bytes()).unwrap_or(0);
            self.batch.records.reserve(4 * record);
        }
        let records = &mut self.batch.records;
        self.batch.last = seq;
        match &change {
            Change::Set(entry) => {
                debug_assert_eq!(entry.seq(), seq, "an entry is made with its write's seq");
                record::encode_body_unsealed(records, seq, &entry.body());
            }
            Change::Delete(key) => {
                record::encode_body_unsealed(records, seq, &Body::Delete { key })
            }
            Change::Expire(key) => {
                record::encode_body_unsealed(records, seq, &Body::Expire { key })
            }
            Change::Txn(changes) => {
                let txn = pending::txn_body(changes);
                record::encode_body_unsealed(records, seq, &Body::Txn(txn.txn()));
            }
        }
        self.pending.push(seq, change, hash);
        seq
    }

    /// Hands the records encoded so far to the writer, unless it is still busy with the last
    /// batch (the server calls this after each batch of requests, and again after news): one
    /// batch at a time is in flight, so records that come while the writer writes (or, in
    /// `always` mode, fsyncs) join the next batch, and each batch costs the threads one
    /// hand-over. In `always` mode that is group commit: the writes that come during an fsync
    /// share the next one.
    pub fn flush(&mut self) {
        let records = self.batch.last.saturating_sub(self.batch.first) + 1;
        if self.sent <= self.done || (!self.batch.records.is_empty() && records >= self.max_batch) {
            self.flush_now();
        }
    }

    /// [`Store::flush`] even while a batch is in flight (and then the writer gathers the
    /// batches that queue up, at most `--max-batch` records under one fsync).
    fn flush_now(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        if !batch.records.is_empty() {
            let Batch { records, first, last, sync, answers } = batch;
            self.sent = last;
            self.log.send(Command::Append { records, first, last, sync, answers });
        } else if batch.sync {
            self.log.send(Command::Sync);
        }
    }

    // ---- Sizes, kept in memory ----

    /// Bytes of records in the files of the log: the snapshot and every segment.
    pub fn log_bytes(&self) -> u64 {
        self.layout.bytes().saturating_add(self.log.status().segment_bytes())
    }

    /// Bytes of every file in the data directory (the `disk_bytes` of `/status`), the space
    /// reserved ahead of the log included.
    /// Of [`Store::disk_bytes`], the zeros reserved ahead of the log: space taken, no data.
    pub fn reserved_bytes(&self) -> u64 {
        self.log.status().segment_reserved_bytes()
    }

    pub fn disk_bytes(&self) -> u64 {
        self.layout
            .bytes()
            .saturating_add(self.log.status().segment_file_bytes())
            .saturating_add(self.other_bytes)
    }
}

impl Drop for Store {
    /// A store dropped without [`Store::close`] (a test, an error) hands its last records to
    /// the writer, which writes them and stops without the closing fsync, as a killed server
    /// would have them in the file.
    fn drop(&mut self) {
        self.flush_now();
    }
}

impl Ttl {
    /// The expiry a SET with this TTL gives, over `old` (the key's newest entry, if any).
    fn expiry(self, old: Option<&Entry>) -> Option<u64> {
        match self {
            Ttl::Clear => None,
            Ttl::Keep => old.and_then(Entry::expires),
            Ttl::KeepOr(at) => old.and_then(Entry::expires).or(Some(at)),
            Ttl::At(at) => Some(at),
        }
    }
}

/// When a SET makes its key expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Never: a SET without a TTL clears the key's old one.
    Clear,
    /// When the key's current value expires (`?keepttl`).
    Keep,
    /// When the key's current value expires if it does, else at this time (`?keepttl&ttl=S`:
    /// a session's first write sets its lifetime, later ones keep it).
    KeepOr(u64),
    /// At this time, milliseconds since the Unix epoch.
    At(u64),
}

/// The log file's path in `dir`.
pub fn wal_path(dir: &Path) -> PathBuf {
    dir.join(wal::FILE_NAME)
}

#[cfg(test)]
mod tests;
