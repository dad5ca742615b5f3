//! Every family's tiny model written as GGUF in llama.cpp's conventions (per-architecture
//! tensor names, Q/K permutation for `llama` only, Gemma norms stored + 1, metadata keys;
//! see `tests/golden/make_families_golden.py`) loads to the model of its Hugging Face
//! directory, whose parity with transformers `parity_families` checks. What llama.cpp's
//! format does not carry is cleared on the directory's side first.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use steerbench_model::gguf::GgufFile;
use steerbench_model::weights::load_hf_dir;
use steerbench_model::{Arch, AttentionKind, HookPoint, Hooks, Model, ModelConfig, Sequence, Site};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/families")
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn batch() -> Vec<Sequence> {
    vec![
        Sequence::prompt(vec![1, 17, 100, 45, 3, 99, 120, 7, 64, 125, 33, 12]),
        Sequence::prompt(vec![42]),
        Sequence::prompt((90..110).collect()),
    ]
}

/// (logits, hidden states) max differences between the GGUF and the directory model.
fn compare(name: &str, arch: Arch, lost: fn(&mut ModelConfig)) -> (f32, f32) {
    let path = dir().join(format!("{name}.gguf"));
    if !path.is_file() {
        eprintln!("{name} skipped: run tests/golden/make_families_golden.py to create it");
        return (0.0, 0.0);
    }
    let file = GgufFile::open(&path).unwrap();
    let cfg = ModelConfig::from_hf_config(&file.hf_config_json().unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(cfg.arch, arch, "{name}");
    let tensors = file.hf_tensors(&Device::Cpu).unwrap();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let from_gguf = Model::new(cfg.clone(), vb).unwrap_or_else(|e| panic!("{name}: {e}"));

    let hf = dir().join(name);
    let mut want = load_hf_dir(&hf, &Device::Cpu).unwrap().config().clone();
    lost(&mut want);
    // The translated config agrees with the directory's on everything the model computes.
    let mut got = cfg;
    got.model_type = want.model_type.clone();
    got.max_position_embeddings = want.max_position_embeddings;
    got.bos_token_id = want.bos_token_id;
    got.eos_token_ids = want.eos_token_ids.clone();
    // LongRoPE factors are f32 tensors in GGUF (transformers also computes with them in f32).
    if let (Some(g), Some(w)) = (&got.longrope, &want.longrope) {
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(&g.short_factor, &w.short_factor) && close(&g.long_factor, &w.long_factor));
        assert!((g.attention_factor - w.attention_factor).abs() < 1e-6);
        got.longrope = want.longrope.clone();
    }
    assert_eq!(got, want, "{name}: GGUF config differs");
    let vb = steerbench_model::weights::var_builder(
        &steerbench_model::weights::safetensors_files(&hf).unwrap(),
        &Device::Cpu,
    )
    .unwrap();
    let from_dir = Model::new(want, vb).unwrap();

    let n = from_dir.config().n_layers;
    let run = |m: &Model| {
        let mut h = Hooks::new();
        (0..n).for_each(|l| h.capture(HookPoint::new(l, Site::ResidPre)));
        let out = m.forward(&batch(), &mut h).unwrap();
        let hs: Vec<Tensor> = (0..n)
            .map(|l| h.take(HookPoint::new(l, Site::ResidPre)).unwrap())
            .collect();
        (out, hs)
    };
    let ((a, ha), (b, hb)) = (run(&from_gguf), run(&from_dir));
    let mut hidden = max_abs(a.hidden(), b.hidden());
    for (x, y) in ha.iter().zip(&hb) {
        hidden = hidden.max(max_abs(x, y));
    }
    let mut logits = 0f32;
    for (r, s) in batch().iter().enumerate() {
        for p in 0..s.tokens.len() {
            logits = logits.max(max_abs(
                &a.logits_at(r, p).unwrap(),
                &b.logits_at(r, p).unwrap(),
            ));
        }
    }
    eprintln!("{name}: GGUF vs directory: logits {logits:.2e}, hidden {hidden:.2e}");
    assert!(
        logits <= 1e-5 && hidden <= 1e-5,
        "{name}: {logits} {hidden}"
    );
    (logits, hidden)
}

