//! The sync thread (`interval` and `never` modes): fsyncs the log every `--sync-interval`, and
//! whenever the writer pokes it because an answer waits for an fsync.
//!
//! It holds the log's mutex only to note what an fsync now would cover
//! ([`crate::wal::Wal::sync_point`]) and to record what it covered
//! ([`crate::wal::Wal::synced`]); the fsync itself runs on a second handle of the file, outside
//! the mutex ([`crate::wal::log::fsync_file`]), so that a slow disk holds up the writes that
//! wait for this fsync and nothing else.

use super::{News, Shared, lock};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// What the writer tells the sync thread.
pub(super) enum Poke {
    /// An answer waits for an fsync of what is written.
    Now,
    /// Stop (after the fsync in hand, if any).
    Stop,
}

/// The thread's loop: an fsync every `every` (none in `never` mode), and one per poke.
pub(super) fn run(shared: &Shared, every: Option<Duration>, pokes: &Receiver<Poke>) {
    let mut next_tick = every.map(|d| Instant::now() + d);
    loop {
        let poked = match next_tick {
            Some(at) => match pokes.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(poke) => Some(poke),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match pokes.recv() {
                Ok(poke) => Some(poke),
                Err(_) => return,
            },
        };
        let mut stop = matches!(poked, Some(Poke::Stop));
        for poke in pokes.try_iter() {
            stop |= matches!(poke, Poke::Stop);
        }
        if stop || !sync_once(shared, poked.is_some()) {
            return;
        }
        if poked.is_none() {
            next_tick = every.map(|d| Instant::now() + d);
        }
    }
}

/// One fsync of what is written, if anything is not synced yet; says so to the main thread
/// (always when `poked`: someone waits). False once the log has failed.
fn sync_once(shared: &Shared, poked: bool) -> bool {
    let point = match lock(shared).map(|mut wal| (wal.sync_point(), wal.synced_seq())) {
        None => return false,
        Some((Ok(point), synced)) => match point {
            Some(point) => point,
            None => {
                if poked {
                    shared.tell(News::Synced(synced));
                }
                return true;
            }
        },
        Some((Err(e), _)) => return failed(shared, &e, poked),
    };
    let began = Instant::now();
    let result = crate::wal::log::fsync_file(&point);
    let took = began.elapsed();
    let Some(mut wal) = lock(shared) else { return false };
    let synced = wal.synced(point, result, took);
    shared.status.update(&wal);
    drop(wal);
    match synced {
        Ok(seq) => {
            shared.tell(News::Synced(seq));
            true
        }
        Err(e) => failed(shared, &e, poked),
    }
}

/// An fsync failed: the log refuses writes from now on (see [`crate::wal::Wal::sync`]).
fn failed(shared: &Shared, e: &crate::error::Error, poked: bool) -> bool {
    let which = if poked { "fsync" } else { "periodic sync" };
    crate::log!("{which} failed: {e}; writes are refused from now on");
    shared.tell(News::Failed(e.to_string()));
    false
}
