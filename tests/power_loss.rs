//! Simulated power cuts, per sync mode, through the real binary.
//!
//! A power cut keeps what was fsynced and an arbitrary part of what was not: the page cache
//! writes dirty pages back in any order, so any subset of the unsynced 4 KiB pages may have
//! reached the disk, and each one that did not holds zeros or garbage. Each trial runs
//! concurrent writers (each owns its keys, so every key has one writer and a known order of
//! operations), kills the server with SIGKILL at a random moment, then keeps every byte up to
//! the last synced length (from the sync trace, see `src/failpoint.rs`) and, of every 4 KiB page
//! after it, keeps it, zeroes it or garbles it at random (sometimes the file is also cut short
//! at a page boundary, as if its new length had not reached the disk). Then it restarts the
//! server as after a reboot (another boot id, `WALKV_BOOT_ID`), with no help. Then:
//!
//! - the server starts by itself, and replays records `1..=R` for some R at least the last
//!   synced seq;
//! - `always`: every acknowledged write is present (R is at least every acknowledged seq);
//! - every mode: the state is exactly the write order cut at R (a prefix: no holes, no
//!   reordering, no value that was never written), except that a writer's one unanswered
//!   request may or may not be in it;
//! - `interval`: the loss window is measured and reported two ways: the age, at the cut, of the
//!   oldest acknowledged write that was actually lost, and of the oldest acknowledged write not
//!   covered by the last completed fsync (what a cut that kept none of the unsynced bytes would
//!   lose: the worst case). The worst case must stay within the interval plus the fsync time (a
//!   generous bound here, because these machines are noisy).
//!
//! One write in five is a transaction of two or three keys, one record: it must be found whole
//! or not at all, like any other record.
//!
//! Knobs: `WALKV_POWER_TRIALS` (per mode, default 6), `WALKV_POWER_SEED`.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use support::power::simulate_power_cut;
use support::{Server, request, sync_trace};
use walkv::testutil::{Rng, TempDir, knob};

const CLIENTS: usize = 4;
const KEYS_PER_CLIENT: usize = 8;
const INTERVAL: f64 = 0.25;

type State = Option<Vec<u8>>;

/// One acknowledged operation.
struct Op {
    seq: u64,
    key: Vec<u8>,
    state: State,
    acked_at: Instant,
}

struct WriterLog {
    ops: Vec<Op>,
    /// The request sent without an answer: each key it writes, and the state it would leave
    /// (several for a transaction, which must be all there or none).
    in_flight: Vec<(Vec<u8>, State)>,
}

fn key_of(client: usize, j: usize) -> Vec<u8> {
    format!("c{client}-k{j}").into_bytes()
}

fn writer(addr: String, client: usize, seed: u64, stop: Arc<AtomicBool>) -> WriterLog {
    let mut rng = Rng::new(seed);
    let mut log = WriterLog { ops: Vec::new(), in_flight: Vec::new() };
    let mut live: HashMap<Vec<u8>, bool> = HashMap::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && n < 5_000 {
        n += 1;
        // One write in five is a transaction of 2 or 3 of this client's keys: one record.
        let count = if rng.below(5) == 0 { 2 + rng.below(2) } else { 1 };
        let mut writes: Vec<(Vec<u8>, State)> = Vec::new();
        while writes.len() < count {
            let key = key_of(client, rng.below(KEYS_PER_CLIENT));
            if writes.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let delete = rng.below(6) == 0 && live.get(&key) == Some(&true);
            let value = format!("s{seed}-n{n}-{}", "x".repeat(rng.below(300))).into_bytes();
            writes.push((key, (!delete).then_some(value)));
        }
        let result = match writes.as_slice() {
            [(key, state)] => {
                let target = format!("/v1/{}", String::from_utf8_lossy(key));
                match state {
                    None => request(&addr, "DELETE", &target, b""),
                    Some(value) => request(&addr, "PUT", &target, value),
                }
            }
            _ => request(&addr, "POST", "/v1/txn", &txn_body(&writes)),
        };
        let reply = match result {
            Ok(reply) if (200..300).contains(&reply.status) => reply,
            // A stopping server refuses new writes: nothing was written.
            Ok(reply) if reply.status == 503 && reply.text().contains("stopping") => break,
            Ok(reply) => panic!("status {}: {}", reply.status, reply.text()),
            Err(_) => {
                log.in_flight = writes;
                break;
            }
        };
        let v: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
        let seq = v["seq"].as_u64().expect("every write here makes a record");
        for (key, state) in writes {
            live.insert(key.clone(), state.is_some());
            log.ops.push(Op { seq, key, state, acked_at: Instant::now() });
        }
    }
    log
}

