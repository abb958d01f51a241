//! The shared-secret token and the open-server rule, through the real binary.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use support::{Server, request, run_walkv};
use walkv::testutil::TempDir;

fn token_file(dir: &TempDir, token: &str) -> String {
    let path = dir.join("token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path.to_str().unwrap().to_string()
}

/// With `--auth-token-file`, requests without the token get 401 (JSON, `WWW-Authenticate`), even
/// before their body is read; with it, everything works, including the client commands.
#[test]
fn token_file_guards_the_server_and_the_client_sends_it() {
    let dir = TempDir::new("auth");
    let file = token_file(&dir, "correct-horse");
    let server = Server::start_with(&dir.join("data"), &["--auth-token-file", &file]);
    let a = &server.addr;

    let r = request(a, "PUT", "/v1/k", b"v").unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("WWW-Authenticate"), Some("Bearer realm=\"walkv\""));
    assert!(r.text().contains("bearer token"), "{}", r.text());
    assert_eq!(request(a, "GET", "/status", b"").unwrap().status, 401);
    // The probes need no token, and say nothing else.
    let r = request(a, "GET", "/livez", b"").unwrap();
    assert_eq!((r.status, r.text()), (200, r#"{"live":true}"#.to_string()));
    let r = request(a, "GET", "/readyz", b"").unwrap();
    assert_eq!((r.status, r.text()), (200, r#"{"ready":true}"#.to_string()));
    assert_eq!(request(a, "GET", "/readyz?x", b"").unwrap().status, 400, "no parameters");
    assert_eq!(request(a, "POST", "/readyz", b"").unwrap().status, 401);

    // A huge upload without the token is refused at once, before any body byte is sent.
    let mut stream = TcpStream::connect(a).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"PUT /v1/big HTTP/1.1\r\nHost: t\r\nContent-Length: 500000\r\n\r\n").unwrap();
    assert_eq!(support::read_reply(&mut stream, false).unwrap().status, 401);
    drop(stream);

    let wrong = [("WALKV_AUTH_TOKEN", "correct-hors")];
    let (code, _, err) = run_walkv(&["set", "--addr", a, "k", "v"], &wrong, b"");
    assert_eq!(code, 4, "a wrong token is a rejection: {err}");
    assert!(err.contains("401"), "{err}");
    let right = [("WALKV_AUTH_TOKEN", "correct-horse")];
    assert_eq!(run_walkv(&["set", "--addr", a, "k", "v"], &right, b"").0, 0);
    let (code, out, _) =
        run_walkv(&["get", "--addr", a, "--auth-token-file", &file, "k"], &[], b"");
    assert_eq!((code, out.as_slice()), (0, &b"v"[..]));
    let (code, _, _) =
        run_walkv(&["delete", "--addr", a, "--auth-token-file", &file, "k"], &wrong, b"");
    assert_eq!(code, 0, "--auth-token-file beats WALKV_AUTH_TOKEN");
}

/// `WALKV_AUTH_TOKEN` configures the server as well.
#[test]
fn token_from_environment() {
    let dir = TempDir::new("auth-env");
    let server = Server::start_env(&dir, &[], &[("WALKV_AUTH_TOKEN", "s3cret")]);
    assert_eq!(request(&server.addr, "GET", "/v1/x", b"").unwrap().status, 401);
    let env = [("WALKV_AUTH_TOKEN", "s3cret")];
    assert_eq!(run_walkv(&["get", "--addr", &server.addr, "x"], &env, b"").0, 1, "authorised: 404");
}

/// A non-loopback address without a token is refused before anything is opened (exit 2), and
/// so is a token that cannot be read.
#[test]
fn open_address_without_token_is_refused() {
    let dir = TempDir::new("auth-open");
    let data = dir.join("data");
    let d = data.to_str().unwrap();
    let (code, _, err) =
        run_walkv(&["serve", "--bind", "0.0.0.0", "--port", "0", "--data-dir", d], &[], b"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--insecure-open") && err.contains("WALKV_AUTH_TOKEN"), "{err}");
    assert!(!data.exists(), "nothing may be created before the refusal");
    let missing = dir.join("no-such-token");
    let (code, _, err) = run_walkv(
        &["serve", "--port", "0", "--data-dir", d, "--auth-token-file", missing.to_str().unwrap()],
        &[],
        b"",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read the auth token file"), "{err}");
    let (code, _, err) = run_walkv(&["get", "k"], &[("WALKV_AUTH_TOKEN", " ")], b"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("empty"), "{err}");
}
