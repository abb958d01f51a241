//! The HTTP API as a plain function: [`handle`] maps (method, path, query, headers, body) to a
//! [`Response`], with no socket in sight, so every rule below is tested without a network.
//!
//! | request                         | success                                  | notes                                   |
//! |---------------------------------|------------------------------------------|-----------------------------------------|
//! | `GET /v1/{key}`                 | 200 `{"value":"..."}` (application/json) | 404 `{"error":"key not found"}`          |
//! | `GET /v1/{key}?raw`             | 200, the value's bytes (octet-stream)    | works for any bytes                     |
//! | `HEAD /v1/{key}`                | as GET, without the body                 |                                         |
//! | `POST /v1/write` `{"key","value"}` | 201 `{"seq":N}`                       | the first write endpoint; `key_base64`/`value_base64` as in [`bulk`] |
//! | `PUT /v1/{key}` (raw body)      | 201 `{"seq":N}` if new, 200 if replaced  | the body is the value, any bytes; `?ttl=S`, `?keepttl` ([`ttl`]) |
//! | `POST /v1/{key}?incr=N`         | 200 `{"value":"42","seq":S}`             | a counter; 409 if the value is no integer or would overflow |
//! | `POST /v1/txn` (JSON)           | 200 `{"seq":N}`                          | conditions, then writes, all or none; 412 names the failed condition ([`txn`]) |
//! | `DELETE /v1/{key}`              | 200 `{"deleted":true,"seq":N}` / `{"deleted":false}` | idempotent             |
//! | `GET /v1/?prefix&after&limit`   | 200 `{"keys":[...],"next":K}`            | see [`list`]                            |
//! | `POST /v1/bulk` (JSON lines)    | 200 `{"written":N,"last_seq":S}`         | see [`bulk`]                            |
//! | `POST /sync`                    | 200 `{"synced_seq":N}`                   | after an fsync covering all earlier writes |
//! | `POST /compact`                 | 200 `{"live_bytes","disk_bytes_before","disk_bytes_after","seconds"}` | when the compaction it started or joined ends; 507 or 500 if it failed |
//! | `GET /status`                   | 200 `{"ready":true,"last_seq":N,"synced_seq":M,...}` | 503, `"ready":false`, once the log failed |
//! | `GET /livez`                    | 200 `{"live":true}`                      | whenever the loop runs; no token needed |
//! | `GET /readyz`                   | 200 `{"ready":true}`                     | 503 `{"ready":false,"reason":"log_failed"}`, `"stopping"` or `"replaying"`; no token needed |
//! | `GET /metrics`                  | 200, Prometheus text format 0.0.4        | see [`crate::metrics`]; needs the token, as everything but the probes |
//!
//! While the log is replayed at startup the server already listens, and answers every request
//! with [`while_replaying`].
//!
//! The two probes answer without the token ([`is_probe`]): they say nothing but "alive" and
//! "ready", and a probe (Kubernetes, a load balancer, systemd) should not need the secret.
//!
//! Any write may add `?sync` (`PUT /v1/k?sync`): its answer then waits for an fsync that covers
//! it, whatever the server's `--sync` mode. Responses that must wait carry [`Response::sync`];
//! the server does the waiting.
//!
//! Answers that carry a value, and every SET's answer, have `ETag: "SEQ"`; `PUT`,
//! `POST /v1/write` and `DELETE` take `If-Match` and `If-None-Match` (compare-and-set: see
//! [`conditional`]), and a condition that fails is 412 and writes nothing.
//!
//! Keys are one percent-decoded path segment, so `/`, `=`, spaces and any byte work when encoded
//! (`%2F`, `%3D`, `%20`, ...). Values are bytes. JSON can only carry text, so a JSON GET of a value
//! that is not UTF-8 answers 406 and points at `?raw`, rather than altering the bytes.
//!
//! Every error is JSON, `{"error":"..."}`, saying exactly what was wrong. Status codes for store
//! errors are chosen in one place, [`error_status`]. What the server does not understand it
//! refuses: a query parameter an endpoint does not take ([`params`]), an unknown JSON field.
//!
//! Every answer says what caches may do ([`Response::cache_control`]): a key's read is
//! `no-cache` (keep it, but revalidate with the ETag), everything else `no-store`.
//!
//! `docs/openapi.json` is this table as a contract that outside tools check against the real
//! server (`tests/contract.rs`); an endpoint, parameter or field added here goes there too.
//!
//! Layout: this file routes and answers reads of keys; `write.rs` the writes, `ttl.rs` TTLs
//! and the expiry headers, `counter.rs` increments, `txn.rs` transactions; `params.rs` the
//! query parameters,
//! `conditional.rs` ETags and conditions, `list.rs` listing, `bulk.rs` bulk writes,
//! `probes.rs` the probes, `/status` and `/metrics`.

