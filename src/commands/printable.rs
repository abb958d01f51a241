//! Bytes made safe for a person's terminal: what `ls`, `dump` and the client's messages print.
//!
//! Keys and values may hold any byte, and a terminal obeys some of them (ESC starts a control
//! sequence, `\r` rewrites a line, C1 controls such as U+009B do what ESC does). So wherever a
//! person reads, a byte that could do that is written as `\xNN`, and so is the backslash, so
//! that the text is unambiguous: every `\` in the output starts an escape. [`line`] keeps
//! printable UTF-8 (a key `café` stays `café`); [`ascii`] keeps printable ASCII only.

use std::fmt::Write as _;

/// `bytes` with every control character (C0, DEL, C1), every backslash and every byte that is
/// not part of valid UTF-8 written as `\xNN`.
pub fn line(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                let mut utf8 = [0u8; 4];
                escape(&mut out, c.encode_utf8(&mut utf8).as_bytes());
            } else {
                out.push(c);
            }
        }
        escape(&mut out, chunk.invalid());
    }
    out
}

/// `bytes` with every byte that is not printable ASCII (0x20 to 0x7e), the backslash and the
/// double quote written as `\xNN`: safe between quotes (`key="..."`).
pub fn ascii(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' && b != b'"' {
            out.push(char::from(b));
        } else {
            escape(&mut out, &[b]);
        }
    }
    out
}

fn escape(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "\\x{b:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is kept and what is escaped.
    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert_eq!(line(b"user:42 caf\xc3\xa9"), "user:42 café");
        assert_eq!(line(b"a\nb\r\x1b[2J\x7f\\"), "a\\x0ab\\x0d\\x1b[2J\\x7f\\x5c");
        assert_eq!(line("\u{9b}x".as_bytes()), "\\xc2\\x9bx", "C1 controls too");
        assert_eq!(line(b"\xff\xc3"), "\\xff\\xc3", "bytes that are not UTF-8");
        assert_eq!(ascii(b"caf\xc3\xa9 \\ ~\"\x00"), "caf\\xc3\\xa9 \\x5c ~\\x22\\x00");
    }

    /// Random bytes: the output never holds a control character, and the escapes decode back
    /// to the input (so nothing is lost or ambiguous).
    #[test]
    fn output_is_safe_and_reversible() {
        let mut rng = crate::testutil::Rng::new(31);
        for _ in 0..5000 {
            let len = rng.below(24);
            let bytes = rng.bytes(len);
            for text in [line(&bytes), ascii(&bytes)] {
                assert!(!text.chars().any(char::is_control), "{text:?}");
                assert_eq!(unescape(&text), bytes, "{text:?}");
            }
            assert!(ascii(&bytes).is_ascii());
        }
    }

    fn unescape(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find('\\') {
            out.extend_from_slice(&rest.as_bytes()[..at]);
            out.push(u8::from_str_radix(&rest[at + 2..at + 4], 16).unwrap());
            rest = &rest[at + 4..];
        }
        out.extend_from_slice(rest.as_bytes());
        out
    }
}
