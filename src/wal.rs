//! The write-ahead log: its on-disk format, appending, and recovery.
//!
//! Every change to the map is first encoded as a record and written to the end of one file,
//! `walkv.wal` in the data directory; only then is it applied in memory and acknowledged. At
//! startup the file is read from the start and every record is applied again, which rebuilds the
//! map exactly. This doc is the format's specification.
//!
//! # File layout
//!
//! ```text
//! file   := header record* zero*
//! header := magic[8] version[4]                     12 bytes
//!           magic   = "walkvWAL" (77 61 6c 6b 76 57 41 4c)
//!           version = u32 little-endian, 1
//! record := crc[4] seq[8] type[1] klen[4] vlen[4] key[klen] value[vlen]
//!                                                   21 bytes + klen + vlen
//! ```
//!
//! | field   | width | encoding         | meaning                                                  |
//! |---------|-------|------------------|----------------------------------------------------------|
//! | `crc`   | 4     | u32 LE           | CRC-32C of every byte after it: `seq` through `value`     |
//! | `seq`   | 8     | u64 LE           | sequence number: 1 for the first record, +1 for each next |
//! | `type`  | 1     | u8               | 1 = SET, 2 = DELETE                                       |
//! | `klen`  | 4     | u32 LE           | key length, 1 ..= [`MAX_KEY_LEN`]                         |
//! | `vlen`  | 4     | u32 LE           | value length, 0 ..= [`MAX_VALUE_LEN`]; always 0 for DELETE |
//! | `key`   | klen  | bytes            | the key, any bytes                                        |
//! | `value` | vlen  | bytes            | the value, any bytes                                      |
//!
//! Records are length-prefixed, never delimited, so keys and values may hold any byte (the
//! original `key=value\n` text format broke on `=` and newlines). There is no padding and no
//! block structure: a record starts where the previous one ends.
//!
//! ## Reserved space
//!
//! A running server keeps zero bytes written ahead of its last record (`zero*` above): between
//! 1 and 8 MiB, an eighth of the log's size. An fsync after an append that grows the file must
//! also commit the new file size; an fsync after writing into space that already exists need
//! not, and on this project's test machine that made fsyncs about 30% faster (7,900 against
//! 10,300 per second), which is what `--sync always` waits for. No record can be all zeros (its
//! type is 1 or 2), so a run of zeros from the end of the last record to the end of the file is
//! recognised as reserved space: the clean end of the log. It is released (the file cut back to
//! its last record) when the server stops cleanly and at every open, so a log at rest ends with
//! its last record; only a crashed server leaves reserved space behind. If reserving fails (a full
//! disk, a file size limit), the log simply grows as records are appended, and reserving is tried
//! again only after another 1 MiB of records. The price: every byte of the log reaches the disk
//! twice, first as a zero and then as data (PostgreSQL zero-fills its WAL segments for the same
//! reason), and the append that reserves writes up to 8 MiB of zeros into the page cache.
//!
//! ## A worked example
//!
//! `SET cat = meow` as the first record (seq 1) is these 28 bytes:
//!
//! ```text
//! 74 20 2a 19                 crc   = 0x192a2074, CRC-32C of the 24 bytes that follow
//! 01 00 00 00 00 00 00 00     seq   = 1
//! 01                          type  = SET
//! 03 00 00 00                 klen  = 3
//! 04 00 00 00                 vlen  = 4
//! 63 61 74                    "cat"
//! 6d 65 6f 77                 "meow"
//! ```
//!
//! (`wal::tests::worked_example_matches_the_spec` checks these bytes.)
//!
//! # Recovery rules
//!
//! Replay decodes records from the header onward. Decoding a record validates, in this order:
//! that the 21-byte record header is all there; the type code; both lengths against their limits
//! (so a damaged length is refused before anything is allocated); that the whole record is there;
//! the checksum; and that `seq` is one more than the previous record's. The first record that
//! fails any check is the *damage point*. What happens next depends on what follows it:
//!
//! 0. **Only zero bytes follow, to the end of the file: reserved space**, the clean end of the
//!    log (see *Reserved space*). It is released at open; nothing is reported.
//! 1. **Nothing valid follows: the tail is torn, and it is trimmed.** A crash in the middle of
//!    an append leaves a partial record; a power cut can leave a tail of zeros or garbage where
//!    the file grew but the data never arrived. Such a record was never acknowledged: the server
//!    only answers after the whole record is written. So the file is cut back to the end of the
//!    last valid record and fsynced *before* any new record is appended (otherwise a new record
//!    would land after the garbage and be lost at the next replay), and startup reports the offset
//!    and the number of bytes dropped.
//! 2. **A valid record with a sequence number at or past the expected one follows: the log is
//!    corrupt, and startup refuses.** Damage with good records after it is not a torn write; it is
//!    a bad disk block, a bit flip or a stray write. Skipping it would silently lose an
//!    acknowledged write and apply later ones without it (for example a DELETE that was lost
//!    would resurrect a key). Only an operator can decide, so startup exits with a message naming
//!    the file, the offset and `walkv repair`, which cuts the log at the damage point and keeps the
//!    cut bytes in a side file. To find such a record, every byte offset after the damage point is
//!    tried as the start of a record; records with older sequence numbers are not evidence of
//!    loss (they can only be stale bytes, or a value that happens to contain a record) and do
//!    not count.
//! 3. **A record that checks out but has the wrong sequence number is corruption**, for the same
//!    reason: a record is missing or repeated, and the log can no longer be trusted to replay in
//!    order.
//!
//! A file shorter than the header that holds a prefix of it is a crash during creation and is
//! rewritten; any other bad header (wrong magic, unknown version) refuses to start.
//!
//! # What the format does not do
//!
//! - No compaction: the log grows with every write; replay time grows with it.
//! - No compression, no encryption, no record batching: one record per write.
//! - The checksum detects damage; nothing can correct it.
//! - Durability depends on fsync, which this module exposes as [`Wal::sync`]; *when* it runs is
//!   the server's policy (see the README's durability table).

