//! Llama family: RMSNorm, rotary, GQA, SiLU-gated MLP, optional biases (on q/k/v and
//! o_proj alike, as transformers' Llama has them). Covers Llama 1/2/3 (llama3 rope
//! scaling), SmolLM/SmolLM2, TinyLlama, and Mistral (the same block with sliding-window
//! attention on every layer).

use crate::block::{load_rotary, Parts, LLAMA_NAMES};
use crate::config::{Activation, Arch, ModelConfig};
use crate::error::Result;
use crate::families::rotary::{Defaults, RotaryWire};
use crate::families::family::{no_gguf_config, Family, GgufSpec};
use crate::layers::Src;

pub(crate) const FAMILY: Family = Family {
    arch: Arch::Llama,
    model_types: &["llama", "mistral"],
    config_from_hf,
    load,
    gguf: Some(GgufSpec {
        archs: &["llama"],
        permute_qk: true,
        norm_shift: 0.0,
        names: &[],
        hidden_act: "silu",
        config: no_gguf_config,
    }),
};

fn config_from_hf(model_type: &str, json: &serde_json::Value) -> Result<ModelConfig> {
    let w = RotaryWire::parse(model_type, json)?;
    let defaults = Defaults {
        tie_word_embeddings: false,
        rms_norm_eps: 1e-6,
        max_position_embeddings: 2048,
        activations: &["silu"],
        activation: Activation::SiluGated,
    };
    let mut cfg = w.base(Arch::Llama, model_type, json, &defaults)?;
    // transformers' Llama has no sliding window; Mistral's applies to every layer.
    if model_type == "mistral" {
        cfg.sliding_window = w.sliding_window;
    }
    Ok(cfg)
}

/// Hugging Face tensor names: `model.embed_tokens`, `model.layers.N.*`, `model.norm`, `lm_head`.
fn load(cfg: &ModelConfig, src: &Src) -> Result<Parts> {
    load_rotary(cfg, src, &LLAMA_NAMES)
}
