//! Issue 13's fine-tuning benchmark: one DPO-LoRA epoch on SmolLM2 (64 pairs of 64
//! tokens: a 48-token prompt and two 16-token answers; rank 8, alpha 16, on q, k, v, o,
//! gate, up, down of every block; batches of 8 pairs; AdamW lr 1e-3; β 0.1; f32).
//!
//!   cargo bench -p steerbench-eval --bench dpo_lora --profile dev
//!   python3 bench/hf_baseline.py dpo      # the same epoch in torch + peft, same inputs
//!
//! Timed in one process: `finetune::train_lora` (reference log-probs, then the 8 steps).
//! Writes `dpo_lora_inputs.json` (token ids, batch order, settings) and
//! `dpo_lora_init/` (the initial adapter in PEFT's layout: B = 0, A from the seed), so the
//! torch run starts from the identical adapter and follows the identical batches; the
//! per-step losses of both runs are then compared. Peak RSS is this process's.
//!
//! Env: STEERBENCH_BENCH_MODEL (default smollm2-135m-instruct), STEERBENCH_BENCH_OUT
//! (default <workspace>/target/bench), DPO_BENCH_PAIRS (default 64).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use candle_core::Device;
use rand::{Rng, SeedableRng};
use serde_json::json;
use steerbench_eval::finetune::{
    batch_order, check_config, init_adapter, train_lora, LoraConfig, LoraLayers, Objective,
    PrefPair,
};
use steerbench_model::source::{resolve, ModelSource};
use steerbench_model::Proj;

fn out_dir() -> PathBuf {
    std::env::var_os("STEERBENCH_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench"))
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() -> Result<()> {
    let name =
        std::env::var("STEERBENCH_BENCH_MODEL").unwrap_or_else(|_| "smollm2-135m-instruct".into());
    let n: usize = std::env::var("DPO_BENCH_PAIRS")
        .ok()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(64);
    let resolved = resolve(&ModelSource::parse(&name))?;
    let lm = resolved.load(&Device::Cpu)?;
    let model = &lm.model;
    let vocab = model.config().vocab_size as u32;
    // Invented token ids (no text): a 48-token prompt and two 16-token answers.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut ids = |k: usize| -> Vec<u32> { (0..k).map(|_| rng.gen_range(100..vocab)).collect() };
    let pairs: Vec<PrefPair> = (0..n)
        .map(|_| PrefPair {
            prompt: ids(48),
            chosen: ids(16),
            rejected: ids(16),
        })
        .collect();
    let cfg = LoraConfig {
        objective: Objective::Dpo { beta: 0.1 },
        rank: 8,
        alpha: 16.0,
        dropout: 0.0,
        modules: Proj::SPLIT.to_vec(),
        layers: LoraLayers::All,
        lr: 1e-3,
        weight_decay: 0.0,
        epochs: 1,
        batch_size: 8,
        seed: 0,
        patience: None,
    };
    let out = out_dir();
    std::fs::create_dir_all(&out)?;
    // The adapter train_lora starts from, for the torch run.
    let targets = check_config(model, &cfg)?;
    let (init, _) = init_adapter(model, &targets, &cfg)?;
    init.save_peft(
        &out.join("dpo_lora_init"),
        &model.projections(),
        &resolved.id,
        false,
    )?;
    let gguf = resolved
        .files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "gguf"))
        .map(|p| p.display().to_string());
    std::fs::write(
        out.join("dpo_lora_inputs.json"),
        serde_json::to_vec(&json!({
            "model": name, "gguf": gguf, "beta": 0.1, "lr": cfg.lr, "rank": cfg.rank,
            "alpha": cfg.alpha,
            "pairs": pairs.iter().map(|p| json!({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected})).collect::<Vec<_>>(),
            "batches": batch_order(n, &cfg)[0],
            "init": out.join("dpo_lora_init").display().to_string(),
        }))?,
    )?;
    let rss_before = peak_rss_mb();
    let t = Instant::now();
    let trained = train_lora(model, &pairs, &[], &cfg, |step, loss| {
        eprintln!("step {step}: loss {loss:.6}")
    })?;
    let secs = t.elapsed().as_secs_f64();
    let losses: Vec<f64> = trained
        .log
        .iter()
        .filter(|r| r.split == "train")
        .map(|r| r.loss)
        .collect();
    let tokens = trained.backward_tokens;
    let rss = peak_rss_mb();
    println!(
        "dpo_lora: one epoch of {n} pairs in {secs:.1} s ({:.0} train tokens/s), {} trainable parameters, peak RSS {rss:.0} MB (after loading {rss_before:.0} MB)",
        tokens as f64 / secs,
        trained.adapter.n_params()
    );
    std::fs::write(
        out.join("dpo_lora_steerbench.json"),
        serde_json::to_vec(&json!({
            "seconds": secs, "peak_rss_mb": rss, "rss_after_load_mb": rss_before,
            "losses": losses, "forward_tokens": trained.forward_tokens,
            "backward_tokens": tokens, "trainable_params": trained.adapter.n_params(),
        }))?,
    )?;
    Ok(())
}
