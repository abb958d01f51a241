//! Startup recovery, shutdown, locking, `check` and `repair`, through the real binary and real
//! files: what an operator sees when the log is torn, damaged, or in use.

mod support;

use walkv::testutil::TempDir;

use std::fs;
use std::path::{Path, PathBuf};
use support::{Server, request, run_walkv};
use walkv::wal::{self, Op};

/// The log a test damages or reads: `walkv.wal` before any server ran, the newest segment after.
fn wal_file(dir: &Path) -> PathBuf {
    support::active_log(dir)
}

/// Starts a server on a new directory, writes `k1..=kN` = `v1..=vN`, stops it cleanly.
fn dir_with_keys(name: &str, n: usize) -> TempDir {
    let dir = TempDir::new(name);
    let server = Server::start(&dir);
    for i in 1..=n {
        let r =
            request(&server.addr, "PUT", &format!("/v1/k{i}"), format!("v{i}").as_bytes()).unwrap();
        assert_eq!(r.status, 201);
    }
    let (status, _) = server.terminate();
    assert!(status.success());
    dir
}

fn get(addr: &str, key: &str) -> Option<String> {
    let r = request(addr, "GET", &format!("/v1/{key}?raw"), b"").unwrap();
    (r.status == 200).then(|| r.text())
}

fn append(path: &Path, bytes: &[u8]) {
    let mut all = fs::read(path).unwrap();
    all.extend_from_slice(bytes);
    fs::write(path, all).unwrap();
}

/// The log's id, read from its header (the seed a test needs to write a record of its own).
fn seed_of(path: &Path) -> wal::Seed {
    let bytes = fs::read(path).unwrap();
    wal::Seed::log(u64::from_le_bytes(bytes[12..20].try_into().unwrap()))
}

fn check(dir: &Path, envs: &[(&str, &str)]) -> (i32, String) {
    let (code, out, _) = run_walkv(&["check", "--data-dir", dir.to_str().unwrap()], envs, b"");
    (code, String::from_utf8_lossy(&out).into_owned())
}

/// An append the server did not finish (a partial record at the end, the server killed in the
/// same kernel boot) is trimmed at startup, with a report that says why it was never
/// acknowledged, and a write made afterwards survives kill -9. Zeros alone after the last
/// record are reserved space: a clean end, released without a report.
#[test]
fn unfinished_append_is_trimmed_and_next_write_survives() {
    for (name, zeros_only) in [("partial", false), ("zeros", true)] {
        let dir = dir_with_keys(name, 3);
        let path = wal_file(&dir);
        let good_len = fs::metadata(&path).unwrap().len();
        let tail = if zeros_only {
            vec![0u8; 4096]
        } else {
            let mut partial = Vec::new();
            wal::encode(&mut partial, seed_of(&path), 4, Op::Set, b"torn", b"never acknowledged");
            partial.truncate(30);
            partial
        };
        append(&path, &tail);
        let (code, out) = check(&dir, &[]);
        assert_eq!(code, if zeros_only { 0 } else { 6 }, "{name}: {out}");

        let server = Server::start(&dir);
        let log = server.stderr();
        let report = format!("cut at offset {good_len}, dropped {} bytes", tail.len());
        assert_eq!(log.contains(&report), !zeros_only, "{name}: {log}");
        if !zeros_only {
            assert!(log.contains("did not finish") && log.contains("never acknowledged"), "{log}");
        }
        assert_eq!(request(&server.addr, "PUT", "/v1/after", b"trim").unwrap().status, 201);
        server.kill9();

        let server = Server::start(&dir);
        assert!(!server.stderr().contains("trimmed"), "{}", server.stderr());
        assert_eq!(get(&server.addr, "after").as_deref(), Some("trim"));
        assert_eq!(get(&server.addr, "k3").as_deref(), Some("v3"));
        assert_eq!(get(&server.addr, "torn"), None);
    }
}

