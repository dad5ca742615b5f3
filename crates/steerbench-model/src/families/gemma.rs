//! Gemma: the Llama block with a GeGLU MLP (gelu-tanh), RMSNorm multiplying by `1 + w`,
//! embeddings scaled by √hidden_size, an explicit head_dim (≠ hidden / heads) and a tied
//! head.

use crate::block::{load_rotary, Parts, LLAMA_NAMES};
use crate::config::{Activation, Arch, ModelConfig};
use crate::error::Result;
use crate::families::rotary::{Defaults, RotaryWire};
use crate::families::family::{no_gguf_config, Family, GgufSpec};
use crate::layers::Src;

pub(crate) const FAMILY: Family = Family {
    arch: Arch::Gemma,
    model_types: &["gemma"],
    config_from_hf,
    load,
    gguf: Some(GgufSpec {
        archs: &["gemma"],
        permute_qk: false,
        norm_shift: 1.0,
        names: &[],
        hidden_act: "gelu_pytorch_tanh",
        config: no_gguf_config,
    }),
};

/// Activation names the Gemma families accept: all mean the tanh approximation (the
/// first Gemma releases wrote `gelu` for it).
pub(crate) const GEMMA_ACTIVATIONS: &[&str] = &["gelu_pytorch_tanh", "gelu", "gelu_new"];

/// What every Gemma generation shares, on top of the rotary base.
pub(crate) fn gemma_base(
    arch: Arch,
    model_type: &str,
    json: &serde_json::Value,
    max_position_embeddings: usize,
) -> Result<(RotaryWire, ModelConfig)> {
    let mut w = RotaryWire::parse(model_type, json)?;
    w.head_dim = w.head_dim.or(Some(256));
    let defaults = Defaults {
        tie_word_embeddings: true,
        rms_norm_eps: 1e-6,
        max_position_embeddings,
        activations: GEMMA_ACTIVATIONS,
        activation: Activation::GeluTanhGated,
    };
    let mut cfg = w.base(arch, model_type, json, &defaults)?;
    cfg.norm_plus_one = true;
    cfg.embed_scale = Some((cfg.hidden_size as f64).sqrt());
    Ok((w, cfg))
}

/// A float that defaults to `default` when absent and is `None` when null.
pub(crate) fn opt_f64(json: &serde_json::Value, key: &str, default: Option<f64>) -> Option<f64> {
    match json.get(key) {
        None => default,
        Some(v) => v.as_f64(),
    }
}

fn config_from_hf(model_type: &str, json: &serde_json::Value) -> Result<ModelConfig> {
    Ok(gemma_base(Arch::Gemma, model_type, json, 8192)?.1)
}

fn load(cfg: &ModelConfig, src: &Src) -> Result<Parts> {
    load_rotary(cfg, src, &LLAMA_NAMES)
}
