//! The open log: recovery at open, appending, reserving space, syncing, and the SYNC markers
//! that tell the next recovery how far the log was known to be on disk.
//!
//! A [`Wal`] is used by the log's own threads ([`crate::writer`]), never by the server's main
//! thread: the writer thread appends batches of records and, in `--sync always` mode, fsyncs
//! them; the sync thread fsyncs in the other modes. The sync thread does not hold the log's
//! mutex while its fsync runs: it notes what to sync ([`Wal::sync_point`]), fsyncs a second
//! handle on the same file ([`fsync_file`]), and then records what is now durable
//! ([`Wal::synced`]), so that the writer goes on appending meanwhile. That part, and every
//! fsync and SYNC marker after open, is in `sync.rs`.

use crate::error::Error;
use crate::failpoint;
use crate::metrics::DiskCall;
use files::{save_side_file, unix_seconds};
use record::{
    BootId, MARK_LEN, MAX_KEY_LEN, MAX_VALUE_LEN, Mark, MarkKind, Op, RECORD_HEADER_LEN, Record,
    Seed, SyncMode, VERSION_1,
};
use scan::{Judge, Scan, Tail};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A sealed log file (a segment of a data directory): complete, fsynced, never written again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub path: PathBuf,
    /// Sequence numbers `first ..= last` (`last = first - 1` if it holds none).
    pub first: u64,
    pub last: u64,
    pub bytes: u64,
}

/// A write or fsync of the log that takes longer than this is logged when it ends (the server's
/// main thread logs it once while it runs, see `crate::server`).
pub const SLOW_DISK_CALL: Duration = Duration::from_secs(1);

pub mod files;
pub mod reader;
pub mod record;
pub mod rewrite;
pub mod scan;
mod sync;

pub use sync::{SyncPoint, fsync_file};

/// Least and most space reserved ahead of the log (see *Reserved space*).
const RESERVE_MIN: u64 = 1 << 20;
const RESERVE_MAX: u64 = 8 << 20;

/// Where the kernel publishes the id of the current boot.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// This kernel boot's id, all zeros if it cannot be read. (Tests of power cuts pretend to be a
/// new boot through a failpoint; see [`crate::failpoint`].)
pub fn boot_id() -> BootId {
    let text = failpoint::boot_id().or_else(|| fs::read_to_string(BOOT_ID_PATH).ok());
    let hex: Vec<u8> = text.unwrap_or_default().bytes().filter(u8::is_ascii_hexdigit).collect();
    let mut id = [0u8; 16];
    if hex.len() != 32 {
        return id;
    }
    for (i, pair) in hex.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        id[i] = digit(pair[0]) << 4 | digit(pair[1]);
    }
    id
}

/// How a server opens its log.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Recorded in every SYNC marker.
    pub mode: SyncMode,
    /// This kernel boot (see [`boot_id`]).
    pub boot: BootId,
}

/// What [`Wal::open`] did to bring the log to a clean state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// SET and DELETE records replayed.
    pub records: u64,
    /// The sequence number the log continues after.
    pub last_seq: u64,
    /// The file did not exist (or was empty, or held a partial header) and was created.
    pub created: bool,
    /// The file was a format 1 log and was rewritten in the current format.
    pub upgraded: bool,
    /// Bytes trimmed from the end of the log.
    pub trimmed: Option<Trim>,
}

/// A tail trimmed at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trim {
    /// Where the log was cut.
    pub offset: u64,
    /// How many bytes were dropped from the log (not counting reserved zeros after them).
    pub bytes: u64,
    /// Why, for the operator (from [`Scan::explain`]).
    pub explanation: String,
    /// Where the dropped bytes were kept, if they held records that still check out.
    pub side_file: Option<PathBuf>,
    /// Sequence numbers skipped so that those records' numbers are never reused.
    pub skipped: Option<(u64, u64)>,
}

