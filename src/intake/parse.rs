//! HTTP/1.1 request parsing: pure functions over bytes, tested without sockets. A head is
//! parsed whole (request line, fields, framing, keep-alive, expectations) into a [`Head`] or
//! refused with the [`Response`] that says what is wrong; chunked bodies are decoded as their
//! bytes arrive ([`Chunked`]).

use super::{MAX_HEAD_BYTES, MAX_HEADERS};
use crate::http::{self, Response};
use std::ops::Range;

/// A parsed request head: the head's text, kept whole (field names lowercased in place), and
/// where its parts are in it. One allocation for the text and one for the field positions,
/// however many fields there are.
#[derive(Debug, PartialEq)]
pub(super) struct Head {
    pub(super) text: String,
    pub(super) method: Range<usize>,
    /// In origin form (`/path?query`), still percent-encoded.
    pub(super) target: Range<usize>,
    pub(super) fields: Vec<(Range<usize>, Range<usize>)>,
    pub(super) keep_alive: bool,
    /// The request said HTTP/1.0.
    pub(super) http10: bool,
    pub(super) framing: Framing,
    pub(super) expect_continue: bool,
}

impl Head {
    pub(super) fn method(&self) -> &str {
        &self.text[self.method.clone()]
    }

    pub(super) fn target(&self) -> &str {
        &self.text[self.target.clone()]
    }

    pub(super) fn path(&self) -> &str {
        self.target().split_once('?').map_or(self.target(), |(path, _)| path)
    }

    /// The value of the first field called `name` (lowercase), if any.
    pub(super) fn field(&self, name: &str) -> Option<&str> {
        let (_, value) = self
            .fields
            .iter()
            .find(|(n, _)| n.len() == name.len() && self.text.get(n.clone()) == Some(name))?;
        self.text.get(value.clone())
    }

    /// (lowercased name, value) of every field, in order.
    pub(super) fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (&self.text[n.clone()], &self.text[v.clone()]))
    }
}

#[derive(Debug, PartialEq, Clone, Copy)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// Removes blank lines before a request line (RFC 9112 §2.2 asks servers to ignore them).
pub(super) fn skip_empty_lines(buf: &mut Vec<u8>) {
    let blank = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    if blank > 0 {
        buf.drain(..blank);
    }
}

/// The length of the head (through its blank line) if it is all in `buf`. `from`: bytes before
/// this were already searched (an optimisation for heads that arrive in pieces).
pub(super) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(at) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + at;
        match buf.get(nl + 1..)? {
            [b'\n', ..] => return Some(nl + 2),
            [b'\r', b'\n', ..] => return Some(nl + 3),
            [b'\r'] | [] => return None,
            _ => i = nl + 1,
        }
    }
    None
}

pub(super) fn head_too_large() -> Response {
    Response::error(431, &format!("request header is over the limit of {MAX_HEAD_BYTES} bytes"))
}

fn bad_request(message: &str) -> Response {
    Response::error(400, message)
}

/// Parses a whole head (request line, header fields, blank line).
pub(super) fn parse_head(bytes: &[u8]) -> Result<Head, Response> {
    let mut text = String::from_utf8(bytes.to_vec()).map_err(|_| {
        bad_request(
            "the request header is not UTF-8; percent-encode every byte of the target that is \
             not printable ASCII",
        )
    })?;
    let mut lines = line_spans(&text);
    let request_line = lines.next().unwrap_or(0..0);
    let [method, target, version] = split_request_line(&text, request_line)?;
    if method.is_empty() || !text[method.clone()].bytes().all(is_token_byte) {
        return Err(bad_request("the method is not a valid HTTP token"));
    }
    let http11 = match &text[version] {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        // A later 1.x is answered as the highest 1.x we know (RFC 9110 2.5).
        v if v.len() == 8 && v.starts_with("HTTP/1.") && v.as_bytes()[7].is_ascii_digit() => true,
        v if v.starts_with("HTTP/") => {
            return Err(Response::error(505, "only HTTP/1.0 and HTTP/1.1 are supported"));
        }
        _ => return Err(bad_request("the request line must end with HTTP/1.1 or HTTP/1.0")),
    };
    let target = origin_form(&text, target)?;
    let mut fields = Vec::new();
    for line in lines.take_while(|line| !line.is_empty()) {
        if fields.len() == MAX_HEADERS {
            return Err(Response::error(431, &format!("more than {MAX_HEADERS} header fields")));
        }
        fields.push(parse_field(&text, line)?);
    }
    for (name, _) in &fields {
        text[name.clone()].make_ascii_lowercase(); // names are case-insensitive
    }
    let mut head = Head {
        text,
        method,
        target,
        fields,
        keep_alive: false,
        http10: !http11,
        framing: Framing::None,
        expect_continue: false,
    };
    check_host(&head, http11)?;
    head.framing = framing(&head)?;
    if needs_body(&head) && !has_framing(&head) {
        return Err(Response::error(
            411,
            "this request needs a body, framed by Content-Length (or Transfer-Encoding: \
             chunked); an empty one is Content-Length: 0",
        ));
    }
    head.keep_alive = if http11 {
        !tokens(&head, "connection").any(|t| t.eq_ignore_ascii_case("close"))
    } else {
        tokens(&head, "connection").any(|t| t.eq_ignore_ascii_case("keep-alive"))
    };
    if tokens(&head, "expect").any(|t| !t.eq_ignore_ascii_case("100-continue")) {
        return Err(Response::error(417, "the only expectation understood is 100-continue"));
    }
    head.expect_continue = http11 && tokens(&head, "expect").next().is_some();
    Ok(head)
}

