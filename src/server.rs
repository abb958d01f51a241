//! The serving loop: the only module that knows tiny_http.
//!
//! One thread owns the map and answers requests in order:
//!
//! ```text
//!   tiny_http threads          main thread (this loop)                 sync thread
//!   ----------------           -----------------------                 -----------
//!   accept, parse headers ---> recv_timeout(100 ms)                    every --sync-interval:
//!                              check the stop flag                       lock the log
//!                              read the body (bounded)                   flush + fdatasync
//!                              http::handle -> Store -> Wal (mutex)      unlock
//!                              respond
//!   SIGINT/SIGTERM sets the stop flag; the loop ends, joins the sync thread, syncs once more, exits 0.
//! ```
//!
//! Why an explicit `recv_timeout` loop and not `incoming_requests()`: that iterator ends silently
//! on the first accept error (too many open files, say), and tiny_http's accept thread stops for
//! good after one. Here such an error ends [`run`] with [`Outcome::ListenerFailed`], so the process
//! exits non-zero and a supervisor can restart it, instead of living on deaf.
//!
//! Every request gets an answer: the body size is checked against [`http::body_limit`] from
//! `Content-Length` before anything is read (413), and bodies are read through a limit.

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

/// Everything `walkv serve` needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub bind: String,
    pub port: u16,
    pub data_dir: PathBuf,
    /// How often the log is fsynced. Cost: one fsync per interval. Risk: a power cut loses the
    /// writes acknowledged since the last sync (a killed process loses nothing).
    pub sync_interval: Duration,
}

/// How a server that started successfully ended.
#[derive(Debug)]
pub enum Outcome {
    /// Stopped by SIGINT or SIGTERM after a final flush and fsync.
    Stopped { last_synced_seq: u64 },
    /// tiny_http's accept thread failed and will accept nothing more; the log was synced.
    ListenerFailed(io::Error),
}

/// Opens the store, serves until told to stop, and syncs the log on the way out.
pub fn run(config: &Config) -> Result<Outcome, Error> {
    let started = Instant::now();
    let (mut store, recovery) = Store::open(&config.data_dir)?;
    report_recovery(config, &recovery, store.len(), started.elapsed());

    let addr = format!("{}:{}", config.bind, config.port);
    let server = tiny_http::Server::http(addr.as_str())
        .map_err(|e| Error::io(format!("listen on {addr}"), io::Error::other(e.to_string())))?;
    let stop = register_stop_signals()?;
    let (stop_sync, sync_thread) = spawn_sync_thread(store.shared_wal(), config.sync_interval);
    match server.server_addr().to_ip() {
        Some(bound) => crate::log!("listening on http://{bound}"),
        None => crate::log!("listening on {addr}"),
    }

    let mut outcome = None;
    while !stop.load(Ordering::Relaxed) {
        match server.recv_timeout(TICK) {
            Ok(Some(request)) => serve(&mut store, request),
            Ok(None) => {}
            Err(e) => {
                crate::log!("the listener failed and accepts no more connections: {e}");
                outcome = Some(Outcome::ListenerFailed(e));
                break;
            }
        }
    }

    drop(stop_sync);
    if sync_thread.join().is_err() {
        crate::log!("the sync thread panicked");
    }
    let last_synced_seq = store.sync()?;
    crate::log!("log synced through seq {last_synced_seq}; stopped");
    Ok(outcome.unwrap_or(Outcome::Stopped { last_synced_seq }))
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

/// Answers one request; never drops one unanswered.
fn serve(store: &mut Store, mut request: tiny_http::Request) {
    let method = request.method().as_str().to_owned();
    let target = request.url().to_owned();
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target.as_str(), None),
    };
    let limit = http::body_limit(&method, path);
    let response = if request.body_length().is_some_and(|n| n as u64 > limit) {
        http::too_large(limit)
    } else {
        match read_body(&mut request, limit) {
            Ok(Some(body)) => {
                let headers: Vec<(&str, &str)> = request
                    .headers()
                    .iter()
                    .map(|h| (h.field.as_str().as_str(), h.value.as_str()))
                    .collect();
                let req =
                    http::Request { method: &method, path, query, headers: &headers, body: &body };
                http::handle(store, &req)
            }
            Ok(None) => http::too_large(limit),
            Err(e) => Response::error(400, &format!("could not read the request body: {e}")),
        }
    };
    respond(request, response);
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
