//! The body budget: bytes of request bodies in memory at once, across all connections.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bytes of request bodies allowed in memory at once. A connection takes a body's memory from it
/// as the bytes arrive ([`BODY_STEP`] at a time) and waits (up to its body timeout) while the
/// budget is spent.
pub(super) struct Budget {
    left: Mutex<u64>,
    freed: Condvar,
}

/// A reservation from the budget, given back when dropped.
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Budget {
    pub(super) fn new(bytes: u64) -> Arc<Budget> {
        Arc::new(Budget { left: Mutex::new(bytes), freed: Condvar::new() })
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

    /// Takes `bytes` more, waiting at most `wait`; false (taking nothing) if they never became
    /// free.
    fn take(&self, bytes: u64, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut left = self.left.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while *left < bytes {
            let Some(remaining) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            left = match self.freed.wait_timeout(left, remaining) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        *left -= bytes;
        true
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
        if self.bytes == 0 {
            return;
        }
        let mut left = self.budget.left.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *left += self.bytes;
        self.budget.freed.notify_all();
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
        assert_eq!(*budget.left.lock().unwrap(), 100, "every reservation was given back");
    }
}
