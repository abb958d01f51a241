//! The write-ahead log: its on-disk format, appending, and recovery.
//!
//! Every change to the map is first encoded as a record and written to the end of the log's
//! newest file (a *segment*); only then is it applied in memory and acknowledged. At startup the
//! snapshot and the segments are read in order and every record is applied again, which
//! rebuilds the map exactly. Compaction replaces the history before the newest segment with one
//! snapshot of the live keys. Besides the changes, the log carries *SYNC markers*: small
//! records, written right after an fsync, that say "everything before me was on disk". They
//! are what lets recovery tell bytes a power cut may have lost (trimmed, no operator needed)
//! from damage to bytes that had been on disk (refused, an operator decides).
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
//! # Where the rules live
//!
//! Each is specified once, in `docs/`, and the code here follows it:
//!
//! - `docs/log-format.md`: the bytes of a log file (the header, the seven record types, the
//!   versions, reserved space, a worked example that a test checks);
//! - `docs/recovery.md`: what the disk may do, how a server writes, and the recovery rules 0
//!   to 3 that [`scan`](mod@scan) applies to a log's end;
//! - `docs/data-directory.md`: the files of a data directory, the file protocol (`NAME.new`,
//!   fsync, rename, fsync the directory), sealing, snapshots, compaction, and what a start
//!   checks across files ([`dir`]), with what `walkv repair` can do about each refusal
//!   ([`repair`], [`salvage`]).
//!
//! Durability depends on fsync, which this module exposes as [`Wal::sync`]; *when* it runs is
//! the server's policy (`docs/durability.md`).

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
