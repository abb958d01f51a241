//! What the server says about its start: what recovery found and did, the memory limit and
//! where it comes from, and the data over that limit.

use super::{Config, MaxMemory};
use crate::store::Store;
use std::time::Duration;

/// The log lines of a start: a new log, an upgrade, a conversion, a trimmed tail, leftovers
/// removed, and what was replayed in how long.
pub(super) fn report_recovery(
    config: &Config,
    rec: &crate::wal::Recovery,
    opened: &crate::wal::dir::Opened,
    keys: usize,
    took: Duration,
) {
    let dir = config.data_dir.display();
    let path = crate::store::wal_path(&config.data_dir);
    if rec.created {
        crate::log!("created a new log in {dir}");
    }
    if rec.upgraded {
        crate::log!(
            "upgraded {} from log format 1 to {} (every record kept)",
            path.display(),
            crate::wal::VERSION
        );
    }
    if opened.converted {
        crate::log!(
            "{} is now the first segment of the log, {}: this directory holds segments and \
             snapshots from now on (see docs/data-directory.md)",
            path.display(),
            crate::wal::layout::segment_name(1)
        );
    }
    if let Some(trim) = &rec.trimmed {
        crate::log!("{}", describe_trim(&path, trim));
    }
    for leftover in &opened.removed {
        crate::log!("removed {}, left over from an interrupted write", leftover.display());
    }
    let snapshot = match opened.snapshot {
        Some((upto, keys)) => format!("a snapshot through seq {upto} ({keys} keys) and "),
        None => String::new(),
    };
    crate::log!(
        "replayed {} records (last seq {}, {keys} keys) from {snapshot}{} segment(s) in {dir} in \
         {:.1} ms",
        rec.records,
        rec.last_seq,
        opened.segments,
        took.as_secs_f64() * 1000.0
    );
}

/// The memory limit `--max-memory` asks for, said in the log.
pub(super) fn memory_limit(asked: MaxMemory) -> Option<u64> {
    use crate::store::memory::default_limit;
    use crate::units::human;
    match asked {
        MaxMemory::Off => {
            crate::log!("no memory limit (--max-memory 0): the kernel's limit is the limit");
            None
        }
        MaxMemory::Bytes(limit) => {
            crate::log!("memory limit for the data: {} (--max-memory)", human(limit));
            Some(limit)
        }
        MaxMemory::Default => match default_limit() {
            Some((limit, why)) => {
                crate::log!(
                    "memory limit for the data: {} ({why}; --max-memory sets another, 0 none)",
                    human(limit)
                );
                Some(limit)
            }
            None => {
                crate::log!("no memory limit: the memory available could not be read");
                None
            }
        },
    }
}

/// Says if the data replayed is over the memory limit already (it was lowered, or the log
/// holds more than it did): the server serves it, and refuses writes that need more memory.
pub(super) fn report_memory(store: &Store) {
    use crate::units::human;
    if let (used, Some(limit)) = store.memory()
        && used > limit
    {
        crate::log!(
            "the data takes {} of memory, over the limit of {}: writes that need more memory \
             get 507 until keys are deleted or --max-memory is raised",
            human(used),
            human(limit)
        );
    }
}

/// The startup message for a trimmed tail: where, how much, why, and where it was kept.
pub fn describe_trim(path: &std::path::Path, trim: &crate::wal::Trim) -> String {
    let mut text = format!(
        "trimmed the end of {}: cut at offset {}, dropped {} bytes. Why: {}",
        path.display(),
        trim.offset,
        trim.bytes,
        trim.explanation
    );
    if let Some(side) = &trim.side_file {
        text.push_str(&format!(" The dropped bytes are kept in {}.", side.display()));
    }
    if let Some((first, last)) = trim.skipped {
        text.push_str(&format!(
            " Sequence numbers {first}..={last} are recorded as skipped and will not be reused."
        ));
    }
    text
}
