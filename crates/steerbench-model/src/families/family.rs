//! What a family file declares (the table in `mod.rs` lists them).

use crate::block::Parts;
use crate::config::{Arch, ModelConfig};
use crate::error::Result;
use crate::gguf_meta::ArchMeta;
use crate::layers::Src;

/// One architecture family.
pub(crate) struct Family {
    pub arch: Arch,
    /// Hugging Face `model_type` values it reads (the first is its name in messages).
    pub model_types: &'static [&'static str],
    /// `config.json` (parsed) -> config; gets the `model_type` it was chosen for.
    pub config_from_hf: fn(&str, &serde_json::Value) -> Result<ModelConfig>,
    /// Builds the model's parts from weights under Hugging Face names.
    pub load: fn(&ModelConfig, &Src) -> Result<Parts>,
    /// How llama.cpp writes the family as GGUF; `None`: no GGUF loading.
    pub gguf: Option<GgufSpec>,
}

/// llama.cpp's conventions for one family (its `convert_hf_to_gguf.py` and runtime).
pub(crate) struct GgufSpec {
    /// `general.architecture` values.
    pub archs: &'static [&'static str],
    /// The converter permuted Q/K rows into llama.cpp's interleaved rope layout.
    pub permute_qk: bool,
    /// The converter added this to every `*norm.weight` (Gemma: the `1 + w`).
    pub norm_shift: f64,
    /// Block tensor names that differ from Llama's: (GGUF part, Hugging Face part).
    pub names: &'static [(&'static str, &'static str)],
    /// `hidden_act` of the translated `config.json`.
    pub hidden_act: &'static str,
    /// Family `config.json` keys from the metadata (the shared ones are already set).
    pub config: fn(&ArchMeta, &mut serde_json::Value),
}

/// No family-specific GGUF metadata.
pub(crate) fn no_gguf_config(_: &ArchMeta, _: &mut serde_json::Value) {}
