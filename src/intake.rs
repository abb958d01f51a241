//! The HTTP intake: sockets in, whole requests out, answers back in order. Standard library
//! only; the only module that touches a socket on the server side.
//!
//! ```text
//!   accept thread            one thread per connection               main thread (server.rs)
//!   -------------            -------------------------               -----------------------
//!   accept, backing off  --> read and check the header, the body     recv a Job, handle it
//!   when out of fds;         (timeouts, limits, auth, 413 early) --> against the map and log,
//!   refuse over the cap      submit whole requests as Jobs            job.respond(answer)
//!                            write the answers back in order     <--
//! ```
//!
//! The invariant: **the main thread never waits for a client.** Everything that can be slow or
//! hostile (a trickled header, a slow upload, a client that does not read its answer) happens on
//! that client's own thread, under a timeout, before the request becomes a [`Job`] or after its
//! answer leaves the main thread. The main thread only ever sees complete requests, so one slow
//! client can delay nobody else, and the map and log keep a single owner, as the design asks.
//!
//! # Limits (all in [`Limits`], all in the README's "Security and limits")
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
//! dropped for a moment (a "lingering close"), so that the client reads the error instead of a
//! connection reset.
//!
//! # Metrics and the request log
//! Each connection thread counts the answers it writes (`walkv_http_requests_total` and
//! `walkv_http_request_duration_seconds`, from the arrival of a request's first byte to the
//! moment its answer is handed to the socket), refusals included, and, with `--log-requests`,
//! queues their log lines ([`crate::request_log`]), so that the main thread does neither. A
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

use crate::auth::Auth;
use crate::http::{self, Response};
use crate::metrics::{METRICS, Method};
use crate::request_log::{self, RequestLog};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

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
/// How long a lingering close reads and drops what the client still sends.
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
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// What the intake hands the main thread.
pub enum Event {
    Request(Job),
    /// The listening socket failed in a way retrying cannot fix; nothing more will be accepted.
    ListenerFailed(io::Error),
}

/// One complete request, waiting for its answer.
pub struct Job {
    head: Head,
    pub body: Vec<u8>,
    /// A JSON write body, parsed here on the connection's thread (then `body` is empty).
    pub prepared: Option<Box<http::Prepared>>,
    /// Returned to the body budget when the job is dropped.
    _reserved: Reservation,
    id: u64,
    answers: Sender<(u64, Response)>,
    unwritten: Arc<AtomicUsize>,
}

impl Job {
    pub fn method(&self) -> &str {
        self.head.method()
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

    /// Hands the answer to the connection's thread, which writes it. If the connection is gone
    /// already, the answer is dropped: nobody is left to read it.
    pub fn respond(self, response: Response) {
        self.unwritten.fetch_add(1, Ordering::SeqCst);
        if self.answers.send((self.id, response)).is_err() {
            self.unwritten.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The running intake: the receiving end of its events.
pub struct Intake {
    events: Receiver<Event>,
    /// Answers handed to connection threads and not yet written (or given up on).
    unwritten: Arc<AtomicUsize>,
}

impl Intake {
    /// Starts accepting on `listener`. `auth` is checked on each connection's thread, before
    /// bodies are read. With `log`, every answer gets a line in the request log.
    pub fn start(
        listener: TcpListener,
        limits: Limits,
        auth: Arc<Auth>,
        log: Option<RequestLog>,
    ) -> io::Result<Intake> {
        let (events, receiver) = mpsc::channel();
        let unwritten = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            limits,
            auth,
            open: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            budget: Budget::new(BODY_BUDGET),
            unwritten: Arc::clone(&unwritten),
            log,
        });
        thread::Builder::new()
            .name("walkv-accept".into())
            .spawn(move || accept_loop(&listener, &shared, &events))?;
        Ok(Intake { events: receiver, unwritten })
    }

    /// Before the process exits: waits (at most `limit`) until every answer already given to
    /// [`Job::respond`] has been written, so that a stopping server still delivers them.
    pub fn finish_writing(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.unwritten.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }

    /// The next event if one is already waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.events.try_recv().ok()
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
}

// ---------------------------------------------------------------------------------------------
// Accepting

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, events: &Sender<Event>) {
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
            let _open = open;
            let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Connection::new(stream, &shared, events).serve()
            }));
            if served.is_err() {
                crate::log!("a connection thread panicked (see above); closed that connection");
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

// ---------------------------------------------------------------------------------------------
// One connection

/// Why a connection ends. `Refused` still sends an answer first.
enum End {
    /// The client closed, went idle too long, or the socket failed: nothing to say.
    Quietly,
    /// Answer this (with `Connection: close`), then close.
    Refused(Response),
}

type Step<T> = Result<T, End>;

struct Connection {
    stream: TcpStream,
    shared: Arc<Shared>,
    events: Sender<Event>,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
    /// The read timeout currently set on the socket (set again only when it changes).
    timeout: Option<Duration>,
    answers: Receiver<(u64, Response)>,
    answer_to: Sender<(u64, Response)>,
    /// Requests handed over and not yet answered, oldest first.
    waiting: VecDeque<Waiting>,
    next_id: u64,
    /// This connection's number in the process (`conn=` in the request log).
    number: u64,
    /// The request whose head was read last, until it is handed over (or refused).
    current: Option<Seen>,
}

/// What writing an answer needs to remember about its request.
struct Waiting {
    id: u64,
    head_only: bool,
    connection: ConnectionHeader,
    seen: Seen,
}

/// The `Connection` field of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnectionHeader {
    /// `Connection: close`: this is the last answer on the connection.
    Close,
    /// `Connection: keep-alive`: an HTTP/1.0 client asked to keep it, and it is kept. A 1.0
    /// client (`ab -k`) reuses the connection only when the answer says so.
    KeepAlive,
    /// Nothing: HTTP/1.1 keeps connections by default.
    Omit,
}

