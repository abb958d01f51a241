//! What the server says at its door, through the real binary: every answer's `Date` and
//! `Cache-Control`, the `Host` rule, parameters it does not take, and a body over a limit,
//! which is a 413 the client reads however much it sends and however it sends it.
//!
//! `WALKV_BIG_BODY_MIB` sets the largest body sent (default 1024, that is 1 GiB).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
use support::{Server, request, send_raw};
use walkv::testutil::{TempDir, knob};

/// Every answer has a `Date` of now, and `Cache-Control`: `no-cache` for a key's read (a cache
/// must revalidate with the ETag it keeps), `no-store` for everything else.
#[test]
fn every_answer_has_a_date_and_says_what_caches_may_do() {
    let dir = TempDir::new("door-date");
    let server = Server::start(&dir);
    let a = &server.addr;
    assert_eq!(request(a, "PUT", "/v1/k", b"v").unwrap().status, 201);
    for (method, target, cache) in [
        ("GET", "/v1/k", "no-cache"),
        ("HEAD", "/v1/k", "no-cache"),
        ("GET", "/v1/k?raw", "no-cache"),
        ("GET", "/v1/missing", "no-cache"),
        ("PUT", "/v1/k", "no-store"),
        ("DELETE", "/v1/other", "no-store"),
        ("GET", "/v1/", "no-store"),
        ("GET", "/livez", "no-store"),
        ("GET", "/metrics", "no-store"),
        ("GET", "/status", "no-store"),
        ("GET", "/v1/k?bogus", "no-store"),
        ("GET", "/nowhere", "no-store"),
    ] {
        let r = request(a, method, target, b"").unwrap();
        let date = r.header("Date").unwrap_or_else(|| panic!("{method} {target}: no Date"));
        let when = httpdate::parse_http_date(date).expect("an IMF-fixdate");
        let age = std::time::SystemTime::now().duration_since(when).unwrap_or_default();
        assert!(age < Duration::from_secs(5), "{method} {target}: Date {date}");
        assert_eq!(r.header("Cache-Control"), Some(cache), "{method} {target}");
    }
    let r = request(a, "GET", "/v1/k", b"").unwrap();
    assert!(r.header("ETag").is_some(), "a cache keeps the ETag to revalidate with");
    // A malformed request, answered by the intake itself, has them too.
    let raw = send_raw(a, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 400") && text.contains("\r\nDate: "), "{text}");
}

/// HTTP/1.1 without `Host`, or with two: 400 naming the rule; HTTP/1.0 needs none.
#[test]
fn host_is_required_once() {
    let dir = TempDir::new("door-host");
    let server = Server::start(&dir);
    let a = &server.addr;
    for (head, status, says) in [
        ("GET /livez HTTP/1.1\r\nConnection: close\r\n\r\n", "400", "must carry a Host"),
        ("GET /livez HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400", "more than one Host"),
        ("GET /livez HTTP/1.0\r\n\r\n", "200", "live"),
        ("GET /livez HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnection: close\r\n\r\n", "200", "live"),
    ] {
        let raw = send_raw(a, head.as_bytes()).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{head:?}: {text}");
        assert!(text.contains(says), "{head:?}: {text}");
    }
}

/// A typo of a durability flag is a 400 that names it, and the write does not happen.
#[test]
fn a_misspelt_parameter_is_refused_not_ignored() {
    let dir = TempDir::new("door-params");
    let server = Server::start(&dir);
    let a = &server.addr;
    let r = request(a, "PUT", "/v1/k?snyc", b"v").unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("unknown parameter `snyc`"), "{}", r.text());
    assert_eq!(request(a, "GET", "/v1/k", b"").unwrap().status, 404, "nothing was written");
    let body = br#"{"key":"k","value":"v","tll":5}"#; // `ttl`, misspelt: no TTL would be set
    let r = request(a, "POST", "/v1/write", body).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("unknown field `tll`"), "{}", r.text());
    let r = request(a, "PUT", "/v1/k?tll=5", b"v").unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("unknown parameter `tll`"), "{}", r.text());
    assert_eq!(request(a, "GET", "/v1/k", b"").unwrap().status, 404, "nothing was written");
    let body = br#"{"key_base64":"AP8=","value_base64":"aGk="}"#;
    assert_eq!(request(a, "POST", "/v1/write", body).unwrap().status, 201);
    assert_eq!(request(a, "GET", "/v1/%00%FF", b"").unwrap().text(), r#"{"value":"hi"}"#);
}

/// Sends a head announcing `len` bytes (or chunked), then the whole body, and only then reads:
/// what a client that writes before it reads (Python's `http.client`) does. The server must
/// read and drop the body after its early 413 rather than reset the connection under it.
fn send_all_then_read(addr: &str, target: &str, len: u64, chunked: bool) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {len}")
    };
    let head = format!("PUT {target} HTTP/1.1\r\nHost: t\r\n{framing}\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let block = vec![b'x'; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        if chunked {
            stream.write_all(format!("{n:x}\r\n").as_bytes()).unwrap();
        }
        stream.write_all(&block[..n]).unwrap_or_else(|e| panic!("{len} bytes, at {left}: {e}"));
        if chunked {
            stream.write_all(b"\r\n").unwrap();
        }
        left -= n as u64;
    }
    if chunked {
        stream.write_all(b"0\r\n\r\n").unwrap();
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap_or_else(|e| panic!("{len} bytes: reading the answer: {e}"));
    String::from_utf8_lossy(&raw).into_owned()
}

#[test]
fn a_body_over_the_limit_is_a_413_the_client_reads_however_much_it_sends() {
    let dir = TempDir::new("door-413");
    let server = Server::start(&dir);
    let a = &server.addr;
    let biggest = knob("WALKV_BIG_BODY_MIB", 1024) as u64 * (1 << 20);
    for len in [(1 << 20) + 1, 16 << 20, biggest] {
        for chunked in [false, true] {
            let answer = send_all_then_read(a, "/v1/big", len, chunked);
            assert!(answer.starts_with("HTTP/1.1 413"), "{len} chunked={chunked}: {answer}");
            assert!(answer.contains("Connection: close"), "{answer}");
            assert!(answer.contains("over the limit of 1048576 bytes"), "{answer}");
        }
    }
    // A Content-Length no 64-bit number holds is over every limit too.
    let huge = "PUT /v1/k HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    let answer = String::from_utf8_lossy(&send_raw(a, huge.as_bytes()).unwrap()).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(request(a, "GET", "/v1/big", b"").unwrap().status, 404, "nothing was written");
    assert_eq!(request(a, "GET", "/livez", b"").unwrap().status, 200);
}

/// curl, with `Expect: 100-continue` (its default for big bodies: the 413 comes before any
/// body byte) and without it (the body is on its way when the 413 comes): curl reports 413.
#[test]
fn curl_gets_the_413_with_and_without_expect() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(std::env::var_os("WALKV_REQUIRE_CURL").is_none(), "curl is required");
        eprintln!("skipped: no curl here");
        return;
    }
    let dir = TempDir::new("door-curl");
    let server = Server::start(&dir);
    let body = dir.join("body");
    let file = std::fs::File::create(&body).unwrap();
    file.set_len(knob("WALKV_BIG_BODY_MIB", 1024) as u64 * (1 << 20)).unwrap(); // sparse: quick to read
    for expect in ["Expect: 100-continue", "Expect:"] {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", expect])
            .arg("--upload-file") // a PUT that streams the file
            .arg(&body)
            .arg(format!("http://{}/v1/big", server.addr))
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout);
        assert_eq!(code, "413", "{expect}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{expect}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
