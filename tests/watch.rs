//! Watching over real sockets with the real binary: `X-Walkv-Seq` on every key, listing and
//! feed answer, and the change feed (`GET /changes`): history in order, filters, following
//! with heartbeats, Server-Sent Events, what a compaction leaves (410, and the way back through
//! an export), and a follower that stops reading.
//!
//! The crash tests (a consumer that resumes after `kill -9` and after a power cut misses
//! nothing and sees nothing twice) are in `tests/watch_crash.rs`.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};
use support::feed::Stream;
use support::{Server, request, run_walkv};
use walkv::testutil::TempDir;

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn put(addr: &str, key: &str, value: &str) -> u64 {
    let r = request(addr, "PUT", &format!("/v1/{key}"), value.as_bytes()).unwrap();
    assert!(matches!(r.status, 200 | 201), "{}", r.text());
    r.header("ETag").unwrap().trim_matches('"').parse().unwrap()
}

fn seq_header(r: &support::Reply) -> u64 {
    r.header("X-Walkv-Seq").unwrap_or_else(|| panic!("no X-Walkv-Seq: {r:?}")).parse().unwrap()
}

/// Every answer of a key or listing endpoint says the seq visible when it was sent, errors
/// included; a write's answer shows at least its own seq; the probes say nothing.
#[test]
fn key_and_listing_answers_say_the_visible_seq() {
    let dir = TempDir::new("watch-seq");
    let server = Server::start(&dir);
    let addr = &server.addr;
    let r = request(addr, "GET", "/v1/a", b"").unwrap();
    assert_eq!((r.status, seq_header(&r)), (404, 0));
    let r = request(addr, "PUT", "/v1/a", b"1").unwrap();
    assert_eq!(seq_header(&r), 1);
    put(addr, "b", "2");
    let r = request(addr, "DELETE", "/v1/a", b"").unwrap();
    assert_eq!(seq_header(&r), 3);
    for (method, target, status) in [
        ("GET", "/v1/b", 200),
        ("HEAD", "/v1/b", 200),
        ("GET", "/v1/a", 404),
        ("GET", "/v1/", 200),
        ("GET", "/v1/b?nosuch", 400),
        ("POST", "/v1/", 405),
    ] {
        let r = request(addr, method, target, b"").unwrap();
        assert_eq!((r.status, seq_header(&r)), (status, 3), "{method} {target}");
    }
    let r = request(addr, "GET", "/livez", b"").unwrap();
    assert_eq!(r.header("X-Walkv-Seq"), None);
}

