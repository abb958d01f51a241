//! The body budget: bytes of request bodies in memory at once, across all connections.
//!
//! Every request with a body takes from it and gives back, so the common case is two atomic
//! operations and no lock: the lock and the condition variable are for connections that must
//! wait for room, and giving back touches them only when one does. (A mutex for every take and
//! a `notify_all`, a system call, for every give-back were measured at about one futex call per
//! PUT on the main thread and more on the connections' threads.)

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bytes of request bodies allowed in memory at once. A connection takes a body's memory from it
/// as the bytes arrive ([`BODY_STEP`] at a time) and waits (up to its body timeout) while the
/// budget is spent.
pub(super) struct Budget {
    left: AtomicU64,
    /// Connections waiting for room (under `lock`).
    waiters: AtomicUsize,
    lock: Mutex<()>,
    freed: Condvar,
}

/// A reservation from the budget, given back when dropped.
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Budget {
    pub(super) fn new(bytes: u64) -> Arc<Budget> {
        Arc::new(Budget {
            left: AtomicU64::new(bytes),
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            freed: Condvar::new(),
        })
    }

    /// A reservation of nothing yet, to grow.
    pub(super) fn nothing(self: &Arc<Budget>) -> Reservation {
        Reservation { budget: Arc::clone(self), bytes: 0 }
    }

    /// Takes `bytes` from the budget, waiting at most `wait` for them. `None` if they never
    /// became free.
    #[cfg(test)]
    fn reserve(self: &Arc<Budget>, bytes: u64, wait: Duration) -> Option<Reservation> {
        let mut reservation = self.nothing();
        reservation.grow_to(bytes, wait).then_some(reservation)
    }

    /// Takes `bytes` if they are free now.
    fn try_take(&self, bytes: u64) -> bool {
        self.left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(bytes))
            .is_ok()
    }

    /// Takes `bytes` more, waiting at most `wait`; false (taking nothing) if they never became
    /// free.
    fn take(&self, bytes: u64, wait: Duration) -> bool {
        if self.try_take(bytes) {
            return true;
        }
        let deadline = Instant::now() + wait;
        let mut guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Counted before trying again: a give-back after this sees the waiter and notifies; one
        // before it left its bytes for the try below.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let taken = loop {
            if self.try_take(bytes) {
                break true;
            }
            let Some(remaining) = deadline.checked_duration_since(Instant::now()) else {
                break false;
            };
            guard = match self.freed.wait_timeout(guard, remaining) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        taken
    }

    fn give_back(&self, bytes: u64) {
        self.left.fetch_add(bytes, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            self.freed.notify_all();
        }
    }
}

impl Reservation {
    /// Makes this reservation at least `bytes`, waiting at most `wait` for the budget; false if
    /// it stayed spent (the reservation is then unchanged).
    pub(super) fn grow_to(&mut self, bytes: u64, wait: Duration) -> bool {
        if bytes <= self.bytes {
            return true;
        }
        let more = bytes - self.bytes;
        if !self.budget.take(more, wait) {
            return false;
        }
        self.bytes = bytes;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.give_back(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn the_budget_blocks_until_bytes_are_given_back() {
        let budget = Budget::new(100);
        let a = budget.reserve(60, Duration::ZERO).unwrap();
        assert!(budget.reserve(60, Duration::from_millis(20)).is_none());
        let waiter = {
            let budget = Arc::clone(&budget);
            thread::spawn(move || budget.reserve(60, Duration::from_secs(10)).is_some())
        };
        thread::sleep(Duration::from_millis(20));
        drop(a);
        assert!(waiter.join().unwrap());
        assert_eq!(budget.left.load(Ordering::SeqCst), 100, "every reservation was given back");
    }
}
