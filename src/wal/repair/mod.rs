//! `walkv repair`: a plan first, then the operator's choice.
//!
//! The log is walked once to build a [`Plan`]: the records before the first damage, every
//! damaged region, the records that check out after the damage, the sequence numbers that are
//! missing, and how many keys the records after the damage touch (the keys whose state could be
//! wrong if a missing record was a later write or a DELETE). Then, on the operator's word:
//!
//! - `--skip-damaged` walks the log again (the lock is held, so it is the same file) and writes
//!   every record that checks out into a new log, with a GAP record wherever sequence numbers
//!   are missing, and commits it by rename. The damaged regions go to `walkv.wal.skipped-TIME`,
//!   each as `offset: u64 LE | length: u64 LE | the bytes`.
//! - `--cut` keeps the records before the first damage: the bytes from there on go to
//!   `walkv.wal.cut-OFFSET-TIME`, the log is truncated there and a GAP record appended.
//!
//! Either way the log continues after the highest sequence number it has ever held (counting
//! one number for a damaged region, which may have held the next record), so a number is never
//! reused. How the walk finds its way past damage: after a record that does not
//! check out, it tries the position the damaged record's own length points to, then every byte
//! after it, for a record that checks out (the checksum is seeded with the log's id, so a
//! value cannot pass for a record) with a sequence number above the last one kept.

use crate::error::Error;
use crate::wal::files::{copy_range, create_side_file, save_side_file, sync_dir, unix_seconds};
use crate::wal::reader::Window;
use crate::wal::record::{
    self, Body, Decoded, HEADER_LEN, Header, MAX_RECORD_LEN, MarkKind, Record, Seed, VERSION_1,
    decode, decode_header, peek,
};
use crate::wal::rewrite::{self, Rewrite};
use std::fs::{File, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub mod salvage;

/// How many damaged regions and missing ranges a plan lists one by one.
const LISTED: usize = 20;

/// A run of SET and DELETE records that check out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Run {
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

impl Run {
    fn add(&mut self, seq: u64) {
        if self.records == 0 {
            self.first_seq = seq;
        }
        self.records += 1;
        self.last_seq = seq;
    }
}

/// Bytes that do not check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub offset: u64,
    pub len: u64,
    pub reason: String,
}

/// The damaged regions a walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Damage {
    /// The first 20 regions.
    pub regions: Vec<Region>,
    /// All of them.
    pub count: u64,
    pub bytes: u64,
}

impl Damage {
    pub(super) fn add(&mut self, offset: u64, len: u64, reason: String) {
        self.count += 1;
        self.bytes += len;
        if self.regions.len() < LISTED {
            self.regions.push(Region { offset, len, reason });
        }
    }
}

/// What a repair would find and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub path: PathBuf,
    pub header: Header,
    /// The sequence number the file's first record follows (0 for a whole log; a segment's
    /// number minus one).
    pub base: u64,
    /// For a sealed segment: the sequence number it must end with (the next segment's number
    /// minus one), so that the chain of segments holds after the repair.
    pub ceiling: Option<u64>,
    /// The file header was damaged; changing the byte at this offset restores it.
    pub header_fixed: Option<usize>,
    pub file_len: u64,
    /// Records before the first damage (what `--cut` keeps).
    pub prefix: Run,
    /// The sequence number the prefix ends with, GAP records included.
    pub prefix_seq: u64,
    /// Where the first damage is: a region that does not check out, or a record out of sequence.
    pub first_damage: Option<u64>,
    pub damage: Damage,
    /// Records that check out after the first damage.
    pub after: Run,
    /// Distinct keys those records touch (estimated by linear counting; exact in practice
    /// below a few thousand).
    pub keys_after: u64,
    /// The first 20 ranges of missing sequence numbers.
    pub missing: Vec<(u64, u64)>,
    pub missing_count: u64,
    /// The highest sequence number the log may have held: of any record that checks out, or one
    /// more than the last before a damaged region.
    pub max_seq: u64,
    /// Just past the last byte that is not reserved zeros.
    pub data_end: u64,
}

impl Plan {
    /// True if there is nothing to repair.
    pub fn is_clean(&self) -> bool {
        self.first_damage.is_none() && self.header_fixed.is_none()
    }
}

/// What the operator chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    SkipDamaged,
    Cut,
}

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub kept: u64,
    pub side_file: Option<PathBuf>,
    /// The log continues after this sequence number.
    pub last_seq: u64,
}