use crate::error::Error;
use crate::{crc32c, failpoint};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The log's file name inside the data directory.
pub const FILE_NAME: &str = "walkv.wal";
/// First eight bytes of every log file.
pub const MAGIC: [u8; 8] = *b"walkvWAL";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// File header: magic + version.
pub const FILE_HEADER_LEN: usize = 8 + 4;
/// Record header: crc + seq + type + klen + vlen.
pub const RECORD_HEADER_LEN: usize = 4 + 8 + 1 + 4 + 4;
/// Longest key, in bytes. Keys are URL path segments; 4 KiB is far beyond any sane key and keeps a
/// request line small.
pub const MAX_KEY_LEN: usize = 4096;
/// Longest value, in bytes (1 MiB). Values live in memory; a bigger limit would let one request
/// take a large bite of a small deployment.
pub const MAX_VALUE_LEN: usize = 1 << 20;

/// Record type codes, as stored in the `type` byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Set = 1,
    Delete = 2,
}

/// One decoded record, borrowing its key and value from the buffer it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: u64,
    pub op: Op,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record and its encoded length.
    Record(Record<'a>, usize),
    /// The buffer ends before the record does; at the end of the file this is a torn write.
    Incomplete,
    /// The bytes are not a valid record; the reason says which check failed.
    Damaged(String),
}

/// Appends the encoding of one record to `out`. Lengths must already be within the limits.
pub fn encode(out: &mut Vec<u8>, seq: u64, op: Op, key: &[u8], value: &[u8]) {
    let header = encode_header(seq, op, key, value);
    out.extend_from_slice(&header);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Builds the 21-byte record header, checksum included.
fn encode_header(seq: u64, op: Op, key: &[u8], value: &[u8]) -> [u8; RECORD_HEADER_LEN] {
    assert!(
        !key.is_empty() && key.len() <= MAX_KEY_LEN && value.len() <= MAX_VALUE_LEN,
        "record lengths must be checked before encoding (key {} bytes, value {} bytes)",
        key.len(),
        value.len()
    );
    let mut h = [0u8; RECORD_HEADER_LEN];
    // crc (4) is filled in last; it covers everything after it.
    // Sequence number: u64, little-endian.
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    // Type: one byte.
    h[12] = op as u8;
    // Key length, then value length: u32, little-endian.
    h[13..17].copy_from_slice(&(key.len() as u32).to_le_bytes());
    h[17..21].copy_from_slice(&(value.len() as u32).to_le_bytes());
    let crc = crc32c::checksum_parts(&[&h[4..], key, value]);
    h[0..4].copy_from_slice(&crc.to_le_bytes());
    h
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Decodes the record at the start of `buf`, checking everything but the sequence number (which
/// needs context: see [`scan`]). Never allocates, whatever the lengths say.
///
/// ```
/// use walkv::wal::{decode, encode, Decoded, Op};
/// let mut buf = Vec::new();
/// encode(&mut buf, 7, Op::Set, b"key", b"value");
/// let Decoded::Record(record, len) = decode(&buf) else { panic!() };
/// assert_eq!((record.seq, record.key, record.value, len), (7, &b"key"[..], &b"value"[..], 29));
/// assert_eq!(decode(&buf[..28]), Decoded::Incomplete);  // torn
/// buf[25] ^= 1;                                           // a flipped bit in the value
/// assert!(matches!(decode(&buf), Decoded::Damaged(reason) if reason.contains("checksum")));
/// ```
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < RECORD_HEADER_LEN {
        return Decoded::Incomplete;
    }
    // Type: one byte at offset 12.
    let op = match buf[12] {
        1 => Op::Set,
        2 => Op::Delete,
        other => return Decoded::Damaged(format!("unknown record type {other}")),
    };
    // Key and value lengths: u32 little-endian at offsets 13 and 17, checked before use.
    let klen = u32_at(buf, 13) as usize;
    let vlen = u32_at(buf, 17) as usize;
    if klen == 0 || klen > MAX_KEY_LEN {
        return Decoded::Damaged(format!("key length {klen} is outside 1..={MAX_KEY_LEN}"));
    }
    if vlen > MAX_VALUE_LEN {
        return Decoded::Damaged(format!("value length {vlen} is over the limit {MAX_VALUE_LEN}"));
    }
    if op == Op::Delete && vlen != 0 {
        return Decoded::Damaged(format!("DELETE record with a {vlen}-byte value"));
    }
    let len = RECORD_HEADER_LEN + klen + vlen; // at most 21 + 4 KiB + 1 MiB: cannot overflow
    if buf.len() < len {
        return Decoded::Incomplete;
    }
    // Checksum: u32 little-endian at offset 0, over bytes 4..len.
    let stored = u32_at(buf, 0);
    let actual = crc32c::checksum(&buf[4..len]);
    if stored != actual {
        return Decoded::Damaged(format!(
            "checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
        ));
    }
    let seq = u64::from_le_bytes(buf[4..12].try_into().expect("8 bytes"));
    let key = &buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + klen];
    let value = &buf[RECORD_HEADER_LEN + klen..len];
    Decoded::Record(Record { seq, op, key, value }, len)
}

/// The result of reading a whole log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Valid records, in order, before any damage.
    pub records: u64,
    /// Sequence number of the last valid record (0 if none).
    pub last_seq: u64,
    /// Byte offset just past the last valid record: where the next record belongs.
    pub end: u64,
    /// The file's length.
    pub file_len: u64,
    /// What follows `end`, if anything.
    pub tail: Tail,
}

