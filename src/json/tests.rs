//! Tests of the JSON reader and writer: against serde_json as the oracle, JSONTestSuite's
//! cases, the depth limit, and mutated documents that must never panic.

use super::*;
use crate::testutil::Rng;

fn parse_str(s: &str) -> Result<Value, Error> {
    parse(s.as_bytes())
}

/// Converts the oracle's value into ours, so the two parsers can be compared.
fn from_serde(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Number(n.to_string()),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(from_serde).collect()),
        serde_json::Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), from_serde(v))).collect())
        }
    }
}

/// Normalised for comparison with the oracle. Numbers compared by kind only: serde_json converts them to binary (`1E2` becomes `100.0`,
/// big integers are rounded), while we keep their text, which walkv never interprets.
fn by_value(v: Value) -> Value {
    match v {
        Value::Number(_) => Value::Number(String::new()),
        Value::Array(a) => Value::Array(a.into_iter().map(by_value).collect()),
        // serde_json's map is sorted and keeps the last of duplicate names.
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k, by_value(v)))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect(),
        ),
        other => other,
    }
}

fn random_string(rng: &mut Rng) -> String {
    let len = rng.below(12);
    (0..len)
        .map(|_| match rng.below(6) {
            0 => char::from_u32(rng.below(0x20) as u32).unwrap_or('a'),
            1 => ['"', '\\', '/', '\u{7f}', '\u{2028}'][rng.below(5)],
            2 => char::from_u32(0x1_0000 + rng.below(0xF_0000) as u32).unwrap_or('b'),
            3 => char::from_u32(0x80 + rng.below(0xD000) as u32).unwrap_or('c'),
            _ => (b' ' + rng.below(95) as u8) as char,
        })
        .collect()
}