use crate::auth::Auth;
use crate::compactor::{Report, Stats};
use crate::error::Error;
use crate::json;
use crate::store::Store;
use crate::wal::{MAX_KEY_LEN, MAX_VALUE_LEN};
use conditional::{Conditions, Verdict};
use params::Params;
pub use probes::while_replaying;
use probes::{live, metrics, readyz, status};

pub mod bulk;
pub mod changes;
pub mod conditional;
mod counter;
pub mod list;
pub mod params;
mod probes;
pub mod ttl;
pub mod txn;
pub mod watch;
mod write;

/// Largest `POST /v1/write` body: room for a maximal key and value even with heavy escaping.
pub const MAX_JSON_BODY: u64 = 8 << 20;
/// Largest body accepted on requests that do not use one (GET, HEAD, DELETE, unknown paths).
pub const MAX_OTHER_BODY: u64 = 64 << 10;

const JSON: &str = "application/json";
/// Caches must not keep the answer: writes, errors, listings, probes, metrics. Each of these
/// says something about one moment of a store that changes under it.
const NO_STORE: &str = "no-store";
/// Caches may keep the answer but must ask again before each use, with `If-None-Match`, which
/// costs a 304 when the value is unchanged: a key's read.
const NO_CACHE: &str = "no-cache";
const OCTETS: &str = "application/octet-stream";
/// Methods a key path answers, for `Allow` on 405 (`POST` increments a counter, or is one of
/// `/v1/write`, `/v1/bulk`, `/v1/txn`).
const KEY_METHODS: &str = "GET, HEAD, PUT, POST, DELETE";

/// An HTTP request, reduced to what routing needs.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, without the query string, still percent-encoded.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    /// The body of a `POST /v1/write` or `/v1/bulk`, already parsed on the connection's thread
    /// ([`prepare`]); `None`: the router parses `body` itself.
    pub prepared: Option<&'a Prepared>,
}

/// A write body parsed before it reaches the main thread, which then only does map work: an 8 MiB body of a million members takes tens of milliseconds to parse, and the main
/// thread answers nobody meanwhile.
#[derive(Debug)]
pub enum Prepared {
    /// `POST /v1/write`: the key and value, or the 400's message.
    Write(Result<bulk::Pair, String>),
    /// `POST /v1/bulk`: the pairs, or the refusal.
    Bulk(Result<Vec<bulk::Pair>, Response>),
    /// `POST /v1/txn`: the transaction, or the refusal.
    Txn(Result<txn::Txn, Response>),
}

/// Parses the body of a request whose body is JSON to be written (on the connection's thread,
/// after the body arrived); `None` for every other request.
pub fn prepare(method: &str, path: &str, body: &[u8]) -> Option<Prepared> {
    match (method, path) {
        ("POST", "/v1/write") => Some(Prepared::Write(parse_write_body(body))),
        ("POST", "/v1/bulk") => Some(Prepared::Bulk(bulk::parse_body(body))),
        ("POST", "/v1/txn") => Some(Prepared::Txn(txn::parse_body(body, crate::expiry::now_ms()))),
        _ => None,
    }
}

