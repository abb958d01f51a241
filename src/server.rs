//! The serving loop: the main thread, which alone owns the map and the log.
//!
//! It handles requests in order, a batch at a time. Sockets are [`crate::intake`]'s business: the
//! loop only ever receives complete requests and hands back answers, so no client can make it
//! wait.
//!
//! ```text
//!   intake threads           main thread (this loop)                    sync thread (interval mode)
//!   --------------           -----------------------                    ---------------------------
//!   accept, read whole ----> wait for a request (polling up to          every --sync-interval:
//!   requests, queue them       --spin-us, then asleep; 100 ms tick),    lock the log, flush,
//!                              then take what is already queued
//!                              (up to --max-batch): the batch           fdatasync, unlock
//!                            for each: http::handle
//!                              (writes: Store -> Wal::append, flushed)
//!                              answer at once, or hold the answer if
//!   write answers      <---    it needs an fsync (all, in always mode)
//!   in request order         one fsync for the held answers; send them
//! ```
//!
//! # Startup
//!
//! The socket opens before the log is replayed, so a probe can tell "starting" from "dead".
//! While the replay thread reads the log and this thread fills the map, this thread also
//! answers whatever has arrived between batches, without touching the store: `/livez` 200,
//! `/readyz` 503 `replaying`, everything else 503 with `Retry-After: 1`
//! ([`http::while_replaying`]). Then the log line `ready on http://ADDR` and systemd's
//! `READY=1` ([`crate::notify`]) say that every request is served.
//!
//! # Sync modes and group commit
//!
//! [`SyncMode`] decides when the log is fsynced, which is what a write's acknowledgement means
//! for power loss (a killed process loses nothing in any mode: every record is in the file
//! before its answer). In `always` mode the batch is the unit of *group commit*: all of its
//! writes are appended, one fsync covers them, and only then is any answer of the batch sent,
//! so a read in the batch that saw a batch write is not answered before that write is durable.
//! Requests queue while an fsync runs, so the busier the server, the more writes share one
//! fsync. `--max-batch 1` turns batching off (one fsync per write). In the other modes answers
//! leave at once, except those that asked to wait for an fsync (`?sync`, `POST /sync`).
//!
//! # Failures
//!
//! - The listening socket fails in a way retrying cannot fix (running out of descriptors is not
//!   that: the intake waits and retries): [`run`] ends with [`Outcome::ListenerFailed`] and the
//!   process exits non-zero for a supervisor to restart it, instead of living on deaf.
//! - A panic in the accept or sync thread is fail-stop too: [`run`] ends with
//!   [`Outcome::ThreadPanicked`] within a tick. (A connection thread's panic closes only its
//!   connection; those threads share nothing a panic could leave half-done.)
//! - A failed fsync is fail-stop: Linux may drop the unwritten pages and report the error only
//!   once, so no later fsync can be trusted. The log refuses further writes (503), every held
//!   answer becomes a 503, `/readyz` says `log_failed`, what is already queued is answered
//!   (for at most half a second, as on a stop: reads from the map, writes 503), and [`run`]
//!   ends with [`Outcome::LogFailed`]; a restart replays what is really on disk. A write
//!   answered 503 may or may not be in the log after that restart.
//! - SIGINT/SIGTERM/SIGHUP: the loop ends after the batch in hand (systemd hears `STOPPING=1`), answers
//!   what is already queued (for at most half a second; `/readyz` then says `stopping`), then
//!   flushes and fsyncs the log. A connection still waiting after that is closed unanswered
//!   when the process exits.

use crate::auth::{Auth, TokenSource};
use crate::compactor::{Compactor, Policy, Started};
use crate::error::Error;
use crate::http::{self, Response};
use crate::intake::{Event, Intake, Job, Limits};
use crate::store::{Store, lock_wal};
use crate::wal::Wal;
use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often the loop wakes to look at the stop flag when no request arrives.
const TICK: Duration = Duration::from_millis(100);

