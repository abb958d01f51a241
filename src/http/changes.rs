//! `GET /changes`: the change feed's request, read strictly, and its answers that are not a
//! stream (the stream itself is written by the follower's connection thread: see
//! [`crate::intake`]).
//!
//! | parameter | meaning |
//! |---|---|
//! | `from=S` | every change with a seq after `S` (at most 19 digits); default: the seq visible now (only what comes next) |
//! | `prefix=P` | only keys that start with `P` (percent-decoded bytes) |
//! | `limit=N` | at most `N` changes (1 to 10¹⁸), then the answer ends |
//! | `follow` | do not end: stream each change as it becomes visible, with heartbeats |
//! | `durable=fsync` | only changes that are on stable storage, in every `--sync` mode |
//!
//! With `Accept: text/event-stream` the answer is Server-Sent Events, each change an event
//! whose `id` is its seq; a `Last-Event-ID` header (what a browser's `EventSource` sends when it
//! reconnects) takes the place of `from`, so that a reconnect resumes where the stream broke
//! even though the URL still says where it first started.

use super::params::{Params, shown};
use super::{Response, percent_decode};
use crate::json;

/// What one `GET /changes` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Changes after this seq; `None`: after the seq visible when the answer starts.
    pub from: Option<u64>,
    pub prefix: Vec<u8>,
    pub limit: Option<u64>,
    pub follow: bool,
    /// Server-Sent Events rather than JSON lines.
    pub sse: bool,
    /// Only fsynced changes (`durable=fsync`).
    pub fsync: bool,
}

/// The parameters `GET /changes` takes.
const TAKES: [&str; 5] = ["from", "prefix", "limit", "follow", "durable"];

/// Reads a `GET /changes` request, or says what is wrong with it (a 400).
pub fn plan(query: Option<&str>, headers: &[(&str, &str)]) -> Result<Plan, String> {
    let params = Params::parse(query, &TAKES, "GET /changes")?;
    let mut from = params.get("from").map(|text| seq(text, "from")).transpose()?;
    let prefix = percent_decode(params.get("prefix").unwrap_or_default(), "prefix")?;
    let limit = match params.get("limit") {
        None => None,
        Some(text) => match seq(text, "limit") {
            Ok(n @ 1..=MAX_LIMIT) => Some(n),
            _ => {
                return Err(format!(
                    "`limit` must be a whole number from 1 to 10^18; got `{}`",
                    shown(text)
                ));
            }
        },
    };
    let follow = params.switch("follow")?;
    let fsync = match params.get("durable") {
        None => false,
        Some("fsync") => true,
        Some(other) => {
            return Err(format!(
                "`durable` takes only `fsync` (changes on stable storage); got `{}`",
                shown(other)
            ));
        }
    };
    let field = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
    let sse = field("accept").is_some_and(|(_, v)| v.contains("text/event-stream"));
    if let Some((_, last)) = field("last-event-id") {
        from = Some(seq(last.trim(), "the Last-Event-ID header")?);
    }
    Ok(Plan { from, prefix, limit, follow, sse, fsync })
}

/// The largest `limit`: more than any log holds.
const MAX_LIMIT: u64 = 1_000_000_000_000_000_000;

/// A seq: at most 19 decimal digits (more than any log will number).
fn seq(text: &str, what: &str) -> Result<u64, String> {
    let digits = !text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten().ok_or_else(|| {
        format!("{what} must be a sequence number (decimal digits); got `{}`", shown(text))
    })
}

/// The 410 for a `from` older than the history the log still holds.
pub fn gone(oldest: u64, visible: u64) -> Response {
    let mut body = String::from("{\"error\":");
    let message = format!(
        "the changes before seq {oldest} are no longer held: a compaction merged them into a \
         snapshot. Start again from a copy of the data (`walkv export` says the seq it is \
         consistent at) and ask for the changes from that seq, or from={} for every change \
         still held",
        oldest - 1
    );
    json::write_string(&mut body, &message);
    body.push_str(&format!(",\"oldest_seq\":{oldest}}}"));
    let mut response = Response::json(410, body);
    response.seq = Some(visible);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_a_follower_asks_for() {
        let p = plan(Some("from=7&prefix=a%2Fb&limit=3&follow&durable=fsync"), &[]).unwrap();
        assert_eq!(
            p,
            Plan {
                from: Some(7),
                prefix: b"a/b".to_vec(),
                limit: Some(3),
                follow: true,
                sse: false,
                fsync: true
            }
        );
        let p = plan(None, &[]).unwrap();
        assert_eq!((p.from, p.limit, p.follow, p.sse, p.fsync), (None, None, false, false, false));
        let sse = [("accept", "text/event-stream"), ("last-event-id", "12")];
        let p = plan(Some("from=3"), &sse).unwrap();
        assert_eq!((p.sse, p.from), (true, Some(12)), "Last-Event-ID wins over from");
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for (query, says) in [
            ("from=-1", "from must be a sequence number"),
            ("from=+1", "from must be a sequence number"),
            ("from=", "from must be a sequence number"),
            ("from=10000000000000000000", "from must be a sequence number"),
            ("limit=1000000000000000001", "`limit` must be a whole number from 1 to 10^18"),
            ("limit=0", "`limit` must be a whole number from 1"),
            ("limit=x", "`limit` must be a whole number"),
            ("follow=yes", "`follow` is a switch"),
            ("durable=write", "`durable` takes only `fsync`"),
            ("form=1", "unknown parameter `form`"),
            ("prefix=%zz", "invalid percent-encoding in prefix"),
        ] {
            let err = plan(Some(query), &[]).unwrap_err();
            assert!(err.contains(says), "{query}: {err}");
        }
        let err = plan(None, &[("last-event-id", "x")]).unwrap_err();
        assert!(err.contains("Last-Event-ID"), "{err}");
    }

    #[test]
    fn gone_names_the_oldest_seq() {
        let r = gone(8, 20);
        assert_eq!((r.status, r.seq), (410, Some(20)));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["oldest_seq"], 8);
        assert!(body["error"].as_str().unwrap().contains("from=7"));
    }
}
