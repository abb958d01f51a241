//! When to compact, and the compaction thread: the policy around [`crate::wal::compact`].
//!
//! The main thread owns a [`Compactor`] and calls it between batches: [`Compactor::start`]
//! begins one (on `POST /compact`, or by itself when [`Compactor::due`] says so) by asking the
//! log's writer to seal the segment being written; [`Compactor::sealed`] hears that it did and
//! starts the compaction thread; [`Compactor::poll`] collects a finished compaction. At most
//! one runs at a time; the rest of the server does not wait for it, and the main thread never
//! touches the data directory for it (the thread measures the directory after its work).
//!
//! Automatic compaction starts when the files of the log hold more than `ratio` times the live
//! data and at least `min_size` bytes (Redis's `auto-aof-rewrite-percentage` and `-min-size`, as
//! a ratio). After a failure, automatic compaction waits 1 minute, then 2, 4, … up to an hour
//! between attempts (Redis's `aofRewriteLimited` does the same), so a full disk is never
//! hammered; a `POST /compact` tries at once whatever the wait.

use crate::error::Error;
use crate::store::Store;
use crate::wal::compact::{self, Done};
use crate::wal::layout::disk_bytes;
use std::path::PathBuf;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The first wait after a failed automatic compaction; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// When automatic compaction runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Compact when the log's files hold more than this many times the live data; 0: never.
    pub ratio: f64,
    /// ... and at least this many bytes.
    pub min_size: u64,
    /// `--changes-retain`: bytes of compacted segments kept as history for the change feed.
    pub retain: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy { ratio: 2.0, min_size: 64 << 20, retain: 0 }
    }
}

/// What a finished compaction reports.
#[derive(Debug, Clone)]
pub struct Report {
    pub live_bytes: u64,
    pub disk_bytes_before: u64,
    pub disk_bytes_after: u64,
    pub seconds: f64,
}

struct Running {
    /// The compaction, and the data directory's bytes after it.
    thread: JoinHandle<Result<(Done, u64), Error>>,
    disk_before: u64,
}

/// What `/status` says about compaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub compacting: bool,
    /// Completed since start.
    pub completed: u64,
    /// The last failure's message; cleared by a success.
    pub last_error: Option<String>,
}

/// The compaction thread and what is known about past compactions.
pub struct Compactor {
    policy: Policy,
    dir: PathBuf,
    /// The writer was asked to seal the segment; the data directory's bytes then.
    sealing: Option<u64>,
    /// Of the data directory's bytes when the compaction started, those reserved ahead of the
    /// log (zeros, not data): the log line tells used and reserved bytes apart.
    reserved_before: u64,
    running: Option<Running>,
    stats: Stats,
    failures: u32,
    retry_at: Option<Instant>,
}

/// What [`Compactor::start`] did.
#[derive(Debug)]
pub enum Started {
    /// A compaction is under way (it was, or it is now); its outcome comes from
    /// [`Compactor::sealed`] or [`Compactor::poll`].
    Running,
}

impl Compactor {
    pub fn new(policy: Policy, dir: PathBuf) -> Compactor {
        let stats = Stats::default();
        Compactor {
            policy,
            dir,
            sealing: None,
            reserved_before: 0,
            running: None,
            stats,
            failures: 0,
            retry_at: None,
        }
    }

