//! A data directory that did not exist yet survives a power cut: every directory walkv creates,
//! and every file it creates or renames into place, is covered by an fsync of its parent before
//! the first write is acknowledged.
//!
//! The check reads the file-system trace of the real binary (`WALKV_FS_TRACE`, see
//! `src/failpoint.rs`) and applies the POSIX rule a power cut follows: an entry survives only if
//! its directory was fsynced after it. A file system like that (the one the issue reproduced the
//! loss on) keeps exactly the entries [`support::unsynced_entries`] does not list.

mod support;

use support::{Server, fs_trace, request, unsynced_entries};
use walkv::testutil::TempDir;

/// `--data-dir a/b/c` under a directory that exists: the three new levels, the log and its
/// rename are all made durable before the first write is answered, in `--sync always` mode.
#[test]
fn new_parent_directories_are_durable_before_the_first_ack() {
    let root = TempDir::new("new-dirs");
    let data = root.join("a").join("b").join("c");
    let trace = root.join("fs-trace");
    let trace_env = trace.to_str().unwrap();
    let server = Server::start_env(&data, &["--sync", "always"], &[("WALKV_FS_TRACE", trace_env)]);
    let reply = request(&server.addr, "PUT", "/v1/k", b"v").unwrap();
    assert_eq!(reply.status, 201, "{}", reply.text());
    let lines = fs_trace(&trace); // everything walkv did before the acknowledgement

    // Each new level's parent must be fsynced (whatever else the trace says).
    for new in ["a", "a/b", "a/b/c"] {
        let parent = root.join(new).parent().unwrap().display().to_string();
        assert!(
            lines.iter().any(|l| l[0] == "fsyncdir" && l[1] == parent),
            "the entry of {new} is never made durable (no fsync of {parent}): {lines:?}"
        );
    }
    let made: Vec<String> =
        lines.iter().filter(|l| l[0] == "mkdir").map(|l| l[1].clone()).collect();
    let expected: Vec<String> =
        ["a", "a/b", "a/b/c"].iter().map(|p| root.join(p).display().to_string()).collect();
    assert_eq!(made, expected, "one level at a time, from the top: {lines:?}");
    assert!(
        lines.iter().any(|l| l[0] == "rename" && l[2].ends_with("/walkv.wal")),
        "the log was put in place by a rename: {lines:?}"
    );
    assert_eq!(unsynced_entries(&lines), Vec::<String>::new(), "trace: {lines:?}");
    server.kill9();

    // After a kill (nothing more was synced), the same directory opens with the key in it.
    let server = Server::start(&data);
    assert_eq!(request(&server.addr, "GET", "/v1/k", b"").unwrap().text(), r#"{"value":"v"}"#);
}

/// The check itself can fail: an entry whose directory is never fsynced afterwards, or only
/// before it, is reported; one fsynced after is not.
#[test]
fn the_trace_check_reports_entries_left_to_chance() {
    let line = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    let trace = [
        line("mkdir /r/a"),
        line("fsyncdir /r"),
        line("fsyncdir /r/a"),
        line("mkdir /r/a/b"),
        line("create /r/a/b/x.new"),
        line("rename /r/a/b/x.new /r/a/b/x"),
        line("fsyncdir /r/a"),
    ];
    assert_eq!(
        unsynced_entries(&trace),
        vec!["create /r/a/b/x.new".to_string(), "rename /r/a/b/x.new /r/a/b/x".to_string()]
    );
    assert!(unsynced_entries(&trace[..2]).is_empty());
}
