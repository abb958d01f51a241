//! Conditional requests (RFC 9110, section 13): the ETags of keys, and `If-Match` and
//! `If-None-Match`, which make compare-and-set.
//!
//! A key's ETag is `"SEQ"`: the sequence number of the log record that set its current value.
//! Sequence numbers are never given to two writes (see `docs/log-format.md`), so two different values
//! of a key never share an ETag, across restarts and compactions too (a snapshot keeps each
//! key's seq). Every ETag is strong.
//!
//! | header | holds when | on a write, else | on GET or HEAD, else |
//! |---|---|---|---|
//! | `If-Match: "S1", "S2"` | the key exists and its ETag is one of them | 412 | 412 |
//! | `If-Match: *` | the key exists | 412 | 412 |
//! | `If-None-Match: "S1", ...` | the key is missing, or its ETag is none of them | 412 | 304 |
//! | `If-None-Match: *` | the key is missing | 412 | 304 |
//!
//! `If-Match` is evaluated first, as the RFC orders it. A request whose condition does not hold
//! changes nothing. The main thread answers requests one at a time, and checks a write against
//! the key's newest state, writes still on their way to the log included
//! ([`crate::store::Store::latest`]), so nothing can come between the check and the write. A header that is not `*` or a list of walkv ETags (`"` digits `"`;
//! a weak `W/"5"` in `If-None-Match` only) is refused with 400, not treated as "no match": a
//! typo must not look like a lost race.

/// What a condition header lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    /// `*`: any current value.
    Any,
    /// A list of sequence numbers.
    Seqs(Vec<u64>),
}

impl Tags {
    /// True if a key whose ETag is `current` (`None`: missing) is among these.
    fn matches(&self, current: Option<u64>) -> bool {
        match (self, current) {
            (_, None) => false,
            (Tags::Any, Some(_)) => true,
            (Tags::Seqs(seqs), Some(seq)) => seqs.contains(&seq),
        }
    }
}

/// The conditions of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub if_match: Option<Tags>,
    pub if_none_match: Option<Tags>,
}

/// What the conditions say about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on with the request.
    Proceed,
    /// 412: a write changes nothing; a read sends no value.
    Failed,
    /// 304 (GET and HEAD only): the client's copy is current.
    NotModified,
}

impl Conditions {
    /// Reads `If-Match` and `If-None-Match` from the (lowercased) header fields. A header that
    /// appears on several lines is one list, as the RFC says.
    pub fn parse(headers: &[(&str, &str)]) -> Result<Conditions, String> {
        let mut conditions = Conditions::default();
        for &(name, value) in headers {
            let (slot, weak_ok) = match name {
                "if-match" => (&mut conditions.if_match, false),
                "if-none-match" => (&mut conditions.if_none_match, true),
                _ => continue,
            };
            let tags = parse_tags(value, weak_ok).map_err(|why| {
                let header = if weak_ok { "If-None-Match" } else { "If-Match" };
                format!("bad {header} header: {why}; use * or a quoted ETag such as \"42\"")
            })?;
            *slot = Some(match (slot.take(), tags) {
                (None, tags) => tags,
                (Some(Tags::Seqs(mut a)), Tags::Seqs(b)) => {
                    a.extend(b);
                    Tags::Seqs(a)
                }
                _ => return Err("`*` cannot be combined with ETags".into()),
            });
        }
        Ok(conditions)
    }

    /// True if the request has no condition.
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none() && self.if_none_match.is_none()
    }

    /// The verdict for a key whose ETag is `current` (`None`: the key is missing).
    pub fn evaluate(&self, current: Option<u64>, read: bool) -> Verdict {
        if let Some(tags) = &self.if_match
            && !tags.matches(current)
        {
            return Verdict::Failed;
        }
        match &self.if_none_match {
            Some(tags) if tags.matches(current) && read => Verdict::NotModified,
            Some(tags) if tags.matches(current) => Verdict::Failed,
            _ => Verdict::Proceed,
        }
    }
}

/// Parses `*` or `#entity-tag` (comma-separated, empty elements ignored).
fn parse_tags(value: &str, weak_ok: bool) -> Result<Tags, String> {
    let value = value.trim_matches([' ', '\t']);
    if value == "*" {
        return Ok(Tags::Any);
    }
    let mut seqs = Vec::new();
    for element in value.split(',') {
        let element = element.trim_matches([' ', '\t']);
        if element.is_empty() {
            continue;
        }
        let tag = match element.strip_prefix("W/") {
            Some(_) if !weak_ok => {
                return Err("a weak ETag never matches here, and walkv's ETags are strong".into());
            }
            Some(tag) => tag,
            None => element,
        };
        seqs.push(parse_seq(tag)?);
    }
    if seqs.is_empty() {
        return Err("it is empty".into());
    }
    Ok(Tags::Seqs(seqs))
}

