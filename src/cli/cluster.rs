//! `run --executor slurm|local --shards N`, `status`, and `stage` (what one Slurm job
//! runs: one stage whole, one shard of it, or the merge of its shards).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::{load_plan, spec_failure, App};
use crate::exec::{self, ProgressBoard, Shard, StageExecutor};
use crate::slurm::{self, status, Scheduler, SlurmOptions};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Executor {
    /// In this process (the default).
    #[default]
    Local,
    /// As Slurm batch jobs (sbatch), one per stage, job arrays for shards.
    Slurm,
}

/// Where and how a run executes. Slurm defaults come from the `[slurm]` section of
/// `./steerbench.toml` or `$STEERBENCH_HOME/steerbench.toml`; flags override them.
#[derive(clap::Args, Debug, Default)]
pub struct ClusterArgs {
    #[arg(long, value_enum, default_value_t = Executor::Local)]
    pub executor: Executor,
    /// Split each shardable stage (extract, evaluate) into N shards, merged into the same
    /// outputs as an unsharded run. Locally they run one after another.
    #[arg(long)]
    pub shards: Option<usize>,
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// Slurm time limit per job (e.g. 02:00:00).
    #[arg(long)]
    pub time: Option<String>,
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// Memory per job (e.g. 16G).
    #[arg(long)]
    pub mem: Option<String>,
    /// Generic resources per job (e.g. gpu:1).
    #[arg(long)]
    pub gres: Option<String>,
    #[arg(long)]
    pub account: Option<String>,
    /// At most this many shards of one stage run at once (array throttle).
    #[arg(long)]
    pub max_parallel: Option<u32>,
}

impl ClusterArgs {
    /// The Slurm options (config file, then flags) and the shard count to use.
    pub fn options(&self) -> Result<(SlurmOptions, usize), String> {
        if self.shards == Some(0) {
            return Err("--shards must be at least 1".into());
        }
        if self.executor == Executor::Local {
            let slurm_only = [
                ("--partition", self.partition.is_some()),
                ("--time", self.time.is_some()),
                ("--cpus-per-task", self.cpus_per_task.is_some()),
                ("--mem", self.mem.is_some()),
                ("--gres", self.gres.is_some()),
                ("--account", self.account.is_some()),
                ("--max-parallel", self.max_parallel.is_some()),
            ];
            if let Some((flag, _)) = slurm_only.iter().find(|(_, set)| *set) {
                return Err(format!("{flag} applies to --executor slurm"));
            }
            return Ok((SlurmOptions::default(), self.shards.unwrap_or(1)));
        }
        let (mut o, _) = SlurmOptions::from_config()?;
        let set = |dst: &mut Option<String>, v: &Option<String>| {
            if v.is_some() {
                dst.clone_from(v);
            }
        };
        set(&mut o.partition, &self.partition);
        set(&mut o.time, &self.time);
        set(&mut o.mem, &self.mem);
        set(&mut o.gres, &self.gres);
        set(&mut o.account, &self.account);
        if self.cpus_per_task.is_some() {
            o.cpus_per_task = self.cpus_per_task;
        }
        if self.max_parallel.is_some() {
            o.max_parallel = self.max_parallel;
        }
        if let Some(n) = self.shards {
            o.shards = n;
        }
        o.shards = o.shards.max(1);
        let shards = o.shards;
        Ok((o, shards))
    }
}

/// Seconds between two looks at the queue while following jobs.
fn poll_interval() -> Duration {
    let secs = std::env::var("STEERBENCH_SLURM_POLL_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(5.0);
    Duration::from_secs_f64(secs.max(0.1))
}

pub fn run_slurm<S: Sync>(
    plan: &crate::plan::Plan,
    app: &App<S>,
    file: &Path,
    runs_dir: &Path,
    opts: &SlurmOptions,
    wait: bool,
) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    };
    let sched = match Scheduler::from_path() {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(&format!("cannot find the steerbench binary: {e}")),
    };
    let sub = match slurm::submit(plan, &app.registry, file, runs_dir, opts, &sched, &exe) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let cached = sub.submission.stages.iter().filter(|s| s.cached).count();
    println!(
        "{}: {} job(s) submitted for {} stage(s), {} cached -> {}",
        plan.spec.name,
        sub.job_count(),
        sub.submission.stages.len() - cached,
        cached,
        sub.run_dir.display()
    );
    if !wait {
        println!(
            "follow it with: steerbench status {}",
            sub.run_dir.display()
        );
        return ExitCode::SUCCESS;
    }
    follow(&sub.run_dir, &sched)
}

