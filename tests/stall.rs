//! Nothing stalls the server: a slow fsync, a slow or frozen disk, holds up only the writes that
//! must wait for it. Reads, probes, `/status`, `/metrics` and listings are answered at once
//! (every one within 50 ms, the worst case, not a percentile), writes wait for exactly what
//! their mode promises, and a read never shows a write that a crash could take back.
//!
//! The real binary, over real sockets: a slow fsync and a slow `write(2)` come from failpoints
//! (`WALKV_FSYNC_DELAY_MS`, `WALKV_WRITE_DELAY_MS`), a frozen disk from `fsfreeze` on an ext4
//! image mounted for the test (root only; set `WALKV_REQUIRE_FSFREEZE=1` to make its absence a
//! failure, as CI does). Each test ends with a `kill -9` and a restart that must hold every
//! acknowledged write. The tests run one at a time: their latencies are measured on two shared
//! cores.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use support::{Server, request};
use walkv::testutil::TempDir;

/// The worst a read or a probe may take while the disk stalls.
const READ_LIMIT: Duration = Duration::from_millis(50);

/// What the readers ask, in turn: a key, the probes, the status, the metrics, a listing.
const READS: [&str; 6] = ["/v1/seed", "/livez", "/readyz", "/status", "/metrics", "/v1/?limit=20"];

/// One test at a time (see the module's doc).
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A write's outcome as its client saw it.
#[derive(Debug, Clone)]
struct Ack {
    key: String,
    value: Vec<u8>,
    seq: u64,
    sent: Instant,
    answered: Instant,
}

impl Ack {
    fn waited(&self) -> Duration {
        self.answered - self.sent
    }
}

/// Readers, and what they measured.
struct Readers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<(String, Duration)>>>,
}

impl Readers {
    fn start(addr: &str, count: usize) -> Readers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..count)
            .map(|i| {
                let (addr, stop) = (addr.to_string(), Arc::clone(&stop));
                thread::spawn(move || {
                    let mut took = Vec::new();
                    let mut n = i;
                    while !stop.load(Ordering::Relaxed) {
                        let path = READS[n % READS.len()];
                        n += 1;
                        let asked = Instant::now();
                        let reply = request(&addr, "GET", path, b"").expect("a read is answered");
                        assert!(reply.status < 300, "{path}: {} {}", reply.status, reply.text());
                        took.push((path.to_string(), asked.elapsed()));
                        thread::sleep(Duration::from_millis(2));
                    }
                    took
                })
            })
            .collect();
        Readers { stop, threads }
    }

    /// Stops them; the slowest read and how many there were.
    fn finish(self) -> (String, Duration, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let all: Vec<(String, Duration)> =
            self.threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let count = all.len();
        let (path, worst) = all.into_iter().max_by_key(|(_, took)| *took).unwrap_or_default();
        (path, worst, count)
    }
}

/// Writers, each with keys of its own; `suffix` is added to every target (`?sync`).
struct Writers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Ack>>>,
}

impl Writers {
    fn start(addr: &str, names: &[&str], suffix: &'static str, size: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = names
            .iter()
            .map(|name| {
                let (addr, stop, name) = (addr.to_string(), Arc::clone(&stop), name.to_string());
                thread::spawn(move || {
                    let mut acks = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let key = format!("{name}-{}", n % 7);
                        let mut value = format!("{name}-{n}-").into_bytes();
                        value.resize(size.max(value.len()), b'v');
                        let sent = Instant::now();
                        let target = format!("/v1/{key}{suffix}");
                        let Ok(reply) = request(&addr, "PUT", &target, &value) else {
                            break; // the server was killed: this write's outcome is unknown
                        };
                        assert!(reply.status < 300, "{target}: {} {}", reply.status, reply.text());
                        let body: Value = serde_json::from_slice(&reply.body).unwrap();
                        let seq = body["seq"].as_u64().unwrap();
                        acks.push(Ack { key, value, seq, sent, answered: Instant::now() });
                    }
                    acks
                })
            })
            .collect();
        Writers { stop, threads }
    }

    fn finish(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
    }
}

