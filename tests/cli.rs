//! The command-line client and its exit codes, against a real server (and against fake servers
//! for the answers a real one never gives).

mod support;

use walkv::testutil::TempDir;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread;
use support::{Server, run_walkv};

/// set, get and delete round-trip any bytes, including a value from stdin; exit codes 0 and 1.
#[test]
fn set_get_delete_round_trip() {
    let dir = TempDir::new("cli");
    let server = Server::start(&dir);
    let a = server.addr.as_str();
    assert_eq!(run_walkv(&["set", "--addr", a, "greeting", "hello world"], &[], b"").0, 0);
    let (code, out, _) = run_walkv(&["get", "--addr", a, "greeting"], &[], b"");
    assert_eq!((code, out.as_slice()), (0, &b"hello world"[..]), "get prints the exact bytes");

    let binary: Vec<u8> = (0..=255u8).chain(b"\n=\r\n".iter().copied()).collect();
    assert_eq!(run_walkv(&["set", "--addr", a, "a/b=c d", "-"], &[], &binary).0, 0);
    let (code, out, _) = run_walkv(&["get", "a/b=c d"], &[("WALKV_ADDR", a)], b"");
    assert_eq!((code, out), (0, binary));

    assert_eq!(run_walkv(&["set", "--addr", a, "--", "-dash", ""], &[], b"").0, 0);
    let (code, out, _) = run_walkv(&["get", "--addr", a, "--", "-dash"], &[], b"");
    assert_eq!((code, out.len()), (0, 0), "an empty value is a value");

    assert_eq!(run_walkv(&["delete", "--addr", a, "greeting"], &[], b"").0, 0);
    assert_eq!(run_walkv(&["delete", "--addr", a, "greeting"], &[], b"").0, 0, "idempotent");
    let (code, out, err) = run_walkv(&["get", "--addr", a, "greeting"], &[], b"");
    assert_eq!((code, out.len()), (1, 0));
    assert!(err.contains("key not found"), "{err}");
}

/// Usage errors exit 2; a refused request exits 4 with the server's reason.
#[test]
fn usage_and_rejection_exit_codes() {
    let (code, _, err) = run_walkv(&["get"], &[], b"");
    assert_eq!(code, 2);
    assert!(err.contains("walkv get KEY"), "{err}");
    assert_eq!(run_walkv(&["frobnicate", "x"], &[], b"").0, 2);
    assert_eq!(run_walkv(&["--port", "99999"], &[], b"").0, 2);

    let dir = TempDir::new("cli-reject");
    let server = Server::start(&dir);
    let long_key = "k".repeat(walkv::wal::MAX_KEY_LEN + 1);
    let (code, _, err) = run_walkv(&["set", "--addr", &server.addr, &long_key, "v"], &[], b"");
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("the limit is 4096"), "{err}");
}

/// Nothing listening: exit 3 with a hint about the address.
#[test]
fn cannot_connect_exits_3() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}"); // the listener is dropped: nothing listens here now
    let (code, _, err) = run_walkv(&["get", "--addr", &addr, "k"], &[], b"");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot connect") && err.contains("WALKV_ADDR"), "{err}");
}

/// Serves one connection with a canned answer; returns its address.
fn fake_server(answer: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(answer);
        }
    });
    addr
}

/// A 5xx or an unreadable answer exits 5.
#[test]
fn server_errors_exit_5() {
    let addr = fake_server(b"HTTP/1.1 507 Insufficient Storage\r\nContent-Length: 25\r\n\r\n{\"error\":\"disk is full!\"}");
    let (code, _, err) = run_walkv(&["set", "--addr", &addr, "k", "v"], &[], b"");
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("507") && err.contains("disk is full"), "{err}");
    let addr = fake_server(b"SSH-2.0-OpenSSH_9.2\r\n");
    let (code, _, err) = run_walkv(&["get", "--addr", &addr, "k"], &[], b"");
    assert_eq!(code, 5, "{err}");
}

/// Every command answers --help with its usage on stdout and exit 0.
#[test]
fn help_on_every_command() {
    for args in [
        &["--help"][..],
        &["help"],
        &["serve", "--help"],
        &["get", "--help"],
        &["set", "-h"],
        &["delete", "--help"],
        &["check", "--help"],
        &["repair", "--help"],
    ] {
        let (code, out, _) = run_walkv(args, &[], b"");
        let out = String::from_utf8_lossy(&out);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("USAGE:"), "{args:?}: {out}");
    }
}

/// `PORT` and `WALKV_DATA_DIR` configure a server started with no flags at all. The test stops
/// reading the server's stderr before SIGTERM, so this also proves that a closed log pipe does
/// not crash the server (it once did: `eprintln!` panics on EPIPE, exit 101).
#[test]
fn serve_reads_port_and_data_dir_from_env() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let dir = TempDir::new("env");
    let child = std::process::Command::new(support::BIN)
        .env("PORT", &port)
        .env("WALKV_DATA_DIR", dir.as_os_str())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = support::KillOnDrop(child);
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut lines = stderr.lines().map_while(Result::ok);
    let line = lines.find(|l| l.contains("listening on"));
    assert_eq!(line, Some(format!("walkv: listening on http://127.0.0.1:{port}")));
    let line = lines.find(|l| l.starts_with("walkv: ready on"));
    assert_eq!(line, Some(format!("walkv: ready on http://127.0.0.1:{port}")));
    assert!(dir.join(walkv::wal::FILE_NAME).exists());
    support::signal(child.0.id(), "TERM");
    let status = support::wait_with_timeout(&mut child.0, std::time::Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
}
