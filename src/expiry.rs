//! Time to live: the wall clock in milliseconds, and TTLs as clients write them.
//!
//! A key's expiry is an absolute wall-clock time, milliseconds since the Unix epoch, stored in
//! its record (see `docs/log-format.md`): a key that expired while the server was down is gone after
//! the restart, and an export or a change feed can say when a key expires. The price is the
//! wall clock's: if it jumps forward, keys expire early; if it jumps back, late (as in Redis,
//! whose expiries are absolute too). A TTL is written in seconds, with up to nine decimals,
//! and kept to the millisecond, rounded up, so that a TTL is never shorter than asked.

use std::time::{SystemTime, UNIX_EPOCH};

/// The longest TTL taken: 100 years, in seconds. Far beyond any use, and it keeps every sum of a
/// clock and a TTL far from overflowing.
pub const MAX_TTL_SECONDS: u64 = 100 * 365 * 24 * 3600;

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Parses a TTL in seconds, `12`, `0.5` or `1.25`: digits, then optionally a point and up to
/// nine more digits, more than 0 and at most [`MAX_TTL_SECONDS`]. Returns milliseconds,
/// rounded up.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "a TTL is a number of seconds greater than 0 and at most {MAX_TTL_SECONDS}, with at \
             most nine decimals (like 30 or 0.5), not {text:?}"
        )
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 10 || fraction.len() > 9 || !digits(whole) {
        return Err(bad());
    }
    if !digits(fraction) || (text.contains('.') && fraction.is_empty()) {
        return Err(bad());
    }
    let seconds: u64 = whole.parse().map_err(|_| bad())?;
    // The fraction in nanoseconds, then rounded up to milliseconds.
    let nanos: u64 = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
    let ms = seconds * 1000 + nanos.div_ceil(1_000_000);
    if ms == 0 || seconds > MAX_TTL_SECONDS {
        return Err(bad());
    }
    Ok(ms)
}

/// When a key written now with a TTL of `ttl_ms` expires.
pub fn expires_at(now: u64, ttl_ms: u64) -> u64 {
    now.saturating_add(ttl_ms)
}

/// Milliseconds as seconds with three decimals: `1.5` s is `1.500`.
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_read_to_the_millisecond_rounded_up() {
        assert_eq!(parse_ttl("30"), Ok(30_000));
        assert_eq!(parse_ttl("0.5"), Ok(500));
        assert_eq!(parse_ttl("1.25"), Ok(1250));
        assert_eq!(parse_ttl("0.0001"), Ok(1), "never shorter than asked, never zero");
        assert_eq!(parse_ttl("0.123456789"), Ok(124));
        assert_eq!(parse_ttl(&MAX_TTL_SECONDS.to_string()), Ok(MAX_TTL_SECONDS * 1000));
        for bad in ["", "0", "0.0", "-1", "1.", ".5", "1e3", " 1", "1s", "0.1234567891", "x"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?} was taken");
        }
        assert!(parse_ttl(&(MAX_TTL_SECONDS + 1).to_string()).is_err());
        assert!(parse_ttl("99999999999").is_err());
        assert_eq!(seconds(1500), "1.500");
        assert_eq!(seconds(7), "0.007");
        assert_eq!(expires_at(u64::MAX - 1, 10), u64::MAX);
    }
}
