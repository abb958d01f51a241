//! A streamed answer read as it arrives: the change feed (`GET /changes`), whose chunked body
//! lasts as long as the client follows. [`Stream::open`] sends the request and reads the head;
//! [`Stream::line`] returns the body's lines one at a time, whatever the chunks' boundaries.
//! A chunk size line longer than 32 bytes, a chunk over [`MAX_CHUNK`] or a line over
//! [`super::MAX_RESPONSE`] is an unreadable answer, so a wrong server cannot make it hold
//! unbounded memory.

use super::{Call, ClientError, Reply, connect, find, message, parse_head};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The largest chunk read.
pub const MAX_CHUNK: usize = 16 << 20;

/// A streamed answer: its head, and its body line by line.
pub struct Stream {
    /// The answer's status and headers (no body).
    pub head: Reply,
    stream: TcpStream,
    /// Bytes read and not yet decoded.
    raw: Vec<u8>,
    /// Body bytes decoded and not yet returned as lines.
    body: Vec<u8>,
    /// The body is chunked (else it runs to the end of the connection).
    chunked: bool,
    ended: bool,
}

impl Stream {
    /// Sends `call` and reads the head of its answer; reads wait at most `idle` for bytes.
    pub fn open(
        addr: &str,
        authorization: Option<&str>,
        call: &Call,
        idle: Duration,
    ) -> Result<Stream, ClientError> {
        let mut stream = connect(addr)?;
        stream.set_read_timeout(Some(idle)).map_err(ClientError::Io)?;
        stream.write_all(&message(addr, authorization, call, true)).map_err(ClientError::Io)?;
        let mut raw = Vec::new();
        let head_end = loop {
            if let Some(at) = find(&raw, b"\r\n\r\n") {
                break at + 4;
            }
            if raw.len() > 64 * 1024 {
                return Err(ClientError::BadResponse("response head over 64 KiB".into()));
            }
            if !read_more(&mut stream, &mut raw)? {
                return Err(ClientError::BadResponse("the connection ended in the head".into()));
            }
        };
        let (head, length) =
            parse_head(&raw[..head_end - 4], true).map_err(ClientError::BadResponse)?;
        let chunked =
            head.header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
        raw.drain(..head_end);
        let mut opened = Stream { head, stream, raw, body: Vec::new(), chunked, ended: false };
        if let Some(length) = length.filter(|_| !chunked) {
            // An answer with a length (an error): its body whole, as the head's body.
            while opened.raw.len() < length {
                if !read_more(&mut opened.stream, &mut opened.raw)? {
                    break;
                }
            }
            opened.raw.truncate(length);
            opened.head.body = std::mem::take(&mut opened.raw);
            opened.ended = true;
        }
        Ok(opened)
    }

    /// The next line of the body, without its `\n`; `None` at the body's end.
    pub fn line(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        loop {
            if let Some(at) = self.body.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.body.drain(..=at).collect();
                line.pop();
                return Ok(Some(line));
            }
            if self.body.len() > super::MAX_RESPONSE {
                return Err(ClientError::BadResponse("a line over the largest answer".into()));
            }
            if self.ended || !self.decode_more()? {
                return Ok(None);
            }
        }
    }

    /// Moves more of the body into `body`; false at its end.
    fn decode_more(&mut self) -> Result<bool, ClientError> {
        if !self.chunked {
            let before = self.raw.len();
            let more = read_more(&mut self.stream, &mut self.raw)?;
            self.body.append(&mut self.raw);
            self.ended = !more;
            return Ok(more || before > 0);
        }
        loop {
            if let Some(at) = find(&self.raw, b"\r\n") {
                let size = std::str::from_utf8(&self.raw[..at])
                    .ok()
                    .map(|s| s.split(';').next().unwrap_or_default().trim())
                    .and_then(|s| usize::from_str_radix(s, 16).ok())
                    .filter(|n| *n <= MAX_CHUNK)
                    .ok_or_else(|| ClientError::BadResponse("a bad chunk size".into()))?;
                if size == 0 {
                    self.ended = true;
                    return Ok(false);
                }
                if self.raw.len() >= at + 2 + size + 2 {
                    if &self.raw[at + 2 + size..at + 4 + size] != b"\r\n" {
                        return Err(ClientError::BadResponse("a chunk without its end".into()));
                    }
                    self.body.extend_from_slice(&self.raw[at + 2..at + 2 + size]);
                    self.raw.drain(..at + 4 + size);
                    return Ok(true);
                }
            } else if self.raw.len() > 32 {
                return Err(ClientError::BadResponse("a chunk size line over 32 bytes".into()));
            }
            if !read_more(&mut self.stream, &mut self.raw)? {
                return Err(ClientError::BadResponse("the connection ended in a chunk".into()));
            }
        }
    }
}

/// Reads what the socket has into `raw`; false at the end of the connection.
fn read_more(stream: &mut TcpStream, raw: &mut Vec<u8>) -> Result<bool, ClientError> {
    let mut chunk = [0u8; 64 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) => Ok(false),
        Ok(n) => {
            raw.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Err(e) => Err(ClientError::Io(e)),
    }
}