    /// What `/status` shows.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// True when automatic compaction should start now.
    pub fn due(&self, store: &Store) -> bool {
        if self.busy() || self.policy.ratio <= 0.0 || store.log_failed() {
            return false;
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        let log = store.log_bytes();
        log >= self.policy.min_size && log as f64 > self.policy.ratio * store.live_bytes() as f64
    }

    fn busy(&self) -> bool {
        self.sealing.is_some() || self.running.is_some()
    }

    /// Starts a compaction, unless one is under way: asks the writer to seal the segment being
    /// written ([`Store::begin_compaction`]); the rest follows in [`Compactor::sealed`].
    pub fn start(&mut self, store: &mut Store) -> Result<Started, Error> {
        if self.busy() {
            return Ok(Started::Running);
        }
        if store.log_failed() {
            let e = Error::Failed { reason: "the log has stopped taking writes".into() };
            self.failed(&e);
            return Err(e);
        }
        let disk_before = store.disk_bytes();
        if store.begin_compaction(crate::wal::boot_id()) {
            self.sealing = Some(disk_before);
            self.reserved_before = store.reserved_bytes();
            self.stats.compacting = true;
        }
        Ok(Started::Running)
    }

    /// The writer sealed the segment (or could not): starts the compaction thread on what to
    /// merge. Returns the outcome if it ends here: nothing to merge (the log is as compact as
    /// it gets), or a failure.
    pub fn sealed(
        &mut self,
        store: &Store,
        sealed: Result<Option<compact::Job>, Error>,
    ) -> Option<Result<Report, Error>> {
        let disk_before = self.sealing.take()?;
        let started = sealed.and_then(|job| match job {
            Some(job) => self.spawn(job, disk_before).map(|()| true),
            None => Ok(false),
        });
        match started {
            Ok(true) => None,
            Ok(false) => {
                self.stats.compacting = false;
                Some(Ok(Report {
                    live_bytes: store.live_bytes(),
                    disk_bytes_before: disk_before,
                    disk_bytes_after: disk_before,
                    seconds: 0.0,
                }))
            }
            Err(e) => {
                self.stats.compacting = false;
                self.failed(&e);
                Some(Err(e))
            }
        }
    }

    fn spawn(&mut self, mut job: compact::Job, disk_before: u64) -> Result<(), Error> {
        job.retain = self.policy.retain;
        crate::log!(
            "compacting: merging {} segment(s){} through seq {}",
            job.sealed.len(),
            job.base
                .as_ref()
                .map(|b| format!(" into the snapshot at seq {}", b.upto))
                .unwrap_or_default(),
            job.upto
        );
        let dir = self.dir.clone();
        let thread = thread::Builder::new()
            .name("compaction".into())
            .spawn(move || compact::run(&job).map(|done| (done, disk_bytes(&dir))))
            .map_err(|e| Error::io("start the compaction thread", e))?;
        self.running = Some(Running { thread, disk_before });
        Ok(())
    }

    /// Collects the running compaction if it has finished: takes its snapshot into the store
    /// and returns its outcome. `None` while it runs (or if none does).
    pub fn poll(&mut self, store: &mut Store) -> Option<Result<Report, Error>> {
        if !self.running.as_ref()?.thread.is_finished() {
            return None;
        }
        let Running { thread, disk_before } = self.running.take()?;
        self.stats.compacting = false;
        let outcome = thread.join().unwrap_or_else(|_| {
            Err(Error::Failed { reason: "the compaction thread panicked".to_string() })
        });
        Some(match outcome {
            Ok((done, disk_after)) => {
                store.finish_compaction(&done);
                self.stats.completed += 1;
                crate::metrics::METRICS.compacted(done.took);
                self.stats.last_error = None;
                self.failures = 0;
                self.retry_at = None;
                if let Some(e) = &done.cleanup_error {
                    crate::log!(
                        "compaction: removing the replaced files failed ({e}); the next start removes them"
                    );
                }
                let report = Report {
                    live_bytes: done.contents.live_bytes,
                    disk_bytes_before: disk_before,
                    disk_bytes_after: disk_after,
                    // The compaction's own time: the main loop notices the end up to a tick
                    // (100 ms) later, which is not the compaction's cost.
                    seconds: done.took.as_secs_f64(),
                };
                let reserved_after = store.reserved_bytes();
                crate::log!(
                    "compacted through seq {} in {:.2} s: {} keys, {} live bytes; the data \
                     directory went from {} to {} bytes in use, plus {} and then {} bytes \
                     reserved ahead of the log",
                    done.snapshot.upto,
                    report.seconds,
                    done.contents.keys,
                    report.live_bytes,
                    report.disk_bytes_before.saturating_sub(self.reserved_before),
                    report.disk_bytes_after.saturating_sub(reserved_after),
                    self.reserved_before,
                    reserved_after
                );
                Ok(report)
            }
            Err(e) => {
                self.failed(&e);
                Err(e)
            }
        })
    }

    /// Records a failure and sets the wait before the next automatic attempt.
    fn failed(&mut self, e: &Error) {
        let wait = FIRST_BACKOFF.saturating_mul(1 << self.failures.min(6)).min(MAX_BACKOFF);
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(Instant::now() + wait);
        self.stats.last_error = Some(e.to_string());
        crate::log!(
            "compaction failed: {e}. The old files still hold every write; automatic compaction \
             tries again in {} s",
            wait.as_secs()
        );
    }
}
