//! The commands that talk to a running server: `get`, `set`, `delete`, `ls`, `compact`.
//!
//! Each sends requests with [`crate::client`] and maps the answer to an exit code with
//! [`super::answer::finish`].

use super::answer::{auth_header, finish};
use super::printable;
use crate::auth::TokenSource;
use crate::base64;
use crate::cli::{Condition, exit};
use crate::client::{self, Call, Connection};
use crate::json::{self, Value};
use crate::wal::MAX_VALUE_LEN;
use std::io::{Read, Write};

/// `walkv get KEY`: the value's exact bytes on standard output; with `etag`, its ETag alone on
/// a line of standard error (`"42"`); with `wait`, after the key's next write
/// (`watch.rs`).
pub fn get(addr: &str, token: &TokenSource, key: &[u8], etag: bool, wait: bool) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    if wait {
        return super::watch::get_wait(addr, auth.as_deref(), key);
    }
    let target = format!("/v1/{}?raw", client::encode_key(key));
    finish(client::request(addr, auth.as_deref(), "GET", &target, b""), |reply| {
        if etag {
            // The ETag alone on its line, as `--if-match` takes it back: no `walkv:` prefix.
            let tag = printable::line(reply.header("etag").unwrap_or_default().as_bytes());
            let _ = writeln!(std::io::stderr(), "{tag}");
        }
        let mut out = std::io::stdout().lock();
        stdout_result(out.write_all(&reply.body).and_then(|_| out.flush()))
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

/// `walkv set KEY VALUE` (`value: None` reads standard input), with `--ttl` if `ttl` is some
/// (already checked to be a TTL).
pub fn set(
    addr: &str,
    token: &TokenSource,
    key: &[u8],
    value: Option<&[u8]>,
    condition: Option<Condition>,
    ttl: Option<&str>,
) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let stdin_value;
    let value = match value {
        Some(v) if v.len() > MAX_VALUE_LEN => return too_large(),
        Some(v) => v,
        None => match read_stdin_value() {
            Ok(v) => {
                stdin_value = v;
                &stdin_value
            }
            Err(code) => return code,
        },
    };
    let mut target = format!("/v1/{}", client::encode_key(key));
    if let Some(ttl) = ttl {
        target.push_str(&format!("?ttl={ttl}"));
    }
    let headers = condition_header(condition);
    let call = Call { method: "PUT", target: &target, headers: &headers, body: value };
    finish(client::send(addr, auth.as_deref(), &call, client::TIMEOUT), |_| exit::OK)
}

/// The value of `walkv set KEY -`: standard input, at most [`MAX_VALUE_LEN`] bytes read. A
/// closed standard input (`<&-`, as cron and `ssh host cmd <&-` leave it) is an error, not an
/// empty value: the caller meant to pipe something in (an empty value comes from `</dev/null`).
fn read_stdin_value() -> Result<Vec<u8>, u8> {
    let stdin = std::io::stdin();
    if stdin_was_closed() {
        crate::log!(
            "standard input is closed, so `-` has no value to read; pipe the value in, or give \
             it as an argument (use </dev/null for an empty value); nothing was written"
        );
        return Err(exit::USAGE);
    }
    let mut buf = Vec::new();
    let limit = MAX_VALUE_LEN as u64 + 1;
    if let Err(e) = stdin.lock().take(limit).read_to_end(&mut buf) {
        crate::log!("cannot read the value from standard input: {e}; nothing was written");
        return Err(exit::FAILED);
    }
    if buf.len() > MAX_VALUE_LEN {
        return Err(too_large());
    }
    Ok(buf)
}

/// True if walkv started with standard input closed. Rust's runtime opens `/dev/null` in its
/// place before `main` (so that no file takes descriptor 0 by accident), read-write; a shell's
/// `</dev/null` opens it read-only. So: descriptor 0 is `/dev/null` opened `O_RDWR`.
fn stdin_was_closed() -> bool {
    let Ok(target) = std::fs::read_link("/proc/self/fd/0") else { return false };
    if target != std::path::Path::new("/dev/null") {
        return false;
    }
    let Ok(info) = std::fs::read_to_string("/proc/self/fdinfo/0") else { return false };
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:"));
    flags.and_then(|f| u32::from_str_radix(f.trim(), 8).ok()).is_some_and(|f| f & 3 == 2)
}

/// A value over the server's limit: refused here, before anything is sent.
fn too_large() -> u8 {
    crate::log!(
        "the value is over {MAX_VALUE_LEN} bytes (1 MiB), the largest the server takes; nothing \
         was written"
    );
    exit::REJECTED
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
                return stdout_result(Err(e));
            }
        }
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    stdout_result(out.flush())
}

/// The exit code after writing standard output. A reader that went away (`walkv get k | head
/// -c 10`) is no error, as for any Unix tool: quietly 0.
pub(super) fn stdout_result(written: std::io::Result<()>) -> u8 {
    match written {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
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