/// What the metrics and the request log need to know about a request. Small on purpose
/// (32 bytes): it travels with every request, and the rare parts sit behind one box.
struct Seen {
    method: Method,
    /// When its head began to arrive (when it was found, for a pipelined request).
    arrived: Instant,
    /// Only with a request id to echo or the request log on.
    extra: Option<Box<Extra>>,
}

impl Seen {
    fn request_id(&self) -> Option<&str> {
        self.extra.as_ref().map(|extra| &*extra.request_id)
    }
}

/// The request id, and what the request log says about a request besides its answer.
struct Extra {
    /// Echoed as `X-Request-ID`: the client's if sane; made up if the request log is on.
    request_id: Box<str>,
    /// Only with the request log on.
    logged: Option<Logged>,
}

struct Logged {
    method: String,
    /// The request target, cut to [`request_log::MAX_PATH`] bytes.
    path: String,
    trunc: bool,
    in_bytes: u64,
}

/// A parsed request head: the head's text, kept whole (field names lowercased in place), and
/// where its parts are in it. One allocation for the text and one for the field positions,
/// however many fields there are.
#[derive(Debug, PartialEq)]
struct Head {
    text: String,
    method: Range<usize>,
    /// In origin form (`/path?query`), still percent-encoded.
    target: Range<usize>,
    fields: Vec<(Range<usize>, Range<usize>)>,
    keep_alive: bool,
    /// The request said HTTP/1.0.
    http10: bool,
    framing: Framing,
    expect_continue: bool,
}

impl Head {
    fn method(&self) -> &str {
        &self.text[self.method.clone()]
    }

    fn target(&self) -> &str {
        &self.text[self.target.clone()]
    }

    fn path(&self) -> &str {
        self.target().split_once('?').map_or(self.target(), |(path, _)| path)
    }

    /// The value of the first field called `name` (lowercase), if any.
    fn field(&self, name: &str) -> Option<&str> {
        let (_, value) = self
            .fields
            .iter()
            .find(|(n, _)| n.len() == name.len() && self.text.get(n.clone()) == Some(name))?;
        self.text.get(value.clone())
    }

    /// (lowercased name, value) of every field, in order.
    fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (&self.text[n.clone()], &self.text[v.clone()]))
    }
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

impl Connection {
    fn new(stream: TcpStream, shared: &Arc<Shared>, events: Sender<Event>) -> Connection {
        let (answer_to, answers) = mpsc::channel();
        Connection {
            stream,
            shared: Arc::clone(shared),
            events,
            buf: Vec::new(),
            timeout: None,
            answers,
            answer_to,
            waiting: VecDeque::new(),
            next_id: 0,
            number: shared.accepted.fetch_add(1, Ordering::Relaxed) + 1,
            current: None,
        }
    }

    fn serve(mut self) {
        // Small answers leave at once rather than waiting for an ACK (Nagle's algorithm).
        let _ = self.stream.set_nodelay(true);
        let _ = self.stream.set_write_timeout(Some(self.shared.limits.write_timeout));
        let end = loop {
            match self.next_request() {
                Ok(true) => {}
                Ok(false) => break End::Quietly,
                Err(end) => break end,
            }
        };
        let flushed = self.write_answers();
        if let (End::Refused(response), Ok(())) = (end, flushed) {
            // The refused request's head, if it was read; else one that never got that far.
            let seen = self.current.take().unwrap_or_else(|| self.seen(None, Instant::now()));
            let mut out = Vec::new();
            write_answer(&mut out, &response, false, ConnectionHeader::Close, seen.request_id());
            let written = self.stream.write_all(&out).is_ok();
            self.account(&seen, &response, false, Instant::now(), SystemTime::now());
            if written {
                self.linger_close();
            }
        }
    }

    /// What is known of a request once its head is read (`None`: it could not be).
    fn seen(&self, head: Option<&Head>, arrived: Instant) -> Seen {
        let log = self.shared.log.is_some();
        let client_id = head.and_then(|h| h.field("x-request-id"));
        let request_id: Option<Box<str>> = match client_id.filter(|id| request_log::is_sane_id(id))
        {
            Some(id) => Some(id.into()),
            None if log => Some(request_log::new_id().into()),
            None => None,
        };
        let logged = log.then(|| {
            let (method, target) = head.map_or(("-", "-"), |h| (h.method(), h.target()));
            let (path, trunc) = request_log::cut(target);
            Logged {
                method: request_log::cut(method).0.to_string(),
                path: path.to_string(),
                trunc,
                in_bytes: 0,
            }
        });
        let extra = request_id.map(|request_id| Box::new(Extra { request_id, logged }));
        let method = head.map_or(Method::Other, |h| Method::from_name(h.method()));
        Seen { method, arrived, extra }
    }

    /// Counts an answer that is being written, and logs it if the request log is on.
    fn account(
        &self,
        seen: &Seen,
        response: &Response,
        head_only: bool,
        answered: Instant,
        now: SystemTime,
    ) {
        let took = answered.saturating_duration_since(seen.arrived);
        METRICS.answered(seen.method, response.status, took);
        let extra = seen.extra.as_deref();
        if let (Some(log), Some(Extra { request_id, logged: Some(logged) })) =
            (&self.shared.log, extra)
        {
            log.submit(&request_log::Entry {
                time: now,
                id: request_id,
                method: &logged.method,
                path: &logged.path,
                trunc: logged.trunc,
                status: response.status,
                in_bytes: logged.in_bytes,
                out_bytes: if head_only { 0 } else { response.body.len() as u64 },
                took,
                conn: self.number,
            });
        }
    }

