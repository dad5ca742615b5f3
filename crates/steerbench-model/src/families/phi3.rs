//! Phi-3: the Llama block with fused `qkv_proj` (rows q, k, v) and `gate_up_proj` (rows
//! gate, up), no biases, and the config's sliding window on every layer.

use crate::block::{load_rotary, Parts, RotaryNames};
use crate::config::{Activation, Arch, ModelConfig};
use crate::error::Result;
use crate::families::rotary::{Defaults, RotaryWire};
use crate::families::Family;
use crate::layers::Src;

pub(crate) const FAMILY: Family = Family {
    arch: Arch::Phi3,
    model_types: &["phi3"],
    config_from_hf,
    load,
};

const PHI3_NAMES: RotaryNames = RotaryNames {
    attn_norm: "input_layernorm",
    attn_post_norm: None,
    mlp_norm: "post_attention_layernorm",
    mlp_post_norm: None,
    fused_qkv: true,
    fused_gate_up: true,
};

fn config_from_hf(model_type: &str, json: &serde_json::Value) -> Result<ModelConfig> {
    let w = RotaryWire::parse(model_type, json)?;
    let defaults = Defaults {
        tie_word_embeddings: false,
        rms_norm_eps: 1e-5,
        max_position_embeddings: 4096,
        activations: &["silu"],
        activation: Activation::SiluGated,
    };
    let mut cfg = w.base(Arch::Phi3, model_type, json, &defaults)?;
    cfg.attention_bias = false;
    cfg.o_proj_bias = false;
    cfg.sliding_window = w.sliding_window;
    Ok(cfg)
}

fn load(cfg: &ModelConfig, src: &Src) -> Result<Parts> {
    load_rotary(cfg, src, &PHI3_NAMES)
}