/// One step of the walk.
pub(super) enum Event<'a> {
    /// A record that checks out, `len` bytes long. `chained`: it follows the one before
    /// exactly (still the prefix, if no damage came before).
    Keep {
        at: u64,
        record: Record<'a>,
        len: usize,
        chained: bool,
    },
    Damage {
        at: u64,
        len: u64,
        reason: String,
    },
}

/// Reads the header of the log at `path`, restoring it if one changed byte is all that is wrong
/// (returns that byte's offset).
pub(super) fn header_of(path: &Path) -> Result<(Header, Option<usize>), Error> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut bytes))
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    match decode_header(&bytes) {
        Ok(header) => Ok((header, None)),
        Err(record::HeaderFault::Damaged(reason)) => {
            fix_header(&bytes).ok_or(Error::Corrupt { path: path.to_path_buf(), offset: 0, reason })
        }
        Err(_) => crate::wal::scan::read_header(path)
            .and_then(|h| h.ok_or_else(|| Error::Invalid("the log is empty".into())))
            .map(|h| (h, None)),
    }
}

/// The one version 2 header within one changed byte of `bytes`, if there is exactly one.
fn fix_header(bytes: &[u8]) -> Option<(Header, Option<usize>)> {
    if bytes.len() < HEADER_LEN {
        return None;
    }
    let mut found = None;
    for at in 0..HEADER_LEN {
        for v in 0..=255u8 {
            let mut candidate = bytes[..HEADER_LEN].to_vec();
            if candidate[at] == v {
                continue;
            }
            candidate[at] = v;
            if let Ok(h) = decode_header(&candidate)
                && record::is_log_version(h.version)
            {
                if found.is_some() {
                    return None; // ambiguous: do not guess
                }
                found = Some((h, Some(at)));
            }
        }
    }
    found
}

/// Whether `record`, at `at`, may be kept after the record with sequence number `last`:
/// `Some(true)` if it follows exactly, `Some(false)` if it only comes later.
fn fits(record: &Record, at: u64, last: u64) -> Option<bool> {
    let next = last.checked_add(1)?;
    match record.body {
        Body::Set { .. } | Body::Delete { .. } if record.seq != u64::MAX && record.seq >= next => {
            Some(record.seq == next)
        }
        Body::Mark(m) if m.offset == at && record.seq >= last => Some(record.seq == last),
        Body::Gap { first } if first >= next && record.seq >= first && record.seq != u64::MAX => {
            Some(first == next)
        }
        _ => None,
    }
}

/// What a walk keeps: the rules of the file being walked (a log here, a snapshot in
/// [`crate::wal::salvage`]).
pub(super) trait Rules {
    /// Whether `record`, at `at`, may be kept here: `Some(chained)` (see [`Event::Keep`]), or
    /// `None`: it is damage.
    fn fits(&self, record: &Record, at: u64) -> Option<bool>;
    /// A record was kept.
    fn kept(&mut self, record: &Record);
    /// From a record's type and sequence number alone: whether it could fit, so that its
    /// checksum is worth computing while looking for the next record after damage.
    fn wanted(&self, kind: u8, seq: u64) -> bool;
    /// Whether zeros that run to the end of the file are reserved space (not damage).
    fn zeros_may_end(&self) -> bool;
    /// Why bytes at which a walk found `record` (if one checked out but did not fit), or
    /// `fault`, are damage.
    fn reason(&self, record: Option<&Record>, fault: String) -> String;
}

/// A log's rules: sequence numbers only grow, markers repeat the last one.
struct LogRules {
    last: u64,
}

impl Rules for LogRules {
    fn fits(&self, record: &Record, at: u64) -> Option<bool> {
        fits(record, at, self.last)
    }

    fn kept(&mut self, record: &Record) {
        if !matches!(record.body, Body::Mark(_)) {
            self.last = record.seq;
        }
    }

    fn wanted(&self, kind: u8, seq: u64) -> bool {
        kind == 3 || seq > self.last
    }

    fn zeros_may_end(&self) -> bool {
        true
    }

    fn reason(&self, record: Option<&Record>, fault: String) -> String {
        match record {
            Some(r) => format!("a record that does not fit here (seq {})", r.seq),
            None => fault,
        }
    }
}

/// Walks the log, reporting every record kept and every damaged region, in file order. Returns
/// the file's length and the end of its last byte that is not reserved zeros.
fn walk(
    path: &Path,
    header: Header,
    base: u64,
    on: impl FnMut(Event) -> Result<(), Error>,
) -> Result<(u64, u64), Error> {
    walk_by(path, header, &mut LogRules { last: base }, on)
}

