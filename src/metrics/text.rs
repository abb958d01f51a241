//! The Prometheus text exposition format, version 0.0.4, written by hand (the dependency
//! budget has no room for a client library), and what `GET /metrics` renders with it.
//!
//! The rules hand-written exporters most often break, and how this writer keeps them: every
//! family gets exactly one `# HELP` and one `# TYPE` line, written by [`Exposition::family`]
//! before its samples, and its samples follow without interruption; a histogram's buckets are
//! cumulative, in ascending `le` order, end with `le="+Inf"` equal to `_count`, and come with
//! `_sum` and `_count` ([`Exposition::histogram`]); label values escape `\`, `"` and newline;
//! every line, the last included, ends in `\n`; counters end in `_total` and nothing else does.
//! No sample carries a timestamp. `tests/metrics.rs` checks the output with `promtool` and with
//! these rules.

use super::histogram::Snapshot;
use super::{DiskCall, Gauges, METRICS, Method, Metrics};
use std::sync::atomic::Ordering;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A text exposition being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines. `kind` is `counter`, `gauge` or
    /// `histogram`; `help` is fixed text (no newline or backslash, which HELP would escape).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        for part in ["# HELP ", name, " ", help, "\n# TYPE ", name, " ", kind, "\n"] {
            self.out.push_str(part);
        }
    }

    /// One sample line: `name{label="value",...} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                escape_label_value(&mut self.out, text);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A histogram family: cumulative `_bucket`s, `+Inf`, `_sum`, `_count`.
    pub fn histogram(&mut self, name: &str, help: &str, snapshot: &Snapshot) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (bound, count) in &snapshot.buckets {
            self.sample(&bucket, &[("le", &format_value(*bound))], *count as f64);
        }
        self.sample(&bucket, &[("le", "+Inf")], snapshot.count as f64);
        self.sample(&format!("{name}_sum"), &[], snapshot.sum);
        self.sample(&format!("{name}_count"), &[], snapshot.count as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Label values escape backslash, double quote and newline, and nothing else.
fn escape_label_value(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A sample value as the format's Go float: shortest decimal that reads back the same, or
/// `+Inf`, `-Inf`, `NaN`.
fn push_value(out: &mut String, value: f64) {
    out.push_str(&format_value(value));
}

fn format_value(value: f64) -> String {
    match value {
        v if v.is_nan() => "NaN".to_string(),
        v if v == f64::INFINITY => "+Inf".to_string(),
        v if v == f64::NEG_INFINITY => "-Inf".to_string(),
        v => format!("{v}"),
    }
}

/// The whole `GET /metrics` answer body, from [`METRICS`] and what the store says now.
pub fn render(gauges: &Gauges) -> String {
    render_from(&METRICS, gauges, &Process::read())
}

/// What `/proc/self` says about the process; a field it could not read is left out.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Process {
    pub resident_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

impl Process {
    /// Reads `/proc/self/status` (VmRSS), `/proc/self/fd` and `/proc/self/limits`.
    pub fn read() -> Process {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        Process {
            resident_bytes: field_kib(&status, "VmRSS:").and_then(|k| k.checked_mul(1024)),
            // The directory being listed holds one descriptor itself, which is not counted.
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| (entries.count() as u64).saturating_sub(1)),
            max_fds: limits
                .lines()
                .find_map(|l| l.strip_prefix("Max open files"))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok()),
        }
    }
}

