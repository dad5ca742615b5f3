//! Test doubles for the engine: a model probe with fixed facts and a stage
//! runner that writes small, real Parquet tables computed from its params
//! and its inputs' tables, so caching and resume can be checked on content.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use polars::prelude::*;
use steerbench::exec::{
    ProgressBoard, Registry, RunOptions, RunReport, StageContext, StageOutputs, StageRunner,
};
use steerbench::plan::{
    self, BuiltinStore, EnvError, LocalEnvironment, ModelFacts, ModelProbe, Plan,
};
use steerbench::spec::{self, StageKind};

pub struct FakeModels;

impl ModelProbe for FakeModels {
    fn model_facts(&self, model: &str) -> Result<ModelFacts, EnvError> {
        if model == "fake-model" {
            Ok(ModelFacts {
                id: "fake-model".into(),
                n_layers: 30,
                hidden_size: 8,
                weight_hash: "ab".repeat(32),
                context_length: 2048,
                lora_modules: ["q", "k", "v", "o", "gate", "up", "down"]
                    .map(String::from)
                    .to_vec(),
            })
        } else {
            Err(EnvError::Unavailable(format!(
                "no model named `{model}` in the test registry"
            )))
        }
    }
}

/// Writes `parts` Parquet files per stage; sleeps `STEERBENCH_TEST_SLEEP_MS`
/// (test-only hook, read here in test code) before each file.
pub struct TestStage {
    pub parts: usize,
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ceb9fe1a85ec53);
    x ^ (x >> 33)
}

impl StageRunner<()> for TestStage {
    fn version(&self) -> u32 {
        1
    }

    fn run(&self, ctx: &StageContext<'_, ()>) -> anyhow::Result<StageOutputs> {
        let sleep_ms: u64 = std::env::var("STEERBENCH_TEST_SLEEP_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        // Content depends on the declared params and on the input tables only.
        let params = serde_json::to_vec(ctx.params())?;
        let mut seed = u64::from_le_bytes(blake3::hash(&params).as_bytes()[..8].try_into()?);
        let mut carry = 0.0f64;
        for name in ctx.input_names() {
            let dir = ctx.input_dir(name)?;
            for part in 0..self.parts {
                let df = steerbench::store::read_parquet(&dir.join(format!("part{part}.parquet")))?;
                carry += df.column("value")?.f64()?.sum().unwrap_or(0.0);
            }
        }
        seed ^= ctx.seed();
        ctx.progress().set_total(self.parts as u64);
        for part in 0..self.parts {
            std::thread::sleep(Duration::from_millis(sleep_ms));
            let n = 5 + part;
            let rows: Vec<u32> = (0..n as u32).collect();
            let labels: Vec<String> = rows.iter().map(|r| format!("{}-{r}", ctx.name())).collect();
            let values: Vec<f64> = rows
                .iter()
                .map(|&r| {
                    (mix(seed.wrapping_add(r as u64 + 1000 * part as u64)) % 1_000_000) as f64 / 1e6
                        + carry * 1e-3
                })
                .collect();
            let mut df = df!("row" => rows, "label" => labels, "value" => values)?;
            ctx.write_parquet(&format!("part{part}"), &mut df)?;
            ctx.progress().inc(1);
        }
        let mut out = StageOutputs::default();
        out.summary.insert("carry".into(), serde_json::json!(carry));
        Ok(out)
    }
}

pub fn registry(parts: usize) -> Registry<()> {
    let mut r = Registry::new();
    for k in StageKind::ALL {
        r.register(k, TestStage { parts });
    }
    r
}

pub fn environment(builtins: &Path) -> LocalEnvironment<FakeModels> {
    LocalEnvironment::new(BuiltinStore::Dir(builtins.to_path_buf()), FakeModels)
}

pub const SPEC: &str = r#"# A small pipeline for engine tests.
name: demo
seed: 7
model: fake-model
datasets:
  sent:
    source: sent.jsonl
    format: contrastive_ab
    split: { train: 0.6, val: 0.2, test: 0.2 }
  corpus:
    source: builtin:corpus
    format: text
    window_tokens: 64
stages:
  acts: { extract: { dataset: sent.train, layers: [2, 4], read_position: answer } }
  vecs: { vectors: { activations: acts, methods: [caa, { probe: { l2: 0.5 } }, random] } }
  effect:
    evaluate:
      vectors: vecs
      datasets: [sent.val, sent.test]
      layers: [2, 4]
      multipliers: [-1, 0, 1]
      metrics: [ab_probability, propensity]
  damage: { degradation: { vectors: vecs, from: effect, corpus: corpus, metrics: [perplexity] } }
  report: { report: { inputs: [effect, damage] } }
"#;

/// A scratch folder with the spec's data files.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(spec_text: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        // Ten A/B records: enough that every split of 0.6 / 0.2 / 0.2 has records and
        // the train split has pairs to contrast (plan checks both).
        let sent: String = (0..10)
            .map(|i| format!("{{\"question\": \"q{i}? (A) yes (B) no\", \"answer_matching_behavior\": \"(A)\", \"answer_not_matching_behavior\": \"(B)\"}}\n"))
            .collect();
        std::fs::write(dir.path().join("sent.jsonl"), sent).unwrap();
        std::fs::create_dir_all(dir.path().join("builtin")).unwrap();
        std::fs::write(
            dir.path().join("builtin/corpus.jsonl"),
            "{\"text\": \"Some text.\"}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("pipeline.yaml"), spec_text).unwrap();
        Workspace { dir }
    }
    pub fn spec_path(&self) -> PathBuf {
        self.dir.path().join("pipeline.yaml")
    }
    pub fn runs(&self) -> PathBuf {
        self.dir.path().join("runs")
    }
    pub fn write_spec(&self, text: &str) {
        std::fs::write(self.spec_path(), text).unwrap();
    }
    pub fn plan(&self, parts: usize) -> Plan {
        let spec = spec::load(&self.spec_path()).unwrap_or_else(|d| panic!("{d}"));
        let env = environment(&self.dir.path().join("builtin"));
        plan::build(spec, &env, &registry(parts).versions()).unwrap_or_else(|d| panic!("{d}"))
    }
    pub fn run(&self, parts: usize, wait: bool) -> Result<RunReport, steerbench::exec::ExecError> {
        let plan = self.plan(parts);
        let opts = RunOptions {
            shards: 1,
            runs_dir: self.runs(),
            wait,
            progress: ProgressBoard::hidden(),
        };
        steerbench::exec::execute(&plan, &registry(parts), &(), &opts)
    }
}

