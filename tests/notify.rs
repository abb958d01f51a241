//! systemd's notify protocol through the real binary, without systemd: the test binds the
//! datagram socket `NOTIFY_SOCKET` names, as systemd would.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use support::{KillOnDrop, request};
use walkv::testutil::TempDir;

fn next_message(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `STATUS=replaying` while the log is replayed, `READY=1` only once the server answers, then
/// `STOPPING=1` after SIGTERM.
#[test]
fn ready_comes_after_the_replay_and_stopping_after_sigterm() {
    let dir = TempDir::new("notify");
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let data = dir.join("data");
    let child = std::process::Command::new(support::BIN)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&data)
        .env("NOTIFY_SOCKET", &path)
        .env("WALKV_REPLAY_DELAY_MS", "1500")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines().map_while(Result::ok);
    let addr = lines
        .find_map(|l| {
            l.split_once("walkv: listening on http://").map(|(_, rest)| rest).map(str::to_string)
        })
        .expect("it listens");
    assert_eq!(next_message(&socket), "STATUS=replaying the log");
    assert_eq!(request(&addr, "GET", "/readyz", b"").unwrap().status, 503, "still replaying");

    assert_eq!(next_message(&socket), "READY=1\nSTATUS=serving 0 keys");
    assert_eq!(request(&addr, "GET", "/readyz", b"").unwrap().status, 200, "ready means ready");
    assert_eq!(request(&addr, "PUT", "/v1/k", b"v").unwrap().status, 201);

    support::signal(child.0.id(), "TERM");
    assert_eq!(next_message(&socket), "STOPPING=1\nSTATUS=stopping");
    let status = support::wait_with_timeout(&mut child.0, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    drop(lines);
}
