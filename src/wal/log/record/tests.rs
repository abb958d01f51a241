//! The record format's tests: the worked example, round trips, hostile lengths, fuzzing.

use super::*;

fn hex(s: &[&str]) -> Vec<u8> {
    s.iter().flat_map(|s| s.split(' ')).map(|h| u8::from_str_radix(h, 16).unwrap()).collect()
}

/// The bytes of the worked example in `docs/log-format.md`, read from that page: each line of
/// its example block starts with hex bytes, and those bytes, in order, are the header and then
/// the record.
fn worked_example_bytes() -> Vec<u8> {
    let page = include_str!("../../../../docs/log-format.md");
    let example = page.split("## A worked example").nth(1).expect("the example's section");
    let block = example.split("```text").nth(1).and_then(|b| b.split("```").next()).unwrap();
    let mut bytes = Vec::new();
    for line in block.lines() {
        for word in line.split_whitespace() {
            match u8::from_str_radix(word, 16) {
                Ok(byte) if word.len() == 2 => bytes.push(byte),
                _ => break, // the rest of the line explains the bytes
            }
        }
    }
    bytes
}

/// The bytes of `docs/log-format.md`'s worked example are exactly what the encoders write.
#[test]
fn worked_example_matches_the_spec() {
    let log_id = 0x0123_4567_89ab_cdef;
    let page = worked_example_bytes();
    assert_eq!(page.len(), HEADER_LEN + 28, "a header, then a 28-byte record: {page:02x?}");
    assert_eq!(encode_header(log_id).to_vec(), page[..HEADER_LEN], "the header");
    let seed = Seed::log(log_id);
    let mut out = Vec::new();
    encode(&mut out, seed, 1, Op::Set, b"cat", b"meow");
    assert_eq!(out, page[HEADER_LEN..], "the record; got {out:02x?}");
    let header = hex(&["77 61 6c 6b 76 57 41 4c", "04 00 00 00", "ef cd ab 89 67 45 23 01"]);
    assert_eq!(crc32c::checksum(&header), 0xb3e1_58f3, "the header's crc the page names");

    let mut mark = Vec::new();
    let m =
        Mark { offset: 52, boot: [0xb3; 16], kind: MarkKind::Sync, mode: Some(SyncMode::Always) };
    encode_mark(&mut mark, seed, 1, &m);
    assert_eq!(mark.len(), MARK_LEN);
    assert_eq!(
        &mark[4..21],
        &hex(&["01 00 00 00 00 00 00 00", "03", "00 00 00 00", "1a 00 00 00"])[..]
    );
    assert_eq!(decode(&mark, seed), Decoded::Record(Record { seq: 1, body: Body::Mark(m) }, 47));
}

/// Every kind of record decodes back to what was encoded, with its length.
#[test]
fn sealed_records_are_the_records_encode_writes() {
    let seed = Seed::log(0x0123_4567_89ab_cdef);
    let (mut sealed, mut expected) = (Vec::new(), Vec::new());
    let cases: [(u64, Op, &[u8], &[u8]); 3] =
        [(1, Op::Set, b"cat", b"meow"), (2, Op::Delete, b"cat", b""), (3, Op::Set, b"k", b"")];
    for (seq, op, key, value) in cases {
        encode_unsealed(&mut sealed, seq, op, key, value);
        encode(&mut expected, seed, seq, op, key, value);
    }
    assert_eq!(seal(&mut sealed, seed), 3);
    assert_eq!(sealed, expected);
    assert_eq!(seal(&mut [], seed), 0);
}

#[test]
fn every_record_type_round_trips() {
    let seed = Seed::log(7);
    let mut buf = Vec::new();
    encode(&mut buf, seed, 1, Op::Set, b"k", b"");
    encode(&mut buf, seed, 2, Op::Delete, b"k", b"");
    encode_gap(&mut buf, seed, 3, 9);
    let mark = Mark { offset: 99, boot: [1; 16], kind: MarkKind::Close, mode: None };
    encode_mark(&mut buf, seed, 9, &mark);
    let mut at = 0;
    let mut seen = Vec::new();
    while at < buf.len() {
        let Decoded::Record(r, len) = decode(&buf[at..], seed) else { panic!("at {at}") };
        seen.push(r.body);
        at += len;
    }
    assert_eq!(
        seen,
        vec![
            Body::Set { key: b"k", value: b"", expires: None },
            Body::Delete { key: b"k" },
            Body::Gap { first: 3 },
            Body::Mark(mark)
        ]
    );
    // Version 1 knows no markers or gaps.
    let mut gap = Vec::new();
    encode_gap(&mut gap, Seed::V1, 3, 9);
    assert_eq!(decode(&gap, Seed::V1), Decoded::Damaged(Fault::UnknownType(4), None));
}

