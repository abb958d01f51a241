//! The change feed across crashes, with the real binary: a consumer follows `GET /changes`
//! while clients write; the server is killed with `kill -9` (and, in `always` mode, a power cut
//! is simulated on top: see `support::power`); the consumer reconnects with `from=` the last seq
//! it saw, then follows on across a compaction.
//!
//! What must hold: the seqs the consumer sees only go up (nothing twice, never backwards);
//! every acknowledged write is among them, with its key and value; and every change it saw
//! before the crash is still in the log's history after the restart (the feed never shows a
//! change a crash could take back: in `interval` mode a `kill -9` takes back nothing written;
//! in `always` mode a power cut takes back nothing fsynced, and only fsynced changes are
//! shown).
//!
//! Knobs: `WALKV_WATCH_TRIALS` (per case, default 2), `WALKV_WATCH_SEED`.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use support::feed::Stream;
use support::power::simulate_power_cut;
use support::{OTHER_BOOT, Server, request, sync_trace};
use walkv::testutil::{Rng, TempDir, knob};

const WRITERS: usize = 3;
const KEYS_PER_WRITER: usize = 5;
/// The boot id of the run that is cut: not this machine's, and not [`OTHER_BOOT`].
const BOOT_BEFORE: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// One change as the feed shows it, or as a client wrote it: `value` is `None` for a DELETE.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    seq: u64,
    key: String,
    value: Option<String>,
}

fn change_of(line: &str) -> Option<Change> {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let seq = v["seq"].as_u64()?;
    match v["op"].as_str()? {
        "set" => Some(Change {
            seq,
            key: v["key"].as_str()?.into(),
            value: Some(v["value"].as_str()?.into()),
        }),
        "delete" => Some(Change { seq, key: v["key"].as_str()?.into(), value: None }),
        _ => None, // a heartbeat
    }
}

/// Writes to its own keys until told to stop (or the server is gone); returns the acknowledged
/// writes.
fn writer(addr: String, id: usize, seed: u64, stop: Arc<AtomicBool>) -> Vec<Change> {
    let mut rng = Rng::new(seed);
    let mut acked = Vec::new();
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("w{id}-{}", rng.below(KEYS_PER_WRITER));
        let (method, value) =
            if rng.below(4) == 0 { ("DELETE", None) } else { ("PUT", Some(format!("{seed}-{n}"))) };
        let body = value.clone().unwrap_or_default();
        let Ok(r) = request(&addr, method, &format!("/v1/{key}"), body.as_bytes()) else { break };
        let seq = match (r.status, method) {
            (200 | 201, "PUT") => r.header("ETag").unwrap().trim_matches('"').parse().unwrap(),
            (200, _) => match serde_json::from_slice::<Value>(&r.body).unwrap()["seq"].as_u64() {
                Some(seq) => seq,
                None => continue, // nothing to delete: no record
            },
            _ => break, // the server is going away
        };
        acked.push(Change { seq, key, value });
    }
    acked
}

/// Follows the feed from `from` into `seen` until the stream ends (the server is gone).
fn follow(addr: String, from: u64, seen: Arc<Mutex<Vec<Change>>>) {
    let Ok(mut stream) = Stream::try_open(&addr, &format!("/changes?from={from}&follow"), "")
    else {
        return;
    };
    while let Some(line) = stream.line() {
        if let Some(change) = change_of(&line) {
            seen.lock().unwrap().push(change);
        }
    }
}

/// Every change after `from` the server holds now (a plain answer).
fn history(addr: &str, from: u64) -> Vec<Change> {
    let mut stream = Stream::open(addr, &format!("/changes?from={from}"), "");
    assert_eq!(stream.status, 200);
    stream.rest().iter().filter_map(|l| change_of(l)).collect()
}

fn last_seq(seen: &Mutex<Vec<Change>>) -> u64 {
    seen.lock().unwrap().last().map_or(0, |c| c.seq)
}

/// Writers for a while, then stopped; their acknowledged writes.
fn write_for(addr: &str, ms: u64, seed: u64) -> Vec<Change> {
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (addr, stop) = (addr.to_string(), Arc::clone(&stop));
            thread::spawn(move || writer(addr, w, seed * 10 + w as u64, stop))
        })
        .collect();
    thread::sleep(Duration::from_millis(ms));
    stop.store(true, Ordering::Relaxed);
    writers.into_iter().flat_map(|w| w.join().unwrap()).collect()
}

