//! The one shared forward loop: embeddings, blocks with hook sites, final norm, and the
//! outputs computed from the final hidden states (never a full b × t × vocab tensor).

use std::ops::Range;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

use crate::block::{Parts, PosCtx};
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::hooks::{Frame, HookPoint, Hooks, Site};
use crate::kv_cache::KvCache;
use crate::layers::{attention, rope_inv_freq, rope_tables, CausalPad, LmHead, QuantWeights, Src};
use crate::lora::{BlockLora, ProjInfo};

/// One row of a batch. `tokens[prompt_len..]` are the completion (or generated) tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
}

impl Sequence {
    pub fn new(tokens: Vec<u32>, prompt_len: usize) -> Self {
        Self { tokens, prompt_len }
    }

    /// A sequence that is all prompt.
    pub fn prompt(tokens: Vec<u32>) -> Self {
        let prompt_len = tokens.len();
        Self { tokens, prompt_len }
    }
}

/// A causal LM with hook sites. Knows token ids only; text is the tokenizer's business.
pub struct Model {
    cfg: ModelConfig,
    parts: Parts,
    head: LmHead,
    /// Rotary inverse frequencies (1, 1, head_dim/2): `rope`, then `rope_local` if any.
    /// With LongRoPE the first is its short set.
    inv_freqs: Vec<Tensor>,
    longrope: Option<LongRopeTables>,
    device: Device,
    prefill_chunk: Option<usize>,
    /// The dtype its weight matrices are held in (activations are always f32).
    dtype: DType,
}

/// LongRoPE's long frequency set, used for passes whose longest row exceeds
/// `original` positions, and the cos/sin scale of both sets.
struct LongRopeTables {
    long: Tensor,
    original: usize,
    mscale: f64,
}

/// Keys and values of a token prefix that the rows of later batches all start with (a
/// system prompt, a chat header, shared instructions): computed once by
/// [`Model::shared_prefix`] and attended to by every row of a pass that continues it
/// ([`Pass::prefix`], [`Model::forward_prefix_shared`]) instead of being recomputed. It may hold
/// several rows (e.g. one per steering strength when the steering also writes in the
/// prefix) and a range of blocks (the rest of the model being run without it).
#[derive(Debug, Clone)]
pub struct SharedPrefix {
    len: usize,
    rows: usize,
    layers: Range<usize>,
    /// (rows, len, n_kv_heads, head_dim) per block in `layers`.
    cache: KvCache,
}

impl SharedPrefix {
    /// Tokens in the prefix.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows (variants) of the prefix.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Blocks whose keys and values it holds.
    pub fn layers(&self) -> Range<usize> {
        self.layers.clone()
    }
}

/// How one forward pass runs: where it starts, what it continues, what it keeps.
/// `Pass::default()` is a plain forward of whole sequences keeping every position.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pass<'a> {
    /// Resume at this block from its input residual (b, t, d) in the batch's padded
    /// layout (see [`Model::forward_from`]) instead of starting from the embedding.
    pub from: Option<(usize, &'a Tensor)>,
    /// The rows continue a [`SharedPrefix`]: row r continues the prefix's row
    /// `row_of[r]` (see [`Model::forward_pass`]).
    pub prefix: Option<(&'a SharedPrefix, &'a [usize])>,
    /// Keep each row's last position only: the final block computes attention and MLP
    /// there alone (keys and values everywhere), which is all next-token reads need.
    /// Refused when hooks capture a site of the final block past its input.
    pub last_only: bool,
}

/// A batch in padded layout: rows left-padded to a common length `t`.
#[derive(Debug, Clone)]
pub(crate) struct BatchLayout {
    /// Length of a shared token prefix before every row (held in a KV cache; 0: none).
    /// Padded position j of a row is `shared + j` in attention and hook coordinates.
    pub shared: usize,
    /// The rows are themselves a shared prefix of longer sequences: `Positions::Last`
    /// names none of their tokens.
    pub open_ended: bool,
    pub pad: Vec<usize>,
    pub lens: Vec<usize>,
    pub prompt_lens: Vec<usize>,
    pub last: Vec<usize>,
    pub t: usize,
    /// (b * t) token ids, 0 at padding.
    pub ids: Vec<u32>,
}

impl BatchLayout {
    pub(crate) fn new(batch: &[Sequence], vocab: usize) -> Result<Self> {
        if batch.is_empty() {
            return Err(ModelError::Input("empty batch".into()));
        }
        let t = batch.iter().map(|s| s.tokens.len()).max().unwrap_or(0);
        let mut ids = vec![0u32; batch.len() * t];
        let (mut pad, mut lens, mut prompt_lens, mut last) = (vec![], vec![], vec![], vec![]);
        for (r, s) in batch.iter().enumerate() {
            let n = s.tokens.len();
            if n == 0 {
                return Err(ModelError::Input(format!("row {r}: empty token sequence")));
            }
            if s.prompt_len > n {
                return Err(ModelError::Input(format!(
                    "row {r}: prompt_len {} > length {n}",
                    s.prompt_len
                )));
            }
            if let Some(bad) = s.tokens.iter().find(|&&x| x as usize >= vocab) {
                return Err(ModelError::Input(format!(
                    "row {r}: token id {bad} >= vocab size {vocab}"
                )));
            }
            ids[r * t + (t - n)..(r + 1) * t].copy_from_slice(&s.tokens);
            pad.push(t - n);
            lens.push(n);
            prompt_lens.push(s.prompt_len);
            last.push(n - 1);
        }
        Ok(Self {
            shared: 0,
            open_ended: false,
            pad,
            lens,
            prompt_lens,
            last,
            t,
            ids,
        })
    }