/// The open log, positioned for appending.
///
/// Invariants:
/// - the file holds a valid header followed by valid records ending at byte `len`, plus at most
///   the record currently being appended, plus zeros up to `reserved`;
/// - `writer`'s buffer is empty between calls;
/// - bytes `..synced_len` are on stable storage, and they hold every record up to `synced_seq`;
/// - `data_len <= len`: only SYNC markers lie between `data_len` and `len`, so a sync is needed
///   only when `synced_len < data_len`;
/// - a SYNC marker is only written at `len == synced_len` (what it says must be true);
/// - once `failed` is set, nothing more is written or synced, and `failed_flag` is true.
pub struct Wal {
    path: PathBuf,
    /// The format version in the file's header: which record types it may hold.
    version: u32,
    first_seq: u64,
    writer: BufWriter<File>,
    seed: Seed,
    options: Options,
    len: u64,
    data_len: u64,
    next_seq: u64,
    synced_len: u64,
    synced_seq: u64,
    /// The file's length: `len` plus the zeros reserved after the last record.
    reserved: u64,
    /// After reserving failed: do not try again before the log reaches this length.
    reserve_again_at: u64,
    /// The file was cut back since the last sync (see [`Wal::close`]).
    length_changed: bool,
    last_mark: Option<Instant>,
    /// SET and DELETE records appended since the last fsync (`walkv_group_commit_batch_size`).
    unsynced_records: u64,
    /// A second handle on the file, which the sync thread fsyncs outside the mutex.
    sync_file: Arc<File>,
    /// Counts the segments this log has been in, so that an fsync of a segment sealed since
    /// ([`Wal::rotate`]) is not taken for one of the new segment.
    generation: u64,
    failed: Option<String>,
    /// Mirrors `failed.is_some()` for readers that must not wait for the log's mutex.
    failed_flag: Arc<AtomicBool>,
}

impl Wal {
    /// Opens (creating if needed) the log at `path`, replays it through `visit`, brings it to a
    /// clean end by the recovery rules, and returns it ready for appends. Refuses a corrupt log
    /// with [`Error::Corrupt`], a foreign file with [`Error::NotALog`], a newer one with
    /// [`Error::NewerFormat`]; none of them is changed.
    pub fn open(
        path: &Path,
        options: Options,
        visit: impl FnMut(&Record),
    ) -> Result<(Wal, Recovery), Error> {
        Wal::open_after(path, 0, options, visit)
    }

