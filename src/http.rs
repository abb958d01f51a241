//! The HTTP API as a plain function: [`handle`] maps (method, path, query, headers, body) to a
//! [`Response`], with no socket in sight, so every rule below is tested without a network.
//!
//! | request                         | success                                  | notes                                   |
//! |---------------------------------|------------------------------------------|-----------------------------------------|
//! | `GET /v1/{key}`                 | 200 `{"value":"..."}` (application/json) | 404 `{"error":"key not found"}`          |
//! | `GET /v1/{key}?raw`             | 200, the value's bytes (octet-stream)    | works for any bytes                     |
//! | `HEAD /v1/{key}`                | as GET, without the body                 |                                         |
//! | `POST /v1/write` `{"key","value"}` | 201 `{"seq":N}`                       | the original Go service's write         |
//! | `PUT /v1/{key}` (raw body)      | 201 `{"seq":N}` if new, 200 if replaced  | the body is the value, any bytes        |
//! | `DELETE /v1/{key}`              | 200 `{"deleted":true,"seq":N}` / `{"deleted":false}` | idempotent             |
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
//! Keys are one percent-decoded path segment, so `/`, `=`, spaces and any byte work when encoded
//! (`%2F`, `%3D`, `%20`, ...). Values are bytes. JSON can only carry text, so a JSON GET of a value
//! that is not UTF-8 answers 406 and points at `?raw`, rather than altering the bytes.
//!
//! Every error is JSON, `{"error":"..."}`, saying exactly what was wrong. Status codes for store
//! errors are chosen in one place, [`error_status`].

use crate::auth::Auth;
use crate::compactor::{Report, Stats};
use crate::error::Error;
use crate::json::{self, Value};
use crate::store::Store;
use crate::wal::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// Largest `POST /v1/write` body: room for a maximal key and value even with heavy escaping.
pub const MAX_JSON_BODY: u64 = 8 << 20;
/// Largest body accepted on requests that do not use one (GET, HEAD, DELETE, unknown paths).
pub const MAX_OTHER_BODY: u64 = 64 << 10;

const JSON: &str = "application/json";
const OCTETS: &str = "application/octet-stream";
/// Methods a key path answers, for `Allow` on 405.
const KEY_METHODS: &str = "GET, HEAD, PUT, DELETE";
const WRITE_METHODS: &str = "POST, GET, HEAD, PUT, DELETE";

/// An HTTP request, reduced to what routing needs.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, without the query string, still percent-encoded.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// What to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// True if this answer must not be sent before the log is synced (`?sync`, `POST /sync`).
    pub sync: bool,
    /// True for `POST /compact`: the server starts or joins a compaction and sends the real
    /// answer ([`compacted`]) when it ends; this response is only a placeholder.
    pub compact: bool,
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers, with values walkv wrote itself (never bytes copied from the request).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn json(status: u16, body: String) -> Response {
        Response {
            sync: false,
            compact: false,
            status,
            content_type: JSON,
            headers: Vec::new(),
            body: body.into_bytes(),
        }
    }

    /// `{"error":"<message>"}` with the given status.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, json::object_with_string("error", message))
    }
}

/// The body size limit for a request, decided from its method and path before the body is read,
/// so an oversized `Content-Length` can be refused with 413 without reading anything.
pub fn body_limit(method: &str, path: &str) -> u64 {
    match (method, path) {
        ("POST", "/v1/write") => MAX_JSON_BODY,
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
        Error::Failed { .. } => 503,
        e if e.is_out_of_space() => 507,
        Error::Io { .. } | Error::Corrupt { .. } | Error::Locked { .. } => 500,
        Error::NotALog { .. } | Error::NewerFormat { .. } | Error::Damaged { .. } => 500,
    }
}

fn store_error(error: &Error) -> Response {
    Response::error(error_status(error), &error.to_string())
}

