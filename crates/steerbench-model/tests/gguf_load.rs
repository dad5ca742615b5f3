//! A tiny Llama written as GGUF the way llama.cpp's converter does (Q/K rows permuted, GGUF
//! names, byte-level BPE tokenizer in the metadata) loads to exactly the model built from the
//! same Hugging Face tensors; corrupt and truncated files get clear errors, no panic.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use steerbench_model::gguf::{permute_rows, GgufFile};
use steerbench_model::{
    resolve_with, ChatMessage, Hooks, Model, ModelConfig, ModelSource, ResolveOptions, Sequence,
    Tokenizer,
};

const N_LAYERS: usize = 2;
const D: usize = 16;
const N_HEAD: usize = 4;
const N_KV: usize = 2;
const HD: usize = 4;
const FF: usize = 24;

/// GPT-2's byte → printable char map.
fn bytes_to_unicode() -> Vec<char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut map = vec![' '; 256];
    for (b, c) in bs.iter().zip(cs) {
        map[*b as usize] = char::from_u32(c).unwrap();
    }
    map
}

/// Vocabulary: 256 byte tokens, 3 merges, 2 control tokens.
fn vocab() -> (Vec<String>, Vec<String>, Vec<i32>) {
    let mut tokens: Vec<String> = bytes_to_unicode().into_iter().map(String::from).collect();
    let merges = vec!["h e".to_string(), "Ġ t".to_string(), "Ġt he".to_string()];
    tokens.extend(["he", "Ġt", "Ġthe", "<|endoftext|>", "<|im_start|>"].map(String::from));
    let mut types = vec![1; tokens.len()];
    let n = types.len();
    types[n - 2] = 3;
    types[n - 1] = 3;
    (tokens, merges, types)
}

/// Hugging Face-layout tensors of a tiny GQA Llama with an untied head.
fn hf_tensors(vocab: usize) -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let mut t = HashMap::new();
    let mut r = |name: String, shape: &[usize], scale: f64| {
        let x = (Tensor::randn(0f32, 1f32, shape, &dev).unwrap() * scale).unwrap();
        t.insert(name, x);
    };
    r("model.embed_tokens.weight".into(), &[vocab, D], 1.0);
    r("lm_head.weight".into(), &[vocab, D], 0.3);
    for l in 0..N_LAYERS {
        let p = format!("model.layers.{l}");
        r(
            format!("{p}.self_attn.q_proj.weight"),
            &[N_HEAD * HD, D],
            0.4,
        );
        r(format!("{p}.self_attn.k_proj.weight"), &[N_KV * HD, D], 0.4);
        r(format!("{p}.self_attn.v_proj.weight"), &[N_KV * HD, D], 0.4);
        r(
            format!("{p}.self_attn.o_proj.weight"),
            &[D, N_HEAD * HD],
            0.4,
        );
        r(format!("{p}.mlp.gate_proj.weight"), &[FF, D], 0.3);
        r(format!("{p}.mlp.up_proj.weight"), &[FF, D], 0.3);
        r(format!("{p}.mlp.down_proj.weight"), &[D, FF], 0.3);
    }
    let mut t2 = t;
    for l in 0..N_LAYERS {
        for n in ["input_layernorm", "post_attention_layernorm"] {
            let w = (Tensor::randn(0f32, 0.1, D, &dev).unwrap() + 1.0).unwrap();
            t2.insert(format!("model.layers.{l}.{n}.weight"), w);
        }
    }
    t2.insert(
        "model.norm.weight".into(),
        Tensor::ones(D, DType::F32, &dev).unwrap(),
    );
    t2
}

fn gguf_name(hf: &str) -> String {
    let map = [
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
        ("post_attention_layernorm", "ffn_norm"),
        ("input_layernorm", "attn_norm"),
    ];
    match hf {
        "model.embed_tokens.weight" => return "token_embd.weight".into(),
        "model.norm.weight" => return "output_norm.weight".into(),
        "lm_head.weight" => return "output.weight".into(),
        _ => {}
    }
    let mut s = hf.replacen("model.layers.", "blk.", 1);
    for (a, b) in map {
        s = s.replace(a, b);
    }
    s
}

const TEMPLATE: &str =
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}\n{% endfor %}";

/// Write `tensors` as llama.cpp would: GGUF names, permuted Q/K.
fn write_gguf(path: &Path, tensors: &HashMap<String, Tensor>) {
    let (tokens, merges, types) = vocab();
    let s = |x: &str| Value::String(x.into());
    let arr = |v: &[String]| Value::Array(v.iter().map(|x| Value::String(x.clone())).collect());
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", s("llama")),
        ("llama.block_count", Value::U32(N_LAYERS as u32)),
        ("llama.context_length", Value::U32(64)),
        ("llama.embedding_length", Value::U32(D as u32)),
        ("llama.feed_forward_length", Value::U32(FF as u32)),
        ("llama.attention.head_count", Value::U32(N_HEAD as u32)),
        ("llama.attention.head_count_kv", Value::U32(N_KV as u32)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.rope.dimension_count", Value::U32(HD as u32)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("tokenizer.ggml.model", s("gpt2")),
        ("tokenizer.ggml.pre", s("smollm")),
        ("tokenizer.ggml.tokens", arr(&tokens)),
        ("tokenizer.ggml.merges", arr(&merges)),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.iter().map(|&t| Value::I32(t)).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(260)),
        ("tokenizer.ggml.eos_token_id", Value::U32(259)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        ("tokenizer.chat_template", s(TEMPLATE)),
    ];
    let mut qs = Vec::new();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let mut t = tensors[name].clone();
        if name.ends_with("q_proj.weight") {
            t = permute_rows(&t, N_HEAD).unwrap();
        } else if name.ends_with("k_proj.weight") {
            t = permute_rows(&t, N_KV).unwrap();
        }
        qs.push((
            gguf_name(name),
            QTensor::quantize(&t, GgmlDType::F32).unwrap(),
        ));
    }
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let q_refs: Vec<(&str, &QTensor)> = qs.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md_refs, &q_refs).unwrap();
}