/// Garbage after the log cannot come from a crash of the process in the same kernel boot (the
/// page cache keeps what was written): `check` and startup call it corruption. After a reboot it
/// may be what a power cut left of unsynced pages: `check` says the server will trim it, and the
/// server does, by itself, saying the bytes were not known to be durable.
#[test]
fn garbage_tail_is_corruption_in_the_same_boot_and_trimmed_after_a_reboot() {
    let mut zeros_then_garbage = vec![0u8; 2048];
    zeros_then_garbage.extend_from_slice(b"\x07garbage!");
    for (name, tail) in
        [("garbage", b"\x07garbage!".repeat(50)), ("zeros then garbage", zeros_then_garbage)]
    {
        let dir = dir_with_keys(name, 3);
        let path = wal_file(&dir);
        append(&path, &tail);
        let damaged = fs::read(&path).unwrap();
        let (code, out) = check(&dir, &[]);
        assert_eq!(code, 7, "{name}: {out}");
        assert!(out.contains("corrupt:") && out.contains("same kernel boot"), "{out}");
        let err = Server::try_start(&dir, &[]).err().expect("same boot: refused");
        assert_eq!(err.0.and_then(|s| s.code()), Some(7), "{}", err.1);
        assert_eq!(fs::read(&path).unwrap(), damaged, "a refused start changes nothing");

        let rebooted = [("WALKV_BOOT_ID", support::OTHER_BOOT)];
        let (code, out) = check(&dir, &rebooted);
        assert_eq!(code, 6, "{name}: {out}");
        assert!(out.contains("unsynced tail:") && out.contains("trims it at startup"), "{out}");
        let server = Server::start_env(&dir, &[], &rebooted);
        assert!(server.stderr().contains("not known to be durable"), "{}", server.stderr());
        assert_eq!(get(&server.addr, "k3").as_deref(), Some("v3"));
        assert_eq!(request(&server.addr, "PUT", "/v1/after", b"x").unwrap().status, 201);
        drop(server);
        assert_eq!(check(&dir, &rebooted).0, 0);
    }
}

/// A complete record, acknowledged and fsynced by a clean stop, damaged afterwards (here a DELETE,
/// whose loss would bring the deleted key back): refused as corruption in any boot, never trimmed;
/// the message names the file, the offset, the marker that proves the record was on disk, and
/// the repair command; `check` says the same on stdout.
#[test]
fn damaged_record_after_a_clean_stop_is_refused_not_trimmed() {
    let dir = TempDir::new("clean-delete");
    let server = Server::start(&dir);
    assert_eq!(request(&server.addr, "PUT", "/v1/gone", b"v").unwrap().status, 201);
    assert_eq!(request(&server.addr, "DELETE", "/v1/gone", b"").unwrap().status, 200);
    assert!(server.terminate().0.success());
    let path = wal_file(&dir);
    let delete = support::log_records(&path).into_iter().find(|r| r.kind == "delete").unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[delete.offset + delete.len - 1] ^= 0x01; // the last byte of its key
    fs::write(&path, &bytes).unwrap();
    let d = dir.to_str().unwrap();
    for envs in [&[][..], &[("WALKV_BOOT_ID", support::OTHER_BOOT)][..]] {
        let err = Server::try_start_env(&dir, &[], envs).err().expect("refused");
        assert_eq!(err.0.and_then(|s| s.code()), Some(7), "{}", err.1);
        for needle in [
            path.to_str().unwrap(),
            &format!("offset {}", delete.offset),
            "sync marker at offset",
            &format!("walkv repair --dry-run --data-dir {d}"),
        ] {
            assert!(err.1.contains(needle), "message lacks {needle:?}: {}", err.1);
        }
        assert_eq!(fs::read(&path).unwrap(), bytes, "a refused start changes nothing");
        let (code, out) = check(&dir, envs);
        assert_eq!(code, 7, "{out}");
        assert!(out.contains(&format!("corrupt: damage at offset {}", delete.offset)), "{out}");
    }
}

/// Writes k1..=k5, stops cleanly, and flips a byte in k3's value; returns the dir and the bytes.
fn dir_with_damaged_k3(name: &str) -> (TempDir, Vec<u8>) {
    let dir = dir_with_keys(name, 5);
    let path = wal_file(&dir);
    let k3 = support::log_records(&path).into_iter().find(|r| r.key == b"k3").unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[k3.offset + k3.len - 1] ^= 0x20;
    fs::write(&path, &bytes).unwrap();
    (dir, bytes)
}

fn side_files(dir: &Path, kind: &str) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(&format!(".wal.{kind}-")))
        .map(|e| e.path())
        .collect()
}

