//! `GET /metrics` through the real binary: the output passes `promtool check metrics` and the
//! format's rules, and the numbers are true (what the test sent is what the counters say).
//!
//! `promtool` comes from Debian's `prometheus` package, which `.ci/run` installs and then sets
//! `WALKV_REQUIRE_PROMTOOL=1`, so that in CI a missing promtool fails instead of skipping.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Server, request};
use walkv::testutil::TempDir;
use walkv::wal::RECORD_HEADER_LEN;

/// One scrape: the text, and every sample by its series (`name{labels}`).
struct Scrape {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    fn of(addr: &str) -> Scrape {
        let reply = request(addr, "GET", "/metrics", b"").expect("scrape");
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
        Scrape::of_text(reply.text())
    }

    fn of_text(text: String) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("series value");
                (series.to_string(), value.parse::<f64>().expect("a float"))
            })
            .collect();
        Scrape { text, samples }
    }

    /// The sample's value; 0 for a series not shown yet (a counter nothing has counted).
    fn get(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }

    /// The sum of every sample of `name` (all its label sets).
    fn sum(&self, name: &str) -> f64 {
        let prefix = format!("{name}{{");
        self.samples
            .iter()
            .filter(|(s, _)| s.starts_with(&prefix) || *s == name)
            .map(|(_, v)| v)
            .sum()
    }

    /// (name, TYPE) of every family, in order.
    fn families(&self) -> Vec<(String, String)> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|rest| {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                (name.to_string(), kind.to_string())
            })
            .collect()
    }
}

fn has_promtool() -> bool {
    let found =
        Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("WALKV_REQUIRE_PROMTOOL").is_err(),
            "WALKV_REQUIRE_PROMTOOL is set but promtool is missing"
        );
        eprintln!(
            "SKIPPED: promtool is not installed (apt-get install --no-install-recommends \
             prometheus); .ci/run installs it"
        );
    }
    found
}

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

/// Some of every kind of request, so that most series have samples.
fn traffic(addr: &str) {
    assert_eq!(request(addr, "PUT", "/v1/a", b"1").unwrap().status, 201);
    assert_eq!(request(addr, "PUT", "/v1/a", b"2").unwrap().status, 200);
    assert_eq!(request(addr, "GET", "/v1/a", b"").unwrap().status, 200);
    assert_eq!(request(addr, "HEAD", "/v1/a", b"").unwrap().status, 200);
    assert_eq!(request(addr, "GET", "/v1/none", b"").unwrap().status, 404);
    assert_eq!(request(addr, "DELETE", "/v1/a", b"").unwrap().status, 200);
    let write = br#"{"key":"b","value":"v"}"#;
    assert_eq!(request(addr, "POST", "/v1/write", write).unwrap().status, 201);
    assert_eq!(request(addr, "POST", "/sync", b"").unwrap().status, 200);
    assert_eq!(request(addr, "PATCH", "/v1/a", b"").unwrap().status, 405);
}

/// promtool (the Go parser Prometheus itself uses, and its linter) accepts the output, before
/// any request and after many kinds.
#[test]
fn promtool_accepts_the_output() {
    if !has_promtool() {
        return;
    }
    let dir = TempDir::new("metrics-promtool");
    let server = Server::start(&dir);
    for round in 0..2 {
        let scrape = Scrape::of(&server.addr);
        let (ok, said) = promtool_check(&scrape.text);
        assert!(ok, "round {round}: promtool says:\n{said}\n{}", scrape.text);
        traffic(&server.addr);
    }
    // promtool is not lenient: a broken exposition fails (so the check above can fail).
    let broken = Scrape::of(&server.addr).text.replacen("# TYPE walkv_keys gauge\n", "", 1)
        + "# TYPE walkv_keys gauge\n";
    assert!(!promtool_check(&broken).0, "promtool took a TYPE after its samples");
}

