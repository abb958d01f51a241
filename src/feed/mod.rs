//! The change feed's live end: the changes the server made visible lately, each encoded once as
//! a JSON line, in one ring that every follower of `GET /changes` reads.
//!
//! The invariant: **the ring holds every visible change with a seq in `(after, upto]`, in seq
//! order, and nothing else.** Only the main thread writes it, in the same step that moves
//! changes into the map ([`crate::store`]), so a follower never sees a change a read could not
//! see yet, and never one a crash could take back (a change is visible only once the log has it
//! as far as the server's `--sync` mode promises). What is older than `after` is read from the
//! log's files by the follower's own thread ([`crate::wal::history`]); the seqs published in
//! [`Feed::visible`] and [`Feed::synced`] say how far a follower may go.
//!
//! # Costs
//! - Nobody follows: the main thread stores two numbers per batch of news, encodes nothing
//!   and takes no lock. The last follower to leave empties the ring.
//! - Somebody follows: each change is encoded once, on the main thread, and pushed into the
//!   ring under its lock; then one thread is told ([`Feed::wait_for_news`]): the one that
//!   writes to every follower that has caught up (see [`crate::intake`]), so that serving a
//!   thousand of them is never the main thread's time, nor a thousand threads' wake-ups.
//! - Memory: the ring holds at most `capacity` bytes of lines (the newest line always stays,
//!   whatever its size). A follower holds no copy of what it has not sent yet; one that falls
//!   so far behind that the ring dropped a line it had not taken is cut (see
//!   [`crate::intake`]'s follow), as Redis cuts a pub/sub client past its output buffer limit.

mod line;

pub use line::Line;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The ring's default size: how far behind, in bytes of JSON lines, a follower may fall before
/// it is cut (`--follower-backlog`).
pub const DEFAULT_CAPACITY: usize = 16 << 20;

/// The feed's states (in [`Feed::state`]).
const REPLAYING: u8 = 0;
const SERVING: u8 = 1;
const CLOSED: u8 = 2;

/// The feed shared by the main thread (which publishes) and the followers (which read).
pub struct Feed {
    ring: Mutex<Ring>,
    visible: AtomicU64,
    synced: AtomicU64,
    followers: AtomicUsize,
    state: AtomicU8,
    dir: PathBuf,
    capacity: usize,
    /// Followers cut for falling behind, since start (`/metrics`).
    cut: AtomicU64,
    /// The doorbell of the thread that writes to live followers: true while news is owed.
    bell: Mutex<bool>,
    rung: Condvar,
}

/// The recent changes, as lines.
#[derive(Default)]
struct Ring {
    lines: VecDeque<Line>,
    /// Every visible change with a seq in `(after, upto]` is in `lines`.
    after: u64,
    upto: u64,
    bytes: usize,
}

/// What a follower takes: lines of keys that start with `prefix`, at most about `budget`
/// bytes of them at a time (one line more than that at most).
pub struct Take<'a> {
    pub prefix: &'a [u8],
    pub budget: usize,
}

/// What a follower may take now (see [`Feed::take`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The changes after the cursor through `upto` are in the log's files, not in the ring:
    /// read them there.
    FromFiles { upto: u64 },
    /// Lines after the cursor, through `upto` (every change through `upto` was looked at;
    /// `lines` holds those that matched).
    Lines { upto: u64 },
    /// The ring dropped changes after the cursor that this follower had not taken.
    FellBehind,
    /// Nothing new.
    Nothing,
}

impl Feed {
    /// A feed for the log in `dir`, whose visible and synced seqs are `last` now, keeping at
    /// most `capacity` bytes of lines.
    pub fn new(dir: &Path, last: u64, capacity: usize) -> Arc<Feed> {
        Arc::new(Feed {
            ring: Mutex::new(Ring { after: last, upto: last, ..Ring::default() }),
            visible: AtomicU64::new(last),
            synced: AtomicU64::new(last),
            followers: AtomicUsize::new(0),
            state: AtomicU8::new(REPLAYING),
            dir: dir.to_path_buf(),
            capacity: capacity.max(1),
            cut: AtomicU64::new(0),
            bell: Mutex::new(false),
            rung: Condvar::new(),
        })
    }

