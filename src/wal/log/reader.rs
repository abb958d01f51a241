//! Reading a log front to back through a window of bounded size.
//!
//! Every reader of the log (replay, `check`, `repair`, the upgrade) goes through [`Window`], so
//! that none of them holds more than about two megabytes of the file at once, whatever its
//! size: the tools must not be OOM-killed on a small box exactly when they are needed. The
//! window only moves forward; asking for bytes behind it is a bug.

use std::fs::File;
use std::io::{self, Read};

/// How much is read from the file at a time.
const CHUNK: usize = 1 << 20;

/// A forward-only view of a file: `buf` holds the file's bytes from offset `start`.
pub struct Window {
    file: File,
    buf: Vec<u8>,
    start: u64,
    eof: bool,
}

impl Window {
    /// A window on `file`, whose read position must be at `at`.
    pub fn new(file: File, at: u64) -> Window {
        Window { file, buf: Vec::new(), start: at, eof: false }
    }

    /// The bytes from file offset `at` on: at least `want` of them unless the file ends first
    /// (then everything up to its end; empty at the end). `at` must not be behind the bytes the
    /// previous call returned. Bytes already in the buffer are not moved unless more must be
    /// read: replay asks once per record, and moving a megabyte each time would cost more than
    /// reading the log.
    pub fn fill(&mut self, at: u64, want: usize) -> io::Result<&[u8]> {
        let skip = self.make_ready(at, want)?;
        Ok(&self.buf[skip..])
    }

    /// [`Window::fill`], and whether the bytes returned run to the end of the file.
    pub fn fill_to_end(&mut self, at: u64, want: usize) -> io::Result<(&[u8], bool)> {
        let skip = self.make_ready(at, want)?;
        Ok((&self.buf[skip..], self.eof))
    }

    /// Makes `buf[skip..]` hold the bytes from `at` (see [`Window::fill`]); returns `skip`.
    fn make_ready(&mut self, at: u64, want: usize) -> io::Result<usize> {
        assert!(at >= self.start, "the window only moves forward ({at} < {})", self.start);
        let skip = at - self.start;
        if skip <= self.buf.len() as u64 {
            // In range: usize is at least 64 bits wide on every platform walkv builds for.
            let skip = skip as usize;
            if self.buf.len() - skip >= want || self.eof {
                return Ok(skip);
            }
            self.buf.drain(..skip);
        } else {
            // Jumping past the buffer: drop it and read on from `at`.
            let mut gap = skip - self.buf.len() as u64;
            self.buf.clear();
            while gap > 0 && !self.eof {
                let n = io::copy(&mut Read::by_ref(&mut self.file).take(gap), &mut io::sink())?;
                self.eof = n < gap;
                gap -= n;
            }
        }
        self.start = at;
        while self.buf.len() < want && !self.eof {
            // Room for exactly one more chunk, so the buffer never grows past `want` plus one
            // chunk (read_to_end would otherwise double it).
            let before = self.buf.len();
            self.buf.reserve_exact(CHUNK);
            Read::by_ref(&mut self.file).take(CHUNK as u64).read_to_end(&mut self.buf)?;
            self.eof = self.buf.len() == before;
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    /// Any sequence of forward requests sees exactly the file's bytes, and the buffer stays
    /// bounded by the request plus one chunk.
    #[test]
    fn forward_requests_see_the_file() {
        let dir = TempDir::new("window");
        let path = dir.join("f");
        let mut rng = crate::testutil::Rng::new(4);
        let bytes = rng.bytes(3 * CHUNK + 123);
        std::fs::write(&path, &bytes).unwrap();
        let mut w = Window::new(File::open(&path).unwrap(), 0);
        let (mut at, mut most) = (0u64, 0);
        while at <= bytes.len() as u64 + 10 {
            let want = rng.below(2 * CHUNK);
            most = most.max(want);
            let got = w.fill(at, want).unwrap().to_vec();
            let from = (at as usize).min(bytes.len());
            let end = (from + want).min(bytes.len());
            assert!(got.len() >= end - from && got.len() <= most + CHUNK, "at {at}");
            assert_eq!(got[..], bytes[from..from + got.len()], "at {at}");
            at += rng.below(CHUNK + CHUNK / 2) as u64;
        }
        assert!(w.fill_to_end(at, 0).unwrap().1, "at the end");
    }
}