    /// [`Wal::open`] for a log whose first record follows sequence number `after` (the newest
    /// segment of a data directory, see [`crate::wal::layout`]).
    pub fn open_after(
        path: &Path,
        after: u64,
        options: Options,
        visit: impl FnMut(&Record),
    ) -> Result<(Wal, Recovery), Error> {
        let io_err = |what: &str| {
            let action = format!("{what} {}", path.display());
            move |e| Error::io(action, e)
        };
        files::remove_leftover(path)?;
        let exists = match fs::metadata(path) {
            Ok(_) => scan::read_header(path)?.is_some(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err("stat")(e)),
        };
        if !exists {
            rewrite::create(path)?;
        }
        let scan = scan::scan_after(path, Judge::Stopped { boot: options.boot }, after, visit)?;
        if let Tail::Corrupt { .. } = scan.tail {
            let reason = scan.explain();
            return Err(Error::Corrupt { path: path.to_path_buf(), offset: scan.end, reason });
        }
        let mut trimmed = trim_info(&scan);
        let upgraded = scan.header.version == VERSION_1;
        let log_id = if upgraded {
            rewrite::upgrade(path, &scan)?;
            scan::read_header(path)?.map(|h| h.log_id).unwrap_or_default()
        } else {
            scan.header.log_id
        };
        if let (Some(trim), Tail::Unsynced { found, .. }) = (&mut trimmed, &scan.tail)
            && !upgraded
            && found.records + found.inside > 0
        {
            // Keep what still checks out before the log lets go of it.
            let stem = format!("trimmed-{}-{}", scan.end, unix_seconds());
            let saved = save_side_file(path, &stem, scan.end, found.data_end).map_err(|e| {
                let bytes = found.data_end - scan.end;
                Error::io(
                    format!(
                        "keep the {bytes} bytes that must be trimmed from {} (they hold records \
                         that check out) in a side file: free some space and start again, or \
                         drop them with `walkv repair --cut`; the log was not changed. Cause",
                        path.display()
                    ),
                    match e {
                        Error::Io { source, .. } => source,
                        other => io::Error::other(other.to_string()),
                    },
                )
            })?;
            trim.side_file = Some(saved);
            if found.max_seq > scan.last_seq {
                trim.skipped = Some((scan.last_seq + 1, found.max_seq));
            }
        }
        let mut file =
            OpenOptions::new().read(true).write(true).open(path).map_err(io_err("open"))?;
        let end = if upgraded { file.metadata().map_err(io_err("stat"))?.len() } else { scan.end };
        if !matches!(scan.tail, Tail::Clean) && !upgraded {
            // Rules 0, 2 and 3: cut back to the last valid record, and make the cut durable (the
            // fsync below) before anything is appended after it.
            file.set_len(end).map_err(io_err("truncate"))?;
        }
        file.seek(SeekFrom::Start(end)).map_err(io_err("seek"))?;
        let sync_file = Arc::new(file.try_clone().map_err(io_err("open a second handle on"))?);
        let mut wal = Wal {
            path: path.to_path_buf(),
            first_seq: after + 1,
            version: if upgraded || !exists { record::VERSION } else { scan.header.version },
            writer: BufWriter::new(file),
            seed: Seed::log(log_id),
            options,
            len: end,
            data_len: end,
            next_seq: scan.last_seq.saturating_add(1),
            synced_len: 0,
            synced_seq: 0,
            reserved: end,
            reserve_again_at: 0,
            length_changed: true,
            last_mark: None,
            unsynced_records: 0,
            sync_file,
            generation: 0,
            failed: None,
            failed_flag: Arc::new(AtomicBool::new(false)),
        };
        if let Some((_, last)) = trimmed.as_ref().and_then(|t| t.skipped) {
            wal.append_gap(last)?;
        }
        // What was replayed may still be only in the page cache (the last process was killed
        // before its next sync): make it durable before anything new depends on it, then say so.
        wal.fsync(false)?;
        wal.write_mark(MarkKind::Open);
        let recovery = Recovery {
            records: scan.records,
            last_seq: wal.last_seq(),
            created: !exists,
            upgraded,
            trimmed,
        };
        Ok((wal, recovery))
    }

    /// The file being appended to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file was renamed to `path` (it became the first segment); the open file is the same.
    pub(super) fn renamed(&mut self, path: &Path) {
        self.path = path.to_path_buf();
    }

    /// The format version of the file: one older than [`record::VERSION`] may not hold the
    /// newer record types, and must be sealed before one is appended (see
    /// [`crate::wal::dir::open`]).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The sequence number this file's first record has (or will have).
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Bytes of records in the file (not counting reserved space).
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// The file's length: the records and the space reserved after them.
    pub fn file_bytes(&self) -> u64 {
        self.reserved.max(self.len)
    }

    /// Sequence number the next record will have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// True if no SET, DELETE or GAP was appended to this file: only its header and markers.
    pub fn holds_no_writes(&self) -> bool {
        self.next_seq == self.first_seq
    }

