//! Counters: `INCR` without a read-modify-write race. The main thread reads the key's newest
//! value and writes the sum as one SET, with nothing in between, so two increments never see
//! the same old value.
//!
//! A counter is a key whose value is a decimal integer (`-?(0|[1-9][0-9]*)`, a signed 64-bit
//! one); a missing key counts as 0, and an increment keeps the key's TTL, as Redis `INCRBY`
//! does. The log records the new value, a plain SET: replay, the change feed and a mirror see
//! a value, never an operation to apply twice.

use super::{Store, Ttl};
use crate::error::Error;

/// Why an increment changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCounted {
    /// The value is not a decimal integer; the first bytes of it.
    NotAnInteger(Vec<u8>),
    /// The sum does not fit in a signed 64-bit integer.
    Overflow(i64),
}

/// What [`Store::incr`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    /// The new value, and the seq of its SET.
    Done { value: i64, seq: u64 },
    /// Nothing was written; `pending` is the seq of the pending write the refusal reveals, if
    /// any (its answer waits for it, as in [`super::Latest`]).
    Refused { why: NotCounted, pending: Option<u64> },
}

impl Store {
    /// Adds `delta` to the integer value of `key` (0 if it has none), as one SET.
    pub fn incr(&mut self, key: &[u8], delta: i64) -> Result<Counted, Error> {
        self.check_writable()?;
        crate::wal::check_lengths(key, b"")?;
        let hash = self.pending.hash(key);
        let (latest, _, entry) = self.newest_entry(key, hash);
        let old = match entry {
            None => 0,
            Some(entry) => match parse_integer(entry.value()) {
                Some(n) => n,
                None => {
                    let shown = entry.value().iter().take(32).copied().collect();
                    let why = NotCounted::NotAnInteger(shown);
                    return Ok(Counted::Refused { why, pending: latest.pending });
                }
            },
        };
        let Some(value) = old.checked_add(delta) else {
            return Ok(Counted::Refused {
                why: NotCounted::Overflow(old),
                pending: latest.pending,
            });
        };
        let (seq, _) = self.set_with_ttl(key, value.to_string().as_bytes(), Ttl::Keep)?;
        Ok(Counted::Done { value, seq })
    }
}

/// A decimal integer as a counter holds it: an optional `-`, then digits without a leading
/// zero (or `0` alone), within a signed 64-bit integer. `-0`, `+1`, `01`, ` 1` are not.
pub fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = match digits {
        [b'0'] => bytes.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_hold_canonical_decimal_integers() {
        for (text, want) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("-7", Some(-7)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-0", None),
            ("+1", None),
            ("01", None),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("-", None),
            ("1.0", None),
            ("abc", None),
        ] {
            assert_eq!(parse_integer(text.as_bytes()), want, "{text:?}");
        }
        assert_eq!(parse_integer(b"\xff1"), None);
    }
}