    /// Reads one request and hands it over. `Ok(false)`: the connection is done, cleanly.
    fn next_request(&mut self) -> Step<bool> {
        let Some((head, arrived)) = self.read_head()? else {
            return Ok(false);
        };
        self.current = Some(self.seen(Some(&head), arrived));
        let has_body = head.framing != Framing::None;
        if self.shared.auth.is_required()
            && !http::is_probe(head.method(), head.path())
            && !self.shared.auth.allows(&head.fields().collect::<Vec<_>>())
        {
            let answer = http::unauthorized();
            if has_body {
                return Err(End::Refused(answer));
            }
            self.hand_over_answer(answer, &head)?;
            return Ok(head.keep_alive);
        }
        let limit = http::body_limit(head.method(), head.path());
        if let Framing::Length(n) = head.framing
            && n > limit
        {
            return Err(End::Refused(http::too_large(limit)));
        }
        // Body memory is taken from the budget as the bytes arrive, not as announced: a slow
        // upload holds what it has sent, so a few of them cannot reserve the whole budget
        // before sending anything (eight chunked uploads once held all 64 MiB).
        let mut reserved = self.shared.budget.nothing();
        if head.expect_continue && has_body {
            self.write_answers()?;
            self.write_raw(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let body = match head.framing {
            Framing::None => Vec::new(),
            Framing::Length(n) => self.read_body(n, &mut reserved)?,
            Framing::Chunked => self.read_chunked(limit, &mut reserved)?,
        };
        let keep_alive = head.keep_alive;
        self.hand_over(head, body, reserved)?;
        if !keep_alive {
            return Ok(false);
        }
        if self.buf.capacity() > KEEP_BUFFER && self.buf.len() <= KEEP_BUFFER {
            self.buf.shrink_to(KEEP_BUFFER);
        }
        Ok(true)
    }

    /// Passes the request to the main thread. Answers are written when no further request is
    /// already waiting in the buffer, or when [`MAX_PIPELINE`] are outstanding.
    fn hand_over(&mut self, head: Head, body: Vec<u8>, reserved: Reservation) -> Step<()> {
        let extra = self.current.as_mut().and_then(|seen| seen.extra.as_mut());
        if let Some(logged) = extra.and_then(|extra| extra.logged.as_mut()) {
            logged.in_bytes = body.len() as u64;
        }
        let id = self.await_answer(&head);
        // The main thread does only map and log work: a JSON write body is parsed here.
        let prepared = http::prepare(head.method(), head.path(), &body).map(Box::new);
        let body = if prepared.is_some() { Vec::new() } else { body };
        let job = Job {
            head,
            body,
            prepared,
            _reserved: reserved,
            id,
            answers: self.answer_to.clone(),
            unwritten: Arc::clone(&self.shared.unwritten),
        };
        if self.events.send(Event::Request(job)).is_err() {
            return Err(End::Quietly); // the server is stopping
        }
        if self.buf.is_empty() || self.waiting.len() >= MAX_PIPELINE {
            self.write_answers()?;
        }
        Ok(())
    }

    /// Queues an answer the connection gives itself (a 401 without a body), in order.
    fn hand_over_answer(&mut self, response: Response, head: &Head) -> Step<()> {
        let id = self.await_answer(head);
        self.shared.unwritten.fetch_add(1, Ordering::SeqCst);
        let _ = self.answer_to.send((id, response));
        if self.buf.is_empty() {
            self.write_answers()?;
        }
        Ok(())
    }

    /// Queues the request's place in the answer order (with what [`Connection::current`] saw
    /// of it); its id.
    fn await_answer(&mut self, head: &Head) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let seen = self.current.take().unwrap_or_else(|| self.seen(Some(head), Instant::now()));
        let head_only = seen.method == Method::Head;
        let connection = match (head.keep_alive, head.http10) {
            (false, _) => ConnectionHeader::Close,
            (true, true) => ConnectionHeader::KeepAlive,
            (true, false) => ConnectionHeader::Omit,
        };
        self.waiting.push_back(Waiting { id, head_only, connection, seen });
        id
    }

    /// Waits for the answers to every request handed over, and writes them in request order.
    fn write_answers(&mut self) -> Step<()> {
        if self.waiting.is_empty() {
            return Ok(());
        }
        // Answers can arrive out of order (some wait for an fsync, some do not).
        let mut ready = Vec::with_capacity(self.waiting.len());
        while ready.len() < self.waiting.len() {
            match self.answers.recv() {
                Ok(answer) => ready.push(answer),
                Err(_) => return Err(End::Quietly), // unreachable: we hold a sender
            }
        }
        // "Handed back": the answers leave together, now (a pipelined answer waits for those
        // before it, as its client does).
        let answered = Instant::now();
        let count = ready.len();
        let mut out = Vec::new();
        let now =
            if self.shared.log.is_some() { SystemTime::now() } else { SystemTime::UNIX_EPOCH };
        while let Some(w) = self.waiting.pop_front() {
            if let Some(at) = ready.iter().position(|(id, _)| *id == w.id) {
                let (_, response) = ready.swap_remove(at);
                write_answer(&mut out, &response, w.head_only, w.connection, w.seen.request_id());
                self.account(&w.seen, &response, w.head_only, answered, now);
            }
        }
        let written = self.write_raw(&out);
        self.shared.unwritten.fetch_sub(count, Ordering::SeqCst);
        written
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Step<()> {
        self.stream.write_all(bytes).map_err(|_| End::Quietly)
    }

    /// Reads until a whole head is in the buffer, then parses and removes it. `None`: the client
    /// closed (or stayed idle past `idle_timeout`) between requests.
    fn read_head(&mut self) -> Step<Option<(Head, Instant)>> {
        let mut scanned = 0;
        let mut started: Option<Instant> = None;
        loop {
            skip_empty_lines(&mut self.buf);
            if let Some(end) = find_head_end(&self.buf, scanned) {
                // The limit is on the head, however its bytes arrived (one burst or a trickle).
                if end > MAX_HEAD_BYTES {
                    return Err(End::Refused(head_too_large()));
                }
                let head = parse_head(&self.buf[..end]).map_err(End::Refused)?;
                self.buf.drain(..end);
                return Ok(Some((head, started.unwrap_or_else(Instant::now))));
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(End::Refused(head_too_large()));
            }
            scanned = self.buf.len().saturating_sub(2);
            // Never wait on the socket while answers are owed: a pipelining client may be
            // waiting for them before it sends more.
            self.write_answers()?;
            if started.is_none() && self.buf.is_empty() {
                if !self.wait_for_next_request()? {
                    return Ok(None);
                }
                started = Some(Instant::now());
                continue;
            }
            let header_timeout = self.shared.limits.header_timeout;
            let wait =
                started.map_or(header_timeout, |at| header_timeout.saturating_sub(at.elapsed()));
            match self.read_more(wait) {
                Ok(0) => return Ok(None),
                Ok(_) => {
                    started.get_or_insert_with(Instant::now);
                }
                Err(e) if is_timeout(&e) => {
                    return Err(End::Refused(Response::error(
                        408,
                        &format!(
                            "the request header did not arrive within {} s",
                            header_timeout.as_secs_f64()
                        ),
                    )));
                }
                Err(_) => return Ok(None),
            }
        }
    }

    /// Waits up to `idle_timeout` for the first bytes of the next request, holding no buffer
    /// meanwhile (an idle connection costs its thread's stack and nothing on the heap). A
    /// request that fits in [`FIRST_READ`] bytes, as most do, needs no further read. `false`:
    /// the client closed, stayed idle too long, or the socket failed.
    fn wait_for_next_request(&mut self) -> Step<bool> {
        self.buf = Vec::new();
        self.set_read_timeout(self.shared.limits.idle_timeout);
        let mut first = [0u8; FIRST_READ];
        loop {
            match self.stream.read(&mut first) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&first[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Ok(false),
            }
        }
    }

    /// Reads a `Content-Length` body of `n` bytes (already checked against the limit), taking
    /// its memory from the budget [`BODY_STEP`] at a time as the bytes arrive.
    fn read_body(&mut self, n: u64, reserved: &mut Reservation) -> Step<Vec<u8>> {
        let n = usize::try_from(n).map_err(|_| End::Quietly)?;
        let from_buf = n.min(self.buf.len());
        self.hold(reserved, from_buf)?;
        // Address space for all of it (n is within the limit), memory only as it is filled:
        // the pages of a large allocation are not resident until written.
        let mut body = Vec::with_capacity(n);
        body.extend(self.buf.drain(..from_buf));
        if body.len() < n {
            self.write_answers()?;
            self.set_read_timeout(self.shared.limits.body_timeout);
        }
        while body.len() < n {
            let filled = body.len();
            let step = (n - filled).min(BODY_STEP);
            self.hold(reserved, filled + step)?;
            body.resize(filled + step, 0);
            let got = loop {
                match self.stream.read(&mut body[filled..]) {
                    Ok(0) => return Err(End::Quietly),
                    Ok(got) => break got,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if is_timeout(&e) => return Err(self.body_timed_out()),
                    Err(_) => return Err(End::Quietly),
                }
            };
            body.truncate(filled + got);
        }
        Ok(body)
    }

    /// Reads a chunked body, at most `limit` bytes of data, and the trailer after it; its memory
    /// is taken from the budget as the data arrives.
    fn read_chunked(&mut self, limit: u64, reserved: &mut Reservation) -> Step<Vec<u8>> {
        let mut body = Vec::new();
        let mut decoder = Chunked::default();
        loop {
            // Decoding moves at most what is buffered into the body, and never past the limit.
            let most =
                (body.len() + self.buf.len()).min(usize::try_from(limit).unwrap_or(usize::MAX));
            self.hold(reserved, most)?;
            match decoder.decode(&mut self.buf, &mut body, limit) {
                Ok(true) => return Ok(body),
                Ok(false) => {}
                Err(response) => return Err(End::Refused(response)),
            }
            self.write_answers()?;
            match self.read_more(self.shared.limits.body_timeout) {
                Ok(0) => return Err(End::Quietly),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Err(self.body_timed_out()),
                Err(_) => return Err(End::Quietly),
            }
        }
    }

    /// Makes `reserved` cover at least `bytes`, waiting up to the body timeout for the budget;
    /// 503 if it stays spent.
    fn hold(&mut self, reserved: &mut Reservation, bytes: usize) -> Step<()> {
        if reserved.grow_to(bytes as u64, self.shared.limits.body_timeout) {
            return Ok(());
        }
        Err(End::Refused(Response::error(
            503,
            "too many request bodies in flight; try again later",
        )))
    }

    fn body_timed_out(&self) -> End {
        let secs = self.shared.limits.body_timeout.as_secs_f64();
        End::Refused(Response::error(408, &format!("the request body stalled for {secs} s")))
    }

    /// Appends what the socket has (waiting at most `wait`); the count read, 0 at end of stream.
    fn read_more(&mut self, wait: Duration) -> io::Result<usize> {
        self.set_read_timeout(wait);
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let read = loop {
            match self.stream.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        self.buf.truncate(old + *read.as_ref().unwrap_or(&0));
        read
    }

    fn set_read_timeout(&mut self, wait: Duration) {
        // A zero timeout means "none" to the OS; the smallest real one stands in for it.
        let wait = Some(wait.max(Duration::from_millis(1)));
        if self.timeout != wait {
            let _ = self.stream.set_read_timeout(wait);
            self.timeout = wait;
        }
    }

    /// After an error: stop writing, then read and drop what the client still sends for a
    /// moment, so that closing does not reset the connection before the client read the answer.
    fn linger_close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let until = Instant::now() + LINGER;
        let mut sink = [0u8; 4096];
        let mut dropped = 0usize;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            let _ = self.stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match self.stream.read(&mut sink) {
                Ok(n) if n > 0 && dropped < (1 << 20) => dropped += n,
                _ => return,
            }
        }
    }
}

impl Drop for Connection {
    /// Answers that arrived for a connection that is going away count as given up on.
    fn drop(&mut self) {
        let dropped = self.answers.try_iter().count();
        self.shared.unwritten.fetch_sub(dropped, Ordering::SeqCst);
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

// ---------------------------------------------------------------------------------------------
// Parsing (pure functions, tested without sockets)

/// Removes blank lines before a request line (RFC 9112 §2.2 asks servers to ignore them).
fn skip_empty_lines(buf: &mut Vec<u8>) {
    let blank = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    if blank > 0 {
        buf.drain(..blank);
    }
}

/// The length of the head (through its blank line) if it is all in `buf`. `from`: bytes before
/// this were already searched (an optimisation for heads that arrive in pieces).
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(at) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + at;
        match buf.get(nl + 1..)? {
            [b'\n', ..] => return Some(nl + 2),
            [b'\r', b'\n', ..] => return Some(nl + 3),
            [b'\r'] | [] => return None,
            _ => i = nl + 1,
        }
    }
    None
}

fn head_too_large() -> Response {
    Response::error(431, &format!("request header is over the limit of {MAX_HEAD_BYTES} bytes"))
}

fn bad_request(message: &str) -> Response {
    Response::error(400, message)
}

/// Parses a whole head (request line, header fields, blank line).
fn parse_head(bytes: &[u8]) -> Result<Head, Response> {
    let mut text = String::from_utf8(bytes.to_vec()).map_err(|_| {
        bad_request(
            "the request header is not UTF-8; percent-encode every byte of the target that is \
             not printable ASCII",
        )
    })?;
    let mut lines = line_spans(&text);
    let request_line = lines.next().unwrap_or(0..0);
    let [method, target, version] = split_request_line(&text, request_line)?;
    if method.is_empty() || !text[method.clone()].bytes().all(is_token_byte) {
        return Err(bad_request("the method is not a valid HTTP token"));
    }
    let http11 = match &text[version] {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        // A later 1.x is answered as the highest 1.x we know (RFC 9110 2.5).
        v if v.len() == 8 && v.starts_with("HTTP/1.") && v.as_bytes()[7].is_ascii_digit() => true,
        v if v.starts_with("HTTP/") => {
            return Err(Response::error(505, "only HTTP/1.0 and HTTP/1.1 are supported"));
        }
        _ => return Err(bad_request("the request line must end with HTTP/1.1 or HTTP/1.0")),
    };
    let target = origin_form(&text, target)?;
    let mut fields = Vec::new();
    for line in lines.take_while(|line| !line.is_empty()) {
        if fields.len() == MAX_HEADERS {
            return Err(Response::error(431, &format!("more than {MAX_HEADERS} header fields")));
        }
        fields.push(parse_field(&text, line)?);
    }
    for (name, _) in &fields {
        text[name.clone()].make_ascii_lowercase(); // names are case-insensitive
    }
    let mut head = Head {
        text,
        method,
        target,
        fields,
        keep_alive: false,
        http10: !http11,
        framing: Framing::None,
        expect_continue: false,
    };
    head.framing = framing(&head)?;
    if needs_body(&head) && !has_framing(&head) {
        return Err(Response::error(
            411,
            "this request needs a body, framed by Content-Length (or Transfer-Encoding: \
             chunked); an empty one is Content-Length: 0",
        ));
    }
    head.keep_alive = if http11 {
        !tokens(&head, "connection").any(|t| t.eq_ignore_ascii_case("close"))
    } else {
        tokens(&head, "connection").any(|t| t.eq_ignore_ascii_case("keep-alive"))
    };
    if tokens(&head, "expect").any(|t| !t.eq_ignore_ascii_case("100-continue")) {
        return Err(Response::error(417, "the only expectation understood is 100-continue"));
    }
    head.expect_continue = http11 && tokens(&head, "expect").next().is_some();
    Ok(head)
}

/// The lines of `text` as positions, without their `\n` or `\r\n`.
fn line_spans(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let bytes = text.as_bytes();
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let end =
            bytes[start..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| start + i);
        let line = start..if end > start && bytes[end - 1] == b'\r' { end - 1 } else { end };
        start = end + 1;
        Some(line)
    })
}

