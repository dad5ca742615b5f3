//! The Slurm executor: every stage that is not cached becomes a batch job, shardable
//! stages a job array of shards plus a dependent merge job, with `afterok`
//! dependencies following the DAG. Jobs run `steerbench stage …` (the same code a local
//! run uses for one stage, shard or merge) against the shared run directory.
//!
//! The record of a submission, `<run>/.slurm/submission.json`, lists its jobs; `status`
//! reads it, and a second submission is refused while any of its jobs is still known to
//! the scheduler. Accounting may be off, so job states come from `squeue` and
//! `scontrol show job` (finished jobs stay there for `MinJobAge`), and otherwise from
//! the run directory itself (a committed shard or stage is done whatever Slurm says).

pub mod options;
pub mod scheduler;
pub mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use options::SlurmOptions;
pub use scheduler::{JobState, Scheduler};

use crate::exec::{self, shard, Registry};
use crate::plan::Plan;
use crate::store::{self, RunLock, RunStore};

/// Folder of the submission record, job scripts and logs inside a run directory.
pub const SLURM_DIR: &str = ".slurm";
pub const SUBMISSION: &str = "submission.json";

/// `<run>/.slurm/submission.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Submission {
    /// Random; every job checks it before it starts, which proves the job sees this run
    /// directory (and not a node-local folder of the same name).
    pub token: String,
    pub submitted_unix: f64,
    pub host: String,
    pub spec: PathBuf,
    pub runs_dir: PathBuf,
    /// Shards per shardable stage.
    pub shards: usize,
    pub stages: Vec<StageJobs>,
}

/// What a submission did for one stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageJobs {
    pub stage: String,
    /// First 16 hex digits (the stage folder's name).
    pub fingerprint: String,
    /// Complete before the submission: no job.
    pub cached: bool,
    /// The job running the stage whole, or the merge job of a sharded stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    /// Sharded stages: the array job and the shards it runs (shards already complete
    /// are not submitted again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_job: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub submitted_shards: Vec<usize>,
    /// Shards of the stage (0 for a stage run whole).
    #[serde(default)]
    pub shard_count: usize,
    /// Shard logs: `{shard}` stands for the index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_log: Option<String>,
}

