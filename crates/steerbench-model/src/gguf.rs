//! GGUF (llama.cpp) files: metadata → a Hugging Face style `config.json`, tensors → f32 tensors
//! under Hugging Face names, so the one decoder (built from HF names) loads both formats.
//!
//! The pure parts (name mapping, config translation, the Q/K row un-permutation) are free
//! functions that unit tests drive on tiny inputs; [`GgufFile`] is the thin I/O shell.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use serde_json::json;

use crate::error::{ModelError, Result};
use crate::families::{gguf_family, GgufSpec};
pub(crate) use crate::gguf_meta::meta_usize;
use crate::gguf_meta::{meta_f64, meta_str, ArchMeta};

/// The family conventions of `arch`, or the error listing the supported ones.
fn spec_of(arch: &str, path: Option<&Path>) -> Result<&'static GgufSpec> {
    gguf_family(arch).map(|(_, g)| g).ok_or_else(|| {
        let found = match path {
            Some(p) => format!("{arch} (GGUF {})", p.display()),
            None => format!("{arch} (GGUF)"),
        };
        ModelError::UnsupportedArch {
            found,
            supported: crate::families::supported_gguf_archs().join(", "),
        }
    })
}

/// llama.cpp's LongRoPE factor tensors (read into the config, not weights).
const ROPE_FACTORS: [&str; 2] = ["rope_factors_long.weight", "rope_factors_short.weight"];

/// An opened GGUF file: its parsed header (metadata + tensor directory), tensors read on demand.
pub struct GgufFile {
    path: PathBuf,
    content: Content,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("tensors", &self.content.tensor_infos.len())
            .finish()
    }
}

