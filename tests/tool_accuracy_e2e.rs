//! Agentic competence under steering, on a tiny random-weight Llama:
//! - `degradation` `tool_accuracy`: neutral `tools_neutral` tasks, every candidate call
//!   scored as a continuation after the tool declaration; 1/0 per task, the choice by mean
//!   log-prob per token (recomputed here by hand from the model's log-likelihoods);
//! - `evaluate` `generation` on `tools_caution`: `gen_tool_call_json` / `gen_tool_call_valid`
//!   per continuation, in the scores and the report;
//! - a `tools:` dataset without neutral tasks is refused at plan time, naming it.

use std::path::Path;
use std::process::{Command, Output};

use candle_core::Device;
use steerbench_data as data;
use steerbench_eval::prompt::{self, PromptStyle};
use steerbench_model::{Hooks, ModelSource};

mod outputs;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use outputs::{numbers, stage_dir, strings};

const NEUTRAL: usize = 5;
const GENERATED: usize = 3;

fn spec(model: &Path, tools: &str) -> String {
    format!(
        r#"name: agentic_e2e
seed: 0
model: {}
prompt_format: chat
datasets:
  caution:
    source: builtin:tools_caution
    format: tool_choice
    limit: 8
  neutral:
    source: builtin:tools_neutral
    format: tool_choice
    limit: {NEUTRAL}
stages:
  acts:
    extract: {{ dataset: caution, layers: all, read_position: answer }}
  vectors:
    vectors: {{ activations: acts, methods: [caa, random] }}
  sweep:
    evaluate:
      vectors: vectors
      datasets: [caution]
      layers: [1]
      multipliers: [-1, 0, 1]
      metrics: [propensity, generation]
      generation: {{ max_new_tokens: 6, limit: {GENERATED} }}
  damage:
    degradation:
      vectors: vectors
      from: sweep
      tools: {tools}
      metrics: [tool_accuracy]
      multipliers: [4]
  report:
    report: {{ inputs: [sweep, damage] }}
"#,
        model.display()
    )
}

