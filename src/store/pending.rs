//! Writes on their way to the log: given a sequence number and handed to the writer thread, not
//! yet in the map (see [`super`], *What a read sees*).
//!
//! They are kept in seq order, one per record, with no gap between them, so that the record of
//! seq `s` is at index `s - first`. Beside them, `newest` says for each key with a write on its
//! way the seq of the newest one: that is the state a later write of the key must be checked
//! against (its ETag for `If-Match`, whether it exists), since the map does not show it yet.
//!
//! `newest` is keyed by a 64-bit hash of the key (SipHash with a key chosen at random when the
//! store opens), not by the key itself, so that a write costs no allocation and one hash here;
//! each change keeps its key's hash for when it leaves. Two pending keys with the same hash
//! would share a slot, which holds the newer one's seq: a lookup checks that the change it
//! points at is of the key asked for, and if not (a collision, about one chance in 2⁶⁴ per
//! pair) looks through the pending changes from the newest instead. Correct either way.

use super::entry::Entry;
use super::memory;
use crate::prehashed::PrehashedMap;
use crate::wal::record::TxnBuilder;
use crate::wal::{Body, RECORD_HEADER_LEN};
use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};

/// One change to the map, in log order.
pub(super) enum Change {
    Set(Entry),
    Delete(Box<[u8]>),
    /// The sweep removed a key whose time had come: a DELETE that says why.
    Expire(Box<[u8]>),
    /// A transaction's SETs and DELETEs, under one seq, each with its key's hash.
    Txn(Box<[(Change, u64)]>),
}

impl Change {
    /// The key it changes (none for a transaction: see [`Change::of_key`]).
    pub(super) fn key(&self) -> &[u8] {
        match self {
            Change::Set(entry) => entry.key(),
            Change::Delete(key) | Change::Expire(key) => key,
            Change::Txn(_) => b"",
        }
    }

    /// The change a data record makes (none for a marker or a gap). A transaction's changes get
    /// the hash 0: for replay, which keeps no pending changes.
    pub(super) fn of_record(seq: u64, body: &Body) -> Option<Change> {
        match *body {
            Body::Set { key, value, expires } => {
                Some(Change::Set(Entry::new(seq, key, value, expires)))
            }
            Body::Delete { key } => Some(Change::Delete(key.into())),
            Body::Expire { key } => Some(Change::Expire(key.into())),
            Body::Txn(txn) => Some(Change::Txn(
                txn.ops().filter_map(|op| Change::of_record(seq, &op)).map(|c| (c, 0)).collect(),
            )),
            Body::Mark(_) | Body::Gap { .. } => None,
        }
    }

    /// The change it makes to `key`, if it changes it: itself, or one of a transaction's.
    pub(super) fn of_key(&self, key: &[u8]) -> Option<&Change> {
        match self {
            Change::Txn(changes) => changes.iter().map(|(c, _)| c).find(|c| c.key() == key),
            change => (change.key() == key).then_some(change),
        }
    }

    /// The bytes of its record in the log.
    pub(super) fn record_bytes(&self) -> u64 {
        let body = match self {
            Change::Set(entry) => entry.bytes() - RECORD_HEADER_LEN as u64,
            Change::Delete(key) | Change::Expire(key) => key.len() as u64,
            Change::Txn(changes) => changes
                .iter()
                .map(|(c, _)| c.record_bytes() - RECORD_HEADER_LEN as u64 + TXN_OP_HEADER)
                .sum(),
        };
        RECORD_HEADER_LEN as u64 + body
    }

    /// What it takes in memory while it is on its way: its record, and its entries.
    fn cost(&self) -> u64 {
        self.record_bytes() + self.entries_memory()
    }

    fn entries_memory(&self) -> u64 {
        match self {
            Change::Set(entry) => memory::of_entry(entry),
            Change::Delete(_) | Change::Expire(_) => 0,
            Change::Txn(changes) => changes.iter().map(|(c, _)| c.entries_memory()).sum(),
        }
    }

    /// Each key hash it touches.
    fn hashes<'a>(&'a self, hash: u64) -> impl Iterator<Item = u64> + 'a {
        let own = match self {
            Change::Txn(_) => None,
            _ => Some(hash),
        };
        let inner = match self {
            Change::Txn(changes) => &changes[..],
            _ => &[],
        };
        own.into_iter().chain(inner.iter().map(|(_, h)| *h))
    }
}

/// The body of the record of a transaction's `changes` (SETs and DELETEs).
pub(super) fn txn_body(changes: &[(Change, u64)]) -> TxnBuilder {
    let mut txn = TxnBuilder::default();
    for (change, _) in changes {
        match change {
            Change::Set(entry) => txn.push(&entry.body()),
            other => txn.push(&Body::Delete { key: other.key() }),
        }
    }
    txn
}

