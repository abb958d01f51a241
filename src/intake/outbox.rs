//! A connection's outbox: where its answers leave, in request order, written by whichever
//! thread has them (the main thread, for almost every answer) without ever waiting for the
//! client.
//!
//! # Why the main thread writes
//! When the connection's own thread wrote every answer, each request cost two wake-ups of that
//! thread (one for the request's bytes, one for its answer) besides the main thread's, and on
//! two cores shared with the clients, wake-ups were most of a request's cost. Now the
//! main thread writes a finished answer straight to the socket, and the connection's thread
//! goes back to reading as soon as it has handed a request over: one wake-up per request.
//!
//! # Never waiting for the client
//! The main thread must not block on a client that does not read. It writes through a second
//! handle to the socket ([`TcpStream::try_clone`]) with the socket made non-blocking for just that
//! write: what the kernel's send buffer takes leaves, and the rest, if any, goes to the
//! *backlog*, which a *flusher* thread started for it writes with ordinary blocking writes
//! (each may wait up to `--write-timeout`, after which the connection is closed). While a
//! flusher runs, later answers join the backlog behind it. (A blocking write with a short
//! `SO_SNDTIMEO` was measured first: on a full buffer it waited 6 to 8 ms, the kernel's timer
//! granularity, which a client with a small receive window could have made the main thread pay
//! again and again.)
//!
//! Non-blocking is a property the two handles share (it belongs to the open file, not the
//! descriptor), so the connection's thread, if it starts a read during that moment, sees
//! `WouldBlock` early; it then waits for the outbox's lock, which the writer holds while the
//! socket is non-blocking, and reads again ([`Outbox::pass`]). A read already waiting is not
//! affected: the kernel decided to wait when it began.
//!
//! # Order and bounds
//! Each request gets the next id from its connection; an answer whose predecessors are not all
//! written yet (one held for an fsync, a compaction) waits in `early` until they are, so answers
//! leave in request order whoever writes them. A dropped [`super::Job`] gives its turn up
//! ([`Outbox::skip`]). The connection's thread hands over a request only while fewer than
//! [`MAX_PIPELINE`] of its answers are owed ([`Outbox::wait_for_room`]), so a client that sends
//! and never reads holds at most that many answers in memory, and before it writes anything
//! itself (`100 Continue`) it waits until every earlier answer is out
//! ([`Outbox::wait_written`]).
//!
//! # Pipelined answers leave together
//! A request handed over while the next one is already in the connection's buffer is
//! *pipelined*: its answer is not written at once but kept (`corked`) until the main thread has
//! nothing queued or starts its next batch ([`flush_deferred`], called by
//! [`super::Intake::recv_timeout`] and [`super::Intake::try_recv`]), so that the answers of a
//! burst leave in one system call instead of one each, and their client's thread is woken once
//! for all of them. Only the main thread defers; the delay is bounded by one batch.
//!
//! Every answer is counted in `walkv_http_requests_total` and the request log when it is handed
//! to the outbox, and in the process-wide `unwritten` count ([`super::Intake::finish_writing`])
//! until its last byte is written or given up on.

use super::answer::{ConnectionHeader, write_answer};
use super::seen::Seen;
use super::{MAX_PIPELINE, Shared};
use crate::http::Response;
use crate::metrics::METRICS;
use crate::request_log;
use std::cell::RefCell;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::SystemTime;

/// The name of flusher threads.
const FLUSHER_THREAD: &str = "walkv-flush";
/// A flusher only writes.
const FLUSHER_STACK: usize = 64 << 10;
/// A connection keeps its cork buffer between bursts up to this size.
const KEEP_CORKED: usize = 16 << 10;

thread_local! {
    /// The outboxes in which this thread (the main thread) corked answers.
    static DEFERRED: RefCell<Vec<Arc<Outbox>>> = const { RefCell::new(Vec::new()) };
}

/// Writes the answers this thread corked (see "Pipelined answers leave together").
pub(super) fn flush_deferred() {
    let deferred = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    for outbox in deferred {
        outbox.release();
    }
}

/// How to write the answer to one request, and what to count and log about it.
pub(super) struct ReplyTo {
    /// The request's place in its connection's answer order.
    pub(super) id: u64,
    pub(super) head_only: bool,
    pub(super) connection: ConnectionHeader,
    pub(super) seen: Seen,
}

pub(super) struct Outbox {
    /// A second handle to the connection's socket.
    stream: TcpStream,
    shared: Arc<Shared>,
    /// The connection's number in the process (`conn=` in the request log).
    number: u64,
    state: Mutex<State>,
    /// Notified (when `waiters` says someone waits) as answers leave or the outbox breaks.
    progress: Condvar,
}