impl StageJobs {
    pub fn shard_log(&self, k: usize) -> Option<PathBuf> {
        self.shard_log
            .as_ref()
            .map(|p| PathBuf::from(p.replace("{shard}", &k.to_string())))
    }
    /// Every job id of this stage (array tasks as `<array>_<k>`).
    pub fn job_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .array_job
            .iter()
            .flat_map(|a| {
                self.submitted_shards
                    .iter()
                    .map(move |k| format!("{a}_{k}"))
            })
            .collect();
        ids.extend(self.job.clone());
        ids
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("`{0}` is not on PATH: install the Slurm client tools (Debian: slurm-client) or run with --executor local")]
    MissingTool(String),
    #[error("partition `{name}` does not exist on this cluster; partitions: {}", known.join(", "))]
    UnknownPartition { name: String, known: Vec<String> },
    #[error("run directory {dir} has an active Slurm submission (jobs {}); wait for it (steerbench status {dir}) or cancel it with scancel", jobs.join(" "))]
    Active { dir: String, jobs: Vec<String> },
    #[error("{command} failed: {message}")]
    Command { command: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid submission record: {source}")]
    Record {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Lock(#[from] store::LockError),
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SlurmError + '_ {
    move |source| SlurmError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn slurm_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(SLURM_DIR)
}

pub fn read_submission(run_dir: &Path) -> Result<Option<Submission>, SlurmError> {
    let path = slurm_dir(run_dir).join(SUBMISSION);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| SlurmError::Record { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SlurmError::Io { path, source }),
    }
}

fn write_submission(run_dir: &Path, sub: &Submission) -> Result<(), SlurmError> {
    let dir = slurm_dir(run_dir);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let path = dir.join(SUBMISSION);
    let tmp = dir.join(format!(".{SUBMISSION}.tmp-{}", std::process::id()));
    let json = serde_json::to_vec_pretty(sub).expect("submission serializes");
    std::fs::write(&tmp, json).map_err(io(&tmp))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// Jobs of the run directory's last submission that the scheduler still holds
/// (pending, running, completing …).
pub fn active_jobs(sched: &Scheduler, run_dir: &Path) -> Result<Vec<String>, SlurmError> {
    let Some(sub) = read_submission(run_dir)? else {
        return Ok(Vec::new());
    };
    let ids: Vec<String> = sub.stages.iter().flat_map(|s| s.job_ids()).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let states = sched.states(&ids)?;
    Ok(ids
        .into_iter()
        .filter(|id| states.get(id).is_some_and(|s| s.is_active()))
        .collect())
}

/// Refuses when the run directory's last Slurm submission still has jobs in the queue
/// (the local executor calls this too, so it never writes beside running jobs). Without
/// Slurm tools on PATH there can be no such jobs visible from here: nothing to check.
pub fn refuse_if_active(run_dir: &Path) -> Result<(), SlurmError> {
    if read_submission(run_dir)?.is_none() {
        return Ok(());
    }
    let Ok(sched) = Scheduler::from_path() else {
        return Ok(());
    };
    let jobs = active_jobs(&sched, run_dir)?;
    if jobs.is_empty() {
        Ok(())
    } else {
        Err(SlurmError::Active {
            dir: run_dir.display().to_string(),
            jobs,
        })
    }
}

/// What `submit` did.
#[derive(Debug)]
pub struct Submitted {
    pub run_dir: PathBuf,
    pub submission: Submission,
}

impl Submitted {
    pub fn job_count(&self) -> usize {
        self.submission
            .stages
            .iter()
            .map(|s| s.job_ids().len())
            .sum()
    }
}

/// Submits every stage of `plan` that is not complete. `spec` and `runs_dir` are given
/// to the jobs as absolute paths; `exe` is the steerbench binary the jobs run.
pub fn submit<S>(
    plan: &Plan,
    registry: &Registry<S>,
    spec: &Path,
    runs_dir: &Path,
    opts: &SlurmOptions,
    sched: &Scheduler,
    exe: &Path,
) -> Result<Submitted, SlurmError> {
    if let Some(p) = &opts.partition {
        let known = sched.partitions()?;
        if !known.iter().any(|k| k == p) {
            return Err(SlurmError::UnknownPartition {
                name: p.clone(),
                known,
            });
        }
    }
    let abs = |p: &Path| -> Result<PathBuf, SlurmError> { std::path::absolute(p).map_err(io(p)) };
    let spec = abs(spec)?;
    let runs_dir = abs(runs_dir)?;
    let run_dir = exec::run_dir(plan, &runs_dir);
    let store = RunStore::new(&run_dir);
    // The run lock (flock; on NFS the kernel maps it to a POSIX lock the server sees
    // across nodes) guards the submission itself; the record guards the jobs after it.
    let _lock = RunLock::acquire(&run_dir, false)?;
    let jobs = active_jobs(sched, &run_dir)?;
    if !jobs.is_empty() {
        return Err(SlurmError::Active {
            dir: run_dir.display().to_string(),
            jobs,
        });
    }
    let sdir = slurm_dir(&run_dir);
    for d in [sdir.join("logs"), sdir.join("jobs")] {
        std::fs::create_dir_all(&d).map_err(io(&d))?;
    }
    let shards = opts.shards.max(1);
    let mut sub = Submission {
        token: token(),
        submitted_unix: now(),
        host: shard::hostname(),
        spec: spec.clone(),
        runs_dir: runs_dir.clone(),
        shards,
        stages: Vec::new(),
    };
    // Written before the first job so that a job starting at once finds its token.
    write_submission(&run_dir, &sub)?;
    // Stage → the job whose success means the stage is complete.
    let mut done_by: BTreeMap<String, String> = BTreeMap::new();
    let result = (|| -> Result<(), SlurmError> {
        for stage in &plan.stages {
            let fp16 = stage.short_fingerprint().to_string();
            let mut jobs = StageJobs {
                stage: stage.name.clone(),
                fingerprint: fp16.clone(),
                cached: false,
                job: None,
                log: None,
                array_job: None,
                submitted_shards: Vec::new(),
                shard_count: 0,
                shard_log: None,
            };
            if store.complete(&stage.name, &fp16).is_some() {
                jobs.cached = true;
                sub.stages.push(jobs);
                continue;
            }
            let deps: Vec<String> = stage
                .inputs
                .iter()
                .filter_map(|i| done_by.get(i).cloned())
                .collect();
            let base = JobCommand {
                exe,
                model: &plan.spec.model,
                dtype: plan.spec.dtype,
                spec: &spec,
                runs_dir: &runs_dir,
                stage: &stage.name,
                fingerprint: &fp16,
                token: &sub.token,
            };
            let shardable = registry.get(stage.kind).is_some_and(|r| r.shardable());
            let job_name = format!("sb-{}-{}", plan.spec.name, stage.name);
            if shardable && shards > 1 {
                let stage_dir = store.stage_dir(&stage.name, &fp16);
                let missing = shard::missing(&stage_dir, shards, &stage.fingerprint);
                jobs.shard_count = shards;
                let log_pattern = sdir
                    .join("logs")
                    .join(format!("{}.shard-%a.log", stage.name));
                jobs.shard_log = Some(log_pattern.display().to_string().replace("%a", "{shard}"));
                let mut merge_deps = deps.clone();
                if !missing.is_empty() {
                    let script = sdir.join("jobs").join(format!("{}.shard.sh", stage.name));
                    write_script(&script, &base.shard_line(shards))?;
                    let array = sched.sbatch(&SbatchRequest {
                        script: &script,
                        job_name: &job_name,
                        log: &log_pattern,
                        dependencies: &deps,
                        array: Some((&missing, opts.max_parallel)),
                        opts,
                    })?;
                    jobs.array_job = Some(array.clone());
                    jobs.submitted_shards = missing;
                    merge_deps.push(array);
                }
                let script = sdir.join("jobs").join(format!("{}.merge.sh", stage.name));
                write_script(&script, &base.merge_line(shards))?;
                let log = sdir.join("logs").join(format!("{}.merge.log", stage.name));
                let id = sched.sbatch(&SbatchRequest {
                    script: &script,
                    job_name: &format!("{job_name}-merge"),
                    log: &log,
                    dependencies: &merge_deps,
                    array: None,
                    opts,
                })?;
                jobs.log = Some(log);
                jobs.job = Some(id.clone());
                done_by.insert(stage.name.clone(), id);
            } else {
                let script = sdir.join("jobs").join(format!("{}.sh", stage.name));
                write_script(&script, &base.whole_line())?;
                let log = sdir.join("logs").join(format!("{}.log", stage.name));
                let id = sched.sbatch(&SbatchRequest {
                    script: &script,
                    job_name: &job_name,
                    log: &log,
                    dependencies: &deps,
                    array: None,
                    opts,
                })?;
                jobs.log = Some(log);
                jobs.job = Some(id.clone());
                done_by.insert(stage.name.clone(), id);
            }
            sub.stages.push(jobs);
        }
        Ok(())
    })();
    // Whatever was submitted is recorded, so status and cancellation can find it even
    // when a later sbatch failed.
    write_submission(&run_dir, &sub)?;
    if let Err(e) = result {
        let submitted: Vec<String> = sub.stages.iter().flat_map(|s| s.job_ids()).collect();
        if !submitted.is_empty() {
            let _ = sched.scancel(&submitted);
        }
        return Err(e);
    }
    Ok(Submitted {
        run_dir,
        submission: sub,
    })
}

/// The `steerbench stage` command line a job runs.
struct JobCommand<'a> {
    exe: &'a Path,
    /// The plan's model (the spec's, or `--model`'s) and dtype: jobs plan the same pipeline.
    model: &'a str,
    dtype: crate::spec::Dtype,
    spec: &'a Path,
    runs_dir: &'a Path,
    stage: &'a str,
    fingerprint: &'a str,
    token: &'a str,
}

impl JobCommand<'_> {
    fn prefix(&self) -> String {
        format!(
            "exec {} stage {} --runs-dir {} --stage {} --fingerprint {} --submission {} --model {} --dtype {}",
            quote(&self.exe.display().to_string()),
            quote(&self.spec.display().to_string()),
            quote(&self.runs_dir.display().to_string()),
            quote(self.stage),
            self.fingerprint,
            self.token,
            quote(self.model),
            self.dtype
        )
    }
    fn whole_line(&self) -> String {
        self.prefix()
    }
    fn shard_line(&self, count: usize) -> String {
        format!(
            "{} --shard \"$SLURM_ARRAY_TASK_ID\" --shards {count}",
            self.prefix()
        )
    }
    fn merge_line(&self, count: usize) -> String {
        format!("{} --merge --shards {count}", self.prefix())
    }
}

