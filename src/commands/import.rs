//! `walkv import [FILE|-]`: loads JSON lines (what `walkv export` writes) into a running server.
//!
//! Each line is checked here first ([`crate::http::bulk::parse_line`]), so a malformed line
//! stops the import at that line, with its number, having written exactly the lines before it.
//! Valid lines go to `POST /v1/bulk` as they are, about [`BATCH_BYTES`] (and at most
//! [`bulk::MAX_LINES`] lines) per request, on one
//! connection with two requests in flight (the next batch travels while the server writes the
//! last). At the end, `POST /sync` makes it all durable, and the count is printed.

use super::answer::{auth_header, finish};
use crate::auth::TokenSource;
use crate::cli::exit;
use crate::client::{Call, Connection, Reply};
use crate::http::{MAX_JSON_BODY, bulk};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Bytes of lines per request, about.
pub const BATCH_BYTES: usize = 1 << 20;
/// Requests written and not yet answered, at most.
const IN_FLIGHT: usize = 2;

/// `walkv import`.
pub fn import(addr: &str, token: &TokenSource, file: Option<&Path>) -> u8 {
    let auth = match auth_header(token) {
        Ok(auth) => auth,
        Err(code) => return code,
    };
    let input: Box<dyn Read> = match file {
        None => Box::new(io::stdin()),
        Some(path) => match File::open(path) {
            Ok(f) => Box::new(f),
            Err(e) => {
                crate::log!("cannot open {}: {e}", path.display());
                return exit::FAILED;
            }
        },
    };
    let connection = match Connection::open(addr, auth.as_deref()) {
        Ok(c) => c,
        Err(e) => return finish(Err(e), |_| exit::OK),
    };
    let mut import = Import { connection, in_flight: VecDeque::new(), written: 0 };
    let stopped = match import.run(BufReader::with_capacity(1 << 20, input)) {
        Ok(stopped) => stopped,
        Err(code) => return code,
    };
    let mut synced = 0;
    let code = finish(import.connection.call(&Call::new("POST", "/sync", b"")), |reply| {
        synced = crate::json::parse(&reply.body)
            .ok()
            .and_then(|v| match v {
                crate::json::Value::Object(m) => m.into_iter().find(|(n, _)| n == "synced_seq"),
                _ => None,
            })
            .and_then(|(_, v)| match v {
                crate::json::Value::Number(n) => n.parse::<u64>().ok(),
                _ => None,
            })
            .unwrap_or_default();
        exit::OK
    });
    say!("imported {} keys; synced through seq {synced}", import.written);
    match stopped {
        Some((number, why)) => {
            crate::log!(
                "line {number}: {why}; the import stopped there: the lines before it were \
                 written, nothing after"
            );
            exit::USAGE
        }
        None => code,
    }
}

struct Import {
    connection: Connection,
    /// Lines in each request written and not yet answered.
    in_flight: VecDeque<u64>,
    written: u64,
}

impl Import {
    /// Sends every valid line; `Some((line, why))` if a malformed one stopped it, `Err(code)`
    /// if the server or the input failed.
    fn run(&mut self, mut input: impl BufRead) -> Result<Option<(u64, String)>, u8> {
        let mut batch: Vec<u8> = Vec::with_capacity(BATCH_BYTES + (64 << 10));
        let mut lines_in_batch = 0u64;
        let mut line = Vec::new();
        let mut number = 0u64;
        let stopped = loop {
            line.clear();
            let limit = MAX_JSON_BODY; // a valid line is always shorter
            let read = input.by_ref().take(limit + 1).read_until(b'\n', &mut line);
            match read {
                Ok(0) => break None,
                Ok(_) => number += 1,
                Err(e) => {
                    crate::log!("cannot read line {}: {e}", number + 1);
                    self.drain()?;
                    return Err(exit::FAILED);
                }
            }
            if line.len() as u64 > limit {
                break Some((number, format!("the line is over {limit} bytes")));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Err(why) = bulk::parse_line(&line) {
                break Some((number, why));
            }
            if (batch.len() + line.len()) as u64 >= MAX_JSON_BODY {
                self.send(&batch, lines_in_batch)?;
                batch.clear();
                lines_in_batch = 0;
            }
            batch.extend_from_slice(&line);
            if !batch.ends_with(b"\n") {
                batch.push(b'\n');
            }
            lines_in_batch += 1;
            if batch.len() >= BATCH_BYTES || lines_in_batch as usize == bulk::MAX_LINES {
                self.send(&batch, lines_in_batch)?;
                batch.clear();
                lines_in_batch = 0;
            }
        };
        if lines_in_batch > 0 {
            self.send(&batch, lines_in_batch)?;
        }
        self.drain()?;
        Ok(stopped)
    }

    /// Writes one batch, first reading an answer if [`IN_FLIGHT`] requests are unanswered.
    fn send(&mut self, body: &[u8], lines: u64) -> Result<(), u8> {
        if self.in_flight.len() >= IN_FLIGHT {
            self.answer()?;
        }
        let call = Call::new("POST", "/v1/bulk", body);
        if let Err(e) = self.connection.write(&call) {
            return Err(finish(Err(e), |_| exit::OK));
        }
        self.in_flight.push_back(lines);
        Ok(())
    }

    /// Reads every answer still due.
    fn drain(&mut self) -> Result<(), u8> {
        while !self.in_flight.is_empty() {
            self.answer()?;
        }
        Ok(())
    }

    fn answer(&mut self) -> Result<(), u8> {
        let lines = self.in_flight.pop_front().unwrap_or_default();
        let reply: Result<Reply, _> = self.connection.read();
        let code = finish(reply, |_| exit::OK);
        if code != exit::OK {
            crate::log!("{} keys were written before this", self.written);
            return Err(code);
        }
        self.written += lines;
        Ok(())
    }
}
