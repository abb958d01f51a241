//! What the metrics and the request log need to know about one request, from its head to its
//! answer: made on the request's connection thread (`connection.rs`), carried with the answer
//! to whoever writes it (`outbox.rs`).

use super::parse::Head;
use crate::metrics::Method;
use crate::request_log;
use std::time::Instant;

/// What the metrics and the request log need to know about a request. Small on purpose
/// (32 bytes): it travels with every request, and the rare parts sit behind one box.
pub(super) struct Seen {
    pub(super) method: Method,
    /// When its head began to arrive (when it was found, for a pipelined request).
    pub(super) arrived: Instant,
    /// Only with a request id to echo or the request log on.
    extra: Option<Box<Extra>>,
}

impl Seen {
    pub(super) fn request_id(&self) -> Option<&str> {
        self.extra.as_ref().map(|extra| &*extra.request_id)
    }

    /// What a request without a request id or log line leaves (for tests).
    #[cfg(test)]
    pub(super) fn bare(method: Method) -> Seen {
        Seen { method, arrived: Instant::now(), extra: None }
    }

    /// The request id and what the request log says, if the request log is on.
    pub(super) fn into_logged(self) -> Option<(Box<str>, Logged)> {
        let extra = *self.extra?;
        Some((extra.request_id, extra.logged?))
    }
}

/// The request id, and what the request log says about a request besides its answer.
struct Extra {
    /// Echoed as `X-Request-ID`: the client's if sane; made up if the request log is on.
    request_id: Box<str>,
    /// Only with the request log on.
    logged: Option<Logged>,
}

pub(super) struct Logged {
    pub(super) method: String,
    /// The request target, cut to [`request_log::MAX_PATH`] bytes.
    pub(super) path: String,
    pub(super) trunc: bool,
    pub(super) in_bytes: u64,
}

impl Seen {
    /// The request's body has `bytes` bytes (for the request log).
    pub(super) fn note_body(&mut self, bytes: u64) {
        if let Some(logged) = self.extra.as_mut().and_then(|extra| extra.logged.as_mut()) {
            logged.in_bytes = bytes;
        }
    }

    /// What is known of a request once its head is read (`None`: it could not be); `log`: the
    /// request log is on.
    pub(super) fn of(head: Option<&Head>, arrived: Instant, log: bool) -> Seen {
        let client_id = head.and_then(|h| h.field("x-request-id"));
        let request_id: Option<Box<str>> = match client_id.filter(|id| request_log::is_sane_id(id))
        {
            Some(id) => Some(id.into()),
            None if log => Some(request_log::new_id().into()),
            None => None,
        };
        let logged = log.then(|| {
            let (method, target) = head.map_or(("-", "-"), |h| (h.method(), h.target()));
            let (path, trunc) = request_log::cut(target);
            Logged {
                method: request_log::cut(method).0.to_string(),
                path: path.to_string(),
                trunc,
                in_bytes: 0,
            }
        });
        let extra = request_id.map(|request_id| Box::new(Extra { request_id, logged }));
        let method = head.map_or(Method::Other, |h| Method::from_name(h.method()));
        Seen { method, arrived, extra }
    }
}
