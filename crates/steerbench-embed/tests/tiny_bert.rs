//! The embedder on a tiny random-weight BERT: shapes, unit norms, padding and batching that
//! change nothing, truncation at the model's length, and clear errors for broken folders.

mod common;

use candle_core::Device;
use common::{max_abs_diff, write_json, write_tiny_model, HIDDEN};
use steerbench_embed::{EmbedError, EmbedderFiles, SentenceEmbedder};

fn tiny(max_pos: usize) -> (tempfile::TempDir, SentenceEmbedder) {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), max_pos);
    let e = SentenceEmbedder::load(tmp.path(), &Device::Cpu).unwrap();
    (tmp, e)
}

const TEXTS: &[&str] = &[
    "the cat sat on the mat",
    "a dog",
    "the big red dog runs fast , and the blue cat is happy .",
    "",
    "train",
];

#[test]
fn one_unit_vector_of_the_hidden_size_per_text() {
    let (_d, e) = tiny(64);
    assert_eq!(e.dim(), HIDDEN);
    assert_eq!(e.max_seq_len(), 64);
    let out = e.embed(TEXTS).unwrap();
    assert_eq!(out.len(), TEXTS.len());
    for v in &out {
        assert_eq!(v.len(), HIDDEN);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    assert_ne!(out[0], out[1]);
    assert!(e.embed(&[]).unwrap().is_empty());
}

#[test]
fn padding_batching_and_order_change_nothing() {
    let (_d, e) = tiny(64);
    let alone: Vec<Vec<f32>> = TEXTS
        .iter()
        .map(|t| e.embed(&[t]).unwrap().remove(0))
        .collect();
    let e = e.with_batch_size(8);
    let together = e.embed(TEXTS).unwrap();
    let e = e.with_batch_size(2);
    let pairs = e.embed(TEXTS).unwrap();
    let reversed: Vec<&str> = TEXTS.iter().rev().copied().collect();
    let mut back = e.embed(&reversed).unwrap();
    back.reverse();
    for i in 0..TEXTS.len() {
        for other in [&together[i], &pairs[i], &back[i]] {
            let d = max_abs_diff(&alone[i], other);
            assert!(d < 1e-5, "text {i}: padded differs from unpadded by {d}");
        }
    }
}

#[test]
fn same_text_same_vector_and_duplicates_allowed() {
    let (_d, e) = tiny(64);
    let out = e.embed(&["the cat", "a dog", "the cat"]).unwrap();
    assert!(max_abs_diff(&out[0], &out[2]) < 1e-6);
}

#[test]
fn long_text_is_truncated_at_max_seq_length() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), 64);
    write_json(
        &tmp.path().join("sentence_bert_config.json"),
        &serde_json::json!({"max_seq_length": 5, "do_lower_case": false}),
    );
    let e = SentenceEmbedder::load(tmp.path(), &Device::Cpu).unwrap();
    assert_eq!(e.max_seq_len(), 5);
    // [CLS] the cat sat [SEP]: five tokens; the rest is cut off.
    let out = e.embed(&["the cat sat on the mat", "the cat sat"]).unwrap();
    assert!(max_abs_diff(&out[0], &out[1]) < 1e-6);
    let other = e.embed(&["the cat runs"]).unwrap();
    assert!(max_abs_diff(&out[0], &other[0]) > 1e-4);
}

#[test]
fn text_longer_than_the_position_table_is_cut_not_a_crash() {
    let (_d, e) = tiny(8);
    let long = "the cat sat on the mat ".repeat(10);
    let out = e.embed(&[&long, "a dog"]).unwrap();
    assert_eq!(out[0].len(), HIDDEN);
    let err = e.embed_ids(&[&[2u32; 9][..]]).unwrap_err().to_string();
    assert!(err.contains("more than the model's 8"), "{err}");
}

