//! Opening a data directory: replay across the snapshot and the segments, the recovery rules
//! between files, the upgrade from the one-file layout, and the removal of leftovers.
//!
//! The rules it applies are specified in `docs/data-directory.md` (*Backups, versions and what
//! startup checks*): the snapshot with the highest number is in charge and must load completely;
//! the segments after it must form a chain; every segment but the newest is sealed and must read
//! to a clean end; only the newest is judged by the single-log rules of `docs/recovery.md`.
//! Leftovers (older snapshots, covered segments, `NAME.new` files) are removed only once
//! everything else has been read and found good, so that a refused start changes nothing.

use crate::error::Error;
use crate::wal::files::{self, FILE_NAME, sync_dir};
use crate::wal::log::{Options, Recovery, Wal};
use crate::wal::record::{self, LAYOUT_VERSION, Record, encode_header_version, is_marker_version};
use crate::wal::rewrite::{Rewrite, new_log_id};
use crate::wal::scan::{self, Judge, Tail, read_header};
use layout::{Layout, Sealed, Snapshot};
use std::path::{Path, PathBuf};

pub mod compact;
pub mod history;
pub mod layout;
pub mod lock;
pub mod snapshot;
pub mod view;

/// What opening a data directory found and did, beyond what the newest segment's open did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The snapshot replayed, and how many keys it held.
    pub snapshot: Option<(u64, u64)>,
    /// Segments replayed (the newest included).
    pub segments: usize,
    /// A one-file `walkv.wal` became the first segment.
    pub converted: bool,
    /// Leftovers removed.
    pub removed: Vec<PathBuf>,
}

/// Opens the log in `dir` (which must exist), replaying every record into `visit`: the snapshot
/// in charge, then each segment in order. Returns the open newest segment, the files before it,
/// and what was done.
pub fn open(
    dir: &Path,
    options: Options,
    mut visit: impl FnMut(&Record),
) -> Result<(Wal, Layout, Recovery, Opened), Error> {
    let marker = dir.join(FILE_NAME);
    files::remove_leftover(&marker)?;
    let listing = layout::list(dir)?;
    if !listing.is_segmented() {
        return open_one_file(dir, options, visit);
    }
    let mut removed = listing.unfinished.clone();
    let (snapshot, keys) = match listing.snapshots.last() {
        Some(&upto) => {
            let path = dir.join(layout::snapshot_name(upto));
            let contents = snapshot::load(&path, upto, &mut visit)?;
            let bytes = contents.file_bytes;
            (Some(Snapshot { path, upto, bytes }), contents.keys)
        }
        None => (None, 0),
    };
    let upto = snapshot.as_ref().map_or(0, |s| s.upto);
    for &older in listing.snapshots.iter().filter(|&&n| n < upto) {
        removed.push(dir.join(layout::snapshot_name(older)));
    }
    let (covered, chain) = split_covered(&listing.segments, upto);
    removed.extend(covered.iter().map(|&n| dir.join(layout::segment_name(n))));
    if !covered.is_empty() {
        // A compaction stopped before it renamed these into history: the history files before
        // them would now end in a hole, and the change feed must never skip a change.
        removed.extend(listing.history.iter().map(|&n| dir.join(layout::history_name(n))));
    }
    let Some((&newest, sealed_numbers)) = chain.split_last() else {
        return Err(missing(dir, upto + 1, "no segment holds the writes after the snapshot"));
    };
    let mut sealed = Vec::new();
    let mut next = upto + 1;
    let mut records = keys;
    for &first in sealed_numbers {
        let (segment, n) = replay_sealed(dir, first, next, options, &mut visit)?;
        next = segment.last + 1;
        records += n;
        sealed.push(segment);
    }
    if newest != next {
        return Err(missing(dir, next, &format!("the next segment starts at seq {newest}")));
    }
    let path = dir.join(layout::segment_name(newest));
    let (mut wal, mut recovery) = Wal::open_after(&path, newest - 1, options, &mut visit)?;
    recovery.records += records;
    let segments = sealed.len() + 1;
    let mut layout = Layout { snapshot, sealed };
    seal_older_format(&mut wal, &mut layout)?;
    let marker_version = match listing.marker {
        true => read_header(&marker)?.map(|h| h.version),
        false => None,
    };
    if marker_version != Some(LAYOUT_VERSION) {
        write_marker(dir)?;
    }
    remove_all(dir, &removed)?;
    let opened = Opened {
        snapshot: layout.snapshot.as_ref().map(|s| (s.upto, keys)),
        segments,
        converted: false,
        removed,
    };
    Ok((wal, layout, recovery, opened))
}

