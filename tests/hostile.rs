//! Clients that misbehave on purpose, against the real binary on loopback.

mod support;

use std::net::TcpStream;
use std::time::Duration;
use support::request;
use walkv::testutil::TempDir;

/// Running out of file descriptors (a real EMFILE under `ulimit -n`): tiny_http's accept thread
/// either reports an accept error and stops, or panics (`try_clone().unwrap()`); either way it
/// accepts nothing again, so the server must not live on deaf. It syncs the log and exits (9 or
/// 11) for a supervisor to restart it, and what it acknowledged is there after. This test found
/// the panic: before the panic hook the server stayed up, deaf, forever.
#[test]
fn running_out_of_descriptors_exits_instead_of_going_deaf() {
    let dir = TempDir::new("emfile");
    let server = support::Server::start_in_shell("ulimit -n 48", &dir);
    let addr = server.addr.clone();
    assert_eq!(request(&addr, "PUT", "/v1/before", b"kept").unwrap().status, 201);

    // Hold connections open until the server cannot accept any more.
    let mut held = Vec::new();
    for _ in 0..200 {
        match TcpStream::connect(&addr) {
            Ok(stream) => held.push(stream),
            Err(_) => break,
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (status, stderr) = server.wait_exit(Duration::from_secs(20));
    assert!(matches!(status.code(), Some(9 | 11)), "{status:?}: {stderr}");
    assert!(stderr.contains("log synced through seq 1"), "{stderr}");
    drop(held);

    let server = support::Server::start(&dir);
    let r = request(&server.addr, "GET", "/v1/before?raw", b"").unwrap();
    assert_eq!(r.body, b"kept");
}

/// Bytes a client chooses (path, query, header values) never come back in response headers.
#[test]
fn client_bytes_are_never_echoed_into_headers() {
    let dir = TempDir::new("echo");
    let server = support::Server::start(&dir);
    let marker = "EVILMARKER";
    let raw = format!(
        "PATCH /v1/{marker}?{marker} HTTP/1.1\r\nHost: {marker}\r\nX-{marker}: {marker}\r\n\
         Origin: {marker}\r\nConnection: close\r\n\r\n"
    );
    for request in [raw.clone(), raw.replace("PATCH", "GET"), raw.replace("PATCH /v1/", "GET /")] {
        let reply = support::send_raw(&server.addr, request.as_bytes()).unwrap();
        let text = String::from_utf8_lossy(&reply).into_owned();
        let head = text.split("\r\n\r\n").next().unwrap();
        assert!(head.starts_with("HTTP/1.1 4"), "{head}");
        assert!(!head.contains(marker), "client bytes echoed in headers:\n{head}");
    }
}
