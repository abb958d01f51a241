//! `POST /v1/{key}?incr=N`: a counter's increment (see [`crate::store::counter`] for the rules
//! and why it has no race). Answers 200 `{"value":"42","seq":S}`, or 409 naming what is in the
//! way (a value that is not a decimal integer, a sum that overflows) with nothing changed.

use super::{Response, store_error, write::written};
use crate::json;
use crate::store::Store;
use crate::store::counter::{Counted, NotCounted, parse_integer};

/// The increment `?incr=N` asks for: a signed 64-bit decimal integer; a bare `?incr` is 1.
pub fn delta(incr: Option<&str>) -> Result<i64, String> {
    match incr {
        None => Err("POST /v1/{key} increments a counter: add ?incr (by 1) or ?incr=N; to \
                     set a value, use PUT /v1/{key} or POST /v1/write"
            .into()),
        Some("") => Ok(1),
        Some(text) => parse_integer(text.as_bytes()).ok_or_else(|| {
            format!(
                "`incr` must be a signed 64-bit decimal integer (like 5 or -2), not `{}`",
                super::params::shown(text)
            )
        }),
    }
}

/// Adds `delta` to the counter `key`, and answers.
pub fn incr(store: &mut Store, key: &[u8], delta: i64) -> Response {
    match store.incr(key, delta) {
        Ok(Counted::Done { value, seq }) => {
            let mut response = written(200, seq);
            response.body = format!("{{\"value\":\"{value}\",\"seq\":{seq}}}").into_bytes();
            response
        }
        Ok(Counted::Refused { why, pending }) => {
            let message = match why {
                NotCounted::NotAnInteger(start) => {
                    let mut shown = String::new();
                    json::write_string_for_terminal(&mut shown, &String::from_utf8_lossy(&start));
                    format!(
                        "the key's value is not a decimal integer (it starts {shown}), so it \
                         cannot be incremented; nothing was changed"
                    )
                }
                NotCounted::Overflow(old) => format!(
                    "adding {delta} to {old} overflows a signed 64-bit integer; nothing was \
                     changed"
                ),
            };
            Response::error(409, &message).after(pending)
        }
        Err(e) => store_error(&e),
    }
}
