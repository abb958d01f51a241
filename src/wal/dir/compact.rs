//! Compaction: merging the snapshot in charge and the sealed segments into a new snapshot, on a
//! thread of its own, as a pure function of files.
//!
//! The server's part is small: the log's writer thread seals the segment being written (see
//! [`Wal::rotate`], one fsync and a new file), the main thread notes how many keys and live
//! bytes the map holds at that point (the state as of the last sealed seq, `upto`), and hands a
//! [`Job`] to a thread. The thread never touches the map, so the server goes on serving; writes
//! go to the new segment. The merge reads only files that no one writes any more:
//!
//! 1. **Newest writes.** Read the sealed segments in order and note, for each key written in
//!    them, the sequence number of its last write. Keys are noted by a 64-bit SipHash with a
//!    key chosen at random for this compaction, so the table costs 16 bytes per key written
//!    since the last compaction, whatever the key's length.
//! 2. **Old snapshot.** Copy each of its keys that the table does not know: not written since.
//!    Beside the table, one bit per seq of the sealed segments says "this SET is its key's last
//!    write": set when the SET is read, cleared when a later write of the same hash replaces
//!    it in the table. The bits cost one byte per eight writes and spare step 3 a table lookup
//!    per record (a cache miss each: the table does not fit in the CPU's cache).
//! 3. **Segments again.** Copy each SET whose bit is set. A key whose last write is a DELETE is
//!    copied from nowhere: the tombstone is dropped, which is safe because the merge always
//!    covers the whole history up to `upto` (nothing older is left anywhere to bring the key
//!    back).
//! 4. **Check.** The merged snapshot must hold exactly as many keys and live bytes as the map
//!    did at `upto`. Every record the merge copies is a true live key with its true value (a
//!    key is copied only if nothing with its hash was written later), so a hash collision can
//!    only make the merge *leave out* a key; the count catches that, and the compaction fails
//!    (to be retried with another random key) instead of losing the key. The chance is about
//!    n²/2⁶⁵ for n keys written since the last compaction: 3·10⁻⁸ for a million.
//! 5. **Commit.** The end marker, fsync, rename to `snapshot-<upto>.snap`, directory fsync (see
//!    [`crate::wal::snapshot`]). From the rename on, the new snapshot is in charge.
//! 6. **Collect garbage.** Only after the directory fsync returned: remove every older snapshot
//!    and every segment the new snapshot covers, by listing the directory (so a leftover of an
//!    earlier interrupted compaction goes too), then fsync the directory. With
//!    `--changes-retain`, the covered segments are renamed `history-<first>.wal` instead (the
//!    change feed's history, [`crate::wal::history`]) and the oldest history files past the bound
//!    are removed. A failure here loses
//!    nothing: the next start removes what is left.
//!
//! A failure at any step before the commit removes the half-written snapshot and leaves the
//! old files in charge; the error goes back to the main thread, which reports it and retries
//! later. Every step has a failpoint (see [`crate::failpoint`]).

use crate::error::Error;
use crate::failpoint;
use crate::prehashed::PrehashedMap;
use crate::wal::files::{remove_file, sync_dir};
use crate::wal::layout::{self, Sealed, Snapshot};
use crate::wal::record::{Body, BootId, Record};
use crate::wal::scan::{self, Judge, Tail};
use crate::wal::snapshot::{self, Contents, Writer};
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[cfg(doc)]
use crate::wal::log::Wal;

/// Everything a compaction needs, fixed when it starts.
#[derive(Debug, Clone)]
pub struct Job {
    pub dir: PathBuf,
    /// The snapshot in charge when the compaction started.
    pub base: Option<Snapshot>,
    /// The sealed segments after it, in order, ending at `upto`.
    pub sealed: Vec<Sealed>,
    pub upto: u64,
    /// What the map held at `upto`: the merge must produce exactly this.
    pub keys: u64,
    pub live_bytes: u64,
    /// Keys whose expiry is at or before this time (milliseconds since the Unix epoch) are
    /// left out of the snapshot, and counted as merged for the check.
    pub now_ms: u64,
    pub boot: BootId,
    /// `--changes-retain`: bytes of covered segments to keep as history for the change feed
    /// (renamed `history-<first>.wal`, the oldest removed first); 0 removes them all.
    pub retain: u64,
}

