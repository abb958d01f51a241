//! The command line: parsing arguments into a [`Command`], help texts, and the exit codes.
//!
//! Hand-written because the dependency budget has no room for an argument parser. The rules are
//! the usual ones: `--flag VALUE` or `--flag=VALUE`, options anywhere among the positional
//! arguments, `--` ends the options (so `walkv get -- -odd-key` works). A flag beats its
//! environment variable, which beats the default. Keys and values are taken as raw bytes, so
//! they need not be UTF-8.

use crate::auth::TokenSource;
use crate::server::Config;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

mod help;
mod serve;
pub use help::{HELP, HELP_CHECK, HELP_CLIENT, HELP_DATA, HELP_SERVE};
use serve::serve_config;
pub use serve::{MIN_SECONDS, parse_size};

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
    /// `serve`: the accept thread or a thread of the log panicked (a bug); the log was synced
    /// if it could be; restart the server.
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
/// `--max-write-queue`: bytes of records queued for the log before writes wait.
pub const DEFAULT_MAX_WRITE_QUEUE: u64 = 64 << 20;

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Serve(Config),
    /// `etag`: print the value's ETag on standard error; `wait`: after the key's next write.
    Get {
        addr: String,
        token: TokenSource,
        key: Vec<u8>,
        etag: bool,
        wait: bool,
    },
    /// `walkv watch`: follow the change feed, resuming by itself.
    Watch {
        addr: String,
        token: TokenSource,
        prefix: Vec<u8>,
        /// `None`: from the seq visible when it starts.
        from: Option<u64>,
        format: ExportFormat,
    },
    /// `value: None` means "read it from standard input" (`-`); `ttl`: `--ttl SECONDS`.
    Set {
        addr: String,
        token: TokenSource,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        condition: Option<Condition>,
        ttl: Option<String>,
    },
    /// `walkv incr KEY [N]`.
    Incr {
        addr: String,
        token: TokenSource,
        key: Vec<u8>,
        delta: i64,
    },
    /// `walkv txn FILE|-`: `file: None` reads standard input.
    Txn {
        addr: String,
        token: TokenSource,
        file: Option<PathBuf>,
    },
    Delete {
        addr: String,
        token: TokenSource,
        key: Vec<u8>,
        condition: Option<Condition>,
    },
    /// `walkv ls [PREFIX]`: every key starting with PREFIX; `null`: NUL-separated, exact bytes.
    List {
        addr: String,
        token: TokenSource,
        prefix: Vec<u8>,
        null: bool,
    },
    /// `walkv dump`: every record of the log's files, one per line.
    Dump {
        data_dir: PathBuf,
        from_seq: u64,
        limit: Option<u64>,
    },
    /// `walkv export`: the data as of one moment, on standard output.
    Export {
        data_dir: PathBuf,
        format: ExportFormat,
    },
    /// `walkv import [FILE]`: `file: None` (or `-`) reads standard input.
    Import {
        addr: String,
        token: TokenSource,
        file: Option<PathBuf>,
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

/// The condition of a client's write (`--if-match SEQ`, `--if-absent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Only if the key's current ETag is this seq.
    IfMatch(u64),
    /// Only if the key has no value.
    IfAbsent,
}

/// `walkv export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per key and line (the default).
    Jsonl,
    /// Redis protocol `SET` commands, for `redis-cli --pipe`.
    Resp,
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