/// What a scan found after the last valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// The file ends exactly after the last valid record.
    Clean,
    /// Only zeros follow the last valid record, to the end of the file: space a server reserved
    /// ahead of its log (rule 0). Also a clean end.
    Reserved,
    /// A torn final write: `end..file_len` holds no valid record. Safe to trim (rule 1).
    Torn { reason: String },
    /// Damage at `end` with a valid record after it at `next_valid` (rule 2), or a record out of
    /// sequence at `end` (rule 3). Must not be skipped.
    Corrupt { reason: String, next_valid: Option<u64> },
}

/// Least and most space reserved ahead of the log (see *Reserved space*).
const RESERVE_MIN: u64 = 1 << 20;
const RESERVE_MAX: u64 = 8 << 20;

/// How much to read at a time while replaying.
const READ_CHUNK: usize = 1 << 20;

/// Reads the log at `path` from the start, calling `visit` for each valid record in order, and
/// reports where the valid records end and what follows them. Reads only; changes nothing.
pub fn scan(path: &Path, mut visit: impl FnMut(&Record)) -> Result<Scan, Error> {
    let mut file =
        File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let file_len =
        file.metadata().map_err(|e| Error::io(format!("stat {}", path.display()), e))?.len();
    let read_err = |e| Error::io(format!("read {}", path.display()), e);
    check_header(path, &mut file, file_len)?;

    let mut scan =
        Scan { records: 0, last_seq: 0, end: FILE_HEADER_LEN as u64, file_len, tail: Tail::Clean };
    // `buf[start..]` holds the unread bytes beginning at file offset `scan.end`.
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK + RECORD_HEADER_LEN + MAX_KEY_LEN);
    let mut start = 0;
    let mut eof = false;
    loop {
        match decode(&buf[start..]) {
            Decoded::Record(record, len) if record.seq == scan.last_seq + 1 => {
                visit(&record);
                scan.records += 1;
                scan.last_seq = record.seq;
                scan.end += len as u64;
                start += len;
            }
            Decoded::Record(record, _) => {
                let reason = format!(
                    "record has sequence number {} where {} was expected",
                    record.seq,
                    scan.last_seq + 1
                );
                scan.tail = Tail::Corrupt { reason, next_valid: None };
                return Ok(scan);
            }
            Decoded::Incomplete if !eof => {
                buf.drain(..start);
                start = 0;
                eof = read_more(&mut file, &mut buf).map_err(read_err)?;
            }
            Decoded::Incomplete if start == buf.len() => return Ok(scan), // Clean end.
            Decoded::Incomplete => {
                let reason = "the file ends in the middle of a record".to_string();
                return finish_after_damage(scan, &mut file, buf, start, reason).map_err(read_err);
            }
            Decoded::Damaged(reason) => {
                return finish_after_damage(scan, &mut file, buf, start, reason).map_err(read_err);
            }
        }
    }
}

/// How many SET records the log at `path` seems to hold, for sizing the map before replay
/// (growing a hash table of a million keys step by step costs more than the whole scan). It
/// follows the record lengths without checking checksums and stops quietly at anything odd:
/// it is an estimate; [`Wal::open`] is the judge of the log. It reads the log a second time
/// (records bigger than its 64 KiB buffer are skipped by seeking, small ones are read through),
/// without checksums. Measured with it, a 1M-record replay took ~350 ms instead of ~650 ms.
pub fn count_sets(path: &Path) -> usize {
    let Ok(file) = File::open(path) else {
        return 0;
    };
    let mut reader = io::BufReader::with_capacity(64 << 10, file);
    let mut header = [0u8; RECORD_HEADER_LEN];
    let mut sets = 0;
    if reader.seek_relative(FILE_HEADER_LEN as i64).is_err() {
        return 0;
    }
    while reader.read_exact(&mut header).is_ok() {
        let (klen, vlen) = (u32_at(&header, 13) as usize, u32_at(&header, 17) as usize);
        if klen == 0 || klen > MAX_KEY_LEN || vlen > MAX_VALUE_LEN {
            break; // damage, or the zeros of reserved space
        }
        sets += usize::from(header[12] == 1);
        if reader.seek_relative((klen + vlen) as i64).is_err() {
            break;
        }
    }
    sets
}

/// Appends up to [`READ_CHUNK`] bytes from `file` to `buf`; returns true at end of file.
fn read_more(file: &mut File, buf: &mut Vec<u8>) -> io::Result<bool> {
    let before = buf.len();
    Read::by_ref(file).take(READ_CHUNK as u64).read_to_end(buf)?;
    Ok(buf.len() == before)
}

/// Decides between a torn tail (rule 1) and corruption (rule 2) for damage at `buf[start]`.
fn finish_after_damage(
    mut scan: Scan,
    file: &mut File,
    mut buf: Vec<u8>,
    start: usize,
    reason: String,
) -> io::Result<Scan> {
    file.read_to_end(&mut buf)?;
    let rest = &buf[start..];
    if rest.iter().all(|&b| b == 0) {
        scan.tail = Tail::Reserved;
        return Ok(scan);
    }
    scan.tail = match find_later_record(rest, scan.last_seq + 1) {
        None => Tail::Torn { reason },
        Some(at) => Tail::Corrupt { reason, next_valid: Some(scan.end + at as u64) },
    };
    Ok(scan)
}

/// Looks for a valid record with sequence number `min_seq` or later starting anywhere in
/// `rest[1..]`; returns its offset within `rest`.
fn find_later_record(rest: &[u8], min_seq: u64) -> Option<usize> {
    (1..rest.len())
        .find(|&at| matches!(decode(&rest[at..]), Decoded::Record(r, _) if r.seq >= min_seq))
}