/// A finished compaction.
#[derive(Debug, Clone)]
pub struct Done {
    pub snapshot: Snapshot,
    pub contents: Contents,
    /// Files removed after the commit.
    pub removed: Vec<PathBuf>,
    /// Why removing the replaced files failed, if it did (nothing is lost: the next start
    /// removes them).
    pub cleanup_error: Option<String>,
    pub took: Duration,
}

/// Runs a compaction: merge, check, commit, collect garbage.
pub fn run(job: &Job) -> Result<Done, Error> {
    let started = Instant::now();
    let path = job.dir.join(layout::snapshot_name(job.upto));
    let hasher = RandomState::new();
    let newest = newest_writes(job, &hasher)?;
    let mut out =
        Copier { writer: Writer::create(&path, job.upto)?, now_ms: job.now_ms, dropped: (0, 0) };
    copy_old_snapshot(job, &hasher, &newest, &mut out)?;
    copy_last_sets(job, &hasher, &newest, &mut out)?;
    drop(newest);
    let Copier { writer, dropped, .. } = out;
    let mut merged = writer.contents();
    merged.keys += dropped.0;
    merged.live_bytes += dropped.1;
    if (merged.keys, merged.live_bytes) != (job.keys, job.live_bytes) {
        return Err(Error::Failed {
            reason: format!(
                "the merged snapshot holds {} keys and {} live bytes where the store held {} and \
                 {} at seq {}: most likely two keys' hashes collided (this happens about once in \
                 30 million compactions); nothing was changed, and the next compaction will use \
                 another hash",
                merged.keys, merged.live_bytes, job.keys, job.live_bytes, job.upto
            ),
        });
    }
    let contents = writer.commit(job.boot)?;
    let snapshot = Snapshot { path, upto: job.upto, bytes: contents.file_bytes };
    let (removed, cleanup_error) = match collect_garbage(&job.dir, job.upto, job.retain) {
        Ok(removed) => (removed, None),
        Err((removed, e)) => (removed, Some(e.to_string())),
    };
    Ok(Done { snapshot, contents, removed, cleanup_error, took: started.elapsed() })
}

/// The snapshot being written, leaving out the keys that have expired.
struct Copier {
    writer: Writer,
    now_ms: u64,
    /// Keys left out, and their live bytes.
    dropped: (u64, u64),
}

impl Copier {
    /// Copies a live key into the snapshot, unless it has expired.
    fn copy(&mut self, seq: u64, set: &Body) -> Result<(), Error> {
        let Body::Set { key, value, expires } = *set else { return Ok(()) };
        if expires.is_some_and(|at| at <= self.now_ms) {
            self.dropped.0 += 1;
            self.dropped.1 += snapshot::entry_bytes(key, value, expires);
            return Ok(());
        }
        self.writer.set(seq, key, value, expires)
    }
}

/// What step 1 learns: the seq of each key's last write, and which SETs are last writes (a
/// transaction's SETs have no bit: several keys share its seq, so step 3 looks them up).
struct Newest {
    seqs: Seqs,
    last_sets: Bits,
}

/// Key hash → seq of the key's last write in the sealed segments.
type Seqs = PrehashedMap<u64>;

/// One bit per seq from `first` on. A seq outside the range (which the scan's checks rule out)
/// is never set: that could only leave a key out, which the count of step 4 catches.
struct Bits {
    first: u64,
    len: u64,
    words: Vec<u64>,
}

impl Bits {
    fn new(first: u64, last: u64) -> Bits {
        let len = last.checked_sub(first).map_or(0, |n| n.saturating_add(1));
        let words = usize::try_from(len.div_ceil(64)).unwrap_or(usize::MAX);
        Bits { first, len, words: vec![0; words] }
    }