/// `--format jsonl|resp` (`export`, `watch`); jsonl when absent.
fn export_format(text: Option<&str>) -> Result<ExportFormat, UsageError> {
    match text.unwrap_or("jsonl") {
        "jsonl" => Ok(ExportFormat::Jsonl),
        "resp" => Ok(ExportFormat::Resp),
        other => Err(UsageError(format!("--format must be jsonl or resp, got {other:?}"))),
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
        self.options.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
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
        Some(
            "serve" | "get" | "set" | "delete" | "ls" | "compact" | "check" | "repair" | "dump"
            | "export" | "import" | "watch" | "incr" | "txn",
        ) => (first.unwrap_or_default().to_string(), args[1..].to_vec()),
        Some("help" | "--help" | "-h") => return help_for(args.get(1)).map(Command::Help),
        Some("--version" | "-V") => return Ok(Command::Version),
        None if !args.is_empty() => return Err(unknown_command(&args[0])),
        Some(word) if !word.starts_with('-') => return Err(unknown_command(&args[0])),
        _ => ("serve".to_string(), args), // plain `walkv [--port N ...]` serves
    };
    // Which options each command knows: Some(true) takes a value, Some(false) is a switch.
    let takes = |flag: &str| match (name.as_str(), flag) {
        ("serve", "--insecure-open" | "--log-requests") => Some(false),
        ("repair", "--dry-run" | "--skip-damaged" | "--cut") => Some(false),
        ("get", "--etag" | "--wait") | ("set", "--if-absent") | ("ls", "-0" | "--null") => {
            Some(false)
        }
        ("watch", "--prefix" | "--from" | "--format") => Some(true),
        ("set" | "delete", "--if-match") | ("set", "--ttl") => Some(true),
        ("dump", "--from-seq" | "--limit") | ("export", "--format") => Some(true),
        ("dump" | "export", "--data-dir") => Some(true),
        ("ls" | "import", "--addr" | "--auth-token-file") => Some(true),
        ("serve", "--port" | "--bind" | "--data-dir" | "--sync" | "--sync-interval")
        | ("serve", "--max-batch" | "--auth-token-file" | "--max-connections")
        | ("serve", "--idle-timeout" | "--header-timeout" | "--body-timeout")
        | ("serve", "--compact-ratio" | "--compact-min-size" | "--log-format" | "--spin-us")
        | ("serve", "--max-write-queue" | "--max-memory")
        | ("serve", "--heartbeat" | "--follower-backlog" | "--changes-retain")
        | ("check" | "repair", "--data-dir")
        | ("get" | "set" | "delete" | "compact", "--addr" | "--auth-token-file")
        | ("incr" | "txn", "--addr" | "--auth-token-file")
        | ("watch", "--addr" | "--auth-token-file") => Some(true),
        _ => None,
    };
    let parsed = split_options(rest, &takes)?;
    if parsed.help {
        return help_for(Some(&OsString::from(&name))).map(Command::Help);
    }
    let pos = &parsed.positionals;
    let want = |n: usize, usage: &str| {
        if pos.len() == n {
            Ok(())
        } else {
            Err(UsageError(format!("expected {usage}, got {} argument(s)", pos.len())))
        }
    };
    // The server listens on PORT; a client in the same environment talks to it there.
    let addr = || match (parsed.option("--addr"), env("WALKV_ADDR"), env("PORT")) {
        (Some(flag), _, _) => parse_addr(flag, "--addr"),
        (None, Some(var), _) => parse_addr(&var, "WALKV_ADDR"),
        (None, None, Some(port)) => parse_addr(&format!("127.0.0.1:{port}"), "PORT"),
        (None, None, None) => Ok(DEFAULT_ADDR.to_string()),
    };
    let token = || match (parsed.option("--auth-token-file"), env("WALKV_AUTH_TOKEN")) {
        (Some(path), _) => TokenSource::File(PathBuf::from(path)),
        (None, Some(token)) => TokenSource::Env(token),
        (None, None) => TokenSource::None,
    };
    let data_dir = || {
        let dir =
            setting(parsed.option("--data-dir"), env("WALKV_DATA_DIR"), DEFAULT_DATA_DIR.into());
        if dir.is_empty() {
            // An empty path would silently mean the current directory.
            return Err(UsageError(
                "--data-dir (or WALKV_DATA_DIR) is empty; give a directory, such as ./walkv-data"
                    .into(),
            ));
        }
        Ok(PathBuf::from(dir))
    };
    match name.as_str() {
        "serve" => {
            want(0, "no positional arguments for serve")?;
            let mut config = serve_config(&parsed, env, data_dir()?)?;
            config.token = token();
            Ok(Command::Serve(config))
        }
        "get" => {
            want(1, "`walkv get KEY`")?;
            let etag = parsed.option("--etag").is_some();
            let wait = parsed.option("--wait").is_some();
            let key = key_bytes(&pos[0])?;
            Ok(Command::Get { addr: addr()?, token: token(), key, etag, wait })
        }
        "watch" => {
            want(0, "`walkv watch [--prefix P] [--from SEQ] [--format jsonl|resp]`")?;
            let prefix = parsed.option("--prefix").unwrap_or_default().as_bytes().to_vec();
            let from = match parsed.option("--from") {
                None => None,
                Some(text) => Some(text.parse::<u64>().map_err(|_| {
                    UsageError(format!("--from must be a sequence number, got {text:?}"))
                })?),
            };
            let format = export_format(parsed.option("--format"))?;
            Ok(Command::Watch { addr: addr()?, token: token(), prefix, from, format })
        }
        "delete" => {
            want(1, "`walkv delete KEY`")?;
            let condition = condition(&parsed)?;
            Ok(Command::Delete {
                addr: addr()?,
                token: token(),
                key: key_bytes(&pos[0])?,
                condition,
            })
        }
        "set" => {
            want(2, "`walkv set KEY VALUE` (VALUE `-` reads standard input)")?;
            let value = (pos[1] != "-").then(|| pos[1].clone().into_encoded_bytes());
            let condition = condition(&parsed)?;
            let key = key_bytes(&pos[0])?;
            let ttl = parsed.option("--ttl").map(str::to_string);
            if let Some(text) = &ttl {
                crate::expiry::parse_ttl(text).map_err(|e| UsageError(format!("--ttl: {e}")))?;
            }
            Ok(Command::Set { addr: addr()?, token: token(), key, value, condition, ttl })
        }
        "incr" => {
            if pos.is_empty() || pos.len() > 2 {
                let got = pos.len();
                return Err(UsageError(format!(
                    "expected `walkv incr KEY [N]`, got {got} argument(s)"
                )));
            }
            let key = key_bytes(&pos[0])?;
            let delta = match pos.get(1) {
                None => 1,
                Some(n) => n
                    .to_str()
                    .and_then(|n| crate::store::counter::parse_integer(n.as_bytes()))
                    .ok_or_else(|| {
                        UsageError(format!(
                            "N must be a signed 64-bit integer, like 5 or -2, got {:?}",
                            n.to_string_lossy()
                        ))
                    })?,
            };
            Ok(Command::Incr { addr: addr()?, token: token(), key, delta })
        }
        "txn" => {
            want(1, "`walkv txn FILE` (FILE `-` reads standard input)")?;
            let file = (pos[0] != "-").then(|| PathBuf::from(&pos[0]));
            Ok(Command::Txn { addr: addr()?, token: token(), file })
        }
        "ls" => {
            if pos.len() > 1 {
                return Err(UsageError(format!(
                    "expected `walkv ls [PREFIX]`, got {} arguments",
                    pos.len()
                )));
            }
            let prefix = pos.first().map(|p| p.clone().into_encoded_bytes()).unwrap_or_default();
            let null = parsed.option("-0").is_some() || parsed.option("--null").is_some();
            Ok(Command::List { addr: addr()?, token: token(), prefix, null })
        }
        "dump" => {
            want(0, "no positional arguments for dump")?;
            let number = |flag: &str| -> Result<Option<u64>, UsageError> {
                parsed
                    .option(flag)
                    .map(|text| {
                        text.parse::<u64>().map_err(|_| {
                            UsageError(format!("{flag} must be a whole number, got {text:?}"))
                        })
                    })
                    .transpose()
            };
            let from_seq = number("--from-seq")?.unwrap_or(0);
            Ok(Command::Dump { data_dir: data_dir()?, from_seq, limit: number("--limit")? })
        }
        "export" => {
            want(0, "no positional arguments for export")?;
            let format = export_format(parsed.option("--format"))?;
            Ok(Command::Export { data_dir: data_dir()?, format })
        }
        "import" => {
            if pos.len() > 1 {
                return Err(UsageError(format!(
                    "expected `walkv import [FILE]`, got {} arguments",
                    pos.len()
                )));
            }
            let file = pos.first().filter(|p| *p != "-").map(PathBuf::from);
            Ok(Command::Import { addr: addr()?, token: token(), file })
        }
        "compact" => {
            want(0, "no positional arguments for compact")?;
            Ok(Command::Compact { addr: addr()?, token: token() })
        }
        "check" => {
            want(0, "no positional arguments for check")?;
            Ok(Command::Check { data_dir: data_dir()? })
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
            Ok(Command::Repair { data_dir: data_dir()?, mode: chosen.first().copied() })
        }
    }
}

