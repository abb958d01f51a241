//! One change as the feed shows it: a JSON line, encoded once and shared by every follower.
//!
//! ```text
//! {"seq":7,"op":"set","key":"cat","value":"meow"}
//! {"seq":8,"op":"delete","key":"cat"}
//! {"seq":9,"op":"set","key":"session","value":"s1","expires":1796400000000}
//! {"seq":10,"op":"expire","key":"session"}
//! {"seq":11,"op":"txn","ops":[{"op":"set","key":"a","value":"1"},{"op":"delete","key":"b"}]}
//! ```
//!
//! `expires` is when the key expires, in milliseconds since the Unix epoch; an `expire` is the
//! server's sweep removing a key whose time had come. A transaction is one line, so that a
//! consumer applies all of it or none: a follower with a prefix gets the whole line when any of
//! its keys has the prefix.
//!
//! A key or value that is not UTF-8 is written as `key_base64` / `value_base64`, exactly as
//! `walkv export` writes it ([`crate::json::write_bytes_member`]); strings are escaped so that
//! the line is safe to show in a terminal.

use crate::json;
use crate::wal::Body;
use std::sync::Arc;

/// A change's line, with its seq and keys (to filter by prefix). Cloning shares the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    seq: u64,
    /// Where the JSON line starts in `bytes`.
    json_at: usize,
    /// The number of keys (4 bytes, little-endian), each key's length (4 bytes) and bytes,
    /// then the JSON line with its `\n`.
    bytes: Arc<[u8]>,
}

impl Line {
    /// The line of the change `seq`, whose record holds `body` (a SET, DELETE, EXPIRE or
    /// transaction: the map's changes).
    pub fn new(seq: u64, body: &Body) -> Line {
        let mut text = String::with_capacity(64);
        text.push_str("{\"seq\":");
        text.push_str(&seq.to_string());
        text.push(',');
        let mut keys: Vec<&[u8]> = Vec::new();
        match body {
            Body::Txn(txn) => {
                text.push_str("\"op\":\"txn\",\"ops\":[");
                for (i, op) in txn.ops().enumerate() {
                    if i > 0 {
                        text.push(',');
                    }
                    text.push('{');
                    keys.push(write_change(&mut text, &op));
                    text.push('}');
                }
                text.push(']');
            }
            change => keys.push(write_change(&mut text, change)),
        }
        text.push_str("}\n");
        let mut bytes = Vec::with_capacity(4 + keys.len() * 4 + text.len());
        // A key is at most 4 KiB and a transaction holds at most a few thousand: both fit in
        // 4 bytes.
        bytes.extend_from_slice(&(keys.len() as u32).to_le_bytes());
        for key in &keys {
            bytes.extend_from_slice(&(key.len() as u32).to_le_bytes());
            bytes.extend_from_slice(key);
        }
        let json_at = bytes.len();
        bytes.extend_from_slice(text.as_bytes());
        Line { seq, json_at, bytes: bytes.into() }
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The keys it changes: one, or a transaction's.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        let count = u32_at(&self.bytes, 0);
        let mut at = 4;
        (0..count).map(move |_| {
            let len = u32_at(&self.bytes, at) as usize;
            let key = &self.bytes[at + 4..at + 4 + len];
            at += 4 + len;
            key
        })
    }

    /// True if it changes a key that starts with `prefix`.
    pub fn matches(&self, prefix: &[u8]) -> bool {
        prefix.is_empty() || self.keys().any(|key| key.starts_with(prefix))
    }

    /// The JSON line, `\n` included.
    pub fn json(&self) -> &[u8] {
        &self.bytes[self.json_at..]
    }

    /// The bytes it takes in the ring.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Writes the members of one change (after the seq) into `text`; returns its key.
fn write_change<'a>(text: &mut String, change: &Body<'a>) -> &'a [u8] {
    let (op, key) = match *change {
        Body::Set { key, .. } => ("set", key),
        Body::Delete { key } => ("delete", key),
        Body::Expire { key } => ("expire", key),
        Body::Txn(_) | Body::Mark(_) | Body::Gap { .. } => ("none", &b""[..]),
    };
    text.push_str("\"op\":\"");
    text.push_str(op);
    text.push_str("\",");
    json::write_bytes_member(text, "key", key);
    if let Body::Set { value, expires, .. } = *change {
        text.push(',');
        json::write_bytes_member(text, "value", value);
        if let Some(at) = expires {
            text.push_str(",\"expires\":");
            text.push_str(&at.to_string());
        }
    }
    key
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut n = [0; 4];
    n.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(n)
}