/// `METHOD TARGET VERSION`, exactly three parts separated by single spaces.
fn split_request_line(text: &str, line: Range<usize>) -> Result<[Range<usize>; 3], Response> {
    let malformed = || bad_request("the request line must be `METHOD TARGET HTTP/1.1`");
    let mut parts = [0..0, 0..0, 0..0];
    let mut start = line.start;
    for (i, part) in parts.iter_mut().enumerate() {
        let rest = &text.as_bytes()[start..line.end];
        let end = match rest.iter().position(|&b| b == b' ') {
            Some(at) if i < 2 => start + at,
            None if i == 2 => line.end,
            _ => return Err(malformed()),
        };
        *part = start..end;
        start = end + 1;
    }
    Ok(parts)
}

/// The request target in origin form (`/path?query`). An absolute-form target
/// (`http://host/path`, which RFC 9112 requires servers to accept) is reduced to its path.
fn origin_form(text: &str, target: Range<usize>) -> Result<Range<usize>, Response> {
    let raw = &text[target.clone()];
    let skip = match raw.split_once("://").filter(|_| !raw.starts_with('/')) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            scheme.len() + 3 + rest.find('/').unwrap_or(rest.len())
        }
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(bad_request(
                "the request target is an https:// URL, but this is plain HTTP (walkv has no \
                 TLS); send a path such as /v1/key",
            ));
        }
        _ => 0,
    };
    let path = target.start + skip..target.end;
    let text_of_path = &text[path.clone()];
    if text_of_path.is_empty() && skip > 0 {
        return Err(bad_request("an absolute request target needs a path, at least /"));
    }
    if !text_of_path.starts_with('/') {
        return Err(bad_request("the request target must be a path starting with /"));
    }
    if !text_of_path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad_request(
            "the request target holds a byte that is not printable ASCII; percent-encode it \
             (UTF-8 bytes too: é is %C3%A9)",
        ));
    }
    Ok(path)
}

