//! Compaction cannot lose a write: the real binary is stopped dead at every step of starting a
//! segment and of compacting (a `crash` failpoint: the process exits on the spot, as `kill -9`
//! would leave it), while concurrent writers keep writing; then either it is simply restarted,
//! or a power cut is simulated first (see `support::power`: only what was fsynced survives,
//! file contents and directory entries alike) and it is restarted as after a reboot.
//!
//! After every restart, with no operator: the server starts by itself, every acknowledged
//! write is there with its exact value (`--sync always`: acknowledged means durable), nothing
//! else is (a writer's one unanswered request may or may not be), leftovers of the interrupted
//! compaction are gone, and a new compaction succeeds and keeps the same state.
//!
//! Knob: `WALKV_COMPACT_TRIALS` (rounds of every case, default 1), `WALKV_COMPACT_SEED`.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;
use support::power::{files_of, power_cut};
use support::{OTHER_BOOT, Server, fs_trace, request};
use walkv::testutil::{Rng, TempDir, knob};

const WRITERS: usize = 3;
const KEYS_PER_WRITER: usize = 6;

/// Every step with a failpoint, and which call of it to stop at: a call of 2 or 3 is in the
/// second compaction (the first ran through), which has an old snapshot to merge and remove.
const STEPS: [(&str, u32); 12] = [
    ("segment_create", 1),
    ("segment_commit", 1),
    ("segment_created", 1),
    ("compact_read", 1),
    ("snapshot_write", 3),
    ("snapshot_fsync", 1),
    ("snapshot_commit_fsync", 1),
    ("snapshot_rename", 1),
    ("snapshot_dir_fsync", 1),
    ("compact_remove", 1),
    ("snapshot_rename", 2),
    ("compact_remove", 3),
];

type State = Option<Vec<u8>>;

/// What one writer knows about its keys: the last acknowledged state of each, and the request
/// it sent without an answer (if any).
#[derive(Default)]
struct Known {
    acked: HashMap<String, State>,
    in_flight: Option<(String, State)>,
}

fn writer(
    addr: String,
    w: usize,
    seed: u64,
    known: Known,
    stop: Arc<AtomicBool>,
    limit: usize,
) -> Known {
    let mut known = known;
    let mut rng = Rng::new(seed);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && n < limit {
        n += 1;
        let key = format!("w{w}-k{}", rng.below(KEYS_PER_WRITER));
        let target = format!("/v1/{key}");
        let delete = rng.below(5) == 0;
        let state = (!delete).then(|| format!("s{seed}-{n}-{}", "v".repeat(rng.below(200))));
        let result = match &state {
            None => request(&addr, "DELETE", &target, b""),
            Some(v) => request(&addr, "PUT", &target, v.as_bytes()),
        };
        let state = state.map(String::into_bytes);
        match result {
            Ok(r) if (200..300).contains(&r.status) => {
                known.acked.insert(key, state);
            }
            Ok(r) => panic!("writer {w}: status {}: {}", r.status, r.text()),
            Err(_) => {
                known.in_flight = Some((key, state));
                break;
            }
        }
    }
    known
}

/// Every key is as its writer last saw it acknowledged, or as its unanswered request left it.
fn verify(addr: &str, known: &[Known], case: &str) {
    for k in known {
        for (key, state) in &k.acked {
            let got = request(addr, "GET", &format!("/v1/{key}?raw"), b"").unwrap();
            let got: State = (got.status == 200).then(|| got.body.clone());
            let in_flight = k.in_flight.as_ref().filter(|(f, _)| f == key).map(|(_, s)| s);
            assert!(
                &got == state || Some(&got) == in_flight,
                "{case}: {key} is {:?}, acknowledged {:?}",
                got.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
                state.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())
            );
        }
    }
}

/// The change feed from seq 0, applied to nothing, gives every key's state now; or the feed
/// says (410) that the history is no longer whole.
fn verify_history(addr: &str, known: &[Known], case: &str) {
    let mut stream = support::feed::Stream::open(addr, "/changes?from=0", "");
    if stream.status == 410 {
        return;
    }
    assert_eq!(stream.status, 200, "{case}");
    let mut rebuilt: HashMap<String, Vec<u8>> = HashMap::new();
    for line in stream.rest() {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let key = v["key"].as_str().unwrap().to_string();
        match v["op"].as_str().unwrap() {
            "set" => rebuilt.insert(key, v["value"].as_str().unwrap().as_bytes().to_vec()),
            _ => rebuilt.remove(&key),
        };
    }
    for key in known.iter().flat_map(|k| k.acked.keys()) {
        let got = request(addr, "GET", &format!("/v1/{key}?raw"), b"").unwrap();
        let now = (got.status == 200).then_some(got.body);
        assert_eq!(rebuilt.get(key), now.as_ref(), "{case}: the history does not give {key}");
    }
}

/// The files of the log in `dir` (not side files or the lock), for messages.
fn listing(dir: &Path) -> String {
    files_of(dir).iter().map(|(n, l)| format!("{n} ({l})")).collect::<Vec<_>>().join(", ")
}

fn run_case(step: &str, call: u32, power: bool, seed: u64) {
    run_case_with(step, call, power, seed, false);
}

