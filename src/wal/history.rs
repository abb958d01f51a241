//! The log's history as a list of changes: what `GET /changes` serves from the files, before
//! the changes recent enough to be in memory ([`crate::feed`]).
//!
//! History is what the segments hold. A compaction replaces every segment before the newest
//! with a snapshot of the live keys, which is state, not history: the changes it covers are no
//! longer held, and a reader asking for them is told the oldest seq it can have
//! ([`History::Compacted`]), so that it can start again from an export instead of missing
//! changes without knowing.
//!
//! Like [`super::view`], this works beside the running server and changes nothing. The caller
//! fixes `upto` before the files are listed, and every record through `upto` was written before
//! that: so every change asked for is in the files listed, or in a snapshot a compaction made
//! since (then the answer is `Compacted`). Records past `upto` (the server goes on writing) and
//! the newest segment's unfinished tail are never read as changes. A compaction that removes a
//! file while it is read makes the read start again from the last change shown.

use super::record::{Body, Op};
use super::scan::{Judge, scan_every};
use super::view::{self, ATTEMPTS, Piece, vanished};
use crate::error::Error;
use std::path::Path;

/// Why history could not be read.
#[derive(Debug)]
pub enum History {
    /// The changes after the seq asked for are partly compacted away: the oldest change held
    /// has this seq (every change after `oldest - 1` is held).
    Compacted { oldest: u64 },
    /// Reading the files failed.
    Failed(Error),
}

/// The smallest `after` whose changes are all held: changes after it are in the segments.
pub fn held_after(dir: &Path) -> Result<u64, Error> {
    Ok(floor(&view::pieces(dir)?))
}

/// Calls `visit` with each change with a seq in `(after, upto]`, in order, from the files of
/// the log in `dir`; `visit` returns false to stop early.
pub fn changes(
    dir: &Path,
    after: u64,
    upto: u64,
    mut visit: impl FnMut(u64, Op, &[u8], &[u8]) -> bool,
) -> Result<(), History> {
    let mut cursor = after;
    let mut attempts = 0;
    loop {
        match changes_once(dir, &mut cursor, upto, &mut visit) {
            Err(History::Failed(e)) if vanished(&e) && attempts + 1 < ATTEMPTS => attempts += 1,
            other => return other,
        }
    }
}

fn changes_once(
    dir: &Path,
    cursor: &mut u64,
    upto: u64,
    visit: &mut impl FnMut(u64, Op, &[u8], &[u8]) -> bool,
) -> Result<(), History> {
    let pieces = view::pieces(dir).map_err(History::Failed)?;
    let floor = floor(&pieces);
    if *cursor < floor {
        return Err(History::Compacted { oldest: floor + 1 });
    }
    let starts: Vec<u64> = pieces.iter().map(first_after).collect();
    let mut going = true;
    for (i, piece) in pieces.iter().enumerate() {
        if matches!(piece, Piece::Snapshot { .. }) || !going {
            continue;
        }
        // A segment whose successor starts at or before the cursor holds nothing after it.
        if starts.get(i + 1).is_some_and(|next| *next <= *cursor) {
            continue;
        }
        let scanned = scan_every(piece.path(), Judge::Live, starts[i], |_, record| {
            if !going || record.seq <= *cursor {
                return;
            }
            if record.seq > upto {
                going = false;
                return;
            }
            let (op, key, value) = match record.body {
                Body::Set { key, value } => (Op::Set, key, value),
                Body::Delete { key } => (Op::Delete, key, &[][..]),
                Body::Mark(_) | Body::Gap { .. } => return,
            };
            going = visit(record.seq, op, key, value);
            *cursor = record.seq;
        });
        scanned.map_err(History::Failed)?;
    }
    Ok(())
}

/// The seq before a piece's first record.
fn first_after(piece: &Piece) -> u64 {
    match piece {
        Piece::Snapshot { upto, .. } => *upto,
        Piece::Segment { after, .. } => *after,
        Piece::Single { .. } => 0,
    }
}

/// Changes after this seq are held: the snapshot's `upto`, or where the first file starts.
fn floor(pieces: &[Piece]) -> u64 {
    pieces.first().map_or(0, first_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::testutil::TempDir;
    use crate::wal::{Options, SyncMode};

    fn read(dir: &Path, after: u64, upto: u64) -> Result<Vec<(u64, Op, Vec<u8>)>, History> {
        let mut seen = Vec::new();
        changes(dir, after, upto, |seq, op, key, _| {
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
        changes(&dir, 3, 4, |seq, _, _, _| {
            first = Some(seq);
            false
        })
        .unwrap();
        assert_eq!(first, Some(4));
    }
}
