//! Syncing the open log: the fsync a thread does while it holds the log (the writer in
//! `always` mode, a seal, a clean stop), the one the sync thread does without it (note what to
//! sync, fsync a second handle, record what is durable), and the SYNC markers that follow.

use super::{SLOW_DISK_CALL, Wal};
use crate::error::Error;
use crate::failpoint;
use crate::metrics::DiskCall;
use crate::wal::record::MarkKind;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A SYNC marker needs everything before it on disk. When the sync thread's fsync ran while the
/// writer appended, a second fsync under the mutex catches up, so that a marker can follow it:
/// only if the last marker is older than this ...
const CATCH_UP_EVERY: Duration = Duration::from_secs(1);
/// ... and the fsync just done took less than this (on a slow disk the writer does not wait
/// for a second one; the marker comes after a later, quiet fsync).
const CATCH_UP_IF_UNDER: Duration = Duration::from_millis(20);
/// A SYNC marker follows an fsync only if the previous one is at least this old, so that in
/// `--sync always` with one client (one fsync per write) markers do not grow the log by a third.
/// Cost: recovery may know durability up to this much less of the log than was really synced.
const MARK_EVERY: Duration = Duration::from_millis(100);

impl Wal {
    /// For a clean stop: releases the reserved space (so that a log at rest ends with its last
    /// record), fsyncs everything, appends a closing SYNC marker and fsyncs that too, so that the
    /// next recovery knows the whole log was on disk. Returns the last synced seq.
    pub fn close(&mut self) -> Result<u64, Error> {
        if let Some(reason) = &self.failed {
            return Err(Error::Failed { reason: reason.clone() });
        }
        self.release_reserved();
        self.fsync(true)?;
        self.reserve_again_at = u64::MAX; // the log at rest ends with its last record
        self.write_mark(MarkKind::Close);
        self.fsync(true)
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
        if self.synced_len >= self.data_len && !self.length_changed {
            return Ok(self.synced_seq);
        }
        let seq = self.fsync(true)?;
        if self.last_mark.is_none_or(|at| at.elapsed() >= MARK_EVERY) {
            self.write_mark(MarkKind::Sync);
        }
        Ok(seq)
    }

    /// One flush and fsync, whatever is pending, under the caller's hold of the log.
    /// `injectable`: the `fsync` failpoint counts it (the one at open does not, so that tests
    /// can fail the N-th sync while serving).
    pub(super) fn fsync(&mut self, injectable: bool) -> Result<u64, Error> {
        if let Some(reason) = &self.failed {
            return Err(Error::Failed { reason: reason.clone() });
        }
        if let Err(e) = self.writer.flush() {
            return Err(self.fsync_failed(e));
        }
        let point = self.take_sync_point();
        let began = Instant::now();
        let result = if injectable { fsync_file(&point) } else { plain_fsync(&point) };
        self.synced_point(point, result, began.elapsed())
    }

    /// For the sync thread: what an fsync started now would make durable, or `None` if
    /// everything is synced already. The caller fsyncs it without holding the log
    /// ([`fsync_file`]) and then reports with [`Wal::synced`].
    pub fn sync_point(&mut self) -> Result<Option<SyncPoint>, Error> {
        if let Some(reason) = &self.failed {
            return Err(Error::Failed { reason: reason.clone() });
        }
        if self.synced_len >= self.data_len && !self.length_changed {
            return Ok(None);
        }
        if let Err(e) = self.writer.flush() {
            return Err(self.fsync_failed(e));
        }
        Ok(Some(self.take_sync_point()))
    }

    fn take_sync_point(&mut self) -> SyncPoint {
        SyncPoint {
            file: Arc::clone(&self.sync_file),
            path: self.path.clone(),
            len: self.len,
            seq: self.last_seq(),
            generation: self.generation,
            // A shorter file needs its new length on disk too: fsync, not fdatasync.
            full: std::mem::take(&mut self.length_changed),
            records: std::mem::take(&mut self.unsynced_records),
        }
    }

    /// The sync thread's fsync of `point` returned `result` after `took`: records what is now
    /// on stable storage (a failure stops the log, see [`Wal::sync`]), writes a SYNC marker if
    /// one is due and true, and returns the last synced seq.
    ///
    /// The writer may have appended while the fsync ran, and a marker may only follow bytes
    /// that are all on disk: if the last marker is old and the fsync was quick, a second fsync
    /// catches up here, under the mutex, so that one can be written.
    pub fn synced(
        &mut self,
        point: SyncPoint,
        result: io::Result<()>,
        took: Duration,
    ) -> Result<u64, Error> {
        let seq = self.synced_point(point, result, took)?;
        if self.len == self.synced_len {
            if self.last_mark.is_none_or(|at| at.elapsed() >= MARK_EVERY) {
                self.write_mark(MarkKind::Sync);
            }
        } else if took < CATCH_UP_IF_UNDER
            && self.last_mark.is_none_or(|at| at.elapsed() >= CATCH_UP_EVERY)
        {
            return self.sync();
        }
        Ok(seq)
    }

    /// After an fsync of `point`: what it made durable, or fail-stop if it failed.
    fn synced_point(
        &mut self,
        point: SyncPoint,
        result: io::Result<()>,
        took: Duration,
    ) -> Result<u64, Error> {
        if let Some(reason) = &self.failed {
            return Err(Error::Failed { reason: reason.clone() });
        }
        if let Err(e) = result {
            let error = Error::io(format!("fsync {}", point.path.display()), e);
            self.fail(format!("{error}; acknowledged writes may not be on disk"));
            return Err(error);
        }
        crate::metrics::METRICS.fsynced(took, point.records);
        if took >= SLOW_DISK_CALL {
            crate::log!("the slow fsync ended after {:.1} s", took.as_secs_f64());
        }
        if point.generation == self.generation && point.len > self.synced_len {
            self.synced_len = point.len;
            self.synced_seq = point.seq;
            failpoint::record_sync(self.synced_len, self.synced_seq);
            failpoint::trace_fsync(&self.path, self.synced_len);
        }
        Ok(self.synced_seq)
    }

    /// A flush before an fsync failed: the log stops, as for a failed fsync.
    fn fsync_failed(&mut self, e: io::Error) -> Error {
        let error = Error::io(format!("fsync {}", self.path.display()), e);
        self.fail(format!("{error}; acknowledged writes may not be on disk"));
        error
    }
}

/// What one fsync covers: the log's file (a second handle on it), and how far it was written
/// when the fsync began.
pub struct SyncPoint {
    file: Arc<File>,
    path: PathBuf,
    len: u64,
    seq: u64,
    generation: u64,
    full: bool,
    records: u64,
}

/// Fsyncs the file of `point` (`fdatasync`, or `fsync` when its length shrank), through the
/// failpoints a test may set (`WALKV_FSYNC_DELAY_MS`, `fsync=N:...`), and shows it as running
/// in `/status` and `/metrics` meanwhile. Needs no hold on the log.
pub fn fsync_file(point: &SyncPoint) -> io::Result<()> {
    let _running = crate::metrics::METRICS.disk_call(DiskCall::Fsync);
    failpoint::slow_fsync();
    if let Some(injected) = failpoint::check("fsync") {
        return Err(injected);
    }
    if point.full { point.file.sync_all() } else { point.file.sync_data() }
}

/// [`fsync_file`] without the failpoints (the fsync at open).
fn plain_fsync(point: &SyncPoint) -> io::Result<()> {
    if point.full { point.file.sync_all() } else { point.file.sync_data() }
}
