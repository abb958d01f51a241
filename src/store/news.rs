//! What the log's threads tell the store, and what it does about it: changes move into the map
//! when the log has them far enough, failed writes are forgotten (their seqs given again), and a
//! compaction's seal comes back as the job to merge. Also the store's side of compaction.

use super::pending::{Change, txn_body};
use super::{Polled, Store, apply};
use crate::error::Error;
use crate::feed::Line;
use crate::wal::record::BootId;
use crate::wal::{self, Body, SyncMode, compact};
use crate::writer::{Command, News};
use std::sync::atomic::Ordering;

impl Store {
    /// Takes the news the log's threads have sent: moves into the map what they say is far
    /// enough, forgets the writes that failed, and returns what the server must act on.
    pub fn poll(&mut self) -> Polled {
        let mut polled = Polled::default();
        while let Some(news) = self.log.try_news() {
            self.absorb(news, &mut polled);
        }
        polled
    }

    pub(super) fn absorb(&mut self, news: News, polled: &mut Polled) {
        match news {
            News::Written(seq) => {
                self.written = self.written.max(seq);
                if self.mode != SyncMode::Always {
                    self.done = self.done.max(seq);
                    self.show_through(seq);
                }
            }
            News::Synced(seq) => {
                // Synced means written too, and visible in every mode.
                self.synced = self.synced.max(seq);
                self.written = self.written.max(seq);
                self.done = self.done.max(seq);
                self.show_through(seq);
                if let Some(feed) = &self.feed {
                    feed.made_synced(self.synced);
                }
            }
            News::WriteFailed { from, error } => {
                // The writer dropped everything from `from` on: the batch in flight, and the
                // records still here, which were given numbers after it.
                let unsent = std::mem::take(&mut self.batch);
                for answer in unsent.answers {
                    answer(Err(&error));
                }
                self.pending.drop_from(from);
                self.next_seq = from;
                self.sent = from - 1;
                self.done = from - 1;
                polled.failed.push((from, error));
            }
            News::Rotated(sealed) => polled.rotated = Some(self.rotated(sealed)),
            News::Failed(reason) => polled.log_failed = Some(reason),
            News::Stopped(result) => polled.stopped = Some(result),
        }
    }

    /// Moves the pending changes through `seq` into the map, and tells the change feed (with
    /// their lines, while somebody follows it).
    fn show_through(&mut self, seq: u64) {
        let before = self.visible;
        let mut lines = self.feed.as_ref().filter(|feed| feed.is_followed()).map(|_| Vec::new());
        let (map, tally, watched) = (&mut self.map, &mut self.tally, &mut self.watched);
        let expiring = &mut self.expiring;
        self.pending.take_through(seq, |seq, change| {
            if let Some(lines) = &mut lines {
                lines.push(line(seq, &change));
            }
            apply(map, tally, expiring, change, &mut |key, removed| watched.saw(seq, key, removed));
        });
        self.visible = self.visible.max(seq);
        if let Some(feed) = &self.feed
            && self.visible > before
        {
            feed.made_visible(before, self.visible, lines);
        }
    }

    /// Every record through this seq is in the log file.
    pub fn written_seq(&self) -> u64 {
        self.written
    }

    /// Every record through this seq is on stable storage.
    pub fn synced_seq(&self) -> u64 {
        self.synced
    }

    /// Every change through this seq is in the map.
    pub fn visible_seq(&self) -> u64 {
        self.visible
    }

    /// Writes on their way to the log, and the bytes of their records.
    pub fn queued(&self) -> (usize, u64) {
        (self.pending.len(), self.pending.bytes())
    }

    /// True once the log has stopped taking writes; a restart is the way out.
    pub fn log_failed(&self) -> bool {
        self.log_failed.load(Ordering::SeqCst)
    }

    // ---- Compaction ----

    /// Asks the writer to seal the segment being written once it holds every write given a
    /// number so far: the first step of a compaction. The job comes back from [`Store::poll`]
    /// (`rotated`). False if a seal is already under way.
    pub fn begin_compaction(&mut self, boot: BootId) -> bool {
        if self.rotating.is_some() {
            return false;
        }
        self.flush_now();
        let upto = self.last_issued();
        self.rotating = Some((upto, boot));
        self.log.send(Command::Rotate { upto });
        true
    }

    /// The seal ended: what to merge, with the map's key count and live bytes as of the seal.
    /// The writer told of every record through the seal before this news, and of none after
    /// it, so the map holds exactly the state as of the seal's last seq.
    pub(super) fn rotated(
        &mut self,
        sealed: Result<Option<wal::layout::Sealed>, Error>,
    ) -> Result<Option<compact::Job>, Error> {
        let Some((upto, boot)) = self.rotating.take() else {
            return Err(Error::Failed { reason: "a segment was sealed unasked".into() });
        };
        if let Some(sealed) = sealed? {
            self.layout.sealed.push(sealed);
        }
        if self.layout.sealed.is_empty() {
            return Ok(None);
        }
        if self.visible != upto {
            return Err(Error::Failed {
                reason: format!("the map is at seq {} when the seal is at {upto}", self.visible),
            });
        }
        Ok(Some(compact::Job {
            dir: self.dir.clone(),
            base: self.layout.snapshot.clone(),
            sealed: self.layout.sealed.clone(),
            upto,
            keys: self.map.len() as u64,
            live_bytes: self.tally.live_bytes,
            now_ms: crate::expiry::now_ms(),
            boot,
            retain: 0, // the compactor's policy says
        }))
    }

    /// Takes a finished compaction's snapshot into the layout: it is in charge now, and the
    /// segments it covers are gone.
    pub fn finish_compaction(&mut self, done: &compact::Done) {
        let upto = done.snapshot.upto;
        self.layout.snapshot = Some(done.snapshot.clone());
        self.layout.sealed.retain(|s| s.first > upto);
    }
}

/// The change feed's line for a change.
fn line(seq: u64, change: &Change) -> Line {
    match change {
        Change::Set(entry) => Line::new(seq, &entry.body()),
        Change::Delete(key) => Line::new(seq, &Body::Delete { key }),
        Change::Expire(key) => Line::new(seq, &Body::Expire { key }),
        Change::Txn(changes) => Line::new(seq, &Body::Txn(txn_body(changes).txn())),
    }
}
