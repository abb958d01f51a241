//! `walkv repair` for the two things in a data directory that are not a segment's records: a
//! damaged snapshot, and a segment missing from the chain.
//!
//! Neither happens in a crash or a power cut (a snapshot is fsynced before the rename that puts
//! it in charge; a segment is created, and its directory fsynced, before anything refers to
//! it): they are damage to the disk, or files removed by hand. So, as for a damaged segment, the
//! server refuses to start and the operator decides, on a plan:
//!
//! - **A damaged snapshot.** The walk keeps every SET that checks out and has a sequence number
//!   up to the snapshot's; after damage it looks at every byte for the next such record (the
//!   checksum is seeded with the snapshot's own random id, so no value can pass for one).
//!   `--skip-damaged` writes a new snapshot of every record kept, `--cut` of those before the
//!   first damage; either commits it by the protocol of [`crate::wal::snapshot`] (a `.new` file,
//!   fsynced, renamed, the directory fsynced), after the dropped bytes are durable in a side
//!   file. A key whose record was in the damaged bytes is lost, unless a segment writes it
//!   again: the merged segments were removed when the snapshot was committed. The plan cannot
//!   name those keys; it gives the damaged bytes, and an estimate of the records they held.
//! - **A missing segment.** The writes it held are in no file. The repair creates it holding
//!   one GAP record for its sequence numbers (up to the next segment's first minus one), so the
//!   chain holds again and no number is reused. If no segment follows (the newest is missing),
//!   the numbers it used are unknown: the new, empty newest segment starts right after the
//!   snapshot, and the plan says so.

use crate::error::Error;
use crate::wal::layout;
use crate::wal::record::{self, Body, BootId, Header, MarkKind, Record};
use crate::wal::repair::{Choice, Damage, Done, Dropped, Event, Rules, header_of, walk_by};
use crate::wal::rewrite::{Rewrite, new_log_id};
use crate::wal::snapshot;
use std::fs::File;
use std::path::{Path, PathBuf};

/// What a repair of a snapshot would find and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPlan {
    pub path: PathBuf,
    /// The snapshot covers the writes up to this sequence number (from its name).
    pub upto: u64,
    pub header: Header,
    /// The file header was damaged; changing the byte at this offset restores it.
    pub header_fixed: Option<usize>,
    pub file_len: u64,
    /// Keys that check out before the first damage (what `--cut` keeps).
    pub before: u64,
    /// Keys that check out after it.
    pub after: u64,
    /// The mean size of the records kept, to estimate what the damage held.
    pub mean_record: u64,
    pub first_damage: Option<u64>,
    pub damage: Damage,
    /// The end marker was found: the file says itself that it covers the writes up to `upto`.
    pub end_found: bool,
    /// Just past the last byte that is not reserved zeros.
    pub data_end: u64,
}

impl SnapshotPlan {
    /// True if there is nothing to repair.
    pub fn is_clean(&self) -> bool {
        self.first_damage.is_none() && self.header_fixed.is_none()
    }

    /// About how many records the damaged bytes held.
    pub fn records_lost_estimate(&self) -> u64 {
        self.damage.bytes.div_ceil(self.mean_record.max(1))
    }
}

/// The snapshot's end marker, at offset `at`.
fn is_end(record: &Record, at: u64, upto: u64) -> bool {
    matches!(record.body, Body::Mark(m) if m.kind == MarkKind::Snapshot && m.offset == at)
        && record.seq == upto
}

/// A snapshot's rules: SETs up to `upto` in any order, then the end marker, then nothing (not
/// even zeros: [`snapshot::load`] refuses them).
struct SnapshotRules {
    upto: u64,
    ended: bool,
}

impl Rules for SnapshotRules {
    fn fits(&self, record: &Record, at: u64) -> Option<bool> {
        let set = matches!(record.body, Body::Set { .. }) && record.seq <= self.upto;
        (!self.ended && (set || is_end(record, at, self.upto))).then_some(true)
    }

    fn kept(&mut self, record: &Record) {
        self.ended = matches!(record.body, Body::Mark(_));
    }

    fn wanted(&self, kind: u8, seq: u64) -> bool {
        !self.ended && (kind == 3 || kind == 1 && seq <= self.upto)
    }

    fn zeros_may_end(&self) -> bool {
        !self.ended
    }

    fn reason(&self, record: Option<&Record>, fault: String) -> String {
        match record {
            _ if self.ended => "bytes after the snapshot's end marker".to_string(),
            Some(r) => {
                format!("a record a snapshot up to seq {} cannot hold (seq {})", self.upto, r.seq)
            }
            None => fault,
        }
    }
}

