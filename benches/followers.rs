//! Watchers never hurt writers: a write's latency with 1,000 followers of the change feed, each
//! receiving every change, against the same server without followers, measured side by side.
//!
//! `cargo bench --bench followers` (knobs: `WALKV_BENCH_FOLLOWERS`, default 1000;
//! `WALKV_BENCH_RATE`, writes per second, default 500; `WALKV_BENCH_SECS` per measurement,
//! default 4; `WALKV_BENCH_ROUNDS`, default 3). Each round measures both configurations,
//! interleaved, each on a fresh server; the table reports the median of the rounds and the
//! ratios (with followers / without).
//!
//! The goal: a write's latency with the followers at most 2x without them. Measured
//! 2026-12-04 (2 shared cores, 500 PUT/s, three rounds): p50 1.19x, mean 1.28x, p99 1.81x
//! (0.61 ms against 0.34 ms). See `src/intake/fanout.rs` and docs/performance.md.
//!
//! One client writes `PUT` requests with 100-byte values over one keep-alive connection, paced
//! at the rate (a write waits for its answer, then for its time slot), and times each answer.
//! The followers are `GET /changes?follow` connections, all read by one thread of this process
//! (epoll, through mio), which counts the lines each gets. A measurement counts only if every follower received every
//! change (none cut, none short); otherwise it is reported as invalid, not as a number.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: String,
    _dir: walkv::testutil::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn start(followers: u64) -> Server {
    let dir = walkv::testutil::TempDir::new("bench-followers");
    let connections = (followers + 100).to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_walkv"))
        .args(["serve", "--port", "0", "--max-connections", &connections, "--data-dir"])
        .arg(&*dir)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start walkv");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let addr = stderr
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("walkv: ready on http://").map(|(_, rest)| rest).map(str::to_string)
        })
        .expect("walkv did not start");
    Server { child, addr, _dir: dir }
}

/// The followers: every feed read by this one thread (with epoll, through mio), as a client
/// that fans in many feeds would, so that the bench measures the server's cost of a follower
/// rather than a thousand client threads competing for the two cores. Each follower's count of
/// change lines is in `changes` (heartbeats have `"op":"heartbeat"`; each change's line starts
/// with `{"seq"`; chunk-size lines never do).
fn read_feeds(
    addr: String,
    changes: Arc<Vec<AtomicU64>>,
    ready: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    use mio::{Events, Interest, Poll, Token};
    lower_this_threads_priority();
    let mut poll = Poll::new().expect("epoll");
    let mut streams = Vec::new();
    for i in 0..changes.len() {
        let mut stream = TcpStream::connect(&addr).expect("connect a follower");
        stream.write_all(b"GET /changes?follow HTTP/1.1\r\nHost: b\r\n\r\n").unwrap();
        stream.set_nonblocking(true).unwrap();
        let mut stream = mio::net::TcpStream::from_std(stream);
        poll.registry().register(&mut stream, Token(i), Interest::READABLE).unwrap();
        streams.push((stream, Vec::new(), false));
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 << 10];
    while !stop.load(Ordering::Relaxed) {
        poll.poll(&mut events, Some(Duration::from_millis(50))).expect("poll");
        for event in &events {
            let i = event.token().0;
            let (stream, carry, head_done) = &mut streams[i];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => carry.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
            }
            if !*head_done {
                let Some(at) = carry.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                carry.drain(..at + 4);
                *head_done = true;
                ready.fetch_add(1, Ordering::SeqCst);
            }
            let mut start = 0;
            while let Some(at) = carry[start..].iter().position(|b| *b == b'\n') {
                if carry[start..].starts_with(b"{\"seq\"") {
                    changes[i].fetch_add(1, Ordering::Relaxed);
                }
                start += at + 1;
            }
            carry.drain(..start);
        }
    }
}

