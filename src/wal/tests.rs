//! The recovery rules and repair, exhaustively, on real files: every truncation, every flipped
//! byte, holes in an unsynced tail in the same boot and in a new one, torn records that embed
//! records, the format 1 fixture.

use super::repair::{self, Choice};
use super::*;
use crate::error::Error;
use crate::testutil::{Rng, TempDir};
use std::fs;
use std::path::{Path, PathBuf};

/// An owned copy of a SET or DELETE: (seq, key, value), `None` for a DELETE.
type Owned = (u64, Vec<u8>, Option<Vec<u8>>);

const BOOT_A: BootId = [0xaa; 16];
const BOOT_B: BootId = [0xbb; 16];

fn opts(boot: BootId) -> Options {
    Options { mode: SyncMode::Interval, boot }
}

fn temp_log(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    let path = dir.join(FILE_NAME);
    (dir, path)
}

fn owned(r: &Record) -> Owned {
    match r.body {
        Body::Set { key, value, .. } => (r.seq, key.to_vec(), Some(value.to_vec())),
        Body::Delete { key } => (r.seq, key.to_vec(), None),
        _ => unreachable!("only data records are visited"),
    }
}

/// Opens the log at `path` in `boot`, returning it, what it replayed and what it did.
fn open(path: &Path, boot: BootId) -> Result<(Wal, Vec<Owned>, Recovery), Error> {
    let mut seen = Vec::new();
    let (wal, rec) = Wal::open(path, opts(boot), |r| seen.push(owned(r)))?;
    Ok((wal, seen, rec))
}

/// Writes `n` records of varied shapes through a real `Wal` in boot A; returns what was
/// written. `close`: a clean stop (else a crash: the reserved zeros stay).
fn write_log(path: &Path, n: u64, seed: u64, close: bool) -> Vec<Owned> {
    let mut rng = Rng::new(seed);
    let (mut wal, _, _) = open(path, BOOT_A).unwrap();
    let mut written = Vec::new();
    for _ in 0..n {
        let key_len = 1 + rng.below(6);
        let key = rng.bytes(key_len);
        let (op, value) = if rng.below(4) == 0 {
            (Op::Delete, None)
        } else {
            let len = rng.below(40);
            (Op::Set, Some(rng.bytes(len)))
        };
        let seq = wal.append(op, &key, value.as_deref().unwrap_or_default()).unwrap();
        written.push((seq, key, value));
    }
    if close {
        wal.close().unwrap();
    }
    written
}

/// The offsets where each data record starts and ends in a log written by `write_log`.
fn data_extents(path: &Path) -> Vec<(u64, u64)> {
    extents(path, true)
}

/// Where each record (only data records, if `data_only`) starts and ends.
fn extents(path: &Path, data_only: bool) -> Vec<(u64, u64)> {
    let bytes = fs::read(path).unwrap();
    let seed = Seed::log(super::scan::read_header(path).unwrap().unwrap().log_id);
    let mut at = HEADER_LEN;
    let mut out = Vec::new();
    while let Decoded::Record(r, len) = decode(&bytes[at..], seed) {
        if r.is_data() || !data_only {
            out.push((at as u64, (at + len) as u64));
        }
        at += len;
    }
    out
}

fn scan_of(path: &Path, boot: BootId) -> Result<Scan, Error> {
    scan(path, Judge::Stopped { boot }, |_| {})
}

/// A clean stop ends the log with a close marker; open, a sync and close write markers.
#[test]
fn markers_follow_opens_syncs_and_closes() {
    let (_dir, path) = temp_log("marks");
    let (mut wal, _, rec) = open(&path, BOOT_A).unwrap();
    assert!(rec.created);
    wal.append(Op::Set, b"k", b"v").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(110)); // markers are 100 ms apart at most
    wal.sync().unwrap();
    wal.append(Op::Set, b"k", b"w").unwrap();
    wal.sync().unwrap(); // too soon after the last marker: none
    wal.close().unwrap();
    let scan = scan_of(&path, BOOT_A).unwrap();
    assert_eq!(scan.tail, Tail::Clean);
    let mark = scan.last_mark.unwrap();
    assert_eq!(
        (mark.kind, mark.boot, mark.mode),
        (MarkKind::Close, BOOT_A, Some(SyncMode::Interval))
    );
    assert_eq!(mark.offset + record::MARK_LEN as u64, scan.file_len, "the log ends with it");
    let kinds: Vec<MarkKind> = marks_in(&path).iter().map(|m| m.kind).collect();
    assert_eq!(kinds, vec![MarkKind::Open, MarkKind::Sync, MarkKind::Close]);
}

