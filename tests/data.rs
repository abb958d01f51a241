//! Data in and out, against the real binary: ETags and compare-and-set across restarts and
//! compactions, listing with `walkv ls`, `walkv dump`'s exact output, `walkv export` while the
//! server runs, and `walkv import` (the round trip, and a malformed line).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use support::{Server, fill, hostile_pairs, request, run_walkv};
use walkv::testutil::TempDir;

/// The ETag of `key` (via GET), if it has a value.
fn etag(addr: &str, key: &str) -> Option<String> {
    let r = request(addr, "GET", &format!("/v1/{key}"), b"").unwrap();
    r.header("ETag").map(str::to_string)
}

/// A request with extra header lines.
fn request_with(
    addr: &str,
    method: &str,
    target: &str,
    headers: &str,
    body: &[u8],
) -> support::Reply {
    let mut raw = format!(
        "{method} {target} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    let answer = support::send_raw(addr, &raw).unwrap();
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    support::Reply { status, headers, body: answer[end + 4..].to_vec() }
}

/// A key's ETag is the seq of the record that set its value: it stays the same across a clean
/// restart, a compaction (the snapshot keeps each key's seq) and a `kill -9`; compare-and-set
/// with an older one fails with 412 and changes nothing.
#[test]
fn etags_survive_restarts_and_compaction() {
    let dir = TempDir::new("data-etags");
    let server = Server::start(&dir);
    let a = server.addr.clone();
    for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
        assert!(request(&a, "PUT", &format!("/v1/{key}"), value.as_bytes()).unwrap().status < 300);
    }
    assert_eq!(etag(&a, "a").as_deref(), Some("\"3\""));
    assert_eq!(etag(&a, "b").as_deref(), Some("\"2\""));
    server.terminate();

    let server = Server::start(&dir);
    let a = server.addr.clone();
    assert_eq!(etag(&a, "a").as_deref(), Some("\"3\""), "after a clean restart");
    let r = request(&a, "POST", "/compact", b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(etag(&a, "a").as_deref(), Some("\"3\""));
    server.kill9();

    let server = Server::start(&dir);
    let a = server.addr.clone();
    assert!(dir.join("snapshot-00000000000000000003.snap").exists(), "the compaction made one");
    assert_eq!(etag(&a, "a").as_deref(), Some("\"3\""), "from the snapshot, after kill -9");
    assert_eq!(etag(&a, "b").as_deref(), Some("\"2\""));
    let r = request_with(&a, "PUT", "/v1/a", "If-Match: \"1\"\r\n", b"stale");
    assert_eq!((r.status, r.text()), (412, r#"{"error":"precondition failed","etag":"3"}"#.into()));
    let r = request_with(&a, "PUT", "/v1/a", "If-Match: \"3\"\r\n", b"fresh");
    assert_eq!((r.status, r.header("ETag")), (200, Some("\"4\"")));
    let r = request_with(&a, "GET", "/v1/a", "If-None-Match: \"4\"\r\n", b"");
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert!(r.header("Content-Length").is_none(), "a 304 has no Content-Length");
    let r = request(&a, "GET", "/v1/a?raw", b"").unwrap();
    assert_eq!(r.body, b"fresh");
}

/// The CLI's compare-and-set: `--if-absent`, `--if-match`, `get --etag`; a failed condition
/// exits 4 and says the current ETag.
#[test]
fn cli_compare_and_set() {
    let dir = TempDir::new("data-cli-cas");
    let server = Server::start(&dir);
    let a = server.addr.as_str();
    let walkv = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--addr", a]);
        let (code, out, err) = run_walkv(&all, &[], b"");
        (code, String::from_utf8_lossy(&out).into_owned(), err)
    };
    assert_eq!(walkv(&["set", "k", "one", "--if-absent"]).0, 0);
    let (code, _, err) = walkv(&["set", "k", "two", "--if-absent"]);
    assert_eq!(code, 4);
    assert!(err.contains("precondition failed: the key's current ETag is \"1\""), "{err}");
    let (code, out, err) = walkv(&["get", "k", "--etag"]);
    assert_eq!((code, out.as_str()), (0, "one"));
    assert_eq!(err, "\"1\"\n", "the ETag alone, as --if-match takes it back");
    assert_eq!(walkv(&["set", "k", "two", "--if-match", "1"]).0, 0);
    let (code, _, err) = walkv(&["set", "k", "lost", "--if-match", "1"]);
    assert_eq!(code, 4);
    assert!(err.contains("current ETag is \"2\"") && err.contains("nothing was written"), "{err}");
    assert_eq!(walkv(&["delete", "k", "--if-match", "1"]).0, 4);
    assert_eq!(walkv(&["delete", "k", "--if-match", "\"2\""]).0, 0);
    let (code, _, err) = walkv(&["set", "k", "x", "--if-match", "2"]);
    assert_eq!(code, 4);
    assert!(err.contains("the key has no value"), "{err}");
    assert_eq!(walkv(&["get", "k"]).0, 1);
}

/// Splits `walkv ls` output into keys, undoing its `\xNN` escapes.
fn unescape_lines(out: &[u8]) -> Vec<Vec<u8>> {
    let text = std::str::from_utf8(out).expect("ls prints UTF-8");
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "no raw control characters");
    let mut keys = Vec::new();
    for line in text.lines() {
        let mut key = Vec::new();
        let mut rest = line;
        while let Some(at) = rest.find("\\x") {
            key.extend_from_slice(&rest.as_bytes()[..at]);
            key.push(u8::from_str_radix(&rest[at + 2..at + 4], 16).unwrap());
            rest = &rest[at + 4..];
        }
        key.extend_from_slice(rest.as_bytes());
        keys.push(key);
    }
    keys
}

/// `walkv ls` lists every key exactly once in byte order, across pages (more keys than one page
/// holds), with hostile bytes escaped per line or exact with `-0`; a prefix narrows it.
#[test]
fn ls_lists_every_key_exactly() {
    let dir = TempDir::new("data-ls");
    let server = Server::start(&dir);
    let a = server.addr.as_str();
    let mut pairs = hostile_pairs();
    pairs.remove(b"big".as_slice());
    fill(a, &pairs);
    let mut body = String::new();
    for i in 0..25_000 {
        body.push_str(&format!("{{\"key\":\"page/{i:05}\",\"value\":\"\"}}\n"));
        pairs.insert(format!("page/{i:05}").into_bytes(), Vec::new());
    }
    // 25,000 short lines are more than one bulk request may hold: import splits them.
    let r = request(a, "POST", "/v1/bulk", body.as_bytes()).unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("at most 10000 lines"), "{}", r.text());
    assert_eq!(request(a, "GET", "/v1/page%2F00000", b"").unwrap().status, 404, "nothing written");
    let (code, out, err) = run_walkv(&["import", "--addr", a], &[], body.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).starts_with("imported 25000 keys"), "{err}");

    let (code, out, err) = run_walkv(&["ls", "--addr", a], &[], b"");
    assert_eq!(code, 0, "{err}");
    let expected: Vec<Vec<u8>> = pairs.keys().cloned().collect();
    assert_eq!(unescape_lines(&out), expected);

    let (code, out, _) = run_walkv(&["ls", "-0", "--addr", a], &[], b"");
    assert_eq!(code, 0);
    let exact: Vec<u8> = expected.iter().flat_map(|k| k.iter().copied().chain([0])).collect();
    assert!(out == exact, "-0 prints the exact bytes, each key ended by NUL");

    let (code, out, _) = run_walkv(&["ls", "page/2499", "--addr", a], &[], b"");
    assert_eq!(
        (code, String::from_utf8(out).unwrap()),
        (0, (0..10).map(|i| format!("page/2499{i}\n")).collect())
    );
    let (code, out, _) = run_walkv(&["ls", "nothing-here", "--addr", a], &[], b"");
    assert_eq!((code, out.len()), (0, 0));
}