/// The body of a transaction making `writes` (ASCII keys and values).
fn txn_body(writes: &[(Vec<u8>, State)]) -> Vec<u8> {
    let ops: Vec<String> = writes
        .iter()
        .map(|(key, state)| {
            let key = String::from_utf8_lossy(key);
            match state {
                Some(v) => {
                    format!(
                        r#"{{"op":"set","key":"{key}","value":"{}"}}"#,
                        String::from_utf8_lossy(v)
                    )
                }
                None => format!(r#"{{"op":"delete","key":"{key}"}}"#),
            }
        })
        .collect();
    format!(r#"{{"then":[{}]}}"#, ops.join(",")).into_bytes()
}

/// Boot ids: the server before the cut, and after it (see `support::OTHER_BOOT`).
const BOOT_BEFORE: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

#[derive(Default)]
struct Totals {
    trials: u64,
    acknowledged: u64,
    lost: u64,
    /// Largest age of an acknowledged write actually lost.
    max_window: Duration,
    /// Largest age of an acknowledged write not covered by the last completed fsync.
    max_unsynced_age: Duration,
}

/// Runs one trial and checks the recovered state.
fn trial(mode: &str, seed: u64, rng: &mut Rng) -> Totals {
    let dir = TempDir::new(&format!("power-{mode}"));
    let data = dir.join("data");
    let trace = dir.join("sync.trace");
    let trace_env = trace.to_str().unwrap().to_string();
    let interval = INTERVAL.to_string();
    let args = ["--sync", mode, "--sync-interval", interval.as_str()];
    let envs = [("WALKV_SYNC_TRACE", trace_env.as_str()), ("WALKV_BOOT_ID", BOOT_BEFORE)];
    let server = Server::start_env(&data, &args, &envs);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (addr, stop) = (server.addr.clone(), Arc::clone(&stop));
            thread::spawn(move || writer(addr, c, seed * 10 + c as u64, stop))
        })
        .collect();
    // Interval-mode trials run long enough (up to 2 s, eight intervals) that a sync thread that
    // never ran would show as a loss window far over the bound.
    let run_ms = if mode == "interval" { 300 + rng.below(1700) } else { 200 + rng.below(600) };
    thread::sleep(Duration::from_millis(run_ms as u64));
    let cut_at = Instant::now();
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let logs: Vec<WriterLog> = writers.into_iter().map(|w| w.join().unwrap()).collect();

    let (synced_len, synced_seq) = *sync_trace(&trace).last().expect("startup sync traced");
    let how = simulate_power_cut(&support::active_log(&data), synced_len, rng);
    let server = match Server::try_start_env(&data, &[], &[("WALKV_BOOT_ID", support::OTHER_BOOT)])
    {
        Ok(server) => server,
        Err((status, stderr)) => {
            panic!("{mode} seed {seed}: {how}: the server needed help ({status:?}): {stderr}")
        }
    };
    let recovered = support::replayed_last_seq(&server.stderr());
    let context =
        format!("{mode} seed {seed}: {how}; synced seq {synced_seq}, recovered {recovered}");
    assert!(recovered >= synced_seq, "synced writes lost: {context}");

    let (mut acknowledged, mut lost) = (0, 0);
    let read = |key: &[u8]| {
        let target = format!("/v1/{}?raw", String::from_utf8_lossy(key));
        let reply = request(&server.addr, "GET", &target, b"").unwrap();
        (reply.status == 200).then_some(reply.body)
    };
    let (mut oldest_lost, mut oldest_unsynced) = (None::<Instant>, None::<Instant>);
    let older = |t: Option<Instant>, u: Instant| Some(t.map_or(u, |t| t.min(u)));
    for (c, log) in logs.iter().enumerate() {
        for op in &log.ops {
            acknowledged += 1;
            if op.seq > recovered {
                lost += 1;
                oldest_lost = older(oldest_lost, op.acked_at);
            }
            if op.seq > synced_seq {
                oldest_unsynced = older(oldest_unsynced, op.acked_at);
            }
        }
        for j in 0..KEYS_PER_CLIENT {
            let key = key_of(c, j);
            // The write order cut at `recovered`: the last acknowledged op on the key up to it.
            let expected = log
                .ops
                .iter()
                .rfind(|op| op.key == key && op.seq <= recovered)
                .and_then(|op| op.state.clone());
            let actual = read(&key);
            let pending = log.in_flight.iter().find(|(k, _)| *k == key).map(|(_, s)| s);
            assert!(
                actual == expected || pending == Some(&actual),
                "key c{c}-k{j} is not in the state the write order gives at seq {recovered}: {context}"
            );
        }
        // The unanswered request, if a transaction, is there whole or not at all.
        if log.in_flight.len() > 1 {
            let applied = log.in_flight.iter().filter(|(k, s)| read(k) == *s).count();
            let before = |k: &Vec<u8>| {
                let last = log.ops.iter().rfind(|op| op.key == *k && op.seq <= recovered);
                last.and_then(|op| op.state.clone())
            };
            let untouched = log.in_flight.iter().filter(|(k, _)| read(k) == before(k)).count();
            assert!(
                applied == log.in_flight.len() || untouched == log.in_flight.len(),
                "a transaction in flight was half kept: {context}"
            );
        }
    }
    if mode == "always" {
        assert_eq!(lost, 0, "always mode lost acknowledged writes: {context}");
    }
    let age = |t: Option<Instant>| t.map_or(Duration::ZERO, |t| cut_at - t);
    Totals {
        trials: 1,
        acknowledged,
        lost,
        max_window: age(oldest_lost),
        max_unsynced_age: age(oldest_unsynced),
    }
}