fn marks_in(path: &Path) -> Vec<Mark> {
    let bytes = fs::read(path).unwrap();
    let seed = Seed::log(super::scan::read_header(path).unwrap().unwrap().log_id);
    let mut at = HEADER_LEN;
    let mut marks = Vec::new();
    while let Decoded::Record(r, len) = decode(&bytes[at..], seed) {
        if let Body::Mark(m) = r.body {
            marks.push(m);
        }
        at += len;
    }
    marks
}

/// Cutting a crashed log at every byte offset, then opening it in the same boot and in a new
/// one: exactly the whole records before the cut come back, nothing needs an operator, and the
/// next append survives the next replay.
#[test]
fn truncation_at_every_offset_recovers_whole_records() {
    let (_dir, path) = temp_log("truncate");
    let written = write_log(&path, 10, 1, false);
    let ends: Vec<u64> = data_extents(&path).iter().map(|e| e.1).collect();
    let full = fs::read(&path).unwrap();
    let last_end = *ends.last().unwrap() as usize;
    for cut in HEADER_LEN..=last_end + 60 {
        // Both judgements, on alternate offsets (each open fsyncs: this keeps the test quick).
        let boot = if cut % 2 == 0 { BOOT_A } else { BOOT_B };
        fs::write(&path, &full[..cut]).unwrap();
        let (mut wal, seen, _) = open(&path, boot).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let whole = ends.iter().filter(|&&e| e <= cut as u64).count();
        assert_eq!(seen, written[..whole], "cut at {cut}");
        let seq = wal.append(Op::Set, b"after", b"cut").unwrap();
        assert_eq!(seq, whole as u64 + 1, "cut at {cut}");
        drop(wal); // a crash
        let (_, seen, rec) = open(&path, boot).unwrap();
        assert!(rec.trimmed.is_none(), "cut at {cut}: {:?}", rec.trimmed);
        assert_eq!(seen.last().unwrap().0, seq, "cut at {cut}");
    }
}

/// After a clean stop, a flipped byte anywhere in a record is corruption (the close marker after
/// it proves the record had been on disk), in any boot: refused, never trimmed, the file left
/// as it was. A flip inside the close marker loses nothing.
#[test]
fn damage_after_a_clean_stop_is_refused_not_trimmed() {
    let (_dir, path) = temp_log("clean-flip");
    let written = write_log(&path, 6, 2, true);
    let clean = fs::read(&path).unwrap();
    let data_end = data_extents(&path).last().unwrap().1 as usize;
    for at in HEADER_LEN..clean.len() {
        for boot in [BOOT_A, BOOT_B] {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x40;
            fs::write(&path, &bytes).unwrap();
            match open(&path, boot) {
                Err(Error::Corrupt { .. }) => {
                    assert_eq!(fs::read(&path).unwrap(), bytes, "a refused start changes nothing");
                }
                Ok((_, seen, _)) => {
                    // Only the close marker, after every record, may be trimmed; nothing is lost.
                    assert!(at >= data_end, "flip at {at} in a record was not refused");
                    assert_eq!(seen, written, "flip at {at}");
                }
                Err(e) => panic!("flip at {at}: {e}"),
            }
        }
    }
}

/// Builds the damage a power cut can leave: a crashed log whose synced part is intact and whose
/// unsynced part lost one 4 KiB page (zeroed) while later pages survived.
fn log_with_hole(path: &Path, boot: BootId) -> (Vec<Owned>, u64) {
    let (mut wal, _, _) = open(path, boot).unwrap();
    let mut written = Vec::new();
    let mut rng = Rng::new(7);
    for i in 0..100u64 {
        let value = rng.bytes(150);
        let seq = wal.append(Op::Set, format!("k{}", i % 20).as_bytes(), &value).unwrap();
        written.push((seq, format!("k{}", i % 20).into_bytes(), Some(value)));
        if i == 10 {
            wal.sync().unwrap(); // synced: records 1..=11
        }
    }
    drop(wal);
    let mut bytes = fs::read(path).unwrap();
    let hole = 8192..12288; // well after the synced part, well before the end of the records
    bytes[hole.clone()].fill(0);
    fs::write(path, &bytes).unwrap();
    (written, hole.start as u64)
}