/// The log id in a log file's header (bytes 12..20).
fn log_id(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    u64::from_le_bytes(bytes[12..20].try_into().unwrap())
}

/// `walkv dump` on a small stopped log: its exact output; then a damaged record (crc=BAD,
/// recovery refuses, exit 7) and a torn tail (recovery trims it, exit 0).
#[test]
fn dump_prints_every_record() {
    let dir = TempDir::new("data-dump");
    let boot = support::OTHER_BOOT;
    let server = Server::start_env(&dir, &["--sync-interval", "3600"], &[("WALKV_BOOT_ID", boot)]);
    let a = server.addr.clone();
    request(&a, "PUT", "/v1/cat", b"meow").unwrap();
    request(&a, "PUT", "/v1/%00%FF%22%5C%0A", &[b'v'; 100]).unwrap();
    request(&a, "DELETE", "/v1/cat", b"").unwrap();
    server.terminate();
    let segment = dir.join("segment-00000000000000000001.wal");
    let d = dir.display();
    let id = log_id(&segment);
    let size = std::fs::metadata(&segment).unwrap().len();
    let v64 = "v".repeat(64);
    let expected = format!(
        "walkv dump of {d}: 1 files in replay order; no server holds the lock\n\
         \x20 segment-00000000000000000001.wal: newest segment, from seq 1, {size} bytes\n\
         == segment-00000000000000000001.wal: format 4, log id {id:#018x}\n\
         segment-00000000000000000001.wal @24 seq=0 SYNC klen=0 vlen=26 crc=ok kind=open mode=interval offset=24 boot={boot}\n\
         segment-00000000000000000001.wal @71 seq=1 SET klen=3 vlen=4 crc=ok key=\"cat\" value=\"meow\"\n\
         segment-00000000000000000001.wal @99 seq=2 SET klen=5 vlen=100 crc=ok key=\"\\x00\\xff\\x22\\x5c\\x0a\" value=\"{v64}\"+36\n\
         segment-00000000000000000001.wal @225 seq=3 DELETE klen=3 vlen=0 crc=ok key=\"cat\"\n\
         segment-00000000000000000001.wal @249 seq=3 SYNC klen=0 vlen=26 crc=ok kind=close mode=interval offset=249 boot={boot}\n\
         segment-00000000000000000001.wal @296: end of file\n"
    );
    let env = [("WALKV_BOOT_ID", boot)];
    let (code, out, err) = run_walkv(&["dump", "--data-dir", &d.to_string()], &env, b"");
    assert_eq!((code, String::from_utf8_lossy(&out).into_owned()), (0, expected), "{err}");

    let (code, out, _) = run_walkv(
        &["dump", "--data-dir", &d.to_string(), "--from-seq", "2", "--limit", "1"],
        &env,
        b"",
    );
    let text = String::from_utf8_lossy(&out);
    assert_eq!(code, 0);
    assert!(
        text.contains("@99 seq=2 SET") && !text.contains("@71") && !text.contains("@225"),
        "{text}"
    );
    assert!(text.ends_with("(stopped: --limit reached)\n"), "{text}");

    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[130] ^= 0x01; // inside the second SET's value: a close marker follows, so corruption
    std::fs::write(&segment, &bytes).unwrap();
    let (code, out, _) = run_walkv(&["dump", "--data-dir", &d.to_string()], &env, b"");
    let text = String::from_utf8_lossy(&out);
    assert_eq!(code, 7, "{text}");
    assert!(
        text.contains("@99 seq=2 SET klen=5 vlen=100 crc=BAD key=\"\\x00\\xff\\x22\\x5c\\x0a\""),
        "{text}"
    );
    assert!(text.contains("Recovery refuses this log"), "{text}");
    assert!(!text.contains("@225"), "nothing after the damage is shown as valid");
    let (code, _, err) = run_walkv(&["export", "--data-dir", &d.to_string()], &env, b"");
    assert_eq!(code, 7, "export refuses a log recovery refuses: {err}");

    bytes[130] ^= 0x01;
    bytes.truncate(240); // the close marker gone, the DELETE cut short
    std::fs::write(&segment, &bytes).unwrap();
    let (code, out, _) = run_walkv(&["dump", "--data-dir", &d.to_string()], &[], b"");
    let text = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("@225 crc=BAD: the file ends 15 bytes into a record header"), "{text}");
    assert!(text.contains("@225: torn tail:") && text.contains("Recovery trims it"), "{text}");
}

