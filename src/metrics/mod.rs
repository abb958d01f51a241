//! The numbers `GET /metrics` exposes: counters and histograms that every thread updates, and
//! the Prometheus text they are rendered into ([`text`]).
//!
//! One process-wide [`METRICS`] holds them, as plain atomics: the connection threads count
//! requests and their durations as they write the answers, the log counts appends and fsyncs
//! (its writer and sync threads, [`crate::writer`]) and shows a write or fsync while it runs
//! ([`DiskCall`]), the accept thread counts connections, the main thread counts compactions. Recording is a relaxed atomic add (a
//! histogram: a search of a short table and two adds), with no lock and no allocation, so that
//! metrics cost the request path almost nothing (docs/operations.md gives the
//! measured cost). What the store knows (keys, bytes, sequence numbers) is not copied here but
//! read when a scrape asks ([`Gauges`]).
//!
//! Invariants: a counter only grows (from 0 at process start, as Prometheus expects of a
//! `_total`); a histogram's count is always the sum of its buckets; and no label ever holds a
//! key, a value or a client address (labels are a fixed list of methods, the status code and
//! the version), so a hostile client cannot grow the output.

pub mod histogram;
pub mod text;

use histogram::{Histogram, doubling};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The metrics of this process.
pub static METRICS: Metrics = Metrics::new();

/// The `method` label: the methods walkv serves, and `OTHER` for anything else (a request
/// whose head could not be read at all counts as `OTHER` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Put,
    Post,
    Delete,
    Other,
}

impl Method {
    pub const ALL: [Method; 6] =
        [Method::Get, Method::Head, Method::Put, Method::Post, Method::Delete, Method::Other];

    pub fn from_name(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            _ => Method::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Other => "OTHER",
        }
    }
}

/// Status codes counted one by one: 100 to 599 (walkv answers nothing else).
const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 500;

/// `walkv_http_request_duration_seconds`: 100 µs to 10 s, in microseconds.
static REQUEST_BOUNDS: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];
/// `walkv_wal_fsync_duration_seconds`: 1 ms doubling to 8.192 s, as etcd's, in microseconds.
static FSYNC_BOUNDS: [u64; 14] = doubling(1_000);
/// `walkv_group_commit_batch_size`: 1 to 4096 records per fsync.
static BATCH_BOUNDS: [u64; 13] = doubling(1);
/// `walkv_compaction_duration_seconds`: 10 ms to 10 min, in microseconds.
static COMPACTION_BOUNDS: [u64; 12] = [
    10_000,
    50_000,
    100_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    180_000_000,
    600_000_000,
];

/// Every counter and histogram of the process. Build one with [`Metrics::new`] (tests build
/// their own; the server uses [`METRICS`]).
pub struct Metrics {
    requests: [[AtomicU64; STATUSES]; Method::ALL.len()],
    request_duration: Histogram,
    wal_appends: AtomicU64,
    wal_append_bytes: AtomicU64,
    wal_fsyncs: AtomicU64,
    fsync_duration: Histogram,
    /// Microseconds since the Unix epoch at the end of the last fsync; 0: none yet.
    last_fsync_micros: AtomicU64,
    /// Microseconds since the Unix epoch when the write, and the fsync, of the log running now
    /// began; 0: none runs.
    write_began_micros: AtomicU64,
    fsync_began_micros: AtomicU64,
    batch_size: Histogram,
    connections: AtomicU64,
    connections_refused: AtomicU64,
    compactions: AtomicU64,
    compaction_duration: Histogram,
    request_log_dropped: AtomicU64,
    /// Microseconds since the Unix epoch when the server started; 0: not started.
    started_micros: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub const fn new() -> Metrics {
        Metrics {
            requests: [const { [const { AtomicU64::new(0) }; STATUSES] }; Method::ALL.len()],
            request_duration: Histogram::new(&REQUEST_BOUNDS, 1e6),
            wal_appends: AtomicU64::new(0),
            wal_append_bytes: AtomicU64::new(0),
            wal_fsyncs: AtomicU64::new(0),
            fsync_duration: Histogram::new(&FSYNC_BOUNDS, 1e6),
            last_fsync_micros: AtomicU64::new(0),
            write_began_micros: AtomicU64::new(0),
            fsync_began_micros: AtomicU64::new(0),
            batch_size: Histogram::new(&BATCH_BOUNDS, 1.0),
            connections: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            compaction_duration: Histogram::new(&COMPACTION_BOUNDS, 1e6),
            request_log_dropped: AtomicU64::new(0),
            started_micros: AtomicU64::new(0),
        }
    }

