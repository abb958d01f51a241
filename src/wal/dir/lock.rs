//! The data directory's lock: `LOCK`, which a running server (or a repair) holds an exclusive
//! `flock` on for its whole life, so that two servers never append to the same log and a
//! repair never runs under a server.

use crate::error::Error;
use std::fs::{self, File, OpenOptions};
use std::path::Path;

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// True if another process (a running server, a repair) holds `dir`'s lock. Creates nothing.
pub fn is_locked(dir: &Path) -> Result<bool, Error> {
    let path = dir.join(LOCK_FILE);
    let file = match OpenOptions::new().write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(format!("open lock file {}", path.display()), e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(false), // released when `file` is dropped, at once
        Err(fs::TryLockError::WouldBlock) => Ok(true),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(format!("lock {}", path.display()), e)),
    }
}

/// True if a process holds `dir`'s lock, found without taking it, even for a moment: from the
/// kernel's table of file locks, `/proc/locks`, so that a server starting at that very moment
/// can never find the lock taken by a reader (`walkv dump`, `walkv export`). Where that table
/// cannot be read, falls back to [`is_locked`]'s probe.
pub fn is_held(dir: &Path) -> Result<bool, Error> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(LOCK_FILE);
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(format!("stat lock file {}", path.display()), e)),
    };
    match fs::read_to_string("/proc/locks") {
        Ok(table) => Ok(table.lines().any(|line| names_inode(line, meta.dev(), meta.ino()))),
        Err(_) => is_locked(dir),
    }
}

/// True if a line of `/proc/locks` (`1: FLOCK ADVISORY WRITE 4321 08:01:1234 0 EOF`, the device
/// in hex, the inode in decimal) is a lock on the file with device `dev` and inode `ino`.
pub(crate) fn names_inode(line: &str, dev: u64, ino: u64) -> bool {
    let (major, minor) =
        ((dev >> 8) & 0xfff | (dev >> 32) & !0xfff, (dev & 0xff) | (dev >> 12) & !0xff);
    line.split_whitespace().any(|field| {
        let mut parts = field.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(ma), Some(mi), Some(i), None) => {
                u64::from_str_radix(ma, 16) == Ok(major)
                    && u64::from_str_radix(mi, 16) == Ok(minor)
                    && i.parse::<u64>() == Ok(ino)
            }
            _ => false,
        }
    })
}

/// Creates `dir` if needed (durably: every new level's parent is fsynced, see
/// [`crate::wal::files::create_dir_durably`]) and takes an exclusive lock on its `LOCK` file.
pub fn lock_data_dir(dir: &Path) -> Result<File, Error> {
    crate::wal::files::create_dir_durably(dir)?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("open lock file {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Locked { path: dir.to_path_buf() }),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(format!("lock {}", path.display()), e)),
    }
}
