//! The client commands of counters, TTLs and transactions: `walkv incr KEY [N]` and
//! `walkv txn FILE|-` (`walkv set --ttl` is `set`'s, in `remote.rs`).

use super::answer::{auth_header, finish};
use crate::auth::TokenSource;
use crate::cli::exit;
use crate::client;
use crate::json::{self, Value};
use std::io::Read;
use std::path::Path;

/// `walkv incr KEY [N]`: adds N (default 1) to the counter, and prints its new value.
pub fn incr(addr: &str, token: &TokenSource, key: &[u8], delta: i64) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let target = format!("/v1/{}?incr={delta}", client::encode_key(key));
    finish(client::request(addr, auth.as_deref(), "POST", &target, b""), |reply| match json::parse(
        &reply.body,
    ) {
        Ok(Value::Object(members)) => match members.iter().find(|(n, _)| n == "value") {
            Some((_, Value::String(value))) => {
                say!("{value}");
                exit::OK
            }
            _ => unreadable(&reply.body),
        },
        _ => unreadable(&reply.body),
    })
}

/// `walkv txn FILE|-`: sends the transaction in FILE (or standard input) and prints the
/// server's answer, `{"seq":N}`. A condition that fails exits 4 with the server's answer (which
/// names it) on standard error.
pub fn txn(addr: &str, token: &TokenSource, file: Option<&Path>) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let limit = crate::http::MAX_JSON_BODY;
    let mut body = Vec::new();
    let read = match file {
        Some(path) => {
            std::fs::File::open(path).and_then(|f| f.take(limit + 1).read_to_end(&mut body))
        }
        None => std::io::stdin().lock().take(limit + 1).read_to_end(&mut body),
    };
    if let Err(e) = read {
        let from = file.map_or("standard input".into(), |p| p.display().to_string());
        crate::log!("cannot read the transaction from {from}: {e}; nothing was written");
        return exit::FAILED;
    }
    if body.len() as u64 > limit {
        crate::log!(
            "the transaction is over {limit} bytes, the most the server takes; nothing was written"
        );
        return exit::REJECTED;
    }
    let reply = client::request(addr, auth.as_deref(), "POST", "/v1/txn", &body);
    if let Ok(reply) = &reply
        && reply.status == 412
    {
        crate::log!("{}", super::printable::line(&reply.body));
        return exit::REJECTED;
    }
    finish(reply, |reply| {
        say!("{}", String::from_utf8_lossy(&reply.body));
        exit::OK
    })
}

fn unreadable(body: &[u8]) -> u8 {
    crate::log!("the server's answer is not a counter's: {}", super::printable::line(body));
    exit::SERVER_ERROR
}
