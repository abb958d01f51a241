//! `POST /v1/bulk`: many SETs in one request, in the format `walkv export` writes.
//!
//! The body is JSON lines: one object per line, `{"key":"...","value":"..."}`, where
//! `"key_base64"` / `"value_base64"` carry bytes that are not UTF-8 as base64. Blank lines are
//! skipped; any other member is refused. Every line is checked before anything is written, so a
//! bad line is a 400 that names it (`line 3: ...`) and writes nothing. Then the SETs are
//! appended in order, each its own record, and the answer is `{"written":N,"last_seq":S}`. Like
//! every write the request may add `?sync`; in `--sync always` mode its answer waits for the
//! one fsync of its batch. The body may be up to [`super::MAX_JSON_BODY`] and [`MAX_LINES`]
//! lines (413 beyond); `walkv import` sends about 1 MiB, and at most [`MAX_LINES`] lines, at a
//! time. There are no conditions (`If-Match`) on a bulk write: it is for
//! loading data, not for updating it.

use super::{Response, store_error};
use crate::base64;
use crate::expiry;
use crate::json;
use crate::store::{Store, Ttl};
use crate::wal::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// Most lines one request may hold: a bulk write is applied whole on the main thread, and this
/// bounds how long one takes while every other client waits: 10,000 short lines took 14-21 ms
/// a request (curl, release build, 2 shared cores), 7,000 lines of 100-byte values 12-16 ms.
pub const MAX_LINES: usize = 10_000;

/// The non-blank lines of `body`, numbered from 1 (blank lines count for the numbering).
pub fn lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(_, line)| !line.iter().all(|b| b.is_ascii_whitespace()))
}

/// One line's key and value, or what is wrong with it.
pub fn parse_line(line: &[u8]) -> Result<Pair, String> {
    if line.starts_with(b"\xEF\xBB\xBF") {
        return Err(super::BOM.into());
    }
    let names = ["key", "key_base64", "value", "value_base64", "ttl"];
    let [key, key_base64, value, value_base64, ttl] =
        match json::pick_members(line, names, true).map_err(|e| e.to_string())? {
            json::Picked::Members(members) => members,
            json::Picked::NotAnObject(kind) => {
                return Err(format!(
                    "expected a JSON object {{\"key\":...,\"value\":...}}, not {kind}"
                ));
            }
            json::Picked::Unknown(other) => {
                let shown: String = other.chars().take(40).flat_map(char::escape_debug).collect();
                return Err(format!(
                    "unknown field `{shown}`; the object holds key (or key_base64), value (or \
                     value_base64) and optionally ttl, nothing else"
                ));
            }
        };
    let key = bytes_of(key, key_base64, "key")?;
    let val = bytes_of(value, value_base64, "value")?;
    let key = key.ok_or("missing field `key` (or `key_base64`)")?;
    let value = val.ok_or("missing field `value` (or `value_base64`)")?;
    if key.is_empty() {
        return Err("`key` must not be empty".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!("the key is {} bytes; the limit is {MAX_KEY_LEN}", key.len()));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(format!("the value is {} bytes; the limit is {MAX_VALUE_LEN}", value.len()));
    }
    Ok(Pair { key, value, ttl: ttl_member(ttl)? })
}

/// The optional `ttl` member: a number of seconds, as milliseconds.
pub fn ttl_member(member: json::Member) -> Result<Option<u64>, String> {
    match member {
        json::Member::Missing => Ok(None),
        json::Member::Number(text) => expiry::parse_ttl(&text).map(Some),
        json::Member::Repeated => Err("field `ttl` appears more than once".into()),
        json::Member::String(_) => {
            Err("field `ttl` must be a number of seconds, not a string".into())
        }
        json::Member::Other(kind) => {
            Err(format!("field `ttl` must be a number of seconds, not {kind}"))
        }
    }
}

/// A field given as text (`name`) or as base64 (`name_base64`): its bytes, if exactly one was.
fn bytes_of(
    text: json::Member,
    base64: json::Member,
    name: &str,
) -> Result<Option<Vec<u8>>, String> {
    use json::Member::{Missing, Repeated};
    match (text, base64) {
        (Missing, Missing) => Ok(None),
        (Repeated, _)
        | (_, Repeated)
        | (
            json::Member::String(_) | json::Member::Number(_) | json::Member::Other(_),
            json::Member::String(_) | json::Member::Number(_) | json::Member::Other(_),
        ) => Err(format!("`{name}` is given more than once")),
        (member, Missing) => super::string_member(member, name).map(|s| Some(s.into_bytes())),
        (Missing, member) => {
            let field = format!("{name}_base64");
            let text = super::string_member(member, &field)?;
            base64::decode(text.as_bytes()).map(Some).map_err(|e| format!("field `{field}`: {e}"))
        }
    }
}

/// A key, its value and its TTL (milliseconds), from one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub ttl: Option<u64>,
}

/// Parses a bulk body: every line, or the refusal (400 naming the line, 413 for too many).
pub fn parse_body(body: &[u8]) -> Result<Vec<Pair>, Response> {
    let mut pairs = Vec::new();
    for (number, line) in lines(body) {
        if pairs.len() == MAX_LINES {
            let message = format!(
                "a bulk write holds at most {MAX_LINES} lines; split it (walkv import does); \
                 nothing was written"
            );
            return Err(Response::error(413, &message));
        }
        match parse_line(line) {
            Ok(pair) => pairs.push(pair),
            Err(why) => {
                return Err(Response::error(
                    400,
                    &format!("line {number}: {why}; nothing was written"),
                ));
            }
        }
    }
    if pairs.is_empty() {
        // Most likely an empty file or a pipe that produced nothing: say so rather than answer
        // `{"written":0}` as if something had been loaded.
        return Err(Response::error(400, "the body holds no line; nothing to write"));
    }
    Ok(pairs)
}

