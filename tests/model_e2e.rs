//! The runtime on the real default model, from outside and inside: `logits` and
//! `generate` commands (with a steering file), and steered greedy generation that
//! differs from the unsteered one and is identical with and without the KV cache.

use std::collections::BTreeMap;
use std::process::Command;

use steerbench_model::{
    Device, GenerateOptions, HookPoint, Hooks, Intervention, ModelSource, Positions, Site, Tensor,
};
use steerbench_steering::ControlVector;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_steerbench"))
}

/// A deterministic direction with a norm comparable to the residual stream.
fn direction(d: usize, norm: f32) -> Vec<f32> {
    let v: Vec<f32> = (0..d)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x * norm / n).collect()
}

#[test]
fn logits_command_prints_sorted_top_k_and_writes_npy() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("logits.npy");
    let out = bin()
        .args([
            "logits",
            "--prompt",
            "The capital of France is",
            "--top-k",
            "5",
            "--hidden",
            "6",
            "--json",
            "--out",
        ])
        .arg(&npy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = v["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    let lps: Vec<f64> = top.iter().map(|t| t["logprob"].as_f64().unwrap()).collect();
    assert!(lps.windows(2).all(|w| w[0] >= w[1]) && lps[0] <= 0.0);
    assert_eq!(v["hidden"]["values"].as_array().unwrap().len(), 576);
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0);
    assert_eq!(bytes.len() - 10 - header_len, 49152 * 4);
}

#[test]
fn generate_command_is_changed_by_a_control_vector() {
    let dir = tempfile::tempdir().unwrap();
    let cv = dir.path().join("v.gguf");
    let mut directions = BTreeMap::new();
    directions.insert(6, direction(576, 60.0));
    ControlVector {
        model_hint: "llama".into(),
        directions,
    }
    .write_file(&cv)
    .unwrap();
    let run = |steer: bool| {
        let mut c = bin();
        c.args([
            "generate",
            "--chat",
            "--prompt",
            "Describe your morning in one sentence.",
            "--max-tokens",
            "16",
        ]);
        if steer {
            c.arg("--steer")
                .arg(&cv)
                .args(["--layer", "6", "--alpha", "1"]);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let plain = run(false);
    let steered = run(true);
    assert!(!plain.trim().is_empty());
    assert_ne!(plain, steered, "steering changed nothing");
    // A layer the file does not hold is a clear error, not a panic.
    let out = bin()
        .args(["generate", "--prompt", "Hi", "--steer"])
        .arg(&cv)
        .args(["--layer", "3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no vector for layer 3"));
}

#[test]
fn steered_greedy_generation_is_identical_with_and_without_kv_cache() {
    let lm = steerbench_model::resolve(&ModelSource::parse("smollm2-135m-instruct"))
        .unwrap()
        .load(&Device::Cpu)
        .unwrap();
    let prompt = lm
        .tokenizer
        .encode("Once upon a time, in a small village,", false)
        .unwrap();
    let mut hooks = Hooks::new();
    let v = Tensor::from_vec(direction(576, 40.0), 576, &Device::Cpu).unwrap();
    hooks.write(
        HookPoint::new(8, Site::ResidPost),
        Intervention::Add {
            vector: v,
            alpha: 1.0,
        },
        Positions::All,
    );
    let gen = |hooks: &Hooks, cache: bool| {
        let opts = GenerateOptions {
            max_new_tokens: 20,
            use_kv_cache: cache,
            stop_at_eos: false,
            ..Default::default()
        };
        lm.model
            .generate(&lm.tokenizer, &[prompt.clone()], &opts, hooks)
            .unwrap()
            .remove(0)
    };
    let steered_cached = gen(&hooks, true);
    let steered_full = gen(&hooks, false);
    let plain = gen(&Hooks::new(), true);
    assert_eq!(
        steered_cached, steered_full,
        "KV cache changes steered generation"
    );
    assert_ne!(steered_cached, plain, "steering changed nothing");
}

#[test]
fn models_commands_list_info_and_a_second_pull_does_nothing() {
    let run = |args: &[&str]| {
        let out = bin().args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, _) = run(&["models", "pull", "smollm2-135m-instruct"]);
    assert!(ok);
    let (ok, out2, _) = run(&["models", "pull", "smollm2-135m-instruct"]);
    assert!(ok && out2.contains("already cached"), "{out}\n{out2}");
    let (ok, list, _) = run(&["models", "list"]);
    assert!(ok && list.contains("smollm2-135m-instruct") && list.contains("cached at"));
    let (ok, info, _) = run(&["models", "info", "smollm2-135m-instruct"]);
    assert!(
        ok && info.contains("layers:      30") && info.contains("hidden:      576"),
        "{info}"
    );
    let (ok, _, err) = run(&["models", "info", "no-such-model"]);
    assert!(
        !ok && err.contains("smollm2-135m-instruct"),
        "unknown names list the known ones: {err}"
    );
}