/// What to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// True if this answer must not be sent before the log is synced (`?sync`, `POST /sync`):
    /// through `after`, or through every write given a number before it.
    pub sync: bool,
    /// This answer shows the write with this seq (its own, or a pending one it was checked
    /// against): it must not be sent before that write is in the map, that is durable as the
    /// server's mode promises (see [`crate::store`]).
    pub after: Option<u64>,
    /// True for `POST /compact`: the server starts or joins a compaction and sends the real
    /// answer ([`compacted`]) when it ends; this response is only a placeholder.
    pub compact: bool,
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers, with values walkv wrote itself (never bytes copied from the request).
    pub headers: Vec<(&'static str, String)>,
    /// `ETag: "SEQ"` (see [`conditional`]). A field of its own rather than one of `headers`:
    /// most answers carry one, and two small allocations per answer, made on the main thread
    /// and freed on a connection's, cost 14 MiB of RSS (fragmentation) over 1M PUTs.
    pub etag: Option<u64>,
    /// `X-Walkv-Seq: N`: the highest seq whose write is visible when the answer is sent (a
    /// lower bound of it: the seq visible when it was made, or the write it waits for). Every
    /// answer of a key, listing or feed endpoint has one, so that a client can ask what changed
    /// after it (`?index=N`, `/changes?from=N`). A field of its own, as `etag` is.
    pub seq: Option<u64>,
    /// A blocking read (`?index=N`) whose key has not changed after `N`: the server holds the
    /// request until the key changes or the wait ends, then asks again (see [`watch`]).
    pub watch: Option<Box<watch::Watch>>,
    /// `Cache-Control`: `no-store` on every answer but a key's read, which is `no-cache` (see
    /// the module's `get`).
    pub cache_control: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    fn json(status: u16, body: String) -> Response {
        Response {
            sync: false,
            after: None,
            compact: false,
            status,
            content_type: JSON,
            headers: Vec::new(),
            etag: None,
            seq: None,
            watch: None,
            cache_control: NO_STORE,
            body: body.into_bytes(),
        }
    }

    /// This response with `ETag: "SEQ"`.
    fn with_etag(mut self, seq: u64) -> Response {
        self.etag = Some(seq);
        self
    }

    /// This response, sent only once the write `seq` (if any) is in the map.
    fn after(mut self, seq: Option<u64>) -> Response {
        self.after = seq;
        self
    }

    /// `{"error":"<message>"}` with the given status. A server error's message loses the
    /// server's file paths ([`crate::error::for_client`]).
    pub fn error(status: u16, message: &str) -> Response {
        if status >= 500 {
            let message = crate::error::for_client(message);
            return Response::json(status, json::object_with_string("error", &message));
        }
        Response::json(status, json::object_with_string("error", message))
    }
}

/// The body size limit for a request, decided from its method and path before the body is read,
/// so an oversized `Content-Length` can be refused with 413 without reading anything.
pub fn body_limit(method: &str, path: &str) -> u64 {
    match (method, path) {
        ("POST", "/v1/write" | "/v1/bulk" | "/v1/txn") => MAX_JSON_BODY,
        ("PUT", p) if p.starts_with("/v1/") => MAX_VALUE_LEN as u64,
        _ => MAX_OTHER_BODY,
    }
}

/// The 413 answer for a body over `limit`.
pub fn too_large(limit: u64) -> Response {
    Response::error(413, &format!("request body is over the limit of {limit} bytes"))
}

/// The 401 answer for a request without the right bearer token.
pub fn unauthorized() -> Response {
    let mut response = Response::error(401, "missing or wrong bearer token");
    response.headers.push(("WWW-Authenticate", "Bearer realm=\"walkv\"".to_string()));
    response
}

/// Maps a store error to its HTTP status: the one place this is decided.
pub fn error_status(error: &Error) -> u16 {
    match error {
        Error::Invalid(_) => 400,
        Error::TooLarge(_) => 413,
        Error::MemoryFull { .. } => 507,
        Error::Failed { .. } => 503,
        e if e.is_out_of_space() => 507,
        Error::Io { .. } | Error::Corrupt { .. } | Error::Locked { .. } => 500,
        Error::NotALog { .. } | Error::NewerFormat { .. } | Error::Damaged { .. } => 500,
    }
}

fn store_error(error: &Error) -> Response {
    store_failure(error_status(error), error)
}