/// One `Name: value` line: the positions of the name and of the value without surrounding
/// spaces and tabs.
fn parse_field(text: &str, line: Range<usize>) -> Result<(Range<usize>, Range<usize>), Response> {
    let field = &text[line.clone()];
    if field.starts_with([' ', '\t']) {
        return Err(bad_request("folded header lines are not accepted"));
    }
    let Some(colon) = field.find(':') else {
        return Err(bad_request("a header line has no colon"));
    };
    let name = &field[..colon];
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(bad_request("a header name is not a valid HTTP token"));
    }
    let raw = &field[colon + 1..];
    let value = raw.trim_matches([' ', '\t']);
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(bad_request("a header value holds a control character"));
    }
    let value_start =
        line.start + colon + 1 + (raw.len() - raw.trim_start_matches([' ', '\t']).len());
    Ok((line.start..line.start + colon, value_start..value_start + value.len()))
}

/// The comma-separated, trimmed, non-empty tokens of every field called `name` (lowercase).
fn tokens<'a>(head: &'a Head, name: &'a str) -> impl Iterator<Item = &'a str> {
    head.fields()
        .filter(move |(n, _)| *n == name)
        .flat_map(|(_, v)| v.split(',').map(str::trim))
        .filter(|t| !t.is_empty())
}

