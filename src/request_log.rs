//! The request log (`walkv serve --log-requests`): one line per answered request on standard
//! error, in logfmt or as JSON, written by a thread of its own so that a slow or blocked stderr
//! never holds up a request.
//!
//! ```text
//! time=2026-12-03T06:01:02.345Z id=5f3a9c01-00000007 method=GET path=/v1/greeting status=200 in=0 out=17 dur_ms=0.112 conn=3
//! {"time":"2026-12-03T06:01:02.345Z","id":"5f3a9c01-00000007","method":"GET","path":"/v1/greeting","status":200,"in":0,"out":17,"dur_ms":0.112,"conn":3}
//! ```
//!
//! Fields: `time`, when the answer was written (RFC 3339, UTC, milliseconds); `id`, the request
//! id (the client's `X-Request-ID` if it is sane, [`is_sane_id`], else one made here,
//! [`new_id`]; either way the answer echoes it); `method` and `path` as the request line had
//! them (the path still percent-encoded, with its query); `status`; `in` and `out`, the bytes
//! of the request and answer bodies; `dur_ms`, the same time `walkv_http_request_duration_seconds`
//! measures; `conn`, the connection's number in this process (1, 2, ...). A path over
//! [`MAX_PATH`] bytes is cut there and the line gets `trunc=1` (`"trunc":true`). A request whose
//! head could not be read (a 431, a 408) has `method=- path=-`. Values are never logged.
//!
//! **No client byte can forge a line or a field.** In logfmt a value is written bare only if
//! every byte is visible ASCII other than `=` and `"`; otherwise it is quoted, with JSON's string
//! escapes (`\"`, `\\`, `\n`, `\u00XX` for every control character, DEL and C1 included), as
//! go-logfmt does. JSON lines use the same escapes, so both formats carry the same text.
//!
//! **Writing never blocks a request.** The thread that answers a request (the main thread, for
//! most) hands its [`Record`] to a bounded queue of [`QUEUE_LINES`]; the writer thread formats
//! the lines and drains them into stderr, so that the main thread pays a queue push, not a
//! formatting (formatting there took logfmt from 0.85–0.89× to 0.65× the throughput without the
//! log on PUT at 50 connections). When stderr
//! does not keep up and the queue is full, a line is dropped and counted
//! (`walkv_request_log_dropped_total`), and the writer says how many it lost once it catches up.

use crate::metrics::METRICS;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lines waiting for the writer at most; more are dropped and counted.
pub const QUEUE_LINES: usize = 4096;
/// The longest path written whole; a longer one is cut (at a character boundary).
pub const MAX_PATH: usize = 256;
/// The longest client `X-Request-ID` taken as it is.
pub const MAX_ID: usize = 64;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Logfmt,
    Json,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "logfmt" => Some(Format::Logfmt),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// The running request log: a queue into its writer thread.
pub struct RequestLog {
    records: SyncSender<Record>,
}

impl RequestLog {
    /// Starts the writer thread.
    pub fn start(format: Format) -> io::Result<RequestLog> {
        let (records, queue) = mpsc::sync_channel(QUEUE_LINES);
        thread::Builder::new()
            .name("walkv-request-log".into())
            .spawn(move || write_lines(&queue, format))?;
        Ok(RequestLog { records })
    }

    /// Queues `record` for the writer; drops it (and counts that) if the queue is full.
    pub fn submit(&self, record: Record) {
        match self.records.try_send(record) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => METRICS.request_log_dropped(),
        }
    }
}

/// The writer thread: writes what is queued, flushing whenever the queue is empty.
fn write_lines(queue: &Receiver<Record>, format: Format) {
    let mut out = BufWriter::with_capacity(64 << 10, io::stderr());
    let mut reported = 0;
    while let Ok(record) = queue.recv() {
        // A failing stderr (closed, broken pipe) loses lines; it must not stop the server.
        let _ = out.write_all(record.line(format).as_bytes());
        for record in queue.try_iter() {
            let _ = out.write_all(record.line(format).as_bytes());
        }
        let dropped = METRICS.request_log_dropped_total();
        if dropped > reported {
            let _ = writeln!(
                out,
                "walkv: the request log dropped {} line(s): standard error did not keep up",
                dropped - reported
            );
            reported = dropped;
        }
        let _ = out.flush();
    }
}

