//! The command-line client and its exit codes, against a real server (and against fake servers
//! for the answers a real one never gives).

mod support;

use walkv::testutil::TempDir;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread;
use support::{Server, run_walkv};

/// set, get and delete round-trip any bytes, including a value from stdin; exit codes 0 and 1.
#[test]
fn set_get_delete_round_trip() {
    let dir = TempDir::new("cli");
    let server = Server::start(&dir);
    let a = server.addr.as_str();
    assert_eq!(run_walkv(&["set", "--addr", a, "greeting", "hello world"], &[], b"").0, 0);
    let (code, out, _) = run_walkv(&["get", "--addr", a, "greeting"], &[], b"");
    assert_eq!((code, out.as_slice()), (0, &b"hello world"[..]), "get prints the exact bytes");

    let binary: Vec<u8> = (0..=255u8).chain(b"\n=\r\n".iter().copied()).collect();
    assert_eq!(run_walkv(&["set", "--addr", a, "a/b=c d", "-"], &[], &binary).0, 0);
    let (code, out, _) = run_walkv(&["get", "a/b=c d"], &[("WALKV_ADDR", a)], b"");
    assert_eq!((code, out), (0, binary));

    assert_eq!(run_walkv(&["set", "--addr", a, "--", "-dash", ""], &[], b"").0, 0);
    let (code, out, _) = run_walkv(&["get", "--addr", a, "--", "-dash"], &[], b"");
    assert_eq!((code, out.len()), (0, 0), "an empty value is a value");

    assert_eq!(run_walkv(&["delete", "--addr", a, "greeting"], &[], b"").0, 0);
    assert_eq!(run_walkv(&["delete", "--addr", a, "greeting"], &[], b"").0, 0, "idempotent");
    let (code, out, err) = run_walkv(&["get", "--addr", a, "greeting"], &[], b"");
    assert_eq!((code, out.len()), (1, 0));
    assert!(err.contains("key not found"), "{err}");
}

/// Usage errors exit 2; a refused request exits 4 with the server's reason.
#[test]
fn usage_and_rejection_exit_codes() {
    let (code, _, err) = run_walkv(&["get"], &[], b"");
    assert_eq!(code, 2);
    assert!(err.contains("walkv get KEY"), "{err}");
    assert_eq!(run_walkv(&["frobnicate", "x"], &[], b"").0, 2);
    assert_eq!(run_walkv(&["--port", "99999"], &[], b"").0, 2);

    let dir = TempDir::new("cli-reject");
    let server = Server::start(&dir);
    let long_key = "k".repeat(walkv::wal::MAX_KEY_LEN + 1);
    let (code, _, err) = run_walkv(&["set", "--addr", &server.addr, &long_key, "v"], &[], b"");
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("the limit is 4096"), "{err}");
}

/// Nothing listening: exit 3 with a hint about the address.
#[test]
fn cannot_connect_exits_3() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}"); // the listener is dropped: nothing listens here now
    let (code, _, err) = run_walkv(&["get", "--addr", &addr, "k"], &[], b"");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot connect") && err.contains("WALKV_ADDR"), "{err}");
}

/// Serves one connection with a canned answer; returns its address.
fn fake_server(answer: &'static [u8]) -> String {
    fake_server_holding(answer, std::time::Duration::ZERO)
}

/// A 5xx or an unreadable answer exits 5.
#[test]
fn server_errors_exit_5() {
    let addr = fake_server(b"HTTP/1.1 507 Insufficient Storage\r\nContent-Length: 25\r\n\r\n{\"error\":\"disk is full!\"}");
    let (code, _, err) = run_walkv(&["set", "--addr", &addr, "k", "v"], &[], b"");
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("507") && err.contains("disk is full"), "{err}");
    let addr = fake_server(b"SSH-2.0-OpenSSH_9.2\r\n");
    let (code, _, err) = run_walkv(&["get", "--addr", &addr, "k"], &[], b"");
    assert_eq!(code, 5, "{err}");
}

/// Every command answers --help with its usage on stdout and exit 0.
#[test]
fn help_on_every_command() {
    for args in [
        &["--help"][..],
        &["help"],
        &["serve", "--help"],
        &["get", "--help"],
        &["set", "-h"],
        &["delete", "--help"],
        &["check", "--help"],
        &["repair", "--help"],
    ] {
        let (code, out, _) = run_walkv(args, &[], b"");
        let out = String::from_utf8_lossy(&out);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("USAGE:"), "{args:?}: {out}");
    }
}