fn trial(mode: &str, power: bool, seed: u64) {
    let case = format!("{mode}{} seed {seed}", if power { " + power cut" } else { "" });
    let dir = TempDir::new(&format!("watch-crash-{mode}"));
    let data = dir.join("data");
    let trace = dir.join("sync.trace");
    let args = ["--sync", mode, "--sync-interval", "0.2"];
    let trace_env = trace.to_str().unwrap();
    // A slow disk (each fsync 20 ms) keeps written-but-unsynced records in the file for long:
    // a feed that showed them before their fsync would be caught out by the power cut.
    let envs = [
        ("WALKV_SYNC_TRACE", trace_env),
        ("WALKV_BOOT_ID", BOOT_BEFORE),
        ("WALKV_FSYNC_DELAY_MS", "20"),
    ];
    let server = Server::start_env(&data, &args, &envs);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let consumer = {
        let (addr, seen) = (server.addr.clone(), Arc::clone(&seen));
        thread::spawn(move || follow(addr, 0, seen))
    };
    // Writers, then the kill while they write.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (addr, stop) = (server.addr.clone(), Arc::clone(&stop));
            thread::spawn(move || writer(addr, w, seed * 10 + w as u64, stop))
        })
        .collect();
    thread::sleep(Duration::from_millis(300 + seed % 400));
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut acked: Vec<Change> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    consumer.join().unwrap();
    let before = seen.lock().unwrap().clone();
    let how = if power {
        let (synced_len, _) = *sync_trace(&trace).last().expect("a sync traced");
        simulate_power_cut(&support::active_log(&data), synced_len, &mut Rng::new(seed))
    } else {
        "killed".into()
    };
    let boot = if power { OTHER_BOOT } else { BOOT_BEFORE };
    let server = Server::start_env(&data, &args, &[("WALKV_BOOT_ID", boot)]);
    let addr = server.addr.clone();

    // Everything shown before the crash is still in the history.
    let held: BTreeMap<u64, Change> = history(&addr, 0).into_iter().map(|c| (c.seq, c)).collect();
    for change in &before {
        assert_eq!(held.get(&change.seq), Some(change), "{case}: {how}: shown, then lost");
    }
    // The consumer resumes from its last seq, follows across more writes and a compaction.
    let consumer = {
        let (addr, seen, from) = (addr.clone(), Arc::clone(&seen), last_seq(&seen));
        thread::spawn(move || follow(addr, from, seen))
    };
    acked.extend(write_for(&addr, 150, seed + 1000));
    let r = request(&addr, "POST", "/compact", b"").unwrap();
    assert_eq!(r.status, 200, "{case}: {}", r.text());
    acked.extend(write_for(&addr, 150, seed + 2000));
    let last = acked.iter().map(|c| c.seq).max().unwrap_or(0);
    for _ in 0..200 {
        if last_seq(&seen) >= last {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(server.terminate().0.success());
    consumer.join().unwrap();

    let seen = seen.lock().unwrap().clone();
    let seqs: Vec<u64> = seen.iter().map(|c| c.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{case}: {how}: not increasing: {seqs:?}");
    let by_seq: BTreeMap<u64, &Change> = seen.iter().map(|c| (c.seq, c)).collect();
    for write in &acked {
        assert_eq!(by_seq.get(&write.seq), Some(&write), "{case}: {how}: acknowledged, not seen");
    }
}

fn trials(mode: &str, power: bool) {
    let seed = knob("WALKV_WATCH_SEED", 1);
    for t in 0..knob("WALKV_WATCH_TRIALS", 2) {
        trial(mode, power, seed + t);
    }
}

#[test]
fn a_consumer_resumes_after_kill_9_in_interval_mode() {
    trials("interval", false);
}

#[test]
fn a_consumer_resumes_after_kill_9_in_always_mode() {
    trials("always", false);
}

#[test]
fn a_consumer_resumes_after_a_power_cut_in_always_mode() {
    trials("always", true);
}
