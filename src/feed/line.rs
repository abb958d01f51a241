//! One change as the feed shows it: a JSON line, encoded once and shared by every follower.
//!
//! ```text
//! {"seq":7,"op":"set","key":"cat","value":"meow"}
//! {"seq":8,"op":"delete","key":"cat"}
//! ```
//!
//! A key or value that is not UTF-8 is written as `key_base64` / `value_base64`, exactly as
//! `walkv export` writes it ([`crate::json::write_bytes_member`]); strings are escaped so that
//! the line is safe to show in a terminal.

use crate::json;
use crate::wal::Op;
use std::sync::Arc;

/// A change's line, with its seq and key (to filter by prefix). Cloning shares the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    seq: u64,
    /// The key's length (4 bytes, little-endian), the key, then the JSON line with its `\n`.
    bytes: Arc<[u8]>,
}

impl Line {
    /// The line of the change `seq`: `op` of `key`, to `value` for a SET.
    pub fn new(seq: u64, op: Op, key: &[u8], value: &[u8]) -> Line {
        let mut text = String::with_capacity(key.len() + value.len() + 48);
        text.push_str("{\"seq\":");
        text.push_str(&seq.to_string());
        match op {
            Op::Set => text.push_str(",\"op\":\"set\","),
            Op::Delete => text.push_str(",\"op\":\"delete\","),
        }
        json::write_bytes_member(&mut text, "key", key);
        if op == Op::Set {
            text.push(',');
            json::write_bytes_member(&mut text, "value", value);
        }
        text.push_str("}\n");
        // A key is at most 4 KiB, so its length fits in 4 bytes.
        let key_len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        let mut bytes = Vec::with_capacity(4 + key.len() + text.len());
        bytes.extend_from_slice(&key_len.to_le_bytes());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(text.as_bytes());
        Line { seq, bytes: bytes.into() }
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn key(&self) -> &[u8] {
        &self.bytes[4..4 + self.key_len()]
    }

    /// The JSON line, `\n` included.
    pub fn json(&self) -> &[u8] {
        &self.bytes[4 + self.key_len()..]
    }

    /// The bytes it takes in the ring.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn key_len(&self) -> usize {
        let mut len = [0; 4];
        len.copy_from_slice(&self.bytes[..4]);
        u32::from_le_bytes(len) as usize
    }
}
