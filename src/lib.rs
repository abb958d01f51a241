//! walkv: a small, durable key-value server.
//!
//! Memory holds the data; a write-ahead log on disk makes every acknowledged write survive a
//! crash. Start reading at [`wal`] (the log format and recovery), then [`store`] (the map and the
//! order of operations on a write), then [`http`] (the API), [`server`] (the serving loop) and [`intake`] (sockets and HTTP
//! framing, kept away from the loop).
#![forbid(unsafe_code)]

/// Writes one line to standard error, prefixed with `walkv: `. Unlike `eprintln!`, it ignores
/// write errors: a closed or broken stderr (a supervisor's log pipe that died) must never crash
/// the server or turn a finished command into a panic.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "walkv: {}", format_args!($($arg)*));
    }};
}

pub mod auth;
pub mod base64;
pub mod cli;
pub mod client;
pub mod commands;
pub mod compactor;
pub mod crc32c;
pub mod error;
pub mod failpoint;
pub mod http;
pub mod intake;
pub mod json;
pub mod metrics;
pub mod notify;
pub mod request_log;
pub mod server;
pub mod store;
pub mod wal;

#[doc(hidden)]
pub mod testutil;
