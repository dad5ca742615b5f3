//! Qwen2 / Qwen2.5: the Llama block with a bias on q, k and v (none on o_proj), tied or
//! untied head, and an optional sliding window on the layers from `max_window_layers` on.

use serde::Deserialize;

use crate::block::{load_rotary, Parts, LLAMA_NAMES};
use crate::config::{parse_wire, Activation, Arch, AttentionKind, ModelConfig};
use crate::error::Result;
use crate::families::rotary::{Defaults, RotaryWire};
use crate::families::family::{no_gguf_config, Family, GgufSpec};
use crate::layers::Src;

pub(crate) const FAMILY: Family = Family {
    arch: Arch::Qwen2,
    model_types: &["qwen2"],
    config_from_hf,
    load,
    gguf: Some(GgufSpec {
        archs: &["qwen2"],
        permute_qk: false,
        norm_shift: 0.0,
        names: &[],
        hidden_act: "silu",
        config: no_gguf_config,
    }),
};

/// Qwen's sliding-window switches (shared with Qwen3).
#[derive(Debug, Deserialize)]
pub(crate) struct QwenWindow {
    #[serde(default)]
    use_sliding_window: bool,
    max_window_layers: Option<usize>,
}

impl QwenWindow {
    /// Sets `sliding_window` and the layer kinds as transformers' Qwen configs do.
    pub(crate) fn apply(
        model_type: &str,
        w: &RotaryWire,
        json: &serde_json::Value,
        cfg: &mut ModelConfig,
    ) -> Result<()> {
        let q: QwenWindow = parse_wire(model_type, json)?;
        cfg.sliding_window = if q.use_sliding_window {
            w.sliding_window
        } else {
            None
        };
        cfg.layer_attention = w.layer_attention(model_type)?;
        if cfg.layer_attention.is_empty() {
            let from = q.max_window_layers.unwrap_or(28);
            cfg.layer_attention = (0..cfg.n_layers)
                .map(|i| match cfg.sliding_window {
                    Some(_) if i >= from => AttentionKind::Sliding,
                    _ => AttentionKind::Full,
                })
                .collect();
        }
        Ok(())
    }
}

pub(crate) const QWEN_DEFAULTS: Defaults = Defaults {
    tie_word_embeddings: false,
    rms_norm_eps: 1e-6,
    max_position_embeddings: 32768,
    activations: &["silu"],
    activation: Activation::SiluGated,
};

fn config_from_hf(model_type: &str, json: &serde_json::Value) -> Result<ModelConfig> {
    let w = RotaryWire::parse(model_type, json)?;
    let mut cfg = w.base(Arch::Qwen2, model_type, json, &QWEN_DEFAULTS)?;
    cfg.attention_bias = true;
    cfg.o_proj_bias = false;
    QwenWindow::apply(model_type, &w, json, &mut cfg)?;
    Ok(cfg)
}

fn load(cfg: &ModelConfig, src: &Src) -> Result<Parts> {
    load_rotary(cfg, src, &LLAMA_NAMES)
}
