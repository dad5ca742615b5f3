//! What planning needs from the outside world: model facts and dataset
//! content hashes. The model part is injected (the model runtime implements
//! `ModelProbe`); dataset and file hashing is implemented here.
//!
//! A dataset resolves to the [`Source`] its bytes are read from at run time and
//! the blake3 of exactly those bytes; the loader checks that hash before parsing
//! (`steerbench_data::load_checked`), so a file changed after planning is refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use steerbench_data::{Pin, RemoteStore, Source};

/// Facts about a model that planning checks against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFacts {
    /// Canonical model id (e.g. `smollm2-135m-instruct`).
    pub id: String,
    pub n_layers: usize,
    pub hidden_size: usize,
    /// Content hash of the weight file(s).
    pub weight_hash: String,
    /// The longest sequence the model takes (`max_position_embeddings`, GGUF
    /// `context_length`); 0 when unknown.
    #[serde(default)]
    pub context_length: usize,
    /// The projections a LoRA adapter can target in each block (`q`, `k`, … or the
    /// fused `qkv`, `gate_up`); empty when unknown (then not checked).
    #[serde(default)]
    pub lora_modules: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The outside world as planning sees it.
pub trait Environment: Send + Sync {
    /// Facts about `model` (as written in the spec); an error if it is not available.
    fn model_facts(&self, model: &str) -> Result<ModelFacts, EnvError>;
    /// Resolves a dataset source (as written in the spec) to where its bytes are read at
    /// run time (relative paths joined to `base_dir`; URLs fetched into the dataset cache,
    /// their sha256 checked against `pin`) and the hex blake3 of those bytes.
    fn dataset(
        &self,
        source: &Source,
        base_dir: &Path,
        pin: Option<&Pin>,
    ) -> Result<DatasetLocation, EnvError>;
    /// blake3 of a file's bytes (report templates and other declared files).
    fn file_hash(&self, path: &Path) -> Result<String, EnvError>;
}

/// Where a dataset's bytes are read at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetLocation {
    /// A built-in embedded in the binary or a file (for a URL: its cached copy).
    pub location: Source,
    /// Hex blake3 of the bytes.
    pub hash: String,
    /// URL sources only: hex sha256 of the bytes (what pins and lock files hold).
    pub sha256: Option<String>,
}

/// Answers model questions; implemented by the model runtime.
pub trait ModelProbe: Send + Sync {
    fn model_facts(&self, model: &str) -> Result<ModelFacts, EnvError>;
}

/// A probe for builds without a model runtime: every model is unavailable.
pub struct NoModelRuntime;

impl ModelProbe for NoModelRuntime {
    fn model_facts(&self, model: &str) -> Result<ModelFacts, EnvError> {
        Err(EnvError::Unavailable(format!(
            "model `{model}` cannot be checked: this build of steerbench has no model runtime linked in"
        )))
    }
}

/// Where built-in datasets come from.
pub enum BuiltinStore {
    /// `<dir>/<name>.jsonl`; such a dataset resolves to that file's path, so the run
    /// reads (and checks) the very bytes that were hashed.
    Dir(PathBuf),
    /// (name, bytes) pairs compiled into the binary; they must be the bytes
    /// `steerbench_data::builtin` embeds (see `runtime::embedded_builtins`), which the
    /// run reads for `builtin:<name>` and checks against this hash.
    Embedded(Vec<(String, &'static [u8])>),
}

impl BuiltinStore {
    /// datasets/ at the root of this source tree.
    pub fn source_tree() -> Self {
        BuiltinStore::Dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets"))
    }

    fn names(&self) -> Vec<String> {
        match self {
            BuiltinStore::Dir(d) => {
                let mut v: Vec<String> = std::fs::read_dir(d)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_suffix(".jsonl")
                            .map(str::to_string)
                    })
                    .collect();
                v.sort();
                v
            }
            BuiltinStore::Embedded(items) => items.iter().map(|(n, _)| n.clone()).collect(),
        }
    }
}

/// The real environment: files hashed from disk, models through a probe.
pub struct LocalEnvironment<M> {
    pub builtins: BuiltinStore,
    pub models: M,
    /// The dataset cache URLs are fetched into; without one a URL source is an error.
    pub remote: Option<RemoteStore>,
    cache: Mutex<HashMap<PathBuf, String>>,
}