/// Lists every valid-looking record in `bytes` (offset within `bytes`, record); used by `repair`
/// to say what the cut part held.
pub fn records_in(bytes: &[u8]) -> Vec<(usize, Record<'_>)> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match decode(&bytes[at..]) {
            Decoded::Record(r, len) => {
                found.push((at, r));
                at += len;
            }
            _ => at += 1,
        }
    }
    found
}

/// Reads and checks the file header. A short file holding a prefix of the header is accepted
/// here (creation was interrupted; [`Wal::open`] rewrites it).
fn check_header(path: &Path, file: &mut File, file_len: u64) -> Result<(), Error> {
    let expected = file_header();
    let mut header = [0u8; FILE_HEADER_LEN];
    let n = (file_len as usize).min(FILE_HEADER_LEN);
    file.read_exact(&mut header[..n])
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let corrupt = |reason: String| Error::Corrupt { path: path.to_path_buf(), offset: 0, reason };
    if n < FILE_HEADER_LEN {
        if header[..n] == expected[..n] {
            return Ok(());
        }
        return Err(corrupt(format!("{n}-byte file is not a walkv log (bad magic)")));
    }
    if header[..8] != MAGIC {
        return Err(corrupt("not a walkv log (bad magic)".to_string()));
    }
    let version = u32_at(&header, 8);
    if version != VERSION {
        return Err(corrupt(format!(
            "log format version {version}; this walkv reads version {VERSION}"
        )));
    }
    Ok(())
}

fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// What [`Wal::open`] did to bring the log to a clean state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub records: u64,
    pub last_seq: u64,
    /// A torn tail that was trimmed: (offset it was cut at, bytes dropped, why).
    pub trimmed: Option<(u64, u64, String)>,
    /// The file did not exist (or was empty, or held a partial header) and was created.
    pub created: bool,
}

/// The open log, positioned for appending.
///
/// Invariants:
/// - the file holds a valid header followed by exactly `next_seq - 1` valid records, ending at
///   byte `len`, plus at most the record currently being appended;
/// - `writer`'s buffer is empty between calls;
/// - bytes `..synced_len` (records `..=synced_seq`) are on stable storage;
/// - once `failed` is set, nothing more is written or synced, and `failed_flag` is true.
pub struct Wal {
    path: PathBuf,
    writer: BufWriter<File>,
    len: u64,
    next_seq: u64,
    synced_len: u64,
    synced_seq: u64,
    /// The file's length: `len` plus the zeros reserved after the last record.
    reserved: u64,
    /// After reserving failed: do not try again before the log reaches this length.
    reserve_again_at: u64,
    /// The file was cut back since the last sync (see [`Wal::close`]).
    length_changed: bool,
    failed: Option<String>,
    /// Mirrors `failed.is_some()` for readers that must not wait for the log's mutex.
    failed_flag: Arc<AtomicBool>,
}

impl Wal {
    /// Opens (creating if needed) the log at `path`, replays it through `visit`, trims a torn
    /// tail, and returns it ready for appends. Refuses a corrupt log with [`Error::Corrupt`].
    pub fn open(path: &Path, visit: impl FnMut(&Record)) -> Result<(Wal, Recovery), Error> {
        let io_err = |what: &str| {
            let action = format!("{what} {}", path.display());
            move |e| Error::io(action, e)
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err("open"))?;
        // Scan first: it refuses a foreign or newer file, and accepts a short file only if its
        // bytes are a prefix of our header (creation was interrupted). Only then (re)write it.
        let scan = scan(path, visit)?;
        let created = scan.file_len < FILE_HEADER_LEN as u64;
        if created {
            write_new_header(path, &mut file)?;
        }
        let mut trimmed = None;
        match &scan.tail {
            Tail::Clean => {}
            // Rule 0: released now, reserved again by the first append.
            Tail::Reserved => file.set_len(scan.end).map_err(io_err("truncate"))?,
            Tail::Torn { reason } => {
                // Rule 1: cut, and make the cut durable (the fsync below) before anything is
                // appended after it.
                file.set_len(scan.end).map_err(io_err("truncate"))?;
                trimmed = Some((scan.end, scan.file_len - scan.end, reason.clone()));
            }
            Tail::Corrupt { reason, next_valid } => {
                let reason = match next_valid {
                    Some(at) => format!("{reason}; a valid record follows at offset {at}"),
                    None => reason.clone(),
                };
                return Err(Error::Corrupt { path: path.to_path_buf(), offset: scan.end, reason });
            }
        }
        // What was replayed may still be only in the page cache (the last process was killed
        // before its next sync): make it durable before anything new depends on it.
        file.sync_all().map_err(io_err("fsync"))?;
        failpoint::record_sync(scan.end, scan.last_seq);
        file.seek(SeekFrom::Start(scan.end)).map_err(io_err("seek"))?;
        let wal = Wal {
            path: path.to_path_buf(),
            writer: BufWriter::new(file),
            len: scan.end,
            next_seq: scan.last_seq + 1,
            synced_len: scan.end,
            synced_seq: scan.last_seq,
            reserved: scan.end,
            reserve_again_at: 0,
            length_changed: false,
            failed: None,
            failed_flag: Arc::new(AtomicBool::new(false)),
        };
        let recovery =
            Recovery { records: scan.records, last_seq: scan.last_seq, trimmed, created };
        Ok((wal, recovery))
    }

    /// Sequence number of the last record appended (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Sequence number of the last record known to be on stable storage.
    pub fn synced_seq(&self) -> u64 {
        self.synced_seq
    }

