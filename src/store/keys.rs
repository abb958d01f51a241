//! The map and what is kept beside it as entries come and go: the sums over it ([`Tally`])
//! and the index of keys that expire ([`Expiring`]). Every change to the map goes through
//! [`apply`] (or [`put`] and [`take`]), at startup and while serving, so the three never
//! disagree.

use super::Map;
use super::entry::Entry;
use super::expiring::Expiring;
use super::memory;
use super::pending::Change;

/// The map, and what the store keeps beside it.
#[derive(Default)]
pub(super) struct Keys {
    pub(super) map: Map,
    pub(super) tally: Tally,
    pub(super) expiring: Expiring,
}

/// Sums over the map, kept as entries come and go ([`put`], [`take`]).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Tally {
    /// Of [`Entry::bytes`]: what a snapshot of the map takes (`live_bytes`).
    pub(super) live_bytes: u64,
    /// Of [`Entry::memory`]: what the map takes in memory, as [`memory`] counts it.
    pub(super) memory: u64,
}

impl Tally {
    fn add(&mut self, entry: &Entry) {
        self.live_bytes += entry.bytes();
        self.memory += memory::of_entry(entry);
    }

    fn remove(&mut self, entry: &Entry) {
        self.live_bytes -= entry.bytes();
        self.memory -= memory::of_entry(entry);
    }
}

/// Puts `entry` in `map`, keeping `tally` and the index of expiring keys; returns the entry it
/// replaced.
fn put(map: &mut Map, tally: &mut Tally, expiring: &mut Expiring, entry: Entry) -> Option<Entry> {
    tally.add(&entry);
    expiring.added(&entry);
    let expires = entry.expires();
    let old = map.replace(entry);
    if let Some(old) = &old {
        tally.remove(old);
        if old.expires() != expires {
            // (The same expiry is the same place in the index, which the new entry holds.)
            expiring.removed(old);
        }
    }
    old
}

/// Takes `key` out of `map`, keeping `tally` and the index of expiring keys.
fn take(map: &mut Map, tally: &mut Tally, expiring: &mut Expiring, key: &[u8]) -> Option<Entry> {
    let old = map.take(key);
    if let Some(old) = &old {
        tally.remove(old);
        expiring.removed(old);
    }
    old
}

/// Applies one change (a transaction's one by one) to `map`; `seen` is told of each key it
/// changes, and whether it removed it.
pub(super) fn apply(
    map: &mut Map,
    tally: &mut Tally,
    expiring: &mut Expiring,
    change: Change,
    seen: &mut impl FnMut(&[u8], bool),
) {
    match change {
        Change::Set(entry) => {
            seen(entry.key(), false);
            put(map, tally, expiring, entry);
        }
        Change::Delete(key) | Change::Expire(key) => {
            seen(&key, true);
            take(map, tally, expiring, &key);
        }
        Change::Txn(changes) => {
            for (change, _) in changes.into_vec() {
                apply(map, tally, expiring, change, seen);
            }
        }
    }
}