fn gguf_err(path: &Path, msg: impl std::fmt::Display) -> ModelError {
    ModelError::Gguf {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

impl GgufFile {
    /// Reads the header only (metadata and tensor directory); tensor data stays on disk.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = std::io::BufReader::new(file);
        let content = Content::read(&mut reader)
            .map_err(|e| gguf_err(path, format!("not a readable GGUF file: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            content,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.content.tensor_infos.keys().map(String::as_str)
    }

    pub fn architecture(&self) -> Result<&str> {
        meta_str(self.metadata(), "general.architecture").map_err(|e| gguf_err(&self.path, e))
    }

    /// The model config as a Hugging Face `config.json` value (for `ModelConfig::from_hf_config`).
    pub fn hf_config_json(&self) -> Result<serde_json::Value> {
        let infos = &self.content.tensor_infos;
        let has_output = infos.contains_key("output.weight");
        let mut json =
            hf_config_from_metadata(self.metadata(), has_output).map_err(|e| match e {
                ModelError::Config(msg) => gguf_err(&self.path, msg),
                other => other,
            })?;
        if infos.contains_key("blk.0.attn_q.bias") {
            json["attention_bias"] = true.into();
        }
        if ROPE_FACTORS.iter().all(|n| infos.contains_key(*n)) {
            let factors = |name: &str| -> Result<Vec<f64>> {
                let t = self.qtensor(name, &Device::Cpu)?.dequantize(&Device::Cpu)?;
                Ok(t.flatten_all()?
                    .to_vec1::<f32>()?
                    .into_iter()
                    .map(f64::from)
                    .collect())
            };
            let arch = self.architecture()?;
            let m = ArchMeta {
                m: self.metadata(),
                arch,
            };
            let mut scaling = json!({
                "rope_type": "longrope",
                "long_factor": factors(ROPE_FACTORS[0])?,
                "short_factor": factors(ROPE_FACTORS[1])?,
            });
            if let Some(a) = m.f64("rope.scaling.attn_factor") {
                scaling["attention_factor"] = a.into();
            }
            if let Some(n) = m.usize("rope.scaling.original_context_length") {
                scaling["original_max_position_embeddings"] = n.into();
            }
            json["rope_scaling"] = scaling;
        }
        Ok(json)
    }

    /// One tensor as stored (possibly quantized), GGUF name.
    pub fn qtensor(&self, name: &str, device: &Device) -> Result<QTensor> {
        let file = File::open(&self.path).map_err(|source| ModelError::Io {
            path: self.path.clone(),
            source,
        })?;
        let mut reader = std::io::BufReader::new(file);
        self.content
            .tensor(&mut reader, name, device)
            .map_err(|e| gguf_err(&self.path, format!("tensor `{name}`: {e}")))
    }

    /// Every tensor dequantized to f32 under its Hugging Face name, with llama.cpp's Q/K row
    /// permutation undone. Unknown tensor names are an error (they would silently be dropped).
    pub fn hf_tensors(&self, device: &Device) -> Result<HashMap<String, Tensor>> {
        self.hf_tensors_as(device, DType::F32)
    }

    /// [`GgufFile::hf_tensors`] with the matrices (tensors of two or more dimensions)
    /// dequantized into `dtype` a block of rows at a time, so that no f32 copy of a whole
    /// matrix (the embedding table is the largest) is made; vectors (norm weights, biases)
    /// stay f32.
    pub fn hf_tensors_as(&self, device: &Device, dtype: DType) -> Result<HashMap<String, Tensor>> {
        let arch = self.architecture()?.to_string();
        let spec = spec_of(&arch, Some(&self.path))?;
        let meta = self.metadata();
        let key = |k: &str| format!("{arch}.{k}");
        let n_head =
            meta_usize(meta, &key("attention.head_count")).map_err(|e| gguf_err(&self.path, e))?;
        let n_kv_head = meta_usize(meta, &key("attention.head_count_kv")).unwrap_or(n_head);

        let file = File::open(&self.path).map_err(|source| ModelError::Io {
            path: self.path.clone(),
            source,
        })?;
        let mut reader = std::io::BufReader::new(file);
        let mut names: Vec<&String> = self.content.tensor_infos.keys().collect();
        names.sort();
        let mut out = HashMap::with_capacity(names.len());
        for name in names {
            if ROPE_FACTORS.contains(&name.as_str()) {
                continue;
            }
            let hf = hf_tensor_name_for(spec, name).ok_or_else(|| {
                gguf_err(
                    &self.path,
                    format!("tensor `{name}` has no Hugging Face counterpart"),
                )
            })?;
            let ctx = |e: candle_core::Error| gguf_err(&self.path, format!("tensor `{name}`: {e}"));
            let q = self
                .content
                .tensor(&mut reader, name, device)
                .map_err(ctx)?;
            let t = dequantize_as(&q, dtype, device).map_err(ctx)?;
            let t = match qk_kind(name).filter(|_| spec.permute_qk) {
                Some(QkKind::Q) => unpermute_rows(&t, n_head).map_err(ctx)?,
                Some(QkKind::K) => unpermute_rows(&t, n_kv_head).map_err(ctx)?,
                None => t,
            };
            out.insert(hf, unshift_norm(spec, name, t).map_err(ctx)?);
        }
        Ok(out)
    }
}

/// Rows dequantized at once by [`dequantize_as`] (blocks of about a million values).
const DEQUANT_VALUES: usize = 1 << 20;

/// A quantized tensor as a dense one: f32 for `F32` and for vectors, else `dtype`, a
/// block of whole rows at a time (quantized blocks run along rows, so a row range is a
/// byte range).
fn dequantize_as(q: &QTensor, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
    dequantize_blocks(q, dtype, device, DEQUANT_VALUES)
}

/// [`dequantize_as`] with blocks of about `values` values.
fn dequantize_blocks(
    q: &QTensor,
    dtype: DType,
    device: &Device,
    values: usize,
) -> candle_core::Result<Tensor> {
    let dims = q.shape().dims().to_vec();
    if dtype == DType::F32 || dims.len() < 2 {
        return q.dequantize(device);
    }
    let rows = dims[0];
    let per_row: usize = dims[1..].iter().product();
    let (bs, ts) = (q.dtype().block_size(), q.dtype().type_size());
    let chunk = (values / per_row.max(1)).max(1);
    if per_row % bs != 0 || rows <= chunk || !device.is_cpu() {
        return q.dequantize(device)?.to_dtype(dtype);
    }
    let data = q.data()?;
    let row_bytes = per_row / bs * ts;
    // Each block of rows is dequantized to f32 and narrowed into one buffer of the whole
    // tensor (no second copy of the matrix, as a concatenation of parts would make).
    let block = |r0: usize| -> candle_core::Result<Vec<f32>> {
        let n = chunk.min(rows - r0);
        let bytes = &data[r0 * row_bytes..(r0 + n) * row_bytes];
        let storage = candle_core::quantized::QStorage::from_data(
            std::borrow::Cow::Borrowed(bytes),
            device,
            q.dtype(),
        )?;
        let mut shape = dims.clone();
        shape[0] = n;
        QTensor::new(storage, shape)?
            .dequantize(device)?
            .flatten_all()?
            .to_vec1::<f32>()
    };
    fn narrow_all<T>(
        rows: usize,
        chunk: usize,
        len: usize,
        block: impl Fn(usize) -> candle_core::Result<Vec<f32>>,
        from: impl Fn(f32) -> T,
    ) -> candle_core::Result<Vec<T>> {
        let mut out = Vec::with_capacity(len);
        for r0 in (0..rows).step_by(chunk) {
            out.extend(block(r0)?.into_iter().map(&from));
        }
        Ok(out)
    }
    let len = rows * per_row;
    match dtype {
        DType::BF16 => Tensor::from_vec(
            narrow_all(rows, chunk, len, block, half::bf16::from_f32)?,
            dims,
            device,
        ),
        DType::F16 => Tensor::from_vec(
            narrow_all(rows, chunk, len, block, half::f16::from_f32)?,
            dims,
            device,
        ),
        _ => q.dequantize(device)?.to_dtype(dtype),
    }
}

/// Undo the converter's `+ norm_shift` on norm weights (Gemma's `1 + w`).
fn unshift_norm(spec: &GgufSpec, gguf_name: &str, t: Tensor) -> candle_core::Result<Tensor> {
    if spec.norm_shift != 0.0 && gguf_name.ends_with("norm.weight") {
        t - spec.norm_shift
    } else {
        Ok(t)
    }
}

impl GgufFile {
    /// Every tensor kept in its stored (possibly quantized) type under its Hugging Face name,
    /// for quantized matmuls (`candle_core::quantized::QMatMul`). Q/K rows are un-permuted by
    /// moving whole rows of quantized blocks (blocks run along the input dimension), so no
    /// precision is lost.
    pub fn hf_qtensors(&self, device: &Device) -> Result<HashMap<String, QTensor>> {
        let meta = self.metadata();
        let arch = self.architecture()?.to_string();
        let spec = spec_of(&arch, Some(&self.path))?;
        let key = |k: &str| format!("{arch}.{k}");
        let n_head =
            meta_usize(meta, &key("attention.head_count")).map_err(|e| gguf_err(&self.path, e))?;
        let n_kv_head = meta_usize(meta, &key("attention.head_count_kv")).unwrap_or(n_head);
        let mut out = HashMap::new();
        for name in self.content.tensor_infos.keys() {
            if ROPE_FACTORS.contains(&name.as_str()) {
                continue;
            }
            let hf = hf_tensor_name_for(spec, name).ok_or_else(|| {
                gguf_err(
                    &self.path,
                    format!("tensor `{name}` has no Hugging Face counterpart"),
                )
            })?;
            let ctx = |e: candle_core::Error| gguf_err(&self.path, format!("tensor `{name}`: {e}"));
            let q = self.qtensor(name, device)?;
            let q = match qk_kind(name).filter(|_| spec.permute_qk) {
                Some(QkKind::Q) => unpermute_qtensor(&q, n_head, device).map_err(ctx)?,
                Some(QkKind::K) => unpermute_qtensor(&q, n_kv_head, device).map_err(ctx)?,
                None => q,
            };
            out.insert(hf, q);
        }
        Ok(out)
    }
}

impl GgufFile {
    /// The tensors for a quantized load: every quantized matrix kept quantized (the model
    /// turns them into its 8-bit blocks), and f32 tensors for everything else plus the
    /// token embedding (its rows are looked up, and an f32 table keeps them exactly the
    /// dequantized loader's).
    pub fn hf_quantized_split(
        &self,
        device: &Device,
    ) -> Result<(HashMap<String, Tensor>, crate::layers::QuantWeights)> {
        let spec = spec_of(self.architecture()?, Some(&self.path))?;
        let mut dense = HashMap::new();
        let mut quant = crate::layers::QuantWeights::new();
        for (name, q) in self.hf_qtensors(device)? {
            let ctx = |e: candle_core::Error| gguf_err(&self.path, format!("tensor `{name}`: {e}"));
            let quantized = !matches!(q.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
            if quantized && name.ends_with("norm.weight") && spec.norm_shift != 0.0 {
                return Err(gguf_err(
                    &self.path,
                    format!("tensor `{name}`: quantized norm weights are not supported"),
                ));
            }
            if !quantized || name == "model.embed_tokens.weight" {
                // Norm weights are stored f32 by llama.cpp; HF names end the same way.
                let t =
                    unshift_norm(spec, &name, q.dequantize(device).map_err(ctx)?).map_err(ctx)?;
                dense.insert(name.clone(), t);
            }
            if quantized {
                quant.insert(name, std::sync::Arc::new(q));
            }
        }
        Ok((dense, quant))
    }
}

/// For each output row, the input row it comes from when undoing llama.cpp's permutation
/// (the index form of [`unpermute_rows`]).
pub fn unpermute_row_sources(rows: usize, n_head: usize) -> Vec<usize> {
    let hd = rows / n_head;
    let half = hd / 2;
    (0..rows)
        .map(|r| {
            let (h, within) = (r / hd, r % hd);
            let (part, i) = (within / half, within % half);
            h * hd + i * 2 + part
        })
        .collect()
}

fn unpermute_qtensor(q: &QTensor, n_head: usize, device: &Device) -> candle_core::Result<QTensor> {
    let dims = q.shape().dims().to_vec();
    let rows = dims[0];
    if n_head == 0 || rows % (2 * n_head) != 0 {
        candle_core::bail!("cannot un-permute {rows} rows into {n_head} heads of even size")
    }
    let data = q.data()?;
    let row_bytes = data.len() / rows;
    if row_bytes * rows != data.len() {
        candle_core::bail!("quantized rows are not byte aligned")
    }
    let mut out = Vec::with_capacity(data.len());
    for src in unpermute_row_sources(rows, n_head) {
        out.extend_from_slice(&data[src * row_bytes..(src + 1) * row_bytes]);
    }
    let storage = candle_core::quantized::QStorage::from_data(out.into(), device, q.dtype())?;
    QTensor::new(storage, dims)
}

enum QkKind {
    Q,
    K,
}

fn qk_kind(gguf_name: &str) -> Option<QkKind> {
    if gguf_name.ends_with(".attn_q.weight") || gguf_name.ends_with(".attn_q.bias") {
        Some(QkKind::Q)
    } else if gguf_name.ends_with(".attn_k.weight") || gguf_name.ends_with(".attn_k.bias") {
        Some(QkKind::K)
    } else {
        None
    }
}

/// GGUF tensor name → Hugging Face (Llama) tensor name. `None` for names we do not know.
pub fn hf_tensor_name(gguf_name: &str) -> Option<String> {
    let (_, spec) = gguf_family("llama")?;
    hf_tensor_name_for(spec, gguf_name)
}

/// GGUF tensor name → Hugging Face tensor name under a family's conventions (its own
/// block names first, then Llama's).
pub(crate) fn hf_tensor_name_for(spec: &GgufSpec, gguf_name: &str) -> Option<String> {
    let (stem, suffix) = gguf_name.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let top = match stem {
        "token_embd" => Some("model.embed_tokens"),
        "output_norm" => Some("model.norm"),
        "output" => Some("lm_head"),
        _ => None,
    };
    if let Some(top) = top {
        return Some(format!("{top}.{suffix}"));
    }
    let rest = stem.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let own = spec.names.iter().find(|(g, _)| *g == part).map(|(_, h)| *h);
    let hf_part = match (own, part) {
        (Some(h), _) => h,
        (None, "attn_q") => "self_attn.q_proj",
        (None, "attn_k") => "self_attn.k_proj",
        (None, "attn_v") => "self_attn.v_proj",
        (None, "attn_output") => "self_attn.o_proj",
        (None, "ffn_gate") => "mlp.gate_proj",
        (None, "ffn_up") => "mlp.up_proj",
        (None, "ffn_down") => "mlp.down_proj",
        (None, "attn_norm") => "input_layernorm",
        (None, "ffn_norm") => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf_part}.{suffix}"))
}

/// Undo convert_hf_to_gguf.py's `permute` of Q/K projection rows.
///
/// llama.cpp stores each head's rows interleaved (pairs `(x_i, x_{i+d/2})` adjacent, its rope
/// layout); Hugging Face keeps the two halves apart. The converter did
/// `w.reshape(n, 2, d/2, ..).swapaxes(1, 2)`; the inverse is `w.reshape(n, d/2, 2, ..).swapaxes(1, 2)`.
/// Works for weights `(n*d, in)` and biases `(n*d)`.
pub fn unpermute_rows(t: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims[0];
    if n_head == 0 || rows % (2 * n_head) != 0 {
        candle_core::bail!("cannot un-permute {rows} rows into {n_head} heads of even size")
    }
    let half = rows / n_head / 2;
    let mut split = vec![n_head, half, 2];
    split.extend_from_slice(&dims[1..]);
    t.reshape(split)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

/// The forward permutation (what convert_hf_to_gguf.py applies); used by tests and writers.
pub fn permute_rows(t: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims[0];
    if n_head == 0 || rows % (2 * n_head) != 0 {
        candle_core::bail!("cannot permute {rows} rows into {n_head} heads of even size")
    }
    let half = rows / n_head / 2;
    let mut split = vec![n_head, 2, half];
    split.extend_from_slice(&dims[1..]);
    t.reshape(split)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

/// Translate llama.cpp metadata into a Hugging Face `config.json` of the architecture's
/// family (the shared keys here, the family's own from its `GgufSpec::config`).
///
/// `has_output` says whether the file holds a separate `output.weight` (otherwise the LM head is
/// tied to the token embedding).
pub fn hf_config_from_metadata(
    m: &HashMap<String, Value>,
    has_output: bool,
) -> Result<serde_json::Value> {
    let cfg = |e: String| ModelError::Config(e);
    let arch = meta_str(m, "general.architecture").map_err(cfg)?;
    let spec = spec_of(arch, None)?;
    let (family, _) = gguf_family(arch).expect("spec_of found it");
    let k = |s: &str| format!("{arch}.{s}");
    let hidden = meta_usize(m, &k("embedding_length")).map_err(cfg)?;
    let n_layers = meta_usize(m, &k("block_count")).map_err(cfg)?;
    let ff = meta_usize(m, &k("feed_forward_length")).map_err(cfg)?;
    let n_head = meta_usize(m, &k("attention.head_count")).map_err(cfg)?;
    let n_kv = meta_usize(m, &k("attention.head_count_kv")).unwrap_or(n_head);
    if n_head == 0 || n_kv == 0 || n_head % n_kv != 0 {
        return Err(cfg(format!(
            "attention heads {n_head} must be a positive multiple of kv heads {n_kv}"
        )));
    }
    let head_dim = match meta_usize(m, &k("attention.key_length")) {
        Ok(d) => d,
        Err(_) if hidden % n_head == 0 => hidden / n_head,
        Err(_) => {
            return Err(cfg(format!(
                "embedding_length {hidden} is not divisible by head_count {n_head}"
            )))
        }
    };
    if let Ok(rot) = meta_usize(m, &k("rope.dimension_count")) {
        if rot != head_dim {
            return Err(cfg(format!(
                "partial rotary (rope.dimension_count {rot} < head_dim {head_dim}) is not supported for {arch}"
            )));
        }
    }
    let rope_scaling = match meta_str(m, &k("rope.scaling.type")) {
        Err(_) | Ok("none") => serde_json::Value::Null,
        Ok("linear") => {
            let factor = meta_f64(m, &k("rope.scaling.factor")).map_err(cfg)?;
            json!({"rope_type": "linear", "factor": factor})
        }
        Ok(kind) => {
            return Err(cfg(format!(
                "rope scaling `{kind}` in GGUF metadata is not supported yet; load the Hugging Face directory instead"
            )))
        }
    };
    let eps = meta_f64(m, &k("attention.layer_norm_rms_epsilon")).map_err(cfg)?;
    let theta = meta_f64(m, &k("rope.freq_base")).unwrap_or(10_000.0);
    let ctx = meta_usize(m, &k("context_length")).unwrap_or(2048);
    let vocab = match m.get("tokenizer.ggml.tokens") {
        Some(Value::Array(tokens)) => tokens.len(),
        _ => meta_usize(m, &k("vocab_size")).map_err(cfg)?,
    };
    let mut out = json!({
        "model_type": family.model_types[0],
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "intermediate_size": ff,
        "num_hidden_layers": n_layers,
        "num_attention_heads": n_head,
        "num_key_value_heads": n_kv,
        "head_dim": head_dim,
        "rms_norm_eps": eps,
        "rope_theta": theta,
        "max_position_embeddings": ctx,
        "vocab_size": vocab,
        "tie_word_embeddings": !has_output,
        "hidden_act": spec.hidden_act,
        "attention_bias": false,
        "rope_scaling": rope_scaling,
        "torch_dtype": "float32",
    });
    (spec.config)(&ArchMeta { m, arch }, &mut out);
    for (gguf_key, hf_key) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
        ("tokenizer.ggml.padding_token_id", "pad_token_id"),
    ] {
        if let Ok(id) = meta_usize(m, gguf_key) {
            out[hf_key] = json!(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hf() {
        assert_eq!(
            hf_tensor_name("token_embd.weight").unwrap(),
            "model.embed_tokens.weight"
        );
        assert_eq!(
            hf_tensor_name("blk.12.attn_output.weight").unwrap(),
            "model.layers.12.self_attn.o_proj.weight"
        );
        assert_eq!(
            hf_tensor_name("blk.0.ffn_norm.weight").unwrap(),
            "model.layers.0.post_attention_layernorm.weight"
        );
        assert_eq!(hf_tensor_name("output.weight").unwrap(), "lm_head.weight");
        assert_eq!(
            hf_tensor_name("blk.3.attn_q.bias").unwrap(),
            "model.layers.3.self_attn.q_proj.bias"
        );
        assert!(hf_tensor_name("blk.x.attn_q.weight").is_none());
        assert!(hf_tensor_name("rope_freqs.weight").is_none());
    }

    /// Row blocks (uneven last one included) give the whole dequantization, rounded.
    #[test]
    fn dequantizing_row_blocks_into_half_equals_the_whole() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (37, 64), &dev).unwrap();
        for gd in [GgmlDType::Q4_1, GgmlDType::Q8_0, GgmlDType::F16] {
            let q = QTensor::quantize(&w, gd).unwrap();
            for dtype in [DType::BF16, DType::F16] {
                let want = q.dequantize(&dev).unwrap().to_dtype(dtype).unwrap();
                for values in [64, 64 * 5, 1 << 20] {
                    let got = dequantize_blocks(&q, dtype, &dev, values).unwrap();
                    assert_eq!(got.dtype(), dtype);
                    let d = (got.to_dtype(DType::F32).unwrap()
                        - want.to_dtype(DType::F32).unwrap())
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                    assert_eq!(d, 0.0, "{gd:?} {dtype:?} {values}");
                }
            }
        }
    }

    #[test]
    fn unpermute_inverts_permute() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        // 3 heads of dim 4, input 5: rows 12.
        let w = Tensor::arange(0f32, 60., &dev)?.reshape((12, 5))?;
        let p = permute_rows(&w, 3)?;
        assert_ne!(p.to_vec2::<f32>()?, w.to_vec2::<f32>()?);
        let back = unpermute_rows(&p, 3)?;
        assert_eq!(back.to_vec2::<f32>()?, w.to_vec2::<f32>()?);
        // Head 0 rows (0,1,2,3) become llama.cpp's interleaving (0,2,1,3).
        let first_col: Vec<f32> = p.narrow(1, 0, 1)?.flatten_all()?.to_vec1()?;
        assert_eq!(&first_col[..4], &[0., 10., 5., 15.]);
        let b = Tensor::arange(0f32, 12., &dev)?;
        assert_eq!(
            unpermute_rows(&permute_rows(&b, 3)?, 3)?.to_vec1::<f32>()?,
            b.to_vec1::<f32>()?
        );
        assert!(unpermute_rows(&w, 5).is_err());
        // The index form agrees with the tensor form.
        let idx: Vec<u32> = unpermute_row_sources(12, 3)
            .iter()
            .map(|&i| i as u32)
            .collect();
        let gathered = p.index_select(&Tensor::new(idx, &dev)?, 0)?;
        assert_eq!(gathered.to_vec2::<f32>()?, w.to_vec2::<f32>()?);
        Ok(())
    }

    #[test]
    fn config_from_llama_metadata() {
        let mut m = HashMap::new();
        m.insert("general.architecture".into(), Value::String("llama".into()));
        m.insert("llama.block_count".into(), Value::U32(2));
        m.insert("llama.embedding_length".into(), Value::U32(16));
        m.insert("llama.feed_forward_length".into(), Value::U64(40));
        m.insert("llama.attention.head_count".into(), Value::U32(4));
        m.insert("llama.attention.head_count_kv".into(), Value::U32(2));
        m.insert(
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        );
        m.insert("llama.rope.freq_base".into(), Value::F32(100000.0));
        m.insert(
            "tokenizer.ggml.tokens".into(),
            Value::Array((0..7).map(|i| Value::String(format!("t{i}"))).collect()),
        );
        let c = hf_config_from_metadata(&m, false).unwrap();
        assert_eq!(c["num_hidden_layers"], 2);
        assert_eq!(c["head_dim"], 4);
        assert_eq!(c["num_key_value_heads"], 2);
        assert_eq!(c["vocab_size"], 7);
        assert_eq!(c["rms_norm_eps"], 1e-5);
        assert_eq!(c["rope_theta"], 100000.0);
        assert_eq!(c["tie_word_embeddings"], true);
        assert!(hf_config_from_metadata(&m, true).unwrap()["tie_word_embeddings"] == false);

        m.insert("llama.attention.head_count_kv".into(), Value::U32(3));
        let e = hf_config_from_metadata(&m, false).unwrap_err().to_string();
        assert!(e.contains("multiple of kv heads"), "{e}");
        m.insert("general.architecture".into(), Value::String("mamba".into()));
        let e = hf_config_from_metadata(&m, false).unwrap_err().to_string();
        assert!(e.contains("mamba") && e.contains("llama"), "{e}");
    }
}