/// What the serving loop knows that the store does not.
#[derive(Debug, Clone, Copy)]
pub struct Serving<'a> {
    pub compaction: &'a Stats,
    /// A stop signal came: the loop only drains what is queued. `/readyz` says not ready.
    pub stopping: bool,
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
    let mut response = route(store, req, serving);
    let is_write = matches!(req.method, "PUT" | "POST" | "DELETE");
    if is_write && (200..300).contains(&response.status) && has_param(req.query, "sync") {
        response.sync = true;
    }
    response
}

fn route(store: &mut Store, req: &Request, serving: Serving) -> Response {
    match (req.method, req.path) {
        ("GET" | "HEAD", "/livez") => return live(),
        ("GET" | "HEAD", "/readyz") => return readyz(store, serving.stopping),
        ("GET" | "HEAD", "/status") => return status(store, serving.compaction),
        ("GET" | "HEAD", "/metrics") => return metrics(store, serving.stopping),
        ("POST", "/sync") => return sync(store),
        ("POST", "/compact") => {
            let mut placeholder = Response::json(202, String::new());
            placeholder.compact = true;
            return placeholder;
        }
        (_, "/status" | "/livez" | "/readyz" | "/metrics") => {
            return method_not_allowed("GET, HEAD");
        }
        (_, "/sync" | "/compact") => return method_not_allowed("POST"),
        _ => {}
    }
    let Some(segment) = req.path.strip_prefix("/v1/") else {
        return Response::error(404, "no such endpoint; the API is /v1/{key} and /v1/write");
    };
    if segment.contains('/') {
        return Response::error(
            404,
            "no such endpoint; a key containing '/' must be percent-encoded as %2F",
        );
    }
    if segment == "write" && req.method == "POST" {
        return write_json(store, req.body);
    }
    let key = match decode_key(segment) {
        Ok(key) => key,
        Err(message) => return Response::error(400, &message),
    };
    match req.method {
        "GET" | "HEAD" => get(store, &key, has_param(req.query, "raw")),
        "PUT" => put(store, &key, req.body),
        "DELETE" => delete(store, &key),
        _ if segment == "write" => method_not_allowed(WRITE_METHODS),
        _ => method_not_allowed(KEY_METHODS),
    }
}

fn method_not_allowed(allow: &str) -> Response {
    let mut response = Response::error(405, &format!("method not allowed; use {allow}"));
    response.headers.push(("Allow", allow.to_string()));
    response
}

/// The answer to any request while the log is being replayed at startup: `/livez` is 200,
/// `/readyz` 503 `replaying`, everything else 503 with `Retry-After: 1`.
pub fn while_replaying(method: &str, path: &str) -> Response {
    match (method, path) {
        ("GET" | "HEAD", "/livez") => live(),
        ("GET" | "HEAD", "/readyz") => not_ready("replaying"),
        _ => {
            let message = "the server is replaying its log and serves nothing else yet; try \
                           again in a second (GET /readyz says when it is ready)";
            let mut response = Response::error(503, message);
            response.headers.push(("Retry-After", "1".to_string()));
            response
        }
    }
}