/// The lines of `text` as positions, without their `\n` or `\r\n`.
fn line_spans(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let bytes = text.as_bytes();
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let end =
            bytes[start..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| start + i);
        let line = start..if end > start && bytes[end - 1] == b'\r' { end - 1 } else { end };
        start = end + 1;
        Some(line)
    })
}

/// `METHOD TARGET VERSION`, exactly three parts separated by single spaces.
fn split_request_line(text: &str, line: Range<usize>) -> Result<[Range<usize>; 3], Response> {
    let malformed = || bad_request("the request line must be `METHOD TARGET HTTP/1.1`");
    let mut parts = [0..0, 0..0, 0..0];
    let mut start = line.start;
    for (i, part) in parts.iter_mut().enumerate() {
        let rest = &text.as_bytes()[start..line.end];
        let end = match rest.iter().position(|&b| b == b' ') {
            Some(at) if i < 2 => start + at,
            None if i == 2 => line.end,
            _ => return Err(malformed()),
        };
        *part = start..end;
        start = end + 1;
    }
    Ok(parts)
}

/// The request target in origin form (`/path?query`). An absolute-form target
/// (`http://host/path`, which RFC 9112 requires servers to accept) is reduced to its path.
fn origin_form(text: &str, target: Range<usize>) -> Result<Range<usize>, Response> {
    let raw = &text[target.clone()];
    let skip = match raw.split_once("://").filter(|_| !raw.starts_with('/')) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            scheme.len() + 3 + rest.find('/').unwrap_or(rest.len())
        }
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(bad_request(
                "the request target is an https:// URL, but this is plain HTTP (walkv has no \
                 TLS); send a path such as /v1/key",
            ));
        }
        _ => 0,
    };
    let path = target.start + skip..target.end;
    let text_of_path = &text[path.clone()];
    if text_of_path.is_empty() && skip > 0 {
        return Err(bad_request("an absolute request target needs a path, at least /"));
    }
    if !text_of_path.starts_with('/') {
        return Err(bad_request("the request target must be a path starting with /"));
    }
    if !text_of_path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad_request(
            "the request target holds a byte that is not printable ASCII; percent-encode it \
             (UTF-8 bytes too: é is %C3%A9)",
        ));
    }
    Ok(path)
}

/// One `Name: value` line: the positions of the name and of the value without surrounding
/// spaces and tabs.
fn parse_field(text: &str, line: Range<usize>) -> Result<(Range<usize>, Range<usize>), Response> {
    let field = &text[line.clone()];
    if field.starts_with([' ', '\t']) {
        return Err(bad_request("folded header lines are not accepted"));
    }
    let Some(colon) = field.find(':') else {
        return Err(bad_request("a header line has no colon"));
    };
    let name = &field[..colon];
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(bad_request("a header name is not a valid HTTP token"));
    }
    let raw = &field[colon + 1..];
    let value = raw.trim_matches([' ', '\t']);
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(bad_request("a header value holds a control character"));
    }
    let value_start =
        line.start + colon + 1 + (raw.len() - raw.trim_start_matches([' ', '\t']).len());
    Ok((line.start..line.start + colon, value_start..value_start + value.len()))
}

