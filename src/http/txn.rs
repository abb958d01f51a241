//! `POST /v1/txn`: conditions, then operations, all together or not at all (see
//! [`crate::store::txn`] for how the store keeps that promise).
//!
//! ```text
//! {"if":  [{"key":"a","etag":"5"}, {"key":"b","absent":true}, {"key":"c","exists":true}],
//!  "then":[{"op":"set","key":"a","value":"x","ttl":30}, {"op":"delete","key":"c"}]}
//! ```
//!
//! Keys and values may be given as `key_base64` / `value_base64`, as in a bulk line; a SET may
//! have `ttl` (seconds) and `keepttl: true`, as `PUT` takes them (see [`super::ttl`]); without
//! either it clears the key's TTL. `if` may
//! be left out. The answer is 200 `{"seq":N}`: every key the transaction sets has ETag N. A
//! condition that fails is a 412 naming the first one, with the key's current ETag:
//! `{"error":"...","failed":{"index":1,"key":"b","etag":"7"}}`, and nothing is written.
//!
//! Limits: at most [`MAX_OPERATIONS`] operations and as many conditions, and at most
//! [`MAX_BYTES`] of keys and values in `then` (413 beyond); a key twice in `then` is a 400
//! (which of the two would win is not something to guess). The body is parsed on the
//! connection's thread ([`super::prepare`]), like every write body.

use super::{Response, params::shown, store_error};
use crate::json::{self, Value};
use crate::store::txn::{Condition, Operation, Outcome};
use crate::store::{Store, Ttl};
use crate::{base64, expiry};
use std::collections::HashSet;

/// Most operations (and most conditions) in one transaction. Its record is applied in one step
/// on the main thread, as a bulk write's lines are.
pub const MAX_OPERATIONS: usize = 1000;
/// Most bytes of keys and values in one transaction's operations: the largest value a single
/// write may have, so a transaction's record stays within the log's limit.
pub const MAX_BYTES: usize = crate::wal::MAX_VALUE_LEN;

/// A parsed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub conditions: Vec<(Vec<u8>, Condition)>,
    pub then: Vec<Operation>,
}

/// Parses a transaction's body at `now` (for its TTLs), or the refusal: 400 saying what is
/// wrong, 413 past a limit.
pub fn parse_body(body: &[u8], now: u64) -> Result<Txn, Response> {
    parse(body, now).map_err(|(status, message)| Response::error(status, &message))
}

/// Runs a parsed transaction (or answers its refusal).
pub fn apply(store: &mut Store, parsed: Result<&Txn, &Response>) -> Response {
    let txn = match parsed {
        Ok(txn) => txn,
        Err(refusal) => return refusal.clone(),
    };
    match store.txn(&txn.conditions, &txn.then) {
        Ok(Outcome::Done(seq)) => {
            Response::json(200, format!("{{\"seq\":{seq}}}")).after(Some(seq))
        }
        Ok(Outcome::Failed { index, current }) => {
            let mut body = String::from("{\"error\":\"precondition failed: condition ");
            body.push_str(&format!("{index} does not hold; nothing was written\",\"failed\":{{"));
            body.push_str(&format!("\"index\":{index},"));
            let key = txn.conditions.get(index).map_or(&[][..], |(key, _)| key);
            json::write_bytes_member(&mut body, "key", key);
            match current.etag {
                Some(seq) => body.push_str(&format!(",\"etag\":\"{seq}\"}}}}")),
                None => body.push_str(",\"etag\":null}}"),
            }
            Response::json(412, body).after(current.pending)
        }
        Err(e) => store_error(&e),
    }
}

type Refusal = (u16, String);

fn bad(message: impl Into<String>) -> Refusal {
    (400, message.into())
}

fn parse(body: &[u8], now: u64) -> Result<Txn, Refusal> {
    if body.starts_with(b"\xEF\xBB\xBF") {
        return Err(bad(super::BOM));
    }
    let value = json::parse(body).map_err(|e| bad(e.to_string()))?;
    let mut members = object(value, "the body", &["if", "then"])?;
    let conditions = match members.remove("if") {
        Some(list) => array(list, "`if`")?
            .into_iter()
            .enumerate()
            .map(|(i, c)| condition(c).map_err(|(s, m)| (s, format!("`if` {i}: {m}"))))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let then = array(members.remove("then").ok_or_else(|| bad("missing field `then`"))?, "`then`")?;
    if then.is_empty() {
        return Err(bad("`then` holds no operation; a transaction writes at least one key"));
    }
    if then.len() > MAX_OPERATIONS || conditions.len() > MAX_OPERATIONS {
        return Err((
            413,
            format!(
                "a transaction holds at most {MAX_OPERATIONS} operations and {MAX_OPERATIONS} conditions"
            ),
        ));
    }
    let mut ops = Vec::with_capacity(then.len());
    let (mut keys, mut bytes) = (HashSet::new(), 0usize);
    for (i, op) in then.into_iter().enumerate() {
        let op = operation(op, now).map_err(|(s, m)| (s, format!("`then` {i}: {m}")))?;
        if !keys.insert(op.key().to_vec()) {
            return Err(bad(format!("`then` {i}: the key is written twice in one transaction")));
        }
        bytes +=
            op.key().len() + if let Operation::Set { value, .. } = &op { value.len() } else { 0 };
        if bytes > MAX_BYTES {
            return Err((
                413,
                format!("a transaction's keys and values take at most {MAX_BYTES} bytes"),
            ));
        }
        ops.push(op);
    }
    Ok(Txn { conditions, then: ops })
}

/// The members of an object, each name at most once and among `known`.
fn object(
    value: Value,
    what: &str,
    known: &[&str],
) -> Result<std::collections::HashMap<String, Value>, Refusal> {
    let Value::Object(members) = value else {
        return Err(bad(format!("{what} must be a JSON object, not {}", value.kind())));
    };
    let mut out = std::collections::HashMap::new();
    for (name, value) in members {
        if !known.contains(&name.as_str()) {
            return Err(bad(format!(
                "unknown field `{}` in {what}; it takes `{}`",
                shown(&name),
                known.join("`, `")
            )));
        }
        if out.insert(name.clone(), value).is_some() {
            return Err(bad(format!("field `{}` appears more than once", shown(&name))));
        }
    }
    Ok(out)
}

fn array(value: Value, what: &str) -> Result<Vec<Value>, Refusal> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(bad(format!("{what} must be an array, not {}", other.kind()))),
    }
}