/// A plain answer is every change after `from` up to the seq visible when it started, in
/// order, as JSON lines; prefix and limit filter it; bytes that are not UTF-8 come as base64;
/// the connection serves the next request after it.
#[test]
fn the_feed_shows_history_in_order() {
    let dir = TempDir::new("watch-history");
    let server = Server::start(&dir);
    let addr = &server.addr;
    put(addr, "a1", "x");
    put(addr, "b1", "y");
    request(addr, "DELETE", "/v1/a1", b"").unwrap();
    put(addr, "%FF", "z");
    let mut all = Stream::open(addr, "/changes?from=0", "");
    assert_eq!((all.status, all.header("X-Walkv-Seq").as_deref()), (200, Some("4")));
    assert_eq!(all.header("Content-Type").as_deref(), Some("application/x-ndjson"));
    assert_eq!(
        all.rest(),
        [
            r#"{"seq":1,"op":"set","key":"a1","value":"x"}"#,
            r#"{"seq":2,"op":"set","key":"b1","value":"y"}"#,
            r#"{"seq":3,"op":"delete","key":"a1"}"#,
            r#"{"seq":4,"op":"set","key_base64":"/w==","value":"z"}"#,
        ]
    );
    let seqs = |target: &str| -> Vec<u64> {
        let mut s = Stream::open(addr, target, "");
        assert_eq!(s.status, 200, "{target}");
        s.rest().iter().map(|l| json(l)["seq"].as_u64().unwrap()).collect()
    };
    assert_eq!(seqs("/changes?from=1&prefix=a"), [3]);
    assert_eq!(seqs("/changes?from=0&limit=2"), [1, 2]);
    assert_eq!(seqs("/changes"), Vec::<u64>::new(), "no from: only what comes next");
    assert_eq!(seqs("/changes?from=4"), Vec::<u64>::new());
    assert_eq!(seqs("/changes?from=99"), Vec::<u64>::new());
    // Keep-alive: a second request on the same connection after a plain answer.
    let mut both = Stream::open(addr, "/changes?from=3", "");
    assert_eq!(both.rest().len(), 1);
    let mut stream = both.reader.into_inner();
    write!(stream, "GET /v1/b1 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let r = support::read_reply(&mut stream, false).expect("an answer after the feed");
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"value":"y"}"#));
    for (target, says) in [
        ("/changes?from=x", "from must be a sequence number"),
        ("/changes?follow=maybe", "`follow` is a switch"),
        ("/changes?durable=disk", "`durable` takes only `fsync`"),
        ("/changes?frm=1", "unknown parameter `frm`"),
    ] {
        let r = request(addr, "GET", target, b"").unwrap();
        assert_eq!((r.status, seq_header(&r)), (400, 4), "{target}");
        assert!(r.text().contains(says), "{target}: {}", r.text());
    }
    let r = request(addr, "HEAD", "/changes?from=0", b"").unwrap();
    assert_eq!((r.status, r.body.len(), seq_header(&r)), (200, 0, 4));
    let r = request(addr, "POST", "/changes", b"").unwrap();
    assert_eq!((r.status, r.header("Allow")), (405, Some("GET, HEAD")));
}

/// A follower gets each change as it becomes visible, and a heartbeat carrying its cursor
/// when nothing happens; `durable=fsync` waits for the fsync.
#[test]
fn a_follower_sees_each_change_and_heartbeats() {
    let dir = TempDir::new("watch-follow");
    let server = Server::start_with(&dir, &["--heartbeat", "0.3", "--sync-interval", "0.5"]);
    let addr = &server.addr;
    put(addr, "k", "0");
    let mut follower = Stream::open(addr, "/changes?from=0&follow", "");
    let mut durable = Stream::open(addr, "/changes?from=1&follow&durable=fsync", "");
    let mut elsewhere = Stream::open(addr, "/changes?follow&prefix=zzz", "");
    assert_eq!(follower.header("Connection").as_deref(), Some("close"));
    assert_eq!(json(&follower.line().unwrap())["seq"], 1);
    for i in 2..=4 {
        put(addr, "k", &i.to_string());
        let line = json(&follower.line().unwrap());
        assert_eq!(
            (line["seq"].as_u64(), line["value"].as_str()),
            (Some(i), Some(&*i.to_string()))
        );
    }
    let quiet = Instant::now();
    let beat = json(&follower.line().unwrap());
    assert_eq!((beat["op"].as_str(), beat["seq"].as_u64()), (Some("heartbeat"), Some(4)));
    assert!(quiet.elapsed() < Duration::from_secs(10));
    // The fsync of interval mode (every 0.5 s) lets the durable follower see them; until then
    // it has only heartbeats, at its cursor.
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        let line = json(&durable.line().unwrap());
        match line["op"].as_str() {
            Some("heartbeat") => {
                assert!(seqs.is_empty() || seqs.last() == line["seq"].as_u64().as_ref())
            }
            _ => seqs.push(line["seq"].as_u64().unwrap()),
        }
    }
    assert_eq!(seqs, [2, 3, 4]);
    // A follower whose prefix matches nothing still moves on: its heartbeats say the seq it
    // has looked through.
    let mut cursor = 0;
    for _ in 0..40 {
        let line = json(&elsewhere.line().unwrap());
        assert_eq!(line["op"], "heartbeat", "{line}");
        cursor = line["seq"].as_u64().unwrap();
        if cursor == 4 {
            break;
        }
    }
    assert_eq!(cursor, 4, "the heartbeat's seq stayed behind");
    // A stopping server ends the answers cleanly.
    let (status, _) = server.terminate();
    assert!(status.success());
    let rest = follower.rest();
    assert!(rest.iter().all(|l| json(l)["op"] == "heartbeat"), "{rest:?}");
    assert!(follower.ended);
}

