//! The one error type of walkv, with variants chosen by what the caller must do about them.
//!
//! Messages say what happened, where (file, offset, key) and what to do next, because the reader
//! of a walkv error is usually an operator at a terminal. `io::Error`s are kept as the source
//! rather than flattened to strings. HTTP status codes are chosen from these variants in exactly
//! one place ([`crate::http`]), exit codes in exactly one place ([`crate::cli`]).

use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// An operating-system call failed. `action` says what walkv was doing, including the path.
    Io { action: String, source: io::Error },
    /// The log holds damage that startup must not skip (see the recovery rules in
    /// `docs/recovery.md`); `reason` says what and why. The operator decides, with `walkv repair`.
    Corrupt { path: PathBuf, offset: u64, reason: String },
    /// A file the log needs is missing, or a snapshot is damaged: writes are lost unless a
    /// backup has the file. Without one, `walkv repair` keeps what checks out (see
    /// [`crate::wal::salvage`]).
    Damaged { path: PathBuf, reason: String },
    /// The file where the log belongs is not a walkv log. Nothing will be written to it.
    NotALog { path: PathBuf, reason: String },
    /// The log was written by a newer walkv, in a format (`version`) this one cannot read: it
    /// reads formats up to `newest`.
    NewerFormat { path: PathBuf, version: u32, newest: u32 },
    /// Another process (most likely another walkv server) holds the data directory's lock.
    Locked { path: PathBuf },
    /// The log cannot take more writes in this process: an earlier failure left it in a state
    /// only a restart (which replays what is really on disk) can clear.
    Failed { reason: String },
    /// A key or value is over its documented limit.
    TooLarge(String),
    /// The write would take the store's data past `--max-memory` (`used` and `limit` in bytes,
    /// as [`crate::store::memory`] counts them).
    MemoryFull { used: u64, limit: u64 },
    /// A request is malformed; the message says exactly how.
    Invalid(String),
}

impl Error {
    /// Wraps an `io::Error` with a description of what was being attempted.
    pub fn io(action: impl Into<String>, source: io::Error) -> Error {
        Error::Io { action: action.into(), source }
    }

    /// True for the write errors that mean "no space" (a full disk, a quota, a file size limit),
    /// which a client should see as 507 Insufficient Storage.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            // ENOSPC 28, EFBIG 27, EDQUOT 122 on Linux; io::ErrorKind names the first two.
            Error::Io { source, .. } => {
                matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge)
                    || source.raw_os_error() == Some(122)
            }
            _ => false,
        }
    }
}

/// The data directory, as the server shows it in its messages: [`for_client`] removes it.
static PRIVATE_DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Tells [`for_client`] the server's data directory (once, at startup).
pub fn set_private_dir(dir: &std::path::Path) {
    let _ = PRIVATE_DIR.set(dir.display().to_string());
}

/// `message` without the server's file paths, for an answer to a client: a client has no
/// business knowing where the server keeps its files (the full message goes to the server's
/// log). The data directory is removed wherever it appears, and every other absolute path is cut
/// to its file name (`append to segment-00000000000000000001.wal: No space left on device`).
pub fn for_client(message: &str) -> String {
    let mut text = message.to_string();
    if let Some(dir) = PRIVATE_DIR.get().filter(|d| !d.is_empty()) {
        text = text.replace(&format!("{dir}/"), "").replace(dir.as_str(), "the data directory");
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find('/') {
        let starts_path = at == 0 || rest[..at].ends_with([' ', '(', '\'', '"', '=']);
        if !starts_path {
            out.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            continue;
        }
        out.push_str(&rest[..at]);
        let path = &rest[at..];
        let end = path.find([' ', ':', ')', ',', ';', '\'', '"']).unwrap_or(path.len());
        let name = path[..end].rsplit('/').next().unwrap_or_default();
        out.push_str(if name.is_empty() { "/" } else { name });
        rest = &path[end..];
    }
    out.push_str(rest);
    out
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { action, source } => write!(f, "{action}: {source}"),
            Error::Corrupt { path, offset, reason } => write!(
                f,
                "{} is damaged at byte offset {offset}: {reason}{} walkv will not start on it and \
                 skip over the damage. `walkv repair --dry-run --data-dir {}` shows what each \
                 repair would keep (--skip-damaged keeps every record that checks out, --cut \
                 cuts the log at offset {offset}); both keep the bytes they drop in a side file",
                path.display(),
                if reason.ends_with('.') { "" } else { "." },
                data_dir_of(path),
            ),
            Error::Damaged { path, reason } => write!(
                f,
                "{}: {reason}. walkv will not start on this data directory. Restoring the file \
                 from a backup loses nothing; without one, `walkv repair --dry-run --data-dir {}` \
                 shows what a repair would keep and what is lost",
                path.display(),
                data_dir_of(path),
            ),
            Error::NotALog { path, reason } => write!(
                f,
                "{} is not a walkv log ({reason}); walkv will not touch it. Move it away, or \
                 choose another --data-dir",
                path.display()
            ),
            Error::NewerFormat { path, version, newest } => write!(
                f,
                "{} was written by a newer walkv (log format {version}; this walkv {} reads \
                 formats 1 and {}); upgrade walkv to use it. The log was not changed",
                path.display(),
                env!("CARGO_PKG_VERSION"),
                newest
            ),
            Error::Locked { path } => write!(
                f,
                "{} is locked by another process (is another walkv server using this data \
                 directory?); stop it or choose another --data-dir",
                path.display()
            ),
            Error::Failed { reason } => {
                write!(f, "the log is not accepting writes: {reason}; restart the server")
            }
            Error::TooLarge(msg) | Error::Invalid(msg) => f.write_str(msg),
            Error::MemoryFull { used, limit } => write!(
                f,
                "the store is at its memory limit (--max-memory {}, {} used): writes that need \
                 more memory are refused; reads and deletes go on. Delete keys, or restart the \
                 server with a higher --max-memory",
                crate::units::human(*limit),
                crate::units::human(*used),
            ),
        }
    }
}

fn data_dir_of(path: &std::path::Path) -> String {
    path.parent().map(|p| p.display().to_string()).unwrap_or_else(|| ".".to_string())
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths become file names; other slashes (a fraction, a key's `%2F` hint) stay.
    #[test]
    fn client_messages_have_no_paths() {
        let e = Error::io(
            "append to /var/lib/walkv/segment-00000000000000000001.wal",
            io::Error::from_raw_os_error(28),
        );
        let said = for_client(&e.to_string());
        assert!(
            said.starts_with("append to segment-00000000000000000001.wal: No space left"),
            "{said}"
        );
        assert_eq!(for_client("open lock file /a/b/LOCK (x)"), "open lock file LOCK (x)");
        assert_eq!(for_client("use 1/2 of a/b; /"), "use 1/2 of a/b; /");
        assert_eq!(for_client("fsync '/srv/d/x.wal': EIO"), "fsync 'x.wal': EIO");
    }
}