    /// A flag that turns true when the log stops taking writes; readable without the mutex.
    pub fn failed_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.failed_flag)
    }

    /// Fails the log as a failed fsync would, for tests of what follows.
    #[cfg(test)]
    pub(crate) fn fail_for_test(&mut self) {
        self.fail("failed by a test".to_string());
    }

    /// Stops the log for good: no more writes or syncs in this process.
    fn fail(&mut self, reason: String) {
        self.failed = Some(reason);
        self.failed_flag.store(true, Ordering::SeqCst);
    }

    /// Appends one record and pushes it out of the `BufWriter` into the file, so that the OS has
    /// it (it survives the process being killed) before this returns. Returns its sequence
    /// number.
    ///
    /// If the write fails (a full disk, say), the file is cut back to the last complete record so
    /// that a later append lands cleanly and a restart needs no repair; the error is returned and
    /// the caller must not apply the change. If even the cut fails, the log stops taking writes.
    pub fn append(&mut self, op: Op, key: &[u8], value: &[u8]) -> Result<u64, Error> {
        if let Some(reason) = &self.failed {
            return Err(Error::Failed { reason: reason.clone() });
        }
        check_lengths(key, value)?;
        self.reserve_space((RECORD_HEADER_LEN + key.len() + value.len()) as u64);
        let seq = self.next_seq;
        let header = encode_header(seq, op, key, value);
        let written = self.write_record(&header, key, value);
        if let Err(e) = written {
            let error = Error::io(format!("append to {}", self.path.display()), e);
            if let Err(cut) = self.cut_back() {
                self.fail(format!("a write failed ({error}) and cutting it back failed ({cut})"));
            }
            return Err(error);
        }
        self.len += (header.len() + key.len() + value.len()) as u64;
        self.next_seq += 1;
        Ok(seq)
    }

    fn write_record(&mut self, header: &[u8], key: &[u8], value: &[u8]) -> io::Result<()> {
        if let Some(e) = failpoint::check("write") {
            return Err(e);
        }
        if let Some(e) = failpoint::check("short_write") {
            // Half of the record reaches the file, then the disk refuses the rest.
            let record = [header, key, value].concat();
            self.writer.write_all(&record[..record.len() / 2])?;
            self.writer.flush()?;
            return Err(e);
        }
        self.writer.write_all(header)?;
        self.writer.write_all(key)?;
        self.writer.write_all(value)?;
        self.writer.flush()
    }

    /// Makes sure the next `need` bytes land in reserved space, writing zeros ahead when they
    /// would not (see *Reserved space*). Reserving is an optimisation: when it fails, the file is
    /// cut back to the last record and the append goes on without it.
    fn reserve_space(&mut self, need: u64) {
        if self.len + need <= self.reserved || self.len < self.reserve_again_at {
            return;
        }
        let target = self.len + need + (self.len / 8).clamp(RESERVE_MIN, RESERVE_MAX);
        let file = self.writer.get_ref();
        let zeros = [0u8; 64 << 10];
        let mut at = self.reserved.max(self.len);
        let written = loop {
            if at >= target {
                break Ok(());
            }
            let n = (target - at).min(zeros.len() as u64) as usize;
            if let Err(e) = std::os::unix::fs::FileExt::write_all_at(file, &zeros[..n], at) {
                break Err(e);
            }
            at += n as u64;
        };
        match written {
            Ok(()) => self.reserved = target,
            Err(_) => {
                // Give back what was written; a longer file full of zeros would still be a valid
                // log (rule 0), so a failure here changes nothing that matters.
                let _ = file.set_len(self.len);
                self.reserved = self.len;
                self.reserve_again_at = self.len + RESERVE_MIN;
            }
        }
    }

    /// Throws away whatever the `BufWriter` still holds and cuts the file back to `self.len`, the
    /// end of the last complete record.
    fn cut_back(&mut self) -> io::Result<()> {
        let file = self.writer.get_ref().try_clone()?;
        let old = std::mem::replace(&mut self.writer, BufWriter::new(file));
        let _unwritten = old.into_parts(); // Dropped without flushing: that is the point.
        let file = self.writer.get_mut();
        file.set_len(self.len)?;
        file.seek(SeekFrom::Start(self.len))?;
        self.reserved = self.len;
        Ok(())
    }

    /// For a clean stop: releases the reserved space (so that a log at rest ends with its last
    /// record) and fsyncs everything, the new length included. Returns the last synced seq.
    pub fn close(&mut self) -> Result<u64, Error> {
        if self.reserved > self.len && self.failed.is_none() {
            let released =
                self.writer.flush().and_then(|_| self.writer.get_ref().set_len(self.len));
            if let Err(e) = released {
                crate::log!("could not release the space reserved after the log: {e}");
            }
            self.reserved = self.len;
            self.length_changed = true;
        }
        self.sync()
    }

    /// Flushes and fsyncs (`fdatasync`) the log: after this returns, every appended record is on
    /// stable storage. Returns the last synced sequence number.
    ///
    /// A failed fsync leaves the log unusable for writes in this process: Linux may drop the
    /// unwritten pages and report the error only once, so a later fsync that "succeeds" would
    /// prove nothing. A restart replays what really is on disk.
    pub fn sync(&mut self) -> Result<u64, Error> {
        if let Some(reason) = &self.failed {
            return Err(Error::Failed { reason: reason.clone() });
        }
        if self.synced_len == self.len && !self.length_changed {
            return Ok(self.synced_seq);
        }
        let result = self.writer.flush().and_then(|_| match failpoint::check("fsync") {
            Some(injected) => Err(injected),
            // A shorter file needs its new length on disk too: fsync, not fdatasync.
            None if self.length_changed => self.writer.get_ref().sync_all(),
            None => self.writer.get_ref().sync_data(),
        });
        if let Err(e) = result {
            let error = Error::io(format!("fsync {}", self.path.display()), e);
            self.fail(format!("{error}; acknowledged writes may not be on disk"));
            return Err(error);
        }
        self.synced_len = self.len;
        self.length_changed = false;
        self.synced_seq = self.last_seq();
        failpoint::record_sync(self.synced_len, self.synced_seq);
        Ok(self.synced_seq)
    }
}

