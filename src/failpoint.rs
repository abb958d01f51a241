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
//!   the append fails), `fsync`, or a step of compaction (`segment_create`, `segment_commit`, `segment_created`,
//!   `compact_read`, `snapshot_write`, `snapshot_fsync`, `snapshot_commit_fsync`,
//!   `snapshot_rename`, `snapshot_dir_fsync`, `compact_remove`, `compact_rename`; see [`crate::wal::compact`]);
//!   CALLS is `N` (the N-th call, counting from 1) or `N-M`; ERROR is `nospace` (ENOSPC),
//!   `toobig` (EFBIG), `io` (EIO), or `crash`: the process exits at once with code 86, as if
//!   killed there (no buffer is flushed, no destructor runs). Example:
//!   `write=3:nospace;fsync=5:io;snapshot_rename=1:crash`.
//! - `WALKV_SYNC_TRACE`: a file to which every successful log sync appends a line
//!   `<synced length in bytes> <synced seq>`, written after the fsync returned and before any
//!   answer that depends on it. Power-loss tests use it to know what was really synced.
//! - `WALKV_FS_TRACE`: a file to which every change walkv makes to a directory's entries, and
//!   every directory fsync, appends a line once it has returned: `mkdir PATH`, `create PATH`,
//!   `rename FROM TO`, `remove PATH`, `fsyncdir PATH`. By the POSIX rule an entry is only sure to
//!   survive a power cut once its directory has been fsynced after it; tests check that every
//!   entry an acknowledged write depends on was (`tests/new_dirs.rs`). Every fsync of a file adds
//!   `fsync PATH LENGTH` (the file's length when the fsync returned), so a test can rebuild
//!   what a power cut would leave (see `tests/support/power.rs`).
//! - `WALKV_FS_GRAVEYARD`: with the trace, a directory where every file walkv removes is first
//!   hard-linked (`remove PATH GRAVE` in the trace), so that a simulated power cut can bring
//!   back a removal whose directory was not fsynced afterwards.
//! - `WALKV_REPLAY_DELAY_MS`: the replay thread waits this long before reading the log, so that
//!   a test can see what the server answers while it replays (`tests/api.rs`).
//! - `WALKV_FSYNC_DELAY_MS`: every fsync of the log while serving first sleeps this long, as a
//!   slow disk would, so that a test can act while one runs (a SIGTERM during the drain, in
//!   `tests/api.rs`) and see it in `walkv_wal_fsync_duration_seconds` (`tests/metrics.rs`).
//! - `WALKV_WRITE_DELAY_MS`: every write of records to the log first sleeps this long, as a
//!   slow or frozen disk holds up `write(2)` (`tests/stall.rs`).
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

/// Records an fsync of the file at `path`, `len` bytes long, in the `WALKV_FS_TRACE` file.
#[cfg(feature = "failpoints")]
pub fn trace_fsync(path: &std::path::Path, len: u64) {
    enabled::trace_fsync(path, len)
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn trace_fsync(_path: &std::path::Path, _len: u64) {}

/// Before `path` is removed: hard-links it into `WALKV_FS_GRAVEYARD` if that is set, and
/// returns the link's path, to be named in the trace's `remove` line.
#[cfg(feature = "failpoints")]
pub fn bury(path: &std::path::Path) -> Option<std::path::PathBuf> {
    enabled::bury(path)
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn bury(_path: &std::path::Path) -> Option<std::path::PathBuf> {
    None
}

/// How long the replay thread waits before it reads the log (`WALKV_REPLAY_DELAY_MS`), so that
/// a test can look at the server while it replays.
#[cfg(feature = "failpoints")]
pub fn replay_delay() -> Option<std::time::Duration> {
    let ms = std::env::var("WALKV_REPLAY_DELAY_MS").ok()?.parse().ok()?;
    Some(std::time::Duration::from_millis(ms))
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn replay_delay() -> Option<std::time::Duration> {
    None
}

/// Sleeps `WALKV_FSYNC_DELAY_MS` (read once) before an fsync of the log, as a slow disk.
#[cfg(feature = "failpoints")]
pub fn slow_fsync() {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    let delay = DELAY.get_or_init(|| {
        let ms = std::env::var("WALKV_FSYNC_DELAY_MS").ok()?.parse().ok()?;
        Some(std::time::Duration::from_millis(ms))
    });
    if let Some(delay) = delay {
        std::thread::sleep(*delay);
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn slow_fsync() {}

/// Sleeps `WALKV_WRITE_DELAY_MS` (read once) before each write of records to the log, as a slow
/// or frozen disk would hold up `write(2)`, so that a test can see what waits for it and what
/// does not.
#[cfg(feature = "failpoints")]
pub fn slow_write() {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    let delay = DELAY.get_or_init(|| {
        let ms = std::env::var("WALKV_WRITE_DELAY_MS").ok()?.parse().ok()?;
        Some(std::time::Duration::from_millis(ms))
    });
    if let Some(delay) = delay {
        std::thread::sleep(*delay);
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn slow_write() {}

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
        /// `None`: crash.
        error: Option<fn() -> io::Error>,
    }

    /// The exit code of a `crash` failpoint.
    const CRASH_EXIT: i32 = 86;

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
                let error: Option<fn() -> io::Error> = match error {
                    "nospace" => Some(|| io::Error::from_raw_os_error(28)),
                    "toobig" => Some(|| io::Error::from_raw_os_error(27)),
                    "io" => Some(|| io::Error::from_raw_os_error(5)),
                    "crash" => None,
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
        match rule.error {
            Some(error) => Some(error()),
            None => std::process::exit(CRASH_EXIT),
        }
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

    pub fn trace_fsync(path: &std::path::Path, len: u64) {
        append_line("WALKV_FS_TRACE", &format!("fsync {} {len}\n", path.display()));
    }

    pub fn bury(path: &std::path::Path) -> Option<std::path::PathBuf> {
        static BURIED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::var("WALKV_FS_GRAVEYARD").ok()?;
        let n = BURIED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = path.file_name()?.to_string_lossy().into_owned();
        let grave = std::path::Path::new(&dir).join(format!("{}-{n}-{name}", std::process::id()));
        std::fs::hard_link(path, &grave).ok()?;
        Some(grave)
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