    /// Hook and mask bookkeeping of the rows' own padded positions `[start, start + t)`.
    pub(crate) fn frame(&self, start: usize, t: usize) -> Frame {
        let p = self.shared;
        let shift = |v: &[usize]| v.iter().map(|x| x + p).collect::<Vec<_>>();
        Frame {
            pad: self.pad.clone(),
            lens: shift(&self.lens),
            prompt_lens: shift(&self.prompt_lens),
            last: if self.open_ended {
                vec![usize::MAX; self.pad.len()]
            } else {
                shift(&self.last)
            },
            shared: p,
            start: p + start,
            t,
        }
    }

    /// Token ids of padded positions [start, start + t), row-major (b * t).
    pub(crate) fn ids_chunk(&self, start: usize, t: usize) -> Vec<u32> {
        (0..self.pad.len())
            .flat_map(|r| {
                self.ids[r * self.t + start..r * self.t + start + t]
                    .iter()
                    .copied()
            })
            .collect()
    }
}

impl Model {
    /// Build from Hugging Face tensor names (each family's file in `families/`). Weights
    /// are f32.
    pub fn new(cfg: ModelConfig, vb: VarBuilder) -> Result<Model> {
        Self::new_quantized(cfg, vb, &QuantWeights::new())
    }

    /// [`Model::new`], with the linear layers (and a tied LM head) whose weight is in
    /// `quant` multiplied quantized (candle's `QMatMul`); all other tensors come from `vb`.
    pub fn new_quantized(cfg: ModelConfig, vb: VarBuilder, quant: &QuantWeights) -> Result<Model> {
        Self::new_with(cfg, vb, quant, DType::F32)
    }

