//! The commands that talk to a running server: `get`, `set`, `delete`, `ls`, `compact`.
//!
//! Each sends requests with [`crate::client`] and maps the answer to an exit code in one place,
//! [`finish`]: 2xx is success, 404 is "not found" (1), 412 is a failed condition (4, with the
//! key's current ETag), other 4xx are refusals (4), 5xx and unreadable answers server errors
//! (5), no connection 3.

use super::printable;
use crate::auth::TokenSource;
use crate::base64;
use crate::cli::{Condition, exit};
use crate::client::{self, Call, ClientError, Connection, Reply};
use crate::json::{self, Value};
use std::io::{Read, Write};

/// The `Authorization` header a client command sends, or the exit code if the token is bad.
pub(super) fn auth_header(token: &TokenSource) -> Result<Option<String>, u8> {
    token.load().map(|auth| auth.header_value()).map_err(|e| {
        crate::log!("{e}");
        exit::USAGE
    })
}

/// `walkv get KEY`: the value's exact bytes on standard output; with `etag`, its ETag alone on
/// a line of standard error (`"42"`).
pub fn get(addr: &str, token: &TokenSource, key: &[u8], etag: bool) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let target = format!("/v1/{}?raw", client::encode_key(key));
    finish(client::request(addr, auth.as_deref(), "GET", &target, b""), |reply| {
        if etag {
            // The ETag alone on its line, as `--if-match` takes it back: no `walkv:` prefix.
            let tag = printable::line(reply.header("etag").unwrap_or_default().as_bytes());
            let _ = writeln!(std::io::stderr(), "{tag}");
        }
        let mut out = std::io::stdout().lock();
        match out.write_all(&reply.body).and_then(|_| out.flush()) {
            Ok(()) => exit::OK,
            Err(e) => {
                crate::log!("cannot write to standard output: {e}");
                exit::FAILED
            }
        }
    })
}

/// The header a condition becomes.
fn condition_header(condition: Option<Condition>) -> Vec<(&'static str, String)> {
    match condition {
        None => Vec::new(),
        Some(Condition::IfMatch(seq)) => vec![("If-Match", format!("\"{seq}\""))],
        Some(Condition::IfAbsent) => vec![("If-None-Match", "*".to_string())],
    }
}

/// `walkv set KEY VALUE` (`value: None` reads standard input).
pub fn set(
    addr: &str,
    token: &TokenSource,
    key: &[u8],
    value: Option<&[u8]>,
    condition: Option<Condition>,
) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let stdin_value;
    let value = match value {
        Some(v) => v,
        None => {
            let mut buf = Vec::new();
            if let Err(e) = std::io::stdin().lock().read_to_end(&mut buf) {
                crate::log!("cannot read the value from standard input: {e}");
                return exit::FAILED;
            }
            stdin_value = buf;
            &stdin_value
        }
    };
    let target = format!("/v1/{}", client::encode_key(key));
    let headers = condition_header(condition);
    let call = Call { method: "PUT", target: &target, headers: &headers, body: value };
    finish(client::send(addr, auth.as_deref(), &call, client::TIMEOUT), |_| exit::OK)
}

/// `walkv delete KEY`.
pub fn delete(addr: &str, token: &TokenSource, key: &[u8], condition: Option<Condition>) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let target = format!("/v1/{}", client::encode_key(key));
    let headers = condition_header(condition);
    let call = Call { method: "DELETE", target: &target, headers: &headers, body: b"" };
    finish(client::send(addr, auth.as_deref(), &call, client::TIMEOUT), |_| exit::OK)
}

/// Keys `walkv ls` asks for per page: the most a page may hold.
const LS_PAGE: usize = crate::http::list::MAX_LIMIT;

