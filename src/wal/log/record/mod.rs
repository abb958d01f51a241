//! Bytes of the log: the file header and the records, encoded and decoded (the layout is
//! specified in `docs/log-format.md`).
//!
//! The encoder and the decoder mirror each other field by field. The decoder never trusts a
//! length before checking it against its limit, never allocates, and reports what is wrong as a
//! [`Fault`] (a small `Copy` value, so that trying every byte offset of a damaged region costs
//! no allocation). It checks everything a record can prove about itself; whether a record fits
//! where it was found (its sequence number, a marker's offset) is the scanner's business.

use crate::crc32c;
use std::fmt;

mod header;
mod txn;
pub use header::{Header, HeaderFault, decode_header, encode_header, encode_header_version};
pub use txn::{Txn, TxnBuilder};

/// First eight bytes of every log file.
pub const MAGIC: [u8; 8] = *b"walkvWAL";
/// The format version this build writes: format 2 with three more record types (expiring SETs,
/// expiries, transactions), so that a walkv that does not know them refuses the file ("written
/// by a newer walkv") instead of misreading it.
pub const VERSION: u32 = 4;
/// The format of logs and snapshots before record types 5 to 7; still read as it is.
pub const VERSION_2: u32 = 2;
/// The first format, still read (and upgraded at open).
pub const VERSION_1: u32 = 1;
/// The version in the header of `walkv.wal` once a data directory holds segments and snapshots
/// (see [`crate::wal::layout`]): the file is then only that header, so that an older walkv refuses
/// the directory ("written by a newer walkv") instead of starting empty or misreading it.
pub const LAYOUT_VERSION: u32 = 5;
/// The layout marker of a directory whose files are all of [`VERSION_2`]; still read, and
/// replaced by [`LAYOUT_VERSION`] at the first open.
pub const LAYOUT_VERSION_3: u32 = 3;

/// True for the version of a layout marker, old or new.
pub fn is_marker_version(version: u32) -> bool {
    version == LAYOUT_VERSION || version == LAYOUT_VERSION_3
}

/// True for the version of a seeded log or snapshot file, old or new.
pub fn is_log_version(version: u32) -> bool {
    version == VERSION || version == VERSION_2
}
/// Version 2 file header: magic + version + log id + crc.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 4;
/// Version 1 file header: magic + version.
pub const HEADER_LEN_V1: usize = 8 + 4;
/// Record header: crc + seq + type + klen + vlen.
pub const RECORD_HEADER_LEN: usize = 4 + 8 + 1 + 4 + 4;
/// Longest key, in bytes. Keys are URL path segments; 4 KiB is far beyond any sane key and keeps a
/// request line small.
pub const MAX_KEY_LEN: usize = 4096;
/// Longest value, in bytes (1 MiB). Values live in memory; a bigger limit would let one request
/// take a large bite of a small deployment.
pub const MAX_VALUE_LEN: usize = 1 << 20;
/// Bytes an expiring SET adds before its value: the expiry, in milliseconds since the Unix
/// epoch.
pub const EXPIRY_LEN: usize = 8;
/// Longest body of a transaction record (its operations, encoded; see [`Txn`]). The server's
/// own limits on a transaction keep well below it.
pub const MAX_TXN_LEN: usize = MAX_VALUE_LEN + (64 << 10);
/// Longest record of any type.
pub const MAX_RECORD_LEN: usize = RECORD_HEADER_LEN + MAX_TXN_LEN;
/// Body of a SYNC marker: offset + boot id + kind + mode.
pub const MARK_BODY_LEN: usize = 8 + 16 + 1 + 1;
/// A whole SYNC marker record.
pub const MARK_LEN: usize = RECORD_HEADER_LEN + MARK_BODY_LEN;
/// Body of a GAP record: the first skipped sequence number.
pub const GAP_BODY_LEN: usize = 8;

