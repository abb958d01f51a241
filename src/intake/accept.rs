//! Accepting connections: one thread takes them from the listener, backs off when descriptors
//! run out, refuses those over `--max-connections` with a 503, and starts a thread for each of
//! the others ([`super::connection`]). It never reads from a client, so no client can hold it.

use super::answer::{ConnectionHeader, write_answer};
use super::connection::Connection;
use super::{ACCEPT_BACKOFF, CONNECTION_STACK, CONNECTION_THREAD, Event, Shared};
use crate::http::Response;
use crate::metrics::METRICS;
use std::io::{self, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::thread;
use std::time::{Duration, Instant};

pub(super) fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, events: &Sender<Event>) {
    let mut starved_since: Option<Instant> = None;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some(since) = starved_since.take() {
                    crate::log!("accepting again after {:.1} s", since.elapsed().as_secs_f64());
                }
                admit(stream, shared, events);
            }
            Err(e) if is_out_of_resources(&e) => {
                if starved_since.is_none() {
                    crate::log!(
                        "cannot accept connections: {e}; retrying every {} ms (raise `ulimit -n` \
                         or --max-connections below it)",
                        ACCEPT_BACKOFF.as_millis()
                    );
                    starved_since = Some(Instant::now());
                }
                thread::sleep(ACCEPT_BACKOFF);
            }
            Err(e) if is_listener_broken(&e) => {
                let _ = events.send(Event::ListenerFailed(e));
                return;
            }
            // A connection that failed before we took it (reset, aborted, a network error):
            // Linux reports those through accept; the listener is fine.
            Err(_) => thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: the process or the system is out of something that frees up.
fn is_out_of_resources(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// EBADF, EINVAL, ENOTSOCK, EFAULT: the listening socket itself is unusable.
fn is_listener_broken(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(9 | 22 | 88 | 14))
}

/// Starts a thread for `stream`, or refuses it with 503 when `max_connections` are open.
fn admit(stream: TcpStream, shared: &Arc<Shared>, events: &Sender<Event>) {
    let open = OpenConnection::count(shared);
    if open.at_start > shared.limits.max_connections {
        let message = format!(
            "too many connections (the limit is {}); try again later",
            shared.limits.max_connections
        );
        METRICS.connection_refused();
        refuse(stream, &Response::error(503, &message));
        return;
    }
    let (shared, events) = (Arc::clone(shared), events.clone());
    let spawned = thread::Builder::new()
        .name(CONNECTION_THREAD.into())
        .stack_size(CONNECTION_STACK)
        .spawn(move || {
            let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                match Connection::new(stream, &shared, events) {
                    Ok(connection) => Some(connection.serve()),
                    // Out of descriptors for the outbox's handle: closed, as if never accepted.
                    Err(_) => {
                        METRICS.connection_refused();
                        None
                    }
                }
            }));
            // Uncounted before its socket closes: a client that saw the close and connects
            // again must find the slot free (--max-connections is exact, as tests/hostile.rs
            // checks).
            drop(open);
            match served {
                Ok(connection) => drop(connection),
                Err(_) => {
                    crate::log!("a connection thread panicked (see above); closed that connection")
                }
            }
        });
    if let Err(e) = spawned {
        METRICS.connection_refused();
        crate::log!("cannot start a thread for a new connection: {e}; closed it");
    }
}

/// Counts a connection as open from accept until dropped.
struct OpenConnection {
    shared: Arc<Shared>,
    at_start: usize,
}

impl OpenConnection {
    fn count(shared: &Arc<Shared>) -> OpenConnection {
        let at_start = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
        METRICS.connection_opened();
        OpenConnection { shared: Arc::clone(shared), at_start }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
        METRICS.connection_closed();
    }
}

/// Answers `response` and closes, without reading the request (the accept thread must not wait).
fn refuse(mut stream: TcpStream, response: &Response) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let mut out = Vec::new();
    write_answer(&mut out, response, false, ConnectionHeader::Close, None);
    let _ = stream.write_all(&out);
    let _ = stream.shutdown(Shutdown::Write);
}
