//! The HTTP intake: sockets in, whole requests out, answers back in order. Standard library
//! only; the only module that touches a socket on the server side.
//!
//! ```text
//!   accept thread            one thread per connection               main thread (server.rs)
//!   -------------            -------------------------               -----------------------
//!   accept, backing off  --> read and check the header, the body     recv a Job, handle it
//!   when out of fds;         (timeouts, limits, auth, 413 early) --> against the map and log,
//!   refuse over the cap      submit whole requests as Jobs,          job.respond(answer):
//!                            then read the next one                  written to the socket
//!                                                                    without waiting; a rest
//!                            flusher thread (only for a rest)  <--   the socket did not take
//!                            writes it, blocking, in order           goes to a flusher
//! ```
//!
//! The invariant: **the main thread never waits for a client.** Everything that can be slow or
//! hostile (a trickled header, a slow upload, a client that does not read its answer) happens on
//! that client's own threads, under a timeout, before the request becomes a [`Job`] or after
//! the socket stopped taking its answer. The main thread only ever sees complete requests and
//! writes only what the socket takes at once (`outbox.rs`), so one slow client can delay nobody
//! else, and the map and log keep a single owner, as the design asks.
//!
//! # Layout
//! - `accept.rs`: the accept thread, admission and the connection cap.
//! - `connection.rs`: one connection's thread, its state machine (read a head, a body, hand
//!   over) and its timeouts.
//! - `follow.rs`, `fanout.rs`: the change feed (`GET /changes`), served without the main
//!   thread: each reader catches up on its connection's thread, then one thread writes to all
//!   that follow.
//! - `outbox.rs`: where a connection's answers leave, in request order, written by the main
//!   thread without waiting, a rest by a flusher thread; the pipeline bound.
//! - `parse.rs`: request heads and chunked bodies, pure functions tested without sockets.
//! - `answer.rs`: the bytes of an answer.
//! - `budget.rs`: the shared body budget.
//! - This file: the limits and the types the main thread sees ([`Intake`], [`Event`], [`Job`]).
//!
//! # Limits (all in [`Limits`], all in docs/operations.md, "Security and limits")
//! - At most `max_connections` open connections; one over the cap gets a 503 and is closed.
//! - A request's header (request line and header fields) must arrive within `header_timeout` of
//!   its first byte and be at most [`MAX_HEAD_BYTES`] with at most [`MAX_HEADERS`] fields
//!   (431 otherwise); a connection waiting for its next request is closed after `idle_timeout`.
//! - A body is refused with 413 from its `Content-Length` before any of it is read; bodies that
//!   are read may pause at most `body_timeout` between bytes (408 then). Memory for bodies is
//!   taken from one shared budget of [`BODY_BUDGET`] bytes as they arrive (at most 64 KiB ahead),
//!   so a crowd of uploads waits for room instead of exhausting memory, and a slow upload holds
//!   only what it has sent.
//! - An answer that cannot be written within `write_timeout` closes the connection.
//! - A bearer token, when configured, is checked from the header before any body byte is read.
//!
//! # HTTP handled
//! HTTP/1.0 and 1.1; keep-alive (1.1 by default, 1.0 on request); pipelining (up to
//! [`MAX_PIPELINE`] requests that have already arrived are handed over together, so they can share
//! a batch and an fsync, and are answered in order); `Content-Length` and chunked bodies;
//! `Expect: 100-continue`; HEAD answers without a body. A request with both `Content-Length` and
//! `Transfer-Encoding`, or two different lengths, is refused (400): such requests are how
//! request smuggling between proxies works. After an error that leaves a body unread, the answer
//! says `Connection: close`, the write side is shut, and what the client still sends is read and
//! dropped until it closes or pauses for `LINGER`, 2 s (a "lingering close", with no byte limit:
//! a client may send a whole 1 GiB body before it reads), so that the client reads the error instead of a
//! connection reset.
//!
//! # Metrics and the request log
//! Every answer is counted when it is handed to its connection's outbox
//! (`walkv_http_requests_total` and `walkv_http_request_duration_seconds`, from the arrival of a
//! request's first byte to that moment), refusals included, and, with `--log-requests`, its log
//! line is queued ([`crate::request_log`]): by the main thread for the answers it writes (a few
//! atomic additions, and with the request log on a queue push of an unformatted record, which
//! the log's own thread formats), by the connection's thread for its own. A
//! sane client `X-Request-ID` is echoed in the answer; with the request log on, a request
//! without one gets one made up, echoed too. The accept thread counts open and refused
//! connections ([`crate::metrics`]).
//!
//! # Failures
//! Running out of file descriptors (or memory for a socket) makes the accept thread wait
//! [`ACCEPT_BACKOFF`] and try again: connections queue in the kernel meanwhile and are accepted
//! once descriptors are free. An error that means the listening socket itself is unusable is
//! reported as [`Event::ListenerFailed`]. A panic in a connection thread (a bug) is caught and
//! closes that connection only; connection threads hold nothing shared that a panic could leave
//! half-changed.

