//! Architecture-neutral model configuration, built from a Hugging Face `config.json`.
//!
//! Each architecture family has its own wire type and adapter (`llama.rs`, `gpt2.rs`);
//! this module only dispatches on `model_type` and holds the shared, typed result.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The decoder families the runtime implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Llama family: Llama 1/2/3, SmolLM/SmolLM2, TinyLlama, Mistral (no sliding window).
    Llama,
    /// GPT-2 (learned positions, LayerNorm, fused `c_attn`, Conv1D weights).
    Gpt2,
}

/// `model_type` values accepted by [`ModelConfig::from_hf_config`].
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["llama", "mistral", "gpt2"];

/// MLP activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// SiLU-gated (SwiGLU) MLP: `down(silu(gate(x)) * up(x))`.
    SiluGated,
    /// Plain MLP with the tanh approximation of GELU (`gelu_new`).
    GeluTanh,
}

/// Frequency scaling applied to rotary embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RopeScaling {
    None,
    Linear {
        factor: f64,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// Rotary position embedding parameters (Hugging Face `rotate_half` layout).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RopeConfig {
    pub theta: f64,
    /// Fraction of `head_dim` that is rotated. Seam for NeoX/Phi: only 1.0 is implemented.
    pub partial_rotary_factor: f64,
    pub scaling: RopeScaling,
}

/// Normalisation layer kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    Rms,
    Layer,
}

/// Everything the runtime needs to build and run a decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    /// The `model_type` string the config came from (e.g. "llama", "mistral").
    pub model_type: String,
    pub n_layers: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub norm: NormKind,
    pub norm_eps: f64,
    pub activation: Activation,
    /// `None` for learned absolute positions (GPT-2).
    pub rope: Option<RopeConfig>,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    // Seams for later architectures (Qwen3, Gemma, NeoX, Phi, Mistral SWA). Parsed and
    // carried, but `Model::new` refuses a config that needs one of them until implemented.
    /// RMSNorm on q and k per head (Qwen3, Gemma 3).
    pub qk_norm: bool,
    /// Attention and MLP read the same input (NeoX, Phi).
    pub parallel_residual: bool,
    /// `tanh` softcapping of attention scores (Gemma 2).
    pub attn_logit_softcapping: Option<f64>,
    /// `tanh` softcapping of final logits (Gemma 2).
    pub final_logit_softcapping: Option<f64>,
    /// Sliding-window attention span (Mistral v0.1, Gemma). Sequences no longer than the
    /// window are exact without it, so the runtime only refuses longer ones.
    pub sliding_window: Option<usize>,
}

impl ModelConfig {
    /// Build from the parsed `config.json` of a Hugging Face model directory.
    pub fn from_hf_config(json: &serde_json::Value) -> Result<ModelConfig> {
        let model_type = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ModelError::Config("config.json has no string `model_type`".into()))?;
        match model_type {
            "llama" | "mistral" => crate::llama::config_from_hf(model_type, json),
            "gpt2" => crate::gpt2::config_from_hf(json),
            other => Err(ModelError::UnsupportedArch {
                found: other.to_string(),
                supported: SUPPORTED_MODEL_TYPES.join(", "),
            }),
        }
    }

    /// Errors if the config needs a feature whose seam exists but is not implemented yet.
    pub fn check_implemented(&self) -> Result<()> {
        let unsupported = |what: &str| {
            Err(ModelError::Config(format!(
                "{} ({}) needs {what}, which this runtime does not implement yet",
                self.model_type,
                match self.arch {
                    Arch::Llama => "llama family",
                    Arch::Gpt2 => "gpt2",
                }
            )))
        };
        if self.qk_norm {
            return unsupported("q/k normalisation");
        }
        if self.parallel_residual {
            return unsupported("a parallel residual");
        }
        if self.attn_logit_softcapping.is_some() || self.final_logit_softcapping.is_some() {
            return unsupported("logit softcapping");
        }
        if let Some(r) = &self.rope {
            if r.partial_rotary_factor != 1.0 {
                return unsupported("partial rotary embeddings");
            }
        }
        if self.n_heads == 0 || self.n_kv_heads == 0 || self.n_heads % self.n_kv_heads != 0 {
            return Err(ModelError::Config(format!(
                "num_attention_heads ({}) must be a positive multiple of num_key_value_heads ({})",
                self.n_heads, self.n_kv_heads
            )));
        }
        if self.rope.is_some() && self.head_dim % 2 != 0 {
            return Err(ModelError::Config(format!(
                "rotary embeddings need an even head_dim, found {}",
                self.head_dim
            )));
        }
        Ok(())
    }
}

/// `eos_token_id` may be an integer, a list, or null.
pub(crate) fn token_ids(v: Option<&serde_json::Value>) -> Vec<u32> {
    match v {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|x| vec![x as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64())
            .map(|x| x as u32)
            .collect(),
        _ => Vec::new(),
    }
}

/// Deserialize a wire struct, naming the family in the error.
pub(crate) fn parse_wire<T: serde::de::DeserializeOwned>(
    family: &str,
    json: &serde_json::Value,
) -> Result<T> {
    T::deserialize(json).map_err(|e| ModelError::Config(format!("{family} config.json: {e}")))
}