fn run_mode(mode: &str) -> Totals {
    let trials = knob("WALKV_POWER_TRIALS", 6);
    let seed = knob("WALKV_POWER_SEED", 99);
    let mut rng = Rng::new(seed ^ mode.len() as u64);
    let mut totals = Totals::default();
    for t in 0..trials {
        let one = trial(mode, seed * 1000 + t, &mut rng);
        totals.trials += 1;
        totals.acknowledged += one.acknowledged;
        totals.lost += one.lost;
        totals.max_window = totals.max_window.max(one.max_window);
        totals.max_unsynced_age = totals.max_unsynced_age.max(one.max_unsynced_age);
    }
    eprintln!(
        "power cuts, --sync {mode}: {} trials, {} acknowledged writes, {} lost; oldest lost write \
         acknowledged {:.3} s before the cut; oldest write not covered by the last fsync \
         {:.3} s",
        totals.trials,
        totals.acknowledged,
        totals.lost,
        totals.max_window.as_secs_f64(),
        totals.max_unsynced_age.as_secs_f64()
    );
    totals
}

/// `always`: a power cut loses no acknowledged write.
#[test]
fn power_cut_in_always_mode_loses_nothing_acknowledged() {
    let totals = run_mode("always");
    assert_eq!(totals.lost, 0);
    assert!(totals.acknowledged > 0);
}

/// `interval`: only the newest writes are lost, within the interval plus the fsync time.
#[test]
fn power_cut_in_interval_mode_loses_only_the_newest_writes() {
    let totals = run_mode("interval");
    // The interval, plus room for the fsync and a busy 2-core machine running other tests.
    let bound = Duration::from_secs_f64(INTERVAL + 1.0);
    let worst = totals.max_unsynced_age;
    assert!(worst <= bound, "an acknowledged write went unsynced for {worst:?}, over {bound:?}");
}

/// `never`: anything unsynced may be lost, but what survives is still a prefix.
#[test]
fn power_cut_in_never_mode_keeps_a_prefix() {
    run_mode("never");
}

/// SIGTERM under write load exits 0, and a power cut right after that exit loses nothing.
#[test]
fn sigterm_under_load_then_power_cut_loses_nothing() {
    let dir = TempDir::new("power-sigterm");
    let data = dir.join("data");
    let trace = dir.join("sync.trace");
    let trace_env = trace.to_str().unwrap().to_string();
    let server = Server::start_env(&data, &[], &[("WALKV_SYNC_TRACE", trace_env.as_str())]);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (addr, stop) = (server.addr.clone(), Arc::clone(&stop));
            thread::spawn(move || writer(addr, c, 500 + c as u64, stop))
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let (status, stderr) = server.terminate();
    stop.store(true, Ordering::Relaxed);
    let logs: Vec<WriterLog> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(status.code(), Some(0), "{stderr}");

    let wal = support::active_log(&data);
    let (synced_len, _) = *sync_trace(&trace).last().unwrap();
    assert_eq!(synced_len, std::fs::metadata(&wal).unwrap().len(), "the exit sync covers the file");
    simulate_power_cut(&wal, synced_len, &mut Rng::new(1));
    let server = Server::start_env(&data, &[], &[("WALKV_BOOT_ID", support::OTHER_BOOT)]);
    let recovered = support::replayed_last_seq(&server.stderr());
    let acked: Vec<u64> = logs.iter().flat_map(|l| l.ops.iter().map(|op| op.seq)).collect();
    assert!(!acked.is_empty());
    assert!(acked.iter().all(|&seq| seq <= recovered), "an acknowledged write was lost");
}