/// One answered request, on its way to the writer thread, which formats it ([`Record::line`]).
#[derive(Debug)]
pub struct Record {
    pub time: SystemTime,
    pub id: Box<str>,
    /// `-` when the head could not be read.
    pub method: String,
    /// At most [`MAX_PATH`] bytes (see [`cut`]); `-` when the head could not be read.
    pub path: String,
    /// The path was cut.
    pub trunc: bool,
    pub status: u16,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub took: Duration,
    pub conn: u64,
}

impl Record {
    /// The line, newline included.
    pub fn line(&self, format: Format) -> String {
        let time = rfc3339_utc(self.time);
        let dur_ms = format!("{:.3}", self.took.as_secs_f64() * 1000.0);
        let (status, in_bytes, out_bytes, conn) = (
            self.status.to_string(),
            self.in_bytes.to_string(),
            self.out_bytes.to_string(),
            self.conn.to_string(),
        );
        // (name, value, is text): text is quoted in JSON, and in logfmt when it must be.
        let mut fields = vec![
            ("time", time.as_str(), true),
            ("id", &*self.id, true),
            ("method", self.method.as_str(), true),
            ("path", self.path.as_str(), true),
            ("status", status.as_str(), false),
            ("in", in_bytes.as_str(), false),
            ("out", out_bytes.as_str(), false),
            ("dur_ms", dur_ms.as_str(), false),
            ("conn", conn.as_str(), false),
        ];
        let mut out = String::with_capacity(160 + self.path.len());
        match format {
            Format::Logfmt => {
                if self.trunc {
                    fields.push(("trunc", "1", false));
                }
                for (i, (name, value, _)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(name);
                    out.push('=');
                    push_logfmt_value(&mut out, value);
                }
            }
            Format::Json => {
                if self.trunc {
                    fields.push(("trunc", "true", false));
                }
                out.push('{');
                for (i, (name, value, text)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    out.push_str(name);
                    out.push_str("\":");
                    if *text {
                        crate::json::write_string_for_terminal(&mut out, value);
                    } else {
                        out.push_str(value);
                    }
                }
                out.push('}');
            }
        }
        out.push('\n');
        out
    }
}

/// `text` bare if it is visible ASCII other than `=` and `"` (and not empty), else quoted.
fn push_logfmt_value(out: &mut String, text: &str) {
    let bare =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic() && b != b'=' && b != b'"');
    if bare {
        out.push_str(text);
    } else {
        crate::json::write_string_for_terminal(out, text);
    }
}