fn random_value(rng: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::Value as J;
    match rng.below(if depth > 3 { 4 } else { 6 }) {
        0 => J::Null,
        1 => J::Bool(rng.below(2) == 1),
        2 => J::from(rng.next_u64() as i64),
        3 => J::String(random_string(rng)),
        4 => J::Array((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => J::Object(
            (0..rng.below(4)).map(|_| (random_string(rng), random_value(rng, depth + 1))).collect(),
        ),
    }
}

/// Documents written by serde_json (compact and pretty) parse to the same value with ours.
#[test]
fn agrees_with_serde_json_on_generated_documents() {
    let mut rng = Rng::new(7);
    for _ in 0..3000 {
        let v = random_value(&mut rng, 0);
        for text in [serde_json::to_string(&v).unwrap(), serde_json::to_string_pretty(&v).unwrap()]
        {
            assert_eq!(parse_str(&text).unwrap(), from_serde(&v), "document: {text}");
        }
    }
}

/// Strings we encode are decoded by serde_json to exactly the original text.
#[test]
fn encoded_strings_round_trip_through_serde_json() {
    let mut rng = Rng::new(8);
    for _ in 0..5000 {
        let s = random_string(&mut rng);
        let mut out = String::new();
        write_string(&mut out, &s);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, s);
        assert_eq!(parse_str(&out).unwrap(), Value::String(s));
    }
}

/// Every escape form decodes exactly, including surrogate pairs; lone surrogates are refused.
#[test]
fn escapes_decode_exactly() {
    let v = parse_str(r#""a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\u20AC\ud83d\ude00""#).unwrap();
    assert_eq!(v, Value::String("a\"b\\c/d\u{8}\u{c}\n\r\tAé€😀".to_string()));
    assert!(parse_str(r#""\ud83d""#).is_err());
    assert!(parse_str(r#""\ude00""#).is_err());
    assert!(parse_str(r#""\ud83d\u0041""#).is_err());
    assert!(parse_str(r#""\x""#).is_err());
    assert!(parse_str("\"tab\there\"").is_err());
}

/// Random single-byte edits, insertions and truncations of valid documents never panic, and
/// whatever our parser accepts serde_json accepts too (and vice versa, with the same value).
/// `WALKV_FUZZ_ITERS` and `WALKV_FUZZ_SEED` run longer or differently.
#[test]
fn mutated_documents_never_panic_and_agree_with_serde_json() {
    let mut rng = Rng::new(crate::testutil::knob("WALKV_FUZZ_SEED", 9));
    let alphabet = b"{}[]\",:\\u0123456789abcdefnrtl-+.eE \t\n\xff\xc3\xa9";
    for _ in 0..crate::testutil::knob("WALKV_FUZZ_ITERS", 20_000) {
        let v = random_value(&mut rng, 0);
        let mut bytes = serde_json::to_vec(&v).unwrap();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(3) {
                0 if at < bytes.len() => bytes[at] = alphabet[rng.below(alphabet.len())],
                1 => bytes.insert(at, alphabet[rng.below(alphabet.len())]),
                _ => bytes.truncate(at),
            }
        }
        let ours = parse(&bytes);
        let oracle = serde_json::from_slice::<serde_json::Value>(&bytes);
        match (&ours, &oracle) {
            (Ok(a), Ok(b)) => {
                assert_eq!(by_value(a.clone()), by_value(from_serde(b)), "input {bytes:?}")
            }
            (Err(_), Err(_)) => {}
            // serde_json parses numbers into f64/i64 and refuses some huge ones; we keep text.
            _ => {
                let text = String::from_utf8_lossy(&bytes);
                let numeric = text.bytes().any(|b| b == b'e' || b == b'E' || b == b'.');
                assert!(numeric, "disagreement on {text:?}: ours {ours:?}, serde {oracle:?}");
            }
        }
    }
}

/// `pick_members` accepts exactly what `parse` accepts, with the same error, and picks what
/// the tree holds: on random and mutated documents, write bodies among them, the
/// JSONTestSuite corpus, and nesting at the depth limit.
#[test]
fn picking_members_agrees_with_the_tree() {
    let mut rng = Rng::new(14);
    let alphabet = b"{}[]\",:\\u0123456789aeklnrtuvy-. \xff";
    let mut docs: Vec<Vec<u8>> = Vec::new();
    for _ in 0..crate::testutil::knob("WALKV_FUZZ_ITERS", 20_000) / 2 {
        let mut bytes = if rng.below(2) == 0 {
            serde_json::to_vec(&random_value(&mut rng, 0)).unwrap()
        } else {
            br#"{"key":"k","x":[1,{"key":2}],"value":"v\u00e9","key2":null}"#.to_vec()
        };
        for _ in 0..rng.below(3) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(3) {
                0 if at < bytes.len() => bytes[at] = alphabet[rng.below(alphabet.len())],
                1 => bytes.insert(at, alphabet[rng.below(alphabet.len())]),
                _ => bytes.truncate(at),
            }
        }
        docs.push(bytes);
    }
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/jsontestsuite/test_parsing");
    for entry in std::fs::read_dir(corpus).into_iter().flatten().flatten() {
        docs.push(std::fs::read(entry.path()).unwrap());
    }
    for depth in [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1] {
        docs.push(format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth)).into_bytes());
    }
    for doc in &docs {
        let tree = parse(doc);
        let picked = pick_members(doc, ["key", "value"], false);
        let expected = tree.clone().map(|v| match v {
            Value::Object(members) => Picked::Members(["key", "value"].map(|name| {
                let mut found = members.iter().filter(|(n, _)| n == name);
                match (found.next(), found.next()) {
                    (None, _) => Member::Missing,
                    (Some(_), Some(_)) => Member::Repeated,
                    (Some((_, Value::String(s))), None) => Member::String(s.clone()),
                    (Some((_, Value::Number(n))), None) => Member::Number(n.clone()),
                    (Some((_, other)), None) => Member::Other(other.kind()),
                }
            })),
            other => Picked::NotAnObject(other.kind()),
        });
        assert_eq!(picked, expected, "{:?}", String::from_utf8_lossy(doc));
    }
    let strict = pick_members(br#"{"key":"k","Value":"v"}"#, ["key", "value"], true);
    assert_eq!(strict, Ok(Picked::Unknown("Value".into())));
}

/// Deep nesting is an error at MAX_DEPTH, not a stack overflow.
#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert!(parse_str(&ok).is_ok());
    let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
    assert!(parse_str(&deep).unwrap_err().message.contains("nesting"));
    let hostile = "{\"a\":".repeat(100_000);
    assert!(parse_str(&hostile).is_err());
}

/// JSONTestSuite: y_ files parse, n_ files are refused, i_ files may go either way; none panics.
#[test]
fn jsontestsuite_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/jsontestsuite/test_parsing");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipping: {} not found", dir.display());
        return;
    };
    let mut counts = (0, 0, 0);
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let result = parse(&bytes);
        if name.starts_with("y_") {
            assert!(result.is_ok(), "{name} must parse: {result:?}");
            counts.0 += 1;
        } else if name.starts_with("n_") {
            assert!(result.is_err(), "{name} must be rejected");
            counts.1 += 1;
        } else {
            counts.2 += 1;
        }
    }
    assert_eq!(counts, (95, 188, 35), "corpus changed: (y, n, i) counts");
}

/// Error messages say where and what.
#[test]
fn errors_name_offset_and_problem() {
    let e = parse_str(r#"{"key": "a",}"#).unwrap_err();
    assert_eq!(e.offset, 12);
    assert!(e.to_string().contains("byte 12"));
    assert!(parse(b"\"\xff\"").unwrap_err().message.contains("UTF-8"));
}
