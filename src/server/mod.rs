//! The serving loop: the main thread, which alone owns the map, and never waits for a client or
//! for the disk.
//!
//! It handles requests in order, a batch at a time. Sockets are [`crate::intake`]'s business: the
//! loop only ever receives complete requests and hands back answers, so no client can make it
//! wait. The log is [`crate::writer`]'s: the loop hands it the records of a batch and reads its
//! news, so no disk can make it wait either.
//!
//! ```text
//!   intake threads         main thread (this loop)                  the log's threads
//!   --------------         -----------------------                  -----------------
//!   accept, read whole --> wait for an event (polling up to         writer: append each batch
//!   requests, queue them     --spin-us, then asleep; 100 ms tick)   with one write(2); in
//!                          take what is already queued (up to       always mode fsync it
//!                            --max-batch): the batch                sync thread: fsync every
//!                          for each: park it, or http::handle       --sync-interval, or when
//!                            (reads: from the map; writes: a seq,   an answer waits for one
//!                            a record for the writer)
//!                          answer reads at once; hold the answers
//!   write answers    <---    of writes (waiting.rs)
//!   in request order       hand the batch's records to the writer -->
//!                          take the log's news: changes into the <-- News, and a Wake event
//!                            map, held answers out                    in the intake's queue
//! ```
//!
//! # What waits, and for what
//! A read is answered at once from the map, which holds only what the log has far enough (see
//! [`crate::store`]): in the file in `interval` and `never` modes, fsynced in `always` mode. A
//! write's answer is held until its change is in the map (`waiting.rs`), so a write waits for
//! exactly what its mode promises: its `write(2)`, or its fsync. `?sync` and `POST /sync` wait
//! for an fsync in every mode. A slow or frozen disk therefore holds up the writes (and only
//! the writes) while reads, probes, `/status` and `/metrics` go on being answered; `/status`
//! and `/metrics` show the fsync that is running and the writes that wait, and the log says
//! once when an fsync has run for a second (`fsync has taken 1.0 s so far (disk busy?)`).
//!
//! In `always` mode the writer fsyncs each batch of records before it writes the next, and the
//! batches that queue meanwhile share the next fsync: the busier the server, the more writes
//! share one fsync (group commit). `--max-batch 1` gives each write its own.
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
//! # Failures
//!
//! - The listening socket fails in a way retrying cannot fix (running out of descriptors is not
//!   that: the intake waits and retries): [`run`] ends with [`Outcome::ListenerFailed`] and the
//!   process exits non-zero for a supervisor to restart it, instead of living on deaf.
//! - A panic in the accept thread or a thread of the log is fail-stop too: [`run`] ends with
//!   [`Outcome::ThreadPanicked`] within a tick. (A connection thread's panic closes only its
//!   connection; those threads share nothing a panic could leave half-done.)
//! - A write the disk refuses (a full disk): the writer cuts the file back; the write, and
//!   every write given a seq after it, get 507 (or 500) and never reach the map.
//! - A failed fsync is fail-stop: Linux may drop the unwritten pages and report the error only
//!   once, so no later fsync can be trusted. The log refuses further writes (503), every held
//!   answer becomes a 503, `/readyz` says `log_failed`, what is already queued is answered
//!   (for at most half a second, as on a stop: reads from the map, writes 503), and [`run`]
//!   ends with [`Outcome::LogFailed`]; a restart replays what is really on disk. A write
//!   answered 503 may or may not be in the log after that restart.
//! - SIGINT/SIGTERM/SIGHUP: the loop ends after the batch in hand (systemd hears `STOPPING=1`),
//!   answers what is already queued (for at most half a second; `/readyz` then says
//!   `stopping`), then the writer writes what it was given and fsyncs the log, and the answers
//!   held for it go out. A connection still waiting after that is closed unanswered when the
//!   process exits. On a frozen disk that final fsync waits for the disk; a second signal
//!   exits at once (130).

mod compaction;
mod startup;
mod waiting;
mod watches;

