//! One error type for the embedder. Every variant that comes from a file names it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("{path}: missing {what} (a sentence-embedder folder holds config.json, model.safetensors and tokenizer.json)")]
    MissingFile { path: PathBuf, what: &'static str },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid config: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: corrupt or truncated safetensors file: {message}")]
    CorruptWeights { path: PathBuf, message: String },
    #[error("{path}: weights do not fit the config (missing tensor or wrong shape): {message}")]
    Weights { path: PathBuf, message: String },
    #[error("{path}: cannot load tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("tokenizing input: {0}")]
    Encode(String),
    #[error("vectors of different lengths: {0} and {1}")]
    DimMismatch(usize, usize),
    #[error(transparent)]
    Fetch(#[from] steerbench_model::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, EmbedError>;

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EmbedError + '_ {
    move |source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    }
}
