//! The way out to Redis, for real: hostile keys and values go from walkv through
//! `walkv export --format resp | redis-cli --pipe` into a real `redis-server`, and every key and
//! value is compared byte for byte over RESP.
//!
//! Needs `redis-server` and `redis-cli` (Debian: `apt-get install redis-server redis-tools`).
//! Without them the test says so and passes, unless `WALKV_REQUIRE_REDIS=1` (as `.ci/run` sets
//! it), which makes their absence a failure.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{BIN, Server};
use walkv::testutil::TempDir;

/// True if `tool --version` runs.
fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// A `redis-server` without persistence on a free loopback port; killed (by PID) when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &std::path::Path) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let redis = Redis { child, port };
        let began = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(began.elapsed() < Duration::from_secs(10), "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A RESP connection for `GET` and `DBSIZE`, written here so as to depend on no Redis client.
struct Resp {
    reader: BufReader<TcpStream>,
}

impl Resp {
    fn connect(port: u16) -> Resp {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Resp { reader: BufReader::new(stream) }
    }

    fn command(&mut self, args: &[&[u8]]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&out).unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end_matches("\r\n").to_string()
    }

    /// The reply to GET: the bulk string's bytes, or `None` for a nil.
    fn bulk(&mut self) -> Option<Vec<u8>> {
        let line = self.line();
        let len: i64 = line.strip_prefix('$').unwrap_or_else(|| panic!("{line}")).parse().unwrap();
        if len < 0 {
            return None;
        }
        let mut bytes = vec![0u8; len as usize + 2];
        self.reader.read_exact(&mut bytes).unwrap();
        assert!(bytes.ends_with(b"\r\n"));
        bytes.truncate(len as usize);
        Some(bytes)
    }
}

/// Hostile data (every byte value, `\r\n`, quotes, NUL, empty and 1 MiB values, RESP lookalikes)
/// reaches Redis exactly through `export --format resp | redis-cli --pipe`.
#[test]
fn export_resp_loads_into_redis_exactly() {
    if !have("redis-server") || !have("redis-cli") {
        assert!(
            std::env::var("WALKV_REQUIRE_REDIS").as_deref() != Ok("1"),
            "WALKV_REQUIRE_REDIS=1 but redis-server or redis-cli is missing"
        );
        eprintln!(
            "skipped: redis-server and redis-cli are needed (apt-get install redis-server redis-tools)"
        );
        return;
    }
    let dir = TempDir::new("redis-out");
    let server = Server::start(&dir);
    let pairs = support::hostile_pairs();
    support::fill(&server.addr, &pairs);
    let redis_dir = TempDir::new("redis-dir");
    let redis = Redis::start(&redis_dir);

    let mut export = Command::new(BIN)
        .args(["export", "--format", "resp", "--data-dir"])
        .arg(&*dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "--pipe"])
        .stdin(export.stdout.take().unwrap())
        .output()
        .unwrap();
    let exported = export.wait_with_output().unwrap();
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let said = String::from_utf8_lossy(&pipe.stdout);
    assert!(pipe.status.success(), "redis-cli --pipe: {said}");
    assert!(said.contains(&format!("errors: 0, replies: {}", pairs.len())), "{said}");

    let mut resp = Resp::connect(redis.port);
    resp.command(&[b"DBSIZE"]);
    assert_eq!(resp.line(), format!(":{}", pairs.len()));
    for (key, value) in &pairs {
        resp.command(&[b"GET", key]);
        assert!(resp.bulk().as_ref() == Some(value), "key {key:?} differs in Redis");
    }
}
