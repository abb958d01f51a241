//! `walkv serve`'s options: each flag and variable read, checked against its range, and turned
//! into the server's [`Config`]. A value out of range is a usage error (exit 2) that names
//! where it came from (the flag, or the variable) and what it may be.

use super::{
    DEFAULT_BIND, DEFAULT_MAX_BATCH, DEFAULT_MAX_WRITE_QUEUE, DEFAULT_PORT, DEFAULT_SYNC_SECS,
    Parsed, UsageError, sourced,
};
use crate::auth::TokenSource;
use crate::compactor::Policy;
use crate::intake::Limits;
use crate::server::{Config, MaxMemory, SyncMode};
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn serve_config(
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
    data_dir: PathBuf,
) -> Result<Config, UsageError> {
    let (port_text, from) = sourced(parsed, "--port", env, "PORT", DEFAULT_PORT.to_string());
    let port = port_text.parse::<u16>().map_err(|_| {
        UsageError(format!("{from} must be a number from 0 to 65535, got {port_text:?}"))
    })?;
    let bind = parsed.option("--bind").unwrap_or(DEFAULT_BIND).to_string();
    let sync_interval = seconds(parsed, "--sync-interval", DEFAULT_SYNC_SECS)?;
    let (sync_text, from) = sourced(parsed, "--sync", env, "WALKV_SYNC", "interval".into());
    let sync = SyncMode::parse(&sync_text).ok_or_else(|| {
        UsageError(format!("{from} must be always, interval or never, got {sync_text:?}"))
    })?;
    let max_batch = match parsed.option("--max-batch") {
        None => DEFAULT_MAX_BATCH,
        Some(text) => {
            text.parse::<usize>().ok().filter(|n| (1..=65_536).contains(n)).ok_or_else(|| {
                UsageError(format!("--max-batch must be a number from 1 to 65536, got {text:?}"))
            })?
        }
    };
    let max_write_queue = match parsed.option("--max-write-queue") {
        None => DEFAULT_MAX_WRITE_QUEUE,
        Some(text) => {
            parse_size(text).filter(|n| (1 << 20..=64 << 30).contains(n)).ok_or_else(|| {
                UsageError(format!(
                    "--max-write-queue must be a byte count from 1M to 64G, optionally with K, \
                     M or G (powers of 1024), got {text:?}"
                ))
            })?
        }
    };
    let memory_text = parsed.option("--max-memory").map(str::to_string);
    let max_memory = match memory_text.or_else(|| env("WALKV_MAX_MEMORY")) {
        None => MaxMemory::Default,
        Some(text) => match parse_size(&text) {
            Some(0) => MaxMemory::Off,
            Some(bytes) if bytes >= 1 << 20 => MaxMemory::Bytes(bytes),
            _ => {
                return Err(UsageError(format!(
                    "--max-memory (or WALKV_MAX_MEMORY) must be 0 (no limit) or a byte count of \
                     at least 1M, optionally with K, M or G (powers of 1024), got {text:?}"
                )));
            }
        },
    };
    let defaults = Limits::default();
    let limits = Limits {
        max_connections: match parsed.option("--max-connections") {
            None => defaults.max_connections,
            Some(text) => {
                text.parse::<usize>().ok().filter(|n| (1..=1_000_000).contains(n)).ok_or_else(
                    || {
                        UsageError(format!(
                            "--max-connections must be a number from 1 to 1000000, got {text:?}"
                        ))
                    },
                )?
            }
        },
        idle_timeout: seconds(parsed, "--idle-timeout", defaults.idle_timeout.as_secs_f64())?,
        header_timeout: seconds(parsed, "--header-timeout", defaults.header_timeout.as_secs_f64())?,
        body_timeout: seconds(parsed, "--body-timeout", defaults.body_timeout.as_secs_f64())?,
        write_timeout: defaults.write_timeout,
        heartbeat: seconds(parsed, "--heartbeat", defaults.heartbeat.as_secs_f64())?,
        spin: match parsed.option("--spin-us") {
            None => defaults.spin,
            Some(text) => Duration::from_micros(
                text.parse::<u64>().ok().filter(|n| *n <= 1000).ok_or_else(|| {
                    UsageError(format!("--spin-us must be a number from 0 to 1000, got {text:?}"))
                })?,
            ),
        },
    };
    let follower_backlog = match parsed.option("--follower-backlog") {
        None => crate::feed::DEFAULT_CAPACITY as u64,
        Some(text) => {
            parse_size(text).filter(|n| (64 << 10..=4 << 30).contains(n)).ok_or_else(|| {
                UsageError(format!(
                    "--follower-backlog must be a byte count from 64K to 4G, optionally with K,                      M or G (powers of 1024), got {text:?}"
                ))
            })?
        }
    };
    let insecure_open = parsed.option("--insecure-open").is_some();
    let token = TokenSource::None; // filled in by the caller, which knows the client options too
    let defaults = Policy::default();
    let compaction = Policy {
        ratio: match parsed.option("--compact-ratio") {
            None => defaults.ratio,
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|r| *r == 0.0 || (1.0..=1000.0).contains(r))
                .ok_or_else(|| {
                    UsageError(format!(
                        "--compact-ratio must be 0 (off) or a number from 1 to 1000, got {text:?}"
                    ))
                })?,
        },
        min_size: match parsed.option("--compact-min-size") {
            None => defaults.min_size,
            Some(text) => parse_size(text).ok_or_else(|| {
                UsageError(format!(
                    "--compact-min-size must be a byte count, optionally with K, M or G \
                     (powers of 1024), got {text:?}"
                ))
            })?,
        },
        retain: 0,
    };
    let retain = match parsed.option("--changes-retain") {
        None => 0,
        Some(text) => parse_size(text).ok_or_else(|| {
            UsageError(format!(
                "--changes-retain must be a byte count (0: none), optionally with K, M or G \
                 (powers of 1024), got {text:?}"
            ))
        })?,
    };
    let compaction = Policy { retain, ..compaction };
    let log_requests = parsed.option("--log-requests").is_some()
        || match env("WALKV_LOG_REQUESTS").as_deref() {
            None | Some("" | "0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(UsageError(format!(
                    "WALKV_LOG_REQUESTS must be 1 (on) or 0 (off), got {other:?}"
                )));
            }
        };
    let (format_text, from) =
        sourced(parsed, "--log-format", env, "WALKV_LOG_FORMAT", "logfmt".into());
    let format = crate::request_log::Format::parse(&format_text)
        .ok_or_else(|| UsageError(format!("{from} must be logfmt or json, got {format_text:?}")))?;
    Ok(Config {
        bind,
        port,
        data_dir,
        sync,
        sync_interval,
        max_batch,
        max_write_queue,
        max_memory,
        token,
        insecure_open,
        limits,
        compaction,
        request_log: log_requests.then_some(format),
        log_format: format,
        follower_backlog: usize::try_from(follower_backlog).unwrap_or(usize::MAX),
    })
}