/// Set by the panic hook when any thread of the process panics.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// When the log is fsynced, and so what an acknowledged write survives (defined with the log,
/// whose SYNC markers record it).
pub use crate::wal::SyncMode;

/// Everything `walkv serve` needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub bind: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub sync: SyncMode,
    /// How often the log is fsynced in `interval` mode. Cost: one fsync per interval. Risk: a
    /// power cut loses the writes acknowledged since the last sync.
    pub sync_interval: Duration,
    /// The most requests taken into one batch (one fsync in `always` mode). 1 disables batching.
    pub max_batch: usize,
    /// The shared secret requests must carry, if any (see [`crate::auth`]).
    pub token: TokenSource,
    /// Listen on a non-loopback address without a token: the operator accepts an open server.
    pub insecure_open: bool,
    /// Connection count, timeouts (see [`crate::intake`]).
    pub limits: Limits,
    /// When the log is compacted by itself (see [`crate::compactor`]).
    pub compaction: Policy,
    /// `--log-requests`: one line per request on stderr, in this format
    /// (see [`crate::request_log`]).
    pub request_log: Option<crate::request_log::Format>,
}

/// How a server that started successfully ended.
#[derive(Debug)]
pub enum Outcome {
    /// Stopped by SIGINT, SIGTERM or SIGHUP after a final flush and fsync.
    Stopped,
    /// The listening socket failed and will accept nothing more; the log was synced.
    ListenerFailed(io::Error),
    /// An fsync (or a write that could not be cut back) failed: the log takes no more writes.
    LogFailed,
    /// The accept or the sync thread panicked; the log was synced.
    ThreadPanicked,
}

/// Opens the store, serves until told to stop, and syncs the log on the way out. `auth` is the
/// loaded `config.token`, already checked against the bind address ([`crate::auth::check_bind`]).
pub fn run(config: &Config, auth: &Auth) -> Result<Outcome, Error> {
    crate::error::set_private_dir(&config.data_dir);
    crate::stamp_log_lines(); // every server line starts with its time
    let started = Instant::now();
    crate::metrics::METRICS.started();
    let addr = listen_addr(&config.bind, config.port);
    let listener =
        TcpListener::bind(addr.as_str()).map_err(|e| Error::io(format!("listen on {addr}"), e))?;
    let bound = listener.local_addr().map_err(|e| Error::io(format!("listen on {addr}"), e))?;
    let stop = register_stop_signals()?;
    install_panic_hook();
    let auth = Arc::new(auth.clone());
    let request_log = match config.request_log {
        Some(format) => Some(
            crate::request_log::RequestLog::start(format)
                .map_err(|e| Error::io("start the request log's thread", e))?,
        ),
        None => None,
    };
    let intake = Intake::start(listener, config.limits.clone(), Arc::clone(&auth), request_log)
        .map_err(|e| Error::io("start the accept thread", e))?;
    crate::log!("listening on http://{bound}");
    crate::notify::send("STATUS=replaying the log");

    // Listen before replay: probes learn that the server is alive and not ready yet.
    let options = crate::wal::Options { mode: config.sync, boot: crate::wal::boot_id() };
    let mut listener_error = None;
    let opened = Store::open_dir_while(&config.data_dir, options, || {
        answer_while_replaying(&intake, &mut listener_error)
    });
    let (mut store, recovery, opened) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            intake.finish_writing(DRAIN_TIME);
            return Err(e);
        }
    };
    report_recovery(config, &recovery, &opened, store.len(), started.elapsed());
    let sync_thread = (config.sync == SyncMode::Interval)
        .then(|| spawn_sync_thread(store.shared_wal(), config.sync_interval));
    crate::log!("ready on http://{bound}");
    crate::notify::send(&format!("READY=1\nSTATUS=serving {} keys", store.len()));

    let mut compaction = Compaction {
        compactor: Compactor::new(config.compaction, config.data_dir.clone()),
        waiting: Vec::new(),
    };
    let mut outcome = listener_error.map(|e| {
        crate::log!("the listener failed and accepts no more connections: {e}");
        Outcome::ListenerFailed(e)
    });
    while outcome.is_none() && !stop.load(Ordering::Relaxed) {
        if store.log_failed() {
            outcome = Some(Outcome::LogFailed);
            break;
        }
        if PANICKED.load(Ordering::SeqCst) {
            crate::log!("a thread panicked (see above); stopping so that a restart can recover");
            outcome = Some(Outcome::ThreadPanicked);
            break;
        }
        if let Some(event) = intake.recv_timeout(TICK)
            && let Err(e) =
                serve_batch(&intake, &mut store, config, &auth, &mut compaction, event, false)
        {
            crate::log!("the listener failed and accepts no more connections: {e}");
            outcome = Some(Outcome::ListenerFailed(e));
            break;
        }
        compaction.tend(&mut store);
    }
    crate::notify::send("STOPPING=1\nSTATUS=stopping");
    if matches!(outcome, None | Some(Outcome::LogFailed)) {
        drain_queue(&intake, &mut store, config, &auth, &mut compaction);
    }
    compaction.abandon();
    intake.finish_writing(DRAIN_TIME);

    if let Some((stop_sync, handle)) = sync_thread {
        drop(stop_sync);
        if handle.join().is_err() {
            crate::log!("the sync thread panicked");
        }
    }
    match store.close() {
        Ok(seq) => {
            crate::log!("log synced through seq {seq}; stopped");
            Ok(outcome.unwrap_or(Outcome::Stopped))
        }
        Err(e) => {
            crate::log!("stopping: {e}. Restart the server: it replays what is on disk");
            Ok(Outcome::LogFailed)
        }
    }
}