fn run(dir: &Path, text: &str) -> Output {
    let spec = dir.join("agentic.yaml");
    std::fs::write(&spec, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args(["run", spec.to_str().unwrap(), "--runs-dir"])
        .arg(dir.join("runs"))
        .output()
        .unwrap()
}

/// The unsteered model's top-1 answer on one neutral task, by hand: the prompt as
/// `evaluate` renders it, each candidate's log-probs from `token_logprobs`, the mean per
/// token, the argmax.
fn by_hand(model: &Path, task: &data::ToolTask) -> f64 {
    let lm = steerbench_model::resolve(&ModelSource::LocalDir(model.to_path_buf()))
        .unwrap()
        .load(&Device::Cpu)
        .unwrap();
    let data::ToolTaskKind::Neutral {
        correct,
        distractors,
    } = &task.kind
    else {
        panic!("{} is not a neutral task", task.id)
    };
    let (parts, _) = data::tool_parts(task);
    let pids = prompt::encode(
        &lm.tokenizer,
        &steerbench::stages::common::to_prompt(&parts),
        PromptStyle::Chat,
    )
    .unwrap();
    let means: Vec<f64> = std::iter::once(correct)
        .chain(distractors)
        .map(|call| {
            let seq = prompt::with_continuation(
                &lm.tokenizer,
                &pids,
                false,
                PromptStyle::Chat,
                &call.to_json(),
            )
            .unwrap();
            let lp = lm
                .model
                .token_logprobs(std::slice::from_ref(&seq), &mut Hooks::new())
                .unwrap()
                .remove(0);
            // lp[j] = log p(token j + 1 | tokens ..= j): the call's tokens start at prompt_len.
            let call_lp = &lp[seq.prompt_len - 1..];
            call_lp.iter().map(|x| *x as f64).sum::<f64>() / call_lp.len() as f64
        })
        .collect();
    let best = means.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (means[0] == best && means.iter().filter(|m| **m == best).count() == 1) as u8 as f64
}

#[test]
fn tool_accuracy_and_call_validity_under_steering() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny_llama::write_tiny_model(&model);
    let out = run(tmp.path(), &spec(&model, "neutral"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_dir = tmp.path().join("runs/agentic_e2e");

    // Degradation: one 1/0 row per neutral task and setting.
    let damage = stage_dir(&run_dir, "damage");
    let scores = steerbench::store::read_parquet(&damage.join("scores.parquet")).unwrap();
    let metrics = strings(&scores, "metric");
    let methods = strings(&scores, "method");
    let ids = strings(&scores, "example_id");
    let values = numbers(&scores, "value");
    assert!(metrics.iter().all(|m| m == "tool_accuracy"), "{metrics:?}");
    assert!(values.iter().all(|v| *v == 0.0 || *v == 1.0), "{values:?}");
    let unsteered: Vec<usize> = (0..methods.len())
        .filter(|&i| methods[i] == "unsteered")
        .collect();
    assert_eq!(unsteered.len(), NEUTRAL);
    assert!(methods.iter().any(|m| m == "caa"), "{methods:?}");
    // Every steered setting scores every task.
    assert_eq!(values.len() % NEUTRAL, 0);
    let aggs = steerbench::store::read_parquet(&damage.join("aggregates.parquet")).unwrap();
    let ns = numbers(&aggs, "n");
    assert!(ns.iter().all(|n| *n == NEUTRAL as f64), "{ns:?}");

    // The unsteered choice, recomputed by hand from the model's log-likelihoods.
    let builtin = data::load_builtin("tools_neutral").unwrap();
    let data::Records::ToolChoice(tasks) = &builtin.records else {
        panic!("tools_neutral is tool_choice")
    };
    for &i in &unsteered {
        let task = tasks.iter().find(|t| t.id == ids[i]).unwrap();
        assert_eq!(values[i], by_hand(&model, task), "task {}", ids[i]);
    }

    // Generation: the validity of generated calls per continuation.
    let sweep = stage_dir(&run_dir, "sweep");
    let scores = steerbench::store::read_parquet(&sweep.join("scores.parquet")).unwrap();
    let metrics = strings(&scores, "metric");
    let methods = strings(&scores, "method");
    let values = numbers(&scores, "value");
    for m in ["gen_tool_call_valid", "gen_tool_call_json"] {
        let rows: Vec<usize> = (0..metrics.len()).filter(|&i| metrics[i] == m).collect();
        assert!(
            rows.iter().all(|&i| values[i] == 0.0 || values[i] == 1.0),
            "{m}"
        );
        let n_unsteered = rows.iter().filter(|&&i| methods[i] == "unsteered").count();
        assert_eq!(n_unsteered, GENERATED, "{m}");
        assert!(rows.iter().any(|&i| methods[i] == "caa"), "{m}");
    }
    // A valid call is valid JSON.
    let json: Vec<f64> = (0..metrics.len())
        .filter(|&i| metrics[i] == "gen_tool_call_json")
        .map(|i| values[i])
        .collect();
    let valid: Vec<f64> = (0..metrics.len())
        .filter(|&i| metrics[i] == "gen_tool_call_valid")
        .map(|i| values[i])
        .collect();
    assert!(json.iter().zip(&valid).all(|(j, v)| v <= j));

    let md = std::fs::read_to_string(stage_dir(&run_dir, "report").join("report.md")).unwrap();
    assert!(md.contains("Tool accuracy"), "{md}");
    assert!(md.contains("Valid tool call"), "{md}");
}

#[test]
fn tool_accuracy_needs_neutral_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny_llama::write_tiny_model(&model);
    let out = run(tmp.path(), &spec(&model, "caution"));
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("`caution` has no neutral tool-choice tasks") && e.contains("tools"),
        "{e}"
    );
    // Refused at plan time: nothing ran.
    assert!(!tmp.path().join("runs/agentic_e2e/acts").exists(), "{e}");
}
