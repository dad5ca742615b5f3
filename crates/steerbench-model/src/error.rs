//! One error type for the runtime. Each variant says where and what.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("unsupported model_type `{found}`; supported: {supported}")]
    UnsupportedArch { found: String, supported: String },
    #[error("tensor `{name}`: expected shape {expected:?}, found {found:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{0}")]
    Config(String),
    #[error("GGUF {path}: {msg}")]
    Gguf { path: PathBuf, msg: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    ChatTemplate(String),
    #[error("fetching model: {0}")]
    Fetch(String),
    #[error("hub: {0}")]
    Hub(String),
    #[error("unknown model `{name}`; known registry models: {known}")]
    UnknownModel { name: String, known: String },
    #[error("tensor `{0}` not found in the weights")]
    MissingTensor(String),
    #[error("{path}: refusing to load a pickle checkpoint: unpickling runs arbitrary code. Convert it once, in a trusted environment, to safetensors (transformers: `AutoModelForCausalLM.from_pretrained(dir).save_pretrained(out, safe_serialization=True)`, or `safetensors.torch.save_file(torch.load(path), \"model.safetensors\")`)")]
    Pickle { path: PathBuf },
    #[error("{path}: corrupt or truncated weights file: {message}")]
    CorruptWeights { path: PathBuf, message: String },
    #[error("invalid input: {0}")]
    Input(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, ModelError>;
