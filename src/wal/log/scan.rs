//! Replay and the recovery rules: reading a log from the start, and judging whatever follows its
//! last valid record (the rules themselves are specified in `docs/recovery.md`, *The rules*).
//!
//! [`scan`] streams the file through a [`Window`]: records are checked and replayed in order
//! until the first one that does not check out or does not fit (the *damage point*). The rest of
//! the file is then read once more, byte by byte, for three things: whether anything but zeros
//! follows; whether a genuine SYNC marker follows (proof that the damaged bytes had been on
//! disk); and which records still check out after the damage (what a trim or a repair would
//! drop). Memory stays bounded by the window, whatever the file's size.
//!
//! Time: one pass, with a checksum only for a byte that could start a record that matters (a
//! type of 1 to 4, a new sequence number, not inside a record already counted). So only the
//! damaged bytes themselves are searched through; if they are a value built to look like record
//! headers at many offsets, each such offset costs a checksum over up to 1 MiB (a bound worked
//! out, not measured: minutes for one such 1 MiB value, once, at the first start after damage).

use crate::error::Error;
use crate::wal::reader::Window;
use crate::wal::record::{
    Body, BootId, Decoded, HEADER_LEN, Header, HeaderFault, MAX_RECORD_LEN, Mark,
    RECORD_HEADER_LEN, Record, SyncMode, decode, decode_header, peek,
};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The result of reading a whole log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub header: Header,
    /// SET and DELETE records, in order, before any damage.
    pub records: u64,
    /// Sequence number of the last record before any damage (0 if none).
    pub last_seq: u64,
    /// Byte offset just past the last valid record: where the next record belongs.
    pub end: u64,
    /// The file's length, as far as it was read.
    pub file_len: u64,
    /// Just past the last byte that is not zero (`end` for a clean log): what a trim drops,
    /// without the reserved zeros after it.
    pub data_end: u64,
    /// The last SYNC marker before any damage.
    pub last_mark: Option<Mark>,
    /// What follows `end`.
    pub tail: Tail,
}

/// What a scan found after the last valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// The file ends exactly after the last valid record.
    Clean,
    /// Only zeros follow, to the end of the file: space a server reserved ahead of its log.
    Reserved,
    /// One final append the previous server did not finish, in the same kernel boot: it was
    /// never acknowledged, and it is trimmed.
    Unfinished { fault: String },
    /// Damage beyond the last point known to be durable, after a power cut could have happened:
    /// trimmed at open; records that still check out in it are kept in a side file.
    Unsynced { fault: String, found: Found },
    /// Damage to bytes that had been on disk: startup refuses, an operator decides.
    Corrupt { fault: String, proof: Proof, found: Found },
}

/// Why damage is corruption rather than an unsynced tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// A genuine SYNC marker at this offset follows the damage: everything before it was on
    /// stable storage when it was written.
    Marker { at: u64 },
    /// The previous server ran in this kernel boot, so the page cache lost nothing it wrote, and
    /// the damage is not one unfinished final append.
    SameBoot,
    /// A format 1 log (no markers): a valid record with this sequence number (or a later one)
    /// follows at this offset, outside the damaged record's extent.
    LaterRecord { at: u64, seq: u64 },
}

/// What still checks out after a damage point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Found {
    /// SET and DELETE records that check out with a new sequence number, found by following
    /// lengths from wherever one starts (in a format 1 log, only outside the damaged record's
    /// declared extent).
    pub records: u64,
    /// Offset and sequence number of the first of them.
    pub first: Option<(u64, u64)>,
    /// Highest sequence number among them and any GAP records (0 if none).
    pub max_seq: u64,
    /// Format 1: records that check out inside the damaged record's declared extent (most likely
    /// part of its value, so not counted above).
    pub inside: u64,
    /// Just past the last non-zero byte from the damage point on.
    pub data_end: u64,
}

/// How to judge damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    /// The log is not being written (at open, or `check` on a stopped server). `boot` is this
    /// kernel's boot id, all zeros if unknown.
    Stopped { boot: BootId },
    /// `check` on a running server's log: the tail may be half-written right now, so only a
    /// marker proves damage.
    Live,
}

/// Reads the header of the log at `path`. `Ok(None)`: the file is empty or holds only a prefix
/// of a header (its creation was interrupted), so it may be created anew.
pub fn read_header(path: &Path) -> Result<Option<Header>, Error> {
    let mut bytes = Vec::with_capacity(HEADER_LEN);
    File::open(path)
        .and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut bytes))
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    match decode_header(&bytes) {
        Ok(header) => Ok(Some(header)),
        Err(HeaderFault::Short { prefix: true, .. }) => Ok(None),
        Err(fault) => Err(header_error(path, fault)),
    }
}

