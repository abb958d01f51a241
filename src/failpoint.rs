//! Failure injection for tests: make the N-th write or fsync of the log fail, for real, inside
//! the real binary, so the error paths (507, cut back, fail-stop) are exercised end to end.
//!
//! Compiled in only with the cargo feature `failpoints`. `cargo test` turns it on for the binary
//! the integration tests run (a dev-dependency of the crate on itself); `cargo build` and
//! `cargo run --release` never have it, and without it every function here is an empty inline
//! function that reads no environment.
//!
//! With the feature, two environment variables are read once, at the first use:
//!
//! - `WALKV_FAILPOINTS`: `;`-separated rules `POINT=CALLS:ERROR`, where POINT is `write` (the
//!   append fails before writing anything), `short_write` (half the record reaches the file, then
//!   the append fails) or `fsync`; CALLS is `N` (the N-th call, counting from 1) or `N-M`; ERROR
//!   is `nospace` (ENOSPC), `toobig` (EFBIG) or `io` (EIO). Example: `write=3:nospace;fsync=5:io`.
//! - `WALKV_SYNC_TRACE`: a file to which every successful log sync appends a line
//!   `<synced length in bytes> <synced seq>`, written after the fsync returned and before any
//!   answer that depends on it. Power-loss tests use it to know what was really synced.
//! - `WALKV_FS_TRACE`: a file to which every change walkv makes to a directory's entries, and
//!   every directory fsync, appends a line once it has returned: `mkdir PATH`, `create PATH`,
//!   `rename FROM TO`, `remove PATH`, `fsyncdir PATH`. By the POSIX rule an entry is only sure to
//!   survive a power cut once its directory has been fsynced after it; tests check that every
//!   entry an acknowledged write depends on was (`tests/new_dirs.rs`).
//! - `WALKV_BOOT_ID`: the kernel boot id the log's SYNC markers record and recovery compares
//!   with (instead of `/proc/sys/kernel/random/boot_id`), so that a test can restart a server
//!   as if the machine had rebooted after a simulated power cut.

use std::io;

/// Returns the error to inject at this call of `point`, if a rule says so.
#[cfg(feature = "failpoints")]
pub fn check(point: &str) -> Option<io::Error> {
    enabled::check(point)
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn check(_point: &str) -> Option<io::Error> {
    None
}

/// Records a completed sync in the trace file, if one is configured.
#[cfg(feature = "failpoints")]
pub fn record_sync(len: u64, seq: u64) {
    enabled::record_sync(len, seq)
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn record_sync(_len: u64, _seq: u64) {}

/// Records a change to a directory's entries, or a directory fsync, in the `WALKV_FS_TRACE`
/// file if one is configured: `op path` or `op path to`.
#[cfg(feature = "failpoints")]
pub fn trace_fs(op: &str, path: &std::path::Path, to: Option<&std::path::Path>) {
    enabled::trace_fs(op, path, to)
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn trace_fs(_op: &str, _path: &std::path::Path, _to: Option<&std::path::Path>) {}

/// The boot id to use instead of the kernel's (`WALKV_BOOT_ID`), so that a test can restart the
/// server as if the machine had rebooted after a simulated power cut.
#[cfg(feature = "failpoints")]
pub fn boot_id() -> Option<String> {
    std::env::var("WALKV_BOOT_ID").ok()
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn boot_id() -> Option<String> {
    None
}

#[cfg(feature = "failpoints")]
mod enabled {
    use std::collections::HashMap;
    use std::io::{self, Write};
    use std::sync::Mutex;
    use std::sync::OnceLock;

    struct Rule {
        first: u64,
        last: u64,
        error: fn() -> io::Error,
    }

    struct State {
        rules: HashMap<String, Vec<Rule>>,
        calls: HashMap<String, u64>,
    }

    fn state() -> &'static Mutex<State> {
        static STATE: OnceLock<Mutex<State>> = OnceLock::new();
        STATE.get_or_init(|| {
            let spec = std::env::var("WALKV_FAILPOINTS").unwrap_or_default();
            Mutex::new(State { rules: parse(&spec), calls: HashMap::new() })
        })
    }

    fn parse(spec: &str) -> HashMap<String, Vec<Rule>> {
        let mut rules: HashMap<String, Vec<Rule>> = HashMap::new();
        for rule in spec.split(';').filter(|r| !r.trim().is_empty()) {
            let parsed = rule.split_once('=').and_then(|(point, rest)| {
                let (calls, error) = rest.split_once(':')?;
                let (first, last) = match calls.split_once('-') {
                    Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                    None => (calls.parse().ok()?, calls.parse().ok()?),
                };
                let error: fn() -> io::Error = match error {
                    "nospace" => || io::Error::from_raw_os_error(28),
                    "toobig" => || io::Error::from_raw_os_error(27),
                    "io" => || io::Error::from_raw_os_error(5),
                    _ => return None,
                };
                Some((point.trim().to_string(), Rule { first, last, error }))
            });
            match parsed {
                Some((point, r)) => rules.entry(point).or_default().push(r),
                None => panic!("WALKV_FAILPOINTS: cannot parse rule {rule:?}"),
            }
        }
        rules
    }

    pub fn check(point: &str) -> Option<io::Error> {
        let mut state = state().lock().unwrap_or_else(|p| p.into_inner());
        let call = match state.calls.get_mut(point) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                state.calls.insert(point.to_string(), 1);
                1
            }
        };
        let rules = state.rules.get(point)?;
        let rule = rules.iter().find(|r| (r.first..=r.last).contains(&call))?;
        Some((rule.error)())
    }

    pub fn record_sync(len: u64, seq: u64) {
        append_line("WALKV_SYNC_TRACE", &format!("{len} {seq}\n"));
    }

    pub fn trace_fs(op: &str, path: &std::path::Path, to: Option<&std::path::Path>) {
        let line = match to {
            Some(to) => format!("{op} {} {}\n", path.display(), to.display()),
            None => format!("{op} {}\n", path.display()),
        };
        append_line("WALKV_FS_TRACE", &line);
    }

    /// Appends `line` to the file named by the environment variable `var`, if it is set.
    fn append_line(var: &str, line: &str) {
        let Ok(path) = std::env::var(var) else { return };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!("{var}: cannot append to {path}: {e}");
        }
    }
}