    fn locate(&self, seq: u64) -> Option<(usize, u64)> {
        let i = seq.checked_sub(self.first).filter(|&i| i < self.len)?;
        let word = usize::try_from(i / 64).ok().filter(|&w| w < self.words.len())?;
        Some((word, 1 << (i % 64)))
    }

    fn set(&mut self, seq: u64) {
        if let Some((w, bit)) = self.locate(seq) {
            self.words[w] |= bit;
        }
    }

    fn clear(&mut self, seq: u64) {
        if let Some((w, bit)) = self.locate(seq) {
            self.words[w] &= !bit;
        }
    }

    fn get(&self, seq: u64) -> bool {
        self.locate(seq).is_some_and(|(w, bit)| self.words[w] & bit != 0)
    }
}

/// Writes noted together by step 1. The table is larger than the CPU's caches, so each insert
/// waits for memory; done one after another in a short loop, several of those waits overlap
/// (the loop has nothing else to do), where between two records' checksums they could not.
const BATCH: usize = 256;

fn note_writes(seqs: &mut Seqs, last_sets: &mut Bits, batch: &mut Vec<(u64, u64, bool)>) {
    for (hash, seq, is_set) in batch.drain(..) {
        if let Some(replaced) = seqs.insert(hash, seq) {
            last_sets.clear(replaced);
        }
        if is_set {
            last_sets.set(seq);
        }
    }
}

/// Step 1.
fn newest_writes(job: &Job, hasher: &RandomState) -> Result<Newest, Error> {
    // Sized once for the keys the store holds (at most one entry per key written, and most of
    // those keys are live): growing a table of a million entries step by step would hold the
    // old and the new table at once, a third more memory at the peak.
    let writes: u64 = job.sealed.iter().map(|s| s.last + 1 - s.first).sum();
    let capacity = usize::try_from(job.keys.min(writes)).unwrap_or(usize::MAX);
    let mut seqs = Seqs::with_capacity_and_hasher(capacity, Default::default());
    let first = job.sealed.first().map_or(job.upto, |s| s.first);
    let mut last_sets = Bits::new(first, job.upto);
    let mut batch = Vec::with_capacity(BATCH);
    for segment in &job.sealed {
        replay_sealed(segment, job.boot, |r| {
            match r.body {
                Body::Set { key, .. } => batch.push((hasher.hash_one(key), r.seq, true)),
                Body::Delete { key } | Body::Expire { key } => {
                    batch.push((hasher.hash_one(key), r.seq, false))
                }
                Body::Txn(txn) => {
                    // No bit for a transaction's SETs: `false` here.
                    for op in txn.ops() {
                        if let Body::Set { key, .. } | Body::Delete { key } = op {
                            batch.push((hasher.hash_one(key), r.seq, false));
                        }
                    }
                }
                Body::Mark(_) | Body::Gap { .. } => return,
            }
            if batch.len() >= BATCH {
                note_writes(&mut seqs, &mut last_sets, &mut batch);
            }
        })?;
    }
    note_writes(&mut seqs, &mut last_sets, &mut batch);
    Ok(Newest { seqs, last_sets })
}

