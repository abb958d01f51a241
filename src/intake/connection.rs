//! One connection's thread: it reads requests (header, then body, under the timeouts and the
//! body budget) and hands each whole request to the main thread as a [`Job`]. Everything a
//! client can make slow on the way in happens here, never on the main thread. The answers leave
//! through the connection's [`Outbox`], mostly written by the main thread itself; this thread
//! writes only what it answers on its own (a 401, a refusal, `100 Continue`), through the same
//! outbox or after it is empty, so that the order stays the request order.

use super::answer::{ConnectionHeader, write_stream_head};
use super::budget::Reservation;
use super::fanout::{Fanout, Live};
use super::follow::{Ended, Follower};
use super::outbox::{Outbox, ReplyTo};
use super::parse::{
    Chunked, Framing, Head, find_head_end, head_too_large, parse_head, skip_empty_lines,
};
use super::seen::Seen;
use super::{
    BODY_STEP, Event, FIRST_READ, Job, KEEP_BUFFER, LINGER, MAX_HEAD_BYTES, READ_CHUNK, Shared,
};
use crate::feed::Feed;
use crate::http::{self, Response};
use crate::metrics::Method;
use crate::wal::history;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// Why a connection ends. `Refused` still sends an answer first.
enum End {
    /// The client closed, went idle too long, or the socket failed: nothing to say.
    Quietly,
    /// Answer this (with `Connection: close`), then close.
    Refused(Response),
}

type Step<T> = Result<T, End>;

pub(super) struct Connection {
    stream: TcpStream,
    shared: Arc<Shared>,
    events: Sender<Event>,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
    /// The read timeout currently set on the socket (set again only when it changes).
    timeout: Option<Duration>,
    /// Where the answers leave, in order.
    outbox: Arc<Outbox>,
    /// The id the next request's answer gets.
    next_id: u64,
    /// The request whose head was read last, until it is handed over (or refused).
    current: Option<Seen>,
}

impl Connection {
    /// Fails only if the socket cannot be given a second handle (out of descriptors).
    pub(super) fn new(
        stream: TcpStream,
        shared: &Arc<Shared>,
        events: Sender<Event>,
    ) -> io::Result<Connection> {
        let number = shared.accepted.fetch_add(1, Ordering::Relaxed) + 1;
        let outbox = Outbox::new(stream.try_clone()?, shared, number);
        Ok(Connection {
            stream,
            shared: Arc::clone(shared),
            events,
            buf: Vec::new(),
            timeout: None,
            outbox,
            next_id: 0,
            current: None,
        })
    }

    /// Serves requests until the connection ends; returns the connection, whose drop closes
    /// this thread's handle to the socket.
    pub(super) fn serve(mut self) -> Connection {
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
        if let End::Refused(response) = end {
            // The refused request's head, if it was read; else one that never got that far.
            let seen = self.current.take().unwrap_or_else(|| self.seen(None, Instant::now()));
            let to = self.reply_to(seen, false, ConnectionHeader::Close);
            self.outbox.answer(to, &response, false);
            if self.outbox.wait_written(self.next_id) {
                self.linger_close();
            }
        } else {
            // The connection counts as open (--max-connections) until its answers are out.
            self.outbox.wait_written(self.next_id);
        }
        self
    }

