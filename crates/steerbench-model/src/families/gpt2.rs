//! GPT-2: config adapter and decoder block (LayerNorm, fused `c_attn`, Conv1D weights
//! stored (in, out), gelu_new MLP, learned positions, tied head).

use candle_core::Tensor;
use serde::Deserialize;

use crate::block::{AttnSpec, DecoderBlock, Parts, PosCtx};
use crate::config::{parse_wire, token_ids, Activation, Arch, ModelConfig, NormKind};
use crate::error::{ModelError, Result};
use crate::families::family::Family;
use crate::layers::{Linear, Norm, Src};
use crate::lora::{BlockLora, Proj, ProjInfo};

pub(crate) const FAMILY: Family = Family {
    arch: Arch::Gpt2,
    model_types: &["gpt2"],
    config_from_hf: |_, json| config_from_hf(json),
    load,
    gguf: None,
};

#[derive(Debug, Deserialize)]
struct Gpt2Wire {
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_inner: Option<usize>,
    vocab_size: usize,
    n_positions: usize,
    layer_norm_epsilon: Option<f64>,
    activation_function: Option<String>,
    tie_word_embeddings: Option<bool>,
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
    scale_attn_weights: Option<bool>,
    bos_token_id: Option<u32>,
}

fn config_from_hf(json: &serde_json::Value) -> Result<ModelConfig> {
    let w: Gpt2Wire = parse_wire("gpt2", json)?;
    match w.activation_function.as_deref() {
        None | Some("gelu_new") | Some("gelu_pytorch_tanh") => {}
        Some(other) => {
            return Err(ModelError::Config(format!(
                "gpt2: activation_function `{other}` is not supported (gelu_new only)"
            )))
        }
    }
    if w.scale_attn_by_inverse_layer_idx || w.scale_attn_weights == Some(false) {
        return Err(ModelError::Config(
            "gpt2: only the standard 1/sqrt(head_dim) attention scaling is supported".into(),
        ));
    }
    if w.n_head == 0 || w.n_embd % w.n_head != 0 {
        return Err(ModelError::Config(format!(
            "gpt2: n_embd {} is not divisible by n_head {}",
            w.n_embd, w.n_head
        )));
    }
    if w.tie_word_embeddings == Some(false) {
        return Err(ModelError::Config(
            "gpt2: untied embeddings are not supported".into(),
        ));
    }
    Ok(ModelConfig {
        arch: Arch::Gpt2,
        model_type: "gpt2".into(),
        n_layers: w.n_layer,
        hidden_size: w.n_embd,
        intermediate_size: w.n_inner.unwrap_or(4 * w.n_embd),
        n_heads: w.n_head,
        n_kv_heads: w.n_head,
        head_dim: w.n_embd / w.n_head,
        vocab_size: w.vocab_size,
        max_position_embeddings: w.n_positions,
        norm: NormKind::Layer,
        norm_eps: w.layer_norm_epsilon.unwrap_or(1e-5),
        activation: Activation::GeluTanh,
        rope: None,
        attention_bias: true,
        o_proj_bias: true,
        mlp_bias: true,
        tie_word_embeddings: true,
        bos_token_id: w.bos_token_id,
        eos_token_ids: token_ids(json.get("eos_token_id")),
        qk_norm: false,
        parallel_residual: false,
        attn_logit_softcapping: None,
        final_logit_softcapping: None,
        sliding_window: None,
        layer_attention: Vec::new(),
        rope_local: None,
        longrope: None,
        norm_plus_one: false,
        embed_scale: None,
        query_pre_attn_scalar: None,
        post_norms: false,
    })
}