/// The commands, for the message about one that is not.
const COMMANDS: &str = "serve, get, set, delete, incr, txn, ls, watch, compact, check, repair, \
                        dump, export, import, help";

fn unknown_command(word: &OsString) -> UsageError {
    let shown: String =
        word.to_string_lossy().chars().take(40).flat_map(char::escape_debug).collect();
    let hint = if shown == "version" { "; for the version, `walkv --version`" } else { "" };
    UsageError(format!("unknown command '{shown}'; the commands are {COMMANDS}{hint}"))
}

/// A server address for the client: `HOST:PORT`, `[IPv6]:PORT` or `http://` before either (as
/// `CONSUL_HTTP_ADDR` and etcdctl take it). Anything else is a usage error that says what a
/// valid address looks like. Returns `HOST:PORT`.
pub fn parse_addr(text: &str, source: &str) -> Result<String, UsageError> {
    let shown: String = text.chars().take(80).flat_map(char::escape_debug).collect();
    let bad = |why: &str| {
        UsageError(format!(
            "{source} {shown:?} {why}; an address is HOST:PORT, such as 127.0.0.1:8080, \
             [::1]:8080 or http://localhost:8080"
        ))
    };
    if text.starts_with("https://") {
        return Err(bad("asks for HTTPS, which walkv does not speak (put a TLS proxy in front)"));
    }
    let rest = text.strip_prefix("http://").unwrap_or(text);
    if rest.contains('/') {
        return Err(bad("has a path; give only HOST:PORT"));
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once("]:") {
            Some((ip, port)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => (ip, port),
            _ => return Err(bad("is not [IPv6]:PORT")),
        },
        None => match rest.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, port),
            Some(_) => return Err(bad("looks like an IPv6 address: write it in brackets")),
            None => return Err(bad("has no port")),
        },
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
        _ => return Err(bad("has no valid port (1 to 65535)")),
    }
    Ok(if rest.starts_with('[') { format!("[{host}]:{port}") } else { format!("{host}:{port}") })
}

