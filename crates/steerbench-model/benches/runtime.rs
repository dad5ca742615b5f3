//! Prefill and decode throughput, and peak RSS, of the runtime on CPU, per weight dtype.
//!
//!   cargo bench -p steerbench-model --bench runtime
//!   STEERBENCH_BENCH_MODEL=<dir | x.gguf | registry name> cargo bench -p steerbench-model --bench runtime
//!   STEERBENCH_BENCH_DTYPES=f32,bf16 STEERBENCH_BENCH_MODEL=... cargo bench -p steerbench-model --bench runtime
//!
//! Without the model variable it runs a tiny random Llama (numbers then only compare builds).
//! `STEERBENCH_BENCH_QUANTIZED=1` loads a GGUF model with its linear layers kept quantized
//! (`LoadOptions { quantized: true }`). `STEERBENCH_BENCH_DTYPE=f32|bf16|f16` holds the
//! weights in that dtype (default f32).
//!
//! `STEERBENCH_BENCH_DTYPES=f32,bf16,...` runs each dtype in a child process of its own
//! (this binary again: peak RSS is per process), then compares them: the ratios of every
//! figure to the first dtype's, and max |logit - logit of the first dtype| over the
//! last-position logits of the prefill batch (8 rows of 128 random tokens), with how many
//! rows pick the same greedy token. Writes `$STEERBENCH_BENCH_OUT/runtime_dtypes.json`
//! (default `target/bench`).

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use steerbench_model::source::{resolve, ModelSource};
use steerbench_model::weights::load_hf_dir_as;
use steerbench_model::{
    EosOnly, GenerateOptions, Hooks, LoadOptions, Model, ModelConfig, Pass, Sequence,
};

fn tiny_random_llama(dtype: DType) -> Model {
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
    let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    Model::new_with(cfg, vb, &Default::default(), dtype).expect("model")
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

fn parse_dtype(s: &str) -> DType {
    match s {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        _ => panic!("unknown dtype `{s}` (f32, bf16, f16)"),
    }
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        _ => "f32",
    }
}

