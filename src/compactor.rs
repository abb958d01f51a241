//! When to compact, and the compaction thread: the policy around [`crate::wal::compact`].
//!
//! The main thread owns a [`Compactor`] and calls it between batches: [`Compactor::poll`]
//! collects a finished compaction, [`Compactor::start`] begins one (on `POST /compact`, or by
//! itself when [`Compactor::due`] says so). At most one runs at a time; the rest of the server
//! does not wait for it.
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
}

impl Default for Policy {
    fn default() -> Policy {
        Policy { ratio: 2.0, min_size: 64 << 20 }
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
    thread: JoinHandle<Result<Done, Error>>,
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
    running: Option<Running>,
    stats: Stats,
    failures: u32,
    retry_at: Option<Instant>,
}

/// What [`Compactor::start`] did.
#[derive(Debug)]
pub enum Started {
    /// A compaction is running (it was, or it is now).
    Running,
    /// There was nothing to merge: the log is as compact as it gets. The report says so.
    NothingToDo(Report),
}

impl Compactor {
    pub fn new(policy: Policy, dir: PathBuf) -> Compactor {
        let stats = Stats::default();
        Compactor { policy, dir, running: None, stats, failures: 0, retry_at: None }
    }

    /// What `/status` shows.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// True when automatic compaction should start now.
    pub fn due(&self, store: &Store) -> bool {
        if self.running.is_some() || self.policy.ratio <= 0.0 || store.log_failed() {
            return false;
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        let Ok(log) = store.log_bytes() else { return false };
        log >= self.policy.min_size && log as f64 > self.policy.ratio * store.live_bytes() as f64
    }

    /// Starts a compaction, unless one is running. An error means it could not start (sealing
    /// the segment being written failed); it counts as a failed compaction.
    pub fn start(&mut self, store: &mut Store) -> Result<Started, Error> {
        if self.running.is_some() {
            return Ok(Started::Running);
        }
        let disk_before = disk_bytes(&self.dir);
        let job = match store.begin_compaction(crate::wal::boot_id()) {
            Ok(Some(job)) => job,
            Ok(None) => {
                let report = Report {
                    live_bytes: store.live_bytes(),
                    disk_bytes_before: disk_before,
                    disk_bytes_after: disk_before,
                    seconds: 0.0,
                };
                return Ok(Started::NothingToDo(report));
            }
            Err(e) => {
                self.failed(&e);
                return Err(e);
            }
        };
        crate::log!(
            "compacting: merging {} segment(s){} through seq {}",
            job.sealed.len(),
            job.base
                .as_ref()
                .map(|b| format!(" into the snapshot at seq {}", b.upto))
                .unwrap_or_default(),
            job.upto
        );
        let thread = thread::Builder::new()
            .name("compaction".into())
            .spawn(move || compact::run(&job))
            .map_err(|e| Error::io("start the compaction thread", e))?;
        self.running = Some(Running { thread, disk_before });
        self.stats.compacting = true;
        Ok(Started::Running)
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
            Ok(done) => {
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
                    disk_bytes_after: disk_bytes(&self.dir),
                    // The compaction's own time: the main loop notices the end up to a tick
                    // (100 ms) later, which is not the compaction's cost.
                    seconds: done.took.as_secs_f64(),
                };
                crate::log!(
                    "compacted through seq {} in {:.2} s: {} keys, {} live bytes; the data directory went from {} to {} bytes",
                    done.snapshot.upto,
                    report.seconds,
                    done.contents.keys,
                    report.live_bytes,
                    report.disk_bytes_before,
                    report.disk_bytes_after
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