/// A hole in the unsynced tail with valid records after it: in a new boot (a power cut) it is
/// trimmed without help, the records after it are kept in a side file, and their sequence
/// numbers are never reused; in the same boot (only the process crashed, the page cache lost
/// nothing) it cannot be a power cut, so it is refused.
#[test]
fn a_hole_in_the_unsynced_tail_is_trimmed_after_a_reboot_and_refused_without() {
    let (dir, path) = temp_log("hole");
    let (written, hole) = log_with_hole(&path, BOOT_A);
    match open(&path, BOOT_A) {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(reason.contains("same kernel boot"), "{reason}")
        }
        other => panic!("same boot: expected corruption, got {:?}", other.map(|r| r.2)),
    }
    let damaged = fs::read(&path).unwrap();
    let (mut wal, seen, rec) = open(&path, BOOT_B).unwrap();
    let trim = rec.trimmed.expect("trimmed");
    assert!(trim.offset <= hole && trim.offset > 8192 - 200, "{trim:?}");
    assert!(trim.explanation.contains("not known to be durable"), "{}", trim.explanation);
    assert_eq!(seen, written[..seen.len()], "a prefix of the writes");
    assert!(seen.len() >= 11, "the synced records are there");
    let side = trim.side_file.expect("the records after the hole are kept");
    assert!(side.starts_with(&*dir));
    assert_eq!(fs::read(&side).unwrap(), damaged[trim.offset as usize..side_len(&damaged)]);
    let (first, last) = trim.skipped.expect("their numbers are skipped");
    assert_eq!((first, last), (seen.len() as u64 + 1, 100));
    assert_eq!(wal.append(Op::Set, b"new", b"write").unwrap(), 101, "no number reused");
    drop(wal);
    let (_, again, rec) = open(&path, BOOT_B).unwrap();
    assert!(rec.trimmed.is_none());
    assert_eq!(again.last().unwrap().0, 101);
}

/// The end of the last non-zero byte of a crashed log (the side file leaves out reserved zeros).
fn side_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

/// A torn final record whose value holds records (a copy of this very log, and records of
/// another log) is trimmed in any boot, never refused: nothing inside its extent that a value can
/// hold is evidence. (A copy of this log holds only numbers older than the record it is in; a
/// client cannot make records for this log's seed.)
#[test]
fn a_torn_record_that_embeds_records_is_trimmed() {
    let (_dir, path) = temp_log("embed");
    let written = write_log(&path, 5, 3, false);
    let image = fs::read(&path).unwrap();
    let log_id = super::scan::read_header(&path).unwrap().unwrap().log_id;
    let mut inner = image[..side_len(&image)].to_vec(); // this log, markers and all
    for seq in 6..40 {
        encode(&mut inner, Seed::log(log_id ^ 1), seq, Op::Set, b"x", b"another log");
    }
    let data_end = side_len(&image);
    for boot in [BOOT_A, BOOT_B] {
        let mut bytes = image[..data_end].to_vec();
        let mut torn = Vec::new();
        encode(&mut torn, Seed::log(log_id), 6, Op::Set, b"big", &inner);
        bytes.extend_from_slice(&torn[..torn.len() - 3]);
        fs::write(&path, &bytes).unwrap();
        let (_, seen, rec) = open(&path, boot).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, written);
        let trim = rec.trimmed.expect("trimmed");
        assert_eq!(trim.offset, data_end as u64);
        assert!(trim.skipped.is_none(), "embedded seqs are not skipped: {trim:?}");
    }
}