/// What [`StatusWatch`] saw: (when, synced_seq) for every sample, and the largest
/// `queued_bytes`, `waiting_writes` and `fsync_running_seconds`.
type Watched = (Vec<(Instant, u64)>, u64, u64, f64);

/// Samples `/status` every 20 ms.
struct StatusWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Watched>,
}

impl StatusWatch {
    fn start(addr: &str) -> StatusWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, flag) = (addr.to_string(), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let (mut synced, mut queued, mut waiting, mut fsync) = (Vec::new(), 0, 0, 0.0f64);
            while !flag.load(Ordering::Relaxed) {
                let reply = request(&addr, "GET", "/status", b"").unwrap();
                let status: Value = serde_json::from_slice(&reply.body).unwrap();
                synced.push((Instant::now(), status["synced_seq"].as_u64().unwrap()));
                queued = queued.max(status["queued_bytes"].as_u64().unwrap());
                waiting = waiting.max(status["waiting_writes"].as_u64().unwrap());
                fsync = fsync.max(status["fsync_running_seconds"].as_f64().unwrap_or(0.0));
                thread::sleep(Duration::from_millis(20));
            }
            (synced, queued, waiting, fsync)
        });
        StatusWatch { stop, thread }
    }

    fn finish(self) -> Watched {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// After `kill -9` and a restart, every acknowledged write is there: for each key, the value
/// of its last acknowledged write.
fn every_ack_survives(data: &Path, acks: &[Ack]) {
    let server = Server::start(data);
    let mut last: std::collections::HashMap<&str, &Ack> = std::collections::HashMap::new();
    for ack in acks {
        if last.get(ack.key.as_str()).is_none_or(|a| a.seq < ack.seq) {
            last.insert(&ack.key, ack);
        }
    }
    for (key, ack) in last {
        let reply = request(&server.addr, "GET", &format!("/v1/{key}?raw"), b"").unwrap();
        assert_eq!((reply.status, reply.body), (200, ack.value.clone()), "{key} after kill -9");
    }
}

fn assert_reads_fast(readers: Readers, when: &str) {
    let (path, worst, count) = readers.finish();
    assert!(count > 20, "{when}: only {count} reads");
    assert!(worst <= READ_LIMIT, "{when}: {path} took {worst:?} (limit {READ_LIMIT:?})");
    println!("{when}: {count} reads and probes, the slowest {worst:?} ({path})");
}

/// A slow fsync (1.5 s each) in each mode, with readers, writers and probes running for 4 s:
/// reads and probes are never held up; in `always` mode every write waits for its fsync; in
/// `interval` mode writes are answered after their `write(2)` until the oldest answered write
/// not yet fsynced is twice the interval old, and then wait for the fsync, so that the writes a
/// power cut can take back never span more than that; in `never` mode only `?sync` writes wait.
#[test]
fn a_slow_fsync_holds_up_only_the_writes_that_wait_for_it() {
    let _one = one_at_a_time();
    for mode in ["always", "interval", "never"] {
        let dir = TempDir::new(&format!("stall-fsync-{mode}"));
        let data = dir.join("data");
        let args = ["--sync", mode, "--sync-interval", "0.25"];
        let server = Server::start_env(&data, &args, &[("WALKV_FSYNC_DELAY_MS", "1500")]);
        assert_eq!(request(&server.addr, "PUT", "/v1/seed", b"s").unwrap().status, 201);
        let watch = StatusWatch::start(&server.addr);
        let readers = Readers::start(&server.addr, 2);
        let writers = Writers::start(&server.addr, &["a", "b", "c"], "", 100);
        let syncing = (mode == "never").then(|| Writers::start(&server.addr, &["s"], "?sync", 10));
        thread::sleep(Duration::from_secs(4));
        let acks = writers.finish();
        let synced_acks = syncing.map(Writers::finish).unwrap_or_default();
        assert_reads_fast(readers, &format!("{mode}, slow fsync"));
        let (synced, _, _, fsync_seen) = watch.finish();
        // /status showed the fsync while it ran, and the log said so once it passed a second.
        assert!(fsync_seen > 0.5, "{mode}: /status showed fsyncs up to {fsync_seen} s");
        let said = server.stderr();
        assert!(said.contains("fsync has taken 1."), "{mode}: {said}");
        assert!(said.contains("the slow fsync ended after 1."), "{mode}: {said}");
        let slowest = acks.iter().map(Ack::waited).max().unwrap();
        let fastest = acks.iter().map(Ack::waited).min().unwrap();
        println!("{mode}: {} writes, each waited {fastest:?} to {slowest:?}", acks.len());
        match mode {
            "always" => assert!(fastest >= Duration::from_millis(1400), "{mode}: {fastest:?}"),
            "never" => {
                assert!(slowest < Duration::from_millis(500), "{mode}: {slowest:?}");
                let waited = synced_acks.iter().map(Ack::waited).min().unwrap();
                assert!(waited >= Duration::from_millis(1400), "?sync waited {waited:?}");
            }
            _ => {
                assert!(fastest < Duration::from_millis(100), "interval: {fastest:?}");
                assert!(slowest >= Duration::from_millis(500), "interval: none waited");
                let spread = unsynced_spread(&acks, &synced);
                // Twice the interval, and room for the status samples' 20 ms and a busy machine.
                let bound = Duration::from_millis(500 + 250);
                assert!(spread <= bound, "answered writes not fsynced spanned {spread:?}");
                println!("interval: answered writes not yet fsynced spanned at most {spread:?}");
            }
        }
        server.kill9();
        every_ack_survives(&data, &[acks, synced_acks].concat());
    }
}

/// The widest span of answer times among answered writes that `/status` said were not yet
/// fsynced, over every sample.
fn unsynced_spread(acks: &[Ack], synced: &[(Instant, u64)]) -> Duration {
    let mut widest = Duration::ZERO;
    for &(at, synced_seq) in synced {
        let times: Vec<Instant> = acks
            .iter()
            .filter(|a| a.answered <= at && a.seq > synced_seq)
            .map(|a| a.answered)
            .collect();
        if let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) {
            widest = widest.max(*last - *first);
        }
    }
    widest
}

