//! Reading a data directory without opening it: the live data as of one moment, for
//! `walkv export`, and the files in replay order, for `walkv dump`.
//!
//! Nothing here writes, locks or trims: it works beside a running server. The moment is fixed
//! when reading starts: the newest segment's length then. Records that end past it were written
//! after the start and are left out, so the result is the store exactly as it was after the
//! last record complete at that moment (a prefix of the log, never a mix). A running server's
//! compaction may remove files while they are read; the read then starts again, from a new
//! moment, at most [`ATTEMPTS`] times.
//!
//! What counts is what recovery would replay ([`crate::wal::dir`]): the snapshot in charge, then
//! every segment after it, each sealed one to its clean end, the newest to its valid end (a
//! torn or unsynced tail is what the server trims). Damage that recovery would refuse (a
//! corrupt tail, a missing segment, a sealed segment ending early, a damaged snapshot) is an
//! error here too: an export of a damaged log would silently be half of it.

use crate::error::Error;
use crate::wal::dir::{Part, parts};
use crate::wal::layout;
use crate::wal::record::{Body, Record};
use crate::wal::scan::{Judge, Scan, Tail, scan_every};
use crate::wal::snapshot;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Reads are started again at most this many times when a compaction replaces files.
pub const ATTEMPTS: usize = 3;

/// A file of the log, and how recovery reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// The snapshot in charge: every live key as of seq `upto`.
    Snapshot { path: PathBuf, upto: u64 },
    /// A segment whose first record follows seq `after`. A sealed one must end at `ceiling`;
    /// the newest (`ceiling: None`) is read as far as it is valid.
    Segment { path: PathBuf, after: u64, ceiling: Option<u64> },
    /// The one-file layout: `walkv.wal`, from seq 1.
    Single { path: PathBuf },
}

impl Piece {
    pub fn path(&self) -> &Path {
        match self {
            Piece::Snapshot { path, .. } | Piece::Segment { path, .. } | Piece::Single { path } => {
                path
            }
        }
    }

    /// True for the file a server appends to.
    pub fn is_newest(&self) -> bool {
        matches!(self, Piece::Segment { ceiling: None, .. } | Piece::Single { .. })
    }
}

/// The files recovery reads, in replay order; leftovers (which the next start removes) are
/// skipped. A missing segment is an error.
pub fn pieces(dir: &Path) -> Result<Vec<Piece>, Error> {
    let listing = layout::list(dir)?;
    if !listing.is_segmented() {
        let path = dir.join(crate::wal::FILE_NAME);
        if !path.exists() {
            return Err(Error::io(
                format!("read the log in {}", dir.display()),
                io::Error::new(io::ErrorKind::NotFound, "there is no log in this directory"),
            ));
        }
        return Ok(vec![Piece::Single { path }]);
    }
    let mut pieces = Vec::new();
    for (path, part) in parts(dir)? {
        pieces.push(match part {
            Part::Leftover => continue,
            Part::Snapshot { upto } => Piece::Snapshot { path, upto },
            Part::Sealed { first, ceiling } => {
                Piece::Segment { path, after: first - 1, ceiling: Some(ceiling) }
            }
            Part::Newest { first } => Piece::Segment { path, after: first - 1, ceiling: None },
            Part::Missing { first, .. } => {
                let reason = format!(
                    "this segment is missing: it must hold the writes from seq {first} on, and \
                     they are in no file (see `walkv check`)"
                );
                return Err(Error::Damaged { path, reason });
            }
        });
    }
    Ok(pieces)
}

/// How to judge the newest file's tail: as a running server's if one holds the lock (seen
/// without taking it: see [`crate::wal::lock::is_held`]).
pub fn judge(dir: &Path) -> Result<Judge, Error> {
    Ok(if crate::wal::lock::is_held(dir)? {
        Judge::Live
    } else {
        Judge::Stopped { boot: crate::wal::boot_id() }
    })
}