/// `repair` first says what each choice would do and changes nothing without one (exit 2) or
/// with `--dry-run`; `--skip-damaged` then keeps every record but the damaged one, keeps the
/// damaged bytes in a side file, records the missing number, and new writes continue after the
/// highest number the log held.
#[test]
fn repair_plans_then_skip_damaged_keeps_every_intact_record() {
    let (dir, bytes) = dir_with_damaged_k3("skip");
    let d = dir.to_str().unwrap();
    let err = Server::try_start(&dir, &[]).err().expect("refused");
    assert!(err.1.contains("2 record(s) after it check out (seqs 4..=5"), "{}", err.1);
    for (args, code) in
        [(&["repair", "--data-dir", d][..], 2), (&["repair", "--dry-run", "--data-dir", d], 0)]
    {
        let (got, out, _) = run_walkv(args, &[], b"");
        let out = String::from_utf8_lossy(&out);
        assert_eq!(got, code, "{out}");
        for needle in [
            "before the damage: 2 records (seqs 1..=2) check out",
            "after the damage: 2 records (seqs 4..=5) check out, touching 2 key(s)",
            "missing sequence numbers: 1 (3..=3)",
            "--skip-damaged would keep 4 records",
            "--cut would keep 2 records",
        ] {
            assert!(out.contains(needle), "plan lacks {needle:?}: {out}");
        }
        assert_eq!(fs::read(wal_file(&dir)).unwrap(), bytes, "the plan changes nothing");
    }
    let (code, out, err) = run_walkv(&["repair", "--skip-damaged", "--data-dir", d], &[], b"");
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("repaired: the log keeps 4 records and continues after seq 5"), "{out}");
    let side = side_files(&dir, "skipped");
    assert_eq!(side.len(), 1, "{out}");
    let saved = fs::read(&side[0]).unwrap();
    let (offset, len) = (u64::from_le_bytes(saved[..8].try_into().unwrap()), saved.len() - 16);
    assert_eq!(&saved[16..], &bytes[offset as usize..offset as usize + len]);

    assert_eq!(check(&dir, &[]).0, 0);
    let server = Server::start(&dir);
    for k in ["k1", "k2", "k4", "k5"] {
        assert_eq!(get(&server.addr, k).as_deref(), Some(&format!("v{}", &k[1..])[..]), "{k}");
    }
    assert_eq!(get(&server.addr, "k3"), None);
    let r = request(&server.addr, "PUT", "/v1/new", b"x").unwrap();
    assert_eq!(r.text(), r#"{"seq":6}"#);
}

