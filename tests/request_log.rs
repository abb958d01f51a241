//! `walkv serve --log-requests` through the real binary: one line per request on stderr, in
//! logfmt or JSON; request ids echoed; no client byte forges a line; and a blocked stderr stalls
//! nobody (lines are dropped and counted instead).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{KillOnDrop, Server, request, send_raw};
use walkv::testutil::TempDir;

/// The request log's lines in a server's stderr (the server's own lines are `TIME walkv: ...`).
fn request_lines(stderr: &str) -> Vec<String> {
    // The server's own lines: ` walkv: ` in logfmt mode, `{"time":"...","msg":...}` in JSON.
    let own = |l: &str| {
        l.contains(" walkv: ")
            || l.split_once("\",").is_some_and(|(_, rest)| rest.starts_with("\"msg\":"))
    };
    stderr.lines().filter(|l| !own(l)).map(str::to_string).collect()
}

/// The `name=value` fields of a logfmt line, unquoting quoted values with JSON's rules.
fn logfmt(line: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').expect("name=value");
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let bytes = quoted.as_bytes();
                let mut end = 0;
                while bytes[end] != b'"' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                let value: String =
                    serde_json::from_str(&format!("\"{}\"", &quoted[..end])).expect("escapes");
                (value, &quoted[end + 1..])
            }
            None => {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            }
        };
        fields.push((name.to_string(), value));
        rest = after.strip_prefix(' ').unwrap_or(after);
    }
    fields
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    &fields.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1
}

/// Waits until the server's stderr holds `n` request lines (the writer thread is asynchronous).
fn wait_for_lines(server: &Server, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = request_lines(&server.stderr());
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const FIELDS: [&str; 9] = ["time", "id", "method", "path", "status", "in", "out", "dur_ms", "conn"];

/// logfmt: the documented fields in order, the client's sane `X-Request-ID` kept and echoed, an
/// insane one replaced by a made-up id that is echoed too, and a path full of hostile bytes
/// still one line that reads back as sent.
#[test]
fn logfmt_lines_have_the_fields_and_echo_ids() {
    let dir = TempDir::new("reqlog-logfmt");
    let server = Server::start_with(&dir, &["--log-requests"]);
    let a = &server.addr;
    let raw = send_raw(
        a,
        b"PUT /v1/k HTTP/1.1\r\nHost: t\r\nX-Request-ID: trace-42\r\nContent-Length: 5\r\n\
          Connection: close\r\n\r\nhello",
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("\r\nX-Request-ID: trace-42\r\n"));
    let long_id = "x".repeat(65);
    let raw = send_raw(
        a,
        format!(
            "GET /v1/k HTTP/1.1\r\nHost: t\r\nX-Request-ID: {long_id}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let made = text
        .lines()
        .find_map(|l| l.strip_prefix("X-Request-ID: "))
        .expect("an id is echoed")
        .to_string();
    assert!(made.len() == 17 && made != long_id, "{made}");
    // Percent-encoded CR LF, quote, '=' and ESC: harmless bytes in the target, but after them a
    // long tail that must be cut.
    let hostile = format!("/v1/a%0D%0A%22%3D%1B\"{}", "y".repeat(300));
    let r = request(a, "GET", &hostile, b"").unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(request(a, "HEAD", "/v1/k", b"").unwrap().status, 200);

    let lines = wait_for_lines(&server, 4);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let put = logfmt(&lines[0]);
    let names: Vec<&str> = put.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, FIELDS);
    assert_eq!(
        (field(&put, "id"), field(&put, "method"), field(&put, "path"), field(&put, "status")),
        ("trace-42", "PUT", "/v1/k", "201")
    );
    assert_eq!((field(&put, "in"), field(&put, "out")), ("5", "9"));
    assert!(field(&put, "dur_ms").parse::<f64>().is_ok_and(|d| d >= 0.0));
    let time = field(&put, "time");
    assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    let get = logfmt(&lines[1]);
    assert_eq!(field(&get, "id"), made);
    assert_ne!(field(&get, "conn"), field(&put, "conn"), "each connection has its number");
    let cut = logfmt(&lines[2]);
    assert!(hostile.starts_with(field(&cut, "path")), "{}", lines[2]);
    assert_eq!(field(&cut, "path").len(), 256);
    assert_eq!(field(&cut, "trunc"), "1");
    assert!(lines[2].contains("path=\""), "a value with '\"' or '=' is quoted: {}", lines[2]);
    let head = logfmt(&lines[3]);
    assert_eq!((field(&head, "method"), field(&head, "out")), ("HEAD", "0"), "no body sent");
}

/// A head that cannot be read is still answered, counted and logged, as `method=- path=-`;
/// raw control bytes sent by a client never reach the log as such.
#[test]
fn refused_requests_are_logged_too() {
    let dir = TempDir::new("reqlog-refused");
    let server = Server::start_with(&dir, &["--log-requests"]);
    let raw = send_raw(&server.addr, b"GET /v1/\x1b[2J\r\nevil\r\n\r\n").unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&raw));
    let lines = wait_for_lines(&server, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let f = logfmt(&lines[0]);
    assert_eq!((field(&f, "method"), field(&f, "path"), field(&f, "status")), ("-", "-", "400"));
    assert!(!server.stderr().contains('\u{1b}'), "an escape byte reached the log");
}

/// `--log-format json`, turned on by `WALKV_LOG_REQUESTS=1`: each line is one JSON object with
/// the same fields; without either, nothing is logged.
#[test]
fn json_lines_and_the_environment_switch() {
    let dir = TempDir::new("reqlog-json");
    let envs = [("WALKV_LOG_REQUESTS", "1")];
    let server = Server::start_env(&dir.join("a"), &["--log-format", "json"], &envs);
    assert_eq!(request(&server.addr, "PUT", "/v1/k%22%0A", b"v").unwrap().status, 201);
    let lines = wait_for_lines(&server, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let v: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON object");
    let object = v.as_object().unwrap();
    let names: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut expected = FIELDS.to_vec();
    expected.sort_unstable();
    let mut names_sorted = names.clone();
    names_sorted.sort_unstable();
    assert_eq!(names_sorted, expected);
    assert_eq!((v["method"].as_str(), v["path"].as_str()), (Some("PUT"), Some("/v1/k%22%0A")));
    assert_eq!((v["status"].as_u64(), v["in"].as_u64()), (Some(201), Some(1)));
    assert!(v["dur_ms"].as_f64().is_some() && v["conn"].as_u64() == Some(1));

    let quiet = Server::start(&dir.join("b"));
    assert_eq!(request(&quiet.addr, "PUT", "/v1/k", b"v").unwrap().status, 201);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(request_lines(&quiet.stderr()), Vec::<String>::new(), "off by default");
}

/// Sends `count` pipelined GETs on one connection and reads every answer; true if all came back.
fn pipelined_gets(addr: &str, count: usize) -> bool {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = stream.try_clone().unwrap();
    let counting = std::thread::spawn(move || {
        let mut seen = 0;
        let mut buf = vec![0u8; 64 << 10];
        let mut tail = Vec::new();
        while seen < count {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tail.extend_from_slice(&buf[..n]);
                    seen += tail.windows(9).filter(|w| w == b"HTTP/1.1 ").count();
                    let keep = tail.len().saturating_sub(8);
                    tail.drain(..keep);
                }
            }
        }
        seen
    });
    let one = b"GET /v1/k HTTP/1.1\r\nHost: t\r\n\r\n";
    for _ in 0..count / 100 {
        stream.write_all(&one.repeat(100)).unwrap();
    }
    counting.join().unwrap() >= count
}