/// Bytes a transaction's record spends on each of its operations beyond a record's header:
/// the operation's type and lengths (see [`crate::wal::record::Txn`]).
const TXN_OP_HEADER: u64 = 9;

/// The newest state of a key that has a write on its way.
pub(super) enum Newest<'a> {
    Set(&'a Entry),
    Deleted(u64),
}

pub(super) struct Pending {
    /// The seq of `changes[0]` (or of the next change, when there is none).
    first: u64,
    /// The changes, each with its key's hash.
    changes: VecDeque<(Change, u64)>,
    /// For each key hash with a change here, the seq of the newest one.
    newest: PrehashedMap<u64>,
    hasher: RandomState,
    /// The bytes of their records.
    bytes: u64,
    /// What they take in memory ([`super::memory`]).
    cost: u64,
}

impl Pending {
    pub(super) fn new(next_seq: u64) -> Pending {
        Pending {
            first: next_seq,
            changes: VecDeque::new(),
            newest: PrehashedMap::default(),
            hasher: RandomState::new(),
            bytes: 0,
            cost: 0,
        }
    }

    /// Writes on their way.
    pub(super) fn len(&self) -> usize {
        self.changes.len()
    }

    /// The bytes of their records.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// What they take in memory.
    pub(super) fn cost(&self) -> u64 {
        self.cost
    }

    /// The hash `newest` knows `key` by.
    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Adds `change` as the record of `seq`, which must follow the last one here; `hash` is
    /// its key's [`Pending::hash`].
    /// (A transaction's changes carry their own hashes; `hash` is not used for it.)
    pub(super) fn push(&mut self, seq: u64, change: Change, hash: u64) {
        debug_assert_eq!(seq, self.first + self.changes.len() as u64, "changes follow each other");
        self.bytes += change.record_bytes();
        self.cost += change.cost();
        for hash in change.hashes(hash) {
            self.newest.insert(hash, seq);
        }
        self.changes.push_back((change, hash));
    }

