//! The tokenizer: a `tokenizers::Tokenizer` plus what a causal LM needs around it (special
//! tokens, BOS policy, EOS ids, chat template). Built from a Hugging Face directory
//! (`tokenizer.json` + `tokenizer_config.json`) or from GGUF metadata (`tokenizer.ggml.*`).
//!
//! GGUF byte-level BPE is turned into a `tokenizer.json` document and parsed by the
//! tokenizers crate, so both sources go through the same, well-tested code.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use serde_json::{json, Value as Json};

use crate::chat::{ChatMessage, ChatTemplate, TemplateTokens};
use crate::error::{ModelError, Result};
use crate::gguf::{meta_usize, GgufFile};

#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    special: TemplateTokens,
    eos_ids: Vec<u32>,
    bos_id: Option<u32>,
    /// Whether `encode(text, true)` puts `bos_id` first (the model wants BOS before a prompt).
    adds_bos: bool,
    chat_template: Option<ChatTemplate>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.inner.get_vocab_size(true))
            .field("special", &self.special)
            .field("eos_ids", &self.eos_ids)
            .field("chat_template", &self.chat_template.is_some())
            .finish()
    }
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

impl Tokenizer {
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, add_special_tokens)
            .map_err(tok_err)?
            .get_ids()
            .to_vec())
    }

    /// Decodes ids as-is (special tokens kept), like transformers' default.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(tok_err)
    }

    /// Decodes without special tokens (for showing generations).
    pub fn decode_skip_special(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(tok_err)
    }

    pub fn apply_chat_template(
        &self,
        msgs: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let t = self.chat_template.as_ref().ok_or_else(|| {
            ModelError::ChatTemplate(
                "this tokenizer has no chat template (use prompt_format: raw, or a chat model)"
                    .into(),
            )
        })?;
        t.render(msgs, add_generation_prompt, &self.special)
    }

    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    pub fn token_to_id(&self, s: &str) -> Option<u32> {
        self.inner.token_to_id(s)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// Whether this tokenizer adds BOS when encoding with special tokens (Gemma, Llama 2:
    /// yes; SmolLM2, Qwen2: no).
    pub fn adds_bos(&self) -> bool {
        self.adds_bos
    }

    /// The BOS id to put before `ids` to make them a prompt: Some when the tokenizer adds BOS
    /// and `ids` do not already start with it (a chat template that writes `<bos>` itself).
    pub fn missing_bos(&self, ids: &[u32]) -> Option<u32> {
        let bos = self.bos_id.filter(|_| self.adds_bos)?;
        (ids.first() != Some(&bos)).then_some(bos)
    }

    /// Token ids of a prompt: the text without special tokens added, then BOS before it when
    /// the model wants one and the text did not start with it (never two BOS, never EOS).
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.encode(text, false)?;
        if let Some(bos) = self.missing_bos(&ids) {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    pub fn special_tokens(&self) -> &TemplateTokens {
        &self.special
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn assemble(
        inner: tokenizers::Tokenizer,
        special: TemplateTokens,
        mut eos_ids: Vec<u32>,
        template: Option<&str>,
    ) -> Result<Self> {
        if let Some(eos) = special
            .eos_token
            .as_deref()
            .and_then(|t| inner.token_to_id(t))
        {
            if !eos_ids.contains(&eos) {
                eos_ids.insert(0, eos);
            }
        }
        let bos_id = special
            .bos_token
            .as_deref()
            .and_then(|t| inner.token_to_id(t));
        let chat_template = template.map(ChatTemplate::new).transpose()?;
        // Read the BOS policy off the post-processor itself, whatever the source said.
        let adds_bos = match (bos_id, inner.encode("a", true)) {
            (Some(b), Ok(e)) => e.get_ids().first() == Some(&b),
            _ => false,
        };
        Ok(Self {
            inner,
            special,
            eos_ids,
            bos_id,
            adds_bos,
            chat_template,
        })
    }

    /// From a Hugging Face directory: `tokenizer.json` (required), `tokenizer_config.json`
    /// (special tokens, chat template), `chat_template.jinja`, and EOS ids from
    /// `generation_config.json` / `config.json`.
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let tj = dir.join("tokenizer.json");
        if !tj.is_file() {
            return Err(ModelError::Tokenizer(format!(
                "{} not found: a Hugging Face model directory needs tokenizer.json (slow/sentencepiece-only tokenizers are not supported; save it with a fast tokenizer)",
                tj.display()
            )));
        }
        let inner = tokenizers::Tokenizer::from_file(&tj)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", tj.display())))?;
        let cfg = read_json_opt(&dir.join("tokenizer_config.json"))?.unwrap_or(Json::Null);
        let token = |k: &str| -> Option<String> {
            match cfg.get(k)? {
                Json::String(s) => Some(s.clone()),
                Json::Object(o) => o.get("content")?.as_str().map(str::to_string),
                _ => None,
            }
        };
        let special = TemplateTokens {
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
            unk_token: token("unk_token"),
            pad_token: token("pad_token"),
        };
        let mut template = match cfg.get("chat_template") {
            Some(Json::String(s)) => Some(s.clone()),
            // A list of named templates: use "default".
            Some(Json::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
            _ => None,
        };
        let jinja = dir.join("chat_template.jinja");
        if template.is_none() && jinja.is_file() {
            template = Some(
                std::fs::read_to_string(&jinja).map_err(|source| ModelError::Io {
                    path: jinja.clone(),
                    source,
                })?,
            );
        }
        let mut eos_ids = Vec::new();
        for f in ["generation_config.json", "config.json"] {
            if let Some(j) = read_json_opt(&dir.join(f))? {
                match j.get("eos_token_id") {
                    Some(Json::Number(n)) => eos_ids.extend(n.as_u64().map(|v| v as u32)),
                    Some(Json::Array(a)) => {
                        eos_ids.extend(a.iter().filter_map(Json::as_u64).map(|v| v as u32))
                    }
                    _ => {}
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        eos_ids.retain(|id| seen.insert(*id));
        Self::assemble(inner, special, eos_ids, template.as_deref())
    }

    /// From GGUF metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`).
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let m = file.metadata();
        let ctx = |e: String| ModelError::Tokenizer(format!("{}: {e}", file.path().display()));
        let doc = gguf_tokenizer_json(m).map_err(ctx)?;
        let inner = tokenizers::Tokenizer::from_bytes(doc.to_string().as_bytes())
            .map_err(|e| ctx(format!("building the tokenizer from GGUF metadata: {e}")))?;
        let tokens = string_array(m, "tokenizer.ggml.tokens").map_err(ctx)?;
        let tok = |k: &str| meta_usize(m, k).ok().and_then(|i| tokens.get(i).cloned());
        let special = TemplateTokens {
            bos_token: tok("tokenizer.ggml.bos_token_id"),
            eos_token: tok("tokenizer.ggml.eos_token_id"),
            unk_token: tok("tokenizer.ggml.unknown_token_id"),
            pad_token: tok("tokenizer.ggml.padding_token_id"),
        };
        let mut eos_ids = Vec::new();
        for k in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
            if let Ok(id) = meta_usize(m, k) {
                if !eos_ids.contains(&(id as u32)) {
                    eos_ids.push(id as u32);
                }
            }
        }
        // SentencePiece files name their end-of-turn token only by text (Gemma's
        // `<end_of_turn>`, Phi-3's `<|end|>`), which llama.cpp also treats as end of generation.
        if matches!(m.get("tokenizer.ggml.model"), Some(Value::String(s)) if s == "llama") {
            for (i, t) in tokens.iter().enumerate() {
                if SP_END_OF_TURN.contains(&t.as_str()) && !eos_ids.contains(&(i as u32)) {
                    eos_ids.push(i as u32);
                }
            }
        }
        let template = match m.get("tokenizer.chat_template") {
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        };
        Self::assemble(inner, special, eos_ids, template)
    }
}

fn read_json_opt(path: &Path) -> Result<Option<Json>> {
    match std::fs::read_to_string(path) {
        Ok(s) => serde_json::from_str(&s)
            .map(Some)
            .map_err(|e| ModelError::Tokenizer(format!("{}: invalid JSON: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ModelError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn string_array(m: &HashMap<String, Value>, key: &str) -> std::result::Result<Vec<String>, String> {
    match m.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| format!("`{key}`: {e}")))
            .collect(),
        Some(other) => Err(format!(
            "`{key}` should be an array of strings, found {other:?}"
        )),
        None => Err(format!(
            "missing `{key}`: this GGUF file carries no tokenizer"
        )),
    }
}

/// End-of-turn tokens of SentencePiece vocabularies that stop generation besides EOS.
const SP_END_OF_TURN: [&str; 3] = ["<end_of_turn>", "<|end|>", "<|eot_id|>"];

// llama.cpp's token types (llama_token_type).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A regex split (isolated pieces), then bytes to GPT-2's alphabet.
fn split_then_bytes(pattern: &str) -> Json {
    json!({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})
}

/// The pre-tokenizer llama.cpp's `tokenizer.ggml.pre` names, written as tokenizers JSON.
fn pre_tokenizer_json(pre: &str) -> std::result::Result<Json, String> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    Ok(match pre {
        "default" | "gpt-2" | "gpt2" => byte_level(true),
        // SmolLM/SmolLM2 (and StarCoder's) tokenizer.json: single digits, then GPT-2 splitting.
        "smollm" | "starcoder" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        "llama3" | "llama-v3" | "llama-bpe" | "smaug-bpe" => split_then_bytes(LLAMA3_SPLIT),
        // Qwen2's split: single digits, otherwise Llama 3's.
        "qwen2" | "deepseek-r1-qwen" => split_then_bytes(QWEN2_SPLIT),
        other => {
            return Err(format!(
                "pre-tokenizer `{other}` (tokenizer.ggml.pre) is not supported; supported: default, gpt-2, smollm, starcoder, llama-bpe (llama3, smaug-bpe), qwen2 (deepseek-r1-qwen)"
            ))
        }
    })
}

/// Translate GGUF tokenizer metadata into a `tokenizer.json` document: byte-level BPE
/// (`tokenizer.ggml.model = gpt2`) or SentencePiece-style BPE (`llama`), the way transformers'
/// GGUF loader builds them (so token ids agree with it).
pub fn gguf_tokenizer_json(m: &HashMap<String, Value>) -> std::result::Result<Json, String> {
    let model = match m.get("tokenizer.ggml.model") {
        Some(Value::String(s)) => s.as_str(),
        _ => {
            return Err(
                "missing `tokenizer.ggml.model`: this GGUF file carries no tokenizer".into(),
            )
        }
    };
    let tokens = string_array(m, "tokenizer.ggml.tokens")?;
    let types: Vec<i64> = match m.get("tokenizer.ggml.token_type") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::I32(x) => Ok(*x as i64),
                Value::U32(x) => Ok(*x as i64),
                Value::I8(x) => Ok(*x as i64),
                Value::U8(x) => Ok(*x as i64),
                other => Err(format!("tokenizer.ggml.token_type: unexpected {other:?}")),
            })
            .collect::<std::result::Result<_, _>>()?,
        _ => vec![1; tokens.len()],
    };
    if types.len() != tokens.len() {
        return Err(format!(
            "{} token types for {} tokens",
            types.len(),
            tokens.len()
        ));
    }
    match model {
        "gpt2" => byte_level_json(m, &tokens, &types),
        "llama" => {
            let arch = match m.get("general.architecture") {
                Some(Value::String(s)) => s.as_str(),
                _ => "",
            };
            sentencepiece_json(m, arch, &tokens, &types)
        }
        other => Err(format!(
            "GGUF tokenizer model `{other}` is not supported (supported: `gpt2` byte-level BPE, `llama` SentencePiece-style BPE); load the Hugging Face directory with its tokenizer.json instead"
        )),
    }
}

