//! The log's own threads while the server runs, so that the main thread never touches the disk.
//!
//! ```text
//!   main thread (crate::store)        writer thread (thread.rs)          sync thread (syncer.rs)
//!   --------------------------        -------------------------          -----------------------
//!   encode records (no checksum) -->  take every queued batch, seal      every --sync-interval,
//!   Command::Append / Sync /          them, one write(2); in always      or poked after a ?sync:
//!   Rotate / Stop                     mode fsync too                     note what is written,
//!                                <--  News::Written / Synced /  -->poke  fsync a second handle
//!   apply what the news allows        WriteFailed / Rotated              outside the mutex,
//!   to the map, answer                                             <--   News::Synced
//! ```
//!
//! The invariant: **the main thread makes no call on the data directory's files and takes no
//! lock that another thread holds across a disk call.** It hands [`Command`]s to the writer
//! thread over a channel and reads [`News`] from another; both threads wake it through the
//! intake's queue (the [`Waker`]), so that it sleeps in one place. A slow or frozen disk then
//! holds up the writer or the sync thread, and through them only the writes that must wait for
//! them; the main thread goes on answering reads, probes and metrics from memory.
//!
//! The log itself, a [`Wal`], sits behind a mutex that only these two threads take: the writer
//! for each batch it appends, the sync thread for a moment before and after each fsync, which it
//! runs outside the mutex on a second handle of the file ([`crate::wal::log`]). So in
//! `interval` and `never` modes an fsync that takes seconds does not stop appends (unless the
//! kernel makes `write(2)` wait for it, which some file systems do); in `always` mode the writer
//! fsyncs each batch itself before it writes the next one, and the batches queued meanwhile
//! share the next fsync (group commit).
//!
//! Sequence numbers are given by the main thread, which encodes each record without its
//! checksum; the writer seals the records with the seed of the segment they land in
//! ([`crate::wal::record::seal`]). If a write fails, the writer cuts the file back to the last
//! record before the failed batch, reports [`News::WriteFailed`] with the first seq that is
//! not in the log, and drops every queued batch that does not start at that seq: the main
//! thread gives those numbers again to the writes that come next.

mod syncer;
mod thread;

use crate::error::Error;
use crate::wal::layout::Sealed;
use crate::wal::{SyncMode, Wal};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Wakes the main thread (the server puts an event in the intake's queue).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// The names of the log's threads (panics in them stop the server, see `crate::server`).
pub const WRITER_THREAD: &str = "walkv-log";
pub const SYNC_THREAD: &str = "walkv-sync";

/// An answer the writer gives itself, once its write is durable (`Ok`) or has failed: in
/// `always` mode the writer sends the answers to the writes it fsynced, so that the main thread
/// does not have to be woken first (see `thread.rs`).
pub type Answer = Box<dyn FnOnce(Result<(), &Error>) + Send>;

/// What the main thread asks of the writer, in order.
pub enum Command {
    /// Append records `first ..= last`, encoded by [`crate::wal::record::encode_unsealed`].
    /// `sync`: an answer waits for them to be fsynced (`?sync`, `POST /sync`). `answers`: to
    /// give once they are durable (`always` mode).
    Append { records: Vec<u8>, first: u64, last: u64, sync: bool, answers: Vec<Answer> },
    /// Fsync everything appended so far (`POST /sync` when the batch held no write).
    Sync,
    /// Seal the segment being written once it holds every record through `upto`, and start the
    /// next one (the first step of a compaction).
    Rotate { upto: u64 },
    /// Write what is queued, then stop; with `close`, end the log cleanly (release the reserved
    /// space, fsync, closing marker).
    Stop { close: bool },
}

/// What the writer and sync threads tell the main thread, in the order it happened.
#[derive(Debug)]
pub enum News {
    /// Every record through this seq is in the file (it survives the process being killed).
    Written(u64),
    /// Every record through this seq is on stable storage (it survives a power cut).
    Synced(u64),
    /// The records from this seq on are not in the log; the file was cut back before them.
    WriteFailed { from: u64, error: Error },
    /// The segment was sealed (`None`: it held no writes, so it was kept).
    Rotated(Result<Option<Sealed>, Error>),
    /// The log stopped taking writes (an fsync failed); the message says why.
    Failed(String),
    /// The writer stopped; with a clean close, the last synced seq.
    Stopped(Result<u64, Error>),
}

/// What the log's threads keep up to date for anyone to read without a lock.
#[derive(Debug, Default)]
pub struct Status {
    /// Bytes of records in the segment being written.
    segment_bytes: AtomicU64,
    /// That segment's file length, reserved space included.
    segment_file_bytes: AtomicU64,
}

impl Status {
    /// Bytes of records in the segment being written.
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes.load(Ordering::Relaxed)
    }

    /// The length of the segment's file, the space reserved ahead of the records included.
    pub fn segment_file_bytes(&self) -> u64 {
        self.segment_file_bytes.load(Ordering::Relaxed)
    }

    /// Zeros reserved after the segment's records (see `docs/log-format.md`, *Zeros*):
    /// counted in the file's length, holding no data.
    pub fn segment_reserved_bytes(&self) -> u64 {
        self.segment_file_bytes().saturating_sub(self.segment_bytes())
    }

    fn update(&self, wal: &Wal) {
        self.segment_bytes.store(wal.bytes(), Ordering::Relaxed);
        self.segment_file_bytes.store(wal.file_bytes(), Ordering::Relaxed);
    }
}