/// Every Parquet file under `dir` (relative path → DataFrame), sorted.
pub fn parquet_tables(dir: &Path) -> Vec<(String, DataFrame)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, DataFrame)>) {
        let mut entries: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                walk(base, &p, out);
            } else if name.ends_with(".parquet") {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().to_string();
                out.push((rel, steerbench::store::read_parquet(&p).unwrap()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// Arguments that make a test binary run only its ignored `child_process_entry` test.
pub const CHILD_ARGS: [&str; 5] = [
    "child_process_entry",
    "--exact",
    "--ignored",
    "--nocapture",
    "--test-threads=1",
];

/// The body of a `child_process_entry` test: runs the workspace named by
/// `STEERBENCH_CHILD_DIR` (its spec, builtins and `runs/`) with `parts` parts per stage.
/// `None` when the variable is unset (the test was run directly, not as a child).
pub fn child_run(parts: usize) -> Option<Result<RunReport, steerbench::exec::ExecError>> {
    let dir = PathBuf::from(std::env::var_os("STEERBENCH_CHILD_DIR")?);
    let spec = spec::load(&dir.join("pipeline.yaml")).unwrap_or_else(|d| panic!("{d}"));
    let env = environment(&dir.join("builtin"));
    let plan =
        plan::build(spec, &env, &registry(parts).versions()).unwrap_or_else(|d| panic!("{d}"));
    let opts = RunOptions {
        shards: 1,
        runs_dir: dir.join("runs"),
        wait: false,
        progress: ProgressBoard::hidden(),
    };
    Some(steerbench::exec::execute(
        &plan,
        &registry(parts),
        &(),
        &opts,
    ))
}

/// A command running this test binary's `child_process_entry` on `ws`.
pub fn child_command(ws: &Workspace, sleep_ms: u64) -> std::process::Command {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args(CHILD_ARGS)
        .env("STEERBENCH_CHILD_DIR", ws.dir.path())
        .env("STEERBENCH_TEST_SLEEP_MS", sleep_ms.to_string());
    c
}
