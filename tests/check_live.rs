//! `walkv check` on the directory of a running server, under write load: it says a server is
//! running, checks what is complete, and never reports damage that is not there, however its
//! reads interleave with the server's appends (records written while their space still holds
//! reserved zeros, values big enough to take several writes, markers after every sync).
//!
//! Knob: `WALKV_CHECK_ROUNDS` (checks per mode, default 100).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use support::{Server, request, run_walkv};
use walkv::testutil::{Rng, TempDir, knob};

/// Writes until `stop`: values from a few bytes to 40 KB (bigger than the server's 8 KiB write
/// buffer, so written in more than one piece), now and then a DELETE; about a thousand writes a
/// second, and no more than `budget` writes in all (the checks raise it round by round, so the
/// log grows with the number of checks, not with how long they take).
fn writer(
    addr: String,
    id: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    budget: Arc<AtomicU64>,
) {
    let mut rng = Rng::new(id);
    while !stop.load(Ordering::Relaxed) {
        if acked.load(Ordering::Relaxed) >= budget.load(Ordering::Relaxed) {
            thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        let key = format!("/v1/w{id}-{}", rng.below(50));
        let reply = if rng.below(8) == 0 {
            request(&addr, "DELETE", &key, b"")
        } else {
            let len = if rng.below(40) == 0 { 9_000 + rng.below(31_000) } else { rng.below(500) };
            request(&addr, "PUT", &key, &vec![b'v'; len])
        };
        match reply {
            Ok(r) if (200..300).contains(&r.status) => {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            other => panic!("write failed: {other:?}"),
        }
        thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// How many more writes the writers may make per check.
const WRITES_PER_CHECK: u64 = 300;

fn check_while_writing(args: &[&str]) {
    let dir = TempDir::new("check-live");
    let server = Server::start_with(&dir, args);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let budget = Arc::new(AtomicU64::new(WRITES_PER_CHECK));
    let writers: Vec<_> = (0..3)
        .map(|id| {
            let (addr, stop, acked) = (server.addr.clone(), stop.clone(), acked.clone());
            let budget = budget.clone();
            thread::spawn(move || writer(addr, id, stop, acked, budget))
        })
        .collect();
    let rounds = knob("WALKV_CHECK_ROUNDS", 100);
    let mut growing = 0;
    for round in 0..rounds {
        budget.fetch_add(WRITES_PER_CHECK, Ordering::Relaxed);
        let before = acked.load(Ordering::Relaxed);
        let (code, out, err) = run_walkv(&["check", "--data-dir", dir.to_str().unwrap()], &[], b"");
        let out = String::from_utf8_lossy(&out);
        assert_eq!(code, 0, "{args:?} round {round}: {out}{err}");
        assert!(out.contains("a server is running on it") && out.contains("ok:"), "{out}");
        growing += u64::from(acked.load(Ordering::Relaxed) > before);
    }
    stop.store(true, Ordering::Relaxed);
    writers.into_iter().for_each(|w| w.join().unwrap());
    assert!(growing * 2 >= rounds, "the log grew during only {growing} of {rounds} checks");
    eprintln!("{args:?}: {rounds} checks under load, {} writes", acked.load(Ordering::Relaxed));
    let (status, _) = server.terminate();
    assert!(status.success());
    let (code, out, _) = run_walkv(&["check", "--data-dir", dir.to_str().unwrap()], &[], b"");
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&out));
}

/// `interval` mode with frequent syncs: a marker lands in the log every few milliseconds.
#[test]
fn check_under_load_in_interval_mode_reports_no_damage() {
    check_while_writing(&["--sync-interval", "0.02"]);
}

/// `always` mode: a marker after every group commit (at most every 100 ms).
#[test]
fn check_under_load_in_always_mode_reports_no_damage() {
    check_while_writing(&["--sync", "always"]);
}
