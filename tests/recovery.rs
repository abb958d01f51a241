//! Startup recovery, shutdown, locking, `check` and `repair`, through the real binary and real
//! files: what an operator sees when the log is torn, damaged, or in use.

mod support;

use walkv::testutil::TempDir;

use std::fs;
use std::path::{Path, PathBuf};
use support::{Server, request, run_walkv};
use walkv::wal::{self, Op};

fn wal_file(dir: &Path) -> PathBuf {
    dir.join(wal::FILE_NAME)
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

/// A torn final record (a partial record, or garbage) is trimmed at startup with a report naming
/// the offset and the bytes dropped, and a write made afterwards survives kill -9. Zeros alone
/// after the last record are space a server reserved ahead of its log: a clean end, released at
/// startup without a report.
#[test]
fn torn_tail_is_trimmed_and_next_write_survives() {
    let mut partial = Vec::new();
    wal::encode(&mut partial, 4, Op::Set, b"torn", b"never acknowledged");
    partial.truncate(30);
    let mut garbage_after_zeros = vec![0u8; 2048];
    garbage_after_zeros.extend_from_slice(b"\x07garbage!");
    for (name, tail, torn) in [
        ("partial", partial, true),
        ("garbage", b"\x07garbage!".repeat(50), true),
        ("zeros then garbage", garbage_after_zeros, true),
        ("zeros", vec![0u8; 4096], false),
    ] {
        let dir = dir_with_keys(name, 3);
        let path = wal_file(&dir);
        let good_len = fs::metadata(&path).unwrap().len();
        append(&path, &tail);
        let (code, out, _) = run_walkv(&["check", "--data-dir", dir.to_str().unwrap()], &[], b"");
        let out = String::from_utf8_lossy(&out);
        assert_eq!(code, if torn { 6 } else { 0 }, "{name}: {out}");

        let server = Server::start(&dir);
        let log = server.stderr();
        let report = format!("cut at offset {good_len}, dropped {} bytes", tail.len());
        assert_eq!(log.contains(&report), torn, "{name}: {log}");
        assert_eq!(fs::metadata(&path).unwrap().len(), good_len, "{name}: cut before serving");
        assert_eq!(request(&server.addr, "PUT", "/v1/after", b"trim").unwrap().status, 201);
        server.kill9();

        let server = Server::start(&dir);
        assert!(!server.stderr().contains("trimmed"), "{}", server.stderr());
        assert_eq!(get(&server.addr, "after").as_deref(), Some("trim"));
        assert_eq!(get(&server.addr, "k3").as_deref(), Some("v3"));
        assert_eq!(get(&server.addr, "torn"), None);
    }
}

/// Damage with valid records after it stops startup with exit 7 and a message naming the file,
/// the offset and the repair command; `check` agrees; `repair` keeps a prefix and the cut bytes.
#[test]
fn mid_log_damage_refuses_start_and_repair_recovers_a_prefix() {
    let dir = dir_with_keys("midlog", 5);
    let path = wal_file(&dir);
    let mut bytes = fs::read(&path).unwrap();
    // Records are 21 + 2 + 2 = 25 bytes each after the 12-byte header; damage record 3's value.
    let record3 = wal::FILE_HEADER_LEN + 2 * 25;
    bytes[record3 + 24] ^= 0x20;
    fs::write(&path, &bytes).unwrap();
    let d = dir.to_str().unwrap();

    let err = Server::try_start(&dir, &[]).err().expect("startup must refuse a corrupt log");
    assert_eq!(err.0.and_then(|s| s.code()), Some(7), "{}", err.1);
    for needle in [
        path.to_str().unwrap(),
        &format!("offset {record3}"),
        &format!("walkv repair --data-dir {d}"),
    ] {
        assert!(err.1.contains(needle), "message lacks {needle:?}: {}", err.1);
    }
    assert_eq!(fs::read(&path).unwrap(), bytes, "a refused startup must not change the log");

    let (code, out, _) = run_walkv(&["check", "--data-dir", d], &[], b"");
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 7, "{out}");
    assert!(out.contains(&format!("corrupt at offset {record3}")), "{out}");

    let (code, out, err) = run_walkv(&["repair", "--data-dir", d], &[], b"");
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("cut at offset {record3} after 2 valid records")), "{out}");
    assert!(out.contains("2 record(s) that still check out") && out.contains("\"k5\""), "{out}");
    let side: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("walkv.wal.cut-"))
        .collect();
    assert_eq!(side.len(), 1);
    assert_eq!(fs::read(side[0].path()).unwrap(), bytes[record3..]);

    let (code, _, _) = run_walkv(&["check", "--data-dir", d], &[], b"");
    assert_eq!(code, 0);
    let server = Server::start(&dir);
    assert_eq!(get(&server.addr, "k2").as_deref(), Some("v2"));
    assert_eq!(get(&server.addr, "k3"), None);
    assert_eq!(request(&server.addr, "PUT", "/v1/new", b"x").unwrap().status, 201);
}

/// A file that is not a walkv log (or a newer format) is refused, never overwritten.
#[test]
fn foreign_file_is_refused_not_overwritten() {
    let dir = TempDir::new("foreign");
    let path = wal_file(&dir);
    fs::write(&path, b"key=value\nother=thing\n").unwrap();
    let err = Server::try_start(&dir, &[]).err().expect("must refuse");
    assert_eq!(err.0.and_then(|s| s.code()), Some(7));
    assert!(err.1.contains("not a walkv log"), "{}", err.1);
    assert_eq!(fs::read(&path).unwrap(), b"key=value\nother=thing\n");
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
    let len = fs::metadata(wal_file(&dir)).unwrap().len();
    let record = (21 + 2 + 10_000) as u64;
    assert_eq!((len - wal::FILE_HEADER_LEN as u64) % record, 0, "cut back to a record boundary");
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
