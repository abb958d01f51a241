//! The HTTP API through the real binary: the first contract (`POST /v1/write`, `GET /v1/{key}`),
//! the curl-style endpoints, hostile keys and values, limits, and malformed requests that must
//! not disturb the server.

mod support;

use walkv::testutil::TempDir;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Server, encode_all, json_string, request, send_raw};
use walkv::testutil::Rng;

fn json(reply: &support::Reply) -> serde_json::Value {
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", reply.text()))
}

/// The first contract (`POST /v1/write`, `GET /v1/{key}`), byte for byte where it defined bytes.
#[test]
fn original_go_contract() {
    let dir = TempDir::new("contract");
    let server = Server::start(&dir);
    let a = &server.addr;
    let r = request(a, "POST", "/v1/write", br#"{"key":"user:1","value":"Ada"}"#).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let r = request(a, "GET", "/v1/user:1", b"").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"value":"Ada"}"#));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let r = request(a, "GET", "/v1/nobody", b"").unwrap();
    assert_eq!((r.status, r.text().as_str()), (404, r#"{"error":"key not found"}"#));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    for body in [&b"not json"[..], b"{}", br#"{"key":"","value":"x"}"#, br#"{"key":"k","value":7}"#]
    {
        let r = request(a, "POST", "/v1/write", body).unwrap();
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
        assert!(json(&r)["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
}

/// PUT with a raw body, DELETE (idempotent), HEAD, and ?raw.
#[test]
fn curl_endpoints() {
    let dir = TempDir::new("curl");
    let server = Server::start(&dir);
    let a = &server.addr;
    assert_eq!(request(a, "PUT", "/v1/k", b"v1").unwrap().status, 201);
    assert_eq!(request(a, "PUT", "/v1/k", b"v2").unwrap().status, 200);
    let r = request(a, "HEAD", "/v1/k", b"").unwrap();
    assert_eq!((r.status, r.header("Content-Length")), (200, Some("14")));
    let r = request(a, "GET", "/v1/k?raw", b"").unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"v2"[..]));
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(json(&request(a, "DELETE", "/v1/k", b"").unwrap())["deleted"], true);
    let again = request(a, "DELETE", "/v1/k", b"").unwrap();
    assert_eq!((again.status, json(&again)["deleted"].clone()), (200, serde_json::json!(false)));
    assert_eq!(request(a, "GET", "/v1/k", b"").unwrap().status, 404);
    assert_eq!(request(a, "HEAD", "/v1/k", b"").unwrap().status, 404);
}

/// Unknown paths 404, wrong methods 405 with Allow, and every error body is JSON.
#[test]
fn routing_errors_are_json() {
    let dir = TempDir::new("routing");
    let server = Server::start(&dir);
    let a = &server.addr;
    for (method, target, status) in [
        ("GET", "/", 404),
        ("GET", "/v1", 404),
        ("GET", "/v1/a/b", 404),
        ("PUT", "/v1/", 405),
        ("GET", "/v1/?limit=0", 400),
        ("GET", "/v1/%G0", 400),
        ("POST", "/v1/key", 400), // a counter's increment, without its ?incr
        ("PATCH", "/v1/key", 405),
        ("PATCH", "/v1/txn", 405),
        ("DELETE", "/healthz", 404),
    ] {
        let r = request(a, method, target, b"").unwrap();
        assert_eq!(r.status, status, "{method} {target}");
        assert!(json(&r)["error"].is_string(), "{method} {target}: {}", r.text());
        if status == 405 {
            let allow = match target {
                "/v1/" => "GET, HEAD",
                "/v1/txn" => "POST",
                _ => "GET, HEAD, PUT, POST, DELETE",
            };
            assert_eq!(r.header("Allow"), Some(allow), "{method} {target}");
        }
    }
}

/// Random binary keys and values round-trip through PUT and ?raw; random text round-trips
/// through the JSON write and read, with every kind of escape.
#[test]
fn hostile_keys_and_values_round_trip() {
    let dir = TempDir::new("hostile");
    let server = Server::start(&dir);
    let a = &server.addr;
    let mut rng = Rng::new(17);
    let mut written = Vec::new();
    for i in 0..150 {
        let key_len = 1 + rng.below(64);
        let mut key = rng.bytes(key_len);
        key.extend_from_slice(format!("#{i}").as_bytes()); // unique
        let value_len = rng.below(3000);
        let value = rng.bytes(value_len);
        let r = request(a, "PUT", &format!("/v1/{}", encode_all(&key)), &value).unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
        written.push((key, value));
    }
    let specials =
        ["a=b", "line\nbreak", "sp ace", "sl/ash", "quo\"te", "back\\slash", "é€😀", "\u{0}\u{1f}"];
    for (i, s) in specials.iter().enumerate() {
        let key = format!("{s}-{i}");
        let value = format!("{s}\r\n\t{}", "\u{2028}");
        let body = format!("{{\"value\":{},\"key\":{}}}", json_string(&value), json_string(&key));
        assert_eq!(request(a, "POST", "/v1/write", body.as_bytes()).unwrap().status, 201);
        written.push((key.into_bytes(), value.into_bytes()));
    }
    // Surrogate pairs written as escapes decode to the real character.
    let body = br#"{"key":"emoji","value":"\ud83d\ude00\u00e9"}"#;
    assert_eq!(request(a, "POST", "/v1/write", body).unwrap().status, 201);
    written.push((b"emoji".to_vec(), "😀é".as_bytes().to_vec()));

    let check_all = |addr: &str| {
        for (key, value) in &written {
            let r = request(addr, "GET", &format!("/v1/{}?raw", encode_all(key)), b"").unwrap();
            assert_eq!((r.status, &r.body), (200, value), "key {key:?}");
            if let Ok(text) = std::str::from_utf8(value) {
                let r = request(addr, "GET", &format!("/v1/{}", encode_all(key)), b"").unwrap();
                assert_eq!(json(&r)["value"].as_str(), Some(text));
            }
        }
    };
    check_all(a);
    // And the same after a restart: what went through the log comes back exactly.
    let dir = server.data_dir.clone();
    server.kill9();
    let server = Server::start(&dir);
    check_all(&server.addr);
}

/// Values that are not UTF-8 are refused by the JSON GET with a pointer to ?raw.
#[test]
fn non_utf8_value_json_get_is_406() {
    let dir = TempDir::new("utf8");
    let server = Server::start(&dir);
    assert_eq!(request(&server.addr, "PUT", "/v1/bin", b"\xff\xfe").unwrap().status, 201);
    let r = request(&server.addr, "GET", "/v1/bin", b"").unwrap();
    assert_eq!(r.status, 406);
    assert!(json(&r)["error"].as_str().unwrap().contains("?raw"));
}

/// A body over the limit gets 413 from its Content-Length alone: the server answers before a
/// single body byte is sent. Key and value limits are enforced too.
#[test]
fn oversized_bodies_are_413_before_reading() {
    let dir = TempDir::new("limits");
    let server = Server::start(&dir);
    let a = &server.addr;
    let mut stream = TcpStream::connect(a).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
        .write_all(b"PUT /v1/big HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n")
        .unwrap();
    let r = support::read_reply(&mut stream, false).expect("a 413 before any body byte");
    assert_eq!(r.status, 413);
    assert!(json(&r)["error"].as_str().unwrap().contains("1048576"));
    drop(stream);
    let exact = vec![b'x'; walkv::wal::MAX_VALUE_LEN];
    assert_eq!(request(a, "PUT", "/v1/max", &exact).unwrap().status, 201);
    let over = vec![b'x'; walkv::wal::MAX_VALUE_LEN + 1];
    assert_eq!(request(a, "PUT", "/v1/over", &over).unwrap().status, 413);
    let long_key = "k".repeat(walkv::wal::MAX_KEY_LEN + 1);
    assert_eq!(request(a, "GET", &format!("/v1/{long_key}"), b"").unwrap().status, 400);
    let r = request(a, "GET", "/v1/max?raw", b"").unwrap();
    assert_eq!(r.body.len(), walkv::wal::MAX_VALUE_LEN);
}

/// Chunked uploads are read through the same limit.
#[test]
fn chunked_body_is_limited_too() {
    let dir = TempDir::new("chunked");
    let server = Server::start(&dir);
    let head =
        b"PUT /v1/c HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut msg = head.to_vec();
    msg.extend_from_slice(b"5\r\nhello\r\n0\r\n\r\n");
    let raw = send_raw(&server.addr, &msg).unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 201"), "{}", String::from_utf8_lossy(&raw));
    assert_eq!(request(&server.addr, "GET", "/v1/c?raw", b"").unwrap().body, b"hello");
}

/// Garbage, half requests and protocol violations get a 4xx or a closed connection, and the
/// server goes on answering everyone else.
#[test]
fn malformed_requests_do_not_disturb_the_server() {
    let dir = TempDir::new("malformed");
    let server = Server::start(&dir);
    let a = &server.addr;
    // Each with the status it must get; "": no answer (blank lines before a request are
    // ignored, as RFC 9112 asks; a client that closes mid-body has nobody left to answer).
    let junk: &[(&[u8], &str)] = &[
        (b"\r\n\r\n", ""),
        (b"HELLO\r\n\r\n", "400"),
        (b"GET\r\n\r\n", "400"),
        (b"GET /v1/x HTTP/9.9\r\n\r\n", "505"),
        (b"GET /v1/x HTTP/1.1\r\nHost: t\r\nNo-Colon-Header\r\n\r\n", "400"),
        (b"\xff\xfe\xfd\r\n\r\n", "400"),
        (b"POST /v1/write HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", "400"),
        (b"POST /v1/write HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{\"ke", ""),
        (b"PUT /v1/x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nExpect: teapot\r\n\r\n", "417"),
        (b"PUT /v1/x HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\n\r\n", "411"),
    ];
    for (bytes, want) in junk {
        let raw = send_raw(a, bytes).unwrap_or_default();
        let code = raw.get(9..12).map(String::from_utf8_lossy).unwrap_or_default();
        assert_eq!(&code, want, "{:?}", String::from_utf8_lossy(bytes));
        let r = request(a, "PUT", "/v1/alive", b"yes").unwrap();
        assert!(r.status == 200 || r.status == 201, "after {:?}", String::from_utf8_lossy(bytes));
    }
    let mut rng = Rng::new(23);
    for _ in 0..100 {
        let len = rng.below(200);
        let mut bytes = b"GET /v1/".to_vec();
        bytes.extend(rng.bytes(len));
        bytes.extend_from_slice(b"\r\n\r\n");
        let _ = send_raw(a, &bytes);
    }
    assert_eq!(request(a, "GET", "/v1/alive?raw", b"").unwrap().body, b"yes");
}

/// Requests pipelined on one keep-alive connection are answered in order, also when some
/// answers wait for an fsync (`?sync`) and the ones after them do not.
#[test]
fn keep_alive_pipelining_answers_in_order() {
    let dir = TempDir::new("pipeline");
    let server = Server::start(&dir);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut batch = Vec::new();
    for i in 0..20 {
        let sync = if i % 3 == 0 { "?sync" } else { "" };
        batch.extend_from_slice(
            format!(
                "PUT /v1/p{i}{sync} HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n{}",
                i % 10
            )
            .as_bytes(),
        );
        batch.extend_from_slice(format!("GET /v1/p{i}?raw HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    stream.write_all(&batch).unwrap();
    for i in 0..20 {
        assert_eq!(support::read_reply(&mut stream, false).unwrap().status, 201);
        let r = support::read_reply(&mut stream, false).unwrap();
        assert_eq!(r.body, format!("{}", i % 10).as_bytes());
    }
    stream.write_all(b"GET /v1/p0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(rest.starts_with(b"HTTP/1.1 200"));
}

/// A pipelined answer may wait for the rest of its batch, never for the client: a GET
/// followed by a request whose body is still on its way is answered at once.
#[test]
fn a_pipelined_answer_does_not_wait_for_the_next_request() {
    let dir = TempDir::new("pipeline-wait");
    let server = Server::start(&dir);
    assert_eq!(request(&server.addr, "PUT", "/v1/a", b"1").unwrap().status, 201);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    stream
        .write_all(
            b"GET /v1/a?raw HTTP/1.1\r\nHost: t\r\n\r\nPUT /v1/b HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nab",
        )
        .unwrap();
    let reply = support::read_reply(&mut stream, false).unwrap();
    assert_eq!((reply.status, &reply.body[..]), (200, &b"1"[..]));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    stream.write_all(b"cde").unwrap();
    assert_eq!(support::read_reply(&mut stream, false).unwrap().status, 201);
}

/// `Expect: 100-continue` (curl sends it for large bodies): the server says 100 before the body
/// is sent, and a refused upload is refused before it is sent.
#[test]
fn expect_100_continue() {
    let dir = TempDir::new("continue");
    let server = Server::start(&dir);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream
        .write_all(
            b"PUT /v1/c HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").unwrap();
    assert_eq!(support::read_reply(&mut stream, false).unwrap().status, 201);
    let too_big = format!(
        "PUT /v1/c HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        2 << 20
    );
    stream.write_all(too_big.as_bytes()).unwrap();
    let reply = support::read_reply(&mut stream, false).unwrap();
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(request(&server.addr, "GET", "/v1/c?raw", b"").unwrap().body, b"hello");
}

/// The server listens before it replays its log: meanwhile `/livez` is 200, `/readyz` 503
/// `replaying`, and everything else 503 with `Retry-After: 1`; once it says ready, all is served.
#[test]
fn probes_and_503_while_the_log_is_replayed() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("replaying");
    let server = Server::start(&dir);
    assert_eq!(request(&server.addr, "PUT", "/v1/k", b"kept").unwrap().status, 201);
    server.terminate();

    let child = std::process::Command::new(support::BIN)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&*dir)
        .env("WALKV_REPLAY_DELAY_MS", "3000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = support::KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines().map_while(Result::ok);
    let addr = lines
        .find_map(|l| {
            l.split_once("walkv: listening on http://").map(|(_, rest)| rest).map(str::to_string)
        })
        .expect("it listens");
    let r = request(&addr, "GET", "/livez", b"").unwrap();
    assert_eq!((r.status, r.text()), (200, r#"{"live":true}"#.to_string()));
    let r = request(&addr, "GET", "/readyz", b"").unwrap();
    assert_eq!((r.status, r.text()), (503, r#"{"ready":false,"reason":"replaying"}"#.to_string()));
    for (method, path) in [("GET", "/v1/k"), ("PUT", "/v1/k2"), ("GET", "/status")] {
        let r = request(&addr, method, path, b"v").unwrap();
        assert_eq!(r.status, 503, "{method} {path}: {}", r.text());
        assert_eq!(r.header("Retry-After"), Some("1"));
        assert!(r.text().contains("replaying its log"), "{}", r.text());
    }

    assert!(lines.any(|l| l.contains("walkv: ready on http://")), "it becomes ready");
    assert_eq!(request(&addr, "GET", "/readyz", b"").unwrap().status, 200);
    assert_eq!(request(&addr, "GET", "/v1/k?raw", b"").unwrap().body, b"kept");
    assert_eq!(request(&addr, "GET", "/v1/k2", b"").unwrap().status, 404, "the 503 wrote nothing");
    support::signal(child.0.id(), "TERM");
    let status = support::wait_with_timeout(&mut child.0, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
}

/// Sends one request on a new connection and returns the connection, without reading the answer.
fn send_only(addr: &str, request: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream
}

/// After SIGTERM the server goes on answering while the log is closed: a slow disk (every
/// fsync takes 1.5 s) holds a `--sync always` write in its fsync when the signal comes. A new
/// probe is answered at once, `/readyz` 503 `stopping` and `/livez` 200; the write is answered
/// once its fsync is done, and the probe pipelined behind it then says `stopping` too.
#[test]
fn readyz_is_503_stopping_during_the_drain() {
    let dir = TempDir::new("readyz-drain");
    let envs = [("WALKV_FSYNC_DELAY_MS", "1500")];
    let server = Server::start_env(&dir, &["--sync", "always"], &envs);
    let pipelined = "PUT /v1/k HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nvGET /readyz HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut write = send_only(&server.addr, pipelined);
    std::thread::sleep(Duration::from_millis(300)); // the writer is in the write's fsync now
    support::signal(server.pid(), "TERM");
    std::thread::sleep(Duration::from_millis(300)); // the loop has seen the signal
    let asked = Instant::now();
    let ready = request(&server.addr, "GET", "/readyz", b"").expect("a new probe is answered");
    assert_eq!(
        (ready.status, ready.text()),
        (503, r#"{"ready":false,"reason":"stopping"}"#.to_string())
    );
    assert_eq!(request(&server.addr, "GET", "/livez", b"").unwrap().status, 200);
    assert!(asked.elapsed() < Duration::from_secs(1), "not after the fsync: {:?}", asked.elapsed());
    let written = support::read_reply(&mut write, false).expect("the write is answered");
    assert_eq!(written.status, 201, "{}", written.text());
    let queued = support::read_reply(&mut write, false).expect("the queued probe is answered");
    assert_eq!(
        (queued.status, queued.text()),
        (503, r#"{"ready":false,"reason":"stopping"}"#.to_string())
    );
    let (status, stderr) = server.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// When an fsync fails the log stops taking writes and the server exits (10) for a restart.
/// The periodic fsync is made slow (2 s) and then failing. While it runs, reads and probes are
/// answered at once; a write made then is written, but its acknowledgement waits for that
/// fsync (the oldest acknowledged write not yet fsynced is older than twice the 0.1 s
/// interval), so it gets 503 when the fsync fails, and a probe pipelined behind it then says
/// 503 `log_failed`.
#[test]
fn readyz_is_503_log_failed_after_a_failed_fsync() {
    let dir = TempDir::new("readyz-failed");
    let envs = [("WALKV_FSYNC_DELAY_MS", "2000"), ("WALKV_FAILPOINTS", "fsync=1:io")];
    let server = Server::start_env(&dir, &["--sync-interval", "0.1"], &envs);
    assert_eq!(request(&server.addr, "PUT", "/v1/k", b"v").unwrap().status, 201);
    std::thread::sleep(Duration::from_millis(600)); // the sync thread is in its slow fsync
    let asked = Instant::now();
    let ready = request(&server.addr, "GET", "/readyz", b"").unwrap();
    assert_eq!((ready.status, ready.text()), (200, r#"{"ready":true}"#.to_string()));
    let value = request(&server.addr, "GET", "/v1/k", b"").unwrap();
    assert_eq!((value.status, value.text()), (200, r#"{"value":"v"}"#.to_string()));
    assert!(asked.elapsed() < Duration::from_secs(1), "not after the fsync: {:?}", asked.elapsed());
    let pipelined = "PUT /v1/k2 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nwGET /readyz HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut write = send_only(&server.addr, pipelined);
    let refused = support::read_reply(&mut write, false).expect("the write is answered");
    assert_eq!(refused.status, 503, "{}", refused.text());
    let ready = support::read_reply(&mut write, false).expect("the probe is answered");
    assert_eq!(
        (ready.status, ready.text()),
        (503, r#"{"ready":false,"reason":"log_failed"}"#.to_string())
    );
    let (status, stderr) = server.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(10), "{stderr}");
}

/// SIGHUP (the terminal or ssh session that started the server went away) is a clean stop, as
/// SIGTERM: exit 0, and the log ends in a close marker after the final fsync. Its default would
/// have killed the server without either.
#[test]
fn sighup_is_a_clean_stop() {
    let dir = TempDir::new("sighup");
    let server = Server::start_with(&dir, &["--sync-interval", "3600"]);
    assert_eq!(request(&server.addr, "PUT", "/v1/k", b"v").unwrap().status, 201);
    support::signal(server.pid(), "HUP");
    let (status, stderr) = server.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{stderr}");
    let records = support::log_records(&support::active_log(&dir));
    let last = records.last().expect("records");
    assert_eq!(last.kind, "sync", "the log ends in the close marker: {records:?}");
    let (code, out, _) =
        support::run_walkv(&["dump", "--data-dir", &dir.display().to_string()], &[], b"");
    let out = String::from_utf8_lossy(&out);
    assert!(code == 0 && out.contains("kind=close"), "{out}");
}

/// `--bind [::1]` (and `::1`) is the IPv6 loopback: served without a token.
#[test]
fn ipv6_loopback_needs_no_token() {
    for bind in ["[::1]", "::1"] {
        let dir = TempDir::new("bind-v6");
        let server = Server::start_with(&dir, &["--bind", bind]);
        assert!(server.addr.starts_with("[::1]:"), "{}", server.addr);
        assert_eq!(request(&server.addr, "PUT", "/v1/k", b"v").unwrap().status, 201, "{bind}");
    }
}

/// HTTP edges over a real socket: a 33 KiB head is 431 however it arrives; PUT and
/// the writing POSTs without framing are 411 and write nothing; an HTTP/1.0 keep-alive answer
/// says `Connection: keep-alive`; HTTP/1.2 is served as 1.1.
#[test]
fn http_edges() {
    let dir = TempDir::new("http-edges");
    let server = Server::start(&dir);
    let a = &server.addr;
    let big = format!("GET /v1/k HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "b".repeat(33 << 10));
    let raw = support::send_raw(a, big.as_bytes()).unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 431"), "{}", String::from_utf8_lossy(&raw[..60]));
    let small = format!("GET /v1/k HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "b".repeat(31 << 10));
    assert!(support::send_raw(a, small.as_bytes()).unwrap().starts_with(b"HTTP/1.1 404"));

    for head in
        ["PUT /v1/k HTTP/1.1\r\nHost: t\r\n\r\n", "POST /v1/write HTTP/1.1\r\nHost: t\r\n\r\n"]
    {
        let raw = support::send_raw(a, head.as_bytes()).unwrap();
        assert!(raw.starts_with(b"HTTP/1.1 411 Length Required"), "{head:?}");
    }
    assert_eq!(request(a, "GET", "/v1/k", b"").unwrap().status, 404, "nothing was written");
    let raw = support::send_raw(a, b"POST /sync HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200"), "POST /sync needs no body");

    // HEAD ?raw answers "exists? how long?" for any value (docs/api.md's example).
    assert_eq!(request(a, "PUT", "/v1/photo", &[0xff; 1234]).unwrap().status, 201);
    let head = support::send_raw(
        a,
        b"HEAD /v1/photo?raw HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let head = String::from_utf8_lossy(&head);
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("Content-Length: 1234\r\n"),
        "{head}"
    );
    assert!(head.ends_with("\r\n\r\n"), "no body: {head}");

    let mut stream = TcpStream::connect(a).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..2 {
        stream.write_all(b"GET /livez HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        let reply =
            support::read_reply(&mut stream, false).expect("answered on the same connection");
        assert_eq!(reply.header("Connection"), Some("keep-alive"));
    }
    stream.write_all(b"GET /livez HTTP/1.2\r\nHost: t\r\n\r\n").unwrap();
    let reply = support::read_reply(&mut stream, false).expect("1.2 is served as 1.1");
    assert_eq!((reply.status, reply.header("Connection")), (200, None));
}
