//! `--max-memory`: a write that would take the data past the limit gets 507 with a JSON error
//! naming the limit; reads, deletes and compaction go on; `/status` and `/metrics` show the
//! use against the limit; the limit holds across a restart, and a lower one at startup is
//! said in the log. The real binary, over real sockets.

mod support;

use serde_json::Value;
use support::{Server, request};
use walkv::testutil::TempDir;

fn status(addr: &str) -> Value {
    serde_json::from_slice(&request(addr, "GET", "/status", b"").unwrap().body).unwrap()
}

fn metric(addr: &str, name: &str) -> f64 {
    let text = request(addr, "GET", "/metrics", b"").unwrap().text();
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).expect(name);
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Fills a 2 MiB limit with 100 KiB values until a write is refused, and checks everything
/// the limit promises.
#[test]
fn writes_past_the_memory_limit_get_507_and_everything_else_goes_on() {
    let dir = TempDir::new("memory-limit");
    let data = dir.join("data");
    let server = Server::start_with(&data, &["--max-memory", "2M"]);
    assert!(server.stderr().contains("memory limit for the data: 2.0 MiB"), "{}", server.stderr());
    let a = &server.addr;
    let value = vec![b'v'; 100 << 10];
    let mut written = 0;
    let refused = loop {
        let reply = request(a, "PUT", &format!("/v1/k{written}"), &value).unwrap();
        if reply.status != 201 {
            break reply;
        }
        written += 1;
        assert!(written < 100, "a 2 MiB limit took {written} values of 100 KiB");
    };
    assert_eq!(refused.status, 507, "{}", refused.text());
    let error: Value = serde_json::from_slice(&refused.body).unwrap();
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("--max-memory 2.0 MiB"), "{message}");
    assert!(written >= 15, "only {written} values of 100 KiB fit in 2 MiB");
    let missing = request(a, "GET", &format!("/v1/k{written}"), b"").unwrap();
    assert_eq!(missing.status, 404, "the refused write wrote nothing");

    let s = status(a);
    let (used, limit) = (s["memory_bytes"].as_u64().unwrap(), s["max_memory_bytes"].as_u64());
    assert_eq!(limit, Some(2 << 20));
    assert!(used <= 2 << 20 && used > 15 * (100 << 10), "{used}");
    assert_eq!(metric(a, "walkv_memory_limit_bytes"), (2 << 20) as f64);
    assert_eq!(metric(a, "walkv_memory_bytes"), used as f64);

    assert_eq!(request(a, "GET", "/v1/k0?raw", b"").unwrap().body, value, "reads go on");
    assert_eq!(request(a, "DELETE", "/v1/k0", b"").unwrap().status, 200, "deletes go on");
    assert_eq!(request(a, "POST", "/compact", b"").unwrap().status, 200, "compaction goes on");
    let again = request(a, "PUT", &format!("/v1/k{written}"), &value).unwrap();
    assert_eq!(again.status, 201, "a delete made room: {}", again.text());

    // A lower limit at the next start: the data is served, the log says it is over, and
    // writes that need memory are refused (from the environment variable this time).
    drop(server);
    let server = Server::start_env(&data, &[], &[("WALKV_MAX_MEMORY", "1M")]);
    assert!(server.stderr().contains("over the limit of 1.0 MiB"), "{}", server.stderr());
    assert_eq!(request(&server.addr, "GET", "/v1/k1?raw", b"").unwrap().body, value);
    let reply = request(&server.addr, "PUT", "/v1/more", b"x").unwrap();
    assert_eq!(reply.status, 507, "{}", reply.text());
}

/// `--max-memory 0` turns the limit off, and with no flag the default is a share of what the
/// machine has, said at startup.
#[test]
fn the_default_limit_is_said_and_zero_turns_it_off() {
    let dir = TempDir::new("memory-default");
    let server = Server::start(&dir.join("a"));
    let said = server.stderr();
    assert!(
        said.contains("memory limit for the data:") && said.contains("three quarters of"),
        "{said}"
    );
    assert!(status(&server.addr)["max_memory_bytes"].as_u64().unwrap() > 0);
    let server = Server::start_with(&dir.join("b"), &["--max-memory", "0"]);
    assert!(server.stderr().contains("no memory limit (--max-memory 0)"), "{}", server.stderr());
    assert!(status(&server.addr)["max_memory_bytes"].is_null());
    assert_eq!(metric(&server.addr, "walkv_memory_limit_bytes"), 0.0);
}