#[derive(Default)]
struct State {
    /// The id of the next answer to write.
    next: u64,
    /// Answers (their bytes) that came before their turn.
    early: Vec<(u64, Vec<u8>)>,
    /// Bytes owed to the socket that it did not take at once, for the flusher.
    backlog: Vec<u8>,
    /// Answers whose last byte is in `backlog`.
    backlog_answers: usize,
    /// Pipelined answers in order, kept until [`flush_deferred`].
    corked: Vec<u8>,
    corked_answers: usize,
    /// This outbox is in [`DEFERRED`].
    deferred: bool,
    /// Answers in order whose bytes are not all written: corked, in the backlog or being
    /// written by the flusher.
    unsent: usize,
    /// A flusher thread is writing: nobody else writes.
    flushing: bool,
    /// Threads waiting on `progress` (a notify with nobody waiting would still cost a system
    /// call).
    waiters: usize,
    /// Writing failed or timed out: the connection is shut and answers are dropped.
    broken: bool,
}

impl Outbox {
    pub(super) fn new(stream: TcpStream, shared: &Arc<Shared>, number: u64) -> Arc<Outbox> {
        Arc::new(Outbox {
            stream,
            shared: Arc::clone(shared),
            number,
            state: Mutex::new(State::default()),
            progress: Condvar::new(),
        })
    }

    /// The connection's number in the process.
    pub(super) fn number(&self) -> u64 {
        self.number
    }

    /// Encodes `response` for its request, counts and logs it, and writes it in its turn;
    /// `pipelined`: corked until [`flush_deferred`] (only the main thread may ask that).
    pub(super) fn answer(self: &Arc<Self>, to: ReplyTo, response: &Response, pipelined: bool) {
        let mut bytes = Vec::new();
        write_answer(&mut bytes, response, to.head_only, to.connection, to.seen.request_id());
        let out_bytes = if to.head_only { 0 } else { response.body.len() as u64 };
        self.account(to.seen, response.status, out_bytes);
        self.shared.unwritten.fetch_add(1, Ordering::SeqCst);
        self.put(to.id, bytes, pipelined);
    }

    /// Gives up answer `id`'s turn (its request was dropped unanswered), so that later answers
    /// are not held behind it.
    pub(super) fn skip(self: &Arc<Self>, id: u64) {
        self.shared.unwritten.fetch_add(1, Ordering::SeqCst);
        self.put(id, Vec::new(), false);
    }

    /// Waits until every answer with an id below `upto` is written and no flusher runs, so
    /// that the caller may write to the socket itself. False if the outbox broke.
    pub(super) fn wait_written(&self, upto: u64) -> bool {
        self.wait_until(|s| s.next >= upto && s.unsent == 0 && !s.flushing)
    }

    /// Waits until fewer than [`MAX_PIPELINE`] answers are owed, `next_id` being the id the
    /// next request will get. False if the outbox broke.
    pub(super) fn wait_for_room(&self, next_id: u64) -> bool {
        self.wait_until(|s| {
            let owed = next_id.saturating_sub(s.next) + s.unsent as u64;
            owed < MAX_PIPELINE as u64
        })
    }

