//! A reader of `GET /changes`, served on its own connection's thread until it has caught up:
//! the history from the log's files ([`crate::wal::history`]), then the recent changes from the
//! feed's ring ([`crate::feed`]). A plain answer ends there. With `follow`, the follower is then
//! handed to the one thread that writes every caught-up follower's changes as they become
//! visible, with heartbeats (`fanout.rs`), and this thread waits for it to end.
//!
//! Why here and not on the main thread: an answer that lasts hours cannot be one the main
//! thread writes, and the history is on disk, which the main thread never touches. So a feed
//! request never reaches the main thread; everything it needs the main thread publishes (the
//! ring, the visible and synced seqs), and everything that can be slow (the disk, the client)
//! is this thread's, or the fan-out's, which never waits for one client.
//!
//! The answer is chunked. Each change is one line (JSON lines), or one event (`id: SEQ`,
//! `data: LINE`) with Server-Sent Events. The cursor is the last seq looked at: every change
//! through it that matches the prefix has been written. Heartbeats carry it, so that a client
//! filtering by prefix can resume from there rather than from its last matching change:
//!
//! ```text
//! {"op":"heartbeat","seq":41}            : heartbeat      (SSE: a comment, and the id,
//!                                         id: 41            which EventSource keeps)
//! {"op":"cut","seq":41,"error":"..."}    event: cut       the last line of a follower cut
//!                                         data: {...}       for falling behind
//! ```

use super::answer::{LAST_CHUNK, push_chunk, push_decimal};
use crate::feed::{Feed, Line, Take, Taken};
use crate::http::changes::Plan;
use crate::json;
use crate::wal::history::{self, History};
use std::io::{self, Write};
use std::net::TcpStream;

/// Bytes of lines gathered before they are written as one chunk.
pub(super) const CHUNK: usize = 64 << 10;

/// How the part of a feed's answer this thread writes ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// Every change asked for was written (a plain answer, or `limit` reached): the connection
    /// may serve its next request.
    Complete,
    /// The server is stopping, or the history was compacted away: the connection closes.
    Closed,
    /// A follower has caught up with the ring: the fan-out takes it from `cursor`, having
    /// written `sent` changes so far.
    CaughtUp { cursor: u64, sent: u64 },
}

/// One follower's catch-up.
pub(super) struct Follower<'a> {
    feed: &'a Feed,
    plan: &'a Plan,
    /// Every change through this seq has been looked at.
    cursor: u64,
    /// A plain answer ends at this seq (the bound when it started); `None` with `follow`.
    end: Option<u64>,
    sent: u64,
    body: Vec<u8>,
    out: Vec<u8>,
}

