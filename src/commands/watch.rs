//! `walkv watch [--prefix P] [--from S] [--format jsonl|resp]`: follows the change feed
//! (`GET /changes?follow`) and prints each change as it happens, and `walkv get --wait KEY`.
//!
//! `watch` resumes by itself: when the feed ends (the server restarts, a proxy times out, the
//! follower was cut for falling behind), it reconnects with `from=` the last seq it knows every
//! change through (a change's, or a heartbeat's), waiting 0.1 s, then up to 5 s, between tries,
//! for as long as it takes. So it prints every change once, in order, across restarts. It stops
//! only on a 410 (the history it needs was compacted away: start again from an export), a
//! refusal (401, 400), or when its output is closed.
//!
//! Formats: `jsonl` prints the feed's lines as they are (`{"seq":..,"op":"set",...}`); `resp`
//! prints Redis commands, `SET key value` and `DEL key`, for `redis-cli --pipe`, which keeps
//! a Redis a live copy of the store (started from `walkv export --format resp` and the seq it
//! says).

use super::remote::{auth_header, finish};
use crate::auth::TokenSource;
use crate::base64;
use crate::cli::{ExportFormat, exit};
use crate::client::{self, Call, ClientError, Stream};
use crate::json::{self, Value};
use std::io::Write;
use std::time::Duration;

/// How long a feed may be silent before the connection counts as dead: four heartbeats of the
/// default 15 s.
const SILENCE: Duration = Duration::from_secs(60);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// One line of the feed, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Set {
        seq: u64,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        seq: u64,
        key: Vec<u8>,
    },
    /// Every change through `seq` has been sent.
    Heartbeat {
        seq: u64,
    },
    /// The follower was cut; resume after `seq`.
    Cut {
        seq: u64,
        error: String,
    },
}

impl Event {
    /// Every change through this seq has been sent once this line is read.
    fn seq(&self) -> u64 {
        match self {
            Event::Set { seq, .. }
            | Event::Delete { seq, .. }
            | Event::Heartbeat { seq }
            | Event::Cut { seq, .. } => *seq,
        }
    }
}

/// Reads one line of the feed.
pub fn parse_line(line: &[u8]) -> Result<Event, String> {
    let Value::Object(members) = json::parse(line).map_err(|e| e.to_string())? else {
        return Err("a feed line is a JSON object".into());
    };
    let member = |name: &str| members.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let text = |name: &str| match member(name) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let seq = match member("seq") {
        Some(Value::Number(n)) => n.parse::<u64>().map_err(|_| format!("a bad seq: {n}"))?,
        _ => return Err("a feed line without a seq".into()),
    };
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        match (text(name), text(&format!("{name}_base64"))) {
            (Some(s), None) => Ok(s.into_bytes()),
            (None, Some(b)) => base64::decode(b.as_bytes()),
            _ => Err(format!("a feed line without one `{name}`")),
        }
    };
    match text("op").as_deref() {
        Some("set") => Ok(Event::Set { seq, key: bytes("key")?, value: bytes("value")? }),
        Some("delete") => Ok(Event::Delete { seq, key: bytes("key")? }),
        Some("heartbeat") => Ok(Event::Heartbeat { seq }),
        Some("cut") => Ok(Event::Cut { seq, error: text("error").unwrap_or_default() }),
        _ => Err("a feed line with an unknown op".into()),
    }
}

/// What to do after a feed ended.
enum Next {
    Resume,
    Exit(u8),
}