/// Export while the server takes writes: the data is one moment of the log (a prefix), never a
/// mix; jsonl lines are exact (checked with serde_json); import into a fresh server gives the
/// identical state, compared byte for byte through a second export.
#[test]
fn export_and_import_round_trip() {
    let dir = TempDir::new("data-export");
    let server = Server::start(&dir);
    let a = server.addr.clone();
    let pairs = hostile_pairs();
    fill(&a, &pairs);

    let (code, jsonl, err) =
        run_walkv(&["export", "--data-dir", &dir.display().to_string()], &[], b"");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("exported {} keys", pairs.len())), "{err}");
    let mut exported = BTreeMap::new();
    let mut order = Vec::new();
    for line in jsonl.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let text = std::str::from_utf8(line).expect("an export is UTF-8");
        assert!(!text.chars().any(char::is_control), "no raw control characters: {text:?}");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let field = |name: &str| match (v.get(name), v.get(format!("{name}_base64"))) {
            (Some(s), None) => s.as_str().unwrap().as_bytes().to_vec(),
            (None, Some(b)) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(b.as_str().unwrap()).unwrap()
            }
            other => panic!("{other:?}"),
        };
        order.push(field("key"));
        exported.insert(field("key"), field("value"));
    }
    assert!(order.windows(2).all(|w| w[0] < w[1]), "keys in byte order");
    assert!(exported == pairs, "the export holds exactly the data");

    // A writer goes on while exports are taken: each export is a prefix of its writes.
    let writer = {
        let a = a.clone();
        std::thread::spawn(move || {
            for i in 1..=400u32 {
                request(&a, "PUT", &format!("/v1/w{i:04}"), b"x").unwrap();
                request(&a, "PUT", "/v1/last", i.to_string().as_bytes()).unwrap();
            }
        })
    };
    for _ in 0..5 {
        let (code, out, err) =
            run_walkv(&["export", "--data-dir", &dir.display().to_string()], &[], b"");
        assert_eq!(code, 0, "{err}");
        let text = String::from_utf8_lossy(&out);
        let written = text.lines().filter(|l| l.starts_with("{\"key\":\"w0")).count();
        let last = text.lines().find_map(|l| l.strip_prefix("{\"key\":\"last\",\"value\":\""));
        let last: usize = last.map_or(0, |v| v.trim_end_matches("\"}").parse().unwrap());
        assert!(
            last == written || last + 1 == written,
            "one moment: last={last}, w keys={written}"
        );
        for i in 1..=written {
            assert!(
                text.contains(&format!("{{\"key\":\"w{i:04}\"")),
                "w{i:04} missing: not a prefix"
            );
        }
    }
    writer.join().unwrap();

    let path = dir.join("export.jsonl");
    std::fs::write(&path, &jsonl).unwrap();
    let other = TempDir::new("data-import");
    let fresh = Server::start(&other);
    let (code, out, err) =
        run_walkv(&["import", "--addr", &fresh.addr, &path.display().to_string()], &[], b"");
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.starts_with(&format!("imported {} keys; synced through seq", pairs.len())),
        "{out}"
    );
    let (code, again, _) =
        run_walkv(&["export", "--data-dir", &other.display().to_string()], &[], b"");
    assert_eq!(code, 0);
    assert!(again == jsonl, "import then export gives the same bytes");
    let (_, resp_a, _) = run_walkv(
        &["export", "--format", "resp", "--data-dir", &other.display().to_string()],
        &[],
        b"",
    );
    fresh.terminate();
    let (_, resp_b, _) = run_walkv(
        &["export", "--format", "resp", "--data-dir", &other.display().to_string()],
        &[],
        b"",
    );
    assert!(resp_a == resp_b && !resp_a.is_empty(), "a running and a stopped server export alike");
}