/// A read never shows a write that a power cut could take back: in `always` mode, with a slow
/// fsync (200 ms) and readers watching the keys being written, the server is killed, a power
/// cut keeps only what was fsynced (and garbles the rest), and after the restart every ETag a
/// reader saw, and every write answered, is still there.
#[test]
fn reads_show_only_fsynced_writes_in_always_mode() {
    let _one = one_at_a_time();
    let dir = TempDir::new("stall-visibility");
    let data = dir.join("data");
    let trace = dir.join("sync.trace");
    let envs = [
        ("WALKV_FSYNC_DELAY_MS", "200"),
        ("WALKV_SYNC_TRACE", trace.to_str().unwrap()),
        ("WALKV_BOOT_ID", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ];
    let server = Server::start_env(&data, &["--sync", "always"], &envs);
    let writers = Writers::start(&server.addr, &["a", "b"], "", 50);
    let stop = Arc::new(AtomicBool::new(false));
    let watchers: Vec<JoinHandle<Vec<u64>>> = (0..2)
        .map(|_| {
            let (addr, stop) = (server.addr.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    for key in (0..7).flat_map(|n| [format!("a-{n}"), format!("b-{n}")]) {
                        let Ok(reply) = request(&addr, "GET", &format!("/v1/{key}"), b"") else {
                            return seen; // the server was killed
                        };
                        if let Some(etag) = reply.header("ETag") {
                            seen.push(etag.trim_matches('"').parse().unwrap());
                        }
                    }
                }
                seen
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(1500));
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<u64> = watchers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let acks: Vec<Ack> = writers.threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let (synced_len, synced_seq) = *support::sync_trace(&trace).last().expect("synced");
    let how = support::power::simulate_power_cut(
        &support::active_log(&data),
        synced_len,
        &mut walkv::testutil::Rng::new(5),
    );
    let server = Server::start_env(&data, &[], &[("WALKV_BOOT_ID", support::OTHER_BOOT)]);
    let recovered = support::replayed_last_seq(&server.stderr());
    let context = format!("{how}; synced seq {synced_seq}, recovered {recovered}");
    assert!(!seen.is_empty() && !acks.is_empty(), "nothing was read or written");
    let newest_seen = seen.iter().max().unwrap();
    assert!(*newest_seen <= recovered, "a read showed seq {newest_seen}, lost: {context}");
    let newest_ack = acks.iter().map(|a| a.seq).max().unwrap();
    assert!(newest_ack <= recovered, "write {newest_ack} was answered and lost: {context}");
    println!("{} reads saw ETags up to {newest_seen}; {context}", seen.len());
}

/// A slow `write(2)` (300 ms each): a client that pipelines a write and a read of the same key
/// reads its own write, while a read from another connection, made in the meantime, is
/// answered at once with the value before.
#[test]
fn a_client_reads_its_own_write_and_others_do_not_wait_for_it() {
    let _one = one_at_a_time();
    let dir = TempDir::new("stall-own-write");
    let server = Server::start_env(&dir, &[], &[("WALKV_WRITE_DELAY_MS", "300")]);
    assert_eq!(request(&server.addr, "PUT", "/v1/k", b"old").unwrap().status, 201);
    let mut own = std::net::TcpStream::connect(&server.addr).unwrap();
    own.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(
        &mut own,
        b"PUT /v1/k HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nnewGET /v1/k?raw HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    thread::sleep(Duration::from_millis(50));
    let asked = Instant::now();
    let other = request(&server.addr, "GET", "/v1/k?raw", b"").unwrap();
    assert!(asked.elapsed() < Duration::from_millis(200), "{:?}", asked.elapsed());
    assert_eq!(other.body, b"old", "another client does not see a write not yet written");
    let written = support::read_reply(&mut own, false).unwrap();
    assert_eq!(written.status, 200);
    assert!(asked.elapsed() >= Duration::from_millis(200), "the write waited for its write(2)");
    let read = support::read_reply(&mut own, false).unwrap();
    assert_eq!(read.body, b"new", "the client that wrote reads its own write");
}

/// With `write(2)` slow (200 ms) and eight writers of 256 KiB values, the records queued for the
/// log stay within `--max-write-queue` (1 MiB, plus the one request that crossed it); writes
/// wait their turn, reads do not, and every write is answered and survives a `kill -9`.
#[test]
fn the_write_queue_is_bounded_and_writers_wait() {
    let _one = one_at_a_time();
    let dir = TempDir::new("stall-queue");
    let data = dir.join("data");
    let server =
        Server::start_env(&data, &["--max-write-queue", "1M"], &[("WALKV_WRITE_DELAY_MS", "200")]);
    assert_eq!(request(&server.addr, "PUT", "/v1/seed", b"s").unwrap().status, 201);
    let watch = StatusWatch::start(&server.addr);
    let readers = Readers::start(&server.addr, 2);
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let writers = Writers::start(&server.addr, &names, "", 256 << 10);
    thread::sleep(Duration::from_secs(3));
    let acks = writers.finish();
    assert_reads_fast(readers, "slow write(2), a full write queue");
    let (_, queued, waiting, _) = watch.finish();
    println!("{} writes; at most {queued} bytes queued, {waiting} writes waiting", acks.len());
    assert!(waiting > 0, "no write ever waited for room");
    assert!(queued <= (1 << 20) + (257 << 10), "{queued} bytes queued for the log");
    server.kill9();
    every_ack_survives(&data, &acks);
}

/// A filesystem frozen for 2 s (`fsfreeze`, as a disk that stops answering) under readers and
/// writers: every read and probe is answered within 50 ms throughout; writes wait for the thaw
/// and are then answered; nothing acknowledged is lost to a `kill -9` after it.
#[test]
fn a_frozen_filesystem_holds_up_only_writes() {
    let _one = one_at_a_time();
    let dir = TempDir::new("stall-frozen");
    let Some(mount) = Mount::new(&dir) else { return };
    let data = mount.path.join("data");
    let server = Server::start_with(&data, &["--sync-interval", "0.5"]);
    assert_eq!(request(&server.addr, "PUT", "/v1/seed", b"s").unwrap().status, 201);
    let readers = Readers::start(&server.addr, 2);
    let writers = Writers::start(&server.addr, &["a", "b", "c"], "", 100);
    thread::sleep(Duration::from_millis(500));
    let frozen = Instant::now();
    {
        let _thawed_when_dropped = mount.freeze();
        thread::sleep(Duration::from_secs(2));
    }
    thread::sleep(Duration::from_millis(500));
    let acks = writers.finish();
    assert_reads_fast(readers, "frozen filesystem");
    let held =
        acks.iter().filter(|a| a.sent > frozen && a.answered > frozen + Duration::from_secs(2));
    assert!(held.count() > 0, "no write waited for the thaw");
    let slowest = acks.iter().map(Ack::waited).max().unwrap();
    println!("{} writes, the slowest waited {slowest:?}", acks.len());
    server.kill9();
    every_ack_survives(&data, &acks);
}

/// An ext4 image mounted for a test, thawed and unmounted when dropped.
struct Mount {
    path: PathBuf,
}

impl Mount {
    /// Mounts a fresh 64 MiB ext4 image in `dir`, or says why it cannot (not root, no loop
    /// devices, no fsfreeze) and returns `None`, unless `WALKV_REQUIRE_FSFREEZE=1`.
    fn new(dir: &Path) -> Option<Mount> {
        let image = dir.join("fs.img");
        let path = dir.join("mnt");
        std::fs::create_dir_all(&path).unwrap();
        let steps: [&[&str]; 3] = [
            &["truncate", "-s", "64M", image.to_str().unwrap()],
            &["mkfs.ext4", "-q", "-F", image.to_str().unwrap()],
            &["mount", "-o", "loop", image.to_str().unwrap(), path.to_str().unwrap()],
        ];
        for step in steps {
            let ran = Command::new(step[0]).args(&step[1..]).output();
            if !ran.as_ref().is_ok_and(|out| out.status.success()) {
                let why = match ran {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                let message = format!("cannot mount an ext4 image to freeze ({}): {why}", step[0]);
                if std::env::var("WALKV_REQUIRE_FSFREEZE").as_deref() == Ok("1") {
                    panic!("{message}");
                }
                println!("skipped: {message}");
                return None;
            }
        }
        Some(Mount { path })
    }

    /// Freezes the filesystem until the returned guard is dropped.
    fn freeze(&self) -> Frozen<'_> {
        run(&["fsfreeze", "-f", self.path.to_str().unwrap()]);
        Frozen(self)
    }
}

/// A frozen [`Mount`]; thawed when dropped (before anything else, even on a panic, so that no
/// process stays stuck on it).
struct Frozen<'a>(&'a Mount);

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        run(&["fsfreeze", "-u", self.0.path.to_str().unwrap()]);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let path = self.path.to_str().unwrap();
        let _ = Command::new("fsfreeze").args(["-u", path]).output();
        let _ = Command::new("umount").arg(path).output();
    }
}

fn run(command: &[&str]) {
    let out = Command::new(command[0]).args(&command[1..]).output().expect(command[0]);
    assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
}
