//! The serving loop: the only module that knows tiny_http.
//!
//! One thread owns the map and handles requests in order, a batch at a time:
//!
//! ```text
//!   tiny_http threads        main thread (this loop)                    sync thread (interval mode)
//!   -----------------        -----------------------                    ---------------------------
//!   accept, parse  ------->  wait for a request (recv_timeout 100 ms),  every --sync-interval:
//!   headers, queue             then take what is already queued         lock the log, flush,
//!                              (up to --max-batch): the batch           fdatasync, unlock
//!                            for each: read body, http::handle
//!                              (writes: Store -> Wal::append, flushed)
//!                              answer at once, or hold the answer if
//!                              it needs an fsync (all, in always mode)
//!                            one fsync for the held answers; send them
//! ```
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
//! - An accept error: tiny_http's accept thread stops for good after one, so [`run`] ends with
//!   [`Outcome::ListenerFailed`] and the process exits non-zero for a supervisor to restart it,
//!   instead of living on deaf. (This is also why the loop is an explicit `recv_timeout` loop:
//!   `incoming_requests()` ends silently on that error.)
//! - A panic in any thread (tiny_http's accept thread panics when file descriptors run out) is
//!   fail-stop too: [`run`] ends with [`Outcome::ThreadPanicked`] within a tick.
//! - A failed fsync is fail-stop: Linux may drop the unwritten pages and report the error only
//!   once, so no later fsync can be trusted. The log refuses further writes (503), every held
//!   answer becomes a 503, and [`run`] ends with [`Outcome::LogFailed`]; a restart replays what
//!   is really on disk. A write answered 503 may or may not be in the log after that restart.
//! - SIGINT/SIGTERM: the loop ends after the batch in hand, answers what is already queued (for
//!   at most half a second), then flushes and fsyncs the log. A connection still waiting after
//!   that is closed unanswered when the process exits.
//!
//! Every request gets an answer: the body size is checked against [`http::body_limit`] from
//! `Content-Length` before anything is read (413), and bodies are read through a limit.

use crate::auth::{Auth, TokenSource};
use crate::error::Error;
use crate::http::{self, Response};
use crate::store::{Store, lock_wal};
use crate::wal::Wal;
use std::io::{self, Read};
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

/// When the log is fsynced, and so what an acknowledged write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// No write is answered before an fsync that covers it has returned. Survives power loss;
    /// costs one fsync per batch of writes.
    Always,
    /// A background thread fsyncs every `--sync-interval`. A power cut loses at most the writes
    /// acknowledged since the last sync. The original service's behaviour, and the default.
    Interval,
    /// Never fsynced while serving (only at a clean shutdown); the OS writes back when it likes.
    /// Fastest; a power cut can lose any amount of recent writes.
    Never,
}

impl SyncMode {
    pub fn parse(text: &str) -> Option<SyncMode> {
        match text {
            "always" => Some(SyncMode::Always),
            "interval" => Some(SyncMode::Interval),
            "never" => Some(SyncMode::Never),
            _ => None,
        }
    }
}

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
}

/// How a server that started successfully ended.
#[derive(Debug)]
pub enum Outcome {
    /// Stopped by SIGINT or SIGTERM after a final flush and fsync.
    Stopped,
    /// tiny_http's accept thread failed and will accept nothing more; the log was synced.
    ListenerFailed(io::Error),
    /// An fsync (or a write that could not be cut back) failed: the log takes no more writes.
    LogFailed,
    /// A thread panicked; the log was synced. tiny_http's accept thread panics when file
    /// descriptors run out (an `unwrap` on `try_clone`), after which nothing is accepted again.
    ThreadPanicked,
}

