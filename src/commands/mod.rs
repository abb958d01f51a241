//! What each command does, and which exit code it ends with (numbers in [`crate::cli::exit`]).
//!
//! Messages go to standard error prefixed with `walkv:`; standard output carries only data (the
//! value bytes of `get`, the report of `check` and `repair`), so `walkv get k > file` is exact.

use crate::auth;
use crate::cli::exit;
use crate::error::Error;
use crate::server::{self, Config, Outcome};
use crate::store::{self, wal_path};
use crate::wal::dir::Part;
use crate::wal::{self, Body, Judge, Tail};
use std::path::Path;

/// `println!` that ignores a closed stdout (`walkv check | head -1` must not panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod answer;
mod counter;
mod dump;
pub mod export;
mod import;
mod printable;
mod remote;
mod repair;
mod watch;
pub use counter::{incr, txn};
pub use dump::dump;
pub use export::export;
pub use import::import;
pub use remote::{compact, delete, get, list, set};
pub use repair::repair;
pub use watch::watch;

/// `walkv serve`. A token that cannot be loaded, or an open address without a token, is refused
/// before anything is opened (exit 2).
pub fn serve(config: &Config) -> u8 {
    crate::stamp_log_lines(config.log_format);
    let auth = match config.token.load() {
        Ok(auth) => auth,
        Err(e) => {
            crate::log!("{e}");
            return exit::USAGE;
        }
    };
    if let Err(e) = auth::check_bind(&config.bind, &auth, config.insecure_open) {
        crate::log!("{e}");
        return exit::USAGE;
    }
    match server::run(config, &auth) {
        Ok(Outcome::Stopped) => exit::OK,
        Ok(Outcome::ListenerFailed(_)) => exit::LISTENER_FAILED,
        Ok(Outcome::LogFailed) => exit::LOG_FAILED,
        Ok(Outcome::ThreadPanicked) => exit::PANICKED,
        Err(e) => {
            crate::log!("{e}");
            exit::for_error(&e)
        }
    }
}

/// `walkv check`: reads the log, reports on stdout, changes nothing.
///
/// On the directory of a running server (its lock is held) the tail is being written while it
/// is read, so only a SYNC marker after damage counts as proof of it, and damage with a marker
/// after it is read once more before it is reported (the marker shows the record had been
/// complete). If no server held the lock but damage was found, the lock is probed again: a
/// server that started meanwhile may have been writing, and the check is made again as live.
pub fn check(data_dir: &Path) -> u8 {
    let live = match store::is_locked(data_dir) {
        Ok(live) => live,
        Err(e) => {
            crate::log!("{e}");
            return exit::FAILED;
        }
    };
    let code = check_dir(data_dir, live);
    if !live && code != exit::OK && store::is_locked(data_dir).unwrap_or(false) {
        say!("a server started while the log was being checked; checking again");
        return check_dir(data_dir, true);
    }
    code
}

/// Checks every file of the log in `data_dir` (one `walkv.wal`, or a snapshot and segments).
fn check_dir(data_dir: &Path, live: bool) -> u8 {
    match wal::layout::list(data_dir) {
        Ok(listing) if listing.is_segmented() => {}
        Ok(_) => {
            let Some(path) = existing_log(data_dir) else {
                return exit::FAILED;
            };
            return check_once(&path, data_dir, live, 0);
        }
        Err(e) => return report_unreadable(data_dir, &e),
    }
    // A running server's compaction may remove files while they are read: read them again.
    for _ in 0..3 {
        if let Some(code) = check_parts(data_dir, live) {
            return code;
        }
        say!("a compaction replaced files while they were being checked; checking again");
    }
    say!("the files kept changing (compactions); try again");
    exit::FAILED
}

/// Checks each file of a segmented directory; `None` if one vanished while it was read.
fn check_parts(data_dir: &Path, live: bool) -> Option<u8> {
    let parts = match wal::dir::parts(data_dir) {
        Ok(parts) => parts,
        Err(e) => return Some(report_unreadable(data_dir, &e)),
    };
    let vanished = |e: &Error| matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
    let mut worst = exit::OK;
    for (path, part) in parts {
        let code = match part {
            Part::Leftover => {
                say!(
                    "{}: left over from an interrupted write; the next start removes it",
                    path.display()
                );
                exit::OK
            }
            Part::Snapshot { upto } => match wal::snapshot::load(&path, upto, |_| {}) {
                Ok(c) => {
                    say!(
                        "{}: snapshot through seq {upto}, {} keys, {} bytes: ok",
                        path.display(),
                        c.keys,
                        c.file_bytes
                    );
                    exit::OK
                }
                Err(e) if vanished(&e) => return None,
                Err(e) => report_unreadable(&path, &e),
            },
            Part::Sealed { first, ceiling } => {
                let judge = Judge::Stopped { boot: wal::boot_id() };
                match wal::scan::scan_after(&path, judge, first - 1, |_| {}) {
                    Ok(scan)
                        if matches!(scan.tail, Tail::Clean | Tail::Reserved)
                            && scan.last_seq == ceiling =>
                    {
                        say!(
                            "{}: sealed segment, {} records, seqs {first}..={ceiling}: ok",
                            path.display(),
                            scan.records
                        );
                        exit::OK
                    }
                    Ok(scan) => {
                        let why = match scan.tail {
                            Tail::Clean | Tail::Reserved => format!(
                                "it ends at seq {} but the next segment starts at seq {}: the writes in between are in no file",
                                scan.last_seq,
                                ceiling + 1
                            ),
                            _ => scan.explain(),
                        };
                        say!(
                            "{}: corrupt: sealed segment (only the newest may be torn): {why}. \
                             See what `walkv repair` would do with `walkv repair --dry-run`",
                            path.display()
                        );
                        exit::CORRUPT
                    }
                    Err(e) if vanished(&e) => return None,
                    Err(e) => report_unreadable(&path, &e),
                }
            }
            Part::Newest { first } => check_once(&path, data_dir, live, first - 1),
            Part::Missing { first, next } => {
                say!(
                    "{}: corrupt: {}. See what `walkv repair` would do with `walkv repair \
                     --dry-run`",
                    path.display(),
                    missing_segment(first, next)
                );
                exit::CORRUPT
            }
        };
        if worst == exit::OK || code == exit::CORRUPT {
            worst = code;
        }
    }
    Some(worst)
}