/// The rules promtool does not check, on the real output: every family listed in the issue is
/// there with its type, one HELP and one TYPE each; buckets are cumulative and end in `+Inf`
/// equal to `_count`; the text ends in a newline; and counters only grow between scrapes.
#[test]
fn the_format_rules_hold_and_counters_only_grow() {
    let dir = TempDir::new("metrics-rules");
    let server = Server::start(&dir);
    traffic(&server.addr);
    let first = Scrape::of(&server.addr);
    assert!(first.text.ends_with('\n'), "the last line ends in a newline");
    let families = first.families();
    let helps = first.text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(helps, families.len(), "one HELP per TYPE");
    let mut names: Vec<_> = families.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), families.len(), "a family declared twice");
    for (name, kind) in [
        ("walkv_build_info", "gauge"),
        ("walkv_http_requests_total", "counter"),
        ("walkv_http_request_duration_seconds", "histogram"),
        ("walkv_keys", "gauge"),
        ("walkv_live_bytes", "gauge"),
        ("walkv_disk_bytes", "gauge"),
        ("walkv_wal_appends_total", "counter"),
        ("walkv_wal_append_bytes_total", "counter"),
        ("walkv_wal_fsyncs_total", "counter"),
        ("walkv_wal_fsync_duration_seconds", "histogram"),
        ("walkv_wal_last_seq", "gauge"),
        ("walkv_wal_synced_seq", "gauge"),
        ("walkv_wal_last_fsync_timestamp_seconds", "gauge"),
        ("walkv_group_commit_batch_size", "histogram"),
        ("walkv_connections", "gauge"),
        ("walkv_connections_refused_total", "counter"),
        ("walkv_compactions_total", "counter"),
        ("walkv_compaction_duration_seconds", "histogram"),
        ("process_start_time_seconds", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
    ] {
        assert!(
            families.iter().any(|(n, k)| n == name && k == kind),
            "{name} ({kind}) is missing:\n{}",
            first.text
        );
    }
    // Each family's lines form one group, right after its TYPE.
    let mut current = String::new();
    for line in first.text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            current = rest.split(' ').next().unwrap().to_string();
        } else if !line.starts_with('#') {
            assert!(line.starts_with(&current), "{line} is outside its family {current}");
        }
    }
    for (name, kind) in families.iter().filter(|(_, k)| k == "histogram") {
        let bucket = format!("{name}_bucket{{");
        let buckets: Vec<(String, f64)> = first
            .text
            .lines()
            .filter(|l| l.starts_with(&bucket))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                (series.to_string(), value.parse().unwrap())
            })
            .collect();
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{name}: not cumulative");
        let last = buckets.last().expect("buckets");
        assert!(last.0.contains("le=\"+Inf\""), "{name} ({kind}) must end with +Inf");
        assert_eq!(last.1, first.get(&format!("{name}_count")), "{name}: +Inf != _count");
        assert!(first.samples.contains_key(&format!("{name}_sum")), "{name}_sum");
    }

    traffic(&server.addr);
    let second = Scrape::of(&server.addr);
    let counter_families: Vec<&String> = families
        .iter()
        .filter(|(_, k)| k == "counter" || k == "histogram")
        .map(|(n, _)| n)
        .collect();
    for (series, before) in &first.samples {
        let name = series.split('{').next().unwrap();
        let base =
            name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
        if counter_families.iter().any(|f| *f == name || *f == base) {
            let after = second.get(series);
            assert!(after >= *before, "{series} went from {before} to {after}");
        }
    }
    assert!(
        second.get("walkv_http_requests_total{method=\"PUT\",code=\"201\"}")
            > first.get("walkv_http_requests_total{method=\"PUT\",code=\"201\"}")
    );
}