mod accept;
mod answer;
mod budget;
mod connection;
mod date;
mod fanout;
mod follow;
mod outbox;
mod parse;
mod seen;

use crate::auth::Auth;
use crate::feed::Feed;
use crate::http::{self, Response};
use crate::request_log::RequestLog;
use crate::spin::{self, Spin};
use accept::accept_loop;
use budget::{Budget, Reservation};
use fanout::Fanout;
use outbox::{Outbox, ReplyTo};
use parse::Head;
use std::cell::Cell;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// Largest request head (request line and header fields). A maximal key, percent-encoded, is
/// 12 KiB of request line; 32 KiB leaves room for ordinary headers.
pub const MAX_HEAD_BYTES: usize = 32 << 10;
/// Most header fields in one request.
pub const MAX_HEADERS: usize = 100;
/// Most requests of one connection handed to the main thread before their answers are written.
pub const MAX_PIPELINE: usize = 16;
/// Bytes of request bodies that may be held in memory at once, across all connections.
pub const BODY_BUDGET: u64 = 64 << 20;
/// How long the accept thread waits before trying again when descriptors or memory ran out.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The name of connection threads (the panic hook tells them apart by it).
pub const CONNECTION_THREAD: &str = "walkv-conn";
/// How long a lingering close waits for more of what the client still sends before it closes.
const LINGER: Duration = Duration::from_secs(2);
/// Stack of a connection thread: it parses and copies bytes, nothing deep.
const CONNECTION_STACK: usize = 128 << 10;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 << 10;
/// A body's memory is taken from the budget at most this much ahead of the bytes that arrived.
const BODY_STEP: usize = 64 << 10;
/// The first read of a request, into the stack: room for a typical request.
const FIRST_READ: usize = 2048;
/// A connection's buffer is shrunk back after a request that made it larger than this.
const KEEP_BUFFER: usize = 64 << 10;

/// The intake's bounds. Every one is a `walkv serve` flag or a constant above.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_connections: usize,
    /// From the first byte of a request to the end of its header.
    pub header_timeout: Duration,
    /// The longest pause between bytes of a body.
    pub body_timeout: Duration,
    /// How long a connection may wait, idle, for its next request.
    pub idle_timeout: Duration,
    /// The longest pause while writing an answer.
    pub write_timeout: Duration,
    /// How long the main thread polls for its next request before it sleeps
    /// ([`crate::spin`]).
    pub spin: Duration,
    /// The longest silence on a change feed that follows: a heartbeat line is sent then.
    pub heartbeat: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            spin: Duration::from_micros(60),
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// What the intake hands the main thread.
// Nearly every event is a request: boxing the Job to shrink the rare variant would cost an
// allocation per request.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    Request(Job),
    /// Another thread has news for the main thread (the log's threads, see [`Intake::waker`]).
    Wake,
    /// The listening socket failed in a way retrying cannot fix; nothing more will be accepted.
    ListenerFailed(io::Error),
}

/// One complete request, waiting for its answer.
pub struct Job {
    head: Head,
    pub body: Vec<u8>,
    /// A JSON write body, parsed here on the connection's thread (then `body` is empty).
    pub prepared: Option<Box<http::Prepared>>,
    /// Returned to the body budget when the job is dropped or its body released.
    reserved: Option<Reservation>,
    /// How to answer; taken when answered (a job dropped unanswered gives its turn up).
    reply: Option<ReplyTo>,
    /// The next request was already in the connection's buffer when this one was handed over:
    /// the answer may wait for the end of the batch, to leave with the next ones.
    pipelined: bool,
    outbox: Arc<Outbox>,
}

impl Job {
    pub fn method(&self) -> &str {
        self.head.method()
    }

    /// The connection's number in the process: requests with the same number came in order on
    /// one connection (and are answered in that order).
    pub fn connection(&self) -> u64 {
        self.outbox.number()
    }

    /// Frees the body and gives its memory back to the budget: once the request has been
    /// handled, only its answer is left to send, which may wait (for the log).
    pub fn release_body(&mut self) {
        self.body = Vec::new();
        self.prepared = None;
        self.reserved = None;
    }

    /// The path (still percent-encoded) and the query string (without `?`), split.
    pub fn path_and_query(&self) -> (&str, Option<&str>) {
        match self.head.target().split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (self.head.target(), None),
        }
    }

    /// The header fields as borrowed (lowercased name, value) pairs, as [`http::Request`] wants.
    pub fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.head.fields().collect()
    }

    /// Writes the answer to the client, in request order and without waiting for the client:
    /// what the socket does not take at once is finished by another thread (see `outbox.rs`).
    /// If the connection is gone already, the answer is dropped: nobody is left to read it.
    pub fn respond(mut self, response: Response) {
        if let Some(reply) = self.reply.take() {
            self.outbox.answer(reply, &response, self.pipelined);
        }
    }

    /// [`Job::respond`] from a thread other than the main thread (the log's writer): never
    /// corked, since only the main thread writes corked answers out.
    pub fn respond_now(mut self, response: Response) {
        if let Some(reply) = self.reply.take() {
            self.outbox.answer(reply, &response, false);
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            self.outbox.skip(reply.id);
        }
    }
}