/// Record type codes, as stored in the `type` byte.
const TYPE_SET: u8 = 1;
const TYPE_DELETE: u8 = 2;
const TYPE_SYNC: u8 = 3;
const TYPE_GAP: u8 = 4;
const TYPE_SET_EXPIRING: u8 = 5;
const TYPE_EXPIRE: u8 = 6;
const TYPE_TXN: u8 = 7;
/// The highest type code this build knows.
const LAST_TYPE: u8 = TYPE_TXN;

/// The two changes a client can make, as appended by [`crate::wal::Wal::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Set = 1,
    Delete = 2,
}

/// When the server fsyncs its log (`--sync`); recorded in every SYNC marker, so that recovery
/// can say whether writes it had to trim could have been acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// No write is answered before an fsync that covers it has returned. Survives power loss;
    /// costs one fsync per batch of writes.
    Always = 1,
    /// A background thread fsyncs every `--sync-interval`. A power cut loses at most the writes
    /// acknowledged since the last sync. The default.
    Interval = 2,
    /// Never fsynced while serving (only at a clean shutdown); the OS writes back when it likes.
    /// Fastest; a power cut can lose any amount of recent writes.
    Never = 3,
}

impl SyncMode {
    pub fn parse(text: &str) -> Option<SyncMode> {
        match text {
            "always" => Some(SyncMode::Always),
            "interval" => Some(SyncMode::Interval),
            "never" => Some(SyncMode::Never),
            _ => None,
        }
    }

    fn from_code(code: u8) -> Option<SyncMode> {
        match code {
            1 => Some(SyncMode::Always),
            2 => Some(SyncMode::Interval),
            3 => Some(SyncMode::Never),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SyncMode::Always => "always",
            SyncMode::Interval => "interval",
            SyncMode::Never => "never",
        }
    }
}

/// Why a SYNC marker was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// A server opened the log: everything before the marker was fsynced by the open.
    Open = 1,
    /// An fsync completed while serving.
    Sync = 2,
    /// The server stopped cleanly; nothing follows.
    Close = 3,
    /// `walkv repair` rewrote the log.
    Repair = 4,
    /// The end of a snapshot file: every record of the snapshot comes before it.
    Snapshot = 5,
}

/// The kernel's boot id (`/proc/sys/kernel/random/boot_id`) as 16 bytes; all zeros = unknown.
pub type BootId = [u8; 16];

/// What a SYNC marker says: when it was written, every byte before `offset` was on stable
/// storage, and the writer ran in the kernel boot `boot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Where the marker itself starts; a marker found anywhere else is not genuine.
    pub offset: u64,
    pub boot: BootId,
    pub kind: MarkKind,
    /// The writer's `--sync` mode (`None` when written by `walkv repair`).
    pub mode: Option<SyncMode>,
}

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// A SET (type 1), or with `expires` an expiring SET (type 5): the key is not served from
    /// that time on (milliseconds since the Unix epoch).
    Set {
        key: &'a [u8],
        value: &'a [u8],
        expires: Option<u64>,
    },
    Delete {
        key: &'a [u8],
    },
    /// The key's time had come: the server's sweep removed it (type 6). Applied as a DELETE.
    Expire {
        key: &'a [u8],
    },
    /// Several SETs and DELETEs under one seq, applied all together or not at all (type 7).
    Txn(Txn<'a>),
    /// A SYNC marker; its `seq` is the sequence number of the record before it.
    Mark(Mark),
    /// Sequence numbers `first ..= seq` were skipped on purpose (by a repair or a trim); the next
    /// record has `seq + 1`.
    Gap {
        first: u64,
    },
}

/// One decoded record, borrowing its key and value from the buffer it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: u64,
    pub body: Body<'a>,
}

impl Record<'_> {
    /// True for the records that change the map: SET, DELETE, EXPIRE, TXN.
    pub fn is_data(&self) -> bool {
        !matches!(self.body, Body::Mark(_) | Body::Gap { .. })
    }
}

