//! A minimal HTTP/1.1 client over `std::net::TcpStream`, for the client commands.
//!
//! Hand-written because the dependency budget has no room for an HTTP client, and because it
//! needs very little: a `Content-Length` body out, and an answer read exactly as far as its
//! `Content-Length` says (only an answer without one is read to the end of the connection), so
//! that a proxy or a server that keeps the connection open cannot hang it. [`send`] makes one
//! request per connection (`Connection: close`); a [`Connection`] makes many (`ls`, `import`).
//! Heads are parsed by [`parse_response`], a pure function that tests feed with well-formed,
//! malformed and random answers. It reads at most [`MAX_RESPONSE`] bytes and gives up after
//! [`TIMEOUT`], so a wrong address cannot hang it.

mod stream;

pub use stream::Stream;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connect, read and write timeout.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response read: a maximal value plus generous room for headers.
pub const MAX_RESPONSE: usize = crate::wal::MAX_VALUE_LEN + 64 * 1024;

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// The header fields, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of the header `name` (any case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a request got no usable answer.
#[derive(Debug)]
pub enum ClientError {
    /// No connection could be made (nothing listening, bad address, timeout).
    Connect { addr: String, source: io::Error },
    /// The connection broke while talking.
    Io(io::Error),
    /// Something answered, but not with HTTP we understand.
    BadResponse(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { addr, source } => write!(
                f,
                "cannot connect to {addr}: {source} (is the server running? set --addr or WALKV_ADDR)"
            ),
            ClientError::Io(e) => write!(f, "connection failed: {e}"),
            ClientError::BadResponse(why) => write!(f, "unreadable answer from the server: {why}"),
        }
    }
}

/// One request: what [`send`] writes.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub method: &'a str,
    pub target: &'a str,
    /// Extra header fields (`If-Match`, ...).
    pub headers: &'a [(&'a str, String)],
    pub body: &'a [u8],
}

impl<'a> Call<'a> {
    pub fn new(method: &'a str, target: &'a str, body: &'a [u8]) -> Call<'a> {
        Call { method, target, headers: &[], body }
    }
}

/// Sends one request (with `Authorization: <authorization>` if given) and returns the parsed
/// response.
pub fn request(
    addr: &str,
    authorization: Option<&str>,
    method: &str,
    target: &str,
    body: &[u8],
) -> Result<Reply, ClientError> {
    send(addr, authorization, &Call::new(method, target, body), TIMEOUT)
}

/// [`request`] that waits up to `wait` for the answer (`walkv compact`: a compaction of a large
/// store takes a while).
pub fn request_waiting(
    addr: &str,
    authorization: Option<&str>,
    method: &str,
    target: &str,
    body: &[u8],
    wait: Duration,
) -> Result<Reply, ClientError> {
    send(addr, authorization, &Call::new(method, target, body), wait)
}

/// Sends `call` on a connection of its own, waiting up to `wait` for the answer.
pub fn send(
    addr: &str,
    authorization: Option<&str>,
    call: &Call,
    wait: Duration,
) -> Result<Reply, ClientError> {
    let mut connection = Connection::open(addr, authorization)?;
    connection.stream.set_read_timeout(Some(wait)).map_err(ClientError::Io)?;
    let bytes = message(addr, authorization, call, true);
    if let Err(e) = connection.stream.write_all(&bytes) {
        // A server that refused the request (413, 401) may have answered and closed before
        // reading all of it: its answer says more than the broken pipe.
        return connection.read_until_closed().map_err(|_| ClientError::Io(e));
    }
    connection.read_until_closed()
}
/// The bytes of a request.
fn message(addr: &str, authorization: Option<&str>, call: &Call, close: bool) -> Vec<u8> {
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {addr}\r\n", call.method, call.target);
    if let Some(a) = authorization {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    for (name, value) in call.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", call.body.len()));
    let mut message = head.into_bytes();
    message.extend_from_slice(call.body);
    message
}

/// A connection kept open for many requests, one after another (`walkv ls`, `walkv import`).
/// Each answer is read exactly as far as its `Content-Length` says.
pub struct Connection {
    addr: String,
    authorization: Option<String>,
    stream: TcpStream,
    /// Bytes read past the last answer.
    buffer: Vec<u8>,
}

impl Connection {
    pub fn open(addr: &str, authorization: Option<&str>) -> Result<Connection, ClientError> {
        let stream = connect(addr)?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            addr: addr.to_string(),
            authorization: authorization.map(str::to_string),
            stream,
            buffer: Vec::new(),
        })
    }