/// The number after `name` on its line of `/proc/self/status` (in kB there).
fn field_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(name))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Renders `metrics`, `gauges` and `process` (separate from [`render`] so tests can pass their
/// own).
pub fn render_from(metrics: &Metrics, gauges: &Gauges, process: &Process) -> String {
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed) as f64;
    let mut e = Exposition::default();
    e.family("walkv_build_info", "gauge", "Always 1; the version label says which walkv runs.");
    e.sample("walkv_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    e.single(
        "walkv_ready",
        "gauge",
        "1 when GET /readyz says ready (the log takes writes, no stop has begun), else 0.",
        f64::from(u8::from(gauges.ready)),
    );
    http_requests(&mut e, metrics);
    e.histogram(
        "walkv_http_request_duration_seconds",
        "Time from a request's arrival to its answer being handed back, fsync waits included.",
        &metrics.request_duration.snapshot(),
    );
    e.single("walkv_keys", "gauge", "Keys in the map.", gauges.keys as f64);
    e.single(
        "walkv_live_bytes",
        "gauge",
        "Bytes the live keys and values take in a snapshot (what compaction keeps).",
        gauges.live_bytes as f64,
    );
    e.single(
        "walkv_expiring_keys",
        "gauge",
        "Keys in the map that have a TTL (some may have expired and wait for the sweep).",
        gauges.expiring_keys as f64,
    );
    e.single(
        "walkv_expired_keys_total",
        "counter",
        "Keys the sweep removed because their TTL had passed (each an EXPIRE record).",
        gauges.expired_keys as f64,
    );
    e.single(
        "walkv_disk_bytes",
        "gauge",
        "Bytes of every file in the data directory.",
        gauges.disk_bytes as f64,
    );
    e.single(
        "walkv_wal_appends_total",
        "counter",
        "Records of changes (SET, DELETE, EXPIRE, TXN) appended to the log.",
        load(&metrics.wal_appends),
    );
    e.single(
        "walkv_wal_append_bytes_total",
        "counter",
        "Bytes of the SET and DELETE records appended to the log.",
        load(&metrics.wal_append_bytes),
    );
    e.single(
        "walkv_wal_fsyncs_total",
        "counter",
        "Successful fsyncs of the log file.",
        load(&metrics.wal_fsyncs),
    );
    e.histogram(
        "walkv_wal_fsync_duration_seconds",
        "Time one fsync of the log took (flush included).",
        &metrics.fsync_duration.snapshot(),
    );
    e.single(
        "walkv_wal_last_seq",
        "gauge",
        "Sequence number of the last record written to the log.",
        gauges.last_seq as f64,
    );
    e.single(
        "walkv_wal_synced_seq",
        "gauge",
        "Sequence number of the last record known to be on stable storage.",
        gauges.synced_seq as f64,
    );
    e.single(
        "walkv_wal_last_fsync_timestamp_seconds",
        "gauge",
        "Unix time the last fsync of the log ended; 0 before the first.",
        load(&metrics.last_fsync_micros) / 1e6,
    );
    e.single(
        "walkv_wal_write_running_seconds",
        "gauge",
        "How long the write of records to the log running now has run; 0 when none runs.",
        metrics.running_for(DiskCall::Write).map_or(0.0, |d| d.as_secs_f64()),
    );
    e.single(
        "walkv_wal_fsync_running_seconds",
        "gauge",
        "How long the fsync of the log running now has run; 0 when none runs.",
        metrics.running_for(DiskCall::Fsync).map_or(0.0, |d| d.as_secs_f64()),
    );
    e.single(
        "walkv_wal_queued_writes",
        "gauge",
        "Writes handed to the log's writer and not yet durable as the sync mode promises.",
        gauges.queued_writes as f64,
    );
    e.single(
        "walkv_wal_queued_bytes",
        "gauge",
        "Bytes of the records of those writes (bounded by --max-write-queue).",
        gauges.queued_bytes as f64,
    );
    e.single(
        "walkv_waiting_writes",
        "gauge",
        "Writes waiting for room in that queue before they are handled.",
        gauges.waiting_writes as f64,
    );
    e.single(
        "walkv_watching_reads",
        "gauge",
        "Blocking reads (GET /v1/{key}?index=N) waiting for their key to change.",
        gauges.watching_reads as f64,
    );
    e.single(
        "walkv_feed_followers",
        "gauge",
        "Readers of GET /changes connected now (each is a connection, under --max-connections).",
        gauges.followers as f64,
    );
    e.single(
        "walkv_feed_followers_cut_total",
        "counter",
        "Followers of the change feed cut for falling more than --follower-backlog behind.",
        gauges.followers_cut as f64,
    );
    e.single(
        "walkv_memory_bytes",
        "gauge",
        "Memory the data takes as walkv counts it: keys, values, the map's nodes, writes on \
         their way to the log.",
        gauges.memory_bytes as f64,
    );
    e.single(
        "walkv_memory_limit_bytes",
        "gauge",
        "--max-memory: writes that would take walkv_memory_bytes past it get 507; 0: no limit.",
        gauges.max_memory_bytes as f64,
    );
    e.single(
        "walkv_acks_wait_for_fsync",
        "gauge",
        "1 while acknowledgements wait for an fsync: in interval mode, the oldest acknowledged \
         write not yet fsynced is older than twice --sync-interval.",
        f64::from(u8::from(gauges.acks_wait_for_fsync)),
    );
    e.histogram(
        "walkv_group_commit_batch_size",
        "Records made durable by one fsync (fsyncs that made none are not observed).",
        &metrics.batch_size.snapshot(),
    );
    e.single("walkv_connections", "gauge", "Client connections open now.", {
        load(&metrics.connections)
    });
    e.single(
        "walkv_connections_refused_total",
        "counter",
        "Connections closed unserved: over --max-connections, or no thread could start.",
        load(&metrics.connections_refused),
    );
    e.single(
        "walkv_compactions_total",
        "counter",
        "Compactions completed.",
        load(&metrics.compactions),
    );
    e.histogram(
        "walkv_compaction_duration_seconds",
        "Time a completed compaction took.",
        &metrics.compaction_duration.snapshot(),
    );
    e.single(
        "walkv_request_log_dropped_total",
        "counter",
        "Request log lines dropped because standard error did not keep up.",
        load(&metrics.request_log_dropped),
    );
    e.single(
        "process_start_time_seconds",
        "gauge",
        "Unix time the server started.",
        load(&metrics.started_micros) / 1e6,
    );
    let optional = [
        ("process_resident_memory_bytes", "Resident memory size in bytes.", process.resident_bytes),
        ("process_open_fds", "Open file descriptors.", process.open_fds),
        ("process_max_fds", "The limit on open file descriptors.", process.max_fds),
    ];
    for (name, help, value) in optional {
        if let Some(value) = value {
            e.single(name, "gauge", help, value as f64);
        }
    }
    e.finish()
}

