//! Simulated power cuts: what a file system that keeps only what was fsynced would leave.
//!
//! A power cut keeps every byte of a file up to its last fsync and an arbitrary part of what was
//! not: the page cache writes dirty pages back in any order, so any subset of the unsynced 4 KiB
//! pages may have reached the disk, and each one that did not holds zeros or garbage (sometimes
//! the file is also cut short at a page boundary, as if its new length had not reached the
//! disk). Directory entries follow the POSIX rule: a create, rename or remove is only sure to
//! survive once its directory has been fsynced after it; of those that were not, any subset
//! survives (applied in the order they were made; a rename of a name that did not survive is
//! lost with it). No order between entry changes is assumed.
//!
//! [`power_cut`] replays the real binary's file-system trace (`WALKV_FS_TRACE`, with removed
//! files kept in `WALKV_FS_GRAVEYARD`; see `src/failpoint.rs`) over the directory's state before
//! the server started, and rewrites the directory as the power cut would have left it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use walkv::testutil::Rng;

pub const PAGE: usize = 4096;

/// Keeps every byte below `synced_len`; keeps, zeroes or garbles each 4 KiB page after it (only
/// its unsynced bytes); sometimes cuts the file at a page boundary after `synced_len`.
pub fn simulate_power_cut(wal: &Path, synced_len: u64, rng: &mut Rng) -> String {
    let mut bytes = std::fs::read(wal).unwrap();
    let how = damage_unsynced(&mut bytes, synced_len, rng);
    std::fs::write(wal, &bytes).unwrap();
    format!("{how} (synced {synced_len} of {} bytes)", bytes.len())
}

/// The page damage of [`simulate_power_cut`], in memory.
pub fn damage_unsynced(bytes: &mut Vec<u8>, synced_len: u64, rng: &mut Rng) -> String {
    let synced = (synced_len as usize).min(bytes.len());
    let (mut kept, mut zeroed, mut garbled) = (0, 0, 0);
    let mut page = synced / PAGE * PAGE;
    while page < bytes.len() {
        let (from, to) = (page.max(synced), (page + PAGE).min(bytes.len()));
        match rng.below(4) {
            0 | 1 => kept += 1,
            2 => {
                bytes[from..to].fill(0);
                zeroed += 1;
            }
            _ => {
                let noise = rng.bytes(to - from);
                bytes[from..to].copy_from_slice(&noise);
                garbled += 1;
            }
        }
        page += PAGE;
    }
    let mut how = format!("{kept} unsynced pages kept, {zeroed} zeroed, {garbled} garbled");
    if rng.below(4) == 0 && bytes.len() > synced {
        let pages = (bytes.len() - synced).div_ceil(PAGE);
        let cut = (synced + rng.below(pages) * PAGE).max(synced);
        bytes.truncate(cut);
        how += &format!(", cut to {cut} bytes");
    }
    how
}

/// The names and lengths of the files in `dir`: its state before a traced server starts (every
/// one of them taken to be durable: the previous server stopped cleanly).
pub fn files_of(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| (e.file_name().to_string_lossy().into_owned(), meta.len()))
        })
        .collect();
    files.sort();
    files
}

/// A file, wherever its bytes are now (its current name, a grave), and how much of it is durable.
struct Inode {
    at: Option<PathBuf>,
    durable: u64,
}

enum Change {
    Create(String, usize),
    Rename(String, String),
    Remove(String),
}

/// Rewrites `dir` as a power cut at the end of `trace` would have left it, given the files it
/// held (durably) before: see the module doc. Returns a description for failure messages.
pub fn power_cut(
    dir: &Path,
    before: &[(String, u64)],
    trace: &[Vec<String>],
    rng: &mut Rng,
) -> String {
    let mut inodes: Vec<Inode> = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (name, len) in before {
        inodes.push(Inode { at: Some(dir.join(name)), durable: *len });
        names.insert(name.clone(), inodes.len() - 1);
    }
    let mut durable = names.clone();
    let mut pending: Vec<Change> = Vec::new();
    let here = |p: &str| {
        let p = Path::new(p);
        (p.parent() == Some(dir)).then(|| p.file_name().unwrap().to_string_lossy().into_owned())
    };
    for line in trace {
        let words: Vec<&str> = line.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["create", p] => {
                if let Some(name) = here(p) {
                    inodes.push(Inode { at: Some(PathBuf::from(p)), durable: 0 });
                    names.insert(name.clone(), inodes.len() - 1);
                    pending.push(Change::Create(name, inodes.len() - 1));
                }
            }
            ["rename", a, b] => {
                if let (Some(from), Some(to)) = (here(a), here(b)) {
                    let ino =
                        names.remove(&from).unwrap_or_else(|| panic!("rename of unknown {a}"));
                    inodes[ino].at = Some(PathBuf::from(b));
                    names.insert(to.clone(), ino);
                    pending.push(Change::Rename(from, to));
                }
            }
            ["remove", p, rest @ ..] => {
                if let Some(name) = here(p) {
                    let ino =
                        names.remove(&name).unwrap_or_else(|| panic!("remove of unknown {p}"));
                    inodes[ino].at = rest.first().map(PathBuf::from);
                    pending.push(Change::Remove(name));
                }
            }
            ["fsync", p, len] => {
                if let Some(name) = here(p) {
                    let ino = *names.get(&name).unwrap_or_else(|| panic!("fsync of unknown {p}"));
                    inodes[ino].durable = len.parse().unwrap();
                }
            }
            ["fsyncdir", d] if Path::new(d) == dir => {
                durable = names.clone();
                pending.clear();
            }
            ["fsyncdir", _] | ["mkdir", _] => {}
            other => panic!("unknown fs trace line {other:?}"),
        }
    }
    // Of the entry changes not covered by a directory fsync, any subset survives.
    let kept: Vec<&Change> = pending.iter().filter(|_| rng.below(2) == 0).collect();
    let survive = kept.len();
    let mut after = durable;
    for change in kept {
        match change {
            Change::Create(name, ino) => {
                after.insert(name.clone(), *ino);
            }
            Change::Rename(from, to) => {
                if let Some(ino) = after.remove(from) {
                    after.insert(to.clone(), ino);
                }
            }
            Change::Remove(name) => {
                after.remove(name);
            }
        }
    }
    let mut contents = Vec::new();
    let mut how = vec![format!("{survive} of {} unsynced entry changes kept", pending.len())];
    for (name, &ino) in &after {
        let inode = &inodes[ino];
        let at = inode.at.as_ref().unwrap_or_else(|| panic!("{name} was removed without a grave"));
        let mut bytes = std::fs::read(at).unwrap_or_else(|e| panic!("read {}: {e}", at.display()));
        let damage = damage_unsynced(&mut bytes, inode.durable, rng);
        how.push(format!("{name}: {damage} (durable {} of {})", inode.durable, bytes.len()));
        contents.push((name.clone(), bytes));
    }
    for name in names.keys() {
        let _ = std::fs::remove_file(dir.join(name));
    }
    for (name, bytes) in contents {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    how.join("; ")
}
