//! What blocking reads (`GET /v1/{key}?index=N&wait=D`) need from the store: whether a key
//! changed after a seq, and which watched keys just did.
//!
//! A key's *modify index* is the seq of its last write: the seq of the SET that set its value
//! (its ETag), or of the DELETE that removed it. The map knows the first; for the second the
//! store keeps the most recent DELETEs (at most [`TOMBSTONE_BYTES`] of keys, the oldest
//! forgotten first) and the seq after which it knows every DELETE: it starts remembering with
//! the first blocking read that waits, so that a server nobody watches pays nothing per DELETE.
//! For a missing key with no
//! DELETE remembered, "did it change after N" has no sure answer when N is older than that:
//! the read is answered at once, and the client's next read, from the seq that answer gives,
//! waits. (Consul's blocking queries may return early the same way.)

use std::collections::{HashMap, VecDeque};

/// Key bytes of the DELETEs remembered, at most.
pub const TOMBSTONE_BYTES: usize = 256 << 10;

#[derive(Default)]
pub(super) struct Watched {
    /// Keys blocking reads wait on, and how many reads wait on each.
    keys: HashMap<Box<[u8]>, usize>,
    /// Of those, the keys that changed since [`Watched::take_fired`].
    fired: Vec<Box<[u8]>>,
    /// Recent DELETEs: each key's last one.
    tombstones: HashMap<Box<[u8]>, u64>,
    /// The same, oldest first, to forget them in order.
    order: VecDeque<(Box<[u8]>, u64)>,
    bytes: usize,
    /// Every DELETE with a seq after this one is in `tombstones`.
    known_after: u64,
    /// DELETEs are remembered (since the first blocking read waited).
    remembering: bool,
}

impl Watched {
    /// Nothing watched, no DELETE known, every DELETE after `last` to be remembered.
    pub(super) fn new(last: u64) -> Watched {
        Watched { known_after: last, ..Watched::default() }
    }

    /// A change of `key` with this seq entered the map.
    pub(super) fn saw(&mut self, seq: u64, key: &[u8], deleted: bool) {
        if !self.keys.is_empty() && self.keys.contains_key(key) {
            self.fired.push(key.into());
        }
        if deleted && self.remembering {
            self.remember_delete(seq, key);
        }
    }

    fn remember_delete(&mut self, seq: u64, key: &[u8]) {
        self.tombstones.insert(key.into(), seq);
        self.order.push_back((key.into(), seq));
        self.bytes += key.len();
        while self.bytes > TOMBSTONE_BYTES {
            let Some((old, old_seq)) = self.order.pop_front() else { break };
            self.bytes -= old.len();
            if self.tombstones.get(&old) == Some(&old_seq) {
                self.tombstones.remove(&old);
            }
            self.known_after = self.known_after.max(old_seq);
        }
    }

    /// For a key missing from the map: whether it may have changed after `index` (true when
    /// that cannot be told, see the module doc).
    pub(super) fn missing_changed_after(&self, key: &[u8], index: u64) -> bool {
        match self.tombstones.get(key) {
            Some(seq) => *seq > index,
            None => index < self.known_after,
        }
    }

    /// A blocking read waits on `key`; `visible` is the map's seq now (from which DELETEs are
    /// remembered, if they were not yet).
    pub(super) fn watch(&mut self, key: &[u8], visible: u64) {
        if !self.remembering {
            self.remembering = true;
            self.known_after = self.known_after.max(visible);
        }
        *self.keys.entry(key.into()).or_default() += 1;
    }

    pub(super) fn unwatch(&mut self, key: &[u8]) {
        if let Some(count) = self.keys.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                self.keys.remove(key);
            }
        }
    }

    /// The watched keys that changed since the last call, each once.
    pub(super) fn take_fired(&mut self) -> Vec<Box<[u8]>> {
        let mut fired = std::mem::take(&mut self.fired);
        fired.sort_unstable();
        fired.dedup();
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_are_remembered_until_the_bound() {
        let mut w = Watched::new(5);
        w.saw(7, b"a", true);
        assert!(w.tombstones.is_empty(), "nobody has waited yet: nothing remembered");
        w.watch(b"x", 10);
        w.unwatch(b"x");
        assert!(w.missing_changed_after(b"a", 9), "before what is known: cannot tell");
        assert!(!w.missing_changed_after(b"a", 10));
        w.saw(11, b"a", true);
        assert!(w.missing_changed_after(b"a", 10) && !w.missing_changed_after(b"a", 11));
        let big = vec![b'x'; TOMBSTONE_BYTES];
        w.saw(12, &big, true);
        assert!(w.missing_changed_after(b"a", 10), "forgotten: cannot tell");
        assert!(!w.missing_changed_after(b"b", 11));
    }

    #[test]
    fn watched_keys_fire_once_each() {
        let mut w = Watched::new(0);
        w.watch(b"a", 0);
        w.watch(b"a", 0);
        w.saw(1, b"a", false);
        w.saw(2, b"b", false);
        w.saw(3, b"a", true);
        assert_eq!(w.take_fired(), vec![Box::<[u8]>::from(&b"a"[..])]);
        assert!(w.take_fired().is_empty());
        w.unwatch(b"a");
        w.unwatch(b"a");
        w.saw(4, b"a", false);
        assert!(w.take_fired().is_empty());
    }
}