/// A length field claiming gigabytes is refused before anything is allocated or read.
#[test]
fn hostile_lengths_are_refused_without_allocating() {
    let seed = Seed::log(1);
    let mut rec = Vec::new();
    encode(&mut rec, seed, 1, Op::Set, b"k", b"v");
    for at in [13, 17] {
        let mut bad = rec.clone();
        bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&bad, seed), Decoded::Damaged(_, None)), "at {at}");
    }
    let mut zero_key = rec.clone();
    zero_key[13..17].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(decode(&zero_key, seed), Decoded::Damaged(Fault::KeyLength(0), None));
    let mut bad_mark = Vec::new();
    let mark = Mark { offset: 0, boot: [0; 16], kind: MarkKind::Open, mode: None };
    encode_mark(&mut bad_mark, seed, 0, &mark);
    bad_mark[17] = 27;
    assert!(matches!(decode(&bad_mark, seed), Decoded::Damaged(Fault::BodyLength { .. }, None)));
}

// A walkv of format 2 refused every version above 3 as newer: so it refuses what this one writes.
const _: () = assert!(VERSION > LAYOUT_VERSION_3 && LAYOUT_VERSION > LAYOUT_VERSION_3);

/// Headers: ours (every version), a prefix of ours, someone else's, a newer one, a damaged one.
#[test]
fn headers_are_told_apart() {
    let h = encode_header(5);
    assert_eq!(decode_header(&h), Ok(Header { version: 4, log_id: 5 }));
    for version in [VERSION_2, LAYOUT_VERSION_3, VERSION, LAYOUT_VERSION] {
        let old = encode_header_version(version, 6);
        assert_eq!(decode_header(&old), Ok(Header { version, log_id: 6 }));
        assert_eq!(decode_header(&old[..10]), Err(HeaderFault::Short { len: 10, prefix: true }));
    }
    assert_eq!(decode_header(b"walkvWAL\x01\x00\x00\x00"), Ok(Header { version: 1, log_id: 0 }));
    assert_eq!(decode_header(&h[..5]), Err(HeaderFault::Short { len: 5, prefix: true }));
    assert_eq!(decode_header(b"hello"), Err(HeaderFault::Short { len: 5, prefix: false }));
    assert_eq!(decode_header(b"key=value\nmore"), Err(HeaderFault::BadMagic));
    let mut newer = *b"walkvWAL\x06\x00\x00\x00 a future header...";
    assert_eq!(decode_header(&newer), Err(HeaderFault::Newer(6)));
    let marker = encode_header_version(LAYOUT_VERSION, 9);
    assert_eq!(decode_header(&marker), Ok(Header { version: LAYOUT_VERSION, log_id: 9 }));
    newer[..HEADER_LEN].copy_from_slice(&h);
    newer[8] = 9; // our header with its version damaged: the checksum tells
    assert!(matches!(decode_header(&newer), Err(HeaderFault::Damaged(_))));
    let mut magic = h;
    magic[3] ^= 0x20;
    assert!(matches!(decode_header(&magic), Err(HeaderFault::Damaged(_))));
    let mut damaged = h;
    damaged[14] ^= 1;
    assert!(matches!(decode_header(&damaged), Err(HeaderFault::Damaged(_))));
}

/// Random bytes never panic the decoder, seeded or not.
#[test]
fn random_bytes_never_panic() {
    let mut rng = crate::testutil::Rng::new(crate::testutil::knob("WALKV_FUZZ_SEED", 3));
    for _ in 0..crate::testutil::knob("WALKV_FUZZ_ROUNDS", 2000) {
        let len = rng.below(80);
        let mut bytes = rng.bytes(len);
        if len > 17 && rng.below(2) == 0 {
            bytes[12] = 1 + rng.below(4) as u8; // a plausible type
            bytes[13..17].fill(0);
        }
        let _ = decode(&bytes, Seed::log(rng.next_u64()));
        let _ = decode(&bytes, Seed::V1);
        let _ = decode_header(&bytes);
    }
}