    /// What is known of a request once its head is read (`None`: it could not be).
    fn seen(&self, head: Option<&Head>, arrived: Instant) -> Seen {
        Seen::of(head, arrived, self.shared.log.is_some())
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
            self.answer_here(answer, &head);
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
            // An interim answer: after every earlier answer, before this request's own.
            if !self.outbox.wait_written(self.next_id) {
                return Err(End::Quietly);
            }
            self.write_raw(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let body = match head.framing {
            Framing::None => Vec::new(),
            Framing::Length(n) => self.read_body(n, &mut reserved)?,
            Framing::Chunked => self.read_chunked(limit, &mut reserved)?,
        };
        let keep_alive = head.keep_alive;
        if let Some((feed, fanout)) = self.feed_for(&head) {
            drop((body, reserved)); // a feed request has no use for a body
            return self.serve_feed(&head, &feed, &fanout);
        }
        self.hand_over(head, body, reserved)?;
        if !keep_alive {
            return Ok(false);
        }
        if self.buf.capacity() > KEEP_BUFFER && self.buf.len() <= KEEP_BUFFER {
            self.buf.shrink_to(KEEP_BUFFER);
        }
        Ok(true)
    }

    /// Passes the request to the main thread, once fewer than [`super::MAX_PIPELINE`] of this
    /// connection's answers are owed.
    fn hand_over(&mut self, head: Head, body: Vec<u8>, reserved: Reservation) -> Step<()> {
        if let Some(seen) = self.current.as_mut() {
            seen.note_body(body.len() as u64);
        }
        if !self.outbox.wait_for_room(self.next_id) {
            return Err(End::Quietly); // writing failed: the connection is shut
        }
        let reply = self.reply_for(&head);
        // The main thread does only map and log work: a JSON write body is parsed here.
        let prepared = http::prepare(head.method(), head.path(), &body).map(Box::new);
        let body = if prepared.is_some() { Vec::new() } else { body };
        let job = Job {
            head,
            body,
            prepared,
            reserved: Some(reserved),
            reply: Some(reply),
            pipelined: !self.buf.is_empty(),
            outbox: Arc::clone(&self.outbox),
        };
        if self.events.send(Event::Request(job)).is_err() {
            return Err(End::Quietly); // the server is stopping
        }
        Ok(())
    }

    /// The change feed and its fan-out, if this request is for it: `GET` or `HEAD` of
    /// `/changes`.
    fn feed_for(&self, head: &Head) -> Option<(Arc<Feed>, Arc<Fanout>)> {
        let path = head.target().split('?').next().unwrap_or_default();
        let (feed, fanout) = self.shared.feed.as_ref()?;
        let feed_request = matches!(head.method(), "GET" | "HEAD") && path == "/changes";
        feed_request.then(|| (Arc::clone(feed), Arc::clone(fanout)))
    }

    /// `GET /changes`, served on this thread without the main thread (see `follow.rs`).
    /// `Ok(true)`: the connection goes on with its next request.
    fn serve_feed(&mut self, head: &Head, feed: &Arc<Feed>, fanout: &Fanout) -> Step<bool> {
        let (path, query) = match head.target().split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (head.target(), None),
        };
        if feed.is_replaying() {
            self.answer_here(http::while_replaying(head.method(), path), head);
            return Ok(head.keep_alive);
        }
        let fields: Vec<(&str, &str)> = head.fields().collect();
        let plan = match http::changes::plan(query, &fields) {
            Ok(plan) => plan,
            Err(message) => {
                let mut refused = Response::error(400, &message);
                refused.seq = Some(feed.visible());
                self.answer_here(refused, head);
                return Ok(head.keep_alive);
            }
        };
        let _following = feed.follow();
        let start = Follower::bound(feed, &plan);
        let from = plan.from.unwrap_or(start);
        if from < start {
            let refused = match history::held_after(feed.dir()) {
                Ok(floor) if from < floor => Some(http::changes::gone(floor + 1, feed.visible())),
                Ok(_) => None,
                Err(e) => Some(http::store_failure(500, &e)),
            };
            if let Some(refused) = refused {
                self.answer_here(refused, head);
                return Ok(head.keep_alive);
            }
        }
        // Every earlier answer goes first; from here on this thread writes to the socket.
        if !self.outbox.wait_written(self.next_id) {
            return Err(End::Quietly);
        }
        let reply = self.reply_for(head);
        self.outbox.skip(reply.id);
        let connection = if plan.follow { ConnectionHeader::Close } else { reply.connection };
        let content_type = if plan.sse { "text/event-stream" } else { "application/x-ndjson" };
        let mut out = Vec::new();
        let request_id = reply.seen.request_id();
        write_stream_head(&mut out, content_type, feed.visible(), connection, request_id);
        self.outbox.account(reply.seen, 200, 0);
        self.write_raw(&out)?;
        if reply.head_only {
            return Ok(connection != ConnectionHeader::Close);
        }
        let mut follower = Follower::new(feed, &plan, from, start);
        let ended = follower.run(&mut self.stream).map_err(|_| End::Quietly)?;
        if let Ended::CaughtUp { cursor, sent } = ended {
            // From here the fan-out writes; this thread waits until it ends the answer.
            let (done, ends) = std::sync::mpsc::channel();
            let stream = self.stream.try_clone().map_err(|_| End::Quietly)?;
            let live = Live { stream, plan, cursor, sent, done };
            fanout.adopt(live).map_err(|_| End::Quietly)?;
            let _ = ends.recv();
            return Ok(false);
        }
        follower.finish(&mut self.stream).map_err(|_| End::Quietly)?;
        Ok(ended == Ended::Complete && connection != ConnectionHeader::Close)
    }

