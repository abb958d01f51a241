//! What a client command makes of the server's answer: the `Authorization` header it sends,
//! and the one mapping from an answer to an exit code that every client command shares
//! ([`finish`]): 2xx is success, 404 is "not found" (1), 412 is a failed condition (4, with the
//! key's current ETag), other 4xx are refusals (4), 5xx and unreadable answers server errors
//! (5), no connection 3.

use super::printable;
use crate::auth::TokenSource;
use crate::cli::exit;
use crate::client::{ClientError, Reply};

/// The `Authorization` header a client command sends, or the exit code if the token is bad.
pub(super) fn auth_header(token: &TokenSource) -> Result<Option<String>, u8> {
    token.load().map(|auth| auth.header_value()).map_err(|e| {
        crate::log!("{e}");
        exit::USAGE
    })
}

/// walkv's answer for a missing key, exactly: any other 404 is not "key not found".
const KEY_NOT_FOUND: &[u8] = br#"{"error":"key not found"}"#;

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
        404 if reply.body == KEY_NOT_FOUND => {
            crate::log!("key not found");
            exit::NOT_FOUND
        }
        404 => {
            crate::log!(
                "the server answered 404 ({message}), but not as walkv says a key is missing: is \
                 --addr a walkv server?"
            );
            exit::SERVER_ERROR
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