/// Flag, else environment variable, else default, with the name of where the value came from
/// (for an error message: a bad `WALKV_SYNC` must be reported as `WALKV_SYNC`, not `--sync`).
fn sourced(
    parsed: &Parsed,
    flag: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: String,
) -> (String, &'static str) {
    match (parsed.option(flag), env(var)) {
        (Some(value), _) => (value.to_string(), flag),
        (None, Some(value)) => (value, var),
        (None, None) => (default, flag),
    }
}

/// Flag, else environment variable, else default.
fn setting(flag: Option<&str>, env: Option<String>, default: String) -> String {
    flag.map(str::to_string).or(env).unwrap_or(default)
}

/// `--if-match SEQ` (digits, or the ETag as printed, `"SEQ"`) or `--if-absent`, at most one.
fn condition(parsed: &Parsed) -> Result<Option<Condition>, UsageError> {
    match (parsed.option("--if-match"), parsed.option("--if-absent")) {
        (Some(_), Some(_)) => Err(UsageError("choose one of --if-match and --if-absent".into())),
        (None, Some(_)) => Ok(Some(Condition::IfAbsent)),
        (None, None) => Ok(None),
        (Some(text), None) => {
            let digits = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
            match digits.parse::<u64>() {
                Ok(seq) if digits.bytes().all(|b| b.is_ascii_digit()) => {
                    Ok(Some(Condition::IfMatch(seq)))
                }
                _ => Err(UsageError(format!(
                    "--if-match takes the ETag `walkv get KEY --etag` printed (a number such as \
                     42), got {text:?}"
                ))),
            }
        }
    }
}

fn key_bytes(arg: &OsString) -> Result<Vec<u8>, UsageError> {
    let key = arg.clone().into_encoded_bytes();
    if key.is_empty() {
        return Err(UsageError("KEY must not be empty".into()));
    }
    Ok(key)
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
                    // `walkv set temp -5`: a negative number is a value, not an option.
                    (None, None) if text.parse::<f64>().is_ok() => {
                        parsed.positionals.push(arg);
                        continue;
                    }
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
                if parsed.options.iter().any(|(seen, _)| seen == flag) {
                    // Which one was meant? (`--sync never --sync always` must not guess.)
                    return Err(UsageError(format!("{flag} is given more than once")));
                }
                parsed.options.push((flag.to_string(), value));
            }
        }
    }
    Ok(parsed)
}

/// The help for `topic` (a command), or the general help; a topic that is no command is a usage
/// error (exit 2), so that a script's typo does not pass as a success.
fn help_for(topic: Option<&OsString>) -> Result<&'static str, UsageError> {
    let Some(topic) = topic else { return Ok(HELP) };
    match topic.to_str() {
        Some("serve") => Ok(HELP_SERVE),
        Some("get" | "set" | "delete" | "ls" | "compact" | "watch" | "incr" | "txn") => {
            Ok(HELP_CLIENT)
        }
        Some("check" | "repair") => Ok(HELP_CHECK),
        Some("dump" | "export" | "import") => Ok(HELP_DATA),
        Some("help") => Ok(HELP),
        _ => {
            let shown: String =
                topic.to_string_lossy().chars().take(40).flat_map(char::escape_debug).collect();
            Err(UsageError(format!("no help on '{shown}'; the commands are {COMMANDS}")))
        }
    }
}

#[cfg(test)]
mod tests;
