//! Fine-tuning baselines end to end on a tiny random-weight Llama: a `finetune` stage
//! trains `sft_lora` and `dpo_lora` on the same pairs CAA is extracted from, writes PEFT
//! adapters, a training log and a cost table; `evaluate` and `degradation` run the
//! adapters as methods (multiplier 0 = the base model) beside the vectors; the report
//! shows them. Bad settings are refused at plan time with their location.

use std::path::Path;
use std::process::{Command, Output};

mod outputs;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use outputs::{stage_dir, strings};

fn spec(model: &Path, finetune_methods: &str) -> String {
    format!(
        r#"name: ft_e2e
seed: 0
model: {}
prompt_format: chat
datasets:
  pairs:
    source: builtin:sentiment_completion
    format: contrastive_completion
    split: {{ train: 0.5, val: 0.25, test: 0.25 }}
    limit: 16
  corpus:
    source: builtin:corpus_en
    format: text
    split: {{ train: 0.0, val: 0.0, test: 1.0 }}
    limit: 2
    window_tokens: 32
stages:
  acts:
    extract: {{ dataset: pairs.train, layers: all, read_position: completion_mean }}
  vectors:
    vectors: {{ activations: acts, methods: [caa, random] }}
  ft:
    finetune:
      dataset: pairs.train
      val: pairs.val
      methods: {finetune_methods}
  effect:
    evaluate:
      vectors: vectors
      adapters: ft
      datasets: [pairs.val, pairs.test]
      layers: [1]
      multipliers: [-1, 0, 1]
      adapter_multipliers: [0, 0.5, 1, 2]
      metrics: [propensity, steerability]
  damage:
    degradation:
      vectors: vectors
      adapters: ft
      from: effect
      corpus: corpus.test
      metrics: [perplexity]
  report:
    report: {{ inputs: [effect, damage, ft] }}
"#,
        model.display()
    )
}

fn run(dir: &Path, cmd: &str, text: &str) -> Output {
    let spec = dir.join("ft.yaml");
    std::fs::write(&spec, text).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_steerbench"));
    c.args([cmd, spec.to_str().unwrap()]);
    if cmd == "run" {
        c.arg("--runs-dir").arg(dir.join("runs"));
    }
    c.output().unwrap()
}

const METHODS: &str = "[{ sft_lora: { rank: 2, epochs: 2, batch_size: 4, lr: 0.01, modules: [q, v, down] } }, { dpo_lora: { rank: 2, epochs: 2, batch_size: 4, lr: 0.01, beta: 0.5 } }]";