#[test]
fn explicit_file_paths_work_too() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), 16);
    let files = EmbedderFiles {
        config: tmp.path().join("config.json"),
        weights: tmp.path().join("model.safetensors"),
        tokenizer: tmp.path().join("tokenizer.json"),
        sentence_config: None,
        pooling_config: None,
    };
    let a = SentenceEmbedder::load(files, &Device::Cpu).unwrap();
    let b = SentenceEmbedder::load(tmp.path().to_path_buf(), &Device::Cpu).unwrap();
    assert_eq!(a.embed(&["a dog"]).unwrap(), b.embed(&["a dog"]).unwrap());
}

fn load_err(dir: &std::path::Path) -> (EmbedError, String) {
    let e = SentenceEmbedder::load(dir, &Device::Cpu).unwrap_err();
    let s = e.to_string();
    (e, s)
}

#[test]
fn corrupt_or_truncated_safetensors_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), 16);
    let w = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let (e, s) = load_err(tmp.path());
    assert!(matches!(e, EmbedError::CorruptWeights { .. }), "{s}");
    assert!(
        s.contains("model.safetensors") && s.contains("corrupt"),
        "{s}"
    );

    std::fs::write(&w, b"not a safetensors file at all").unwrap();
    let (e, s) = load_err(tmp.path());
    assert!(matches!(e, EmbedError::CorruptWeights { .. }), "{s}");

    std::fs::write(&w, b"").unwrap();
    let (e, s) = load_err(tmp.path());
    assert!(matches!(e, EmbedError::CorruptWeights { .. }), "{s}");
}

#[test]
fn weights_that_do_not_fit_the_config_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), 16);
    let cfg = tmp.path().join("config.json");
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();

    let mut wrong_shape = good.clone();
    wrong_shape["intermediate_size"] = 64.into();
    write_json(&cfg, &wrong_shape);
    let (e, s) = load_err(tmp.path());
    assert!(matches!(e, EmbedError::Weights { .. }), "{s}");
    assert!(
        s.contains("model.safetensors") && s.contains("shape"),
        "{s}"
    );

    let mut more_layers = good.clone();
    more_layers["num_hidden_layers"] = 3.into();
    write_json(&cfg, &more_layers);
    let (e, s) = load_err(tmp.path());
    assert!(matches!(e, EmbedError::Weights { .. }), "{s}");
    assert!(s.contains("layer.2"), "{s}");

    let mut bad_heads = good.clone();
    bad_heads["num_attention_heads"] = 5.into();
    write_json(&cfg, &bad_heads);
    let (_, s) = load_err(tmp.path());
    assert!(s.contains("config.json") && s.contains("multiple"), "{s}");

    let mut small_vocab = good;
    small_vocab["vocab_size"] = 10.into();
    write_json(&cfg, &small_vocab);
    let (_, s) = load_err(tmp.path());
    assert!(
        s.contains("model.safetensors") || s.contains("tokenizer.json"),
        "{s}"
    );
}

#[test]
fn missing_and_malformed_small_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_tiny_model(tmp.path(), 16);
    let tok = tmp.path().join("tokenizer.json");
    std::fs::write(&tok, "{ not json").unwrap();
    let (e, s) = load_err(tmp.path());
    assert!(
        matches!(e, EmbedError::Tokenizer { .. }) && s.contains("tokenizer.json"),
        "{s}"
    );
    std::fs::remove_file(&tok).unwrap();
    let (e, s) = load_err(tmp.path());
    assert!(
        matches!(e, EmbedError::MissingFile { .. }) && s.contains("tokenizer.json"),
        "{s}"
    );

    write_tiny_model(tmp.path(), 16);
    std::fs::write(tmp.path().join("config.json"), r#"{"hidden_size": 16}"#).unwrap();
    let (e, s) = load_err(tmp.path());
    assert!(
        matches!(e, EmbedError::Config { .. }) && s.contains("config.json"),
        "{s}"
    );

    write_tiny_model(tmp.path(), 16);
    write_json(
        &tmp.path().join("1_Pooling/config.json"),
        &serde_json::json!({"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}),
    );
    let (_, s) = load_err(tmp.path());
    assert!(s.contains("only mean pooling"), "{s}");

    let (e, s) = load_err(&tmp.path().join("nowhere"));
    assert!(
        matches!(e, EmbedError::MissingFile { .. }) && s.contains("config.json"),
        "{s}"
    );
}