/// After N writes the append counter grew by N (and by their bytes); each request is counted
/// once under its method and code; the duration histogram counts exactly the requests the
/// counter counts; the gauges say what the store holds.
#[test]
fn the_numbers_are_true() {
    let dir = TempDir::new("metrics-true");
    let server = Server::start(&dir);
    let before = Scrape::of(&server.addr);
    const N: usize = 40;
    for i in 0..N {
        let key = format!("/v1/key{i:02}");
        assert_eq!(request(&server.addr, "PUT", &key, b"value").unwrap().status, 201);
    }
    assert_eq!(request(&server.addr, "GET", "/v1/nothing", b"").unwrap().status, 404);
    let after = Scrape::of(&server.addr);
    let grew = |series: &str| after.get(series) - before.get(series);
    assert_eq!(grew("walkv_wal_appends_total"), N as f64);
    // A record is its header, then the key and the value (see walkv::wal).
    let record = RECORD_HEADER_LEN + "keyNN".len() + "value".len();
    assert_eq!(grew("walkv_wal_append_bytes_total"), (N * record) as f64);
    assert_eq!(grew("walkv_http_requests_total{method=\"PUT\",code=\"201\"}"), N as f64);
    assert_eq!(grew("walkv_http_requests_total{method=\"GET\",code=\"404\"}"), 1.0);
    assert_eq!(grew("walkv_http_requests_total{method=\"GET\",code=\"200\"}"), 1.0, "the scrape");
    assert_eq!(
        after.get("walkv_http_request_duration_seconds_count"),
        after.sum("walkv_http_requests_total"),
        "every counted request has its duration"
    );
    assert_eq!(after.get("walkv_keys"), N as f64);
    assert_eq!(after.get("walkv_wal_last_seq"), N as f64);
    assert!(after.get("walkv_wal_synced_seq") <= N as f64);
    assert_eq!(after.get("walkv_live_bytes"), (N * record) as f64, "as the records' bytes");
    assert!(after.get("walkv_disk_bytes") > after.get("walkv_live_bytes"));
    assert_eq!(after.get("walkv_ready"), 1.0);
    assert_eq!(after.get("walkv_build_info{version=\"0.1.0\"}"), 1.0);
    assert_eq!(request(&server.addr, "POST", "/sync", b"").unwrap().status, 200);
    let synced = Scrape::of(&server.addr);
    assert_eq!(synced.get("walkv_wal_synced_seq"), N as f64);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let last_fsync = synced.get("walkv_wal_last_fsync_timestamp_seconds");
    assert!((now.as_secs_f64() - last_fsync).abs() < 30.0, "{last_fsync} vs {now:?}");
    let started = synced.get("process_start_time_seconds");
    assert!(now.as_secs_f64() - started < 60.0 && started <= now.as_secs_f64() + 1.0);
    assert!(synced.get("process_resident_memory_bytes") > 1e6);
    assert!(synced.get("process_open_fds") >= 4.0);
}

/// In `--sync always` mode every write waits for an fsync: with one client, one fsync per
/// write, each a batch of 1; with eight at once over a slow disk (80 ms per fsync), fewer
/// fsyncs than writes, and the batch histogram's count is the fsync count and its sum the
/// write count. The fsync durations are all above the disk's delay.
#[test]
fn group_commit_metrics_agree_with_what_was_sent() {
    let dir = TempDir::new("metrics-always");
    let envs = [("WALKV_FSYNC_DELAY_MS", "80")];
    let server = Server::start_env(&dir, &["--sync", "always"], &envs);
    let addr = server.addr.clone();
    let before = Scrape::of(&addr);
    for i in 0..5 {
        assert_eq!(request(&addr, "PUT", &format!("/v1/one{i}"), b"v").unwrap().status, 201);
    }
    let one = Scrape::of(&addr);
    let grew = |a: &Scrape, b: &Scrape, s: &str| b.get(s) - a.get(s);
    assert_eq!(grew(&before, &one, "walkv_wal_fsyncs_total"), 5.0);
    assert_eq!(grew(&before, &one, "walkv_group_commit_batch_size_bucket{le=\"1\"}"), 5.0);
    assert_eq!(grew(&before, &one, "walkv_group_commit_batch_size_sum"), 5.0);

    const CLIENTS: usize = 8;
    const EACH: usize = 6;
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let addr = &addr;
            s.spawn(move || {
                for i in 0..EACH {
                    let key = format!("/v1/c{c}-{i}");
                    assert_eq!(request(addr, "PUT", &key, b"v").unwrap().status, 201);
                }
            });
        }
    });
    let many = Scrape::of(&addr);
    let writes = (CLIENTS * EACH) as f64;
    let fsyncs = grew(&one, &many, "walkv_wal_fsyncs_total");
    assert_eq!(grew(&one, &many, "walkv_wal_appends_total"), writes);
    assert_eq!(grew(&one, &many, "walkv_group_commit_batch_size_count"), fsyncs);
    assert_eq!(grew(&one, &many, "walkv_group_commit_batch_size_sum"), writes);
    assert!(fsyncs < writes, "{fsyncs} fsyncs for {writes} concurrent writes: no group commit");
    let fast = "walkv_wal_fsync_duration_seconds_bucket{le=\"0.064\"}";
    assert_eq!(grew(&before, &many, fast), 0.0, "an fsync took less than the disk's delay");
    assert_eq!(
        many.get("walkv_wal_fsync_duration_seconds_count"),
        many.get("walkv_wal_fsyncs_total")
    );
}