    /// Writes `call` without waiting for its answer (several may be in flight: pipelining).
    pub fn write(&mut self, call: &Call) -> Result<(), ClientError> {
        let bytes = message(&self.addr, self.authorization.as_deref(), call, false);
        self.stream.write_all(&bytes).map_err(ClientError::Io)
    }

    /// Reads the answer to the oldest request written and not yet answered.
    pub fn read(&mut self) -> Result<Reply, ClientError> {
        let head_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
            if self.buffer.len() > 64 * 1024 {
                return Err(ClientError::BadResponse("response head over 64 KiB".into()));
            }
            self.fill()?;
        };
        let (mut reply, len) =
            parse_head(&self.buffer[..head_end - 4], false).map_err(ClientError::BadResponse)?;
        // A 304 has no body, whatever it says (RFC 9110 15.4.5).
        let len = if reply.status == 304 { Some(0) } else { len };
        let len =
            len.ok_or_else(|| ClientError::BadResponse("an answer without Content-Length".into()))?;
        if len > MAX_RESPONSE {
            return Err(ClientError::BadResponse(format!("response over {MAX_RESPONSE} bytes")));
        }
        while self.buffer.len() < head_end + len {
            self.fill()?;
        }
        reply.body = self.buffer[head_end..head_end + len].to_vec();
        self.buffer.drain(..head_end + len);
        Ok(reply)
    }

    /// Reads one answer on a connection the server closes after it: framed by
    /// `Content-Length` if it has one (behind a proxy that keeps the connection open, the end
    /// of the body is the end of the answer), else by the end of the connection.
    fn read_until_closed(&mut self) -> Result<Reply, ClientError> {
        let head_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
            if self.buffer.len() > 64 * 1024 {
                return Err(ClientError::BadResponse("response head over 64 KiB".into()));
            }
            if !self.fill_or_end()? {
                let shown =
                    String::from_utf8_lossy(&self.buffer[..self.buffer.len().min(40)]).into_owned();
                return Err(ClientError::BadResponse(format!(
                    "the connection ended before an HTTP answer ({} bytes: {shown:?})",
                    self.buffer.len()
                )));
            }
        };
        let (_, len) =
            parse_head(&self.buffer[..head_end - 4], false).map_err(ClientError::BadResponse)?;
        if len.is_some() {
            return self.read();
        }
        while self.fill_or_end()? {
            if self.buffer.len() > MAX_RESPONSE + head_end {
                return Err(ClientError::BadResponse(format!(
                    "response over {MAX_RESPONSE} bytes"
                )));
            }
        }
        parse_response(&self.buffer).map_err(ClientError::BadResponse)
    }

    /// Reads more; false at the end of the connection.
    fn fill_or_end(&mut self) -> Result<bool, ClientError> {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) => Err(ClientError::Io(e)),
        }
    }

    /// Sends `call` and reads its answer.
    pub fn call(&mut self, call: &Call) -> Result<Reply, ClientError> {
        self.write(call)?;
        self.read()
    }

    fn fill(&mut self) -> Result<(), ClientError> {
        match self.fill_or_end()? {
            true => Ok(()),
            false => Err(ClientError::BadResponse("the server closed the connection".into())),
        }
    }
}

