//! `walkv dump`: the log's files and every record in them, one line each, as recovery reads them.
//!
//! For a person learning the format (or an operator looking at damage), the way `pg_waldump` and
//! `redis-check-aof` are. It only reads: no lock, no change, safe beside a running server. The
//! output:
//!
//! ```text
//! walkv dump of DIR: 2 files in replay order; no server holds the lock
//!   snapshot-00000000000000000002.snap: snapshot through seq 2, 81 bytes
//!   segment-00000000000000000003.wal: newest segment, from seq 3, 1048700 bytes
//!   (then any file the next start removes, as "left over")
//! == snapshot-00000000000000000002.snap: format 4, log id 0x0123456789abcdef
//! snapshot-00000000000000000002.snap @24 seq=1 SET klen=3 vlen=4 crc=ok key="cat" value="meow"
//! ...
//! snapshot-00000000000000000002.snap @55: end marker, the snapshot is complete
//! == segment-00000000000000000003.wal: format 2, log id 0x...
//! segment-00000000000000000003.wal @24 seq=2 SYNC klen=0 vlen=26 crc=ok kind=open mode=interval boot=...
//! segment-00000000000000000003.wal @71: reserved space: 1048629 zero bytes to the end; recovery releases them (the clean end)
//! ```
//!
//! Keys and the first [`VALUE_SHOWN`] bytes of values are shown between quotes with every byte
//! that is not printable ASCII (and `"` and `\`) written as `\xNN`. After a file's last valid
//! record comes what follows it: the clean end, reserved space, or the first damage (the record
//! there with `crc=BAD` when its header is readable) and what recovery would do there: trim it
//! by itself, or refuse to start (then `walkv repair`). A damaged snapshot or a missing segment
//! is reported the same way. Exit 0, or 7 if recovery would refuse.

use super::printable;
use crate::cli::exit;
use crate::error::Error;
use crate::wal::record::{
    self, Body, HEADER_LEN, MARK_LEN, MarkKind, RECORD_HEADER_LEN, Record, SyncMode,
};
use crate::wal::scan::{self, Scan, Tail};
use crate::wal::snapshot;
use crate::wal::view::{self, Piece};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Bytes of a value shown.
pub const VALUE_SHOWN: usize = 64;

/// `walkv dump [--data-dir DIR] [--from-seq N] [--limit N]`.
pub fn dump(data_dir: &Path, from_seq: u64, limit: Option<u64>) -> u8 {
    let mut out = BufWriter::new(io::stdout().lock());
    let mut dump = Dump { out: &mut out, from_seq, left: limit, failed: None };
    let code = dump.run(data_dir);
    let flushed = dump.out.flush();
    match (dump.failed.take().map_or(flushed, Err), code) {
        (Ok(()), code) => code,
        (Err(e), _) => super::remote::stdout_result(Err(e)),
    }
}

struct Dump<'a, W: Write> {
    out: &'a mut W,
    from_seq: u64,
    /// Record lines still to print (`--limit`); `None`: all.
    left: Option<u64>,
    /// The first error writing the output.
    failed: Option<io::Error>,
}