/// While the log is replayed: answers what has arrived (see [`http::while_replaying`]), and
/// keeps a listener failure for after the replay.
fn answer_while_replaying(intake: &Intake, listener_error: &mut Option<io::Error>) {
    while let Some(event) = intake.try_recv() {
        match event {
            Event::Request(job) => {
                let (path, _) = job.path_and_query();
                let response = http::while_replaying(job.method(), path);
                job.respond(response);
            }
            Event::ListenerFailed(e) => *listener_error = Some(e),
        }
    }
}

/// A batch stops taking requests once the answers it holds back reach this many bytes, so that
/// group commit cannot pin much memory (128 answers of 1 MiB values would otherwise be held).
const MAX_HELD_BYTES: usize = 16 << 20;

/// How long a stopping server goes on answering requests that were already queued.
const DRAIN_TIME: Duration = Duration::from_millis(500);

/// On a stop signal, or after the log failed: serves what is already queued (for at most
/// [`DRAIN_TIME`]), so that requests that arrived before are answered rather than cut off. With
/// a failed log, reads are still answered from the map, writes get 503, and `/readyz` says
/// `log_failed`.
fn drain_queue(
    intake: &Intake,
    store: &mut Store,
    config: &Config,
    auth: &Auth,
    compaction: &mut Compaction,
) {
    let deadline = Instant::now() + DRAIN_TIME;
    while Instant::now() < deadline {
        match intake.try_recv() {
            Some(first) => {
                if serve_batch(intake, store, config, auth, compaction, first, true).is_err() {
                    return;
                }
            }
            None => return,
        }
    }
}