#[test]
fn adapters_are_trained_exported_and_evaluated_like_steering_methods() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny_llama::write_tiny_model(&model);
    let out = run(tmp.path(), "run", &spec(&model, METHODS));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_dir = tmp.path().join("runs/ft_e2e");
    let ft = stage_dir(&run_dir, "ft");
    for m in ["sft_lora", "dpo_lora"] {
        let a = ft.join("adapters").join(m);
        assert!(a.join("adapter_model.safetensors").is_file(), "{m}");
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(a.join("adapter_config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["peft_type"], "LORA");
        assert_eq!(cfg["r"], 2);
    }
    // The SFT adapter covers only its modules: q, v and down of both blocks.
    let sft = candle_core::safetensors::load(
        ft.join("adapters/sft_lora/adapter_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(sft.len(), 2 * 3 * 2);
    assert!(sft.contains_key("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));

    let log = steerbench::store::read_parquet(&ft.join("train_log.parquet")).unwrap();
    let methods = strings(&log, "method");
    // 8 train pairs in batches of 4 over 2 epochs: 4 steps per method, plus 3 val rows.
    assert_eq!(methods.iter().filter(|m| *m == "dpo_lora").count(), 4 + 3);
    let cost = steerbench::store::read_parquet(&ft.join("cost.parquet")).unwrap();
    assert_eq!(strings(&cost, "method"), ["sft_lora", "dpo_lora"]);

    // Evaluate: the adapters are methods with no layer; multiplier 0 is the base model.
    let scores =
        steerbench::store::read_parquet(&stage_dir(&run_dir, "effect").join("scores.parquet"))
            .unwrap();
    let m = strings(&scores, "method");
    assert!(m.iter().any(|x| x == "dpo_lora") && m.iter().any(|x| x == "sft_lora"));
    let layers = scores.column("layer").unwrap().i32().unwrap().clone();
    let mults = scores.column("multiplier").unwrap().f64().unwrap().clone();
    let metric = strings(&scores, "metric");
    let value = scores.column("value").unwrap().f64().unwrap().clone();
    let ids = strings(&scores, "example_id");
    let mut base = std::collections::HashMap::new();
    let mut at_zero = std::collections::HashMap::new();
    for i in 0..scores.height() {
        if metric[i] != "propensity" {
            continue;
        }
        if m[i] == "unsteered" {
            base.insert(ids[i].clone(), value.get(i).unwrap());
        }
        if m[i] == "dpo_lora" {
            assert_eq!(layers.get(i), Some(-1), "an adapter has no layer");
            if mults.get(i) == Some(0.0) {
                at_zero.insert(ids[i].clone(), value.get(i).unwrap());
            }
        }
    }
    assert!(!at_zero.is_empty());
    // The adapters ran over their own multipliers, the vectors over theirs.
    let adapter_mults: std::collections::BTreeSet<String> = (0..scores.height())
        .filter(|&i| m[i] == "sft_lora" && metric[i] == "propensity")
        .map(|i| mults.get(i).unwrap().to_string())
        .collect();
    assert_eq!(
        adapter_mults.into_iter().collect::<Vec<_>>(),
        ["0", "0.5", "1", "2"]
    );
    for (id, v) in &at_zero {
        assert!(
            (v - base[id]).abs() < 1e-9,
            "{id}: x0 {v} vs unsteered {}",
            base[id]
        );
    }
    // Degradation measured the adapters at their chosen settings too.
    let dmg =
        steerbench::store::read_parquet(&stage_dir(&run_dir, "damage").join("scores.parquet"))
            .unwrap();
    assert!(strings(&dmg, "method").iter().any(|x| x == "dpo_lora"));
    // The report names them, with a training curve and the cost table.
    let report = std::fs::read_to_string(
        std::fs::read_dir(run_dir.join("report"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .join("report.md"),
    )
    .unwrap();
    assert!(report.contains("dpo_lora"), "{report}");
    assert!(report.contains("What each method cost"), "{report}");
}

#[test]
fn impossible_fine_tuning_settings_are_refused_at_plan_time() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny_llama::write_tiny_model(&model);
    for (methods, want) in [
        ("[{ sft_lora: { rank: 0 } }]", "rank must be at least 1"),
        (
            "[{ sft_lora: { modules: [qkv] } }]",
            "has no `qkv` projection",
        ),
        (
            "[{ sft_lora: { modules: [gates] } }]",
            "unknown LoRA module `gates`",
        ),
        ("[{ sft_lora: { beta: 0.1 } }]", "dpo_lora only"),
        ("[{ dpo_lora: { layers: [5] } }]", "layer 5 does not exist"),
    ] {
        let out = run(tmp.path(), "plan", &spec(&model, methods));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{methods} was accepted");
        assert!(err.contains(want), "{methods}: {err}");
        assert!(
            err.contains("stages.ft.finetune.methods[0]"),
            "{methods}: {err}"
        );
    }
    // A dataset without pairs (a text corpus) cannot be trained on.
    let text = spec(&model, METHODS).replace(
        "dataset: pairs.train\n      val",
        "dataset: corpus.test\n      val",
    );
    let out = run(tmp.path(), "plan", &text);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stages.ft.finetune.dataset"), "{err}");
}
