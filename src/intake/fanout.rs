//! The fan-out: one thread writes every caught-up follower's changes (`GET /changes?follow`),
//! as they become visible, with heartbeats.
//!
//! Why one thread: a thread per follower, woken for each change, cost a thousand wake-ups per
//! write with a thousand followers, and on two cores that storm held writes up: a mean write of
//! 0.69 ms and 10.2 ms at the 99th percentile, against 0.16 ms and 0.34 ms without followers
//! (`benches/followers.rs`, 500 writes/s, 2026-12-04). With this thread writing each round
//! in one burst: 0.40 ms and 4.2 ms; spread out as below: 0.23 ms and 0.61 ms, within the goal
//! of 2x (docs/performance.md has the table).
//! A round costs one non-blocking write per follower that has news, on this thread (about
//! 12 µs each on loopback, where the write also does the reader's side of TCP), and the main
//! thread's only part is to ring the feed's bell. Followers that ask the same (no limit, same
//! cursor, format and prefix: a crowd that has caught up) share one chunk, made once a round.
//!
//! Rounds: the thread waits for news (or a quarter second, for heartbeats), then takes for each
//! follower the lines after its cursor (at most 64 KiB a round; with more ready, the next round
//! comes at once) and writes them as one chunk without waiting: what the socket does not take
//! stays with the follower (`pending`, never more than one round's chunk) and goes first in the
//! next round, 2 ms later at most; no new lines are taken for it meanwhile.
//!
//! Rounds are at least [`GAP_PER_FOLLOWER`] times the followers apart (20 ms with 1,000), so
//! that under a stream of writes the cost per second stays bounded and changes go out in
//! batches. And a round is spread out: the thread yields its core every [`YIELD_EVERY`]
//! followers and sleeps [`SLICE_PAUSE`] every [`SLICE`], so that a write that comes during a
//! round waits a fraction of a millisecond, not the whole burst (on two cores, the burst of
//! 1,000 writes held a write up to 4 ms at the 99th percentile; spread, 0.6 ms). The price: a
//! round of 1,000 followers lasts about 30 ms, by which a change reaches the last of them
//! later (worked out from the constants, not measured).
//!
//! A follower ends when the ring dropped a change it had not taken (it is cut, with a last line
//! saying the seq to resume from: see `follow.rs`), when it reached its `limit`, when the
//! client is gone, or when the server stops (the feed closes). Its connection's thread, which
//! waits meanwhile, is told, and closes the connection.

use super::answer::{LAST_CHUNK, push_chunk};
use super::follow::{CHUNK, Follower, push_change, push_cut, push_heartbeat};
use crate::feed::{Feed, Recent, Take, Taken};
use crate::http::changes::Plan;
use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Rounds are at least this much times the number of followers apart: 20 ms with 1,000.
const GAP_PER_FOLLOWER: Duration = Duration::from_micros(20);
/// How long a round waits for news before it looks for heartbeats due.
const TICK: Duration = Duration::from_millis(250);
/// The fan-out gives its core up after writing to this many followers.
const YIELD_EVERY: usize = 4;
/// ... and pauses after this many, so that a round of a thousand is spread out.
const SLICE: usize = 32;
const SLICE_PAUSE: Duration = Duration::from_micros(500);
/// How soon a follower whose socket was full is tried again (without a wait for "writable"
/// in std, the fan-out looks).
const RETRY: Duration = Duration::from_millis(2);

/// A follower that has caught up.
pub(super) struct Live {
    /// A second handle to the connection's socket, non-blocking from now on.
    pub(super) stream: TcpStream,
    pub(super) plan: Plan,
    pub(super) cursor: u64,
    pub(super) sent: u64,
    /// Told when the follower ends.
    pub(super) done: Sender<()>,
}

/// A live follower, with what the fan-out keeps for it.
struct Following {
    live: Live,
    /// Bytes of the last chunk the socket has not taken yet.
    pending: Vec<u8>,
    last_write: Instant,
    /// The end is in `pending`: drop the follower once it is written.
    ending: bool,
}

impl Drop for Following {
    /// The follower ended: its connection's thread stops waiting and closes the connection.
    fn drop(&mut self) {
        let _ = self.live.done.send(());
    }
}

/// A chunk made in this round for followers that ask the same (same cursor, bound, format and
/// prefix, no limit): with a thousand followers caught up together, the chunk is made once and
/// only written a thousand times.
struct Made {
    cursor: u64,
    bound: u64,
    sse: bool,
    prefix: Vec<u8>,
    /// The chunk, and the cursor and count after it.
    chunk: Vec<u8>,
    upto: u64,
    count: u64,
    more: bool,
}