fn header_error(path: &Path, fault: HeaderFault) -> Error {
    let path = path.to_path_buf();
    match fault {
        HeaderFault::Short { len, .. } => {
            Error::NotALog { path, reason: format!("a {len}-byte file that is not a walkv header") }
        }
        HeaderFault::BadMagic => {
            Error::NotALog { path, reason: "it does not start with `walkvWAL`".into() }
        }
        HeaderFault::Newer(version) => {
            Error::NewerFormat { path, version, newest: crate::wal::record::LAYOUT_VERSION }
        }
        HeaderFault::Damaged(reason) => Error::Corrupt { path, offset: 0, reason },
    }
}

/// The state of the valid prefix while scanning.
struct Prefix {
    records: u64,
    last_seq: u64,
    last_mark: Option<Mark>,
}

/// Reads the log at `path` from the start, calling `visit` for each SET and DELETE in order, and
/// judges what follows the last valid record. Reads only; changes nothing.
pub fn scan(path: &Path, judge: Judge, visit: impl FnMut(&Record)) -> Result<Scan, Error> {
    scan_after(path, judge, 0, visit)
}

/// [`scan`] for a log whose first record follows sequence number `after` (a segment: see
/// [`crate::wal::layout`]); `Scan::last_seq` is `after` if it holds no record.
pub fn scan_after(
    path: &Path,
    judge: Judge,
    after: u64,
    mut visit: impl FnMut(&Record),
) -> Result<Scan, Error> {
    scan_every(path, judge, after, |_, record| {
        if record.is_data() {
            visit(record);
        }
    })
}

/// [`scan_after`] that shows `visit` every record of the valid prefix, markers and gaps too,
/// with the offset it starts at (`walkv dump`, `walkv export`).
pub fn scan_every(
    path: &Path,
    judge: Judge,
    after: u64,
    mut visit: impl FnMut(u64, &Record),
) -> Result<Scan, Error> {
    let read_err = |e| Error::io(format!("read {}", path.display()), e);
    let header = match read_header(path)? {
        Some(header) if crate::wal::record::is_marker_version(header.version) => {
            let reason = "it is the layout marker of a data directory that holds segments, \
                          not a log (see docs/data-directory.md)"
                .to_string();
            return Err(Error::NotALog { path: path.to_path_buf(), reason });
        }
        Some(header) => header,
        None => {
            let reason = "the file is shorter than a log header".to_string();
            return Err(Error::NotALog { path: path.to_path_buf(), reason });
        }
    };
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut window = Window::new(file, 0);
    let seed = header.seed();
    let mut prefix = Prefix { records: 0, last_seq: after, last_mark: None };
    let mut at = header.size() as u64;
    loop {
        let buf = window.fill(at, MAX_RECORD_LEN).map_err(read_err)?;
        if buf.is_empty() {
            return Ok(finish(header, prefix, at, (at, at), Tail::Clean));
        }
        let (fault, extent) = match decode(buf, seed) {
            Decoded::Record(record, len) => match advance(&mut prefix, &record, at) {
                Ok(()) => {
                    visit(at, &record);
                    at += len as u64;
                    continue;
                }
                Err(fault) => (fault, Some(len)),
            },
            Decoded::Incomplete(len) => (
                "the file ends in the middle of a record".to_string(),
                Some(len.unwrap_or(RECORD_HEADER_LEN)),
            ),
            Decoded::Damaged(fault, len) => (fault.to_string(), len),
        };
        let extent_end = extent.map(|len| at + len as u64);
        let rest = examine(&mut window, at, extent_end, &prefix, header).map_err(read_err)?;
        let tail = judge_damage(fault, at, extent_end, &rest, &prefix, header, judge);
        return Ok(finish(header, prefix, at, (rest.file_len, rest.found.data_end), tail));
    }
}

fn finish(header: Header, prefix: Prefix, end: u64, lens: (u64, u64), tail: Tail) -> Scan {
    let Prefix { records, last_seq, last_mark } = prefix;
    let (file_len, data_end) = (lens.0, lens.1.max(end));
    Scan { header, records, last_seq, end, file_len, data_end, last_mark, tail }
}

/// Takes `record`, found at `at`, into the valid prefix if it fits there: a SET or DELETE with
/// the next sequence number, a marker that names its own offset and the current sequence
/// number, or a gap that starts at the next sequence number.
fn advance(prefix: &mut Prefix, record: &Record, at: u64) -> Result<(), String> {
    let next = prefix.last_seq.checked_add(1);
    match record.body {
        _ if record.is_data() && Some(record.seq) == next => {
            prefix.records += 1;
            prefix.last_seq = record.seq;
            Ok(())
        }
        Body::Set { .. } | Body::Delete { .. } | Body::Expire { .. } | Body::Txn(_) => {
            Err(format!(
                "record has sequence number {} where {} was expected",
                record.seq,
                prefix.last_seq.saturating_add(1)
            ))
        }
        Body::Mark(mark) if mark.offset == at && record.seq == prefix.last_seq => {
            prefix.last_mark = Some(mark);
            Ok(())
        }
        Body::Mark(mark) => Err(format!(
            "a SYNC marker that does not belong here (it names offset {} after seq {})",
            mark.offset, record.seq
        )),
        Body::Gap { first } if Some(first) == next && record.seq >= first => {
            prefix.last_seq = record.seq;
            Ok(())
        }
        Body::Gap { first } => Err(format!(
            "a GAP record for seqs {first}..={} where {} was expected next",
            record.seq,
            prefix.last_seq.saturating_add(1)
        )),
    }
}

