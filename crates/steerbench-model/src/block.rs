//! The block interface the shared forward loop (`decoder.rs`) drives, and the one rotary
//! pre-norm block that every rotary family builds with its own tensor names and quirks.
//!
//! Hook sites mean the same thing in every family because the loop, not the block, places
//! them: a block only computes its attention branch (norm, q/k/v, output projection, and
//! a post-norm where the family has one) and its MLP branch; the loop adds each branch to
//! the residual stream. So `AttnOut`/`MlpOut` are always exactly what is added to the
//! residual, `ResidMid` is always the residual between the two adds (for post-norm
//! families, Gemma 2/3: after the attention branch's post-norm and add, before the MLP's
//! pre-norm), and `HeadOut` is always the per-head attention output before the output
//! projection.

use candle_core::{Tensor, D};

use crate::config::{Activation, AttentionKind, ModelConfig};
use crate::error::{ModelError, Result};
use crate::layers::{rope, Linear, Norm, Src};
use crate::lora::{BlockLora, Proj, ProjInfo};

/// Positional information shared by every block of one chunk.
pub(crate) struct PosCtx {
    /// cos/sin (b, t, head_dim/2) per rotary variant (0: `rope`, 1: `rope_local`).
    pub ropes: Vec<(Tensor, Tensor)>,
}

impl PosCtx {
    pub(crate) fn rope(&self, i: usize) -> Result<&(Tensor, Tensor)> {
        self.ropes
            .get(i)
            .ok_or_else(|| ModelError::Other(format!("rotary table {i} missing for this block")))
    }
}

/// How a block's attention scores are formed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AttnSpec {
    /// Multiplies q·k.
    pub scale: f64,
    /// `cap * tanh(score / cap)` after scaling (Gemma 2).
    pub softcap: Option<f64>,
    /// Sliding window (the query's own position included).
    pub window: Option<usize>,
    /// Index of the rotary table ([`PosCtx::ropes`]).
    pub rope: usize,
}

impl AttnSpec {
    pub(crate) fn of_layer(cfg: &ModelConfig, l: usize) -> Self {
        let local = cfg.attention_kind(l) == AttentionKind::Sliding;
        Self {
            scale: 1.0
                / cfg
                    .query_pre_attn_scalar
                    .unwrap_or(cfg.head_dim as f64)
                    .sqrt(),
            softcap: cfg.attn_logit_softcapping,
            window: cfg.window(l),
            rope: usize::from(local && cfg.rope_local.is_some()),
        }
    }
}

/// An architecture's block, split where the shared loop places hook sites.
pub(crate) trait DecoderBlock: Send + Sync {
    fn attn_norm(&self, xs: &Tensor) -> Result<Tensor>;
    /// q (b, t, n_heads, hd) with positions applied; k, v (b, t, n_kv_heads, hd). Views
    /// of any strides with a contiguous last dimension.
    /// `lora`: the adapter's deltas on this block's projections (none: the base model).
    fn qkv(&self, xs: &Tensor, pos: &PosCtx, lora: &BlockLora) -> Result<(Tensor, Tensor, Tensor)>;
    /// The attention branch from the concatenated heads (b, t, n_heads * hd) -> (b, t, d):
    /// the output projection, then the post-attention norm where the family has one.
    fn attn_out(&self, heads: &Tensor, lora: &BlockLora) -> Result<Tensor>;
    fn mlp_norm(&self, xs: &Tensor) -> Result<Tensor>;
    /// The MLP branch (post-feed-forward norm included where the family has one).
    fn mlp(&self, xs: &Tensor, lora: &BlockLora) -> Result<Tensor>;
    fn attn_spec(&self) -> AttnSpec;
    /// The projections a LoRA adapter can target in this block (block `layer`), with their
    /// Hugging Face module paths.
    fn projections(&self, layer: usize) -> Vec<ProjInfo>;
}

/// What an architecture file builds from the weights.
pub(crate) struct Parts {
    pub wte: Tensor,
    pub wpe: Option<Tensor>,
    pub blocks: Vec<Box<dyn DecoderBlock>>,
    pub norm: Norm,
    /// d -> vocab
    pub lm_head: Linear,
}

/// (b, t, n*hd) -> (b, t, n, hd), a free reshape.
pub(crate) fn split_heads(xs: &Tensor, n: usize, hd: usize) -> Result<Tensor> {
    let (b, t, _) = xs.dims3()?;
    Ok(xs.reshape((b, t, n, hd))?)
}

/// Tensor names of a rotary family's block, under `model.layers.N`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RotaryNames {
    /// Norm before attention.
    pub attn_norm: &'static str,
    /// Norm on the attention branch before the residual add (Gemma 2/3).
    pub attn_post_norm: Option<&'static str>,
    /// Norm before the MLP.
    pub mlp_norm: &'static str,
    /// Norm on the MLP branch before the residual add (Gemma 2/3).
    pub mlp_post_norm: Option<&'static str>,
    /// One `qkv_proj` (rows q, then k, then v) instead of `q_proj`/`k_proj`/`v_proj`.
    pub fused_qkv: bool,
    /// One `gate_up_proj` (rows gate, then up) instead of `gate_proj`/`up_proj`.
    pub fused_gate_up: bool,
}