    /// The data directory, whose files hold the history before the ring.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The seq every change through which is visible (in the map and in the ring's range).
    pub fn visible(&self) -> u64 {
        self.visible.load(Ordering::SeqCst)
    }

    /// The seq every change through which is on stable storage.
    pub fn synced(&self) -> u64 {
        self.synced.load(Ordering::SeqCst)
    }

    /// Followers connected now.
    pub fn followers(&self) -> usize {
        self.followers.load(Ordering::SeqCst)
    }

    /// Followers cut since start for falling behind.
    pub fn cut_count(&self) -> u64 {
        self.cut.load(Ordering::Relaxed)
    }

    /// The bound of a follower's backlog, in bytes of lines.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// True while the log is replayed at startup: the feed answers 503 then.
    pub fn is_replaying(&self) -> bool {
        self.state.load(Ordering::SeqCst) == REPLAYING
    }

    /// True once the server is stopping: followers end their answers.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::SeqCst) == CLOSED
    }

    // ---- The main thread's side ----

    /// The replay is done: the store, whose visible seq is `last`, serves from now on.
    pub fn serve_from(&self, last: u64) {
        {
            let mut ring = self.lock();
            *ring = Ring { after: last, upto: last, ..Ring::default() };
        }
        self.visible.store(last, Ordering::SeqCst);
        self.synced.store(last, Ordering::SeqCst);
        self.state.store(SERVING, Ordering::SeqCst);
    }

    /// True if the changes the main thread makes visible next should be encoded as lines: only
    /// while somebody follows.
    pub fn is_followed(&self) -> bool {
        self.followers.load(Ordering::SeqCst) > 0
    }

    /// The changes in `(before, upto]` are visible now; `lines` are their lines if they were
    /// encoded ([`Feed::is_followed`]). Without lines the ring falls behind, and is started
    /// again from here by the next lines: followers read the gap from the files.
    pub fn made_visible(&self, before: u64, upto: u64, lines: Option<Vec<Line>>) {
        let encoded = lines.is_some();
        match lines {
            Some(lines) => {
                let mut ring = self.lock();
                if ring.upto != before {
                    *ring = Ring { after: before, upto: before, ..Ring::default() };
                }
                for line in lines {
                    ring.bytes += line.len();
                    ring.lines.push_back(line);
                }
                ring.upto = upto;
                while ring.bytes > self.capacity && ring.lines.len() > 1 {
                    if let Some(old) = ring.lines.pop_front() {
                        ring.bytes -= old.len();
                        ring.after = old.seq();
                    }
                }
                self.visible.store(upto, Ordering::SeqCst);
            }
            None => self.visible.store(upto, Ordering::SeqCst),
        }
        if self.is_followed() {
            self.ring_bell();
        } else if encoded {
            self.forget_lines(); // the last follower left while they were encoded
        }
    }

    /// Empties the ring if nobody follows: its lines are nobody's.
    fn forget_lines(&self) {
        let mut ring = self.lock();
        if !self.is_followed() && !ring.lines.is_empty() {
            let upto = ring.upto;
            *ring = Ring { after: upto, upto, ..Ring::default() };
        }
    }

    /// Every change through `seq` is on stable storage.
    pub fn made_synced(&self, seq: u64) {
        if self.synced.fetch_max(seq, Ordering::SeqCst) < seq && self.is_followed() {
            self.ring_bell();
        }
    }

    /// The server is stopping: every follower ends its answer.
    pub fn close(&self) {
        self.state.store(CLOSED, Ordering::SeqCst);
        self.ring_bell();
    }

    /// Tells the thread that writes to live followers that there is news (one wake-up of one
    /// thread, if it sleeps).
    fn ring_bell(&self) {
        let mut owed = self.bell.lock().unwrap_or_else(|p| p.into_inner());
        if !*owed {
            *owed = true;
            self.rung.notify_one();
        }
    }

    /// Rings the bell without news: a follower was handed to the thread that waits on it.
    pub fn nudge(&self) {
        self.ring_bell();
    }

    /// Waits at most `timeout` for news (new lines, a higher synced seq, the close); true if
    /// there was some. For the one thread that writes to live followers.
    pub fn wait_for_news(&self, timeout: Duration) -> bool {
        let mut owed = self.bell.lock().unwrap_or_else(|p| p.into_inner());
        if !*owed {
            owed = self.rung.wait_timeout(owed, timeout).unwrap_or_else(|p| p.into_inner()).0;
        }
        std::mem::take(&mut *owed)
    }

    // ---- The followers' side ----

    /// Counts a follower in for as long as the guard lives.
    pub fn follow(self: &Arc<Self>) -> Following {
        self.followers.fetch_add(1, Ordering::SeqCst);
        Following(Arc::clone(self))
    }

    /// What a follower whose cursor is at `cursor` may take now, up to `bound` (the visible or
    /// the synced seq): the lines of keys that start with `prefix` are appended to `out`, until
    /// they hold `budget` bytes.
    pub fn take(&self, cursor: u64, bound: u64, take: &Take, out: &mut Vec<Line>) -> Taken {
        let ring = self.lock();
        Self::take_locked(&ring, cursor, bound, take, out)
    }

    fn take_locked(
        ring: &Ring,
        cursor: u64,
        bound: u64,
        take: &Take,
        out: &mut Vec<Line>,
    ) -> Taken {
        if cursor >= bound {
            return Taken::Nothing;
        }
        if cursor < ring.after {
            return Taken::FromFiles { upto: ring.after.min(bound) };
        }
        if cursor >= ring.upto {
            // Visible, yet not in the ring: made visible while nobody followed.
            return Taken::FromFiles { upto: bound };
        }
        let mut upto = ring.upto.min(bound);
        let skip = ring.lines.partition_point(|line| line.seq() <= cursor);
        let mut bytes = 0;
        for line in ring.lines.range(skip..) {
            if line.seq() > upto {
                break;
            }
            if line.matches(take.prefix) {
                out.push(line.clone());
                bytes += line.json().len();
                if bytes >= take.budget {
                    upto = line.seq();
                    break;
                }
            }
        }
        Taken::Lines { upto }
    }

    /// The ring's lines after `after` (and its bounds), taken in one lock: the fan-out serves
    /// a round of followers from it without taking the lock once per follower, which the main
    /// thread also needs. A follower behind `after` is served from the ring itself.
    pub fn recent(&self, after: u64) -> Recent<'_> {
        let ring = self.lock();
        let skip = ring.lines.partition_point(|line| line.seq() <= after);
        let lines = ring.lines.range(skip..).cloned().collect();
        let after = after.max(ring.after);
        Recent { copy: Ring { lines, after, upto: ring.upto, bytes: 0 }, feed: self }
    }

    /// [`Recent::take_live`] from the ring itself.
    fn take_live(&self, cursor: u64, bound: u64, take: &Take, out: &mut Vec<Line>) -> Taken {
        let ring = self.lock();
        if cursor < ring.after {
            self.cut.fetch_add(1, Ordering::Relaxed);
            return Taken::FellBehind;
        }
        Self::take_locked(&ring, cursor, bound, take, out)
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The recent part of the ring, for one round of the fan-out ([`Feed::recent`]): a copy of
/// its lines after some seq (`copy.after`).
pub struct Recent<'a> {
    copy: Ring,
    feed: &'a Feed,
}

impl Recent<'_> {
    /// [`Feed::take`] for a follower that has taken lines from the ring before: if the ring
    /// dropped lines it had not taken, it fell behind (and is counted as cut).
    pub fn take_live(&self, cursor: u64, bound: u64, take: &Take, out: &mut Vec<Line>) -> Taken {
        // Changes made visible since the copy are for the next round.
        let bound = bound.min(self.copy.upto);
        if cursor < self.copy.after {
            return self.feed.take_live(cursor, bound, take, out); // a laggard: rare
        }
        Feed::take_locked(&self.copy, cursor, bound, take, out)
    }
}

/// A follower counted in [`Feed::followers`]; dropping it counts the follower out.
pub struct Following(Arc<Feed>);

impl Drop for Following {
    /// The last follower to leave empties the ring, here rather than on the main thread, which
    /// takes no lock per batch while nobody follows.
    fn drop(&mut self) {
        self.0.followers.fetch_sub(1, Ordering::SeqCst);
        self.0.forget_lines();
    }
}

#[cfg(test)]
mod tests;
