//! The command line's rules, from arguments to [`Command`]s.

use super::*;
use crate::server::{MaxMemory, SyncMode};
use std::time::Duration;

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
    let Command::Serve(c) = parse(args(&["serve", "--port=1", "--data-dir", "d"]), &env).unwrap()
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
    let Command::Serve(c) = parse(args(&["--sync=always", "--max-batch", "1"]), &env_sync).unwrap()
    else {
        panic!()
    };
    assert_eq!((c.sync, c.max_batch), (SyncMode::Always, 1));
    assert_eq!(c.limits.spin, Duration::from_micros(60), "the default poll before sleeping");
    let Command::Serve(c) = parse(args(&["--spin-us", "0"]), &no_env).unwrap() else { panic!() };
    assert_eq!(c.limits.spin, Duration::ZERO);
    assert_eq!((c.max_memory, c.max_write_queue), (MaxMemory::Default, 64 << 20));
    let env_memory = |name: &str| (name == "WALKV_MAX_MEMORY").then(|| "2G".to_string());
    let serve = |line: &[&str]| match parse(args(line), &env_memory).unwrap() {
        Command::Serve(c) => (c.max_memory, c.max_write_queue),
        other => panic!("{other:?}"),
    };
    assert_eq!(serve(&[]), (MaxMemory::Bytes(2 << 30), 64 << 20), "from the environment");
    assert_eq!(serve(&["--max-memory", "0", "--max-write-queue", "8M"]), (MaxMemory::Off, 8 << 20));
    let get = parse(args(&["get", "k"]), &env).unwrap();
    assert_eq!(
        get,
        Command::Get {
            addr: "10.0.0.1:1".into(),
            token: TokenSource::None,
            key: b"k".to_vec(),
            etag: false,
            wait: false
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
        Command::Get {
            addr: "h:2".into(),
            token: TokenSource::None,
            key: b"k".to_vec(),
            etag: false,
            wait: false
        }
    );
}

/// `--log-requests` and `--log-format`, and their environment variables.
#[test]
fn request_log_switches() {
    use crate::request_log::Format;
    let log = |line: &[&str], env: &dyn Fn(&str) -> Option<String>| match parse(args(line), env) {
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
            value: None,
            condition: None,
            ttl: None
        }
    );
    let del = parse(args(&["delete", "--", "-k"]), &no_env).unwrap();
    assert_eq!(
        del,
        Command::Delete {
            addr: DEFAULT_ADDR.into(),
            token: TokenSource::None,
            key: b"-k".to_vec(),
            condition: None
        }
    );
    let set = parse(args(&["set", "k", "v=1 2", "--addr=x:1"]), &no_env).unwrap();
    assert_eq!(
        set,
        Command::Set {
            addr: "x:1".into(),
            token: TokenSource::None,
            key: b"k".to_vec(),
            value: Some(b"v=1 2".to_vec()),
            condition: None,
            ttl: None
        }
    );
}

/// TTLs, counters and transactions: `--ttl` is checked before anything is sent; `incr` takes
/// a signed integer (a negative one needs no `--`); `txn -` reads standard input.
#[test]
fn ttl_counter_and_txn_commands() {
    let parsed = |line: &[&str]| parse(args(line), &no_env);
    let Ok(Command::Set { ttl, .. }) = parsed(&["set", "k", "v", "--ttl", "1.5"]) else { panic!() };
    assert_eq!(ttl.as_deref(), Some("1.5"));
    assert!(parsed(&["set", "k", "v", "--ttl", "0"]).unwrap_err().0.contains("--ttl"));
    assert!(parsed(&["set", "k", "v", "--ttl", "5m"]).is_err());
    let incr = |line: &[&str]| match parsed(line) {
        Ok(Command::Incr { key, delta, .. }) => Ok((key, delta)),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.0),
    };
    assert_eq!(incr(&["incr", "c"]), Ok((b"c".to_vec(), 1)));
    assert_eq!(incr(&["incr", "c", "-5"]), Ok((b"c".to_vec(), -5)));
    assert_eq!(incr(&["incr", "c", "9223372036854775807"]), Ok((b"c".to_vec(), i64::MAX)));
    assert!(incr(&["incr", "c", "1.5"]).unwrap_err().contains("signed 64-bit integer"));
    assert!(incr(&["incr", "c", "9223372036854775808"]).is_err());
    assert!(incr(&["incr"]).unwrap_err().contains("walkv incr KEY [N]"));
    assert!(incr(&["incr", "a", "1", "2"]).is_err());
    let Ok(Command::Txn { file, .. }) = parsed(&["txn", "-"]) else { panic!() };
    assert_eq!(file, None);
    let Ok(Command::Txn { file, .. }) = parsed(&["txn", "t.json"]) else { panic!() };
    assert_eq!(file, Some(PathBuf::from("t.json")));
    assert!(parsed(&["txn"]).is_err());
}