/// The bench model (`STEERBENCH_BENCH_MODEL`, else a tiny random Llama) in `dtype`.
fn load(dtype: DType, quantized: bool) -> (String, Model) {
    let load_opts = LoadOptions { quantized, dtype };
    match std::env::var("STEERBENCH_BENCH_MODEL") {
        Ok(s) => {
            let t = Instant::now();
            let dir = std::path::Path::new(&s);
            // A bare HF dir (weights + config, no tokenizer) loads directly.
            let model = if dir.join("config.json").is_file() {
                load_hf_dir_as(dir, &Device::Cpu, dtype)
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
        Err(_) => ("tiny random llama".to_string(), tiny_random_llama(dtype)),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Throughput of every dtype of `list` loaded in one process, timed in alternation (one
/// prefill batch, then one 16-token decode, per dtype per round), so that load from other
/// processes on a shared machine falls on all of them alike: medians, and the median of
/// each round's ratio to the first dtype. (Peak RSS means nothing here: all are loaded.)
fn interleaved(list: &str, quantized: bool) {
    let dtypes: Vec<DType> = list.split(',').map(|d| parse_dtype(d.trim())).collect();
    let models: Vec<Model> = dtypes.iter().map(|&d| load(d, quantized).1).collect();
    let cfg = models[0].config().clone();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let batch: Vec<Sequence> = (0..8)
        .map(|_| Sequence::prompt(tokens(&mut rng, 128, cfg.vocab_size)))
        .collect();
    let prompt = vec![tokens(&mut rng, 32, cfg.vocab_size)];
    let pass = Pass {
        last_only: true,
        ..Pass::default()
    };
    let opts = |n| GenerateOptions {
        max_new_tokens: n,
        stop_at_eos: false,
        ..Default::default()
    };
    for m in &models {
        m.forward(&batch[..1], &mut Hooks::new()).expect("warmup");
    }
    let rounds: usize = std::env::var("STEERBENCH_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let (mut prefill, mut decode) = (vec![vec![]; models.len()], vec![vec![]; models.len()]);
    for _ in 0..rounds {
        for (i, m) in models.iter().enumerate() {
            let t = Instant::now();
            m.forward_pass(&batch, &pass, &mut Hooks::new())
                .and_then(|o| o.last_logits())
                .expect("prefill");
            prefill[i].push(1024.0 / t.elapsed().as_secs_f64());
            let t = Instant::now();
            m.generate(&EosOnly::default(), &prompt, &opts(1), &Hooks::new())
                .expect("decode");
            let p = t.elapsed().as_secs_f64();
            let t = Instant::now();
            m.generate(&EosOnly::default(), &prompt, &opts(17), &Hooks::new())
                .expect("decode");
            decode[i].push(16.0 / (t.elapsed().as_secs_f64() - p));
        }
    }
    let mut out = serde_json::Map::new();
    for (i, &d) in dtypes.iter().enumerate() {
        let ratio = |v: &[Vec<f64>]| {
            let mut r: Vec<f64> = v[i].iter().zip(&v[0]).map(|(a, b)| a / b).collect();
            median(&mut r)
        };
        let (pr, dr) = (ratio(&prefill), ratio(&decode));
        let (pm, dm) = (
            median(&mut prefill[i].clone()),
            median(&mut decode[i].clone()),
        );
        println!(
            "interleaved {}: prefill 8x128 (last position only) {pm:.0} tokens/s ({pr:.2}x), decode batch 1 {dm:.0} tokens/s ({dr:.2}x), medians of {rounds} rounds",
            dtype_name(d)
        );
        out.insert(
            dtype_name(d).into(),
            serde_json::json!({"prefill_last_tokens_per_s": pm, "prefill_ratio": pr,
                               "decode_b1_tokens_per_s": dm, "decode_ratio": dr, "rounds": rounds}),
        );
    }
    println!("BENCH_JSON {}", serde_json::Value::Object(out));
}

fn main() {
    if let Ok(list) = std::env::var("STEERBENCH_BENCH_DTYPES") {
        return compare_dtypes(&list);
    }
    let quantized = std::env::var("STEERBENCH_BENCH_QUANTIZED").is_ok_and(|v| v == "1");
    let dtype =
        parse_dtype(&std::env::var("STEERBENCH_BENCH_DTYPE").unwrap_or_else(|_| "f32".into()));
    let mut report = serde_json::Map::new();
    report.insert("dtype".into(), dtype_name(dtype).into());
    if let Ok(list) = std::env::var("STEERBENCH_BENCH_INTERLEAVE") {
        return interleaved(&list, quantized);
    }
    let t = Instant::now();
    let (name, model) = load(dtype, quantized);
    report.insert("load_s".into(), t.elapsed().as_secs_f64().into());
    let cfg = model.config().clone();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    println!(
        "model: {name} ({} layers, d={}, vocab {}), weights {}, threads: {threads}",
        cfg.n_layers,
        cfg.hidden_size,
        cfg.vocab_size,
        dtype_name(model.dtype())
    );
    report.insert("model".into(), name.clone().into());
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
        let key = if last_only {
            "prefill_last_tokens_per_s"
        } else {
            "prefill_tokens_per_s"
        };
        report.insert(key.into(), (1024.0 / secs).into());
    }
    if let Ok(path) = std::env::var("STEERBENCH_BENCH_LOGITS") {
        // Last-position logits of the prefill batch, raw little-endian f32 (8 x vocab).
        let logits = model
            .forward(&batch, &mut Hooks::new())
            .and_then(|o| o.last_logits())
            .expect("logits");
        let v: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(&path, bytes).expect("write logits");
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
        report.insert(
            format!("decode_b{b}_tokens_per_s"),
            (n as f64 / secs).into(),
        );
    }
    println!("peak RSS: {:.0} MB", peak_rss_mb());
    report.insert("peak_rss_mb".into(), peak_rss_mb().into());
    println!("BENCH_JSON {}", serde_json::Value::Object(report));
}

/// Runs this binary once per dtype of `list` (comma-separated) and compares the results.
fn compare_dtypes(list: &str) {
    let out_dir = std::path::PathBuf::from(
        std::env::var("STEERBENCH_BENCH_OUT").unwrap_or_else(|_| "target/bench".into()),
    );
    std::fs::create_dir_all(&out_dir).expect("output folder");
    let exe = std::env::current_exe().expect("own path");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs: Vec<(String, serde_json::Value, Vec<f32>)> = Vec::new();
    for d in list.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        parse_dtype(d);
        let logits = out_dir.join(format!("runtime_logits_{d}.f32"));
        eprintln!("--- {d} (own process)");
        let out = std::process::Command::new(&exe)
            .args(&args)
            .env_remove("STEERBENCH_BENCH_DTYPES")
            .env("STEERBENCH_BENCH_DTYPE", d)
            .env("STEERBENCH_BENCH_LOGITS", &logits)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run the bench");
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        assert!(out.status.success(), "the {d} run failed");
        let json = text
            .lines()
            .find_map(|l| l.strip_prefix("BENCH_JSON "))
            .expect("a BENCH_JSON line");
        let bytes = std::fs::read(&logits).expect("logits file");
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        runs.push((d.to_string(), serde_json::from_str(json).unwrap(), v));
    }
    let (base_name, base, base_logits) = &runs[0];
    let keys = [
        "prefill_tokens_per_s",
        "prefill_last_tokens_per_s",
        "decode_b1_tokens_per_s",
        "decode_b8_tokens_per_s",
        "peak_rss_mb",
    ];
    let rows = 8;
    let vocab = base_logits.len() / rows;
    let argmax = |v: &[f32]| {
        v.iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |m, (i, &x)| if x > m.1 { (i, x) } else { m },
            )
            .0
    };
    println!(
        "\n{:<28}{}",
        "",
        runs.iter()
            .map(|r| format!("{:>16}", r.0))
            .collect::<String>()
    );
    for k in keys {
        let line: String = runs
            .iter()
            .map(|(_, j, _)| {
                let (x, b) = (
                    j[k].as_f64().unwrap_or(f64::NAN),
                    base[k].as_f64().unwrap_or(f64::NAN),
                );
                format!("{:>9.0} ({:.2}x)", x, x / b)
            })
            .collect();
        println!("{k:<28}{line}");
    }
    let mut summary = serde_json::Map::new();
    summary.insert("baseline".into(), base_name.clone().into());
    for (name, j, v) in &runs {
        let max_diff = v
            .iter()
            .zip(base_logits)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        let max_abs = base_logits.iter().fold(0f32, |m, x| m.max(x.abs()));
        let same = (0..rows)
            .filter(|&r| {
                argmax(&v[r * vocab..(r + 1) * vocab])
                    == argmax(&base_logits[r * vocab..(r + 1) * vocab])
            })
            .count();
        println!(
            "{name}: max |logit - logit_{base_name}| = {max_diff:.4} (max |logit| {max_abs:.2}), same greedy token in {same}/{rows} rows"
        );
        let mut j = j.clone();
        j["max_abs_logit_diff"] = max_diff.into();
        j["same_greedy_rows"] = same.into();
        for k in keys {
            j[format!("{k}_ratio")] =
                (j[k].as_f64().unwrap_or(f64::NAN) / base[k].as_f64().unwrap_or(f64::NAN)).into();
        }
        summary.insert(name.clone(), j);
    }
    eprintln!("--- interleaved ({list}, one process)");
    let out = std::process::Command::new(&exe)
        .args(&args)
        .env_remove("STEERBENCH_BENCH_DTYPES")
        .env("STEERBENCH_BENCH_INTERLEAVE", list)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run the bench");
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    if let Some(j) = text.lines().find_map(|l| l.strip_prefix("BENCH_JSON ")) {
        summary.insert("interleaved".into(), serde_json::from_str(j).unwrap());
    }
    let path = out_dir.join("runtime_dtypes.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    println!("wrote {}", path.display());
}
