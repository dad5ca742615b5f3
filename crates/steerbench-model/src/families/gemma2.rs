//! Gemma 2: Gemma plus norms after the attention and MLP branches (before the residual
//! add; `ResidMid` is the residual after the normed attention branch is added),
//! attention-score and final-logit soft-capping, sliding-window attention on every other
//! layer (the first included), and attention scaled by `query_pre_attn_scalar^-1/2`.

use crate::block::{load_rotary, Parts, RotaryNames};
use crate::config::{AttentionKind, Arch, ModelConfig};
use crate::error::Result;
use crate::families::gemma::{gemma_base, opt_f64};
use crate::families::family::{Family, GgufSpec};
use crate::gguf_meta::ArchMeta;
use crate::layers::Src;

pub(crate) const FAMILY: Family = Family {
    arch: Arch::Gemma2,
    model_types: &["gemma2"],
    config_from_hf,
    load,
    gguf: Some(GgufSpec {
        archs: &["gemma2"],
        permute_qk: false,
        norm_shift: 1.0,
        names: GEMMA2_GGUF_NAMES,
        hidden_act: "gelu_pytorch_tanh",
        config: gguf_config,
    }),
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

/// llama.cpp's names of the four Gemma 2/3 block norms.
pub(crate) const GEMMA2_GGUF_NAMES: &[(&str, &str)] = &[
    ("post_attention_norm", "post_attention_layernorm"),
    ("ffn_norm", "pre_feedforward_layernorm"),
    ("post_ffw_norm", "post_feedforward_layernorm"),
];

/// llama.cpp does not store `query_pre_attn_scalar`: it scales by head_dim^-1/2 except on
/// the 27B models (recognised by their layer count), which use hidden / heads.
pub(crate) fn query_scalar(meta: &ArchMeta, json: &mut serde_json::Value, layers_27b: usize) {
    let get = |k: &str| json.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let scalar = if get("num_hidden_layers") as usize == layers_27b {
        get("hidden_size") / get("num_attention_heads").max(1)
    } else {
        get("head_dim")
    };
    json["query_pre_attn_scalar"] = scalar.into();
    if let Some(w) = meta.usize("attention.sliding_window") {
        json["sliding_window"] = w.into();
    }
}

fn gguf_config(meta: &ArchMeta, json: &mut serde_json::Value) {
    query_scalar(meta, json, 46);
    json["attn_logit_softcapping"] = meta.f64("attn_logit_softcapping").into();
    json["final_logit_softcapping"] = meta.f64("final_logit_softcapping").into();
}

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