/// What the bytes from a damage point to the end of the file hold.
struct Rest {
    found: Found,
    /// The first genuine SYNC marker after the damage point.
    marker: Option<u64>,
    /// Format 1: the first valid record with a new sequence number outside the damaged extent.
    later: Option<(u64, u64)>,
    /// The first SET or DELETE anywhere after the damage point whose sequence number comes after
    /// the damaged record's: proof that the writer went on after it.
    successor: Option<(u64, u64)>,
    file_len: u64,
}

/// Bytes examined per step of [`examine`], on top of one record's worth of lookahead.
const STEP: usize = 1 << 20;

/// One pass over `damage..` (see the module doc).
fn examine(
    window: &mut Window,
    damage: u64,
    extent_end: Option<u64>,
    prefix: &Prefix,
    header: Header,
) -> io::Result<Rest> {
    let seed = header.seed();
    let mut rest = Rest {
        found: Found::default(),
        marker: None,
        later: None,
        successor: None,
        file_len: damage,
    };
    rest.found.data_end = damage;
    // Records are counted from the next byte on, and after a counted record only from its end.
    // Format 2 needs no more care: nothing inside a value can pass for a record with a new
    // number (seeded checksums; a copy of this very log holds only older numbers), and the
    // damaged record's length may be what is damaged. Format 1 has no seed, so it counts only
    // from the end of the damaged record's declared extent: inside it may be a value.
    let extent_end = match header.version {
        crate::wal::record::VERSION_1 => extent_end.unwrap_or(damage + 1),
        _ => damage + 1,
    };
    let mut chain_next = extent_end;
    let mut newest = prefix.last_seq;
    let damaged_seq = prefix.last_seq.saturating_add(1);
    let mut p = damage;
    loop {
        let (buf, eof) = window.fill_to_end(p, MAX_RECORD_LEN + STEP)?;
        let steps = if eof { buf.len() } else { buf.len() - MAX_RECORD_LEN };
        for i in 0..steps {
            let q = p + i as u64;
            if buf[i] != 0 {
                rest.found.data_end = q + 1;
            }
            // Skip without a checksum what cannot matter: bytes whose type is not a known one, and in
            // a format 2 log, inside a record already counted, anything but a marker, and any
            // record whose number is not new. This also bounds the work a hostile value can
            // cause: only a damaged record's own bytes are searched through.
            let Some((kind, seq)) = peek(&buf[i..]) else { continue };
            let v2 = header.version != crate::wal::record::VERSION_1;
            let moot = q == damage
                || (v2 && kind != 3 && (q < chain_next || seq <= newest || seq == u64::MAX));
            if moot {
                continue;
            }
            let Decoded::Record(record, len) = decode(&buf[i..], seed) else { continue };
            match record.body {
                Body::Mark(mark) if mark.offset == q && record.seq >= prefix.last_seq => {
                    rest.marker.get_or_insert(q);
                }
                Body::Mark(_) => {}
                _ if q < extent_end => {
                    rest.found.inside += 1;
                    if record.is_data() && record.seq > damaged_seq {
                        rest.successor.get_or_insert((q, record.seq));
                    }
                }
                _ if q < chain_next || record.seq <= newest || record.seq == u64::MAX => {}
                body => {
                    newest = record.seq;
                    chain_next = q + len as u64;
                    rest.found.max_seq = record.seq;
                    if !matches!(body, Body::Gap { .. }) {
                        rest.found.records += 1;
                        rest.found.first.get_or_insert((q, record.seq));
                        rest.later.get_or_insert((q, record.seq));
                        if record.seq > damaged_seq {
                            rest.successor.get_or_insert((q, record.seq));
                        }
                    }
                }
            }
        }
        p += steps as u64;
        if eof {
            rest.file_len = p;
            return Ok(rest);
        }
    }
}

