//! Transactions: conditions on keys, then SETs and DELETEs that happen all together or not at
//! all, as one log record under one seq (see [`crate::wal::record::Txn`]).
//!
//! The main thread checks every condition against the newest state (pending writes included,
//! as every write is checked) and, if they all hold, hands the whole transaction to the log as
//! one record, with nothing in between: no other write can slip between the check and the
//! write, and no crash can keep half of it. Every key it sets gets the transaction's seq as its
//! ETag.

use super::entry::Entry;
use super::pending::Change;
use super::{Latest, Store, Ttl, memory};
use crate::error::Error;
use crate::wal;

/// A condition on a key's newest state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The key's ETag is this seq.
    Etag(u64),
    /// The key has no value.
    Absent,
    /// The key has a value.
    Exists,
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Set { key: Vec<u8>, value: Vec<u8>, ttl: Ttl },
    Delete { key: Vec<u8> },
}

impl Operation {
    pub fn key(&self) -> &[u8] {
        match self {
            Operation::Set { key, .. } | Operation::Delete { key } => key,
        }
    }
}

/// What [`Store::txn`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every operation happened, under this seq.
    Done(u64),
    /// The condition at this index did not hold, and nothing was written. The key's current
    /// ETag (none if it has no value), and the pending write that state comes from, if any.
    Failed { index: usize, current: Latest },
}

impl Store {
    /// Checks `conditions` (each on a key) in order; if all hold, makes every operation of
    /// `then` happen as one record. Keys and values must be within the log's limits, and no
    /// key may appear twice in `then` (the caller checks both).
    pub fn txn(
        &mut self,
        conditions: &[(Vec<u8>, Condition)],
        then: &[Operation],
    ) -> Result<Outcome, Error> {
        self.check_writable()?;
        for (index, (key, condition)) in conditions.iter().enumerate() {
            let current = self.latest(key);
            let holds = match condition {
                Condition::Etag(seq) => current.etag == Some(*seq),
                Condition::Absent => current.etag.is_none(),
                Condition::Exists => current.etag.is_some(),
            };
            if !holds {
                return Ok(Outcome::Failed { index, current });
            }
        }
        let seq = self.next_seq;
        let mut changes = Vec::with_capacity(then.len());
        let (mut more, mut freed) = (0u64, 0u64);
        for op in then {
            let key = op.key();
            let hash = self.pending.hash(key);
            let (_, old_memory, old) = self.newest_entry(key, hash);
            let change = match op {
                Operation::Set { value, ttl, .. } => {
                    wal::check_lengths(key, value)?;
                    let expires = ttl.expiry(old);
                    more += memory::set_cost(key.len(), value.len(), expires.is_some());
                    Change::Set(Entry::new(seq, key, value, expires))
                }
                Operation::Delete { .. } => {
                    wal::check_lengths(key, b"")?;
                    Change::Delete(key.into())
                }
            };
            freed += old_memory;
            changes.push((change, hash));
        }
        self.check_memory(more, freed)?;
        Ok(Outcome::Done(self.issue_change(Change::Txn(changes.into()), 0)))
    }
}
