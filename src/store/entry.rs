//! The map's entries: a key, its value and its ETag in one allocation (see [`super`]).

use crate::wal;
use crate::wal::snapshot::entry_bytes;
use std::borrow::Borrow;

/// A key, its value and the sequence number of the record that set it, in one allocation:
/// `[seq: u64 LE][key length: u16 LE][expiry: u64 LE, if it has one][key][value]`. Keys are at
/// most [`wal::MAX_KEY_LEN`] (4096) bytes, so the length takes 13 bits of its two bytes, and the
/// top bit says whether an expiry follows: a key without one pays nothing for TTLs. The seq is
/// the key's ETag (compare-and-set, see [`crate::http`]). Order and equality look at the key
/// only, and `Borrow<[u8]>` lets the set be searched with a plain key.
pub(super) struct Entry(Box<[u8]>);

/// The bit of the key-length field that says an expiry follows it.
const EXPIRING: u16 = 1 << 15;

impl Entry {
    /// Bytes before the key (or the expiry): the seq and the key's length.
    pub(super) const HEAD: usize = 8 + 2;

    pub(super) fn new(seq: u64, key: &[u8], value: &[u8], expires: Option<u64>) -> Entry {
        debug_assert!(key.len() <= wal::MAX_KEY_LEN, "the log checked the length");
        let expiry_len = if expires.is_some() { 8 } else { 0 };
        let mut bytes = Vec::with_capacity(Entry::HEAD + expiry_len + key.len() + value.len());
        bytes.extend_from_slice(&seq.to_le_bytes());
        let flag = if expires.is_some() { EXPIRING } else { 0 };
        bytes.extend_from_slice(&(key.len() as u16 | flag).to_le_bytes());
        if let Some(at) = expires {
            bytes.extend_from_slice(&at.to_le_bytes());
        }
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        Entry(bytes.into_boxed_slice())
    }

    pub(super) fn seq(&self) -> u64 {
        let mut seq = [0; 8];
        seq.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(seq)
    }

    fn length_field(&self) -> u16 {
        u16::from_le_bytes([self.0[8], self.0[9]])
    }

    pub(super) fn key_len(&self) -> usize {
        usize::from(self.length_field() & !EXPIRING)
    }

    /// When the key expires, in milliseconds since the Unix epoch, if it does.
    pub(super) fn expires(&self) -> Option<u64> {
        (self.length_field() & EXPIRING != 0).then(|| {
            let mut at = [0; 8];
            at.copy_from_slice(&self.0[Entry::HEAD..Entry::HEAD + 8]);
            u64::from_le_bytes(at)
        })
    }

    /// True if the key has expired at `now` (milliseconds since the Unix epoch).
    pub(super) fn expired(&self, now: u64) -> bool {
        self.expires().is_some_and(|at| at <= now)
    }

    /// Where the key starts.
    fn key_at(&self) -> usize {
        Entry::HEAD + if self.length_field() & EXPIRING != 0 { 8 } else { 0 }
    }

    pub(super) fn key(&self) -> &[u8] {
        &self.0[self.key_at()..self.key_at() + self.key_len()]
    }

    pub(super) fn value(&self) -> &[u8] {
        &self.0[self.key_at() + self.key_len()..]
    }

    /// The SET record that sets this entry.
    pub(super) fn body(&self) -> wal::Body<'_> {
        wal::Body::Set { key: self.key(), value: self.value(), expires: self.expires() }
    }

    /// What this key takes in a snapshot.
    pub(super) fn bytes(&self) -> u64 {
        entry_bytes(self.key(), self.value(), self.expires())
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Entries sort by their keys' bytes, as `[u8]` does, so that the map can be searched with a
/// plain key ([`Borrow`]) and listed in key order.
impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> std::cmp::Ordering {
        self.key().cmp(other.key())
    }
}

impl Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}
