//! The executor: runs a plan's stages in topological order through the
//! registered `StageRunner`s, skipping every stage whose fingerprint already
//! has a complete folder in the run store, under the run directory's lock.
//!
//! Stages run one at a time: model stages must not fight candle's own rayon
//! threading, and the cheap non-model stages gain little from overlapping.

mod progress;
pub mod shard;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use polars::prelude::DataFrame;

use crate::plan::{ModelFacts, Plan, ResolvedDataset, StageInstance};
use crate::spec::{DatasetRef, PromptFormat, StageKind, StageSpec};
use crate::store::manifest::{DatasetProvenance, MANIFEST_VERSION};
use crate::store::{self, Manifest, Provenance, RunLock, RunStore, Timings};
pub use progress::{Progress, ProgressBoard};
pub use shard::Shard;

/// One stage kind's implementation. Register it in a `Registry` under its kind.
pub trait StageRunner<S>: Send + Sync {
    /// Implementation version; bump it when the same inputs would now give
    /// different outputs, so cached folders of this kind are recomputed.
    fn version(&self) -> u32;

    /// Reads `ctx`'s inputs, writes outputs into `ctx.out_dir()` (use
    /// `ctx.write_parquet`), and returns a summary for the manifest.
    fn run(&self, ctx: &StageContext<'_, S>) -> anyhow::Result<StageOutputs>;

    /// Whether the stage can run as shards (`run_shard` + `merge`). A shardable stage's
    /// merged outputs must equal `run`'s bit for bit.
    fn shardable(&self) -> bool {
        false
    }

    /// Does shard `shard`'s share of the work, writing into `ctx.out_dir()` (the shard's
    /// temporary folder). Returns the number of work units it did.
    fn run_shard(&self, ctx: &StageContext<'_, S>, shard: Shard) -> anyhow::Result<usize> {
        let _ = (ctx, shard);
        anyhow::bail!("stage kind `{}` cannot run as shards", ctx.kind())
    }

    /// Writes the stage's outputs into `ctx.out_dir()` from the complete shard folders
    /// (in shard order).
    fn merge(&self, ctx: &StageContext<'_, S>, shards: &[PathBuf]) -> anyhow::Result<StageOutputs> {
        let _ = shards;
        anyhow::bail!("stage kind `{}` cannot run as shards", ctx.kind())
    }
}

/// What a stage reports besides its files (which the executor lists itself).
#[derive(Debug, Default, Clone)]
pub struct StageOutputs {
    /// Small numbers worth keeping in the manifest (e.g. `mlp_final_loss`).
    pub summary: BTreeMap<String, serde_json::Value>,
}

/// Stage kind → implementation. `S` is the services object stages share
/// (e.g. a lazily loaded model).
pub struct Registry<S> {
    runners: BTreeMap<StageKind, Box<dyn StageRunner<S>>>,
}

impl<S> Default for Registry<S> {
    fn default() -> Self {
        Registry {
            runners: BTreeMap::new(),
        }
    }
}

impl<S> Registry<S> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(
        &mut self,
        kind: StageKind,
        runner: impl StageRunner<S> + 'static,
    ) -> &mut Self {
        self.runners.insert(kind, Box::new(runner));
        self
    }

    pub fn get(&self, kind: StageKind) -> Option<&dyn StageRunner<S>> {
        self.runners.get(&kind).map(|b| b.as_ref())
    }

    /// Versions of the registered kinds, for fingerprinting.
    pub fn versions(&self) -> BTreeMap<StageKind, u32> {
        self.runners
            .iter()
            .map(|(k, r)| (*k, r.version()))
            .collect()
    }
}

/// A value loaded on first use and shared by all stages of a run (e.g. the model).
pub struct Lazy<T> {
    cell: std::sync::OnceLock<T>,
    init: std::sync::Mutex<()>,
}

impl<T> Default for Lazy<T> {
    fn default() -> Self {
        Lazy {
            cell: std::sync::OnceLock::new(),
            init: std::sync::Mutex::new(()),
        }
    }
}

impl<T> Lazy<T> {
    pub fn get_or_try_init<E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<&T, E> {
        if let Some(v) = self.cell.get() {
            return Ok(v);
        }
        let _guard = self.init.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = self.cell.get() {
            return Ok(v);
        }
        let v = f()?;
        Ok(self.cell.get_or_init(|| v))
    }

    pub fn get(&self) -> Option<&T> {
        self.cell.get()
    }
}