fn last_logits(m: &Model, ids: &[u32]) -> Vec<f32> {
    let out = m
        .forward(&[Sequence::prompt(ids.to_vec())], &mut Hooks::new())
        .unwrap();
    out.last_logits()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn tiny_gguf_loads_to_the_hf_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (tokens, _, _) = vocab();
    let hf = hf_tensors(tokens.len());
    let path = tmp.path().join("tiny.gguf");
    write_gguf(&path, &hf);

    // Tensors come back under HF names with Q/K un-permuted, bit for bit.
    let file = GgufFile::open(&path).unwrap();
    let back = file.hf_tensors(&Device::Cpu).unwrap();
    assert_eq!(back.len(), hf.len());
    for (name, t) in &hf {
        let b = &back[name];
        assert_eq!(b.dims(), t.dims(), "{name}");
        let d: f32 = (b - t)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(d, 0.0, "{name}");
    }

    // The whole model: resolve + load from GGUF vs. building from the HF tensors directly.
    let cfg_json = file.hf_config_json().unwrap();
    assert_eq!(cfg_json["tie_word_embeddings"], false);
    let reference = Model::new(
        ModelConfig::from_hf_config(&cfg_json).unwrap(),
        VarBuilder::from_tensors(hf, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let opts = ResolveOptions {
        home: Some(tmp.path().join("home")),
        ..Default::default()
    };
    let resolved = resolve_with(
        &ModelSource::parse(path.to_str().unwrap()),
        &opts,
        &mut std::io::sink(),
    )
    .unwrap();
    assert_eq!(
        resolved.weight_hash,
        steerbench_model::fetch::sha256_file(&path).unwrap()
    );
    let cfg = resolved.config().unwrap();
    assert_eq!(
        (
            cfg.n_layers,
            cfg.n_heads,
            cfg.n_kv_heads,
            cfg.head_dim,
            cfg.vocab_size
        ),
        (2, 4, 2, 4, 261)
    );
    let loaded = resolved.load(&Device::Cpu).unwrap();
    let ids = loaded.tokenizer.encode("the theme he", false).unwrap();
    // "the" -> t,he; " theme" -> Ġthe,m,e; " he" -> Ġ,he (byte tokens have id = byte value).
    assert_eq!(ids, vec![116, 256, 258, 109, 101, 32, 256]);
    assert_eq!(
        last_logits(&loaded.model, &ids),
        last_logits(&reference, &ids)
    );

    // Tokenizer pieces from the metadata.
    let tok: &Tokenizer = &loaded.tokenizer;
    assert_eq!(tok.eos_token_ids(), &[259]);
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(260));
    assert_eq!(tok.encode("<|im_start|>he", false).unwrap(), vec![260, 256]);
    assert_eq!(tok.decode(&ids).unwrap(), "the theme he");
    assert_eq!(
        tok.apply_chat_template(&[ChatMessage::user("hi")], false)
            .unwrap(),
        "<|im_start|>user\nhi\n"
    );
}

#[test]
fn truncated_and_garbage_gguf_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (tokens, _, _) = vocab();
    let path = tmp.path().join("tiny.gguf");
    write_gguf(&path, &hf_tensors(tokens.len()));
    let bytes = std::fs::read(&path).unwrap();

    // Cut inside the tensor data: the header reads, the weights do not.
    let cut = tmp.path().join("cut_data.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let f = GgufFile::open(&cut).unwrap();
    let err = f.hf_tensors(&Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("cut_data.gguf") && err.contains("tensor"),
        "{err}"
    );

    // Cut inside the header.
    let cut = tmp.path().join("cut_header.gguf");
    std::fs::write(&cut, &bytes[..200]).unwrap();
    let err = GgufFile::open(&cut).unwrap_err().to_string();
    assert!(
        err.contains("cut_header.gguf") && err.contains("not a readable GGUF file"),
        "{err}"
    );

    // Random bytes.
    let junk = tmp.path().join("junk.gguf");
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&junk, noise).unwrap();
    let err = GgufFile::open(&junk).unwrap_err().to_string();
    assert!(
        err.contains("junk.gguf") && err.contains("not a readable GGUF file"),
        "{err}"
    );
    let opts = ResolveOptions {
        home: Some(tmp.path().join("home")),
        ..Default::default()
    };
    let r = resolve_with(
        &ModelSource::Gguf(junk.clone()),
        &opts,
        &mut std::io::sink(),
    )
    .unwrap();
    assert!(r.load(&Device::Cpu).is_err());
    assert!(r.config().is_err());

    // Missing file.
    let err = resolve_with(
        &ModelSource::Gguf(tmp.path().join("nope.gguf")),
        &opts,
        &mut std::io::sink(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("nope.gguf") && err.contains("not found"),
        "{err}"
    );
}