/// Seals the segment `wal` is appending to, and goes on in a new one named for the next seq
/// (see [`layout`]): a compaction's first step, and the upgrade of a segment of format 2.
pub fn seal(wal: &mut Wal) -> Result<Sealed, Error> {
    let next = wal.path().with_file_name(layout::segment_name(wal.next_seq()));
    wal.rotate(next)
}

/// A newest segment of an older format (2) cannot take the newer record types: seal it (it
/// becomes one of the layout's sealed segments) and go on in a new segment of this format. One
/// that holds no write is replaced instead, since the new segment takes its name.
fn seal_older_format(wal: &mut Wal, layout: &mut Layout) -> Result<(), Error> {
    if wal.version() == record::VERSION {
        return Ok(());
    }
    let empty = wal.holds_no_writes();
    let sealed = seal(wal)?;
    if !empty {
        layout.sealed.push(sealed);
    }
    Ok(())
}

/// What one file of a segmented data directory is, for `walkv check` and `walkv repair`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// The snapshot in charge.
    Snapshot { upto: u64 },
    /// A segment that must read to a clean end at `ceiling` (the next one's number minus one).
    Sealed { first: u64, ceiling: u64 },
    /// The segment being written.
    Newest { first: u64 },
    /// A file the next start removes (an older snapshot, a covered segment, a `.new`).
    Leftover,
    /// A segment that is not there but must be: the first after the snapshot, whose writes
    /// run up to the next segment's first (`next`; `None` if no segment follows).
    Missing { first: u64, next: Option<u64> },
}

/// The files of the segmented directory `dir`, in replay order (leftovers first), judged by
/// their names only. A segment missing before the first one found is listed as
/// [`Part::Missing`] (one missing later is found by reading: the segment before it ends early).
pub fn parts(dir: &Path) -> Result<Vec<(PathBuf, Part)>, Error> {
    let listing = layout::list(dir)?;
    let mut parts: Vec<(PathBuf, Part)> =
        listing.unfinished.iter().map(|p| (p.clone(), Part::Leftover)).collect();
    let upto = listing.snapshots.last().copied().unwrap_or(0);
    for &n in &listing.snapshots {
        let part = if n == upto { Part::Snapshot { upto } } else { Part::Leftover };
        parts.push((dir.join(layout::snapshot_name(n)), part));
    }
    let (covered, chain) = split_covered(&listing.segments, upto);
    parts.extend(covered.iter().map(|&n| (dir.join(layout::segment_name(n)), Part::Leftover)));
    if chain.first() != Some(&(upto + 1)) {
        let part = Part::Missing { first: upto + 1, next: chain.first().copied() };
        parts.push((dir.join(layout::segment_name(upto + 1)), part));
    }
    for pair in chain.windows(2) {
        let part = Part::Sealed { first: pair[0], ceiling: pair[1] - 1 };
        parts.push((dir.join(layout::segment_name(pair[0])), part));
    }
    if let Some(&newest) = chain.last() {
        parts.push((dir.join(layout::segment_name(newest)), Part::Newest { first: newest }));
    }
    Ok(parts)
}

/// Splits segment numbers into those the snapshot up to `upto` covers and the rest.
fn split_covered(segments: &[u64], upto: u64) -> (Vec<u64>, Vec<u64>) {
    let cut = segments.windows(2).take_while(|w| w[1] <= upto + 1).count();
    (segments[..cut].to_vec(), segments[cut..].to_vec())
}

fn missing(dir: &Path, first: u64, detail: &str) -> Error {
    let name = layout::segment_name(first);
    Error::Damaged {
        path: dir.join(&name),
        reason: format!(
            "this segment, which must hold the writes from seq {first} on, is missing \
             ({detail}): those writes are in no file"
        ),
    }
}

