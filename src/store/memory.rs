//! What the store's data takes in memory, as walkv counts it, and the limit on it
//! (`--max-memory`): a write that would take the store past the limit is refused (507); reads,
//! `DELETE`s and compaction go on, so the operator can make room.
//!
//! **What is counted.** Each key costs its entry's allocation as glibc's `malloc` sizes it (the
//! bytes asked for plus 8, rounded up to 16, at least 32) and its share of the tree's nodes,
//! [`TREE_BYTES_PER_KEY`]; a write on its way to the log costs that too, and the bytes of its
//! record. Calibrated on 1M keys of 100-byte values (`benches/stall.py`, RSS 164.6 MiB, of which
//! 3 MiB is the idle process): 169 bytes per key, of which the entries are 128. The process
//! uses more than is counted here: connection threads and their buffers (bodies are bounded at
//! 64 MiB in all, see [`crate::intake`]), the allocator's fragmentation after many writes, and
//! a compaction's table (16 bytes per key written since the last one). That is why the default
//! limit is three quarters of the memory the process may use.
//!
//! **The default.** Three quarters of the memory the process may use: the cgroup's limit
//! (`memory.max` of cgroup v2, `memory.limit_in_bytes` of v1: a container's or a systemd unit's
//! `MemoryMax=`) when there is one, else the machine's (`MemTotal`). Without a limit, a store
//! that outgrows the memory is killed by the kernel's OOM killer (no acknowledged write is lost:
//! it is a `kill -9`), and restarting it fails the same way, since the replay needs as much
//! memory as before: the data is safe and unreachable until memory is added. With the limit,
//! writes get 507 first and everything else goes on.

use super::entry::Entry;
use crate::wal::RECORD_HEADER_LEN;

/// The tree's nodes per key: eleven 16-byte pointers a node, about two thirds full, and the
/// nodes above them (see the module's doc for the calibration).
pub const TREE_BYTES_PER_KEY: u64 = 40;

/// What the limit is when `--max-memory` does not say: this share of the memory available.
const DEFAULT_SHARE: (u64, u64) = (3, 4);

/// The bytes one key with a value of `value_len` bytes takes: its entry and its share of the
/// tree (see the module's doc).
pub fn entry_cost(key_len: usize, value_len: usize) -> u64 {
    let asked = (Entry::HEAD + key_len + value_len) as u64;
    (asked + 8).div_ceil(16).saturating_mul(16).max(32) + TREE_BYTES_PER_KEY
}

/// What `entry` takes in memory: its entry and share of the tree, and its place in the index of
/// expiring keys if it has an expiry (whose 8 bytes its entry holds).
pub(super) fn of_entry(entry: &Entry) -> u64 {
    let key_len = entry.key().len();
    let expiry = entry.expires().map_or(0, |_| 8);
    let index = entry.expires().map_or(0, |_| expiry_cost(key_len));
    entry_cost(key_len, entry.value().len() + expiry) + index
}

/// What a SET of a key with a value of `value_len` bytes costs while it is on its way to the
/// log and then in the map: its entry (with the 8 bytes of an expiry, if it `expires`), its
/// place in the index of expiring keys, and its record. What `--max-memory` checks a SET against.
pub fn set_cost(key_len: usize, value_len: usize, expires: bool) -> u64 {
    let expiry = if expires { 8 } else { 0 };
    let index = if expires { expiry_cost(key_len) } else { 0 };
    entry_cost(key_len, value_len + expiry)
        .saturating_add(record_cost(key_len, value_len + expiry))
        .saturating_add(index)
}

/// What a key's expiry costs beyond its entry's 8 bytes: its place in the index of expiring
/// keys (a copy of the key, and a tree node's share).
pub fn expiry_cost(key_len: usize) -> u64 {
    (key_len as u64 + 8).div_ceil(16) * 16 + 8 + TREE_BYTES_PER_KEY
}

/// The bytes of the record of a SET (with `value_len`) or a DELETE (`None`).
pub fn record_cost(key_len: usize, value_len: usize) -> u64 {
    (RECORD_HEADER_LEN + key_len + value_len) as u64
}

/// The default limit and where it comes from (for the startup line), or `None` if no memory
/// size could be read.
pub fn default_limit() -> Option<(u64, String)> {
    let (available, from) = match cgroup_limit() {
        Some(limit) => (limit, "the cgroup's memory limit"),
        None => (mem_total()?, "the machine's memory"),
    };
    let limit = available / DEFAULT_SHARE.1 * DEFAULT_SHARE.0;
    Some((limit, format!("three quarters of {from}, {}", crate::units::human(available))))
}

/// The cgroup's memory limit, if the process runs under one (cgroup v2, then v1).
fn cgroup_limit() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let cgroup = read("/proc/self/cgroup")?;
    for line in cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let file = match controllers {
            "" => format!("/sys/fs/cgroup{path}/memory.max"),
            c if c.split(',').any(|c| c == "memory") => {
                format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
            }
            _ => continue,
        };
        // "max" (v2) or a huge number (v1: no limit) mean none.
        if let Some(limit) = read(&file).and_then(|t| t.trim().parse::<u64>().ok())
            && limit < 1 << 60
        {
            return Some(limit);
        }
    }
    None
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry in the map costs what its SET was counted at, less the record it no longer needs.
    #[test]
    fn an_entry_costs_what_its_set_costs_less_its_record() {
        for expires in [None, Some(1_700_000_000_000)] {
            let entry = Entry::new(7, b"key", b"value", expires);
            let record = record_cost(3, 5 + if expires.is_some() { 8 } else { 0 });
            assert_eq!(of_entry(&entry) + record, set_cost(3, 5, expires.is_some()));
        }
        let plain = of_entry(&Entry::new(7, b"key", b"value", None));
        assert_eq!(plain, entry_cost(3, 5));
    }

    /// The counted size follows malloc's rounding, plus the tree's share.
    #[test]
    fn entry_costs_round_as_malloc_does() {
        // 10 bytes of head + "k" + 0: asked 11, a 32-byte chunk at least.
        assert_eq!(entry_cost(1, 0), 32 + TREE_BYTES_PER_KEY);
        // 10 + 10 + 100 = 120 asked: 128 + 8 rounded up to 16 is 128.
        assert_eq!(entry_cost(10, 100), 128 + TREE_BYTES_PER_KEY);
        assert_eq!(entry_cost(10, 101), 144 + TREE_BYTES_PER_KEY);
        assert_eq!(record_cost(3, 4), 28);
    }

    /// The default is three quarters of something this machine has.
    #[test]
    fn the_default_is_a_share_of_the_memory_available() {
        let (limit, from) = default_limit().expect("/proc/meminfo is readable here");
        assert!(limit > 0 && from.starts_with("three quarters of"), "{limit} {from}");
    }
}
