//! The files of a data directory and their names: which file holds which part of the history.
//!
//! ```text
//! DIR/LOCK                                  the lock (see crate::store)
//! DIR/walkv.wal                             the layout marker: a header of version 5, nothing else
//! DIR/snapshot-00000000000000001000.snap    every live key as of seq 1000 (at most one in charge)
//! DIR/segment-00000000000000001001.wal      the records from seq 1001 on (sealed)
//! DIR/segment-00000000000000005123.wal      the records from seq 5123 on: the newest, being written
//! DIR/NAME.new                              a file being written, in charge of nothing until renamed
//! DIR/NAME.trimmed-…, .cut-…, .skipped-…    side files: bytes cut out of a log (kept, never read)
//! ```
//!
//! Numbers are zero-padded to 20 digits so that a listing sorts in order. A segment's number is
//! the sequence number its first record has (or would have); a snapshot's is the last sequence
//! number it covers. The state of the store is the snapshot in charge (the one with the highest
//! number), then every segment after it, in order, each starting right after the previous ends.

use crate::error::Error;
use crate::wal::files::{FILE_NAME, file_name};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".wal";
const HISTORY_PREFIX: &str = "history-";
const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".snap";

/// The name of the segment whose first record has sequence number `first`.
pub fn segment_name(first: u64) -> String {
    format!("{SEGMENT_PREFIX}{first:020}{SEGMENT_SUFFIX}")
}

/// The name a segment covered by a snapshot keeps while it is history the change feed serves
/// (`--changes-retain`): `history-<first>.wal`.
pub fn history_name(first: u64) -> String {
    format!("{HISTORY_PREFIX}{first:020}{SEGMENT_SUFFIX}")
}

/// The name of the snapshot that covers every write up to sequence number `upto`.
pub fn snapshot_name(upto: u64) -> String {
    format!("{SNAPSHOT_PREFIX}{upto:020}{SNAPSHOT_SUFFIX}")
}

/// What a file name in the data directory says the file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `walkv.wal`: the layout marker, or a log of the one-file layout (before segments).
    Marker,
    Segment(u64),
    Snapshot(u64),
    /// `history-<first>.wal`: a segment a snapshot covers, kept for the change feed. Replay,
    /// `check`, `repair`, `dump` and `export` never read it.
    History(u64),
    /// `NAME.new`: an interrupted replacement or creation.
    Unfinished,
    /// Anything else: `LOCK`, side files, files walkv does not know. Never touched.
    Other,
}

/// Classifies a file name. Only the exact names walkv writes count: `segment-7.wal` (not padded)
/// is not a segment.
pub fn classify(name: &str) -> Kind {
    let number = |prefix: &str, suffix: &str| {
        let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
        let ok = digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| digits.parse::<u64>().ok()).flatten()
    };
    if name == FILE_NAME {
        Kind::Marker
    } else if let Some(n) = number(SEGMENT_PREFIX, SEGMENT_SUFFIX) {
        Kind::Segment(n)
    } else if let Some(n) = number(SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX) {
        Kind::Snapshot(n)
    } else if let Some(n) = number(HISTORY_PREFIX, SEGMENT_SUFFIX) {
        Kind::History(n)
    } else if name.ends_with(".new")
        && matches!(classify(&name[..name.len() - 4]), Kind::Segment(_) | Kind::Snapshot(_))
    {
        Kind::Unfinished
    } else {
        Kind::Other
    }
}

/// The files of a data directory, by kind, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listing {
    pub marker: bool,
    /// Segment numbers, ascending.
    pub segments: Vec<u64>,
    /// Snapshot numbers, ascending.
    pub snapshots: Vec<u64>,
    /// History file numbers (their first seqs), ascending.
    pub history: Vec<u64>,
    /// `segment-….wal.new` and `snapshot-….snap.new`.
    pub unfinished: Vec<PathBuf>,
}

