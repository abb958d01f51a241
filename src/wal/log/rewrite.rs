//! Writing a whole new log: a fresh one, the upgrade of a format 1 log, and the log that
//! `walkv repair --skip-damaged` keeps.
//!
//! A [`Rewrite`] writes `walkv.wal.new` from the header on and only becomes the log when it is
//! committed: fsynced, optionally given a final SYNC marker (fsynced too), renamed over
//! `walkv.wal`, and the directory fsynced (see [`crate::wal::files`]). Dropped without a commit, it
//! removes its file, and the old log stays in charge.

use crate::error::Error;
use crate::wal::files::{self, commit_replacement, create_replacement, new_path};
use crate::wal::reader::Window;
use crate::wal::record::{
    self, BootId, Decoded, MARK_LEN, MAX_RECORD_LEN, Mark, MarkKind, Seed, SyncMode, encode_header,
};
use crate::wal::scan::Scan;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A new random log id: the seed of every record's checksum. It comes from the same OS
/// randomness std's `HashMap` keys come from; clients never see it.
pub fn new_log_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let id = RandomState::new().hash_one((nanos, std::process::id()));
    id.max(1)
}

/// A replacement log being written.
pub struct Rewrite {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    seed: Seed,
    /// Bytes written so far.
    pub len: u64,
    /// Sequence number of the last record written (0 if none).
    pub last_seq: u64,
}

impl Rewrite {
    /// Starts `walkv.wal.new` with a header for `log_id`.
    pub fn begin(path: &Path, log_id: u64) -> Result<Rewrite, Error> {
        let file = create_replacement(path)?;
        let mut rewrite = Rewrite {
            path: path.to_path_buf(),
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            seed: Seed::log(log_id),
            len: 0,
            last_seq: 0,
        };
        rewrite.put(&encode_header(log_id))?;
        Ok(rewrite)
    }

    /// Starts `NAME.new` for the file at `path` with nothing in it (for files that are not logs:
    /// the layout marker).
    pub fn begin_raw(path: &Path) -> Result<Rewrite, Error> {
        let file = create_replacement(path)?;
        let out = Some(BufWriter::new(file));
        Ok(Rewrite { path: path.to_path_buf(), out, seed: Seed::V1, len: 0, last_seq: 0 })
    }

    /// Appends bytes as they are.
    pub fn raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.put(bytes)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let out = self.out.as_mut().expect("a rewrite is written only before its commit");
        out.write_all(bytes).map_err(|e| write_error(&self.path, e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Appends a SET or DELETE with sequence number `seq` (which must follow `last_seq`).
    pub fn data(&mut self, seq: u64, body: &record::Body) -> Result<(), Error> {
        assert!(seq > self.last_seq, "sequence numbers only grow ({seq} after {})", self.last_seq);
        let mut bytes = Vec::new();
        record::encode_body(&mut bytes, self.seed, seq, body);
        self.put(&bytes)?;
        self.last_seq = seq;
        Ok(())
    }

    /// Records that sequence numbers `last_seq + 1 ..= last` are skipped on purpose.
    pub fn gap(&mut self, last: u64) -> Result<(), Error> {
        let first = self.last_seq + 1;
        let mut bytes = Vec::new();
        record::encode_gap(&mut bytes, self.seed, first, last);
        self.put(&bytes)?;
        self.last_seq = last;
        Ok(())
    }

    /// Commits a new file without a marker; `before_rename` may inject an error (a failpoint)
    /// between the fsync and the rename.
    pub fn commit_with(
        mut self,
        before_rename: impl FnOnce() -> Option<io::Error>,
    ) -> Result<(), Error> {
        let mut out = self.out.take().expect("committed once");
        let path = self.path.clone();
        let new = new_path(&path);
        out.flush().map_err(|e| write_error(&path, e))?;
        let file = out.into_inner().map_err(|e| write_error(&path, e.into_error()))?;
        if let Some(e) = before_rename() {
            let _ = files::remove_file(&new);
            return Err(Error::io(format!("rename {} to {}", new.display(), path.display()), e));
        }
        commit_replacement(&file, &path)
    }

    /// Makes the new file the log. With `mark`, a final SYNC marker (written after the data is
    /// fsynced, so that what it says is true) records who wrote it.
    pub fn commit(
        mut self,
        mark: Option<(BootId, MarkKind, Option<SyncMode>)>,
    ) -> Result<(), Error> {
        let mut out = self.out.take().expect("committed once");
        let path = self.path.clone();
        let new = new_path(&path);
        let fsync =
            |f: &File| f.sync_data().map_err(|e| Error::io(format!("fsync {}", new.display()), e));
        out.flush().map_err(|e| write_error(&path, e))?;
        if let Some((boot, kind, mode)) = mark {
            fsync(out.get_ref())?;
            let mut bytes = Vec::with_capacity(MARK_LEN);
            let m = Mark { offset: self.len, boot, kind, mode };
            record::encode_mark(&mut bytes, self.seed, self.last_seq, &m);
            out.write_all(&bytes).and_then(|_| out.flush()).map_err(|e| write_error(&path, e))?;
        }
        let file = out.into_inner().map_err(|e| write_error(&path, e.into_error()))?;
        commit_replacement(&file, &path)
    }
}

impl Drop for Rewrite {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            // Not committed: the old log stays in charge; this half-written file goes.
            let _ = files::remove_leftover(&self.path);
        }
    }
}

fn write_error(path: &Path, e: io::Error) -> Error {
    Error::io(format!("write {}", new_path(path).display()), e)
}

/// Creates a new, empty log at `path`.
pub fn create(path: &Path) -> Result<(), Error> {
    Rewrite::begin(path, new_log_id())?.commit(None)
}

/// Replaces a format 1 log with a log of the current format holding the same records (each re-encoded with
/// the new log's checksum seed), up to `scan.end`: a torn tail is left behind. Bounded memory.
pub fn upgrade(path: &Path, scan: &Scan) -> Result<(), Error> {
    let read_err = |e| Error::io(format!("read {}", path.display()), e);
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut window = Window::new(file, 0);
    let mut rewrite = Rewrite::begin(path, new_log_id())?;
    let mut at = scan.header.size() as u64;
    while at < scan.end {
        let buf = window.fill(at, MAX_RECORD_LEN).map_err(read_err)?;
        let Decoded::Record(r, len) = record::decode(buf, Seed::V1) else {
            // The scan checked every record up to `end`; the file changed under us.
            return Err(Error::io(
                format!("upgrade {}", path.display()),
                io::Error::other(format!("the record at offset {at} no longer checks out")),
            ));
        };
        // Format 1 has SETs and DELETEs only.
        rewrite.data(r.seq, &r.body)?;
        at += len as u64;
    }
    rewrite.commit(None)
}
