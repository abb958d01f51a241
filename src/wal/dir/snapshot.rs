//! Snapshot files: every live key of the store as of one sequence number, written once by a
//! compaction and then only read.
//!
//! ```text
//! snapshot := header set* end
//! header   := the log header (format 4, or 2 when written before it), with the snapshot's
//!             own random id
//! set      := a SET record, or an expiring SET; seq = the sequence number of the key's last
//!             write (<= upto)
//! end      := a SYNC marker of kind 5 (snapshot) at its own offset, seq = upto
//! ```
//!
//! Keys are distinct, in no particular order; there are no DELETE records (a key that is not in
//! the snapshot had no value at `upto`). The end marker proves the file is complete: a snapshot
//! is refused unless every record checks out, every seq is at most `upto` (from the file name),
//! and the end marker names its own offset and `upto`, with nothing after it. A snapshot is
//! written as `NAME.new`, fsynced (in 4 MiB steps as it grows, so that the final fsync is
//! short), renamed to its name, and the directory fsynced: that rename is a compaction's
//! commit point (see [`crate::wal::compact`]).

use crate::error::Error;
use crate::failpoint;
use crate::wal::files::{dir_of, new_path, remove_file, rename, sync_dir, sync_file};
use crate::wal::reader::Window;
use crate::wal::record::{
    self, Body, BootId, Decoded, MARK_LEN, MAX_RECORD_LEN, Mark, MarkKind, RECORD_HEADER_LEN,
    Record, Seed, encode_header,
};
use crate::wal::rewrite::new_log_id;
use crate::wal::scan::read_header;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The snapshot is fsynced each time this many more bytes have been written.
const SYNC_EVERY: u64 = 4 << 20;

/// Bytes one live key takes in a snapshot (and in a segment, as a SET; an expiring one takes
/// [`record::EXPIRY_LEN`] more): the unit of `live_bytes`.
pub fn entry_bytes(key: &[u8], value: &[u8], expires: Option<u64>) -> u64 {
    let expiry = if expires.is_some() { record::EXPIRY_LEN } else { 0 };
    (RECORD_HEADER_LEN + key.len() + expiry + value.len()) as u64
}

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contents {
    /// Keys (SET records).
    pub keys: u64,
    /// The sum of [`entry_bytes`] over them.
    pub live_bytes: u64,
    /// The whole file.
    pub file_bytes: u64,
}

/// A snapshot being written as `NAME.new`. Dropped without [`Writer::commit`], it removes its
/// file.
pub struct Writer {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    seed: Seed,
    upto: u64,
    contents: Contents,
    synced_at: u64,
}

