//! The command line: parsing arguments into a [`Command`], help texts, and the exit codes.
//!
//! Hand-written because the dependency budget has no room for an argument parser. The rules are
//! the usual ones: `--flag VALUE` or `--flag=VALUE`, options anywhere among the positional
//! arguments, `--` ends the options (so `walkv get -- -odd-key` works). A flag beats its
//! environment variable, which beats the default. Keys and values are taken as raw bytes, so
//! they need not be UTF-8.

use crate::auth::TokenSource;
use crate::compactor::Policy;
use crate::intake::Limits;
use crate::server::{Config, SyncMode};
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Exit codes: the one place they are decided. Scripts rely on these numbers.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// `get`: the key has no value.
    pub const NOT_FOUND: u8 = 1;
    /// The command line is wrong.
    pub const USAGE: u8 = 2;
    /// Client: no server answered at the address.
    pub const UNAVAILABLE: u8 = 3;
    /// Client: the server refused the request (a 4xx other than 404).
    pub const REJECTED: u8 = 4;
    /// Client: the server failed (5xx) or answered something unreadable.
    pub const SERVER_ERROR: u8 = 5;
    /// `check`: the log ends in a tail the server trims by itself at startup (an unfinished
    /// append, or bytes a power cut may have lost); no repair is needed.
    pub const TORN: u8 = 6;
    /// `check` finds, or `serve` refuses to start on, a corrupt log (run `walkv repair`), or a
    /// file that is not a walkv log (the message says which).
    pub const CORRUPT: u8 = 7;
    /// An I/O error, a locked data directory, or an address that cannot be listened on.
    pub const FAILED: u8 = 8;
    /// `serve`: the listener failed while serving; the log was synced; restart the server.
    pub const LISTENER_FAILED: u8 = 9;
    /// `serve`: an fsync (or a write that could not be undone) failed, so the log stopped taking
    /// writes and the server stopped; restart it, and it replays what is really on disk.
    pub const LOG_FAILED: u8 = 10;
    /// `serve`: the accept or sync thread panicked (a bug); the log was synced; restart the
    /// server.
    pub const PANICKED: u8 = 11;
    /// The log was written by a newer walkv: upgrade walkv (no repair can help).
    pub const NEWER_FORMAT: u8 = 12;

    /// The exit code for a command that ended in `error`.
    pub fn for_error(error: &crate::error::Error) -> u8 {
        match error {
            crate::error::Error::Corrupt { .. }
            | crate::error::Error::NotALog { .. }
            | crate::error::Error::Damaged { .. } => CORRUPT,
            crate::error::Error::NewerFormat { .. } => NEWER_FORMAT,
            _ => FAILED,
        }
    }
}

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_BIND: &str = "127.0.0.1";
pub const DEFAULT_DATA_DIR: &str = "./walkv-data";
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_SYNC_SECS: f64 = 5.0;
pub const DEFAULT_MAX_BATCH: usize = 128;

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Serve(Config),
    Get {
        addr: String,
        token: TokenSource,
        key: Vec<u8>,
    },
    /// `value: None` means "read it from standard input" (`-`).
    Set {
        addr: String,
        token: TokenSource,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    },
    Delete {
        addr: String,
        token: TokenSource,
        key: Vec<u8>,
    },
    /// `walkv compact`: ask the server to compact its log, and wait for the result.
    Compact {
        addr: String,
        token: TokenSource,
    },
    Check {
        data_dir: PathBuf,
    },
    Repair {
        data_dir: PathBuf,
        /// `None`: print the plan and ask for a choice (exit 2).
        mode: Option<RepairMode>,
    },
    /// Print this help text and exit 0.
    Help(&'static str),
    Version,
}

/// What `walkv repair` was asked to do after printing its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairMode {
    /// `--dry-run`: only the plan.
    DryRun,
    /// `--skip-damaged`: keep every record that checks out, drop only the damaged bytes.
    SkipDamaged,
    /// `--cut`: keep the records before the first damage.
    Cut,
}