/// `"DIGITS"` to the number, or why not.
fn parse_seq(tag: &str) -> Result<u64, String> {
    let shown: String = tag.chars().take(40).flat_map(char::escape_debug).collect();
    let digits = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| format!("`{shown}` is not a quoted ETag"))?;
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{shown}` is not a walkv ETag (a quoted sequence number)"));
    }
    digits.parse().map_err(|_| format!("`{shown}` is not a walkv ETag (a quoted sequence number)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(headers: &[(&str, &str)]) -> Result<Conditions, String> {
        Conditions::parse(headers)
    }

    /// Every well-formed header the RFC allows for walkv's ETags, and the list it makes.
    #[test]
    fn parses_tag_lists() {
        let c = parse(&[("if-match", "\"5\"")]).unwrap();
        assert_eq!(c.if_match, Some(Tags::Seqs(vec![5])));
        let c = parse(&[("if-match", " \"1\" ,\t\"22\",, "), ("if-match", "\"3\"")]).unwrap();
        assert_eq!(c.if_match, Some(Tags::Seqs(vec![1, 22, 3])));
        let c = parse(&[("if-none-match", "*"), ("host", "x")]).unwrap();
        assert_eq!((c.if_match, c.if_none_match), (None, Some(Tags::Any)));
        let c = parse(&[("if-none-match", "W/\"7\", \"8\"")]).unwrap();
        assert_eq!(c.if_none_match, Some(Tags::Seqs(vec![7, 8])));
        let c = parse(&[("if-match", "\"18446744073709551615\"")]).unwrap();
        assert_eq!(c.if_match, Some(Tags::Seqs(vec![u64::MAX])));
        assert!(parse(&[]).unwrap().is_empty());
    }

    /// Malformed headers are errors that name the header and show the bad part.
    #[test]
    fn refuses_malformed_headers() {
        for (name, value, says) in [
            ("if-match", "5", "`5` is not a quoted ETag"),
            ("if-match", "\"abc\"", "not a walkv ETag"),
            ("if-match", "\"\"", "not a walkv ETag"),
            ("if-match", "\"18446744073709551616\"", "not a walkv ETag"),
            ("if-match", "W/\"5\"", "weak ETag"),
            ("if-match", "", "it is empty"),
            ("if-match", " , ", "it is empty"),
            ("if-none-match", "\"5", "not a quoted ETag"),
            ("if-none-match", "**", "not a quoted ETag"),
            ("if-none-match", "\"-1\"", "not a walkv ETag"),
        ] {
            let err = parse(&[(name, value)]).unwrap_err();
            assert!(err.contains(says), "{name}: {value:?} -> {err}");
            let header = if name == "if-match" { "bad If-Match" } else { "bad If-None-Match" };
            assert!(err.starts_with(header), "{err}");
        }
        let err = parse(&[("if-match", "*"), ("if-match", "\"1\"")]).unwrap_err();
        assert!(err.contains("cannot be combined"), "{err}");
        let err = parse(&[("if-match", "\"\u{1b}[2J\"")]).unwrap_err();
        assert!(!err.contains('\u{1b}'), "control bytes are escaped: {err}");
    }

    /// The verdicts of RFC 9110 13.2.2, for writes and reads, on present and missing keys.
    #[test]
    fn verdicts() {
        use Verdict::*;
        let c = |m: Option<Tags>, n: Option<Tags>| Conditions { if_match: m, if_none_match: n };
        let seqs = |s: &[u64]| Some(Tags::Seqs(s.to_vec()));
        for (conditions, current, write, read) in [
            (c(None, None), None, Proceed, Proceed),
            (c(seqs(&[5]), None), Some(5), Proceed, Proceed),
            (c(seqs(&[4, 5]), None), Some(5), Proceed, Proceed),
            (c(seqs(&[5]), None), Some(6), Failed, Failed),
            (c(seqs(&[5]), None), None, Failed, Failed),
            (c(Some(Tags::Any), None), Some(1), Proceed, Proceed),
            (c(Some(Tags::Any), None), None, Failed, Failed),
            (c(None, Some(Tags::Any)), None, Proceed, Proceed),
            (c(None, Some(Tags::Any)), Some(1), Failed, NotModified),
            (c(None, seqs(&[5])), Some(5), Failed, NotModified),
            (c(None, seqs(&[5])), Some(6), Proceed, Proceed),
            (c(seqs(&[6]), seqs(&[5])), Some(5), Failed, Failed),
        ] {
            assert_eq!(conditions.evaluate(current, false), write, "{conditions:?} {current:?}");
            assert_eq!(conditions.evaluate(current, true), read, "{conditions:?} {current:?}");
        }
    }

    /// Random header values never panic the parser.
    #[test]
    fn random_headers_never_panic() {
        let mut rng = crate::testutil::Rng::new(12);
        let pieces = ["\"", "1", "W/", ",", " ", "*", "\u{e9}", "9999999999999999999999", "x"];
        for _ in 0..20_000 {
            let value: String =
                (0..rng.below(8)).map(|_| pieces[rng.below(pieces.len())]).collect();
            let _ = parse(&[("if-match", &value), ("if-none-match", &value)]);
        }
    }
}
