//! A reader of `GET /changes`, served on its own connection's thread: the history from the
//! log's files ([`crate::wal::history`]), then the recent changes from the feed's ring
//! ([`crate::feed`]), then (with `follow`) each change as it becomes visible, with heartbeats.
//!
//! Why here and not on the main thread: an answer that lasts hours cannot be one the main
//! thread writes, and the history is on disk, which the main thread never touches. So a feed
//! request never reaches the main thread; everything it needs the main thread publishes (the
//! ring, the visible and synced seqs), and everything that can be slow (the disk, the client)
//! is this thread's alone. A follower that stops reading blocks only here, up to
//! `--write-timeout` per write, and is cut when the ring drops a change it has not taken.
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
use crate::feed::{Feed, Line, Taken};
use crate::http::changes::Plan;
use crate::json;
use crate::wal::history::{self, History};
use std::io::{self, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Bytes of lines gathered before they are written as one chunk.
const CHUNK: usize = 64 << 10;

/// How a feed's answer ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// Every change asked for was written (a plain answer, or `limit` reached): the connection
    /// may serve its next request.
    Complete,
    /// The server is stopping, or the follower was cut: the connection closes.
    Closed,
}

/// One follower's state.
pub(super) struct Follower<'a> {
    feed: &'a Feed,
    plan: &'a Plan,
    /// Every change through this seq has been looked at.
    cursor: u64,
    /// A plain answer ends at this seq (the bound when it started); `None` with `follow`.
    end: Option<u64>,
    sent: u64,
    /// Lines taken from the ring: from now on, falling behind it is a cut.
    live: bool,
    body: Vec<u8>,
    out: Vec<u8>,
    heartbeat: Duration,
    last_write: Instant,
}

impl<'a> Follower<'a> {
    /// A follower from `from`, for changes up to `start` (the bound when the answer began) if
    /// the plan does not follow.
    pub(super) fn new(
        feed: &'a Feed,
        plan: &'a Plan,
        from: u64,
        start: u64,
        heartbeat: Duration,
    ) -> Follower<'a> {
        Follower {
            feed,
            plan,
            cursor: from,
            end: (!plan.follow).then_some(start),
            sent: 0,
            live: false,
            body: Vec::new(),
            out: Vec::new(),
            heartbeat,
            last_write: Instant::now(),
        }
    }

    /// The seq this follower may go up to now: visible, or fsynced with `durable=fsync`.
    pub(super) fn bound(feed: &Feed, plan: &Plan) -> u64 {
        if plan.fsync { feed.synced() } else { feed.visible() }
    }

    /// Writes the answer's body to `stream` until it is complete, the server stops, the
    /// follower is cut or the client is gone (an error).
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
            let prefix = &self.plan.prefix;
            let taken = if self.live {
                self.feed.take_live(self.cursor, bound, prefix, &mut lines)
            } else {
                self.feed.take(self.cursor, bound, prefix, &mut lines)
            };
            match taken {
                Taken::FromFiles { upto } => {
                    if let Err(cut) = self.read_files(stream, upto)? {
                        self.cut(stream, &cut)?;
                        return Ok(Ended::Closed);
                    }
                }
                Taken::Lines { upto } => {
                    self.live = true;
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
                Taken::FellBehind => {
                    let cut = format!(
                        "this follower fell more than {} bytes of changes behind and was cut; \
                         resume with from={}",
                        self.feed.capacity(),
                        self.cursor
                    );
                    self.cut(stream, &cut)?;
                    return Ok(Ended::Closed);
                }
                Taken::Nothing => self.idle(stream)?,
            }
        }
    }

    /// True when a plain answer has shown everything through its end, or `limit` is reached.
    fn done(&self) -> bool {
        self.limit_reached() || self.end.is_some_and(|end| self.cursor >= end)
    }

    fn limit_reached(&self) -> bool {
        self.plan.limit.is_some_and(|limit| self.sent >= limit)
    }

    /// Writes the changes after the cursor through `upto` from the log's files. The inner
    /// error is why the follower must be cut (the history it needs was compacted away).
    fn read_files(&mut self, stream: &mut TcpStream, upto: u64) -> io::Result<Result<(), String>> {
        let (feed, plan) = (self.feed, self.plan);
        let mut failed = None;
        let read = history::changes(feed.dir(), self.cursor, upto, |seq, op, key, value| {
            if key.starts_with(&plan.prefix) {
                let line = Line::new(seq, op, key, value);
                if let Err(e) = self.push(stream, seq, line.json()) {
                    failed = Some(e);
                    return false;
                }
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
            Err(History::Failed(e)) => {
                crate::log!("the change feed cannot read the log's history: {e}");
                let message = crate::error::for_client(&e.to_string());
                return Ok(Err(format!("reading the log's history failed: {message}")));
            }
        }
        self.flush(stream)?;
        Ok(Ok(()))
    }

    /// Nothing new: waits for news, and writes a heartbeat when one is due.
    fn idle(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        self.flush(stream)?;
        let due = self.heartbeat.saturating_sub(self.last_write.elapsed());
        if due.is_zero() {
            return self.heartbeat(stream);
        }
        let plan = self.plan;
        self.feed.wait(self.cursor, |feed| Self::bound(feed, plan), due);
        Ok(())
    }

    fn heartbeat(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        let cursor = self.cursor;
        if self.plan.sse {
            self.body.extend_from_slice(b": heartbeat\nid: ");
            push_decimal(&mut self.body, cursor);
            self.body.extend_from_slice(b"\n\n");
        } else {
            self.body.extend_from_slice(b"{\"op\":\"heartbeat\",\"seq\":");
            push_decimal(&mut self.body, cursor);
            self.body.extend_from_slice(b"}\n");
        }
        self.flush(stream)
    }

    /// The last line of a follower that is cut, then the end of the body.
    fn cut(&mut self, stream: &mut TcpStream, why: &str) -> io::Result<()> {
        let mut line = String::from("{\"op\":\"cut\",\"seq\":");
        line.push_str(&self.cursor.to_string());
        line.push_str(",\"error\":");
        json::write_string(&mut line, why);
        line.push('}');
        if self.plan.sse {
            self.body.extend_from_slice(b"event: cut\ndata: ");
            self.body.extend_from_slice(line.as_bytes());
            self.body.extend_from_slice(b"\n\n");
        } else {
            self.body.extend_from_slice(line.as_bytes());
            self.body.push(b'\n');
        }
        self.flush(stream)
    }

    /// Adds one change's line (or event), writing a chunk when enough has gathered.
    fn push(&mut self, stream: &mut TcpStream, seq: u64, json: &[u8]) -> io::Result<()> {
        if self.plan.sse {
            self.body.extend_from_slice(b"id: ");
            push_decimal(&mut self.body, seq);
            self.body.extend_from_slice(b"\ndata: ");
            self.body.extend_from_slice(json.strip_suffix(b"\n").unwrap_or(json));
            self.body.extend_from_slice(b"\n\n");
        } else {
            self.body.extend_from_slice(json);
        }
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
        stream.write_all(&self.out)?;
        self.last_write = Instant::now();
        Ok(())
    }

    /// Ends the body.
    pub(super) fn finish(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        self.flush(stream)?;
        stream.write_all(LAST_CHUNK)
    }
}
