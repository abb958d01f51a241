//! What waits on the main thread without making it wait: answers held until the log has their
//! writes, and requests parked until they may be handled.
//!
//! **Held answers.** An answer that shows a write (the write's own `201`, a `412` naming a
//! pending ETag, see [`crate::store`]) waits until that write is in the map: until it is
//! written in `interval` and `never` modes, fsynced in `always` mode. An answer that asked for
//! an fsync (`?sync`, `POST /sync`) waits for one. The server polls the log's news between
//! batches and sends what may go ([`Waiting::release`]); meanwhile it answers everything else.
//!
//! **The interval promise under a slow disk.** In `interval` mode a write is acknowledged once
//! written, before it is fsynced. If the disk is slow, fsyncs come late, and a power cut could
//! take more than the durability table says. So acknowledgements stop while the oldest one not
//! yet covered by an fsync is older than a bound (twice `--sync-interval`, see
//! [`ack_bound`]): writes then wait for the fsync, as in `always` mode; reads go on.
//!
//! **Parked requests.** A request is parked, not handled, when handling it now would break a
//! promise: a read (or anything that is not a write) from a connection with an answer held, so
//! that a client that pipelines a write and a read sees its own write; anything behind a parked
//! request of the same connection, so that its requests keep their order; and a write while the
//! writes queued for the log hold `--max-write-queue` bytes or more (back-pressure: the client
//! waits, memory stays bounded). A parked request costs its connection's place in line, nobody
//! else's.

use crate::http::Response;
use crate::intake::Job;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// What a held answer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Until {
    /// The write with this seq is in the map.
    Visible(u64),
    /// Every record through this seq is fsynced.
    Synced(u64),
}

struct Held {
    job: Job,
    response: Response,
    /// The seq it waits for; never less than the one held before it in its queue, so that each
    /// queue is released from its front.
    until: u64,
    /// The seq of the write it shows (for failures: an answer that showed a write that never
    /// reached the log must not go out as it is).
    shows: u64,
    connection: u64,
}

/// Per connection: answers held and requests parked.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    held: u32,
    parked: u32,
}

#[derive(Default)]
pub(super) struct Waiting {
    for_map: VecDeque<Held>,
    for_fsync: VecDeque<Held>,
    parked: VecDeque<Job>,
    /// Parked writes (for the gauge and for fairness: a new write does not pass them).
    parked_writes: usize,
    connections: HashMap<u64, Counts>,
    /// Answers sent before their writes were fsynced (interval mode): the newest seq of a
    /// release and when, oldest first.
    unsynced_acks: VecDeque<(u64, Instant)>,
}

/// How old the oldest acknowledged write not yet fsynced may get before acknowledgements stop
/// (see the module's doc): twice the sync interval, in `interval` mode only (`always`
/// acknowledges after the fsync; `never` promises nothing about power cuts).
pub(super) fn ack_bound(mode: crate::wal::SyncMode, interval: Duration) -> Option<Duration> {
    (mode == crate::wal::SyncMode::Interval).then(|| interval.saturating_mul(2))
}

impl Waiting {
    /// Requests parked, and of them how many are writes.
    pub(super) fn parked(&self) -> (usize, usize) {
        (self.parked.len(), self.parked_writes)
    }

    /// True if a request of `connection` (a write, or not) must be parked now; `room`: the
    /// queue of writes for the log has room.
    pub(super) fn must_park(&self, connection: u64, write: bool, room: bool) -> bool {
        let counts = self.connections.get(&connection).copied().unwrap_or_default();
        counts.parked > 0
            || (write && (self.parked_writes > 0 || !room))
            || (!write && counts.held > 0)
    }

    pub(super) fn park(&mut self, job: Job, write: bool) {
        self.counts(job.connection()).parked += 1;
        self.parked_writes += usize::from(write);
        self.parked.push_back(job);
    }

    /// Takes the parked requests out, in order, for [`Waiting::unpark`] or [`Waiting::repark`].
    pub(super) fn take_parked(&mut self) -> VecDeque<Job> {
        std::mem::take(&mut self.parked)
    }

    /// A parked request is about to be handled.
    pub(super) fn unpark(&mut self, job: &Job, write: bool) {
        self.parked_writes -= usize::from(write);
        let connection = job.connection();
        self.counts(connection).parked -= 1;
        self.forget_if_idle(connection);
    }

    /// A parked request stays parked (after those taken out before it were looked at).
    pub(super) fn repark(&mut self, job: Job) {
        self.parked.push_back(job);
    }