/// What is wrong with bytes that do not decode as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    UnknownType(u8),
    KeyLength(usize),
    ValueLength(usize),
    DeleteWithValue(usize),
    /// A SYNC or GAP record whose lengths are not the fixed ones.
    BodyLength {
        kind: u8,
        klen: usize,
        vlen: usize,
    },
    MarkKind(u8),
    /// A transaction record whose operations do not decode: the first bad one's offset in its
    /// body.
    TxnBody(usize),
    Checksum {
        stored: u32,
        computed: u32,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::UnknownType(t) => write!(f, "unknown record type {t}"),
            Fault::KeyLength(n) => write!(f, "key length {n} is outside 1..={MAX_KEY_LEN}"),
            Fault::ValueLength(n) => {
                write!(f, "value length {n} is over the limit {MAX_VALUE_LEN}")
            }
            Fault::DeleteWithValue(n) => write!(f, "DELETE record with a {n}-byte value"),
            Fault::BodyLength { kind, klen, vlen } => {
                write!(f, "type {kind} record with lengths {klen}/{vlen}")
            }
            Fault::MarkKind(k) => write!(f, "SYNC marker of unknown kind {k}"),
            Fault::TxnBody(at) => write!(f, "transaction record with a bad operation at {at}"),
            Fault::Checksum { stored, computed } => {
                write!(f, "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
            }
        }
    }
}

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record and its encoded length.
    Record(Record<'a>, usize),
    /// The buffer ends before the record does; at the end of the file this is a torn write. The
    /// record's declared length, if its header is all there and sane.
    Incomplete(Option<usize>),
    /// The bytes are not a valid record. The declared length, if the header itself is sane (only
    /// the checksum failed).
    Damaged(Fault, Option<usize>),
}

/// The checksum seed: version 2 folds the log's 8-byte id into every record's CRC, so a record
/// written for another log, or crafted by a client who cannot read the log, never checks out
/// here. Version 1 has no seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seed(Option<[u8; 8]>);

impl Seed {
    pub const V1: Seed = Seed(None);

    pub fn log(log_id: u64) -> Seed {
        Seed(Some(log_id.to_le_bytes()))
    }

    /// The CRC of the seed, then `parts` (at most four).
    fn checksum(&self, parts: &[&[u8]]) -> u32 {
        match &self.0 {
            Some(id) => {
                let mut all: [&[u8]; 5] = [id, &[], &[], &[], &[]];
                all[1..=parts.len()].copy_from_slice(parts);
                crc32c::checksum_parts(&all[..=parts.len()])
            }
            None => crc32c::checksum_parts(parts),
        }
    }

    fn has_markers(&self) -> bool {
        self.0.is_some()
    }
}

/// Appends the encoding of one SET or DELETE to `out`. Lengths must already be within limits.
pub fn encode(out: &mut Vec<u8>, seed: Seed, seq: u64, op: Op, key: &[u8], value: &[u8]) {
    encode_body(out, seed, seq, &op.body(key, value));
}

/// Appends the encoding of a data record (any body but a marker or a gap) to `out`. Lengths
/// must already be within limits.
pub fn encode_body(out: &mut Vec<u8>, seed: Seed, seq: u64, body: &Body) {
    let parts = DataParts::of(body);
    out.extend_from_slice(&parts.header(seed, seq));
    parts.extend(out);
}

impl Op {
    /// The body of this op's record.
    pub fn body<'a>(self, key: &'a [u8], value: &'a [u8]) -> Body<'a> {
        match self {
            Op::Set => Body::Set { key, value, expires: None },
            Op::Delete => Body::Delete { key },
        }
    }
}

/// A data record's type, and its bytes after the header: the key, the expiry of an expiring
/// SET, the value (or a transaction's operations).
struct DataParts<'a> {
    kind: u8,
    key: &'a [u8],
    expiry: Option<[u8; EXPIRY_LEN]>,
    value: &'a [u8],
}