/// The post-processor adding BOS / EOS as `tokenizer.ggml.add_bos_token` / `add_eos_token`
/// say (`default_bos` when the file has no BOS flag), or None when neither is added.
fn bos_eos_post(m: &HashMap<String, Value>, tokens: &[String], default_bos: bool) -> Option<Json> {
    let flag = |k: &str, default: bool| match m.get(k) {
        Some(Value::Bool(b)) => *b,
        _ => default,
    };
    let id = |k: &str| meta_usize(m, k).ok().filter(|&i| i < tokens.len());
    let bos = id("tokenizer.ggml.bos_token_id")
        .filter(|_| flag("tokenizer.ggml.add_bos_token", default_bos));
    let eos =
        id("tokenizer.ggml.eos_token_id").filter(|_| flag("tokenizer.ggml.add_eos_token", false));
    if bos.is_none() && eos.is_none() {
        return None;
    }
    let mut special_tokens = serde_json::Map::new();
    let mut special = |i: usize, type_id: u32| {
        let t = &tokens[i];
        special_tokens.insert(t.clone(), json!({"id": t, "ids": [i], "tokens": [t]}));
        json!({"SpecialToken": {"id": t, "type_id": type_id}})
    };
    let mut single = Vec::new();
    let mut pair = Vec::new();
    if let Some(i) = bos {
        single.push(special(i, 0));
    }
    single.push(json!({"Sequence": {"id": "A", "type_id": 0}}));
    if let Some(i) = eos {
        single.push(special(i, 0));
    }
    pair.extend(single.iter().cloned());
    if let Some(i) = bos {
        pair.push(special(i, 1));
    }
    pair.push(json!({"Sequence": {"id": "B", "type_id": 1}}));
    if let Some(i) = eos {
        pair.push(special(i, 1));
    }
    Some(
        json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special_tokens}),
    )
}