impl<W: Write> Dump<'_, W> {
    fn line(&mut self, text: &str) {
        if self.failed.is_none()
            && let Err(e) =
                self.out.write_all(text.as_bytes()).and_then(|_| self.out.write_all(b"\n"))
        {
            self.failed = Some(e);
        }
    }

    fn run(&mut self, dir: &Path) -> u8 {
        let (pieces, judge) = match view::pieces(dir).and_then(|p| Ok((p, view::judge(dir)?))) {
            Ok(found) => found,
            Err(e) => {
                // Nothing printed yet: the error alone, once, on standard error.
                crate::log!("{e}");
                return exit::for_error(&e);
            }
        };
        let live = matches!(judge, scan::Judge::Live);
        let holder = if live { "a server is running on it" } else { "no server holds the lock" };
        self.line(&format!(
            "walkv dump of {}: {} files in replay order; {holder}",
            dir.display(),
            pieces.len()
        ));
        for piece in &pieces {
            let size = std::fs::metadata(piece.path()).map(|m| m.len()).unwrap_or_default();
            let what = match piece {
                Piece::Snapshot { upto, .. } => format!("snapshot through seq {upto}"),
                Piece::Segment { after, ceiling: Some(c), .. } => {
                    format!("sealed segment, seqs {}..={c}", after + 1)
                }
                Piece::Segment { after, ceiling: None, .. } => {
                    format!("newest segment, from seq {}", after + 1)
                }
                Piece::Single { .. } => "the log (one-file layout)".to_string(),
            };
            self.line(&format!("  {}: {what}, {size} bytes", name(piece.path())));
        }
        for leftover in leftovers(dir) {
            self.line(&format!(
                "  {}: left over from an interrupted write or compaction; not replayed, the next \
                 start removes it",
                name(&leftover)
            ));
        }
        for piece in &pieces {
            let code = match piece {
                Piece::Snapshot { path, upto } => self.snapshot(path, *upto),
                Piece::Segment { path, after, .. } => self.segment(piece, path, *after, judge),
                Piece::Single { path } => self.segment(piece, path, 0, judge),
            };
            if code != exit::OK {
                return code;
            }
            if self.left == Some(0) {
                self.line("(stopped: --limit reached)");
                return exit::OK;
            }
        }
        exit::OK
    }

    /// Reports an error that ends the dump midway, with recovery's verdict.
    fn refused(&mut self, path: &Path, e: &Error) -> u8 {
        let code = exit::for_error(e);
        let verdict = if code == exit::CORRUPT {
            "recovery refuses to start here; see `walkv check` and `walkv repair --dry-run`"
        } else {
            "cannot be read"
        };
        // The listing says where it stopped; the error itself is said once, on standard error.
        self.line(&format!("(the dump stops here: {} {verdict})", name(path)));
        crate::log!("{e}");
        code
    }

    /// A record line, if `--from-seq` and `--limit` let it through.
    fn record(&mut self, file: &str, at: u64, record: &Record, crc: &str) {
        if record.seq < self.from_seq || self.left == Some(0) {
            return;
        }
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
        let text = describe(file, at, record, crc);
        self.line(&text);
    }

    fn header_line(&mut self, path: &Path) -> Result<(), Error> {
        match scan::read_header(path)? {
            Some(h) => {
                self.line(&format!(
                    "== {}: format {}, log id {:#018x}",
                    name(path),
                    h.version,
                    h.log_id
                ));
                Ok(())
            }
            None => Err(Error::NotALog {
                path: path.to_path_buf(),
                reason: "the file is shorter than a log header".into(),
            }),
        }
    }

    fn snapshot(&mut self, path: &Path, upto: u64) -> u8 {
        if let Err(e) = self.header_line(path) {
            return self.refused(path, &e);
        }
        let file = name(path);
        let mut at = HEADER_LEN as u64;
        let loaded = snapshot::load(path, upto, |r| {
            self.record(&file, at, r, "ok");
            at += view::record_len(r);
        });
        match loaded {
            Ok(c) => {
                let end = c.file_bytes.saturating_sub(MARK_LEN as u64);
                self.line(&format!(
                    "{file} @{end}: end marker: the snapshot is complete ({} keys, through seq \
                     {upto})",
                    c.keys
                ));
                exit::OK
            }
            Err(e) => self.refused(path, &e),
        }
    }

    fn segment(&mut self, piece: &Piece, path: &Path, after: u64, judge: scan::Judge) -> u8 {
        if let Err(e) = self.header_line(path) {
            return self.refused(path, &e);
        }
        let file = name(path);
        // Lines are printed as the scan goes, so a large segment streams.
        let mut printed = Ok(());
        let scanned = scan::scan_every(path, judge, after, |at, record| {
            if printed.is_ok() {
                self.record(&file, at, record, "ok");
                if let Some(e) = self.failed.take() {
                    printed = Err(e);
                }
            }
        });
        if let Err(e) = printed {
            self.failed = Some(e);
            return exit::FAILED;
        }
        let scan = match scanned {
            Ok(scan) => scan,
            Err(e) => return self.refused(path, &e),
        };
        self.tail(piece, path, &scan, judge)
    }

    /// What follows the last valid record, and what recovery does there.
    fn tail(&mut self, piece: &Piece, path: &Path, scan: &Scan, judge: scan::Judge) -> u8 {
        let file = name(path);
        let at = scan.end;
        if let Some(e) = view::refusal(piece, scan) {
            self.damaged_record(&file, path, at);
            self.line(&format!("{file} @{at}: {e}"));
            return exit::CORRUPT;
        }
        let text = match &scan.tail {
            Tail::Clean => format!("{file} @{at}: end of file"),
            Tail::Reserved => format!(
                "{file} @{at}: reserved space: {} zero bytes to the end; recovery releases them \
                 (the clean end)",
                scan.file_len - at
            ),
            Tail::Unfinished { .. } | Tail::Unsynced { .. }
                if matches!(judge, scan::Judge::Live) =>
            {
                format!(
                    "{file} @{at}: {} bytes being written by the running server (not judged)",
                    scan.file_len - at
                )
            }
            Tail::Unfinished { .. } | Tail::Unsynced { .. } => {
                self.damaged_record(&file, path, at);
                format!(
                    "{file} @{at}: torn tail: {} Recovery trims it at the next start by itself \
                     (no operator needed).",
                    scan.explain()
                )
            }
            Tail::Corrupt { .. } => unreachable!("refused above"),
        };
        self.line(&text);
        exit::OK
    }

    /// The record at a damage point, with `crc=BAD`, if its header is readable.
    fn damaged_record(&mut self, file: &str, path: &Path, at: u64) {
        if let Some(text) = read_damaged(path, at) {
            self.line(&format!("{file} @{at} {text}"));
        }
    }
}