/// The recovery rules, in order (specified in `docs/recovery.md`, *The rules*).
fn judge_damage(
    fault: String,
    damage: u64,
    extent_end: Option<u64>,
    rest: &Rest,
    prefix: &Prefix,
    header: Header,
    judge: Judge,
) -> Tail {
    let found = rest.found;
    // Rule 0: nothing but zeros from the damage point on.
    if found.data_end <= damage {
        return Tail::Reserved;
    }
    if header.version == crate::wal::record::VERSION_1 {
        return match rest.later {
            Some((at, seq)) => {
                Tail::Corrupt { fault, proof: Proof::LaterRecord { at, seq }, found }
            }
            None => Tail::Unsynced { fault, found },
        };
    }
    // Rule 1: a marker after the damage.
    if let Some(at) = rest.marker {
        return Tail::Corrupt { fault, proof: Proof::Marker { at }, found };
    }
    // Rule 2: same boot.
    if let Judge::Stopped { boot } = judge
        && boot != [0; 16]
        && prefix.last_mark.is_some_and(|m| m.boot == boot)
    {
        let unfinished =
            extent_end.is_some_and(|end| rest.found.data_end <= end) && rest.successor.is_none();
        return if unfinished {
            Tail::Unfinished { fault }
        } else {
            Tail::Corrupt { fault, proof: Proof::SameBoot, found }
        };
    }
    // Rule 3: beyond the last point known to be durable.
    Tail::Unsynced { fault, found }
}

impl Tail {
    /// True for the tails a server trims by itself at startup.
    pub fn is_trimmed(&self) -> bool {
        matches!(self, Tail::Unfinished { .. } | Tail::Unsynced { .. })
    }
}

impl Scan {
    /// A sentence or two for an operator: what follows the valid records and why it is judged
    /// so. Empty for a clean log.
    pub fn explain(&self) -> String {
        let at = self.end;
        match &self.tail {
            Tail::Clean | Tail::Reserved => String::new(),
            Tail::Unfinished { fault } => format!(
                "the record at offset {at} ({fault}) is an append the previous server did not \
                 finish. It ran in this same kernel boot, so nothing it wrote can have been lost \
                 from the page cache: this record was never completely written, and so never \
                 acknowledged"
            ),
            Tail::Unsynced { fault, found } => {
                let why = if self.header.version == crate::wal::record::VERSION_1 {
                    "this format 1 log has no sync markers, and no valid record follows the \
                     damage"
                        .to_string()
                } else {
                    let mark = match self.last_mark {
                        Some(m) => format!("the last sync marker, at offset {}", m.offset),
                        None => "no sync marker".to_string(),
                    };
                    format!(
                        "they lie beyond the last point known to be on disk ({mark}), and the \
                         server that wrote them ran in another kernel boot (or its boot is \
                         unknown), so power may have been lost before they reached the disk"
                    )
                };
                format!(
                    "the bytes from offset {at} ({fault}) were not known to be durable: {why}. \
                     {}{}",
                    describe_found(found),
                    self.mode_note()
                )
            }
            Tail::Corrupt { fault, proof, found } => {
                let why = match proof {
                    Proof::Marker { at: m } => format!(
                        "a sync marker at offset {m} says every byte before it was on disk, so \
                         this is damage to data that was durable (a bad disk block, a bit flip, \
                         a stray write), not an unsynced tail"
                    ),
                    Proof::SameBoot => "the server that wrote the log ran in this same kernel \
                                        boot, so the page cache lost nothing it wrote, and a \
                                        crash leaves at most one unfinished record at the end: \
                                        this is damage (a bad disk block, a bit flip, a stray \
                                        write)"
                        .to_string(),
                    Proof::LaterRecord { at: r, seq } => {
                        format!("a valid record (seq {seq}) follows it at offset {r}")
                    }
                };
                format!("damage at offset {at} ({fault}); {why}. {}", describe_found(found))
            }
        }
    }

    /// What the previous server's sync mode says about whether trimmed writes were answered.
    fn mode_note(&self) -> &'static str {
        match self.last_mark.and_then(|m| m.mode) {
            Some(SyncMode::Always) => {
                " The server ran with --sync always, which answers a write only after an fsync \
                 covers it: none of these writes was acknowledged."
            }
            Some(SyncMode::Interval) => {
                " The server ran with --sync interval: writes acknowledged after its last fsync \
                 may be among them."
            }
            Some(SyncMode::Never) => {
                " The server ran with --sync never: acknowledged writes may be among them."
            }
            None => "",
        }
    }
}

/// "N records after it check out (seqs A..=B)" or "no record after it checks out".
pub fn describe_found(found: &Found) -> String {
    let inside = match found.inside {
        0 => String::new(),
        n => {
            format!(" ({n} more inside the damaged record's extent, most likely part of its value)")
        }
    };
    match found.first {
        None => format!("No record after it checks out{inside}."),
        Some((offset, seq)) => format!(
            "{} record(s) after it check out (seqs {seq}..={}, the first at offset {offset}){inside}.",
            found.records, found.max_seq
        ),
    }
}
