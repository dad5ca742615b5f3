//! Which files make a sentence embedder, and the settings read from them (no weights here).

use std::path::{Path, PathBuf};

use candle_transformers::models::bert;
use serde::Deserialize;

use crate::error::{io, EmbedError, Result};

/// The files of a sentence-transformers model folder. `config`, `weights` and `tokenizer` are
/// required; the two sentence-transformers files are read when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderFiles {
    /// BERT config.json.
    pub config: PathBuf,
    /// model.safetensors (pickle checkpoints are never read).
    pub weights: PathBuf,
    /// Hugging Face tokenizer.json.
    pub tokenizer: PathBuf,
    /// sentence_bert_config.json: `max_seq_length`, the truncation length.
    pub sentence_config: Option<PathBuf>,
    /// 1_Pooling/config.json: must ask for mean pooling.
    pub pooling_config: Option<PathBuf>,
}

impl EmbedderFiles {
    /// The usual names inside `dir`; the optional files only when they exist.
    pub fn from_dir(dir: &Path) -> Self {
        let opt = |p: PathBuf| p.is_file().then_some(p);
        EmbedderFiles {
            config: dir.join("config.json"),
            weights: dir.join("model.safetensors"),
            tokenizer: dir.join("tokenizer.json"),
            sentence_config: opt(dir.join("sentence_bert_config.json")),
            pooling_config: opt(dir.join("1_Pooling").join("config.json")),
        }
    }

    /// Every required file exists, or a [`EmbedError::MissingFile`] naming the first missing one.
    pub fn check(&self) -> Result<()> {
        for (path, what) in [
            (&self.config, "BERT config (config.json)"),
            (&self.weights, "weights (model.safetensors)"),
            (&self.tokenizer, "tokenizer (tokenizer.json)"),
        ] {
            if !path.is_file() {
                return Err(EmbedError::MissingFile {
                    path: path.clone(),
                    what,
                });
            }
        }
        Ok(())
    }
}

impl<P: AsRef<Path>> From<P> for EmbedderFiles {
    fn from(dir: P) -> Self {
        EmbedderFiles::from_dir(dir.as_ref())
    }
}

/// What the embedder needs from the small files.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedderSettings {
    pub bert: bert::Config,
    /// Tokens per input, special tokens included; longer inputs are truncated.
    pub max_seq_len: usize,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| EmbedError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads and checks the config files. The truncation length is sentence_bert_config.json's
/// `max_seq_length` (sentence-transformers overrides the tokenizer's own setting with it: 256
/// for all-MiniLM-L6-v2 whose tokenizer.json says 128), else the position table's size, and
/// never more than the position table holds.
pub fn read_settings(files: &EmbedderFiles) -> Result<EmbedderSettings> {
    files.check()?;
    let bert: bert::Config = read_json(&files.config)?;
    let bad = |message: String| EmbedError::Config {
        path: files.config.clone(),
        message,
    };
    let sizes = [
        ("vocab_size", bert.vocab_size),
        ("hidden_size", bert.hidden_size),
        ("num_hidden_layers", bert.num_hidden_layers),
        ("num_attention_heads", bert.num_attention_heads),
        ("intermediate_size", bert.intermediate_size),
        ("max_position_embeddings", bert.max_position_embeddings),
        ("type_vocab_size", bert.type_vocab_size),
    ];
    if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
        return Err(bad(format!("{name} is 0")));
    }
    if bert.hidden_size % bert.num_attention_heads != 0 {
        return Err(bad(format!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            bert.hidden_size, bert.num_attention_heads
        )));
    }
    if bert.pad_token_id >= bert.vocab_size {
        return Err(bad(format!(
            "pad_token_id {} is outside the vocabulary ({})",
            bert.pad_token_id, bert.vocab_size
        )));
    }
    let mut max_seq_len = bert.max_position_embeddings;
    if let Some(p) = &files.sentence_config {
        let sc: SentenceBertConfig = read_json(p)?;
        if sc.max_seq_length < 2 {
            return Err(EmbedError::Config {
                path: p.clone(),
                message: format!(
                    "max_seq_length {} leaves no room for text",
                    sc.max_seq_length
                ),
            });
        }
        max_seq_len = max_seq_len.min(sc.max_seq_length);
    }
    if let Some(p) = &files.pooling_config {
        check_pooling(p, &read_json(p)?)?;
    }
    Ok(EmbedderSettings { bert, max_seq_len })
}

/// Only mean pooling is implemented: refuse a pooling config that asks for anything else.
fn check_pooling(path: &Path, cfg: &serde_json::Value) -> Result<()> {
    let modes: Vec<&str> = cfg
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| k.starts_with("pooling_mode_") && v.as_bool() == Some(true))
        .map(|(k, _)| k.as_str())
        .collect();
    if modes != ["pooling_mode_mean_tokens"] {
        return Err(EmbedError::Config {
            path: path.to_path_buf(),
            message: format!(
                "only mean pooling (pooling_mode_mean_tokens alone) is implemented; this asks for {modes:?}"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_must_be_mean_alone() {
        let p = Path::new("1_Pooling/config.json");
        let ok = serde_json::json!({"word_embedding_dimension": 384, "pooling_mode_mean_tokens": true,
                                    "pooling_mode_cls_token": false});
        assert!(check_pooling(p, &ok).is_ok());
        let cls =
            serde_json::json!({"pooling_mode_mean_tokens": false, "pooling_mode_cls_token": true});
        let err = check_pooling(p, &cls).unwrap_err().to_string();
        assert!(
            err.contains("1_Pooling/config.json") && err.contains("pooling_mode_cls_token"),
            "{err}"
        );
    }

    #[test]
    fn missing_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("config.json"), "{}").unwrap();
        let err = read_settings(&EmbedderFiles::from_dir(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("missing"),
            "{err}"
        );
    }
}
