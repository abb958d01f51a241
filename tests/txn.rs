//! Transactions and counters through the real binary: conditions, the 412 that names the
//! first failed one, limits, one seq for the whole transaction, one line in the change feed,
//! all or nothing across `kill -9`; counters that count right under concurrent clients and
//! refuse what is not a counter; the CLI's `txn` and `incr`.
//!
//! (Power cuts with transactions in flight are in `power_loss.rs`; a transaction record cut at
//! every byte is in `src/wal/tests.rs`.)

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;
use support::feed::Stream;
use support::{Server, request, run_walkv};
use walkv::testutil::TempDir;

fn json(reply: &support::Reply) -> serde_json::Value {
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", reply.text()))
}

fn etag(addr: &str, key: &str) -> Option<String> {
    let r = request(addr, "GET", &format!("/v1/{key}"), b"").unwrap();
    (r.status == 200).then(|| r.header("ETag").unwrap().trim_matches('"').to_string())
}

fn value(addr: &str, key: &str) -> Option<String> {
    let r = request(addr, "GET", &format!("/v1/{key}?raw"), b"").unwrap();
    (r.status == 200).then(|| r.text())
}

/// Every condition holds: every operation happens under one seq (each key's ETag), and the
/// feed shows one line. One fails: 412 naming it, with the key's current ETag, and nothing is
/// written.
#[test]
fn a_transaction_happens_whole_or_not_at_all() {
    let dir = TempDir::new("txn-rules");
    let server = Server::start(&dir);
    let a = &server.addr;
    assert_eq!(request(a, "PUT", "/v1/a", b"old").unwrap().status, 201);
    assert_eq!(request(a, "PUT", "/v1/c", b"doomed").unwrap().status, 201);
    let a_tag = etag(a, "a").unwrap();
    let body = format!(
        r#"{{"if":[{{"key":"a","etag":"{a_tag}"}},{{"key":"b","absent":true}},{{"key":"c","exists":true}}],
            "then":[{{"op":"set","key":"a","value":"x","ttl":30}},{{"op":"set","key_base64":"/w==","value_base64":"AAE="}},
                    {{"op":"delete","key":"c"}},{{"op":"set","key":"b","value":"new"}}]}}"#
    );
    let r = request(a, "POST", "/v1/txn", body.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let seq = json(&r)["seq"].as_u64().unwrap();
    assert_eq!(etag(a, "a"), Some(seq.to_string()));
    assert_eq!(etag(a, "b"), Some(seq.to_string()));
    assert_eq!(etag(a, "%FF"), Some(seq.to_string()));
    assert_eq!(value(a, "c"), None);
    assert!(request(a, "GET", "/v1/a", b"").unwrap().header("X-Walkv-Expires").is_some());
    let mut feed = Stream::open(a, &format!("/changes?from={}", seq - 1), "");
    let lines = feed.rest();
    assert_eq!(lines.len(), 1, "one line for the whole transaction: {lines:?}");
    assert!(lines[0].contains(r#""op":"txn""#) && lines[0].contains(r#""op":"delete","key":"c""#));

    // Each kind of condition failing: 412 naming the first that failed; nothing written.
    let last = json(&request(a, "GET", "/status", b"").unwrap())["last_seq"].as_u64().unwrap();
    for (cond, index, key, current) in [
        (r#"{"key":"a","etag":"1"}"#, 1, "a", serde_json::json!(seq.to_string())),
        (r#"{"key":"b","absent":true}"#, 1, "b", serde_json::json!(seq.to_string())),
        (r#"{"key":"c","exists":true}"#, 1, "c", serde_json::Value::Null),
    ] {
        let body = format!(
            r#"{{"if":[{{"key":"a","exists":true}},{cond},{{"key":"zz","etag":"1"}}],
                "then":[{{"op":"set","key":"a","value":"never"}},{{"op":"delete","key":"b"}}]}}"#
        );
        let r = request(a, "POST", "/v1/txn", body.as_bytes()).unwrap();
        assert_eq!(r.status, 412, "{cond}: {}", r.text());
        let failed = &json(&r)["failed"];
        assert_eq!((failed["index"].as_u64(), failed["key"].as_str()), (Some(index), Some(key)));
        assert_eq!(failed["etag"], current, "{cond}: {}", r.text());
    }
    let now = json(&request(a, "GET", "/status", b"").unwrap())["last_seq"].as_u64().unwrap();
    assert_eq!(now, last, "a failed transaction writes nothing");
    assert_eq!(value(a, "a").as_deref(), Some("x"));
}

/// What a transaction may not be: each is refused with the right status and a reason, and
/// writes nothing.
#[test]
fn bad_transactions_are_refused() {
    let dir = TempDir::new("txn-bad");
    let server = Server::start(&dir);
    let a = &server.addr;
    let many: Vec<String> =
        (0..1001).map(|i| format!(r#"{{"op":"set","key":"k{i}","value":"v"}}"#)).collect();
    let too_many = format!(r#"{{"then":[{}]}}"#, many.join(","));
    let big = "x".repeat(600_000);
    let too_big = format!(
        r#"{{"then":[{{"op":"set","key":"a","value":"{big}"}},{{"op":"set","key":"b","value":"{big}"}}]}}"#
    );
    for (body, status, says) in [
        (&br#"{"then":[{"op":"set","key":"a","value":"1"},{"op":"delete","key":"a"}]}"#[..], 400, "written twice"),
        (br#"{"then":[]}"#, 400, "no operation"),
        (br#"{"if":[]}"#, 400, "missing field `then`"),
        (br#"{"then":[{"op":"put","key":"a","value":"1"}]}"#, 400, "`op` is"),
        (br#"{"then":[{"op":"set","key":"a"}]}"#, 400, "missing field `value`"),
        (br#"{"then":[{"op":"delete","key":"a","value":"1"}]}"#, 400, "a delete takes no `value`"),
        (br#"{"then":[{"op":"set","key":"a","value":"1","tll":5}]}"#, 400, "unknown field `tll`"),
        (br#"{"if":[{"key":"a","etag":"x"}],"then":[{"op":"delete","key":"a"}]}"#, 400, "digits"),
        (br#"{"if":[{"key":"a","absent":false}],"then":[{"op":"delete","key":"a"}]}"#, 400, "only be true"),
        (br#"{"if":[{"key":"a","absent":true,"exists":true}],"then":[{"op":"delete","key":"a"}]}"#, 400, "exactly one"),
        (br#"{"iff":[],"then":[]}"#, 400, "unknown field `iff`"),
        (b"[1]", 400, "must be a JSON object"),
        (too_many.as_bytes(), 413, "at most 1000 operations"),
        (too_big.as_bytes(), 413, "at most 1048576 bytes"),
    ] {
        let r = request(a, "POST", "/v1/txn", body).unwrap();
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]);
        assert_eq!(r.status, status, "{shown}: {}", r.text());
        assert!(r.text().contains(says), "{shown}: {}", r.text());
    }
    let status = json(&request(a, "GET", "/status", b"").unwrap());
    assert_eq!(status["last_seq"], 0, "nothing was written");
    let r = request(a, "POST", "/v1/txn?snyc", br#"{"then":[{"op":"delete","key":"a"}]}"#).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
}

/// Transactions moving value between two keys, under concurrent clients and a `kill -9`: after
/// the restart the two always add up (no transaction is ever half there), and every
/// acknowledged one is.
#[test]
fn transactions_stay_whole_across_kill_9() {
    let dir = TempDir::new("txn-kill");
    let server = Server::start_with(&dir, &["--sync", "always"]);
    let a = server.addr.clone();
    let setup = br#"{"then":[{"op":"set","key":"left","value":"1000"},{"op":"set","key":"right","value":"0"}]}"#;
    assert_eq!(request(&a, "POST", "/v1/txn", setup).unwrap().status, 200);
    let stop = Arc::new(AtomicBool::new(false));
    let movers: Vec<_> = (0..3)
        .map(|_| {
            let (a, stop) = (a.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                let mut acked = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Read both with their ETags, then move one unit if neither changed.
                    let get = |k: &str| {
                        let r = request(&a, "GET", &format!("/v1/{k}?raw"), b"").ok()?;
                        let tag = r.header("ETag")?.trim_matches('"').to_string();
                        Some((r.text().parse::<i64>().ok()?, tag))
                    };
                    let (Some((l, lt)), Some((r, rt))) = (get("left"), get("right")) else { break };
                    let body = format!(
                        r#"{{"if":[{{"key":"left","etag":"{lt}"}},{{"key":"right","etag":"{rt}"}}],
                            "then":[{{"op":"set","key":"left","value":"{}"}},{{"op":"set","key":"right","value":"{}"}}]}}"#,
                        l - 1,
                        r + 1
                    );
                    match request(&a, "POST", "/v1/txn", body.as_bytes()) {
                        Ok(reply) if reply.status == 200 => acked = acked.max(1 + r as u64),
                        Ok(reply) if reply.status == 412 => {}
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(700));
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let acked = movers.into_iter().map(|m| m.join().unwrap()).max().unwrap();
    let server = Server::start(&dir);
    let left: i64 = value(&server.addr, "left").unwrap().parse().unwrap();
    let right: i64 = value(&server.addr, "right").unwrap().parse().unwrap();
    assert_eq!(left + right, 1000, "a transaction was half kept: {left} + {right}");
    assert!(right as u64 >= acked, "acknowledged moves lost: right {right}, acknowledged {acked}");
    assert!(acked > 0, "the test moved nothing");
    assert_eq!(etag(&server.addr, "left"), etag(&server.addr, "right"), "one seq per transaction");
}

/// Counters: a missing key counts from 0; concurrent increments all count; a value that is no
/// integer and an overflow are 409s that change nothing; an increment keeps the TTL; the CLI.
#[test]
fn counters_count_without_a_race() {
    let dir = TempDir::new("counter");
    let server = Server::start(&dir);
    let a = server.addr.clone();
    let r = request(&a, "POST", "/v1/hits?incr", b"").unwrap();
    assert_eq!((r.status, r.text()), (200, r#"{"value":"1","seq":1}"#.to_string()));
    assert_eq!(r.header("ETag"), Some("\"1\""));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let a = a.clone();
            thread::spawn(move || {
                for _ in 0..100 {
                    assert_eq!(request(&a, "POST", "/v1/hits?incr=2", b"").unwrap().status, 200);
                }
            })
        })
        .collect();
    clients.into_iter().for_each(|c| c.join().unwrap());
    assert_eq!(value(&a, "hits").as_deref(), Some("1601"));
    let r = request(&a, "POST", "/v1/hits?incr=-1602", b"").unwrap();
    assert_eq!(json(&r)["value"], "-1");
    assert_eq!(request(&a, "PUT", "/v1/name", b"Ada").unwrap().status, 201);
    let r = request(&a, "POST", "/v1/name?incr", b"").unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("not a decimal integer") && r.text().contains("Ada"), "{}", r.text());
    assert_eq!(request(&a, "PUT", "/v1/max", i64::MAX.to_string().as_bytes()).unwrap().status, 201);
    let r = request(&a, "POST", "/v1/max?incr", b"").unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("overflows"), "{}", r.text());
    assert_eq!(value(&a, "max"), Some(i64::MAX.to_string()), "an overflow changes nothing");
    assert_eq!(request(&a, "PUT", "/v1/rate?ttl=300", b"5").unwrap().status, 201);
    let before = request(&a, "GET", "/v1/rate", b"").unwrap();
    assert_eq!(request(&a, "POST", "/v1/rate?incr", b"").unwrap().status, 200);
    let after = request(&a, "GET", "/v1/rate", b"").unwrap();
    assert_eq!(after.header("X-Walkv-Expires"), before.header("X-Walkv-Expires"), "TTL kept");
    let (code, out, err) = run_walkv(&["incr", "hits", "-5", "--addr", &a], &[], b"");
    assert_eq!((code, String::from_utf8_lossy(&out).trim()), (0, "-6"), "{err}");
    let (code, _, err) = run_walkv(&["incr", "name", "--addr", &a], &[], b"");
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("not a decimal integer"), "{err}");
    let r = request(&a, "POST", "/v1/hits", b"").unwrap();
    assert!(r.status == 400 && r.text().contains("?incr"), "{}", r.text());
}

/// `walkv txn FILE|-` sends a transaction and prints its seq; a failed condition exits 4 and
/// says which.
#[test]
fn txn_from_the_command_line() {
    let dir = TempDir::new("txn-cli");
    let server = Server::start(&dir);
    let addr = server.addr.clone();
    let body = br#"{"if":[{"key":"lock","absent":true}],"then":[{"op":"set","key":"lock","value":"me","ttl":10}]}"#;
    let (code, out, err) = run_walkv(&["txn", "-", "--addr", &addr], &[], body);
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8_lossy(&out).trim(), r#"{"seq":1}"#);
    let file = dir.join("t.json");
    std::fs::write(&file, body).unwrap();
    let (code, _, err) = run_walkv(&["txn", file.to_str().unwrap(), "--addr", &addr], &[], b"");
    assert_eq!(code, 4, "the lock is taken: {err}");
    assert!(err.contains(r#""index":0"#) && err.contains(r#""etag":"1""#), "{err}");
}
