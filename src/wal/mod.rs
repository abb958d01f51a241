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
//! # File layout (format 4)
//!
//! ```text
//! file   := header record* zero*
//! header := magic[8] version[4] log_id[8] crc[4]          24 bytes
//!           magic   = "walkvWAL" (77 61 6c 6b 76 57 41 4c)
//!           version = u32 LE, 4 (2 in files written before TTLs and transactions)
//!           log_id  = u64 LE, random, chosen when the log is created
//!           crc     = u32 LE, CRC-32C of the 20 bytes before it
//! record := crc[4] seq[8] type[1] klen[4] vlen[4] key[klen] value[vlen]
//!                                                         21 bytes + klen + vlen
//!           crc     = CRC-32C of log_id (8 bytes LE), then every byte of the record after crc
//! ```
//!
//! | type | name | `klen` | `vlen` | `seq` | body (`key`, `value`) |
//! |---|---|---|---|---|---|
//! | 1 | SET | 1 ..= [`MAX_KEY_LEN`] | 0 ..= [`MAX_VALUE_LEN`] | previous + 1 | the key, the value |
//! | 2 | DELETE | 1 ..= [`MAX_KEY_LEN`] | 0 | previous + 1 | the key |
//! | 3 | SYNC | 0 | 26 | previous (unchanged) | `offset[8] boot_id[16] kind[1] mode[1]` |
//! | 4 | GAP | 0 | 8 | last skipped | `first[8]`: seqs `first ..= seq` are skipped on purpose |
//! | 5 | SET, expiring | 1 ..= [`MAX_KEY_LEN`] | 8 ..= 8 + [`MAX_VALUE_LEN`] | previous + 1 | the key; `expires[8]` then the value |
//! | 6 | EXPIRE | 1 ..= [`MAX_KEY_LEN`] | 0 | previous + 1 | the key: the server's sweep removed it, its time had come |
//! | 7 | TXN | 0 | 1 ..= [`record::MAX_TXN_LEN`] | previous + 1 | `op+`: a transaction's SETs and DELETEs |
//!
//! `expires` is a u64 LE, milliseconds since the Unix epoch: from then on the key is not
//! served (see [`crate::expiry`]), and replay keeps the expiry, so a key that expired while the
//! server was down is gone after the restart. An EXPIRE is applied as a DELETE; it exists so
//! that `walkv dump`, the change feed and a mirror can tell an expiry from a client's DELETE. A
//! TXN's value is its operations, each `type[1] klen[4] vlen[4] key value` with the type and
//! body of a record of type 1, 2 or 5 ([`record::Txn`]); they all take the record's one seq,
//! and since the record's checksum covers them all, recovery, a repair and a compaction keep
//! all of a transaction or none of it.
//!
//! **Versions.** A header's version says which record types the file may hold: 1 (the first
//! format, below), 2 (types 1-4), 4 (types 1-7), and, in `walkv.wal` alone, 3 and 5 (the layout
//! marker of a directory whose files are of version 2, or may be of version 4: see *Data
//! directory*). Every file this walkv creates has version 4 (the marker 5); it still reads
//! files of version 2 as they are. A walkv that knew only version 2 refuses a file of version 4
//! or 5 as "written by a newer walkv" instead of taking a record type it does not know for
//! damage. So that no record of types 5-7 ever lands in a file of version 2, the first open of
//! a directory whose newest segment has version 2 seals that segment and starts a new one
//! ([`dir::open`]).
//!
//! All integers are little-endian. `seq` counts the client's writes: the first SET or DELETE is
//! 1, each next one is one more, except after a GAP, which says which numbers were skipped (by
//! a trim or a repair) so that a number is never given to two different writes. A SYNC marker's
//! `offset` is where the marker itself starts; `boot_id` is the writer's kernel boot
//! (`/proc/sys/kernel/random/boot_id`, all zeros if unknown); `kind` is 1 open, 2 sync, 3 close,
//! 4 repair; `mode` is the writer's `--sync`: 1 always, 2 interval, 3 never, 0 none.
//!
//! Records are length-prefixed, never delimited, so keys and values may hold any byte. There is
//! no padding and no block structure: a record starts where the previous one ends. The
//! checksum is *seeded* with the log's id: a record only checks out in the log it was written
//! for, so no value a client stores (not even a copy of another walkv log, or bytes crafted to
//! look like records) can ever pass for a record; clients never see the id. A marker is only
//! believed where it says it is, so a copy of this very log stored as a value cannot pass for
//! one either.
//!
//! ## A worked example
//!
//! A log with id `0x0123456789abcdef` starts with this header, then `SET cat = meow` as its first
//! record (seq 1) is these 28 bytes:
//!
//! ```text
//! 77 61 6c 6b 76 57 41 4c     magic "walkvWAL"
//! 04 00 00 00                 version 4
//! ef cd ab 89 67 45 23 01     log id
//! f3 58 e1 b3                 crc = 0xb3e158f3, CRC-32C of the 20 bytes above
//!
//! d8 a2 03 24                 crc   = 0x2403a2d8, CRC-32C of the log id's 8 bytes, then the 24
//!                             bytes below
//! 01 00 00 00 00 00 00 00     seq   = 1
//! 01                          type  = SET
//! 03 00 00 00                 klen  = 3
//! 04 00 00 00                 vlen  = 4
//! 63 61 74                    "cat"
//! 6d 65 6f 77                 "meow"
//! ```
//!
//! (`wal::record::tests::worked_example_matches_the_spec` checks these bytes.)
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
