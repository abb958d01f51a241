//! Waiting for the log, for tools and tests (the server never blocks on the log: it polls, see
//! [`Store::poll`]), and the clean stop.

use super::{Polled, Store};
use crate::error::Error;
#[cfg(test)]
use crate::wal::{compact, record::BootId};
use crate::writer::Command;
use std::time::Duration;

impl Store {
    /// Hands the batch to the writer and waits until every write given a number so far is in
    /// the map, or has failed (the first failure is returned).
    pub fn settle(&mut self) -> Result<(), Error> {
        self.flush();
        self.wait_until(|store| store.visible >= store.last_issued())
    }

    /// Fsyncs everything written so far and waits for it; returns the last synced seq.
    pub fn sync(&mut self) -> Result<u64, Error> {
        self.want_sync();
        self.flush();
        self.wait_until(|store| store.synced >= store.last_issued())?;
        Ok(self.synced)
    }

    /// For a clean stop: writes what is queued, releases the log's reserved space, fsyncs it
    /// with a closing marker, and stops the log's threads; returns the last synced seq.
    pub fn close(&mut self) -> Result<u64, Error> {
        let (closed, polled) = self.finish();
        match polled.failed.into_iter().next() {
            Some((_, error)) => Err(error),
            None => closed,
        }
    }

    /// [`Store::close`], returning also what the last news meant.
    fn finish(&mut self) -> (Result<u64, Error>, Polled) {
        self.begin_close();
        let mut polled = Polled::default();
        while polled.stopped.is_none() {
            match self.log.wait_news(Duration::from_millis(100)) {
                Some(news) => self.absorb(news, &mut polled),
                None if self.log.writer_finished() => break,
                None => {}
            }
        }
        let stopped = polled.stopped.take();
        (self.end_close(stopped), polled)
    }

    /// Starts a clean stop: the writer writes what it was given, then ends the log (release
    /// the reserved space, fsync, closing marker); no write is taken from now on. The end
    /// comes as `stopped` from [`Store::poll`]; the server goes on answering reads meanwhile.
    pub fn begin_close(&mut self) {
        self.flush_now();
        self.closed = true;
        self.log.send(Command::Stop { close: true });
    }

    /// After `stopped` came (or the writer is gone without it): waits for the log's threads to
    /// end, and returns the last synced seq.
    pub fn end_close(&mut self, stopped: Option<Result<u64, Error>>) -> Result<u64, Error> {
        let joined = self.log.join();
        match stopped {
            Some(result) => joined.and(result),
            None => Err(Error::Failed { reason: "the log's writer is gone".into() }),
        }
    }

    /// True once the writer thread has ended (it stopped, or it panicked).
    pub fn writer_finished(&self) -> bool {
        self.log.writer_finished()
    }

    /// Waits for news until `done` holds; the first write failure or a failed log ends it.
    fn wait_until(&mut self, done: impl Fn(&Store) -> bool) -> Result<(), Error> {
        while !done(self) {
            if self.log_failed() {
                return Err(Error::Failed { reason: "the log stopped taking writes".into() });
            }
            let Some(news) = self.log.wait_news(Duration::from_millis(100)) else {
                if self.log.writer_finished() {
                    return Err(Error::Failed { reason: "the log's writer is gone".into() });
                }
                continue;
            };
            let mut polled = Polled::default();
            self.absorb(news, &mut polled);
            if let Some((_, error)) = polled.failed.into_iter().next() {
                return Err(error);
            }
            self.flush();
        }
        Ok(())
    }

    /// [`Store::begin_compaction`], waiting for the seal: what to merge, for tests of
    /// compaction without a server.
    #[cfg(test)]
    pub(crate) fn seal_now(&mut self, boot: BootId) -> Result<Option<compact::Job>, Error> {
        assert!(self.begin_compaction(boot), "no seal under way");
        loop {
            let Some(news) = self.log.wait_news(Duration::from_secs(10)) else {
                return Err(Error::Failed { reason: "no news of the seal".into() });
            };
            let mut polled = Polled::default();
            self.absorb(news, &mut polled);
            if let Some(rotated) = polled.rotated {
                return rotated;
            }
        }
    }

    /// Fails the log as a failed fsync would, for tests of what follows.
    #[cfg(test)]
    pub(crate) fn fail_log_for_test(&self) {
        self.log.with_wal(|wal| wal.fail_for_test()).expect("log mutex");
    }
}
