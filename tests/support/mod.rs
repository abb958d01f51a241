//! Helpers for tests that drive the real `walkv` binary over real sockets and real files.
//!
//! Servers listen on 127.0.0.1 port 0 and report the port they got on stderr; every process a
//! test starts is stopped by PID when its handle is dropped. The HTTP helpers here are written
//! independently of `walkv::client` so that they can check it.
#![allow(dead_code)] // Each test file uses a different subset.

pub mod feed;
pub mod power;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_walkv");

/// Every environment variable walkv reads, so a developer's own settings cannot change a test.
const WALKV_ENV: [&str; 15] = [
    "PORT",
    "WALKV_ADDR",
    "WALKV_DATA_DIR",
    "WALKV_SYNC",
    "WALKV_AUTH_TOKEN",
    "WALKV_BOOT_ID",
    "WALKV_FAILPOINTS",
    "WALKV_SYNC_TRACE",
    "WALKV_FS_TRACE",
    "WALKV_FSYNC_DELAY_MS",
    "WALKV_WRITE_DELAY_MS",
    "WALKV_MAX_MEMORY",
    "WALKV_REPLAY_DELAY_MS",
    "WALKV_LOG_REQUESTS",
    "WALKV_LOG_FORMAT",
];

/// A boot id that is not this machine's: a server started with `WALKV_BOOT_ID` set to it
/// believes the machine rebooted since the last one ran (after a simulated power cut).
pub const OTHER_BOOT: &str = "0123456789abcdef0123456789abcdef";

/// One record of a log file, found by decoding it with the log's own seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub offset: usize,
    pub len: usize,
    pub seq: u64,
    /// "set", "delete", "expire", "txn", "sync" or "gap".
    pub kind: &'static str,
    pub key: Vec<u8>,
}

/// The log file a server in `dir` appends to: its newest segment, or `walkv.wal` in a directory
/// that has no segment yet (a new one, or one of the one-file layout).
pub fn active_log(dir: &Path) -> PathBuf {
    let newest = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("segment-") && n.ends_with(".wal"))
        .max();
    dir.join(newest.unwrap_or_else(|| walkv::wal::FILE_NAME.to_string()))
}

/// Every record in the log at `path`, in order, up to the first that does not decode.
pub fn log_records(path: &Path) -> Vec<LogRecord> {
    use walkv::wal::{Body, Decoded, HEADER_LEN, Seed, decode};
    let bytes = std::fs::read(path).expect("read the log");
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[12..20]);
    let seed = Seed::log(u64::from_le_bytes(id));
    let mut at = HEADER_LEN;
    let mut out = Vec::new();
    while let Decoded::Record(r, len) = decode(&bytes[at..], seed) {
        let (kind, key) = match r.body {
            Body::Set { key, .. } => ("set", key.to_vec()),
            Body::Delete { key } => ("delete", key.to_vec()),
            Body::Expire { key } => ("expire", key.to_vec()),
            Body::Txn(_) => ("txn", Vec::new()),
            Body::Mark(_) => ("sync", Vec::new()),
            Body::Gap { .. } => ("gap", Vec::new()),
        };
        out.push(LogRecord { offset: at, len, seq: r.seq, kind, key });
        at += len;
    }
    out
}

/// Runs walkv with none of its environment variables set unless a test sets them.
trait Hermetic {
    fn env_clear_walkv(&mut self) -> &mut Self;
}

impl Hermetic for Command {
    fn env_clear_walkv(&mut self) -> &mut Self {
        WALKV_ENV.iter().fold(self, |cmd, name| cmd.env_remove(name))
    }
}