/// Checks a key and value against the format's limits.
pub fn check_lengths(key: &[u8], value: &[u8]) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::Invalid("key must not be empty".to_string()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::Invalid(format!(
            "key is {} bytes; the limit is {MAX_KEY_LEN}",
            key.len()
        )));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::TooLarge(format!(
            "value is {} bytes; the limit is {MAX_VALUE_LEN}",
            value.len()
        )));
    }
    Ok(())
}

/// Writes the file header to a new (or empty, or half-created) log and makes it durable: the file
/// data with fsync, and its directory entry with an fsync of the directory.
fn write_new_header(path: &Path, file: &mut File) -> Result<(), Error> {
    let io_err = |what: &str| {
        let action = format!("{what} {}", path.display());
        move |e| Error::io(action, e)
    };
    file.set_len(0).map_err(io_err("truncate"))?;
    file.seek(SeekFrom::Start(0)).map_err(io_err("seek"))?;
    file.write_all(&file_header()).map_err(io_err("write header to"))?;
    file.sync_all().map_err(io_err("fsync"))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Fsyncs a directory, so that a file created or renamed in it survives power loss.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync directory {}", dir.display()), e))
}

/// What `walkv repair` did.
#[derive(Debug)]
pub struct Repair {
    pub scan: Scan,
    /// Where the cut bytes were saved, if anything was cut.
    pub side_file: Option<PathBuf>,
}