fn added_token(i: usize, content: &str, special: bool) -> Json {
    json!({"id": i, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
           "normalized": false, "special": special})
}

fn byte_level_json(
    m: &HashMap<String, Value>,
    tokens: &[String],
    types: &[i64],
) -> std::result::Result<Json, String> {
    let merges = string_array(m, "tokenizer.ggml.merges")?;
    let pre = match m.get("tokenizer.ggml.pre") {
        Some(Value::String(s)) => s.as_str(),
        _ => "default",
    };
    let vocab: serde_json::Map<String, Json> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    if vocab.len() != tokens.len() {
        return Err("duplicate tokens in tokenizer.ggml.tokens".into());
    }
    let added: Vec<Json> = tokens
        .iter()
        .zip(types)
        .enumerate()
        .filter(|(_, (_, ty))| **ty == TOKEN_TYPE_CONTROL || **ty == TOKEN_TYPE_USER_DEFINED)
        .map(|(i, (t, ty))| added_token(i, t, *ty == TOKEN_TYPE_CONTROL))
        .collect();
    let post = bos_eos_post(m, tokens, false).unwrap_or_else(
        || json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}),
    );
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer_json(pre)?,
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges},
    }))
}

/// Architectures whose SentencePiece vocabulary is Gemma's: no dummy prefix, whitespace-run
/// tokens stored as real spaces, merge order = file order.
const GEMMA_ARCHS: [&str; 3] = ["gemma", "gemma2", "gemma3"];

