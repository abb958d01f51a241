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

use super::answer::{auth_header, finish};
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
    /// A SET, DELETE or expiry, or a transaction's changes (`txn`), all under `seq`.
    Changes { seq: u64, txn: bool, changes: Vec<Change> },
    /// Every change through `seq` has been sent.
    Heartbeat { seq: u64 },
    /// The follower was cut; resume after `seq`.
    Cut { seq: u64, error: String },
}

/// One key's change. An expiry is a `Delete` here: the key is gone either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `expires`: milliseconds since the Unix epoch.
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
        expires: Option<u64>,
    },
    Delete {
        key: Vec<u8>,
    },
}

impl Event {
    /// Every change through this seq has been sent once this line is read.
    fn seq(&self) -> u64 {
        match self {
            Event::Changes { seq, .. } | Event::Heartbeat { seq } | Event::Cut { seq, .. } => *seq,
        }
    }
}

/// Reads one line of the feed.
pub fn parse_line(line: &[u8]) -> Result<Event, String> {
    let Value::Object(members) = json::parse(line).map_err(|e| e.to_string())? else {
        return Err("a feed line is a JSON object".into());
    };
    let member = |name: &str| members.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let seq = match member("seq") {
        Some(Value::Number(n)) => n.parse::<u64>().map_err(|_| format!("a bad seq: {n}"))?,
        _ => return Err("a feed line without a seq".into()),
    };
    let text = |name: &str| match member(name) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    match text("op").as_deref() {
        Some("heartbeat") => Ok(Event::Heartbeat { seq }),
        Some("cut") => Ok(Event::Cut { seq, error: text("error").unwrap_or_default() }),
        Some("txn") => {
            let Some(Value::Array(ops)) = member("ops") else {
                return Err("a transaction's line without `ops`".into());
            };
            let changes = ops
                .iter()
                .map(|op| match op {
                    Value::Object(members) => change(members),
                    _ => Err("a transaction's operation is not an object".into()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Event::Changes { seq, txn: true, changes })
        }
        _ => Ok(Event::Changes { seq, txn: false, changes: vec![change(&members)?] }),
    }
}

/// One change's members: `op` (set, delete, expire), the key, a SET's value and expiry.
fn change(members: &[(String, Value)]) -> Result<Change, String> {
    let member = |name: &str| members.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let text = |name: &str| match member(name) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        match (text(name), text(&format!("{name}_base64"))) {
            (Some(s), None) => Ok(s.into_bytes()),
            (None, Some(b)) => base64::decode(b.as_bytes()),
            _ => Err(format!("a feed line without one `{name}`")),
        }
    };
    match text("op").as_deref() {
        Some("set") => {
            let expires = match member("expires") {
                None => None,
                Some(Value::Number(n)) => {
                    Some(n.parse().map_err(|_| format!("a bad expiry: {n}"))?)
                }
                Some(_) => return Err("a bad expiry".into()),
            };
            Ok(Change::Set { key: bytes("key")?, value: bytes("value")?, expires })
        }
        Some("delete" | "expire") => Ok(Change::Delete { key: bytes("key")? }),
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
        (Event::Changes { txn, changes, .. }, ExportFormat::Resp) => {
            // A transaction stays one in Redis: MULTI ... EXEC.
            let multi = *txn && changes.len() > 1;
            if multi {
                super::export::resp_command(&mut bytes, &[b"MULTI"]);
            }
            for change in changes {
                match change {
                    Change::Set { key, value, expires } => {
                        super::export::resp_set(&mut bytes, key, value, *expires)
                    }
                    Change::Delete { key } => {
                        super::export::resp_command(&mut bytes, &[b"DEL", key])
                    }
                }
            }
            if multi {
                super::export::resp_command(&mut bytes, &[b"EXEC"]);
            }
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

    fn one(seq: u64, change: Change) -> Event {
        Event::Changes { seq, txn: false, changes: vec![change] }
    }

    #[test]
    fn reads_every_kind_of_line() {
        let set = parse_line(br#"{"seq":3,"op":"set","key":"k","value_base64":"/w=="}"#);
        let value = vec![0xff];
        assert_eq!(set, Ok(one(3, Change::Set { key: b"k".to_vec(), value, expires: None })));
        let delete = parse_line(br#"{"seq":4,"op":"delete","key_base64":"/w=="}"#);
        assert_eq!(delete, Ok(one(4, Change::Delete { key: vec![0xff] })));
        let expire = parse_line(br#"{"seq":5,"op":"expire","key":"s"}"#);
        assert_eq!(expire, Ok(one(5, Change::Delete { key: b"s".to_vec() })));
        let expiring = parse_line(br#"{"seq":6,"op":"set","key":"s","value":"v","expires":99}"#);
        let (key, value) = (b"s".to_vec(), b"v".to_vec());
        assert_eq!(expiring, Ok(one(6, Change::Set { key, value, expires: Some(99) })));
        let txn = parse_line(
            br#"{"seq":7,"op":"txn","ops":[{"op":"set","key":"a","value":"1"},{"op":"delete","key":"b"}]}"#,
        )
        .unwrap();
        let changes = vec![
            Change::Set { key: b"a".to_vec(), value: b"1".to_vec(), expires: None },
            Change::Delete { key: b"b".to_vec() },
        ];
        assert_eq!(txn, Event::Changes { seq: 7, txn: true, changes });
        assert_eq!(parse_line(br#"{"op":"heartbeat","seq":9}"#), Ok(Event::Heartbeat { seq: 9 }));
        let cut = parse_line(br#"{"op":"cut","seq":9,"error":"behind"}"#).unwrap();
        assert_eq!(cut, Event::Cut { seq: 9, error: "behind".into() });
        for bad in [
            &b"[]"[..],
            b"{}",
            br#"{"seq":1,"op":"set","key":"k"}"#,
            br#"{"seq":1}"#,
            b"x",
            br#"{"seq":1,"op":"txn","ops":[1]}"#,
        ] {
            assert!(parse_line(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn prints_redis_commands() {
        let mut out = Vec::new();
        let set = Change::Set { key: b"k".to_vec(), value: b"v\r\n".to_vec(), expires: None };
        print(&mut out, &one(1, set), b"", ExportFormat::Resp).unwrap();
        print(&mut out, &Event::Heartbeat { seq: 2 }, b"", ExportFormat::Resp).unwrap();
        print(&mut out, &one(3, Change::Delete { key: b"k".to_vec() }), b"", ExportFormat::Resp)
            .unwrap();
        assert_eq!(
            out,
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n"
        );
        out.clear();
        let changes = vec![
            Change::Set { key: b"a".to_vec(), value: b"1".to_vec(), expires: Some(7) },
            Change::Delete { key: b"b".to_vec() },
        ];
        print(&mut out, &Event::Changes { seq: 4, txn: true, changes }, b"", ExportFormat::Resp)
            .unwrap();
        let want = "*1\r\n$5\r\nMULTI\r\n*5\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n$4\r\nPXAT\r\n$1\r\n7\r\n\
                    *2\r\n$3\r\nDEL\r\n$1\r\nb\r\n*1\r\n$4\r\nEXEC\r\n";
        assert_eq!(String::from_utf8_lossy(&out), want);
    }
}
