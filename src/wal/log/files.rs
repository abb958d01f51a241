//! The log's files in the data directory, and the protocol for replacing and keeping them.
//!
//! - `walkv.wal` is the log. It is only ever replaced whole by a rename: a new log (a creation,
//!   an upgrade from format 1, a `repair --skip-damaged`) is written as `walkv.wal.new`, fsynced,
//!   renamed over `walkv.wal`, and the directory fsynced. The rename is the commit point: before
//!   it the old file is in charge, after it the new one, and a `walkv.wal.new` found at open is
//!   an interrupted replacement, removed.
//! - Side files keep bytes that were cut out of the log: `walkv.wal.trimmed-OFFSET-TIME`
//!   (an unsynced tail trimmed at startup that held records), `walkv.wal.cut-OFFSET-TIME`
//!   (`repair --cut`) and `walkv.wal.skipped-TIME` (`repair --skip-damaged`). They are created
//!   with `create_new` (a `-N` suffix if the name is taken, so one never overwrites another)
//!   and fsynced, with their directory, before the log loses the bytes they hold. walkv never
//!   reads or deletes them.
//!
//! Every copy here goes through a 1 MiB buffer, so memory stays bounded whatever the sizes.

use crate::error::Error;
use crate::failpoint;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The log's file name inside the data directory.
pub const FILE_NAME: &str = "walkv.wal";

/// The name a replacement for the file at `path` is written under before its rename:
/// `walkv.wal.new` for `walkv.wal`.
pub fn new_path(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}.new", file_name(path)))
}

/// The last component of `path`, as text (lossy: walkv's own names are ASCII).
pub fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The directory `path` lives in.
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Fsyncs a directory, so that a file created or renamed in it survives power loss.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync directory {}", dir.display()), e))?;
    failpoint::trace_fs("fsyncdir", dir, None);
    Ok(())
}

/// Removes the file at `path` (every removal in the data directory goes through here, so that
/// tests see it: see [`crate::failpoint`]).
pub fn remove_file(path: &Path) -> io::Result<()> {
    let grave = failpoint::bury(path);
    match fs::remove_file(path) {
        Ok(()) => {
            failpoint::trace_fs("remove", path, grave.as_deref());
            Ok(())
        }
        Err(e) => {
            if let Some(grave) = grave {
                let _ = fs::remove_file(grave);
            }
            Err(e)
        }
    }
}

/// Renames `from` to `to` (every rename in the data directory goes through here, so that tests
/// see it). Durable only once the directory is fsynced.
pub fn rename(from: &Path, to: &Path) -> Result<(), Error> {
    fs::rename(from, to)
        .map_err(|e| Error::io(format!("rename {} to {}", from.display(), to.display()), e))?;
    failpoint::trace_fs("rename", from, Some(to));
    Ok(())
}

/// Fsyncs a file (`sync_all`), noting it in the test trace.
pub fn sync_file(file: &File, path: &Path) -> io::Result<()> {
    file.sync_all()?;
    failpoint::trace_fsync(path, file.metadata()?.len());
    Ok(())
}

/// Creates `dir` and every missing directory above it, one level at a time from the highest
/// missing one down, fsyncing each new directory's parent right after creating it: a new
/// directory entry only survives a power cut once its parent is fsynced, and the directories
/// above it only once theirs are (`create_dir_all` alone would leave every level but the
/// synced one to chance). The new data directory itself is fsynced by whoever puts the first
/// file into it. Returns whether anything was created.
pub fn create_dir_durably(dir: &Path) -> Result<bool, Error> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty()) {
        match fs::symlink_metadata(path) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(path),
            Err(e) => return Err(Error::io(format!("look at directory {}", path.display()), e)),
        }
        at = path.parent();
    }
    for path in missing.iter().rev() {
        match fs::create_dir(path) {
            // Another process may have created it meanwhile: its parent is fsynced either way.
            Ok(()) => failpoint::trace_fs("mkdir", path, None),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("create directory {}", path.display()), e)),
        }
        sync_dir(dir_of(path))?;
    }
    Ok(!missing.is_empty())
}

/// Makes `new` the log at `path`: fsyncs `new`'s data, renames it over `path`, fsyncs the
/// directory. The rename is the commit point.
pub fn commit_replacement(new: &File, path: &Path) -> Result<(), Error> {
    let from = new_path(path);
    sync_file(new, &from).map_err(|e| Error::io(format!("fsync {}", from.display()), e))?;
    rename(&from, path)?;
    sync_dir(dir_of(path))
}

/// Creates `walkv.wal.new` for writing a replacement log, removing a leftover one first.
pub fn create_replacement(path: &Path) -> Result<File, Error> {
    let new = new_path(path);
    remove_leftover(path)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&new)
        .map_err(|e| Error::io(format!("create {}", new.display()), e))?;
    failpoint::trace_fs("create", &new, None);
    Ok(file)
}

/// Removes an interrupted replacement (`walkv.wal.new`), if there is one. Safe: a replacement
/// is only in charge once renamed.
pub fn remove_leftover(path: &Path) -> Result<bool, Error> {
    let new = new_path(path);
    match remove_file(&new) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("remove the leftover {}", new.display()), e)),
    }
}

/// Creates a side file `NAME.STEM` (or `NAME.STEM-N` if that name is taken) next to the log
/// at `path`, whose file name is NAME (`walkv.wal`, or a segment's).
pub fn create_side_file(path: &Path, stem: &str) -> Result<(File, PathBuf), Error> {
    let log = file_name(path);
    for n in 0..1000u32 {
        let name = match n {
            0 => format!("{log}.{stem}"),
            n => format!("{log}.{stem}-{n}"),
        };
        let side = path.with_file_name(name);
        match OpenOptions::new().write(true).create_new(true).open(&side) {
            Ok(file) => {
                failpoint::trace_fs("create", &side, None);
                return Ok((file, side));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("create {}", side.display()), e)),
        }
    }
    Err(Error::io(
        format!("create a side file {log}.{stem}"),
        io::Error::other("a thousand files of that name exist"),
    ))
}

/// Seconds since the epoch, for side file names (0 if the clock is before 1970).
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Appends bytes `from..to` of `src` to `dst`, 1 MiB at a time. Stops early at the end of `src`.
pub fn copy_range(src: &File, from: u64, to: u64, dst: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let want = (to - at).min(buf.len() as u64) as usize;
        let n = src.read_at(&mut buf[..want], at)?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n])?;
        at += n as u64;
    }
    Ok(at - from)
}

/// Saves bytes `from..to` of the log at `path` in a new side file, fsynced with its directory
/// before this returns. Returns the side file's path.
pub fn save_side_file(path: &Path, stem: &str, from: u64, to: u64) -> Result<PathBuf, Error> {
    let (mut side, side_path) = create_side_file(path, stem)?;
    let err = |what: &str, e| Error::io(format!("{what} {}", side_path.display()), e);
    let saved = File::open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))
        .and_then(|src| copy_range(&src, from, to, &mut side).map_err(|e| err("write", e)))
        .and_then(|_| sync_file(&side, &side_path).map_err(|e| err("fsync", e)))
        .and_then(|_| sync_dir(dir_of(path)));
    if let Err(e) = saved {
        // A partial copy is no use to anyone; the log still holds the bytes.
        let _ = remove_file(&side_path);
        return Err(e);
    }
    Ok(side_path)
}
