//! What the rotary families' `config.json` files share: the wire fields, rope parameters
//! (transformers < 5 `rope_theta` + `rope_scaling`, >= 5 `rope_parameters`) and
//! `layer_types`. Each family file adds its own fields and defaults.

use serde::Deserialize;

use crate::config::{
    parse_wire, token_ids, Activation, Arch, AttentionKind, ModelConfig, NormKind, RopeConfig,
    RopeScaling,
};
use crate::error::{ModelError, Result};

/// The `config.json` fields every rotary family reads (others are ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct RotaryWire {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub vocab_size: usize,
    pub max_position_embeddings: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers >= 5 writes theta and scaling here.
    pub rope_parameters: Option<serde_json::Value>,
    pub attention_bias: Option<bool>,
    pub mlp_bias: Option<bool>,
    pub tie_word_embeddings: Option<bool>,
    pub hidden_act: Option<String>,
    /// Gemma 2/3 name the activation this way.
    pub hidden_activation: Option<String>,
    pub bos_token_id: Option<u32>,
    pub sliding_window: Option<usize>,
    pub layer_types: Option<Vec<String>>,
    pub partial_rotary_factor: Option<f64>,
}

/// A family's defaults for fields its `config.json` may omit.
pub(crate) struct Defaults {
    pub tie_word_embeddings: bool,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    /// Accepted activation names (the first is the default) and what they mean.
    pub activations: &'static [&'static str],
    pub activation: Activation,
}

impl RotaryWire {
    pub(crate) fn parse(model_type: &str, json: &serde_json::Value) -> Result<Self> {
        parse_wire(model_type, json)
    }

    /// The shared part of a rotary family's config: no quirks switched on, no sliding
    /// window; the family sets its own.
    pub(crate) fn base(
        &self,
        arch: Arch,
        model_type: &str,
        json: &serde_json::Value,
        d: &Defaults,
    ) -> Result<ModelConfig> {
        if let Some(act) = self
            .hidden_activation
            .as_deref()
            .or(self.hidden_act.as_deref())
        {
            if !d.activations.contains(&act) {
                return Err(ModelError::Config(format!(
                    "{model_type}: hidden_act `{act}` is not supported (only {})",
                    d.activations.join(", ")
                )));
            }
        }
        let n_heads = self.num_attention_heads;
        if n_heads == 0 {
            return Err(ModelError::Config(format!(
                "{model_type}: num_attention_heads is 0"
            )));
        }
        let head_dim = self.head_dim.unwrap_or(self.hidden_size / n_heads);
        let rope = rope_from_hf(
            model_type,
            self.rope_theta,
            self.rope_scaling.as_ref(),
            self.rope_parameters.as_ref(),
            self.partial_rotary_factor,
        )?;
        let attention_bias = self.attention_bias.unwrap_or(false);
        Ok(ModelConfig {
            arch,
            model_type: model_type.to_string(),
            n_layers: self.num_hidden_layers,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            n_heads,
            n_kv_heads: self.num_key_value_heads.unwrap_or(n_heads),
            head_dim,
            vocab_size: self.vocab_size,
            max_position_embeddings: self
                .max_position_embeddings
                .unwrap_or(d.max_position_embeddings),
            norm: NormKind::Rms,
            norm_eps: self.rms_norm_eps.unwrap_or(d.rms_norm_eps),
            activation: d.activation,
            rope: Some(rope),
            attention_bias,
            o_proj_bias: attention_bias,
            mlp_bias: self.mlp_bias.unwrap_or(false),
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(d.tie_word_embeddings),
            bos_token_id: self.bos_token_id,
            eos_token_ids: token_ids(json.get("eos_token_id")),
            qk_norm: false,
            parallel_residual: false,
            attn_logit_softcapping: None,
            final_logit_softcapping: None,
            sliding_window: None,
            layer_attention: Vec::new(),
            rope_local: None,
            longrope: None,
            norm_plus_one: false,
            embed_scale: None,
            query_pre_attn_scalar: None,
            post_norms: false,
        })
    }

    /// `layer_types` as attention kinds (empty when absent).
    pub(crate) fn layer_attention(&self, model_type: &str) -> Result<Vec<AttentionKind>> {
        let Some(types) = &self.layer_types else {
            return Ok(Vec::new());
        };
        types
            .iter()
            .map(|t| match t.as_str() {
                "full_attention" => Ok(AttentionKind::Full),
                "sliding_attention" => Ok(AttentionKind::Sliding),
                other => Err(ModelError::Config(format!(
                    "{model_type}: layer type `{other}` is not supported (full_attention, sliding_attention)"
                ))),
            })
            .collect()
    }
}

/// Rope parameters from `rope_theta` + `rope_scaling` (transformers < 5, what hub configs
/// carry) or a `rope_parameters` object (transformers >= 5).
pub(crate) fn rope_from_hf(
    model_type: &str,
    rope_theta: Option<f64>,
    rope_scaling: Option<&serde_json::Value>,
    rope_parameters: Option<&serde_json::Value>,
    partial_rotary_factor: Option<f64>,
) -> Result<RopeConfig> {
    let params = rope_parameters.filter(|v| v.is_object());
    let theta = rope_theta
        .or_else(|| {
            params
                .and_then(|p| p.get("rope_theta"))
                .and_then(|v| v.as_f64())
        })
        .unwrap_or(10000.0);
    let scaling_obj = rope_scaling.filter(|v| v.is_object()).or(params);
    let scaling = match scaling_obj {
        None => RopeScaling::None,
        Some(s) => {
            let kind = s
                .get("rope_type")
                .or_else(|| s.get("type"))
                .and_then(|v| v.as_str())
                .unwrap_or("default");
            let num = |k: &str| -> Result<f64> {
                s.get(k).and_then(|v| v.as_f64()).ok_or_else(|| {
                    ModelError::Config(format!(
                        "{model_type}: rope scaling `{kind}` needs a numeric `{k}`"
                    ))
                })
            };
            match kind {
                "default" => RopeScaling::None,
                "linear" => RopeScaling::Linear { factor: num("factor")? },
                "llama3" => RopeScaling::Llama3 {
                    factor: num("factor")?,
                    low_freq_factor: num("low_freq_factor")?,
                    high_freq_factor: num("high_freq_factor")?,
                    original_max_position_embeddings: num("original_max_position_embeddings")? as usize,
                },
                other => {
                    return Err(ModelError::Config(format!(
                        "{model_type}: rope scaling `{other}` is not supported (supported: default, linear, llama3)"
                    )))
                }
            }
        }
    };
    Ok(RopeConfig {
        theta,
        partial_rotary_factor: partial_rotary_factor.unwrap_or(1.0),
        scaling,
    })
}