/// The files the next start removes (see [`crate::wal::dir::Part::Leftover`]).
fn leftovers(dir: &Path) -> Vec<std::path::PathBuf> {
    match crate::wal::dir::parts(dir) {
        Ok(parts) => parts
            .into_iter()
            .filter(|(_, part)| matches!(part, crate::wal::dir::Part::Leftover))
            .map(|(path, _)| path)
            .collect(),
        Err(_) => Vec::new(), // the one-file layout, or an unreadable directory: none
    }
}

/// The file's name, for the start of each line.
fn name(path: &Path) -> String {
    printable::ascii(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default())
}

/// One record's line.
pub fn describe(file: &str, at: u64, record: &Record, crc: &str) -> String {
    let mut line = format!("{file} @{at} seq={} ", record.seq);
    match record.body {
        Body::Set { key, value, expires: None } => {
            let _ = write!(line, "SET klen={} vlen={} crc={crc} ", key.len(), value.len());
            push_change(&mut line, &record.body);
        }
        Body::Set { key, value, expires: Some(_) } => {
            let vlen = value.len() + crate::wal::record::EXPIRY_LEN;
            let _ = write!(line, "SET-EXPIRING klen={} vlen={vlen} crc={crc} ", key.len());
            push_change(&mut line, &record.body);
        }
        Body::Delete { key } => {
            let _ = write!(line, "DELETE klen={} vlen=0 crc={crc} ", key.len());
            push_change(&mut line, &record.body);
        }
        Body::Expire { key } => {
            let _ = write!(line, "EXPIRE klen={} vlen=0 crc={crc} ", key.len());
            push_change(&mut line, &record.body);
        }
        Body::Txn(txn) => {
            let (vlen, ops) = (txn.bytes().len(), txn.len());
            let _ = write!(line, "TXN klen=0 vlen={vlen} crc={crc} {ops} operations:");
            for op in txn.ops() {
                line.push_str(if matches!(op, Body::Delete { .. }) {
                    " [DELETE "
                } else {
                    " [SET "
                });
                push_change(&mut line, &op);
                line.push(']');
            }
        }
        Body::Mark(m) => {
            let kind = match m.kind {
                MarkKind::Open => "open",
                MarkKind::Sync => "sync",
                MarkKind::Close => "close",
                MarkKind::Repair => "repair",
                MarkKind::Snapshot => "snapshot",
            };
            let mode = m.mode.map_or("none", SyncMode::name);
            let boot: String = m.boot.iter().map(|b| format!("{b:02x}")).collect();
            let _ = write!(
                line,
                "SYNC klen=0 vlen=26 crc={crc} kind={kind} mode={mode} offset={} boot={boot}",
                m.offset
            );
        }
        Body::Gap { first } => {
            let _ = write!(line, "GAP klen=0 vlen=8 crc={crc} skips seqs {first}..={}", record.seq);
        }
    }
    line
}

