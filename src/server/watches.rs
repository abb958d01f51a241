//! Blocking reads the main thread holds (`GET /v1/{key}?index=N`, see [`crate::http::watch`]):
//! each waits for a change of its key past its index, which the store reports
//! ([`Store::take_fired`]), or for its deadline, checked between batches (so it ends within a tick, 100 ms, of it). Neither
//! costs anything per write while nobody waits: the store only checks that its set of watched
//! keys is empty.

use crate::http::watch::Watch;
use crate::intake::Job;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

/// A held read.
struct Held {
    job: Job,
    key: Box<[u8]>,
    /// It is answered once the key's last write has a seq after this.
    index: u64,
    deadline: Instant,
}

#[derive(Default)]
pub(super) struct Watches {
    held: BTreeMap<u64, Held>,
    by_key: HashMap<Box<[u8]>, Vec<u64>>,
    by_deadline: BTreeSet<(Instant, u64)>,
    next: u64,
}

impl Watches {
    /// Reads held now.
    pub(super) fn len(&self) -> usize {
        self.held.len()
    }

    /// Holds `job` until `key`'s last write passes `index`, or `deadline`.
    pub(super) fn hold(&mut self, store: &mut Store, job: Job, watch: &Watch, deadline: Instant) {
        let id = self.next;
        self.next += 1;
        store.watch(&watch.key);
        self.by_key.entry(watch.key.clone()).or_default().push(id);
        self.by_deadline.insert((deadline, id));
        let (key, index) = (watch.key.clone(), watch.index);
        self.held.insert(id, Held { job, key, index, deadline });
    }

    /// The reads whose keys changed past their index, in the order they came.
    pub(super) fn fired(&mut self, store: &mut Store) -> Vec<Job> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let mut ids: Vec<u64> = Vec::new();
        for key in store.take_fired() {
            let Some(waiting) = self.by_key.get(&key) else { continue };
            for id in waiting {
                if self.held.get(id).is_some_and(|held| store.changed_after(&key, held.index)) {
                    ids.push(*id);
                }
            }
        }
        ids.sort_unstable();
        ids.into_iter().filter_map(|id| self.release(store, id)).collect()
    }

    /// The reads whose deadline is past at `now`.
    pub(super) fn expired(&mut self, store: &mut Store, now: Instant) -> Vec<Job> {
        let due: Vec<u64> =
            self.by_deadline.iter().take_while(|(at, _)| *at <= now).map(|(_, id)| *id).collect();
        due.into_iter().filter_map(|id| self.release(store, id)).collect()
    }

    /// Every held read (the server stops).
    pub(super) fn all(&mut self, store: &mut Store) -> Vec<Job> {
        let ids: Vec<u64> = self.held.keys().copied().collect();
        ids.into_iter().filter_map(|id| self.release(store, id)).collect()
    }

    fn release(&mut self, store: &mut Store, id: u64) -> Option<Job> {
        let held = self.held.remove(&id)?;
        store.unwatch(&held.key);
        self.by_deadline.remove(&(held.deadline, id));
        if let Some(ids) = self.by_key.get_mut(&held.key) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                self.by_key.remove(&held.key);
            }
        }
        Some(held.job)
    }
}
