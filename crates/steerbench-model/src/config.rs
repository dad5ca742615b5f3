//! Architecture-neutral model configuration: the typed result every family's
//! `config.json` adapter produces (see `families/`, which also implements
//! [`ModelConfig::from_hf_config`]). This module depends on nothing but the error type.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The decoder families the runtime implements: one per file in `families/`, where the
/// table `FAMILIES` maps `model_type` / GGUF `general.architecture` to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Llama family: Llama 1/2/3, SmolLM/SmolLM2, TinyLlama, Mistral (sliding window).
    Llama,
    /// GPT-2 (learned positions, LayerNorm, fused `c_attn`, Conv1D weights).
    Gpt2,
    /// Qwen2 / Qwen2.5: bias on q/k/v (not on o_proj).
    Qwen2,
    /// Qwen3: per-head RMSNorm on q and k.
    Qwen3,
    /// Gemma: GeGLU (gelu-tanh), RMSNorm (1 + w), embeddings × √hidden.
    Gemma,
    /// Gemma 2: Gemma with post-norms, soft-capping, alternating sliding windows.
    Gemma2,
    /// Gemma 3 (text): Gemma 2 with q/k norms and local/global rope bases.
    Gemma3,
    /// Phi-3: fused `qkv_proj` and `gate_up_proj`.
    Phi3,
}

/// MLP activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// SiLU-gated (SwiGLU) MLP: `down(silu(gate(x)) * up(x))`.
    SiluGated,
    /// Plain MLP with the tanh approximation of GELU (`gelu_new`).
    GeluTanh,
    /// GELU(tanh)-gated (GeGLU) MLP: `down(gelu_tanh(gate(x)) * up(x))` (Gemma).
    GeluTanhGated,
}

/// Which attention a layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    /// Every earlier position.
    Full,
    /// The last [`ModelConfig::sliding_window`] positions (the query's own included); on
    /// Gemma 3 also the local rope ([`ModelConfig::rope_local`]).
    Sliding,
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

/// Phi-3's LongRoPE: per-frequency divisors, the short set for passes whose longest row
/// fits in the pretraining context, the long set beyond it, and cos/sin scaled by
/// `attention_factor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongRope {
    pub short_factor: Vec<f64>,
    pub long_factor: Vec<f64>,
    pub original_max_position_embeddings: usize,
    pub attention_factor: f64,
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
    /// Bias on the q, k and v projections.
    pub attention_bias: bool,
    /// Bias on the attention output projection (Llama: = `attention_bias`; Qwen2: none).
    pub o_proj_bias: bool,
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
    /// Sliding-window attention span (Mistral, Gemma 2/3, Phi-3): a query attends to
    /// itself and the `sliding_window - 1` positions before it, on the layers
    /// [`ModelConfig::layer_attention`] marks sliding.
    pub sliding_window: Option<usize>,
    /// Attention kind of each layer; empty means every layer is
    /// [`AttentionKind::Sliding`] when `sliding_window` is set, else [`AttentionKind::Full`].
    #[serde(default)]
    pub layer_attention: Vec<AttentionKind>,
    /// Rotary parameters of the sliding (local) layers when they differ from `rope`
    /// (Gemma 3's `rope_local_base_freq`).
    #[serde(default)]
    pub rope_local: Option<RopeConfig>,
    /// LongRoPE frequency factors of `rope` (Phi-3 long-context models).
    #[serde(default)]
    pub longrope: Option<LongRope>,
    /// RMSNorm weights are stored as offsets: the norm multiplies by `1 + w` (Gemma).
    #[serde(default)]
    pub norm_plus_one: bool,
    /// The token embedding is multiplied by this (Gemma: √hidden_size).
    #[serde(default)]
    pub embed_scale: Option<f64>,
    /// Attention scores are scaled by `query_pre_attn_scalar^-1/2` instead of
    /// `head_dim^-1/2` (Gemma 2/3).
    #[serde(default)]
    pub query_pre_attn_scalar: Option<f64>,
    /// The attention and MLP branches are normed again before the residual add
    /// (Gemma 2/3 `post_attention_layernorm` / `post_feedforward_layernorm`).
    #[serde(default)]
    pub post_norms: bool,
}

impl ModelConfig {
    /// Errors if the config needs a feature whose seam exists but is not implemented yet.
    pub fn check_implemented(&self) -> Result<()> {
        let unsupported = |what: &str| {
            Err(ModelError::Config(format!(
                "{} ({:?} family) needs {what}, which this runtime does not implement yet",
                self.model_type, self.arch
            )))
        };
        if self.parallel_residual {
            return unsupported("a parallel residual");
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
        if !self.layer_attention.is_empty() && self.layer_attention.len() != self.n_layers {
            return Err(ModelError::Config(format!(
                "{} layer attention kinds for {} layers",
                self.layer_attention.len(),
                self.n_layers
            )));
        }
        if let Some(l) = &self.longrope {
            let half = self.head_dim / 2;
            if l.short_factor.len() != half || l.long_factor.len() != half {
                return Err(ModelError::Config(format!(
                    "longrope factors: {} short and {} long, expected head_dim / 2 = {half} each",
                    l.short_factor.len(),
                    l.long_factor.len()
                )));
            }
        }
        if self.sliding_window == Some(0) {
            return Err(ModelError::Config("sliding_window must be positive".into()));
        }
        Ok(())
    }

    /// The attention kind of layer `l`.
    pub fn attention_kind(&self, l: usize) -> AttentionKind {
        match self.layer_attention.get(l) {
            Some(k) => *k,
            None if self.sliding_window.is_some() => AttentionKind::Sliding,
            None => AttentionKind::Full,
        }
    }

    /// The sliding window of layer `l`, if it has one.
    pub fn window(&self, l: usize) -> Option<usize> {
        match self.attention_kind(l) {
            AttentionKind::Sliding => self.sliding_window,
            AttentionKind::Full => None,
        }
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