/// Whether a follower goes on after a round, and whether it has more to write at once.
#[derive(PartialEq, Eq)]
enum Keep {
    /// Nothing more now: it waits for news.
    Yes,
    /// Its socket is full: try again in a moment ([`RETRY`]).
    Blocked,
    /// More lines are ready than one round takes: another round at once.
    More,
    No,
}

pub(super) struct Fanout {
    feed: Arc<Feed>,
    /// Followers handed over since the last round.
    incoming: Mutex<Vec<Live>>,
    heartbeat: Duration,
}

impl Fanout {
    /// Starts the fan-out's thread for `feed`; a follower silent for `heartbeat` gets one.
    pub(super) fn start(feed: Arc<Feed>, heartbeat: Duration) -> io::Result<Arc<Fanout>> {
        let fanout = Arc::new(Fanout { feed, incoming: Mutex::new(Vec::new()), heartbeat });
        let runner = Arc::clone(&fanout);
        thread::Builder::new()
            .name("walkv-fanout".into())
            .stack_size(128 << 10)
            .spawn(move || runner.run())?;
        Ok(fanout)
    }

    /// Takes over a follower that has caught up.
    pub(super) fn adopt(&self, live: Live) -> io::Result<()> {
        live.stream.set_nonblocking(true)?;
        self.incoming.lock().unwrap_or_else(|p| p.into_inner()).push(live);
        self.feed.nudge();
        Ok(())
    }

    fn run(&self) {
        let mut followers: Vec<Following> = Vec::new();
        let mut last_round = Instant::now();
        let mut wait = TICK;
        loop {
            self.feed.wait_for_news(wait);
            let gap = GAP_PER_FOLLOWER.saturating_mul(followers.len() as u32);
            if let Some(wait) = (last_round + gap).checked_duration_since(Instant::now()) {
                thread::sleep(wait);
            }
            last_round = Instant::now();
            let incoming =
                std::mem::take(&mut *self.incoming.lock().unwrap_or_else(|p| p.into_inner()));
            followers.extend(incoming.into_iter().map(|live| Following {
                live,
                pending: Vec::new(),
                last_write: Instant::now(),
                ending: false,
            }));
            let closed = self.feed.is_closed();
            // The copy starts at the lowest cursor of the followers whose sockets took all they
            // were given (the others may lag far, and a long copy would hold the ring's lock,
            // which the main thread needs; they take from the ring itself, if at all).
            let after = followers.iter().filter(|f| f.pending.is_empty()).map(|f| f.live.cursor);
            let recent = self.feed.recent(after.min().unwrap_or(u64::MAX));
            wait = TICK;
            let mut made = Vec::new();
            let mut served = 0usize;
            followers.retain_mut(|f| {
                // A round of a thousand followers takes milliseconds: giving the core up now
                // and then lets the main thread, when it wakes, run without waiting for the end.
                served += 1;
                if served.is_multiple_of(SLICE) {
                    thread::sleep(SLICE_PAUSE);
                } else if served.is_multiple_of(YIELD_EVERY) {
                    thread::yield_now();
                }
                match self.round(f, &recent, &mut made, closed) {
                    Keep::No => false,
                    Keep::Yes => true,
                    Keep::Blocked => {
                        wait = wait.min(RETRY);
                        true
                    }
                    Keep::More => {
                        wait = Duration::ZERO;
                        true
                    }
                }
            });
        }
    }

    /// One round for one follower.
    fn round(
        &self,
        f: &mut Following,
        recent: &Recent,
        made: &mut Vec<Made>,
        closed: bool,
    ) -> Keep {
        if closed && !f.ending {
            let mut body = Vec::new();
            end(&mut f.pending, &mut body);
            f.ending = true;
        }
        match write_pending(f) {
            Err(_) => return Keep::No,
            Ok(false) => return Keep::Blocked, // nothing more this round
            Ok(true) if f.ending || closed => return Keep::No,
            Ok(true) => {}
        }
        let plan = &f.live.plan;
        let bound = Follower::bound(&self.feed, plan);
        if plan.limit.is_none() {
            return self.shared_round(f, recent, made, bound);
        }
        let mut lines = Vec::new();
        let take = Take { prefix: &plan.prefix, budget: CHUNK };
        let mut body = Vec::new();
        let mut more = false;
        match recent.take_live(f.live.cursor, bound, &take, &mut lines) {
            Taken::Lines { upto } => {
                more = upto < bound;
                for line in &lines {
                    push_change(&mut body, plan, line.seq(), line.json());
                    f.live.sent += 1;
                    f.live.cursor = line.seq();
                    if plan.limit.is_some_and(|limit| f.live.sent >= limit) {
                        f.ending = true;
                        break;
                    }
                }
                if !f.ending {
                    f.live.cursor = upto;
                }
            }
            Taken::Nothing if f.last_write.elapsed() >= self.heartbeat => {
                push_heartbeat(&mut body, plan, f.live.cursor);
            }
            Taken::Nothing => return Keep::Yes,
            Taken::FellBehind | Taken::FromFiles { .. } => return self.cut(f),
        }
        if f.ending {
            end(&mut f.pending, &mut body);
        } else {
            push_chunk(&mut f.pending, &body);
        }
        match write_pending(f) {
            Err(_) => Keep::No,
            Ok(true) if f.ending => Keep::No,
            Ok(true) if more => Keep::More,
            Ok(true) => Keep::Yes,
            Ok(false) => Keep::Blocked,
        }
    }
}

