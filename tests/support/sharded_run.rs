//! The pipeline of the sharding tests (tiny Llama; extract, vectors, evaluate with two
//! positions and a baseline, degradation, report) and how they compare two runs of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::outputs::stage_dir;
use super::tiny_llama;

/// The spec; `multipliers` sets the evaluate sweep's width (its cost).
pub fn spec_with(model: &Path, multipliers: &str) -> String {
    format!(
        r#"# Sharding test.
name: shards_e2e
seed: 3
model: {}
prompt_format: chat
datasets:
  ab:
    source: builtin:sentiment_ab
    format: contrastive_ab
    split: {{ train: 0.5, val: 0.25, test: 0.25 }}
    limit: 36
  corpus:
    source: builtin:corpus_en
    format: text
    split: {{ train: 0.0, val: 0.0, test: 1.0 }}
    limit: 2
    window_tokens: 64
stages:
  acts:
    extract: {{ dataset: ab.train, layers: all, read_position: answer }}
  vectors:
    vectors: {{ activations: acts, methods: [caa, pca, random, shuffled], normalize: resid_norm }}
  sweep:
    evaluate:
      vectors: vectors
      datasets: [ab.val, ab.test]
      layers: [0, 1]
      multipliers: {multipliers}
      positions: [all, last]
      metrics: [propensity, steerability]
      baselines: [letter_swap]
  damage:
    degradation: {{ vectors: vectors, from: sweep, corpus: corpus.test, metrics: [perplexity] }}
  report:
    report: {{ inputs: [sweep, damage] }}
"#,
        model.display(),
    )
}

pub const MULTIPLIERS: &str = "[-2, -1, 0, 0.5, 1, 2]";

pub struct Setup {
    pub _tmp: tempfile::TempDir,
    pub spec: PathBuf,
    pub root: PathBuf,
    pub model: PathBuf,
}

pub fn setup() -> Setup {
    setup_with(MULTIPLIERS)
}

/// A temporary folder with the tiny model and the spec (evaluate sweeping `multipliers`).
pub fn setup_with(multipliers: &str) -> Setup {
    setup_sized(multipliers, None)
}

/// Like `setup_with`, with a model of (hidden, feed-forward) width instead of the tiny one.
pub fn setup_sized(multipliers: &str, size: Option<(usize, usize)>) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny-llama");
    match size {
        Some((hidden, ff)) => tiny_llama::write_model(&model, hidden, ff, tiny_llama::LAYERS),
        None => tiny_llama::write_tiny_model(&model),
    }
    let spec_path = tmp.path().join("shards_e2e.yaml");
    std::fs::write(&spec_path, spec_with(&model, multipliers)).unwrap();
    Setup {
        root: tmp.path().to_path_buf(),
        spec: spec_path,
        model,
        _tmp: tmp,
    }
}

pub fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args(args)
        .output()
        .unwrap()
}

pub fn ok(out: &Output) -> String {
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "failed:\n{o}\n{e}");
    o.to_string()
}

pub fn run(s: &Setup, runs: &str, extra: &[&str]) -> PathBuf {
    let runs = s.root.join(runs);
    let mut args = vec![
        "run",
        s.spec.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
    ];
    args.extend(extra);
    ok(&bin(&args));
    runs.join("shards_e2e")
}

/// A duration as the report writes it (`0.52 s`, `3 min 04 s`, `1 h 02 min`).
pub fn is_duration(cell: &str) -> bool {
    let words: Vec<&str> = cell.split_whitespace().collect();
    match words.as_slice() {
        [n, "s"] => n.parse::<f64>().is_ok(),
        [a, "min", b, "s"] | [a, "h", b, "min"] => {
            a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok()
        }
        _ => false,
    }
}

/// The report with its stage wall times (the one thing two runs of the same spec
/// never share) blanked.
pub fn report_without_times(run: &Path) -> String {
    let md = std::fs::read_to_string(stage_dir(run, "report").join("report.md")).unwrap();
    md.lines()
        .map(|l| {
            if !l.starts_with('|') {
                return l.to_string();
            }
            l.split('|')
                .map(|c| if is_duration(c.trim()) { " T " } else { c })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every stage's outputs as the manifest lists them: (path, bytes, blake3, rows), but
/// for the report's markdown, compared by `report_without_times`.
/// Per stage: its output files as (path, bytes, blake3, rows).
pub type Listing = Vec<(String, Vec<(String, u64, String, Option<u64>)>)>;

pub fn outputs_of(run: &Path) -> Listing {
    outputs_of_stages(run, &["acts", "vectors", "sweep", "damage", "report"])
}

/// Output listings of the named stages.
pub fn outputs_of_stages(run: &Path, stages: &[&str]) -> Listing {
    stages
        .iter()
        .map(|st| {
            let dir = stage_dir(run, st);
            let m = steerbench::store::RunStore::read_manifest(&dir).unwrap();
            assert!(
                !dir.join("shards").exists(),
                "{st}: shards removed by the merge"
            );
            let files = m
                .outputs
                .into_iter()
                .filter(|o| o.path != "report.md")
                .map(|o| (o.path, o.bytes, o.blake3, o.rows))
                .collect();
            (st.to_string(), files)
        })
        .collect()
}

/// The text without terminal colour codes (`ESC [ … m`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
