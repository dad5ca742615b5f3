//! A local Hugging Face directory: `config.json` + `model.safetensors` (or shards listed
//! in `model.safetensors.index.json`), memory-mapped. Pickle checkpoints are refused.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::config::ModelConfig;
use crate::decoder::Model;
use crate::error::{ModelError, Result};

/// File names / extensions of pickle-based checkpoints, which we never open.
const PICKLE_EXTS: &[&str] = &["bin", "pt", "pth", "ckpt", "pkl"];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn is_pickle(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PICKLE_EXTS.contains(&e))
}

/// Parse `dir/config.json` into a [`ModelConfig`].
pub fn read_config(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::Config(format!("{}: invalid JSON: {e}", path.display())))?;
    ModelConfig::from_hf_config(&json)
}

/// The safetensors weight files of `dir` (one file or the shards of the index), checked
/// to exist. A directory with only pickle weights gets [`ModelError::Pickle`].
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.is_file() && is_pickle(dir) {
        return Err(ModelError::Pickle {
            path: dir.to_path_buf(),
        });
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(io(&index))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::CorruptWeights {
                path: index.clone(),
                message: format!("invalid JSON: {e}"),
            })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::CorruptWeights {
                path: index.clone(),
                message: "no `weight_map` object".into(),
            })?;
        let mut files: Vec<String> = map
            .values()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        files.sort();
        files.dedup();
        return files
            .into_iter()
            .map(|f| {
                let p = dir.join(&f);
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(ModelError::CorruptWeights {
                        path: index.clone(),
                        message: format!("shard `{f}` is missing"),
                    })
                }
            })
            .collect();
    }
    let entries = std::fs::read_dir(dir).map_err(io(dir))?;
    let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    let mut st: Vec<PathBuf> = names
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .cloned()
        .collect();
    if !st.is_empty() {
        st.sort();
        return Ok(st);
    }
    if let Some(p) = names.iter().find(|p| is_pickle(p)) {
        return Err(ModelError::Pickle { path: p.clone() });
    }
    Err(ModelError::Other(format!(
        "{}: no model.safetensors, model.safetensors.index.json or *.safetensors found",
        dir.display()
    )))
}

/// Validate a safetensors file's header and sizes without reading its tensors.
pub fn check_safetensors(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    // SAFETY: read-only map of a file we do not modify; a concurrent writer could change
    // its bytes, which at worst yields wrong weights, as with any reader.
    let mmap = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(io(path))?;
    safetensors::SafeTensors::deserialize(&mmap)
        .map(|_| ())
        .map_err(|e| ModelError::CorruptWeights {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// A memory-mapped VarBuilder over safetensors files (validated first), f32.
pub fn var_builder(files: &[PathBuf], device: &Device) -> Result<VarBuilder<'static>> {
    for f in files {
        check_safetensors(f)?;
    }
    // SAFETY: as in `check_safetensors`; the files were just validated.
    Ok(unsafe { VarBuilder::from_mmaped_safetensors(files, DType::F32, device) }?)
}

/// Load a Hugging Face model directory (weights f32).
pub fn load_hf_dir(dir: &Path, device: &Device) -> Result<Model> {
    load_hf_dir_as(dir, device, DType::F32)
}

/// Load a Hugging Face model directory with its weight matrices held in `dtype` (f32,
/// bf16 or f16; see [`Model::new_with`]). Each tensor is converted as it is read from the
/// memory-mapped file, so no f32 copy of the whole model is ever made.
pub fn load_hf_dir_as(dir: &Path, device: &Device, dtype: DType) -> Result<Model> {
    let files = safetensors_files(dir)?;
    let cfg = read_config(dir)?;
    Model::new_with(
        cfg,
        var_builder(&files, device)?,
        &crate::layers::QuantWeights::new(),
        dtype,
    )
}