/// A malformed line stops the import with its number and exit 2; the lines before it are
/// written (and synced), nothing after it.
#[test]
fn import_stops_at_a_malformed_line() {
    let dir = TempDir::new("data-import-bad");
    let server = Server::start(&dir);
    let a = server.addr.as_str();
    let input = b"{\"key\":\"one\",\"value\":\"1\"}\n\n{\"key_base64\":\"/w==\",\"value\":\"2\"}\n{\"key\":\"three\",\"value\":3}\n{\"key\":\"four\",\"value\":\"4\"}\n";
    let (code, out, err) = run_walkv(&["import", "--addr", a, "-"], &[], input);
    assert_eq!(code, 2, "{err}");
    assert!(
        String::from_utf8_lossy(&out).starts_with("imported 2 keys"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(err.contains("line 4: field `value` must be a string, not a number"), "{err}");
    assert!(err.contains("the lines before it were written, nothing after"), "{err}");
    let (code, out, _) = run_walkv(&["ls", "--addr", a], &[], b"");
    assert_eq!((code, String::from_utf8_lossy(&out).into_owned()), (0, "one\n\\xff\n".to_string()));
    let r = request(
        a,
        "POST",
        "/v1/bulk",
        b"{\"key\":\"a\",\"value\":\"\"}\n{\"key\":\"\",\"value\":\"\"}\n",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("line 2: `key` must not be empty; nothing was written"),
        "{}",
        r.text()
    );
    assert_eq!(request(a, "GET", "/v1/a", b"").unwrap().status, 404, "a bad bulk writes nothing");
}