/// What both threads share: the log, where news goes, and how to wake the main thread.
struct Shared {
    wal: Mutex<Wal>,
    news: Mutex<Sender<News>>,
    waker: OnceLock<Waker>,
    status: Status,
    /// Emptied batch buffers, back for the main thread to fill again: a buffer a batch, made
    /// and freed, interleaved with the map's entries, cost 10 MiB of RSS at 1M keys loaded by
    /// pipelined PUTs (fragmentation).
    spare: Mutex<Vec<Vec<u8>>>,
}

/// Spare buffers kept at most, and the largest kept.
const SPARE_BUFFERS: usize = 8;
const SPARE_CAPACITY: usize = 1 << 20;

impl Shared {
    /// Keeps an emptied batch buffer for the next batch (unless enough are kept, or it is big).
    fn give_back(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() > SPARE_CAPACITY {
            return;
        }
        buffer.clear();
        if let Ok(mut spare) = self.spare.lock()
            && spare.len() < SPARE_BUFFERS
        {
            spare.push(buffer);
        }
    }
}

impl Shared {
    /// Sends `news` to the main thread and wakes it.
    fn tell(&self, news: News) {
        if let Ok(sender) = self.news.lock() {
            let _ = sender.send(news); // the main thread is gone: nobody to tell
        }
        if let Some(wake) = self.waker.get() {
            wake();
        }
    }
}