/// `{"key":...,"etag":"5"}`, `{"key":...,"absent":true}` or `{"key":...,"exists":true}`.
fn condition(value: Value) -> Result<(Vec<u8>, Condition), Refusal> {
    let mut m = object(value, "a condition", &["key", "key_base64", "etag", "absent", "exists"])?;
    let key = bytes(&mut m, "key")?.ok_or_else(|| bad("missing field `key` (or `key_base64`)"))?;
    let mut found = Vec::new();
    if let Some(etag) = m.remove("etag") {
        let Value::String(text) = etag else {
            return Err(bad("`etag` must be a string of digits, like \"5\""));
        };
        let seq = text.trim_matches('"').parse().map_err(|_| {
            bad(format!("`etag` must be a string of digits, like \"5\", not {:?}", shown(&text)))
        })?;
        found.push(Condition::Etag(seq));
    }
    for (name, condition) in [("absent", Condition::Absent), ("exists", Condition::Exists)] {
        match m.remove(name) {
            None => {}
            Some(Value::Bool(true)) => found.push(condition),
            Some(_) => return Err(bad(format!("`{name}` can only be true"))),
        }
    }
    match found.len() {
        1 => Ok((checked_key(key)?, found.remove(0))),
        _ => Err(bad("a condition has exactly one of `etag`, `absent`, `exists`")),
    }
}

/// `{"op":"set","key":...,"value":...[,"ttl":S|"keepttl":true]}` or
/// `{"op":"delete","key":...}`.
fn operation(value: Value, now: u64) -> Result<Operation, Refusal> {
    let names = ["op", "key", "key_base64", "value", "value_base64", "ttl", "keepttl"];
    let mut m = object(value, "an operation", &names)?;
    let op = match m.remove("op") {
        Some(Value::String(op)) => op,
        Some(_) | None => return Err(bad("missing field `op`: \"set\" or \"delete\"")),
    };
    let key = bytes(&mut m, "key")?.ok_or_else(|| bad("missing field `key` (or `key_base64`)"))?;
    let key = checked_key(key)?;
    match op.as_str() {
        "set" => {
            let value = bytes(&mut m, "value")?
                .ok_or_else(|| bad("missing field `value` (or `value_base64`)"))?;
            if value.len() > crate::wal::MAX_VALUE_LEN {
                return Err((
                    413,
                    format!(
                        "a value is {} bytes; the limit is {}",
                        value.len(),
                        crate::wal::MAX_VALUE_LEN
                    ),
                ));
            }
            let at = match m.remove("ttl") {
                None => None,
                Some(Value::Number(text)) => {
                    Some(expiry::expires_at(now, expiry::parse_ttl(&text).map_err(bad)?))
                }
                Some(_) => return Err(bad("`ttl` must be a number of seconds")),
            };
            let keep = match m.remove("keepttl") {
                None => false,
                Some(Value::Bool(true)) => true,
                Some(_) => return Err(bad("`keepttl` can only be true")),
            };
            let ttl = match (at, keep) {
                (Some(at), true) => Ttl::KeepOr(at),
                (Some(at), false) => Ttl::At(at),
                (None, true) => Ttl::Keep,
                (None, false) => Ttl::Clear,
            };
            Ok(Operation::Set { key, value, ttl })
        }
        "delete" => match m.keys().next() {
            Some(name) => Err(bad(format!("a delete takes no `{}`", shown(name)))),
            None => Ok(Operation::Delete { key }),
        },
        other => Err(bad(format!("`op` is \"set\" or \"delete\", not {:?}", shown(other)))),
    }
}

/// `name` as text or `name_base64`, if either is there (not both).
fn bytes(
    m: &mut std::collections::HashMap<String, Value>,
    name: &str,
) -> Result<Option<Vec<u8>>, Refusal> {
    let field = format!("{name}_base64");
    match (m.remove(name), m.remove(&field)) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(bad(format!("`{name}` is given more than once"))),
        (Some(Value::String(text)), None) => Ok(Some(text.into_bytes())),
        (None, Some(Value::String(text))) => base64::decode(text.as_bytes())
            .map(Some)
            .map_err(|e| bad(format!("field `{field}`: {e}"))),
        (Some(other), None) | (None, Some(other)) => {
            Err(bad(format!("`{name}` must be a string, not {}", other.kind())))
        }
    }
}

fn checked_key(key: Vec<u8>) -> Result<Vec<u8>, Refusal> {
    if key.is_empty() {
        return Err(bad("`key` must not be empty"));
    }
    if key.len() > crate::wal::MAX_KEY_LEN {
        let limit = crate::wal::MAX_KEY_LEN;
        return Err(bad(format!("the key is {} bytes; the limit is {limit}", key.len())));
    }
    Ok(key)
}