fn write_script(path: &Path, line: &str) -> Result<(), SlurmError> {
    let text = format!(
        "#!/bin/bash\n# Written by `steerbench run --executor slurm`; resources are on the sbatch command line.\nset -euo pipefail\necho \"steerbench job ${{SLURM_JOB_ID:-?}} on $(hostname) at $(date -u +%FT%TZ)\"\n{line}\n"
    );
    std::fs::write(path, text).map_err(io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io(path))?;
    }
    Ok(())
}

/// Single-quotes `s` for bash.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One `sbatch` call.
pub struct SbatchRequest<'a> {
    pub script: &'a Path,
    pub job_name: &'a str,
    pub log: &'a Path,
    pub dependencies: &'a [String],
    /// Array task ids and the most to run at once.
    pub array: Option<(&'a [usize], Option<u32>)>,
    pub opts: &'a SlurmOptions,
}

impl SbatchRequest<'_> {
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--parsable".to_string(),
            format!("--job-name={}", self.job_name),
            format!("--output={}", self.log.display()),
            // A job whose dependency failed is cancelled instead of pending forever.
            "--kill-on-invalid-dep=yes".to_string(),
        ];
        let o = self.opts;
        for (flag, v) in [
            ("partition", &o.partition),
            ("time", &o.time),
            ("mem", &o.mem),
            ("gres", &o.gres),
            ("account", &o.account),
        ] {
            if let Some(v) = v {
                a.push(format!("--{flag}={v}"));
            }
        }
        if let Some(c) = o.cpus_per_task {
            a.push(format!("--cpus-per-task={c}"));
        }
        if !self.dependencies.is_empty() {
            a.push(format!(
                "--dependency=afterok:{}",
                self.dependencies.join(":")
            ));
        }
        if let Some((tasks, max)) = self.array {
            let list: Vec<String> = tasks.iter().map(|k| k.to_string()).collect();
            let mut spec = list.join(",");
            if let Some(m) = max {
                spec.push_str(&format!("%{m}"));
            }
            a.push(format!("--array={spec}"));
        }
        a.push(self.script.display().to_string());
        a
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn token() -> String {
    let seed = format!(
        "{}-{}-{:?}",
        std::process::id(),
        now(),
        std::thread::current().id()
    );
    blake3::hash(seed.as_bytes()).to_hex()[..16].to_string()
}

