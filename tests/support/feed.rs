//! Reading a streamed answer (the change feed): the head, then a chunked body line by line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A streamed answer being read: the head, then the chunked body line by line.
pub struct Stream {
    pub status: u16,
    head: String,
    pub reader: BufReader<TcpStream>,
    /// Decoded body bytes not yet returned as lines.
    pending: Vec<u8>,
    pub ended: bool,
}

impl Stream {
    /// Sends `GET target` with extra header lines and reads the answer's head.
    pub fn open(addr: &str, target: &str, headers: &str) -> Stream {
        Stream::try_open(addr, target, headers).expect("connect")
    }

    /// [`Stream::open`], or the error of connecting (a server that is gone).
    pub fn try_open(addr: &str, target: &str, headers: &str) -> std::io::Result<Stream> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        write!(stream, "GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n")?;
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            assert!(reader.read_line(&mut head).unwrap_or(0) > 0, "closed in the head: {head}");
        }
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Ok(Stream { status, head, reader, pending: Vec::new(), ended: false })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The next line of the body (without its `\n`), or `None` at its end.
    pub fn line(&mut self) -> Option<String> {
        loop {
            if let Some(at) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=at).collect();
                return Some(String::from_utf8(line[..at].to_vec()).unwrap());
            }
            if self.ended || !self.chunk() {
                return None;
            }
        }
    }

    /// Reads one chunk into `pending`; false at the last chunk (or a closed connection).
    fn chunk(&mut self) -> bool {
        let mut size = String::new();
        if self.reader.read_line(&mut size).unwrap_or(0) == 0 {
            self.ended = true;
            return false;
        }
        // A connection cut mid-chunk (a killed server) ends the stream like a last chunk.
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            self.ended = true;
            return false;
        };
        let mut data = vec![0; size + 2];
        if self.reader.read_exact(&mut data).is_err() || &data[size..] != b"\r\n" {
            self.ended = true;
            return false;
        }
        if size == 0 {
            self.ended = true;
            return false;
        }
        self.pending.extend_from_slice(&data[..size]);
        true
    }

    /// Every line until the body ends.
    pub fn rest(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.line()).collect()
    }
}
