//! Durable writes per second with `--sync always`, with and without group commit, at 1, 8 and
//! 64 concurrent clients, measured side by side in one run.
//!
//! `cargo bench --bench durable_writes` (knobs: `WALKV_BENCH_SECS` per measurement, default 3;
//! `WALKV_BENCH_ROUNDS`, default 3). Each round runs every configuration once, interleaved
//! (A B A B ...), so that drift on a shared machine hits all of them alike; the table reports the
//! median of the rounds and the ratio of group commit to one fsync per write.
//!
//! Each client holds one keep-alive connection and sends `PUT` requests with 100-byte values,
//! one at a time. Every answer must be 2xx, and every connection must be served: a run where a
//! connection got no answers is reported as invalid, not as a number.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

fn start(max_batch: &str) -> Server {
    let dir = walkv::testutil::TempDir::new("bench");
    let mut child = Command::new(env!("CARGO_BIN_EXE_walkv"))
        .args(["serve", "--port", "0", "--sync", "always", "--max-batch", max_batch, "--data-dir"])
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

/// Reads one response; returns its status.
fn read_status(reader: &mut BufReader<TcpStream>) -> Option<u16> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(status)
}

/// One client: PUTs until `stop`; returns how many 2xx answers it got (None on any error).
fn client(addr: String, id: usize, stop: Arc<AtomicBool>) -> Option<u64> {
    let stream = TcpStream::connect(&addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut writer = stream.try_clone().ok()?;
    let mut reader = BufReader::new(stream);
    let value = [b'v'; 100];
    let mut done = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let head =
            format!("PUT /v1/c{id}-{done} HTTP/1.1\r\nHost: b\r\nContent-Length: 100\r\n\r\n");
        writer.write_all(&[head.as_bytes(), &value].concat()).ok()?;
        let status = read_status(&mut reader)?;
        if !(200..300).contains(&status) {
            return None;
        }
        done += 1;
    }
    Some(done)
}

/// Writes per second, or why the run is invalid.
fn measure(max_batch: &str, clients: usize, secs: f64) -> Result<f64, String> {
    let server = start(max_batch);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|id| {
            let (addr, stop) = (server.addr.clone(), Arc::clone(&stop));
            thread::spawn(move || client(addr, id, stop))
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<Option<u64>> = handles.into_iter().map(|h| h.join().unwrap_or(None)).collect();
    let elapsed = started.elapsed().as_secs_f64();
    if counts.iter().any(Option::is_none) {
        return Err("a client saw an error or a non-2xx answer".into());
    }
    let counts: Vec<u64> = counts.into_iter().flatten().collect();
    let starved = counts.iter().filter(|&&c| c == 0).count();
    if starved > 0 {
        return Err(format!("{starved} of {clients} connections got no answer"));
    }
    Ok(counts.iter().sum::<u64>() as f64 / elapsed)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn main() {
    let knob = |name: &str, default: f64| {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let secs = knob("WALKV_BENCH_SECS", 3.0);
    let rounds = knob("WALKV_BENCH_ROUNDS", 3.0) as usize;
    let configs: Vec<(usize, &str)> =
        [1, 8, 64].iter().flat_map(|&c| [(c, "128"), (c, "1")]).collect();
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut invalid: Vec<Option<String>> = vec![None; configs.len()];
    for round in 0..rounds {
        for (i, &(clients, batch)) in configs.iter().enumerate() {
            match measure(batch, clients, secs) {
                Ok(rate) => results[i].push(rate),
                Err(why) => invalid[i] = Some(format!("round {round}: {why}")),
            }
        }
    }
    println!(
        "durable writes/s, --sync always, 100-byte values, {rounds} rounds x {secs} s, median"
    );
    println!(
        "{:>8} {:>22} {:>22} {:>8}",
        "clients", "group commit (128)", "no batching (1)", "ratio"
    );
    for c in [1, 8, 64] {
        let at = |batch: &str| configs.iter().position(|&(cc, b)| cc == c && b == batch).unwrap();
        let (g, n) = (at("128"), at("1"));
        if let Some(why) = invalid[g].as_ref().or(invalid[n].as_ref()) {
            println!("{c:>8} invalid: {why}");
            continue;
        }
        let (g, n) = (median(results[g].clone()), median(results[n].clone()));
        println!("{c:>8} {g:>22.0} {n:>22.0} {:>7.2}x", g / n);
    }
}
