//! Prefill and decode throughput, and peak RSS, of the runtime on CPU (f32).
//!
//!   cargo bench -p steerbench-model --bench runtime
//!   STEERBENCH_BENCH_MODEL=<dir | x.gguf | registry name> cargo bench -p steerbench-model --bench runtime
//!
//! Without the variable it runs a tiny random Llama (numbers then only compare builds).
//! `STEERBENCH_BENCH_QUANTIZED=1` loads a GGUF model with its linear layers kept quantized
//! (`LoadOptions { quantized: true }`).

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use steerbench_model::source::{resolve, ModelSource};
use steerbench_model::weights::load_hf_dir;
use steerbench_model::{
    EosOnly, GenerateOptions, Hooks, LoadOptions, Model, ModelConfig, Pass, Sequence,
};

fn tiny_random_llama() -> Model {
    let cfg = ModelConfig::from_hf_config(&serde_json::json!({
        "model_type": "llama", "hidden_size": 256, "intermediate_size": 704, "num_hidden_layers": 6,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096, "rope_theta": 10000.0,
        "tie_word_embeddings": true
    }))
    .expect("config");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut map = HashMap::new();
    let mut put = |name: String, shape: &[usize], center: f32| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| center + 0.05 * rng.gen_range(-1.0f32..1.0))
            .collect();
        map.insert(
            name,
            Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor"),
        );
    };
    let (d, i, v, hd) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.vocab_size,
        cfg.head_dim,
    );
    put("model.embed_tokens.weight".into(), &[v, d], 0.0);
    put("model.norm.weight".into(), &[d], 1.0);
    for l in 0..cfg.n_layers {
        let p = format!("model.layers.{l}");
        put(format!("{p}.input_layernorm.weight"), &[d], 1.0);
        put(format!("{p}.post_attention_layernorm.weight"), &[d], 1.0);
        put(
            format!("{p}.self_attn.q_proj.weight"),
            &[cfg.n_heads * hd, d],
            0.0,
        );
        put(
            format!("{p}.self_attn.k_proj.weight"),
            &[cfg.n_kv_heads * hd, d],
            0.0,
        );
        put(
            format!("{p}.self_attn.v_proj.weight"),
            &[cfg.n_kv_heads * hd, d],
            0.0,
        );
        put(
            format!("{p}.self_attn.o_proj.weight"),
            &[d, cfg.n_heads * hd],
            0.0,
        );
        put(format!("{p}.mlp.gate_proj.weight"), &[i, d], 0.0);
        put(format!("{p}.mlp.up_proj.weight"), &[i, d], 0.0);
        put(format!("{p}.mlp.down_proj.weight"), &[d, i], 0.0);
    }
    Model::new(cfg, VarBuilder::from_tensors(map, DType::F32, &Device::Cpu)).expect("model")
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

fn tokens(rng: &mut ChaCha8Rng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| rng.gen_range(3..vocab as u32)).collect()
}

fn main() {
    let quantized = std::env::var("STEERBENCH_BENCH_QUANTIZED").is_ok_and(|v| v == "1");
    let load_opts = LoadOptions { quantized };
    let (name, model) = match std::env::var("STEERBENCH_BENCH_MODEL") {
        Ok(s) => {
            let t = Instant::now();
            let dir = std::path::Path::new(&s);
            // A bare HF dir (weights + config, no tokenizer) loads directly.
            let model = if dir.join("config.json").is_file() {
                load_hf_dir(dir, &Device::Cpu)
            } else {
                resolve(&ModelSource::parse(&s))
                    .and_then(|r| r.load_with(&Device::Cpu, &load_opts))
                    .map(|l| l.model)
            };
            let model = model.unwrap_or_else(|e| panic!("loading {s}: {e}"));
            eprintln!("loaded {s} in {:.1}s", t.elapsed().as_secs_f64());
            let s = if model.is_quantized() {
                format!("{s} (quantized)")
            } else {
                s
            };
            (s, model)
        }
        Err(_) => ("tiny random llama".to_string(), tiny_random_llama()),
    };
    let cfg = model.config().clone();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    println!(
        "model: {name} ({} layers, d={}, vocab {}), threads: {threads}",
        cfg.n_layers, cfg.hidden_size, cfg.vocab_size
    );
    let mut rng = ChaCha8Rng::seed_from_u64(1);

    // Prefill: batch 8 x 128, last-position logits.
    let batch: Vec<Sequence> = (0..8)
        .map(|_| Sequence::prompt(tokens(&mut rng, 128, cfg.vocab_size)))
        .collect();
    model
        .forward(&batch[..1], &mut Hooks::new())
        .and_then(|o| o.last_logits())
        .expect("warmup");
    let reps = 3;
    // Hidden states kept at every position (what a caller reading completions needs),
    // then the last position only (what generation's prefill and next-token reads run).
    for (what, last_only) in [("all positions kept", false), ("last position only", true)] {
        let pass = Pass {
            last_only,
            ..Pass::default()
        };
        let t = Instant::now();
        for _ in 0..reps {
            model
                .forward_pass(&batch, &pass, &mut Hooks::new())
                .and_then(|o| o.last_logits())
                .expect("prefill");
        }
        let secs = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "prefill 8x128 ({what}): {:.3} s/batch, {:.0} tokens/s",
            secs,
            1024.0 / secs
        );
    }

    // Decode: 64 new tokens after a 32-token prompt (KV cache), batch 1 and 8.
    for b in [1usize, 8] {
        let prompts: Vec<Vec<u32>> = (0..b)
            .map(|_| tokens(&mut rng, 32, cfg.vocab_size))
            .collect();
        let one = GenerateOptions {
            max_new_tokens: 1,
            stop_at_eos: false,
            ..Default::default()
        };
        let t = Instant::now();
        model
            .generate(&EosOnly::default(), &prompts, &one, &Hooks::new())
            .expect("prefill");
        let prefill = t.elapsed().as_secs_f64();
        let opts = GenerateOptions {
            max_new_tokens: 65,
            ..one
        };
        let t = Instant::now();
        let out = model
            .generate(&EosOnly::default(), &prompts, &opts, &Hooks::new())
            .expect("decode");
        let secs = t.elapsed().as_secs_f64() - prefill;
        let n: usize = out.iter().map(|r| r.len() - 1).sum();
        println!(
            "decode batch {b}: {:.1} ms/step, {:.0} tokens/s",
            1000.0 * secs / 64.0,
            n as f64 / secs
        );
    }
    println!("peak RSS: {:.0} MB", peak_rss_mb());
}