/// A stderr nobody reads (a pipe whose reader is stuck): requests are still answered, the
/// lines that did not fit are dropped and counted, and the server stays responsive.
#[test]
fn a_blocked_stderr_stalls_nobody() {
    let dir = TempDir::new("reqlog-blocked");
    let mut child = Command::new(support::BIN)
        .args(["serve", "--port", "0", "--log-requests", "--data-dir"])
        .arg(&*dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let child = KillOnDrop(child);
    // Read only up to "ready on", then never again: the pipe (64 KiB) fills and stays full.
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("walkv: ready on http://")
        || !seen.ends_with(b"\n")
    {
        assert_eq!(stderr.read(&mut byte).unwrap(), 1, "the server exited");
        seen.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    let addr = text.rsplit("ready on http://").next().unwrap().trim().to_string();

    // Far more lines than the pipe and the log's queue hold together (about 0.6 MB).
    let count = 12_000;
    let started = Instant::now();
    let all = std::thread::scope(|s| {
        let clients: Vec<_> =
            (0..3).map(|_| s.spawn(|| pipelined_gets(&addr, count / 3))).collect();
        clients.into_iter().all(|c| c.join().unwrap())
    });
    assert!(all, "some requests were not answered with stderr blocked");
    let r = request(&addr, "GET", "/metrics", b"").unwrap();
    let dropped = r
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("walkv_request_log_dropped_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("the dropped counter");
    assert!(dropped > 0, "nothing dropped: was stderr really blocked?");
    assert_eq!(request(&addr, "GET", "/livez", b"").unwrap().status, 200);
    eprintln!(
        "{count} requests with a blocked stderr in {:?}; {dropped} lines dropped",
        started.elapsed()
    );
    drop(child);
    drop(stderr);
}