/// RFC 9112 §3.2: an HTTP/1.1 request carries exactly one `Host`, and no request carries two or
/// one that is not a host. walkv serves one origin and does not route by `Host`, but a request
/// that breaks this rule is malformed or forged on its way (two `Host`s are how some cache
/// poisoning works), and the RFC asks for 400.
fn check_host(head: &Head, http11: bool) -> Result<(), Response> {
    let mut hosts = head.fields().filter(|(n, _)| *n == "host").map(|(_, v)| v);
    match (hosts.next(), hosts.next()) {
        (None, _) if http11 => Err(bad_request(
            "an HTTP/1.1 request must carry a Host header (RFC 9112 3.2), such as Host: localhost",
        )),
        (Some(_), Some(_)) => Err(bad_request("the request carries more than one Host header")),
        (Some(host), None) if !host.bytes().all(is_host_byte) => {
            Err(bad_request("the Host header is not a host name, an address or host:port"))
        }
        _ => Ok(()),
    }
}

/// A byte of RFC 3986 `host [":" port]`: unreserved, percent-encoded, sub-delims, `:`, and
/// the brackets of an IPv6 literal.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b)
}

/// The comma-separated, trimmed, non-empty tokens of every field called `name` (lowercase).
fn tokens<'a>(head: &'a Head, name: &'a str) -> impl Iterator<Item = &'a str> {
    head.fields()
        .filter(move |(n, _)| *n == name)
        .flat_map(|(_, v)| v.split(',').map(str::trim))
        .filter(|t| !t.is_empty())
}

/// How the body is delimited. Ambiguous framing is refused (the basis of request smuggling).
fn framing(head: &Head) -> Result<Framing, Response> {
    let has_length = head.fields().any(|(n, _)| n == "content-length");
    if tokens(head, "transfer-encoding").next().is_some() {
        if has_length {
            return Err(bad_request("both Transfer-Encoding and Content-Length were sent"));
        }
        let mut codings = tokens(head, "transfer-encoding");
        if !codings.next().is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
            || codings.next().is_some()
        {
            return Err(Response::error(501, "the only transfer coding accepted is chunked"));
        }
        return Ok(Framing::Chunked);
    }
    let mut length = None;
    let lengths = head.fields().filter(|(n, _)| *n == "content-length");
    for text in lengths.flat_map(|(_, v)| v.split(',')).map(str::trim) {
        let n = parse_decimal(text).ok_or_else(|| bad_request("Content-Length is not a number"))?;
        if length.is_some_and(|m| m != n) {
            return Err(bad_request("two different Content-Length values were sent"));
        }
        length = Some(n);
    }
    Ok(match length {
        None | Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
    })
}

/// A request whose body is its point: PUT, and the POSTs that write (`/v1/write`, `/v1/bulk`).
/// Without framing its body would silently be empty (RFC 9112 6.3 lets a server answer 411).
/// `POST /sync` and `POST /compact` take no body, so `curl -X POST` works for them as it is.
fn needs_body(head: &Head) -> bool {
    match head.method() {
        "PUT" => true,
        "POST" => matches!(head.path(), "/v1/write" | "/v1/bulk"),
        _ => false, // a GET, the most common request, costs one comparison here
    }
}

/// True if the head says how long its body is.
fn has_framing(head: &Head) -> bool {
    head.fields().any(|(n, _)| n == "content-length" || n == "transfer-encoding")
}

/// Digits only (no sign, no spaces). A number too big for 64 bits is `u64::MAX`: a length
/// no body limit reaches, so it gets the 413 of a body over the limit, which it is.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Decodes `Transfer-Encoding: chunked` as bytes arrive, consuming them from the buffer.
#[derive(Default)]
pub(super) struct Chunked {
    /// Data bytes still to come in the current chunk.
    in_chunk: u64,
    /// After a chunk's data: its CRLF is still to come.
    data_end: bool,
    /// After the last (empty) chunk: trailer fields until a blank line.
    trailers: bool,
    /// Trailer bytes seen, bounded like a head.
    trailer_bytes: usize,
}

