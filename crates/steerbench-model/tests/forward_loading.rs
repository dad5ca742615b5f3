//! Config adapters and weight-directory loading: supported families, refusals, corrupt files.

use std::path::PathBuf;

use candle_core::Device;
use serde_json::json;
use steerbench_model::weights::{load_hf_dir, read_config, safetensors_files};
use steerbench_model::{Arch, ModelConfig, ModelError, RopeScaling};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

#[test]
fn smollm2_config_is_llama_with_gqa_and_tied_embeddings() {
    // The fields of SmolLM2-135M-Instruct's config.json that matter.
    let cfg = ModelConfig::from_hf_config(&json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
        "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "rope_theta": 100000, "rope_scaling": null, "tie_word_embeddings": true,
        "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "attention_bias": false
    }))
    .unwrap();
    assert_eq!(cfg.arch, Arch::Llama);
    assert_eq!(
        (
            cfg.n_layers,
            cfg.hidden_size,
            cfg.n_heads,
            cfg.n_kv_heads,
            cfg.head_dim
        ),
        (30, 576, 9, 3, 64)
    );
    assert_eq!(cfg.rope.unwrap().theta, 100000.0);
    assert_eq!(cfg.rope.unwrap().scaling, RopeScaling::None);
    assert!(cfg.tie_word_embeddings);
    assert_eq!(cfg.eos_token_ids, vec![2]);
}

#[test]
fn llama3_and_mistral_configs() {
    let cfg = ModelConfig::from_hf_config(&json!({
        "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256,
        "rope_theta": 500000.0, "eos_token_id": [128001, 128008, 128009],
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"}
    }))
    .unwrap();
    assert!(
        matches!(cfg.rope.unwrap().scaling, RopeScaling::Llama3 { factor, .. } if factor == 32.0)
    );
    assert_eq!(cfg.eos_token_ids, vec![128001, 128008, 128009]);
    assert!(!cfg.tie_word_embeddings);
    let m = ModelConfig::from_hf_config(&json!({
        "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32768, "rope_theta": 1000000.0,
        "sliding_window": null
    }))
    .unwrap();
    assert_eq!(
        (m.arch, m.head_dim, m.sliding_window),
        (Arch::Llama, 128, None)
    );
}

#[test]
fn gpt2_config() {
    let cfg = read_config(&golden("gpt2")).unwrap();
    assert_eq!(cfg.arch, Arch::Gpt2);
    assert_eq!(
        (
            cfg.n_layers,
            cfg.hidden_size,
            cfg.n_heads,
            cfg.head_dim,
            cfg.intermediate_size
        ),
        (3, 64, 4, 16, 256)
    );
    assert!(cfg.rope.is_none());
}

#[test]
fn unsupported_model_type_lists_supported_ones() {
    let e = ModelConfig::from_hf_config(&json!({"model_type": "mamba"})).unwrap_err();
    assert!(matches!(e, ModelError::UnsupportedArch { .. }));
    let msg = e.to_string();
    for name in [
        "mamba",
        "llama",
        "mistral",
        "gpt2",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "gemma3_text",
        "phi3",
    ] {
        assert!(msg.contains(name), "{name} missing from: {msg}");
    }
    let e =
        ModelConfig::from_hf_config(&json!({"model_type": "llama", "hidden_size": 8})).unwrap_err();
    assert!(e.to_string().contains("intermediate_size"), "{e}");
}

#[test]
fn pickle_checkpoints_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        golden("llama_gqa/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    std::fs::write(dir.path().join("pytorch_model.bin"), b"not opened").unwrap();
    let e = load_hf_dir(dir.path(), &Device::Cpu).err().unwrap();
    assert!(matches!(e, ModelError::Pickle { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("pytorch_model.bin")
            && msg.contains("runs arbitrary code")
            && msg.contains("safetensors"),
        "{msg}"
    );
    let pt = dir.path().join("model.pt");
    std::fs::write(&pt, b"x").unwrap();
    assert!(matches!(
        safetensors_files(&pt),
        Err(ModelError::Pickle { .. })
    ));
}

#[test]
fn truncated_and_garbage_safetensors_name_the_file() {
    let bytes = std::fs::read(golden("llama_gqa/model.safetensors")).unwrap();
    for (what, data) in [
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("garbage", b"hello world, no header".to_vec()),
        ("empty", vec![]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            golden("llama_gqa/config.json"),
            dir.path().join("config.json"),
        )
        .unwrap();
        std::fs::write(dir.path().join("model.safetensors"), &data).unwrap();
        let e = load_hf_dir(dir.path(), &Device::Cpu).err().unwrap();
        assert!(
            matches!(e, ModelError::CorruptWeights { .. }),
            "{what}: {e}"
        );
        assert!(e.to_string().contains("model.safetensors"), "{what}: {e}");
    }
}

#[test]
fn missing_shard_and_missing_weights_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "model.safetensors.index.json",
        "model-00001-of-00004.safetensors",
    ] {
        std::fs::copy(golden("llama_bias").join(f), dir.path().join(f)).unwrap();
    }
    let e = load_hf_dir(dir.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("model-00002-of-00004.safetensors") && e.contains("missing"),
        "{e}"
    );
    let empty = tempfile::tempdir().unwrap();
    let e = load_hf_dir(empty.path(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no model.safetensors"), "{e}");
}