/// Step 2.
fn copy_old_snapshot(
    job: &Job,
    hasher: &RandomState,
    newest: &Newest,
    out: &mut Copier,
) -> Result<(), Error> {
    let Some(base) = &job.base else { return Ok(()) };
    let mut failed = None;
    snapshot::load(&base.path, base.upto, |r| {
        if let (Body::Set { key, .. }, None) = (r.body, &failed)
            && !newest.seqs.contains_key(&hasher.hash_one(key))
        {
            failed = out.copy(r.seq, &r.body).err();
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// Step 3.
fn copy_last_sets(
    job: &Job,
    hasher: &RandomState,
    newest: &Newest,
    out: &mut Copier,
) -> Result<(), Error> {
    let mut failed = None;
    for segment in &job.sealed {
        replay_sealed(segment, job.boot, |r| {
            if failed.is_some() {
                return;
            }
            match r.body {
                Body::Set { .. } if newest.last_sets.get(r.seq) => {
                    failed = out.copy(r.seq, &r.body).err();
                }
                Body::Txn(txn) => {
                    for op in txn.ops() {
                        if let Body::Set { key, .. } = op
                            && newest.seqs.get(&hasher.hash_one(key)) == Some(&r.seq)
                            && failed.is_none()
                        {
                            failed = out.copy(r.seq, &op).err();
                        }
                    }
                }
                _ => {}
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}

/// Reads a sealed segment, which must be as it was when sealed: complete and undamaged.
fn replay_sealed(segment: &Sealed, boot: BootId, visit: impl FnMut(&Record)) -> Result<(), Error> {
    if let Some(e) = failpoint::check("compact_read") {
        return Err(Error::io(format!("read {}", segment.path.display()), e));
    }
    let judge = Judge::Stopped { boot };
    let scan = scan::scan_after(&segment.path, judge, segment.first - 1, visit)?;
    if !matches!(scan.tail, Tail::Clean | Tail::Reserved) || scan.last_seq != segment.last {
        return Err(Error::Corrupt {
            path: segment.path.clone(),
            offset: scan.end,
            reason: format!(
                "this sealed segment no longer reads as it did when it was sealed (through seq \
                 {}, now through {}): {}",
                segment.last,
                scan.last_seq,
                scan.explain()
            ),
        });
    }
    Ok(())
}

/// Removes every older snapshot and every segment the snapshot up to `upto` covers, or, with
/// `retain` bytes of history wanted, renames those segments `history-<first>.wal` and then
/// removes the oldest history files past `retain`; then fsyncs the directory. Returns the files
/// removed; on a failure, also those removed before it.
pub fn collect_garbage(
    dir: &Path,
    upto: u64,
    retain: u64,
) -> Result<Vec<PathBuf>, (Vec<PathBuf>, Error)> {
    let listing = layout::list(dir).map_err(|e| (Vec::new(), e))?;
    let mut doomed: Vec<PathBuf> = listing
        .snapshots
        .iter()
        .filter(|&&n| n < upto)
        .map(|&n| dir.join(layout::snapshot_name(n)))
        .collect();
    let covered: Vec<u64> =
        listing.segments.windows(2).take_while(|w| w[1] <= upto + 1).map(|w| w[0]).collect();
    if retain > 0 {
        for &first in &covered {
            let (from, to) = (layout::segment_name(first), layout::history_name(first));
            if let Some(e) = failpoint::check("compact_rename") {
                let error = Error::io(format!("rename {from}"), e);
                return Err((Vec::new(), error));
            }
            crate::wal::files::rename(&dir.join(from), &dir.join(to))
                .map_err(|e| (Vec::new(), e))?;
        }
        doomed.extend(history_past(dir, retain).map_err(|e| (Vec::new(), e))?);
    } else {
        doomed.extend(covered.iter().map(|&n| dir.join(layout::segment_name(n))));
        doomed.extend(listing.history.iter().map(|&n| dir.join(layout::history_name(n))));
    }
    let mut removed = Vec::new();
    for path in doomed {
        let result = match failpoint::check("compact_remove") {
            Some(e) => Err(e),
            None => remove_file(&path),
        };
        match result {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let error = Error::io(format!("remove {}", path.display()), e);
                return Err((removed, error));
            }
        }
    }
    if !removed.is_empty() || (retain > 0 && !covered.is_empty()) {
        sync_dir(dir).map_err(|e| (removed.clone(), e))?;
    }
    Ok(removed)
}

/// The oldest history files of `dir` that take it past `retain` bytes of history.
fn history_past(dir: &Path, retain: u64) -> Result<Vec<PathBuf>, Error> {
    let listing = layout::list(dir)?;
    let mut sized = Vec::new();
    for &first in &listing.history {
        let path = dir.join(layout::history_name(first));
        let len = std::fs::metadata(&path)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?
            .len();
        sized.push((path, len));
    }
    let mut total: u64 = sized.iter().map(|(_, len)| len).sum();
    let mut past = Vec::new();
    for (path, len) in sized {
        if total <= retain {
            break;
        }
        total -= len;
        past.push(path);
    }
    Ok(past)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::testutil::{Rng, TempDir, knob};
    use crate::wal::{Options, SyncMode};
    use std::collections::HashMap;

    const OPTIONS: Options = Options { mode: SyncMode::Never, boot: [3; 16] };

    /// Compacts `store` in this thread, as the server's compaction thread would.
    fn compact(store: &mut Store) {
        if let Some(job) = store.seal_now(OPTIONS.boot).unwrap() {
            let done = run(&job).unwrap();
            store.finish_compaction(&done);
        }
    }

    /// Transactions are merged key by key (several keys share a seq), and keys whose expiry has
    /// passed at the compaction's time are left out of the snapshot, which still checks out:
    /// reopening gives exactly the live keys, with their expiries.
    #[test]
    fn transactions_and_expired_keys_are_merged_right() {
        use crate::store::Ttl;
        use crate::store::txn::{Condition, Operation};
        let dir = TempDir::new("compact-txn-ttl");
        let (mut store, _) = Store::open(&dir, OPTIONS).unwrap();
        let now = crate::expiry::now_ms();
        let (soon, later) = (now + 60_000, now + 3_600_000);
        store.set(b"plain", b"p").unwrap();
        store.set_with_ttl(b"short", b"s", Ttl::At(soon)).unwrap();
        store.set_with_ttl(b"long", b"l", Ttl::At(later)).unwrap();
        let set = |key: &[u8], value: &[u8], ttl| Operation::Set {
            key: key.to_vec(),
            value: value.to_vec(),
            ttl,
        };
        let then = [
            set(b"t1", b"1", Ttl::Clear),
            set(b"t2", b"2", Ttl::At(soon)),
            Operation::Delete { key: b"plain".to_vec() },
        ];
        store.txn(&[(b"t1".to_vec(), Condition::Absent)], &then).unwrap();
        store.txn(&[], &[set(b"t1", b"1b", Ttl::Clear), set(b"t3", b"3", Ttl::Keep)]).unwrap();
        store.settle().unwrap();
        let mut job = store.seal_now(OPTIONS.boot).unwrap().expect("a segment to merge");
        job.now_ms = soon; // as if the compaction ran a minute later
        let done = run(&job).unwrap();
        store.finish_compaction(&done);
        assert_eq!(done.contents.keys, 3, "long, t1, t3: short and t2 expired, plain deleted");
        drop(store);
        let (store, _) = Store::open(&dir, OPTIONS).unwrap();
        assert_eq!(store.len(), 3);
        assert_eq!(store.get(b"t1"), Some(&b"1b"[..]));
        assert_eq!(store.get_expiring(b"long").map(|(_, _, e)| e), Some(Some(later)));
        assert_eq!(store.get_expiring(b"t3").map(|(v, _, e)| (v, e)), Some((&b"3"[..], None)));
        let (_, t1_seq) = store.get_versioned(b"t1").unwrap();
        assert_eq!(store.get_versioned(b"t3").map(|(_, seq)| seq), Some(t1_seq), "one seq");
    }

    fn same(store: &Store, oracle: &HashMap<Vec<u8>, Vec<u8>>, keys: &[Vec<u8>], when: &str) {
        assert_eq!(store.len(), oracle.len(), "{when}");
        for key in keys {
            assert_eq!(store.get(key), oracle.get(key).map(Vec::as_slice), "{when}: {key:?}");
        }
        let live: u64 = oracle.iter().map(|(k, v)| snapshot::entry_bytes(k, v, None)).sum();
        assert_eq!(store.live_bytes(), live, "{when}");
    }

    /// The property: replaying the compacted files gives exactly the map that replaying the
    /// whole history gives (the oracle, a plain map that saw every write), over random
    /// histories of overwrites, deletes, re-creates and empty values, with compactions and
    /// restarts at random points between them. Knob: `WALKV_COMPACT_ROUNDS` (default 8).
    #[test]
    fn compacted_files_replay_to_the_same_map_as_the_whole_history() {
        for round in 0..knob("WALKV_COMPACT_ROUNDS", 8) {
            let dir = TempDir::new("compact-property");
            let mut rng = Rng::new(round);
            let keys: Vec<Vec<u8>> =
                (0..1 + rng.below(40)).map(|i| format!("k{i}").into_bytes()).collect();
            let mut oracle: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            let (mut store, _) = Store::open(&dir, OPTIONS).unwrap();
            for step in 0..300 {
                let key = &keys[rng.below(keys.len())];
                match rng.below(10) {
                    0..=5 => {
                        let len = [0, 1, 50, 300][rng.below(4)];
                        let value = rng.bytes(len);
                        store.set(key, &value).unwrap();
                        oracle.insert(key.clone(), value);
                    }
                    6 | 7 => {
                        store.delete(key).unwrap();
                        oracle.remove(key);
                    }
                    8 => compact(&mut store),
                    _ => {
                        drop(store);
                        store = Store::open(&dir, OPTIONS).unwrap().0;
                        same(
                            &store,
                            &oracle,
                            &keys,
                            &format!("round {round} step {step}: reopened"),
                        );
                    }
                }
            }
            compact(&mut store);
            same(&store, &oracle, &keys, &format!("round {round}: compacted"));
            drop(store);
            let listing = layout::list(&dir).unwrap();
            assert!(listing.snapshots.len() <= 1 && listing.segments.len() == 1, "{listing:?}");
            let (store, _) = Store::open(&dir, OPTIONS).unwrap();
            same(&store, &oracle, &keys, &format!("round {round}: from the snapshot"));
        }
    }

    /// Two keys whose hashes collide: the later write clears the earlier one's bit, so the
    /// earlier key is left out (for the count to catch), never copied with a stale value. A
    /// DELETE clears without setting; seqs outside the range are never set.
    #[test]
    fn a_later_write_of_the_same_hash_clears_the_earlier_bit() {
        let mut seqs = Seqs::default();
        let mut bits = Bits::new(10, 200);
        let mut batch = vec![(7, 10, true), (9, 11, true), (7, 12, true), (9, 13, false)];
        note_writes(&mut seqs, &mut bits, &mut batch);
        assert!(batch.is_empty());
        let set: Vec<u64> = (0..300).filter(|&s| bits.get(s)).collect();
        assert_eq!(set, vec![12]);
        assert_eq!(seqs.get(&9), Some(&13));
        for outside in [0, 9, 201, u64::MAX] {
            bits.set(outside);
            assert!(!bits.get(outside), "{outside}");
        }
        bits.set(200);
        assert!(bits.get(200));
        assert!(Bits::new(5, 4).words.is_empty(), "an empty range");
    }

    /// A merge that comes out short (as a hash collision would make it) is refused before its
    /// commit: nothing is renamed, nothing removed.
    #[test]
    fn a_merge_that_does_not_match_the_map_is_refused() {
        let dir = TempDir::new("compact-mismatch");
        let (mut store, _) = Store::open(&dir, OPTIONS).unwrap();
        store.set(b"a", b"1").unwrap();
        store.set(b"b", b"2").unwrap();
        let mut job = store.seal_now(OPTIONS.boot).unwrap().unwrap();
        job.keys += 1;
        let before = layout::list(&dir).unwrap();
        let err = run(&job).unwrap_err().to_string();
        assert!(err.contains("holds 2 keys") && err.contains("store held 3"), "{err}");
        assert_eq!(layout::list(&dir).unwrap(), before);
    }
}