/// `text` cut to at most [`MAX_PATH`] bytes at a character boundary, and whether it was cut.
pub fn cut(text: &str) -> (&str, bool) {
    if text.len() <= MAX_PATH {
        return (text, false);
    }
    let mut end = MAX_PATH;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// A client's `X-Request-ID` is used (and echoed) if it is 1 to [`MAX_ID`] bytes of visible
/// ASCII; anything else is replaced by [`new_id`].
pub fn is_sane_id(id: &str) -> bool {
    (1..=MAX_ID).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A request id unique in this process and unlikely to repeat across restarts:
/// `<8 hex digits fixed at start>-<8 or more hex digits counting up>`.
pub fn new_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = *PREFIX.get_or_init(|| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        // A multiplicative hash mixes the start time and the pid into 32 bits.
        let seed = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
        (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
    });
    format!("{prefix:08x}-{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `t` as RFC 3339 in UTC with milliseconds: `2026-12-03T06:01:02.345Z` (a time before 1970
/// is written as the epoch).
pub fn rfc3339_utc(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// (year, month, day) of the `days`-th day after 1970-01-01, in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;

    fn entry(path: &str) -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_millis(1_796_277_662_345),
            id: "abc".into(),
            method: "GET".into(),
            path: path.into(),
            trunc: false,
            status: 200,
            in_bytes: 0,
            out_bytes: 17,
            took: Duration::from_micros(112),
            conn: 3,
        }
    }

    #[test]
    fn lines_look_as_documented() {
        let e = entry("/v1/greeting");
        assert_eq!(
            e.line(Format::Logfmt),
            "time=2026-12-03T06:01:02.345Z id=abc method=GET path=/v1/greeting status=200 in=0 \
             out=17 dur_ms=0.112 conn=3\n"
        );
        assert_eq!(
            e.line(Format::Json),
            "{\"time\":\"2026-12-03T06:01:02.345Z\",\"id\":\"abc\",\"method\":\"GET\",\
             \"path\":\"/v1/greeting\",\"status\":200,\"in\":0,\"out\":17,\"dur_ms\":0.112,\
             \"conn\":3}\n"
        );
    }

    /// The logfmt fields of a line, read back with the quoting rules (a tiny logfmt parser).
    fn logfmt_fields(line: &str) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        let mut rest = line.strip_suffix('\n').expect("one line");
        while !rest.is_empty() {
            let (name, after) = rest.split_once('=').expect("name=value");
            let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
                let mut end = 0;
                let bytes = quoted.as_bytes();
                while bytes[end] != b'"' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                let json = format!("\"{}\"", &quoted[..end]);
                let value: String = serde_json::from_str(&json).expect("JSON escapes");
                (value, &quoted[end + 1..])
            } else {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            };
            fields.push((name.to_string(), value));
            rest = after.strip_prefix(' ').unwrap_or(after);
            assert!(!rest.starts_with(' '));
        }
        fields
    }

    /// Whatever the path holds, each format gives exactly one line whose fields read back as
    /// the same nine (or ten) names and the same path: nothing forges a line or a field.
    #[test]
    fn no_path_forges_a_line_or_a_field() {
        let mut rng = Rng::new(crate::testutil::knob("WALKV_FUZZ_SEED", 17));
        let nasty = [
            "\r\n",
            "\n",
            "=",
            "\"",
            " ",
            "\\",
            "\u{1b}[2J",
            "\0",
            "\u{7f}",
            "\u{85}",
            "é",
            "status=500",
            "\" id=x",
            "%0d%0a",
        ];
        for _ in 0..crate::testutil::knob("WALKV_FUZZ_ITERS", 20_000) / 10 {
            let path: String = (0..rng.below(8)).map(|_| nasty[rng.below(nasty.len())]).collect();
            let e = entry(&path);
            let line = e.line(Format::Logfmt);
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            assert!(!line.bytes().any(|b| b < 0x20 && b != b'\n' || b == 0x7f), "{line:?}");
            let fields = logfmt_fields(&line);
            let names: Vec<_> = fields.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(
                names,
                ["time", "id", "method", "path", "status", "in", "out", "dur_ms", "conn"]
            );
            assert_eq!(fields[3].1, path);
            let json = e.line(Format::Json);
            assert_eq!(json.matches('\n').count(), 1);
            let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
            assert_eq!(v["path"], serde_json::Value::String(path.clone()));
            assert_eq!(v.as_object().unwrap().len(), 9);
        }
    }

    #[test]
    fn long_paths_are_cut_at_a_character_boundary() {
        let long = format!("/v1/{}", "é".repeat(200));
        let (path, trunc) = cut(&long);
        assert!(trunc && path.len() <= MAX_PATH && long.starts_with(path));
        assert_eq!(cut("/v1/k"), ("/v1/k", false));
        let mut e = entry(path);
        e.trunc = true;
        assert!(e.line(Format::Logfmt).ends_with(" conn=3 trunc=1\n"));
        assert!(e.line(Format::Json).ends_with(",\"conn\":3,\"trunc\":true}\n"));
    }

    #[test]
    fn request_ids() {
        assert!(is_sane_id("abc-123_XYZ:/=\"!~"));
        for bad in ["", "a b", "tab\t", "é", &"x".repeat(65)] {
            assert!(!is_sane_id(bad), "{bad:?}");
        }
        assert!(is_sane_id(&"x".repeat(64)));
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(is_sane_id(&a) && a.len() == 17 && a.as_bytes()[8] == b'-', "{a}");
    }

    /// Against `date -u`, the well-known oracle, for fixed edge days and random times up to
    /// the year 9999.
    #[test]
    fn times_match_date() {
        let mut rng = Rng::new(5);
        let mut secs: Vec<u64> = vec![0, 951_782_400, 951_868_799, 4_102_444_800, 1_796_277_662];
        secs.extend((0..300).map(|_| rng.below(253_402_300_799) as u64));
        let input: String = secs.iter().map(|s| format!("@{s}\n")).collect();
        let mut date = std::process::Command::new("date")
            .args(["-u", "-f", "-", "+%Y-%m-%dT%H:%M:%S.000Z"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("date runs");
        date.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let output = date.wait_with_output().unwrap();
        let expected = String::from_utf8(output.stdout).unwrap();
        for (s, want) in secs.iter().zip(expected.lines()) {
            assert_eq!(rfc3339_utc(UNIX_EPOCH + Duration::from_secs(*s)), want, "@{s}");
        }
        assert_eq!(expected.lines().count(), secs.len());
        let t = UNIX_EPOCH + Duration::from_millis(1_796_277_662_345);
        assert_eq!(rfc3339_utc(t), "2026-12-03T06:01:02.345Z");
    }
}