/// `renice 19` for the calling thread: the followers stand for clients on other machines, whose
/// reading must not take the server's CPU away from it here, where they share two cores.
fn lower_this_threads_priority() {
    let Ok(me) = std::fs::read_link("/proc/thread-self") else { return };
    let Some(tid) = me.file_name().and_then(|t| t.to_str()).map(str::to_string) else { return };
    let _ = Command::new("renice").args(["-n", "19", "-p", &tid]).stdout(Stdio::null()).status();
}

/// Reads one response; returns its status.
fn read_status(reader: &mut BufReader<TcpStream>) -> Option<u16> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(status)
}

/// What one measurement saw.
struct Measured {
    writes: u64,
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
    /// Every follower got every change.
    valid: bool,
}

fn measure(followers: u64, rate: u64, secs: u64) -> Measured {
    let server = start(followers);
    let changes: Arc<Vec<AtomicU64>> =
        Arc::new((0..followers).map(|_| AtomicU64::new(0)).collect());
    let ready = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let feeds = {
        let (addr, changes, ready, stop) =
            (server.addr.clone(), Arc::clone(&changes), Arc::clone(&ready), Arc::clone(&stop));
        thread::spawn(move || read_feeds(addr, changes, ready, stop))
    };
    while ready.load(Ordering::SeqCst) < followers {
        thread::sleep(Duration::from_millis(10));
    }
    let stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let value = "v".repeat(100);
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let began = Instant::now();
    let mut latencies = Vec::new();
    let mut next = began;
    while began.elapsed() < Duration::from_secs(secs) {
        let request = format!(
            "PUT /v1/k{} HTTP/1.1\r\nHost: b\r\nContent-Length: {}\r\n\r\n{value}",
            latencies.len() % 1000,
            value.len()
        );
        let sent = Instant::now();
        writer.write_all(request.as_bytes()).unwrap();
        let status = read_status(&mut reader).expect("an answer");
        latencies.push(sent.elapsed().as_secs_f64() * 1e6);
        assert!((200..300).contains(&status), "PUT answered {status}");
        next += gap;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    let writes = latencies.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    let all_in = || changes.iter().all(|c| c.load(Ordering::Relaxed) >= writes);
    while !all_in() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let valid = changes.iter().all(|c| c.load(Ordering::Relaxed) == writes);
    stop.store(true, Ordering::Relaxed);
    feeds.join().expect("the followers' thread");
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
    Measured { writes, p50_us: at(0.5), p99_us: at(0.99), mean_us: mean, valid }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let followers = knob("WALKV_BENCH_FOLLOWERS", 1000);
    let rate = knob("WALKV_BENCH_RATE", 500);
    let secs = knob("WALKV_BENCH_SECS", 4);
    let rounds = knob("WALKV_BENCH_ROUNDS", 3);
    println!("write latency, {rate} PUT/s for {secs} s, without and with {followers} followers");
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for (n, into) in [(0, &mut without), (followers, &mut with)] {
            let m = measure(n, rate, secs);
            println!(
                "  round {round}, {n:>5} followers: {} writes, p50 {:.0} us, p99 {:.0} us, mean \
                 {:.0} us{}",
                m.writes,
                m.p50_us,
                m.p99_us,
                m.mean_us,
                if m.valid { "" } else { "  INVALID: a follower missed changes" }
            );
            if m.valid {
                into.push(m);
            }
        }
    }
    if without.is_empty() || with.is_empty() {
        println!("no valid measurement of one configuration: no ratio");
        return;
    }
    let stat = |ms: &[Measured], f: fn(&Measured) -> f64| median(ms.iter().map(f).collect());
    println!("\nmedian of rounds    without    with {followers}    ratio");
    for (name, f) in [
        ("p50 (us)", (|m: &Measured| m.p50_us) as fn(&Measured) -> f64),
        ("p99 (us)", |m: &Measured| m.p99_us),
        ("mean (us)", |m: &Measured| m.mean_us),
    ] {
        let (a, b) = (stat(&without, f), stat(&with, f));
        println!("{name:<18} {a:>8.0} {b:>12.0}    {:.2}x", b / a);
    }
}