/// Server-Sent Events: an event per change with its seq as id; `Last-Event-ID` (what
/// EventSource sends when it reconnects) resumes after it whatever `from` says; a heartbeat is
/// a comment that moves the id along.
#[test]
fn server_sent_events_resume_by_last_event_id() {
    let dir = TempDir::new("watch-sse");
    let server = Server::start_with(&dir, &["--heartbeat", "0.3"]);
    let addr = &server.addr;
    for i in 1..=3 {
        put(addr, &format!("k{i}"), "v");
    }
    let accept = "Accept: text/event-stream\r\n";
    let mut events = Stream::open(addr, "/changes?from=0&follow&prefix=k", accept);
    assert_eq!(events.header("Content-Type").as_deref(), Some("text/event-stream"));
    let mut lines: Vec<String> = (0..6).map(|_| events.line().unwrap()).collect();
    assert_eq!(
        lines.drain(..3).collect::<Vec<_>>(),
        ["id: 1", r#"data: {"seq":1,"op":"set","key":"k1","value":"v"}"#, ""]
    );
    assert_eq!(lines, ["id: 2", r#"data: {"seq":2,"op":"set","key":"k2","value":"v"}"#, ""]);
    let again = format!("{accept}Last-Event-ID: 2\r\n");
    let mut resumed = Stream::open(addr, "/changes?from=0&follow", &again);
    assert_eq!(resumed.line().unwrap(), "id: 3");
    let beat: Vec<String> = (0..5).map(|_| resumed.line().unwrap()).collect();
    assert_eq!(beat[2..], [": heartbeat".to_string(), "id: 3".into(), "".into()]);
}

/// After a compaction the history it merged is gone: a `from` before it is a 410 naming the
/// oldest seq held; an export says its seq, and the export plus the changes from that seq
/// rebuild the store exactly.
#[test]
fn after_a_compaction_an_export_and_the_feed_rebuild_the_store() {
    let dir = TempDir::new("watch-gone");
    let data = dir.join("data");
    let server = Server::start(&data);
    let addr = &server.addr;
    for i in 0..20 {
        put(addr, &format!("k{}", i % 7), &i.to_string());
    }
    request(addr, "DELETE", "/v1/k3", b"").unwrap();
    let r = request(addr, "POST", "/compact", b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = request(addr, "GET", "/changes?from=5", b"").unwrap();
    assert_eq!(r.status, 410, "{}", r.text());
    let body = json(&r.text());
    assert_eq!(body["oldest_seq"], 22);
    assert!(body["error"].as_str().unwrap().contains("walkv export"), "{body}");
    // The export, then more writes; the export's seq and the feed from it give the store.
    let (code, out, stderr) =
        run_walkv(&["export", "--data-dir", data.to_str().unwrap()], &[], b"");
    assert_eq!(code, 0, "{stderr}");
    let seq: u64 = stderr.rsplit("as of seq ").next().unwrap().trim().parse().unwrap();
    assert_eq!(seq, 21, "{stderr}");
    put(addr, "k1", "new");
    request(addr, "DELETE", "/v1/k2", b"").unwrap();
    put(addr, "k9", "nine");
    let mut rebuilt: BTreeMap<String, String> = BTreeMap::new();
    for line in String::from_utf8(out).unwrap().lines() {
        let v = json(line);
        rebuilt.insert(v["key"].as_str().unwrap().into(), v["value"].as_str().unwrap().into());
    }
    for line in Stream::open(addr, &format!("/changes?from={seq}"), "").rest() {
        let v = json(&line);
        let key = v["key"].as_str().unwrap().to_string();
        match v["op"].as_str().unwrap() {
            "set" => rebuilt.insert(key, v["value"].as_str().unwrap().into()),
            _ => rebuilt.remove(&key),
        };
    }
    let mut actual = BTreeMap::new();
    for key in (0..10).map(|i| format!("k{i}")) {
        let r = request(addr, "GET", &format!("/v1/{key}?raw"), b"").unwrap();
        if r.status == 200 {
            actual.insert(key, r.text());
        }
    }
    assert_eq!(rebuilt, actual);
}

/// A follower that stops reading is cut once the changes it has not taken pass
/// `--follower-backlog`, with a last line naming the seq to resume from; a follower that reads
/// gets everything, and the writes are not held up by the stuck one.
#[test]
fn a_follower_that_stops_reading_is_cut() {
    let dir = TempDir::new("watch-cut");
    let server = Server::start_with(&dir, &["--follower-backlog", "1M"]);
    let addr = &server.addr;
    let mut stuck = Stream::open(addr, "/changes?follow", "");
    let mut reader = Stream::open(addr, "/changes?follow", "");
    // Keeps up, though none of the 20 MB is for it: it must not be cut.
    let mut other_keys = Stream::open(addr, "/changes?follow&prefix=zzz", "");
    let value = "v".repeat(4000);
    // 20 MB of changes: more than the stuck follower's socket buffers and its backlog. The
    // reader is given each 400 KB only once it has read the one before, so that it never
    // falls behind itself, however slowly this test runs.
    let (writes, per_request) = (5000u64, 100u64);
    let (seen, progress) = std::sync::mpsc::channel();
    let reading = std::thread::spawn(move || {
        while let Some(line) = reader.line() {
            if seen.send(json(&line)["seq"].as_u64().unwrap()).is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    for round in 0..writes / per_request {
        let body: String = (0..per_request)
            .map(|i| format!("{{\"key\":\"k{}\",\"value\":\"{value}\"}}\n", (round + i) % 10))
            .collect();
        let r = request(addr, "POST", "/v1/bulk", body.as_bytes()).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        while got.len() < ((round + 1) * per_request) as usize {
            got.push(progress.recv_timeout(Duration::from_secs(20)).expect("the reader reads"));
        }
    }
    assert_eq!(got, (1..=writes).collect::<Vec<u64>>());
    drop(progress);
    put(addr, "zzz", "mine");
    let line = json(&other_keys.line().unwrap());
    assert_eq!((line["op"].as_str(), line["key"].as_str()), (Some("set"), Some("zzz")), "{line}");
    // Now the stuck one reads: what its socket held, then the cut (or, were it not cut, every
    // change).
    let (mut shown, mut last) = (Vec::new(), None);
    while let Some(line) = stuck.line() {
        let v = json(&line);
        match v["op"].as_str() {
            Some("cut") => {
                last = Some(v);
                break;
            }
            Some("heartbeat") => {}
            _ => shown.push(v["seq"].as_u64().unwrap()),
        }
        if shown.last() == Some(&writes) {
            break;
        }
    }
    let last = last.unwrap_or_else(|| panic!("not cut after {} changes", shown.len()));
    assert!(!shown.is_empty() && shown.len() < writes as usize, "{} lines", shown.len());
    assert_eq!(shown, (1..=shown.len() as u64).collect::<Vec<_>>(), "in order, none missing");
    assert_eq!(last["seq"].as_u64(), shown.last().copied(), "resume from the last line seen");
    assert!(last["error"].as_str().unwrap().contains("from="), "{last}");
    assert!(stuck.rest().is_empty(), "the cut is the last line");
    let metrics = request(addr, "GET", "/metrics", b"").unwrap().text();
    assert!(metrics.contains("walkv_feed_followers_cut_total 1"), "{metrics}");
    assert!(metrics.contains("walkv_feed_followers 2\n"), "two still follow: {metrics}");
    drop(server);
    reading.join().unwrap();
}

/// Sends `GET target` on its own thread; the reply comes through the returned channel.
fn in_background(
    addr: &str,
    method: &str,
    target: &str,
) -> std::sync::mpsc::Receiver<support::Reply> {
    let (addr, method, target) = (addr.to_string(), method.to_string(), target.to_string());
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(request(&addr, &method, &target, b"").unwrap());
    });
    receive
}

fn metric(addr: &str, name: &str) -> f64 {
    let text = request(addr, "GET", "/metrics", b"").unwrap().text();
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// A blocking read answers when its key's last write passes `index` (a SET, or the DELETE
/// that removed it), not for another key's write, and when its wait ends; a DELETE the
/// store remembers answers a later read at once.
#[test]
fn blocking_reads_answer_when_the_key_changes() {
    let dir = TempDir::new("watch-block");
    let server = Server::start(&dir);
    let addr = &server.addr;
    let quiet = Duration::from_millis(300);
    put(addr, "k", "1");
    let r = request(addr, "GET", "/v1/k?index=0", b"").unwrap();
    assert_eq!((r.status, seq_header(&r)), (200, 1), "changed after 0: at once");
    let waiting = in_background(addr, "GET", "/v1/k?index=1&wait=30");
    assert!(waiting.recv_timeout(quiet).is_err(), "nothing changed: it waits");
    assert_eq!(metric(addr, "walkv_watching_reads"), 1.0);
    put(addr, "other", "x");
    assert!(waiting.recv_timeout(quiet).is_err(), "another key's write does not end the wait");
    put(addr, "k", "2");
    let r = waiting.recv_timeout(Duration::from_secs(10)).expect("answered by the write");
    assert_eq!((r.status, r.text(), seq_header(&r)), (200, r#"{"value":"2"}"#.into(), 3));
    assert_eq!(r.header("ETag"), Some("\"3\""));
    // A DELETE ends a wait with a 404, and a later read past an older index sees it at once.
    let raw = in_background(addr, "GET", "/v1/k?index=3&wait=30&raw");
    let head = in_background(addr, "HEAD", "/v1/k?index=3&wait=30");
    std::thread::sleep(quiet);
    request(addr, "DELETE", "/v1/k", b"").unwrap();
    for waiting in [raw, head] {
        let r = waiting.recv_timeout(Duration::from_secs(10)).expect("answered by the delete");
        assert_eq!((r.status, seq_header(&r)), (404, 4));
    }
    let r = request(addr, "GET", "/v1/k?index=3", b"").unwrap();
    assert_eq!(r.status, 404, "the DELETE (4) is after 3: at once");
    // Nothing changes: the wait ends, with the state as it is.
    let started = Instant::now();
    let r = request(addr, "GET", "/v1/k?index=4&wait=0.5", b"").unwrap();
    assert_eq!(r.status, 404);
    assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());
    assert_eq!(metric(addr, "walkv_watching_reads"), 0.0);
    for (target, says) in [
        ("/v1/k?index=x", "`index` must be a sequence number"),
        ("/v1/k?index=1&wait=5h", "`wait` must be seconds"),
        ("/v1/k?index=1&wait=-1", "`wait` must be seconds"),
    ] {
        let r = request(addr, "GET", target, b"").unwrap();
        assert_eq!(r.status, 400, "{target}");
        assert!(r.text().contains(says), "{target}: {}", r.text());
    }
    // `wait` without `index`: until the key next changes.
    let next = in_background(addr, "GET", "/v1/other?wait=30");
    assert!(next.recv_timeout(quiet).is_err(), "it waits from now");
    put(addr, "other", "y");
    let r = next.recv_timeout(Duration::from_secs(10)).expect("answered by the write");
    assert_eq!(r.text(), r#"{"value":"y"}"#);
    // A stopping server answers the reads it holds.
    let waiting = in_background(addr, "GET", "/v1/other?index=9&wait=60");
    std::thread::sleep(quiet);
    assert!(server.terminate().0.success());
    let r = waiting.recv_timeout(Duration::from_secs(10)).expect("answered at the stop");
    assert_eq!((r.status, r.text()), (200, r#"{"value":"y"}"#.into()));
}

/// `walkv get --wait KEY` prints the value the key's next write leaves, and exits 1 when that
/// write is a delete.
#[test]
fn get_wait_prints_the_next_value() {
    let dir = TempDir::new("watch-get-wait");
    let server = Server::start(&dir);
    let addr = server.addr.clone();
    put(&addr, "k", "old");
    let wait = |addr: &str| {
        std::process::Command::new(support::BIN)
            .args(["get", "--wait", "--addr", addr, "k"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = support::KillOnDrop(wait(&addr));
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.0.try_wait().unwrap().is_none(), "it waits for a write");
    put(&addr, "other", "x");
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.0.try_wait().unwrap().is_none(), "another key's write does not end it");
    put(&addr, "k", "new");
    let out = std::mem::replace(&mut child.0, wait(&addr)).wait_with_output().unwrap();
    assert_eq!((out.status.code(), out.stdout.as_slice()), (Some(0), &b"new"[..]));
    std::thread::sleep(Duration::from_millis(300));
    request(&addr, "DELETE", "/v1/k", b"").unwrap();
    let out = std::mem::replace(&mut child.0, wait(&addr)).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key not found"));
}

/// `walkv watch` prints every change once, in order, across a `kill -9` and a restart of the
/// server on the same port; asked for history a compaction removed, it stops with 4 and says
/// how to start again.
#[test]
fn watch_resumes_by_itself_and_prints_nothing_twice() {
    let dir = TempDir::new("watch-cli");
    let server = Server::start(&dir);
    let addr = server.addr.clone();
    let port = addr.rsplit(':').next().unwrap().to_string();
    put(&addr, "a", "1");
    let mut watch = support::KillOnDrop(
        std::process::Command::new(support::BIN)
            .args(["watch", "--from", "0", "--prefix", "a", "--addr", &addr])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(watch.0.stdout.take().unwrap()).lines();
    let mut next = || json(&lines.next().unwrap().unwrap());
    assert_eq!(next()["seq"], 1);
    put(&addr, "b", "skipped by the prefix");
    put(&addr, "a2", "2");
    assert_eq!(next()["seq"], 3, "b is not under the prefix");
    server.kill9();
    let server = Server::start_on(&dir, &port);
    put(&addr, "a", "after");
    let line = next();
    assert_eq!((line["seq"].as_u64(), line["value"].as_str()), (Some(4), Some("after")));
    drop(watch);
    // From a seq a compaction merged away: stop, and say so.
    request(&server.addr, "POST", "/compact", b"").unwrap();
    let (code, _, stderr) =
        support::run_walkv(&["watch", "--from", "1", "--addr", &addr], &[], b"");
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("walkv export"), "{stderr}");
}

/// With `--changes-retain`, the segments a compaction covers stay history: a consumer that was
/// away during two compactions and a restart still gets every change, and the directory says
/// so in its `history-*.wal` files.
#[test]
fn retained_history_outlives_compactions_and_restarts() {
    let dir = TempDir::new("watch-retain");
    let server = Server::start_with(&dir, &["--changes-retain", "1M"]);
    let addr = server.addr.clone();
    for round in 0..2 {
        for i in 0..5 {
            put(&addr, &format!("k{i}"), &format!("{round}"));
        }
        request(&addr, "DELETE", "/v1/k0", b"").unwrap();
        let r = request(&addr, "POST", "/compact", b"").unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(server.terminate().0.success());
    let server = Server::start_with(&dir, &["--changes-retain", "1M"]);
    put(&server.addr, "after", "restart");
    let seqs: Vec<u64> = Stream::open(&server.addr, "/changes?from=0", "")
        .rest()
        .iter()
        .map(|l| json(l)["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=13).collect::<Vec<u64>>());
    let names: Vec<String> = std::fs::read_dir(&*dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("history-"))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // `walkv check` and `export` do not read history files.
    let data = dir.to_str().unwrap();
    assert!(server.terminate().0.success());
    let (code, _, stderr) = run_walkv(&["check", "--data-dir", data], &[], b"");
    assert_eq!(code, 0, "{stderr}");
    let (code, out, stderr) = run_walkv(&["export", "--data-dir", data], &[], b"");
    assert_eq!((code, String::from_utf8_lossy(&out).lines().count()), (0, 5), "{stderr}");
}