    /// The newest change of `key` here, if it has one; `hash` is its [`Pending::hash`].
    pub(super) fn newest(&self, key: &[u8], hash: u64) -> Option<Newest<'_>> {
        let seq = *self.newest.get(&hash)?;
        let (change, _) = self.change(seq)?;
        if let Some(change) = change.of_key(key) {
            return Some(Self::state(change, seq));
        }
        // Another key with the same hash is newer: look for this one's newest change.
        let at = usize::try_from(seq - self.first).ok()?;
        let older = self
            .changes
            .range(..at)
            .rposition(|(c, h)| c.hashes(*h).any(|h| h == hash) && c.of_key(key).is_some())?;
        let change = self.changes[older].0.of_key(key)?;
        Some(Self::state(change, self.first + older as u64))
    }

    fn change(&self, seq: u64) -> Option<&(Change, u64)> {
        self.changes.get(usize::try_from(seq.checked_sub(self.first)?).ok()?)
    }

    fn state(change: &Change, seq: u64) -> Newest<'_> {
        match change {
            Change::Set(entry) => Newest::Set(entry),
            Change::Delete(_) | Change::Expire(_) | Change::Txn(_) => Newest::Deleted(seq),
        }
    }

    /// Takes out the changes up to `through`, in order, with their seqs, for the map.
    pub(super) fn take_through(&mut self, through: u64, mut apply: impl FnMut(u64, Change)) {
        while self.first <= through {
            let Some((change, hash)) = self.changes.pop_front() else { break };
            self.bytes -= change.record_bytes();
            self.cost -= change.cost();
            for hash in change.hashes(hash) {
                if self.newest.get(&hash) == Some(&self.first) {
                    self.newest.remove(&hash);
                }
            }
            self.first += 1;
            apply(self.first - 1, change);
        }
        if self.changes.is_empty() {
            self.first = self.first.max(through.saturating_add(1));
        }
    }

    /// Drops the changes from `from` on (their records did not reach the log), and returns how
    /// many there were. The next change is given `from` again.
    pub(super) fn drop_from(&mut self, from: u64) -> usize {
        let keep = usize::try_from(from.saturating_sub(self.first)).unwrap_or(usize::MAX);
        if keep >= self.changes.len() {
            return 0;
        }
        let dropped = self.changes.len() - keep;
        self.changes.truncate(keep);
        self.newest.clear();
        self.bytes = 0;
        self.cost = 0;
        for (i, (change, hash)) in self.changes.iter().enumerate() {
            self.bytes += change.record_bytes();
            self.cost += change.cost();
            for hash in change.hashes(*hash) {
                self.newest.insert(hash, self.first + i as u64);
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(seq: u64, key: &[u8]) -> Change {
        Change::Set(Entry::new(seq, key, b"v", None))
    }

    fn newest_seq(p: &Pending, key: &[u8]) -> Option<u64> {
        p.newest(key, p.hash(key)).map(|n| match n {
            Newest::Set(e) => e.seq(),
            Newest::Deleted(seq) => seq,
        })
    }

    fn push(p: &mut Pending, seq: u64, change: Change) {
        let hash = p.hash(change.key());
        p.push(seq, change, hash);
    }

    /// The newest change of each key is found; taking changes out forgets a key only when its
    /// newest change is taken; dropping a tail finds the newest among what stays.
    #[test]
    fn the_newest_change_of_a_key_is_tracked() {
        let mut p = Pending::new(5);
        push(&mut p, 5, set(5, b"a"));
        push(&mut p, 6, set(6, b"b"));
        push(&mut p, 7, Change::Delete(b"a"[..].into()));
        push(&mut p, 8, set(8, b"b"));
        assert_eq!((newest_seq(&p, b"a"), newest_seq(&p, b"b")), (Some(7), Some(8)));
        assert!(matches!(p.newest(b"a", p.hash(b"a")), Some(Newest::Deleted(7))));
        assert_eq!(newest_seq(&p, b"c"), None);
        let mut taken = Vec::new();
        p.take_through(6, |_, c| taken.push(c.key().to_vec()));
        assert_eq!(taken, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!((newest_seq(&p, b"a"), newest_seq(&p, b"b")), (Some(7), Some(8)));
        assert_eq!(p.drop_from(8), 1);
        assert_eq!((newest_seq(&p, b"a"), newest_seq(&p, b"b")), (Some(7), None));
        assert_eq!(p.bytes(), (RECORD_HEADER_LEN + 1) as u64);
        push(&mut p, 8, set(8, b"c"));
        p.take_through(100, |_, _| {});
        assert_eq!((p.len(), p.bytes(), newest_seq(&p, b"c")), (0, 0, None));
        assert_eq!(p.first, 101, "the next change after those taken");
        assert_eq!(p.drop_from(3), 0, "nothing to drop");
    }

    /// Keys whose hashes collide (forced here: every key pushed with the hash 7) are still told
    /// apart, whichever is newer, as changes come and go.
    #[test]
    fn colliding_hashes_are_told_apart() {
        let mut p = Pending::new(1);
        p.push(1, set(1, b"a"), 7);
        p.push(2, set(2, b"b"), 7);
        p.push(3, Change::Delete(b"a"[..].into()), 7);
        p.push(4, set(4, b"c"), 7);
        let seq = |p: &Pending, key: &[u8]| {
            p.newest(key, 7).map(|n| match n {
                Newest::Set(e) => e.seq(),
                Newest::Deleted(seq) => seq,
            })
        };
        assert_eq!((seq(&p, b"a"), seq(&p, b"b"), seq(&p, b"c")), (Some(3), Some(2), Some(4)));
        assert_eq!(seq(&p, b"d"), None);
        p.take_through(2, |_, _| {});
        assert_eq!((seq(&p, b"a"), seq(&p, b"b"), seq(&p, b"c")), (Some(3), None, Some(4)));
        p.drop_from(4);
        assert_eq!((seq(&p, b"a"), seq(&p, b"c")), (Some(3), None));
    }

    /// A transaction's keys are each found at its one seq, even when their hashes collide with
    /// other keys', and leave together when it is taken out.
    #[test]
    fn a_transaction_is_found_by_each_of_its_keys() {
        let mut p = Pending::new(1);
        p.push(1, set(1, b"x"), 7);
        let txn = Change::Txn(vec![(set(2, b"a"), 7), (Change::Delete(b"b"[..].into()), 8)].into());
        p.push(2, txn, 0);
        p.push(3, set(3, b"y"), 7);
        let seq = |p: &Pending, key: &[u8], hash| {
            p.newest(key, hash).map(|n| match n {
                Newest::Set(e) => e.seq(),
                Newest::Deleted(seq) => seq,
            })
        };
        assert_eq!(
            (seq(&p, b"a", 7), seq(&p, b"b", 8), seq(&p, b"x", 7)),
            (Some(2), Some(2), Some(1))
        );
        assert!(matches!(p.newest(b"b", 8), Some(Newest::Deleted(2))));
        p.take_through(2, |_, _| {});
        assert_eq!((seq(&p, b"a", 7), seq(&p, b"b", 8), seq(&p, b"y", 7)), (None, None, Some(3)));
    }
}