/// [`run_case`]; with `retain`, the server keeps compacted segments as history for the change
/// feed (`--changes-retain`), and after the restart the feed's whole history, if it is still
/// held, must rebuild exactly the store's state: a hole in it would not.
fn run_case_with(step: &str, call: u32, power: bool, seed: u64, retain: bool) {
    let case = format!(
        "{step}={call}:crash, {}{}, seed {seed}",
        if power { "power cut" } else { "kill" },
        if retain { ", history retained" } else { "" }
    );
    let root = TempDir::new("compact-crash");
    let data = root.join("data");
    let grave = root.join("grave");
    std::fs::create_dir_all(&grave).unwrap();
    let trace = root.join("fs-trace");
    let always: &[&str] = if retain {
        &["--sync", "always", "--compact-ratio", "0", "--changes-retain", "1M"]
    } else {
        &["--sync", "always", "--compact-ratio", "0"]
    };

    // A store with history, stopped cleanly: its files are durable.
    let server = Server::start_with(&data, always);
    let mut known: Vec<Known> = (0..WRITERS).map(|_| Known::default()).collect();
    for (w, k) in known.iter_mut().enumerate() {
        *k = writer(
            server.addr.clone(),
            w,
            seed * 100 + w as u64,
            Known::default(),
            Arc::new(AtomicBool::new(false)),
            60,
        );
        k.in_flight = None;
    }
    assert!(server.terminate().0.success());
    let before = files_of(&data);

    // Writers, compactions, and a crash at the step.
    let rule = format!("{step}={call}:crash");
    let envs = [
        ("WALKV_FAILPOINTS", rule.as_str()),
        ("WALKV_FS_TRACE", trace.to_str().unwrap()),
        ("WALKV_FS_GRAVEYARD", grave.to_str().unwrap()),
    ];
    let server = Server::start_env(&data, always, &envs);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = known
        .into_iter()
        .enumerate()
        .map(|(w, k)| {
            let (addr, stop) = (server.addr.clone(), Arc::clone(&stop));
            thread::spawn(move || writer(addr, w, seed * 100 + 50 + w as u64, k, stop, 3_000))
        })
        .collect();
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(40));
        if request(&server.addr, "POST", "/compact", b"").is_err() {
            break; // the server stopped at the step
        }
    }
    let (status, stderr) = server.wait_exit(Duration::from_secs(20));
    stop.store(true, Ordering::Relaxed);
    let known: Vec<Known> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(status.code(), Some(86), "{case}: the server did not stop at the step: {stderr}");

    let how = if power {
        let mut rng = Rng::new(seed);
        power_cut(&data, &before, &fs_trace(&trace), &mut rng)
    } else {
        "killed".to_string()
    };
    let boot = if power { OTHER_BOOT } else { "" };
    let envs: Vec<(&str, &str)> = if power { vec![("WALKV_BOOT_ID", boot)] } else { vec![] };
    let files = listing(&data);
    let server = match Server::try_start_env(&data, always, &envs) {
        Ok(server) => server,
        Err((status, stderr)) => {
            panic!("{case}: {how}: needed help ({status:?}) with {files}: {stderr}")
        }
    };
    verify(&server.addr, &known, &format!("{case}: {how}; files {files}"));
    if retain {
        verify_history(&server.addr, &known, &format!("{case}: {how}; files {files}"));
    }
    let leftovers: Vec<String> =
        files_of(&data).into_iter().map(|(n, _)| n).filter(|n| n.ends_with(".new")).collect();
    assert!(leftovers.is_empty(), "{case}: leftovers {leftovers:?}");

    // The next compaction works, and a restart after it sees the same state.
    let r = request(&server.addr, "POST", "/compact", b"").unwrap();
    assert_eq!(r.status, 200, "{case}: {}", r.text());
    assert!(server.terminate().0.success());
    let server = Server::start_with(&data, always);
    verify(&server.addr, &known, &format!("{case}: after a compaction and a restart"));
    let names: Vec<String> = files_of(&data).into_iter().map(|(n, _)| n).collect();
    let snapshots = names.iter().filter(|n| n.starts_with("snapshot-")).count();
    assert_eq!(snapshots, 1, "{case}: {names:?}");
}

#[test]
fn killed_at_every_step_of_compaction_loses_nothing() {
    let seed = knob("WALKV_COMPACT_SEED", 1);
    for trial in 0..knob("WALKV_COMPACT_TRIALS", 1) {
        for (i, (step, call)) in STEPS.iter().enumerate() {
            run_case(step, *call, false, seed + trial * 1000 + i as u64);
        }
    }
}

#[test]
fn power_cut_at_every_step_of_compaction_loses_nothing() {
    let seed = knob("WALKV_COMPACT_SEED", 1);
    for trial in 0..knob("WALKV_COMPACT_TRIALS", 1) {
        for (i, (step, call)) in STEPS.iter().enumerate() {
            run_case(step, *call, true, seed + 500 + trial * 1000 + i as u64);
        }
    }
}

#[test]
fn killed_or_cut_at_every_step_with_history_retained_serves_no_hole() {
    let seed = knob("WALKV_COMPACT_SEED", 1);
    for trial in 0..knob("WALKV_COMPACT_TRIALS", 1) {
        for (i, (step, call)) in STEPS.iter().enumerate() {
            let seed = seed + 700 + trial * 1000 + i as u64;
            // With history retained, covered segments are renamed, not removed.
            let step = if *step == "compact_remove" { "compact_rename" } else { step };
            run_case_with(step, *call, false, seed, true);
            run_case_with(step, *call, true, seed, true);
        }
    }
}