    /// Returns once nobody holds the socket non-blocking (see the module doc).
    pub(super) fn pass(&self) {
        drop(self.lock());
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn notify(&self, state: &State) {
        if state.waiters > 0 {
            self.progress.notify_all();
        }
    }

    fn wait_until(&self, done: impl Fn(&State) -> bool) -> bool {
        let mut state = self.lock();
        while !done(&state) && !state.broken {
            state.waiters += 1;
            state = self.progress.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
            state.waiters -= 1;
        }
        !state.broken
    }

    /// Writes `bytes` (answer `id`) now if it is its turn, with any early answers it frees;
    /// with `cork`, keeps them for [`flush_deferred`] instead.
    fn put(self: &Arc<Self>, id: u64, bytes: Vec<u8>, cork: bool) {
        let mut state = self.lock();
        if state.broken {
            self.gone(1);
            return;
        }
        if id != state.next {
            state.early.push((id, bytes));
            return;
        }
        let (mut out, mut count) = (bytes, 1);
        state.next += 1;
        while let Some(at) = state.early.iter().position(|(early, _)| *early == state.next) {
            let (_, more) = state.early.swap_remove(at);
            out.extend_from_slice(&more);
            count += 1;
            state.next += 1;
        }
        state.unsent += count;
        if state.flushing {
            self.behind_flusher(&mut state, &out, count);
        } else if cork {
            state.corked.extend_from_slice(&out);
            state.corked_answers += count;
            if !state.deferred {
                state.deferred = true;
                DEFERRED.with(|d| d.borrow_mut().push(Arc::clone(self)));
            }
        } else {
            if !state.corked.is_empty() {
                out.splice(..0, state.corked.drain(..));
                count += std::mem::take(&mut state.corked_answers);
            }
            self.write_out(&mut state, &out, count);
        }
    }

    /// Writes what was corked (see [`flush_deferred`]).
    fn release(self: &Arc<Self>) {
        let mut state = self.lock();
        state.deferred = false;
        if state.corked.is_empty() {
            return;
        }
        // The buffer is kept for the next burst: allocating a fresh one, growing, for every
        // burst left holes between the map's entries (8 MiB more RSS after 1M pipelined PUTs).
        let mut out = std::mem::take(&mut state.corked);
        let count = std::mem::take(&mut state.corked_answers);
        if state.flushing {
            self.behind_flusher(&mut state, &out, count);
        } else {
            self.write_out(&mut state, &out, count);
        }
        if out.capacity() <= KEEP_CORKED {
            out.clear();
            state.corked = out;
        }
    }

    /// Queues `out` (`count` answers, in order) behind what the flusher is writing.
    fn behind_flusher(&self, state: &mut State, out: &[u8], count: usize) {
        state.backlog.extend_from_slice(out);
        state.backlog_answers += count;
        self.notify(state);
    }

    /// Writes `out`, the bytes of `count` answers in order (counted in `unsent`), as far as
    /// the socket takes them now; a flusher thread writes the rest.
    fn write_out(self: &Arc<Self>, state: &mut State, out: &[u8], count: usize) {
        match self.write_without_waiting(out) {
            Ok(done) if done == out.len() => {
                state.unsent -= count;
                self.gone(count);
            }
            Ok(done) => {
                state.backlog = out[done..].to_vec();
                state.backlog_answers = count;
                state.flushing = true;
                if !self.start_flusher() {
                    crate::log!("cannot start a thread to finish writing an answer; closed it");
                    self.break_off(state);
                }
            }
            Err(_) => {
                state.unsent -= count;
                self.gone(count);
                self.break_off(state);
            }
        }
        self.notify(state);
    }

    /// Writes what the socket takes without waiting; the count written. Called with the lock
    /// held, which is what [`Outbox::pass`] waits for.
    fn write_without_waiting(&self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.is_empty() {
            return Ok(0);
        }
        self.stream.set_nonblocking(true)?;
        let mut done = 0;
        let written = loop {
            match (&self.stream).write(&bytes[done..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    done += n;
                    if done == bytes.len() {
                        break Ok(done);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(done),
                Err(e) => break Err(e),
            }
        };
        // Left non-blocking, the connection's thread could not wait for its client any more.
        self.stream.set_nonblocking(false)?;
        written
    }

    fn start_flusher(self: &Arc<Self>) -> bool {
        let outbox = Arc::clone(self);
        thread::Builder::new()
            .name(FLUSHER_THREAD.into())
            .stack_size(FLUSHER_STACK)
            .spawn(move || outbox.flush())
            .is_ok()
    }

    /// The flusher: writes the backlog with blocking writes (each waiting at most the write
    /// timeout) until it is empty, then ends; a failure shuts the connection.
    fn flush(&self) {
        let mut state = self.lock();
        while !state.broken && !state.backlog.is_empty() {
            let bytes = std::mem::take(&mut state.backlog);
            let count = std::mem::take(&mut state.backlog_answers);
            drop(state);
            let wrote = (&self.stream).write_all(&bytes);
            self.gone(count);
            state = self.lock();
            state.unsent -= count;
            if wrote.is_err() {
                self.break_off(&mut state);
            }
            self.notify(&state);
        }
        state.flushing = false;
        self.notify(&state);
    }

    /// After a failed write: drops what is owed and shuts the socket, which also ends the
    /// connection thread's wait for the client.
    fn break_off(&self, state: &mut State) {
        state.broken = true;
        let dropped = state.backlog_answers + state.corked_answers;
        self.gone(state.early.len() + dropped);
        state.unsent -= dropped;
        state.early.clear();
        state.backlog = Vec::new();
        state.backlog_answers = 0;
        state.corked = Vec::new();
        state.corked_answers = 0;
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// `count` answers are written, or given up on.
    fn gone(&self, count: usize) {
        self.shared.unwritten.fetch_sub(count, Ordering::SeqCst);
    }

    /// Counts an answer with `status` and `out_bytes` of body, and logs it if the request log
    /// is on (the request's strings move into the log's record: nothing is copied or formatted
    /// here). A streamed answer (the change feed) is counted when its head is written.
    pub(super) fn account(&self, seen: Seen, status: u16, out_bytes: u64) {
        let took = seen.arrived.elapsed();
        METRICS.answered(seen.method, status, took);
        if let (Some(log), Some((id, logged))) = (&self.shared.log, seen.into_logged()) {
            log.submit(request_log::Record {
                time: SystemTime::now(),
                id,
                method: logged.method,
                path: logged.path,
                trunc: logged.trunc,
                status,
                in_bytes: logged.in_bytes,
                out_bytes,
                took,
                conn: self.number,
            });
        }
    }
}

impl Drop for Outbox {
    /// Answers still waiting for a turn that never came count as given up on.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        let owed = state.early.len();
        self.shared.unwritten.fetch_sub(owed, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::super::budget::Budget;
    use super::super::{BODY_BUDGET, Limits};
    use super::*;
    use crate::auth::Auth;
    use crate::metrics::Method;
    use std::io::Read;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicU64, AtomicUsize};
    use std::time::{Duration, Instant};

    /// An outbox on one end of a loopback connection, the other end, and the shared state.
    fn pair() -> (Arc<Outbox>, TcpStream, Arc<Shared>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let shared = Arc::new(Shared {
            limits: Limits::default(),
            auth: Arc::new(Auth::none()),
            open: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            budget: Budget::new(BODY_BUDGET),
            unwritten: Arc::new(AtomicUsize::new(0)),
            log: None,
            feed: None,
        });
        (Outbox::new(server, &shared, 1), client, shared)
    }

    fn text(body: &str) -> Response {
        let mut response = Response::error(200, "");
        response.body = body.as_bytes().to_vec();
        response
    }

    fn reply(id: u64) -> ReplyTo {
        ReplyTo {
            id,
            head_only: false,
            connection: ConnectionHeader::Omit,
            seen: Seen::bare(Method::Get),
        }
    }

    /// Reads `n` answers' bodies, in the order they arrived.
    fn bodies(client: &mut TcpStream, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    assert_eq!(client.read(&mut byte).unwrap(), 1, "closed early");
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("Content-Length: "))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap();
                let mut body = vec![0u8; length];
                client.read_exact(&mut body).unwrap();
                String::from_utf8(body).unwrap()
            })
            .collect()
    }

    #[test]
    fn answers_leave_in_request_order_whoever_gives_them() {
        let (outbox, mut client, shared) = pair();
        let answer = |id: u64, text: &str, pipelined: bool| {
            outbox.answer(reply(id), &super::tests::text(text), pipelined)
        };
        answer(0, "zero", true); // pipelined: corked until flush_deferred
        answer(2, "two", false); // early: 1 is not answered yet
        assert_eq!(shared.unwritten.load(Ordering::SeqCst), 2);
        client.set_nonblocking(true).unwrap();
        let nothing = client.read(&mut [0u8; 16]).map_err(|e| e.kind());
        assert_eq!(nothing, Err(io::ErrorKind::WouldBlock), "nothing left yet");
        client.set_nonblocking(false).unwrap();
        outbox.skip(1); // its request was dropped unanswered: the cork and 2 go with it
        assert!(outbox.wait_written(3));
        assert_eq!(bodies(&mut client, 2), ["zero", "two"]);
        answer(3, "three", true);
        assert_eq!(shared.unwritten.load(Ordering::SeqCst), 1, "corked");
        flush_deferred();
        assert!(outbox.wait_written(4));
        assert_eq!(bodies(&mut client, 1), ["three"]);
        assert_eq!(shared.unwritten.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn what_the_socket_does_not_take_is_finished_by_a_flusher() {
        let (outbox, mut client, shared) = pair();
        let big = "b".repeat(8 << 20); // more than any socket buffer takes at once
        let started = Instant::now();
        outbox.answer(reply(0), &text(&big), false);
        outbox.answer(reply(1), &text("after"), false);
        assert!(started.elapsed() < Duration::from_secs(1), "the writer did not wait");
        assert!(shared.unwritten.load(Ordering::SeqCst) > 0, "a rest is owed");
        let got = bodies(&mut client, 2);
        assert_eq!((got[0].len(), got[1].as_str()), (big.len(), "after"));
        assert!(outbox.wait_written(2));
        assert_eq!(shared.unwritten.load(Ordering::SeqCst), 0);
    }
}