impl Chunked {
    /// Moves what `buf` holds into `body`. `Ok(true)`: the body is complete.
    pub(super) fn decode(
        &mut self,
        buf: &mut Vec<u8>,
        body: &mut Vec<u8>,
        limit: u64,
    ) -> Result<bool, Response> {
        let mut used = 0;
        let done = loop {
            let rest = &buf[used..];
            if self.in_chunk > 0 {
                let take = rest.len().min(usize::try_from(self.in_chunk).unwrap_or(usize::MAX));
                if take == 0 {
                    break false;
                }
                body.extend_from_slice(&rest[..take]);
                self.in_chunk -= take as u64;
                used += take;
                continue;
            }
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                if rest.len() > MAX_HEAD_BYTES {
                    return Err(bad_request("a chunk-size line is too long"));
                }
                break false;
            };
            let line = &rest[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            used += nl + 1;
            if self.data_end {
                if !line.is_empty() {
                    return Err(bad_request("chunk data is longer than its size"));
                }
                self.data_end = false;
            } else if self.trailers {
                self.trailer_bytes += nl + 1;
                if self.trailer_bytes > MAX_HEAD_BYTES {
                    return Err(Response::error(431, "the chunked trailer is too long"));
                }
                if line.is_empty() {
                    break true;
                }
            } else {
                let size = chunk_size(line)?;
                if size > limit.saturating_sub(body.len() as u64) {
                    return Err(http::too_large(limit));
                }
                if size == 0 {
                    self.trailers = true;
                } else {
                    self.in_chunk = size;
                    self.data_end = true;
                }
            }
        };
        buf.drain(..used);
        Ok(done)
    }
}