/// `PORT` and `WALKV_DATA_DIR` configure a server started with no flags at all. The test stops
/// reading the server's stderr before SIGTERM, so this also proves that a closed log pipe does
/// not crash the server (it once did: `eprintln!` panics on EPIPE, exit 101).
#[test]
fn serve_reads_port_and_data_dir_from_env() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let dir = TempDir::new("env");
    let child = std::process::Command::new(support::BIN)
        .env("PORT", &port)
        .env("WALKV_DATA_DIR", dir.as_os_str())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = support::KillOnDrop(child);
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    let line = lines.find(|l| l.contains("listening on")).unwrap();
    assert_stamped(&line, &format!("walkv: listening on http://127.0.0.1:{port}"));
    let line = lines.find(|l| l.contains("walkv: ready on")).unwrap();
    assert_stamped(&line, &format!("walkv: ready on http://127.0.0.1:{port}"));
    assert!(dir.join(walkv::wal::FILE_NAME).exists());
    support::signal(child.0.id(), "TERM");
    let status = support::wait_with_timeout(&mut child.0, std::time::Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
}

/// `line` is `TIME message`, TIME in RFC 3339 UTC with milliseconds, within a minute of now
/// (checked against `date -u`).
fn assert_stamped(line: &str, message: &str) {
    let (time, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{line}"));
    assert_eq!(rest, message);
    assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
    let date = std::process::Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M"]).output().unwrap();
    let now = String::from_utf8_lossy(&date.stdout).trim().to_string();
    assert_eq!(&time[..13], &now[..13], "the same hour as date -u: {line}");
}

/// Serves one connection with a canned answer and keeps it open for `hold`, as a proxy or a
/// keep-alive server does; returns its address.
fn fake_server_holding(answer: &'static [u8], hold: std::time::Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(answer);
            thread::sleep(hold);
        }
    });
    addr
}