/// Walks the file at `path` by `rules`: every record kept and every damaged region, in file
/// order. Returns the file's length and the end of its last byte that is not reserved zeros.
pub(super) fn walk_by(
    path: &Path,
    header: Header,
    rules: &mut impl Rules,
    mut on: impl FnMut(Event) -> Result<(), Error>,
) -> Result<(u64, u64), Error> {
    let read_err = |e| Error::io(format!("read {}", path.display()), e);
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut window = Window::new(file, 0);
    let seed = header.seed();
    let (mut at, mut data_end) = (header.size() as u64, header.size() as u64);
    loop {
        let buf = window.fill(at, MAX_RECORD_LEN).map_err(read_err)?;
        if buf.is_empty() {
            return Ok((at, data_end));
        }
        let reason = match decode(buf, seed) {
            Decoded::Record(record, len) => match rules.fits(&record, at) {
                Some(chained) => {
                    rules.kept(&record);
                    on(Event::Keep { at, record, len, chained })?;
                    at += len as u64;
                    data_end = at;
                    continue;
                }
                None => rules.reason(Some(&record), String::new()),
            },
            Decoded::Incomplete(_) => {
                rules.reason(None, "the file ends in the middle of a record".to_string())
            }
            Decoded::Damaged(fault, _) => rules.reason(None, fault.to_string()),
        };
        let (next, end) = resync(
            &mut window,
            at,
            seed,
            |kind, seq| rules.wanted(kind, seq),
            |r, q| rules.fits(r, q).is_some(),
        )
        .map_err(read_err)?;
        let region_end = match next {
            Some(q) => q,
            None if end.1 <= at && rules.zeros_may_end() => return Ok((end.0, data_end)),
            None => end.0,
        };
        on(Event::Damage { at, len: region_end - at, reason })?;
        data_end = next.map_or(end.1, |q| q.max(data_end));
        match next {
            Some(q) => at = q,
            None => return Ok((end.0, data_end)),
        }
    }
}

/// Finds the first place after damage at `at` where a record that `fits` starts (any byte: the
/// damaged record's own length may be what is damaged). Returns it (or `None`) and (the
/// file's length, the end of its last non-zero byte) when the search ran to the end. `wanted`
/// says from a record's type and sequence number alone whether its checksum is worth
/// computing.
///
/// Nothing inside a damaged record can pass for a record that fits: the checksum is seeded
/// with this file's id, and a value holding a copy of this very log holds only sequence
/// numbers older than its own record's.
fn resync(
    window: &mut Window,
    at: u64,
    seed: Seed,
    wanted: impl Fn(u8, u64) -> bool,
    fits: impl Fn(&Record, u64) -> bool,
) -> io::Result<(Option<u64>, (u64, u64))> {
    let mut nonzero_end = at;
    let mut p = at;
    loop {
        let (buf, eof) = window.fill_to_end(p, MAX_RECORD_LEN + (1 << 20))?;
        let steps = if eof { buf.len() } else { buf.len() - MAX_RECORD_LEN };
        for i in 0..steps {
            let q = p + i as u64;
            if buf[i] != 0 {
                nonzero_end = q + 1;
            }
            // No checksum for what cannot fit: a type that is not a known one, or one `wanted`
            // rules out (for a log: a number not above the last one kept; markers, which
            // repeat the last number, are short and always looked at).
            match peek(&buf[i..]) {
                Some((kind, seq)) if q != at && wanted(kind, seq) => {}
                _ => continue,
            }
            if let Decoded::Record(r, _) = decode(&buf[i..], seed)
                && fits(&r, q)
            {
                return Ok((Some(q), (0, 0)));
            }
        }
        p += steps as u64;
        if eof {
            return Ok((None, (p, nonzero_end)));
        }
    }
}

/// Linear counting of distinct keys in a 1 MiB bitmap (Whang et al., 1990): enough for an
/// estimate within about 1% up to several million keys, in bounded memory.
struct KeyCount(Vec<u64>);

impl KeyCount {
    const BITS: u64 = 1 << 23;

    fn new() -> KeyCount {
        KeyCount(vec![0; (Self::BITS / 64) as usize])
    }

    fn add(&mut self, key: &[u8]) {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let bit = h.finish() % Self::BITS;
        self.0[(bit / 64) as usize] |= 1 << (bit % 64);
    }

    fn estimate(&self) -> u64 {
        let zeros: u64 = self.0.iter().map(|w| u64::from(w.count_zeros())).sum();
        let m = Self::BITS as f64;
        (-m * (zeros.max(1) as f64 / m).ln()).round() as u64
    }
}