/// What a missing segment means, in words.
fn missing_segment(first: u64, next: Option<u64>) -> String {
    let upto = match next {
        Some(n) => format!(" to seq {} (the next segment starts at seq {n})", n - 1),
        None => " on (no segment follows)".to_string(),
    };
    format!(
        "this segment is missing: it must hold the writes from seq {first}{upto}, and they are in no file"
    )
}

/// One check of the log; prints the verdict.
fn check_once(path: &Path, data_dir: &Path, live: bool, after: u64) -> u8 {
    let judge = if live { Judge::Live } else { Judge::Stopped { boot: wal::boot_id() } };
    let mut attempt = 0;
    let (scan, sets, deletes) = loop {
        let (mut sets, mut deletes) = (0u64, 0u64);
        let scanned = wal::scan::scan_after(path, judge, after, |r| match r.body {
            Body::Set { .. } => sets += 1,
            _ => deletes += 1,
        });
        let scan = match scanned {
            Ok(scan) => scan,
            Err(e) => return report_unreadable(path, &e),
        };
        attempt += 1;
        // Live: a marker after the damage was written after the damaged record was complete,
        // so one more read settles whether it was only being written during the first one.
        if live && matches!(scan.tail, Tail::Corrupt { .. }) && attempt < 3 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        break (scan, sets, deletes);
    };
    let running = if live { ", a server is running on it" } else { "" };
    say!(
        "{}: format {}, {} records ({sets} sets, {deletes} deletes), last seq {}, {} bytes{running}",
        path.display(),
        scan.header.version,
        scan.records,
        scan.last_seq,
        scan.file_len
    );
    let after = scan.file_len.saturating_sub(scan.end);
    let dir = data_dir.display();
    match &scan.tail {
        Tail::Clean => {
            say!("ok: the log is clean");
            exit::OK
        }
        Tail::Reserved => {
            say!(
                "ok: the log is clean; the {after} bytes after offset {} are zeros a server \
                 reserved ahead of it (released at the next start)",
                scan.end
            );
            exit::OK
        }
        Tail::Unfinished { .. } | Tail::Unsynced { .. } if live => {
            say!(
                "ok: the log checks out through offset {} (seq {}); the {after} bytes after it \
                 are being written by the running server and were not judged",
                scan.end,
                scan.last_seq
            );
            exit::OK
        }
        Tail::Unfinished { .. } => {
            say!(
                "torn tail: {} The server trims it at startup; no repair is needed.",
                scan.explain()
            );
            exit::TORN
        }
        Tail::Unsynced { found, .. } => {
            let kept = if found.records + found.inside > 0 {
                ", keeping the bytes in a side file first"
            } else {
                ""
            };
            say!(
                "unsynced tail: {} The server trims it at startup{kept}; no repair is needed.",
                scan.explain()
            );
            exit::TORN
        }
        Tail::Corrupt { .. } => {
            say!(
                "corrupt: {} The server will not start on this log. `walkv repair --dry-run \
                 --data-dir {dir}` shows what each repair would keep.",
                scan.explain()
            );
            exit::CORRUPT
        }
    }
}

/// A log `check` or `repair` cannot read at all: the verdict on stdout too, and its exit code.
fn report_unreadable(path: &Path, e: &Error) -> u8 {
    let code = exit::for_error(e);
    let verdict = match e {
        Error::NotALog { .. } => "not a walkv log",
        Error::NewerFormat { .. } => "newer format",
        Error::Corrupt { .. } | Error::Damaged { .. } => "corrupt",
        _ => "unreadable",
    };
    say!("{}: {verdict}: {e}", path.display());
    crate::log!("{e}");
    if code == exit::CORRUPT || code == exit::NEWER_FORMAT { code } else { exit::FAILED }
}

/// The log's path in `data_dir`, or `None` (having said so) if there is no log there.
fn existing_log(data_dir: &Path) -> Option<std::path::PathBuf> {
    let path = wal_path(data_dir);
    if !path.exists() {
        say!("{}: there is no log", path.display());
        crate::log!("there is no log at {}", path.display());
        return None;
    }
    Some(path)
}
