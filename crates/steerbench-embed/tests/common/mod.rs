//! A tiny random-weight BERT sentence embedder written to a temp folder: config.json,
//! model.safetensors (random weights from candle's initialisers) and a hand-written WordPiece
//! tokenizer.json, in the layout of a sentence-transformers model.

#![allow(dead_code)]

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config};
use serde_json::json;

pub const WORDS: &[&str] = &[
    "the", "cat", "dog", "sat", "on", "mat", "a", "red", "blue", "runs", "fast", "and", "happy",
    "sad", "train", "noon", ",", ".", "##s", "big",
];
pub const HIDDEN: usize = 16;

pub fn config_json(vocab: usize, max_pos: usize) -> serde_json::Value {
    json!({
        "vocab_size": vocab, "hidden_size": HIDDEN, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 32, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": max_pos, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0, "model_type": "bert"
    })
}

pub fn tokenizer_json() -> serde_json::Value {
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    let mut vocab = serde_json::Map::new();
    for (i, w) in specials.iter().chain(WORDS).enumerate() {
        vocab.insert(w.to_string(), json!(i));
    }
    let added: Vec<_> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"id": i, "content": s, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                               "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    })
}

pub fn vocab_size() -> usize {
    4 + WORDS.len()
}

/// Writes a tiny model into `dir` (max_position_embeddings `max_pos`) and returns nothing;
/// load it with `SentenceEmbedder::load(dir, ..)`.
pub fn write_tiny_model(dir: &Path, max_pos: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg_json = config_json(vocab_size(), max_pos);
    let cfg: Config = serde_json::from_value(cfg_json.clone()).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    BertModel::load(vb, &cfg).unwrap();
    varmap.save(dir.join("model.safetensors")).unwrap();
    write_json(&dir.join("config.json"), &cfg_json);
    write_json(&dir.join("tokenizer.json"), &tokenizer_json());
}

pub fn write_json(path: &Path, v: &serde_json::Value) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
