//! How a thread waits for its next piece of work: it polls its queue for a moment before it
//! sleeps, and polls less and less while polling does not pay. The main thread waits so for
//! requests ([`crate::intake`]), the log's writer thread for batches ([`crate::writer`]).
//!
//! A sleeping thread is woken by a futex call, and on a virtual machine with an idle core that
//! wake-up alone took about 60 µs here (a client that sends its next request as soon as it has
//! its answer got 2.4 times as many answers a second once the main thread polled for 60 µs
//! instead; see docs/performance.md). A write passes two threads, the main thread
//! and the writer, so at one client it paid two such wake-ups until both polled. Polling costs
//! a core while it lasts, so it is bounded twice:
//!
//! - each wait polls for at most `window` (`--spin-us`, 0 turns polling off), calling
//!   `sched_yield` between polls so that a thread with work on the same core gets it;
//! - a poll that catches nothing is a sign that requests come farther apart than the window:
//!   the next wait does not poll, and each further miss doubles the number of waits that skip
//!   polling, up to [`MAX_SKIP`]. One poll that catches a request starts over. With requests
//!   at a steady rate slower than the window, polling then costs about one window in
//!   [`MAX_SKIP`] waits.
//!
//! A machine with one core never polls: the thread that would hand over the work could not run
//! while this one polls.

use std::time::{Duration, Instant};

/// The most waits in a row that skip polling after misses.
pub const MAX_SKIP: u32 = 64;

/// The polling policy's state (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct Spin {
    window: Duration,
    /// Waits still to skip before the next poll.
    skip: u32,
    /// Waits skipped after the last miss; doubled by each miss in a row.
    backoff: u32,
}

impl Spin {
    /// A policy polling for at most `window` per wait (zero: never), on a machine with `cores`.
    pub fn new(window: Duration, cores: usize) -> Spin {
        let window = if cores > 1 { window } else { Duration::ZERO };
        Spin { window, skip: 0, backoff: 0 }
    }

    /// How long the coming wait should poll (zero: not at all).
    pub fn window(&mut self) -> Duration {
        if self.skip > 0 {
            self.skip -= 1;
            return Duration::ZERO;
        }
        self.window
    }

    /// What the poll did: it caught a request, or the wait went to sleep.
    pub fn polled(&mut self, caught: bool) {
        if caught {
            self.backoff = 0;
        } else {
            self.backoff = (self.backoff * 2).clamp(1, MAX_SKIP);
            self.skip = self.backoff;
        }
    }
}

/// Polls `try_next` until it yields something or `window` has passed.
pub fn poll<T>(window: Duration, mut try_next: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + window;
    loop {
        if let Some(found) = try_next() {
            return Some(found);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_micros(60);

    /// Which of `waits` waits poll, when every poll has the outcome `caught`.
    fn polls(spin: &mut Spin, waits: usize, caught: bool) -> Vec<bool> {
        (0..waits)
            .map(|_| {
                let polls = !spin.window().is_zero();
                if polls {
                    spin.polled(caught);
                }
                polls
            })
            .collect()
    }

    /// Polling that keeps catching requests goes on at every wait.
    #[test]
    fn polls_that_catch_keep_polling() {
        let mut spin = Spin::new(WINDOW, 2);
        assert_eq!(spin.window(), WINDOW);
        spin.polled(true);
        assert!(polls(&mut spin, 100, true).iter().all(|&p| p));
    }

    /// Misses in a row double the waits skipped, up to MAX_SKIP; one catch starts over.
    #[test]
    fn misses_back_off_and_a_catch_starts_over() {
        let mut spin = Spin::new(WINDOW, 2);
        let pattern = polls(&mut spin, 19, false);
        let at: Vec<usize> = (0..pattern.len()).filter(|&i| pattern[i]).collect();
        assert_eq!(at, [0, 2, 5, 10], "skips of 1, 2, 4, then 8");
        let mut spin = Spin::new(WINDOW, 2);
        let many = polls(&mut spin, 10_000, false);
        let polled = many.iter().filter(|&&p| p).count();
        assert!((150..=170).contains(&polled), "about one in {MAX_SKIP}: {polled}");
        let gap = many.iter().rev().skip_while(|&&p| !p).skip(1).take_while(|&&p| !p).count();
        assert_eq!(gap, MAX_SKIP as usize, "the backoff stops at MAX_SKIP");
        while spin.window().is_zero() {}
        spin.polled(true);
        assert!(polls(&mut spin, 10, true).iter().all(|&p| p), "a catch starts over");
    }

    /// A zero window, or one core, never polls.
    #[test]
    fn no_window_or_one_core_never_polls() {
        assert_eq!(Spin::new(Duration::ZERO, 8).window(), Duration::ZERO);
        assert_eq!(Spin::new(WINDOW, 1).window(), Duration::ZERO);
    }

    /// `poll` returns what it finds, and gives up after the window.
    #[test]
    fn poll_returns_a_find_or_gives_up() {
        let mut calls = 0;
        // A window long enough that a preempted thread still makes its three calls: the
        // default window is microseconds, and a loaded 2-core machine once gave it none.
        assert_eq!(
            poll(Duration::from_secs(5), || {
                calls += 1;
                (calls == 3).then_some(calls)
            }),
            Some(3)
        );
        let began = Instant::now();
        assert_eq!(poll(Duration::from_millis(5), || None::<()>), None);
        assert!(began.elapsed() >= Duration::from_millis(5));
        assert_eq!(poll(Duration::ZERO, || Some(1)), Some(1), "a zero window still looks once");
    }
}