/// A running `walkv serve`.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
    pub data_dir: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts a server on `data_dir` and waits until it listens.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        match Server::try_start(data_dir, extra) {
            Ok(server) => server,
            Err((status, stderr)) => panic!("server did not start ({status:?}): {stderr}"),
        }
    }

    /// Starts a server; if it exits instead of listening, returns its status and stderr.
    pub fn try_start(
        data_dir: &Path,
        extra: &[&str],
    ) -> Result<Server, (Option<ExitStatus>, String)> {
        Server::try_start_env(data_dir, extra, &[])
    }

    /// Starts a server with extra environment variables (failpoints, the sync trace).
    pub fn start_env(data_dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Server {
        match Server::try_start_env(data_dir, extra, envs) {
            Ok(server) => server,
            Err((status, stderr)) => panic!("server did not start ({status:?}): {stderr}"),
        }
    }

    pub fn try_start_env(
        data_dir: &Path,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Result<Server, (Option<ExitStatus>, String)> {
        let mut command = Command::new(BIN);
        command.args(["serve", "--port", "0", "--data-dir"]).arg(data_dir).args(extra);
        Server::spawn(command, data_dir, envs)
    }

    /// Starts a server on a given port (to restart one where its clients expect it).
    pub fn start_on(data_dir: &Path, port: &str) -> Server {
        let mut command = Command::new(BIN);
        command.args(["serve", "--port", port, "--data-dir"]).arg(data_dir);
        match Server::spawn(command, data_dir, &[]) {
            Ok(server) => server,
            Err((status, stderr)) => panic!("server did not start ({status:?}): {stderr}"),
        }
    }

    /// Starts a server from a bash script that runs `setup` (a `ulimit`, a `trap`) and then
    /// `exec`s walkv, so the server's PID is the child's and the limits are really its own.
    pub fn start_in_shell(setup: &str, data_dir: &Path) -> Server {
        Server::start_in_shell_with(setup, data_dir, &[])
    }

    /// [`Server::start_in_shell`] with extra `walkv serve` arguments (plain words, no quoting).
    pub fn start_in_shell_with(setup: &str, data_dir: &Path, extra: &[&str]) -> Server {
        let script = format!(
            "{setup}; exec {BIN} serve --port 0 --data-dir '{}' {}",
            data_dir.display(),
            extra.join(" ")
        );
        let mut command = Command::new("bash");
        command.args(["-c", &script]);
        match Server::spawn(command, data_dir, &[]) {
            Ok(server) => server,
            Err((status, stderr)) => panic!("server did not start ({status:?}): {stderr}"),
        }
    }

    /// Spawns `command` (which runs walkv serve) and waits until it is ready (it has replayed
    /// its log).
    fn spawn(
        mut command: Command,
        data_dir: &Path,
        envs: &[(&str, &str)],
    ) -> Result<Server, (Option<ExitStatus>, String)> {
        let mut child = command
            .env_clear_walkv()
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn walkv");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("stderr pipe");
        let log = Arc::clone(&stderr);
        std::thread::spawn(move || {
            // The server listens before it replays its log, and says "ready" after.
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let plain = line.split_once("walkv: ready on http://").map(|(_, rest)| rest);
                // With --log-format json: {"time":"...","msg":"ready on http://ADDR"}
                let json = line
                    .split_once("\"msg\":\"ready on http://")
                    .map(|(_, rest)| rest.split_once('"').map_or(rest, |(addr, _)| addr));
                if let Some(addr) = plain.or(json) {
                    let _ = tx.send(addr.to_string());
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => {
                Ok(Server { child: Some(child), addr, data_dir: data_dir.to_path_buf(), stderr })
            }
            Err(_) => {
                let status = child.wait().ok();
                std::thread::sleep(Duration::from_millis(50)); // let the reader drain the pipe
                let text = stderr.lock().unwrap().clone();
                Err((status, text))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Everything the server has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL: no chance to flush or sync anything.
    pub fn kill9(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill -9");
        child.wait().expect("reap");
    }

    /// Sends SIGTERM and waits for the exit; returns the status and the full stderr.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let status = wait_with_timeout(&mut child, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
        (status, self.stderr())
    }
}

impl Server {
    /// Waits for the server to exit by itself; returns its status and the full stderr.
    pub fn wait_exit(mut self, limit: Duration) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let status = wait_with_timeout(&mut child, limit);
        std::thread::sleep(Duration::from_millis(50));
        (status, self.stderr())
    }
}

/// The last sequence number replayed from the startup report: "last seq N", or, when the trim
/// recorded numbers as skipped, the one before them.
pub fn replayed_last_seq(stderr: &str) -> u64 {
    let number_after = |needle: &str| {
        let at = stderr.find(needle)? + needle.len();
        stderr[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok()
    };
    match number_after("Sequence numbers ") {
        Some(first_skipped) => first_skipped - 1,
        None => number_after("last seq ").expect("replay report"),
    }
}

/// The complete lines of a sync trace (`WALKV_SYNC_TRACE`): (synced length, synced seq).
pub fn sync_trace(path: &Path) -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|l| {
            let (len, seq) = l.split_once(' ').expect("trace line");
            (len.parse().expect("length"), seq.parse().expect("seq"))
        })
        .collect()
}

/// The complete lines of a file-system trace (`WALKV_FS_TRACE`), split into words.
pub fn fs_trace(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete.lines().map(|l| l.split(' ').map(str::to_string).collect()).collect()
}

/// The directory entries in `trace` that a power cut could still take back: every `mkdir`,
/// `create` and `rename` (its new name) not followed by an fsync of the directory it is in. By
/// the POSIX rule, those are the only entries sure to survive.
pub fn unsynced_entries(trace: &[Vec<String>]) -> Vec<String> {
    let parent = |p: &str| Path::new(p).parent().map(Path::to_path_buf).unwrap_or_default();
    let mut pending: Vec<(PathBuf, String)> = Vec::new();
    for line in trace {
        match line.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["mkdir" | "create", path] => pending.push((parent(path), line.join(" "))),
            ["rename", _, to] => pending.push((parent(to), line.join(" "))),
            ["fsyncdir", dir] => pending.retain(|(p, _)| p != Path::new(dir)),
            ["remove", ..] | ["fsync", _, _] => {}
            other => panic!("unknown fs trace line {other:?}"),
        }
    }
    pending.into_iter().map(|(_, line)| line).collect()
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A child process that is killed (by its PID) if the test ends early.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends a signal to one process we started, by PID.
pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
    assert!(ok.map(|s| s.success()).unwrap_or(false), "kill -{name} {pid} failed");
}

pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `walkv ARGS...` to completion; returns (exit code, stdout, stderr).
pub fn run_walkv(args: &[&str], envs: &[(&str, &str)], stdin: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear_walkv()
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn walkv");
    child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
    let out = child.wait_with_output().expect("wait walkv");
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection.
pub fn request(addr: &str, method: &str, target: &str, body: &[u8]) -> std::io::Result<Reply> {
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    head.extend_from_slice(body);
    let raw = send_raw(addr, &head)?;
    parse_reply(&raw, method == "HEAD").ok_or_else(|| {
        std::io::Error::other(format!("bad reply: {:?}", String::from_utf8_lossy(&raw)))
    })
}

/// Writes `bytes`, closes our sending side (so a server waiting for more sees the end), then
/// reads until the server closes (10 s timeout).
pub fn send_raw(addr: &str, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    // A server that answers before reading (a 503 at the connection cap) may have closed the
    // connection already: its answer still counts, whatever the write or the shutdown said.
    let wrote = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut raw = Vec::new();
    let read = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        wrote?;
        read?;
    }
    Ok(raw)
}

/// Reads exactly one response from a stream that stays open.
pub fn read_reply(stream: &mut TcpStream, head_only: bool) -> Option<Reply> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        raw.push(byte[0]);
    }
    let mut reply = parse_reply(&raw, true)?;
    if !head_only {
        let len: usize = reply.header("Content-Length")?.parse().ok()?;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).ok()?;
        reply.body = body;
    }
    Some(reply)
}