/// Serves one batch: `first`, then whatever else is already queued, up to `max_batch` requests
/// or [`MAX_HELD_BYTES`] of held answers.
///
/// An answer is held back if it may only leave after an fsync: every answer in `always` mode
/// (a read may have seen a write of this batch), otherwise only those that ask for it (`?sync`,
/// `POST /sync`). Everything else is answered at once. After the batch, one fsync covers all the
/// held answers, which are then sent. A listener failure ends the batch after everything taken
/// has been answered, and is returned.
fn serve_batch(
    intake: &Intake,
    store: &mut Store,
    config: &Config,
    auth: &Auth,
    compaction: &mut Compaction,
    first: Event,
    stopping: bool,
) -> io::Result<()> {
    let mut held = Vec::new();
    let (mut held_bytes, mut taken) = (0, 0);
    let mut next = Some(first);
    let mut listener_error = None;
    while let Some(event) = next.take() {
        match event {
            Event::Request(job) => {
                taken += 1;
                let serving = http::Serving { compaction: compaction.compactor.stats(), stopping };
                let response = handle(store, auth, &job, serving);
                if response.compact {
                    compaction.request(store, job);
                } else if config.sync == SyncMode::Always || response.sync {
                    held_bytes += response.body.len();
                    held.push((job, response));
                } else {
                    job.respond(response);
                }
            }
            Event::ListenerFailed(e) => {
                listener_error = Some(e);
                break;
            }
        }
        if taken >= config.max_batch || held_bytes >= MAX_HELD_BYTES {
            break;
        }
        next = intake.try_recv();
    }
    if !held.is_empty()
        && let Err(e) = store.sync()
    {
        if !matches!(e, Error::Failed { .. }) {
            crate::log!("fsync failed: {e}; answering 503 and stopping");
        }
        let message = format!("{e}; the server is stopping, restart it");
        for (_, response) in &mut held {
            *response = Response::error(503, &message);
        }
    }
    for (job, response) in held {
        job.respond(response);
    }
    listener_error.map_or(Ok(()), Err)
}

fn report_recovery(
    config: &Config,
    rec: &crate::wal::Recovery,
    opened: &crate::wal::dir::Opened,
    keys: usize,
    took: Duration,
) {
    let dir = config.data_dir.display();
    let path = crate::store::wal_path(&config.data_dir);
    if rec.created {
        crate::log!("created a new log in {dir}");
    }
    if rec.upgraded {
        crate::log!(
            "upgraded {} from log format 1 to {} (every record kept)",
            path.display(),
            crate::wal::VERSION
        );
    }
    if opened.converted {
        crate::log!(
            "{} is now the first segment of the log, {}: this directory holds segments and \
             snapshots from now on (see the README, \"Files in the data directory\")",
            path.display(),
            crate::wal::layout::segment_name(1)
        );
    }
    if let Some(trim) = &rec.trimmed {
        crate::log!("{}", describe_trim(&path, trim));
    }
    for leftover in &opened.removed {
        crate::log!("removed {}, left over from an interrupted write", leftover.display());
    }
    let snapshot = match opened.snapshot {
        Some((upto, keys)) => format!("a snapshot through seq {upto} ({keys} keys) and "),
        None => String::new(),
    };
    crate::log!(
        "replayed {} records (last seq {}, {keys} keys) from {snapshot}{} segment(s) in {dir} in \
         {:.1} ms",
        rec.records,
        rec.last_seq,
        opened.segments,
        took.as_secs_f64() * 1000.0
    );
}

/// The startup message for a trimmed tail: where, how much, why, and where it was kept.
pub fn describe_trim(path: &std::path::Path, trim: &crate::wal::Trim) -> String {
    let mut text = format!(
        "trimmed the end of {}: cut at offset {}, dropped {} bytes. Why: {}",
        path.display(),
        trim.offset,
        trim.bytes,
        trim.explanation
    );
    if let Some(side) = &trim.side_file {
        text.push_str(&format!(" The dropped bytes are kept in {}.", side.display()));
    }
    if let Some((first, last)) = trim.skipped {
        text.push_str(&format!(
            " Sequence numbers {first}..={last} are recorded as skipped and will not be reused."
        ));
    }
    text
}