/// Replays a sealed segment, which must start at `expected` and read to a clean end. Returns it
/// and how many SET and DELETE records it held.
fn replay_sealed(
    dir: &Path,
    first: u64,
    expected: u64,
    options: Options,
    visit: &mut impl FnMut(&Record),
) -> Result<(Sealed, u64), Error> {
    if first != expected {
        let detail = format!("the next segment starts at seq {first}");
        return Err(missing(dir, expected, &detail));
    }
    let path = dir.join(layout::segment_name(first));
    let judge = Judge::Stopped { boot: options.boot };
    let scan = scan::scan_after(&path, judge, first - 1, visit)?;
    if !matches!(scan.tail, Tail::Clean | Tail::Reserved) {
        let reason = format!(
            "{}. Only the newest segment may end in a torn record; this one was sealed (fsynced) \
             before the next one was created, so this is damage to data that was on disk",
            scan.explain().trim_end_matches('.')
        );
        return Err(Error::Corrupt { path, offset: scan.end, reason });
    }
    Ok((Sealed { path, first, last: scan.last_seq, bytes: scan.end }, scan.records))
}

/// A directory with no segment and no snapshot: new, or in the one-file layout (one
/// `walkv.wal`), which becomes the first segment.
fn open_one_file(
    dir: &Path,
    options: Options,
    visit: impl FnMut(&Record),
) -> Result<(Wal, Layout, Recovery, Opened), Error> {
    let marker = dir.join(FILE_NAME);
    let first = dir.join(layout::segment_name(1));
    let header = match marker.exists() {
        true => read_header(&marker)?,
        false => None,
    };
    match header {
        Some(h) if is_marker_version(h.version) => {
            Err(missing(dir, 1, "walkv.wal says this directory holds segments"))
        }
        Some(_) => {
            // Recover the one-file log in place, by its own rules, then make it the first segment.
            let (mut wal, recovery) = Wal::open(&marker, options, visit)?;
            files::rename(&marker, &first)?;
            sync_dir(dir)?;
            wal.renamed(&first);
            let mut layout = Layout::default();
            seal_older_format(&mut wal, &mut layout)?;
            write_marker(dir)?;
            let opened = Opened { snapshot: None, segments: 1, converted: true, removed: vec![] };
            Ok((wal, layout, recovery, opened))
        }
        None => {
            let (wal, recovery) = Wal::open(&first, options, visit)?;
            write_marker(dir)?;
            let opened = Opened { snapshot: None, segments: 1, converted: false, removed: vec![] };
            Ok((wal, Layout::default(), recovery, opened))
        }
    }
}

/// Writes `walkv.wal` as the layout marker (see [`LAYOUT_VERSION`]), by the replace-by-rename
/// protocol. Written after the first segment exists, so that a marker never stands alone.
fn write_marker(dir: &Path) -> Result<(), Error> {
    let marker = dir.join(FILE_NAME);
    let mut rewrite = Rewrite::begin_raw(&marker)?;
    rewrite.raw(&encode_header_version(LAYOUT_VERSION, new_log_id()))?;
    rewrite.commit(None)
}

