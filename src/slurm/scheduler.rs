//! The Slurm commands steerbench calls (`sbatch`, `scontrol`, `sinfo`, `scancel`) and
//! the parsing of their output. Job states come from `scontrol show job`, which knows
//! pending, running and (for `MinJobAge`, 300 s by default) finished jobs without
//! accounting; a job it no longer knows has state `None`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use super::{SbatchRequest, SlurmError};

/// A job's state as Slurm names it (`PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, …) and
/// its run time so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub state: String,
    pub run_time: String,
    pub reason: String,
}

impl JobState {
    /// Still in the queue: not yet finished one way or another. A job pending on a
    /// dependency that failed never runs (when the cluster does not cancel it as
    /// `--kill-on-invalid-dep` asks): not active.
    pub fn is_active(&self) -> bool {
        self.reason != "DependencyNeverSatisfied"
            && matches!(
                self.state.as_str(),
                "PENDING"
                    | "RUNNING"
                    | "CONFIGURING"
                    | "COMPLETING"
                    | "SUSPENDED"
                    | "REQUEUED"
                    | "REQUEUE_HOLD"
                    | "REQUEUE_FED"
                    | "RESIZING"
                    | "SIGNALING"
                    | "STAGE_OUT"
            )
    }
}

/// The Slurm client tools, found on PATH.
#[derive(Debug, Clone)]
pub struct Scheduler {
    sbatch: PathBuf,
}

/// `program` on PATH, if there.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

impl Scheduler {
    /// Fails when `sbatch` (or its companions) are not on PATH.
    pub fn from_path() -> Result<Scheduler, SlurmError> {
        let sbatch = which("sbatch").ok_or_else(|| SlurmError::MissingTool("sbatch".into()))?;
        for tool in ["scontrol", "sinfo", "scancel"] {
            which(tool).ok_or_else(|| SlurmError::MissingTool(tool.into()))?;
        }
        Ok(Scheduler { sbatch })
    }

    fn output(&self, program: &str, args: &[String]) -> Result<String, SlurmError> {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| SlurmError::Command {
                command: program.into(),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(SlurmError::Command {
                command: format!("{program} {}", args.join(" ")),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Submits a job; returns its id.
    pub fn sbatch(&self, req: &SbatchRequest<'_>) -> Result<String, SlurmError> {
        let args = req.args();
        let program = self.sbatch.display().to_string();
        let out = self.output(&program, &args).map_err(|e| match e {
            SlurmError::Command { message, .. } => SlurmError::Command {
                command: format!("sbatch {}", args.join(" ")),
                message,
            },
            other => other,
        })?;
        parse_sbatch(&out).ok_or_else(|| SlurmError::Command {
            command: "sbatch".into(),
            message: format!("unexpected output `{}`", out.trim()),
        })
    }

    /// Partition names.
    pub fn partitions(&self) -> Result<Vec<String>, SlurmError> {
        let out = self.output("sinfo", &["-h".into(), "-o".into(), "%R".into()])?;
        let mut v: Vec<String> = out
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    /// States of the given jobs (`123` or array tasks `123_4`) that Slurm still knows.
    pub fn states(&self, ids: &[String]) -> Result<BTreeMap<String, JobState>, SlurmError> {
        let mut bases: Vec<&str> = ids
            .iter()
            .map(|i| i.split('_').next().unwrap_or(i))
            .collect();
        bases.sort();
        bases.dedup();
        let mut out = BTreeMap::new();
        for base in bases {
            // An id Slurm has forgotten (finished longer than MinJobAge ago) is an error
            // here: no state.
            let Ok(text) = self.output(
                "scontrol",
                &["show".into(), "job".into(), "-o".into(), base.into()],
            ) else {
                continue;
            };
            out.extend(parse_scontrol(&text));
        }
        Ok(out)
    }

    pub fn scancel(&self, ids: &[String]) -> Result<(), SlurmError> {
        self.output("scancel", ids).map(|_| ())
    }
}

/// `sbatch --parsable` prints `<id>` or `<id>;<cluster>`.
pub fn parse_sbatch(out: &str) -> Option<String> {
    let id = out.trim().split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// `scontrol show job -o` lines → job id (`123`, or `123_4` for array tasks, one entry
/// per task of a still unsplit pending array) → state.
pub fn parse_scontrol(text: &str) -> BTreeMap<String, JobState> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let fields: BTreeMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let Some(state) = fields.get("JobState") else {
            continue;
        };
        let st = JobState {
            state: state.to_string(),
            run_time: fields.get("RunTime").unwrap_or(&"").to_string(),
            reason: fields.get("Reason").unwrap_or(&"").to_string(),
        };
        match (fields.get("ArrayJobId"), fields.get("ArrayTaskId")) {
            (Some(a), Some(tasks)) => {
                for k in expand_tasks(tasks) {
                    out.insert(format!("{a}_{k}"), st.clone());
                }
            }
            _ => {
                if let Some(id) = fields.get("JobId") {
                    out.insert(id.to_string(), st);
                }
            }
        }
    }
    out
}

/// `1,3-5%2` → 1, 3, 4, 5.
pub fn expand_tasks(spec: &str) -> Vec<usize> {
    let spec = spec.split('%').next().unwrap_or(spec);
    let mut v = Vec::new();
    for part in spec.split(',') {
        let part = part.split(':').next().unwrap_or(part);
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    v.extend(a..=b);
                }
            }
            None => v.extend(part.parse::<usize>().ok()),
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sbatch_and_scontrol_output() {
        assert_eq!(parse_sbatch("42\n").as_deref(), Some("42"));
        assert_eq!(parse_sbatch("42;cluster\n").as_deref(), Some("42"));
        assert_eq!(parse_sbatch("Submitted batch job 42"), None);
        let text = "JobId=20 ArrayJobId=19 ArrayTaskId=1 JobName=x JobState=RUNNING Reason=None RunTime=00:00:07 TimeLimit=UNLIMITED\n\
JobId=19 ArrayJobId=19 ArrayTaskId=3-4%2 JobName=x JobState=PENDING Reason=JobArrayTaskLimit RunTime=00:00:00\n\
JobId=21 JobName=y JobState=FAILED Reason=NonZeroExitCode RunTime=00:00:01\n";
        let s = parse_scontrol(text);
        assert_eq!(s.keys().collect::<Vec<_>>(), ["19_1", "19_3", "19_4", "21"]);
        assert_eq!(s["19_1"].state, "RUNNING");
        assert_eq!(s["19_1"].run_time, "00:00:07");
        assert!(s["19_4"].is_active());
        assert!(!s["21"].is_active());
        assert_eq!(expand_tasks("0,2,5-6%1"), [0, 2, 5, 6]);
    }
}
