//! The log's format across walkv versions, through the real binary: a data directory written
//! by the walkv before record types 5 to 7 (format 2, checked in as `tests/fixtures/v2-dir`)
//! is read as it is, and once this walkv has written to it, every file it created has a
//! version a format-2 walkv refuses as "written by a newer walkv" instead of misreading.
//!
//! Knob: `WALKV_OLD_BINARY`, the path of a walkv built before format 4 (such as commit
//! b757dc3): the test then runs it on the upgraded directory and checks its refusal too.

mod support;

use std::fs;
use support::{Server, request, run_walkv};
use walkv::testutil::TempDir;

/// The version in a file's header.
fn version(path: &std::path::Path) -> u32 {
    let bytes = fs::read(path).unwrap();
    u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]])
}

fn copy_fixture(dir: &std::path::Path) {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v2-dir");
    for entry in fs::read_dir(fixture).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_format_2_directory_is_read_as_it_is_and_then_refused_by_format_2() {
    let dir = TempDir::new("format-2");
    copy_fixture(&dir);
    let old_segment = dir.join("segment-00000000000000000005.wal");
    let old_bytes = fs::read(&old_segment).unwrap();
    assert_eq!((version(&old_segment), version(&dir.join("walkv.wal"))), (2, 3));
    let server = Server::start(&dir);
    let a = server.addr.clone();
    let get = |key: &str| {
        let r = request(&a, "GET", &format!("/v1/{key}?raw"), b"").unwrap();
        (r.status == 200).then(|| r.text())
    };
    assert_eq!(get("greeting").as_deref(), Some("world"), "from the snapshot");
    assert_eq!(get("counter").as_deref(), Some("41"), "overwritten in the segment");
    assert_eq!(get("late").as_deref(), Some("after the snapshot"));
    assert_eq!(get("gone"), None, "deleted in the segment");
    // The old segment was sealed as it was, and the new records go into a file of format 4.
    let sealed = fs::read(&old_segment).unwrap();
    assert!(sealed.starts_with(&old_bytes), "the format 2 segment keeps its records");
    let after: Vec<&str> = support::log_records(&old_segment)
        .iter()
        .filter(|r| r.offset >= old_bytes.len())
        .map(|r| r.kind)
        .collect();
    assert_eq!(after, ["sync"], "and gets only the open marker (format 2 has it) before its seal");
    assert_eq!(version(&old_segment), 2);
    assert_eq!(version(&dir.join("walkv.wal")), 5, "the layout marker says format 4 files");
    let r = request(&a, "POST", "/v1/counter?incr", b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(request(&a, "PUT", "/v1/session?ttl=60", b"s").unwrap().status, 201);
    let txn = br#"{"then":[{"op":"set","key":"a","value":"1"},{"op":"delete","key":"late"}]}"#;
    assert_eq!(request(&a, "POST", "/v1/txn", txn).unwrap().status, 200);
    drop(server);
    let newest = support::active_log(&dir);
    assert_ne!(newest, old_segment);
    assert_eq!(version(&newest), 4);
    // A format-2 walkv refused every version above 3 (LAYOUT_VERSION then) as newer.
    assert!(version(&newest) > 3 && version(&dir.join("walkv.wal")) > 3);
    let server = Server::start(&dir);
    let r = request(&server.addr, "GET", "/v1/counter?raw", b"").unwrap();
    assert_eq!(r.text(), "42");
    assert_eq!(request(&server.addr, "GET", "/v1/late", b"").unwrap().status, 404);
    drop(server);
    let (code, out, err) = run_walkv(&["check", "--data-dir", dir.to_str().unwrap()], &[], b"");
    assert_eq!(code, 0, "{}{err}", String::from_utf8_lossy(&out));
    if let Ok(old) = std::env::var("WALKV_OLD_BINARY") {
        let out = std::process::Command::new(old)
            .args(["check", "--data-dir", dir.to_str().unwrap()])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(12), "{said}");
        assert!(said.contains("written by a newer walkv"), "{said}");
        eprintln!("the older walkv refused it: {said}");
    }
}
