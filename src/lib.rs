//! walkv: a small, durable key-value server.
//!
//! Memory holds the data; a write-ahead log on disk makes every acknowledged write survive a
//! crash. Start reading at `docs/architecture.md`, which follows a SET from the socket to the
//! disk through the code; then [`wal`] (the log), [`store`] (the map and the order of operations
//! on a write), [`http`] (the API), [`server`] (the serving loop) and [`intake`] (sockets and
//! HTTP framing, kept away from the loop).
#![forbid(unsafe_code)]

/// Writes one line to standard error, prefixed with `walkv: ` (and, in the server, with the
/// time: see [`log_line`]). Unlike `eprintln!`, it ignores write errors: a closed or broken
/// stderr (a supervisor's log pipe that died) must never crash the server or turn a finished
/// command into a panic.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {{
        $crate::log_line(format_args!($($arg)*));
    }};
}

/// How [`log!`] writes: 0 bare (a client command's messages, for the person who just typed
/// it), 1 with the time first (the server, `--log-format logfmt`), 2 as JSON (the server,
/// `--log-format json`).
static LOG_STYLE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// From now on, every line [`log!`] writes carries the time, in RFC 3339 (UTC, milliseconds):
/// `2026-12-03T10:07:00.123Z walkv: ready on http://127.0.0.1:8080`, or with
/// [`request_log::Format::Json`] one JSON object per line,
/// `{"time":"2026-12-03T10:07:00.123Z","msg":"ready on http://127.0.0.1:8080"}`, so that a log
/// collector that reads JSON reads every line. Set by the server.
pub fn stamp_log_lines(format: request_log::Format) {
    let style = if format == request_log::Format::Json { 2 } else { 1 };
    LOG_STYLE.store(style, std::sync::atomic::Ordering::Relaxed);
}

/// Writes one line of [`log!`], in one write so that lines from threads do not interleave.
pub fn log_line(args: std::fmt::Arguments) {
    use std::io::Write as _;
    let mut line = String::with_capacity(96);
    let now = || request_log::rfc3339_utc(std::time::SystemTime::now());
    match LOG_STYLE.load(std::sync::atomic::Ordering::Relaxed) {
        0 => line.push_str("walkv: "),
        1 => {
            line.push_str(&now());
            line.push_str(" walkv: ");
        }
        _ => {
            line.push_str("{\"time\":\"");
            line.push_str(&now());
            line.push_str("\",\"msg\":");
            json::write_string_for_terminal(&mut line, &args.to_string());
            line.push_str("}\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            return;
        }
    }
    let _ = std::fmt::Write::write_fmt(&mut line, args);
    line.push('\n');
    let _ = std::io::stderr().write_all(line.as_bytes());
}

pub mod auth;
pub mod base64;
pub mod cli;
pub mod client;
pub mod commands;
pub mod compactor;
pub mod crc32c;
pub mod error;
pub mod expiry;
pub mod failpoint;
pub mod feed;
pub mod http;
pub mod intake;
pub mod json;
pub mod metrics;
pub mod notify;
pub mod prehashed;
pub mod request_log;
pub mod server;
pub mod spin;
pub mod store;
pub mod units;
pub mod wal;
pub mod writer;

#[doc(hidden)]
pub mod testutil;
