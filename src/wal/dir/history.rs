//! The log's history as a list of changes: what `GET /changes` serves from the files, before
//! the changes recent enough to be in memory ([`crate::feed`]).
//!
//! History is what the segments hold. A compaction replaces every segment before the newest
//! with a snapshot of the live keys, which is state, not history: the changes it covers are no
//! longer held, and a reader asking for them is told the oldest seq it can have
//! ([`History::Compacted`]), so that it can start again from an export instead of missing
//! changes without knowing. With `--changes-retain`, a compaction keeps the segments it covers
//! as `history-<first>.wal` files (up to a number of bytes), read here before the rest.
//!
//! History must never have a hole: the record after seq `s` must be `s + 1` (or a GAP record
//! that starts there), from file to file, and the snapshot in charge must start where the
//! files before it end. A hole (a file a compaction renamed or removed between the listing and
//! the read) is [`History::Hole`], read again from a fresh listing.
//!
//! Like [`crate::wal::view`], this works beside the running server and changes nothing. The caller
//! fixes `upto` before the files are listed, and every record through `upto` was written before
//! that: so every change asked for is in the files listed, or in a snapshot a compaction made
//! since (then the answer is `Compacted`). Records past `upto` (the server goes on writing) and
//! the newest segment's unfinished tail are never read as changes. A compaction that removes a
//! file while it is read makes the read start again from the last change shown.

use crate::error::Error;
use crate::wal::layout;
use crate::wal::record::Body;
use crate::wal::scan::{Judge, scan_every};
use crate::wal::view::{self, ATTEMPTS, Piece, vanished};
use std::path::{Path, PathBuf};

/// Why history could not be read.
#[derive(Debug)]
pub enum History {
    /// The changes after the seq asked for are partly compacted away: the oldest change held
    /// has this seq (every change after `oldest - 1` is held).
    Compacted { oldest: u64 },
    /// The files read had no record of this seq where one was due: a compaction renamed or
    /// removed a file while they were listed. A fresh read (from the last change shown) sees
    /// them whole.
    Hole { at: u64 },
    /// Reading the files failed.
    Failed(Error),
}

/// The smallest `after` whose changes are all held: changes after it are in the files.
pub fn held_after(dir: &Path) -> Result<u64, Error> {
    Ok(floor(&pieces(dir)?))
}

/// Calls `visit` with each change with a seq in `(after, upto]`, in order, from the files of
/// the log in `dir`; `visit` returns false to stop early.
pub fn changes(
    dir: &Path,
    after: u64,
    upto: u64,
    mut visit: impl FnMut(u64, &Body) -> bool,
) -> Result<(), History> {
    let mut cursor = after;
    let mut attempts = 0;
    loop {
        match changes_once(dir, &mut cursor, upto, &mut visit) {
            Err(History::Failed(e)) if vanished(&e) && attempts + 1 < ATTEMPTS => attempts += 1,
            Err(History::Hole { .. }) if attempts + 1 < ATTEMPTS => attempts += 1,
            other => return other,
        }
    }
}

/// The files that hold history, in order: the history files and any segment the snapshot
/// covers (a compaction that has not renamed or removed it yet), then what recovery reads.
fn pieces(dir: &Path) -> Result<Vec<Piece>, Error> {
    let listing = layout::list(dir)?;
    let upto = listing.snapshots.last().copied().unwrap_or(0);
    let covered = listing.segments.windows(2).take_while(|w| w[1] <= upto + 1).map(|w| w[0]);
    let mut older: Vec<(u64, PathBuf)> = listing
        .history
        .iter()
        .map(|&n| (n, dir.join(layout::history_name(n))))
        .chain(covered.map(|n| (n, dir.join(layout::segment_name(n)))))
        .collect();
    older.sort();
    older.dedup_by_key(|(n, _)| *n);
    let mut pieces: Vec<Piece> = older
        .into_iter()
        .map(|(first, path)| Piece::Segment { path, after: first - 1, ceiling: None })
        .collect();
    pieces.extend(view::pieces(dir)?);
    Ok(pieces)
}

fn changes_once(
    dir: &Path,
    cursor: &mut u64,
    upto: u64,
    visit: &mut impl FnMut(u64, &Body) -> bool,
) -> Result<(), History> {
    let pieces = pieces(dir).map_err(History::Failed)?;
    let floor = floor(&pieces);
    if *cursor < floor {
        return Err(History::Compacted { oldest: floor + 1 });
    }
    let starts: Vec<u64> = pieces.iter().map(first_after).collect();
    let mut going = true;
    // The seq the next record must have: history read from several files, listed while a
    // compaction may rename or remove some, must have no hole.
    let mut next: Option<u64> = None;
    let mut hole = None;
    for (i, piece) in pieces.iter().enumerate() {
        if !going {
            break;
        }
        if let Piece::Snapshot { upto: snapshot, .. } = piece {
            if next.is_some_and(|n| n != snapshot + 1) {
                hole = next;
                break;
            }
            next = next.map(|_| snapshot + 1);
            continue;
        }
        // A file whose successor starts at or before the cursor holds nothing after it.
        if starts.get(i + 1).is_some_and(|later| *later <= *cursor) {
            next = None;
            continue;
        }
        let scanned = scan_every(piece.path(), Judge::Live, starts[i], |_, record| {
            if !going || hole.is_some() {
                return;
            }
            let first = match record.body {
                Body::Gap { first } => first,
                Body::Mark(_) => return,
                _ => record.seq,
            };
            if next.is_some_and(|n| n != first) {
                hole = next;
                return;
            }
            next = Some(record.seq + 1);
            if record.seq <= *cursor {
                return;
            }
            if record.seq > upto {
                going = false;
                return;
            }
            if !record.is_data() {
                *cursor = record.seq;
                return;
            }
            going = visit(record.seq, &record.body);
            *cursor = record.seq;
        });
        scanned.map_err(History::Failed)?;
        if hole.is_some() {
            break;
        }
    }
    match hole {
        Some(at) => Err(History::Hole { at }),
        None => Ok(()),
    }
}

