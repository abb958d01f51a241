//! The write-ahead log: its on-disk format, appending, and recovery. This doc is the format's
//! specification.
//!
//! Every change to the map is first encoded as a record and written to the end of the log's
//! newest file (a *segment*, see *Data directory* below); only then is it applied in memory and
//! acknowledged. At startup the snapshot and the segments are read in order and every record is
//! applied again, which rebuilds the map exactly. Compaction replaces the history before the
//! newest segment with one snapshot of the live keys. Besides the changes, the log carries *SYNC markers*: small records, written
//! right after an fsync, that say "everything before me was on disk". They are what lets
//! recovery tell bytes a power cut may have lost (trimmed, no operator needed) from damage to
//! bytes that had been on disk (refused, an operator decides).
//!
//! Three folders, each using only the one before it:
//!
//! | folder | file | what it holds |
//! |---|---|---|
//! | [`log`](mod@log): the log itself | [`record`] | the bytes: header and record encoding, decoding |
//! | | [`reader`] | reading a file through a bounded window |
//! | | [`scan`](mod@scan) | replay and the recovery rules |
//! | | `log/mod.rs` | the open log ([`Wal`]): recovery at open, append, reserve, seal |
//! | | `log/sync.rs` | fsyncs and SYNC markers |
//! | | [`files`] | the file protocol: replacing a file by rename, side files, removals |
//! | | [`rewrite`] | writing a whole new log: creation, upgrade from format 1 |
//! | [`dir`]: the data directory | `dir/mod.rs` | opening it: replay and recovery across files, the upgrades, sealing a segment |
//! | | [`layout`] | its file names: segments, snapshots, the marker |
//! | | [`lock`] | its lock (`LOCK`), and whether a process holds it |
//! | | [`snapshot`] | snapshot files: writing, loading, their end marker |
//! | | [`compact`] | compaction: the merge, its check, the commit, garbage collection |
//! | | [`view`] | reading it without opening it: `walkv export` and `walkv dump` |
//! | | [`history`] | the segments' changes in order, for the change feed |
//! | [`repair`]: offline tools | `repair/mod.rs` | `walkv repair`: the plan, `--skip-damaged`, `--cut` |
//! | | [`salvage`] | `walkv repair` of a damaged snapshot or a missing segment |
//!
//! Each module is also reachable as `wal::NAME` (`wal::record`, `wal::compact`, ...).
//!
//! # The format
//!
//! The bytes of a log file (the header, the seven record types, the versions, a worked example
//! that a test checks) are specified in `docs/log-format.md`. In short: a 24-byte header
//! (`walkvWAL`, the version, a random log id, a CRC), then records of `crc seq type klen vlen
//! key value`, little-endian and length-prefixed, whose CRC-32C is seeded with the log id. The
//! data records are SET ([`record::Body::Set`], with an expiry for a key with a TTL), DELETE,
//! EXPIRE and TXN (a transaction's operations under one seq); SYNC markers say "everything
//! before me was on disk", and GAP records say which seqs were skipped on purpose. Each
//! directory's newest segment of format 2 is sealed at the first open ([`dir::open`]), so that
//! no record of a newer type ever lands in a file an older walkv would misread.
//!
//! ## Format 1
//!
//! The first format had a 12-byte header (`walkvWAL`, version 1), records of types 1 and 2
//! only, and checksums without a seed. A format 1 log is read by the rules below (with rule 1'
//! for rule 1), and the first server to open it rewrites it as format 2 (see [`files`]).
//!
//! ## Reserved space
//!
//! A running server keeps zero bytes written ahead of its last record (`zero*` above): between
//! 1 and 8 MiB, an eighth of the log's size. An fsync after an append that grows the file must
//! also commit the new file size; an fsync after writing into space that already exists need
//! not, and on this project's test machine that made fsyncs about 30% faster (7,900 against
//! 10,300 per second), which is what `--sync always` waits for. No record can start with zeros
//! where its type is (types are 1 to 7), so zeros from the end of the last record to the end of
//! the file are recognised as reserved space: the clean end of the log. It is released (the
//! file cut back to its last record) when the server stops cleanly and at every open. If
//! reserving fails (a full disk, a file size limit), the log simply grows as records are
//! appended, and reserving is tried again only after another 1 MiB of records. The price: every
//! byte of the log reaches the disk twice, first as a zero and then as data.
//!
//! # How a server writes
//!
//! 1. **Open**: replay, bring the end to a clean state (the rules below), fsync, then write an
//!    *open* marker (kind 1). A new log is written as `walkv.wal.new`, fsynced, and renamed.
//! 2. **Append**: the records of a batch are written whole into the file (out of the
//!    `BufWriter`, one `write(2)`) before their changes are applied or acknowledged (see
//!    [`crate::writer`]).
//! 3. **After an fsync** (the group commit in `always` mode, the sync thread in `interval`
//!    mode, `POST /sync`, `?sync`): a *sync* marker (kind 2) at the synced length, if the last
//!    marker is at least 100 ms old and nothing was appended since the fsync began (the sync
//!    thread fsyncs while the writer appends; then it catches up with a second fsync, at most
//!    once a second, if the first was quick: see [`log`](mod@log)). It is not fsynced itself:
//!    the next fsync carries it. Markers are written only when every byte before them is on
//!    disk, so what they say is always true.
//! 4. **Clean stop**: release the reserved space, fsync, write a *close* marker (kind 3), fsync.
//!
//! # Recovery rules
//!
//! Replay decodes records from the header on. A record must have a known type, lengths within
//! their limits (checked before anything is allocated), all its bytes, a matching checksum, and
//! it must fit: a SET or DELETE has the next sequence number, a SYNC marker names its own
//! offset and the current sequence number, a GAP starts at the next number. The first record
//! that fails is the *damage point* D. Its *extent* is D plus the length its own header
//! declares, when the header's type and lengths are sane (unknown otherwise). Then the rest of
//! the file is read once, and the first rule that applies decides:
//!
//! 0. **Only zeros follow D: reserved space**, the clean end. Released at open; nothing reported.
//! 1. **A genuine SYNC marker follows D: corruption, startup refuses** (exit 7). The marker says
//!    every byte before it had been on disk, so the damage is to durable data: a bad block, a
//!    bit flip, a stray write, a disk that lied about an fsync. Skipping it would silently lose
//!    acknowledged writes and apply later ones without them (a lost DELETE resurrects a key).
//!    The message names the file, the offset, how many records after the damage still check
//!    out, and `walkv repair`. A marker counts wherever it is found, even inside a torn
//!    record's extent: it cannot be forged (seeded checksum, its own offset inside).
//! 2. **The previous server ran in this kernel boot** (the last marker's boot id is this
//!    boot's): the page cache lost nothing it wrote, so the file holds exactly what it wrote,
//!    and a crash of the process (`kill -9`, OOM) can leave at most one unfinished append at
//!    the end. If D's extent is known, nothing but zeros follows it (or it runs past the end of
//!    the file), and no SET or DELETE with a later sequence number than D's checks out anywhere
//!    after D (the writer never went on after it), that append is trimmed: it was never
//!    completely written, so never acknowledged. Anything else is corruption: startup refuses.
//!    (A later number inside D's extent cannot be part of D's value: a value holding a copy of
//!    this very log can only hold numbers older than its own record's.)
//! 3. **Otherwise** (another boot, or the boot is unknown): power may have been lost, and the
//!    page cache may have written back any subset of the unsynced pages, in any order, so the
//!    tail after the last marker can hold holes with valid records after them. Everything from
//!    D on was not known to be durable: the log is cut at D and the cut is fsynced before
//!    anything is appended. If records that still check out follow D, the cut bytes are first
//!    kept in a side file, `walkv.wal.trimmed-D-TIME`, and a GAP record makes sure their
//!    sequence numbers are never reused. The startup message says how many records were
//!    dropped, and whether they could have been acknowledged: with `--sync always` (from the
//!    last marker) they were not.
//!
//! 1'. **Format 1 logs** have no markers: a valid record with a sequence number at or past the
//!    expected one, outside D's extent, makes it corruption; otherwise the tail is trimmed.
//!
//! A file shorter than a header that holds a prefix of one is an interrupted creation and is
//! created anew. A file that does not start with `walkvWAL` is not a walkv log, and a newer
//! version was written by a newer walkv: either refuses to start and is never changed, and
//! neither suggests a repair (exit 7 and 12). `walkv.wal.new` at open is an interrupted
//! replacement and is removed.
//!
//! What recovery cannot know: durability is only known up to the last marker, up to 100 ms
//! behind the last fsync. Damage to data in that window after a power cut is taken for an
//! unsynced tail (rule 3), not for corruption: its records are then kept in the side file, not
//! applied. Rule 2 assumes the disk kept power while the kernel ran; a disk that loses its cache
//! under a running kernel (a yanked USB disk) can make a crash look like corruption.
//!
//! # Data directory (layout version 5)
//!
//! ```text
//! walkv.wal              the layout marker: a header of version 5 (LAYOUT_VERSION; 3 before
//!                        format 4), nothing else
//! snapshot-S.snap        every live key as of seq S (20-digit, zero-padded numbers)
//! segment-N.wal          a log file (the format above) whose first record has seq N
//! NAME.new               a file being written; in charge of nothing until renamed
//! ```
//!
//! A snapshot is a file in the log format: the header (its own random id), one SET (expiring or
//! not) per live key with the seq of the key's last write (at most S), in no order, then a SYNC marker of kind 5
//! (*snapshot*) at its own offset with seq S, and nothing after it. The state is the snapshot
//! with the highest S, then every segment after it in order. The marker exists so that a walkv
//! of the one-file layout refuses the directory (a newer format) instead of starting empty.
//!
//! **File protocol.** Every file but a segment being appended to is written as `NAME.new`,
//! fsynced, renamed to `NAME`, and the directory fsynced; the rename is the commit point, and a
//! `NAME.new` found at startup is removed. Directories walkv creates are created one level at a
//! time, each parent fsynced ([`files::create_dir_durably`]). Removals are fsynced by their
//! directory too, but never needed for correctness: a removed file that comes back after a power
//! cut is a leftover the next start removes again.
//!
//! - **Sealing** ([`Wal::rotate`]): release the reserved space, fsync the segment (in every sync
//!   mode), then create `segment-<next seq>.wal` by the protocol above and write an *open*
//!   marker into it. A failure before the rename leaves the log in the old segment; a failed
//!   fsync of the old one, or a failure after the rename, stops the log (fail-stop).
//! - **Compaction** ([`compact`]): seal; merge the snapshot and the sealed segments into
//!   `snapshot-S.snap` (S = the last sealed seq) on another thread, leaving out keys whose
//!   expiry has passed; check it holds exactly the map's keys and live bytes as of S (those
//!   left out counted); commit it by the protocol; only after the directory
//!   fsync returned, remove the older snapshots and the segments it covers.
//! - **Upgrade**: a directory with a `walkv.wal` log and no segment (the one-file layout) is
//!   recovered by the rules above, then `walkv.wal` is renamed to `segment-…0001.wal`, the
//!   directory fsynced, and the marker written. A crash between leaves a segment and no marker,
//!   which the next start completes.
//!
//! **Recovery across files** ([`dir`]): the snapshot in charge must load completely (damage is
//! refused: it was fsynced before it was renamed into place). A segment is *covered* if the next
//! one starts at or before S + 1; covered segments and older snapshots are leftovers of an
//! interrupted garbage collection, removed once everything else was read and found good. The
//! remaining segments must chain: the first starts at S + 1, each next at the previous one's
//! last seq + 1; a missing file or a gap refuses startup, naming the missing segment. Every
//! segment but the newest was fsynced before the next was created, so it must read to a clean
//! end (zeros of reserved space allowed): damage there is refused. Only the newest segment is
//! judged by rules 0-3, and may be trimmed. A marker file with no segment and no snapshot is a
//! directory whose files are missing: refused. What `walkv repair` can do about each refusal
//! (and what it loses) is in [`repair`] for segments and in [`salvage`] for a damaged snapshot
//! or a missing segment.
//!
//! # What the format does not do
//!
//! - No compression, no encryption, no record batching: one record per write (a transaction is
//!   one write).
//! - The checksum detects damage; nothing can correct it.
//! - Durability depends on fsync, which this module exposes as [`Wal::sync`]; *when* it runs is
//!   the server's policy (see docs/durability.md).

pub mod dir;
pub mod log;
pub mod repair;

pub use dir::{compact, history, layout, lock, snapshot, view};
pub use log::{files, reader, record, rewrite, scan};
pub use repair::salvage;

pub use files::{FILE_NAME, sync_dir};
pub use log::{Options, Recovery, Trim, Wal, boot_id, check_lengths};
pub use record::{
    Body, BootId, Decoded, HEADER_LEN, HEADER_LEN_V1, MAX_KEY_LEN, MAX_VALUE_LEN, Mark, MarkKind,
    Op, RECORD_HEADER_LEN, Record, Seed, SyncMode, VERSION, decode, encode, encode_gap,
    encode_header, encode_mark,
};
pub use scan::{Judge, Proof, Scan, Tail, scan};

#[cfg(test)]
mod tests;
