//! Our tokenizer built from the SmolLM2 GGUF metadata against transformers' token ids and chat
//! template output (tests/golden/smollm2_tokens.json). Skips when the model is not cached.

use std::path::PathBuf;

use steerbench_model::gguf::GgufFile;
use steerbench_model::{lookup, steerbench_home, ChatMessage, Tokenizer};

fn tokenizer() -> Option<Tokenizer> {
    let entry = lookup("smollm2-135m-instruct").unwrap();
    let home = steerbench_home().unwrap();
    let Some(path) = entry.cached(&home) else {
        eprintln!(
            "NOTE: skipping: SmolLM2 is not cached at {}",
            entry.cached_path(&home).display()
        );
        return None;
    };
    Some(Tokenizer::from_gguf(&GgufFile::open(path).unwrap()).unwrap())
}

fn golden() -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/smollm2_tokens.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn smollm2_tokenizer_matches_transformers() {
    let Some(tok) = tokenizer() else { return };
    let g = golden();
    for case in g["encode"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text, true).unwrap();
        assert_eq!(got, want, "ids differ for {text:?}");
        assert_eq!(tok.decode(&got).unwrap(), text, "round trip of {text:?}");
    }
    let msgs: Vec<ChatMessage> = serde_json::from_value(g["chat_messages"].clone()).unwrap();
    assert_eq!(
        tok.apply_chat_template(&msgs, true).unwrap(),
        g["chat_text"].as_str().unwrap()
    );
    assert_eq!(
        tok.special_tokens().eos_token.as_deref(),
        g["eos_token"].as_str()
    );
    assert_eq!(
        tok.special_tokens().bos_token.as_deref(),
        g["bos_token"].as_str()
    );
    assert_eq!(tok.eos_token_ids(), &[2]);
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
    assert_eq!(tok.vocab_size(), 49152);
}