/// Polls until no job of the submission is in the queue, printing a line whenever the
/// counts change; then the status table. Success when every stage is done or cached.
fn follow(run_dir: &Path, sched: &Scheduler) -> ExitCode {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let rows = match status::rows(run_dir, Some(sched)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let line = summary(&rows);
        if line != last {
            let t = start.elapsed().as_secs();
            println!("[{:02}:{:02}] {line}", t / 60, t % 60);
            last = line;
        }
        match slurm::active_jobs(sched, run_dir) {
            Ok(a) if a.is_empty() => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
        std::thread::sleep(poll_interval());
    }
    let rows = match status::rows(run_dir, Some(sched)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", status::render(run_dir, &rows));
    if rows
        .iter()
        .all(|r| r.state == "done" || r.state == "cached")
    {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "error: not every stage finished; run the same command again to resubmit what is missing"
        );
        ExitCode::FAILURE
    }
}

fn summary(rows: &[status::StatusRow]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in rows {
        *counts.entry(r.state.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn status(run_dir: &Path) -> ExitCode {
    if !run_dir.is_dir() {
        eprintln!("error: {}: no such run directory", run_dir.display());
        return ExitCode::FAILURE;
    }
    let sched = Scheduler::from_path().ok();
    match status::rows(run_dir, sched.as_ref()) {
        Ok(rows) => {
            print!("{}", status::render(run_dir, &rows));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct StageArgs {
    pub file: PathBuf,
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// The stage to run.
    #[arg(long)]
    pub stage: String,
    /// Refuse unless the stage's fingerprint (16 hex digits) is this one: the spec or its
    /// inputs must not have changed since the job was submitted.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// Run this shard (0-based) of `--shards`.
    #[arg(long)]
    pub shard: Option<usize>,
    #[arg(long)]
    pub shards: Option<usize>,
    /// Merge the `--shards` complete shards into the stage's outputs.
    #[arg(long)]
    pub merge: bool,
    /// The Slurm submission's token (checks that this node sees the run directory).
    #[arg(long)]
    pub submission: Option<String>,
    #[command(flatten)]
    pub model: super::ModelArg,
}

pub fn stage<S: Sync>(app: &App<S>, a: &StageArgs) -> ExitCode {
    let plan = match load_plan(&a.file, app, &a.model) {
        Ok(p) => p,
        Err(d) => return spec_failure(&d),
    };
    match stage_inner(&plan, app, a) {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stage_inner<S: Sync>(
    plan: &crate::plan::Plan,
    app: &App<S>,
    a: &StageArgs,
) -> Result<String, String> {
    let run_dir = exec::run_dir(plan, &a.runs_dir);
    if let Some(token) = &a.submission {
        slurm::check_visible(&run_dir, token).map_err(|e| e.to_string())?;
    }
    let stage = plan
        .stages
        .iter()
        .find(|s| s.name == a.stage)
        .ok_or_else(|| {
            format!(
                "no stage `{}` in {}; stages: {}",
                a.stage,
                a.file.display(),
                plan.stages
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    if let Some(fp) = &a.fingerprint {
        if fp != stage.short_fingerprint() {
            return Err(format!(
                "stage `{}` now has fingerprint {}, the job was made for {fp}: the spec, its datasets or an input changed since submission; submit again",
                stage.name,
                stage.short_fingerprint()
            ));
        }
    }
    let runner = StageExecutor::new(plan, &app.registry, &app.services, &a.runs_dir);
    if runner
        .store
        .complete(&stage.name, stage.short_fingerprint())
        .is_some()
    {
        return Ok(format!("stage `{}` is complete (cached)", stage.name));
    }
    let board = ProgressBoard::hidden();
    let progress = board.stage(&stage.name);
    let clock = Instant::now();
    let err = |e: exec::ExecError| exec::error_chain(&e);
    match (a.shard, a.shards, a.merge) {
        (Some(_), _, true) => Err("--shard and --merge exclude each other".into()),
        (Some(index), Some(count), false) => {
            if count == 0 || index >= count {
                return Err(format!(
                    "--shard {index} is not one of --shards {count} (0..{count})"
                ));
            }
            let dir = runner
                .run_shard(stage, Shard { index, count }, &progress)
                .map_err(err)?;
            Ok(format!(
                "stage `{}` shard {index} of {count} committed in {:.1} s -> {}",
                stage.name,
                clock.elapsed().as_secs_f64(),
                dir.display()
            ))
        }
        (None, Some(count), true) => {
            let dir = runner.merge(stage, count, &progress).map_err(err)?;
            Ok(format!(
                "stage `{}`: {count} shards merged in {:.1} s -> {}",
                stage.name,
                clock.elapsed().as_secs_f64(),
                dir.display()
            ))
        }
        (_, None, _) if a.shard.is_some() || a.merge => {
            Err("--shard and --merge need --shards".into())
        }
        _ => {
            let dir = runner.run_whole(stage, &progress).map_err(err)?;
            Ok(format!(
                "stage `{}` committed in {:.1} s -> {}",
                stage.name,
                clock.elapsed().as_secs_f64(),
                dir.display()
            ))
        }
    }
}