    /// Answers a request here (a 401 without a body), in its turn.
    fn answer_here(&mut self, response: Response, head: &Head) {
        let reply = self.reply_for(head);
        self.outbox.answer(reply, &response, false);
    }

    /// The request's place in the answer order, with what [`Connection::current`] saw of it.
    fn reply_for(&mut self, head: &Head) -> ReplyTo {
        let seen = self.current.take().unwrap_or_else(|| self.seen(Some(head), Instant::now()));
        let head_only = seen.method == Method::Head;
        let connection = match (head.keep_alive, head.http10) {
            (false, _) => ConnectionHeader::Close,
            (true, true) => ConnectionHeader::KeepAlive,
            (true, false) => ConnectionHeader::Omit,
        };
        self.reply_to(seen, head_only, connection)
    }

    fn reply_to(&mut self, seen: Seen, head_only: bool, connection: ConnectionHeader) -> ReplyTo {
        let id = self.next_id;
        self.next_id += 1;
        ReplyTo { id, head_only, connection, seen }
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
        match self.read_socket(&mut first) {
            Ok(0) | Err(_) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&first[..n]);
                Ok(true)
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
            self.set_read_timeout(self.shared.limits.body_timeout);
        }
        while body.len() < n {
            let filled = body.len();
            let step = (n - filled).min(BODY_STEP);
            self.hold(reserved, filled + step)?;
            body.resize(filled + step, 0);
            let got = match self.read_socket(&mut body[filled..]) {
                Ok(0) => return Err(End::Quietly),
                Ok(got) => got,
                Err(e) if is_timeout(&e) => return Err(self.body_timed_out()),
                Err(_) => return Err(End::Quietly),
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
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(old + READ_CHUNK, 0);
        let read = self.read_socket(&mut buf[old..]);
        buf.truncate(old + *read.as_ref().unwrap_or(&0));
        self.buf = buf;
        read
    }

    /// One read from the socket. A `WouldBlock` sooner than the read timeout can have run out
    /// means the outbox holds the socket non-blocking for a moment while it writes an answer
    /// (see [`Outbox`]): wait for that write, and read again.
    fn read_socket(&mut self, into: &mut [u8]) -> io::Result<usize> {
        let started = Instant::now();
        loop {
            match self.stream.read(into) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        && self.timeout.is_some_and(|t| started.elapsed() < t) =>
                {
                    self.outbox.pass();
                }
                other => return other,
            }
        }
    }

    fn set_read_timeout(&mut self, wait: Duration) {
        // A zero timeout means "none" to the OS; the smallest real one stands in for it.
        let wait = Some(wait.max(Duration::from_millis(1)));
        if self.timeout != wait {
            let _ = self.stream.set_read_timeout(wait);
            self.timeout = wait;
        }
    }

    /// After an answer that ends the connection early (an error that leaves a body unread, a
    /// 413 above all): stop writing, then read and drop whatever the client still sends, for as
    /// long as it keeps sending, until it closes or is quiet for [`LINGER`]. Closing a socket
    /// that still has unread bytes makes the kernel send a reset, and a client that writes its
    /// whole body before it reads (Python's `http.client`, many scripts) would see "connection
    /// reset" instead of the answer; a client that reads as it sends (curl) stops sending when
    /// the answer comes and closes at once. There is no byte limit: the bytes are dropped as
    /// they come, so a 1 GiB body costs time on this connection's thread and no memory.
    fn linger_close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        self.set_read_timeout(LINGER);
        let mut sink = vec![0u8; READ_CHUNK];
        while let Ok(1..) = self.read_socket(&mut sink) {}
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}