/// Walks the snapshot, reporting every record kept (the SETs, then the end marker) and every
/// damaged region. Returns the file's length and the end of its last byte that is not zero.
fn walk(
    path: &Path,
    header: Header,
    upto: u64,
    on: impl FnMut(Event) -> Result<(), Error>,
) -> Result<(u64, u64), Error> {
    walk_by(path, header, &mut SnapshotRules { upto, ended: false }, on)
}

/// Builds the plan for the snapshot at `path`, which covers the writes up to `upto`. Reads only.
pub fn plan_snapshot(path: &Path, upto: u64) -> Result<SnapshotPlan, Error> {
    let (header, header_fixed) = header_of(path)?;
    if !record::is_log_version(header.version) {
        let reason = format!("a snapshot of format {}", header.version);
        return Err(Error::Corrupt { path: path.to_path_buf(), offset: 0, reason });
    }
    let mut plan = SnapshotPlan {
        path: path.to_path_buf(),
        upto,
        header,
        header_fixed,
        file_len: 0,
        before: 0,
        after: 0,
        mean_record: 0,
        first_damage: None,
        damage: Damage::default(),
        end_found: false,
        data_end: 0,
    };
    let mut kept_bytes = 0u64;
    let (file_len, data_end) = walk(path, header, upto, |event| {
        match event {
            Event::Keep { record, .. } if matches!(record.body, Body::Mark(_)) => {
                plan.end_found = true;
            }
            Event::Keep { len, .. } => {
                kept_bytes += len as u64;
                match plan.first_damage {
                    None => plan.before += 1,
                    Some(_) => plan.after += 1,
                }
            }
            Event::Damage { at, len, reason } => {
                plan.first_damage.get_or_insert(at);
                plan.damage.add(at, len, reason);
            }
        }
        Ok(())
    })?;
    plan.file_len = file_len;
    plan.data_end = data_end;
    if !plan.end_found && plan.first_damage.is_none() {
        plan.first_damage = Some(data_end); // the end marker is missing: the file was cut short
    }
    let kept = plan.before + plan.after;
    plan.mean_record = kept_bytes.checked_div(kept).unwrap_or(1);
    Ok(plan)
}

/// Carries out `choice` on the snapshot as planned. The caller holds the data directory's lock.
pub fn repair_snapshot(plan: &SnapshotPlan, choice: Choice, boot: BootId) -> Result<Done, Error> {
    if plan.is_clean() {
        return Ok(Done { kept: plan.before, side_file: None, last_seq: plan.upto });
    }
    let path = &plan.path;
    let src = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut out = snapshot::Writer::create(path, plan.upto)?;
    let mut side = Dropped::new(path);
    let cut_at = plan.first_damage.unwrap_or(u64::MAX);
    walk(path, plan.header, plan.upto, |event| match event {
        Event::Keep { at, record, .. } if choice == Choice::SkipDamaged || at < cut_at => {
            match record.body {
                Body::Set { key, value, expires } => out.set(record.seq, key, value, expires),
                _ => Ok(()),
            }
        }
        Event::Damage { at, len, .. } if choice == Choice::SkipDamaged => side.keep(&src, at, len),
        _ => Ok(()),
    })?;
    let side_file = side.finish(choice, cut_at, plan.data_end)?;
    let kept = out.contents().keys;
    out.commit(boot)?;
    Ok(Done { kept, side_file, last_seq: plan.upto })
}