/// `walkv watch`.
pub fn watch(
    addr: &str,
    token: &TokenSource,
    prefix: &[u8],
    from: Option<u64>,
    format: ExportFormat,
) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let mut cursor = from;
    let mut retry = FIRST_RETRY;
    loop {
        let mut target = format!("/changes?follow&prefix={}", client::encode_key(prefix));
        if let Some(cursor) = cursor {
            target.push_str(&format!("&from={cursor}"));
        }
        let call = Call::new("GET", &target, b"");
        let outcome = match Stream::open(addr, auth.as_deref(), &call, SILENCE) {
            Ok(stream) => follow(stream, &mut cursor, format, &mut retry),
            Err(e) => {
                crate::log!("{e}; trying again");
                Next::Resume
            }
        };
        if let Next::Exit(code) = outcome {
            return code;
        }
        std::thread::sleep(retry);
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// Prints one feed until it ends; `cursor` moves with every line.
fn follow(
    mut stream: Stream,
    cursor: &mut Option<u64>,
    format: ExportFormat,
    retry: &mut Duration,
) -> Next {
    match stream.head.status {
        200 => {}
        503 => {
            crate::log!("the server is not ready (503); trying again");
            return Next::Resume;
        }
        _ => return Next::Exit(finish(Ok(stream.head), |_| exit::OK)),
    }
    if cursor.is_none() {
        *cursor = stream.head.header("x-walkv-seq").and_then(|s| s.parse().ok());
    }
    *retry = FIRST_RETRY;
    let mut out = std::io::stdout().lock();
    loop {
        let line = match stream.line() {
            Ok(Some(line)) => line,
            Ok(None) => {
                crate::log!("the feed ended after seq {}; resuming", cursor.unwrap_or(0));
                return Next::Resume;
            }
            Err(e) => {
                crate::log!("{e}; resuming after seq {}", cursor.unwrap_or(0));
                return Next::Resume;
            }
        };
        let event = match parse_line(&line) {
            Ok(event) => event,
            Err(e) => {
                crate::log!("{}; stopping", ClientError::BadResponse(e));
                return Next::Exit(exit::SERVER_ERROR);
            }
        };
        if let Event::Cut { error, .. } = &event {
            crate::log!("{error}; resuming");
        }
        if let Err(e) = print(&mut out, &event, &line, format) {
            crate::log!("cannot write to standard output: {e}; stopping");
            return Next::Exit(exit::FAILED);
        }
        *cursor = Some(event.seq());
    }
}

/// Prints one change in `format`; heartbeats and cuts print nothing.
fn print(
    out: &mut impl Write,
    event: &Event,
    line: &[u8],
    format: ExportFormat,
) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    match (event, format) {
        (Event::Heartbeat { .. } | Event::Cut { .. }, _) => return Ok(()),
        (_, ExportFormat::Jsonl) => {
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        (Event::Set { key, value, .. }, ExportFormat::Resp) => {
            super::export::resp_command(&mut bytes, &[b"SET", key, value]);
        }
        (Event::Delete { key, .. }, ExportFormat::Resp) => {
            super::export::resp_command(&mut bytes, &[b"DEL", key]);
        }
    }
    out.write_all(&bytes)?;
    out.flush()
}

/// `walkv get --wait KEY`: waits for the key's next write, then prints the value it leaves
/// (exit 1 if it was deleted). A read that waits at most 10 minutes is asked again until then.
pub fn get_wait(addr: &str, auth: Option<&str>, key: &[u8]) -> u8 {
    let target = format!("/v1/{}?raw", client::encode_key(key));
    let first = match client::request(addr, auth, "GET", &target, b"") {
        Ok(reply) if matches!(reply.status, 200 | 404) => reply,
        other => return finish(other, |_| exit::OK),
    };
    let Some(index) = first.header("x-walkv-seq").and_then(|s| s.parse::<u64>().ok()) else {
        return finish(Err(ClientError::BadResponse("no X-Walkv-Seq".into())), |_| exit::OK);
    };
    let existed = first.status == 200;
    let target = format!("{target}&index={index}&wait=10m");
    loop {
        let reply = client::request_waiting(
            addr,
            auth,
            "GET",
            &target,
            b"",
            crate::http::watch::MAX_WAIT + client::TIMEOUT,
        );
        let changed = match &reply {
            Ok(r) if r.status == 200 => etag(r).is_some_and(|tag| tag > index),
            Ok(r) if r.status == 404 => existed,
            _ => true, // an error: reported below
        };
        if changed {
            return finish(reply, |reply| {
                let mut out = std::io::stdout().lock();
                match out.write_all(&reply.body).and_then(|_| out.flush()) {
                    Ok(()) => exit::OK,
                    Err(_) => exit::FAILED,
                }
            });
        }
    }
}

fn etag(reply: &client::Reply) -> Option<u64> {
    reply.header("etag")?.trim_matches('"').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_kind_of_line() {
        let set = parse_line(br#"{"seq":3,"op":"set","key":"k","value_base64":"/w=="}"#);
        assert_eq!(set, Ok(Event::Set { seq: 3, key: b"k".to_vec(), value: vec![0xff] }));
        let delete = parse_line(br#"{"seq":4,"op":"delete","key_base64":"/w=="}"#);
        assert_eq!(delete, Ok(Event::Delete { seq: 4, key: vec![0xff] }));
        assert_eq!(parse_line(br#"{"op":"heartbeat","seq":9}"#), Ok(Event::Heartbeat { seq: 9 }));
        let cut = parse_line(br#"{"op":"cut","seq":9,"error":"behind"}"#).unwrap();
        assert_eq!(cut, Event::Cut { seq: 9, error: "behind".into() });
        for bad in [&b"[]"[..], b"{}", br#"{"seq":1,"op":"set","key":"k"}"#, br#"{"seq":1}"#, b"x"]
        {
            assert!(parse_line(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn prints_redis_commands() {
        let mut out = Vec::new();
        let set = Event::Set { seq: 1, key: b"k".to_vec(), value: b"v\r\n".to_vec() };
        print(&mut out, &set, b"", ExportFormat::Resp).unwrap();
        print(&mut out, &Event::Heartbeat { seq: 2 }, b"", ExportFormat::Resp).unwrap();
        print(&mut out, &Event::Delete { seq: 3, key: b"k".to_vec() }, b"", ExportFormat::Resp)
            .unwrap();
        assert_eq!(
            out,
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n"
        );
    }
}
