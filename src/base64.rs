//! Base64 (RFC 4648, section 4: the standard alphabet, with `=` padding), for keys and values
//! that are not UTF-8 where JSON must carry them: listing pages, `export`, `import`.
//!
//! Hand-written because the dependency budget has no room for a crate; the `base64` crate is
//! the oracle its tests compare with. Decoding is strict: only the standard alphabet, padding
//! exactly where it belongs, no whitespace, and no set bits left over in the last character, so
//! every byte string has exactly one encoding and a decoded string encodes back to its input.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends the base64 of `bytes` to `out`.
pub fn encode_into(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

/// The base64 of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    encode_into(&mut out, bytes);
    out
}

/// The value of one base64 character, if it is one.
fn sextet(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes `text`, or says what is wrong with it.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(4) {
        return Err(format!(
            "base64 of {} characters: the length must be a multiple of 4",
            text.len()
        ));
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.len() / 4;
    for (q, quad) in text.chunks(4).enumerate() {
        let last = q + 1 == quads;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return Err(format!("misplaced '=' in base64 at character {}", q * 4));
        }
        let mut n = 0u32;
        for (i, &c) in quad[..4 - pad].iter().enumerate() {
            let at = q * 4 + i;
            let v = sextet(c).ok_or_else(|| match c {
                b'=' => format!("misplaced '=' in base64 at character {at}"),
                _ => format!("invalid base64 character {:?} at character {at}", char::from(c)),
            })?;
            n |= v << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - pad;
        if bytes[keep..].iter().any(|&b| b != 0) {
            return Err(format!("non-canonical base64 at character {}: bits after the end", q * 4));
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    /// Encoding matches the `base64` crate for every length up to 64 and random bytes, and
    /// decoding gives the bytes back.
    #[test]
    fn matches_the_oracle() {
        let mut rng = crate::testutil::Rng::new(64);
        for len in (0..64).chain([255, 256, 1000]) {
            for _ in 0..20 {
                let bytes = rng.bytes(len);
                let ours = encode(&bytes);
                assert_eq!(ours, STANDARD.encode(&bytes), "{bytes:?}");
                assert_eq!(decode(ours.as_bytes()).unwrap(), bytes);
            }
        }
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode(b"fo"), "Zm8=");
    }

    /// Mutated and random text: our decoder accepts exactly what the strict oracle accepts,
    /// with the same bytes, and never panics.
    #[test]
    fn decodes_exactly_what_the_oracle_decodes() {
        let mut rng = crate::testutil::Rng::new(65);
        let chars = b"AQgw+/=Zz09a\n -_";
        for _ in 0..50_000 {
            let len = rng.below(13);
            let text: Vec<u8> = (0..len).map(|_| chars[rng.below(chars.len())]).collect();
            let ours = decode(&text);
            let oracle = STANDARD.decode(&text);
            assert_eq!(
                ours.as_ref().ok(),
                oracle.as_ref().ok(),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
        assert!(decode(b"Zm9=").unwrap_err().contains("bits after the end"));
        assert!(decode(b"Zm8").unwrap_err().contains("multiple of 4"));
        assert!(decode(b"Zm=8").unwrap_err().contains("misplaced"));
        assert!(decode(b"Zm8*").unwrap_err().contains("invalid base64 character '*'"));
    }
}