/// A byte count with an optional suffix `K`, `M` or `G` (powers of 1024): `64M`. `None` if it
/// is not one, or does not fit in 64 bits.
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&text[..text.len() - 1], 1 << 20),
        b'G' | b'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// A `--flag SECONDS` option, fractions allowed: from [`MIN_SECONDS`] for the flag (10 ms for
/// `--sync-interval`, 100 ms for the timeouts) to a day. Less would only burn a core (an fsync
/// loop, a timer storm) or drop every client; more is a typo.
fn seconds(parsed: &Parsed, flag: &str, default: f64) -> Result<Duration, UsageError> {
    let min = MIN_SECONDS.iter().find(|(f, _)| *f == flag).map_or(0.1, |&(_, m)| m);
    match parsed.option(flag) {
        None => Ok(Duration::from_secs_f64(default)),
        Some(text) => match text.parse::<f64>() {
            Ok(s) if (min..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
            _ => Err(UsageError(format!(
                "{flag} must be a number of seconds from {min} to 86400, got {text:?}"
            ))),
        },
    }
}

/// The least each `--flag SECONDS` takes.
pub const MIN_SECONDS: [(&str, f64); 4] = [
    ("--sync-interval", 0.01),
    ("--idle-timeout", 0.1),
    ("--header-timeout", 0.1),
    ("--body-timeout", 0.1),
];
