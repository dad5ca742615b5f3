//! Conversations in `evaluate` on a tiny random-weight Llama: the built-in
//! `conversations_sentiment` scored turn by turn in every turn scope, `turns.parquet`
//! with effect and persistence per turn, a system-prompt baseline, a sharded run equal
//! to a whole one, and the spec errors of mixing turn scopes with other selectors.

use std::path::Path;
use std::process::{Command, Output};

mod outputs;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use outputs::{stage_dir, strings};

fn spec(model: &Path, positions: &str, baselines: &str) -> String {
    format!(
        r#"name: conv_e2e
seed: 0
model: {}
prompt_format: chat
datasets:
  pairs:
    source: builtin:sentiment_completion
    format: contrastive_completion
    limit: 8
  chats:
    source: builtin:conversations_sentiment
    format: conversation
    limit: 12
stages:
  acts:
    extract: {{ dataset: pairs, layers: all, read_position: answer }}
  vectors:
    vectors: {{ activations: acts, methods: [caa, random] }}
  sweep:
    evaluate:
      vectors: vectors
      datasets: [chats.test]
      layers: [1]
      multipliers: [-2, 0, 2]
      positions: {positions}
      metrics: [propensity, steerability]
      baselines: {baselines}
  report:
    report: {{ inputs: [sweep] }}
"#,
        model.display()
    )
}

fn run(dir: &Path, text: &str, extra: &[&str]) -> Output {
    let spec = dir.join("conv.yaml");
    std::fs::write(&spec, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args(["run", spec.to_str().unwrap(), "--runs-dir"])
        .arg(dir.join("runs"))
        .args(extra)
        .output()
        .unwrap()
}

const SCOPES: &str = "[all_turns, first_turn, current_turn, user_turns]";

#[test]
fn conversations_are_scored_per_turn_in_every_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny_llama::write_tiny_model(&model);
    let baseline = "[{ system_prompt: { positive: \"Be cheerful.\", negative: \"Be gloomy.\" } }]";
    let out = run(tmp.path(), &spec(&model, SCOPES, baseline), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = stage_dir(&tmp.path().join("runs/conv_e2e"), "sweep");
    let scores = steerbench::store::read_parquet(&dir.join("scores.parquet")).unwrap();
    let ids = strings(&scores, "example_id");
    assert!(ids.iter().all(|i| i.contains("/turn")), "{ids:?}");
    let positions = strings(&scores, "position");
    for s in ["all_turns", "first_turn", "current_turn", "user_turns"] {
        assert!(positions.iter().any(|p| p == s), "{s}");
    }
    let methods = strings(&scores, "method");
    assert!(methods.iter().any(|m| m == "system_prompt_positive"));

    let turns = steerbench::store::read_parquet(&dir.join("turns.parquet")).unwrap();
    let col = |name: &str| -> Vec<f64> {
        turns
            .column(name)
            .unwrap()
            .cast(&polars::prelude::DataType::Float64)
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    };
    let turn = col("turn");
    let persistence = col("persistence");
    let effect = col("effect");
    let tpos = strings(&turns, "position");
    let tmetric = strings(&turns, "metric");
    assert!(
        turn.iter().any(|&t| t == 1.0) && turn.iter().any(|&t| t >= 3.0),
        "{turn:?}"
    );
    // Persistence at the first turn is 1 wherever the first turn moved at all.
    for i in 0..turn.len() {
        if turn[i] == 1.0 && effect[i] != 0.0 && tmetric[i] != "steerability_slope" {
            assert!(
                (persistence[i] - 1.0).abs() < 1e-9,
                "row {i}: {}",
                persistence[i]
            );
        }
    }
    for s in [
        "all_turns",
        "first_turn",
        "current_turn",
        "user_turns",
        "none",
    ] {
        assert!(tpos.iter().any(|p| p == s), "{s}: {tpos:?}");
    }
    let md = std::fs::read_to_string(
        stage_dir(&tmp.path().join("runs/conv_e2e"), "report").join("report.md"),
    )
    .unwrap();
    assert!(md.contains("Conversations"), "{md}");

    // Sharded: the same tables, byte for byte.
    let tmp2 = tempfile::tempdir().unwrap();
    let out = run(
        tmp2.path(),
        &spec(&model, SCOPES, baseline),
        &["--shards", "3"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir2 = stage_dir(&tmp2.path().join("runs/conv_e2e"), "sweep");
    for f in ["scores.parquet", "turns.parquet", "aggregates.parquet"] {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(dir2.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn turn_scopes_and_conversations_go_together() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny_llama::write_tiny_model(&model);
    let out = run(tmp.path(), &spec(&model, "[all]", "[]"), &[]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("steer it with turn scopes"), "{e}");
    let out = run(
        tmp.path(),
        &spec(&model, SCOPES, "[{ few_shot: { k: 2 } }]"),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("few_shot` is not defined for conversations"),
        "{e}"
    );
}

#[test]
fn the_model_writes_every_turn_of_a_conversation_under_steering() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny_llama::write_tiny_model(&model);
    let text = spec(&model, "[first_turn, current_turn]", "[]").replace(
        "metrics: [propensity, steerability]",
        "metrics: [propensity, generation]\n      generation: { max_new_tokens: 4, limit: 2 }",
    );
    let out = run(tmp.path(), &text, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = stage_dir(&tmp.path().join("runs/conv_e2e"), "sweep");
    let gens = steerbench::store::read_parquet(&dir.join("generations.parquet")).unwrap();
    let ids = strings(&gens, "example_id");
    let methods = strings(&gens, "method");
    // Two conversations, every turn written, unsteered and under each chosen setting.
    let convs: std::collections::BTreeSet<&str> = ids
        .iter()
        .map(|i| i.rsplit_once("/turn").unwrap().0)
        .collect();
    assert_eq!(convs.len(), 2, "{ids:?}");
    assert!(ids.iter().any(|i| i.ends_with("/turn3")), "{ids:?}");
    assert!(methods.iter().any(|m| m == "unsteered") && methods.iter().any(|m| m == "caa"));
    let turns = steerbench::store::read_parquet(&dir.join("turns.parquet")).unwrap();
    let metrics = strings(&turns, "metric");
    assert!(
        metrics.iter().any(|m| m == "gen_fluency_ppl"),
        "{metrics:?}"
    );
}