impl Fanout {
    /// [`Fanout::round`] for a follower without a limit: the chunk made for the first follower
    /// that asked the same is written as it is.
    fn shared_round(
        &self,
        f: &mut Following,
        recent: &Recent,
        made: &mut Vec<Made>,
        bound: u64,
    ) -> Keep {
        let plan = &f.live.plan;
        let cursor = f.live.cursor;
        let found = made.iter().position(|m| {
            (m.cursor, m.bound, m.sse) == (cursor, bound, plan.sse) && m.prefix == plan.prefix
        });
        let at = match found {
            Some(at) => at,
            None => {
                let mut lines = Vec::new();
                let take = Take { prefix: &plan.prefix, budget: CHUNK };
                let mut body = Vec::new();
                let (upto, more) = match recent.take_live(cursor, bound, &take, &mut lines) {
                    Taken::Lines { upto } => (upto, upto < bound),
                    Taken::Nothing => (cursor, false),
                    Taken::FellBehind | Taken::FromFiles { .. } => {
                        return self.cut(f);
                    }
                };
                for line in &lines {
                    push_change(&mut body, plan, line.seq(), line.json());
                }
                let mut chunk = Vec::new();
                push_chunk(&mut chunk, &body);
                let count = lines.len() as u64;
                let prefix = plan.prefix.clone();
                made.push(Made { cursor, bound, sse: plan.sse, prefix, chunk, upto, count, more });
                made.len() - 1
            }
        };
        let m = &made[at];
        // Changes looked at and not matched move the cursor too: a heartbeat says so, and the
        // ring dropping them later is no reason to cut this follower.
        f.live.cursor = m.upto;
        f.live.sent += m.count;
        if m.chunk.is_empty() {
            if f.last_write.elapsed() < self.heartbeat {
                return Keep::Yes;
            }
            let mut beat = Vec::new();
            push_heartbeat(&mut beat, plan, f.live.cursor);
            push_chunk(&mut f.pending, &beat);
        } else {
            f.pending.extend_from_slice(&m.chunk);
        }
        match write_pending(f) {
            Err(_) => Keep::No,
            Ok(true) if m.more => Keep::More,
            Ok(true) => Keep::Yes,
            Ok(false) => Keep::Blocked,
        }
    }

    /// Cuts a follower that fell behind: its last line, then the end of the answer.
    fn cut(&self, f: &mut Following) -> Keep {
        let why = format!(
            "this follower fell more than {} bytes of changes behind and was cut; resume with \
             from={}",
            self.feed.capacity(),
            f.live.cursor
        );
        let mut body = Vec::new();
        push_cut(&mut body, &f.live.plan, f.live.cursor, &why);
        end(&mut f.pending, &mut body);
        f.ending = true;
        match write_pending(f) {
            Ok(false) => Keep::Blocked,
            _ => Keep::No,
        }
    }
}

/// Appends `body` as a chunk, then the end of the answer.
fn end(pending: &mut Vec<u8>, body: &mut Vec<u8>) {
    push_chunk(pending, body);
    body.clear();
    pending.extend_from_slice(LAST_CHUNK);
}

/// Writes what the socket takes of `pending` without waiting; true once it is all written.
fn write_pending(f: &mut Following) -> io::Result<bool> {
    let mut done = 0;
    let result = loop {
        if done == f.pending.len() {
            break Ok(true);
        }
        match (&f.live.stream).write(&f.pending[done..]) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
            Err(e) => break Err(e),
        }
    };
    if done > 0 {
        f.pending.drain(..done);
        f.last_write = Instant::now();
    }
    result
}
