//! Gemma 3 (text, `gemma3_text`): the Gemma 2 block with RMSNorm (1 + w) on q and k per
//! head, no soft-capping unless configured, local (sliding-window) layers with their own
//! rope base (`rope_local_base_freq`) and every `sliding_window_pattern`-th layer global.

use crate::block::{load_rotary, Parts};
use crate::config::{AttentionKind, Arch, ModelConfig};
use crate::error::Result;
use crate::families::gemma::{gemma_base, opt_f64};
use crate::families::gemma2::{query_scalar, GEMMA2_NAMES};
use crate::families::rotary::rope_from_hf;
use crate::families::family::{Family, GgufSpec};
use crate::gguf_meta::ArchMeta;
use crate::layers::Src;

pub(crate) const FAMILY: Family = Family {
    arch: Arch::Gemma3,
    model_types: &["gemma3_text"],
    config_from_hf,
    load,
    gguf: Some(GgufSpec {
        archs: &["gemma3"],
        permute_qk: false,
        norm_shift: 1.0,
        names: GEMMA3_GGUF_NAMES,
        hidden_act: "gelu_pytorch_tanh",
        config: gguf_config,
    }),
};

const GEMMA3_GGUF_NAMES: &[(&str, &str)] = &[
    ("post_attention_norm", "post_attention_layernorm"),
    ("ffn_norm", "pre_feedforward_layernorm"),
    ("post_ffw_norm", "post_feedforward_layernorm"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
];

/// llama.cpp's Gemma 3: the global rope base in `rope.freq_base`, the local one in
/// `rope.freq_base_swa` (10 000 when absent, as llama.cpp assumes), the local/global
/// pattern in `attention.sliding_window_pattern` (a period or one flag per layer; every
/// 6th layer global when absent).
fn gguf_config(meta: &ArchMeta, json: &mut serde_json::Value) {
    use candle_core::quantized::gguf_file::Value;
    query_scalar(meta, json, 62);
    json["final_logit_softcapping"] = meta.f64("final_logit_softcapping").into();
    json["rope_local_base_freq"] = meta.f64("rope.freq_base_swa").unwrap_or(10_000.0).into();
    match meta.value("attention.sliding_window_pattern") {
        Some(Value::Array(flags)) => {
            let types: Vec<&str> = flags
                .iter()
                .map(|f| match f {
                    Value::Bool(true) => "sliding_attention",
                    _ => "full_attention",
                })
                .collect();
            json["layer_types"] = types.into();
        }
        _ => {
            json["sliding_window_pattern"] =
                meta.usize("attention.sliding_window_pattern").unwrap_or(6).into();
        }
    }
}

fn config_from_hf(model_type: &str, json: &serde_json::Value) -> Result<ModelConfig> {
    let (w, mut cfg) = gemma_base(Arch::Gemma3, model_type, json, 131_072)?;
    cfg.post_norms = true;
    cfg.qk_norm = true;
    cfg.attn_logit_softcapping = opt_f64(json, "attn_logit_softcapping", None);
    cfg.final_logit_softcapping = opt_f64(json, "final_logit_softcapping", None);
    cfg.query_pre_attn_scalar = opt_f64(json, "query_pre_attn_scalar", Some(256.0));
    cfg.sliding_window = match json.get("sliding_window") {
        None => Some(4096),
        Some(_) => w.sliding_window,
    };
    // Rope: transformers >= 5 writes one parameter set per layer kind; older files have
    // `rope_theta` (+ `rope_scaling`) for global layers and `rope_local_base_freq`.
    let per_kind = w
        .rope_parameters
        .as_ref()
        .filter(|p| p.get("full_attention").is_some());
    let (global, local) = match per_kind {
        Some(p) => (
            rope_from_hf(model_type, None, None, p.get("full_attention"), None)?,
            rope_from_hf(model_type, None, None, p.get("sliding_attention"), None)?,
        ),
        None => {
            let theta = w.rope_theta.or(Some(1_000_000.0));
            let local_theta = opt_f64(json, "rope_local_base_freq", Some(10_000.0));
            (
                rope_from_hf(model_type, theta, w.rope_scaling.as_ref(), None, None)?,
                rope_from_hf(model_type, local_theta, None, None, None)?,
            )
        }
    };
    cfg.rope = Some(global);
    cfg.rope_local = Some(local);
    cfg.layer_attention = w.layer_attention(model_type)?;
    if cfg.layer_attention.is_empty() {
        let pattern = json
            .get("sliding_window_pattern")
            .and_then(|v| v.as_u64())
            .unwrap_or(6) as usize;
        cfg.layer_attention = (0..cfg.n_layers)
            .map(|i| {
                if (i + 1) % pattern.max(1) != 0 {
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