/// The refusal for a scanned segment recovery would not accept, if it is one.
pub fn refusal(piece: &Piece, scan: &Scan) -> Option<Error> {
    let reason = match (&scan.tail, piece) {
        (Tail::Corrupt { .. }, _) => format!(
            "{} Recovery refuses this log; see `walkv check` and `walkv repair --dry-run`",
            scan.explain()
        ),
        (Tail::Clean | Tail::Reserved, Piece::Segment { ceiling: Some(c), .. })
            if scan.last_seq != *c =>
        {
            format!(
                "this sealed segment ends at seq {} but the next one starts at seq {}: the \
                 writes in between are in no file",
                scan.last_seq,
                c + 1
            )
        }
        (_, Piece::Segment { ceiling: Some(_), .. })
            if !matches!(scan.tail, Tail::Clean | Tail::Reserved) =>
        {
            format!("a sealed segment must end cleanly: {}", scan.explain())
        }
        _ => return None,
    };
    Some(Error::Damaged { path: piece.path().to_path_buf(), reason })
}

/// A key's value, the seq of the record that set it, and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub seq: u64,
    pub value: Box<[u8]>,
    /// Milliseconds since the Unix epoch; `None`: never.
    pub expires: Option<u64>,
}

/// The live data as of one moment, keys in byte order. Keys whose expiry has passed are still
/// here (the reader decides what "now" is).
#[derive(Debug, Default)]
pub struct Data {
    pub keys: BTreeMap<Box<[u8]>, Value>,
    /// The last sequence number included.
    pub last_seq: u64,
}

/// Reads the live data of `dir` as of now (see the module doc).
pub fn read_data(dir: &Path) -> Result<Data, Error> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match read_once(dir) {
            Err(e) if vanished(&e) => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| Error::Failed { reason: "no attempt was made".into() }))
}

/// True for the error of a file that a compaction removed while it was being read.
pub fn vanished(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

fn read_once(dir: &Path) -> Result<Data, Error> {
    let judge = judge(dir)?;
    let pieces = pieces(dir)?;
    let moment = match pieces.last() {
        Some(newest) if newest.is_newest() => file_len(newest.path())?,
        _ => u64::MAX,
    };
    let mut data = Data::default();
    for piece in &pieces {
        let (path, after) = match piece {
            Piece::Snapshot { path, upto } => {
                snapshot::load(path, *upto, |record| data.apply(record))?;
                data.last_seq = *upto;
                continue;
            }
            Piece::Segment { path, after, .. } => (path, *after),
            Piece::Single { path } => (path, 0),
        };
        let limit = if piece.is_newest() { moment } else { u64::MAX };
        let scan = scan_every(path, judge, after, |at, record| {
            if at.saturating_add(record_len(record)) <= limit {
                data.apply(record);
            }
        })?;
        if let Some(e) = refusal(piece, &scan) {
            return Err(e);
        }
    }
    Ok(data)
}

impl Data {
    fn apply(&mut self, record: &Record) {
        match record.body {
            Body::Txn(txn) => {
                for op in txn.ops() {
                    self.apply_change(record.seq, &op);
                }
            }
            ref change => self.apply_change(record.seq, change),
        }
        self.last_seq = self.last_seq.max(record.seq);
    }

    fn apply_change(&mut self, seq: u64, change: &Body) {
        match *change {
            Body::Set { key, value, expires } => {
                self.keys.insert(key.into(), Value { seq, value: value.into(), expires });
            }
            Body::Delete { key } | Body::Expire { key } => {
                self.keys.remove(key);
            }
            Body::Txn(_) | Body::Mark(_) | Body::Gap { .. } => {}
        }
    }
}

/// The bytes `record` takes in its file.
pub fn record_len(record: &Record) -> u64 {
    use crate::wal::record::{GAP_BODY_LEN, MARK_BODY_LEN, RECORD_HEADER_LEN};
    let body = match record.body {
        Body::Set { key, value, expires } => {
            key.len() + value.len() + expires.map_or(0, |_| crate::wal::record::EXPIRY_LEN)
        }
        Body::Delete { key } | Body::Expire { key } => key.len(),
        Body::Txn(txn) => txn.bytes().len(),
        Body::Mark(_) => MARK_BODY_LEN,
        Body::Gap { .. } => GAP_BODY_LEN,
    };
    (RECORD_HEADER_LEN + body) as u64
}

fn file_len(path: &Path) -> Result<u64, Error> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| Error::io(format!("read {}", path.display()), e))
}
