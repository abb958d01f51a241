//! `walkv repair`: the plan for the first damaged file of a data directory, then the operator's
//! choice. A segment (or the one-file log) is repaired by [`crate::wal::repair`]; a damaged
//! snapshot and a missing segment by [`crate::wal::salvage`].

use super::{existing_log, missing_segment, report_unreadable};
use crate::cli::{RepairMode, exit};
use crate::error::Error;
use crate::store;
use crate::wal;
use crate::wal::dir::Part;
use crate::wal::repair::{Choice, Damage, Done, Plan};
use crate::wal::salvage::{self, SnapshotPlan};
use std::path::{Path, PathBuf};

/// What `walkv repair` found in a data directory.
enum Fix {
    /// A segment, or the one-file log.
    Log(Plan),
    Snapshot(SnapshotPlan),
    Missing {
        path: PathBuf,
        first: u64,
        next: Option<u64>,
    },
}

impl Fix {
    fn is_clean(&self) -> bool {
        match self {
            Fix::Log(plan) => plan.is_clean(),
            Fix::Snapshot(plan) => plan.is_clean(),
            Fix::Missing { .. } => false,
        }
    }

    fn path(&self) -> &Path {
        match self {
            Fix::Log(plan) => &plan.path,
            Fix::Snapshot(plan) => &plan.path,
            Fix::Missing { path, .. } => path,
        }
    }

    fn describe(&self) -> String {
        match self {
            Fix::Log(plan) => describe_plan(plan),
            Fix::Snapshot(plan) => describe_snapshot(plan),
            Fix::Missing { path, first, next } => describe_missing(path, *first, *next),
        }
    }

    fn carry_out(&self, choice: Choice) -> Result<Done, Error> {
        match self {
            Fix::Log(plan) => wal::repair::repair(plan, choice, wal::boot_id()),
            Fix::Snapshot(plan) => salvage::repair_snapshot(plan, choice, wal::boot_id()),
            Fix::Missing { path, first, next } => {
                salvage::fill_missing(crate::wal::files::dir_of(path), *first, *next)
            }
        }
    }
}

/// `walkv repair`: prints the plan, then carries out the choice (none: exit 2).
pub fn repair(data_dir: &Path, mode: Option<RepairMode>) -> u8 {
    let segmented = match wal::layout::list(data_dir) {
        Ok(listing) => listing.is_segmented(),
        Err(e) => return report_unreadable(data_dir, &e),
    };
    let single = if segmented { None } else { existing_log(data_dir) };
    if !segmented && single.is_none() {
        return exit::FAILED;
    }
    let _lock = match store::lock_data_dir(data_dir) {
        Ok(lock) => lock,
        Err(e) => {
            crate::log!("{e}");
            return exit::FAILED;
        }
    };
    let planned = match single {
        Some(path) => wal::repair::plan(&path).map(Fix::Log).map_err(|e| (path, e)),
        None => plan_segmented(data_dir),
    };
    let plan = match planned {
        Ok(plan) => plan,
        Err((path, e)) => return report_unreadable(&path, &e),
    };
    say!("{}", plan.describe());
    if plan.is_clean() {
        say!("nothing to repair");
        return exit::OK;
    }
    let choice = match mode {
        None => {
            say!(
                "nothing changed: choose --skip-damaged or --cut (--dry-run shows only this plan)"
            );
            return exit::USAGE;
        }
        Some(RepairMode::DryRun) => return exit::OK,
        Some(RepairMode::SkipDamaged) => Choice::SkipDamaged,
        Some(RepairMode::Cut) => Choice::Cut,
    };
    match plan.carry_out(choice) {
        Ok(done) => {
            let side =
                done.side_file.map(|p| format!("; the dropped bytes are in {}", p.display()));
            say!(
                "repaired: the log keeps {} records and continues after seq {}{} (the file \
                 repaired: {})",
                done.kept,
                done.last_seq,
                side.unwrap_or_default(),
                plan.path().display()
            );
            exit::OK
        }
        Err(e) => {
            say!("repair failed, the log is as it was: {e}");
            crate::log!("{e}");
            exit::FAILED
        }
    }
}

/// The plan for the first damaged file of a segmented directory (a clean plan for the newest
/// segment if nothing is damaged).
fn plan_segmented(data_dir: &Path) -> Result<Fix, (PathBuf, Error)> {
    let parts = wal::dir::parts(data_dir).map_err(|e| (data_dir.to_path_buf(), e))?;
    let mut last = None;
    for (path, part) in parts {
        let fix = match part {
            Part::Leftover => continue,
            Part::Snapshot { upto } => salvage::plan_snapshot(&path, upto).map(Fix::Snapshot),
            Part::Sealed { first, ceiling } => {
                wal::repair::plan_segment(&path, first - 1, Some(ceiling)).map(Fix::Log)
            }
            Part::Newest { first } => {
                wal::repair::plan_segment(&path, first - 1, None).map(Fix::Log)
            }
            Part::Missing { first, next } => Ok(Fix::Missing { path: path.clone(), first, next }),
        }
        .map_err(|e| (path.clone(), e))?;
        if !fix.is_clean() {
            return Ok(fix);
        }
        last = Some(fix);
    }
    last.ok_or_else(|| {
        (data_dir.to_path_buf(), Error::Failed { reason: "no segment to repair".into() })
    })
}

