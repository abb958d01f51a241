//! Startup: rebuilding the map from the log's files, on two threads.
//!
//! The replay thread opens the data directory ([`wal::dir::open`], where every recovery rule
//! is applied), checks each record and copies it into an [`Entry`]; the main thread puts the
//! entries into the map, and between batches answers whatever requests have arrived (the
//! server's `while_replaying`), so that a probe can tell "starting" from "dead".

use super::keys::{Keys, apply};
use super::pending::Change;
use crate::error::Error;
use crate::wal::dir::Opened;
use crate::wal::layout::Layout;
use crate::wal::{self, Options, Recovery, Wal};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Replays the log in `dir` into a new map, calling `between` on this thread between batches
/// (every [`Replay::BATCH`] records, and at least every 50 ms). Returns the map, its live bytes,
/// and the open log.
pub(super) fn replay(
    dir: &Path,
    options: Options,
    mut between: impl FnMut(),
) -> Result<(Keys, OpenedLog), Error> {
    let mut replay = Replay::new();
    let (changes, batches) = mpsc::sync_channel::<Vec<Change>>(Replay::IN_FLIGHT);
    let opened = thread::scope(|scope| {
        let reader = thread::Builder::new()
            .name("replay".into())
            .spawn_scoped(scope, move || read_log(dir, options, changes))
            .map_err(|e| Error::io("start the replay thread", e))?;
        loop {
            match batches.recv_timeout(Duration::from_millis(50)) {
                Ok(batch) => replay.apply(batch),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            between();
        }
        reader.join().unwrap_or_else(|_| {
            Err(Error::Failed { reason: "the replay thread panicked".to_string() })
        })
    })?;
    Ok((replay.finish(), opened))
}

/// What the replay thread opened: the log, the files before its newest segment, and what
/// recovery and the opening did.
pub(super) type OpenedLog = (Wal, Layout, Recovery, Opened);

/// The replay thread: opens the log in `dir` (every recovery rule is [`wal::dir::open`]'s),
/// checking each record and copying it into its `Entry`, and sends the changes in log order,
/// [`Replay::BATCH`] at a time.
pub(super) fn read_log(
    dir: &Path,
    options: Options,
    changes: mpsc::SyncSender<Vec<Change>>,
) -> Result<OpenedLog, Error> {
    if let Some(delay) = crate::failpoint::replay_delay() {
        thread::sleep(delay);
    }
    let mut batch = Vec::with_capacity(Replay::BATCH);
    let mut progress = Progress::new(wal::layout::log_bytes(dir), Instant::now());
    let opened = wal::dir::open(dir, options, |record| {
        let Some(change) = Change::of_record(record.seq, &record.body) else { return };
        progress.note(wal::view::record_len(record));
        batch.push(change);
        if progress.records.is_multiple_of(Progress::EVERY)
            && let Some(line) = progress.report(Instant::now())
        {
            crate::log!("{line}");
            // A replay that keeps moving is not a start that hangs (see crate::notify).
            crate::notify::send(&format!("STATUS={line}\nEXTEND_TIMEOUT_USEC=5000000"));
        }
        if batch.len() == Replay::BATCH {
            // The receiver only goes away if the main thread panicked: nothing left to do.
            let _ = changes.send(std::mem::replace(&mut batch, Vec::with_capacity(Replay::BATCH)));
        }
    });
    if !batch.is_empty() {
        let _ = changes.send(batch);
    }
    opened
}

/// How far a replay has come, for a line on stderr about once a second when it takes longer
/// than that (the summary comes after, from the server).
struct Progress {
    records: u64,
    bytes: u64,
    /// The bytes of the log's files.
    total: u64,
    started: Instant,
    next: Instant,
}

impl Progress {
    /// The clock is looked at once per this many records.
    const EVERY: u64 = 4096;

    fn new(total: u64, now: Instant) -> Progress {
        Progress { records: 0, bytes: 0, total, started: now, next: now + Duration::from_secs(1) }
    }

    fn note(&mut self, bytes: u64) {
        self.records += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// The progress line, if a second has passed since the last one (or the start).
    fn report(&mut self, now: Instant) -> Option<String> {
        if now < self.next {
            return None;
        }
        self.next = now + Duration::from_secs(1);
        let percent = (self.bytes as f64 * 100.0 / self.total.max(1) as f64).min(100.0);
        Some(format!(
            "replaying: {} records, {} of {} bytes of the log ({percent:.0}%) in {:.1} s",
            self.records,
            self.bytes,
            self.total,
            now.duration_since(self.started).as_secs_f64()
        ))
    }
}

/// The map being rebuilt from the log at startup, on the main thread while the replay thread
/// reads the log.
///
/// The work splits in two about evenly: reading, checking every record's CRC and copying it
/// into an `Entry` (the replay thread), and putting entries into the table (here). With a
/// million keys the table is larger than the CPU's caches, so every insert waits for memory;
/// a loop that does nothing but insert lets several of those waits overlap. So changes come in
/// batches, in log order. Measured on a snapshot of 1M keys (125 MiB), five starts each on 2
/// shared cores: one thread inserting record by record 0.60–0.73 s; one thread in batches of
/// 256 0.39–0.48 s (0.346 s median in a later run); two threads 0.268 s median (0.262–0.280),
/// in that later run, alternating with the one-thread build.
struct Replay {
    keys: Keys,
}

impl Replay {
    const BATCH: usize = 256;
    /// Batches read ahead of the table, at most.
    const IN_FLIGHT: usize = 64;

    fn new() -> Replay {
        Replay { keys: Keys::default() }
    }

    fn apply(&mut self, batch: Vec<Change>) {
        let Keys { map, tally, expiring } = &mut self.keys;
        for change in batch {
            apply(map, tally, expiring, change, &mut |_, _| {});
        }
    }

    /// The map, its live bytes and its expiring keys.
    fn finish(self) -> Keys {
        self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A progress line comes once a second at most, none in the first second, and says how
    /// many records and what share of the log's bytes.
    #[test]
    fn replay_progress_is_reported_about_once_a_second() {
        let start = Instant::now();
        let mut p = Progress::new(1000, start);
        p.note(250);
        assert_eq!(p.report(start + Duration::from_millis(999)), None, "not in the first second");
        let line = p.report(start + Duration::from_millis(1200)).unwrap();
        assert_eq!(line, "replaying: 1 records, 250 of 1000 bytes of the log (25%) in 1.2 s");
        assert_eq!(p.report(start + Duration::from_millis(2100)), None, "not twice a second");
        p.note(2000);
        let line = p.report(start + Duration::from_millis(2300)).unwrap();
        assert!(line.contains("2 records, 2250 of 1000 bytes of the log (100%)"), "{line}");
    }
}
