//! `steerbench status RUN_DIR`: per stage and shard, cached / queued / running / failed
//! / done, with job ids, elapsed time and log paths; failures show their log's last
//! lines. The run directory decides `done` (a committed stage or shard is done whatever
//! Slurm says); Slurm's view (`scontrol show job`) decides the rest.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::{read_submission, JobState, Scheduler, SlurmError, StageJobs};
use crate::exec::shard;
use crate::store::{RunStore, Status};

/// Lines of a failed job's log shown by `status`.
pub const LOG_TAIL_LINES: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRow {
    pub stage: String,
    /// `shard 3/8`, `merge`, or empty for a stage run whole.
    pub part: String,
    /// `cached`, `queued`, `running`, `failed`, `done`, `unknown`.
    pub state: String,
    pub job: String,
    pub elapsed: String,
    pub log: Option<PathBuf>,
    /// Slurm's state or reason where it says more (e.g. `CANCELLED`, `Dependency`).
    pub detail: String,
}

/// The status of every stage of the run directory's last submission (or, without one,
/// of the stages in the store).
pub fn rows(run_dir: &Path, sched: Option<&Scheduler>) -> Result<Vec<StatusRow>, SlurmError> {
    let Some(sub) = read_submission(run_dir)? else {
        return store_rows(run_dir);
    };
    let ids: Vec<String> = sub.stages.iter().flat_map(|s| s.job_ids()).collect();
    let states = match sched {
        Some(s) if !ids.is_empty() => s.states(&ids)?,
        _ => BTreeMap::new(),
    };
    let store = RunStore::new(run_dir);
    let mut out = Vec::new();
    for st in &sub.stages {
        stage_rows(&store, st, &states, &mut out);
    }
    Ok(out)
}

fn stage_rows(
    store: &RunStore,
    st: &StageJobs,
    states: &BTreeMap<String, JobState>,
    out: &mut Vec<StatusRow>,
) {
    let row = |part: String,
               state: &str,
               job: Option<&String>,
               elapsed: String,
               log: Option<PathBuf>,
               detail: String| StatusRow {
        stage: st.stage.clone(),
        part,
        state: state.to_string(),
        job: job.cloned().unwrap_or_default(),
        elapsed,
        log,
        detail,
    };
    if let Some(dir) = store.complete(&st.stage, &st.fingerprint) {
        let wall = RunStore::read_manifest(&dir)
            .map(|m| seconds(m.timings.wall_seconds))
            .unwrap_or_default();
        let state = if st.cached { "cached" } else { "done" };
        out.push(row(
            String::new(),
            state,
            st.job.as_ref(),
            wall,
            st.log.clone(),
            String::new(),
        ));
        return;
    }
    let stage_dir = store.stage_dir(&st.stage, &st.fingerprint);
    if st.shard_count > 0 {
        for k in 0..st.shard_count {
            let part = format!("shard {k}/{}", st.shard_count);
            let task = st.array_job.as_ref().map(|a| format!("{a}_{k}"));
            match shard::done(&stage_dir, k, st.shard_count, &st.fingerprint) {
                Some(rec) => out.push(row(
                    part,
                    "done",
                    rec.slurm_job.as_ref().or(task.as_ref()),
                    seconds(rec.wall_seconds),
                    st.shard_log(k),
                    String::new(),
                )),
                None => {
                    let submitted = st.submitted_shards.contains(&k);
                    let (state, detail, elapsed) = job_state(
                        task.as_ref().filter(|_| submitted),
                        states,
                        st.shard_log(k).as_deref(),
                    );
                    out.push(row(
                        part,
                        state,
                        task.as_ref(),
                        elapsed,
                        st.shard_log(k),
                        detail,
                    ));
                }
            }
        }
        let (state, detail, elapsed) = job_state(st.job.as_ref(), states, st.log.as_deref());
        out.push(row(
            "merge".into(),
            state,
            st.job.as_ref(),
            elapsed,
            st.log.clone(),
            detail,
        ));
    } else {
        let (state, detail, elapsed) = job_state(st.job.as_ref(), states, st.log.as_deref());
        out.push(row(
            String::new(),
            state,
            st.job.as_ref(),
            elapsed,
            st.log.clone(),
            detail,
        ));
    }
}