/// Runs `script` in bash with `$W` the walkv binary; returns (exit code, stdout, stderr).
fn bash(script: &str) -> (i32, String, String) {
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .env("W", support::BIN)
        .env_remove("WALKV_ADDR")
        .env_remove("WALKV_AUTH_TOKEN")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// `walkv set k -` with standard input closed is an error (exit 2) that writes nothing, not an
/// empty value; `</dev/null` is still the empty value.
#[test]
fn set_from_a_closed_stdin_writes_nothing() {
    let dir = TempDir::new("cli-closed-stdin");
    let server = Server::start(&dir);
    let a = &server.addr;
    let (code, _, err) = bash(&format!("$W set k - --addr {a} <&-"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("standard input is closed") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(run_walkv(&["get", "--addr", a, "k"], &[], b"").0, 1, "nothing was written");
    let (code, _, err) = bash(&format!("$W set k - --addr {a} </dev/null"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(run_walkv(&["get", "--addr", a, "k"], &[], b"").1, b"");
}

/// A value over 1 MiB from stdin is refused by the client (exit 4, "over ... bytes"), which
/// reads no more than the limit of it; one at the limit goes through.
#[test]
fn set_of_a_value_over_the_limit_is_refused_by_the_client() {
    let dir = TempDir::new("cli-too-large");
    let server = Server::start(&dir);
    let a = &server.addr;
    let (code, _, err) = bash(&format!("head -c 20000000 /dev/zero | $W set big - --addr {a}"));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("over 1048576 bytes") && err.contains("nothing was written"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    let (code, _, err) = bash(&format!("head -c 1048576 /dev/zero | $W set big - --addr {a}"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(run_walkv(&["get", "--addr", a, "big"], &[], b"").1.len(), 1 << 20);
}

/// An answer framed by Content-Length is complete when its body is: behind a server that keeps
/// the connection open the client does not wait for the close.
#[test]
fn the_client_reads_exactly_the_framed_answer() {
    let hold = std::time::Duration::from_secs(20);
    let addr = fake_server_holding(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\nhello",
        hold,
    );
    let began = std::time::Instant::now();
    let (code, out, err) = run_walkv(&["get", "--addr", &addr, "k"], &[], b"");
    assert_eq!((code, out.as_slice()), (0, &b"hello"[..]), "{err}");
    assert!(began.elapsed() < std::time::Duration::from_secs(5), "{:?}", began.elapsed());
}

/// Only walkv's own "key not found" is exit 1; a 404 from something else (here the answer of
/// `python3 -m http.server`) is a server error that asks whether the address is walkv.
#[test]
fn a_404_that_is_not_walkv_is_not_key_not_found() {
    let addr = fake_server(b"HTTP/1.0 404 File not found\r\nContent-Type: text/html\r\nContent-Length: 22\r\n\r\n<h1>File not found</h1>");
    let (code, _, err) = run_walkv(&["get", "--addr", &addr, "k"], &[], b"");
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("is --addr a walkv server?"), "{err}");
}

/// Addresses: `http://HOST:PORT` works; no port, a path, a bad port or https are usage errors
/// (exit 2) that show a valid address, not connection failures.
#[test]
fn addresses_are_checked() {
    let dir = TempDir::new("cli-addr");
    let server = Server::start(&dir);
    let http = format!("http://{}", server.addr);
    assert_eq!(run_walkv(&["set", "--addr", &http, "k", "v"], &[], b"").0, 0);
    assert_eq!(run_walkv(&["get", "k"], &[("WALKV_ADDR", &http)], b"").1, b"v");
    let with_slash = format!("{}/", server.addr);
    for bad in
        ["127.0.0.1", with_slash.as_str(), ":99999", "https://127.0.0.1:8080", "::1:8080", "h:0"]
    {
        let (code, _, err) = run_walkv(&["get", "--addr", bad, "k"], &[], b"");
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("an address is HOST:PORT"), "{bad}: {err}");
    }
    let (code, _, err) = run_walkv(&["get", "k"], &[("WALKV_ADDR", "localhost")], b"");
    assert!(code == 2 && err.contains("WALKV_ADDR"), "{err}");
    let (code, _, err) = run_walkv(&["get", "--addr", "[::1]:1", "k"], &[], b"");
    assert_eq!(code, 3, "[::1]:PORT is an address (nothing listens there): {err}");
}

/// A reader that goes away (`| head -c 10`) ends `get` quietly with 0, as for Unix tools.
#[test]
fn a_closed_stdout_is_quiet() {
    let dir = TempDir::new("cli-epipe");
    let server = Server::start(&dir);
    let a = &server.addr;
    let (code, _, err) = bash(&format!(
        "head -c 1000000 /dev/zero | $W set big - --addr {a} && $W get big --addr {a} | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}"
    ));
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "nothing said: {err}");
}

/// A value that looks like a negative number is a value; keys `.` and `..` are keys.
#[test]
fn dash_values_and_dot_keys() {
    let dir = TempDir::new("cli-dash");
    let server = Server::start(&dir);
    let a = &server.addr;
    assert_eq!(run_walkv(&["set", "temp", "-5", "--addr", a], &[], b"").0, 0);
    assert_eq!(run_walkv(&["get", "temp", "--addr", a], &[], b"").1, b"-5");
    assert_eq!(run_walkv(&["set", "--addr", a, "--", "t", "-x"], &[], b"").0, 0, "`--` for others");
    let (code, _, err) = run_walkv(&["set", "t", "-x", "--addr", a], &[], b"");
    assert!(code == 2 && err.contains("unknown option -x"), "{err}");
    for key in [".", ".."] {
        assert_eq!(run_walkv(&["set", key, key, "--addr", a], &[], b"").0, 0);
        assert_eq!(run_walkv(&["get", key, "--addr", a], &[], b"").1, key.as_bytes());
    }
    let (_, out, _) = run_walkv(&["ls", "--addr", a], &[], b"");
    assert_eq!(String::from_utf8_lossy(&out), ".\n..\nt\ntemp\n");
}

/// The small promises of the command line: a help topic that is no command, a repeated flag
/// and a bad variable are usage errors (exit 2) that name what was wrong; an error is said once.
#[test]
fn usage_errors_name_what_was_wrong_once() {
    let (code, out, err) = run_walkv(&["help", "nosuch"], &[], b"");
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty() && err.contains("no help on 'nosuch'"), "{err}");
    let (code, _, err) = run_walkv(&["get", "--etag", "--etag", "k"], &[], b"");
    assert_eq!(code, 2);
    assert!(err.contains("--etag is given more than once"), "{err}");
    let (code, _, err) = run_walkv(&["serve", "--sync", "never", "--sync", "always"], &[], b"");
    assert_eq!(code, 2);
    assert!(err.contains("--sync is given more than once"), "{err}");
    for (var, value) in [("WALKV_SYNC", "sometimes"), ("PORT", "http"), ("WALKV_LOG_FORMAT", "xml")]
    {
        let (code, _, err) = run_walkv(&["serve"], &[(var, value)], b"");
        assert_eq!(code, 2, "{var}: {err}");
        assert!(err.contains(&format!("{var} must be")), "{var}: {err}");
    }
    let (code, _, err) = run_walkv(&["serve", "--sync", "sometimes"], &[], b"");
    assert!(code == 2 && err.contains("--sync must be"), "{err}");
    // A dump of a directory with no log: the error once, on stderr; nothing on stdout.
    let dir = TempDir::new("cli-once");
    let (code, out, err) = run_walkv(&["dump", "--data-dir", dir.to_str().unwrap()], &[], b"");
    assert_ne!(code, 0);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The client finds the server where `PORT` put it, as the server does.
#[test]
fn the_client_reads_port_as_the_server_does() {
    let dir = TempDir::new("cli-port");
    let server = Server::start(&dir);
    let port = server.addr.rsplit_once(':').unwrap().1.to_string();
    assert_eq!(run_walkv(&["set", "k", "v"], &[("PORT", &port)], b"").0, 0);
    let (code, out, _) = run_walkv(&["get", "k"], &[("PORT", &port)], b"");
    assert_eq!((code, out.as_slice()), (0, &b"v"[..]));
    // WALKV_ADDR wins over PORT.
    let (code, out, _) =
        run_walkv(&["get", "k"], &[("PORT", "1"), ("WALKV_ADDR", &server.addr)], b"");
    assert_eq!((code, out.as_slice()), (0, &b"v"[..]));
}

/// The pipeline of `docs/cli.md` over every key, run as it is written there, on keys that look
/// like options (`-x`, `--help`, `--`) and hold spaces and newlines.
#[test]
fn the_readme_pipeline_works_for_any_key() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md")).unwrap();
    let line = readme.lines().find(|l| l.contains("| xargs -0")).expect("the pipeline line");
    let pipeline = line.split('#').next().unwrap().trim();
    let dir = TempDir::new("cli-pipe");
    let server = Server::start(&dir);
    let keys = ["-x", "--help", "--", "a b", "line\nbreak", "plain"];
    for (i, key) in keys.iter().enumerate() {
        let target = format!("/v1/{}", support::encode_all(key.as_bytes()));
        let value = format!("<{i}>");
        assert_eq!(
            support::request(&server.addr, "PUT", &target, value.as_bytes()).unwrap().status,
            201
        );
    }
    let bin_dir = std::path::Path::new(support::BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new("bash")
        .args(["-o", "pipefail", "-c", pipeline])
        .env("PATH", path)
        .env("WALKV_ADDR", &server.addr)
        .output()
        .unwrap();
    assert!(out.status.success(), "{pipeline}: {}", String::from_utf8_lossy(&out.stderr));
    let mut got = String::from_utf8_lossy(&out.stdout).into_owned();
    for i in 0..keys.len() {
        let value = format!("<{i}>");
        assert!(got.contains(&value), "{pipeline}: {value} missing from {got:?}");
        got = got.replacen(&value, "", 1);
    }
    assert!(got.trim().is_empty(), "{got:?}");
}

/// `--log-format json`: every line the server writes is a JSON object, its own messages too.
#[test]
fn json_log_mode_is_json_on_every_line() {
    let dir = TempDir::new("cli-json-log");
    let server = Server::start_with(&dir, &["--log-format", "json", "--log-requests"]);
    assert_eq!(support::request(&server.addr, "PUT", "/v1/k", b"v").unwrap().status, 201);
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
    assert!(stderr.lines().count() >= 4, "{stderr}");
    for line in stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{stderr}"));
        assert!(v["time"].is_string(), "{line}");
    }
}

/// A data directory the server cannot use ends the start before anything says "listening".
#[test]
fn nothing_says_listening_before_the_data_directory_is_usable() {
    let dir = TempDir::new("cli-listen");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let failed = Server::try_start(&file, &[]);
    let Err((_, stderr)) = failed else { panic!("a file as data directory must fail") };
    assert!(!stderr.contains("listening"), "{stderr}");
    let held = Server::start(&dir.join("data"));
    let Err((_, stderr)) = Server::try_start(&held.data_dir, &[]) else {
        panic!("a locked data directory must fail")
    };
    assert!(!stderr.contains("listening") && stderr.contains("lock"), "{stderr}");
}