/// A command line that cannot be understood; exits with [`exit::USAGE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (see `walkv --help`)", self.0)
    }
}

/// Arguments split into options and positionals.
struct Parsed {
    options: Vec<(String, String)>,
    positionals: Vec<OsString>,
    help: bool,
}

impl Parsed {
    fn option(&self, name: &str) -> Option<&str> {
        self.options.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Parses the arguments after the program name. `env` looks up environment variables (injected
/// so tests can check that a flag beats its variable, which beats the default).
pub fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, UsageError> {
    let first = args.first().and_then(|a| a.to_str());
    let (name, rest) = match first {
        Some("serve" | "get" | "set" | "delete" | "compact" | "check" | "repair") => {
            (first.unwrap_or_default().to_string(), args[1..].to_vec())
        }
        Some("help" | "--help" | "-h") => return Ok(Command::Help(help_for(args.get(1)))),
        Some("--version" | "-V") => return Ok(Command::Version),
        _ => ("serve".to_string(), args), // plain `walkv [--port N ...]` serves
    };
    // Which options each command knows: Some(true) takes a value, Some(false) is a switch.
    let takes = |flag: &str| match (name.as_str(), flag) {
        ("serve", "--insecure-open" | "--log-requests") => Some(false),
        ("repair", "--dry-run" | "--skip-damaged" | "--cut") => Some(false),
        ("serve", "--port" | "--bind" | "--data-dir" | "--sync" | "--sync-interval")
        | ("serve", "--max-batch" | "--auth-token-file" | "--max-connections")
        | ("serve", "--idle-timeout" | "--header-timeout" | "--body-timeout")
        | ("serve", "--compact-ratio" | "--compact-min-size" | "--log-format")
        | ("check" | "repair", "--data-dir")
        | ("get" | "set" | "delete" | "compact", "--addr" | "--auth-token-file") => Some(true),
        _ => None,
    };
    let parsed = split_options(rest, &takes)?;
    if parsed.help {
        return Ok(Command::Help(help_for(Some(&OsString::from(&name)))));
    }
    let pos = &parsed.positionals;
    let want = |n: usize, usage: &str| {
        if pos.len() == n {
            Ok(())
        } else {
            Err(UsageError(format!("expected {usage}, got {} argument(s)", pos.len())))
        }
    };
    let addr = || setting(parsed.option("--addr"), env("WALKV_ADDR"), DEFAULT_ADDR.to_string());
    let token = || match (parsed.option("--auth-token-file"), env("WALKV_AUTH_TOKEN")) {
        (Some(path), _) => TokenSource::File(PathBuf::from(path)),
        (None, Some(token)) => TokenSource::Env(token),
        (None, None) => TokenSource::None,
    };
    let data_dir = || {
        PathBuf::from(setting(
            parsed.option("--data-dir"),
            env("WALKV_DATA_DIR"),
            DEFAULT_DATA_DIR.into(),
        ))
    };
    match name.as_str() {
        "serve" => {
            want(0, "no positional arguments for serve")?;
            let mut config = serve_config(&parsed, env, data_dir())?;
            config.token = token();
            Ok(Command::Serve(config))
        }
        "get" => {
            want(1, "`walkv get KEY`")?;
            Ok(Command::Get { addr: addr(), token: token(), key: key_bytes(&pos[0])? })
        }
        "delete" => {
            want(1, "`walkv delete KEY`")?;
            Ok(Command::Delete { addr: addr(), token: token(), key: key_bytes(&pos[0])? })
        }
        "set" => {
            want(2, "`walkv set KEY VALUE` (VALUE `-` reads standard input)")?;
            let value = (pos[1] != "-").then(|| pos[1].clone().into_encoded_bytes());
            Ok(Command::Set { addr: addr(), token: token(), key: key_bytes(&pos[0])?, value })
        }
        "compact" => {
            want(0, "no positional arguments for compact")?;
            Ok(Command::Compact { addr: addr(), token: token() })
        }
        "check" => {
            want(0, "no positional arguments for check")?;
            Ok(Command::Check { data_dir: data_dir() })
        }
        _ => {
            want(0, "no positional arguments for repair")?;
            let modes = [
                ("--dry-run", RepairMode::DryRun),
                ("--skip-damaged", RepairMode::SkipDamaged),
                ("--cut", RepairMode::Cut),
            ];
            let chosen: Vec<RepairMode> = modes
                .iter()
                .filter(|(flag, _)| parsed.option(flag).is_some())
                .map(|&(_, mode)| mode)
                .collect();
            if chosen.len() > 1 {
                return Err(UsageError(
                    "choose one of --dry-run, --skip-damaged and --cut".to_string(),
                ));
            }
            Ok(Command::Repair { data_dir: data_dir(), mode: chosen.first().copied() })
        }
    }
}

/// Flag, else environment variable, else default.
fn setting(flag: Option<&str>, env: Option<String>, default: String) -> String {
    flag.map(str::to_string).or(env).unwrap_or(default)
}

fn key_bytes(arg: &OsString) -> Result<Vec<u8>, UsageError> {
    let key = arg.clone().into_encoded_bytes();
    if key.is_empty() {
        return Err(UsageError("KEY must not be empty".into()));
    }
    Ok(key)
}

fn serve_config(
    parsed: &Parsed,
    env: &dyn Fn(&str) -> Option<String>,
    data_dir: PathBuf,
) -> Result<Config, UsageError> {
    let port_text = setting(parsed.option("--port"), env("PORT"), DEFAULT_PORT.to_string());
    let port = port_text.parse::<u16>().map_err(|_| {
        UsageError(format!("port must be a number from 0 to 65535, got {port_text:?}"))
    })?;
    let bind = parsed.option("--bind").unwrap_or(DEFAULT_BIND).to_string();
    let sync_interval = seconds(parsed, "--sync-interval", DEFAULT_SYNC_SECS)?;
    let sync_text = setting(parsed.option("--sync"), env("WALKV_SYNC"), "interval".into());
    let sync = SyncMode::parse(&sync_text).ok_or_else(|| {
        UsageError(format!("--sync must be always, interval or never, got {sync_text:?}"))
    })?;
    let max_batch = match parsed.option("--max-batch") {
        None => DEFAULT_MAX_BATCH,
        Some(text) => {
            text.parse::<usize>().ok().filter(|n| (1..=65_536).contains(n)).ok_or_else(|| {
                UsageError(format!("--max-batch must be a number from 1 to 65536, got {text:?}"))
            })?
        }
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
    };
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
    let format_text =
        setting(parsed.option("--log-format"), env("WALKV_LOG_FORMAT"), "logfmt".into());
    let format = crate::request_log::Format::parse(&format_text).ok_or_else(|| {
        UsageError(format!("--log-format must be logfmt or json, got {format_text:?}"))
    })?;
    Ok(Config {
        bind,
        port,
        data_dir,
        sync,
        sync_interval,
        max_batch,
        token,
        insecure_open,
        limits,
        compaction,
        request_log: log_requests.then_some(format),
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

/// A `--flag SECONDS` option: above 0, at most a day, fractions allowed.
fn seconds(parsed: &Parsed, flag: &str, default: f64) -> Result<Duration, UsageError> {
    match parsed.option(flag) {
        None => Ok(Duration::from_secs_f64(default)),
        Some(text) => match text.parse::<f64>() {
            Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
            _ => Err(UsageError(format!(
                "{flag} must be a number of seconds above 0 and at most 86400, got {text:?}"
            ))),
        },
    }
}

/// Separates `--flag VALUE` / `--flag=VALUE` options from positional arguments.
fn split_options(
    args: Vec<OsString>,
    takes: &dyn Fn(&str) -> Option<bool>,
) -> Result<Parsed, UsageError> {
    let mut parsed = Parsed { options: Vec::new(), positionals: Vec::new(), help: false };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str().filter(|t| t.starts_with('-') && *t != "-") else {
            parsed.positionals.push(arg);
            continue;
        };
        match text {
            "--" => {
                parsed.positionals.extend(args.by_ref());
                break;
            }
            "--help" | "-h" => parsed.help = true,
            _ => {
                let (flag, inline) = match text.split_once('=') {
                    Some((f, v)) => (f, Some(v.to_string())),
                    None => (text, None),
                };
                let value = match (takes(flag), inline) {
                    (None, _) => return Err(UsageError(format!("unknown option {flag}"))),
                    (Some(false), Some(_)) => {
                        return Err(UsageError(format!("{flag} takes no value")));
                    }
                    (Some(false), None) => String::new(),
                    (Some(true), Some(v)) => v,
                    (Some(true), None) => args
                        .next()
                        .and_then(|v| v.into_string().ok())
                        .ok_or_else(|| UsageError(format!("{flag} needs a value")))?,
                };
                parsed.options.push((flag.to_string(), value));
            }
        }
    }
    Ok(parsed)
}

fn help_for(topic: Option<&OsString>) -> &'static str {
    match topic.and_then(|t| t.to_str()) {
        Some("serve") => HELP_SERVE,
        Some("get" | "set" | "delete" | "compact") => HELP_CLIENT,
        Some("check" | "repair") => HELP_CHECK,
        _ => HELP,
    }
}

pub const HELP: &str = "\
walkv: a small, durable key-value server with a write-ahead log

USAGE:
    walkv [serve] [OPTIONS]          run the server (the default command)
    walkv get KEY [--addr ADDR]      print KEY's value bytes to standard output
    walkv set KEY VALUE [--addr ADDR]   set KEY; VALUE `-` reads standard input
    walkv delete KEY [--addr ADDR]   delete KEY (succeeds if it is already gone)
    walkv compact [--addr ADDR]      compact the server's log now, and wait until it is done
    walkv check [--data-dir DIR]     verify the log (safe on a running server's directory)
    walkv repair [--dry-run | --skip-damaged | --cut] [--data-dir DIR]
                                     say what a repair would keep, then do the one chosen
    walkv help COMMAND               more about one command

EXIT CODES:
    0 ok   1 key not found   2 usage   3 cannot connect   4 rejected by the server (4xx)
    5 server error (5xx)   6 log has a tail the server trims at startup
    7 log is corrupt, or not a walkv log   8 I/O error or locked
    9 the listener failed while serving   10 an fsync failed: the server stopped, restart it
    11 a server thread panicked (a bug): the server stopped, restart it
    12 the log was written by a newer walkv: upgrade walkv
";

pub const HELP_SERVE: &str = "\
walkv serve: run the server

USAGE:
    walkv [serve] [--port N] [--bind ADDR] [--data-dir DIR] [--sync MODE]
                  [--sync-interval SECONDS] [--max-batch N]
                  [--auth-token-file PATH] [--insecure-open] [--max-connections N]
                  [--idle-timeout S] [--header-timeout S] [--body-timeout S]
                  [--compact-ratio R] [--compact-min-size SIZE]
                  [--log-requests] [--log-format logfmt|json]

OPTIONS:
    --port N                  TCP port (env PORT; default 8080; 0 picks a free port)
    --bind ADDR               address to listen on (default 127.0.0.1). An address that is
                              not loopback needs a token, or --insecure-open
    --auth-token-file PATH    every request must carry `Authorization: Bearer <token>`, the
                              first line of PATH (env WALKV_AUTH_TOKEN gives the token itself)
    --insecure-open           accept serving a non-loopback address without a token
    --data-dir DIR            where the log lives (env WALKV_DATA_DIR; default ./walkv-data;
                              created if missing; locked while the server runs)
    --sync MODE               when the log is fsynced (env WALKV_SYNC; default interval):
                              always    before any write is acknowledged (group commit)
                              interval  every --sync-interval seconds
                              never     only at shutdown; the OS writes back when it likes
                              In every mode an acknowledged write survives a killed process.
    --sync-interval SECONDS   the interval for --sync interval (default 5): a power cut loses
                              at most the writes acknowledged since the last sync
    --max-batch N             most requests answered per batch, and so per fsync in always
                              mode (default 128; 1 turns group commit off)
    --max-connections N       open connections at most (default 1024); one more gets 503
    --idle-timeout SECONDS    close a connection idle between requests (default 60)
    --header-timeout SECONDS  a request header must arrive within this (default 10; 408)
    --body-timeout SECONDS    longest pause inside a request body (default 30; 408)
    --compact-ratio R         compact the log by itself when its files hold more than R times
                              the live data (default 2; 0 turns automatic compaction off)
    --compact-min-size SIZE   ... and at least SIZE bytes (default 64M; suffixes K, M, G)
    --log-requests            one line per request on stderr (env WALKV_LOG_REQUESTS=1):
                              time id method path status in out dur_ms conn
    --log-format FORMAT       logfmt (default) or json, one object per line
                              (env WALKV_LOG_FORMAT)

Any write can ask for its own fsync with ?sync (PUT /v1/k?sync); POST /sync waits until
everything written before it is synced; POST /compact compacts the log now and answers when
done; GET /status reports last_seq, synced_seq, disk_bytes, live_bytes and compaction.
GET /livez and /readyz are the probes (no token needed); GET /metrics is for Prometheus.

SIGINT or SIGTERM: stop, flush and fsync the log, exit 0 (a second signal exits at once, 130).
Exit 2: bad options, an unreadable token, or an open address without a token.
Exit 7: the log is corrupt (run `walkv check`, then `walkv repair --dry-run`), or not a
walkv log. Exit 8: cannot start. Exit 12: the log was written by a newer walkv.
Exit 10: an fsync failed; the log stopped taking writes (503) and the server stopped.
";

pub const HELP_CLIENT: &str = "\
walkv get | set | delete: talk to a running server

USAGE:
    walkv get KEY [--addr ADDR]          print the value's exact bytes (no newline added)
    walkv set KEY VALUE [--addr ADDR]    VALUE `-` reads the value from standard input
    walkv delete KEY [--addr ADDR]
    walkv compact [--addr ADDR]          compact the server's log now; waits until done

OPTIONS:
    --addr ADDR               server address (env WALKV_ADDR; default 127.0.0.1:8080)
    --auth-token-file PATH    send this token (env WALKV_AUTH_TOKEN gives the token itself)

Use `--` before a KEY that starts with `-`. Keys and values may be any bytes.
EXIT CODES: 0 ok, 1 not found (get), 2 usage, 3 cannot connect, 4 rejected, 5 server error.
";

pub const HELP_CHECK: &str = "\
walkv check | repair: inspect and fix the log

USAGE:
    walkv check [--data-dir DIR]     read the log and report; changes nothing
    walkv repair [--dry-run | --skip-damaged | --cut] [--data-dir DIR]

OPTIONS:
    --data-dir DIR    the server's data directory (env WALKV_DATA_DIR; default ./walkv-data)
    --dry-run         print what each repair would keep and drop, change nothing
    --skip-damaged    keep every record that checks out; drop only the damaged bytes
    --cut             keep the records before the first damage; drop everything after it

check prints its verdict on stdout and exits 0 for a clean log, 6 for a tail the server trims
by itself at startup (an unfinished append, or bytes a power cut may have lost), 7 for
corruption (damage to data that had been on disk: the server refuses to start) or a file that
is not a walkv log, 12 for a log written by a newer walkv. On a running server's directory it
checks what is complete and never judges the record being written.

repair first prints its plan: the records before and after the damage, the sequence numbers
that would be missing, the keys the later records touch. Without a choice it stops there
(exit 2). What it drops is kept in DIR/walkv.wal.skipped-TIME or DIR/walkv.wal.cut-OFFSET-TIME;
sequence numbers are never reused. It takes the data directory's lock: stop the server first.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// A flag beats its environment variable, which beats the default.
    #[test]
    fn flag_beats_env_beats_default() {
        let env = |name: &str| match name {
            "PORT" => Some("9000".to_string()),
            "WALKV_DATA_DIR" => Some("/env/dir".to_string()),
            "WALKV_ADDR" => Some("10.0.0.1:1".to_string()),
            _ => None,
        };
        let Command::Serve(c) = parse(args(&[]), &env).unwrap() else { panic!() };
        assert_eq!((c.port, c.data_dir), (9000, PathBuf::from("/env/dir")));
        let Command::Serve(c) =
            parse(args(&["serve", "--port=1", "--data-dir", "d"]), &env).unwrap()
        else {
            panic!()
        };
        assert_eq!((c.port, c.data_dir), (1, PathBuf::from("d")));
        let Command::Serve(c) = parse(args(&[]), &no_env).unwrap() else { panic!() };
        assert_eq!(c.port, 8080);
        assert_eq!(c.bind, "127.0.0.1");
        assert_eq!(c.data_dir, PathBuf::from("./walkv-data"));
        assert_eq!(c.sync_interval, Duration::from_secs(5));
        assert_eq!((c.sync, c.max_batch), (SyncMode::Interval, DEFAULT_MAX_BATCH));
        let env_sync = |name: &str| (name == "WALKV_SYNC").then(|| "never".to_string());
        let Command::Serve(c) = parse(args(&[]), &env_sync).unwrap() else { panic!() };
        assert_eq!(c.sync, SyncMode::Never);
        let Command::Serve(c) =
            parse(args(&["--sync=always", "--max-batch", "1"]), &env_sync).unwrap()
        else {
            panic!()
        };
        assert_eq!((c.sync, c.max_batch), (SyncMode::Always, 1));
        let get = parse(args(&["get", "k"]), &env).unwrap();
        assert_eq!(
            get,
            Command::Get {
                addr: "10.0.0.1:1".into(),
                token: TokenSource::None,
                key: b"k".to_vec()
            }
        );
        let get = parse(args(&["get", "--addr", "h:2", "k"]), &env).unwrap();
        let Command::Get { token, .. } = parse(args(&["get", "k"]), &|n: &str| {
            (n == "WALKV_AUTH_TOKEN").then(|| "from-env".to_string())
        })
        .unwrap() else {
            panic!()
        };
        assert_eq!(token, TokenSource::Env("from-env".into()));
        assert_eq!(
            get,
            Command::Get { addr: "h:2".into(), token: TokenSource::None, key: b"k".to_vec() }
        );
    }

    /// `--log-requests` and `--log-format`, and their environment variables.
    #[test]
    fn request_log_switches() {
        use crate::request_log::Format;
        let log = |line: &[&str], env: &dyn Fn(&str) -> Option<String>| match parse(args(line), env)
        {
            Ok(Command::Serve(c)) => Ok(c.request_log),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(log(&[], &no_env), Ok(None), "off by default");
        assert_eq!(log(&["--log-requests"], &no_env), Ok(Some(Format::Logfmt)));
        assert_eq!(log(&["--log-requests", "--log-format=json"], &no_env), Ok(Some(Format::Json)));
        let on = |n: &str| (n == "WALKV_LOG_REQUESTS").then(|| "1".to_string());
        assert_eq!(log(&[], &on), Ok(Some(Format::Logfmt)));
        let json = |n: &str| match n {
            "WALKV_LOG_REQUESTS" => Some("1".to_string()),
            "WALKV_LOG_FORMAT" => Some("json".to_string()),
            _ => None,
        };
        assert_eq!(log(&[], &json), Ok(Some(Format::Json)));
        assert_eq!(log(&["--log-format", "logfmt"], &json), Ok(Some(Format::Logfmt)));
        let off = |n: &str| (n == "WALKV_LOG_REQUESTS").then(|| "0".to_string());
        assert_eq!(log(&[], &off), Ok(None));
        let yes = |n: &str| (n == "WALKV_LOG_REQUESTS").then(|| "yes".to_string());
        assert!(log(&[], &yes).unwrap_err().contains("WALKV_LOG_REQUESTS must be 1"));
        let bad = log(&["--log-requests", "--log-format", "xml"], &no_env).unwrap_err();
        assert!(bad.contains("--log-format must be logfmt or json"), "{bad}");
        assert!(log(&["--log-requests=1"], &no_env).unwrap_err().contains("takes no value"));
    }

    /// Client commands: `-` means stdin, `--` allows keys that look like flags.
    #[test]
    fn client_commands() {
        let set = parse(args(&["set", "k", "-"]), &no_env).unwrap();
        assert_eq!(
            set,
            Command::Set {
                addr: DEFAULT_ADDR.into(),
                token: TokenSource::None,
                key: b"k".to_vec(),
                value: None
            }
        );
        let del = parse(args(&["delete", "--", "-k"]), &no_env).unwrap();
        assert_eq!(
            del,
            Command::Delete {
                addr: DEFAULT_ADDR.into(),
                token: TokenSource::None,
                key: b"-k".to_vec()
            }
        );
        let set = parse(args(&["set", "k", "v=1 2", "--addr=x:1"]), &no_env).unwrap();
        assert_eq!(
            set,
            Command::Set {
                addr: "x:1".into(),
                token: TokenSource::None,
                key: b"k".to_vec(),
                value: Some(b"v=1 2".to_vec())
            }
        );
    }

    /// Wrong command lines are usage errors that say what is wrong.
    #[test]
    fn usage_errors() {
        for (line, says) in [
            (&["get"][..], "expected `walkv get KEY`"),
            (&["set", "k"], "expected `walkv set KEY VALUE`"),
            (&["--port", "x"], "port must be a number"),
            (&["--port", "70000"], "port must be a number"),
            (&["--sync-interval", "0"], "--sync-interval"),
            (&["--sync", "sometimes"], "--sync must be always, interval or never"),
            (&["--max-batch", "0"], "--max-batch must be"),
            (&["--insecure-open=yes"], "--insecure-open takes no value"),
            (&["get", "k", "--insecure-open"], "unknown option --insecure-open"),
            (&["--frobnicate"], "unknown option --frobnicate"),
            (&["get", "k", "--port", "1"], "unknown option --port"),
            (&["--data-dir"], "--data-dir needs a value"),
            (&["get", ""], "KEY must not be empty"),
            (&["repair", "--cut", "--skip-damaged"], "choose one of --dry-run"),
            (&["check", "--cut"], "unknown option --cut"),
        ] {
            let err = parse(args(line), &no_env).unwrap_err();
            assert!(err.0.contains(says), "{line:?}: {err}");
        }
    }

    /// `repair` takes at most one of its three choices; none means "print the plan".
    #[test]
    fn repair_choices() {
        let mode = |line: &[&str]| match parse(args(line), &no_env).unwrap() {
            Command::Repair { mode, .. } => mode,
            other => panic!("{other:?}"),
        };
        assert_eq!(mode(&["repair"]), None);
        assert_eq!(mode(&["repair", "--dry-run"]), Some(RepairMode::DryRun));
        assert_eq!(mode(&["repair", "--skip-damaged"]), Some(RepairMode::SkipDamaged));
        assert_eq!(mode(&["repair", "--data-dir", "d", "--cut"]), Some(RepairMode::Cut));
    }

    /// `--help` works on every command.
    #[test]
    fn help_everywhere() {
        assert_eq!(parse(args(&["--help"]), &no_env).unwrap(), Command::Help(HELP));
        assert_eq!(parse(args(&["serve", "--help"]), &no_env).unwrap(), Command::Help(HELP_SERVE));
        assert_eq!(parse(args(&["get", "-h"]), &no_env).unwrap(), Command::Help(HELP_CLIENT));
        assert_eq!(parse(args(&["repair", "--help"]), &no_env).unwrap(), Command::Help(HELP_CHECK));
        assert_eq!(parse(args(&["help", "set"]), &no_env).unwrap(), Command::Help(HELP_CLIENT));
    }
}