impl<'a> DataParts<'a> {
    /// # Panics
    /// On a marker or a gap (they have their own encoders), and on lengths outside the
    /// format's limits: both come from this process, never from a file or a client.
    fn of(body: &Body<'a>) -> DataParts<'a> {
        let parts = |kind, key, expiry, value| DataParts { kind, key, expiry, value };
        let p = match *body {
            Body::Set { key, value, expires: None } => parts(TYPE_SET, key, None, value),
            Body::Set { key, value, expires: Some(at) } => {
                parts(TYPE_SET_EXPIRING, key, Some(at.to_le_bytes()), value)
            }
            Body::Delete { key } => parts(TYPE_DELETE, key, None, b""),
            Body::Expire { key } => parts(TYPE_EXPIRE, key, None, b""),
            Body::Txn(txn) => parts(TYPE_TXN, b"", None, txn.bytes()),
            Body::Mark(_) | Body::Gap { .. } => panic!("not a data record: {body:?}"),
        };
        let fits = if p.kind == TYPE_TXN {
            (1..=MAX_TXN_LEN).contains(&p.value.len())
        } else {
            (1..=MAX_KEY_LEN).contains(&p.key.len()) && p.value.len() <= MAX_VALUE_LEN
        };
        assert!(
            fits,
            "record lengths must be checked before encoding (type {}, key {} bytes, value {} \
             bytes)",
            p.kind,
            p.key.len(),
            p.value.len()
        );
        p
    }

    fn value_len(&self) -> usize {
        self.expiry.map_or(0, |e| e.len()) + self.value.len()
    }

    /// The header, its checksum left at zero.
    fn unsealed_header(&self, seq: u64) -> [u8; RECORD_HEADER_LEN] {
        header_fields(seq, self.kind, self.key.len(), self.value_len())
    }

    /// The header, checksum included.
    fn header(&self, seed: Seed, seq: u64) -> [u8; RECORD_HEADER_LEN] {
        let mut h = self.unsealed_header(seq);
        let expiry = self.expiry.as_ref().map_or(&[][..], |e| &e[..]);
        let crc = seed.checksum(&[&h[4..], self.key, expiry, self.value]);
        h[0..4].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Appends the bytes after the header.
    fn extend(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.key);
        if let Some(expiry) = &self.expiry {
            out.extend_from_slice(expiry);
        }
        out.extend_from_slice(self.value);
    }
}

/// A record header's fields after the checksum, which is left at zero.
fn header_fields(seq: u64, kind: u8, klen: usize, vlen: usize) -> [u8; RECORD_HEADER_LEN] {
    let mut h = [0u8; RECORD_HEADER_LEN];
    // crc (4) is filled in last; it covers everything after it.
    // Sequence number: u64, little-endian.
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    // Type: one byte.
    h[12] = kind;
    // Key length, then value length: u32, little-endian (both at most MAX_RECORD_LEN here).
    h[13..17].copy_from_slice(&(klen as u32).to_le_bytes());
    h[17..21].copy_from_slice(&(vlen as u32).to_le_bytes());
    h
}

/// The header for a marker or a gap: `kind`, no key, `body` as the value, and the CRC.
fn record_header(seed: Seed, seq: u64, kind: u8, body: &[u8]) -> [u8; RECORD_HEADER_LEN] {
    let mut h = header_fields(seq, kind, 0, body.len());
    let crc = seed.checksum(&[&h[4..], body]);
    h[0..4].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Appends a SET or DELETE whose checksum is left at zero, for [`seal`] to fill in: the server
/// encodes records on its main thread, which does not know the seed of the segment they will
/// land in (a compaction may start a new one first), and the log's writer thread seals them.
/// Lengths must already be within limits.
pub fn encode_unsealed(out: &mut Vec<u8>, seq: u64, op: Op, key: &[u8], value: &[u8]) {
    encode_body_unsealed(out, seq, &op.body(key, value));
}

/// [`encode_unsealed`] for any data record.
pub fn encode_body_unsealed(out: &mut Vec<u8>, seq: u64, body: &Body) {
    let parts = DataParts::of(body);
    out.extend_from_slice(&parts.unsealed_header(seq));
    parts.extend(out);
}

/// Fills in the checksum of every record in `records`, a run of records written by
/// [`encode_unsealed`], with `seed`. Returns how many there are.
///
/// # Panics
/// If `records` is not such a run (a length that points past its end): the bytes come from
/// this process, never from a file or a client.
pub fn seal(records: &mut [u8], seed: Seed) -> u64 {
    let mut at = 0;
    let mut count = 0;
    while at < records.len() {
        let klen = u32_at(records, at + 13) as usize;
        let vlen = u32_at(records, at + 17) as usize;
        let end = at + RECORD_HEADER_LEN + klen + vlen;
        let record = &mut records[at..end];
        let crc = seed.checksum(&[&record[4..]]);
        record[0..4].copy_from_slice(&crc.to_le_bytes());
        at = end;
        count += 1;
    }
    count
}

/// Appends a SYNC marker. `seq` is the sequence number of the last record before it.
pub fn encode_mark(out: &mut Vec<u8>, seed: Seed, seq: u64, mark: &Mark) {
    let mut body = [0u8; MARK_BODY_LEN];
    // Offset of the marker itself: u64, little-endian.
    body[0..8].copy_from_slice(&mark.offset.to_le_bytes());
    // Boot id: 16 bytes.
    body[8..24].copy_from_slice(&mark.boot);
    // Kind, then sync mode: one byte each (mode 0 = none).
    body[24] = mark.kind as u8;
    body[25] = mark.mode.map_or(0, |m| m as u8);
    out.extend_from_slice(&record_header(seed, seq, TYPE_SYNC, &body));
    out.extend_from_slice(&body);
}

/// Appends a GAP record: sequence numbers `first ..= last` are skipped on purpose.
pub fn encode_gap(out: &mut Vec<u8>, seed: Seed, first: u64, last: u64) {
    assert!(first <= last, "a gap skips at least one sequence number ({first} > {last})");
    let body = first.to_le_bytes();
    out.extend_from_slice(&record_header(seed, last, TYPE_GAP, &body));
    out.extend_from_slice(&body);
}

/// A cheap look at what may be a record header at the start of `buf`, before [`decode`] spends
/// a checksum on it: its type byte and its (unverified) sequence number. `None` if `buf` is too
/// short or the type is not one this build knows.
pub fn peek(buf: &[u8]) -> Option<(u8, u64)> {
    let kind = *buf.get(12)?;
    (1..=LAST_TYPE).contains(&kind).then(|| (kind, u64_at(buf, 4)))
}

pub(super) fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

pub(super) fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The declared length of the record whose header starts `buf`, if the header is all there and
/// its type and lengths are within the format's limits.
fn declared_len(buf: &[u8], seed: Seed) -> Result<usize, Fault> {
    // Type: one byte at offset 12.
    let kind = buf[12];
    // Key and value lengths: u32 little-endian at offsets 13 and 17, checked before use.
    let klen = u32_at(buf, 13) as usize;
    let vlen = u32_at(buf, 17) as usize;
    match kind {
        TYPE_SET | TYPE_DELETE => {
            if klen == 0 || klen > MAX_KEY_LEN {
                return Err(Fault::KeyLength(klen));
            }
            if vlen > MAX_VALUE_LEN {
                return Err(Fault::ValueLength(vlen));
            }
            if kind == TYPE_DELETE && vlen != 0 {
                return Err(Fault::DeleteWithValue(vlen));
            }
        }
        TYPE_SET_EXPIRING | TYPE_EXPIRE if seed.has_markers() => {
            if klen == 0 || klen > MAX_KEY_LEN {
                return Err(Fault::KeyLength(klen));
            }
            if kind == TYPE_EXPIRE && vlen != 0 {
                return Err(Fault::DeleteWithValue(vlen));
            }
            if kind == TYPE_SET_EXPIRING
                && !(EXPIRY_LEN..=EXPIRY_LEN + MAX_VALUE_LEN).contains(&vlen)
            {
                return Err(Fault::ValueLength(vlen));
            }
        }
        TYPE_TXN if seed.has_markers() => {
            if klen != 0 || vlen == 0 || vlen > MAX_TXN_LEN {
                return Err(Fault::BodyLength { kind, klen, vlen });
            }
        }
        TYPE_SYNC | TYPE_GAP if seed.has_markers() => {
            let want = if kind == TYPE_SYNC { MARK_BODY_LEN } else { GAP_BODY_LEN };
            if klen != 0 || vlen != want {
                return Err(Fault::BodyLength { kind, klen, vlen });
            }
        }
        other => return Err(Fault::UnknownType(other)),
    }
    Ok(RECORD_HEADER_LEN + klen + vlen) // at most 21 + MAX_TXN_LEN: cannot overflow
}

/// Decodes the record at the start of `buf`, checking everything a record can prove about
/// itself (not its sequence number or a marker's offset, which need context). Never allocates,
/// whatever the lengths say.
///
/// ```
/// use walkv::wal::{decode, encode, Body, Decoded, Op, Seed};
/// let seed = Seed::log(42);
/// let mut buf = Vec::new();
/// encode(&mut buf, seed, 7, Op::Set, b"key", b"value");
/// let Decoded::Record(record, len) = decode(&buf, seed) else { panic!() };
/// assert_eq!((record.seq, len), (7, 29));
/// assert_eq!(record.body, Body::Set { key: b"key", value: b"value", expires: None });
/// assert_eq!(decode(&buf[..28], seed), Decoded::Incomplete(Some(29)));  // torn
/// assert!(matches!(decode(&buf, Seed::log(43)), Decoded::Damaged(..)));  // another log's
/// buf[25] ^= 1;                                                          // a flipped bit
/// assert!(matches!(decode(&buf, seed), Decoded::Damaged(..)));
/// ```
pub fn decode(buf: &[u8], seed: Seed) -> Decoded<'_> {
    if buf.len() < RECORD_HEADER_LEN {
        return Decoded::Incomplete(None);
    }
    let len = match declared_len(buf, seed) {
        Ok(len) => len,
        Err(fault) => return Decoded::Damaged(fault, None),
    };
    if buf.len() < len {
        return Decoded::Incomplete(Some(len));
    }
    // Checksum: u32 little-endian at offset 0, over bytes 4..len (seeded).
    let stored = u32_at(buf, 0);
    let computed = seed.checksum(&[&buf[4..len]]);
    if stored != computed {
        return Decoded::Damaged(Fault::Checksum { stored, computed }, Some(len));
    }
    let seq = u64_at(buf, 4);
    let klen = u32_at(buf, 13) as usize;
    let key = &buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + klen];
    let rest = &buf[RECORD_HEADER_LEN + klen..len];
    let body = match buf[12] {
        TYPE_SET => Body::Set { key, value: rest, expires: None },
        TYPE_SET_EXPIRING => {
            let (expiry, value) = rest.split_at(EXPIRY_LEN);
            Body::Set { key, value, expires: Some(u64_at(expiry, 0)) }
        }
        TYPE_DELETE => Body::Delete { key },
        TYPE_EXPIRE => Body::Expire { key },
        TYPE_TXN => match Txn::checked(rest) {
            Ok(txn) => Body::Txn(txn),
            Err(at) => return Decoded::Damaged(Fault::TxnBody(at), Some(len)),
        },
        TYPE_GAP => Body::Gap { first: u64_at(rest, 0) },
        _ => {
            let kind = match rest[24] {
                1 => MarkKind::Open,
                2 => MarkKind::Sync,
                3 => MarkKind::Close,
                4 => MarkKind::Repair,
                5 => MarkKind::Snapshot,
                other => return Decoded::Damaged(Fault::MarkKind(other), Some(len)),
            };
            let mut boot = [0u8; 16];
            boot.copy_from_slice(&rest[8..24]);
            let mode = SyncMode::from_code(rest[25]);
            Body::Mark(Mark { offset: u64_at(rest, 0), boot, kind, mode })
        }
    };
    Decoded::Record(Record { seq, body }, len)
}

#[cfg(test)]
mod tests;