/// SentencePiece-style BPE (`tokenizer.ggml.model = llama`: Llama 2, Mistral, Gemma, Phi-3) as
/// a tokenizers BPE with byte fallback (`<0xNN>` tokens). GGUF files carry no merges for it,
/// so they are derived from the vocabulary ([`sentencepiece_merges`]); the merge order is the
/// score order, except for Gemma, whose file order is its merge order. Control tokens are
/// special added tokens, user-defined ones (Gemma's `\n` runs) plain added tokens, both
/// matched whole before normalisation. Spaces become `▁`: with a dummy `▁` before the first
/// word (Llama 2, Mistral: `tokenizer.ggml.add_space_prefix`, default true; Phi-3 before
/// every text) or without (Gemma). BOS is added unless `tokenizer.ggml.add_bos_token` is
/// false.
fn sentencepiece_json(
    m: &HashMap<String, Value>,
    arch: &str,
    tokens: &[String],
    types: &[i64],
) -> std::result::Result<Json, String> {
    let gemma = GEMMA_ARCHS.contains(&arch);
    // Gemma files store a token of two or more spaces as real spaces; the vocabulary (and so
    // the merges) spell it with `▁`.
    let spelled: Vec<String> = if gemma {
        tokens
            .iter()
            .map(|t| {
                if t.contains(' ') && t.trim().is_empty() {
                    "\u{2581}".repeat(t.chars().count())
                } else {
                    t.clone()
                }
            })
            .collect()
    } else {
        tokens.to_vec()
    };
    let scores: Vec<f64> = if gemma {
        (0..spelled.len()).map(|i| -(i as f64)).collect()
    } else {
        match m.get("tokenizer.ggml.scores") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::F32(x) => Ok(*x as f64),
                    Value::F64(x) => Ok(*x),
                    other => Err(format!("tokenizer.ggml.scores: unexpected {other:?}")),
                })
                .collect::<std::result::Result<_, _>>()?,
            _ => return Err("missing `tokenizer.ggml.scores` (SentencePiece vocabulary)".into()),
        }
    };
    if scores.len() != spelled.len() {
        return Err(format!(
            "{} scores for {} tokens",
            scores.len(),
            spelled.len()
        ));
    }
    let merges = sentencepiece_merges(&spelled, &scores);
    let mut vocab = serde_json::Map::new();
    for (i, t) in spelled.iter().enumerate() {
        vocab.insert(t.clone(), json!(i));
    }
    let mut added: Vec<Json> = Vec::new();
    for (i, (t, ty)) in tokens.iter().zip(types).enumerate() {
        if *ty == TOKEN_TYPE_CONTROL {
            added.push(added_token(i, t, true));
        } else if *ty == TOKEN_TYPE_USER_DEFINED && vocab.contains_key(t) {
            added.push(added_token(i, t, false));
        }
    }
    let unk = if gemma {
        meta_usize(m, "tokenizer.ggml.unknown_token_id")
            .ok()
            .and_then(|i| tokens.get(i))
            .map(|t| json!(t))
            .unwrap_or(Json::Null)
    } else {
        Json::Null
    };
    let space = "\u{2581}";
    let replace = json!({"type": "Replace", "pattern": {"String": " "}, "content": space});
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": space}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    let (normalizer, pre_tokenizer) = if gemma {
        (
            replace,
            json!({"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": false}),
        )
    } else if arch == "phi3" {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
        (
            json!({"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": space}, replace]}),
            Json::Null,
        )
    } else {
        let prefix = !matches!(
            m.get("tokenizer.ggml.add_space_prefix"),
            Some(Value::Bool(false))
        );
        if prefix {
            decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
        }
        (
            Json::Null,
            json!({"type": "Metaspace", "replacement": space,
                   "prepend_scheme": if prefix { "first" } else { "never" }, "split": false}),
        )
    };
    let post = bos_eos_post(m, tokens, true).unwrap_or(Json::Null);
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true,
                  "ignore_merges": false, "vocab": vocab, "merges": merges},
    }))
}

