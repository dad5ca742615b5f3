//! Phi-3: the Llama block with fused `qkv_proj` (rows q, k, v) and `gate_up_proj` (rows
//! gate, up), no biases, the config's sliding window on every layer, and LongRoPE
//! (`longrope` scaling) for the long-context models.

use crate::block::{load_rotary, Parts, RotaryNames};
use crate::config::{Activation, Arch, LongRope, ModelConfig};
use crate::error::{ModelError, Result};
use crate::families::rotary::{Defaults, RotaryWire};
use crate::families::family::{Family, GgufSpec};
use crate::gguf_meta::ArchMeta;
use crate::layers::Src;

pub(crate) const FAMILY: Family = Family {
    arch: Arch::Phi3,
    model_types: &["phi3"],
    config_from_hf,
    load,
    gguf: Some(GgufSpec {
        archs: &["phi3"],
        permute_qk: false,
        norm_shift: 0.0,
        names: &[
            ("attn_qkv", "self_attn.qkv_proj"),
            ("ffn_up", "mlp.gate_up_proj"),
        ],
        hidden_act: "silu",
        config: gguf_config,
    }),
};

const PHI3_NAMES: RotaryNames = RotaryNames {
    attn_norm: "input_layernorm",
    attn_post_norm: None,
    mlp_norm: "post_attention_layernorm",
    mlp_post_norm: None,
    fused_qkv: true,
    fused_gate_up: true,
};

/// llama.cpp writes Phi-3's window as `attention.sliding_window` (0: none); LongRoPE's
/// factors are tensors, which the GGUF loader turns into `rope_scaling`.
fn gguf_config(meta: &ArchMeta, json: &mut serde_json::Value) {
    json["sliding_window"] = meta
        .usize("attention.sliding_window")
        .filter(|&w| w > 0)
        .into();
}

fn config_from_hf(model_type: &str, json: &serde_json::Value) -> Result<ModelConfig> {
    let mut w = RotaryWire::parse(model_type, json)?;
    let longrope = longrope(model_type, &mut w, json)?;
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
    cfg.longrope = longrope;
    Ok(cfg)
}

/// Takes a `longrope` (or its old names `su`, `yarn`) scaling out of `rope_scaling` /
/// `rope_parameters`, leaving the plain rope for the shared parser.
fn longrope(
    model_type: &str,
    w: &mut RotaryWire,
    json: &serde_json::Value,
) -> Result<Option<LongRope>> {
    let slot = if w.rope_scaling.as_ref().is_some_and(|v| v.is_object()) {
        &mut w.rope_scaling
    } else {
        &mut w.rope_parameters
    };
    let Some(s) = slot.as_ref().filter(|v| v.is_object()) else {
        return Ok(None);
    };
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    if !matches!(kind, "longrope" | "su" | "yarn") {
        return Ok(None);
    }
    let factors = |k: &str| -> Result<Vec<f64>> {
        s.get(k)
            .and_then(|v| v.as_array())
            // transformers multiplies with them as f32.
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_f64().map(|x| x as f32 as f64))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| {
                ModelError::Config(format!("{model_type}: longrope needs a numeric list `{k}`"))
            })
    };
    let max_pos = w.max_position_embeddings.unwrap_or(4096);
    let original = s
        .get("original_max_position_embeddings")
        .or_else(|| json.get("original_max_position_embeddings"))
        .and_then(|v| v.as_u64())
        .map_or(max_pos, |v| v as usize);
    let factor = s
        .get("factor")
        .and_then(|v| v.as_f64())
        .unwrap_or(max_pos as f64 / original as f64);
    let attention_factor = match s.get("attention_factor").and_then(|v| v.as_f64()) {
        Some(a) => a,
        None if factor <= 1.0 => 1.0,
        None => (1.0 + factor.ln() / (original as f64).ln()).sqrt(),
    };
    let l = LongRope {
        short_factor: factors("short_factor")?,
        long_factor: factors("long_factor")?,
        original_max_position_embeddings: original,
        attention_factor,
    };
    // The theta stays; the shared parser sees a plain rope.
    let theta = s.get("rope_theta").and_then(|v| v.as_f64());
    *slot = None;
    if w.rope_theta.is_none() {
        w.rope_theta = theta;
    }
    Ok(Some(l))
}

fn load(cfg: &ModelConfig, src: &Src) -> Result<Parts> {
    load_rotary(cfg, src, &PHI3_NAMES)
}