/// Flipping any byte of a crashed log's records never panics, never yields a record that was not
/// written, and never needs an operator in a new boot; in the same boot it is trimmed only if
/// it hit the last record.
#[test]
fn flipping_every_byte_is_detected() {
    let (_dir, path) = temp_log("flip");
    let written = write_log(&path, 6, 4, false);
    let mut image = fs::read(&path).unwrap();
    image.truncate(side_len(&image) + 64); // keep a little reserved space, not a megabyte of it
    let extents = data_extents(&path);
    for at in HEADER_LEN..side_len(&image) {
        let mut bytes = image.clone();
        bytes[at] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let hit = extents.iter().position(|&(s, e)| (s..e).contains(&(at as u64)));
        for boot in [BOOT_A, BOOT_B] {
            let scan = scan_of(&path, boot).unwrap_or_else(|e| panic!("at {at}: {e}"));
            let mut seen = Vec::new();
            let _ = super::scan::scan(&path, Judge::Stopped { boot }, |r| seen.push(owned(r)));
            assert_eq!(seen, written[..seen.len()], "flip at {at}: only written records");
            match (&scan.tail, boot) {
                (Tail::Clean | Tail::Reserved, _) => panic!("flip at {at} went unnoticed"),
                (Tail::Corrupt { .. }, BOOT_B) => {
                    panic!("flip at {at} needs an operator after a reboot")
                }
                (Tail::Unfinished { .. }, _) => assert_eq!(hit, Some(extents.len() - 1), "at {at}"),
                _ => {}
            }
            if let Some(i) = hit {
                assert_eq!(seen.len(), i, "flip at {at} stops replay at the damaged record");
            }
        }
    }
}

/// Zeros after the last record are reserved space: a clean end, released at open.
#[test]
fn reserved_space_is_a_clean_end_and_is_released() {
    let (_dir, path) = temp_log("reserved");
    write_log(&path, 3, 5, false);
    let len = fs::metadata(&path).unwrap().len();
    let scan = scan_of(&path, BOOT_B).unwrap();
    assert_eq!(scan.tail, Tail::Reserved);
    assert!(len >= 1 << 20, "reserved ahead");
    let (mut wal, _, rec) = open(&path, BOOT_B).unwrap();
    assert!(rec.trimmed.is_none());
    wal.close().unwrap();
    let after = scan_of(&path, BOOT_B).unwrap();
    assert_eq!((after.tail, after.file_len), (Tail::Clean, scan.end + 2 * record::MARK_LEN as u64));
}

/// A foreign file, a newer format and a damaged header are refused and left alone; a prefix of
/// a header is an interrupted creation and is created anew.
#[test]
fn headers_refuse_without_touching() {
    let (_dir, path) = temp_log("headers");
    for (bytes, want) in [
        (b"key=value\nmore=stuff\n".to_vec(), "not a walkv log"),
        (b"walkvWAL\x06\x00\x00\x00xxxxxxxxxxxx".to_vec(), "newer walkv (log format 6"),
        (b"hello".to_vec(), "not a walkv log"),
    ] {
        fs::write(&path, &bytes).unwrap();
        let err = open(&path, BOOT_A).err().expect("refused").to_string();
        assert!(err.contains(want), "{err}");
        assert!(!err.contains("repair"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
    fs::write(&path, b"walkv").unwrap();
    let (_, _, rec) = open(&path, BOOT_A).unwrap();
    assert!(rec.created);
}

/// The format 1 fixture opens, replays exactly, is rewritten in the current format, and keeps
/// working.
#[test]
fn format_1_fixture_is_read_and_upgraded() {
    let (_dir, path) = temp_log("v1");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1.wal");
    fs::copy(fixture, &path).unwrap();
    let (mut wal, seen, rec) = open(&path, BOOT_A).unwrap();
    assert!(rec.upgraded && !rec.created);
    assert_eq!((rec.records, rec.last_seq, seen.len()), (7, 7, 7));
    assert_eq!(seen[4], (5, b"gone".to_vec(), None));
    assert_eq!(seen[5].2.as_deref(), Some(&b"a\nb=c\x00\xff"[..]));
    assert_eq!(super::scan::read_header(&path).unwrap().unwrap().version, record::VERSION);
    assert_eq!(wal.append(Op::Set, b"after", b"upgrade").unwrap(), 8);
    wal.close().unwrap();
    let (_, seen, rec) = open(&path, BOOT_A).unwrap();
    assert!(!rec.upgraded);
    assert_eq!(seen.len(), 8);
}

/// Repair, exhaustively on a small log: whatever byte of a record is flipped, `--skip-damaged`
/// keeps every other record and `--cut` the records before it; neither reuses a sequence
/// number, and the repaired log opens clean and takes writes.
#[test]
fn repair_keeps_every_intact_record() {
    let (_dir, path) = temp_log("repair");
    let written = write_log(&path, 6, 6, true);
    let image = fs::read(&path).unwrap();
    let extents = data_extents(&path);
    let all = super::tests::extents(&path, false);
    for at in 0..extents.last().unwrap().1 as usize {
        let hit = extents.iter().position(|&(s, e)| (s..e).contains(&(at as u64)));
        // Where the damaged record starts (the header: nothing is cut).
        let start = all.iter().find(|&&(s, e)| (s..e).contains(&(at as u64))).map(|e| e.0);
        for choice in [Choice::SkipDamaged, Choice::Cut] {
            let mut bytes = image.clone();
            bytes[at] ^= 0x10;
            fs::write(&path, &bytes).unwrap();
            let plan = repair::plan(&path).unwrap_or_else(|e| panic!("flip at {at}: {e}"));
            let done = repair::repair(&plan, choice, BOOT_A).unwrap();
            let (mut wal, seen, rec) =
                open(&path, BOOT_A).unwrap_or_else(|e| panic!("at {at}: {e}"));
            assert!(rec.trimmed.is_none(), "at {at}: {:?}", rec.trimmed);
            let expected: Vec<Owned> = match (hit, choice, start) {
                (Some(i), Choice::SkipDamaged, _) => written
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, r)| r.clone())
                    .collect(),
                (_, Choice::Cut, Some(start)) => {
                    let kept = extents.iter().filter(|e| e.1 <= start).count();
                    written[..kept].to_vec()
                }
                _ => written.clone(), // the header, or a marker skipped
            };
            assert_eq!(seen, expected, "flip at {at}, {choice:?}");
            assert!(done.last_seq >= 6, "at {at}: continues after the highest seq");
            assert_eq!(wal.append(Op::Set, b"next", b"write").unwrap(), done.last_seq + 1);
            for entry in fs::read_dir(path.parent().unwrap()).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if name.contains(".cut-") || name.contains(".skipped-") {
                    fs::remove_file(path.with_file_name(name)).unwrap();
                }
            }
        }
    }
}

