//! The API's rules, tested against a store in a temp directory, without sockets.

use super::*;
use crate::testutil::TempDir;

/// A store in a temp dir; keep the `TempDir` alive as long as the store.
fn store(name: &str) -> (TempDir, Store) {
    let dir = TempDir::new(name);
    let options = crate::wal::Options { mode: crate::wal::SyncMode::Interval, boot: [0; 16] };
    let store = Store::open(&dir, options).unwrap().0;
    (dir, store)
}

fn call(store: &mut Store, method: &str, target: &str, body: &[u8]) -> Response {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let stats = Stats::default();
    let serving = Serving {
        compaction: &stats,
        stopping: false,
        waiting_writes: 0,
        acks_wait_for_fsync: false,
        wait_over: false,
        watching_reads: 0,
    };
    let response = handle(
        store,
        &Request { method, path, query, headers: &[], body, prepared: None },
        &Auth::none(),
        serving,
    );
    settle(store);
    response
}

/// Waits until the writes handed to the log are in the map, as the server does before it
/// sends their answers (a write the log failed is not).
fn settle(store: &mut Store) {
    let _ = store.settle();
}

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The first contract: POST /v1/write then GET /v1/{key}.
#[test]
fn original_contract() {
    let (_dir, mut s) = store("contract");
    let r = call(&mut s, "POST", "/v1/write", br#"{"key":"greeting","value":"hello"}"#);
    assert_eq!((r.status, text(&r)), (201, r#"{"seq":1}"#.to_string()));
    let r = call(&mut s, "GET", "/v1/greeting", b"");
    assert_eq!((r.status, r.content_type, text(&r)), (200, JSON, r#"{"value":"hello"}"#.into()));
    let r = call(&mut s, "GET", "/v1/missing", b"");
    assert_eq!((r.status, text(&r)), (404, r#"{"error":"key not found"}"#.to_string()));
}

/// Each malformed write body gets 400 and a message naming the problem.
#[test]
fn bad_write_bodies_are_400_with_reason() {
    let (_dir, mut s) = store("bad");
    let cases: &[(&[u8], &str)] = &[
        (b"", "empty body"),
        (b"{", "invalid JSON"),
        (b"[]", "expected a JSON object"),
        (br#"{"value":"v"}"#, "missing field `key`"),
        (br#"{"key":"k"}"#, "missing field `value`"),
        (br#"{"key":1,"value":"v"}"#, "`key` must be a string, not a number"),
        (br#"{"key":"k","value":null}"#, "`value` must be a string, not null"),
        (br#"{"key":"","value":"v"}"#, "`key` must not be empty"),
        (br#"{"key":"a","value":"b","tll":5}"#, "unknown field `tll`"),
        (br#"{"key":"a","value":"b","ttl":"5"}"#, "`ttl` must be a number of seconds"),
        (br#"{"key":"a","value":"b","extra":[]}"#, "unknown field `extra`"),
        (br#"{"key":"a","key_base64":"YQ==","value":"v"}"#, "`key` is given more than once"),
        (br#"{"key":"a","value_base64":"!"}"#, "field `value_base64`"),
        (br#"{"key":"a","key":"b","value":"v"}"#, "more than once"),
        (br#"{"key":"\ud800","value":"v"}"#, "surrogate"),
    ];
    for (body, reason) in cases {
        let r = call(&mut s, "POST", "/v1/write", body);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
        assert!(text(&r).contains(reason), "{} -> {}", String::from_utf8_lossy(body), text(&r));
    }
    assert!(s.is_empty(), "a rejected write must change nothing");
}

/// Field order, whitespace and escapes do not matter; empty values are values; bytes that are
/// not text come as `key_base64` / `value_base64`, as `bulk` and `export` carry them.
#[test]
fn write_body_is_read_exactly() {
    let (_dir, mut s) = store("exact");
    let body = " {\n \"value\" : \"\\u00e9\\ud83d\\ude00\\n\" ,\"key\":\"k\"}\t";
    assert_eq!(call(&mut s, "POST", "/v1/write", body.as_bytes()).status, 201);
    assert_eq!(s.get(b"k"), Some("é😀\n".as_bytes()));
    assert_eq!(call(&mut s, "POST", "/v1/write", br#"{"key":"e","value":""}"#).status, 201);
    assert_eq!(text(&call(&mut s, "GET", "/v1/e", b"")), r#"{"value":""}"#);
    let body = br#"{"key_base64":"AP8=","value_base64":"/wA="}"#;
    assert_eq!(call(&mut s, "POST", "/v1/write", body).status, 201);
    assert_eq!(s.get(b"\x00\xff"), Some(&b"\xff\x00"[..]));
}

/// Every endpoint refuses, with 400 naming it, a parameter it does not take, a repeated one and
/// a switch value it does not know; the refused request writes nothing.
#[test]
fn strict_at_the_door() {
    let (_dir, mut s) = store("strict");
    call(&mut s, "PUT", "/v1/k", b"v");
    let write = br#"{"key":"k","value":"w"}"#;
    for (method, target, body, says) in [
        (
            "PUT",
            "/v1/k?snyc",
            &b"w"[..],
            "unknown parameter `snyc`; PUT /v1/{key} takes `sync`, `ttl`, `keepttl`",
        ),
        ("PUT", "/v1/k?sync&sync", b"w", "`sync` is given more than once"),
        ("PUT", "/v1/k?raw", b"w", "unknown parameter `raw`"),
        ("DELETE", "/v1/k?foo=bar", b"", "unknown parameter `foo`; DELETE /v1/{key}"),
        (
            "GET",
            "/v1/k?rwa",
            b"",
            "unknown parameter `rwa`; GET /v1/{key} takes `raw`, `index`, `wait`",
        ),
        ("GET", "/v1/k?raw&raw", b"", "`raw` is given more than once"),
        ("HEAD", "/v1/k?sync", b"", "unknown parameter `sync`"),
        ("POST", "/v1/write?sync=2", write, "`sync` is a switch"),
        ("POST", "/v1/write?raw", write, "POST /v1/write takes only `sync`"),
        ("PUT", "/v1/k?tll=5", b"w", "unknown parameter `tll`"),
        ("PUT", "/v1/k?ttl=5s", b"w", "`ttl`: a TTL is a number of seconds"),
        ("POST", "/v1/k?incr=1.5", b"", "`incr` must be a signed 64-bit decimal integer"),
        ("POST", "/v1/k?incr=+1", b"", "`incr` must be a signed 64-bit decimal integer"),
        ("POST", "/v1/k?inc", b"", "unknown parameter `inc`; POST /v1/{key} takes `sync`, `incr`"),
        ("POST", "/v1/k", b"", "add ?incr"),
        ("POST", "/v1/txn?x", b"", "POST /v1/txn takes only `sync`"),
        ("POST", "/v1/bulk?x", b"", "POST /v1/bulk takes only `sync`"),
        ("GET", "/v1/?prefix=a&prefix=b", b"", "`prefix` is given more than once"),
        ("GET", "/status?verbose", b"", "/status takes no parameters"),
        ("GET", "/metrics?name=x", b"", "/metrics takes no parameters"),
        ("GET", "/livez?x", b"", "/livez takes no parameters"),
        ("GET", "/readyz?x", b"", "/readyz takes no parameters"),
        ("POST", "/sync?now", b"", "POST /sync takes no parameters"),
        ("POST", "/compact?now", b"", "POST /compact takes no parameters"),
    ] {
        let r = call(&mut s, method, target, body);
        assert_eq!(r.status, 400, "{method} {target}: {}", text(&r));
        assert!(!r.sync && !r.compact, "{method} {target}");
        if method != "HEAD" {
            assert!(text(&r).contains(says), "{method} {target}: {}", text(&r));
        }
    }
    assert_eq!(s.get(b"k"), Some(&b"v"[..]), "a refused request writes nothing");
}

/// PUT, DELETE, HEAD and ?raw, with percent-encoded keys holding any bytes.
#[test]
fn curl_style_endpoints() {
    let (_dir, mut s) = store("curl");
    assert_eq!(call(&mut s, "PUT", "/v1/a%2Fb%3Dc%20d%00%FF", b"\x00\xffbin").status, 201);
    assert_eq!(s.get(b"a/b=c d\x00\xff"), Some(&b"\x00\xffbin"[..]));
    assert_eq!(call(&mut s, "PUT", "/v1/a%2Fb%3Dc%20d%00%FF", b"v2").status, 200);
    let r = call(&mut s, "GET", "/v1/a%2fb%3dc%20d%00%ff?raw", b"");
    assert_eq!((r.status, r.content_type, r.body.as_slice()), (200, OCTETS, &b"v2"[..]));
    assert_eq!(call(&mut s, "PUT", "/v1/bin", b"\xff").status, 201);
    let r = call(&mut s, "GET", "/v1/bin", b"");
    assert_eq!(r.status, 406);
    assert!(text(&r).contains("?raw"));
    assert_eq!(call(&mut s, "GET", "/v1/bin?raw", b"").body, b"\xff");
    assert_eq!(call(&mut s, "HEAD", "/v1/bin", b"").status, 406);
    let r = call(&mut s, "DELETE", "/v1/bin", b"");
    assert_eq!((r.status, text(&r)), (200, r#"{"deleted":true,"seq":4}"#.to_string()));
    let r = call(&mut s, "DELETE", "/v1/bin", b"");
    assert_eq!((r.status, text(&r)), (200, r#"{"deleted":false}"#.to_string()));
    assert_eq!(call(&mut s, "GET", "/v1/bin", b"").status, 404);
}

/// Unknown paths, wrong methods, bad keys: the right status and a JSON error.
#[test]
fn routing_errors() {
    let (_dir, mut s) = store("routing");
    for (method, target, status) in [
        ("GET", "/", 404),
        ("GET", "/v2/x", 404),
        ("GET", "/v1/a/b", 404),
        ("DELETE", "/v1/", 405),
        ("GET", "/v1/%zz", 400),
        ("GET", "/v1/%4", 400),
        ("GET", "/v1/%+1", 400),
        ("PATCH", "/v1/key", 405),
        ("PATCH", "/v1/write", 405),
    ] {
        let r = call(&mut s, method, target, b"");
        assert_eq!(r.status, status, "{method} {target}");
        assert!(json::parse(&r.body).is_ok() && text(&r).starts_with("{\"error\":"));
    }
    let r = call(&mut s, "PATCH", "/v1/key", b"");
    assert_eq!(r.headers, vec![("Allow", KEY_METHODS.to_string())]);
    let r = call(&mut s, "PATCH", "/v1/txn", b"");
    assert_eq!(r.headers, vec![("Allow", "POST".to_string())], "the transaction endpoint");
    let long = "k".repeat(MAX_KEY_LEN + 1);
    assert_eq!(call(&mut s, "GET", &format!("/v1/{long}"), b"").status, 400);
    let big = vec![b'x'; MAX_VALUE_LEN + 1];
    assert_eq!(call(&mut s, "PUT", "/v1/big", &big).status, 413);
}

/// `/status` reports readiness and sequence numbers; once the log has failed it says not
/// ready (503), writes and `POST /sync` get 503, and reads go on.
#[test]
fn status_and_a_failed_log() {
    let (_dir, mut s) = store("status");
    assert_eq!(call(&mut s, "PUT", "/v1/k", b"v").status, 201);
    let r = call(&mut s, "GET", "/status", b"");
    let (disk, reserved) = (s.disk_bytes(), s.reserved_bytes());
    let memory = s.memory().0;
    assert!(disk > reserved && reserved > 0, "{disk} {reserved}");
    assert_eq!(
        (r.status, text(&r)),
        (
            200,
            format!(
                "{{\"ready\":true,\"last_seq\":1,\"synced_seq\":0,\"disk_bytes\":{disk},\
                 \"reserved_bytes\":{reserved},\"live_bytes\":23,\"compacting\":false,\"compactions\":0,\
                 \"last_compaction_error\":null,\"write_running_seconds\":null,\
                 \"fsync_running_seconds\":null,\
                 \"queued_writes\":0,\"queued_bytes\":0,\"waiting_writes\":0,\
                 \"acks_wait_for_fsync\":false,\"memory_bytes\":{memory},\
                 \"max_memory_bytes\":null}}"
            )
        )
    );
    let r = call(&mut s, "POST", "/sync", b"");
    assert_eq!((r.status, r.sync, text(&r)), (200, true, r#"{"synced_seq":1}"#.into()));
    assert!(call(&mut s, "PUT", "/v1/k?sync", b"w").sync);
    assert!(!call(&mut s, "PUT", "/v1/k?syncx", b"w").sync);
    assert!(!call(&mut s, "GET", "/v1/k?sync", b"").sync, "only writes wait for an fsync");

    s.fail_log_for_test();
    let r = call(&mut s, "GET", "/status", b"");
    assert_eq!(r.status, 503);
    assert!(text(&r).contains(r#""ready":false"#), "{}", text(&r));
    assert_eq!(call(&mut s, "PUT", "/v1/k2", b"v").status, 503);
    assert_eq!(call(&mut s, "POST", "/v1/write", br#"{"key":"a","value":"b"}"#).status, 503);
    assert_eq!(call(&mut s, "POST", "/sync", b"").status, 503);
    assert_eq!(call(&mut s, "GET", "/v1/k?raw", b"").body, b"w");
}

fn serve(stats: &Stats) -> Serving<'_> {
    Serving {
        compaction: stats,
        stopping: false,
        waiting_writes: 0,
        acks_wait_for_fsync: false,
        wait_over: false,
        watching_reads: 0,
    }
}

/// The probes: `/livez` always 200; `/readyz` 503 once the log failed or a stop began; both
/// without the token, and nothing else is opened by that.
#[test]
fn probes_answer_without_the_token() {
    let (_dir, mut s) = store("probes");
    let auth = Auth::from_token("t0ken").unwrap();
    let stats = Stats::default();
    let probe = |s: &mut Store, method, path, stopping| {
        let req = Request { method, path, query: None, headers: &[], body: b"", prepared: None };
        let r = handle(
            s,
            &req,
            &auth,
            Serving {
                compaction: &stats,
                stopping,
                waiting_writes: 0,
                acks_wait_for_fsync: false,
                wait_over: false,
                watching_reads: 0,
            },
        );
        (r.status, String::from_utf8(r.body).unwrap())
    };
    assert_eq!(probe(&mut s, "GET", "/livez", false), (200, r#"{"live":true}"#.into()));
    assert_eq!(probe(&mut s, "HEAD", "/livez", false).0, 200);
    assert_eq!(probe(&mut s, "GET", "/readyz", false), (200, r#"{"ready":true}"#.into()));
    let stopping = (503, r#"{"ready":false,"reason":"stopping"}"#.to_string());
    assert_eq!(probe(&mut s, "GET", "/readyz", true), stopping);
    assert_eq!(probe(&mut s, "GET", "/livez", true).0, 200);
    assert_eq!(probe(&mut s, "POST", "/readyz", false).0, 401, "only GET and HEAD are open");
    assert_eq!(probe(&mut s, "GET", "/status", false).0, 401);
    assert_eq!(probe(&mut s, "GET", "/livez/", false).0, 401);
    assert_eq!(call(&mut s, "DELETE", "/livez", b"").status, 405);
    s.fail_log_for_test();
    let failed = (503, r#"{"ready":false,"reason":"log_failed"}"#.to_string());
    assert_eq!(probe(&mut s, "GET", "/readyz", false), failed);
    assert_eq!(probe(&mut s, "GET", "/livez", false).0, 200);
}

/// While replaying: alive, not ready, and everything else 503 with `Retry-After`.
#[test]
fn answers_while_replaying() {
    let r = while_replaying("GET", "/livez");
    assert_eq!((r.status, text(&r)), (200, r#"{"live":true}"#.into()));
    let r = while_replaying("HEAD", "/readyz");
    assert_eq!((r.status, text(&r)), (503, r#"{"ready":false,"reason":"replaying"}"#.into()));
    for (method, path) in [("GET", "/v1/k"), ("PUT", "/v1/k"), ("GET", "/status")] {
        let r = while_replaying(method, path);
        assert_eq!(r.status, 503, "{method} {path}");
        assert_eq!(r.headers, vec![("Retry-After", "1".to_string())]);
        assert!(text(&r).contains("replaying its log"), "{}", text(&r));
    }
}

/// With a token, every endpoint needs `Authorization: Bearer <token>`; without it: 401, a
/// JSON error, `WWW-Authenticate`, and nothing read or written.
#[test]
fn token_guards_every_endpoint() {
    let (_dir, mut s) = store("auth");
    let auth = Auth::from_token("t0ken").unwrap();
    let good = [("Authorization", "Bearer t0ken")];
    let wrong = [("Authorization", "Bearer t0keN")];
    for (method, path, body) in [
        ("PUT", "/v1/k", &b"v"[..]),
        ("GET", "/v1/k", b""),
        ("DELETE", "/v1/k", b""),
        ("POST", "/v1/write", br#"{"key":"k","value":"v"}"#),
        ("GET", "/status", b""),
        ("POST", "/sync", b""),
        ("GET", "/nowhere", b""),
    ] {
        for headers in [&wrong[..], &[]] {
            let req = Request { method, path, query: None, headers, body, prepared: None };
            let r = handle(&mut s, &req, &auth, serve(&Stats::default()));
            assert_eq!(r.status, 401, "{method} {path}");
            assert!(text(&r).starts_with("{\"error\":"));
            assert_eq!(r.headers[0].0, "WWW-Authenticate");
        }
    }
    assert!(s.is_empty(), "nothing was written without the token");
    let req = Request {
        method: "PUT",
        path: "/v1/k",
        query: None,
        headers: &good,
        body: b"v",
        prepared: None,
    };
    assert_eq!(handle(&mut s, &req, &auth, serve(&Stats::default())).status, 201);
}

/// Random request lines and bodies never panic the router (`WALKV_FUZZ_ITERS` / 4 of them).
#[test]
fn random_requests_never_panic() {
    let (_dir, mut s) = store("fuzz");
    let mut rng = crate::testutil::Rng::new(crate::testutil::knob("WALKV_FUZZ_SEED", 11));
    let pieces = ["/v1/", "write", "%", "%2F", "/", "?raw", "a", "\u{e9}", "%zz", "?"];
    let methods = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", ""];
    for _ in 0..crate::testutil::knob("WALKV_FUZZ_ITERS", 20_000) / 4 {
        let target: String = (0..rng.below(6)).map(|_| pieces[rng.below(pieces.len())]).collect();
        let len = rng.below(40);
        let body = rng.bytes(len);
        let r = call(&mut s, methods[rng.below(methods.len())], &target, &body);
        assert!((200..600).contains(&r.status));
    }
}

fn call_with(
    store: &mut Store,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let stats = Stats::default();
    let request = Request { method, path, query, headers, body, prepared: None };
    let serving = Serving {
        compaction: &stats,
        stopping: false,
        waiting_writes: 0,
        acks_wait_for_fsync: false,
        wait_over: false,
        watching_reads: 0,
    };
    let response = handle(store, &request, &Auth::none(), serving);
    settle(store);
    response
}

fn etag_of(r: &Response) -> Option<String> {
    r.etag.map(|seq| format!("\"{seq}\""))
}

/// Every answer carrying a value, and every SET, has `ETag: "SEQ"`, the seq of the record
/// that set the value; a DELETE's answer has none.
#[test]
fn etags_are_the_seq_of_the_setting_record() {
    let (_dir, mut s) = store("etags");
    let r = call(&mut s, "PUT", "/v1/k", b"v1");
    assert_eq!((r.status, etag_of(&r)), (201, Some(String::from("\"1\""))));
    assert_eq!(etag_of(&call(&mut s, "PUT", "/v1/other", b"x")), Some(String::from("\"2\"")));
    let r = call(&mut s, "POST", "/v1/write", br#"{"key":"k","value":"v2"}"#);
    assert_eq!((r.status, etag_of(&r)), (201, Some(String::from("\"3\""))));
    for target in ["/v1/k", "/v1/k?raw"] {
        for method in ["GET", "HEAD"] {
            assert_eq!(
                etag_of(&call(&mut s, method, target, b"")),
                Some(String::from("\"3\"")),
                "{method} {target}"
            );
        }
    }
    assert_eq!(etag_of(&call(&mut s, "GET", "/v1/missing", b"")), None);
    let r = call(&mut s, "DELETE", "/v1/other", b"");
    assert_eq!((text(&r), etag_of(&r)), (r#"{"deleted":true,"seq":4}"#.to_string(), None));
}

/// `If-Match` and `If-None-Match: *` on PUT, POST /v1/write and DELETE: a failed condition is
/// 412 with the current ETag (or null) and writes nothing.
#[test]
fn compare_and_set() {
    let (_dir, mut s) = store("cas");
    let absent = [("if-none-match", "*")];
    let r = call_with(&mut s, "PUT", "/v1/k", &absent, b"first");
    assert_eq!((r.status, etag_of(&r)), (201, Some(String::from("\"1\""))));
    let r = call_with(&mut s, "PUT", "/v1/k", &absent, b"second");
    assert_eq!((r.status, text(&r)), (412, r#"{"error":"precondition failed","etag":"1"}"#.into()));
    assert_eq!(etag_of(&r), Some(String::from("\"1\"")));
    let r = call_with(&mut s, "PUT", "/v1/k", &[("if-match", "\"1\"")], b"second");
    assert_eq!((r.status, etag_of(&r)), (200, Some(String::from("\"2\""))));
    let r = call_with(&mut s, "PUT", "/v1/k", &[("if-match", "\"1\"")], b"lost update");
    assert_eq!((r.status, text(&r)), (412, r#"{"error":"precondition failed","etag":"2"}"#.into()));
    let body = br#"{"key":"k","value":"third"}"#;
    assert_eq!(call_with(&mut s, "POST", "/v1/write", &[("if-match", "\"1\"")], body).status, 412);
    assert_eq!(call_with(&mut s, "POST", "/v1/write", &absent, body).status, 412);
    assert_eq!(call_with(&mut s, "POST", "/v1/write", &[("if-match", "\"2\"")], body).status, 201);
    let r = call_with(&mut s, "PUT", "/v1/new", &[("if-match", "*")], b"x");
    assert_eq!(
        (r.status, text(&r)),
        (412, r#"{"error":"precondition failed","etag":null}"#.into())
    );
    assert_eq!(etag_of(&r), None);
    assert_eq!(call_with(&mut s, "DELETE", "/v1/k", &[("if-match", "\"2\"")], b"").status, 412);
    assert_eq!(call_with(&mut s, "DELETE", "/v1/gone", &[("if-match", "*")], b"").status, 412);
    assert_eq!(s.get(b"k"), Some(&b"third"[..]));
    assert_eq!(s.last_issued(), 3, "no failed condition wrote a record");
    let r = call_with(&mut s, "DELETE", "/v1/k", &[("if-match", "\"3\"")], b"");
    assert_eq!((r.status, text(&r)), (200, r#"{"deleted":true,"seq":4}"#.into()));
    assert_eq!(s.get(b"new"), None);
}

/// Conditions on reads: `If-None-Match` with the current ETag is 304 without a body (a cache
/// revalidating), `If-Match` that fails is 412; a malformed header is a 400 on every method.
#[test]
fn conditional_reads_and_bad_headers() {
    let (_dir, mut s) = store("cond-read");
    call(&mut s, "PUT", "/v1/k", b"v");
    let r = call_with(&mut s, "GET", "/v1/k", &[("if-none-match", "\"1\"")], b"");
    assert_eq!((r.status, r.body.len(), etag_of(&r)), (304, 0, Some(String::from("\"1\""))));
    let r = call_with(&mut s, "GET", "/v1/k?raw", &[("if-none-match", "\"0\", W/\"9\"")], b"");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"v"[..]));
    assert_eq!(call_with(&mut s, "GET", "/v1/k", &[("if-match", "\"7\"")], b"").status, 412);
    assert_eq!(call_with(&mut s, "GET", "/v1/nope", &[("if-none-match", "*")], b"").status, 404);
    for method in ["GET", "PUT", "DELETE"] {
        let r = call_with(&mut s, method, "/v1/k", &[("if-match", "1")], b"x");
        assert_eq!(r.status, 400, "{method}");
        assert!(text(&r).contains("bad If-Match header"), "{}", text(&r));
    }
    let r = call_with(
        &mut s,
        "POST",
        "/v1/write",
        &[("if-none-match", "?")],
        br#"{"key":"k","value":"x"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(s.get(b"k"), Some(&b"v"[..]), "a bad condition writes nothing");
}

/// Listing: byte order, prefix, after, limit, next; paging walks every key exactly once; HEAD
/// has no body; the errors.
#[test]
fn listing_pages() {
    let (_dir, mut s) = store("list");
    for key in ["b", "a", "a/1", "a/2", "ab", "c"] {
        call(&mut s, "PUT", &format!("/v1/{}", crate::client::encode_key(key.as_bytes())), b"v");
    }
    let r = call(&mut s, "GET", "/v1/", b"");
    assert_eq!(
        (r.status, text(&r)),
        (200, r#"{"keys":["a","a/1","a/2","ab","b","c"],"next":null}"#.into())
    );
    let r = call(&mut s, "GET", "/v1/?prefix=a%2F", b"");
    assert_eq!(text(&r), r#"{"keys":["a/1","a/2"],"next":null}"#);
    let r = call(&mut s, "GET", "/v1/?prefix=a&limit=2", b"");
    assert_eq!(text(&r), r#"{"keys":["a","a/1"],"next":"a/1"}"#);
    let r = call(&mut s, "GET", "/v1/?prefix=a&limit=2&after=a%2F1", b"");
    assert_eq!(text(&r), r#"{"keys":["a/2","ab"],"next":null}"#, "exactly the rest: no next");
    let r = call(&mut s, "GET", "/v1/?prefix=a&limit=2&after=ab", b"");
    assert_eq!(text(&r), r#"{"keys":[],"next":null}"#);
    let r = call(&mut s, "GET", "/v1/?after=b&limit=1", b"");
    assert_eq!(text(&r), r#"{"keys":["c"],"next":null}"#);
    assert_eq!(call(&mut s, "HEAD", "/v1/", b"").status, 200);
    let r = call(&mut s, "GET", "/v1/?limit=10001", b"");
    assert_eq!(r.status, 400);
    assert!(text(&r).contains("limit must be a number from 1 to 10000"), "{}", text(&r));
    assert_eq!(call(&mut s, "PUT", "/v1/", b"").status, 405, "the listing is GET or HEAD");
    call(&mut s, "PUT", "/v1/%FF%00", b"v");
    let r = call(&mut s, "GET", "/v1/", b"");
    assert_eq!(r.status, 406);
    assert!(text(&r).contains("&encoding=base64"), "{}", text(&r));
    assert_eq!(call(&mut s, "GET", "/v1/?prefix=a", b"").status, 200, "only the page counts");
    let r = call(&mut s, "GET", "/v1/?encoding=base64&limit=6", b"");
    assert_eq!(text(&r), r#"{"keys":["YQ==","YS8x","YS8y","YWI=","Yg==","Yw=="],"next":"Yw=="}"#);
    let r = call(&mut s, "GET", "/v1/?encoding=base64&after=Yw%3D%3D", b"");
    assert_eq!(text(&r), r#"{"keys":["/wA="],"next":null}"#);
}

/// Random keys, paged with random limits, come out exactly as a sorted oracle has them.
#[test]
fn paging_matches_a_sorted_oracle() {
    let (_dir, mut s) = store("list-oracle");
    let mut rng = crate::testutil::Rng::new(21);
    let mut oracle = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let len = 1 + rng.below(4);
        let key: Vec<u8> = (0..len).map(|_| b"ab\x00\xff"[rng.below(4)]).collect();
        s.set(&key, b"").unwrap();
        oracle.insert(key);
    }
    s.settle().unwrap();
    for prefix in [&b""[..], b"a", b"\xff", b"ab\x00"] {
        let mut walked = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut target = format!(
                "/v1/?encoding=base64&limit={}&prefix={}",
                1 + rng.below(40),
                crate::client::encode_key(prefix)
            );
            if let Some(a) = &after {
                target.push_str(&format!("&after={}", crate::client::encode_key(a.as_bytes())));
            }
            let r = call(&mut s, "GET", &target, b"");
            assert_eq!(r.status, 200, "{}", text(&r));
            let page = json::parse(&r.body).unwrap();
            let json::Value::Object(members) = page else { panic!() };
            let json::Value::Array(keys) = &members[0].1 else { panic!() };
            for k in keys {
                let json::Value::String(k) = k else { panic!() };
                walked.push(crate::base64::decode(k.as_bytes()).unwrap());
            }
            match &members[1].1 {
                json::Value::String(next) => after = Some(next.clone()),
                _ => break,
            }
        }
        let expected: Vec<Vec<u8>> =
            oracle.iter().filter(|k| k.starts_with(prefix)).cloned().collect();
        assert_eq!(walked, expected, "prefix {prefix:?}");
    }
}

/// `?raw` and `?sync` are switches: no value, `1` or `true` is on, `0` or `false` off, and
/// anything else a 400 that writes nothing.
#[test]
fn switches_take_on_and_off() {
    let (_dir, mut s) = store("switches");
    call(&mut s, "PUT", "/v1/k", b"v");
    for on in ["raw", "raw=1", "raw=true", "&raw&"] {
        let r = call(&mut s, "GET", &format!("/v1/k?{on}"), b"");
        assert_eq!((r.content_type, r.body.as_slice()), (OCTETS, &b"v"[..]), "{on}");
    }
    for off in ["raw=0", "raw=false", "", "&"] {
        let r = call(&mut s, "GET", &format!("/v1/k?{off}"), b"");
        assert_eq!((r.content_type, text(&r)), (JSON, r#"{"value":"v"}"#.into()), "{off}");
    }
    let r = call(&mut s, "GET", "/v1/k?raw=yes", b"");
    assert_eq!(r.status, 400);
    assert!(text(&r).contains("`raw` is a switch") && text(&r).contains("raw=yes"), "{}", text(&r));
    assert!(call(&mut s, "PUT", "/v1/k?sync=true", b"w").sync);
    assert!(!call(&mut s, "PUT", "/v1/k?sync=0", b"w").sync);
    assert!(!call(&mut s, "PUT", "/v1/k?sync=false", b"w").sync);
    let r = call(&mut s, "PUT", "/v1/k?sync=maybe", b"lost");
    assert_eq!(r.status, 400);
    assert_eq!(s.get(b"k"), Some(&b"w"[..]), "a bad switch writes nothing");
}

/// A body with a UTF-8 byte order mark is refused with a message that says so.
#[test]
fn a_bom_is_named() {
    let (_dir, mut s) = store("bom");
    let r = call(&mut s, "POST", "/v1/write", b"\xEF\xBB\xBF{\"key\":\"k\",\"value\":\"v\"}");
    assert_eq!(r.status, 400);
    assert!(text(&r).contains("byte order mark"), "{}", text(&r));
    let r = call(&mut s, "POST", "/v1/bulk", b"\xEF\xBB\xBF{\"key\":\"k\",\"value\":\"v\"}\n");
    assert!(
        r.status == 400
            && text(&r).contains("line 1: the body starts with a UTF-8 byte order mark"),
        "{}",
        text(&r)
    );
}
