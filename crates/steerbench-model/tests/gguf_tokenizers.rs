//! GGUF tokenizers against transformers' GGUF loader on tiny invented vocabularies
//! (tests/golden/make_gguf_tokenizers.py): SentencePiece-style `llama` (Llama 2 flavour with
//! a dummy prefix, and Gemma's), byte-level BPE with the Qwen2 / Llama 3 splits.

use std::path::PathBuf;

use serde_json::Value;
use steerbench_model::gguf::GgufFile;
use steerbench_model::Tokenizer;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tokenizers")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap()).unwrap()
}

fn load(name: &str) -> Tokenizer {
    Tokenizer::from_gguf(&GgufFile::open(dir().join(name)).unwrap()).unwrap()
}

#[test]
fn token_ids_and_decoding_match_transformers() {
    let exp = expected();
    let files = exp.as_object().unwrap();
    assert!(files.len() >= 5);
    for (name, e) in files {
        let tok = load(name);
        for (text, ids) in e["encode"].as_object().unwrap() {
            let want: Vec<u32> = serde_json::from_value(ids.clone()).unwrap();
            let got = tok.encode(text, true).unwrap();
            assert_eq!(got, want, "{name}: {text:?}");
        }
        for (text, decoded) in e["decode"].as_object().unwrap() {
            let ids = tok.encode(text, false).unwrap();
            assert_eq!(
                tok.decode(&ids).unwrap(),
                decoded.as_str().unwrap(),
                "{name}: decode {text:?}"
            );
        }
    }
}

#[test]
fn bos_policy_and_special_tokens() {
    // Gemma-style: `<bos>` added with special tokens, never twice; control tokens whole.
    let g = load("sp_gemma3.gguf");
    assert_eq!(g.bos_token_id(), Some(2));
    assert!(g.adds_bos());
    let with = g.encode("the cat", true).unwrap();
    let without = g.encode("the cat", false).unwrap();
    assert_eq!(with[0], 2);
    assert_eq!(&with[1..], &without[..]);
    assert_eq!(g.encode("<start_of_turn>", false).unwrap(), vec![5]);
    assert!(g.eos_token_ids().contains(&1));
    assert_eq!(g.encode_prompt("<bos>the cat").unwrap(), with);
    assert_eq!(g.encode_prompt("the cat").unwrap(), with);
    // Byte-level Qwen2 files add no BOS.
    let q = load("bl_qwen2.gguf");
    assert!(!q.adds_bos());
    assert_eq!(
        q.encode("the cat", true).unwrap(),
        q.encode("the cat", false).unwrap()
    );
    // Qwen2 splits digits one by one, Llama 3 in threes: the `12`, `123` merges only apply
    // to the latter.
    let l3 = load("bl_llama-bpe.gguf");
    assert!(q.encode("12345", false).unwrap().len() > l3.encode("12345", false).unwrap().len());
}

#[test]
fn merges_follow_scores_then_lengths() {
    let toks: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let scores = [0.0, 0.0, 0.0, -2.0, -1.0, -3.0];
    let m = steerbench_model::tokenizer::sentencepiece_merges(&toks, &scores);
    let m: Vec<String> = m.iter().map(|[l, r]| format!("{l} {r}")).collect();
    // bc (-1) before ab (-2) before abc's two splits (-3: longer left piece first).
    assert_eq!(m, ["b c", "a b", "ab c", "a bc"]);
}

#[test]
fn unsupported_tokenizer_models_are_named() {
    let mut m = std::collections::HashMap::new();
    use candle_core::quantized::gguf_file::Value as V;
    m.insert("tokenizer.ggml.model".to_string(), V::String("rwkv".into()));
    m.insert(
        "tokenizer.ggml.tokens".to_string(),
        V::Array(vec![V::String("a".into())]),
    );
    let err = steerbench_model::tokenizer::gguf_tokenizer_json(&m).unwrap_err();
    assert!(err.contains("`rwkv` is not supported"), "{err}");
}