    /// True if `connection` has an answer held.
    pub(super) fn has_held(&self, connection: u64) -> bool {
        self.connections.get(&connection).is_some_and(|c| c.held > 0)
    }

    /// Holds `response` to `job` until `until`; `shows` is the write it shows.
    pub(super) fn hold(&mut self, job: Job, response: Response, until: Until, shows: u64) {
        let connection = job.connection();
        self.counts(connection).held += 1;
        let (queue, seq) = match until {
            Until::Visible(seq) => (&mut self.for_map, seq),
            Until::Synced(seq) => (&mut self.for_fsync, seq),
        };
        let until = queue.back().map_or(seq, |last| last.until.max(seq));
        queue.push_back(Held { job, response, until, shows, connection });
    }

    /// Sends the held answers that may go: those waiting for the map through `visible` (unless
    /// acknowledgements are stopped, see [`ack_bound`]), those waiting for an fsync through
    /// `synced`. Returns how many were sent.
    pub(super) fn release(
        &mut self,
        visible: u64,
        synced: u64,
        bound: Option<Duration>,
        now: Instant,
    ) -> usize {
        while self.unsynced_acks.front().is_some_and(|&(seq, _)| seq <= synced) {
            self.unsynced_acks.pop_front();
        }
        let mut sent = 0;
        while self.for_fsync.front().is_some_and(|h| h.until <= synced.min(visible)) {
            if let Some(held) = self.for_fsync.pop_front() {
                sent += self.send(held);
            }
        }
        let stopped = |acks: &VecDeque<(u64, Instant)>| {
            bound.zip(acks.front()).is_some_and(|(b, &(_, at))| now.duration_since(at) >= b)
        };
        while !stopped(&self.unsynced_acks)
            && self.for_map.front().is_some_and(|h| h.until <= visible)
        {
            let Some(held) = self.for_map.pop_front() else { break };
            if bound.is_some() && held.until > synced {
                match self.unsynced_acks.back_mut() {
                    Some(last) if last.0 >= held.until => {}
                    _ => self.unsynced_acks.push_back((held.until, now)),
                }
            }
            sent += self.send(held);
        }
        sent
    }

    /// True while acknowledgements are stopped because the oldest one not fsynced is too old.
    pub(super) fn acks_stopped(&self, bound: Option<Duration>, now: Instant) -> bool {
        bound
            .zip(self.unsynced_acks.front())
            .is_some_and(|(b, &(_, at))| now.duration_since(at) >= b)
    }

    /// The writes from seq `from` on never reached the log: every held answer that shows one of
    /// them, or waits for an fsync past them, is answered with `failure` instead.
    pub(super) fn fail_from(&mut self, from: u64, failure: &Response) {
        let mut failed = Vec::new();
        for queue in [&mut self.for_map, &mut self.for_fsync] {
            let (shows, kept): (Vec<Held>, Vec<Held>) =
                queue.drain(..).partition(|h| h.shows >= from);
            queue.extend(kept);
            failed.extend(shows);
        }
        for mut held in failed {
            held.response = failure.clone();
            self.send(held);
        }
    }

    /// Every held answer is answered with `failure` (the log failed, or the server stops with
    /// answers that can no longer be given).
    pub(super) fn fail_all(&mut self, failure: &Response) {
        self.fail_from(0, failure);
    }

    fn send(&mut self, held: Held) -> usize {
        let Held { job, response, connection, .. } = held;
        job.respond(response);
        if let Some(counts) = self.connections.get_mut(&connection) {
            counts.held = counts.held.saturating_sub(1);
        }
        self.forget_if_idle(connection);
        1
    }

    fn counts(&mut self, connection: u64) -> &mut Counts {
        self.connections.entry(connection).or_default()
    }

    fn forget_if_idle(&mut self, connection: u64) {
        if self.connections.get(&connection).is_some_and(|c| c.held == 0 && c.parked == 0) {
            self.connections.remove(&connection);
        }
    }
}

/// The connections met while looking through parked requests in order: one that had a request
/// stay parked keeps the rest of its requests parked too.
#[derive(Default)]
pub(super) struct Blocked {
    connections: HashSet<u64>,
    /// A write stayed parked: later writes stay too, in their order.
    pub(super) writes: bool,
}

impl Blocked {
    pub(super) fn contains(&self, connection: u64) -> bool {
        self.connections.contains(&connection)
    }

    pub(super) fn insert(&mut self, connection: u64) {
        self.connections.insert(connection);
    }
}