/// A scrape on a server at its connection cap: retried while it is refused (a connection
/// the client closed may not be closed on the server's side yet), counting the refusals.
fn scrape_counting_refusals(addr: &str, refusals: &mut u64) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A refusal is a 503, or a reset when the refused request was still unread.
        if request(addr, "GET", "/livez", b"").is_ok_and(|r| r.status == 200) {
            // Served: there is room now; the scrape itself may still meet a late close.
            match request(addr, "GET", "/metrics", b"") {
                Ok(r) if r.status == 200 => return Scrape::of_text(r.text()),
                _ => {}
            }
        }
        *refusals += 1;
        assert!(Instant::now() < deadline, "no room for a scrape");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `walkv_connections` counts open connections; one over `--max-connections` is refused and
/// counted, exactly as often as clients saw a refusal.
#[test]
fn connections_are_counted_and_refusals_too() {
    let dir = TempDir::new("metrics-conns");
    let server = Server::start_with(&dir, &["--max-connections", "3"]);
    let mut refusals = 0;
    let mut idle: Vec<TcpStream> = Vec::new();
    let open_idle = |idle: &mut Vec<TcpStream>, refusals: &mut u64| loop {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        s.write_all(b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        if support::read_reply(&mut s, false).is_some_and(|r| r.status == 200) {
            idle.push(s);
            return;
        }
        *refusals += 1;
        std::thread::sleep(Duration::from_millis(20));
    };
    open_idle(&mut idle, &mut refusals);
    open_idle(&mut idle, &mut refusals);
    // Two idle connections and the scrape's own: 3 (closed connections may take a moment).
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape_counting_refusals(&server.addr, &mut refusals).get("walkv_connections") != 3.0 {
        assert!(Instant::now() < deadline, "walkv_connections never reached 3");
        std::thread::sleep(Duration::from_millis(20));
    }
    open_idle(&mut idle, &mut refusals); // at the cap now
    let mut refused = TcpStream::connect(&server.addr).unwrap();
    refused.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let _ = refused.read_to_end(&mut answer);
    assert!(answer.starts_with(b"HTTP/1.1 503"), "{}", String::from_utf8_lossy(&answer));
    refusals += 1;
    idle.pop();
    let scrape = scrape_counting_refusals(&server.addr, &mut refusals);
    assert_eq!(scrape.get("walkv_connections_refused_total"), refusals as f64);
    assert!(refusals >= 1);
}

/// With a token, `/metrics` needs it like everything but the probes (Prometheus sends it with
/// `authorization: credentials_file`).
#[test]
fn metrics_need_the_token() {
    let dir = TempDir::new("metrics-token");
    let token = dir.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let server =
        Server::start_with(&dir.join("data"), &["--auth-token-file", token.to_str().unwrap()]);
    assert_eq!(request(&server.addr, "GET", "/metrics", b"").unwrap().status, 401);
    let raw = support::send_raw(
        &server.addr,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&raw));
    assert_eq!(request(&server.addr, "POST", "/metrics", b"").unwrap().status, 401);
}