/// Opens the store, serves until told to stop, and syncs the log on the way out. `auth` is the
/// loaded `config.token`, already checked against the bind address ([`crate::auth::check_bind`]).
pub fn run(config: &Config, auth: &Auth) -> Result<Outcome, Error> {
    let started = Instant::now();
    let (mut store, recovery) = Store::open(&config.data_dir)?;
    report_recovery(config, &recovery, store.len(), started.elapsed());

    let addr = format!("{}:{}", config.bind, config.port);
    let server = tiny_http::Server::http(addr.as_str())
        .map_err(|e| Error::io(format!("listen on {addr}"), io::Error::other(e.to_string())))?;
    let stop = register_stop_signals()?;
    install_panic_hook();
    let sync_thread = (config.sync == SyncMode::Interval)
        .then(|| spawn_sync_thread(store.shared_wal(), config.sync_interval));
    match server.server_addr().to_ip() {
        Some(bound) => crate::log!("listening on http://{bound}"),
        None => crate::log!("listening on {addr}"),
    }

    let mut outcome = None;
    while !stop.load(Ordering::Relaxed) {
        if store.log_failed() {
            outcome = Some(Outcome::LogFailed);
            break;
        }
        if PANICKED.load(Ordering::SeqCst) {
            crate::log!("a thread panicked (see above); stopping so that a restart can recover");
            outcome = Some(Outcome::ThreadPanicked);
            break;
        }
        let served = match server.recv_timeout(TICK) {
            Ok(Some(first)) => serve_batch(&server, &mut store, config, auth, first),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = served {
            crate::log!("the listener failed and accepts no more connections: {e}");
            outcome = Some(Outcome::ListenerFailed(e));
            break;
        }
    }
    if outcome.is_none() {
        drain_queue(&server, &mut store, config, auth);
    }
    // Dropping tiny_http's server can free its queue, and tiny_http answers every request still
    // in it with a bare, non-JSON 500. So it is never dropped: the process exits right after
    // this function, and the OS closes any connection still waiting, unanswered, which a client
    // treats like any lost connection (outcome unknown) rather than as a false server error.
    std::mem::forget(server);

    if let Some((stop_sync, handle)) = sync_thread {
        drop(stop_sync);
        if handle.join().is_err() {
            crate::log!("the sync thread panicked");
        }
    }
    match store.sync() {
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

/// A batch stops taking requests once the answers it holds back reach this many bytes, so that
/// group commit cannot pin much memory (128 answers of 1 MiB values would otherwise be held).
const MAX_HELD_BYTES: usize = 16 << 20;

/// How long a stopping server goes on answering requests that were already queued.
const DRAIN_TIME: Duration = Duration::from_millis(500);

/// On a stop signal: serves what is already queued (for at most [`DRAIN_TIME`]), so that requests
/// that arrived before the signal are answered rather than cut off.
fn drain_queue(server: &tiny_http::Server, store: &mut Store, config: &Config, auth: &Auth) {
    let deadline = Instant::now() + DRAIN_TIME;
    while Instant::now() < deadline && !store.log_failed() {
        match server.try_recv() {
            Ok(Some(first)) => {
                if serve_batch(server, store, config, auth, first).is_err() {
                    return;
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// Serves one batch: `first`, then whatever else is already queued, up to `max_batch` requests
/// or [`MAX_HELD_BYTES`] of held answers.
///
/// An answer is held back if it may only leave after an fsync: every answer in `always` mode
/// (a read may have seen a write of this batch), otherwise only those that ask for it (`?sync`,
/// `POST /sync`). Everything else is answered at once. After the batch, one fsync covers all the
/// held answers, which are then sent. A listener error ends the batch after everything taken has
/// been answered, and is returned.
fn serve_batch(
    server: &tiny_http::Server,
    store: &mut Store,
    config: &Config,
    auth: &Auth,
    first: tiny_http::Request,
) -> io::Result<()> {
    let mut held = Vec::new();
    let (mut held_bytes, mut taken) = (0, 0);
    let mut next = Some(first);
    let mut listener_error = None;
    while let Some(mut request) = next.take() {
        taken += 1;
        let response = handle(store, auth, &mut request);
        if config.sync == SyncMode::Always || response.sync {
            held_bytes += response.body.len();
            held.push((request, response));
        } else {
            respond(request, response);
        }
        if taken >= config.max_batch || held_bytes >= MAX_HELD_BYTES {
            break;
        }
        match server.try_recv() {
            Ok(queued) => next = queued,
            Err(e) => listener_error = Some(e),
        }
    }
    if !held.is_empty()
        && let Err(e) = store.sync()
    {
        crate::log!("fsync failed: {e}; answering 503 and stopping");
        let message = format!("{e}; the server is stopping, restart it");
        for (_, response) in &mut held {
            *response = Response::error(503, &message);
        }
    }
    for (request, response) in held {
        respond(request, response);
    }
    listener_error.map_or(Ok(()), Err)
}

fn report_recovery(config: &Config, rec: &crate::wal::Recovery, keys: usize, took: Duration) {
    let path = crate::store::wal_path(&config.data_dir);
    if rec.created {
        crate::log!("created {}", path.display());
    }
    if let Some((offset, bytes, reason)) = &rec.trimmed {
        crate::log!(
            "trimmed a torn final record from {}: cut at offset {offset}, dropped {bytes} \
             bytes ({reason}); those bytes were never acknowledged",
            path.display()
        );
    }
    crate::log!(
        "replayed {} records (last seq {}, {keys} keys) from {} in {:.1} ms",
        rec.records,
        rec.last_seq,
        path.display(),
        took.as_secs_f64() * 1000.0
    );
}

/// Makes any panic, in any thread, stop the server (after the default report on stderr). A
/// panicking tiny_http accept thread would otherwise leave a process that looks alive and
/// accepts nothing; a server that exits can be restarted by its supervisor.
fn install_panic_hook() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        report(info);
    }));
}

/// SIGINT and SIGTERM set the returned flag; a second one while stopping exits at once (130).
fn register_stop_signals() -> Result<Arc<AtomicBool>, Error> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .map_err(|e| Error::io("register signal handlers", e))?;
    }
    Ok(stop)
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

/// Works out the answer to one request (not sending it yet).
fn handle(store: &mut Store, auth: &Auth, request: &mut tiny_http::Request) -> Response {
    let method = request.method().as_str().to_owned();
    let target = request.url().to_owned();
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target.as_str(), None),
    };
    let limit = http::body_limit(&method, path);
    if auth.is_required() && !auth.allows(&header_pairs(request)) {
        // Refused before a byte of the body is read; the router builds the 401.
        let headers = header_pairs(request);
        let req = http::Request { method: &method, path, query, headers: &headers, body: b"" };
        http::handle(store, &req, auth)
    } else if request.body_length().is_some_and(|n| n as u64 > limit) {
        http::too_large(limit)
    } else {
        match read_body(request, limit) {
            Ok(Some(body)) => {
                let headers = header_pairs(request);
                let req =
                    http::Request { method: &method, path, query, headers: &headers, body: &body };
                http::handle(store, &req, auth)
            }
            Ok(None) => http::too_large(limit),
            Err(e) => Response::error(400, &format!("could not read the request body: {e}")),
        }
    }
}

/// The request's headers as (name, value) pairs, borrowed.
fn header_pairs(request: &tiny_http::Request) -> Vec<(&str, &str)> {
    request.headers().iter().map(|h| (h.field.as_str().as_str(), h.value.as_str())).collect()
}

/// Reads the body, at most `limit` bytes; `None` if there was more.
fn read_body(request: &mut tiny_http::Request, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut body = Vec::with_capacity(request.body_length().unwrap_or(0));
    request.as_reader().take(limit + 1).read_to_end(&mut body)?;
    Ok((body.len() as u64 <= limit).then_some(body))
}

fn respond(request: tiny_http::Request, response: Response) {
    let mut out = tiny_http::Response::from_data(response.body)
        .with_status_code(response.status)
        // Always send Content-Length, never chunked: simpler clients, exact HEAD answers.
        .with_chunked_threshold(usize::MAX);
    let headers = std::iter::once(("Content-Type", response.content_type.to_string()))
        .chain(response.headers);
    for (name, value) in headers {
        match tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            Ok(header) => out.add_header(header),
            Err(()) => crate::log!("dropped an invalid response header {name}"),
        }
    }
    if let Err(e) = request.respond(out) {
        crate::log!("could not send a response: {e}");
    }
}
