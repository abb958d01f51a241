//! `GET /v1/?prefix=P&after=K&limit=N`: one page of keys, in byte order.
//!
//! The answer is `{"keys":[...],"next":K}`: at most `limit` keys (default 1000, 1 to 10000),
//! each starting with `prefix` (default: every key) and strictly after `after` (default: from
//! the first), in the order of their bytes. `next` is the page's last key when more keys may
//! follow, else `null`; passed back as `after` it gives the next page. `prefix` and `after` are
//! percent-decoded as keys are. Keys go out as JSON strings, so a page holding a key that is not
//! UTF-8 answers 406, pointing at `&encoding=base64`: with it every key in `keys` and `next` is
//! base64, and `after` is read as base64 too (so that `next` goes back as it came), while
//! `prefix` stays percent-encoded bytes. Any other parameter, or a repeated one, is a 400.
//!
//! **What a page costs.** The map is ordered by key ([`crate::store`]), so a page is a walk
//! from the first key that may match, `limit + 1` keys long at most: about a fifth of a
//! millisecond for 1,000 keys at 1M keys, which is all the main thread gives it; other
//! clients barely notice a `walkv ls` of the whole store (docs/performance.md).
//!
//! **A listing is not a snapshot.** Each page is read at one moment, between two writes; pages
//! are not. A key created or deleted between two pages appears or not depending on whether it
//! sorts before or after the `after` of the next page: a key that exists through the whole walk
//! is listed exactly once, a key deleted during it may be listed or not, and a key created
//! during it is listed only if it sorts after the page being read when it was created.

use super::Response;
use super::params::{Params, shown};
use crate::base64;
use crate::json;
use crate::store::Store;

/// Keys per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 1000;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 10_000;

/// What a listing request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub prefix: Vec<u8>,
    pub after: Option<Vec<u8>>,
    pub limit: usize,
    pub base64: bool,
}

impl Query {
    /// Reads the query string, or says what is wrong with it.
    pub fn parse(query: Option<&str>) -> Result<Query, String> {
        let takes = ["prefix", "after", "limit", "encoding"];
        let params = Params::parse(query, &takes, "a listing")?;
        let base64 = match params.get("encoding") {
            None => false,
            Some("base64") => true,
            Some(other) => {
                return Err(format!(
                    "encoding must be base64 (the default is JSON strings), got `{}`",
                    shown(other)
                ));
            }
        };
        let prefix = params.get("prefix").map(|p| super::percent_decode(p, "prefix"));
        let limit = params.get("limit").map(parse_limit).transpose()?;
        let after = match params.get("after") {
            None => None,
            Some(text) => {
                let bytes = super::percent_decode(text, "after")?;
                Some(if base64 {
                    base64::decode(&bytes).map_err(|e| {
                        format!("after must be base64 with encoding=base64 (as `next` is): {e}")
                    })?
                } else {
                    bytes
                })
            }
        };
        Ok(Query {
            prefix: prefix.transpose()?.unwrap_or_default(),
            after,
            limit: limit.unwrap_or(DEFAULT_LIMIT),
            base64,
        })
    }
}

fn parse_limit(text: &str) -> Result<usize, String> {
    let bad = || format!("limit must be a number from 1 to {MAX_LIMIT}, got `{}`", shown(text));
    if text.is_empty() || text.len() > 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(bad)
}

/// Answers a listing request.
pub fn list(store: &Store, query: Option<&str>) -> Response {
    let query = match Query::parse(query) {
        Ok(query) => query,
        Err(message) => return Response::error(400, &message),
    };
    let (keys, more) = store.keys_page(&query.prefix, query.after.as_deref(), query.limit);
    match page_json(&keys, more, query.base64) {
        Ok(body) => Response::json(200, body),
        Err(at) => Response::error(
            406,
            &format!(
                "key {} of this page is not valid UTF-8, so a JSON string cannot carry it; add \
                 &encoding=base64 to get every key in base64",
                at + 1
            ),
        ),
    }
}