/// Our state for a job whose output is not committed: (state, detail, elapsed).
fn job_state(
    id: Option<&String>,
    states: &BTreeMap<String, JobState>,
    log: Option<&Path>,
) -> (&'static str, String, String) {
    let Some(id) = id else {
        return ("unknown", "not submitted".into(), String::new());
    };
    match states.get(id) {
        Some(s) => {
            let state = match s.state.as_str() {
                _ if !s.is_active() && s.state == "PENDING" => "failed",
                "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "SUSPENDED" => "queued",
                "RUNNING" | "CONFIGURING" | "COMPLETING" | "SIGNALING" | "STAGE_OUT"
                | "RESIZING" => "running",
                // Finished without committing its output.
                _ => "failed",
            };
            let detail = if state == "queued" {
                s.reason.clone()
            } else if state == "failed" {
                format!("{} ({})", s.state, s.reason)
            } else {
                String::new()
            };
            (state, detail, s.run_time.clone())
        }
        // Forgotten by Slurm and not committed: it ended without output if it left a log.
        None if log.is_some_and(Path::exists) => {
            ("failed", "no output committed".into(), String::new())
        }
        None => ("unknown", "not known to Slurm".into(), String::new()),
    }
}

/// Without a submission record: the stages in the store.
fn store_rows(run_dir: &Path) -> Result<Vec<StatusRow>, SlurmError> {
    let store = RunStore::new(run_dir);
    let entries = store
        .list()
        .map_err(|e| SlurmError::Invalid(e.to_string()))?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let (state, elapsed, detail) = match &e.status {
                Status::Complete(m) => ("done", seconds(m.timings.wall_seconds), String::new()),
                Status::Incomplete => {
                    let shards = shard::shards_dir(&e.dir);
                    let n = std::fs::read_dir(&shards)
                        .map(|rd| {
                            rd.flatten()
                                .filter(|d| d.path().join(shard::SHARD_RECORD).is_file())
                                .count()
                        })
                        .unwrap_or(0);
                    (
                        "incomplete",
                        String::new(),
                        format!("{n} shard(s) committed"),
                    )
                }
                Status::Damaged(_, d) => ("damaged", String::new(), d.to_string()),
                Status::Interrupted => ("interrupted", String::new(), String::new()),
                Status::Replaced => ("replaced", String::new(), String::new()),
                Status::Corrupt(why) => ("corrupt", String::new(), why.clone()),
            };
            StatusRow {
                stage: e.stage,
                part: String::new(),
                state: state.into(),
                job: String::new(),
                elapsed,
                log: None,
                detail,
            }
        })
        .collect())
}

fn seconds(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    Some(lines[lines.len().saturating_sub(n)..].join("\n"))
}

/// The status table and, for each failure with a log, its last lines.
pub fn render(run_dir: &Path, rows: &[StatusRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", run_dir.display());
    let header = ["STAGE", "PART", "STATE", "JOB", "ELAPSED", "LOG", "DETAIL"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.stage.clone(),
                r.part.clone(),
                r.state.clone(),
                r.job.clone(),
                r.elapsed.clone(),
                r.log
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                r.detail.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for c in &cells {
        for (w, v) in widths.iter_mut().zip(c) {
            *w = (*w).max(v.chars().count());
        }
    }
    let line = |vals: Vec<&str>| {
        vals.iter()
            .zip(widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let _ = writeln!(s, "{}", line(header.to_vec()));
    for c in &cells {
        let _ = writeln!(s, "{}", line(c.iter().map(String::as_str).collect()));
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *counts.entry(r.state.as_str()).or_default() += 1;
    }
    let _ = writeln!(
        s,
        "{}",
        counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for r in rows.iter().filter(|r| r.state == "failed") {
        if let Some(t) = r.log.as_deref().and_then(|l| tail(l, LOG_TAIL_LINES)) {
            let _ = writeln!(
                s,
                "\n--- {} {} failed; last lines of {} ---\n{t}",
                r.stage,
                r.part,
                r.log.as_ref().unwrap().display()
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_map_to_ours() {
        let mut states = BTreeMap::new();
        let st = |state: &str, reason: &str| JobState {
            state: state.into(),
            run_time: "00:00:03".into(),
            reason: reason.into(),
        };
        states.insert("1".to_string(), st("PENDING", "Dependency"));
        states.insert("2".to_string(), st("RUNNING", "None"));
        states.insert("3".to_string(), st("CANCELLED", "None"));
        let s = |id: &str| job_state(Some(&id.to_string()), &states, None);
        assert_eq!(s("1").0, "queued");
        assert_eq!(s("1").1, "Dependency");
        assert_eq!(s("2").0, "running");
        assert_eq!(s("3").0, "failed");
        assert!(s("3").1.starts_with("CANCELLED"));
        assert_eq!(s("4").0, "unknown");
        assert_eq!(seconds(3725.2), "01:02:05");
    }
}
