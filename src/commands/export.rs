//! `walkv export`: every key and its value, as of one moment, on standard output.
//!
//! The data comes from the files alone ([`crate::wal::view`]): no server is needed, a running
//! one is not disturbed, and nothing is changed. The whole store is read into memory first (as
//! a sorted map, so that keys come out in byte order): an export needs about as much memory as
//! the data itself.
//!
//! Two formats:
//!
//! - `jsonl` (the default): one `{"key":"...","value":"..."}` per line, keys in byte order. A key
//!   or value that is not valid UTF-8 is written as `"key_base64"` / `"value_base64"` instead,
//!   holding its base64 (standard alphabet, padded). Strings escape `"`, `\`, the control
//!   characters, DEL and the C1 controls, so the file is safe to look at in a terminal.
//!   `walkv import` reads it back.
//! - `resp`: one Redis `SET key value` command per key, as RESP arrays of bulk strings
//!   (`*3\r\n$3\r\nSET\r\n$<n>\r\n<key>\r\n$<n>\r\n<value>\r\n`): binary-safe, exactly what
//!   `redis-cli --pipe` takes.

use crate::cli::{ExportFormat, exit};
use crate::wal::view;
use crate::{expiry, json};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// `walkv export [--data-dir DIR] [--format jsonl|resp]`.
pub fn export(data_dir: &Path, format: ExportFormat) -> u8 {
    let data = match view::read_data(data_dir) {
        Ok(data) => data,
        Err(e) => {
            crate::log!("{e}");
            return exit::for_error(&e);
        }
    };
    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    let mut line = Vec::new();
    let now = expiry::now_ms();
    let mut exported = 0;
    for (key, value) in &data.keys {
        if value.expires.is_some_and(|at| at <= now) {
            continue; // expired: a server would not serve it
        }
        line.clear();
        match format {
            ExportFormat::Jsonl => jsonl_line(&mut line, key, &value.value, value.expires, now),
            ExportFormat::Resp => resp_set(&mut line, key, &value.value, value.expires),
        }
        exported += 1;
        if let Err(e) = out.write_all(&line) {
            return output_failed(&e);
        }
    }
    if let Err(e) = out.flush() {
        return output_failed(&e);
    }
    crate::log!("exported {exported} keys, the data as of seq {}", data.last_seq);
    exit::OK
}

fn output_failed(e: &io::Error) -> u8 {
    crate::log!("cannot write to standard output: {e}; the export is incomplete");
    exit::FAILED
}

/// Appends `{"key":...,"value":...}\n` (or the `_base64` names) for one key, with
/// `"ttl":SECONDS` (what is left of it at `now`) if it `expires`.
pub fn jsonl_line(out: &mut Vec<u8>, key: &[u8], value: &[u8], expires: Option<u64>, now: u64) {
    let mut text = String::with_capacity(key.len() + value.len() + 24);
    text.push('{');
    json::write_bytes_member(&mut text, "key", key);
    text.push(',');
    json::write_bytes_member(&mut text, "value", value);
    if let Some(at) = expires {
        text.push_str(",\"ttl\":");
        text.push_str(&expiry::seconds(at.saturating_sub(now).max(1)));
    }
    text.push_str("}\n");
    out.extend_from_slice(text.as_bytes());
}

/// Appends the RESP command `SET key value`, with `PXAT ms` if it `expires` (milliseconds
/// since the Unix epoch), so that Redis keeps the expiry.
pub fn resp_set(out: &mut Vec<u8>, key: &[u8], value: &[u8], expires: Option<u64>) {
    match expires {
        Some(at) => resp_command(out, &[b"SET", key, value, b"PXAT", at.to_string().as_bytes()]),
        None => resp_command(out, &[b"SET", key, value]),
    }
}

/// Appends one Redis command as a RESP array of bulk strings (binary-safe).
pub fn resp_command(out: &mut Vec<u8>, parts: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for bulk in parts {
        out.extend_from_slice(format!("${}\r\n", bulk.len()).as_bytes());
        out.extend_from_slice(bulk);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base64;

    /// The exact lines, for text and for bytes that are not UTF-8; each parses with serde_json
    /// back to the bytes.
    #[test]
    fn jsonl_lines() {
        let line = |k: &[u8], v: &[u8]| {
            let mut out = Vec::new();
            jsonl_line(&mut out, k, v, None, 0);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(line(b"k", b"v"), "{\"key\":\"k\",\"value\":\"v\"}\n");
        assert_eq!(line(b"a\"\n", b""), "{\"key\":\"a\\\"\\n\",\"value\":\"\"}\n");
        assert_eq!(
            line(b"\xff", b"\x1b\x7f"),
            "{\"key_base64\":\"/w==\",\"value\":\"\\u001b\\u007f\"}\n"
        );
        let mut rng = crate::testutil::Rng::new(41);
        for _ in 0..2000 {
            let (klen, vlen) = (1 + rng.below(12), rng.below(12));
            let (k, v) = (rng.bytes(klen), rng.bytes(vlen));
            let text = line(&k, &v);
            assert!(text.ends_with('\n') && text.matches('\n').count() == 1, "{text:?}");
            assert!(!text[..text.len() - 1].chars().any(char::is_control), "{text:?}");
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            let field = |name: &str| match (parsed.get(name), parsed.get(format!("{name}_base64")))
            {
                (Some(s), None) => s.as_str().unwrap().as_bytes().to_vec(),
                (None, Some(b)) => base64::decode(b.as_str().unwrap().as_bytes()).unwrap(),
                other => panic!("{other:?}"),
            };
            assert_eq!((field("key"), field("value")), (k, v));
        }
    }

    #[test]
    fn resp_commands() {
        let mut out = Vec::new();
        resp_set(&mut out, b"k\r\n", b"", None);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n");
        out.clear();
        resp_set(&mut out, b"k", b"v", Some(1_800_000_000_000));
        let want =
            "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$4\r\nPXAT\r\n$13\r\n1800000000000\r\n";
        assert_eq!(String::from_utf8_lossy(&out), want);
        let mut line = Vec::new();
        jsonl_line(&mut line, b"k", b"v", Some(10_500), 9_000);
        assert_eq!(
            String::from_utf8_lossy(&line),
            "{\"key\":\"k\",\"value\":\"v\",\"ttl\":1.500}\n"
        );
    }
}
