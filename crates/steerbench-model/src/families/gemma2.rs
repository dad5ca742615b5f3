//! Gemma 2: Gemma plus norms after the attention and MLP branches (before the residual
//! add; `ResidMid` is the residual after the normed attention branch is added),
//! attention-score and final-logit soft-capping, sliding-window attention on every other
//! layer (the first included), and attention scaled by `query_pre_attn_scalar^-1/2`.

use crate::block::{load_rotary, Parts, RotaryNames};
use crate::config::{AttentionKind, Arch, ModelConfig};
use crate::error::Result;
use crate::families::gemma::{gemma_base, opt_f64};
use crate::families::Family;
use crate::layers::Src;

pub(crate) const FAMILY: Family = Family {
    arch: Arch::Gemma2,
    model_types: &["gemma2"],
    config_from_hf,
    load,
};

/// Gemma 2 and 3 block names: four norms per block.
pub(crate) const GEMMA2_NAMES: RotaryNames = RotaryNames {
    attn_norm: "input_layernorm",
    attn_post_norm: Some("post_attention_layernorm"),
    mlp_norm: "pre_feedforward_layernorm",
    mlp_post_norm: Some("post_feedforward_layernorm"),
    fused_qkv: false,
    fused_gate_up: false,
};

fn config_from_hf(model_type: &str, json: &serde_json::Value) -> Result<ModelConfig> {
    let (w, mut cfg) = gemma_base(Arch::Gemma2, model_type, json, 8192)?;
    cfg.post_norms = true;
    cfg.attn_logit_softcapping = opt_f64(json, "attn_logit_softcapping", Some(50.0));
    cfg.final_logit_softcapping = opt_f64(json, "final_logit_softcapping", Some(30.0));
    cfg.query_pre_attn_scalar = opt_f64(json, "query_pre_attn_scalar", Some(256.0));
    cfg.sliding_window = match json.get("sliding_window") {
        None => Some(4096),
        Some(_) => w.sliding_window,
    };
    cfg.layer_attention = w.layer_attention(model_type)?;
    if cfg.layer_attention.is_empty() {
        cfg.layer_attention = (0..cfg.n_layers)
            .map(|i| {
                if (i + 1) % 2 == 1 {
                    AttentionKind::Sliding
                } else {
                    AttentionKind::Full
                }
            })
            .collect();
    }
    Ok(cfg)
}

fn load(cfg: &ModelConfig, src: &Src) -> Result<Parts> {
    load_rotary(cfg, src, &GEMMA2_NAMES)
}
