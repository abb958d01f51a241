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
use crate::prehashed::PrehashedMap;
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Connections are numbered by the server, one after the other: their numbers need no hashing
/// (a connection's counts are looked up for every write it makes).
type ByConnection<T> = PrehashedMap<T>;

/// What waits here: a request, to be answered once (the server's [`Job`]; tests use their own).
pub(super) trait Answer {
    /// The connection it came on: answers of one connection leave in order.
    fn connection(&self) -> u64;
    fn respond(self, response: Response);
}

impl Answer for Job {
    fn connection(&self) -> u64 {
        Job::connection(self)
    }

    fn respond(self, response: Response) {
        Job::respond(self, response);
    }
}

/// What a held answer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Until {
    /// The write with this seq is in the map.
    Visible(u64),
    /// Every record through this seq is fsynced.
    Synced(u64),
}

struct Held<J> {
    job: J,
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

pub(super) struct Waiting<J = Job> {
    for_map: VecDeque<Held<J>>,
    for_fsync: VecDeque<Held<J>>,
    parked: VecDeque<J>,
    /// Parked writes (for the gauge and for fairness: a new write does not pass them).
    parked_writes: usize,
    connections: ByConnection<Counts>,
    /// Answers sent before their writes were fsynced (interval mode): the newest seq of a
    /// release and when, oldest first.
    unsynced_acks: VecDeque<(u64, Instant)>,
    /// Answers handed to the log's writer, which sends them itself (`always` mode): (the seq
    /// of the write, its connection), for the connection's count until the news says so.
    handed: VecDeque<(u64, u64)>,
}

/// Answers sent before their fsync are remembered in groups this long (see
/// [`Waiting::release`]); the bound is measured from a group's first.
const ACK_GROUP: Duration = Duration::from_millis(10);

/// How old the oldest acknowledged write not yet fsynced may get before acknowledgements stop
/// (see the module's doc): twice the sync interval, in `interval` mode only (`always`
/// acknowledges after the fsync; `never` promises nothing about power cuts).
pub(super) fn ack_bound(mode: crate::wal::SyncMode, interval: Duration) -> Option<Duration> {
    (mode == crate::wal::SyncMode::Interval).then(|| interval.saturating_mul(2))
}

impl<J> Default for Waiting<J> {
    fn default() -> Waiting<J> {
        Waiting {
            for_map: VecDeque::new(),
            for_fsync: VecDeque::new(),
            parked: VecDeque::new(),
            parked_writes: 0,
            connections: ByConnection::default(),
            unsynced_acks: VecDeque::new(),
            handed: VecDeque::new(),
        }
    }
}

impl<J: Answer> Waiting<J> {
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

    pub(super) fn park(&mut self, job: J, write: bool) {
        self.counts(job.connection()).parked += 1;
        self.parked_writes += usize::from(write);
        self.parked.push_back(job);
    }

    /// Takes the parked requests out, in order, for [`Waiting::unpark`] or [`Waiting::repark`].
    pub(super) fn take_parked(&mut self) -> VecDeque<J> {
        std::mem::take(&mut self.parked)
    }

    /// A parked request is about to be handled.
    pub(super) fn unpark(&mut self, job: &J, write: bool) {
        self.parked_writes -= usize::from(write);
        let connection = job.connection();
        self.counts(connection).parked -= 1;
        self.forget_if_idle(connection);
    }

    /// A parked request stays parked (after those taken out before it were looked at).
    pub(super) fn repark(&mut self, job: J) {
        self.parked.push_back(job);
    }

    /// The answer to the write `seq` of `connection` was handed to the log's writer: it counts
    /// as held until [`Waiting::handed_through`] or [`Waiting::handed_failed`].
    pub(super) fn handed(&mut self, connection: u64, seq: u64) {
        self.counts(connection).held += 1;
        self.handed.push_back((seq, connection));
    }

    /// The writes through `seq` are in the map: the writer has sent (or is sending) their
    /// answers.
    pub(super) fn handed_through(&mut self, seq: u64) {
        while self.handed.front().is_some_and(|&(s, _)| s <= seq) {
            if let Some((_, connection)) = self.handed.pop_front() {
                self.answered(connection);
            }
        }
    }

    /// The writes from `from` on failed: the writer answered them with the failure.
    pub(super) fn handed_failed(&mut self, from: u64) {
        while self.handed.back().is_some_and(|&(s, _)| s >= from) {
            if let Some((_, connection)) = self.handed.pop_back() {
                self.answered(connection);
            }
        }
    }

