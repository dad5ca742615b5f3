//! The command line. `main.rs` builds an `App` (stage registry, shared
//! services, environment) and hands it to `run`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod cluster;
pub mod data;
pub mod tools;

use crate::exec::{self, ProgressBoard, Registry, RunOptions};
use crate::plan::{self, Environment};
use crate::spec::{self, Diagnostics};
use crate::store::{RunStore, Status};

/// Exit code for spec and planning errors.
pub const EXIT_SPEC: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "steerbench",
    version,
    about = "Reproducible evaluation of LLM activation-steering methods"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a pipeline spec and report every error at once.
    Validate {
        file: PathBuf,
        #[command(flatten)]
        model: ModelArg,
    },
    /// Show the stages, their inputs, fingerprints and whether each is cached.
    Plan {
        file: PathBuf,
        #[command(flatten)]
        model: ModelArg,
        /// Folder holding run directories.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
    },
    /// Run a pipeline (resumable; cached stages are skipped), here or as Slurm jobs.
    Run {
        file: PathBuf,
        #[command(flatten)]
        model: ModelArg,
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        /// Local: wait for another run of the same pipeline to finish instead of failing.
        /// Slurm: follow the submitted jobs until they are done, with progress.
        #[arg(long)]
        wait: bool,
        /// Log what happens (tracing) on stderr.
        #[arg(long, short)]
        verbose: bool,
        #[command(flatten)]
        cluster: cluster::ClusterArgs,
    },
    /// Per stage and shard of a run directory: cached / queued / running / failed / done,
    /// with Slurm job ids, elapsed time and logs (the last lines of failed ones).
    Status { run_dir: PathBuf },
    /// Run one stage, one shard of it, or the merge of its shards (what each Slurm job
    /// runs; also usable by hand). Its inputs must be complete.
    #[command(hide = true)]
    Stage(cluster::StageArgs),
    /// List a run directory: stages, status, outputs, row counts, sizes.
    Ls { run_dir: PathBuf },
    /// Check every output of every complete stage (size and blake3) against its manifest.
    /// Exit code 0 when all match, 1 when anything is damaged.
    Verify { run_dir: PathBuf },
    /// Print the JSON Schema of pipeline specs (for yaml-language-server).
    Schema,
    /// Re-render the report of a finished run from its Parquet outputs (no model).
    Report {
        run_dir: PathBuf,
        /// Write here (into OUT/<stage>/) instead of RUN_DIR/.report/<stage>/.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Fetch every remote dataset of FILE and write the sha256 of each into FILE's lock
    /// file (`<name>.lock` beside it); every later plan and run verifies it.
    Lock { file: PathBuf },
    /// Remote datasets: fetch them ahead of a run (for machines without internet).
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Show and manage the model registry and cache.
    Models {
        #[command(subcommand)]
        command: tools::ModelsCommand,
    },
    /// Continue a prompt with the model (optionally steered).
    Generate {
        #[command(flatten)]
        prompt: tools::PromptArgs,
        #[arg(long, default_value_t = 64)]
        max_tokens: usize,
    },
    /// Final-position top-k log-probs (optionally steered), hidden states, full logits as .npy.
    Logits {
        #[command(flatten)]
        prompt: tools::PromptArgs,
        #[arg(long, default_value_t = 10)]
        top_k: usize,
        /// Also print the last-token residual stream after this block.
        #[arg(long)]
        hidden: Option<usize>,
        /// Write the full final-position logits as a NumPy .npy file.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// `--model NAME` / `--dtype D`: run the pipeline on another model, or with its weights in
/// another dtype, without editing it.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ModelArg {
    /// Use this model instead of the spec's `model:` (a registry name, a local directory or
    /// .gguf file, or a hub id); fingerprints follow the model it resolves to.
    #[arg(long = "model")]
    pub model: Option<String>,
    /// Hold the model's weights in this dtype instead of the spec's `dtype:`; the
    /// fingerprints of the stages that run the model follow it.
    #[arg(long = "dtype", value_enum)]
    pub dtype: Option<spec::Dtype>,
}

impl ModelArg {
    /// The spec with the overrides applied.
    pub fn apply(&self, spec: &mut spec::Spec) {
        if let Some(m) = self.resolved() {
            spec.model = m;
        }
        if let Some(d) = self.dtype {
            spec.dtype = d;
        }
    }

    /// The model as the spec will hold it: an existing local path made absolute (the
    /// spec's own relative paths are relative to its folder, this one to the current
    /// directory), anything else as given.
    pub fn resolved(&self) -> Option<String> {
        self.model.as_ref().map(|m| {
            let p = Path::new(m);
            if p.exists() {
                std::path::absolute(p)
                    .map(|a| a.display().to_string())
                    .unwrap_or_else(|_| m.clone())
            } else {
                m.clone()
            }
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Download every remote dataset of a pipeline into the cache
    /// ($STEERBENCH_HOME/datasets), checking the spec's and the lock file's sha256 pins.
    Pull { file: PathBuf },
}

/// What the binary plugs into the engine.
pub struct App<S> {
    pub registry: Registry<S>,
    pub services: S,
    pub environment: Box<dyn Environment>,
}

pub fn run<S: Sync>(app: App<S>, cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate { file, model } => match spec::load(&file).map(|mut s| {
            model.apply(&mut s);
            s
        }) {
            Ok(s) => {
                println!(
                    "{}: ok ({} datasets, {} stages)",
                    file.display(),
                    s.datasets.len(),
                    s.stages.len()
                );
                ExitCode::SUCCESS
            }
            Err(d) => spec_failure(&d),
        },
        Command::Plan {
            file,
            model,
            runs_dir,
        } => {
            let plan = match load_plan(&file, &app, &model) {
                Ok(p) => p,
                Err(d) => return spec_failure(&d),
            };
            print!("{}", render_plan(&plan, &runs_dir));
            ExitCode::SUCCESS
        }
        Command::Run {
            file,
            model,
            runs_dir,
            wait,
            verbose,
            cluster,
        } => {
            if verbose {
                init_tracing();
            }
            let plan = match load_plan(&file, &app, &model) {
                Ok(p) => p,
                Err(d) => return spec_failure(&d),
            };
            let (slurm_opts, shards) = match cluster.options() {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_SPEC);
                }
            };
            if cluster.executor == cluster::Executor::Slurm {
                return cluster::run_slurm(&plan, &app, &file, &runs_dir, &slurm_opts, wait);
            }
            if let Err(e) = crate::slurm::refuse_if_active(&exec::run_dir(&plan, &runs_dir)) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            let opts = RunOptions {
                shards,
                runs_dir,
                wait,
                progress: ProgressBoard::new(true),
            };
            match exec::execute(&plan, &app.registry, &app.services, &opts) {
                Ok(r) => {
                    println!(
                        "{}: {} stage(s) run, {} cached -> {}",
                        plan.spec.name,
                        r.executed.len(),
                        r.cached.len(),
                        r.run_dir.display()
                    );
                    for st in plan
                        .stages
                        .iter()
                        .filter(|s| s.kind == crate::spec::StageKind::Report)
                    {
                        let md = r
                            .run_dir
                            .join(&st.name)
                            .join(st.short_fingerprint())
                            .join("report.md");
                        if md.exists() {
                            println!("report: {}", md.display());
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}", exec::error_chain(&e));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status { run_dir } => cluster::status(&run_dir),
        Command::Stage(args) => cluster::stage(&app, &args),
        Command::Ls { run_dir } => match render_ls(&run_dir) {
            Ok(s) => {
                print!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}", exec::error_chain(&e));
                ExitCode::FAILURE
            }
        },
        Command::Verify { run_dir } => match render_verify(&run_dir) {
            Ok((s, ok)) => {
                print!("{s}");
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("error: {}", exec::error_chain(&e));
                ExitCode::from(EXIT_SPEC)
            }
        },
        Command::Schema => {
            println!("{}", schema_json());
            ExitCode::SUCCESS
        }
        Command::Report { run_dir, out } => {
            outcome(tools::report(&run_dir, out.as_deref()).map(|files| {
                for f in files {
                    println!("{}", f.display());
                }
            }))
        }
        Command::Lock { file } => match data::pull(&file, app.environment.as_ref(), false) {
            Ok(pulled) => match data::write_lock(&file, &pulled) {
                Ok(path) => {
                    print!("{}", data::render(&pulled));
                    println!(
                        "wrote {} ({} remote datasets)",
                        path.display(),
                        pulled.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot write the lock file: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => pull_failure(e),
        },
        Command::Data {
            command: DataCommand::Pull { file },
        } => match data::pull(&file, app.environment.as_ref(), true) {
            Ok(pulled) => {
                print!("{}", data::render(&pulled));
                println!("{} remote datasets cached", pulled.len());
                ExitCode::SUCCESS
            }
            Err(e) => pull_failure(e),
        },
        Command::Models { command } => outcome(tools::models(&command)),
        Command::Generate { prompt, max_tokens } => outcome(tools::generate(&prompt, max_tokens)),
        Command::Logits {
            prompt,
            top_k,
            hidden,
            out,
            json,
        } => outcome(tools::logits(&prompt, top_k, hidden, out.as_deref(), json)),
    }
}

fn outcome(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", exec::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Loads, checks and plans `file`, on `model` when given instead of the spec's.
pub fn load_plan<S>(
    file: &Path,
    app: &App<S>,
    model: &ModelArg,
) -> Result<plan::Plan, Diagnostics> {
    let mut spec = spec::load(file)?;
    model.apply(&mut spec);
    plan::build(spec, app.environment.as_ref(), &app.registry.versions())
}

fn pull_failure(e: data::PullError) -> ExitCode {
    match e {
        data::PullError::Spec(d) => spec_failure(&d),
        data::PullError::Fetch(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn spec_failure(d: &Diagnostics) -> ExitCode {
    eprintln!("{d}");
    ExitCode::from(EXIT_SPEC)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("steerbench=debug,info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The JSON Schema of a pipeline file.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(spec::types::PipelineFile);
    serde_json::to_string_pretty(&schema).expect("schema serializes")
}

pub fn render_plan(plan: &plan::Plan, runs_dir: &Path) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let status = exec::cache_states(plan, runs_dir);
    let _ = writeln!(
        s,
        "pipeline {} -> {}",
        plan.spec.name,
        exec::run_dir(plan, runs_dir).display()
    );
    match &plan.model {
        Some(m) => {
            let _ = writeln!(
                s,
                "model {} ({} layers, hidden {}, weights {}, {})",
                m.id,
                m.n_layers,
                m.hidden_size,
                short(&m.weight_hash),
                plan.spec.dtype
            );
        }
        None => {
            let _ = writeln!(s, "model {} (not used by any stage)", plan.spec.model);
        }
    }
    for (name, d) in &plan.datasets {
        let format = match d.dataset.spec.read_as {
            Some(to) if to != d.dataset.spec.format => format!("{} as {to}", d.dataset.spec.format),
            _ => d.dataset.spec.format.to_string(),
        };
        let sha = d
            .sha256
            .as_ref()
            .map(|h| format!(", sha256 {}", short(h)))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "dataset {name}: {} ({format}, blake3 {}{sha})",
            d.dataset.spec.source,
            short(&d.hash)
        );
    }
    let rows: Vec<[String; 5]> = plan
        .stages
        .iter()
        .zip(&status)
        .map(|(st, (_, done))| {
            let mut inputs: Vec<String> = st.inputs.clone();
            inputs.extend(st.dataset_refs.iter().map(|r| r.to_string()));
            [
                st.name.clone(),
                st.kind.to_string(),
                if inputs.is_empty() {
                    "-".into()
                } else {
                    inputs.join(", ")
                },
                st.short_fingerprint().to_string(),
                match done {
                    crate::store::Cached::Complete(_) => "cached".into(),
                    crate::store::Cached::Missing => "to run".into(),
                    crate::store::Cached::Damaged(_, d) => format!("damaged ({d}) -> will re-run"),
                },
            ]
        })
        .collect();
    s.push_str(&table(
        &["STAGE", "KIND", "INPUTS", "FINGERPRINT", "STATUS"],
        &rows,
    ));
    let to_run = status
        .iter()
        .filter(|(_, d)| !matches!(d, crate::store::Cached::Complete(_)))
        .count();
    let _ = writeln!(s, "{} stage(s), {to_run} to run", plan.stages.len());
    s
}

pub fn render_ls(run_dir: &Path) -> Result<String, crate::store::StoreError> {
    let entries = RunStore::new(run_dir).list()?;
    let mut rows: Vec<[String; 6]> = Vec::new();
    for e in entries {
        match &e.status {
            Status::Complete(m) => {
                if m.outputs.is_empty() {
                    rows.push([
                        e.stage.clone(),
                        e.fingerprint.clone(),
                        "complete".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ]);
                }
                for o in &m.outputs {
                    rows.push([
                        e.stage.clone(),
                        e.fingerprint.clone(),
                        "complete".into(),
                        o.path.clone(),
                        o.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                        human_bytes(o.bytes),
                    ]);
                }
            }
            Status::Damaged(_, d) => rows.push([
                e.stage,
                e.fingerprint,
                format!("damaged: {d}"),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
            Status::Replaced => rows.push([
                e.stage,
                "-".into(),
                "replaced (old damaged folder, removed by the next run)".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
            Status::Incomplete => rows.push([
                e.stage,
                e.fingerprint,
                "incomplete (no manifest)".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
            Status::Interrupted => rows.push([
                e.stage,
                "-".into(),
                "interrupted (temporary)".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
            Status::Corrupt(why) => rows.push([
                e.stage,
                e.fingerprint,
                format!("corrupt: {why}"),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
        }
    }
    Ok(table(
        &["STAGE", "FINGERPRINT", "STATUS", "OUTPUT", "ROWS", "SIZE"],
        &rows,
    ))
}

/// `steerbench verify`: one line per stage folder; `true` when every complete folder's
/// outputs match their manifest in size and blake3 (incomplete and interrupted folders are
/// listed but do not count as damage: no run reuses them).
pub fn render_verify(run_dir: &Path) -> Result<(String, bool), crate::store::StoreError> {
    use std::fmt::Write;
    let mut s = String::new();
    let mut ok = true;
    for e in RunStore::new(run_dir).list()? {
        let what = match &e.status {
            Status::Complete(m) | Status::Damaged(m, _) => {
                match crate::store::verify_outputs(&e.dir, m) {
                    Ok(()) => format!("ok ({} file(s))", m.outputs.len()),
                    Err(d) => {
                        ok = false;
                        format!("damaged: {d}")
                    }
                }
            }
            Status::Corrupt(why) => {
                ok = false;
                format!("damaged: {why}")
            }
            Status::Incomplete => "incomplete (no manifest; never reused)".into(),
            Status::Interrupted => "interrupted (temporary; the next run removes it)".into(),
            Status::Replaced => "replaced (old damaged folder; the next run removes it)".into(),
        };
        let fp = if e.fingerprint.is_empty() {
            "-"
        } else {
            &e.fingerprint
        };
        let _ = writeln!(s, "{} {fp}: {what}", e.stage);
    }
    Ok((s, ok))
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut w: [usize; N] = header.map(str::len);
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}