/// `walkv ls [PREFIX]`: every key starting with `prefix`, following `next` to the end, on one
/// connection. Pages are always asked for in base64, so any key comes through exactly.
pub fn list(addr: &str, token: &TokenSource, prefix: &[u8], null: bool) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let mut connection = match Connection::open(addr, auth.as_deref()) {
        Ok(c) => c,
        Err(e) => return finish(Err(e), |_| exit::OK),
    };
    let mut after: Option<String> = None;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        let mut target =
            format!("/v1/?encoding=base64&limit={LS_PAGE}&prefix={}", client::encode_key(prefix));
        if let Some(after) = &after {
            target.push_str("&after=");
            target.push_str(&client::encode_key(after.as_bytes()));
        }
        let mut page = None;
        let code =
            finish(connection.call(&Call::new("GET", &target, b"")), |reply| {
                match parse_page(&reply.body) {
                    Ok(p) => {
                        page = Some(p);
                        exit::OK
                    }
                    Err(why) => {
                        crate::log!("unreadable listing page from the server: {why}");
                        exit::SERVER_ERROR
                    }
                }
            });
        let Some((keys, next)) = page else { return code };
        for key in &keys {
            let written = if null {
                out.write_all(key).and_then(|_| out.write_all(b"\0"))
            } else {
                out.write_all(printable::line(key).as_bytes()).and_then(|_| out.write_all(b"\n"))
            };
            if let Err(e) = written {
                crate::log!("cannot write to standard output: {e}");
                return exit::FAILED;
            }
        }
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    match out.flush() {
        Ok(()) => exit::OK,
        Err(e) => {
            crate::log!("cannot write to standard output: {e}");
            exit::FAILED
        }
    }
}

/// A base64 listing page: its keys' bytes, and `next` as sent (base64).
fn parse_page(body: &[u8]) -> Result<(Vec<Vec<u8>>, Option<String>), String> {
    let Ok(Value::Object(members)) = json::parse(body) else {
        return Err("not a JSON object".into());
    };
    let member = |name: &str| members.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let Some(Value::Array(items)) = member("keys") else {
        return Err("no `keys` array".into());
    };
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(text) = item else { return Err("a key that is not a string".into()) };
        keys.push(base64::decode(text.as_bytes())?);
    }
    let next = match member("next") {
        Some(Value::String(next)) => Some(next.clone()),
        Some(Value::Null) => None,
        _ => return Err("no `next`".into()),
    };
    Ok((keys, next))
}

/// How long `walkv compact` waits for the server's answer.
const COMPACT_WAIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// `walkv compact`: asks the server to compact its log and prints its report (JSON) once done.
pub fn compact(addr: &str, token: &TokenSource) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let reply =
        client::request_waiting(addr, auth.as_deref(), "POST", "/compact", b"", COMPACT_WAIT);
    finish(reply, |reply| {
        say!("{}", String::from_utf8_lossy(&reply.body));
        exit::OK
    })
}

/// Maps a client result to an exit code, running `on_success` for a 2xx.
pub(super) fn finish(
    result: Result<Reply, ClientError>,
    on_success: impl FnOnce(Reply) -> u8,
) -> u8 {
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => {
            crate::log!("{e}");
            return match e {
                ClientError::Connect { .. } => exit::UNAVAILABLE,
                _ => exit::SERVER_ERROR,
            };
        }
    };
    let message = printable::line(&reply.body);
    match reply.status {
        200..=299 => on_success(reply),
        404 => {
            crate::log!("key not found");
            exit::NOT_FOUND
        }
        412 => {
            match reply.header("etag") {
                Some(etag) => crate::log!(
                    "precondition failed: the key's current ETag is {}; nothing was written",
                    printable::line(etag.as_bytes())
                ),
                None => {
                    crate::log!("precondition failed: the key has no value; nothing was written")
                }
            }
            exit::REJECTED
        }
        400..=499 => {
            crate::log!("the server refused the request ({}): {message}", reply.status);
            exit::REJECTED
        }
        status => {
            crate::log!("the server failed ({status}): {message}");
            exit::SERVER_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Listing pages parse to exact bytes; anything else is an error, never a panic.
    #[test]
    fn parses_listing_pages() {
        let (keys, next) = parse_page(br#"{"keys":["YQ==","/wA="],"next":"/wA="}"#).unwrap();
        assert_eq!((keys, next), (vec![b"a".to_vec(), b"\xff\x00".to_vec()], Some("/wA=".into())));
        assert_eq!(parse_page(br#"{"keys":[],"next":null}"#).unwrap(), (vec![], None));
        for bad in [
            &b""[..],
            b"[]",
            br#"{"keys":[1],"next":null}"#,
            br#"{"keys":["a"],"next":null}"#,
            br#"{"keys":[]}"#,
        ] {
            assert!(parse_page(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
