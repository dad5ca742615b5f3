//! Llama family: config adapter and decoder block (RMSNorm, rotary, GQA, SiLU-gated MLP).
//! Covers Llama 1/2/3 (llama3 rope scaling), SmolLM/SmolLM2, TinyLlama, Mistral.

use candle_core::Tensor;
use serde::Deserialize;

use crate::config::{
    parse_wire, token_ids, Activation, Arch, ModelConfig, NormKind, RopeConfig, RopeScaling,
};
use crate::decoder::{DecoderBlock, Parts, PosCtx};
use crate::error::{ModelError, Result};
use crate::layers::{get, Linear, Norm, Src};

/// The fields of a Hugging Face Llama/Mistral `config.json` we read (others are ignored).
#[derive(Debug, Deserialize)]
struct LlamaWire {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    max_position_embeddings: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    /// transformers >= 5 writes theta and scaling here.
    rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default)]
    tie_word_embeddings: bool,
    hidden_act: Option<String>,
    bos_token_id: Option<u32>,
    sliding_window: Option<usize>,
    partial_rotary_factor: Option<f64>,
}

pub(crate) fn config_from_hf(model_type: &str, json: &serde_json::Value) -> Result<ModelConfig> {
    let w: LlamaWire = parse_wire(model_type, json)?;
    if let Some(act) = w.hidden_act.as_deref() {
        if act != "silu" {
            return Err(ModelError::Config(format!(
                "{model_type}: hidden_act `{act}` is not supported (only silu)"
            )));
        }
    }
    let n_heads = w.num_attention_heads;
    if n_heads == 0 {
        return Err(ModelError::Config(format!(
            "{model_type}: num_attention_heads is 0"
        )));
    }
    let head_dim = w.head_dim.unwrap_or(w.hidden_size / n_heads);
    Ok(ModelConfig {
        arch: Arch::Llama,
        model_type: model_type.to_string(),
        n_layers: w.num_hidden_layers,
        hidden_size: w.hidden_size,
        intermediate_size: w.intermediate_size,
        n_heads,
        n_kv_heads: w.num_key_value_heads.unwrap_or(n_heads),
        head_dim,
        vocab_size: w.vocab_size,
        max_position_embeddings: w.max_position_embeddings.unwrap_or(2048),
        norm: NormKind::Rms,
        norm_eps: w.rms_norm_eps.unwrap_or(1e-6),
        activation: Activation::SiluGated,
        rope: Some(rope_from_hf(model_type, &w)?),
        attention_bias: w.attention_bias,
        mlp_bias: w.mlp_bias,
        tie_word_embeddings: w.tie_word_embeddings,
        bos_token_id: w.bos_token_id,
        eos_token_ids: token_ids(json.get("eos_token_id")),
        qk_norm: false,
        parallel_residual: false,
        attn_logit_softcapping: None,
        final_logit_softcapping: None,
        sliding_window: w.sliding_window,
    })
}

/// Reads `rope_theta` + `rope_scaling` (transformers < 5, what hub configs carry) or
/// `rope_parameters` (transformers >= 5).
fn rope_from_hf(model_type: &str, w: &LlamaWire) -> Result<RopeConfig> {
    let params = w.rope_parameters.as_ref().filter(|v| v.is_object());
    let theta = w
        .rope_theta
        .or_else(|| {
            params
                .and_then(|p| p.get("rope_theta"))
                .and_then(|v| v.as_f64())
        })
        .unwrap_or(10000.0);
    let scaling_obj = w.rope_scaling.as_ref().filter(|v| v.is_object()).or(params);
    let scaling = match scaling_obj {
        None => RopeScaling::None,
        Some(s) => {
            let kind = s
                .get("rope_type")
                .or_else(|| s.get("type"))
                .and_then(|v| v.as_str())
                .unwrap_or("default");
            let num = |k: &str| -> Result<f64> {
                s.get(k).and_then(|v| v.as_f64()).ok_or_else(|| {
                    ModelError::Config(format!(
                        "{model_type}: rope scaling `{kind}` needs a numeric `{k}`"
                    ))
                })
            };
            match kind {
                "default" => RopeScaling::None,
                "linear" => RopeScaling::Linear { factor: num("factor")? },
                "llama3" => RopeScaling::Llama3 {
                    factor: num("factor")?,
                    low_freq_factor: num("low_freq_factor")?,
                    high_freq_factor: num("high_freq_factor")?,
                    original_max_position_embeddings: num("original_max_position_embeddings")? as usize,
                },
                other => {
                    return Err(ModelError::Config(format!(
                        "{model_type}: rope scaling `{other}` is not supported (supported: default, linear, llama3)"
                    )))
                }
            }
        }
    };
    Ok(RopeConfig {
        theta,
        partial_rotary_factor: w.partial_rotary_factor.unwrap_or(1.0),
        scaling,
    })
}

