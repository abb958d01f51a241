//! Sync modes, group commit and disk-error handling, through the real binary.
//!
//! The binary under test is built with the `failpoints` feature (see `src/failpoint.rs`), so
//! these tests can make the N-th write or fsync fail for real, and can read the sync trace: a
//! line `<length> <seq>` appended after every fsync that returned, before any answer that
//! depends on it. "Acknowledged only after fsync" is then checked directly: when the answer
//! arrives, the trace must already cover its sequence number.

mod support;

use std::path::Path;
use std::thread;
use std::time::Duration;
use support::{Server, request, sync_trace};
use walkv::testutil::TempDir;

fn seq_of(reply: &support::Reply) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    v["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {}", reply.text()))
}

fn synced_seq(trace: &Path) -> u64 {
    sync_trace(trace).last().map_or(0, |&(_, seq)| seq)
}

fn start(dir: &TempDir, args: &[&str], failpoints: &str) -> (Server, std::path::PathBuf) {
    let trace = dir.join("sync.trace");
    let trace_str = trace.to_str().unwrap().to_string();
    let envs = [("WALKV_SYNC_TRACE", trace_str.as_str()), ("WALKV_FAILPOINTS", failpoints)];
    (Server::start_env(&dir.join("data"), args, &envs), trace)
}