/// The answer to a write the store refused, or that failed on its way to the log, with its
/// status (from [`error_status`]); a disk's error is also logged (at most once a second).
pub fn store_failure(status: u16, error: &Error) -> Response {
    if matches!(status, 500 | 507) {
        log_at_most_once_a_second(status, error);
    }
    Response::error(status, &error.to_string())
}

/// True for the requests that write: `PUT`, `DELETE` and `POST` of a key (a counter), and
/// `POST /v1/write`, `/v1/bulk`, `/v1/txn`. (The server parks them when the log's queue is
/// full.)
pub fn writes(method: &str, path: &str) -> bool {
    match method {
        "PUT" | "DELETE" | "POST" => path.starts_with("/v1/") && path.len() > "/v1/".len(),
        _ => false,
    }
}

/// Logs a store error a client is answered with, paths included (the client's copy has none),
/// at most once a second: on a full disk every write fails, and the log must not fill the disk
/// of whatever keeps it. (A failed log, 503, was logged once when it failed.)
fn log_at_most_once_a_second(status: u16, error: &Error) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST.swap(now, Ordering::Relaxed) != now {
        crate::log!("answering {status}: {error}");
    }
}

/// What the serving loop knows that the store does not.
#[derive(Debug, Clone, Copy)]
pub struct Serving<'a> {
    pub compaction: &'a Stats,
    /// A stop signal came: the loop only drains what is queued. `/readyz` says not ready.
    pub stopping: bool,
    /// Writes parked until the log's queue has room (`/status`, `/metrics`).
    pub waiting_writes: usize,
    /// Acknowledgements wait for an fsync: the oldest one not yet fsynced is older than the
    /// `interval` mode's bound (see `crate::server`).
    pub acks_wait_for_fsync: bool,
    /// A blocking read's wait is over (or the server stops): answer it as things are.
    pub wait_over: bool,
    /// Blocking reads held now (`/metrics`).
    pub watching_reads: usize,
}

/// `GET` or `HEAD` of `/livez` or `/readyz`: answered without the token.
pub fn is_probe(method: &str, path: &str) -> bool {
    matches!(method, "GET" | "HEAD") && matches!(path, "/livez" | "/readyz")
}

/// Answers one request against the store. With a token configured, a request without it gets
/// 401 and touches nothing (the probes excepted: see [`is_probe`]).
pub fn handle(store: &mut Store, req: &Request, auth: &Auth, serving: Serving) -> Response {
    if !is_probe(req.method, req.path) && !auth.allows(req.headers) {
        return unauthorized();
    }
    let mut response =
        route(store, req, serving).unwrap_or_else(|message| Response::error(400, &message));
    if req.path.starts_with("/v1/") {
        // What the answer shows is visible by the time it is sent: the seq visible now, or the
        // write it waits for, whichever is later.
        response.seq = Some(store.visible_seq().max(response.after.unwrap_or(0)));
    }
    response
}

