//! The durability promise against the real binary: an acknowledged write survives `kill -9`.
//!
//! Each trial starts the server on the same data directory, lets several clients write, overwrite
//! and delete concurrently, kills the server with SIGKILL at a random moment, restarts it and
//! checks every key against a model. Each key has exactly one writer, so after the crash a key
//! must hold either the state of its last acknowledged operation or the result of that writer's
//! one unanswered operation, and nothing else (no lost write, no resurrected delete, no value
//! that was never written). Some values are large, so a kill can land in the middle of writing
//! a record, which exercises torn-tail trimming on restart.
//!
//! Every ten trials start over on a fresh data directory, so long runs stay small.
//!
//! Knobs: `WALKV_KILL_TRIALS` (default 12), `WALKV_KILL_SEED`.

mod support;

use walkv::testutil::TempDir;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;
use support::{Server, request};
use walkv::testutil::{Rng, knob};

const CLIENTS: usize = 4;
const KEYS_PER_CLIENT: usize = 12;
const TRIALS_PER_LOG: u64 = 10;

/// A key's state: `None` = absent.
type State = Option<Vec<u8>>;

/// What one writer knows after a trial.
struct WriterLog {
    /// Last acknowledged state of each of its keys.
    acked: HashMap<Vec<u8>, State>,
    /// The operation sent without an answer, if any: (key, state it would leave).
    in_flight: Option<(Vec<u8>, State)>,
    acknowledged: u64,
}

fn key_of(client: usize, j: usize) -> Vec<u8> {
    format!("c{client}/k{j}").into_bytes()
}

/// Writes until `stop`, recording what was acknowledged.
fn writer(
    addr: String,
    client: usize,
    seed: u64,
    mut acked: HashMap<Vec<u8>, State>,
    stop: Arc<AtomicBool>,
) -> WriterLog {
    let mut rng = Rng::new(seed);
    let mut log = WriterLog { acked: HashMap::new(), in_flight: None, acknowledged: 0 };
    let mut n = 0u64;
    // Bounded per trial so that long runs (the log is never compacted) stay small.
    while !stop.load(Ordering::Relaxed) && n < 2_000 {
        let key = key_of(client, rng.below(KEYS_PER_CLIENT));
        let target = format!("/v1/{}", support::encode_all(&key));
        n += 1;
        let (result, state) = if rng.below(10) == 0 {
            (request(&addr, "DELETE", &target, b""), None)
        } else {
            let pad = if rng.below(16) == 0 { 128 * 1024 } else { rng.below(200) };
            let mut value = format!("seed{seed}-n{n}-").into_bytes();
            value.extend(std::iter::repeat_n(b'v', pad));
            (request(&addr, "PUT", &target, &value), Some(value))
        };
        match result {
            Ok(reply) if (200..300).contains(&reply.status) => {
                acked.insert(key, state);
                log.acknowledged += 1;
            }
            Ok(reply) => panic!("unexpected status {} {}", reply.status, reply.text()),
            Err(_) => {
                // No answer: the server died with this operation in flight.
                log.in_flight = Some((key, state));
                break;
            }
        }
    }
    log.acked = acked;
    log
}

fn read_state(addr: &str, key: &[u8]) -> State {
    let reply =
        request(addr, "GET", &format!("/v1/{}?raw", support::encode_all(key)), b"").unwrap();
    match reply.status {
        200 => Some(reply.body),
        404 => None,
        other => panic!("GET returned {other}: {}", reply.text()),
    }
}

/// Zero acknowledged writes lost across repeated `kill -9`s under concurrent load.
#[test]
fn acknowledged_writes_survive_kill_9() {
    let trials = knob("WALKV_KILL_TRIALS", 12);
    let seed = knob("WALKV_KILL_SEED", 2026);
    let mut rng = Rng::new(seed);
    let mut dir = TempDir::new("kill9");
    let mut model: Vec<HashMap<Vec<u8>, State>> = vec![HashMap::new(); CLIENTS];
    let (mut acknowledged, mut in_flight_applied, mut trimmed) = (0u64, 0u64, 0u64);

    for trial in 0..trials {
        // Ten kills in a row on the same log, then a fresh one: the log is never compacted, and
        // a long run on one log would grow it to gigabytes.
        if trial > 0 && trial % TRIALS_PER_LOG == 0 {
            dir = TempDir::new("kill9");
            model = vec![HashMap::new(); CLIENTS];
        }
        let server = Server::start(&dir);
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (addr, stop, acked) =
                    (server.addr.clone(), Arc::clone(&stop), model[c].clone());
                let writer_seed = seed * 1000 + trial * 10 + c as u64;
                thread::spawn(move || writer(addr, c, writer_seed, acked, stop))
            })
            .collect();
        thread::sleep(Duration::from_millis(50 + rng.below(300) as u64));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        let logs: Vec<WriterLog> = handles.into_iter().map(|h| h.join().unwrap()).collect();

        let server = Server::start(&dir);
        let report = server.stderr();
        if report.contains("trimmed the end of") {
            // In the same kernel boot the page cache lost nothing: the only thing a kill can
            // leave is one append the server did not finish.
            assert!(report.contains("did not finish"), "trial {trial}: {report}");
            trimmed += 1;
        }
        for (c, log) in logs.into_iter().enumerate() {
            acknowledged += log.acknowledged;
            for j in 0..KEYS_PER_CLIENT {
                let key = key_of(c, j);
                let actual = read_state(&server.addr, &key);
                let acked = log.acked.get(&key).cloned().flatten();
                let pending =
                    log.in_flight.as_ref().filter(|(k, _)| *k == key).map(|(_, s)| s.clone());
                let ok = actual == acked || pending.as_ref() == Some(&actual);
                assert!(
                    ok,
                    "trial {trial} (seed {seed}), key {:?}: found {:?}, acknowledged {:?}, in flight {:?}",
                    String::from_utf8_lossy(&key),
                    actual
                        .as_ref()
                        .map(|v| String::from_utf8_lossy(&v[..v.len().min(40)]).into_owned()),
                    acked
                        .as_ref()
                        .map(|v| String::from_utf8_lossy(&v[..v.len().min(40)]).into_owned()),
                    pending.is_some()
                );
                if actual != acked {
                    in_flight_applied += 1;
                }
                model[c].insert(key, actual);
            }
        }
        drop(server);
    }
    eprintln!(
        "kill -9 trials: {trials}, acknowledged writes: {acknowledged}, lost: 0, \
         unacknowledged in-flight writes found applied: {in_flight_applied}, torn tails trimmed: {trimmed}"
    );
    assert!(acknowledged > trials * 10, "too few writes were acknowledged to prove anything");
}