/// Checks, in a job, that the run directory is the one the submission wrote (so it is
/// on a filesystem this node shares with the submitting host).
pub fn check_visible(run_dir: &Path, token: &str) -> Result<(), SlurmError> {
    let host = shard::hostname();
    match read_submission(run_dir) {
        Ok(Some(sub)) if sub.token == token => Ok(()),
        Ok(Some(_)) => Err(SlurmError::Invalid(format!(
            "run directory {} was submitted again since this job was queued; this job is stale",
            run_dir.display()
        ))),
        Ok(None) => Err(SlurmError::Invalid(format!(
            "run directory {} is not visible on node {host}: {}/{SUBMISSION} is missing. Put the runs folder (--runs-dir) on a filesystem the compute nodes share with the submitting host",
            run_dir.display(),
            SLURM_DIR
        ))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_arguments_carry_resources_dependencies_and_arrays() {
        let opts = SlurmOptions {
            partition: Some("gpu".into()),
            time: Some("01:00:00".into()),
            cpus_per_task: Some(4),
            mem: Some("16G".into()),
            gres: Some("gpu:1".into()),
            account: None,
            max_parallel: Some(2),
            shards: 4,
        };
        let req = SbatchRequest {
            script: Path::new("/r/.slurm/jobs/sweep.shard.sh"),
            job_name: "sb-p-sweep",
            log: Path::new("/r/.slurm/logs/sweep.shard-%a.log"),
            dependencies: &["11".into(), "12".into()],
            array: Some((&[0, 2, 3], opts.max_parallel)),
            opts: &opts,
        };
        assert_eq!(
            req.args(),
            [
                "--parsable",
                "--job-name=sb-p-sweep",
                "--output=/r/.slurm/logs/sweep.shard-%a.log",
                "--kill-on-invalid-dep=yes",
                "--partition=gpu",
                "--time=01:00:00",
                "--mem=16G",
                "--gres=gpu:1",
                "--cpus-per-task=4",
                "--dependency=afterok:11:12",
                "--array=0,2,3%2",
                "/r/.slurm/jobs/sweep.shard.sh",
            ]
        );
    }

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(quote("/a b/it's"), r"'/a b/it'\''s'");
    }

    #[test]
    fn job_ids_list_array_tasks_and_the_merge() {
        let j = StageJobs {
            stage: "s".into(),
            fingerprint: "f".into(),
            cached: false,
            job: Some("20".into()),
            log: None,
            array_job: Some("19".into()),
            submitted_shards: vec![1, 3],
            shard_count: 4,
            shard_log: Some("/l/s.shard-{shard}.log".into()),
        };
        assert_eq!(j.job_ids(), ["19_1", "19_3", "20"]);
        assert_eq!(j.shard_log(3).unwrap(), PathBuf::from("/l/s.shard-3.log"));
    }
}
