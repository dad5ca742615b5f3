//! Tiny random-weight models built in memory (deterministic, seeded).
#![allow(dead_code)]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use steerbench_model::{Model, ModelConfig};

pub struct Weights {
    rng: ChaCha8Rng,
    pub map: HashMap<String, Tensor>,
}

impl Weights {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            map: HashMap::new(),
        }
    }

    pub fn rand(&mut self, name: &str, shape: &[usize], center: f32, scale: f32) {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| center + scale * self.rng.gen_range(-1.0f32..1.0))
            .collect();
        self.map.insert(
            name.to_string(),
            Tensor::from_vec(v, shape, &Device::Cpu).unwrap(),
        );
    }

    pub fn vb(self) -> VarBuilder<'static> {
        VarBuilder::from_tensors(self.map, DType::F32, &Device::Cpu)
    }
}

pub fn llama_config() -> ModelConfig {
    ModelConfig::from_hf_config(&serde_json::json!({
        "model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 97, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": true, "eos_token_id": 2
    }))
    .unwrap()
}

pub fn llama_weights(cfg: &ModelConfig, seed: u64) -> Weights {
    let mut w = Weights::new(seed);
    let (d, hd, i, v) = (
        cfg.hidden_size,
        cfg.head_dim,
        cfg.intermediate_size,
        cfg.vocab_size,
    );
    let (nh, nkv) = (cfg.n_heads, cfg.n_kv_heads);
    w.rand("model.embed_tokens.weight", &[v, d], 0.0, 1.0);
    for l in 0..cfg.n_layers {
        let p = format!("model.layers.{l}");
        w.rand(&format!("{p}.input_layernorm.weight"), &[d], 1.0, 0.1);
        w.rand(
            &format!("{p}.post_attention_layernorm.weight"),
            &[d],
            1.0,
            0.1,
        );
        w.rand(
            &format!("{p}.self_attn.q_proj.weight"),
            &[nh * hd, d],
            0.0,
            0.3,
        );
        w.rand(
            &format!("{p}.self_attn.k_proj.weight"),
            &[nkv * hd, d],
            0.0,
            0.3,
        );
        w.rand(
            &format!("{p}.self_attn.v_proj.weight"),
            &[nkv * hd, d],
            0.0,
            0.3,
        );
        w.rand(
            &format!("{p}.self_attn.o_proj.weight"),
            &[d, nh * hd],
            0.0,
            0.3,
        );
        w.rand(&format!("{p}.mlp.gate_proj.weight"), &[i, d], 0.0, 0.3);
        w.rand(&format!("{p}.mlp.up_proj.weight"), &[i, d], 0.0, 0.3);
        w.rand(&format!("{p}.mlp.down_proj.weight"), &[d, i], 0.0, 0.3);
    }
    w.rand("model.norm.weight", &[d], 1.0, 0.1);
    w
}

pub fn tiny_llama(seed: u64) -> Model {
    let cfg = llama_config();
    let w = llama_weights(&cfg, seed);
    Model::new(cfg, w.vb()).unwrap()
}

pub fn tiny_gpt2(seed: u64) -> Model {
    let (cfg, w) = gpt2_weights(seed);
    Model::new(cfg, w.vb()).unwrap()
}

/// The config and weights of [`tiny_gpt2`].
pub fn gpt2_weights(seed: u64) -> (ModelConfig, Weights) {
    let cfg = ModelConfig::from_hf_config(&serde_json::json!({
        "model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 97, "n_positions": 64,
        "eos_token_id": 2
    }))
    .unwrap();
    let mut w = Weights::new(seed);
    let (d, v) = (32, 97);
    w.rand("transformer.wte.weight", &[v, d], 0.0, 1.0);
    w.rand("transformer.wpe.weight", &[64, d], 0.0, 0.5);
    for l in 0..2 {
        let p = format!("transformer.h.{l}");
        for ln in ["ln_1", "ln_2"] {
            w.rand(&format!("{p}.{ln}.weight"), &[d], 1.0, 0.1);
            w.rand(&format!("{p}.{ln}.bias"), &[d], 0.0, 0.1);
        }
        w.rand(&format!("{p}.attn.c_attn.weight"), &[d, 3 * d], 0.0, 0.3);
        w.rand(&format!("{p}.attn.c_attn.bias"), &[3 * d], 0.0, 0.1);
        w.rand(&format!("{p}.attn.c_proj.weight"), &[d, d], 0.0, 0.3);
        w.rand(&format!("{p}.attn.c_proj.bias"), &[d], 0.0, 0.1);
        w.rand(&format!("{p}.mlp.c_fc.weight"), &[d, 4 * d], 0.0, 0.3);
        w.rand(&format!("{p}.mlp.c_fc.bias"), &[4 * d], 0.0, 0.1);
        w.rand(&format!("{p}.mlp.c_proj.weight"), &[4 * d, d], 0.0, 0.3);
        w.rand(&format!("{p}.mlp.c_proj.bias"), &[d], 0.0, 0.1);
    }
    w.rand("transformer.ln_f.weight", &[d], 1.0, 0.1);
    w.rand("transformer.ln_f.bias", &[d], 0.0, 0.1);
    (cfg, w)
}

/// A deterministic vector of length n.
pub fn vector(n: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, n, &Device::Cpu).unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
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

/// A batch of prompts of different lengths (so the batch is left-padded).
pub fn ragged_batch() -> Vec<Vec<u32>> {
    vec![
        vec![1, 5, 9, 14, 22, 3, 7, 40, 41],
        vec![1, 60, 61],
        vec![1, 30, 31, 32, 33, 34],
    ]
}