/// The hex size at the start of a chunk-size line (extensions after `;` are ignored).
fn chunk_size(line: &[u8]) -> Result<u64, Response> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits).unwrap_or("").trim_matches([' ', '\t']);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad_request("a chunk size is not a hex number"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| bad_request("a chunk size is not a hex number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Rng, knob};

    /// Parses `text`, adding `Host: t` after its first line if it has none (the tests of
    /// `Host` itself use [`exact_head`]).
    fn head(text: &str) -> Result<Head, Response> {
        match text.split_once('\n') {
            Some((line, rest)) if !text.contains("\nHost:") => {
                exact_head(&format!("{line}\nHost: t\r\n{rest}"))
            }
            _ => exact_head(text),
        }
    }

    fn exact_head(text: &str) -> Result<Head, Response> {
        let bytes = text.as_bytes();
        let end = find_head_end(bytes, 0).expect("a whole head");
        parse_head(&bytes[..end])
    }

    /// Exactly one `Host` in HTTP/1.1, at most one in 1.0, and a host in it (RFC 9112 3.2).
    #[test]
    fn host_is_required_once() {
        for ok in [
            "GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: [::1]:80\r\n\r\n",
            "GET / HTTP/1.1\r\nHost:\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        ] {
            assert!(exact_head(ok).is_ok(), "{ok:?}");
        }
        for (bad, says) in [
            ("GET / HTTP/1.1\r\n\r\n", "must carry a Host header"),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "more than one Host"),
            ("GET / HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n", "more than one Host"),
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "not a host name"),
            ("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "not a host name"),
        ] {
            let r = exact_head(bad).unwrap_err();
            assert_eq!(r.status, 400, "{bad:?}");
            assert!(String::from_utf8_lossy(&r.body).contains(says), "{bad:?}");
        }
    }

    fn status_of(result: Result<Head, Response>) -> u16 {
        result.err().map_or(0, |r| r.status)
    }

    #[test]
    fn finds_the_end_of_a_head_with_crlf_or_lf() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nrest", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r", 0), None);
        // Searching again from where the last search stopped finds the same end.
        let full = b"GET / HTTP/1.1\r\nA: b\r\n\r\n";
        for from in 0..full.len() - 2 {
            assert_eq!(find_head_end(full, from), Some(full.len()), "from {from}");
        }
    }

    #[test]
    fn parses_a_request_head() {
        let h = head("PUT /v1/k?sync HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A:  b \r\n\r\n")
            .unwrap();
        assert_eq!((h.method(), h.target(), h.path()), ("PUT", "/v1/k?sync", "/v1/k"));
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive && !h.expect_continue);
        assert_eq!(h.fields().nth(2), Some(("x-a", "b")));
        let h =
            head("GET http://example.com/v1/a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert_eq!(h.target(), "/v1/a");
        assert!(h.keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().keep_alive);
        let h =
            head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
                .unwrap();
        assert_eq!((h.framing, h.expect_continue), (Framing::Chunked, true));
    }

    #[test]
    fn refuses_bad_heads_with_the_right_status() {
        let cases = [
            ("GET /\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\n\r\n", 505),
            ("GET / FTP/1.0\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\n\r\n", 400),
            ("GET nopath HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            ("GET / HTTP/1.1\r\nA: b\x01c\r\n\r\n", 400),
            ("PUT / HTTP/1.1\r\nContent-Length: 0\r\nExpect: teapot\r\n\r\n", 417),
            ("PUT /v1/k HTTP/1.1\r\n\r\n", 411),
            ("POST /v1/write HTTP/1.1\r\nHost: x\r\n\r\n", 411),
            ("POST /v1/bulk?sync HTTP/1.0\r\n\r\n", 411),
            ("GET / HTTP/1.x\r\n\r\n", 505),
            ("GET / HTTP/1.10\r\n\r\n", 505),
        ];
        for (text, status) in cases {
            assert_eq!(status_of(head(text)), status, "{text:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(status_of(head(&format!("GET / HTTP/1.1\r\n{many}\r\n"))), 431);
        for ok in [
            "PUT /v1/k HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "PUT /v1/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /sync HTTP/1.1\r\n\r\n",
            "POST /compact HTTP/1.1\r\n\r\n",
        ] {
            assert!(head(ok).is_ok(), "{ok:?}");
        }
        let h = head("GET / HTTP/1.2\r\n\r\n").unwrap();
        assert!(h.keep_alive && !h.http10, "a later 1.x is served as 1.1");
        let says = |text: &str| String::from_utf8(head(text).unwrap_err().body).unwrap();
        assert!(says("GET https://h/v1/k HTTP/1.1\r\n\r\n").contains("https:// URL"));
        assert!(says("GET /v1/caf\u{e9} HTTP/1.1\r\n\r\n").contains("percent-encode it"));
        assert!(says("PUT /v1/k HTTP/1.1\r\n\r\n").contains("Content-Length: 0"));
        let huge = head("PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        assert_eq!(huge.unwrap().framing, Framing::Length(u64::MAX), "413 later, not 400");
        let same = head("GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(same.unwrap().framing, Framing::Length(3));
    }

    /// Feeds `pieces` one at a time; the body and what is left after it (later pieces included).
    fn decode_all(pieces: &[&[u8]], limit: u64) -> Result<(Vec<u8>, Vec<u8>), u16> {
        let mut decoder = Chunked::default();
        let (mut buf, mut body) = (Vec::new(), Vec::new());
        for (i, piece) in pieces.iter().enumerate() {
            buf.extend_from_slice(piece);
            if decoder.decode(&mut buf, &mut body, limit).map_err(|r| r.status)? {
                buf.extend(pieces[i + 1..].concat());
                return Ok((body, buf));
            }
        }
        Err(0)
    }

    #[test]
    fn decodes_chunked_bodies_in_any_pieces() {
        let wire = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for cut in 0..wire.len() {
            let (body, rest) = decode_all(&[&wire[..cut], &wire[cut..]], 100).unwrap();
            assert_eq!(body, b"hello world");
            assert_eq!(rest, b"NEXT");
        }
        let one_at_a_time: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode_all(&one_at_a_time, 100).unwrap().0, b"hello world");
        assert_eq!(decode_all(&[b"b\r\nhello world\r\n0\r\n\r\n"], 10), Err(413));
        assert_eq!(decode_all(&[b"zz\r\n"], 10), Err(400));
        assert_eq!(decode_all(&[b"2\r\nabc\r\n"], 10), Err(400));
        assert_eq!(decode_all(&[b"ffffffffffffffffff\r\n"], 10), Err(400));
    }

    /// Random and mutated heads and chunked bodies: never a panic, and a refusal is always an
    /// error status. `WALKV_FUZZ_ITERS` runs longer.
    #[test]
    fn random_and_mutated_input_never_panics() {
        let iters = knob("WALKV_FUZZ_ITERS", 20_000);
        let seeds: [&[u8]; 4] = [
            b"GET /v1/k HTTP/1.1\r\nHost: a\r\n\r\n",
            b"PUT /v1/k?sync HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
            b"POST /v1/write HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
            b"4\r\nabcd\r\n0\r\nX: y\r\n\r\n",
        ];
        let alphabet = b"\r\n :;,0123456789abcdefHTP/1.GETchunkedContent-Length\x00\xff\t";
        let mut rng = Rng::new(knob("WALKV_FUZZ_SEED", 1));
        for _ in 0..iters {
            let mut input = seeds[rng.below(seeds.len())].to_vec();
            for _ in 0..=rng.below(8) {
                let at = rng.below(input.len() + 1);
                let byte = alphabet[rng.below(alphabet.len())];
                match rng.below(3) {
                    0 if at < input.len() => input[at] = byte,
                    1 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => input.insert(at, byte),
                }
            }
            if let Some(end) = find_head_end(&input, 0)
                && let Err(r) = parse_head(&input[..end])
            {
                assert!(r.status >= 400, "{input:?}");
            }
            let mut buf = input.clone();
            let _ = Chunked::default().decode(&mut buf, &mut Vec::new(), 1 << 20);
        }
    }
}