/// Creates the missing segment whose first sequence number is `first`, holding one GAP record
/// up to `next - 1` (nothing if `next` is `None`: it becomes the newest segment).
pub fn fill_missing(dir: &Path, first: u64, next: Option<u64>) -> Result<Done, Error> {
    let path = dir.join(layout::segment_name(first));
    let mut out = Rewrite::begin(&path, new_log_id())?;
    out.last_seq = first - 1;
    if let Some(next) = next
        && next > first
    {
        out.gap(next - 1)?;
    }
    let last_seq = out.last_seq;
    out.commit(None)?;
    Ok(Done { kept: 0, side_file: None, last_seq })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::fs;

    const UPTO: u64 = 50;

    fn snapshot_of(dir: &Path, keys: u64) -> PathBuf {
        let path = dir.join(layout::snapshot_name(UPTO));
        let mut w = snapshot::Writer::create(&path, UPTO).unwrap();
        for i in 0..keys {
            w.set(i + 1, format!("key{i:03}").as_bytes(), b"a value of some length", None).unwrap();
        }
        w.commit([1; 16]).unwrap();
        path
    }

    fn keys_in(path: &Path) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        snapshot::load(path, UPTO, |r| {
            if let Body::Set { key, .. } = r.body {
                keys.push(key.to_vec());
            }
        })
        .unwrap();
        keys
    }

    #[test]
    fn a_clean_snapshot_needs_nothing() {
        let dir = TempDir::new("salvage-clean");
        let path = snapshot_of(&dir, 10);
        let plan = plan_snapshot(&path, UPTO).unwrap();
        assert!(plan.is_clean() && plan.end_found, "{plan:?}");
        assert_eq!((plan.before, plan.after), (10, 0));
    }

    #[test]
    fn skip_damaged_keeps_every_other_key_and_the_bytes_it_drops() {
        let dir = TempDir::new("salvage-skip");
        let path = snapshot_of(&dir, 10);
        let mut bytes = fs::read(&path).unwrap();
        let record = (bytes.len() - record::MARK_LEN - 24) / 10;
        bytes[24 + 3 * record + 20] ^= 0x40; // inside the fourth key's record
        fs::write(&path, &bytes).unwrap();
        assert!(snapshot::load(&path, UPTO, |_| {}).is_err(), "damage is refused at load");

        let plan = plan_snapshot(&path, UPTO).unwrap();
        assert_eq!((plan.before, plan.after, plan.damage.count), (3, 6, 1), "{plan:?}");
        assert_eq!(plan.first_damage, Some((24 + 3 * record) as u64));
        assert_eq!(plan.damage.bytes, record as u64);
        assert_eq!(plan.records_lost_estimate(), 1);
        assert!(plan.end_found);

        let done = repair_snapshot(&plan, Choice::SkipDamaged, [1; 16]).unwrap();
        assert_eq!(done.kept, 9);
        let keys = keys_in(&path);
        assert_eq!(keys.len(), 9);
        assert!(!keys.contains(&b"key003".to_vec()));
        let side = fs::read(done.side_file.unwrap()).unwrap();
        assert_eq!(&side[..8], &((24 + 3 * record) as u64).to_le_bytes());
        assert_eq!(side.len(), 16 + record);
    }

    #[test]
    fn cut_keeps_the_keys_before_the_damage() {
        let dir = TempDir::new("salvage-cut");
        let path = snapshot_of(&dir, 10);
        let bytes = fs::read(&path).unwrap();
        let record = (bytes.len() - record::MARK_LEN - 24) / 10;
        let cut = 24 + 5 * record;
        fs::write(&path, &bytes[..cut + 7]).unwrap(); // torn in the sixth record

        let plan = plan_snapshot(&path, UPTO).unwrap();
        assert!(!plan.end_found);
        assert_eq!((plan.before, plan.after), (5, 0), "{plan:?}");
        let done = repair_snapshot(&plan, Choice::Cut, [1; 16]).unwrap();
        assert_eq!((done.kept, keys_in(&path).len()), (5, 5));
        // The side file holds the torn bytes up to the last one that is not zero.
        let side = fs::read(done.side_file.unwrap()).unwrap();
        assert!(!side.is_empty() && bytes[cut..cut + 7].starts_with(&side));
        assert!(bytes[cut + side.len()..cut + 7].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_snapshot_cut_exactly_before_its_end_marker_is_damaged() {
        let dir = TempDir::new("salvage-no-end");
        let path = snapshot_of(&dir, 4);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - record::MARK_LEN]).unwrap();
        let plan = plan_snapshot(&path, UPTO).unwrap();
        assert!(!plan.is_clean() && !plan.end_found);
        assert_eq!(plan.before, 4);
        repair_snapshot(&plan, Choice::SkipDamaged, [1; 16]).unwrap();
        assert_eq!(keys_in(&path).len(), 4);
    }

    #[test]
    fn bytes_after_the_end_marker_are_damage() {
        let dir = TempDir::new("salvage-after-end");
        let path = snapshot_of(&dir, 3);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(b"trailing");
        fs::write(&path, &bytes).unwrap();
        let plan = plan_snapshot(&path, UPTO).unwrap();
        assert!(plan.end_found);
        assert_eq!((plan.before, plan.damage.count, plan.damage.bytes), (3, 1, 8));
        repair_snapshot(&plan, Choice::SkipDamaged, [1; 16]).unwrap();
        assert_eq!(keys_in(&path).len(), 3);
    }

    #[test]
    fn a_missing_segment_is_filled_with_a_gap() {
        let dir = TempDir::new("salvage-missing");
        let done = fill_missing(&dir, 11, Some(21)).unwrap();
        assert_eq!(done.last_seq, 20);
        let path = dir.join(layout::segment_name(11));
        let judge = crate::wal::scan::Judge::Live;
        let scan = crate::wal::scan::scan_after(&path, judge, 10, |_| {}).unwrap();
        assert_eq!((scan.last_seq, scan.records), (20, 0));
    }
}