fn parse_reply(raw: &[u8], head_only: bool) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if let Some(len) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
        let len: usize = len.1.parse().ok()?;
        if head_only {
            body.clear();
        } else if body.len() != len {
            return None;
        }
    }
    Some(Reply { status, headers, body })
}

/// Percent-encodes every byte (the most conservative encoding a client could send).
pub fn encode_all(key: &[u8]) -> String {
    key.iter().map(|b| format!("%{b:02X}")).collect()
}

/// A JSON string literal for `s`, using the oracle.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("serialize")
}

/// Keys and values a hostile client might store: every byte value in keys and values,
/// newlines, `\r\n`, quotes, backslashes, NUL, empty values, a maximal key and a 1 MiB value.
pub fn hostile_pairs() -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    let mut pairs = std::collections::BTreeMap::new();
    for b in 0..=255u8 {
        pairs.insert(vec![b], vec![b; usize::from(b) % 7]);
        pairs.insert(vec![b'k', b, b'k'], vec![b'v', b, b'\r', b'\n', b]);
    }
    pairs.insert(b"crlf\r\n".to_vec(), b"a\r\nb\r\n".to_vec());
    pairs.insert(b"\"quoted\"".to_vec(), b"\"\\\"".to_vec());
    pairs.insert(b"empty".to_vec(), Vec::new());
    pairs.insert(b"nul\0inside".to_vec(), b"\0\0".to_vec());
    pairs.insert(b"caf\xc3\xa9 \xe2\x80\xa8".to_vec(), "\u{9b}\u{7f}é".as_bytes().to_vec());
    pairs.insert(b"*3\r\n$3\r\nSET".to_vec(), b"$-1\r\n".to_vec());
    pairs.insert(vec![b'x'; 4096], b"longest key".to_vec());
    pairs.insert(b"big".to_vec(), (0..1 << 20).map(|i| (i % 251) as u8).collect());
    pairs
}

/// Writes every pair with `PUT /v1/{key}`.
pub fn fill(addr: &str, pairs: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>) {
    for (key, value) in pairs {
        let r = request(addr, "PUT", &format!("/v1/{}", encode_all(key)), value).unwrap();
        assert!(r.status == 201 || r.status == 200, "{key:?}: {}", r.text());
    }
}