/// Repair of a log truncated at every byte, and of random garbage, never panics and leaves a
/// log that opens without help.
#[test]
fn repair_of_truncated_and_garbled_logs_never_panics() {
    let (_dir, path) = temp_log("repair-trunc");
    write_log(&path, 5, 8, true);
    let image = fs::read(&path).unwrap();
    let mut rng = Rng::new(crate::testutil::knob("WALKV_FUZZ_SEED", 11));
    let rounds = crate::testutil::knob("WALKV_FUZZ_ROUNDS", 2000) as usize / 10;
    let cases: Vec<Vec<u8>> = (HEADER_LEN..image.len())
        .map(|cut| image[..cut].to_vec())
        .chain((0..rounds).map(|_| {
            let mut b = image.clone();
            for _ in 0..1 + rng.below(8) {
                let at = HEADER_LEN + rng.below(b.len() - HEADER_LEN);
                b[at] = rng.next_u64() as u8;
            }
            b
        }))
        .collect();
    for bytes in cases {
        fs::write(&path, &bytes).unwrap();
        let plan = repair::plan(&path).unwrap();
        repair::repair(&plan, Choice::SkipDamaged, BOOT_A).unwrap();
        assert!(open(&path, BOOT_A).is_ok());
    }
}

/// Mutated logs (bytes changed, inserted, removed, the file cut) never panic the scanner, the
/// sizing pass or the repair plan, in either judgement.
#[test]
fn mutated_logs_never_panic() {
    let (_dir, path) = temp_log("mutate");
    write_log(&path, 8, 9, true);
    let base = fs::read(&path).unwrap();
    let mut rng = Rng::new(crate::testutil::knob("WALKV_FUZZ_SEED", 1));
    for _ in 0..crate::testutil::knob("WALKV_FUZZ_ROUNDS", 2000) {
        let mut bytes = base.clone();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[at] = rng.next_u64() as u8,
                1 => bytes.insert(at, rng.next_u64() as u8),
                2 => drop(bytes.remove(at.max(HEADER_LEN).min(bytes.len() - 1))),
                _ => bytes.truncate(at.max(HEADER_LEN)),
            }
        }
        fs::write(&path, &bytes).unwrap();
        for judge in [Judge::Live, Judge::Stopped { boot: BOOT_A }, Judge::Stopped { boot: BOOT_B }]
        {
            let _ = scan(&path, judge, |_| {});
        }
        let _ = repair::plan(&path);
    }
}

