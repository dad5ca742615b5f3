//! steerbench's sentence embedder: a metric model for concept similarity of generations.
//!
//! [`SentenceEmbedder`] runs a BERT encoder (candle-transformers) with a Hugging Face tokenizer
//! and turns each text into a unit-length vector (mean pooling over real tokens, then L2
//! normalisation), matching sentence-transformers' all-MiniLM-L6-v2 (tested against a golden
//! file made with sentence-transformers). The model comes from steerbench's registry
//! (`all-minilm-l6-v2`, fetched and hash-checked by steerbench-model) or any local folder with
//! config.json, model.safetensors and tokenizer.json. The math lives in [`pooling`] (pure).

pub mod embedder;
pub mod error;
pub mod files;
pub mod pooling;

pub use embedder::{fetch, SentenceEmbedder, DEFAULT_BATCH_SIZE, REGISTRY_NAME};
pub use error::{EmbedError, Result};
pub use files::{read_settings, EmbedderFiles, EmbedderSettings};
pub use pooling::{cosine, l2_normalize, mean_pool};
