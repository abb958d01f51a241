//! The writes of keys: `PUT` and `DELETE` of a key, `POST /v1/write`, `POST /v1/bulk`,
//! `POST /v1/txn` and a counter's `POST /v1/{key}?incr=N`: which parameters each takes, the
//! conditions (`If-Match`, `If-None-Match`, see [`super::conditional`]) and the answers.

use super::conditional::{Conditions, Verdict};
use super::params::Params;
use super::{Prepared, Request, Response, bulk, counter, decode_key, store_error, ttl, txn};
use crate::expiry;
use crate::store::{Deleted, Latest, Store};

/// Answers a write to `/v1/{segment}`, or says which parameter or header it got wrong.
pub(super) fn route(store: &mut Store, req: &Request, segment: &str) -> Result<Response, String> {
    let (endpoint, takes): (&str, &[&str]) = match (req.method, segment) {
        ("POST", "write") => ("POST /v1/write", &["sync"]),
        ("POST", "bulk") => ("POST /v1/bulk", &["sync"]),
        ("POST", "txn") => ("POST /v1/txn", &["sync"]),
        ("POST", _) => ("POST /v1/{key}", &["sync", "incr"]),
        ("PUT", _) => ("PUT /v1/{key}", &["sync", "ttl", "keepttl"]),
        _ => ("DELETE /v1/{key}", &["sync"]),
    };
    let params = Params::parse(req.query, takes, endpoint)?;
    let sync = params.switch("sync")?;
    let conditions = Conditions::parse(req.headers)?;
    let bulk_like = matches!(segment, "bulk" | "txn") && req.method == "POST";
    if bulk_like && !conditions.is_empty() {
        let what = if segment == "bulk" {
            "a bulk write"
        } else {
            "a transaction (its conditions are in its body)"
        };
        return Err(format!("{what} takes no If-Match or If-None-Match"));
    }
    let now = expiry::now_ms();
    let mut response = match (req.method, segment) {
        ("POST", "write") => {
            let parsed_here;
            let parsed = match req.prepared {
                Some(Prepared::Write(parsed)) => parsed.as_ref(),
                _ => {
                    parsed_here = super::parse_write_body(req.body);
                    parsed_here.as_ref()
                }
            };
            write_json(store, parsed, &params, &conditions, now)?
        }
        ("POST", "bulk") => match req.prepared {
            Some(Prepared::Bulk(parsed)) => bulk::apply(store, parsed.as_deref()),
            _ => bulk::apply(store, bulk::parse_body(req.body).as_deref()),
        },
        ("POST", "txn") => match req.prepared {
            Some(Prepared::Txn(parsed)) => txn::apply(store, parsed.as_ref()),
            _ => txn::apply(store, txn::parse_body(req.body, now).as_ref()),
        },
        ("POST", _) => {
            let key = decode_key(segment)?;
            let delta = counter::delta(params.get("incr"))?;
            match check_write(store, &key, &conditions) {
                Some(refused) => refused,
                None => counter::incr(store, &key, delta),
            }
        }
        ("PUT", _) => {
            let ttl = ttl::of_write(&params, None, now)?;
            put(store, &decode_key(segment)?, req.body, ttl, &conditions)
        }
        _ => delete(store, &decode_key(segment)?, &conditions),
    };
    if sync && (200..300).contains(&response.status) {
        response.sync = true;
    }
    Ok(response)
}

/// The 412 answer: the key's current ETag (or `null` for a missing key), in the body and as
/// the `ETag` header.
pub(super) fn precondition_failed(current: Option<u64>) -> Response {
    let Some(seq) = current else {
        return Response::json(412, r#"{"error":"precondition failed","etag":null}"#.into());
    };
    let body = format!(r#"{{"error":"precondition failed","etag":"{seq}"}}"#);
    Response::json(412, body).with_etag(seq)
}

/// The answer for a write whose conditions do not hold, if they do not. They are checked
/// against the key's newest state, pending writes included; a 412 that shows a pending write
/// waits for it.
fn check_write(store: &Store, key: &[u8], conditions: &Conditions) -> Option<Response> {
    if conditions.is_empty() {
        return None;
    }
    let Latest { etag, pending } = store.latest(key);
    match conditions.evaluate(etag, false) {
        Verdict::Proceed => None,
        _ => Some(precondition_failed(etag).after(pending)),
    }
}

fn put(
    store: &mut Store,
    key: &[u8],
    value: &[u8],
    ttl: crate::store::Ttl,
    conditions: &Conditions,
) -> Response {
    if let Some(refused) = check_write(store, key, conditions) {
        return refused;
    }
    match store.set_with_ttl(key, value, ttl) {
        Ok((seq, created)) => written(if created { 201 } else { 200 }, seq),
        Err(e) => store_error(&e),
    }
}

fn delete(store: &mut Store, key: &[u8], conditions: &Conditions) -> Response {
    if let Some(refused) = check_write(store, key, conditions) {
        return refused;
    }
    match store.delete(key) {
        Ok(Deleted::Yes(seq)) => {
            Response::json(200, format!("{{\"deleted\":true,\"seq\":{seq}}}")).after(Some(seq))
        }
        Ok(Deleted::No { pending }) => {
            Response::json(200, "{\"deleted\":false}".to_string()).after(pending)
        }
        Err(e) => store_error(&e),
    }
}

/// `POST /v1/write`, the first write endpoint walkv had: one object as a `bulk` line holds it
/// ([`super::parse_write_body`]), its `"ttl"` included.
fn write_json(
    store: &mut Store,
    parsed: Result<&bulk::Pair, &String>,
    params: &Params,
    conditions: &Conditions,
    now: u64,
) -> Result<Response, String> {
    let pair = match parsed {
        Ok(pair) => pair,
        Err(message) => return Ok(Response::error(400, message)),
    };
    let ttl = ttl::of_write(params, pair.ttl, now)?;
    if let Some(refused) = check_write(store, &pair.key, conditions) {
        return Ok(refused);
    }
    Ok(match store.set_with_ttl(&pair.key, &pair.value, ttl) {
        Ok((seq, _)) => written(201, seq),
        Err(e) => store_error(&e),
    })
}

/// The answer to a SET: `{"seq":N}`, and the value's new ETag; sent once the write is in the
/// map.
pub(super) fn written(status: u16, seq: u64) -> Response {
    Response::json(status, format!("{{\"seq\":{seq}}}")).with_etag(seq).after(Some(seq))
}