/// The answer, or the message of a 400 for a parameter, header or key the request got wrong.
fn route(store: &mut Store, req: &Request, serving: Serving) -> Result<Response, String> {
    let takes_nothing = |endpoint| Params::parse(req.query, &[], endpoint).map(drop);
    match (req.method, req.path) {
        ("GET" | "HEAD", "/livez") => return takes_nothing("/livez").map(|()| live()),
        ("GET" | "HEAD", "/readyz") => {
            return takes_nothing("/readyz").map(|()| readyz(store, serving.stopping));
        }
        ("GET" | "HEAD", "/status") => {
            return takes_nothing("/status").map(|()| status(store, serving));
        }
        ("GET" | "HEAD", "/metrics") => {
            return takes_nothing("/metrics").map(|()| metrics(store, serving));
        }
        ("POST", "/sync") => return takes_nothing("POST /sync").map(|()| sync(store)),
        ("POST", "/compact") => {
            takes_nothing("POST /compact")?;
            let mut placeholder = Response::json(202, String::new());
            placeholder.compact = true;
            return Ok(placeholder);
        }
        (_, "/status" | "/livez" | "/readyz" | "/metrics") => {
            return Ok(method_not_allowed("GET, HEAD"));
        }
        (_, "/sync" | "/compact") => return Ok(method_not_allowed("POST")),
        // The change feed is served on the connections' threads (crate::intake); only a server
        // without one gets here.
        ("GET" | "HEAD", "/changes") => {
            return Ok(Response::error(503, "this server has no change feed"));
        }
        (_, "/changes") => return Ok(method_not_allowed("GET, HEAD")),
        _ => {}
    }
    let Some(segment) = req.path.strip_prefix("/v1/") else {
        return Ok(Response::error(404, "no such endpoint; the API is /v1/{key} and /v1/write"));
    };
    if segment.contains('/') {
        return Ok(Response::error(
            404,
            "no such endpoint; a key containing '/' must be percent-encoded as %2F",
        ));
    }
    if segment.is_empty() {
        return Ok(match req.method {
            "GET" | "HEAD" => list::list(store, req.query),
            _ => method_not_allowed("GET, HEAD"), // a key is never empty
        });
    }
    if !matches!(req.method, "GET" | "HEAD" | "PUT" | "POST" | "DELETE") {
        // `/v1/write` and `/v1/bulk` have always listed a key's methods (GET, PUT and DELETE
        // there are the key's); `/v1/txn` is the transaction endpoint, as the contract says.
        let allow = if segment == "txn" { "POST" } else { KEY_METHODS };
        return Ok(method_not_allowed(allow));
    }
    if matches!(req.method, "GET" | "HEAD") {
        let params = Params::parse(req.query, &["raw", "index", "wait"], "GET /v1/{key}")?;
        let raw = params.switch("raw")?;
        let blocking = watch::Blocking::parse(&params)?;
        let conditions = Conditions::parse(req.headers)?;
        let key = decode_key(segment)?;
        if let Some(blocking) = blocking
            && !serving.wait_over
        {
            let index = blocking.index.unwrap_or_else(|| store.visible_seq());
            if !store.changed_after(&key, index) {
                return Ok(watch::hold(key, index, blocking.wait));
            }
        }
        return Ok(get(store, &key, raw, &conditions));
    }
    write::route(store, req, segment)
}

fn method_not_allowed(allow: &str) -> Response {
    let mut response = Response::error(405, &format!("method not allowed; use {allow}"));
    response.headers.push(("Allow", allow.to_string()));
    response
}

/// The answer to `POST /compact` once the compaction has ended.
pub fn compacted(outcome: &Result<Report, Error>) -> Response {
    match outcome {
        Ok(r) => Response::json(
            200,
            format!(
                "{{\"live_bytes\":{},\"disk_bytes_before\":{},\"disk_bytes_after\":{},\
                 \"seconds\":{:.3}}}",
                r.live_bytes, r.disk_bytes_before, r.disk_bytes_after, r.seconds
            ),
        ),
        Err(e) => {
            let status = if e.is_out_of_space() { 507 } else { 500 };
            let message = format!("compaction failed: {e}; the old files still hold every write");
            Response::error(status, &message)
        }
    }
}

/// `POST /sync`: answered once everything written before it is on stable storage. The server
/// waits for the fsync before sending (the `sync` flag), so `synced_seq` is synced by then.
fn sync(store: &Store) -> Response {
    if store.log_failed() {
        return store_error(&Error::Failed { reason: "an earlier write or fsync failed".into() });
    }
    let last = store.last_issued();
    let mut response = Response::json(200, format!("{{\"synced_seq\":{last}}}"));
    response.sync = true;
    response.after = Some(last);
    response
}

/// `GET` or `HEAD` of a key. Every answer says `Cache-Control: no-cache`: a cache may keep a
/// value but must check it with its ETag (`If-None-Match`, a 304 if unchanged) before each use,
/// because a key can change at any moment and nothing predicts when. A freshness lifetime
/// (`max-age`) would let a cache serve a value overwritten a moment ago, and a key-value store
/// whose readers see old values without asking is not exact; `no-store` would forbid even the
/// revalidated copy, which is safe and saves the value's bytes.
fn get(store: &Store, key: &[u8], raw: bool, conditions: &Conditions) -> Response {
    let mut response = read_key(store, key, raw, conditions);
    response.cache_control = NO_CACHE;
    response
}