fn connect(addr: &str) -> Result<TcpStream, ClientError> {
    let fail = |source| ClientError::Connect { addr: addr.to_string(), source };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the address resolved to nothing");
    for sock in addr.to_socket_addrs().map_err(fail)? {
        match TcpStream::connect_timeout(&sock, TIMEOUT) {
            Ok(stream) => {
                stream.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
                stream.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(fail(last))
}

/// Parses a complete HTTP/1.x response: status line, headers, and a body delimited by
/// `Content-Length` or, without one, by the end of the connection.
pub fn parse_response(raw: &[u8]) -> Result<Reply, String> {
    let head_end = find(raw, b"\r\n\r\n").ok_or("no end of headers")?;
    let (mut reply, content_length) = parse_head(&raw[..head_end], false)?;
    let rest = &raw[head_end + 4..];
    let body = match content_length {
        Some(n) if n <= rest.len() => &rest[..n],
        Some(n) => return Err(format!("body ended after {} of {n} bytes", rest.len())),
        None => rest,
    };
    reply.body = body.to_vec();
    Ok(reply)
}

/// Parses a response's head (without the blank line): the reply without its body, and the
/// `Content-Length` if there is one.
fn parse_head(raw: &[u8], chunked_ok: bool) -> Result<(Reply, Option<usize>), String> {
    let head = std::str::from_utf8(raw).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x status line: {status_line:?}"));
    }
    let status = match code.parse::<u16>() {
        Ok(s) if (100..=599).contains(&s) && code.len() == 3 => s,
        _ => return Err(format!("bad status code in {status_line:?}")),
    };
    let mut content_length = None;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("bad header {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value.parse::<usize>().map_err(|_| format!("bad Content-Length {value:?}"))?;
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && !chunked_ok {
            return Err("chunked responses are not supported".to_string());
        }
        headers.push((name.to_string(), value.to_string()));
    }
    Ok((Reply { status, headers, body: Vec::new() }, content_length))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Percent-encodes a key as one path segment: every byte but `A-Z a-z 0-9 - . _ ~` becomes `%XX`,
/// and the keys `.` and `..` are encoded whole.
pub fn encode_key(key: &[u8]) -> String {
    if key == b"." || key == b".." {
        // Proxies and URL libraries remove `.` and `..` segments (RFC 3986 5.2.4).
        return "%2E".repeat(key.len());
    }
    let mut out = String::with_capacity(key.len() * 3);
    for &b in key {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Well-formed answers parse to status and exact body.
    #[test]
    fn parses_responses() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: x\r\ncontent-length: 5\r\n\r\nhello";
        let reply = parse_response(raw).unwrap();
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(reply.header("Content-type"), Some("x"));
        let raw = b"HTTP/1.0 404 Not Found\r\n\r\n{\"error\":\"key not found\"}";
        assert_eq!(parse_response(raw).unwrap().status, 404);
        let raw = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap().body, b"");
    }

    /// Malformed answers are errors that say why, never panics.
    #[test]
    fn rejects_malformed_responses() {
        for raw in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            assert!(parse_response(raw).is_err(), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    /// Random and mutated answers never panic.
    #[test]
    fn random_responses_never_panic() {
        let mut rng = crate::testutil::Rng::new(3);
        let base = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc".to_vec();
        for _ in 0..20_000 {
            let mut raw = base.clone();
            for _ in 0..1 + rng.below(4) {
                if raw.is_empty() {
                    break;
                }
                let at = rng.below(raw.len());
                match rng.below(3) {
                    0 => raw[at] = rng.next_u64() as u8,
                    1 => raw.insert(at, b"\r\n: 0123456789"[rng.below(14)]),
                    _ => raw.truncate(at),
                }
            }
            let _ = parse_response(&raw);
        }
    }

    /// Encoded keys decode back to the same bytes through the server's own decoder.
    #[test]
    fn encoded_keys_round_trip_through_the_server_decoder() {
        let mut rng = crate::testutil::Rng::new(4);
        for _ in 0..2000 {
            let len = 1 + rng.below(20);
            let key = rng.bytes(len);
            let encoded = encode_key(&key);
            assert!(!encoded.contains('/') && !encoded.contains('?'));
            assert_eq!(crate::http::decode_key(&encoded).unwrap(), key);
        }
        assert_eq!(encode_key(b"a/b c=d"), "a%2Fb%20c%3Dd");
        assert_eq!((encode_key(b"."), encode_key(b"..")), ("%2E".into(), "%2E%2E".into()));
        assert_eq!(encode_key(b"..."), "...", "only the segments proxies remove");
    }
}
