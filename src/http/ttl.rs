//! The TTL of a write (`?ttl=S`, `?keepttl`, `"ttl"` in a JSON body) and how a read says when
//! its key expires (see [`crate::expiry`] for the clock and the units).
//!
//! A write without a TTL clears the key's old one, as a Redis `SET` does; `?keepttl` keeps it
//! (Redis `SET ... KEEPTTL`); both, `?keepttl&ttl=S`, keep the key's TTL if it has one and give
//! it S otherwise (as Redis `EXPIRE ... NX` after a `SET ... KEEPTTL`): a session's first write
//! sets its lifetime, and later writes do not extend it. A read of a key that expires says so in two headers:
//! `X-Walkv-Expires` (when, milliseconds since the Unix epoch, as Redis `PEXPIRETIME`) and
//! `X-Walkv-TTL` (the seconds left, with three decimals, as the `ttl` a write takes).

use super::Response;
use super::params::Params;
use crate::expiry;
use crate::store::Ttl;

/// Reads `?ttl=S` and `?keepttl` at `now`. `body_ttl` is the
/// `"ttl"` of a JSON body, in milliseconds, which the query may not repeat.
pub fn of_write(params: &Params, body_ttl: Option<u64>, now: u64) -> Result<Ttl, String> {
    let keep = params.switch("keepttl")?;
    let query_ttl = match params.get("ttl") {
        Some(text) => Some(expiry::parse_ttl(text).map_err(|e| format!("`ttl`: {e}"))?),
        None => None,
    };
    let ttl = match (query_ttl, body_ttl) {
        (Some(_), Some(_)) => {
            return Err("the TTL is given twice: in the query and in the body".into());
        }
        (ttl, None) | (None, ttl) => ttl,
    };
    match (ttl, keep) {
        (Some(ms), true) => Ok(Ttl::KeepOr(expiry::expires_at(now, ms))),
        (Some(ms), false) => Ok(Ttl::At(expiry::expires_at(now, ms))),
        (None, true) => Ok(Ttl::Keep),
        (None, false) => Ok(Ttl::Clear),
    }
}

/// Adds the headers that say when a read's key expires, if it does.
pub fn add_headers(response: &mut Response, expires: Option<u64>, now: u64) {
    if let Some(at) = expires {
        response.headers.push(("X-Walkv-Expires", at.to_string()));
        response.headers.push(("X-Walkv-TTL", expiry::seconds(at.saturating_sub(now))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl(query: &str, body: Option<u64>) -> Result<Ttl, String> {
        let params = Params::parse(Some(query), &["ttl", "keepttl", "sync"], "PUT")?;
        of_write(&params, body, 1000)
    }

    #[test]
    fn a_write_sets_keeps_or_clears_the_ttl() {
        assert_eq!(ttl("", None), Ok(Ttl::Clear));
        assert_eq!(ttl("sync", None), Ok(Ttl::Clear));
        assert_eq!(ttl("ttl=2.5", None), Ok(Ttl::At(3500)));
        assert_eq!(ttl("", Some(500)), Ok(Ttl::At(1500)));
        assert_eq!(ttl("keepttl", None), Ok(Ttl::Keep));
        assert_eq!(ttl("ttl=5&keepttl", None), Ok(Ttl::KeepOr(6000)));
        assert_eq!(ttl("keepttl", Some(5)), Ok(Ttl::KeepOr(1005)));
        assert!(ttl("ttl=5", Some(5)).unwrap_err().contains("twice"));
        assert!(ttl("ttl=0", None).unwrap_err().contains("greater than 0"));
        assert!(ttl("ttl=", None).unwrap_err().contains("`ttl`"));
        assert!(ttl("keepttl=no", None).unwrap_err().contains("switch"));
        let mut r = Response::json(200, String::new());
        add_headers(&mut r, Some(4500), 1000);
        assert_eq!(
            r.headers,
            vec![("X-Walkv-Expires", "4500".into()), ("X-Walkv-TTL", "3.500".into())]
        );
    }
}