/// A flipped byte anywhere in a log of many records: `--skip-damaged` keeps every other record,
/// `--cut` the records before it, and the next writes continue after the highest number.
/// Knob: `WALKV_FUZZ_ROUNDS` / 100 flips (20 by default).
#[test]
fn repair_of_a_long_log_keeps_every_other_record() {
    let (_dir, path) = temp_log("repair-long");
    let written = write_log(&path, 2000, 10, true);
    let image = fs::read(&path).unwrap();
    let extents = data_extents(&path);
    let mut rng = Rng::new(crate::testutil::knob("WALKV_FUZZ_SEED", 12));
    for _ in 0..crate::testutil::knob("WALKV_FUZZ_ROUNDS", 2000) / 100 {
        let i = rng.below(extents.len());
        let (start, end) = extents[i];
        let at = start as usize + rng.below((end - start) as usize);
        for choice in [Choice::SkipDamaged, Choice::Cut] {
            let mut bytes = image.clone();
            bytes[at] ^= 1 << rng.below(8);
            fs::write(&path, &bytes).unwrap();
            let plan = repair::plan(&path).unwrap();
            let counts = (plan.prefix.records, plan.after.records);
            assert_eq!(
                counts,
                (i as u64, 1999 - i as u64),
                "flip at {at} in {start}..{end}: {plan:?}"
            );
            let done = repair::repair(&plan, choice, BOOT_A).unwrap();
            let (mut wal, seen, _) = open(&path, BOOT_A).unwrap();
            let expected: Vec<Owned> = match choice {
                Choice::SkipDamaged => [&written[..i], &written[i + 1..]].concat(),
                Choice::Cut => written[..i].to_vec(),
            };
            assert_eq!(seen, expected, "flip at {at} (record {i}), {choice:?}");
            assert_eq!(done.last_seq, 2000);
            assert_eq!(wal.append(Op::Set, b"next", b"write").unwrap(), 2001);
        }
    }
}

/// A transaction is one record: cut at any byte (a torn write; a power cut that kept a prefix),
/// in the same boot or after a reboot, recovery keeps all of its operations or none, never a
/// part, and what came before it is kept.
#[test]
fn a_transaction_cut_anywhere_is_kept_whole_or_not_at_all() {
    let (_dir, path) = temp_log("txn-cut");
    let (mut wal, _, _) = open(&path, BOOT_A).unwrap();
    wal.append(Op::Set, b"before", b"1").unwrap();
    let mut txn = record::TxnBuilder::default();
    for i in 0..20u8 {
        let key = [b'k', i];
        match i % 3 {
            0 => txn.push(&Body::Delete { key: &key }),
            1 => txn.push(&Body::Set { key: &key, value: b"v", expires: None }),
            _ => txn.push(&Body::Set { key: &key, value: &[i; 9], expires: Some(1 << 40) }),
        }
    }
    let mut records = Vec::new();
    record::encode_body_unsealed(&mut records, 2, &Body::Txn(txn.txn()));
    wal.append_batch(&mut records, 2, 2).unwrap();
    drop(wal); // a crash: no close marker
    let image = fs::read(&path).unwrap();
    let &(start, end) = data_extents(&path).last().unwrap();
    let (start, end) = (start as usize, end as usize);
    let ops = |path: &Path, boot| {
        let mut seen = Vec::new();
        Wal::open(path, opts(boot), |r| match r.body {
            Body::Txn(t) => seen.extend(t.ops().map(|op| format!("{op:?}"))),
            _ => seen.push(format!("{:?}", r.body)),
        })
        .map(|_| seen)
    };
    for cut in start..=end {
        for boot in [BOOT_A, BOOT_B] {
            fs::write(&path, &image[..cut]).unwrap();
            let seen = ops(&path, boot).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            let want = if cut == end { 21 } else { 1 };
            assert_eq!(seen.len(), want, "cut at {cut} of {start}..{end}: {seen:?}");
        }
    }
}