impl<'a> Follower<'a> {
    /// A follower from `from`, for changes up to `start` (the bound when the answer began) if
    /// the plan does not follow.
    pub(super) fn new(feed: &'a Feed, plan: &'a Plan, from: u64, start: u64) -> Follower<'a> {
        Follower {
            feed,
            plan,
            cursor: from,
            end: (!plan.follow).then_some(start),
            sent: 0,
            body: Vec::new(),
            out: Vec::new(),
        }
    }

    /// The seq this follower may go up to now: visible, or fsynced with `durable=fsync`.
    pub(super) fn bound(feed: &Feed, plan: &Plan) -> u64 {
        if plan.fsync { feed.synced() } else { feed.visible() }
    }

    /// Writes the answer's body to `stream` until it is complete, caught up (with `follow`),
    /// the server stops, or the client is gone (an error).
    pub(super) fn run(&mut self, stream: &mut TcpStream) -> io::Result<Ended> {
        loop {
            if self.feed.is_closed() {
                self.flush(stream)?;
                return Ok(Ended::Closed);
            }
            if self.done() {
                self.flush(stream)?;
                return Ok(Ended::Complete);
            }
            let bound = Self::bound(self.feed, self.plan).min(self.end.unwrap_or(u64::MAX));
            let mut lines = Vec::new();
            let take = Take { prefix: &self.plan.prefix, budget: CHUNK };
            match self.feed.take(self.cursor, bound, &take, &mut lines) {
                Taken::FromFiles { upto } => {
                    if let Err(cut) = self.read_files(stream, upto)? {
                        push_cut(&mut self.body, self.plan, self.cursor, &cut);
                        self.flush(stream)?;
                        return Ok(Ended::Closed);
                    }
                }
                Taken::Lines { upto } => {
                    for line in &lines {
                        self.push(stream, line.seq(), line.json())?;
                        if self.limit_reached() {
                            break;
                        }
                    }
                    if !self.limit_reached() {
                        self.cursor = upto;
                    }
                    self.flush(stream)?;
                }
                // Not reached: only `take_live` says so.
                Taken::FellBehind => return Ok(Ended::Closed),
                Taken::Nothing => {
                    self.flush(stream)?;
                    return Ok(Ended::CaughtUp { cursor: self.cursor, sent: self.sent });
                }
            }
        }
    }

    /// True when a plain answer has shown everything through its end, or `limit` is reached.
    fn done(&self) -> bool {
        self.plan.limit.is_some_and(|limit| self.sent >= limit)
            || self.end.is_some_and(|end| self.cursor >= end)
    }

    fn limit_reached(&self) -> bool {
        self.plan.limit.is_some_and(|limit| self.sent >= limit)
    }

    /// Writes the changes after the cursor through `upto` from the log's files. The inner
    /// error is why the answer must end (the history it needs was compacted away).
    fn read_files(&mut self, stream: &mut TcpStream, upto: u64) -> io::Result<Result<(), String>> {
        let (feed, plan) = (self.feed, self.plan);
        let mut failed = None;
        let read = history::changes(feed.dir(), self.cursor, upto, |seq, body| {
            let line = Line::new(seq, body);
            if line.matches(&plan.prefix)
                && let Err(e) = self.push(stream, seq, line.json())
            {
                failed = Some(e);
                return false;
            }
            self.cursor = seq;
            !self.limit_reached()
        });
        if let Some(e) = failed {
            return Err(e);
        }
        match read {
            Ok(()) if !self.limit_reached() => self.cursor = upto,
            Ok(()) => {}
            Err(History::Compacted { oldest }) => {
                return Ok(Err(format!(
                    "the changes after seq {} were compacted away while this answer read them \
                     (the oldest held is {oldest}); start again from an export",
                    self.cursor
                )));
            }
            Err(History::Hole { at }) => {
                return Ok(Err(format!(
                    "the log's files changed under this answer (a compaction) three times while \
                     it read them, at seq {at}; resume with from={}",
                    self.cursor
                )));
            }
            Err(History::Failed(e)) => {
                crate::log!("the change feed cannot read the log's history: {e}");
                let message = crate::error::for_client(&e.to_string());
                return Ok(Err(format!("reading the log's history failed: {message}")));
            }
        }
        self.flush(stream)?;
        Ok(Ok(()))
    }

    /// Adds one change's line (or event), writing a chunk when enough has gathered.
    fn push(&mut self, stream: &mut TcpStream, seq: u64, json: &[u8]) -> io::Result<()> {
        push_change(&mut self.body, self.plan, seq, json);
        self.sent += 1;
        if self.body.len() >= CHUNK { self.flush(stream) } else { Ok(()) }
    }

    /// Writes what has gathered as one chunk.
    fn flush(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        if self.body.is_empty() {
            return Ok(());
        }
        self.out.clear();
        push_chunk(&mut self.out, &self.body);
        self.body.clear();
        stream.write_all(&self.out)
    }

    /// Ends the body.
    pub(super) fn finish(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        self.flush(stream)?;
        stream.write_all(LAST_CHUNK)
    }
}

/// Appends one change as a JSON line, or as an event with Server-Sent Events.
pub(super) fn push_change(body: &mut Vec<u8>, plan: &Plan, seq: u64, json: &[u8]) {
    if plan.sse {
        body.extend_from_slice(b"id: ");
        push_decimal(body, seq);
        body.extend_from_slice(b"\ndata: ");
        body.extend_from_slice(json.strip_suffix(b"\n").unwrap_or(json));
        body.extend_from_slice(b"\n\n");
    } else {
        body.extend_from_slice(json);
    }
}

/// Appends a heartbeat at `cursor`.
pub(super) fn push_heartbeat(body: &mut Vec<u8>, plan: &Plan, cursor: u64) {
    if plan.sse {
        body.extend_from_slice(b": heartbeat\nid: ");
        push_decimal(body, cursor);
        body.extend_from_slice(b"\n\n");
    } else {
        body.extend_from_slice(b"{\"op\":\"heartbeat\",\"seq\":");
        push_decimal(body, cursor);
        body.extend_from_slice(b"}\n");
    }
}

/// Appends the last line of a follower that is cut at `cursor`, saying `why`.
pub(super) fn push_cut(body: &mut Vec<u8>, plan: &Plan, cursor: u64, why: &str) {
    let mut line = String::from("{\"op\":\"cut\",\"seq\":");
    line.push_str(&cursor.to_string());
    line.push_str(",\"error\":");
    json::write_string(&mut line, why);
    line.push('}');
    if plan.sse {
        body.extend_from_slice(b"event: cut\ndata: ");
        body.extend_from_slice(line.as_bytes());
        body.extend_from_slice(b"\n\n");
    } else {
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
}