impl<M: ModelProbe> LocalEnvironment<M> {
    pub fn new(builtins: BuiltinStore, models: M) -> Self {
        LocalEnvironment {
            builtins,
            models,
            remote: None,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Fetches URL sources through `store`.
    pub fn with_remote(mut self, store: RemoteStore) -> Self {
        self.remote = Some(store);
        self
    }

    fn hash_file(&self, path: &Path) -> Result<String, EnvError> {
        if let Some(h) = self.cache.lock().expect("hash cache").get(path) {
            return Ok(h.clone());
        }
        if path.is_dir() {
            return Err(EnvError::Unavailable(format!(
                "{} is a directory, not a file",
                path.display()
            )));
        }
        if !path.is_file() {
            return Err(EnvError::NotFound(format!(
                "file not found: {}",
                path.display()
            )));
        }
        let mut hasher = blake3::Hasher::new();
        let file = std::fs::File::open(path).map_err(|source| EnvError::Io {
            path: path.into(),
            source,
        })?;
        hasher.update_reader(file).map_err(|source| EnvError::Io {
            path: path.into(),
            source,
        })?;
        let h = hasher.finalize().to_hex().to_string();
        self.cache
            .lock()
            .expect("hash cache")
            .insert(path.to_path_buf(), h.clone());
        Ok(h)
    }
}

impl<M: ModelProbe> Environment for LocalEnvironment<M> {
    fn model_facts(&self, model: &str) -> Result<ModelFacts, EnvError> {
        self.models.model_facts(model)
    }

    fn dataset(
        &self,
        source: &Source,
        base_dir: &Path,
        pin: Option<&Pin>,
    ) -> Result<DatasetLocation, EnvError> {
        let local = |(location, hash): (Source, String)| DatasetLocation {
            location,
            hash,
            sha256: None,
        };
        match source {
            Source::Builtin(name) => {
                let found = match &self.builtins {
                    BuiltinStore::Dir(d) => {
                        let p = d.join(format!("{name}.jsonl"));
                        if p.is_file() {
                            let h = self.hash_file(&p)?;
                            Some((Source::Path(p), h))
                        } else {
                            None
                        }
                    }
                    BuiltinStore::Embedded(items) => items
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, b)| (source.clone(), steerbench_data::content_hash(b))),
                };
                match found {
                    Some(found) => Ok(local(found)),
                    None => {
                        let names = self.builtins.names();
                        let hint =
                            crate::spec::diag::did_you_mean(name, names.iter().map(String::as_str))
                                .map(|h| format!("; {h}"))
                                .unwrap_or_default();
                        Err(EnvError::NotFound(format!(
                            "there is no built-in dataset `{name}` (built-in: {}){hint}",
                            names.join(", ")
                        )))
                    }
                }
            }
            Source::Path(p) => {
                let full = if p.is_absolute() {
                    p.clone()
                } else {
                    base_dir.join(p)
                };
                let h = self.hash_file(&full).map_err(|e| match e {
                    EnvError::NotFound(_) => EnvError::NotFound(format!(
                        "dataset file not found: {} (relative paths are resolved against the spec file's folder)",
                        full.display()
                    )),
                    other => other,
                })?;
                Ok(local((Source::Path(full), h)))
            }
            Source::Url(u) => {
                let Some(store) = &self.remote else {
                    return Err(EnvError::Unavailable(format!(
                        "dataset URL {u} cannot be fetched: this environment has no dataset cache"
                    )));
                };
                let got = store
                    .fetch(u, pin)
                    .map_err(|e| EnvError::Unavailable(e.to_string()))?;
                // Hashed afresh (not through the path cache): a re-fetch replaces the file.
                let bytes = std::fs::read(&got.path).map_err(|source| EnvError::Io {
                    path: got.path.clone(),
                    source,
                })?;
                let hash = steerbench_data::content_hash(&bytes);
                Ok(DatasetLocation {
                    location: Source::Path(got.path),
                    hash,
                    sha256: Some(got.sha256),
                })
            }
        }
    }

    fn file_hash(&self, path: &Path) -> Result<String, EnvError> {
        self.hash_file(path)
    }
}