/// How the body is delimited. Ambiguous framing is refused (the basis of request smuggling).
fn framing(head: &Head) -> Result<Framing, Response> {
    let has_length = head.fields().any(|(n, _)| n == "content-length");
    if tokens(head, "transfer-encoding").next().is_some() {
        if has_length {
            return Err(bad_request("both Transfer-Encoding and Content-Length were sent"));
        }
        let mut codings = tokens(head, "transfer-encoding");
        if !codings.next().is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
            || codings.next().is_some()
        {
            return Err(Response::error(501, "the only transfer coding accepted is chunked"));
        }
        return Ok(Framing::Chunked);
    }
    let mut length = None;
    let lengths = head.fields().filter(|(n, _)| *n == "content-length");
    for text in lengths.flat_map(|(_, v)| v.split(',')).map(str::trim) {
        let n = parse_decimal(text).ok_or_else(|| bad_request("Content-Length is not a number"))?;
        if length.is_some_and(|m| m != n) {
            return Err(bad_request("two different Content-Length values were sent"));
        }
        length = Some(n);
    }
    Ok(match length {
        None | Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
    })
}

/// A request whose body is its point: PUT, and the POSTs that write (`/v1/write`, `/v1/bulk`).
/// Without framing its body would silently be empty (RFC 9112 6.3 lets a server answer 411).
/// `POST /sync` and `POST /compact` take no body, so `curl -X POST` works for them as it is.
fn needs_body(head: &Head) -> bool {
    match head.method() {
        "PUT" => true,
        "POST" => matches!(head.path(), "/v1/write" | "/v1/bulk"),
        _ => false, // a GET, the most common request, costs one comparison here
    }
}

/// True if the head says how long its body is.
fn has_framing(head: &Head) -> bool {
    head.fields().any(|(n, _)| n == "content-length" || n == "transfer-encoding")
}

/// Digits only (no sign, no spaces), and no overflow.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Decodes `Transfer-Encoding: chunked` as bytes arrive, consuming them from the buffer.
#[derive(Default)]
struct Chunked {
    /// Data bytes still to come in the current chunk.
    in_chunk: u64,
    /// After a chunk's data: its CRLF is still to come.
    data_end: bool,
    /// After the last (empty) chunk: trailer fields until a blank line.
    trailers: bool,
    /// Trailer bytes seen, bounded like a head.
    trailer_bytes: usize,
}

impl Chunked {
    /// Moves what `buf` holds into `body`. `Ok(true)`: the body is complete.
    fn decode(
        &mut self,
        buf: &mut Vec<u8>,
        body: &mut Vec<u8>,
        limit: u64,
    ) -> Result<bool, Response> {
        let mut used = 0;
        let done = loop {
            let rest = &buf[used..];
            if self.in_chunk > 0 {
                let take = rest.len().min(usize::try_from(self.in_chunk).unwrap_or(usize::MAX));
                if take == 0 {
                    break false;
                }
                body.extend_from_slice(&rest[..take]);
                self.in_chunk -= take as u64;
                used += take;
                continue;
            }
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                if rest.len() > MAX_HEAD_BYTES {
                    return Err(bad_request("a chunk-size line is too long"));
                }
                break false;
            };
            let line = &rest[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            used += nl + 1;
            if self.data_end {
                if !line.is_empty() {
                    return Err(bad_request("chunk data is longer than its size"));
                }
                self.data_end = false;
            } else if self.trailers {
                self.trailer_bytes += nl + 1;
                if self.trailer_bytes > MAX_HEAD_BYTES {
                    return Err(Response::error(431, "the chunked trailer is too long"));
                }
                if line.is_empty() {
                    break true;
                }
            } else {
                let size = chunk_size(line)?;
                if size > limit.saturating_sub(body.len() as u64) {
                    return Err(http::too_large(limit));
                }
                if size == 0 {
                    self.trailers = true;
                } else {
                    self.in_chunk = size;
                    self.data_end = true;
                }
            }
        };
        buf.drain(..used);
        Ok(done)
    }
}

