//! The `Date` field every answer carries (RFC 9110 §6.6.1: an origin server with a clock must
//! send it), in the one format HTTP allows senders: IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
//!
//! Formatting a date costs a division chain per answer; the text changes once a second, so each
//! thread keeps the last one it wrote and reformats only when the second has changed (one clock
//! read per answer, as before this field existed the metrics already read the clock).

use crate::request_log::civil_from_days;
use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate.
pub(super) const LEN: usize = 29;

thread_local! {
    /// The second last formatted on this thread, and its text.
    static LAST: Cell<(u64, [u8; LEN])> = const { Cell::new((u64::MAX, [0; LEN])) };
}

/// Now as an IMF-fixdate (the same text for every call within one second).
pub(super) fn now() -> [u8; LEN] {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST.with(|last| {
        let (second, text) = last.get();
        if second == secs {
            return text;
        }
        let text = imf_fixdate(secs);
        last.set((secs, text));
        text
    })
}

const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `secs` after 1970-01-01T00:00:00Z as an IMF-fixdate. Years past 9999 (which HTTP cannot
/// write in four digits) are written as 9999.
pub(super) fn imf_fixdate(secs: u64) -> [u8; LEN] {
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = [0u8; LEN];
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    two_digits(&mut out[5..7], day);
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    let year = year.min(9999);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    out[16] = b' ';
    two_digits(&mut out[17..19], of_day / 3600);
    out[19] = b':';
    two_digits(&mut out[20..22], of_day / 60 % 60);
    out[22] = b':';
    two_digits(&mut out[23..25], of_day % 60);
    out[25..].copy_from_slice(b" GMT");
    out
}

fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Rng, knob};

    fn text(secs: u64) -> String {
        String::from_utf8(imf_fixdate(secs).to_vec()).unwrap()
    }

    #[test]
    fn known_dates() {
        assert_eq!(text(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(text(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT"); // RFC 9110's example
        assert_eq!(text(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(text(4_133_980_799), "Fri, 31 Dec 2100 23:59:59 GMT");
        assert_eq!(text(u64::MAX)[12..16], *"9999");
    }

    /// Random instants against `httpdate`, a widely used implementation of the same format.
    #[test]
    fn agrees_with_httpdate() {
        let mut rng = Rng::new(knob("WALKV_FUZZ_SEED", 1));
        for _ in 0..knob("WALKV_FUZZ_ITERS", 20_000) {
            let secs = rng.below(253_402_300_800); // through 9999-12-31
            let when = UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
            assert_eq!(text(secs as u64), httpdate::fmt_http_date(when), "{secs}");
        }
    }

    #[test]
    fn now_is_a_date_of_this_second() {
        let a = now();
        let parsed = httpdate::parse_http_date(std::str::from_utf8(&a).unwrap()).unwrap();
        let age = SystemTime::now().duration_since(parsed).unwrap();
        assert!(age.as_secs() <= 2, "{age:?}");
    }
}