#[test]
fn gguf_mistral_as_llama_architecture() {
    // llama.cpp's `llama` architecture has no sliding window.
    compare("mistral", Arch::Llama, |c| {
        c.sliding_window = None;
        c.model_type = "llama".into();
    });
}

#[test]
fn gguf_qwen2() {
    compare("qwen2", Arch::Qwen2, |c| {
        c.sliding_window = None;
        c.layer_attention = vec![AttentionKind::Full; c.n_layers];
    });
}

#[test]
fn gguf_qwen3() {
    compare("qwen3", Arch::Qwen3, |c| {
        c.sliding_window = None;
        c.layer_attention = vec![AttentionKind::Full; c.n_layers];
    });
}

#[test]
fn gguf_gemma_norms_stored_plus_one() {
    compare("gemma", Arch::Gemma, |_| {});
}

#[test]
fn gguf_gemma2() {
    compare("gemma2", Arch::Gemma2, |c| {
        c.query_pre_attn_scalar = Some(c.head_dim as f64)
    });
}

#[test]
fn gguf_gemma3() {
    compare("gemma3", Arch::Gemma3, |c| {
        c.query_pre_attn_scalar = Some(c.head_dim as f64)
    });
}

#[test]
fn gguf_phi3() {
    compare("phi3", Arch::Phi3, |_| {});
}

#[test]
fn gguf_phi3_longrope_factors_from_tensors() {
    compare("phi3_longrope", Arch::Phi3, |_| {});
}

#[test]
fn unsupported_gguf_architecture_lists_the_supported_ones() {
    let m = std::collections::HashMap::from([(
        "general.architecture".to_string(),
        candle_core::quantized::gguf_file::Value::String("mamba".into()),
    )]);
    let e = steerbench_model::gguf::hf_config_from_metadata(&m, false)
        .unwrap_err()
        .to_string();
    for a in [
        "mamba", "llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3",
    ] {
        assert!(e.contains(a), "{a} missing from: {e}");
    }
}

/// The quantized load (`hf_quantized_split` + `Model::new_quantized`: Q8_0 matrices kept
/// in 8-bit blocks, norms f32 with Gemma's shift undone) of a family computes what the
/// dequantized load of the same file computes, on few rows (8-bit kernel) and many
/// (dequantized gemm).
#[test]
fn quantized_gguf_families_equal_their_dequantized_load() {
    for (name, arch) in [("qwen2", Arch::Qwen2), ("gemma3", Arch::Gemma3)] {
        let path = dir().join(format!("{name}.q8_0.gguf"));
        if !path.is_file() {
            continue;
        }
        let file = GgufFile::open(&path).unwrap();
        let cfg = ModelConfig::from_hf_config(&file.hf_config_json().unwrap()).unwrap();
        assert_eq!(cfg.arch, arch);
        let dev = Device::Cpu;
        let (dense, quant) = file.hf_quantized_split(&dev).unwrap();
        assert!(!quant.is_empty(), "{name}: nothing quantized");
        let q = Model::new_quantized(
            cfg.clone(),
            VarBuilder::from_tensors(dense, DType::F32, &dev),
            &quant,
        )
        .unwrap();
        assert!(q.is_quantized(), "{name}: LM head not quantized");
        let f = Model::new(
            cfg,
            VarBuilder::from_tensors(file.hf_tensors(&dev).unwrap(), DType::F32, &dev),
        )
        .unwrap();
        for rows in [vec![batch()[0].clone()], batch()] {
            let (a, b) = (
                q.forward(&rows, &mut Hooks::new()).unwrap(),
                f.forward(&rows, &mut Hooks::new()).unwrap(),
            );
            let e = max_abs(&a.last_logits().unwrap(), &b.last_logits().unwrap());
            eprintln!(
                "{name} Q8_0, {} rows: quantized vs dequantized {e:.2e}",
                rows.len()
            );
            assert!(e < 1e-4, "{name}: {e}");
        }
    }
}
