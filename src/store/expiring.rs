//! Keys with a time to live: the index of when each expires, and the sweep that removes them.
//!
//! A key is never served from its expiry on: every read of the map asks the entry
//! ([`Entry::expired`]), so nothing depends on the sweep for correctness. The sweep is what
//! gives the memory back and tells the log, the change feed and a mirror: on the main thread,
//! in slices of at most [`Sweep::MAX_KEYS`] keys and about half a millisecond, it gives each expired
//! key an EXPIRE record, which reaches the map (and removes the key) as any write does. The
//! index holds only keys that have an expiry, ordered by it, so a key without one costs nothing
//! here, and a slice finds what is due without looking at anything else.

use super::Store;
use super::entry::Entry;
use super::pending::Change;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The keys that expire, by expiry then key.
#[derive(Default)]
pub(super) struct Expiring {
    index: BTreeSet<(u64, Box<[u8]>)>,
}

impl Expiring {
    /// `entry` entered the map.
    pub(super) fn added(&mut self, entry: &Entry) {
        if let Some(at) = entry.expires() {
            self.index.insert((at, entry.key().into()));
        }
    }

    /// `entry` left the map.
    pub(super) fn removed(&mut self, entry: &Entry) {
        if let Some(at) = entry.expires() {
            self.index.remove(&(at, Box::<[u8]>::from(entry.key())));
        }
    }

    /// How many keys have an expiry.
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }
}

/// Where the sweep is: the keys it gave an EXPIRE record wait in the pending writes until the
/// map removes them, so the next slice starts after the last one it took.
#[derive(Default)]
pub(super) struct Sweep {
    after: Option<(u64, Box<[u8]>)>,
}

impl Sweep {
    /// The most keys one slice expires.
    pub const MAX_KEYS: usize = 500;
    /// A slice stops taking keys after this long.
    pub const MAX_TIME: Duration = Duration::from_micros(500);
    /// A slice expires nothing while this many writes are on their way to the log: expiries
    /// wait behind the writes rather than pile up, and the step that moves a batch of them into
    /// the map (all at once, when the log has them) stays about as short as a slice.
    const MAX_PENDING: usize = Sweep::MAX_KEYS;
}

/// What a slice of the sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    /// Keys given an EXPIRE record.
    pub expired: usize,
    /// True if more keys are due: the next slice should come soon (at once, if this one
    /// expired some; else it waited for the log, whose news comes in a moment).
    pub more: bool,
}

impl Store {
    /// One slice of the sweep at `now` (milliseconds since the Unix epoch): gives at most 500
    /// keys whose expiry has passed an EXPIRE record, for about half a millisecond at most. A key whose newest state is a write on its way is left to
    /// that write.
    pub fn sweep(&mut self, now: u64) -> Swept {
        if self.check_writable().is_err() {
            return Swept::default();
        }
        if self.pending.len() >= Sweep::MAX_PENDING {
            // Wait for the log to take what is on its way; say whether keys are due.
            let due = self.expiring.index.first().is_some_and(|(at, _)| *at <= now);
            return Swept { expired: 0, more: due };
        }
        if self.pending.len() == 0 {
            // Every EXPIRE given out has reached the map (and left the index): start over, in
            // case the clock went back or a key with an earlier expiry came in since.
            self.sweep_at.after = None;
        }
        let started = Instant::now();
        let mut due = Vec::new();
        let range = match &self.sweep_at.after {
            Some(after) => self
                .expiring
                .index
                .range((std::ops::Bound::Excluded(after.clone()), std::ops::Bound::Unbounded)),
            None => self.expiring.index.range(..),
        };
        let mut more = false;
        for (at, key) in range {
            if *at > now {
                break;
            }
            if due.len() == Sweep::MAX_KEYS
                || (due.len() % 64 == 63 && started.elapsed() >= Sweep::MAX_TIME)
            {
                more = true;
                break;
            }
            due.push((*at, key.clone()));
        }
        if let Some(last) = due.last() {
            self.sweep_at.after = Some(last.clone());
        }
        let mut expired = 0;
        for (_, key) in due {
            let hash = self.pending.hash(&key);
            if self.pending.newest(&key, hash).is_none() {
                self.issue_change(Change::Expire(key), hash);
                expired += 1;
            }
        }
        self.expired_total += expired as u64;
        Swept { expired, more }
    }

    /// Keys with an expiry, in the map.
    pub fn expiring_keys(&self) -> usize {
        self.expiring.len()
    }

    /// Keys the sweep has expired since the server started.
    pub fn expired_total(&self) -> u64 {
        self.expired_total
    }
}