    /// The server starts now (`process_start_time_seconds`).
    pub fn started(&self) {
        self.started_micros.store(now_micros(), Ordering::Relaxed);
    }

    /// An answer was handed back `took` after its request arrived.
    pub fn answered(&self, method: Method, status: u16, took: Duration) {
        let at = usize::from(status.saturating_sub(FIRST_STATUS)).min(STATUSES - 1);
        self.requests[method as usize][at].fetch_add(1, Ordering::Relaxed);
        self.request_duration.observe_duration(took);
    }

    /// `records` SET and DELETE records, `bytes` bytes in all, reached the log file.
    pub fn appended(&self, records: u64, bytes: u64) {
        self.wal_appends.fetch_add(records, Ordering::Relaxed);
        self.wal_append_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A write or an fsync of the log begins; it is shown as running until the guard is
    /// dropped.
    pub fn disk_call(&self, call: DiskCall) -> Running<'_> {
        self.began(call).store(now_micros().max(1), Ordering::Relaxed);
        Running(self, call)
    }

    /// When the `call` running now began (microseconds since the Unix epoch), if one runs.
    pub fn running_since(&self, call: DiskCall) -> Option<u64> {
        Some(self.began(call).load(Ordering::Relaxed)).filter(|&m| m > 0)
    }

    /// How long the `call` running now has run, if one runs.
    pub fn running_for(&self, call: DiskCall) -> Option<Duration> {
        let began = self.running_since(call)?;
        Some(Duration::from_micros(now_micros().saturating_sub(began)))
    }

    fn began(&self, call: DiskCall) -> &AtomicU64 {
        match call {
            DiskCall::Write => &self.write_began_micros,
            DiskCall::Fsync => &self.fsync_began_micros,
        }
    }

    /// An fsync of the log succeeded after `took`, making `records` more records durable.
    pub fn fsynced(&self, took: Duration, records: u64) {
        self.wal_fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_duration.observe_duration(took);
        self.last_fsync_micros.store(now_micros(), Ordering::Relaxed);
        if records > 0 {
            self.batch_size.observe(records);
        }
    }

    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Pairs with one earlier [`Metrics::connection_opened`].
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection was closed without being served (over `--max-connections`, or no thread).
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn compacted(&self, took: Duration) {
        self.compactions.fetch_add(1, Ordering::Relaxed);
        self.compaction_duration.observe_duration(took);
    }

    /// The request log's queue was full: one line was dropped rather than wait for stderr.
    pub fn request_log_dropped(&self) {
        self.request_log_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn request_log_dropped_total(&self) -> u64 {
        self.request_log_dropped.load(Ordering::Relaxed)
    }
}

/// The calls on the log's file that a slow or frozen disk can hold up, shown while they run
/// (`/status`, `/metrics`, and a line in the server's log once one has run for a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskCall {
    /// `write(2)` of a batch of records.
    Write,
    /// `fsync`/`fdatasync` of the log.
    Fsync,
}

impl DiskCall {
    pub const ALL: [DiskCall; 2] = [DiskCall::Write, DiskCall::Fsync];

    /// Its name in messages and in `/status`.
    pub fn name(self) -> &'static str {
        match self {
            DiskCall::Write => "write",
            DiskCall::Fsync => "fsync",
        }
    }
}

/// Shows a call on the log's file as running while it lives (see [`Metrics::disk_call`]).
pub struct Running<'a>(&'a Metrics, DiskCall);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.began(self.1).store(0, Ordering::Relaxed);
    }
}

/// What the store and the serving loop know, read at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    pub keys: u64,
    pub live_bytes: u64,
    pub disk_bytes: u64,
    pub last_seq: u64,
    pub synced_seq: u64,
    /// What `/readyz` says: the log takes writes and no stop has begun.
    pub ready: bool,
    /// Writes given to the log's writer and not yet in the map, and their records' bytes.
    pub queued_writes: u64,
    pub queued_bytes: u64,
    /// Writes parked until that queue has room.
    pub waiting_writes: u64,
    /// Acknowledgements wait for an fsync (`interval` mode, a slow disk).
    pub acks_wait_for_fsync: bool,
    /// The data's memory as walkv counts it, and `--max-memory` (0: none).
    pub memory_bytes: u64,
    pub max_memory_bytes: u64,
    /// Followers of the change feed connected now, and those cut since start for falling
    /// behind (see [`crate::feed`]).
    pub followers: u64,
    pub followers_cut: u64,
    /// Blocking reads (`?index=`) waiting for their key to change.
    pub watching_reads: u64,
    /// Keys with a TTL in the map, and keys the sweep expired since start.
    pub expiring_keys: u64,
    pub expired_keys: u64,
}

fn now_micros() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}