/// Makes a panic in any thread but a connection thread stop the server (after the default report
/// on stderr). A dead accept or sync thread would otherwise leave a process that looks alive and
/// accepts nothing, or never syncs; a server that exits can be restarted by its supervisor.
fn install_panic_hook() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // A connection thread's panic closes only that connection (see crate::intake).
        if thread::current().name() != Some(crate::intake::CONNECTION_THREAD) {
            PANICKED.store(true, Ordering::SeqCst);
        }
        report(info);
    }));
}

/// SIGINT, SIGTERM and SIGHUP set the returned flag; a second one while stopping exits at once
/// (130). SIGHUP is a clean stop too: its default would kill the server without the final sync
/// when the terminal or the ssh session that started it goes away (`nohup` aside). It does not
/// mean "reload": walkv has no configuration file to reload.
fn register_stop_signals() -> Result<Arc<AtomicBool>, Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .map_err(|e| Error::io("register signal handlers", e))?;
    }
    Ok(stop)
}

/// `HOST:PORT` to listen on: `--bind ::1` and `--bind [::1]` both mean the IPv6 loopback.
fn listen_addr(bind: &str, port: u16) -> String {
    match crate::auth::unbracketed(bind) {
        host if host.contains(':') => format!("[{host}]:{port}"),
        host => format!("{host}:{port}"),
    }
}

/// Starts the thread that fsyncs the log every `interval`. Dropping the returned sender stops it.
fn spawn_sync_thread(
    wal: Arc<Mutex<Wal>>,
    interval: Duration,
) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
    let (stop, stopped) = mpsc::channel::<()>();
    let handle = thread::spawn(move || {
        while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
            if let Err(e) = lock_wal(&wal).and_then(|mut wal| wal.sync()) {
                // The log now refuses writes (see Wal::sync); say so once and stop syncing.
                crate::log!("periodic sync failed: {e}; writes are refused from now on");
                return;
            }
        }
    });
    (stop, handle)
}

/// Works out the answer to one request (not sending it yet). The intake has already checked
/// the token and the body size; the router checks the token again, which costs nothing.
fn handle(store: &mut Store, auth: &Auth, job: &Job, serving: http::Serving) -> Response {
    let (path, query) = job.path_and_query();
    let headers = job.header_pairs();
    let request = http::Request {
        method: job.method(),
        path,
        query,
        headers: &headers,
        body: &job.body,
        prepared: job.prepared.as_deref(),
    };
    http::handle(store, &request, auth, serving)
}

/// The compactor, and the `POST /compact` requests waiting for the compaction they joined.
struct Compaction {
    compactor: Compactor,
    waiting: Vec<Job>,
}

impl Compaction {
    /// `POST /compact`: starts a compaction or joins the running one; answered when it ends
    /// (at once if there is nothing to merge, or it cannot start).
    fn request(&mut self, store: &mut Store, job: Job) {
        match self.compactor.start(store) {
            Ok(Started::Running) => self.waiting.push(job),
            Ok(Started::NothingToDo(report)) => job.respond(http::compacted(&Ok(report))),
            Err(e) => job.respond(http::compacted(&Err(e))),
        }
    }

    /// Between batches: collects a finished compaction (answering whoever waits for it), and
    /// starts one if the policy says it is due.
    fn tend(&mut self, store: &mut Store) {
        if let Some(outcome) = self.compactor.poll(store) {
            let response = http::compacted(&outcome);
            for job in self.waiting.drain(..) {
                job.respond(response.clone());
            }
        }
        if self.compactor.due(store) {
            let _ = self.compactor.start(store); // a failure is logged and shown in /status
        }
    }

    /// On the way out: a running compaction is left to die with the process (its unfinished
    /// file is removed at the next start, and the files it would replace still hold
    /// everything); whoever waits for it is told.
    fn abandon(&mut self) {
        if self.compactor.stats().compacting {
            crate::log!("stopping during a compaction: it is abandoned, nothing is lost");
        }
        let response = Response::error(503, "the server is stopping; the compaction was abandoned");
        for job in self.waiting.drain(..) {
            job.respond(response.clone());
        }
    }
}