/// `walkv_http_requests_total{method,code}`: one sample per pair seen so far.
fn http_requests(e: &mut Exposition, metrics: &Metrics) {
    let name = "walkv_http_requests_total";
    e.family(name, "counter", "Requests answered, by method and status code.");
    for method in Method::ALL {
        for (at, counter) in metrics.requests[method as usize].iter().enumerate() {
            let count = counter.load(Ordering::Relaxed);
            if count > 0 {
                let code = (usize::from(super::FIRST_STATUS) + at).to_string();
                e.sample(name, &[("method", method.label()), ("code", &code)], count as f64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The families of one rendering, in order: (name, TYPE, sample lines).
    fn families(text: &str) -> Vec<(String, String, Vec<String>)> {
        let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                out.push((name.to_string(), kind.to_string(), Vec::new()));
            } else if !line.starts_with('#') {
                out.last_mut().expect("a sample before any TYPE").2.push(line.to_string());
            }
        }
        out
    }

    fn value(line: &str) -> f64 {
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    }

    /// Every rule of the format that promtool does not check is kept: one HELP and TYPE per
    /// family, cumulative buckets ending in +Inf == _count, `_total` only on counters, the
    /// trailing newline, labels escaped.
    #[test]
    fn the_format_rules_hold() {
        let m = Metrics::new();
        m.answered(Method::Get, 200, Duration::from_micros(80));
        m.answered(Method::Get, 200, Duration::from_millis(3));
        m.answered(Method::Other, 431, Duration::ZERO);
        m.fsynced(Duration::from_millis(5), 3);
        m.fsynced(Duration::from_millis(20), 0);
        m.appended(1, 40);
        let gauges = Gauges { keys: 2, ready: true, ..Gauges::default() };
        let process = Process { resident_bytes: Some(4096), open_fds: None, max_fds: Some(1024) };
        let text = render_from(&m, &gauges, &process);
        assert!(text.ends_with('\n') && !text.ends_with("\n\n"));
        let fams = families(&text);
        let mut names: Vec<_> = fams.iter().map(|f| f.0.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), fams.len(), "a family appears twice");
        assert_eq!(text.matches("# HELP ").count(), fams.len());
        for (name, kind, samples) in &fams {
            assert_eq!(name.ends_with("_total"), kind == "counter", "{name} is a {kind}");
            for s in samples {
                assert!(s.starts_with(name.as_str()), "{s} outside its family {name}");
            }
            if kind == "histogram" {
                let buckets: Vec<f64> =
                    samples.iter().filter(|s| s.contains("_bucket{")).map(|s| value(s)).collect();
                assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{name} not cumulative");
                let inf = samples.iter().find(|s| s.contains("le=\"+Inf\"")).unwrap();
                let count =
                    samples.iter().find(|s| s.starts_with(&format!("{name}_count"))).unwrap();
                assert_eq!(value(inf), value(count), "{name}: +Inf must equal _count");
                assert!(samples.iter().any(|s| s.starts_with(&format!("{name}_sum "))));
            }
        }
        assert!(text.contains("walkv_http_requests_total{method=\"GET\",code=\"200\"} 2\n"));
        assert!(text.contains("walkv_http_requests_total{method=\"OTHER\",code=\"431\"} 1\n"));
        assert!(text.contains("walkv_http_request_duration_seconds_bucket{le=\"0.0001\"} 2\n"));
        assert!(text.contains("walkv_http_request_duration_seconds_count 3\n"));
        assert!(text.contains("walkv_wal_fsyncs_total 2\n"));
        assert!(text.contains("walkv_group_commit_batch_size_count 1\n"));
        assert!(text.contains("walkv_group_commit_batch_size_sum 3\n"));
        assert!(text.contains("walkv_wal_fsync_duration_seconds_bucket{le=\"0.008\"} 1\n"));
        assert!(text.contains("walkv_wal_fsync_duration_seconds_bucket{le=\"8.192\"} 2\n"));
        assert!(text.contains("walkv_keys 2\n# HELP walkv_live_bytes "));
        assert!(text.contains("process_resident_memory_bytes 4096\n"));
        assert!(!text.contains("process_open_fds"), "an unreadable value is left out");
    }

    #[test]
    fn values_and_labels_are_written_as_the_format_wants() {
        let mut e = Exposition::default();
        e.family("x", "gauge", "help");
        e.sample("x", &[("a", "back\\slash \"quoted\"\nline")], f64::INFINITY);
        e.sample("x", &[("a", "b")], 0.25);
        e.sample("x", &[("a", "c")], 1e21);
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP x help\n# TYPE x gauge\nx{a=\"back\\\\slash \\\"quoted\\\"\\nline\"} +Inf\n\
             x{a=\"b\"} 0.25\nx{a=\"c\"} 1000000000000000000000\n"
        );
    }

    /// `/proc/self` is readable here (Linux), and the numbers are plausible.
    #[test]
    fn the_process_is_read_from_proc() {
        let p = Process::read();
        assert!(p.resident_bytes.is_some_and(|b| b > 100_000), "{p:?}");
        assert!(p.open_fds.is_some_and(|n| (3..100_000).contains(&n)), "{p:?}");
        assert!(p.max_fds.is_some_and(|n| n >= 64), "{p:?}");
    }
}
