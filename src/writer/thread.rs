//! The writer thread: the only thread that appends to the log while the server runs.
//!
//! It takes every command queued since it last looked, joins the batches of records that follow
//! each other into one run, and appends the run with one `write(2)` ([`Wal::append_batch`]). In
//! `always` mode it then fsyncs, holding the log, before it looks for more: the batches that
//! queued during the fsync make the next run, so that they share one fsync (group commit). In
//! the other modes it tells the main thread the run is written, and pokes the sync thread if an
//! answer waits for an fsync.
//!
//! In `always` mode the batches bring the answers to their writes ([`super::Answer`]), and the
//! writer sends them itself once the fsync is done, right after it has told the main thread
//! (whose news then comes, in the intake's queue, before any request the clients send on
//! seeing their answers). So the answer does not wait for the main thread to wake up: on this
//! project's machine that wake-up was most of what a write paid for having a writer thread.

use super::syncer::Poke;
use super::{Answer, Command, News, Shared, lock};
use crate::error::Error;
use crate::spin::{self, Spin};
use crate::wal::SyncMode;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;

/// The most bytes of records joined into one write.
const MAX_RUN: usize = 8 << 20;

/// Records that follow each other, to be appended with one write.
struct Run {
    records: Vec<u8>,
    first: u64,
    last: u64,
    /// An answer waits for these records to be fsynced.
    sync: bool,
    /// The answers to their writes, to give once they are durable.
    answers: Vec<Answer>,
}

pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) mode: SyncMode,
    /// The sync thread (not in `always` mode): how to poke it, and its handle.
    pub(super) syncer: Option<(Sender<Poke>, JoinHandle<()>)>,
    /// The seq the next batch must start at. After a failed write it stays at the first seq
    /// that did not reach the log, and batches given before the main thread heard of the
    /// failure (they start later) are dropped.
    pub(super) next: u64,
    /// The most records one run holds (`--max-batch` in `always` mode: one fsync each).
    pub(super) max_run: u64,
    /// How it waits for the next command: polling a moment before it sleeps ([`crate::spin`]).
    pub(super) spin: Spin,
    /// The last write failure, for the answers of the batches dropped after it.
    pub(super) failure: Option<Error>,
}

impl Writer {
    pub(super) fn run(mut self, commands: &Receiver<Command>) {
        let mut queue = VecDeque::new();
        loop {
            if queue.is_empty() {
                match self.next_command(commands) {
                    Some(command) => queue.push_back(command),
                    None => return self.stop_syncer(), // the store is gone
                }
            }
            queue.extend(commands.try_iter());
            match queue.pop_front() {
                Some(Command::Append { records, first, last, sync, answers }) => {
                    let head = Run { records, first, last, sync, answers };
                    if let Some(run) = self.gather(head, &mut queue) {
                        self.append(run);
                    }
                }
                Some(Command::Sync) => self.sync(),
                Some(Command::Rotate { upto }) => self.rotate(upto),
                Some(Command::Stop { close }) => return self.stop(close),
                None => {}
            }
        }
    }

    /// Waits for the next command, polling for a moment first; `None` once the store is gone.
    fn next_command(&mut self, commands: &Receiver<Command>) -> Option<Command> {
        let window = self.spin.window();
        if !window.is_zero() {
            let caught = spin::poll(window, || commands.try_recv().ok());
            self.spin.polled(caught.is_some());
            if caught.is_some() {
                return caught;
            }
        }
        commands.recv().ok()
    }

    /// Joins `head` and the batches queued right after it into one run, dropping those that do
    /// not start where the log is (given before a failure the main thread had not heard of).
    fn gather(&self, head: Run, queue: &mut VecDeque<Command>) -> Option<Run> {
        let mut run: Option<Run> = None;
        let mut next = Some(head);
        while let Some(batch) = next.take() {
            let expected = run.as_ref().map_or(self.next, |r| r.last + 1);
            if batch.first == expected {
                match &mut run {
                    None => run = Some(batch),
                    Some(r) => {
                        r.records.extend_from_slice(&batch.records);
                        r.last = batch.last;
                        r.sync |= batch.sync;
                        r.answers.extend(batch.answers);
                        self.shared.give_back(batch.records);
                    }
                }
            } else {
                // Given after a failure the main thread had not heard of: it counts these
                // writes as failed too.
                self.answer(batch.answers, self.failure.as_ref().map_or(Ok(()), Err));
                self.shared.give_back(batch.records);
            }
            if run
                .as_ref()
                .is_some_and(|r| r.records.len() >= MAX_RUN || r.last - r.first + 1 >= self.max_run)
            {
                break;
            }
            if let Some(Command::Append { .. }) = queue.front()
                && let Some(Command::Append { records, first, last, sync, answers }) =
                    queue.pop_front()
            {
                next = Some(Run { records, first, last, sync, answers });
            }
        }
        run
    }

