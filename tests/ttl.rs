//! Keys with a time to live, through the real binary: the expiry headers, a key that is never
//! served from its expiry on (GET, HEAD, listings, conditions), the sweep's EXPIRE records in
//! the log and the change feed, restarts and `kill -9` with keys that expired while the server
//! was down, TTLs cleared, kept and refused, and export and import keeping them.

mod support;

use std::time::{Duration, Instant};
use support::feed::Stream;
use support::{Server, log_records, request, run_walkv};
use walkv::testutil::TempDir;

fn json(reply: &support::Reply) -> serde_json::Value {
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", reply.text()))
}

fn now_ms() -> u64 {
    walkv::expiry::now_ms()
}

/// Polls `f` every 20 ms until it is true, for at most `limit`.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

fn status(addr: &str, method: &str, target: &str) -> u16 {
    request(addr, method, target, b"").unwrap().status
}

/// A key written with `?ttl` says when it expires (GET and HEAD), is served until then, and
/// from then on is a 404 everywhere, even before the sweep removes it; the sweep then writes
/// an EXPIRE record, which the change feed shows.
#[test]
fn a_key_expires_and_is_never_served_after() {
    let dir = TempDir::new("ttl-expire");
    let server = Server::start(&dir);
    let a = &server.addr;
    let before = now_ms();
    let r = request(a, "PUT", "/v1/session?ttl=1.2", b"s1").unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(request(a, "PUT", "/v1/plain", b"p").unwrap().status, 201);
    let r = request(a, "GET", "/v1/session", b"").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"value":"s1"}"#));
    let expires: u64 = r.header("X-Walkv-Expires").expect("an expiry header").parse().unwrap();
    assert!((before + 1200..=now_ms() + 1200).contains(&expires), "{expires} vs {before}");
    let ttl: f64 = r.header("X-Walkv-TTL").unwrap().parse().unwrap();
    assert!(ttl > 0.0 && ttl <= 1.2, "{ttl}");
    let head = request(a, "HEAD", "/v1/session", b"").unwrap();
    assert_eq!(head.header("X-Walkv-Expires"), Some(expires.to_string().as_str()));
    let plain = request(a, "GET", "/v1/plain", b"").unwrap();
    assert_eq!(plain.header("X-Walkv-Expires"), None, "a key without a TTL says none");
    let keys = json(&request(a, "GET", "/v1/?prefix=", b"").unwrap());
    assert_eq!(keys["keys"], serde_json::json!(["plain", "session"]));

    // From its expiry on: 404, missing from listings, absent for conditions.
    let wait = expires.saturating_sub(now_ms());
    std::thread::sleep(Duration::from_millis(wait + 5));
    assert!(now_ms() >= expires);
    assert_eq!(status(a, "GET", "/v1/session"), 404);
    assert_eq!(status(a, "HEAD", "/v1/session"), 404);
    let keys = json(&request(a, "GET", "/v1/?prefix=", b"").unwrap());
    assert_eq!(keys["keys"], serde_json::json!(["plain"]));

    // The sweep logs the removal as an expiry, within about a second.
    let feed_has_expire = || {
        let mut feed = Stream::open(a, "/changes?from=0", "");
        feed.rest().iter().any(|l| l.contains(r#""op":"expire","key":"session""#))
    };
    assert!(eventually(Duration::from_secs(3), feed_has_expire), "no expire in the feed");
    let records = log_records(&support::active_log(&dir));
    assert!(records.iter().any(|r| r.kind == "expire" && r.key == b"session"), "{records:?}");
    let mut feed = Stream::open(a, "/changes?from=0", "");
    let lines = feed.rest();
    assert!(lines[0].contains(&format!(r#""expires":{expires}"#)), "{lines:?}");
    // A write over an expired key creates it anew.
    let r = request(a, "PUT", "/v1/session", b"s2").unwrap();
    assert_eq!(r.status, 201, "an expired key is a new key");
}

/// Without `ttl` a write clears the key's TTL; `?keepttl` keeps it; `"ttl"` works in
/// `/v1/write` and bulk lines; a TTL that is not one is refused with a reason, and nothing is
/// written.
#[test]
fn ttls_are_set_kept_cleared_and_checked() {
    let dir = TempDir::new("ttl-rules");
    let server = Server::start(&dir);
    let a = &server.addr;
    let expiry_of = |key: &str| {
        let r = request(a, "GET", &format!("/v1/{key}"), b"").unwrap();
        assert_eq!(r.status, 200, "{key}: {}", r.text());
        r.header("X-Walkv-Expires").map(|e| e.parse::<u64>().unwrap())
    };
    assert_eq!(request(a, "PUT", "/v1/k?ttl=300", b"1").unwrap().status, 201);
    let first = expiry_of("k").expect("a TTL");
    assert_eq!(request(a, "PUT", "/v1/k?keepttl", b"2").unwrap().status, 200);
    assert_eq!(expiry_of("k"), Some(first), "keepttl keeps the very same expiry");
    assert_eq!(request(a, "PUT", "/v1/k?keepttl&ttl=5", b"2b").unwrap().status, 200);
    assert_eq!(expiry_of("k"), Some(first), "keepttl with ttl keeps a TTL the key has");
    assert_eq!(request(a, "PUT", "/v1/k", b"3").unwrap().status, 200);
    assert_eq!(expiry_of("k"), None, "a write without a TTL clears it");
    assert_eq!(request(a, "PUT", "/v1/k?keepttl&ttl=5", b"4").unwrap().status, 200);
    let given = expiry_of("k").expect("... and gives one to a key that has none");
    assert!(given <= now_ms() + 5_000 && given > now_ms(), "{given}");
    let r = request(a, "POST", "/v1/write", br#"{"key":"w","value":"v","ttl":60}"#).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(expiry_of("w").is_some_and(|e| e > now_ms() + 50_000));
    let bulk = b"{\"key\":\"b1\",\"value\":\"x\",\"ttl\":0.5}\n{\"key\":\"b2\",\"value\":\"y\"}\n";
    assert_eq!(request(a, "POST", "/v1/bulk", bulk).unwrap().status, 200);
    assert!(expiry_of("b1").is_some() && expiry_of("b2").is_none());
    for (method, target, body, says) in [
        ("PUT", "/v1/x?ttl=0", &b"v"[..], "greater than 0"),
        ("PUT", "/v1/x?ttl=-1", b"v", "greater than 0"),
        ("PUT", "/v1/x?ttl=1e3", b"v", "a TTL is a number of seconds"),
        ("PUT", "/v1/x?tll=10", b"v", "unknown parameter `tll`"),
        ("POST", "/v1/write", br#"{"key":"x","value":"v","ttl":"10"}"#, "number of seconds"),
        ("POST", "/v1/write?ttl=5", br#"{"key":"x","value":"v"}"#, "unknown parameter `ttl`"),
        ("POST", "/v1/bulk", b"{\"key\":\"x\",\"value\":\"v\",\"ttl\":0}\n", "line 1"),
    ] {
        let r = request(a, method, target, body).unwrap();
        assert_eq!(r.status, 400, "{method} {target}: {}", r.text());
        assert!(r.text().contains(says), "{method} {target}: {}", r.text());
    }
    assert_eq!(status(a, "GET", "/v1/x"), 404, "a refused write writes nothing");
    // A conditional write treats an expired key as absent.
    assert_eq!(request(a, "PUT", "/v1/gone?ttl=0.05", b"v").unwrap().status, 201);
    std::thread::sleep(Duration::from_millis(80));
    let mut raw = std::net::TcpStream::connect(a).unwrap();
    use std::io::{Read, Write};
    raw.write_all(b"PUT /v1/gone HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\nConnection: close\r\nContent-Length: 1\r\n\r\nw").unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "If-None-Match: * on an expired key: {answer}");
}

/// An expiry is absolute and in the log: a key that expired while the server was down is gone
/// after a restart, before any sweep; one that has not keeps its exact expiry; a `kill -9`
/// right after the writes loses nothing of either.
#[test]
fn expiries_survive_kill_and_restart() {
    let dir = TempDir::new("ttl-restart");
    let server = Server::start_with(&dir, &["--sync", "always"]);
    let a = server.addr.clone();
    assert_eq!(request(&a, "PUT", "/v1/short?ttl=0.5", b"s").unwrap().status, 201);
    assert_eq!(request(&a, "PUT", "/v1/long?ttl=600", b"l").unwrap().status, 201);
    assert_eq!(request(&a, "PUT", "/v1/plain", b"p").unwrap().status, 201);
    let long = request(&a, "GET", "/v1/long", b"").unwrap();
    let long_expires = long.header("X-Walkv-Expires").unwrap().to_string();
    server.kill9();
    std::thread::sleep(Duration::from_millis(600));
    let server = Server::start(&dir);
    let a = &server.addr;
    assert_eq!(status(a, "GET", "/v1/short"), 404, "expired while the server was down");
    let long = request(a, "GET", "/v1/long", b"").unwrap();
    assert_eq!(long.header("X-Walkv-Expires"), Some(long_expires.as_str()));
    assert_eq!(status(a, "GET", "/v1/plain"), 200);
    // The sweep writes the expiry after the restart, and a second restart agrees.
    let expired_in_log = || {
        let records = log_records(&support::active_log(&dir));
        records.iter().any(|r| r.kind == "expire" && r.key == b"short")
    };
    assert!(eventually(Duration::from_secs(3), expired_in_log), "no EXPIRE after the restart");
    drop(server);
    let server = Server::start(&dir);
    assert_eq!(status(&server.addr, "GET", "/v1/short"), 404);
    assert_eq!(status(&server.addr, "GET", "/v1/long"), 200);
}

/// Export keeps what is left of each TTL (`"ttl"` in jsonl, `PXAT` in resp) and leaves expired
/// keys out; import of the jsonl gives the keys their TTLs back; dump shows the records.
#[test]
fn export_import_and_dump_keep_expiries() {
    let dir = TempDir::new("ttl-export");
    let server = Server::start(&dir);
    let a = server.addr.clone();
    assert_eq!(request(&a, "PUT", "/v1/keep?ttl=300", b"k").unwrap().status, 201);
    assert_eq!(request(&a, "PUT", "/v1/plain", b"p").unwrap().status, 201);
    assert_eq!(request(&a, "PUT", "/v1/gone?ttl=0.05", b"g").unwrap().status, 201);
    let expires: u64 = request(&a, "GET", "/v1/keep", b"")
        .unwrap()
        .header("X-Walkv-Expires")
        .unwrap()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let data_dir = dir.to_str().unwrap();
    let (code, out, err) = run_walkv(&["export", "--data-dir", data_dir], &[], b"");
    assert_eq!(code, 0, "{err}");
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "the expired key is left out: {text}");
    let ttl = lines[0]["ttl"].as_f64().expect("keep has a ttl");
    assert!(ttl > 290.0 && ttl <= 300.0, "{ttl}");
    assert!(lines[1].get("ttl").is_none(), "plain has none: {text}");
    let (code, out, _) =
        run_walkv(&["export", "--data-dir", data_dir, "--format", "resp"], &[], b"");
    assert_eq!(code, 0);
    let resp = String::from_utf8_lossy(&out);
    assert!(resp.contains(&format!("$4\r\nPXAT\r\n$13\r\n{expires}\r\n")), "{resp:?}");
    let (code, out, _) = run_walkv(&["dump", "--data-dir", data_dir], &[], b"");
    assert_eq!(code, 0);
    let dump = String::from_utf8_lossy(&out);
    assert!(
        dump.contains("SET-EXPIRING") && dump.contains(&format!("expires={expires}")),
        "{dump}"
    );
    drop(server);
    let other = TempDir::new("ttl-import");
    let server = Server::start(&other);
    let addr = server.addr.clone();
    let (code, _, err) = run_walkv(&["import", "-", "--addr", &addr], &[], text.as_bytes());
    assert_eq!(code, 0, "{err}");
    let r = request(&addr, "GET", "/v1/keep", b"").unwrap();
    let imported: u64 = r.header("X-Walkv-Expires").expect("the TTL came back").parse().unwrap();
    assert!(imported.abs_diff(expires) < 5_000, "{imported} vs {expires}");
    assert_eq!(request(&addr, "GET", "/v1/plain", b"").unwrap().header("X-Walkv-Expires"), None);
}

/// The CLI: `walkv set --ttl` sets one, a bad one is a usage error before anything is sent.
#[test]
fn set_ttl_from_the_command_line() {
    let dir = TempDir::new("ttl-cli");
    let server = Server::start(&dir);
    let addr = server.addr.clone();
    let (code, _, err) = run_walkv(&["set", "k", "v", "--ttl", "30", "--addr", &addr], &[], b"");
    assert_eq!(code, 0, "{err}");
    let r = request(&addr, "GET", "/v1/k", b"").unwrap();
    assert!(r.header("X-Walkv-TTL").is_some_and(|t| t.parse::<f64>().unwrap() > 25.0));
    let (code, _, err) = run_walkv(&["set", "k", "v", "--ttl", "0", "--addr", &addr], &[], b"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--ttl"), "{err}");
}

/// Reads never depend on the sweep: with a disk so slow that the sweep's EXPIRE record waits
/// 1.5 s to be written (the key stays in the map meanwhile), the expired key is already a 404
/// and out of listings.
#[test]
fn an_expired_key_is_not_served_while_its_expiry_waits_for_a_slow_disk() {
    let dir = TempDir::new("ttl-slow-disk");
    let server = Server::start_env(&dir, &[], &[("WALKV_WRITE_DELAY_MS", "1500")]);
    let a = &server.addr;
    let r = request(a, "PUT", "/v1/session?ttl=2", b"s").unwrap(); // answered once written
    assert_eq!(r.status, 201, "{}", r.text());
    let expires: u64 = request(a, "GET", "/v1/session", b"")
        .unwrap()
        .header("X-Walkv-Expires")
        .unwrap()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(expires.saturating_sub(now_ms()) + 150));
    // The sweep has given the key its EXPIRE by now; the slow write keeps it in the map.
    assert_eq!(status(a, "GET", "/v1/session"), 404, "served after its expiry");
    let keys = json(&request(a, "GET", "/v1/?prefix=", b"").unwrap());
    assert_eq!(keys["keys"], serde_json::json!([]));
    let metrics = request(a, "GET", "/metrics", b"").unwrap().text();
    assert!(metrics.contains("walkv_expiring_keys 1\n"), "still in the map: {metrics}");
}