/// The running intake: the receiving end of its events.
pub struct Intake {
    events: Receiver<Event>,
    /// For [`Intake::waker`]: another way into the same queue.
    wake: mpsc::Sender<Event>,
    /// A [`Event::Wake`] is queued and not yet received.
    wake_queued: Arc<AtomicBool>,
    /// Answers handed to connection threads and not yet written (or given up on).
    unwritten: Arc<AtomicUsize>,
    /// Whether and how long the next wait polls before it sleeps.
    spin: Cell<Spin>,
}

impl Intake {
    /// Starts accepting on `listener`. `auth` is checked on each connection's thread, before
    /// bodies are read. With `log`, every answer gets a line in the request log. `feed`
    /// serves `GET /changes` on the connections' threads (without it, those requests go to the
    /// main thread like any other).
    pub fn start(
        listener: TcpListener,
        limits: Limits,
        auth: Arc<Auth>,
        log: Option<RequestLog>,
        feed: Option<Arc<Feed>>,
    ) -> io::Result<Intake> {
        let (events, receiver) = mpsc::channel();
        let wake_sender = events.clone();
        let heartbeat = limits.heartbeat;
        let unwritten = Arc::new(AtomicUsize::new(0));
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        let spin = Cell::new(Spin::new(limits.spin, cores));
        let shared = Arc::new(Shared {
            limits,
            auth,
            open: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            budget: Budget::new(BODY_BUDGET),
            unwritten: Arc::clone(&unwritten),
            log,
            feed: match feed {
                Some(feed) => Some((Arc::clone(&feed), Fanout::start(feed, heartbeat)?)),
                None => None,
            },
        });
        thread::Builder::new()
            .name("walkv-accept".into())
            .spawn(move || accept_loop(&listener, &shared, &events))?;
        Ok(Intake {
            events: receiver,
            wake: wake_sender,
            wake_queued: Arc::new(AtomicBool::new(false)),
            unwritten,
            spin,
        })
    }

    /// A function any thread may call to wake the main thread: it queues one [`Event::Wake`]
    /// (none more while one waits to be received, so that news never floods the queue).
    pub fn waker(&self) -> impl Fn() + Send + Sync + 'static {
        let (wake, queued) = (self.wake.clone(), Arc::clone(&self.wake_queued));
        move || {
            if !queued.swap(true, Ordering::AcqRel) {
                let _ = wake.send(Event::Wake); // the server is stopping: nobody to wake
            }
        }
    }

    /// Before the process exits: waits (at most `limit`) until every answer already given to
    /// [`Job::respond`] has been written, so that a stopping server still delivers them.
    pub fn finish_writing(&self, limit: Duration) {
        outbox::flush_deferred();
        let deadline = Instant::now() + limit;
        while self.unwritten.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The next event, waiting at most `timeout`: polling for a moment first, then asleep
    /// (see [`crate::spin`]). Pipelined answers corked in the last batch are written first.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        outbox::flush_deferred();
        let mut spin = self.spin.get();
        let window = spin.window();
        let mut caught = None;
        if !window.is_zero() {
            caught = spin::poll(window, || self.events.try_recv().ok());
            spin.polled(caught.is_some());
        }
        self.spin.set(spin);
        let event = caught.or_else(|| self.events.recv_timeout(timeout).ok());
        self.received(event)
    }

    /// Notes that a [`Event::Wake`] was received: the next news queues another.
    fn received(&self, event: Option<Event>) -> Option<Event> {
        if let Some(Event::Wake) = event {
            self.wake_queued.store(false, Ordering::Release);
        }
        event
    }

    /// The next event if one is already waiting; if none is, pipelined answers corked so far
    /// are written.
    pub fn try_recv(&self) -> Option<Event> {
        let event = self.events.try_recv().ok();
        if event.is_none() {
            outbox::flush_deferred();
        }
        self.received(event)
    }
}

/// What the accept thread shares with the connection threads.
struct Shared {
    limits: Limits,
    auth: Arc<Auth>,
    /// Connections open now.
    open: AtomicUsize,
    /// Connections accepted so far: the last one's number (`conn=` in the request log).
    accepted: AtomicU64,
    budget: Arc<Budget>,
    unwritten: Arc<AtomicUsize>,
    log: Option<RequestLog>,
    /// The change feed, and the thread that writes to its caught-up followers.
    feed: Option<(Arc<Feed>, Arc<Fanout>)>,
}