/// BPE merges recovered from a SentencePiece vocabulary (transformers' `generate_merges`):
/// every split of every token into two tokens of the vocabulary is a merge ranked by the
/// whole token's score (higher first; ties: longer left piece, then longer right piece, then
/// vocabulary order). Lengths count characters.
pub fn sentencepiece_merges(tokens: &[String], scores: &[f64]) -> Vec<[String; 2]> {
    // Last id wins for a repeated token, as in a Python dict; iteration keeps first-seen order.
    let mut id: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    let mut order: Vec<&str> = Vec::with_capacity(tokens.len());
    let mut score: HashMap<&str, f64> = HashMap::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        if id.insert(t.as_str(), i).is_none() {
            order.push(t.as_str());
        }
        score.insert(t.as_str(), scores[i]);
    }
    struct M<'a> {
        l: &'a str,
        r: &'a str,
        score: f64,
        ll: usize,
        rl: usize,
    }
    let mut all: Vec<M> = Vec::new();
    let mut local: Vec<M> = Vec::new();
    for t in order {
        let s = score[t];
        for (cut, _) in t.char_indices().skip(1) {
            let (l, r) = t.split_at(cut);
            if id.contains_key(l) && id.contains_key(r) {
                local.push(M {
                    l,
                    r,
                    score: s,
                    ll: l.chars().count(),
                    rl: r.chars().count(),
                });
            }
        }
        local.sort_by_key(|x| (id[x.l], id[x.r]));
        all.append(&mut local);
    }
    // Stable descending sort: equal keys keep their order, like Python's `reverse=True`.
    all.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.ll.cmp(&a.ll))
            .then(b.rl.cmp(&a.rl))
    });
    all.into_iter()
        .map(|x| [x.l.to_string(), x.r.to_string()])
        .collect()
}

impl crate::generate::Detokenizer for Tokenizer {
    fn decode(&self, ids: &[u32]) -> Result<String> {
        Tokenizer::decode(self, ids)
    }
    fn eos_token_ids(&self) -> &[u32] {
        Tokenizer::eos_token_ids(self)
    }
}