/// Llama's names: `input_layernorm`, `post_attention_layernorm` (the MLP's pre-norm).
pub(crate) const LLAMA_NAMES: RotaryNames = RotaryNames {
    attn_norm: "input_layernorm",
    attn_post_norm: None,
    mlp_norm: "post_attention_layernorm",
    mlp_post_norm: None,
    fused_qkv: false,
    fused_gate_up: false,
};

/// RMSNorm of `name`, with Gemma's `1 + w` when the config says so.
pub(crate) fn rms(cfg: &ModelConfig, src: &Src, name: &str, d: usize) -> Result<Norm> {
    Norm::rms_offset(src, name, d, cfg.norm_eps, cfg.norm_plus_one)
}

/// A whole rotary model under Hugging Face names: `model.embed_tokens`,
/// `model.layers.N.*`, `model.norm`, `lm_head` (or the embedding when tied).
pub(crate) fn load_rotary(cfg: &ModelConfig, src: &Src, names: &RotaryNames) -> Result<Parts> {
    let m = src.pp("model");
    let (d, v) = (cfg.hidden_size, cfg.vocab_size);
    let wte = m.matrix(&[v, d], "embed_tokens.weight")?;
    let blocks = (0..cfg.n_layers)
        .map(|i| {
            Ok(Box::new(RotaryBlock::load(
                cfg,
                &m.pp(format!("layers.{i}")),
                names,
                AttnSpec::of_layer(cfg, i),
            )?) as Box<dyn DecoderBlock>)
        })
        .collect::<Result<Vec<_>>>()?;
    let norm = rms(cfg, &m, "norm", d)?;
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

enum Qkv {
    Split { q: Linear, k: Linear, v: Linear },
    Fused(Linear),
}

enum GateUp {
    Split { gate: Linear, up: Linear },
    Fused(Linear),
}

/// Pre-norm block with rotary GQA attention and a gated MLP; every quirk optional:
/// biases, fused projections, q/k norms, post-norms, soft-capping, sliding window.
pub(crate) struct RotaryBlock {
    ln1: Norm,
    qkv: Qkv,
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
    o: Linear,
    post_attn: Option<Norm>,
    ln2: Norm,
    gate_up: GateUp,
    down: Linear,
    post_mlp: Option<Norm>,
    act: Activation,
    n_heads: usize,
    n_kv: usize,
    hd: usize,
    d: usize,
    inter: usize,
    spec: AttnSpec,
}

impl RotaryBlock {
    fn load(cfg: &ModelConfig, vb: &Src, names: &RotaryNames, spec: AttnSpec) -> Result<Self> {
        let (d, hd, i) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
        let (nh, nkv) = (cfg.n_heads, cfg.n_kv_heads);
        let a = vb.pp("self_attn");
        let mlp = vb.pp("mlp");
        let bias = cfg.attention_bias;
        let qkv = if names.fused_qkv {
            Qkv::Fused(Linear::torch(&a, "qkv_proj", d, (nh + 2 * nkv) * hd, bias)?)
        } else {
            Qkv::Split {
                q: Linear::torch(&a, "q_proj", d, nh * hd, bias)?,
                k: Linear::torch(&a, "k_proj", d, nkv * hd, bias)?,
                v: Linear::torch(&a, "v_proj", d, nkv * hd, bias)?,
            }
        };
        let gate_up = if names.fused_gate_up {
            GateUp::Fused(Linear::torch(&mlp, "gate_up_proj", d, 2 * i, cfg.mlp_bias)?)
        } else {
            GateUp::Split {
                gate: Linear::torch(&mlp, "gate_proj", d, i, cfg.mlp_bias)?,
                up: Linear::torch(&mlp, "up_proj", d, i, cfg.mlp_bias)?,
            }
        };
        let opt = |name: Option<&str>| -> Result<Option<Norm>> {
            name.map(|n| rms(cfg, vb, n, d)).transpose()
        };
        let (q_norm, k_norm) = if cfg.qk_norm {
            (
                Some(rms(cfg, &a, "q_norm", hd)?),
                Some(rms(cfg, &a, "k_norm", hd)?),
            )
        } else {
            (None, None)
        };
        let act = match cfg.activation {
            Activation::SiluGated | Activation::GeluTanhGated => cfg.activation,
            Activation::GeluTanh => {
                return Err(ModelError::Config(format!(
                    "{}: the rotary block needs a gated MLP activation",
                    cfg.model_type
                )))
            }
        };
        Ok(Self {
            ln1: rms(cfg, vb, names.attn_norm, d)?,
            qkv,
            q_norm,
            k_norm,
            o: Linear::torch(&a, "o_proj", nh * hd, d, cfg.o_proj_bias)?,
            post_attn: opt(names.attn_post_norm)?,
            ln2: rms(cfg, vb, names.mlp_norm, d)?,
            gate_up,
            down: Linear::torch(&mlp, "down_proj", i, d, cfg.mlp_bias)?,
            post_mlp: opt(names.mlp_post_norm)?,
            act,
            n_heads: nh,
            n_kv: nkv,
            hd,
            d,
            inter: i,
            spec,
        })
    }
}

fn maybe_norm(norm: &Option<Norm>, xs: Tensor) -> Result<Tensor> {
    match norm {
        Some(n) => n.forward(&xs),
        None => Ok(xs),
    }
}

impl DecoderBlock for RotaryBlock {
    fn attn_norm(&self, xs: &Tensor) -> Result<Tensor> {
        self.ln1.forward(xs)
    }

    fn qkv(&self, xs: &Tensor, pos: &PosCtx, lora: &BlockLora) -> Result<(Tensor, Tensor, Tensor)> {
        let (nh, nkv, hd) = (self.n_heads, self.n_kv, self.hd);
        let (q, k, v) = match &self.qkv {
            Qkv::Split { q, k, v } => (
                lora.add(Proj::Q, xs, q.forward(xs)?)?,
                lora.add(Proj::K, xs, k.forward(xs)?)?,
                lora.add(Proj::V, xs, v.forward(xs)?)?,
            ),
            Qkv::Fused(w) => {
                let y = lora.add(Proj::Qkv, xs, w.forward(xs)?)?;
                let part = |from: usize, n: usize| -> Result<Tensor> {
                    Ok(y.narrow(D::Minus1, from * hd, n * hd)?.contiguous()?)
                };
                (part(0, nh)?, part(nh, nkv)?, part(nh + nkv, nkv)?)
            }
        };
        let q = maybe_norm(&self.q_norm, split_heads(&q, nh, hd)?)?;
        let k = maybe_norm(&self.k_norm, split_heads(&k, nkv, hd)?)?;
        let v = split_heads(&v, nkv, hd)?;
        let (cos, sin) = pos.rope(self.spec.rope)?;
        let q = rope(&q, cos, sin)?;
        let k = rope(&k, cos, sin)?;
        Ok((q, k, v))
    }

    fn attn_out(&self, heads: &Tensor, lora: &BlockLora) -> Result<Tensor> {
        let o = lora.add(Proj::O, heads, self.o.forward(heads)?)?;
        maybe_norm(&self.post_attn, o)
    }

    fn mlp_norm(&self, xs: &Tensor) -> Result<Tensor> {
        self.ln2.forward(xs)
    }

    fn mlp(&self, xs: &Tensor, lora: &BlockLora) -> Result<Tensor> {
        let (g, u) = match &self.gate_up {
            GateUp::Split { gate, up } => (
                lora.add(Proj::Gate, xs, gate.forward(xs)?)?,
                lora.add(Proj::Up, xs, up.forward(xs)?)?,
            ),
            GateUp::Fused(w) => {
                let y = lora.add(Proj::GateUp, xs, w.forward(xs)?)?;
                let i = y.dim(D::Minus1)? / 2;
                (y.narrow(D::Minus1, 0, i)?, y.narrow(D::Minus1, i, i)?)
            }
        };
        let g = match self.act {
            Activation::GeluTanhGated => g.gelu()?,
            _ => candle_nn::ops::silu(&g)?,
        };
        let h = (g * u)?;
        let down = lora.add(Proj::Down, &h, self.down.forward(&h)?)?;
        maybe_norm(&self.post_mlp, down)
    }

    fn attn_spec(&self) -> AttnSpec {
        self.spec
    }

    fn projections(&self, layer: usize) -> Vec<ProjInfo> {
        let (d, i, hd) = (self.d, self.inter, self.hd);
        let (q, kv) = (self.n_heads * hd, self.n_kv * hd);
        let mut out = Vec::new();
        let mut add = |proj, module: &str, d_in, d_out| {
            out.push(ProjInfo {
                layer,
                proj,
                path: format!("model.layers.{layer}.{module}"),
                d_in,
                d_out,
            })
        };
        match self.qkv {
            Qkv::Split { .. } => {
                add(Proj::Q, "self_attn.q_proj", d, q);
                add(Proj::K, "self_attn.k_proj", d, kv);
                add(Proj::V, "self_attn.v_proj", d, kv);
            }
            Qkv::Fused(_) => add(Proj::Qkv, "self_attn.qkv_proj", d, q + 2 * kv),
        }
        add(Proj::O, "self_attn.o_proj", q, d);
        match self.gate_up {
            GateUp::Split { .. } => {
                add(Proj::Gate, "mlp.gate_proj", d, i);
                add(Proj::Up, "mlp.up_proj", d, i);
            }
            GateUp::Fused(_) => add(Proj::GateUp, "mlp.gate_up_proj", d, 2 * i),
        }
        add(Proj::Down, "mlp.down_proj", i, d);
        out
    }
}