/// Hugging Face tensor names: `model.embed_tokens`, `model.layers.N.*`, `model.norm`, `lm_head`.
pub(crate) fn load(cfg: &ModelConfig, src: &Src) -> Result<Parts> {
    let m = src.pp("model");
    let (d, v) = (cfg.hidden_size, cfg.vocab_size);
    let wte = get(&m.vb, &[v, d], "embed_tokens.weight")?;
    let blocks = (0..cfg.n_layers)
        .map(|i| {
            Ok(
                Box::new(LlamaBlock::load(cfg, &m.pp(format!("layers.{i}")))?)
                    as Box<dyn DecoderBlock>,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let norm = Norm::rms(&m, "norm", d, cfg.norm_eps)?;
    // Some checkpoints store a copy of the tied head; when tied, the embedding is the truth.
    let lm_head = if cfg.tie_word_embeddings {
        Linear::tied(&m, "embed_tokens.weight", &wte)?
    } else {
        Linear::torch(src, "lm_head", d, v, false)?
    };
    Ok(Parts {
        wte,
        wpe: None,
        blocks,
        norm,
        lm_head,
    })
}

pub(crate) struct LlamaBlock {
    ln1: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ln2: Norm,
    gate: Linear,
    up: Linear,
    down: Linear,
    n_heads: usize,
    n_kv: usize,
    hd: usize,
}

impl LlamaBlock {
    fn load(cfg: &ModelConfig, vb: &Src) -> Result<Self> {
        let (d, hd, i) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
        let (nh, nkv) = (cfg.n_heads, cfg.n_kv_heads);
        let a = vb.pp("self_attn");
        let mlp = vb.pp("mlp");
        let bias = cfg.attention_bias;
        Ok(Self {
            ln1: Norm::rms(vb, "input_layernorm", d, cfg.norm_eps)?,
            q: Linear::torch(&a, "q_proj", d, nh * hd, bias)?,
            k: Linear::torch(&a, "k_proj", d, nkv * hd, bias)?,
            v: Linear::torch(&a, "v_proj", d, nkv * hd, bias)?,
            o: Linear::torch(&a, "o_proj", nh * hd, d, bias)?,
            ln2: Norm::rms(vb, "post_attention_layernorm", d, cfg.norm_eps)?,
            gate: Linear::torch(&mlp, "gate_proj", d, i, cfg.mlp_bias)?,
            up: Linear::torch(&mlp, "up_proj", d, i, cfg.mlp_bias)?,
            down: Linear::torch(&mlp, "down_proj", i, d, cfg.mlp_bias)?,
            n_heads: nh,
            n_kv: nkv,
            hd,
        })
    }
}

/// (b, t, n*hd) -> (b, t, n, hd), a free reshape.
fn split_heads(xs: &Tensor, n: usize, hd: usize) -> Result<Tensor> {
    let (b, t, _) = xs.dims3()?;
    Ok(xs.reshape((b, t, n, hd))?)
}

impl DecoderBlock for LlamaBlock {
    fn attn_norm(&self, xs: &Tensor) -> Result<Tensor> {
        self.ln1.forward(xs)
    }

    fn qkv(&self, xs: &Tensor, pos: &PosCtx) -> Result<(Tensor, Tensor, Tensor)> {
        let q = split_heads(&self.q.forward(xs)?, self.n_heads, self.hd)?;
        let k = split_heads(&self.k.forward(xs)?, self.n_kv, self.hd)?;
        let v = split_heads(&self.v.forward(xs)?, self.n_kv, self.hd)?;
        let (cos, sin) = pos
            .rope
            .as_ref()
            .ok_or_else(|| ModelError::Other("llama block run without rotary tables".into()))?;
        let q = candle_nn::rotary_emb::rope_thd(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope_thd(&k, cos, sin)?;
        Ok((q, k, v))
    }

    fn attn_out(&self, heads: &Tensor) -> Result<Tensor> {
        self.o.forward(heads)
    }

    fn mlp_norm(&self, xs: &Tensor) -> Result<Tensor> {
        self.ln2.forward(xs)
    }

    fn mlp(&self, xs: &Tensor) -> Result<Tensor> {
        let g = candle_nn::ops::silu(&self.gate.forward(xs)?)?;
        self.down.forward(&(g * self.up.forward(xs)?)?)
    }
}
