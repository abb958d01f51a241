//! `POST /compact` and the compaction policy, as the serving loop sees them: the compactor
//! ([`crate::compactor`]) and the requests waiting for the compaction they started or joined.

use crate::compactor::{Compactor, Started};
use crate::error::Error;
use crate::http::{self, Response};
use crate::intake::Job;
use crate::store::Store;

/// The compactor, and the `POST /compact` requests waiting for the compaction they joined.
pub(super) struct Compaction {
    pub(super) compactor: Compactor,
    pub(super) waiting: Vec<Job>,
}

impl Compaction {
    /// `POST /compact`: starts a compaction or joins the running one; answered when it ends
    /// (at once if there is nothing to merge, or it cannot start).
    pub(super) fn request(&mut self, store: &mut Store, job: Job) {
        match self.compactor.start(store) {
            Ok(Started::Running) => self.waiting.push(job),
            Err(e) => job.respond(http::compacted(&Err(e))),
        }
    }

    /// The segment was sealed (or could not be): the compaction goes on, or ends here.
    pub(super) fn rotated(
        &mut self,
        store: &mut Store,
        rotated: Result<Option<crate::wal::compact::Job>, Error>,
    ) {
        if let Some(outcome) = self.compactor.sealed(store, rotated) {
            self.answer(&outcome);
        }
    }

    /// Between batches: collects a finished compaction (answering whoever waits for it), and
    /// starts one if the policy says it is due.
    pub(super) fn tend(&mut self, store: &mut Store) {
        if let Some(outcome) = self.compactor.poll(store) {
            self.answer(&outcome);
        }
        if self.compactor.due(store) {
            let _ = self.compactor.start(store); // a failure is logged and shown in /status
        }
    }

    fn answer(&mut self, outcome: &Result<crate::compactor::Report, Error>) {
        let response = http::compacted(outcome);
        for job in self.waiting.drain(..) {
            job.respond(response.clone());
        }
    }

    /// On the way out: a running compaction is left to die with the process (its unfinished
    /// file is removed at the next start, and the files it would replace still hold
    /// everything); whoever waits for it is told.
    pub(super) fn abandon(&mut self) {
        if self.compactor.stats().compacting {
            crate::log!("stopping during a compaction: it is abandoned, nothing is lost");
        }
        let response = Response::error(503, "the server is stopping; the compaction was abandoned");
        for job in self.waiting.drain(..) {
            job.respond(response.clone());
        }
    }
}