    /// Appends `run` (and, in `always` mode, fsyncs it), and tells the main thread.
    fn append(&mut self, mut run: Run) {
        let Some(mut wal) = lock(&self.shared) else { return };
        let appended = wal.append_batch(&mut run.records, run.first, run.last);
        self.shared.status.update(&wal);
        self.shared.give_back(run.records);
        if let Err(error) = appended {
            drop(wal);
            let copy = copy_of(&error);
            self.shared.tell(News::WriteFailed { from: run.first, error });
            self.answer(run.answers, Err(&copy));
            self.failure = Some(copy);
            return;
        }
        self.next = run.last + 1;
        self.failure = None;
        if self.mode == SyncMode::Always {
            let synced = wal.sync();
            self.shared.status.update(&wal);
            drop(wal);
            // A failed fsync stops the log: its writes' answers are 503 (restart the server).
            let outcome = synced
                .as_ref()
                .map(|_| ())
                .map_err(|e| Error::Failed { reason: format!("{e}; the server is stopping") });
            self.tell_synced(synced);
            return self.answer(run.answers, outcome.as_ref().map(|_| ()));
        }
        drop(wal);
        self.shared.tell(News::Written(run.last));
        self.answer(run.answers, Ok(()));
        if run.sync {
            self.poke();
        }
    }

    /// `POST /sync` with nothing new to write: fsync what is written (here in `always` mode,
    /// else on the sync thread).
    fn sync(&mut self) {
        if self.mode != SyncMode::Always {
            return self.poke();
        }
        let Some(mut wal) = lock(&self.shared) else { return };
        let synced = wal.sync();
        drop(wal);
        self.tell_synced(synced);
    }

    fn tell_synced(&self, synced: Result<u64, Error>) {
        match synced {
            Ok(seq) => self.shared.tell(News::Synced(seq)),
            Err(e) => {
                crate::log!("fsync failed: {e}; writes are refused from now on");
                self.shared.tell(News::Failed(e.to_string()));
            }
        }
    }

    /// Seals the segment if it holds everything through `upto` (else an earlier write failed,
    /// and the compaction that asked is refused); see [`crate::wal::Wal::rotate`].
    fn rotate(&mut self, upto: u64) {
        let Some(mut wal) = lock(&self.shared) else { return };
        let rotated = if wal.last_seq() != upto {
            Err(Error::Failed {
                reason: format!(
                    "the log holds writes through seq {}, not {upto}: a write failed; try again",
                    wal.last_seq()
                ),
            })
        } else if wal.holds_no_writes() {
            Ok(None)
        } else {
            crate::wal::dir::seal(&mut wal).map(Some)
        };
        self.shared.status.update(&wal);
        let synced = wal.synced_seq();
        drop(wal);
        if let Ok(Some(_)) = rotated {
            self.shared.tell(News::Synced(synced)); // sealing fsynced the segment
        }
        self.shared.tell(News::Rotated(rotated));
    }

    /// Stops the sync thread, ends the log (cleanly with `close`), and says so.
    fn stop(mut self, close: bool) {
        self.stop_syncer();
        let stopped = match lock(&self.shared) {
            Some(mut wal) if close => wal.close(),
            Some(wal) => Ok(wal.synced_seq()),
            None => Err(Error::Failed { reason: "a thread panicked while using the log".into() }),
        };
        self.shared.tell(News::Stopped(stopped));
    }

    /// Gives `answers` (after the main thread was told what happened to their writes).
    fn answer(&self, answers: Vec<Answer>, outcome: Result<(), &Error>) {
        for answer in answers {
            answer(outcome);
        }
    }

    fn poke(&self) {
        if let Some((poke, _)) = &self.syncer {
            let _ = poke.send(Poke::Now);
        }
    }

    /// Tells the sync thread to stop and waits for it (it may be in the middle of an fsync).
    fn stop_syncer(&mut self) {
        if let Some((poke, handle)) = self.syncer.take() {
            let _ = poke.send(Poke::Stop);
            if handle.join().is_err() {
                crate::log!("the sync thread panicked");
            }
        }
    }
}

/// A copy of a write's error, for the answers of several writes (an [`Error`] holds an
/// `io::Error`, which cannot be cloned: its kind, code and message are).
fn copy_of(error: &Error) -> Error {
    match error {
        Error::Io { action, source } => Error::Io {
            action: action.clone(),
            source: match source.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(source.kind(), source.to_string()),
            },
        },
        Error::Failed { reason } => Error::Failed { reason: reason.clone() },
        other => Error::Failed { reason: other.to_string() },
    }
}