/// Everything a stage may read, and nothing else.
pub struct StageContext<'a, S> {
    stage: &'a StageInstance,
    out_dir: &'a Path,
    inputs: BTreeMap<String, PathBuf>,
    datasets: BTreeMap<String, &'a ResolvedDataset>,
    model_name: &'a str,
    model: Option<&'a ModelFacts>,
    dtype: crate::spec::Dtype,
    prompt_format: PromptFormat,
    seed: u64,
    progress: &'a Progress,
    services: &'a S,
    /// The spec file's folder: relative paths in the spec are relative to it.
    base_dir: &'a Path,
}

impl<'a, S> StageContext<'a, S> {
    pub fn name(&self) -> &str {
        &self.stage.name
    }
    pub fn kind(&self) -> StageKind {
        self.stage.kind
    }
    /// The stage's typed parameters (match on the variant of its kind).
    pub fn params(&self) -> &StageSpec {
        &self.stage.params
    }
    pub fn fingerprint(&self) -> &str {
        &self.stage.fingerprint
    }
    /// The temporary output folder; everything written here is committed atomically.
    pub fn out_dir(&self) -> &Path {
        self.out_dir
    }
    /// Committed folder of an input stage, by the name used in the spec.
    pub fn input_dir(&self, stage: &str) -> anyhow::Result<&Path> {
        self.inputs.get(stage).map(PathBuf::as_path).ok_or_else(|| {
            anyhow::anyhow!(
                "stage `{}` did not declare `{stage}` as an input",
                self.stage.name
            )
        })
    }
    pub fn input_manifest(&self, stage: &str) -> anyhow::Result<Manifest> {
        Ok(RunStore::read_manifest(self.input_dir(stage)?)?)
    }
    /// Names of the input stages, in declaration order.
    pub fn input_names(&self) -> &[String] {
        &self.stage.inputs
    }
    /// A dataset this stage declared.
    pub fn dataset(&self, r: &DatasetRef) -> anyhow::Result<&ResolvedDataset> {
        self.datasets.get(&r.dataset).copied().ok_or_else(|| {
            anyhow::anyhow!(
                "stage `{}` did not declare dataset `{}`",
                self.stage.name,
                r.dataset
            )
        })
    }
    /// The dataset references the stage declared, in spec order.
    pub fn dataset_refs(&self) -> &[DatasetRef] {
        &self.stage.dataset_refs
    }
    /// The model as written in the spec, and its checked facts (model stages only).
    pub fn model(&self) -> (&str, Option<&ModelFacts>) {
        (self.model_name, self.model)
    }
    /// The dtype the model's weights are held in (`dtype:` / `--dtype`).
    pub fn dtype(&self) -> crate::spec::Dtype {
        self.dtype
    }
    pub fn prompt_format(&self) -> PromptFormat {
        self.prompt_format
    }
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// A path written in the spec, resolved as `plan` resolves it: relative to the spec
    /// file's folder, whatever the current directory.
    pub fn spec_path(&self, p: &Path) -> PathBuf {
        crate::spec::resolve_path(self.base_dir, p)
    }
    pub fn progress(&self) -> &Progress {
        self.progress
    }
    pub fn services(&self) -> &S {
        self.services
    }
    /// Writes a table as `<name>.parquet` in the output folder.
    pub fn write_parquet(&self, name: &str, df: &mut DataFrame) -> anyhow::Result<PathBuf> {
        let path = self.out_dir.join(format!("{name}.parquet"));
        store::write_parquet(df, &path)?;
        Ok(path)
    }
    /// Writes `bytes` as `name` (a relative path; folders are created) in the output folder.
    /// Errors name the file (e.g. a full disk).
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        use anyhow::Context;
        let path = self.out_dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
    /// Writes the rows of a typed table as `<T::FILE>.parquet` in the output folder.
    pub fn write_table<T: crate::tables::Table>(&self, rows: &[T]) -> anyhow::Result<PathBuf> {
        let mut df = T::to_frame(rows)?;
        self.write_parquet(T::FILE, &mut df)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Lock(#[from] store::LockError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("no implementation is registered for stage kind `{0}`")]
    Unregistered(StageKind),
    #[error("stage `{stage}` needs stage `{input}`, which is not complete in the run directory")]
    InputMissing { stage: String, input: String },
    #[error("stage `{0}` ({1}) cannot run as shards")]
    NotShardable(String, StageKind),
    #[error(
        "stage `{stage}`: shard(s) {} of {count} are not complete; run them before the merge",
        join_usize(missing)
    )]
    ShardsMissing {
        stage: String,
        missing: Vec<usize>,
        count: usize,
    },
    #[error("stage `{stage}` failed: {}", error_chain(source.as_ref()))]
    Stage {
        stage: String,
        source: anyhow::Error,
    },
}