use crate::auth::{Auth, TokenSource};
use crate::compactor::{Compactor, Policy};
use crate::error::Error;
use crate::feed::Feed;
use crate::http::{self, Response};
use crate::intake::{Event, Intake, Job, Limits};
use crate::metrics::{DiskCall, METRICS};
use crate::store::{Polled, Store, Swept};
use compaction::Compaction;
use startup::{memory_limit, report_memory, report_recovery};
use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use waiting::{Blocked, Until, Waiting};
use watches::Watches;

pub use startup::describe_trim;

/// How often the loop wakes to look at the stop flag when no request arrives.
const TICK: Duration = Duration::from_millis(100);

/// How often the sweep looks for expired keys (more often while many are due): a key's memory
/// comes back, and its EXPIRE record is written, within about this long of its expiry.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// How soon the sweep tries again when keys are due but its last slice is still on its way to
/// the log (the log's news wakes the loop in between, so this only bounds the wait).
const SWEEP_WAITING: Duration = Duration::from_millis(1);

/// The log's writer polls for its next batch for this many times `--spin-us` (120 µs by
/// default) before it sleeps: at one client the next batch comes one round trip after the last,
/// about 60 µs on loopback, and waking the writer from sleep cost a third of a write's time
/// (docs/performance.md).
const WRITER_SPIN_TIMES: u32 = 2;

/// How long a stopping server goes on answering requests that were already queued.
const DRAIN_TIME: Duration = Duration::from_millis(500);

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
    /// The most requests taken into one batch, and the most writes one fsync covers in
    /// `always` mode. 1 disables group commit.
    pub max_batch: usize,
    /// Writes wait (are parked) while the records queued for the log hold this many bytes or
    /// more (`--max-write-queue`).
    pub max_write_queue: u64,
    /// `--max-memory`: the most memory the data may take (see [`crate::store::memory`]).
    pub max_memory: MaxMemory,
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
    /// `--log-format`: the format of every line the server logs, its own messages included.
    pub log_format: crate::request_log::Format,
    /// `--follower-backlog`: how far behind, in bytes of changes, a follower of the change feed
    /// may fall before it is cut (see [`crate::feed`]).
    pub follower_backlog: usize,
}

/// `--max-memory` (and `WALKV_MAX_MEMORY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxMemory {
    /// Not given: three quarters of the memory available ([`crate::store::memory`]).
    Default,
    /// `0`: no limit.
    Off,
    Bytes(u64),
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
    /// The accept thread or one of the log's threads panicked; the log was synced if it could
    /// be.
    ThreadPanicked,
}