/// Cuts the log at its first damaged record, keeping the cut bytes in a side file next to it
/// (`walkv.wal.cut-<offset>-<unix seconds>`), fsynced before the log is shortened. A clean log is
/// left untouched. The caller must hold the data directory's lock.
pub fn repair(path: &Path) -> Result<Repair, Error> {
    let scan = scan(path, |_| {})?;
    if matches!(scan.tail, Tail::Clean | Tail::Reserved) {
        return Ok(Repair { scan, side_file: None });
    }
    let io_err = |what: String| move |e| Error::io(what, e);
    let bytes = fs::read(path).map_err(io_err(format!("read {}", path.display())))?;
    let cut = &bytes[scan.end as usize..];
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let side = path.with_file_name(format!("{FILE_NAME}.cut-{}-{secs}", scan.end));
    let mut side_file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&side)
        .map_err(io_err(format!("create {}", side.display())))?;
    side_file.write_all(cut).map_err(io_err(format!("write {}", side.display())))?;
    side_file.sync_all().map_err(io_err(format!("fsync {}", side.display())))?;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(format!("open {}", path.display())))?;
    file.set_len(scan.end).map_err(io_err(format!("truncate {}", path.display())))?;
    file.sync_all().map_err(io_err(format!("fsync {}", path.display())))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    Ok(Repair { scan, side_file: Some(side) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Rng, TempDir};

    /// An owned copy of a record, for comparing what was written with what came back.
    type Owned = (u64, Op, Vec<u8>, Vec<u8>);

    /// A temp dir (removed when dropped) and the log path inside it.
    fn temp_path(name: &str) -> (TempDir, PathBuf) {
        let dir = TempDir::new(name);
        let path = dir.join(FILE_NAME);
        (dir, path)
    }

    /// A log image with a header and `n` records of varied shapes, and the records themselves.
    fn sample_log(n: u64) -> (Vec<u8>, Vec<Owned>, Vec<usize>) {
        let mut rng = Rng::new(42);
        let mut bytes = file_header().to_vec();
        let mut records = Vec::new();
        let mut ends = Vec::new();
        for seq in 1..=n {
            let key_len = 1 + rng.below(8);
            let key = rng.bytes(key_len);
            let value_len = rng.below(40);
            let (op, value) = if rng.below(4) == 0 {
                (Op::Delete, vec![])
            } else {
                (Op::Set, rng.bytes(value_len))
            };
            encode(&mut bytes, seq, op, &key, &value);
            ends.push(bytes.len());
            records.push((seq, op, key, value));
        }
        (bytes, records, ends)
    }

    /// The pre-replay estimate is exact on a clean log and ignores a damaged tail.
    #[test]
    fn count_sets_counts_set_records() {
        let (_dir, path) = temp_path("count");
        let (mut bytes, records, _) = sample_log(50);
        let sets = records.iter().filter(|r| r.1 == Op::Set).count();
        fs::write(&path, &bytes).unwrap();
        assert_eq!(count_sets(&path), sets);
        bytes.extend_from_slice(&[0xff; 30]); // a torn or garbage tail
        fs::write(&path, &bytes).unwrap();
        assert!(count_sets(&path) <= sets + 1);
        assert_eq!(count_sets(&path.with_extension("missing")), 0);
    }

    fn scan_bytes(path: &Path, bytes: &[u8]) -> Result<(Scan, Vec<Owned>), Error> {
        fs::write(path, bytes).unwrap();
        let mut seen = Vec::new();
        let scan = scan(path, |r| seen.push((r.seq, r.op, r.key.to_vec(), r.value.to_vec())))?;
        Ok((scan, seen))
    }

    /// The bytes in the module doc's worked example are exactly what `encode` writes.
    #[test]
    fn worked_example_matches_the_spec() {
        let mut out = Vec::new();
        encode(&mut out, 1, Op::Set, b"cat", b"meow");
        let expected: Vec<u8> = [
            "74 20 2a 19",
            "01 00 00 00 00 00 00 00",
            "01",
            "03 00 00 00",
            "04 00 00 00",
            "63 61 74",
            "6d 65 6f 77",
        ]
        .iter()
        .flat_map(|s| s.split(' '))
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
        assert_eq!(out, expected, "got {:02x?}", out);
        assert_eq!(file_header(), *b"walkvWAL\x01\x00\x00\x00");
    }

    /// Cutting the log at every byte offset recovers exactly the whole records before the cut,
    /// reports the rest as a torn tail, and `Wal::open` trims it so the next append lands cleanly.
    #[test]
    fn truncation_at_every_offset_recovers_whole_records() {
        let (bytes, records, ends) = sample_log(12);
        let (_dir, path) = temp_path("truncate");
        for cut in 0..=bytes.len() {
            let (scan, seen) = match scan_bytes(&path, &bytes[..cut]) {
                Ok(r) => r,
                Err(e) => panic!("cut at {cut}: {e}"),
            };
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(seen, records[..whole], "cut at {cut}");
            let end = if whole == 0 { FILE_HEADER_LEN } else { ends[whole - 1] };
            assert_eq!(scan.end, end.max(cut.min(FILE_HEADER_LEN)) as u64, "cut at {cut}");
            let torn = cut > end && cut >= FILE_HEADER_LEN;
            assert_eq!(
                matches!(scan.tail, Tail::Torn { .. }),
                torn,
                "cut at {cut}: {:?}",
                scan.tail
            );

            // Reopen: trims, then a new write must survive the next replay.
            let (mut wal, rec) = Wal::open(&path, |_| {}).unwrap();
            assert_eq!(rec.records, whole as u64);
            assert_eq!(rec.trimmed.is_some(), torn);
            let seq = wal.append(Op::Set, b"after", b"cut").unwrap();
            assert_eq!(seq, whole as u64 + 1);
            drop(wal);
            let mut seen = Vec::new();
            let rescan = super::scan(&path, |r| seen.push((r.seq, r.key.to_vec()))).unwrap();
            // Dropped without close(), as a crash would: the reserved zeros are still there.
            assert_eq!(rescan.tail, Tail::Reserved, "cut at {cut}");
            assert_eq!(seen.last().unwrap(), &(seq, b"after".to_vec()), "cut at {cut}");
        }
    }

    /// Flipping any bit pattern into any byte gives a clean error or a clean torn tail: never a
    /// panic, and never a record that was not written.
    #[test]
    fn flipping_every_byte_is_detected() {
        let (bytes, records, ends) = sample_log(6);
        let (_dir, path) = temp_path("flip");
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                let result = scan_bytes(&path, &damaged);
                if at < FILE_HEADER_LEN {
                    assert!(matches!(result, Err(Error::Corrupt { offset: 0, .. })), "at {at}");
                    continue;
                }
                let (scan, seen) = result.unwrap_or_else(|e| panic!("at {at}: {e}"));
                // Everything returned was written, in order, and stops before the damaged record.
                let damaged_record = ends.iter().position(|&e| e > at).unwrap();
                assert_eq!(seen, records[..damaged_record], "flip {flip:#x} at {at}");
                let last = damaged_record == records.len() - 1;
                match scan.tail {
                    Tail::Torn { .. } => {
                        assert!(last, "mid-log damage at {at} must not be trimmed")
                    }
                    Tail::Corrupt { .. } => {
                        assert!(!last || scan.records as usize == damaged_record)
                    }
                    Tail::Clean | Tail::Reserved => {
                        panic!("flip {flip:#x} at {at} went unnoticed")
                    }
                }
            }
        }
    }

    /// A length field claiming gigabytes is refused before anything is allocated or read.
    #[test]
    fn hostile_lengths_are_refused_without_allocating() {
        let mut rec = Vec::new();
        encode(&mut rec, 1, Op::Set, b"k", b"v");
        for (at, what) in [(13, "key length"), (17, "value length")] {
            let mut bad = rec.clone();
            bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            match decode(&bad) {
                Decoded::Damaged(reason) => assert!(reason.contains(what), "{reason}"),
                other => panic!("expected damage, got {other:?}"),
            }
        }
        let mut zero_key = rec.clone();
        zero_key[13..17].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(decode(&zero_key), Decoded::Damaged(_)));
    }

    /// Damage with a valid record after it is corruption that names the offset; a garbage tail
    /// with nothing valid after it is a torn tail; zeros alone are reserved space.
    #[test]
    fn mid_log_damage_is_corruption_but_garbage_tail_is_torn() {
        let (bytes, _, ends) = sample_log(5);
        let (_dir, path) = temp_path("mid");
        let mut mid = bytes.clone();
        mid[ends[1] + 2] ^= 0x55; // inside record 3's checksum
        let (scan, _) = scan_bytes(&path, &mid).unwrap();
        assert_eq!(scan.end, ends[1] as u64);
        assert_eq!(
            scan.tail,
            Tail::Corrupt { reason: scan_reason(&scan), next_valid: Some(ends[2] as u64) }
        );
        match Wal::open(&path, |_| {}) {
            Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, ends[1] as u64),
            other => panic!("expected corruption, got {:?}", other.map(|(_, r)| r)),
        }

        let mut rng = Rng::new(5);
        let mut zeros_then_garbage = vec![0u8; 300];
        zeros_then_garbage.push(1);
        for tail in [rng.bytes(300), zeros_then_garbage] {
            let mut torn = bytes.clone();
            torn.extend_from_slice(&tail);
            let (scan, seen) = scan_bytes(&path, &torn).unwrap();
            assert_eq!(seen.len(), 5);
            assert!(matches!(scan.tail, Tail::Torn { .. }), "{:?}", scan.tail);
        }
        // Zeros alone to the end of the file are reserved space (rule 0), not a torn tail.
        let mut reserved = bytes.clone();
        reserved.extend_from_slice(&[0u8; 300]);
        assert_eq!(scan_bytes(&path, &reserved).unwrap().0.tail, Tail::Reserved);
    }

    /// Appends reserve zeros ahead; they read as the clean end of the log (rule 0), are released
    /// at open and at close, and zeros after a partial record are still a torn tail.
    #[test]
    fn reserved_space_is_a_clean_end_and_is_released() {
        let (_dir, path) = temp_path("reserved");
        let (mut wal, _) = Wal::open(&path, |_| {}).unwrap();
        wal.append(Op::Set, b"k", b"v").unwrap();
        let end = (FILE_HEADER_LEN + RECORD_HEADER_LEN + 2) as u64;
        assert!(fs::metadata(&path).unwrap().len() >= end + RESERVE_MIN, "reserved ahead");
        drop(wal); // a crash: the zeros stay
        let (scan, seen) = scan_bytes(&path, &fs::read(&path).unwrap()).unwrap();
        assert_eq!((scan.tail, scan.end, seen.len()), (Tail::Reserved, end, 1));
        let (mut wal, rec) = Wal::open(&path, |_| {}).unwrap();
        assert!(rec.trimmed.is_none(), "reserved space is not a torn tail");
        assert_eq!(fs::metadata(&path).unwrap().len(), end, "released at open");
        wal.append(Op::Set, b"k2", b"v2").unwrap();
        assert_eq!(wal.close().unwrap(), 2);
        let end = end + (RECORD_HEADER_LEN + 4) as u64;
        assert_eq!(fs::metadata(&path).unwrap().len(), end, "released at close");
        let mut torn = fs::read(&path).unwrap();
        torn.extend_from_slice(&[7, 7, 7]);
        torn.extend_from_slice(&[0; 5000]);
        let (scan, _) = scan_bytes(&path, &torn).unwrap();
        assert!(matches!(scan.tail, Tail::Torn { .. }), "{:?}", scan.tail);
        assert_eq!(count_sets(&path), 2, "the zeros are not counted");
    }

    fn scan_reason(scan: &Scan) -> String {
        match &scan.tail {
            Tail::Corrupt { reason, .. } | Tail::Torn { reason } => reason.clone(),
            Tail::Clean | Tail::Reserved => String::new(),
        }
    }

    /// A file shorter than the header is rewritten only if it holds a prefix of the header;
    /// anything else is someone else's file and is refused, untouched.
    #[test]
    fn short_foreign_file_is_refused_not_overwritten() {
        let (_dir, path) = temp_path("short");
        fs::write(&path, b"hello").unwrap();
        assert!(matches!(Wal::open(&path, |_| {}), Err(Error::Corrupt { offset: 0, .. })));
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        fs::write(&path, b"walkv").unwrap();
        let (_, recovery) = Wal::open(&path, |_| {}).unwrap();
        assert!(recovery.created);
        assert_eq!(fs::read(&path).unwrap(), file_header());
    }

    /// A record that checks out but skips a sequence number stops replay as corruption.
    #[test]
    fn sequence_gap_is_corruption() {
        let mut bytes = file_header().to_vec();
        encode(&mut bytes, 1, Op::Set, b"a", b"1");
        encode(&mut bytes, 3, Op::Set, b"b", b"2");
        let (_dir, path) = temp_path("gap");
        let (scan, seen) = scan_bytes(&path, &bytes).unwrap();
        assert_eq!(seen.len(), 1);
        assert!(matches!(&scan.tail, Tail::Corrupt { reason, .. } if reason.contains("3 where 2")));
    }

    /// Repair cuts at the damage point, saves the cut bytes, and leaves a log that opens cleanly.
    #[test]
    fn repair_cuts_at_damage_and_keeps_the_cut_bytes() {
        let (mut bytes, records, ends) = sample_log(5);
        bytes[ends[2] + 5] ^= 0xFF;
        let (_dir, path) = temp_path("repair");
        fs::write(&path, &bytes).unwrap();
        let repair = repair(&path).unwrap();
        let side = repair.side_file.unwrap();
        assert_eq!(fs::read(&side).unwrap(), bytes[ends[2]..]);
        let mut seen = Vec::new();
        let (_, rec) =
            Wal::open(&path, |r| seen.push((r.seq, r.op, r.key.to_vec(), r.value.to_vec())))
                .unwrap();
        assert_eq!(seen, records[..3]);
        assert_eq!(rec.trimmed, None);
        // What the cut part held that still checks out: records 5 (record 4 is the damaged one).
        let cut = fs::read(&side).unwrap();
        let found: Vec<u64> = records_in(&cut).iter().map(|(_, r)| r.seq).collect();
        assert_eq!(found, vec![5]);
    }

    /// Random garbage of any length never panics the decoder or the scanner.
    #[test]
    fn random_garbage_never_panics() {
        let seed = crate::testutil::knob("WALKV_FUZZ_SEED", 1);
        let rounds = crate::testutil::knob("WALKV_FUZZ_ROUNDS", 2000);
        let mut rng = Rng::new(seed);
        let (_dir, path) = temp_path("garbage");
        let (base, _, _) = sample_log(4);
        for _ in 0..rounds {
            let mut bytes = base.clone();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 => bytes[at] = rng.next_u64() as u8,
                    1 => bytes.insert(at, rng.next_u64() as u8),
                    _ => bytes.truncate(at.max(FILE_HEADER_LEN)),
                }
            }
            let _ = scan_bytes(&path, &bytes);
            let _ = count_sets(&path);
            let len = rng.below(64);
            let _ = decode(&rng.bytes(len));
        }
    }
}