    /// [`Model::new_quantized`] with the weight matrices (linear layers not held
    /// quantized, embedding tables, the LM head) held in `dtype`: f32, bf16 or f16.
    ///
    /// Whatever `dtype`, the residual stream, every hook site, norms (their weights are
    /// kept f32), attention scores and softmax, the KV cache and logits are f32: a weight
    /// is widened to f32 inside the matmul (see `layers::matmul`) and an embedding row
    /// when it is looked up. So steering vectors are added in f32 and captures are f32,
    /// and only the weights' own rounding separates the dtypes; rounding the activations
    /// to bf16 as well (8 significant bits) would add error at every layer for no speed
    /// on CPU, where the gemm kernel computes in f32 anyway.
    pub fn new_with(
        cfg: ModelConfig,
        vb: VarBuilder,
        quant: &QuantWeights,
        dtype: DType,
    ) -> Result<Model> {
        cfg.check_implemented()?;
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
            return Err(ModelError::Input(format!(
                "weights can be held in f32, bf16 or f16, not {dtype:?}"
            )));
        }
        let src = Src::new(vb.set_dtype(DType::F32), Some(quant), dtype);
        let parts = (crate::families::family(cfg.arch).load)(&cfg, &src)?;
        let vb = &src.vb;
        let device = vb.device().clone();
        let mut inv_freqs = Vec::new();
        if let Some(r) = &cfg.rope {
            for r in std::iter::once(r).chain(&cfg.rope_local) {
                let f = rope_inv_freq(r, cfg.head_dim);
                inv_freqs.push(Tensor::from_vec(f, (1, 1, cfg.head_dim / 2), &device)?);
            }
        }
        let longrope = match (&cfg.longrope, &cfg.rope) {
            (Some(l), Some(r)) => {
                let table = |factors: &[f64]| -> Result<Tensor> {
                    let hd = cfg.head_dim;
                    let f: Vec<f32> = factors
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (1.0 / (x * r.theta.powf((2 * i) as f64 / hd as f64))) as f32)
                        .collect();
                    Ok(Tensor::from_vec(f, (1, 1, hd / 2), &device)?)
                };
                inv_freqs[0] = table(&l.short_factor)?;
                Some(LongRopeTables {
                    long: table(&l.long_factor)?,
                    original: l.original_max_position_embeddings,
                    mscale: l.attention_factor,
                })
            }
            _ => None,
        };
        let head = LmHead {
            linear: parts.lm_head.clone(),
            softcap: cfg.final_logit_softcapping,
        };
        Ok(Model {
            cfg,
            parts,
            head,
            inv_freqs,
            longrope,
            device,
            prefill_chunk: None,
            dtype,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Whether the LM head multiplies quantized weights (see [`Model::new_quantized`]).
    pub fn is_quantized(&self) -> bool {
        self.head.is_quantized()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype the weight matrices are held in ([`Model::new_with`]); hidden states,
    /// hook sites and logits are f32 whatever it is.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Run prompts longer than `n` positions in chunks of `n` through a KV cache, which
    /// bounds attention memory (b × heads × n × t instead of × t × t). `None`: one pass.
    pub fn set_prefill_chunk(&mut self, n: Option<usize>) {
        self.prefill_chunk = n.filter(|&n| n > 0);
    }

    pub fn prefill_chunk(&self) -> Option<usize> {
        self.prefill_chunk
    }

    /// Forward the batch (left-padded internally), running `hooks`.
    pub fn forward(&self, batch: &[Sequence], hooks: &mut Hooks) -> Result<ForwardOutput> {
        self.forward_pass(batch, &Pass::default(), hooks)
    }

    /// The general forward: [`Model::forward`] and [`Model::forward_from`] are special
    /// cases of `pass`. With `pass.prefix`, row r is the prefix's row `row_of[r]` followed
    /// by `batch[r]` (whose `prompt_len` counts its own tokens; hook positions count from
    /// the start of the whole sequence), and the output covers the rows' own tokens only.
    pub fn forward_pass(
        &self,
        batch: &[Sequence],
        pass: &Pass,
        hooks: &mut Hooks,
    ) -> Result<ForwardOutput> {
        let n = self.cfg.n_layers;
        let layers = match pass.from {
            Some((l, _)) if l >= n => {
                return Err(ModelError::Input(format!(
                    "layer {l} out of range (model has {n})"
                )))
            }
            Some((l, _)) => l..n,
            None => 0..n,
        };
        let (lay, cache) = self.layout(batch, pass.prefix, &layers)?;
        let resid = match pass.from {
            Some((_, r)) => {
                let want = [batch.len(), lay.t, self.cfg.hidden_size];
                check_shape(
                    r,
                    want,
                    "forward_from: resid_pre (padded layout of this batch)",
                )?;
                Some(r)
            }
            None => None,
        };
        if pass.last_only && hooks.captures_past_input(n - 1) {
            return Err(ModelError::Input(format!(
                "a last-position-only pass cannot capture sites of the final block {} past its input",
                n - 1
            )));
        }
        let out = self.run_layers(&lay, layers, resid, hooks, cache, pass.last_only)?;
        check_finite(&out.0, "final hidden states")?;
        let mut output = self.output(batch, lay, out.0);
        output.last_only = pass.last_only;
        Ok(output)
    }

    /// The residual stream entering block `stop_layer` (`ResidPre(stop_layer)`, before any
    /// hook there), (b, t, d) in the batch's padded layout: the embedding and blocks
    /// `0..stop_layer` only, no upper blocks and no LM head. Feed it to
    /// [`Model::forward_from`]`(batch, stop_layer, ..)`; hooks at layers below
    /// `stop_layer` run, those at or above it are left for `forward_from`.
    pub fn forward_prefix(
        &self,
        batch: &[Sequence],
        stop_layer: usize,
        hooks: &mut Hooks,
    ) -> Result<Tensor> {
        self.forward_prefix_impl(batch, stop_layer, None, hooks)
    }

    /// [`Model::forward_prefix`] of rows continuing a [`SharedPrefix`] (see
    /// [`Pass::prefix`]); the prefix must hold blocks `0..stop_layer`.
    pub fn forward_prefix_shared(
        &self,
        batch: &[Sequence],
        stop_layer: usize,
        prefix: &SharedPrefix,
        row_of: &[usize],
        hooks: &mut Hooks,
    ) -> Result<Tensor> {
        self.forward_prefix_impl(batch, stop_layer, Some((prefix, row_of)), hooks)
    }

    fn forward_prefix_impl(
        &self,
        batch: &[Sequence],
        stop_layer: usize,
        shared: Option<(&SharedPrefix, &[usize])>,
        hooks: &mut Hooks,
    ) -> Result<Tensor> {
        if stop_layer >= self.cfg.n_layers {
            return Err(ModelError::Input(format!(
                "forward_prefix: layer {stop_layer} out of range (model has {})",
                self.cfg.n_layers
            )));
        }
        let layers = 0..stop_layer;
        let (lay, cache) = self.layout(batch, shared, &layers)?;
        Ok(self.run_layers(&lay, layers, None, hooks, cache, false)?.0)
    }

    /// Resume at block `layer` from its input residual `resid_pre` (b, t, d) in padded
    /// layout, e.g. captured at `HookPoint { layer, site: ResidPre }` by an earlier forward
    /// of the same batch. Hooks at `ResidPre(layer)` and above run; those below are unused.
    pub fn forward_from(
        &self,
        batch: &[Sequence],
        layer: usize,
        resid_pre: &Tensor,
        hooks: &mut Hooks,
    ) -> Result<ForwardOutput> {
        let pass = Pass {
            from: Some((layer, resid_pre)),
            ..Pass::default()
        };
        self.forward_pass(batch, &pass, hooks)
    }

    /// Run a token prefix that later batches share (a system prompt, a chat header, common
    /// instructions) through blocks `layers`, as `rows` rows that may differ by their
    /// hooks (e.g. one row per steering strength, with per-row `Add` vectors). The input is
    /// the embedding when `resid` is `None` (then `layers` must start at 0), else `resid`
    /// (rows, len, d), the residual entering `layers.start`. Hooks see the rows as the
    /// prompt of longer sequences (`Positions::Last` selects none of them). Returns the
    /// prefix's keys and values and the residual leaving `layers` (final-normed hidden
    /// states when `layers` reaches the last block).
    pub fn shared_prefix(
        &self,
        tokens: &[u32],
        layers: Range<usize>,
        rows: usize,
        resid: Option<&Tensor>,
        hooks: &mut Hooks,
    ) -> Result<(SharedPrefix, Tensor)> {
        if tokens.is_empty() || rows == 0 {
            return Err(ModelError::Input(
                "shared prefix: needs at least one token and one row".into(),
            ));
        }
        if layers.start >= layers.end || layers.end > self.cfg.n_layers {
            return Err(ModelError::Input(format!(
                "shared prefix: blocks {layers:?} out of range (model has {})",
                self.cfg.n_layers
            )));
        }
        if resid.is_none() && layers.start != 0 {
            return Err(ModelError::Input(format!(
                "shared prefix: starting at block {} needs the residual entering it",
                layers.start
            )));
        }
        self.admit(rows, tokens.len())?;
        let batch = vec![Sequence::prompt(tokens.to_vec()); rows];
        let mut lay = BatchLayout::new(&batch, self.cfg.vocab_size)?;
        lay.open_ended = true;
        if let Some(r) = resid {
            check_shape(
                r,
                [rows, tokens.len(), self.cfg.hidden_size],
                "shared prefix: resid",
            )?;
        }
        let cache = KvCache::new(self.cfg.n_layers);
        let (out, cache) =
            self.run_layers(&lay, layers.clone(), resid, hooks, Some(cache), false)?;
        let prefix = SharedPrefix {
            len: tokens.len(),
            rows,
            layers,
            cache: cache.expect("run with a cache"),
        };
        Ok((prefix, out))
    }

    /// `prefix` continued by `tokens` (the same tokens on each of its rows), through every
    /// block: the keys and values of both, as one longer prefix. Hooks see the new tokens
    /// at their positions in the whole sequence, as prompt (`Positions::Last` selects
    /// none). A conversation's history grows this way turn by turn, each token computed
    /// once. The prefix must hold every block (be built from the embedding).
    pub fn extend_prefix(
        &self,
        prefix: &SharedPrefix,
        tokens: &[u32],
        hooks: &mut Hooks,
    ) -> Result<SharedPrefix> {
        let n = self.cfg.n_layers;
        if prefix.layers != (0..n) {
            return Err(ModelError::Input(format!(
                "extend_prefix: the prefix holds blocks {:?}, extending needs all {n}",
                prefix.layers
            )));
        }
        if tokens.is_empty() {
            return Ok(prefix.clone());
        }
        Ok(self.extend_prefix_from(prefix, tokens, None, hooks)?.0)
    }

    /// [`Model::extend_prefix`] for a prefix holding any range of blocks (as
    /// [`Model::shared_prefix`] builds them): `resid` (rows, tokens, d) is the residual of
    /// the new tokens entering the prefix's first block (`None` when that is block 0: the
    /// embedding). Returns the longer prefix and the new tokens' residual leaving its
    /// blocks (final-normed when they reach the last block). Lets a sweep keep the blocks
    /// below a steered layer in a one-row prefix and only the blocks above in one row per
    /// strength.
    pub fn extend_prefix_from(
        &self,
        prefix: &SharedPrefix,
        tokens: &[u32],
        resid: Option<&Tensor>,
        hooks: &mut Hooks,
    ) -> Result<(SharedPrefix, Tensor)> {
        let layers = prefix.layers.clone();
        if tokens.is_empty() {
            return Err(ModelError::Input("extend_prefix: no tokens to add".into()));
        }
        if resid.is_none() && layers.start != 0 {
            return Err(ModelError::Input(format!(
                "extend_prefix: the prefix starts at block {}, extending it needs the residual entering it",
                layers.start
            )));
        }
        let rows: Vec<usize> = (0..prefix.rows).collect();
        let batch = vec![Sequence::prompt(tokens.to_vec()); prefix.rows];
        let (mut lay, cache) = self.layout(&batch, Some((prefix, &rows)), &layers)?;
        lay.open_ended = true;
        if let Some(r) = resid {
            check_shape(
                r,
                [prefix.rows, tokens.len(), self.cfg.hidden_size],
                "extend_prefix: resid",
            )?;
        }
        let (out, cache) = self.run_layers(&lay, layers.clone(), resid, hooks, cache, false)?;
        let longer = SharedPrefix {
            len: prefix.len + tokens.len(),
            rows: prefix.rows,
            layers,
            cache: cache.expect("run with a cache"),
        };
        Ok((longer, out))
    }

    /// The layout of `batch`, and the KV cache its rows start from when they continue a
    /// shared prefix (checked to cover `layers`).
    /// Refuses a pass of `rows` sequences of `positions` tokens (shared prefix included)
    /// that the model cannot take (longer than its context) or that this machine cannot
    /// hold (estimated memory above what is available), before any tensor is allocated:
    /// an oversized input is an error, never an aborted process.
    pub fn admit(&self, rows: usize, positions: usize) -> Result<()> {
        let ctx = self.cfg.max_position_embeddings;
        if ctx > 0 && positions > ctx {
            return Err(ModelError::Input(format!(
                "a sequence of {positions} tokens is longer than the model's context of {ctx} tokens"
            )));
        }
        let need = self.pass_bytes(rows, positions);
        if let Some(avail) = available_memory_bytes() {
            if need > avail {
                let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
                return Err(ModelError::Input(format!(
                    "a pass over {rows} sequence(s) of {positions} tokens needs about {:.1} GiB, more than the {:.1} GiB of memory available: use shorter items or smaller batches",
                    gib(need),
                    gib(avail)
                )));
            }
        }
        Ok(())
    }

    /// An upper estimate of the memory one pass allocates (f32): the residual stream and
    /// block intermediates, the attention scores of one prefill chunk, the KV cache.
    /// Logits are read a bounded number of positions at a time and are not counted.
    pub fn pass_bytes(&self, rows: usize, positions: usize) -> u64 {
        let c = &self.cfg;
        let (b, t) = (rows as u64, positions as u64);
        let chunk = self.prefill_chunk.map_or(t, |n| (n as u64).min(t));
        let acts = b * t * (6 * c.hidden_size as u64 + 3 * c.intermediate_size as u64);
        let scores = 2 * b * c.n_heads as u64 * chunk * t;
        let kv = 2 * c.n_layers as u64 * b * t * (c.n_kv_heads * c.head_dim) as u64;
        4 * (acts + scores + kv)
    }

    fn layout(
        &self,
        batch: &[Sequence],
        shared: Option<(&SharedPrefix, &[usize])>,
        layers: &Range<usize>,
    ) -> Result<(BatchLayout, Option<KvCache>)> {
        let mut lay = BatchLayout::new(batch, self.cfg.vocab_size)?;
        self.admit(batch.len(), shared.map_or(0, |(p, _)| p.len) + lay.t)?;
        let Some((prefix, row_of)) = shared else {
            return Ok((lay, None));
        };
        if row_of.len() != batch.len() {
            return Err(ModelError::Input(format!(
                "shared prefix: {} row indices for a batch of {}",
                row_of.len(),
                batch.len()
            )));
        }
        if let Some(&r) = row_of.iter().find(|&&r| r >= prefix.rows) {
            return Err(ModelError::Input(format!(
                "shared prefix: row {r} out of range (the prefix has {} rows)",
                prefix.rows
            )));
        }
        if layers.start < prefix.layers.start || layers.end > prefix.layers.end {
            return Err(ModelError::Input(format!(
                "shared prefix holds blocks {:?}, the pass needs {layers:?}",
                prefix.layers
            )));
        }
        lay.shared = prefix.len;
        let cache = prefix.cache.select_rows(row_of, lay.t)?;
        Ok((lay, Some(cache)))
    }

    /// `log p(tokens[i] | tokens[..i])` for i >= 1, per row (length len - 1). Logits are
    /// computed for a bounded number of positions at a time, so memory stays small.
    pub fn token_logprobs(&self, batch: &[Sequence], hooks: &mut Hooks) -> Result<Vec<Vec<f32>>> {
        let out = self.forward(batch, hooks)?;
        let mut idx = Vec::new();
        let mut targets = Vec::new();
        for (r, s) in batch.iter().enumerate() {
            for i in 0..s.tokens.len() - 1 {
                idx.push(out.flat_index(r, i));
                targets.push(s.tokens[i + 1]);
            }
        }
        let lp = out.gather_logprobs(&idx, &targets)?;
        let mut rows = Vec::with_capacity(batch.len());
        let mut off = 0;
        for s in batch {
            let n = s.tokens.len() - 1;
            rows.push(lp[off..off + n].to_vec());
            off += n;
        }
        Ok(rows)
    }

    fn output(&self, batch: &[Sequence], lay: BatchLayout, hidden: Tensor) -> ForwardOutput {
        ForwardOutput {
            hidden,
            last_only: false,
            lm_head: self.head.clone(),
            tokens: batch.iter().map(|s| s.tokens.clone()).collect(),
            pad: lay.pad,
            lens: lay.lens,
            prompt_lens: lay.prompt_lens,
        }
    }

    fn check_hooks(&self, hooks: &Hooks) -> Result<()> {
        if let Some((a, _)) = hooks.adapter() {
            a.check(&self.projections())?;
        }
        match hooks.max_layer() {
            Some(l) if l >= self.cfg.n_layers => Err(ModelError::Input(format!(
                "hook at layer {l}, but the model has {} layers (0..{})",
                self.cfg.n_layers,
                self.cfg.n_layers - 1
            ))),
            _ => Ok(()),
        }
    }

    /// Whole batch from `from_layer` to the end (final-normed hidden states).
    pub(crate) fn run(
        &self,
        lay: &BatchLayout,
        from_layer: usize,
        resid: Option<&Tensor>,
        hooks: &mut Hooks,
    ) -> Result<Tensor> {
        Ok(self
            .run_layers(
                lay,
                from_layer..self.cfg.n_layers,
                resid,
                hooks,
                None,
                false,
            )?
            .0)
    }

    /// Whole batch through `layers`, chunked through a KV cache when configured. Returns
    /// final-normed hidden states when `layers` reaches the last block, else the raw
    /// residual entering `layers.end` (before its hooks), and the KV cache when one was
    /// used. `cache`, when given, holds the shared prefix (`lay.shared` positions) or is
    /// empty; it is then filled with this batch's keys and values too. `last_only`: the
    /// output is each row's last position (b, 1, d), see [`Pass::last_only`].
    fn run_layers(
        &self,
        lay: &BatchLayout,
        layers: Range<usize>,
        resid: Option<&Tensor>,
        hooks: &mut Hooks,
        cache: Option<KvCache>,
        last_only: bool,
    ) -> Result<(Tensor, Option<KvCache>)> {
        self.check_hooks(hooks)?;
        hooks.reset_captures();
        let chunk = self.prefill_chunk.unwrap_or(lay.t).max(1);
        let input = |start: usize, t: usize| -> Result<Tensor> {
            match resid {
                Some(r) => Ok(r.narrow(1, start, t)?.to_dtype(DType::F32)?.contiguous()?),
                None => self.embed(&lay.ids_chunk(start, t), &lay.frame(start, t)),
            }
        };
        if chunk >= lay.t && cache.is_none() {
            let frame = lay.frame(0, lay.t);
            let out = self.run_chunk(&frame, layers, input(0, lay.t)?, None, hooks, last_only)?;
            return Ok((out, None));
        }
        let mut cache = cache.unwrap_or_else(|| KvCache::new(self.cfg.n_layers));
        let mut outs = Vec::new();
        for start in (0..lay.t).step_by(chunk) {
            let t = chunk.min(lay.t - start);
            let frame = lay.frame(start, t);
            let final_chunk = start + t == lay.t;
            outs.push(self.run_chunk(
                &frame,
                layers.clone(),
                input(start, t)?,
                Some(&mut cache),
                hooks,
                last_only && final_chunk,
            )?);
        }
        if last_only {
            outs = outs.split_off(outs.len() - 1);
        }
        let out = if outs.len() == 1 {
            outs.remove(0)
        } else {
            Tensor::cat(&outs, 1)?
        };
        Ok((out, Some(cache)))
    }

    /// Position ids (b, t) of the chunk: unpadded indices (0 at padding).
    fn positions(frame: &Frame) -> Vec<u32> {
        let mut pos = Vec::with_capacity(frame.pad.len() * frame.t);
        for r in 0..frame.pad.len() {
            pos.extend(
                (frame.start..frame.start + frame.t)
                    .map(|j| frame.unpadded(r, j).unwrap_or(0) as u32),
            );
        }
        pos
    }

    /// Token (+ learned position) embeddings of a chunk: (b, t, d).
    pub(crate) fn embed(&self, ids: &[u32], frame: &Frame) -> Result<Tensor> {
        let (b, t) = (frame.pad.len(), frame.t);
        let ix = Tensor::from_vec(ids.to_vec(), b * t, &self.device)?;
        let mut xs = self.parts.wte.index_select(&ix, 0)?.to_dtype(DType::F32)?;
        if let Some(wpe) = &self.parts.wpe {
            let pos = Self::positions(frame);
            let max = self.cfg.max_position_embeddings;
            if let Some(&p) = pos.iter().max().filter(|&&p| p as usize >= max) {
                return Err(ModelError::Input(format!(
                    "position {p} exceeds the model's {max} learned positions (sequence too long)"
                )));
            }
            let pix = Tensor::from_vec(pos, b * t, &self.device)?;
            xs = (xs + wpe.index_select(&pix, 0)?.to_dtype(DType::F32)?)?;
        }
        if let Some(s) = self.cfg.embed_scale {
            xs = (xs * s)?;
        }
        Ok(xs.reshape((b, t, self.cfg.hidden_size))?)
    }

    /// One chunk (padded positions [frame.start, frame.start + frame.t)) through blocks
    /// `layers`: returns final-normed hidden states (b, t, d) when `layers` ends at the last
    /// block, else the residual entering block `layers.end`. With a cache, it must already
    /// hold positions [0, frame.start). `last_only`: the final block runs attention and
    /// MLP at the chunk's last position only and that position alone is returned
    /// (b, 1, d); its hooks past the block input see that position only.
    pub(crate) fn run_chunk(
        &self,
        frame: &Frame,
        layers: Range<usize>,
        mut xs: Tensor,
        mut cache: Option<&mut KvCache>,
        hooks: &mut Hooks,
        last_only: bool,
    ) -> Result<Tensor> {
        let (b, t, d) = xs.dims3()?;
        let from_layer = layers.start;
        if frame.start > 0
            && from_layer < layers.end
            && cache.as_ref().map(|c| c.len(from_layer)) != Some(frame.start)
        {
            return Err(ModelError::Other(format!(
                "chunk starts at {} but the KV cache holds {:?} positions",
                frame.start,
                cache.as_ref().map(|c| c.len(from_layer))
            )));
        }
        let pos = PosCtx {
            ropes: if self.inv_freqs.is_empty() {
                Vec::new()
            } else {
                let p = Tensor::from_vec(Self::positions(frame), (b, t), &self.device)?;
                let mut ropes = self
                    .inv_freqs
                    .iter()
                    .map(|f| rope_tables(f, &p))
                    .collect::<Result<Vec<_>>>()?;
                if let Some(l) = &self.longrope {
                    // The set follows the longest row of the whole pass (not of this
                    // chunk), so chunked prefill equals one pass.
                    let len = frame.lens.iter().copied().max().unwrap_or(0);
                    let (cos, sin) = if len > l.original {
                        rope_tables(&l.long, &p)?
                    } else {
                        ropes[0].clone()
                    };
                    ropes[0] = ((cos * l.mscale)?, (sin * l.mscale)?);
                }
                ropes
            },
        };
        let mask = CausalPad {
            pad: frame.pad.clone(),
            shared: frame.shared,
            start: frame.start,
            window: None,
        };
        let (nh, hd) = (self.cfg.n_heads, self.cfg.head_dim);
        let (lo, hi) = (layers.start, layers.end.min(self.parts.blocks.len()));
        let n_blocks = self.parts.blocks.len();
        let mut frame = frame.clone();
        let mut mask = mask;
        let adapter = hooks.adapter().cloned();
        for (l, block) in self.parts.blocks[..hi].iter().enumerate().skip(lo) {
            let at = |site| HookPoint { layer: l, site };
            let lora = BlockLora::of(adapter.as_ref(), l);
            xs = hooks.apply(at(Site::ResidPre), xs, &frame)?;
            let (q, k, v) = block.qkv(&block.attn_norm(&xs)?, &pos, &lora)?;
            let (k, v) = match cache.as_deref_mut() {
                Some(c) => c.append(l, k, v)?,
                None => (k, v),
            };
            // Past the final block's input only the last position matters for the output.
            let q = if last_only && l + 1 == n_blocks && frame.t > 1 {
                let cut = frame.t - 1;
                xs = xs.narrow(1, cut, 1)?;
                frame.start += cut;
                frame.t = 1;
                mask.start += cut;
                q.narrow(1, cut, 1)?
            } else {
                q
            };
            let tq = frame.t;
            let spec = block.attn_spec();
            mask.window = spec.window;
            let heads = attention(&q, &k, &v, &mask, spec.scale, spec.softcap)?;
            let heads = hooks.apply(at(Site::HeadOut), heads, &frame)?;
            let a = block.attn_out(&heads.reshape((b, tq, nh * hd))?, &lora)?;
            let a = hooks.apply(at(Site::AttnOut), a, &frame)?;
            xs = hooks.apply(at(Site::ResidMid), (xs + a)?, &frame)?;
            let m = block.mlp(&block.mlp_norm(&xs)?, &lora)?;
            let m = hooks.apply(at(Site::MlpOut), m, &frame)?;
            xs = hooks.apply(at(Site::ResidPost), (xs + m)?, &frame)?;
        }
        debug_assert_eq!(xs.dims3()?, (b, frame.t, d));
        if hi < n_blocks {
            return Ok(xs);
        }
        self.parts.norm.forward(&xs)
    }

    /// Every projection of every block a LoRA adapter can target, in block order, with
    /// its Hugging Face module path and shape.
    pub fn projections(&self) -> Vec<ProjInfo> {
        self.parts
            .blocks
            .iter()
            .enumerate()
            .flat_map(|(l, b)| b.projections(l))
            .collect()
    }

    /// Final-normed hidden states (b, t, d) of `batch` in one pass (no KV cache, no
    /// chunking), for training: with an adapter of `Var`s in `hooks` the result is
    /// differentiable with respect to them. Read log-probs with
    /// [`Model::logprobs_at`]. Refuses 8-bit weights, which have no backward pass.
    pub fn forward_train(
        &self,
        batch: &[Sequence],
        hooks: &mut Hooks,
    ) -> Result<(Tensor, Vec<usize>)> {
        if self.is_quantized() {
            return Err(ModelError::Input(
                "training through 8-bit weights is not supported: load the model without `quantized`".into(),
            ));
        }
        let lay = BatchLayout::new(batch, self.cfg.vocab_size)?;
        self.admit(batch.len(), lay.t)?;
        self.check_hooks(hooks)?;
        hooks.reset_captures();
        let frame = lay.frame(0, lay.t);
        let xs = self.embed(&lay.ids_chunk(0, lay.t), &frame)?;
        let h = self.run_chunk(&frame, 0..self.cfg.n_layers, xs, None, hooks, false)?;
        Ok((h, lay.pad))
    }

    /// `log p(target | position)` for rows of `hidden` (b, t, d) picked by flat index
    /// `row * t + position` (padded layout): a differentiable (n,) tensor.
    pub fn logprobs_at(&self, hidden: &Tensor, idx: &[u32], targets: &[u32]) -> Result<Tensor> {
        let (b, t, d) = hidden.dims3()?;
        let dev = hidden.device();
        let rows = hidden
            .reshape((b * t, d))?
            .index_select(&Tensor::new(idx, dev)?, 0)?;
        let logits = self.head.forward(&rows)?;
        let lp = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?;
        let tg = Tensor::new(targets, dev)?.unsqueeze(1)?;
        Ok(lp.gather(&tg, 1)?.squeeze(1)?)
    }

    /// Logits (n, vocab) of final hidden rows (n, d).
    pub(crate) fn logits(&self, h: &Tensor) -> Result<Tensor> {
        self.head.forward(h)
    }
}

/// An input error unless `t` has shape `want`.
fn check_shape(t: &Tensor, want: [usize; 3], what: &str) -> Result<()> {
    if t.dims() != want {
        return Err(ModelError::Input(format!(
            "{what} has shape {:?}, expected {want:?}",
            t.dims()
        )));
    }
    Ok(())
}

/// Final hidden states of a forward plus what is needed to read logits from them.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// Final-normed hidden states (b, t, d), left-padded; (b, 1, d) when `last_only`.
    hidden: Tensor,
    /// Only each row's last position was computed (see [`Pass::last_only`]).
    last_only: bool,
    lm_head: LmHead,
    tokens: Vec<Vec<u32>>,
    pad: Vec<usize>,
    lens: Vec<usize>,
    prompt_lens: Vec<usize>,
}

/// Rows of logits materialised at once when gathering log-probs.
const LOGPROB_CHUNK: usize = 256;

impl ForwardOutput {
    /// Final-normed hidden states (b, t, d) in padded layout; (b, 1, d), the last
    /// positions, after a [`Pass::last_only`] pass.
    pub fn hidden(&self) -> &Tensor {
        &self.hidden
    }

    pub fn batch_size(&self) -> usize {
        self.pad.len()
    }

    /// Left padding of `row` (its position p is at padded index `pad_left + p`).
    pub fn pad_left(&self, row: usize) -> usize {
        self.pad[row]
    }

    /// Logits of each row's last token: (b, vocab).
    pub fn last_logits(&self) -> Result<Tensor> {
        let (b, t, d) = self.hidden.dims3()?;
        let h = self.hidden.narrow(1, t - 1, 1)?.reshape((b, d))?;
        self.lm_head.forward(&h)
    }

    /// Logits (vocab) at unpadded position `pos` of `row`.
    pub fn logits_at(&self, row: usize, pos: usize) -> Result<Tensor> {
        self.check(row, pos)?;
        let h = self
            .hidden
            .get(row)?
            .get(self.pad[row] + pos)?
            .unsqueeze(0)?;
        Ok(self.lm_head.forward(&h)?.squeeze(0)?)
    }

    /// `log p(tokens[i] | tokens[..i])` for i in `prompt_len..len` of `row`.
    pub fn completion_logprobs(&self, row: usize) -> Result<Vec<f32>> {
        self.check(row, 0)?;
        let pl = self.prompt_lens[row];
        if pl == 0 {
            return Err(ModelError::Input(format!(
                "row {row}: prompt_len 0 has no context for the first token"
            )));
        }
        let idx: Vec<u32> = (pl - 1..self.lens[row] - 1)
            .map(|i| self.flat_index(row, i))
            .collect();
        self.gather_logprobs(&idx, &self.tokens[row][pl..])
    }

    fn check(&self, row: usize, pos: usize) -> Result<()> {
        if self.last_only {
            return Err(ModelError::Input(
                "this pass kept the last positions only (Pass::last_only): read last_logits".into(),
            ));
        }
        if row >= self.pad.len() {
            return Err(ModelError::Input(format!(
                "row {row} out of range (batch of {})",
                self.pad.len()
            )));
        }
        if pos >= self.lens[row] {
            return Err(ModelError::Input(format!(
                "position {pos} out of range (row {row} has {} tokens)",
                self.lens[row]
            )));
        }
        Ok(())
    }

    pub(crate) fn flat_index(&self, row: usize, pos: usize) -> u32 {
        let t = self.hidden.dims()[1];
        (row * t + self.pad[row] + pos) as u32
    }

    /// log-softmax at flat hidden rows `idx`, read at `targets`, LOGPROB_CHUNK rows at a time.
    pub(crate) fn gather_logprobs(&self, idx: &[u32], targets: &[u32]) -> Result<Vec<f32>> {
        let (b, t, d) = self.hidden.dims3()?;
        let flat = self.hidden.reshape((b * t, d))?;
        let dev = flat.device();
        let mut out = Vec::with_capacity(idx.len());
        for (ix, tg) in idx.chunks(LOGPROB_CHUNK).zip(targets.chunks(LOGPROB_CHUNK)) {
            let n = ix.len();
            let h = flat.index_select(&Tensor::from_vec(ix.to_vec(), n, dev)?, 0)?;
            let lsm = candle_nn::ops::log_softmax(&self.lm_head.forward(&h)?, D::Minus1)?;
            let tg = Tensor::from_vec(tg.to_vec(), (n, 1), dev)?;
            out.extend(lsm.gather(&tg, 1)?.squeeze(1)?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

/// `MemAvailable` from /proc/meminfo (Linux); `None` elsewhere or when unreadable, and
/// then no memory check is made.
fn available_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Errors when `t` holds a NaN or an infinity: one reduction per pass, so a corrupt
/// weight or an overflowing steering vector stops the run instead of writing NaN scores.
pub(crate) fn check_finite(t: &Tensor, what: &str) -> Result<()> {
    // A sum in f64 propagates NaN and infinity (a max would skip NaN) and cannot
    // overflow on finite f32 inputs.
    let sum = t
        .to_dtype(candle_core::DType::F64)?
        .abs()?
        .sum_all()?
        .to_scalar::<f64>()?;
    if sum.is_finite() {
        Ok(())
    } else {
        Err(ModelError::Input(format!(
            "the model computed non-finite {what} (NaN or infinity): the weights hold non-finite values, or a steering vector or multiplier made the activations overflow"
        )))
    }
}