/// `{"keys":[...],"next":...}`, or the index of the first key that is not UTF-8.
fn page_json(keys: &[&[u8]], more: bool, base64: bool) -> Result<String, usize> {
    let mut out = String::with_capacity(16 + keys.iter().map(|k| k.len() + 3).sum::<usize>());
    out.push_str("{\"keys\":[");
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_key(&mut out, key, base64).map_err(|()| i)?;
    }
    out.push_str("],\"next\":");
    match keys.last() {
        Some(last) if more => push_key(&mut out, last, base64).map_err(|()| keys.len() - 1)?,
        _ => out.push_str("null"),
    }
    out.push('}');
    Ok(out)
}

/// Appends one key as a JSON string: its text, or its base64.
fn push_key(out: &mut String, key: &[u8], base64: bool) -> Result<(), ()> {
    if base64 {
        out.push('"');
        base64::encode_into(out, key);
        out.push('"');
        return Ok(());
    }
    let text = std::str::from_utf8(key).map_err(|_| ())?;
    json::write_string(out, text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defaults, every parameter, and base64 `after`.
    #[test]
    fn parses_queries() {
        let q = Query::parse(None).unwrap();
        assert_eq!(q, Query { prefix: vec![], after: None, limit: 1000, base64: false });
        let q = Query::parse(Some("prefix=a%2Fb&after=a%2Fb%00&limit=10000")).unwrap();
        assert_eq!((q.prefix, q.after, q.limit), (b"a/b".to_vec(), Some(b"a/b\0".to_vec()), 10000));
        let q = Query::parse(Some("after=%2F%2Fw%3D&encoding=base64")).unwrap();
        assert_eq!((q.after, q.base64), (Some(b"\xff\xfc".to_vec()), true));
        let q = Query::parse(Some("prefix=&after=&limit=1")).unwrap();
        assert_eq!((q.prefix, q.after, q.limit), (vec![], Some(vec![]), 1));
    }

    /// Bad parameters are 400s that say what is wrong.
    #[test]
    fn refuses_bad_queries() {
        for (query, says) in [
            ("limit=0", "limit must be a number from 1 to 10000"),
            ("limit=10001", "from 1 to 10000, got `10001`"),
            ("limit=-1", "limit must be"),
            ("limit=", "limit must be"),
            ("limit=99999999999999999999", "limit must be"),
            ("limit=1&limit=2", "`limit` is given more than once"),
            ("prefix=%zz", "invalid percent-encoding in prefix"),
            ("encoding=hex", "encoding must be base64"),
            ("encoding=base64&after=abc", "after must be base64"),
            ("prefx=a", "unknown parameter `prefx`"),
            ("raw", "unknown parameter `raw`"),
        ] {
            let err = Query::parse(Some(query)).unwrap_err();
            assert!(err.contains(says), "{query}: {err}");
        }
    }

    /// The page's JSON: next only when more may follow, escapes, base64, and where UTF-8 fails.
    #[test]
    fn page_bodies() {
        let keys: Vec<&[u8]> = vec![b"a", b"b\"\n"];
        assert_eq!(
            page_json(&keys, false, false).unwrap(),
            r#"{"keys":["a","b\"\n"],"next":null}"#
        );
        assert_eq!(
            page_json(&keys, true, false).unwrap(),
            r#"{"keys":["a","b\"\n"],"next":"b\"\n"}"#
        );
        assert_eq!(page_json(&[], false, false).unwrap(), r#"{"keys":[],"next":null}"#);
        let binary: Vec<&[u8]> = vec![b"ok", b"\xff"];
        assert_eq!(page_json(&binary, true, false), Err(1));
        assert_eq!(
            page_json(&binary, true, true).unwrap(),
            r#"{"keys":["b2s=","/w=="],"next":"/w=="}"#
        );
    }

    /// Random query strings never panic the parser.
    #[test]
    fn random_queries_never_panic() {
        let mut rng = crate::testutil::Rng::new(52);
        let pieces = [
            "prefix", "after", "limit", "encoding", "=", "&", "%", "%2F", "base64", "1", "0",
            "\u{e9}", "=",
        ];
        for _ in 0..crate::testutil::knob("WALKV_FUZZ_ITERS", 20_000) {
            let query: String =
                (0..rng.below(10)).map(|_| pieces[rng.below(pieces.len())]).collect();
            if let Ok(q) = Query::parse(Some(&query)) {
                assert!((1..=MAX_LIMIT).contains(&q.limit), "{query}");
            }
        }
    }
}