/// `--cut` keeps the records before the damage, keeps everything after it in a side file, and
/// sequence numbers continue after the highest the log held: the cut records' numbers are never
/// given to new writes.
#[test]
fn repair_cut_keeps_the_prefix_and_never_reuses_a_number() {
    let (dir, bytes) = dir_with_damaged_k3("cut");
    let d = dir.to_str().unwrap();
    let (code, out, err) = run_walkv(&["repair", "--cut", "--data-dir", d], &[], b"");
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{out}{err}");
    let side = side_files(&dir, "cut");
    assert_eq!(side.len(), 1);
    let k3 = support::log_records(&wal_file(&dir)).len(); // records kept, a gap at the end
    assert!(k3 >= 3, "{k3}");
    let saved = fs::read(&side[0]).unwrap();
    assert!(bytes.ends_with(&saved), "the side file holds the end of the log as it was");
    let server = Server::start(&dir);
    assert_eq!(get(&server.addr, "k2").as_deref(), Some("v2"));
    assert_eq!(get(&server.addr, "k4"), None);
    let r = request(&server.addr, "PUT", "/v1/new", b"x").unwrap();
    assert_eq!(r.text(), r#"{"seq":6}"#, "seqs 3..=5 were held once: not reused");
}

/// A file that is not a walkv log, and a log written by a newer walkv, are refused and never
/// changed; neither message suggests a repair; each has its exit code (7, 12), for `serve`,
/// `check` (which also prints the verdict on stdout) and `repair`.
#[test]
fn foreign_file_and_newer_format_are_refused_without_suggesting_repair() {
    for (bytes, code, says) in [
        (&b"key=value\nother=thing\n"[..], 7, "not a walkv log"),
        (&b"walkvWAL\x07\x00\x00\x00 from the future, with more header"[..], 12, "newer walkv"),
    ] {
        let dir = TempDir::new("foreign");
        let path = wal_file(&dir);
        fs::write(&path, bytes).unwrap();
        let err = Server::try_start(&dir, &[]).err().expect("must refuse");
        assert_eq!(err.0.and_then(|s| s.code()), Some(code), "{}", err.1);
        assert!(err.1.contains(says) && !err.1.contains("repair"), "{}", err.1);
        let (got, out) = check(&dir, &[]);
        assert_eq!(got, code, "{out}");
        assert!(out.contains(says) && !out.contains("repair"), "{out}");
        let (got, _, _) =
            run_walkv(&["repair", "--cut", "--data-dir", dir.to_str().unwrap()], &[], b"");
        assert_eq!(got, code);
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
}

/// A log written by the previous release (format 1, checked in as `tests/fixtures/v1.wal`)
/// opens, replays every value exactly, is rewritten in the current format (4), and keeps working.
#[test]
fn format_1_log_from_the_previous_release_is_upgraded() {
    let dir = TempDir::new("v1");
    fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1.wal"), wal_file(&dir))
        .unwrap();
    assert_eq!(check(&dir, &[]).0, 0);
    let server = Server::start(&dir);
    assert!(server.stderr().contains("upgraded") && server.stderr().contains("replayed 7 records"));
    assert_eq!(get(&server.addr, "greeting").as_deref(), Some("world"));
    assert_eq!(get(&server.addr, "city").as_deref(), Some("Zürich"));
    assert_eq!(get(&server.addr, "gone"), None);
    assert_eq!(get(&server.addr, "empty").as_deref(), Some(""));
    let r = request(&server.addr, "GET", "/v1/odd%2Fkey%3D%20x?raw", b"").unwrap();
    assert_eq!(r.body, b"a\nb=c\x00\xff");
    assert_eq!(request(&server.addr, "PUT", "/v1/new", b"v2").unwrap().text(), r#"{"seq":8}"#);
    server.kill9();
    let server = Server::start(&dir);
    assert!(!server.stderr().contains("upgraded"));
    assert_eq!(get(&server.addr, "new").as_deref(), Some("v2"));
}

/// A second server on the same data directory refuses to start and says why.
#[test]
fn second_instance_is_refused() {
    let dir = TempDir::new("lock");
    let first = Server::start(&dir);
    let err = Server::try_start(&dir, &[]).err().expect("second server must not start");
    assert_eq!(err.0.and_then(|s| s.code()), Some(8));
    assert!(err.1.contains("locked by another process"), "{}", err.1);
    let (code, _, stderr) = run_walkv(&["repair", "--data-dir", dir.to_str().unwrap()], &[], b"");
    assert_eq!(code, 8, "repair must not run under a live server: {stderr}");
    assert_eq!(request(&first.addr, "PUT", "/v1/still", b"mine").unwrap().status, 201);
}

/// SIGTERM stops the server with exit 0 after a final sync that covers the last write, even when
/// the periodic sync would not have run for an hour.
#[test]
fn sigterm_exits_0_after_final_sync() {
    let dir = TempDir::new("sigterm");
    let server = Server::start_with(&dir, &["--sync-interval", "3600"]);
    for i in 0..25 {
        assert_eq!(request(&server.addr, "PUT", &format!("/v1/t{i}"), b"x").unwrap().status, 201);
    }
    let (status, stderr) = server.terminate();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("log synced through seq 25; stopped"), "{stderr}");
    let server = Server::start(&dir);
    assert!(server.stderr().contains("replayed 25 records"), "{}", server.stderr());
    assert_eq!(get(&server.addr, "t24").as_deref(), Some("x"));
}

/// `check` on a clean log says so and exits 0; on a missing log it fails clearly.
#[test]
fn check_clean_and_missing() {
    let dir = dir_with_keys("checkclean", 2);
    let (code, out, _) = run_walkv(&["check", "--data-dir", dir.to_str().unwrap()], &[], b"");
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("2 records (2 sets, 0 deletes), last seq 2") && out.contains("clean"),
        "{out}"
    );
    let empty = TempDir::new("checkmissing");
    let (code, _, err) = run_walkv(&["check", "--data-dir", empty.to_str().unwrap()], &[], b"");
    assert_eq!(code, 8);
    assert!(err.contains("there is no log"), "{err}");
}

/// Writes `value_len`-byte values to `k0`, `k1`, ... until the server answers 507; returns the
/// acknowledged indexes and the 507's body. Panics if `limit` writes all succeed.
fn write_until_507(addr: &str, value_len: usize, limit: usize) -> (Vec<usize>, String) {
    let value = vec![b'x'; value_len];
    let mut acked = Vec::new();
    for i in 0..limit {
        let r = request(addr, "PUT", &format!("/v1/k{i}"), &value).unwrap();
        if r.status == 507 {
            return (acked, r.text());
        }
        assert_eq!(r.status, 201, "{}", r.text());
        acked.push(i);
    }
    panic!("{limit} writes of {value_len} bytes and the disk never refused one");
}

/// Kills the server with SIGKILL, restarts it on `dir`, and checks that the log needed no
/// trimming, that every acknowledged `k<i>` holds `value_len` bytes, and that `last` is there.
fn assert_all_survive_kill_9(
    server: Server,
    dir: &Path,
    acked: &[usize],
    value_len: usize,
    last: (&str, &str),
) {
    server.kill9();
    let server = Server::start(dir);
    assert!(!server.stderr().contains("trimmed"), "{}", server.stderr());
    for i in acked {
        assert_eq!(get(&server.addr, &format!("k{i}")).map(|v| v.len()), Some(value_len));
    }
    assert_eq!(get(&server.addr, last.0).as_deref(), Some(last.1));
}

/// A write the file system refuses (here a real EFBIG from `ulimit -f`) gets 507 with a JSON
/// error and is not applied; the log is cut back to its last complete record, so smaller writes
/// still succeed, nothing acknowledged is lost, and a restart needs no trimming or repair.
#[test]
fn refused_write_is_507_and_cut_back() {
    let dir = TempDir::new("efbig");
    // bash counts `ulimit -f` in 1024-byte blocks: the log may grow to 64 KiB. SIGXFSZ is
    // ignored (and stays ignored across exec) so the write fails with EFBIG instead of killing.
    let server = Server::start_in_shell("trap '' XFSZ; ulimit -f 64", &dir);
    let addr = server.addr.clone();
    let (acked, error) = write_until_507(&addr, 10_000, 20);
    assert!(error.contains("\"error\""), "{error}");
    let refused = acked.len();
    assert!(get(&addr, &format!("k{refused}")).is_none(), "a refused write must not be applied");
    let scan = wal::scan(&wal_file(&dir), wal::Judge::Live, |_| {}).unwrap();
    assert!(matches!(scan.tail, wal::Tail::Clean | wal::Tail::Reserved), "cut back: {scan:?}");
    assert_eq!(request(&addr, "PUT", "/v1/small", b"fits").unwrap().status, 201);

    assert_all_survive_kill_9(server, &dir, &acked, 10_000, ("small", "fits"));
}

/// Unmounts (lazily) when dropped, so a failing test does not leave a mount behind.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A real full disk (a 256 KiB tmpfs): writes get 507 and are not applied, reads go on, and once
/// space is freed writes succeed again; after kill -9 the log replays without repair. Needs
/// permission to mount; skipped with a message where that is refused, but never under CI.
#[test]
fn full_disk_is_507_and_writes_resume_when_space_is_freed() {
    let dir = TempDir::new("enospc");
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(std::env::var_os("CI").is_none(), "CI must be able to mount a tmpfs");
        eprintln!("skipped: mounting a tmpfs is not permitted here");
        return;
    }
    let _mount = Mount(mnt.clone());
    let filler = mnt.join("filler");
    fs::write(&filler, vec![0u8; 64 * 1024]).unwrap();
    let data = mnt.join("data");
    let server = Server::start(&data);
    let a = server.addr.clone();

    let (acked, error) = write_until_507(&a, 8_000, 100);
    assert!(error.contains("No space left"), "{error}");
    let refused = acked.len();
    assert!(get(&a, &format!("k{refused}")).is_none(), "a refused write must not be applied");
    assert_eq!(get(&a, "k0").map(|v| v.len()), Some(8_000), "reads go on");
    fs::remove_file(&filler).unwrap();
    assert_eq!(request(&a, "PUT", "/v1/after", b"room again").unwrap().status, 201);

    assert_all_survive_kill_9(server, &data, &acked, 8_000, ("after", "room again"));
}