    /// Seals this segment and continues in a new one at `next`, which the data directory names
    /// (`segment-<next seq>.wal`: see [`crate::wal::dir::seal`]). Returns the sealed segment.
    ///
    /// Sealing releases the reserved space and fsyncs, in every sync mode, so that a sealed
    /// segment never ends in a torn record: only the newest may. The new segment is written as
    /// `NAME.new` (header only), fsynced, renamed, and the directory fsynced, before any record
    /// goes into it. A failure before the rename leaves the log in the old segment, which goes on
    /// taking writes; a failed fsync of the old segment, or a failure after the rename (whether
    /// the new name is durable is then unknown), stops the log as a failed fsync does.
    pub fn rotate(&mut self, next: PathBuf) -> Result<Sealed, Error> {
        if let Some(reason) = &self.failed {
            return Err(Error::Failed { reason: reason.clone() });
        }
        self.release_reserved();
        self.fsync(true)?;
        let next_first = self.next_seq;
        let id = rewrite::new_log_id();
        let new = files::new_path(&next);
        let created = failpoint::check("segment_create")
            .map_or(Ok(()), |e| Err(Error::io(format!("create {}", new.display()), e)))
            .and_then(|_| rewrite::Rewrite::begin(&next, id))
            .and_then(|r| r.commit_with(|| failpoint::check("segment_commit")));
        let file = match created {
            Ok(()) => match failpoint::check("segment_created") {
                Some(e) => Err(e),
                None => OpenOptions::new().read(true).write(true).open(&next),
            },
            Err(e) if next.exists() => {
                self.fail(format!(
                    "starting segment {} failed after its rename: {e}",
                    next.display()
                ));
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        // The new segment, positioned for appends, and a second handle for the sync thread.
        let opened = file.and_then(|mut f| {
            f.seek(SeekFrom::End(0))?;
            let second = f.try_clone()?;
            Ok((f, second))
        });
        let (mut file, sync_file) = match opened {
            Ok((file, second)) => (file, Arc::new(second)),
            Err(e) => {
                let error = Error::io(format!("open {}", next.display()), e);
                self.fail(format!(
                    "starting segment {} failed after its rename: {error}",
                    next.display()
                ));
                return Err(error);
            }
        };
        let _ = file.flush();
        let sealed = Sealed {
            path: std::mem::replace(&mut self.path, next),
            first: self.first_seq,
            last: self.last_seq(),
            bytes: self.len,
        };
        self.writer = BufWriter::new(file);
        self.sync_file = sync_file;
        self.generation += 1;
        self.first_seq = next_first;
        self.version = record::VERSION;
        self.seed = Seed::log(id);
        self.len = record::HEADER_LEN as u64;
        self.data_len = self.len;
        self.synced_len = self.len;
        self.reserved = self.len;
        self.reserve_again_at = 0;
        self.length_changed = false;
        self.last_mark = None;
        self.write_mark(MarkKind::Open);
        Ok(sealed)
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
    /// number. (The server appends whole batches, [`Wal::append_batch`]; this is one of one.)
    pub fn append(&mut self, op: Op, key: &[u8], value: &[u8]) -> Result<u64, Error> {
        check_lengths(key, value)?;
        let seq = self.next_seq;
        let mut record = Vec::with_capacity(RECORD_HEADER_LEN + key.len() + value.len());
        record::encode_unsealed(&mut record, seq, op, key, value);
        self.append_batch(&mut record, seq, seq)?;
        Ok(seq)
    }

    /// Appends the records `first ..= last`, encoded by [`record::encode_unsealed`] (this seals
    /// them with this segment's seed), and pushes them out of the `BufWriter` into the file in
    /// one write, so that the OS has them (they survive the process being killed) before this
    /// returns.
    ///
    /// If the write fails (a full disk, say), the file is cut back to the last complete record
    /// before the batch, so that a later append lands cleanly and a restart needs no repair; the
    /// error is returned and none of the batch's changes may be applied. If even the cut fails,
    /// the log stops taking writes.
    pub fn append_batch(&mut self, records: &mut [u8], first: u64, last: u64) -> Result<(), Error> {
        if let Some(reason) = &self.failed {
            return Err(Error::Failed { reason: reason.clone() });
        }
        if first != self.next_seq || last < first {
            return Err(Error::Failed {
                reason: format!(
                    "records {first}..={last} cannot follow seq {} (a bug in the caller)",
                    self.last_seq()
                ),
            });
        }
        if last == u64::MAX {
            return Err(Error::Failed { reason: "the log has used every sequence number".into() });
        }
        let len = records.len() as u64;
        let count = record::seal(records, self.seed);
        self.reserve_space(len);
        if let Err(e) = self.write_records(records) {
            return Err(self.undo_append(e));
        }
        self.len += len;
        self.data_len = self.len;
        self.next_seq = last + 1;
        self.unsynced_records += count;
        crate::metrics::METRICS.appended(count, len);
        Ok(())
    }

    /// After a failed write: cut the file back to the last complete record; the error to return.
    fn undo_append(&mut self, e: io::Error) -> Error {
        let error = Error::io(format!("append to {}", self.path.display()), e);
        if let Err(cut) = self.cut_back() {
            self.fail(format!("a write failed ({error}) and cutting it back failed ({cut})"));
        }
        error
    }

    fn write_records(&mut self, records: &[u8]) -> io::Result<()> {
        let _running = crate::metrics::METRICS.disk_call(DiskCall::Write);
        let began = Instant::now();
        let written = self.write_records_now(records);
        let took = began.elapsed();
        if took >= SLOW_DISK_CALL {
            crate::log!("the slow write to the log ended after {:.1} s", took.as_secs_f64());
        }
        written
    }

    fn write_records_now(&mut self, records: &[u8]) -> io::Result<()> {
        failpoint::slow_write();
        if let Some(e) = failpoint::check("write") {
            return Err(e);
        }
        if let Some(e) = failpoint::check("short_write") {
            // Half of the batch reaches the file, then the disk refuses the rest.
            self.writer.write_all(&records[..records.len() / 2])?;
            self.writer.flush()?;
            return Err(e);
        }
        self.writer.write_all(records)?;
        self.writer.flush()
    }

    /// Appends a GAP record: sequence numbers up to `last` are skipped on purpose.
    fn append_gap(&mut self, last: u64) -> Result<(), Error> {
        let mut bytes = Vec::new();
        record::encode_gap(&mut bytes, self.seed, self.next_seq, last);
        self.reserve_space(bytes.len() as u64);
        if let Err(e) = self.writer.write_all(&bytes).and_then(|_| self.writer.flush()) {
            return Err(self.undo_append(e));
        }
        self.len += bytes.len() as u64;
        self.data_len = self.len;
        self.next_seq = last + 1;
        Ok(())
    }

    /// Appends a SYNC marker saying that everything before it is on stable storage, if that is
    /// true now (nothing appended since the last fsync). A marker that cannot be written is
    /// simply not there: recovery then knows a little less.
    fn write_mark(&mut self, kind: MarkKind) {
        if self.failed.is_some() || self.synced_len != self.len {
            return;
        }
        let mark =
            Mark { offset: self.len, boot: self.options.boot, kind, mode: Some(self.options.mode) };
        let mut bytes = Vec::with_capacity(MARK_LEN);
        record::encode_mark(&mut bytes, self.seed, self.last_seq(), &mark);
        self.reserve_space(MARK_LEN as u64);
        match self.writer.write_all(&bytes).and_then(|_| self.writer.flush()) {
            Ok(()) => {
                self.len += MARK_LEN as u64;
                self.last_mark = Some(Instant::now());
            }
            Err(e) => {
                let _ = self.undo_append(e);
            }
        }
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

    /// Cuts the file back to its last record, giving up the reserved zeros after it (for a
    /// sealed segment or a log at rest). The next fsync commits the new length. A failure only
    /// leaves zeros after the last record, which recovery reads as reserved space (rule 0).
    fn release_reserved(&mut self) {
        if self.reserved <= self.len {
            return;
        }
        let released = self.writer.flush().and_then(|_| self.writer.get_ref().set_len(self.len));
        if let Err(e) = released {
            crate::log!("could not release the space reserved after the log: {e}");
        }
        self.reserved = self.len;
        self.length_changed = true;
    }
}

/// The trim that a tail calls for, before any side file is written.
fn trim_info(scan: &Scan) -> Option<Trim> {
    scan.tail.is_trimmed().then(|| Trim {
        offset: scan.end,
        bytes: scan.data_end.saturating_sub(scan.end),
        explanation: scan.explain(),
        side_file: None,
        skipped: None,
    })
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