    /// True if `connection` has an answer held.
    pub(super) fn has_held(&self, connection: u64) -> bool {
        self.connections.get(&connection).is_some_and(|c| c.held > 0)
    }

    /// Holds `response` to `job` until `until`; `shows` is the write it shows.
    pub(super) fn hold(&mut self, job: J, response: Response, until: Until, shows: u64) {
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
                self.send(held);
                sent += 1;
            }
        }
        while !self.acks_stopped(bound, now)
            && self.for_map.front().is_some_and(|h| h.until <= visible)
        {
            let Some(held) = self.for_map.pop_front() else { break };
            if bound.is_some() && held.until > synced {
                // Answers sent within ACK_GROUP of each other share an entry, dated by the
                // first: at 125k writes a second one entry a release would be millions (a
                // bulk load filled 24 MiB this way before an fsync emptied it).
                match self.unsynced_acks.back_mut() {
                    Some(last) if now.duration_since(last.1) < ACK_GROUP => {
                        last.0 = last.0.max(held.until);
                    }
                    _ => self.unsynced_acks.push_back((held.until, now)),
                }
            }
            self.send(held);
            sent += 1;
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
            let (shows, kept): (Vec<Held<J>>, Vec<Held<J>>) =
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

    fn send(&mut self, held: Held<J>) {
        let Held { job, response, connection, .. } = held;
        job.respond(response);
        self.answered(connection);
    }

    /// One held answer of `connection` went out.
    fn answered(&mut self, connection: u64) {
        if let Some(counts) = self.connections.get_mut(&connection) {
            counts.held = counts.held.saturating_sub(1);
        }
        self.forget_if_idle(connection);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A request of a test: its connection, a name, and where its answer goes.
    struct Fake {
        connection: u64,
        name: &'static str,
        sent: Sent,
    }

    impl Answer for Fake {
        fn connection(&self) -> u64 {
            self.connection
        }

        fn respond(self, response: Response) {
            self.sent.borrow_mut().push((self.name, response.status));
        }
    }

    /// The answers sent, in order: (name, status).
    type Sent = Rc<RefCell<Vec<(&'static str, u16)>>>;

    fn setup() -> (Waiting<Fake>, impl Fn(u64, &'static str) -> Fake, Sent) {
        let sent = Sent::default();
        let log = Rc::clone(&sent);
        let job = move |connection, name| Fake { connection, name, sent: Rc::clone(&log) };
        (Waiting::default(), job, sent)
    }

    fn ok() -> Response {
        Response::error(200, "ok")
    }

    fn taken(sent: &RefCell<Vec<(&'static str, u16)>>) -> Vec<(&'static str, u16)> {
        std::mem::take(&mut *sent.borrow_mut())
    }

    /// Answers waiting for the map go once it shows their write, those waiting for an fsync
    /// once it is done (and the map shows it), each queue in order.
    #[test]
    fn answers_go_when_the_log_lets_them() {
        let (mut w, job, sent) = setup();
        let now = Instant::now();
        w.hold(job(1, "a"), ok(), Until::Visible(5), 5);
        w.hold(job(2, "b"), ok(), Until::Synced(5), 5);
        w.hold(job(3, "c"), ok(), Until::Visible(7), 7);
        assert_eq!(w.release(4, 4, None, now), 0);
        assert_eq!(w.release(5, 4, None, now), 1);
        assert_eq!(taken(&sent), vec![("a", 200)]);
        assert_eq!(w.release(6, 5, None, now), 1);
        assert_eq!(taken(&sent), vec![("b", 200)]);
        assert!(w.has_held(3) && !w.has_held(1));
        w.release(7, 5, None, now);
        assert_eq!(taken(&sent), vec![("c", 200)]);
        assert!(!w.has_held(3) && w.connections.is_empty(), "nothing is kept for idle ones");
    }

    /// In interval mode, answers stop once the oldest one sent before its fsync is older than
    /// the bound, and go again when an fsync covers it.
    #[test]
    fn acknowledgements_stop_while_the_oldest_unsynced_one_is_too_old() {
        let (mut w, job, sent) = setup();
        let (t0, bound) = (Instant::now(), Some(Duration::from_secs(1)));
        w.hold(job(1, "first"), ok(), Until::Visible(1), 1);
        assert_eq!(w.release(1, 0, bound, t0), 1, "not synced, but young");
        w.hold(job(2, "second"), ok(), Until::Visible(2), 2);
        let later = t0 + Duration::from_millis(1500);
        assert!(w.acks_stopped(bound, later));
        assert_eq!(w.release(2, 0, bound, later), 0, "the first has waited too long");
        assert_eq!(w.release(2, 1, bound, later), 1, "an fsync covered it: acks go again");
        w.hold(job(3, "third"), ok(), Until::Visible(3), 3);
        let much_later = later + Duration::from_millis(1200);
        assert_eq!(w.release(3, 1, bound, much_later), 0, "now the second is too old");
        assert_eq!(w.release(3, 2, bound, much_later), 1);
        assert!(!w.acks_stopped(bound, much_later), "the third is young");
        assert_eq!(w.release(3, 2, None, much_later), 0, "nothing left");
        assert_eq!(taken(&sent).len(), 3);
    }

    /// A write that never reached the log: the answers that showed it, or that wait for an
    /// fsync past it, get the failure; the others stay held.
    #[test]
    fn failed_writes_fail_the_answers_that_show_them() {
        let (mut w, job, sent) = setup();
        w.hold(job(1, "kept"), ok(), Until::Visible(4), 4);
        w.hold(job(2, "written"), ok(), Until::Visible(5), 5);
        w.hold(job(3, "412 on it"), ok(), Until::Visible(6), 5);
        w.hold(job(4, "sync"), ok(), Until::Synced(6), 6);
        w.fail_from(5, &Response::error(507, "full"));
        assert_eq!(taken(&sent), vec![("written", 507), ("412 on it", 507), ("sync", 507)]);
        w.release(9, 9, None, Instant::now());
        assert_eq!(taken(&sent), vec![("kept", 200)]);
    }

    /// What must wait: a read behind its connection's held answer, anything behind its
    /// connection's parked request, a write while the log's queue is full or writes are parked.
    #[test]
    fn requests_park_behind_what_they_must_not_pass() {
        let (mut w, job, _) = setup();
        w.hold(job(1, "write"), ok(), Until::Visible(1), 1);
        assert!(w.must_park(1, false, true), "a read behind its own connection's write");
        assert!(!w.must_park(1, true, true), "another write of it may go: the log orders them");
        assert!(!w.must_park(2, false, true), "another connection's read does not wait");
        assert!(w.must_park(2, true, false), "no room in the log's queue");
        w.park(job(2, "parked write"), true);
        assert!(w.must_park(3, true, true), "writes do not pass a parked write");
        assert!(w.must_park(2, false, true), "nor a connection's own parked request");
        assert!(!w.must_park(3, false, true), "reads of others go on");
        assert_eq!(w.parked(), (1, 1));
        let parked = w.take_parked();
        for job in parked {
            w.unpark(&job, true);
        }
        assert_eq!(w.parked(), (0, 0));
        assert!(!w.must_park(3, true, true));
    }

    /// Answers the log's writer sends itself still count for their connection until the news
    /// says their writes are in the map, or failed.
    #[test]
    fn answers_handed_to_the_writer_count_until_the_news() {
        let (mut w, _, _) = setup();
        w.handed(1, 5);
        w.handed(2, 6);
        w.handed(1, 7);
        assert!(w.must_park(1, false, true) && w.must_park(2, false, true));
        w.handed_through(6);
        assert!(w.has_held(1) && !w.has_held(2), "the write 7 of connection 1 is on its way");
        w.handed_failed(7);
        assert!(!w.has_held(1) && w.connections.is_empty());
    }

    /// Answers sent before their fsync are remembered in groups, not one by one: a bulk load
    /// between two fsyncs must not grow the record with every answer.
    #[test]
    fn unsynced_answers_are_remembered_in_groups() {
        let (mut w, job, _) = setup();
        let (t0, bound) = (Instant::now(), Some(Duration::from_secs(10)));
        for seq in 1..=10_000 {
            w.hold(job(1, "w"), ok(), Until::Visible(seq), seq);
            let now = t0 + Duration::from_micros(seq * 10); // 100 ms in all
            assert_eq!(w.release(seq, 0, bound, now), 1);
        }
        assert!(w.unsynced_acks.len() <= 11, "{} entries", w.unsynced_acks.len());
        assert_eq!(w.unsynced_acks.front().map(|a| a.1), Some(t0 + Duration::from_micros(10)));
        w.release(10_000, 10_000, bound, t0);
        assert!(w.unsynced_acks.is_empty());
    }
}
