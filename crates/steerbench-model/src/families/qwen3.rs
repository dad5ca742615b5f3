//! Qwen3: the Llama block with a per-head RMSNorm on q and k (before rope), biases only
//! when `attention_bias` says so, and Qwen's optional sliding window.

use crate::block::{load_rotary, Parts, LLAMA_NAMES};
use crate::config::{Arch, ModelConfig};
use crate::error::Result;
use crate::families::qwen2::{QwenWindow, QWEN_DEFAULTS};
use crate::families::rotary::RotaryWire;
use crate::families::family::{no_gguf_config, Family, GgufSpec};
use crate::layers::Src;

pub(crate) const FAMILY: Family = Family {
    arch: Arch::Qwen3,
    model_types: &["qwen3"],
    config_from_hf,
    load,
    gguf: Some(GgufSpec {
        archs: &["qwen3"],
        permute_qk: false,
        norm_shift: 0.0,
        names: QK_NORM_NAMES,
        hidden_act: "silu",
        config: no_gguf_config,
    }),
};

/// llama.cpp's names of the per-head q/k norms.
pub(crate) const QK_NORM_NAMES: &[(&str, &str)] = &[
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
];

fn config_from_hf(model_type: &str, json: &serde_json::Value) -> Result<ModelConfig> {
    let mut w = RotaryWire::parse(model_type, json)?;
    // transformers' default when the file has none.
    w.head_dim = w.head_dim.or(Some(128));
    let mut cfg = w.base(Arch::Qwen3, model_type, json, &QWEN_DEFAULTS)?;
    cfg.qk_norm = true;
    QwenWindow::apply(model_type, &w, json, &mut cfg)?;
    Ok(cfg)
}

fn load(cfg: &ModelConfig, src: &Src) -> Result<Parts> {
    load_rotary(cfg, src, &LLAMA_NAMES)
}