/// Builds the plan for the log at `path`. Reads only.
pub fn plan(path: &Path) -> Result<Plan, Error> {
    plan_segment(path, 0, None)
}

/// [`plan`] for a segment whose first record follows seq `base`, which must end at `ceiling`
/// if it is sealed.
pub fn plan_segment(path: &Path, base: u64, ceiling: Option<u64>) -> Result<Plan, Error> {
    let (header, header_fixed) = header_of(path)?;
    let mut plan = Plan {
        path: path.to_path_buf(),
        header,
        base,
        ceiling,
        header_fixed,
        file_len: 0,
        prefix: Run::default(),
        prefix_seq: base,
        first_damage: None,
        damage: Damage::default(),
        after: Run::default(),
        keys_after: 0,
        missing: Vec::new(),
        missing_count: 0,
        max_seq: 0,
        data_end: 0,
    };
    let mut keys = KeyCount::new();
    let mut last = base;
    let (file_len, data_end) = walk(path, header, base, |event| {
        match event {
            Event::Keep { at, record, chained, .. } => {
                if !chained {
                    plan.first_damage.get_or_insert(at);
                }
                let seq = record.seq;
                if let Body::Mark(_) = record.body {
                    return Ok(());
                }
                if !chained && !matches!(record.body, Body::Gap { .. }) {
                    let range = (last + 1, seq - 1);
                    plan.missing_count += range.1 - range.0 + 1;
                    if plan.missing.len() < LISTED {
                        plan.missing.push(range);
                    }
                }
                if let Body::Set { key, .. } | Body::Delete { key } = record.body {
                    if plan.first_damage.is_none() {
                        plan.prefix.add(seq);
                    } else {
                        plan.after.add(seq);
                        keys.add(key);
                    }
                }
                if plan.first_damage.is_none() {
                    plan.prefix_seq = seq;
                }
                last = seq;
                plan.max_seq = plan.max_seq.max(seq);
            }
            Event::Damage { at, len, reason } => {
                // The damaged bytes may have held the next record: its number is never reused.
                plan.max_seq = plan.max_seq.max(last.saturating_add(1));
                plan.first_damage.get_or_insert(at);
                plan.damage.add(at, len, reason);
            }
        }
        Ok(())
    })?;
    plan.file_len = file_len;
    plan.data_end = data_end;
    if let Some(end) = ceiling
        && last < end
        && plan.first_damage.is_none()
    {
        // A sealed segment that ends early: the writes up to the next segment are missing.
        plan.first_damage = Some(data_end);
        plan.missing_count += end - last;
        plan.missing.push((last + 1, end));
    }
    plan.max_seq = match ceiling {
        Some(end) => end, // numbers past it belong to the next segment
        None => plan.max_seq.max(base),
    };
    plan.keys_after = if plan.after.records == 0 { 0 } else { keys.estimate() };
    Ok(plan)
}

/// Carries out `choice` as planned. The caller holds the data directory's lock, so the file is
/// the one the plan was made from.
pub fn repair(plan: &Plan, choice: Choice, boot: record::BootId) -> Result<Done, Error> {
    if plan.is_clean() {
        return Ok(Done { kept: plan.prefix.records, side_file: None, last_seq: plan.max_seq });
    }
    if choice == Choice::Cut && plan.header.version != VERSION_1 && plan.header_fixed.is_none() {
        return cut_in_place(plan);
    }
    rewrite_log(plan, choice, boot)
}

/// Writes the records the choice keeps into a new log and commits it; the dropped bytes go to a
/// side file first.
fn rewrite_log(plan: &Plan, choice: Choice, boot: record::BootId) -> Result<Done, Error> {
    let path = &plan.path;
    let log_id = match plan.header.version {
        VERSION_1 => rewrite::new_log_id(),
        _ => plan.header.log_id,
    };
    let mut out = Rewrite::begin(path, log_id)?;
    out.last_seq = plan.base;
    let src = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut side = Dropped::new(path);
    let mut kept = 0;
    let cut_at = plan.first_damage.unwrap_or(u64::MAX);
    walk(path, plan.header, plan.base, |event| {
        match event {
            Event::Keep { at, record, .. } if choice == Choice::SkipDamaged || at < cut_at => {
                kept += u64::from(record.is_data());
                copy_record(&mut out, &record)?;
            }
            Event::Damage { at, len, .. } if choice == Choice::SkipDamaged => {
                side.keep(&src, at, len)?;
            }
            _ => {}
        }
        Ok(())
    })?;
    let side_file = side.finish(choice, cut_at, plan.data_end)?;
    if plan.max_seq > out.last_seq {
        out.gap(plan.max_seq)?;
    }
    let last_seq = out.last_seq;
    out.commit(Some((boot, MarkKind::Repair, None)))?;
    Ok(Done { kept, side_file, last_seq })
}

