//! The families table: one file per architecture family, each declaring its
//! `config.json` adapter, its block (tensor names and quirks) and its GGUF
//! conventions, and one table mapping Hugging Face `model_type` / GGUF
//! `general.architecture` to the family.
//!
//! Adding a family: write `families/NAME.rs` with a `pub(crate) const FAMILY: Family`,
//! add `NAME` to the `families!` list below, and give it an [`Arch`] variant.
//!
//! Module dependencies run one way: `config` (types) ← `layers` ← `block` ←
//! `families/family.rs` (the `Family` type) ← the family files ← this table ←
//! `decoder` / `gguf`.

use crate::config::{Arch, ModelConfig};
use crate::error::{ModelError, Result};

mod family;
pub(crate) mod rotary;

pub(crate) use family::{Family, GgufSpec};

/// The family (and its GGUF conventions) of a GGUF `general.architecture`.
pub(crate) fn gguf_family(arch: &str) -> Option<(&'static Family, &'static GgufSpec)> {
    FAMILIES.iter().find_map(|f| {
        f.gguf
            .as_ref()
            .filter(|g| g.archs.contains(&arch))
            .map(|g| (*f, g))
    })
}

/// Every GGUF `general.architecture` the loader maps.
pub fn supported_gguf_archs() -> Vec<&'static str> {
    FAMILIES
        .iter()
        .filter_map(|f| f.gguf.as_ref())
        .flat_map(|g| g.archs.iter().copied())
        .collect()
}

macro_rules! families {
    ($($name:ident),* $(,)?) => {
        $(mod $name;)*
        /// Every family, in the order supported names are listed.
        pub(crate) static FAMILIES: &[&Family] = &[$(&$name::FAMILY),*];
    };
}

families!(llama, gpt2, qwen2, qwen3, gemma, gemma2, gemma3, phi3);

/// The family of `arch`.
pub(crate) fn family(arch: Arch) -> &'static Family {
    FAMILIES
        .iter()
        .find(|f| f.arch == arch)
        .expect("every Arch has a family in FAMILIES")
}

/// Every `model_type` [`ModelConfig::from_hf_config`] accepts.
pub fn supported_model_types() -> Vec<&'static str> {
    FAMILIES
        .iter()
        .flat_map(|f| f.model_types.iter().copied())
        .collect()
}

impl ModelConfig {
    /// Build from the parsed `config.json` of a Hugging Face model directory.
    pub fn from_hf_config(json: &serde_json::Value) -> Result<ModelConfig> {
        let model_type = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ModelError::Config("config.json has no string `model_type`".into()))?;
        match FAMILIES
            .iter()
            .find(|f| f.model_types.contains(&model_type))
        {
            Some(f) => (f.config_from_hf)(model_type, json),
            None => Err(ModelError::UnsupportedArch {
                found: model_type.to_string(),
                supported: supported_model_types().join(", "),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arch_has_one_family_and_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for f in FAMILIES {
            assert!(std::ptr::eq(family(f.arch), *f));
            for t in f.model_types {
                assert!(seen.insert(*t), "model_type {t} in two families");
            }
        }
    }
}