/// The hex size at the start of a chunk-size line (extensions after `;` are ignored).
fn chunk_size(line: &[u8]) -> Result<u64, Response> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits).unwrap_or("").trim_matches([' ', '\t']);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_request("a chunk size is not a hex number"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| bad_request("a chunk size is not a hex number"))
}

// ---------------------------------------------------------------------------------------------
// Answers

/// Appends the answer's bytes. Always `Content-Length`, never chunked: simpler clients, exact
/// HEAD answers. `connection` is the `Connection` field, if any; `request_id` (visible ASCII, checked by
/// [`request_log::is_sane_id`] or made by walkv) is echoed as `X-Request-ID`.
fn write_answer(
    out: &mut Vec<u8>,
    response: &Response,
    head_only: bool,
    connection: ConnectionHeader,
    request_id: Option<&str>,
) {
    // Plain appends rather than `write!`: formatting machinery was a tenth of a GET's cost.
    let body = if head_only { &[][..] } else { &response.body[..] };
    out.reserve(128 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(response.status));
    out.push(b' ');
    out.extend_from_slice(reason(response.status).as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(response.content_type.as_bytes());
    out.extend_from_slice(b"\r\n");
    if response.status != 304 {
        // A 304 never has a body, and its Content-Length could only be the 200's (RFC 9110 8.6).
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, response.body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(seq) = response.etag {
        out.extend_from_slice(b"ETag: \"");
        push_decimal(out, seq);
        out.extend_from_slice(b"\"\r\n");
    }
    for (name, value) in &response.headers {
        for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    }
    if let Some(id) = request_id {
        for part in [&b"X-Request-ID: "[..], id.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    }
    match connection {
        ConnectionHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
        ConnectionHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        ConnectionHeader::Omit => {}
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}

// ---------------------------------------------------------------------------------------------
// The body budget

/// Bytes of request bodies allowed in memory at once. A connection takes a body's memory from it
/// as the bytes arrive ([`BODY_STEP`] at a time) and waits (up to its body timeout) while the
/// budget is spent.
struct Budget {
    left: Mutex<u64>,
    freed: Condvar,
}

/// A reservation from the budget, given back when dropped.
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Budget {
    fn new(bytes: u64) -> Arc<Budget> {
        Arc::new(Budget { left: Mutex::new(bytes), freed: Condvar::new() })
    }

    /// A reservation of nothing yet, to grow.
    fn nothing(self: &Arc<Budget>) -> Reservation {
        Reservation { budget: Arc::clone(self), bytes: 0 }
    }

    /// Takes `bytes` from the budget, waiting at most `wait` for them. `None` if they never
    /// became free.
    #[cfg(test)]
    fn reserve(self: &Arc<Budget>, bytes: u64, wait: Duration) -> Option<Reservation> {
        let mut reservation = self.nothing();
        reservation.grow_to(bytes, wait).then_some(reservation)
    }

    /// Takes `bytes` more, waiting at most `wait`; false (taking nothing) if they never became
    /// free.
    fn take(&self, bytes: u64, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut left = self.left.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while *left < bytes {
            let Some(remaining) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            left = match self.freed.wait_timeout(left, remaining) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        *left -= bytes;
        true
    }
}

impl Reservation {
    /// Makes this reservation at least `bytes`, waiting at most `wait` for the budget; false if
    /// it stayed spent (the reservation is then unchanged).
    fn grow_to(&mut self, bytes: u64, wait: Duration) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        let more = bytes - self.bytes;
        if !self.budget.take(more, wait) {
            return false;
        }
        self.bytes = bytes;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut left = self.budget.left.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *left += self.bytes;
        self.budget.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Rng, knob};

    fn head(text: &str) -> Result<Head, Response> {
        let bytes = text.as_bytes();
        let end = find_head_end(bytes, 0).expect("a whole head");
        parse_head(&bytes[..end])
    }

    fn status_of(result: Result<Head, Response>) -> u16 {
        result.err().map_or(0, |r| r.status)
    }

    #[test]
    fn finds_the_end_of_a_head_with_crlf_or_lf() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nrest", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r", 0), None);
        // Searching again from where the last search stopped finds the same end.
        let full = b"GET / HTTP/1.1\r\nA: b\r\n\r\n";
        for from in 0..full.len() - 2 {
            assert_eq!(find_head_end(full, from), Some(full.len()), "from {from}");
        }
    }

    #[test]
    fn parses_a_request_head() {
        let h = head("PUT /v1/k?sync HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A:  b \r\n\r\n")
            .unwrap();
        assert_eq!((h.method(), h.target(), h.path()), ("PUT", "/v1/k?sync", "/v1/k"));
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive && !h.expect_continue);
        assert_eq!(h.fields().nth(2), Some(("x-a", "b")));
        let h =
            head("GET http://example.com/v1/a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert_eq!(h.target(), "/v1/a");
        assert!(h.keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().keep_alive);
        let h =
            head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
                .unwrap();
        assert_eq!((h.framing, h.expect_continue), (Framing::Chunked, true));
    }

    #[test]
    fn refuses_bad_heads_with_the_right_status() {
        let cases = [
            ("GET /\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\n\r\n", 505),
            ("GET / FTP/1.0\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\n\r\n", 400),
            ("GET nopath HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            ("GET / HTTP/1.1\r\nA: b\x01c\r\n\r\n", 400),
            ("PUT / HTTP/1.1\r\nContent-Length: 0\r\nExpect: teapot\r\n\r\n", 417),
            ("PUT /v1/k HTTP/1.1\r\n\r\n", 411),
            ("POST /v1/write HTTP/1.1\r\nHost: x\r\n\r\n", 411),
            ("POST /v1/bulk?sync HTTP/1.0\r\n\r\n", 411),
            ("GET / HTTP/1.x\r\n\r\n", 505),
            ("GET / HTTP/1.10\r\n\r\n", 505),
        ];
        for (text, status) in cases {
            assert_eq!(status_of(head(text)), status, "{text:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(status_of(head(&format!("GET / HTTP/1.1\r\n{many}\r\n"))), 431);
        for ok in [
            "PUT /v1/k HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "PUT /v1/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /sync HTTP/1.1\r\n\r\n",
            "POST /compact HTTP/1.1\r\n\r\n",
        ] {
            assert!(head(ok).is_ok(), "{ok:?}");
        }
        let h = head("GET / HTTP/1.2\r\n\r\n").unwrap();
        assert!(h.keep_alive && !h.http10, "a later 1.x is served as 1.1");
        let says = |text: &str| String::from_utf8(head(text).unwrap_err().body).unwrap();
        assert!(says("GET https://h/v1/k HTTP/1.1\r\n\r\n").contains("https:// URL"));
        assert!(says("GET /v1/caf\u{e9} HTTP/1.1\r\n\r\n").contains("percent-encode it"));
        assert!(says("PUT /v1/k HTTP/1.1\r\n\r\n").contains("Content-Length: 0"));
        let same = head("GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(same.unwrap().framing, Framing::Length(3));
    }

    /// Feeds `pieces` one at a time; the body and what is left after it (later pieces included).
    fn decode_all(pieces: &[&[u8]], limit: u64) -> Result<(Vec<u8>, Vec<u8>), u16> {
        let mut decoder = Chunked::default();
        let (mut buf, mut body) = (Vec::new(), Vec::new());
        for (i, piece) in pieces.iter().enumerate() {
            buf.extend_from_slice(piece);
            if decoder.decode(&mut buf, &mut body, limit).map_err(|r| r.status)? {
                buf.extend(pieces[i + 1..].concat());
                return Ok((body, buf));
            }
        }
        Err(0)
    }

    #[test]
    fn decodes_chunked_bodies_in_any_pieces() {
        let wire = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for cut in 0..wire.len() {
            let (body, rest) = decode_all(&[&wire[..cut], &wire[cut..]], 100).unwrap();
            assert_eq!(body, b"hello world");
            assert_eq!(rest, b"NEXT");
        }
        let one_at_a_time: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode_all(&one_at_a_time, 100).unwrap().0, b"hello world");
        assert_eq!(decode_all(&[b"b\r\nhello world\r\n0\r\n\r\n"], 10), Err(413));
        assert_eq!(decode_all(&[b"zz\r\n"], 10), Err(400));
        assert_eq!(decode_all(&[b"2\r\nabc\r\n"], 10), Err(400));
        assert_eq!(decode_all(&[b"ffffffffffffffffff\r\n"], 10), Err(400));
    }

    #[test]
    fn answers_are_well_formed() {
        let mut out = Vec::new();
        let mut r = Response::error(404, "key not found");
        r.headers.push(("Allow", "GET".into()));
        write_answer(&mut out, &r, false, ConnectionHeader::Close, None);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 25\r\n\
             Allow: GET\r\nConnection: close\r\n\r\n{\"error\":\"key not found\"}"
        );
        let mut out = Vec::new();
        write_answer(&mut out, &r, true, ConnectionHeader::Omit, None);
        assert!(out.ends_with(b"Allow: GET\r\n\r\n"), "HEAD: no body, length kept");
    }

    #[test]
    fn decimals_are_written_like_display() {
        for n in [0, 1, 9, 10, 99, 100, 413, 65_535, 1 << 20, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn the_budget_blocks_until_bytes_are_given_back() {
        let budget = Budget::new(100);
        let a = budget.reserve(60, Duration::ZERO).unwrap();
        assert!(budget.reserve(60, Duration::from_millis(20)).is_none());
        let waiter = {
            let budget = Arc::clone(&budget);
            thread::spawn(move || budget.reserve(60, Duration::from_secs(10)).is_some())
        };
        thread::sleep(Duration::from_millis(20));
        drop(a);
        assert!(waiter.join().unwrap());
        assert_eq!(*budget.left.lock().unwrap(), 100, "every reservation was given back");
    }

    /// Random and mutated heads and chunked bodies: never a panic, and a refusal is always an
    /// error status. `WALKV_FUZZ_ITERS` runs longer.
    #[test]
    fn random_and_mutated_input_never_panics() {
        let iters = knob("WALKV_FUZZ_ITERS", 20_000);
        let seeds: [&[u8]; 4] = [
            b"GET /v1/k HTTP/1.1\r\nHost: a\r\n\r\n",
            b"PUT /v1/k?sync HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
            b"POST /v1/write HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
            b"4\r\nabcd\r\n0\r\nX: y\r\n\r\n",
        ];
        let alphabet = b"\r\n :;,0123456789abcdefHTP/1.GETchunkedContent-Length\x00\xff\t";
        let mut rng = Rng::new(knob("WALKV_FUZZ_SEED", 1));
        for _ in 0..iters {
            let mut input = seeds[rng.below(seeds.len())].to_vec();
            for _ in 0..=rng.below(8) {
                let at = rng.below(input.len() + 1);
                let byte = alphabet[rng.below(alphabet.len())];
                match rng.below(3) {
                    0 if at < input.len() => input[at] = byte,
                    1 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => input.insert(at, byte),
                }
            }
            if let Some(end) = find_head_end(&input, 0)
                && let Err(r) = parse_head(&input[..end])
            {
                assert!(r.status >= 400, "{input:?}");
            }
            let mut buf = input.clone();
            let _ = Chunked::default().decode(&mut buf, &mut Vec::new(), 1 << 20);
        }
    }
}