/// Opens the store, serves until told to stop, and syncs the log on the way out. `auth` is the
/// loaded `config.token`, already checked against the bind address ([`crate::auth::check_bind`]).
pub fn run(config: &Config, auth: &Auth) -> Result<Outcome, Error> {
    crate::error::set_private_dir(&config.data_dir);
    crate::stamp_log_lines(config.log_format); // every server line has its time
    let started = Instant::now();
    METRICS.started();
    // The data directory first: a directory that is locked, or cannot be made or opened, ends
    // the start before the log says "listening".
    let lock = crate::store::lock_data_dir(&config.data_dir)?;
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
    let feed = Feed::new(&config.data_dir, 0, config.follower_backlog);
    let limits = config.limits.clone();
    let intake =
        Intake::start(listener, limits, Arc::clone(&auth), request_log, Some(Arc::clone(&feed)))
            .map_err(|e| Error::io("start the accept thread", e))?;
    crate::log!("listening on http://{bound}");
    crate::notify::send("STATUS=replaying the log");

    // Listen before replay: probes learn that the server is alive and not ready yet.
    let options = crate::wal::Options { mode: config.sync, boot: crate::wal::boot_id() };
    let mut listener_error = None;
    let tuning = crate::store::Tuning {
        sync_interval: config.sync_interval,
        max_batch: config.max_batch,
        spin: config.limits.spin.saturating_mul(WRITER_SPIN_TIMES),
        max_memory: memory_limit(config.max_memory),
    };
    let opened = Store::open_locked_while(&config.data_dir, lock, options, tuning, || {
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
    report_memory(&store);
    store.wake_with(Arc::new(intake.waker()));
    store.publish_to(Arc::clone(&feed));
    crate::log!("ready on http://{bound}");
    crate::notify::send(&format!("READY=1\nSTATUS=serving {} keys", store.len()));

    let mut server = Server {
        intake: &intake,
        config,
        auth: &auth,
        store,
        compaction: Compaction {
            compactor: Compactor::new(config.compaction, config.data_dir.clone()),
            waiting: Vec::new(),
        },
        waiting: Waiting::default(),
        watches: Watches::default(),
        ack_bound: waiting::ack_bound(config.sync, config.sync_interval),
        stopping: false,
        slow_told: [None; 2],
        stopped: None,
        sweep_due: Instant::now(),
    };
    let mut outcome = listener_error.map(|e| {
        crate::log!("the listener failed and accepts no more connections: {e}");
        Outcome::ListenerFailed(e)
    });
    while outcome.is_none() && !stop.load(Ordering::Relaxed) {
        if server.store.log_failed() {
            outcome = Some(Outcome::LogFailed);
            break;
        }
        if PANICKED.load(Ordering::SeqCst) {
            crate::log!("a thread panicked (see above); stopping so that a restart can recover");
            outcome = Some(Outcome::ThreadPanicked);
            break;
        }
        let tick = TICK.min(server.sweep_due.saturating_duration_since(Instant::now()));
        if let Some(event) = intake.recv_timeout(tick)
            && let Err(e) = server.serve_batch(event)
        {
            crate::log!("the listener failed and accepts no more connections: {e}");
            outcome = Some(Outcome::ListenerFailed(e));
            break;
        }
        server.settle();
        server.sweep();
        server.end_waits();
        server.compaction.tend(&mut server.store);
        server.watch_disk();
    }
    crate::notify::send("STOPPING=1\nSTATUS=stopping");
    server.stopping = true;
    server.end_waits();
    if matches!(outcome, None | Some(Outcome::LogFailed)) {
        server.drain_queue();
    }
    server.compaction.abandon();
    let closed = server.close();
    feed.close(); // followers end their answers: the log is synced, nothing more comes
    intake.finish_writing(DRAIN_TIME);
    match closed {
        Ok(seq) => {
            crate::log!("log synced through seq {seq}; stopped");
            Ok(outcome.unwrap_or(Outcome::Stopped))
        }
        Err(e) if matches!(outcome, Some(Outcome::ThreadPanicked)) => {
            crate::log!("stopping: {e}. Restart the server: it replays what is on disk");
            Ok(Outcome::ThreadPanicked)
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
            Event::Wake => {}
            Event::ListenerFailed(e) => *listener_error = Some(e),
        }
    }
}

/// The main thread's state while it serves.
struct Server<'a> {
    intake: &'a Intake,
    config: &'a Config,
    auth: &'a Auth,
    store: Store,
    compaction: Compaction,
    waiting: Waiting,
    /// Blocking reads waiting for their key to change.
    watches: Watches,
    /// How old an acknowledged write may be before its fsync (see [`waiting::ack_bound`]).
    ack_bound: Option<Duration>,
    /// A stop signal came: only what is queued is answered; `/readyz` says `stopping`.
    stopping: bool,
    /// The start (microseconds since the epoch) of the slow write, and fsync, already logged.
    slow_told: [Option<u64>; 2],
    /// The log's writer stopped (after [`Store::begin_close`]): how.
    stopped: Option<Result<u64, Error>>,
    /// When the next slice of the sweep of expired keys is due.
    sweep_due: Instant,
}

impl Server<'_> {
    /// Serves one batch: `first`, then whatever else is already queued, up to `max_batch`
    /// requests. A listener failure ends the batch after everything taken has been handled,
    /// and is returned.
    fn serve_batch(&mut self, first: Event) -> io::Result<()> {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(event) = next.take() {
            match event {
                Event::Request(job) => {
                    taken += 1;
                    self.admit(job);
                }
                // News from the log: answers go out now, before the requests queued behind
                // them are handled (a client that has its answer may have asked again), and
                // the requests that arrive meanwhile join this batch.
                Event::Wake => self.take_news(),
                Event::ListenerFailed(e) => {
                    self.settle();
                    return Err(e);
                }
            }
            if taken >= self.config.max_batch {
                break;
            }
            next = self.intake.try_recv();
        }
        Ok(())
    }

    /// Handles `job` now, or parks it if that would break a promise (see `waiting.rs`).
    fn admit(&mut self, job: Job) {
        let write = is_write(&job);
        if self.waiting.must_park(job.connection(), write, self.room()) {
            self.waiting.park(job, write);
        } else {
            self.handle(job);
        }
    }

    /// True while the writes queued for the log hold fewer than `--max-write-queue` bytes.
    fn room(&self) -> bool {
        self.store.queued().1 < self.config.max_write_queue
    }

    /// Works out the answer to `job` and sends it, holds it for the log or for a change of
    /// its key (a blocking read), or (for `POST /compact`) hands the job to the compaction.
    fn handle(&mut self, job: Job) {
        self.handle_as(job, false);
    }

    /// [`Server::handle`]; with `wait_over`, a blocking read is answered as things are.
    fn handle_as(&mut self, mut job: Job, wait_over: bool) {
        let serving = http::Serving {
            compaction: self.compaction.compactor.stats(),
            stopping: self.stopping,
            waiting_writes: self.waiting.parked().1,
            acks_wait_for_fsync: self.waiting.acks_stopped(self.ack_bound, Instant::now()),
            wait_over: wait_over || self.stopping,
            watching_reads: self.watches.len(),
        };
        let mut response = handle(&mut self.store, self.auth, &job, serving);
        job.release_body();
        if let Some(watch) = response.watch.take() {
            let deadline = Instant::now() + watch.wait;
            return self.watches.hold(&mut self.store, job, &watch, deadline);
        }
        if response.compact {
            return self.compaction.request(&mut self.store, job);
        }
        if response.sync {
            self.store.want_sync();
            let until = response.after.unwrap_or_else(|| self.store.last_issued());
            return self.waiting.hold(job, response, Until::Synced(until), until);
        }
        match response.after {
            Some(seq) if self.store.can_answer_when_durable(seq) => {
                self.waiting.handed(job.connection(), seq);
                self.store.answer_when_durable(Box::new(move |outcome| match outcome {
                    Ok(()) => job.respond_now(response),
                    Err(e) => job.respond_now(http::store_failure(http::error_status(e), e)),
                }));
            }
            Some(seq) => self.waiting.hold(job, response, Until::Visible(seq), seq),
            None => job.respond(response),
        }
    }

    /// Between batches: hands the batch's records to the writer, takes the log's news, sends
    /// the answers that may go, and handles the parked requests that may go now, until nothing
    /// changes.
    fn settle(&mut self) {
        loop {
            self.store.flush();
            self.take_news();
            if !self.run_parked() {
                return;
            }
        }
    }

    /// Takes the log's news and sends the held answers it lets go (and notes those the writer
    /// sent).
    fn take_news(&mut self) {
        let polled = self.store.poll();
        self.act_on(polled);
        let (visible, synced) = (self.store.visible_seq(), self.store.synced_seq());
        self.waiting.release(visible, synced, self.ack_bound, Instant::now());
        self.waiting.handed_through(visible);
        for job in self.watches.fired(&mut self.store) {
            self.handle_as(job, true);
        }
    }

    /// A slice of the sweep of expired keys, when one is due: again at once while more keys
    /// are due, else after [`SWEEP_EVERY`] (see [`crate::store`]'s `expiring.rs`).
    fn sweep(&mut self) {
        let now = Instant::now();
        if now < self.sweep_due || self.stopping {
            return;
        }
        let swept = self.store.sweep(crate::expiry::now_ms());
        self.sweep_due = match swept {
            Swept { more: false, .. } => now + SWEEP_EVERY,
            Swept { expired: 0, .. } => now + SWEEP_WAITING,
            _ => now,
        };
        if swept.expired > 0 {
            // To the writer now; the map takes them in a later turn of the loop, after the
            // requests that came meanwhile, so that a slice and its news are not one long step.
            self.store.flush();
        }
    }

    /// Answers the blocking reads whose wait is over (all of them once the server stops).
    fn end_waits(&mut self) {
        let over = if self.stopping {
            self.watches.all(&mut self.store)
        } else {
            self.watches.expired(&mut self.store, Instant::now())
        };
        for job in over {
            self.handle_as(job, true);
        }
    }

    /// What the log's news asks of the server: failed writes, a sealed segment, a failed log.
    fn act_on(&mut self, polled: Polled) {
        for (from, error) in &polled.failed {
            let status = http::error_status(error);
            self.waiting.fail_from(*from, &http::store_failure(status, error));
            self.waiting.handed_failed(*from); // the writer answered those
        }
        if let Some(reason) = &polled.log_failed {
            let message = format!("{reason}; the server is stopping, restart it");
            self.waiting.fail_all(&Response::error(503, &message));
            self.waiting.handed_failed(0);
        }
        if let Some(rotated) = polled.rotated {
            self.compaction.rotated(&mut self.store, rotated);
        }
        if let Some(stopped) = polled.stopped {
            self.stopped = Some(stopped);
        }
    }

    /// Handles the parked requests that may go now, in order; true if any did.
    fn run_parked(&mut self) -> bool {
        if self.waiting.parked().0 == 0 {
            return false;
        }
        let mut handled = false;
        let mut blocked = Blocked::default();
        for job in self.waiting.take_parked() {
            let connection = job.connection();
            let write = is_write(&job);
            let go = !blocked.contains(connection)
                && if write {
                    !blocked.writes && self.room()
                } else {
                    !self.waiting.has_held(connection)
                };
            if go {
                self.waiting.unpark(&job, write);
                self.handle(job);
                handled = true;
            } else {
                blocked.writes |= write;
                blocked.insert(connection);
                self.waiting.repark(job);
            }
        }
        handled
    }

    /// Logs once when a write or an fsync of the log has run for a second (each logs its own
    /// end, see [`crate::wal::log::SLOW_DISK_CALL`]).
    fn watch_disk(&mut self) {
        for (i, call) in DiskCall::ALL.into_iter().enumerate() {
            let Some(began) = METRICS.running_since(call) else { continue };
            let Some(running) = METRICS.running_for(call) else { continue };
            if running >= crate::wal::log::SLOW_DISK_CALL && self.slow_told[i] != Some(began) {
                self.slow_told[i] = Some(began);
                let (writes, bytes) = self.store.queued();
                crate::log!(
                    "{} has taken {:.1} s so far (disk busy?): writes wait, reads are served \
                     ({writes} writes, {bytes} bytes queued for the log)",
                    call.name(),
                    running.as_secs_f64()
                );
            }
        }
    }

    /// On a stop signal, or after the log failed: serves what is already queued (for at most
    /// [`DRAIN_TIME`]), so that requests that arrived before are answered rather than cut off.
    /// With a failed log, reads are still answered from the map, writes get 503, and `/readyz`
    /// says `log_failed`.
    fn drain_queue(&mut self) {
        let deadline = Instant::now() + DRAIN_TIME;
        while Instant::now() < deadline {
            let Some(first) = self.intake.try_recv() else { return };
            if self.serve_batch(first).is_err() {
                return;
            }
            self.settle();
        }
    }

    /// Ends the log: the writer writes what it was given and fsyncs, and the answers held for
    /// it go out. Meanwhile (the final fsync may take long on a slow disk) requests are still
    /// answered: reads from the map, probes (`/readyz` says `stopping`), writes 503. Then
    /// whatever is still held or parked is refused.
    fn close(&mut self) -> Result<u64, Error> {
        self.store.begin_close();
        while self.stopped.is_none() {
            if let Some(event) = self.intake.recv_timeout(TICK) {
                let _ = self.serve_batch(event); // the listener's failure changes nothing now
            }
            self.settle();
            if self.stopped.is_none() && self.store.writer_finished() {
                self.settle(); // its last news
                break;
            }
        }
        let closed = self.store.end_close(self.stopped.take());
        let unanswered = "the server is stopping; this request's outcome is unknown";
        self.waiting.fail_all(&Response::error(503, unanswered));
        while self.run_parked() {}
        closed
    }
}

/// True for the requests that write (see [`http::writes`]).
fn is_write(job: &Job) -> bool {
    let (path, _) = job.path_and_query();
    http::writes(job.method(), path)
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
