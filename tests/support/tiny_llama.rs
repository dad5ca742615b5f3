//! A tiny random-weight Llama written to disk as a Hugging Face directory (byte-level
//! tokenizer, 2 layers, d = 16, a chat template): every byte is one token, so any text
//! encodes and the A/B letters are single tokens. Shared by end-to-end tests that need a
//! real model directory but not the real model's cost.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const HIDDEN: usize = 16;
const FF: usize = 32;
pub const LAYERS: usize = 2;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;

/// GPT-2's byte → printable character map (the byte-level BPE alphabet).
fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    let mut by_byte = vec!['\0'; 256];
    for (b, c) in printable.iter().zip(chars) {
        by_byte[*b as usize] = char::from_u32(c).unwrap();
    }
    by_byte
}

/// A random-weight Llama with a byte-level tokenizer (every byte one token, so any text
/// encodes and the A/B letters are single tokens), as a Hugging Face directory.
pub fn write_tiny_model(dir: &Path) {
    write_model(dir, HIDDEN, FF, LAYERS)
}

/// The same layout at another size (for tests that need a stage to take a while).
pub fn write_model(dir: &Path, hidden: usize, ff: usize, layers: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let vocab = 257; // 256 bytes + <eos>
    let head_dim = hidden / HEADS;
    let config = serde_json::json!({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
        "intermediate_size": ff, "num_hidden_layers": layers, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": 4096, "vocab_size": vocab, "tie_word_embeddings": true,
        "hidden_act": "silu", "eos_token_id": 256, "bos_token_id": 256,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut put = |name: String, shape: &[usize], center: f32, scale: f32| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| center + scale * rng.gen_range(-1.0f32..1.0))
            .collect();
        t.insert(name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap());
    };
    put(
        "model.embed_tokens.weight".into(),
        &[vocab, hidden],
        0.0,
        1.0,
    );
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        put(format!("{p}.input_layernorm.weight"), &[hidden], 1.0, 0.1);
        put(
            format!("{p}.post_attention_layernorm.weight"),
            &[hidden],
            1.0,
            0.1,
        );
        put(
            format!("{p}.self_attn.q_proj.weight"),
            &[hidden, hidden],
            0.0,
            0.4,
        );
        let kv = KV_HEADS * head_dim;
        put(
            format!("{p}.self_attn.k_proj.weight"),
            &[kv, hidden],
            0.0,
            0.4,
        );
        put(
            format!("{p}.self_attn.v_proj.weight"),
            &[kv, hidden],
            0.0,
            0.4,
        );
        put(
            format!("{p}.self_attn.o_proj.weight"),
            &[hidden, hidden],
            0.0,
            0.4,
        );
        put(format!("{p}.mlp.gate_proj.weight"), &[ff, hidden], 0.0, 0.4);
        put(format!("{p}.mlp.up_proj.weight"), &[ff, hidden], 0.0, 0.4);
        put(format!("{p}.mlp.down_proj.weight"), &[hidden, ff], 0.0, 0.4);
    }
    put("model.norm.weight".into(), &[hidden], 1.0, 0.1);
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();

    let vocab_map: serde_json::Map<String, serde_json::Value> = byte_chars()
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), serde_json::json!(i)))
        .collect();
    let byte_level = serde_json::json!({
        "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true
    });
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 256, "content": "<eos>", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "vocab": vocab_map, "merges": []},
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let tc = serde_json::json!({
        "eos_token": {"content": "<eos>", "special": true},
        "chat_template": "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}",
    });
    std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).unwrap();
}