/// The key, and a SET's value and expiry (milliseconds since the Unix epoch, and the UTC time).
fn push_change(line: &mut String, change: &Body) {
    let (Body::Set { key, .. } | Body::Delete { key } | Body::Expire { key }) = *change else {
        return;
    };
    push_bytes(line, "key", key, usize::MAX);
    if let Body::Set { value, expires, .. } = *change {
        line.push(' ');
        push_bytes(line, "value", value, VALUE_SHOWN);
        if let Some(at) = expires {
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at);
            let _ = write!(line, " expires={at} ({})", crate::request_log::rfc3339_utc(time));
        }
    }
}

/// `name="..."`, at most `shown` bytes, then how many more there are.
fn push_bytes(line: &mut String, name: &str, bytes: &[u8], shown: usize) {
    let cut = bytes.len().min(shown);
    let _ = write!(line, "{name}=\"{}\"", printable::ascii(&bytes[..cut]));
    if cut < bytes.len() {
        let _ = write!(line, "+{}", bytes.len() - cut);
    }
}

/// The fields of a record header at `at` that does not check out, if they are readable:
/// `seq=N TYPE klen= vlen= crc=BAD ...`, or `incomplete` when the file ends inside it.
fn read_damaged(path: &Path, at: u64) -> Option<String> {
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::Start(at)).ok()?;
    let mut head = [0u8; RECORD_HEADER_LEN];
    let got = read_up_to(&mut file, &mut head).ok()?;
    if got < RECORD_HEADER_LEN {
        return (got > 0)
            .then(|| format!("crc=BAD: the file ends {got} bytes into a record header"));
    }
    let seq = u64::from_le_bytes(head[4..12].try_into().ok()?);
    let kind = head[12];
    let klen = u32::from_le_bytes(head[13..17].try_into().ok()?) as usize;
    let vlen = u32::from_le_bytes(head[17..21].try_into().ok()?) as usize;
    let name = match kind {
        1 => "SET",
        2 => "DELETE",
        3 => "SYNC",
        4 => "GAP",
        0 => return None, // zeros: not a record at all
        _ => return Some(format!("type={kind} crc=BAD: not a record type")),
    };
    if klen > record::MAX_KEY_LEN || vlen > record::MAX_VALUE_LEN {
        return Some(format!(
            "seq={seq} {name} klen={klen} vlen={vlen} crc=BAD: lengths over the limits"
        ));
    }
    let mut body = vec![0u8; klen + vlen];
    let got = read_up_to(&mut file, &mut body).ok()?;
    let mut line = format!("seq={seq} {name} klen={klen} vlen={vlen} crc=BAD ");
    if got < body.len() {
        let _ = write!(line, "(the file ends after {got} of its {} bytes)", body.len());
        return Some(line);
    }
    push_bytes(&mut line, "key", &body[..klen], usize::MAX);
    line.push(' ');
    push_bytes(&mut line, "value", &body[klen..], VALUE_SHOWN);
    Some(line)
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::testutil::{Rng, TempDir, knob};
    use crate::wal::{Options, SyncMode};

    /// A data directory with a snapshot and a segment after it.
    fn sample(dir: &Path) {
        let options = Options { mode: SyncMode::Interval, boot: [3; 16] };
        let (mut store, _) = Store::open(dir, options).unwrap();
        for i in 0..40u32 {
            store
                .set(format!("k{}", i % 13).as_bytes(), &i.to_le_bytes().repeat(i as usize))
                .unwrap();
        }
        store.delete(b"k1").unwrap();
        let job = store.seal_now([3; 16]).unwrap().unwrap();
        let done = crate::wal::compact::run(&job).unwrap();
        store.finish_compaction(&done);
        store.set(b"after", b"\x1b[2J").unwrap();
        store.close().unwrap();
    }

    /// Every byte flip, truncation and removal of a file leaves `dump` and `export`'s reader
    /// answering (output or an error), never panicking; dump's output never holds a control
    /// character but its newlines.
    #[test]
    fn damaged_files_never_panic_dump_or_export() {
        let base = TempDir::new("dump-fuzz-base");
        sample(&base);
        let names: Vec<_> = std::fs::read_dir(&*base)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "LOCK")
            .collect();
        let mut rng = Rng::new(61);
        for _ in 0..knob("WALKV_FUZZ_ITERS", 20_000) / 200 {
            let dir = TempDir::new("dump-fuzz");
            for name in &names {
                std::fs::copy(base.join(name), dir.join(name)).unwrap();
            }
            let victim = dir.join(&names[rng.below(names.len())]);
            let mut bytes = std::fs::read(&victim).unwrap();
            match rng.below(4) {
                0 if !bytes.is_empty() => {
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(bytes.len());
                        bytes[at] ^= 1 << rng.below(8);
                    }
                }
                1 => bytes.truncate(rng.below(bytes.len() + 1)),
                2 => {
                    let n = rng.below(64);
                    bytes.extend(rng.bytes(n));
                }
                _ => bytes.clear(),
            }
            std::fs::write(&victim, &bytes).unwrap();
            let mut out = Vec::new();
            let mut dump = Dump { out: &mut out, from_seq: 0, left: None, failed: None };
            let code = dump.run(&dir);
            assert!([exit::OK, exit::CORRUPT, exit::FAILED, exit::NEWER_FORMAT].contains(&code));
            let text = String::from_utf8(out).expect("dump prints ASCII");
            assert!(text.chars().all(|c| c == '\n' || !c.is_control()), "{text}");
            let _ = view::read_data(&dir);
        }
    }

    /// The sample reads back whole: dump ends cleanly, and export's reader has every key.
    #[test]
    fn sample_dumps_cleanly() {
        let dir = TempDir::new("dump-sample");
        sample(&dir);
        let mut out = Vec::new();
        let mut dump = Dump { out: &mut out, from_seq: 0, left: None, failed: None };
        assert_eq!(dump.run(&dir), exit::OK);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("end marker: the snapshot is complete (12 keys, through seq 41)"),
            "{text}"
        );
        assert!(text.contains("key=\"after\" value=\"\\x1b[2J\""), "{text}");
        let data = view::read_data(&dir).unwrap();
        assert_eq!((data.keys.len(), data.last_seq), (13, 42));
        std::fs::write(dir.join("snapshot-00000000000000000099.snap.new"), b"half").unwrap();
        let mut out = Vec::new();
        let mut dump = Dump { out: &mut out, from_seq: 0, left: None, failed: None };
        assert_eq!(dump.run(&dir), exit::OK);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("  snapshot-00000000000000000099.snap.new: left over"), "{text}");
        assert_eq!(data.keys.get(&b"k0"[..]).map(|v| v.seq), Some(40), "k0 last set at seq 40");
    }
}