/// The main thread's handle on the log's threads.
pub struct Log {
    commands: Sender<Command>,
    news: Receiver<News>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Log {
    /// Starts the writer thread, and the sync thread in `interval` mode (every `interval`) and
    /// `never` mode (only when asked). In `always` mode the writer fsyncs each batch itself.
    /// `max_batch`: the most records one fsync covers in `always` mode; `spin`: how long the
    /// writer polls for its next batch before it sleeps ([`crate::spin`]).
    pub fn start(
        wal: Wal,
        mode: SyncMode,
        interval: Duration,
        max_batch: usize,
        spin: Duration,
    ) -> io::Result<Log> {
        let (commands, command_queue) = mpsc::channel();
        let (news_sender, news) = mpsc::channel();
        let status = Status::default();
        status.update(&wal);
        let next = wal.last_seq() + 1;
        let shared = Arc::new(Shared {
            wal: Mutex::new(wal),
            news: Mutex::new(news_sender),
            waker: OnceLock::new(),
            status,
            spare: Mutex::new(Vec::new()),
        });
        let syncer = match mode {
            SyncMode::Always => None,
            SyncMode::Interval | SyncMode::Never => {
                let every = (mode == SyncMode::Interval).then_some(interval);
                let (poke, pokes) = mpsc::channel();
                let shared = Arc::clone(&shared);
                let handle = std::thread::Builder::new()
                    .name(SYNC_THREAD.into())
                    .spawn(move || syncer::run(&shared, every, &pokes))?;
                Some((poke, handle))
            }
        };
        let max_run = if mode == SyncMode::Always { max_batch.max(1) as u64 } else { u64::MAX };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let spin = crate::spin::Spin::new(spin, cores);
        let writer = thread::Writer {
            shared: Arc::clone(&shared),
            mode,
            syncer,
            next,
            max_run,
            spin,
            failure: None,
        };
        let threads = vec![
            std::thread::Builder::new()
                .name(WRITER_THREAD.into())
                .spawn(move || writer.run(&command_queue))?,
        ];
        Ok(Log { commands, news, shared, threads })
    }

    /// From now on, every piece of news also calls `waker` (once; later calls change nothing).
    pub fn wake_with(&self, waker: Waker) {
        let _ = self.shared.waker.set(waker);
    }

    /// Hands `command` to the writer. If the writer is gone (it panicked), nothing happens here:
    /// the server notices the panic and stops.
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// An empty buffer for the next batch's records: one the writer gave back, or a new one.
    pub fn spare_buffer(&self) -> Vec<u8> {
        self.shared.spare.lock().ok().and_then(|mut spare| spare.pop()).unwrap_or_default()
    }

    /// The next piece of news, if there is one.
    pub fn try_news(&self) -> Option<News> {
        self.news.try_recv().ok()
    }

    /// The next piece of news, waiting at most `timeout`; `None` also if both threads are gone.
    pub fn wait_news(&self, timeout: Duration) -> Option<News> {
        self.news.recv_timeout(timeout).ok()
    }

    /// True once the writer thread has ended (after a stop, or a panic).
    pub fn writer_finished(&self) -> bool {
        self.threads.iter().all(JoinHandle::is_finished)
    }

    /// Sizes the threads keep up to date.
    pub fn status(&self) -> &Status {
        &self.shared.status
    }

    /// Waits for both threads to end (after [`Command::Stop`]); an error if one panicked.
    pub fn join(&mut self) -> Result<(), Error> {
        let mut result = Ok(());
        for handle in self.threads.drain(..) {
            if handle.join().is_err() {
                result = Err(Error::Failed { reason: "a thread of the log panicked".into() });
            }
        }
        result
    }

    /// Runs `f` on the log, for tests that look at it directly.
    #[cfg(test)]
    pub(crate) fn with_wal<T>(&self, f: impl FnOnce(&mut Wal) -> T) -> Result<T, Error> {
        let mut wal = lock_wal(&self.shared.wal)?;
        Ok(f(&mut wal))
    }
}

impl Drop for Log {
    /// A store dropped without [`crate::store::Store::close`] (tests, errors): the writer
    /// writes what it was given and stops, without the closing fsync, as a killed server would.
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.send(Command::Stop { close: false });
            let _ = self.join();
        }
    }
}

/// Locks the log. A poisoned mutex means a thread panicked while writing or syncing; the log's
/// state is then unknown, so no more writes are accepted.
pub fn lock_wal(wal: &Mutex<Wal>) -> Result<std::sync::MutexGuard<'_, Wal>, Error> {
    wal.lock()
        .map_err(|_| Error::Failed { reason: "a thread panicked while using the log".to_string() })
}

/// Locks the log for one of its threads; `None` (after telling the main thread) if a panic
/// poisoned the mutex.
fn lock(shared: &Shared) -> Option<std::sync::MutexGuard<'_, Wal>> {
    match lock_wal(&shared.wal) {
        Ok(wal) => Some(wal),
        Err(e) => {
            shared.tell(News::Failed(e.to_string()));
            None
        }
    }
}