/// Names `wte`, `wpe`, `h.N.*`, `ln_f`, with or without the `transformer.` prefix.
fn load(cfg: &ModelConfig, src: &Src) -> Result<Parts> {
    let m = if src.vb.contains_tensor("transformer.wte.weight") {
        src.pp("transformer")
    } else {
        src.clone()
    };
    let (d, v) = (cfg.hidden_size, cfg.vocab_size);
    let wte = m.matrix(&[v, d], "wte.weight")?;
    let wpe = m.matrix(&[cfg.max_position_embeddings, d], "wpe.weight")?;
    let blocks = (0..cfg.n_layers)
        .map(|i| {
            Ok(Box::new(Gpt2Block::load(cfg, &m.pp(format!("h.{i}")), i)?) as Box<dyn DecoderBlock>)
        })
        .collect::<Result<Vec<_>>>()?;
    let norm = Norm::layer(&m, "ln_f", d, cfg.norm_eps)?;
    Ok(Parts {
        lm_head: Linear::tied(&m, "wte.weight", &wte)?,
        wte,
        wpe: Some(wpe),
        blocks,
        norm,
    })
}

pub(crate) struct Gpt2Block {
    ln1: Norm,
    c_attn: Linear,
    c_proj: Linear,
    ln2: Norm,
    c_fc: Linear,
    mlp_proj: Linear,
    n_heads: usize,
    hd: usize,
    d: usize,
    inter: usize,
    spec: AttnSpec,
}

impl Gpt2Block {
    fn load(cfg: &ModelConfig, vb: &Src, layer: usize) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            ln1: Norm::layer(vb, "ln_1", d, cfg.norm_eps)?,
            c_attn: Linear::conv1d(&vb.pp("attn"), "c_attn", d, 3 * d)?,
            c_proj: Linear::conv1d(&vb.pp("attn"), "c_proj", d, d)?,
            ln2: Norm::layer(vb, "ln_2", d, cfg.norm_eps)?,
            c_fc: Linear::conv1d(&vb.pp("mlp"), "c_fc", d, i)?,
            mlp_proj: Linear::conv1d(&vb.pp("mlp"), "c_proj", i, d)?,
            n_heads: cfg.n_heads,
            hd: cfg.head_dim,
            d,
            inter: i,
            spec: AttnSpec::of_layer(cfg, layer),
        })
    }
}

impl DecoderBlock for Gpt2Block {
    fn attn_norm(&self, xs: &Tensor) -> Result<Tensor> {
        self.ln1.forward(xs)
    }

    fn qkv(&self, xs: &Tensor, _pos: &PosCtx, lora: &BlockLora) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = xs.dims3()?;
        let qkv = lora.add(Proj::Qkv, xs, self.c_attn.forward(xs)?)?;
        let qkv = qkv.reshape((b, t, 3 * self.n_heads, self.hd))?;
        let head =
            |i: usize| -> Result<Tensor> { Ok(qkv.narrow(2, i * self.n_heads, self.n_heads)?) };
        Ok((head(0)?, head(1)?, head(2)?))
    }

    fn attn_out(&self, heads: &Tensor, lora: &BlockLora) -> Result<Tensor> {
        lora.add(Proj::O, heads, self.c_proj.forward(heads)?)
    }

    fn mlp_norm(&self, xs: &Tensor) -> Result<Tensor> {
        self.ln2.forward(xs)
    }

    fn mlp(&self, xs: &Tensor, lora: &BlockLora) -> Result<Tensor> {
        let h = lora.add(Proj::Up, xs, self.c_fc.forward(xs)?)?.gelu()?;
        lora.add(Proj::Down, &h, self.mlp_proj.forward(&h)?)
    }

    fn attn_spec(&self) -> AttnSpec {
        self.spec
    }

    /// GPT-2 names both output projections `c_proj` (PEFT tells them apart by path).
    fn projections(&self, layer: usize) -> Vec<ProjInfo> {
        let (d, nh, hd) = (self.d, self.n_heads, self.hd);
        let i = self.inter;
        let p = |proj, module: &str, d_in, d_out| ProjInfo {
            layer,
            proj,
            path: format!("transformer.h.{layer}.{module}"),
            d_in,
            d_out,
        };
        vec![
            p(Proj::Qkv, "attn.c_attn", d, 3 * nh * hd),
            p(Proj::O, "attn.c_proj", nh * hd, d),
            p(Proj::Up, "mlp.c_fc", d, i),
            p(Proj::Down, "mlp.c_proj", i, d),
        ]
    }
}
