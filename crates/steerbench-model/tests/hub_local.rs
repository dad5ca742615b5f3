//! Hugging Face directories and hub ids, offline: a tiny model written as an HF directory,
//! loaded directly and through a local HTTP server that answers the way the hub does
//! (`/{repo}/resolve/{rev}/{file}`, ranged GETs, ETag + X-Repo-Commit headers).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use steerbench_model::hub::HubOptions;
use steerbench_model::{
    resolve_with, ChatMessage, Hooks, ModelFormat, ModelSource, ResolveOptions, Sequence, Tokenizer,
};

const WORDS: [&str; 8] = [
    "<unk>", "<eos>", "hello", "world", "steer", "the", "model", "now",
];

fn write_hf_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let (v, d, ff) = (WORDS.len(), 8usize, 16usize);
    let config = serde_json::json!({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": d,
        "intermediate_size": ff, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": 32, "vocab_size": v, "tie_word_embeddings": true,
        "hidden_act": "silu", "eos_token_id": 1,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let dev = Device::Cpu;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut r = |n: &str, s: &[usize]| {
        t.insert(
            n.to_string(),
            (Tensor::randn(0f32, 1f32, s, &dev).unwrap() * 0.3).unwrap(),
        );
    };
    r("model.embed_tokens.weight", &[v, d]);
    r("model.layers.0.self_attn.q_proj.weight", &[8, d]);
    r("model.layers.0.self_attn.k_proj.weight", &[4, d]);
    r("model.layers.0.self_attn.v_proj.weight", &[4, d]);
    r("model.layers.0.self_attn.o_proj.weight", &[d, 8]);
    r("model.layers.0.mlp.gate_proj.weight", &[ff, d]);
    r("model.layers.0.mlp.up_proj.weight", &[ff, d]);
    r("model.layers.0.mlp.down_proj.weight", &[d, ff]);
    for n in [
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.post_attention_layernorm.weight",
        "model.norm.weight",
    ] {
        t.insert(n.into(), Tensor::ones(d, DType::F32, &dev).unwrap());
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
    let vocab: serde_json::Map<String, serde_json::Value> = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 1, "content": "<eos>", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let tc = serde_json::json!({
        "eos_token": {"content": "<eos>", "special": true},
        "chat_template": "{% for m in messages %}{{ m.role }} {{ m.content.strip() }} {% endfor %}{% if add_generation_prompt %}model{% endif %}",
    });
    std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).unwrap();
}

#[test]
fn local_hf_dir_loads_with_its_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    write_hf_dir(&dir);
    let opts = ResolveOptions {
        home: Some(tmp.path().join("home")),
        ..Default::default()
    };
    let r = resolve_with(
        &ModelSource::LocalDir(dir.clone()),
        &opts,
        &mut std::io::sink(),
    )
    .unwrap();
    assert_eq!(r.format, ModelFormat::HfDir(dir.clone()));
    assert_eq!(r.files, vec![dir.join("model.safetensors")]);
    assert_eq!(r.config().unwrap().n_layers, 1);
    let m = r.load(&Device::Cpu).unwrap();
    let ids = m.tokenizer.encode("hello world now", false).unwrap();
    assert_eq!(ids, vec![2, 3, 7]);
    assert_eq!(m.tokenizer.eos_token_ids(), &[1]);
    assert_eq!(
        m.tokenizer
            .apply_chat_template(&[ChatMessage::user("  hello ")], true)
            .unwrap(),
        "user hello model"
    );
    let out = m
        .model
        .forward(&[Sequence::prompt(ids)], &mut Hooks::new())
        .unwrap();
    assert_eq!(out.last_logits().unwrap().dims(), &[1, WORDS.len()]);

    // No tokenizer.json: a clear error that says what is missing.
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let err = Tokenizer::from_hf_dir(&dir).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json not found"), "{err}");
    assert!(r.load(&Device::Cpu).is_err());
}

/// Serves `root/{repo}/{file}` at `/{repo}/resolve/{rev}/{file}` like the hub; counts requests.
fn serve(root: PathBuf, commit: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            h.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut range_start = 0usize;
            let mut range_end: Option<usize> = None;
            loop {
                let mut hdr = String::new();
                if reader.read_line(&mut hdr).unwrap() == 0 || hdr == "\r\n" {
                    break;
                }
                if let Some(v) = hdr.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    let (a, b) = v.trim().split_once('-').unwrap();
                    range_start = a.parse().unwrap();
                    range_end = b.parse().ok();
                }
            }
            // /{org}/{name}/resolve/{rev}/{file}
            let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
            let file = (parts.len() == 5 && parts[2] == "resolve")
                .then(|| root.join(parts[0]).join(parts[1]).join(parts[4]));
            match file.and_then(|f| std::fs::read(f).ok()) {
                Some(body) => {
                    let end = range_end.unwrap_or(body.len() - 1).min(body.len() - 1);
                    let mut data = Vec::new();
                    let slice = &body
                        [range_start.min(body.len())..=end.max(range_start).min(body.len() - 1)];
                    write!(
                        data,
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nETag: \"etag-{}-{}\"\r\nX-Repo-Commit: {commit}\r\nConnection: close\r\n\r\n",
                        slice.len(), range_start, range_start + slice.len() - 1, body.len(), parts[4].replace('.', "-"), body.len()
                    )
                    .unwrap();
                    data.extend_from_slice(slice);
                    stream.write_all(&data).unwrap();
                }
                None => {
                    stream
                        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .unwrap();
                }
            }
        }
    });
    (format!("http://{addr}"), hits)
}

#[test]
fn hub_id_downloads_from_a_local_hub_then_works_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("server");
    write_hf_dir(&root.join("tiny-org").join("tiny-llama"));
    let (endpoint, hits) = serve(root, "0123456789abcdef0123456789abcdef01234567");
    let hf_cache = tmp.path().join("hf");
    let opts = ResolveOptions {
        home: Some(tmp.path().join("home")),
        hub: HubOptions {
            endpoint: Some(endpoint),
            cache_dir: Some(hf_cache.clone()),
            token: None,
        },
        ..Default::default()
    };
    let src = ModelSource::parse("hub:tiny-org/tiny-llama@v1");
    let r = resolve_with(&src, &opts, &mut std::io::sink()).unwrap();
    assert_eq!(r.id, "tiny-org/tiny-llama@v1");
    let ModelFormat::HfDir(dir) = &r.format else {
        panic!("{:?}", r.format)
    };
    assert!(
        dir.starts_with(
            hf_cache
                .join("models--tiny-org--tiny-llama")
                .join("snapshots")
        ),
        "{}",
        dir.display()
    );
    let served = std::fs::read(
        tmp.path()
            .join("server/tiny-org/tiny-llama/model.safetensors"),
    )
    .unwrap();
    assert_eq!(std::fs::read(&r.files[0]).unwrap(), served);
    let m = r.load(&Device::Cpu).unwrap();
    assert_eq!(
        m.tokenizer.encode("steer the model", false).unwrap(),
        vec![4, 5, 6]
    );
    let first_hits = hits.load(Ordering::SeqCst);
    assert!(first_hits > 0);

    // Second resolve: everything is cached, no request is made.
    let again = resolve_with(&src, &opts, &mut std::io::sink()).unwrap();
    assert_eq!(again.weight_hash, r.weight_hash);
    assert_eq!(hits.load(Ordering::SeqCst), first_hits);

    // A repo the hub does not have: a clear error naming it.
    let err = resolve_with(
        &ModelSource::parse("tiny-org/missing@main"),
        &opts,
        &mut std::io::sink(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("tiny-org/missing@main"), "{err}");
}