/// The side file of what a repair drops, created when the first bytes are dropped.
pub(super) struct Dropped<'a> {
    path: &'a Path,
    stem: String,
    side: Option<(File, PathBuf)>,
}

impl<'a> Dropped<'a> {
    /// For a repair of the file at `path`: the side file is `NAME.skipped-TIME`.
    pub(super) fn new(path: &'a Path) -> Dropped<'a> {
        Dropped { path, stem: format!("skipped-{}", unix_seconds()), side: None }
    }

    /// Keeps the `len` damaged bytes at `at` of `src` as one frame: `offset: u64 LE | length:
    /// u64 LE | the bytes`.
    pub(super) fn keep(&mut self, src: &File, at: u64, len: u64) -> Result<(), Error> {
        if self.side.is_none() {
            self.side = Some(create_side_file(self.path, &self.stem)?);
        }
        let (file, p) = self.side.as_mut().expect("created above");
        let mut frame = at.to_le_bytes().to_vec();
        frame.extend_from_slice(&len.to_le_bytes());
        file.write_all(&frame)
            .and_then(|_| copy_range(src, at, at + len, file).map(drop))
            .map_err(|e| Error::io(format!("write {}", p.display()), e))
    }

    /// Makes the side file durable (with `--cut`: first copies the bytes from `cut_at` to
    /// `data_end` into `NAME.cut-OFFSET-TIME`); returns its path, if anything was dropped.
    pub(super) fn finish(
        self,
        choice: Choice,
        cut_at: u64,
        data_end: u64,
    ) -> Result<Option<PathBuf>, Error> {
        match self.side {
            Some((file, p)) => {
                file.sync_all().map_err(|e| Error::io(format!("fsync {}", p.display()), e))?;
                sync_dir(crate::wal::files::dir_of(self.path))?;
                Ok(Some(p))
            }
            None if choice == Choice::Cut && cut_at < data_end => {
                let stem = format!("cut-{cut_at}-{}", unix_seconds());
                Ok(Some(save_side_file(self.path, &stem, cut_at, data_end)?))
            }
            None => Ok(None),
        }
    }
}

/// Writes one kept record into the new log, with a GAP before it if numbers are missing.
fn copy_record(out: &mut Rewrite, record: &Record) -> Result<(), Error> {
    let seq = record.seq;
    match record.body {
        Body::Set { .. } | Body::Delete { .. } | Body::Expire { .. } | Body::Txn(_) => {
            gap_before(out, seq)?;
            out.data(seq, &record.body)
        }
        Body::Gap { .. } if seq > out.last_seq => out.gap(seq),
        Body::Gap { .. } | Body::Mark(_) => Ok(()),
    }
}

/// Writes a GAP record before `seq` if the numbers before it are missing.
fn gap_before(out: &mut Rewrite, seq: u64) -> Result<(), Error> {
    if seq > out.last_seq + 1 {
        out.gap(seq - 1)?;
    }
    Ok(())
}

/// `--cut` on a format 2 log: keep the bytes from the first damage in a side file, truncate the
/// log there, and record the sequence numbers it held as skipped, with the truncation, in one
/// fsync.
fn cut_in_place(plan: &Plan) -> Result<Done, Error> {
    let path = &plan.path;
    let cut_at = plan.first_damage.expect("a plan that is not clean has a damage point");
    let stem = format!("cut-{cut_at}-{}", unix_seconds());
    let side = save_side_file(path, &stem, cut_at, plan.data_end.max(cut_at))?;
    let err = |what: &str| {
        let action = format!("{what} {}", path.display());
        move |e| Error::io(action, e)
    };
    let file = OpenOptions::new().write(true).open(path).map_err(err("open"))?;
    file.set_len(cut_at).map_err(err("truncate"))?;
    let mut last_seq = plan.prefix_seq;
    if plan.max_seq > last_seq {
        let mut gap = Vec::new();
        record::encode_gap(&mut gap, plan.header.seed(), last_seq + 1, plan.max_seq);
        std::os::unix::fs::FileExt::write_all_at(&file, &gap, cut_at).map_err(err("write"))?;
        last_seq = plan.max_seq;
    }
    file.sync_all().map_err(err("fsync"))?;
    Ok(Done { kept: plan.prefix.records, side_file: Some(side), last_seq })
}
