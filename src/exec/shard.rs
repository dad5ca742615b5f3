//! Shards: a wide stage's work split into independent parts that may run in separate
//! processes (Slurm array tasks, or one after another with `--shards N` locally), each
//! committed on its own, then merged into the stage's ordinary outputs.
//!
//! Layout: `<run>/<stage>/<fp16>/shards/<k>/` holds shard `k`'s files and, written last,
//! `shard.json`. A shard is written into `shards/.tmp-<k>-<pid>/` and renamed into place,
//! so a killed or cancelled shard leaves no `shards/<k>` folder, only a temporary one that
//! the next attempt of that shard (or the merge's commit) removes. The stage folder has no
//! `manifest.json` until the merge commits it, so the cache never mistakes shards for a
//! finished stage; the commit replaces the whole folder, shards included.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{self, StoreError};

pub const SHARDS_DIR: &str = "shards";
pub const SHARD_RECORD: &str = "shard.json";

/// Which part of a stage's work a process does: shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The contiguous share of `n` work units this shard does (units keep their order,
    /// so concatenating the shards' results in shard order gives the unsharded order).
    /// Shards beyond the number of units get an empty range.
    pub fn range(&self, n: usize) -> Range<usize> {
        let count = self.count.max(1);
        (self.index * n / count)..((self.index + 1) * n / count)
    }
}

/// `shard.json`: written last into a shard folder, so its presence means the shard is
/// complete.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardRecord {
    pub index: usize,
    pub count: usize,
    /// The stage's full fingerprint.
    pub fingerprint: String,
    pub host: String,
    pub pid: u32,
    /// `SLURM_JOB_ID` / `SLURM_ARRAY_JOB_ID`_`SLURM_ARRAY_TASK_ID` when run by Slurm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
    pub started_unix: f64,
    pub finished_unix: f64,
    pub wall_seconds: f64,
    /// Work units this shard did.
    pub units: usize,
}

pub fn shards_dir(stage_dir: &Path) -> PathBuf {
    stage_dir.join(SHARDS_DIR)
}

pub fn shard_dir(stage_dir: &Path, index: usize) -> PathBuf {
    shards_dir(stage_dir).join(index.to_string())
}

/// The record of a committed shard folder `shards/<index>`, whatever split it belongs to.
pub fn record(stage_dir: &Path, index: usize) -> Option<ShardRecord> {
    let bytes = fs::read(shard_dir(stage_dir, index).join(SHARD_RECORD)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The record of shard `index`, if that shard is complete for this `count` and for a
/// stage whose fingerprint starts with `fingerprint` (the full 64 digits, or the 16 of a
/// folder name); a shard of another split of the work does not count.
pub fn done(
    stage_dir: &Path,
    index: usize,
    count: usize,
    fingerprint: &str,
) -> Option<ShardRecord> {
    let rec = record(stage_dir, index)?;
    (rec.index == index && rec.count == count && rec.fingerprint.starts_with(fingerprint))
        .then_some(rec)
}

/// Shards of `count` not complete yet, in order.
pub fn missing(stage_dir: &Path, count: usize, fingerprint: &str) -> Vec<usize> {
    (0..count)
        .filter(|&k| done(stage_dir, k, count, fingerprint).is_none())
        .collect()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A fresh temporary folder for shard `index`; leftovers of killed attempts of the same
/// shard are removed first.
pub fn begin(stage_dir: &Path, index: usize) -> Result<PathBuf, StoreError> {
    let dir = shards_dir(stage_dir);
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let prefix = format!(".tmp-{index}-");
    for e in fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let p = e.path();
            fs::remove_dir_all(&p).map_err(io(&p))?;
        }
    }
    let tmp = dir.join(format!("{prefix}{}", std::process::id()));
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    Ok(tmp)
}

/// Writes `record` into `tmp`, syncs it and renames it to `shards/<index>` (replacing a
/// shard of another split, if one is there).
pub fn commit(stage_dir: &Path, tmp: &Path, record: &ShardRecord) -> Result<PathBuf, StoreError> {
    let rpath = tmp.join(SHARD_RECORD);
    let json = serde_json::to_vec_pretty(record).map_err(|source| StoreError::Manifest {
        path: rpath.clone(),
        source,
    })?;
    fs::write(&rpath, json).map_err(io(&rpath))?;
    store::sync_tree(tmp)?;
    let dest = shard_dir(stage_dir, record.index);
    if dest.exists() {
        fs::remove_dir_all(&dest).map_err(io(&dest))?;
    }
    fs::rename(tmp, &dest).map_err(io(&dest))?;
    store::sync_dir(&shards_dir(stage_dir))?;
    Ok(dest)
}

/// This machine's host name (for shard records and status).
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The Slurm job this process runs in, as `squeue` names it (`123` or `123_4`).
pub fn slurm_job() -> Option<String> {
    let array = std::env::var("SLURM_ARRAY_JOB_ID").ok();
    let task = std::env::var("SLURM_ARRAY_TASK_ID").ok();
    match (array, task) {
        (Some(a), Some(t)) => Some(format!("{a}_{t}")),
        _ => std::env::var("SLURM_JOB_ID").ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_unit_once_in_order() {
        for n in 0..40 {
            for count in 1..9 {
                let all: Vec<usize> = (0..count)
                    .flat_map(|index| Shard { index, count }.range(n))
                    .collect();
                assert_eq!(all, (0..n).collect::<Vec<_>>(), "n={n} count={count}");
            }
        }
        // More shards than units: some shards are empty.
        assert_eq!(Shard { index: 0, count: 4 }.range(2), 0..0);
    }

    #[test]
    fn a_shard_is_done_only_once_committed_for_its_split() {
        let d = tempfile::tempdir().unwrap();
        let stage = d.path().join("stage");
        let tmp = begin(&stage, 1).unwrap();
        fs::write(tmp.join("rows.parquet"), b"x").unwrap();
        assert!(done(&stage, 1, 2, "fp").is_none());
        assert_eq!(missing(&stage, 2, "fp"), vec![0, 1]);
        let rec = ShardRecord {
            index: 1,
            count: 2,
            fingerprint: "fp".into(),
            host: hostname(),
            pid: 1,
            slurm_job: None,
            started_unix: 0.0,
            finished_unix: 1.0,
            wall_seconds: 1.0,
            units: 3,
        };
        commit(&stage, &tmp, &rec).unwrap();
        assert!(!tmp.exists());
        assert_eq!(done(&stage, 1, 2, "fp").unwrap().units, 3);
        assert!(done(&stage, 1, 3, "fp").is_none(), "another split");
        assert!(done(&stage, 1, 2, "other").is_none(), "another fingerprint");
        assert_eq!(missing(&stage, 2, "fp"), vec![0]);
        // A killed attempt's temporary folder is cleared by the next attempt.
        let stale = begin(&stage, 0).unwrap();
        fs::rename(&stale, shards_dir(&stage).join(".tmp-0-999999")).unwrap();
        let again = begin(&stage, 0).unwrap();
        assert!(!shards_dir(&stage).join(".tmp-0-999999").exists());
        assert!(again.exists());
    }
}