impl Writer {
    /// Starts the snapshot at `path` (its final name) covering writes up to `upto`.
    pub fn create(path: &Path, upto: u64) -> Result<Writer, Error> {
        let new = new_path(path);
        let _ = remove_file(&new); // a leftover of an interrupted compaction
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&new)
            .map_err(|e| Error::io(format!("create {}", new.display()), e))?;
        failpoint::trace_fs("create", &new, None);
        let id = new_log_id();
        let mut writer = Writer {
            path: path.to_path_buf(),
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            seed: Seed::log(id),
            upto,
            contents: Contents::default(),
            synced_at: 0,
        };
        writer.put(&encode_header(id))?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let out = self.out.as_mut().expect("written only before its commit");
        let e = match failpoint::check("snapshot_write") {
            Some(e) => Err(e),
            None => out.write_all(bytes),
        };
        e.map_err(|e| self.error("write", e))?;
        self.contents.file_bytes += bytes.len() as u64;
        if self.contents.file_bytes - self.synced_at >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), Error> {
        let out = self.out.as_mut().expect("written only before its commit");
        let result = match failpoint::check("snapshot_fsync") {
            Some(e) => Err(e),
            None => out.flush().and_then(|_| out.get_ref().sync_data()),
        };
        result.map_err(|e| self.error("fsync", e))?;
        failpoint::trace_fsync(&new_path(&self.path), self.contents.file_bytes);
        self.synced_at = self.contents.file_bytes;
        Ok(())
    }

    fn error(&self, what: &str, e: io::Error) -> Error {
        Error::io(format!("{what} {}", new_path(&self.path).display()), e)
    }

    /// Adds a live key, last written at `seq`, that expires at `expires` if that is some.
    pub fn set(
        &mut self,
        seq: u64,
        key: &[u8],
        value: &[u8],
        expires: Option<u64>,
    ) -> Result<(), Error> {
        debug_assert!(seq <= self.upto, "a snapshot holds only writes up to its number");
        let mut bytes = Vec::with_capacity(entry_bytes(key, value, expires) as usize);
        record::encode_body(&mut bytes, self.seed, seq, &Body::Set { key, value, expires });
        self.put(&bytes)?;
        self.contents.keys += 1;
        self.contents.live_bytes += bytes.len() as u64;
        Ok(())
    }

    /// What has been written so far.
    pub fn contents(&self) -> Contents {
        self.contents
    }

    /// Ends the snapshot and makes it durable under its name: the end marker, fsync, rename,
    /// directory fsync. Once this returns, the snapshot is in charge. An error before the rename
    /// leaves nothing behind; an error from the directory fsync leaves the snapshot renamed but
    /// perhaps not durable (the caller must then not remove what it replaces).
    pub fn commit(mut self, boot: BootId) -> Result<Contents, Error> {
        let mark =
            Mark { offset: self.contents.file_bytes, boot, kind: MarkKind::Snapshot, mode: None };
        let mut bytes = Vec::with_capacity(MARK_LEN);
        record::encode_mark(&mut bytes, self.seed, self.upto, &mark);
        self.put(&bytes)?;
        self.sync()?;
        let out = self.out.take().expect("committed once");
        let new = new_path(&self.path);
        let synced = match failpoint::check("snapshot_commit_fsync") {
            Some(e) => Err(e),
            None => sync_file(out.get_ref(), &new),
        };
        if let Err(e) = synced {
            let _ = remove_file(&new);
            return Err(Error::io(format!("fsync {}", new.display()), e));
        }
        drop(out);
        let renamed = match failpoint::check("snapshot_rename") {
            Some(e) => {
                let what = format!("rename {} to {}", new.display(), self.path.display());
                Err(Error::io(what, e))
            }
            None => rename(&new, &self.path),
        };
        if let Err(e) = renamed {
            let _ = remove_file(&new);
            return Err(e);
        }
        match failpoint::check("snapshot_dir_fsync") {
            Some(e) => {
                Err(Error::io(format!("fsync directory {}", dir_of(&self.path).display()), e))
            }
            None => sync_dir(dir_of(&self.path)),
        }?;
        Ok(self.contents)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = remove_file(&new_path(&self.path));
        }
    }
}

/// Reads the snapshot at `path`, which must cover exactly the writes up to `upto`, calling
/// `visit` for every key. Refuses anything but a complete, undamaged snapshot with
/// [`Error::Corrupt`], naming the offset.
pub fn load(path: &Path, upto: u64, mut visit: impl FnMut(&Record)) -> Result<Contents, Error> {
    let corrupt = |offset: u64, reason: String| Error::Damaged {
        path: path.to_path_buf(),
        reason: format!(
            "this snapshot is damaged at byte offset {offset} ({reason}). A snapshot is written \
             whole and fsynced before it is put in place, so this is damage to the disk or an \
             edit"
        ),
    };
    let Some(header) = read_header(path)? else {
        return Err(corrupt(0, "the file is shorter than its header".into()));
    };
    if !record::is_log_version(header.version) {
        return Err(corrupt(0, format!("a snapshot of format {}", header.version)));
    }
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut window = Window::new(file, 0);
    let seed = header.seed();
    let mut contents = Contents::default();
    let mut at = header.size() as u64;
    loop {
        let buf = window
            .fill(at, MAX_RECORD_LEN)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let (record, len) = match decode_snapshot_record(buf, seed) {
            Ok(found) => found,
            Err(fault) => return Err(corrupt(at, fault)),
        };
        match record.body {
            Body::Set { key, value, expires } if record.seq <= upto => {
                visit(&record);
                contents.keys += 1;
                contents.live_bytes += entry_bytes(key, value, expires);
            }
            Body::Mark(m)
                if m.kind == MarkKind::Snapshot && m.offset == at && record.seq == upto =>
            {
                let end = at + len as u64;
                if buf.len() > len {
                    return Err(corrupt(end, "bytes follow the snapshot's end marker".into()));
                }
                contents.file_bytes = end;
                return Ok(contents);
            }
            Body::Set { .. } => {
                let why =
                    format!("a record with seq {} in a snapshot up to seq {upto}", record.seq);
                return Err(corrupt(at, why));
            }
            _ => return Err(corrupt(at, "a record a snapshot cannot hold".into())),
        }
        at += len as u64;
    }
}

