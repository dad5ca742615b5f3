//! Function Vectors and In-Context Vectors end to end on the real default model
//! (fetched by steerbench itself when missing), on the built-in antonyms task: the head
//! ranking runs, the function vector is stored at its layer, ICL accuracy and the
//! correct answer's log-probability are scored zero-shot with and without each vector
//! and few-shot, and the report shows the ICL table.

use std::path::Path;
use std::process::Command;

mod outputs;

use outputs::{numbers, stage_dir, strings};
use polars::prelude::*;

const SPEC: &str = r#"# ICL end-to-end test: small settings of pipelines/icl_vectors.yaml.
name: icl_test
seed: 0
model: smollm2-135m-instruct
prompt_format: raw
datasets:
  antonyms:
    source: builtin:icl_antonyms
    format: icl_task
    split: { train: 0.5, val: 0.2, test: 0.3 }
stages:
  acts:
    extract: { dataset: antonyms.train, layers: all, read_position: last_prompt }
  vectors:
    vectors:
      activations: acts
      methods:
        - icv
        - function_vector: { layer: 9, dataset: antonyms.train, top_k: 10, shots: 10, prompts: 8, head_layers: [3, 5, 7, 8, 9, 10, 11] }
  effect:
    evaluate:
      vectors: vectors
      datasets: antonyms.test
      layers: [9]
      multipliers: [0, 4]
      positions: last
      metrics: [icl_accuracy]
      baselines:
        - few_shot: { k: 5 }
  report:
    report: { inputs: [effect] }
"#;

fn read(path: &Path) -> DataFrame {
    let f = std::fs::File::open(path).unwrap();
    ParquetReader::new(f).finish().unwrap()
}

/// Mean of `metric` over the rows of `method` (and `multiplier` when given).
fn mean_of(scores: &DataFrame, method: &str, mult: Option<f64>, metric: &str) -> f64 {
    let (m, k, x, v) = (
        strings(scores, "method"),
        strings(scores, "metric"),
        numbers(scores, "multiplier"),
        numbers(scores, "value"),
    );
    let vals: Vec<f64> = (0..m.len())
        .filter(|&i| m[i] == method && k[i] == metric && mult.map_or(true, |y| x[i] == y))
        .map(|i| v[i])
        .collect();
    assert!(!vals.is_empty(), "no {metric} rows for {method}");
    vals.iter().sum::<f64>() / vals.len() as f64
}

#[test]
fn function_vectors_rank_heads_and_raise_the_answer_zero_shot() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("icl_test.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .arg("run")
        .arg(&spec)
        .arg("--runs-dir")
        .arg(tmp.path().join("runs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = tmp.path().join("runs/icl_test");

    // The head ranking: every head of the 7 ranked layers (SmolLM2: 9 heads), best first.
    let vdir = stage_dir(&run, "vectors");
    let heads = read(&vdir.join("fv_heads.parquet"));
    assert_eq!(heads.height(), 7 * 9);
    let aie = numbers(&heads, "mean_indirect_effect");
    assert!(aie.windows(2).all(|w| w[0] >= w[1]), "ranked best first");
    assert!(aie.iter().all(|x| x.is_finite()));
    let layers = numbers(&heads, "layer");
    assert!(layers.iter().all(|&l| (3.0..=11.0).contains(&l)));

    // The vector: one fixed-layer row at layer 9, from the top 10 heads.
    let vecs = read(&vdir.join("vectors.parquet"));
    let (methods, kinds, infos) = (
        strings(&vecs, "method"),
        strings(&vecs, "kind"),
        strings(&vecs, "info"),
    );
    let fv: Vec<usize> = (0..methods.len())
        .filter(|&i| methods[i] == "function_vector")
        .collect();
    assert_eq!(fv.len(), 1);
    assert_eq!(kinds[fv[0]], "fixed_additive");
    assert_eq!(numbers(&vecs, "layer")[fv[0]], 9.0);
    assert!(numbers(&vecs, "norm")[fv[0]] > 0.0);
    let info: serde_json::Value = serde_json::from_str(&infos[fv[0]]).unwrap();
    assert_eq!(info["heads"].as_array().unwrap().len(), 10);
    // ICV: one vector per layer of the model.
    assert_eq!(methods.iter().filter(|m| *m == "icv").count(), 30);

    // Scores: zero-shot with and without the vectors, few-shot.
    let scores = read(&stage_dir(&run, "effect").join("scores.parquet"));
    let zero = mean_of(&scores, "unsteered", None, "icl_accuracy");
    let few = mean_of(&scores, "few_shot", None, "icl_accuracy");
    let fv_acc = mean_of(&scores, "function_vector", Some(4.0), "icl_accuracy");
    let icv_acc = mean_of(&scores, "icv", Some(4.0), "icl_accuracy");
    let lp0 = mean_of(&scores, "unsteered", None, "propensity");
    let lp_fv = mean_of(&scores, "function_vector", Some(4.0), "propensity");
    eprintln!(
        "antonyms test: zero-shot {zero:.3}, few-shot {few:.3}, zero-shot + FV×4 (layer 9) {fv_acc:.3}, \
         + ICV×4 {icv_acc:.3}; log p(answer) {lp0:.3} -> {lp_fv:.3} with the FV"
    );
    // Multiplier 0 is the unsteered model exactly.
    assert_eq!(
        mean_of(&scores, "function_vector", Some(0.0), "icl_accuracy"),
        zero
    );
    assert!(few > zero, "few-shot prompting helps on antonyms");
    assert!(
        lp_fv > lp0 + 0.25,
        "the function vector raises log p(correct answer): {lp0} -> {lp_fv}"
    );
    assert!(fv_acc >= zero);

    let report_dir = stage_dir(&run, "report");
    let md = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    assert!(md.contains("## ICL"), "{md}");
    assert!(md.contains("function_vector"));
}