/// Removes leftovers (already known to be redundant) and fsyncs the directory once.
fn remove_all(dir: &Path, paths: &[PathBuf]) -> Result<(), Error> {
    for path in paths {
        match files::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("remove the leftover {}", path.display()), e)),
        }
    }
    if !paths.is_empty() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::testutil::TempDir;
    use crate::wal::SyncMode;
    use std::fs;

    const OPTIONS: Options = Options { mode: SyncMode::Never, boot: [4; 16] };

    /// A directory with `snapshot-…10.snap` (k0..k9), a sealed `segment-…11.wal` (seqs 11..=20)
    /// and the newest `segment-…21.wal` (seqs 21..=25), as a server leaves it.
    fn layout_dir(name: &str) -> TempDir {
        let dir = TempDir::new(name);
        let (mut store, _) = Store::open(&dir, OPTIONS).unwrap();
        for i in 0..10 {
            store.set(format!("k{i}").as_bytes(), b"first").unwrap();
        }
        let job = store.seal_now(OPTIONS.boot).unwrap().unwrap();
        store.finish_compaction(&crate::wal::compact::run(&job).unwrap());
        for i in 0..10 {
            store.set(format!("k{i}").as_bytes(), b"second").unwrap();
        }
        store.seal_now(OPTIONS.boot).unwrap(); // seals 11..=20; merged by no one
        for i in 0..5 {
            store.set(format!("k{i}").as_bytes(), b"third").unwrap();
        }
        store.close().unwrap();
        dir
    }

    fn file(dir: &Path, name: &str) -> PathBuf {
        dir.join(name)
    }

    fn refusal(dir: &Path) -> String {
        match Store::open(dir, OPTIONS) {
            Ok(_) => panic!("opened"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_says(message: &str, parts: &[&str]) {
        for part in parts {
            assert!(message.contains(part), "{part:?} not in: {message}");
        }
    }

    #[test]
    fn the_layout_replays_in_order() {
        let dir = layout_dir("layout-ok");
        let names = layout::list(&dir).unwrap();
        assert_eq!((names.snapshots, names.segments), (vec![10], vec![11, 21]));
        let (store, rec) = Store::open(&dir, OPTIONS).unwrap();
        assert_eq!(rec.last_seq, 25);
        assert_eq!(store.get(b"k0"), Some(&b"third"[..]));
        assert_eq!(store.get(b"k9"), Some(&b"second"[..]));
    }

    /// Each broken layout is refused with a message naming the file, where, and what to do;
    /// nothing in the directory is changed.
    #[test]
    fn broken_layouts_are_refused_with_the_file_the_offset_and_the_way_out() {
        let seg11 = layout::segment_name(11);
        let snap = layout::snapshot_name(10);
        type Case = (&'static str, Box<dyn Fn(&Path)>, Vec<String>);
        let cases: Vec<Case> = vec![
            (
                "a missing segment in the middle",
                Box::new(|d: &Path| fs::remove_file(file(d, &layout::segment_name(11))).unwrap()),
                vec![
                    format!(
                        "{seg11}: this segment, which must hold the writes from seq 11 on, is \
                         missing (the next segment starts at seq 21)"
                    ),
                    "Restoring the file from a backup loses nothing; without one, `walkv repair --dry-run".into(),
                ],
            ),
            (
                "a sealed segment that ends early (a gap before the next one)",
                Box::new(|d: &Path| {
                    let p = file(d, &layout::segment_name(11));
                    let records =
                        crate::wal::scan::scan_after(&p, Judge::Live, 10, |_| {}).unwrap();
                    // Cut the last record off exactly at its start: a clean end, one write short.
                    let bytes = fs::read(&p).unwrap();
                    let last = 21 + 2 + 6; // "k9" = "second"
                    fs::write(&p, &bytes[..records.end as usize - last]).unwrap();
                }),
                vec![format!(
                    "{}: this segment, which must hold the writes from seq 20 on, is missing (the \
                     next segment starts at seq 21)",
                    layout::segment_name(20)
                )],
            ),
            (
                "damage inside a sealed segment",
                Box::new(|d: &Path| {
                    let p = file(d, &layout::segment_name(11));
                    let mut bytes = fs::read(&p).unwrap();
                    bytes[100] ^= 0x01;
                    fs::write(&p, bytes).unwrap();
                }),
                vec![
                    format!("{seg11} is damaged at byte offset 100: "),
                    "Only the newest segment may end in a torn record".into(),
                    "walkv repair --dry-run --data-dir".into(),
                ],
            ),
            (
                "a torn end of a sealed segment",
                Box::new(|d: &Path| {
                    let p = file(d, &layout::segment_name(11));
                    let bytes = fs::read(&p).unwrap();
                    fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
                }),
                vec![
                    format!("{seg11} is damaged at byte offset"),
                    "sealed (fsynced)".into(),
                    "walkv repair --dry-run --data-dir".into(),
                ],
            ),
            (
                "a damaged snapshot",
                Box::new(|d: &Path| {
                    let p = file(d, &layout::snapshot_name(10));
                    let mut bytes = fs::read(&p).unwrap();
                    bytes[50] ^= 0x01; // in the first value
                    fs::write(&p, bytes).unwrap();
                }),
                vec![
                    format!(
                        "{snap}: this snapshot is damaged at byte offset 24 (checksum mismatch"
                    ),
                    "Restoring the file from a backup loses nothing; without one, `walkv repair --dry-run".into(),
                ],
            ),
            (
                "a snapshot that is not the one its name says",
                Box::new(|d: &Path| {
                    fs::rename(
                        file(d, &layout::snapshot_name(10)),
                        file(d, &layout::snapshot_name(9)),
                    )
                    .unwrap()
                }),
                vec![
                    format!(
                        "{}: this snapshot is damaged at byte offset",
                        layout::snapshot_name(9)
                    ),
                    "in a snapshot up to seq 9".into(),
                ],
            ),
            (
                "a snapshot ahead of every segment",
                Box::new(|d: &Path| {
                    fs::copy(
                        file(d, &layout::snapshot_name(10)),
                        file(d, &layout::snapshot_name(30)),
                    )
                    .unwrap();
                }),
                vec![format!("{}: this snapshot is damaged", layout::snapshot_name(30))],
            ),
            (
                "the marker alone",
                Box::new(|d: &Path| {
                    for n in [
                        layout::segment_name(11),
                        layout::segment_name(21),
                        layout::snapshot_name(10),
                    ] {
                        fs::remove_file(file(d, &n)).unwrap();
                    }
                }),
                vec![format!(
                    "{}: this segment, which must hold the writes from seq 1 on, is missing \
                     (walkv.wal says this directory holds segments)",
                    layout::segment_name(1)
                )],
            ),
        ];
        for (what, break_it, parts) in cases {
            let dir = layout_dir("layout-broken");
            break_it(&dir);
            let before = layout::list(&dir).unwrap();
            let message = refusal(&dir);
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            assert_says(&message, &parts);
            assert_eq!(layout::list(&dir).unwrap(), before, "{what}: changed the directory");
        }
    }

    /// Leftovers of an interrupted compaction: an older snapshot, covered segments, `.new`
    /// files and the history files the covered segments would have continued are removed once
    /// the rest has been read; the state is the newest snapshot's.
    #[test]
    fn leftovers_of_an_interrupted_compaction_are_removed() {
        let dir = layout_dir("layout-leftovers");
        let (mut store, _) = Store::open(&dir, OPTIONS).unwrap();
        let job = store.seal_now(OPTIONS.boot).unwrap().unwrap();
        drop(store);
        // The commit of snapshot 25 happened; its garbage collection did not.
        let contents = {
            let mut w = crate::wal::snapshot::Writer::create(
                &dir.join(layout::snapshot_name(job.upto)),
                job.upto,
            )
            .unwrap();
            let mut map = std::collections::BTreeMap::new();
            let (s, _) = Store::open(&TempDir::new("unused"), OPTIONS).unwrap();
            drop(s);
            for i in 0..10 {
                map.insert(format!("k{i}"), if i < 5 { "third" } else { "second" });
            }
            for (k, v) in &map {
                w.set(1, k.as_bytes(), v.as_bytes(), None).unwrap();
            }
            w.commit(OPTIONS.boot).unwrap()
        };
        assert_eq!(contents.keys, 10);
        fs::write(dir.join(format!("{}.new", layout::snapshot_name(40))), b"half").unwrap();
        // History kept by an earlier compaction: the covered segments would have continued it,
        // so it goes with them (a hole in history must never be served).
        fs::write(dir.join(layout::history_name(1)), b"history").unwrap();
        let (store, _, opened) = Store::open_dir(&dir, OPTIONS).unwrap();
        assert_eq!(opened.snapshot, Some((25, 10)));
        assert_eq!(opened.removed.len(), 5, "{:?}", opened.removed);
        let names = layout::list(&dir).unwrap();
        assert_eq!(
            (names.snapshots, names.segments.len(), names.unfinished.len(), names.history.len()),
            (vec![25], 1, 0, 0)
        );
        assert_eq!(store.get(b"k1"), Some(&b"third"[..]));
        assert_eq!(store.get(b"k8"), Some(&b"second"[..]));
    }

    #[test]
    fn covered_segments_are_those_the_snapshot_holds_whole() {
        assert_eq!(split_covered(&[1, 5, 9], 8), (vec![1, 5], vec![9]));
        assert_eq!(split_covered(&[1, 5, 9], 4), (vec![1], vec![5, 9]));
        assert_eq!(split_covered(&[1, 5, 9], 0), (vec![], vec![1, 5, 9]));
        assert_eq!(split_covered(&[9], 8), (vec![], vec![9]));
        assert_eq!(split_covered(&[], 8), (vec![], vec![]));
    }
}