/// The plan, for an operator deciding between `--skip-damaged` and `--cut`.
fn describe_plan(plan: &Plan) -> String {
    let mut out =
        format!("{}: format {}, {} bytes", plan.path.display(), plan.header.version, plan.file_len);
    let run = |r: &wal::repair::Run| match r.records {
        0 => "no records".to_string(),
        n => format!("{n} records (seqs {}..={})", r.first_seq, r.last_seq),
    };
    if let Some(at) = plan.header_fixed {
        out += &format!("\nthe file header is damaged at byte {at}; a repair restores it");
    }
    let Some(first) = plan.first_damage else {
        out += &format!("\n{} check out, and nothing is damaged", run(&plan.prefix));
        return out;
    };
    out += &format!("\nbefore the damage: {} check out", run(&plan.prefix));
    out += &describe_damage(first, &plan.damage);
    out += &format!("\nafter the damage: {} check out", run(&plan.after));
    if plan.after.records > 0 {
        out += &format!(
            ", touching {} key(s): their state could be wrong if a missing record was a later \
             write or a DELETE",
            plan.keys_after
        );
    }
    if plan.missing_count > 0 {
        let ranges: Vec<String> = plan.missing.iter().map(|(a, b)| format!("{a}..={b}")).collect();
        let listed: u64 = plan.missing.iter().map(|(a, b)| b - a + 1).sum();
        let more = if listed < plan.missing_count { ", ..." } else { "" };
        out += &format!(
            "\nmissing sequence numbers: {} ({}{more})",
            plan.missing_count,
            ranges.join(", ")
        );
    }
    let kept = plan.prefix.records + plan.after.records;
    out += &format!(
        "\n--skip-damaged would keep {kept} records and drop the {} damaged bytes",
        plan.damage.bytes
    );
    out += &format!(
        "\n--cut would keep {} records and drop the {} bytes from offset {first} on ({} records \
         that check out among them)",
        plan.prefix.records,
        plan.data_end.saturating_sub(first),
        plan.after.records
    );
    out += &format!(
        "\neither way the dropped bytes are kept in a side file, and new writes continue after \
         seq {}: no sequence number is reused",
        plan.max_seq.max(plan.prefix_seq)
    );
    out
}

/// The damaged regions, one line each (the first 20).
fn describe_damage(first: u64, damage: &Damage) -> String {
    let mut out = format!(
        "\ndamage: {} region(s), {} bytes, the first at offset {first}",
        damage.count, damage.bytes
    );
    for r in &damage.regions {
        out += &format!("\n  offset {}: {} bytes ({})", r.offset, r.len, r.reason);
    }
    if damage.count > damage.regions.len() as u64 {
        out += &format!("\n  ... and {} more", damage.count - damage.regions.len() as u64);
    }
    out
}

/// The plan for a damaged snapshot.
fn describe_snapshot(plan: &SnapshotPlan) -> String {
    let mut out = format!(
        "{}: snapshot through seq {}, {} bytes",
        plan.path.display(),
        plan.upto,
        plan.file_len
    );
    if let Some(at) = plan.header_fixed {
        out += &format!("\nthe file header is damaged at byte {at}; a repair restores it");
    }
    let Some(first) = plan.first_damage else {
        out += &format!("\n{} keys check out, and nothing is damaged", plan.before);
        return out;
    };
    out += &format!("\nbefore the damage: {} keys check out", plan.before);
    out += &describe_damage(first, &plan.damage);
    out += &format!("\nafter the damage: {} keys check out", plan.after);
    if !plan.end_found {
        out += &format!(
            "\nthe end marker is missing (the file was cut short): only its name says that it \
             covers the writes up to seq {}",
            plan.upto
        );
    }
    out += &format!(
        "\nthe damaged bytes held about {} key(s), which are lost unless a later segment writes \
         them again: the segments this snapshot merged were removed when it was made. \
         Restoring the snapshot from a backup loses nothing",
        plan.records_lost_estimate()
    );
    out += &format!(
        "\n--skip-damaged would keep {} keys and drop the {} damaged bytes",
        plan.before + plan.after,
        plan.damage.bytes
    );
    out += &format!(
        "\n--cut would keep {} keys and drop the {} bytes from offset {first} on ({} keys that \
         check out among them)",
        plan.before,
        plan.data_end.saturating_sub(first),
        plan.after
    );
    out += "\neither way the dropped bytes are kept in a side file, and a new snapshot is written \
            in its place";
    out
}

/// The plan for a missing segment.
fn describe_missing(path: &Path, first: u64, next: Option<u64>) -> String {
    let mut out = format!("{}: {}", path.display(), missing_segment(first, next));
    match next {
        Some(n) => {
            out += &format!(
                "\na repair (--skip-damaged or --cut: the same here) creates it holding one GAP \
                 record for seqs {first}..={}, so that the chain of segments holds and those \
                 numbers are never used again; the writes themselves are lost. Restoring the \
                 file from a backup loses nothing",
                n - 1
            );
        }
        None => {
            out += &format!(
                "\nhow many writes it held is unknown: a repair (--skip-damaged or --cut: the same \
                 here) creates it empty, new writes continue after seq {}, and numbers the lost \
                 writes had may be used again. Restoring the file from a backup loses nothing",
                first - 1
            );
        }
    }
    out
}