/// The new client options: conditions, `--etag`, `ls`, and the offline data commands.
#[test]
fn data_commands() {
    let parsed = |line: &[&str]| parse(args(line), &no_env).unwrap();
    let Command::Set { condition, .. } = parsed(&["set", "k", "v", "--if-match", "42"]) else {
        panic!()
    };
    assert_eq!(condition, Some(Condition::IfMatch(42)));
    let Command::Set { condition, .. } = parsed(&["set", "k", "v", "--if-match=\"7\""]) else {
        panic!()
    };
    assert_eq!(condition, Some(Condition::IfMatch(7)), "the ETag as printed works too");
    let Command::Set { condition, .. } = parsed(&["set", "--if-absent", "k", "v"]) else {
        panic!()
    };
    assert_eq!(condition, Some(Condition::IfAbsent));
    let Command::Delete { condition, .. } = parsed(&["delete", "k", "--if-match", "3"]) else {
        panic!()
    };
    assert_eq!(condition, Some(Condition::IfMatch(3)));
    assert!(matches!(parsed(&["get", "k", "--etag"]), Command::Get { etag: true, .. }));
    let Command::List { prefix, null, .. } = parsed(&["ls"]) else { panic!() };
    assert_eq!((prefix, null), (vec![], false));
    let Command::List { prefix, null, .. } = parsed(&["ls", "user:", "-0"]) else { panic!() };
    assert_eq!((prefix, null), (b"user:".to_vec(), true));
    assert!(matches!(parsed(&["ls", "--null"]), Command::List { null: true, .. }));
    let dump = parsed(&["dump", "--data-dir", "d", "--from-seq", "5", "--limit=2"]);
    assert_eq!(dump, Command::Dump { data_dir: "d".into(), from_seq: 5, limit: Some(2) });
    let export = parsed(&["export", "--format", "resp"]);
    assert_eq!(
        export,
        Command::Export { data_dir: DEFAULT_DATA_DIR.into(), format: ExportFormat::Resp }
    );
    assert!(matches!(parsed(&["export"]), Command::Export { format: ExportFormat::Jsonl, .. }));
    assert!(matches!(parsed(&["import"]), Command::Import { file: None, .. }));
    assert!(matches!(parsed(&["import", "-"]), Command::Import { file: None, .. }));
    let Command::Import { file, .. } = parsed(&["import", "x.jsonl"]) else { panic!() };
    assert_eq!(file, Some(PathBuf::from("x.jsonl")));
}

/// Command lines that must be refused or taken as written: an unknown command names itself and the commands; every duration
/// has a floor; an empty data directory and a bad address are refused; negative numbers are
/// values.
#[test]
fn new_user_mistakes() {
    for (line, says) in [
        (&["list"][..], "unknown command 'list'; the commands are serve, get, set"),
        (&["version"], "for the version, `walkv --version`"),
        (&["--sync-interval", "1e-9"], "--sync-interval must be a number of seconds from 0.01"),
        (&["--sync-interval", "0.001"], "from 0.01 to 86400"),
        (&["--idle-timeout", "0.01"], "--idle-timeout must be a number of seconds from 0.1"),
        (&["--body-timeout", "inf"], "--body-timeout must be"),
        (&["--header-timeout", "NaN"], "--header-timeout must be"),
        (&["--data-dir", ""], "--data-dir (or WALKV_DATA_DIR) is empty"),
        (&["check", "--data-dir="], "is empty"),
        (&["get", "k", "--addr", "127.0.0.1"], "has no port"),
        (&["get", "k", "--addr", "http://h:1/"], "has a path"),
        (&["get", "k", "--addr", "h:99999"], "no valid port"),
        (&["get", "k", "--addr", "::1:80"], "write it in brackets"),
        (&["get", "k", "--addr", "[::1]80"], "is not [IPv6]:PORT"),
        (&["get", "k", "--addr", ":80"], "has no host"),
    ] {
        let err = parse(args(line), &no_env).unwrap_err();
        assert!(err.0.contains(says), "{line:?}: {err}");
    }
    assert!(HELP.contains("130 serve: a second stop signal") && HELP.contains("walkv --version"));
    assert!(HELP_SERVE.contains("SIGHUP") && HELP_SERVE.contains("0.01 to 86400"));
    assert!(HELP_CLIENT.contains("[IPv6]:PORT") && HELP_CLIENT.contains("-5 needs none"));
    let empty_env = |n: &str| (n == "WALKV_DATA_DIR").then(String::new);
    assert!(parse(args(&["check"]), &empty_env).unwrap_err().0.contains("is empty"));
    for (given, addr) in [
        ("http://localhost:8080", "localhost:8080"),
        ("[::1]:9", "[::1]:9"),
        ("http://[::1]:9", "[::1]:9"),
        ("10.0.0.1:1", "10.0.0.1:1"),
    ] {
        assert_eq!(parse_addr(given, "--addr").unwrap(), addr);
    }
    let Command::Serve(c) = parse(args(&["--sync-interval", "0.01"]), &no_env).unwrap() else {
        panic!()
    };
    assert_eq!(c.sync_interval, Duration::from_millis(10));
    let Command::Set { value, .. } = parse(args(&["set", "temp", "-5"]), &no_env).unwrap() else {
        panic!()
    };
    assert_eq!(value, Some(b"-5".to_vec()));
    assert!(parse(args(&["set", "temp", "-x"]), &no_env).unwrap_err().0.contains("unknown option"));
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
        (&["--changes-retain", "lots"], "--changes-retain must be a byte count"),
        (&["--follower-backlog", "1K"], "--follower-backlog must be a byte count from 64K"),
        (&["--heartbeat", "0"], "--heartbeat must be a number of seconds"),
        (&["--spin-us", "1001"], "--spin-us must be a number from 0 to 1000"),
        (&["--spin-us", "-1"], "--spin-us must be"),
        (&["--max-write-queue", "512K"], "--max-write-queue must be a byte count from 1M"),
        (&["--max-write-queue", "65G"], "--max-write-queue must be"),
        (&["--max-memory", "1000"], "--max-memory (or WALKV_MAX_MEMORY) must be 0 (no limit)"),
        (&["--max-memory", "lots"], "--max-memory"),
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