/// Writes parsed bulk pairs (or answers their refusal): `POST /v1/bulk`'s answer.
pub fn apply(store: &mut Store, parsed: Result<&[Pair], &Response>) -> Response {
    let pairs = match parsed {
        Ok(pairs) => pairs,
        Err(refusal) => return refusal.clone(),
    };
    let mut last_seq = None;
    let now = expiry::now_ms();
    for (done, pair) in pairs.iter().enumerate() {
        let ttl = pair.ttl.map_or(Ttl::Clear, |ms| Ttl::At(expiry::expires_at(now, ms)));
        match store.set_with_ttl(&pair.key, &pair.value, ttl) {
            Ok((seq, _)) => last_seq = Some(seq),
            Err(e) => {
                let mut response = store_error(&e);
                let message =
                    format!("{e}; the first {done} of {} lines were written", pairs.len());
                response.body =
                    json::object_with_string("error", &crate::error::for_client(&message))
                        .into_bytes();
                // It says the first lines were written: not before they are.
                response.after = last_seq;
                return response;
            }
        }
    }
    let Some(last) = last_seq else {
        let last = store.last_issued();
        let mut response = Response::json(200, format!("{{\"written\":0,\"last_seq\":{last}}}"));
        response.after = Some(last);
        return response;
    };
    let mut response =
        Response::json(200, format!("{{\"written\":{},\"last_seq\":{last}}}", pairs.len()));
    response.after = Some(last);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines in both spellings, and every way a line can be wrong.
    #[test]
    fn parses_lines() {
        assert_eq!(
            parse_line(br#"{"key":"k","value":"v"}"#).unwrap(),
            Pair { key: b"k".to_vec(), value: b"v".to_vec(), ttl: None }
        );
        assert_eq!(
            parse_line(br#" {"value_base64":"/w==","key_base64":"AA=="}"#).unwrap(),
            Pair { key: b"\0".to_vec(), value: b"\xff".to_vec(), ttl: None }
        );
        assert_eq!(parse_line(br#"{"key":"k","value":"v","ttl":1.5}"#).unwrap().ttl, Some(1500));
        for (line, says) in [
            (&br#"{"key":"k"}"#[..], "missing field `value`"),
            (br#"{"value":"v"}"#, "missing field `key`"),
            (br#"{"key":"","value":"v"}"#, "must not be empty"),
            (br#"{"key":"k","key_base64":"aw==","value":""}"#, "`key` is given more than once"),
            (br#"{"key":"k","value":1}"#, "`value` must be a string, not a number"),
            (br#"{"key":"k","value":"v","ttl":"5"}"#, "`ttl` must be a number of seconds"),
            (br#"{"key":"k","value":"v","ttl":0}"#, "greater than 0"),
            (br#"{"key":"k","value":"v","ttl":-1}"#, "greater than 0"),
            (br#"{"key":"k","value":"v","ttl":1e3}"#, "not \"1e3\""),
            (br#"{"key":"k","value":"v","ttl":1,"ttl":2}"#, "more than once"),
            (br#"{"Key":"k","Value":"dg=="}"#, "unknown field `Key`"),
            (br#"{"key":"k","value_base64":"dg="}"#, "field `value_base64`: base64"),
            (br#"["k","v"]"#, "expected a JSON object"),
            (br#"{"key":"k","value":"v"} x"#, "unexpected data"),
            (b"\xff", "not valid UTF-8"),
        ] {
            let err = parse_line(line).unwrap_err();
            assert!(err.contains(says), "{}: {err}", String::from_utf8_lossy(line));
        }
        let long = format!(r#"{{"key":"{}","value":""}}"#, "k".repeat(MAX_KEY_LEN + 1));
        assert!(parse_line(long.as_bytes()).unwrap_err().contains("the limit is 4096"));
    }

    /// Blank lines are skipped but counted.
    #[test]
    fn numbers_lines() {
        let numbered: Vec<(usize, &[u8])> = lines(b"a\n\n \r\nb\r\n").collect();
        assert_eq!(numbered, vec![(1, &b"a"[..]), (4, &b"b\r"[..])]);
    }

    /// What `walkv export` writes, `parse_line` reads back exactly (random bytes, text and not);
    /// mutated lines are errors or other pairs, never panics.
    #[test]
    fn reads_back_what_export_writes() {
        const MUTATIONS: &[u8] = b"{}\":,\\u0aZ=";
        let mut rng = crate::testutil::Rng::new(51);
        for _ in 0..crate::testutil::knob("WALKV_FUZZ_ITERS", 20_000) / 4 {
            let klen = 1 + rng.below(16);
            let vlen = rng.below(32);
            let (key, value) = (rng.bytes(klen), rng.bytes(vlen));
            let mut line = Vec::new();
            crate::commands::export::jsonl_line(&mut line, &key, &value, None, 0);
            assert_eq!(parse_line(&line).unwrap(), Pair { key, value, ttl: None });
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(line.len());
                match rng.below(3) {
                    0 => line[at] = MUTATIONS[rng.below(MUTATIONS.len())],
                    1 => line.insert(at, rng.bytes(1)[0]),
                    _ => {
                        line.remove(at);
                    }
                }
                if line.is_empty() {
                    break;
                }
            }
            let _ = parse_line(&line);
        }
    }
}