fn read_key(store: &Store, key: &[u8], raw: bool, conditions: &Conditions) -> Response {
    let found = store.get_expiring(key);
    let mut response = answer_read(found.map(|(value, seq, _)| (value, seq)), raw, conditions);
    if let Some((_, _, Some(expires))) = found
        && response.status == 200
    {
        // (The clock is read only for a key that has a TTL.)
        ttl::add_headers(&mut response, Some(expires), crate::expiry::now_ms());
    }
    response
}

/// The answer to a read that found `found` (the value and its ETag).
fn answer_read(found: Option<(&[u8], u64)>, raw: bool, conditions: &Conditions) -> Response {
    match conditions.evaluate(found.map(|(_, seq)| seq), true) {
        Verdict::Proceed => {}
        Verdict::Failed => return write::precondition_failed(found.map(|(_, seq)| seq)),
        Verdict::NotModified => {
            let seq = found.map(|(_, seq)| seq).unwrap_or_default();
            return Response::json(304, String::new()).with_etag(seq);
        }
    }
    let Some((value, seq)) = found else {
        return Response::error(404, "key not found");
    };
    if raw {
        let mut response = Response::json(200, String::new()).with_etag(seq);
        response.content_type = OCTETS;
        response.body = value.to_vec();
        return response;
    }
    match std::str::from_utf8(value) {
        Ok(text) => Response::json(200, json::object_with_string("value", text)).with_etag(seq),
        Err(_) => Response::error(
            406,
            "the value is not valid UTF-8, so JSON cannot carry it; fetch it with ?raw",
        ),
    }
}

/// The error for a body that starts with a byte order mark, which JSON forbids (RFC 8259 8.1)
/// and some Windows editors and `Out-File` add.
pub const BOM: &str = "the body starts with a UTF-8 byte order mark (EF BB BF), which JSON does \
                       not allow; save the file without it (UTF-8 without BOM)";

/// Extracts the key and value from a write body, or says exactly what is wrong with it. The
/// body is one object in the format of a `bulk` line, which is the format `walkv export`
/// writes ([`bulk::parse_line`]): `key` or `key_base64`, `value` or `value_base64`, and
/// nothing else; an unknown member is refused by name (`{"ttl":5}` must not be stored as if it
/// were not there).
pub fn parse_write_body(body: &[u8]) -> Result<bulk::Pair, String> {
    if body.is_empty() {
        return Err("empty body; expected a JSON object {\"key\":\"...\",\"value\":\"...\"}".into());
    }
    bulk::parse_line(body)
}

/// A member that must be a string, or what is wrong with it.
pub fn string_member(member: json::Member, name: &str) -> Result<String, String> {
    match member {
        json::Member::Missing => Err(format!("missing field `{name}`")),
        json::Member::Repeated => Err(format!("field `{name}` appears more than once")),
        json::Member::String(s) => Ok(s),
        json::Member::Number(_) => Err(format!("field `{name}` must be a string, not a number")),
        json::Member::Other(kind) => Err(format!("field `{name}` must be a string, not {kind}")),
    }
}

/// Percent-decodes a key segment; a key may be any bytes once decoded, but not empty or too long.
pub fn decode_key(segment: &str) -> Result<Vec<u8>, String> {
    let key = percent_decode(segment, "key")?;
    if key.is_empty() {
        return Err("key must not be empty".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!("key is {} bytes; the limit is {MAX_KEY_LEN}", key.len()));
    }
    Ok(key)
}

/// Percent-decodes `text` (`%XX` is the byte XX, anything else is itself); `what` names it in
/// the error.
pub fn percent_decode(text: &str, what: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    if !bytes.contains(&b'%') {
        return Ok(bytes.to_vec()); // most keys: one search and one copy, not a loop per byte
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            let Some(hex) = hex else {
                return Err(format!(
                    "invalid percent-encoding in {what} at byte {i}; write '%' as %25"
                ));
            };
            out.push(hex_digit(hex[0]) << 4 | hex_digit(hex[1]));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The value of one ASCII hex digit (already checked to be one).
fn hex_digit(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

#[cfg(test)]
mod tests;