/// `--sync always`: under concurrent writers, no write is answered before an fsync that covers
/// it has returned, and group commit makes writes share fsyncs.
#[test]
fn always_mode_acknowledges_only_after_fsync() {
    let dir = TempDir::new("always");
    let (server, trace) = start(&dir, &["--sync", "always"], "");
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (addr, trace) = (server.addr.clone(), trace.clone());
            thread::spawn(move || {
                for i in 0..40 {
                    let r = request(&addr, "PUT", &format!("/v1/w{w}-{i}"), b"value").unwrap();
                    assert_eq!(r.status, 201);
                    let seq = seq_of(&r);
                    let synced = synced_seq(&trace);
                    assert!(synced >= seq, "write {seq} acknowledged with only {synced} synced");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let syncs = sync_trace(&trace).len() - 1; // the first line is the startup sync
    eprintln!("always mode: 320 writes from 8 clients, {syncs} fsyncs");
}

/// Pipelined writes on one connection are committed as a group: fewer fsyncs than writes. With
/// `--max-batch 1`, exactly one fsync per write.
#[test]
fn group_commit_shares_fsyncs_and_max_batch_1_turns_it_off() {
    let pipelined = |addr: &str, n: usize| {
        let mut batch = Vec::new();
        for i in 0..n {
            let req = format!("PUT /v1/p{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx");
            batch.extend_from_slice(req.as_bytes());
        }
        batch.extend_from_slice(b"GET /v1/p0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let raw = support::send_raw(addr, &batch).unwrap();
        let answers = String::from_utf8_lossy(&raw).matches("HTTP/1.1 201").count();
        assert_eq!(answers, n);
    };
    for (max_batch, expect_batching) in [("128", true), ("1", false)] {
        let dir = TempDir::new("group");
        let (server, trace) = start(&dir, &["--sync", "always", "--max-batch", max_batch], "");
        pipelined(&server.addr, 200);
        let syncs = sync_trace(&trace).len() - 1;
        eprintln!("--max-batch {max_batch}: 200 pipelined writes, {syncs} fsyncs");
        if expect_batching {
            assert!(syncs < 200, "no two writes shared an fsync");
        } else {
            assert_eq!(syncs, 200);
        }
    }
}

/// `interval` mode: a plain write is not synced at once; `?sync` and `POST /sync` are answered
/// only after an fsync covers them; `/status` tells how far the log is written and synced.
#[test]
fn interval_mode_sync_on_request() {
    let dir = TempDir::new("interval");
    let (server, trace) = start(&dir, &["--sync", "interval", "--sync-interval", "3600"], "");
    let a = &server.addr;
    let plain = seq_of(&request(a, "PUT", "/v1/plain", b"1").unwrap());
    assert!(synced_seq(&trace) < plain, "a plain write must not wait for an fsync here");
    let status: serde_json::Value =
        serde_json::from_slice(&request(a, "GET", "/status", b"").unwrap().body).unwrap();
    assert_eq!(status["ready"], true);
    assert_eq!(status["last_seq"].as_u64(), Some(plain));

    let durable = seq_of(&request(a, "PUT", "/v1/durable?sync", b"2").unwrap());
    assert!(synced_seq(&trace) >= durable);
    let json = br#"{"key":"j","value":"3"}"#;
    let r = request(a, "POST", "/v1/write?sync=1", json).unwrap();
    assert!(synced_seq(&trace) >= seq_of(&r));

    request(a, "PUT", "/v1/later", b"4").unwrap();
    let r = request(a, "POST", "/sync", b"").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let covered = v["synced_seq"].as_u64().unwrap();
    assert_eq!(covered, durable + 2);
    assert!(synced_seq(&trace) >= covered);
    assert_eq!(request(a, "GET", "/sync", b"").unwrap().header("Allow"), Some("POST"));
}

/// `never` mode syncs only at startup and at a clean shutdown, which covers every write.
#[test]
fn never_mode_syncs_only_at_shutdown() {
    let dir = TempDir::new("never");
    let (server, trace) = start(&dir, &["--sync", "never"], "");
    for i in 0..20 {
        request(&server.addr, "PUT", &format!("/v1/n{i}"), b"x").unwrap();
    }
    assert_eq!(sync_trace(&trace).len(), 1, "only the startup sync");
    let (status, _) = server.terminate();
    assert!(status.success());
    let last = *sync_trace(&trace).last().unwrap();
    let len = std::fs::metadata(support::active_log(&dir.join("data"))).unwrap().len();
    assert_eq!(last, (len, 20), "the final sync covers the whole file");
}

/// A failed write (before any byte, or after half the record) and an out-of-space error: the
/// client gets 507, the write is not applied, the log is cut back, the next write succeeds, and
/// a restart needs no trimming.
#[test]
fn write_errors_are_507_and_leave_a_clean_log() {
    for rule in ["write=2:nospace", "short_write=2:nospace", "short_write=2-3:toobig"] {
        let dir = TempDir::new("writefail");
        let (server, _) = start(&dir, &[], rule);
        let a = &server.addr;
        assert_eq!(request(a, "PUT", "/v1/one", b"1").unwrap().status, 201);
        let r = request(a, "PUT", "/v1/two", b"2").unwrap();
        assert_eq!(r.status, 507, "{rule}: {}", r.text());
        assert!(r.text().contains("error"), "{}", r.text());
        let data = dir.join("data").display().to_string();
        assert!(!r.text().contains(&data), "no server path in the answer: {}", r.text());
        assert!(r.text().contains(".wal"), "the file's name stays: {}", r.text());
        let logged =
            || server.stderr().lines().any(|l| l.contains("answering 507") && l.contains(&data));
        let began = std::time::Instant::now();
        while !logged() && began.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(logged(), "the server's log has the path: {}", server.stderr());
        assert_eq!(request(a, "GET", "/v1/two", b"").unwrap().status, 404, "{rule}");
        let mut three = request(a, "PUT", "/v1/three", b"3").unwrap();
        if rule.contains("2-3") {
            assert_eq!(three.status, 507); // still failing: the disk has no room yet
            three = request(a, "PUT", "/v1/three", b"3").unwrap();
        }
        assert_eq!(three.status, 201, "{rule}: writes resume once the disk takes them");
        let status = request(a, "GET", "/status", b"").unwrap();
        assert_eq!(status.status, 200, "a refused write does not make the server unready");
        server.kill9();
        let server = Server::start(&dir.join("data"));
        assert!(!server.stderr().contains("trimmed"), "{rule}: {}", server.stderr());
        let get = |k: &str| request(&server.addr, "GET", &format!("/v1/{k}?raw"), b"").unwrap();
        assert_eq!(
            (get("one").body, get("two").status, get("three").body),
            (b"1".to_vec(), 404, b"3".to_vec())
        );
    }
}

/// A failed fsync in `always` mode is fail-stop: the write waiting on it gets 503, the server
/// exits with code 10, and a restart replays what is on disk.
#[test]
fn fsync_failure_in_always_mode_is_fail_stop() {
    let dir = TempDir::new("fsyncfail");
    let (server, _) = start(&dir, &["--sync", "always"], "fsync=2:io");
    let a = server.addr.clone();
    assert_eq!(request(&a, "PUT", "/v1/first", b"1").unwrap().status, 201);
    let r = request(&a, "PUT", "/v1/second", b"2").unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("fsync"), "{}", r.text());
    let (status, stderr) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(10), "{stderr}");
    assert!(stderr.contains("fsync failed"), "{stderr}");
    let server = Server::start(&dir.join("data"));
    let first = request(&server.addr, "GET", "/v1/first?raw", b"").unwrap();
    assert_eq!(first.body, b"1");
}

/// A failed periodic fsync in `interval` mode also stops the server with code 10.
#[test]
fn fsync_failure_in_interval_mode_is_fail_stop() {
    let dir = TempDir::new("fsyncfail-interval");
    let (server, _) = start(&dir, &["--sync-interval", "0.1"], "fsync=1:io");
    assert_eq!(request(&server.addr, "PUT", "/v1/k", b"v").unwrap().status, 201);
    let (status, stderr) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(10), "{stderr}");
    assert!(stderr.contains("periodic sync failed"), "{stderr}");
}

/// In `interval` mode the sync thread fsyncs while writes go on, and a SYNC marker may only
/// follow bytes that are all on disk: under writes that never pause, markers must still come
/// (the sync thread catches up with a second, short fsync, at most once a second), or
/// recovery would know less and less of the log to be durable.
#[test]
fn sync_markers_keep_coming_under_writes_that_never_pause() {
    let dir = TempDir::new("markers-under-load");
    // Each fsync takes 5 ms, so that writes land during every one of them.
    let envs = [("WALKV_FSYNC_DELAY_MS", "5")];
    let server = Server::start_env(&dir.join("data"), &["--sync-interval", "0.1"], &envs);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (addr, stop) = (server.addr.clone(), std::sync::Arc::clone(&stop));
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let _ = request(&addr, "PUT", &format!("/v1/w{w}-{}", n % 50), b"value");
                }
                n
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(3500));
    let log = support::active_log(&dir.join("data"));
    let records = support::log_records(&log);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let markers = records.iter().filter(|r| r.kind == "sync").count();
    eprintln!(
        "{writes} writes in 3.5 s; {markers} SYNC markers in the log (the open one included)"
    );
    assert!(writes > 1000, "the writes paused: {writes}");
    assert!(markers >= 3, "only {markers} markers while writing: {records:?}");
}
