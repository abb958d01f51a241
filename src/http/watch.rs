//! Blocking reads: `GET /v1/{key}?index=N&wait=D` answers as soon as the key's last write (its
//! SET, or the DELETE that removed it) has a seq after `N`, or when `D` has passed, with the
//! key's state then. This is Consul's blocking query: a client reads a key, then asks again
//! with `index` = the `X-Walkv-Seq` of that answer, and the next answer comes when the key
//! changes. `HEAD` and `?raw` combine with it. `wait` without `index` waits past the seq
//! visible when the read came: "tell me when this key next changes".
//!
//! `wait` is seconds (`30`, `1.5`) or with a unit (`30s`, `5m`); the default is 60 s and the
//! most 10 minutes (a longer wait is taken, and cut to that, as Consul does). An answer may come early
//! (the server stops; a missing key whose DELETE is too old for the store to remember: see
//! [`crate::store`]'s `watched.rs`): a client compares and asks again.
//!
//! The router answers at once or returns [`hold`]; the server keeps the request and, when the
//! key changes past the index or the wait ends, asks the router again with
//! [`super::Serving::wait_over`], which answers it as things are.

use super::Response;
use super::params::{Params, shown};
use std::time::Duration;

/// `wait`'s default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// `wait`'s most.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// What a blocking read asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    /// `None`: `wait` without `index`, which waits past the seq visible when the read came.
    pub index: Option<u64>,
    pub wait: Duration,
}

/// A held blocking read: the key it waits on, the seq its last write must pass, and for how
/// long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub key: Box<[u8]>,
    pub index: u64,
    pub wait: Duration,
}

impl Blocking {
    /// `index` and `wait` from a key read's parameters; `None` with neither.
    pub fn parse(params: &Params) -> Result<Option<Blocking>, String> {
        let wait = params.get("wait").map(parse_wait).transpose()?;
        let Some(index) = params.get("index") else {
            return Ok(wait.map(|wait| Blocking { index: None, wait: wait.min(MAX_WAIT) }));
        };
        let digits =
            !index.is_empty() && index.len() <= 19 && index.bytes().all(|b| b.is_ascii_digit());
        let index = digits.then(|| index.parse::<u64>().ok()).flatten().ok_or_else(|| {
            format!("`index` must be a sequence number (decimal digits); got `{}`", shown(index))
        })?;
        Ok(Some(Blocking { index: Some(index), wait: wait.unwrap_or(DEFAULT_WAIT).min(MAX_WAIT) }))
    }
}

/// `30`, `1.5`, `30s`, `5m`: up to 15 digits, then up to 9 after a point, then `s`, `m` or
/// nothing (seconds). Any such wait is taken, and cut to [`MAX_WAIT`] by the caller.
fn parse_wait(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.strip_suffix('m') {
        Some(minutes) => (minutes, 60.0),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    let digits = |part: &str, most: usize| {
        (1..=most).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    match number.parse::<f64>() {
        Ok(n) if digits(whole, 15) && digits(fraction, 9) => Ok(Duration::from_secs_f64(n * unit)),
        _ => Err(format!(
            "`wait` must be seconds (`30`, `1.5`) or a number with s or m (`30s`, `5m`); got `{}`",
            shown(text)
        )),
    }
}

/// The placeholder answer for a read to hold until `key`'s last write passes `index` (see the
/// module doc).
pub fn hold(key: Vec<u8>, index: u64, wait: Duration) -> Response {
    let mut response = Response::json(200, String::new());
    response.watch = Some(Box::new(Watch { key: key.into(), index, wait }));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<Option<Blocking>, String> {
        Blocking::parse(&Params::parse(Some(query), &["index", "wait", "raw"], "E")?)
    }

    #[test]
    fn reads_index_and_wait() {
        let b = |index, secs: f64| {
            Ok(Some(Blocking { index: Some(index), wait: Duration::from_secs_f64(secs) }))
        };
        assert_eq!(parse("raw"), Ok(None));
        assert_eq!(parse("index=7"), b(7, 60.0));
        assert_eq!(parse("index=7&wait=30"), b(7, 30.0));
        assert_eq!(parse("index=0&wait=1.5s"), b(0, 1.5));
        assert_eq!(parse("index=0&wait=5m"), b(0, 300.0));
        assert_eq!(parse("index=0&wait=20m"), b(0, 600.0), "cut to 10 minutes");
        assert_eq!(parse("index=0&wait=999999999999999"), b(0, 600.0));
        let from_now = Blocking { index: None, wait: Duration::from_secs(5) };
        assert_eq!(parse("wait=5"), Ok(Some(from_now)));
        for (query, says) in [
            ("index=-1", "`index` must be a sequence number"),
            ("index=1e3", "`index` must be"),
            ("index=1&wait=5h", "`wait` must be seconds"),
            ("index=1&wait=", "`wait` must be"),
            ("index=1&wait=.5", "`wait` must be"),
            ("index=1&wait=1.2.3", "`wait` must be"),
            ("index=1&wait=inf", "`wait` must be"),
            ("index=1&wait=1234567890123456", "`wait` must be"),
            ("index=1&wait=1.1234567890", "`wait` must be"),
        ] {
            let err = parse(query).unwrap_err();
            assert!(err.contains(says), "{query}: {err}");
        }
    }
}