pub struct RunOptions {
    /// Folder holding run directories (`runs`).
    pub runs_dir: PathBuf,
    /// Wait for another run holding the lock instead of failing.
    pub wait: bool,
    /// Run shardable stages as this many shards, one after another, then merge them
    /// (1: run every stage whole).
    pub shards: usize,
    pub progress: ProgressBoard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub run_dir: PathBuf,
    /// Stages executed, in order.
    pub executed: Vec<String>,
    /// Stages whose outputs were already complete.
    pub cached: Vec<String>,
    /// Stages whose folder was damaged (also in `executed`: they ran again).
    pub repaired: Vec<String>,
}

pub fn run_dir(plan: &Plan, runs_dir: &Path) -> PathBuf {
    runs_dir.join(&plan.spec.name)
}

/// For each stage: its committed folder if complete (and its files match the manifest).
pub fn cache_status(plan: &Plan, runs_dir: &Path) -> Vec<(String, Option<PathBuf>)> {
    cache_states(plan, runs_dir)
        .into_iter()
        .map(|(n, c)| match c {
            store::Cached::Complete(d) => (n, Some(d)),
            _ => (n, None),
        })
        .collect()
}

/// For each stage: missing, complete, or damaged (a manifest whose files are missing or
/// have another size), as `execute` will see it.
pub fn cache_states(plan: &Plan, runs_dir: &Path) -> Vec<(String, store::Cached)> {
    let store = RunStore::new(run_dir(plan, runs_dir));
    plan.stages
        .iter()
        .map(|s| (s.name.clone(), store.cached(&s.name, s.short_fingerprint())))
        .collect()
}

/// An error and its causes, each cause once: many errors already print their source in
/// their own message (`{path}: {source}`), so a cause whose text the message so far
/// already holds is not appended again.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !s.is_empty() && !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

/// Runs the plan. Safe to call again after a crash or kill: completed stages
/// are skipped and half-written ones start over. With `opts.shards` > 1, shardable
/// stages run shard by shard (complete shards are kept) and are then merged.
pub fn execute<S: Sync>(
    plan: &Plan,
    registry: &Registry<S>,
    services: &S,
    opts: &RunOptions,
) -> Result<RunReport, ExecError> {
    let runner = StageExecutor::new(plan, registry, services, &opts.runs_dir);
    let _lock = RunLock::acquire(&runner.store.root, opts.wait)?;
    tracing::info!(run_dir = %runner.store.root.display(), "lock acquired");
    let mut report = RunReport {
        run_dir: runner.store.root.clone(),
        executed: Vec::new(),
        cached: Vec::new(),
        repaired: Vec::new(),
    };
    for stage in &plan.stages {
        let fp16 = stage.short_fingerprint();
        match runner.store.cached(&stage.name, fp16) {
            store::Cached::Complete(_) => {
                tracing::info!(stage = %stage.name, fingerprint = fp16, "cached");
                report.cached.push(stage.name.clone());
                continue;
            }
            store::Cached::Damaged(dir, damage) => {
                // The folder is replaced only once the new one is complete (store::commit).
                eprintln!(
                    "stage `{}` is damaged ({damage}) in {}; running it again",
                    stage.name,
                    dir.display()
                );
                report.repaired.push(stage.name.clone());
            }
            store::Cached::Missing => {}
        }
        let progress = opts.progress.stage(&stage.name);
        let sharded = opts.shards > 1
            && registry
                .get(stage.kind)
                .ok_or(ExecError::Unregistered(stage.kind))?
                .shardable();
        if sharded {
            for index in 0..opts.shards {
                let shard = Shard {
                    index,
                    count: opts.shards,
                };
                runner.run_shard(stage, shard, &progress)?;
            }
            runner.merge(stage, opts.shards, &progress)?;
        } else {
            runner.run_whole(stage, &progress)?;
        }
        report.executed.push(stage.name.clone());
    }
    Ok(report)
}