/// `GET /readyz`: 200 while the log takes writes and no stop signal came; else 503 with the
/// reason (`log_failed`, `stopping`), so that a load balancer sends traffic elsewhere.
fn readyz(store: &Store, stopping: bool) -> Response {
    match () {
        _ if store.log_failed() => not_ready("log_failed"),
        _ if stopping => not_ready("stopping"),
        _ => Response::json(200, r#"{"ready":true}"#.into()),
    }
}

/// `GET /livez`: the loop runs, which is all it says.
fn live() -> Response {
    Response::json(200, r#"{"live":true}"#.into())
}

/// `/readyz` when not ready, with the reason (a fixed word, never client text).
fn not_ready(reason: &str) -> Response {
    Response::json(503, format!(r#"{{"ready":false,"reason":"{reason}"}}"#))
}

/// `GET /status`: readiness, how far the log is written and synced, and its files.
fn status(store: &Store, compaction: &Stats) -> Response {
    let error = match &compaction.last_error {
        Some(e) => {
            let mut text = String::new();
            json::write_string(&mut text, e);
            text
        }
        None => "null".to_string(),
    };
    match store.seqs() {
        Ok((last, synced)) if !store.log_failed() => Response::json(
            200,
            format!(
                "{{\"ready\":true,\"last_seq\":{last},\"synced_seq\":{synced},\
                 \"disk_bytes\":{},\"live_bytes\":{},\"compacting\":{},\"compactions\":{},\
                 \"last_compaction_error\":{error}}}",
                store.disk_bytes(),
                store.live_bytes(),
                compaction.compacting,
                compaction.completed
            ),
        ),
        _ => Response::json(
            503,
            "{\"ready\":false,\"error\":\"the log has stopped taking writes; restart the server\"}"
                .to_string(),
        ),
    }
}

/// `GET /metrics`: the counters of [`crate::metrics::METRICS`] and what the store says now.
fn metrics(store: &Store, stopping: bool) -> Response {
    let (last_seq, synced_seq) = store.seqs().unwrap_or_default();
    let gauges = crate::metrics::Gauges {
        keys: store.len() as u64,
        live_bytes: store.live_bytes(),
        disk_bytes: store.disk_bytes(),
        last_seq,
        synced_seq,
        ready: !store.log_failed() && !stopping,
    };
    let mut response = Response::json(200, crate::metrics::text::render(&gauges));
    response.content_type = crate::metrics::text::CONTENT_TYPE;
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
/// performs the fsync before sending (the `sync` flag), so `last_seq` is synced by then.
fn sync(store: &Store) -> Response {
    match store.seqs() {
        Ok((last, _)) if !store.log_failed() => {
            let mut response = Response::json(200, format!("{{\"synced_seq\":{last}}}"));
            response.sync = true;
            response
        }
        Ok(_) => store_error(&Error::Failed { reason: "an earlier write or fsync failed".into() }),
        Err(e) => store_error(&e),
    }
}

fn get(store: &Store, key: &[u8], raw: bool) -> Response {
    let Some(value) = store.get(key) else {
        return Response::error(404, "key not found");
    };
    if raw {
        return Response {
            sync: false,
            compact: false,
            status: 200,
            content_type: OCTETS,
            headers: Vec::new(),
            body: value.to_vec(),
        };
    }
    match std::str::from_utf8(value) {
        Ok(text) => Response::json(200, json::object_with_string("value", text)),
        Err(_) => Response::error(
            406,
            "the value is not valid UTF-8, so JSON cannot carry it; fetch it with ?raw",
        ),
    }
}

fn put(store: &mut Store, key: &[u8], value: &[u8]) -> Response {
    match store.set(key, value) {
        Ok((seq, created)) => Response::json(if created { 201 } else { 200 }, seq_body(seq)),
        Err(e) => store_error(&e),
    }
}

fn delete(store: &mut Store, key: &[u8]) -> Response {
    match store.delete(key) {
        Ok(Some(seq)) => Response::json(200, format!("{{\"deleted\":true,\"seq\":{seq}}}")),
        Ok(None) => Response::json(200, "{\"deleted\":false}".to_string()),
        Err(e) => store_error(&e),
    }
}

/// `POST /v1/write`, the original service's write: a JSON object with string `key` and `value`.
fn write_json(store: &mut Store, body: &[u8]) -> Response {
    let (key, value) = match parse_write_body(body) {
        Ok(kv) => kv,
        Err(message) => return Response::error(400, &message),
    };
    match store.set(key.as_bytes(), value.as_bytes()) {
        Ok((seq, _)) => Response::json(201, seq_body(seq)),
        Err(e) => store_error(&e),
    }
}

fn seq_body(seq: u64) -> String {
    format!("{{\"seq\":{seq}}}")
}

/// Extracts `key` and `value` from a write body, or says exactly what is wrong with it. Other
/// members are ignored, as the Go service's decoder did; a repeated `key` or `value` is refused
/// because it is ambiguous.
pub fn parse_write_body(body: &[u8]) -> Result<(String, String), String> {
    if body.is_empty() {
        return Err("empty body; expected a JSON object {\"key\":\"...\",\"value\":\"...\"}".into());
    }
    let Value::Object(members) = json::parse(body).map_err(|e| e.to_string())? else {
        return Err("the body must be a JSON object {\"key\":\"...\",\"value\":\"...\"}".into());
    };
    let key = string_member(&members, "key")?;
    let value = string_member(&members, "value")?;
    if key.is_empty() {
        return Err("`key` must not be empty".into());
    }
    Ok((key, value))
}

fn string_member(members: &[(String, Value)], name: &str) -> Result<String, String> {
    let mut found = members.iter().filter(|(n, _)| n == name);
    match (found.next(), found.next()) {
        (None, _) => Err(format!("missing field `{name}`")),
        (Some(_), Some(_)) => Err(format!("field `{name}` appears more than once")),
        (Some((_, Value::String(s))), None) => Ok(s.clone()),
        (Some((_, other)), None) => {
            Err(format!("field `{name}` must be a string, not {}", other.kind()))
        }
    }
}

/// True if the query string holds `name` or `name=<anything>` among its `&`-separated parts.
fn has_param(query: Option<&str>, name: &str) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|p| p == name || p.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
    })
}

/// Percent-decodes a key segment; a key may be any bytes once decoded, but not empty or too long.
pub fn decode_key(segment: &str) -> Result<Vec<u8>, String> {
    let bytes = segment.as_bytes();
    let mut key = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            let Some(hex) = hex else {
                return Err(format!(
                    "invalid percent-encoding in key at byte {i}; write '%' as %25"
                ));
            };
            key.push(hex_digit(hex[0]) << 4 | hex_digit(hex[1]));
            i += 3;
        } else {
            key.push(bytes[i]);
            i += 1;
        }
    }
    if key.is_empty() {
        return Err("key must not be empty".into());
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!("key is {} bytes; the limit is {MAX_KEY_LEN}", key.len()));
    }
    Ok(key)
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
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    /// A store in a temp dir; keep the `TempDir` alive as long as the store.
    fn store(name: &str) -> (TempDir, Store) {
        let dir = TempDir::new(name);
        let options = crate::wal::Options { mode: crate::wal::SyncMode::Interval, boot: [0; 16] };
        let store = Store::open(&dir, options).unwrap().0;
        (dir, store)
    }

    fn call(store: &mut Store, method: &str, target: &str, body: &[u8]) -> Response {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let stats = Stats::default();
        let serving = Serving { compaction: &stats, stopping: false };
        handle(store, &Request { method, path, query, headers: &[], body }, &Auth::none(), serving)
    }

    fn text(r: &Response) -> String {
        String::from_utf8_lossy(&r.body).into_owned()
    }

    /// The Go service's contract: POST /v1/write then GET /v1/{key}.
    #[test]
    fn original_contract() {
        let (_dir, mut s) = store("contract");
        let r = call(&mut s, "POST", "/v1/write", br#"{"key":"greeting","value":"hello"}"#);
        assert_eq!((r.status, text(&r)), (201, r#"{"seq":1}"#.to_string()));
        let r = call(&mut s, "GET", "/v1/greeting", b"");
        assert_eq!(
            (r.status, r.content_type, text(&r)),
            (200, JSON, r#"{"value":"hello"}"#.into())
        );
        let r = call(&mut s, "GET", "/v1/missing", b"");
        assert_eq!((r.status, text(&r)), (404, r#"{"error":"key not found"}"#.to_string()));
    }

    /// Each malformed write body gets 400 and a message naming the problem.
    #[test]
    fn bad_write_bodies_are_400_with_reason() {
        let (_dir, mut s) = store("bad");
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty body"),
            (b"{", "invalid JSON"),
            (b"[]", "must be a JSON object"),
            (br#"{"value":"v"}"#, "missing field `key`"),
            (br#"{"key":"k"}"#, "missing field `value`"),
            (br#"{"key":1,"value":"v"}"#, "`key` must be a string, not a number"),
            (br#"{"key":"k","value":null}"#, "`value` must be a string, not null"),
            (br#"{"key":"","value":"v"}"#, "`key` must not be empty"),
            (br#"{"key":"a","key":"b","value":"v"}"#, "more than once"),
            (br#"{"key":"\ud800","value":"v"}"#, "surrogate"),
        ];
        for (body, reason) in cases {
            let r = call(&mut s, "POST", "/v1/write", body);
            assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
            assert!(text(&r).contains(reason), "{} -> {}", String::from_utf8_lossy(body), text(&r));
        }
        assert!(s.is_empty(), "a rejected write must change nothing");
    }

    /// Field order, whitespace, extra fields and escapes do not matter; empty values are values.
    #[test]
    fn write_body_is_read_exactly() {
        let (_dir, mut s) = store("exact");
        let body =
            " {\n \"extra\": [1, {}], \"value\" : \"\\u00e9\\ud83d\\ude00\\n\" ,\"key\":\"k\"}\t";
        assert_eq!(call(&mut s, "POST", "/v1/write", body.as_bytes()).status, 201);
        assert_eq!(s.get(b"k"), Some("é😀\n".as_bytes()));
        assert_eq!(call(&mut s, "POST", "/v1/write", br#"{"key":"e","value":""}"#).status, 201);
        assert_eq!(text(&call(&mut s, "GET", "/v1/e", b"")), r#"{"value":""}"#);
    }

    /// PUT, DELETE, HEAD and ?raw, with percent-encoded keys holding any bytes.
    #[test]
    fn curl_style_endpoints() {
        let (_dir, mut s) = store("curl");
        assert_eq!(call(&mut s, "PUT", "/v1/a%2Fb%3Dc%20d%00%FF", b"\x00\xffbin").status, 201);
        assert_eq!(s.get(b"a/b=c d\x00\xff"), Some(&b"\x00\xffbin"[..]));
        assert_eq!(call(&mut s, "PUT", "/v1/a%2Fb%3Dc%20d%00%FF", b"v2").status, 200);
        let r = call(&mut s, "GET", "/v1/a%2fb%3dc%20d%00%ff?raw", b"");
        assert_eq!((r.status, r.content_type, r.body.as_slice()), (200, OCTETS, &b"v2"[..]));
        assert_eq!(call(&mut s, "PUT", "/v1/bin", b"\xff").status, 201);
        let r = call(&mut s, "GET", "/v1/bin", b"");
        assert_eq!(r.status, 406);
        assert!(text(&r).contains("?raw"));
        assert_eq!(call(&mut s, "GET", "/v1/bin?x=1&raw", b"").body, b"\xff");
        assert_eq!(call(&mut s, "HEAD", "/v1/bin", b"").status, 406);
        let r = call(&mut s, "DELETE", "/v1/bin", b"");
        assert_eq!((r.status, text(&r)), (200, r#"{"deleted":true,"seq":4}"#.to_string()));
        let r = call(&mut s, "DELETE", "/v1/bin", b"");
        assert_eq!((r.status, text(&r)), (200, r#"{"deleted":false}"#.to_string()));
        assert_eq!(call(&mut s, "GET", "/v1/bin", b"").status, 404);
    }

    /// Unknown paths, wrong methods, bad keys: the right status and a JSON error.
    #[test]
    fn routing_errors() {
        let (_dir, mut s) = store("routing");
        for (method, target, status) in [
            ("GET", "/", 404),
            ("GET", "/v2/x", 404),
            ("GET", "/v1/a/b", 404),
            ("GET", "/v1/", 400),
            ("GET", "/v1/%zz", 400),
            ("GET", "/v1/%4", 400),
            ("GET", "/v1/%+1", 400),
            ("POST", "/v1/key", 405),
            ("PATCH", "/v1/write", 405),
        ] {
            let r = call(&mut s, method, target, b"");
            assert_eq!(r.status, status, "{method} {target}");
            assert!(json::parse(&r.body).is_ok() && text(&r).starts_with("{\"error\":"));
        }
        let r = call(&mut s, "POST", "/v1/key", b"");
        assert_eq!(r.headers, vec![("Allow", KEY_METHODS.to_string())]);
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert_eq!(call(&mut s, "GET", &format!("/v1/{long}"), b"").status, 400);
        let big = vec![b'x'; MAX_VALUE_LEN + 1];
        assert_eq!(call(&mut s, "PUT", "/v1/big", &big).status, 413);
    }

    /// `/status` reports readiness and sequence numbers; once the log has failed it says not
    /// ready (503), writes and `POST /sync` get 503, and reads go on.
    #[test]
    fn status_and_a_failed_log() {
        let (_dir, mut s) = store("status");
        assert_eq!(call(&mut s, "PUT", "/v1/k", b"v").status, 201);
        let r = call(&mut s, "GET", "/status", b"");
        let disk = s.disk_bytes();
        assert!(disk > 0);
        assert_eq!(
            (r.status, text(&r)),
            (
                200,
                format!(
                    "{{\"ready\":true,\"last_seq\":1,\"synced_seq\":0,\"disk_bytes\":{disk},\
                     \"live_bytes\":23,\"compacting\":false,\"compactions\":0,\
                     \"last_compaction_error\":null}}"
                )
            )
        );
        let r = call(&mut s, "POST", "/sync", b"");
        assert_eq!((r.status, r.sync, text(&r)), (200, true, r#"{"synced_seq":1}"#.into()));
        assert!(call(&mut s, "PUT", "/v1/k?sync", b"w").sync);
        assert!(!call(&mut s, "PUT", "/v1/k?syncx", b"w").sync);
        assert!(!call(&mut s, "GET", "/v1/k?sync", b"").sync, "only writes wait for an fsync");

        s.fail_log_for_test();
        let r = call(&mut s, "GET", "/status", b"");
        assert_eq!(r.status, 503);
        assert!(text(&r).contains(r#""ready":false"#), "{}", text(&r));
        assert_eq!(call(&mut s, "PUT", "/v1/k2", b"v").status, 503);
        assert_eq!(call(&mut s, "POST", "/v1/write", br#"{"key":"a","value":"b"}"#).status, 503);
        assert_eq!(call(&mut s, "POST", "/sync", b"").status, 503);
        assert_eq!(call(&mut s, "GET", "/v1/k?raw", b"").body, b"w");
    }

    fn serve(stats: &Stats) -> Serving<'_> {
        Serving { compaction: stats, stopping: false }
    }

    /// The probes: `/livez` always 200; `/readyz` 503 once the log failed or a stop began; both
    /// without the token, and nothing else is opened by that.
    #[test]
    fn probes_answer_without_the_token() {
        let (_dir, mut s) = store("probes");
        let auth = Auth::from_token("t0ken").unwrap();
        let stats = Stats::default();
        let probe = |s: &mut Store, method, path, stopping| {
            let req = Request { method, path, query: None, headers: &[], body: b"" };
            let r = handle(s, &req, &auth, Serving { compaction: &stats, stopping });
            (r.status, String::from_utf8(r.body).unwrap())
        };
        assert_eq!(probe(&mut s, "GET", "/livez", false), (200, r#"{"live":true}"#.into()));
        assert_eq!(probe(&mut s, "HEAD", "/livez", false).0, 200);
        assert_eq!(probe(&mut s, "GET", "/readyz", false), (200, r#"{"ready":true}"#.into()));
        let stopping = (503, r#"{"ready":false,"reason":"stopping"}"#.to_string());
        assert_eq!(probe(&mut s, "GET", "/readyz", true), stopping);
        assert_eq!(probe(&mut s, "GET", "/livez", true).0, 200);
        assert_eq!(probe(&mut s, "POST", "/readyz", false).0, 401, "only GET and HEAD are open");
        assert_eq!(probe(&mut s, "GET", "/status", false).0, 401);
        assert_eq!(probe(&mut s, "GET", "/livez/", false).0, 401);
        assert_eq!(call(&mut s, "DELETE", "/livez", b"").status, 405);
        s.fail_log_for_test();
        let failed = (503, r#"{"ready":false,"reason":"log_failed"}"#.to_string());
        assert_eq!(probe(&mut s, "GET", "/readyz", false), failed);
        assert_eq!(probe(&mut s, "GET", "/livez", false).0, 200);
    }

    /// While replaying: alive, not ready, and everything else 503 with `Retry-After`.
    #[test]
    fn answers_while_replaying() {
        let r = while_replaying("GET", "/livez");
        assert_eq!((r.status, text(&r)), (200, r#"{"live":true}"#.into()));
        let r = while_replaying("HEAD", "/readyz");
        assert_eq!((r.status, text(&r)), (503, r#"{"ready":false,"reason":"replaying"}"#.into()));
        for (method, path) in [("GET", "/v1/k"), ("PUT", "/v1/k"), ("GET", "/status")] {
            let r = while_replaying(method, path);
            assert_eq!(r.status, 503, "{method} {path}");
            assert_eq!(r.headers, vec![("Retry-After", "1".to_string())]);
            assert!(text(&r).contains("replaying its log"), "{}", text(&r));
        }
    }

    /// With a token, every endpoint needs `Authorization: Bearer <token>`; without it: 401, a
    /// JSON error, `WWW-Authenticate`, and nothing read or written.
    #[test]
    fn token_guards_every_endpoint() {
        let (_dir, mut s) = store("auth");
        let auth = Auth::from_token("t0ken").unwrap();
        let good = [("Authorization", "Bearer t0ken")];
        let wrong = [("Authorization", "Bearer t0keN")];
        for (method, path, body) in [
            ("PUT", "/v1/k", &b"v"[..]),
            ("GET", "/v1/k", b""),
            ("DELETE", "/v1/k", b""),
            ("POST", "/v1/write", br#"{"key":"k","value":"v"}"#),
            ("GET", "/status", b""),
            ("POST", "/sync", b""),
            ("GET", "/nowhere", b""),
        ] {
            for headers in [&wrong[..], &[]] {
                let req = Request { method, path, query: None, headers, body };
                let r = handle(&mut s, &req, &auth, serve(&Stats::default()));
                assert_eq!(r.status, 401, "{method} {path}");
                assert!(text(&r).starts_with("{\"error\":"));
                assert_eq!(r.headers[0].0, "WWW-Authenticate");
            }
        }
        assert!(s.is_empty(), "nothing was written without the token");
        let req = Request { method: "PUT", path: "/v1/k", query: None, headers: &good, body: b"v" };
        assert_eq!(handle(&mut s, &req, &auth, serve(&Stats::default())).status, 201);
    }

    /// Random request lines and bodies never panic the router (`WALKV_FUZZ_ITERS` / 4 of them).
    #[test]
    fn random_requests_never_panic() {
        let (_dir, mut s) = store("fuzz");
        let mut rng = crate::testutil::Rng::new(crate::testutil::knob("WALKV_FUZZ_SEED", 11));
        let pieces = ["/v1/", "write", "%", "%2F", "/", "?raw", "a", "\u{e9}", "%zz", "?"];
        let methods = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", ""];
        for _ in 0..crate::testutil::knob("WALKV_FUZZ_ITERS", 20_000) / 4 {
            let target: String =
                (0..rng.below(6)).map(|_| pieces[rng.below(pieces.len())]).collect();
            let len = rng.below(40);
            let body = rng.bytes(len);
            let r = call(&mut s, methods[rng.below(methods.len())], &target, &body);
            assert!((200..600).contains(&r.status));
        }
    }
}