impl Listing {
    /// True if the directory uses segments (or did: its marker may be all that is left).
    pub fn is_segmented(&self) -> bool {
        !self.segments.is_empty() || !self.snapshots.is_empty()
    }
}

/// Lists the files of `dir` that belong to the log. A directory that does not exist is empty.
pub fn list(dir: &Path) -> Result<Listing, Error> {
    let mut listing = Listing::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(listing),
        Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
        match classify(&file_name(&entry.path())) {
            Kind::Marker => listing.marker = true,
            Kind::Segment(n) => listing.segments.push(n),
            Kind::Snapshot(n) => listing.snapshots.push(n),
            Kind::Unfinished => listing.unfinished.push(entry.path()),
            Kind::History(n) => listing.history.push(n),
            Kind::Other => {}
        }
    }
    listing.segments.sort_unstable();
    listing.snapshots.sort_unstable();
    listing.history.sort_unstable();
    listing.unfinished.sort();
    Ok(listing)
}

/// The size of every file in `dir` (the `disk_bytes` of `/status`): what the directory takes,
/// side files and leftovers included. Files that vanish while it counts are skipped.
pub fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .fold(0u64, u64::saturating_add)
}

/// The bytes of the files replay reads (the marker, snapshots, segments): what a replay's
/// progress is a share of. Leftovers that replay skips count too, so it is an upper bound.
pub fn log_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name();
            let kind = classify(name.to_str()?);
            matches!(kind, Kind::Marker | Kind::Segment(_) | Kind::Snapshot(_))
                .then(|| e.metadata().ok().map(|m| m.len()))
                .flatten()
        })
        .fold(0u64, u64::saturating_add)
}

/// A sealed segment: complete, fsynced, never written again.
pub use crate::wal::log::Sealed;

/// The snapshot in charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub path: PathBuf,
    pub upto: u64,
    pub bytes: u64,
}

/// The files that hold the history before the segment being written: what a compaction merges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub snapshot: Option<Snapshot>,
    pub sealed: Vec<Sealed>,
}

impl Layout {
    /// Bytes in the snapshot and the sealed segments.
    pub fn bytes(&self) -> u64 {
        let sealed = self.sealed.iter().map(|s| s.bytes).fold(0u64, u64::saturating_add);
        self.snapshot.as_ref().map_or(0, |s| s.bytes).saturating_add(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_exact_names_count() {
        assert_eq!(segment_name(1), "segment-00000000000000000001.wal");
        assert_eq!(classify(&segment_name(1)), Kind::Segment(1));
        assert_eq!(classify(&segment_name(u64::MAX)), Kind::Segment(u64::MAX));
        assert_eq!(classify(&snapshot_name(42)), Kind::Snapshot(42));
        assert_eq!(classify("walkv.wal"), Kind::Marker);
        assert_eq!(classify(&format!("{}.new", snapshot_name(9))), Kind::Unfinished);
        assert_eq!(classify(&format!("{}.new", segment_name(9))), Kind::Unfinished);
        for other in [
            "segment-1.wal",
            "segment-0000000000000000000x.wal",
            "snapshot-99999999999999999999.snap", // over u64::MAX
            "walkv.wal.new",
            "walkv.wal.trimmed-24-1700000000",
            "LOCK",
            "segment-00000000000000000001.wal.trimmed-24-1",
        ] {
            assert_eq!(classify(other), Kind::Other, "{other}");
        }
    }

    #[test]
    fn a_listing_sorts_by_number() {
        let dir = crate::testutil::TempDir::new("layout-list");
        for name in [segment_name(10), segment_name(2), snapshot_name(1), "LOCK".into()] {
            fs::write(dir.join(name), b"x").unwrap();
        }
        let listing = list(&dir).unwrap();
        assert_eq!(listing.segments, vec![2, 10]);
        assert_eq!(listing.snapshots, vec![1]);
        assert!(!listing.marker && listing.is_segmented());
        assert_eq!(disk_bytes(&dir), 4);
    }
}
