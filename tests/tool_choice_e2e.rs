//! Tool-choice behaviour tasks in `evaluate` on a tiny random-weight Llama: the built-in
//! `tools_caution` tasks are scored like contrastive completions (the cautious call's
//! JSON against the risky one's, after the tool declaration in the system turn), with a
//! system-prompt baseline and a report; neutral tasks and few-shot are clear errors.

use std::path::Path;
use std::process::{Command, Output};

mod outputs;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use outputs::{stage_dir, strings};

fn spec(model: &Path, tools: &str, baselines: &str) -> String {
    format!(
        r#"name: tools_e2e
seed: 0
model: {}
prompt_format: chat
datasets:
  pairs:
    source: builtin:sentiment_completion
    format: contrastive_completion
    limit: 8
  tools:
    source: builtin:{tools}
    format: tool_choice
    limit: 10
stages:
  acts:
    extract: {{ dataset: pairs, layers: all, read_position: answer }}
  vectors:
    vectors: {{ activations: acts, methods: [caa, random] }}
  sweep:
    evaluate:
      vectors: vectors
      datasets: [tools]
      layers: [1]
      multipliers: [-1, 0, 1]
      metrics: [propensity, steerability]
      baselines: {baselines}
  report:
    report: {{ inputs: [sweep] }}
"#,
        model.display()
    )
}

fn run(dir: &Path, text: &str) -> Output {
    let spec = dir.join("tools.yaml");
    std::fs::write(&spec, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args(["run", spec.to_str().unwrap(), "--runs-dir"])
        .arg(dir.join("runs"))
        .output()
        .unwrap()
}

#[test]
fn cautious_calls_are_scored_against_risky_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny_llama::write_tiny_model(&model);
    let out = run(
        tmp.path(),
        &spec(
            &model,
            "tools_caution",
            "[{ system_prompt: { positive: \"Act with care.\", negative: \"Act fast.\" } }]",
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_dir = tmp.path().join("runs/tools_e2e");
    let scores =
        steerbench::store::read_parquet(&stage_dir(&run_dir, "sweep").join("scores.parquet"))
            .unwrap();
    let ids = strings(&scores, "example_id");
    let metrics = strings(&scores, "metric");
    let methods = strings(&scores, "method");
    assert!(
        ids.iter().all(|i| i.starts_with("tool-caution-")),
        "{ids:?}"
    );
    for m in ["propensity", "propensity_norm", "steerability_slope"] {
        assert!(metrics.iter().any(|x| x == m), "{m}: {metrics:?}");
    }
    for m in ["unsteered", "caa", "random", "system_prompt_positive"] {
        assert!(methods.iter().any(|x| x == m), "{m}: {methods:?}");
    }
    // 10 tasks × (unsteered + 2 methods × 3 multipliers + 2 baselines) × 2 propensities.
    let n_prop = metrics.iter().filter(|m| *m == "propensity").count();
    assert_eq!(n_prop, 10 * (1 + 2 * 3 + 2), "{n_prop}");
    let md = std::fs::read_to_string(stage_dir(&run_dir, "report").join("report.md")).unwrap();
    assert!(md.contains("tools"), "{md}");
}

#[test]
fn neutral_tasks_and_few_shot_are_refused_with_reasons() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny_llama::write_tiny_model(&model);
    let out = run(tmp.path(), &spec(&model, "tools_neutral", "[]"));
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("no tool-choice behaviour tasks"), "{e}");
    let out = run(
        tmp.path(),
        &spec(&model, "tools_caution", "[{ few_shot: { k: 2 } }]"),
    );
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("few_shot is not defined for tool_choice"), "{e}");
}