/// Runs single stages (whole, one shard, or the merge of shards) of a plan against its
/// run directory; `execute` drives it for a local run, and each Slurm job drives it for
/// its one stage or shard. It takes no lock: callers guarantee one writer per stage
/// folder (the run lock locally, the submission record under Slurm).
pub struct StageExecutor<'a, S> {
    plan: &'a Plan,
    registry: &'a Registry<S>,
    services: &'a S,
    pub store: RunStore,
    git_commit: Option<String>,
    threads: usize,
}

impl<'a, S: Sync> StageExecutor<'a, S> {
    pub fn new(
        plan: &'a Plan,
        registry: &'a Registry<S>,
        services: &'a S,
        runs_dir: &Path,
    ) -> Self {
        StageExecutor {
            plan,
            registry,
            services,
            store: RunStore::new(run_dir(plan, runs_dir)),
            git_commit: git_commit(&plan.spec.base_dir),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }

    fn runner(&self, stage: &StageInstance) -> Result<&dyn StageRunner<S>, ExecError> {
        self.registry
            .get(stage.kind)
            .ok_or(ExecError::Unregistered(stage.kind))
    }

    /// Committed folders of `stage`'s inputs; every one must be complete.
    fn inputs(&self, stage: &StageInstance) -> Result<BTreeMap<String, PathBuf>, ExecError> {
        let mut out = BTreeMap::new();
        for name in &stage.inputs {
            let input = self
                .plan
                .stages
                .iter()
                .find(|s| &s.name == name)
                .ok_or_else(|| ExecError::InputMissing {
                    stage: stage.name.clone(),
                    input: name.clone(),
                })?;
            let dir = self
                .store
                .complete(name, input.short_fingerprint())
                .ok_or_else(|| ExecError::InputMissing {
                    stage: stage.name.clone(),
                    input: name.clone(),
                })?;
            out.insert(name.clone(), dir);
        }
        Ok(out)
    }

    fn context<'c>(
        &'c self,
        stage: &'c StageInstance,
        out_dir: &'c Path,
        progress: &'c Progress,
    ) -> Result<StageContext<'c, S>, ExecError> {
        Ok(StageContext {
            stage,
            out_dir,
            inputs: self.inputs(stage)?,
            datasets: stage
                .dataset_refs
                .iter()
                .map(|r| (r.dataset.clone(), &self.plan.datasets[&r.dataset]))
                .collect(),
            model_name: &self.plan.spec.model,
            model: if stage.uses_model {
                self.plan.model.as_ref()
            } else {
                None
            },
            dtype: self.plan.spec.dtype,
            prompt_format: self.plan.spec.prompt_format,
            seed: self.plan.spec.seed,
            progress,
            services: self.services,
            base_dir: &self.plan.spec.base_dir,
        })
    }

    /// Runs `stage` in one piece and commits it.
    pub fn run_whole(
        &self,
        stage: &StageInstance,
        progress: &Progress,
    ) -> Result<PathBuf, ExecError> {
        let runner = self.runner(stage)?;
        let fp16 = stage.short_fingerprint();
        let tmp = self.store.begin(&stage.name, fp16)?;
        tracing::info!(stage = %stage.name, kind = %stage.kind, fingerprint = fp16, "running");
        let ctx = self.context(stage, &tmp, progress)?;
        self.finish(stage, &ctx, |ctx| runner.run(ctx))
    }

    /// Runs shard `shard` of `stage` unless it is complete; returns its folder.
    pub fn run_shard(
        &self,
        stage: &StageInstance,
        shard: Shard,
        progress: &Progress,
    ) -> Result<PathBuf, ExecError> {
        let runner = self.runner(stage)?;
        if !runner.shardable() {
            return Err(ExecError::NotShardable(stage.name.clone(), stage.kind));
        }
        let stage_dir = self.store.stage_dir(&stage.name, stage.short_fingerprint());
        if shard::done(&stage_dir, shard.index, shard.count, &stage.fingerprint).is_some() {
            tracing::info!(stage = %stage.name, shard = shard.index, "shard complete");
            return Ok(shard::shard_dir(&stage_dir, shard.index));
        }
        let tmp = shard::begin(&stage_dir, shard.index)?;
        tracing::info!(stage = %stage.name, shard = shard.index, of = shard.count, "running shard");
        let ctx = self.context(stage, &tmp, progress)?;
        let started = SystemTime::now();
        let clock = Instant::now();
        let units = match runner.run_shard(&ctx, shard) {
            Ok(n) => n,
            Err(source) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(ExecError::Stage {
                    stage: format!("{} (shard {} of {})", stage.name, shard.index, shard.count),
                    source,
                });
            }
        };
        let record = shard::ShardRecord {
            index: shard.index,
            count: shard.count,
            fingerprint: stage.fingerprint.clone(),
            host: shard::hostname(),
            pid: std::process::id(),
            slurm_job: shard::slurm_job(),
            started_unix: unix(started),
            finished_unix: unix(SystemTime::now()),
            wall_seconds: clock.elapsed().as_secs_f64(),
            units,
        };
        Ok(shard::commit(&stage_dir, &tmp, &record)?)
    }

    /// Merges the `count` complete shards of `stage` into its outputs and commits them
    /// (the shard folders go with the replaced incomplete folder).
    pub fn merge(
        &self,
        stage: &StageInstance,
        count: usize,
        progress: &Progress,
    ) -> Result<PathBuf, ExecError> {
        let runner = self.runner(stage)?;
        let stage_dir = self.store.stage_dir(&stage.name, stage.short_fingerprint());
        let missing = shard::missing(&stage_dir, count, &stage.fingerprint);
        if !missing.is_empty() {
            return Err(ExecError::ShardsMissing {
                stage: stage.name.clone(),
                missing,
                count,
            });
        }
        let shards: Vec<PathBuf> = (0..count)
            .map(|k| shard::shard_dir(&stage_dir, k))
            .collect();
        let tmp = self.store.begin(&stage.name, stage.short_fingerprint())?;
        tracing::info!(stage = %stage.name, shards = count, "merging");
        let ctx = self.context(stage, &tmp, progress)?;
        self.finish(stage, &ctx, |ctx| runner.merge(ctx, &shards))
    }

    /// Runs `work` in `ctx`, then writes the manifest and commits the folder.
    fn finish(
        &self,
        stage: &StageInstance,
        ctx: &StageContext<'_, S>,
        work: impl FnOnce(&StageContext<'_, S>) -> anyhow::Result<StageOutputs>,
    ) -> Result<PathBuf, ExecError> {
        let tmp = ctx.out_dir;
        let started = SystemTime::now();
        let clock = Instant::now();
        let outputs = match work(ctx) {
            Ok(o) => o,
            Err(source) => {
                ctx.progress.finish("failed");
                let _ = std::fs::remove_dir_all(tmp);
                return Err(ExecError::Stage {
                    stage: stage.name.clone(),
                    source,
                });
            }
        };
        let wall = clock.elapsed().as_secs_f64();
        let manifest = Manifest {
            manifest_version: MANIFEST_VERSION,
            pipeline: self.plan.spec.name.clone(),
            stage: stage.name.clone(),
            kind: stage.kind.name().to_string(),
            fingerprint: stage.fingerprint.clone(),
            fingerprint_inputs: serde_json::to_value(&stage.fingerprint_inputs)
                .expect("fingerprint inputs serialize"),
            outputs: store::describe_outputs(tmp)?,
            timings: Timings {
                started_unix: unix(started),
                finished_unix: unix(SystemTime::now()),
                wall_seconds: wall,
            },
            provenance: Provenance {
                steerbench_version: env!("CARGO_PKG_VERSION").to_string(),
                git_commit: self.git_commit.clone(),
                model_id: ctx.model.map(|m| m.id.clone()),
                model_weight_hash: ctx.model.map(|m| m.weight_hash.clone()),
                model_dtype: ctx.model.map(|_| ctx.dtype.name().to_string()),
                datasets: ctx
                    .datasets
                    .iter()
                    .map(|(n, d)| {
                        let p = DatasetProvenance {
                            source: d.dataset.spec.source.to_string(),
                            blake3: d.hash.clone(),
                            sha256: d.sha256.clone(),
                        };
                        (n.clone(), p)
                    })
                    .collect(),
                spec_hash: self.plan.spec.hash.clone(),
                seed: self.plan.spec.seed,
                threads: self.threads,
            },
            summary: outputs.summary,
        };
        let dir = self
            .store
            .commit(tmp, &stage.name, stage.short_fingerprint(), &manifest)?;
        ctx.progress.finish("done");
        tracing::info!(stage = %stage.name, seconds = wall, "committed");
        Ok(dir)
    }
}

fn join_usize(v: &[usize]) -> String {
    v.iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn git_commit(dir: &Path) -> Option<String> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