fn decode_snapshot_record(buf: &[u8], seed: Seed) -> Result<(Record<'_>, usize), String> {
    match record::decode(buf, seed) {
        Decoded::Record(record, len) => Ok((record, len)),
        Decoded::Incomplete(_) if buf.is_empty() => Err("the snapshot has no end marker".into()),
        Decoded::Incomplete(_) => Err("the file ends in the middle of a record".into()),
        Decoded::Damaged(fault, _) => Err(fault.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::fs;

    fn write(path: &Path, upto: u64, keys: &[(&[u8], &[u8], u64)]) -> Contents {
        let mut w = Writer::create(path, upto).unwrap();
        for (k, v, seq) in keys {
            w.set(*seq, k, v, None).unwrap();
        }
        w.commit([1; 16]).unwrap()
    }

    #[test]
    fn a_snapshot_reads_back_what_was_written() {
        let dir = TempDir::new("snap-rw");
        let path = dir.join("s");
        let written = write(&path, 9, &[(b"a", b"1", 3), (b"b", b"", 9)]);
        let mut seen = Vec::new();
        let read = load(&path, 9, |r| {
            if let Body::Set { key, value, .. } = r.body {
                seen.push((key.to_vec(), value.to_vec(), r.seq));
            }
        })
        .unwrap();
        assert_eq!(read, written);
        assert_eq!(read.keys, 2);
        assert_eq!(read.file_bytes, fs::metadata(&path).unwrap().len());
        assert_eq!(seen, vec![(b"a".to_vec(), b"1".to_vec(), 3), (b"b".to_vec(), vec![], 9)]);
        assert!(!new_path(&path).exists());
    }

    /// Truncated anywhere, flipped anywhere, or read as another number: refused, never half
    /// loaded.
    #[test]
    fn every_damage_is_refused() {
        let dir = TempDir::new("snap-damage");
        let path = dir.join("s");
        write(&path, 5, &[(b"key", b"value", 2), (b"k2", b"v2", 5)]);
        let good = fs::read(&path).unwrap();
        assert!(matches!(load(&path, 6, |_| {}), Err(Error::Damaged { .. })), "wrong number");
        assert!(matches!(load(&path, 4, |_| {}), Err(Error::Damaged { .. })), "seq over upto");
        for cut in 0..good.len() {
            fs::write(&path, &good[..cut]).unwrap();
            assert!(load(&path, 5, |_| {}).is_err(), "truncated at {cut}");
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            fs::write(&path, &bad).unwrap();
            assert!(load(&path, 5, |_| {}).is_err(), "flipped byte {i}");
        }
        let mut longer = good.clone();
        longer.push(0);
        fs::write(&path, &longer).unwrap();
        assert!(load(&path, 5, |_| {}).is_err(), "a byte after the end");
    }

    #[test]
    fn an_uncommitted_snapshot_leaves_nothing() {
        let dir = TempDir::new("snap-drop");
        let path = dir.join("s");
        let mut w = Writer::create(&path, 3).unwrap();
        w.set(1, b"a", b"b", None).unwrap();
        drop(w);
        assert!(!path.exists() && !new_path(&path).exists());
    }
}