/// The seq before a piece's first record.
fn first_after(piece: &Piece) -> u64 {
    match piece {
        Piece::Snapshot { upto, .. } => *upto,
        Piece::Segment { after, .. } => *after,
        Piece::Single { .. } => 0,
    }
}

/// Changes after this seq are held: where the first file starts.
fn floor(pieces: &[Piece]) -> u64 {
    pieces.first().map_or(0, first_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::testutil::TempDir;
    use crate::wal::{Op, Options, SyncMode};

    fn read(dir: &Path, after: u64, upto: u64) -> Result<Vec<(u64, Op, Vec<u8>)>, History> {
        let mut seen = Vec::new();
        changes(dir, after, upto, |seq, body| {
            let (op, key) = match *body {
                Body::Set { key, .. } => (Op::Set, key),
                Body::Delete { key } => (Op::Delete, key),
                _ => panic!("not written here: {body:?}"),
            };
            seen.push((seq, op, key.to_vec()));
            true
        })?;
        Ok(seen)
    }

    /// Changes come in order from every segment, within the bounds; after a compaction the
    /// changes it covered are refused with the oldest seq still held.
    #[test]
    fn changes_are_read_in_order_until_compacted() {
        let dir = TempDir::new("history");
        let options = Options { mode: SyncMode::Interval, boot: [7; 16] };
        let (mut store, _) = Store::open(&dir, options).unwrap();
        store.set(b"a", b"1").unwrap();
        store.set(b"b", b"2").unwrap();
        store.delete(b"a").unwrap();
        store.settle().unwrap();
        let all = read(&dir, 0, 3).unwrap();
        let keys: Vec<_> = all.iter().map(|(s, op, k)| (*s, *op, k.as_slice())).collect();
        assert_eq!(keys, [(1, Op::Set, &b"a"[..]), (2, Op::Set, b"b"), (3, Op::Delete, b"a")]);
        assert_eq!(read(&dir, 1, 2).unwrap().len(), 1, "only (1, 2]");
        assert_eq!(held_after(&dir).unwrap(), 0);
        let job = store.seal_now(crate::wal::boot_id()).unwrap().expect("a segment to merge");
        let done = crate::wal::compact::run(&job).unwrap();
        store.finish_compaction(&done);
        store.set(b"c", b"3").unwrap();
        store.settle().unwrap();
        assert_eq!(held_after(&dir).unwrap(), 3);
        assert!(matches!(read(&dir, 2, 4), Err(History::Compacted { oldest: 4 })));
        let after = read(&dir, 3, 4).unwrap();
        assert_eq!(after, [(4, Op::Set, b"c".to_vec())]);
        let mut first = None;
        changes(&dir, 3, 4, |seq, _| {
            first = Some(seq);
            false
        })
        .unwrap();
        assert_eq!(first, Some(4));
    }

    /// With history retained, the segments a compaction covers stay readable, across two
    /// compactions, until they pass the bound; a hole in the files is said, never skipped.
    #[test]
    fn retained_history_outlives_compactions() {
        let dir = TempDir::new("history-retain");
        let options = Options { mode: SyncMode::Interval, boot: [7; 16] };
        let (mut store, _) = Store::open(&dir, options).unwrap();
        let compact = |store: &mut Store, retain: u64| {
            let mut job = store.seal_now(crate::wal::boot_id()).unwrap().expect("a segment");
            job.retain = retain;
            let done = crate::wal::compact::run(&job).unwrap();
            store.finish_compaction(&done);
        };
        for round in 0..2u8 {
            store.set(b"a", &[round]).unwrap();
            store.delete(b"a").unwrap();
            store.set(b"b", &[round]).unwrap();
            store.settle().unwrap();
            compact(&mut store, 1 << 20);
        }
        store.set(b"c", b"3").unwrap();
        store.settle().unwrap();
        assert_eq!(held_after(&dir).unwrap(), 0, "every change is still held");
        let seqs: Vec<u64> = read(&dir, 0, 7).unwrap().iter().map(|c| c.0).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(read(&dir, 2, 4).unwrap().len(), 2, "from the middle of a history file");
        // A hole: the first history file's successor gone.
        let listing = layout::list(&dir).unwrap();
        assert_eq!(listing.history.len(), 2, "{listing:?}");
        std::fs::remove_file(dir.join(layout::history_name(listing.history[1]))).unwrap();
        assert!(matches!(read(&dir, 0, 7), Err(History::Hole { at: 4 })));
        // A compaction with a small bound drops the oldest history first.
        store.set(b"d", b"4").unwrap();
        store.settle().unwrap();
        compact(&mut store, 1);
        assert!(layout::list(&dir).unwrap().history.is_empty());
        assert_eq!(held_after(&dir).unwrap(), 8);
    }
}
