//! Steered sweeps: many items × many strengths with as few forward passes as possible.
//!
//! For steering that writes at the output of block L, blocks `0..=L` are the unsteered
//! model whatever the strength, so they run once per item (`Model::forward_prefix`) and
//! every strength resumes at block L+1 from that residual (`Model::forward_from`).
//! Additive steering batches the strengths as rows (one per-row vector `alpha * v`, the
//! unsteered model as a zero row), so a 7-multiplier sweep costs one prefix pass plus
//! one batched suffix pass per chunk of items. Items are chunked in length order so a
//! chunk needs little padding, and logits are computed at the last position only (or
//! at the completion tokens) by [`read_values`]; when every read is a next-token read,
//! the final block itself runs at the last position only (`Pass::last_only`).
//!
//! Items that all start with the same tokens (a chat header, a system prompt, shared
//! instructions) share that prefix: it runs once per steering configuration
//! (`Model::shared_prefix`; for batched strengths, one prefix row per strength) and every
//! item runs only its own tokens, attending to the prefix's cached keys and values.

use candle_core::{Tensor, D};
use steerbench_model::{
    HookPoint, Hooks, Intervention, Model, Pass, Positions, Sequence, SharedPrefix, Site,
};

use crate::error::{EvalError, Result};
use crate::steer::Steer;

/// What to read from one item's forward pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// Log-probs of these token ids at the last position (A/B letters, MC letters).
    NextToken(Vec<u32>),
    /// The full next-token log-prob distribution at the last position (KL, top-1).
    NextDist,
    /// `log p` of each token of `tokens[prompt_len..]` (propensity, likelihood, perplexity).
    Completion,
}

/// One item: a sequence and what to read from it.
#[derive(Debug, Clone)]
pub struct Item {
    pub seq: Sequence,
    pub read: Read,
}

/// The value read from one item under one strength.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    NextToken(Vec<f32>),
    NextDist(Vec<f32>),
    Completion(Vec<f32>),
}

impl Value {
    pub fn as_slice(&self) -> &[f32] {
        match self {
            Value::NextToken(v) | Value::NextDist(v) | Value::Completion(v) => v,
        }
    }
}

/// Options of a sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Where steering writes, on the unpadded sequence.
    pub positions: Positions,
    /// Items per forward pass (before replication over strengths).
    pub batch_items: usize,
    /// Upper bound on rows of one forward pass (items × strengths).
    pub max_rows: usize,
    /// Run the token prefix common to all items once (see the module docs) when it is at
    /// least [`MIN_SHARED_PREFIX`] tokens long. Off: every item runs whole.
    pub share_prefix: bool,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            positions: Positions::All,
            batch_items: 8,
            max_rows: 32,
            share_prefix: true,
        }
    }
}

/// Shorter common prefixes are not worth a separate pass.
pub const MIN_SHARED_PREFIX: usize = 8;

/// The longest token prefix all items start with that lies within every item's prompt
/// and leaves every item at least one token of its own before what it reads (a
/// completion's first token needs a prompt token of the item itself), if at least
/// [`MIN_SHARED_PREFIX`] long.
pub fn common_prefix(items: &[Item]) -> Option<Vec<u32>> {
    let first = &items.first()?.seq.tokens;
    let mut n = first.len();
    for it in items {
        // The prefix stays within every prompt, so it is the same (all-prompt) context
        // for every item, whatever a steering's position selector.
        let own_min = match it.read {
            Read::Completion => it.seq.prompt_len.saturating_sub(1),
            Read::NextToken(_) | Read::NextDist => {
                it.seq.prompt_len.min(it.seq.tokens.len().saturating_sub(1))
            }
        };
        n = n.min(own_min);
        n = first[..n]
            .iter()
            .zip(&it.seq.tokens)
            .take_while(|(a, b)| a == b)
            .count();
    }
    (n >= MIN_SHARED_PREFIX).then(|| first[..n].to_vec())
}

/// `seq` with the shared prefix of `p` tokens cut off (prompt length counted on the
/// rest), or whole when `p == 0`.
fn own_part(seq: &Sequence, p: usize) -> Sequence {
    Sequence::new(seq.tokens[p..].to_vec(), seq.prompt_len - p)
}

/// Values for every strength and item: `out[a][i]` is item `i` under `alphas[a]`.
/// `steer = None` (or `alpha = 0`) is the unsteered model.
pub fn sweep(
    model: &Model,
    items: &[Item],
    steer: Option<&Steer>,
    alphas: &[f32],
    opts: &SweepOptions,
    progress: impl FnMut(usize),
) -> Result<Vec<Vec<Value>>> {
    if let Some(s) = steer {
        return Ok(sweep_many(model, items, &[s], alphas, opts, progress)?.remove(0));
    }
    // Unsteered: one pass per chunk serves every strength.
    let prefix = shared_tokens(model, items, opts, 1);
    let kv = match &prefix {
        Some(t) => Some(full_prefix(model, t, &mut Hooks::new())?),
        None => None,
    };
    let p = prefix.map_or(0, |t| t.len());
    let mut cols = over_chunks(items, opts.batch_items, 1, p, 1, progress, |seqs, reads| {
        let vals = forward_read(model, seqs, reads, kv.as_ref(), &mut Hooks::new())?;
        Ok(vec![vals])
    })?;
    Ok(vec![cols.remove(0); alphas.len()])
}

/// Several steering objects over the same items and strengths: `out[s][a][i]`.
/// Steerings that start at the same hook point share one unsteered prefix pass per
/// chunk of items, and additive ones are batched together as rows.
pub fn sweep_many(
    model: &Model,
    items: &[Item],
    steers: &[&Steer],
    alphas: &[f32],
    opts: &SweepOptions,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Vec<Vec<Value>>>> {
    let cfg = model.config();
    for s in steers {
        if let Some(d) = s.dim().filter(|&d| d != cfg.hidden_size) {
            return Err(EvalError::Input(format!(
                "steering has hidden size {d}, the model has {}",
                cfg.hidden_size
            )));
        }
    }
    let cx = Ctx {
        model,
        steers,
        alphas,
        opts,
    };
    // Prefix variants at most: the unsteered model and every (steering, strength).
    let variants = 1 + steers.len() * alphas.len();
    let prefix = shared_tokens(model, items, opts, variants);
    let plan = match shared_block(steers) {
        Some(block) => Plan::Block(BlockPlan::new(cx, block, prefix.as_deref())?),
        None => Plan::Plain(PlainPlan::new(cx, prefix.as_deref())?),
    };
    // Columns: (steering, strength), steering-major.
    let mut cols = over_chunks(
        items,
        opts.batch_items,
        plan.rows_per_item(),
        plan.shared_len(),
        steers.len() * alphas.len(),
        |n| progress(n * steers.len()),
        |seqs, reads| Ok(plan.run(seqs, reads)?.into_iter().flatten().collect()),
    )?
    .into_iter();
    Ok(steers
        .iter()
        .map(|_| cols.by_ref().take(alphas.len()).collect())
        .collect())
}

/// Runs `run` on each chunk of items (their own tokens after the `shared` prefix) and
/// puts the values back in item order: `run` returns `columns` lists of one value per
/// item of the chunk, the result is `out[column][item]`. `progress` gets items done.
fn over_chunks(
    items: &[Item],
    batch_items: usize,
    rows_per_item: usize,
    shared: usize,
    columns: usize,
    mut progress: impl FnMut(usize),
    mut run: impl FnMut(&[Sequence], &[&Read]) -> Result<Vec<Vec<Value>>>,
) -> Result<Vec<Vec<Value>>> {
    let mut out: Vec<Vec<Option<Value>>> = vec![vec![None; items.len()]; columns];
    for chunk in chunks(items, batch_items, rows_per_item, shared) {
        let seqs: Vec<Sequence> = chunk
            .iter()
            .map(|&i| own_part(&items[i].seq, shared))
            .collect();
        let reads: Vec<&Read> = chunk.iter().map(|&i| &items[i].read).collect();
        for (col, vals) in out.iter_mut().zip(run(&seqs, &reads)?) {
            for (&i, v) in chunk.iter().zip(vals) {
                col[i] = Some(v);
            }
        }
        progress(chunk.len());
    }
    Ok(out
        .into_iter()
        .map(|col| {
            col.into_iter()
                .map(|v| v.expect("every item read"))
                .collect()
        })
        .collect())
}

/// Bytes the cached keys and values of shared prefixes may take in one sweep; beyond,
/// items run whole (a long shared prompt under many steering variants).
const SHARED_PREFIX_BUDGET: usize = 1 << 30;

/// The items' common prefix when the options allow sharing it and its keys and values
/// for up to `variants` whole-model variants fit [`SHARED_PREFIX_BUDGET`].
fn shared_tokens(
    model: &Model,
    items: &[Item],
    opts: &SweepOptions,
    variants: usize,
) -> Option<Vec<u32>> {
    let tokens = opts.share_prefix.then(|| common_prefix(items)).flatten()?;
    let cfg = model.config();
    let per_token = 2 * cfg.n_kv_heads * cfg.head_dim * std::mem::size_of::<f32>();
    let bytes = tokens.len() * per_token * cfg.n_layers * variants;
    (bytes <= SHARED_PREFIX_BUDGET).then_some(tokens)
}

/// The prefix through the whole model (for passes that run every block).
fn full_prefix(model: &Model, tokens: &[u32], hooks: &mut Hooks) -> Result<SharedPrefix> {
    let n = model.config().n_layers;
    Ok(model.shared_prefix(tokens, 0..n, 1, None, hooks)?.0)
}

/// Padded tokens (rows × length) one forward pass may hold when chunking items. Measured
/// on the CAA bench (2 cores, ~160-token items × 7 strengths): one item per pass (7 rows)
/// beat 2, 4 and 8 items per pass by ~15%; short items still batch up to `batch_items`.
const TOKENS_PER_PASS: usize = 2048;

/// Chunks of item indices, in length order (stable) so neighbours need little left
/// padding, each at most `batch_items` items and, beyond its first item, at most
/// `TOKENS_PER_PASS` padded own tokens (after the `shared` prefix) over `rows_per_item`
/// rows per item. Callers put the results back in their own order.
fn chunks(
    items: &[Item],
    batch_items: usize,
    rows_per_item: usize,
    shared: usize,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| items[i].seq.tokens.len());
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in order {
        let len = items[i].seq.tokens.len() - shared;
        match out.last_mut() {
            Some(c)
                if c.len() < batch_items.max(1)
                    && (c.len() + 1) * rows_per_item * len <= TOKENS_PER_PASS =>
            {
                c.push(i)
            }
            _ => out.push(vec![i]),
        }
    }
    out
}

/// The block whose output every steering writes first, when they all share one
/// (`ResidPost(L)`): blocks `0..=L` are then the unsteered model for all of them.
fn shared_block(steers: &[&Steer]) -> Option<usize> {
    let p = steers.first()?.first_point();
    (p.site == Site::ResidPost && steers.iter().all(|s| s.first_point() == p)).then_some(p.layer)
}

/// What a sweep is over: every plan's passes read these.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    model: &'a Model,
    steers: &'a [&'a Steer],
    alphas: &'a [f32],
    opts: &'a SweepOptions,
}

impl Ctx<'_> {
    /// Hooks of steering `si` at strength `alpha` (its own install).
    fn install(&self, si: usize, alpha: f32) -> Result<Hooks> {
        let mut h = Hooks::new();
        let n = self.model.config().n_layers;
        self.steers[si].install(&mut h, alpha, &self.opts.positions, n, self.model.device())?;
        Ok(h)
    }
}

/// How a sweep's passes run, fixed once per sweep (with the shared prefix's keys and
/// values for every steering variant) and then applied to each chunk of items.
enum Plan<'a> {
    Block(BlockPlan<'a>),
    Plain(PlainPlan<'a>),
}

impl Plan<'_> {
    /// `out[s][a]`: the chunk's values under steering `s` at strength `a`.
    fn run(&self, seqs: &[Sequence], reads: &[&Read]) -> Result<Vec<Vec<Vec<Value>>>> {
        match self {
            Plan::Block(b) => b.run(seqs, reads),
            Plan::Plain(p) => p.run(seqs, reads),
        }
    }

    /// Tokens of the items' shared prefix that the plan runs once (0: none).
    fn shared_len(&self) -> usize {
        match self {
            Plan::Block(b) => b.shared,
            Plan::Plain(p) => p.shared,
        }
    }

    /// Rows one item contributes to a pass: the batched strengths.
    fn rows_per_item(&self) -> usize {
        match self {
            Plan::Block(b) => b.kinds.len().clamp(1, b.cx.opts.max_rows.max(1)),
            Plan::Plain(_) => 1,
        }
    }
}

/// A row kind resumed from the shared residual: the unsteered model (read once for every
/// alpha == 0) or (additive steering, alpha index) with alpha != 0.
#[derive(Clone, Copy)]
enum Row {
    Unsteered,
    Add(usize, usize),
}

/// Steerings that all write first at the output of one block L: blocks `0..resume` run
/// once per item unsteered, additive strengths resume as rows of one batch, other
/// steerings (affine, MLP) resume at L one pass each.
struct BlockPlan<'a> {
    cx: Ctx<'a>,
    block: usize,
    resume: usize,
    add_at: HookPoint,
    any_map: bool,
    kinds: Vec<Row>,
    /// Tokens of the shared prefix (0: none, and the three below are `None`).
    shared: usize,
    /// The items' shared prefix through blocks `0..resume` (one row).
    lower: Option<SharedPrefix>,
    /// The prefix through blocks `resume..`, one row per kind (its strength's writes).
    upper: Option<SharedPrefix>,
    /// `[steering][alpha]`: the prefix through blocks `block..` under a map steering.
    maps: Vec<Vec<Option<SharedPrefix>>>,
}

impl<'a> BlockPlan<'a> {
    fn new(cx: Ctx<'a>, block: usize, prefix: Option<&[u32]>) -> Result<Self> {
        let (model, steers, alphas) = (cx.model, cx.steers, cx.alphas);
        let cfg = model.config();
        let n = cfg.n_layers;
        // Additive steering on the output of block L equals adding at the input of block
        // L+1, so blocks 0..=L run once (unsteered) and the strengths resume at L+1. After
        // the last block there is no L+1: resume at L itself and write at its output.
        let resume = if block + 1 < n { block + 1 } else { block };
        let add_at = if resume > block {
            HookPoint::new(resume, Site::ResidPre)
        } else {
            HookPoint::new(block, Site::ResidPost)
        };
        let any_map = steers.iter().any(|s| !matches!(s, Steer::Add { .. }));
        let mut kinds = Vec::new();
        if alphas.contains(&0.0) {
            kinds.push(Row::Unsteered);
        }
        for (si, s) in steers.iter().enumerate() {
            if matches!(s, Steer::Add { .. }) {
                kinds.extend(
                    (0..alphas.len())
                        .filter(|&a| alphas[a] != 0.0)
                        .map(|a| Row::Add(si, a)),
                );
            }
        }
        let mut plan = BlockPlan {
            cx,
            block,
            resume,
            add_at,
            any_map,
            kinds,
            shared: 0,
            lower: None,
            upper: None,
            maps: vec![vec![None; alphas.len()]; steers.len()],
        };
        let Some(tokens) = prefix.filter(|_| resume > 0) else {
            return Ok(plan);
        };
        let mut h = plan.capture_hooks();
        let (lower, resid) = model.shared_prefix(tokens, 0..resume, 1, None, &mut h)?;
        if !plan.kinds.is_empty() {
            let k = plan.kinds.len();
            let rep = resid
                .broadcast_as((k, tokens.len(), cfg.hidden_size))?
                .contiguous()?;
            let mut h = plan.add_rows(&plan.kinds)?;
            plan.upper = Some(
                model
                    .shared_prefix(tokens, resume..n, k, Some(&rep), &mut h)?
                    .0,
            );
        }
        if any_map {
            let r = plan.block_input(&mut h, &resid)?;
            for (si, s) in steers.iter().enumerate() {
                if matches!(s, Steer::Add { .. }) {
                    continue;
                }
                for (a, &alpha) in alphas.iter().enumerate() {
                    if alpha != 0.0 {
                        let mut h = cx.install(si, alpha)?;
                        plan.maps[si][a] = Some(
                            model
                                .shared_prefix(tokens, block..n, 1, Some(&r), &mut h)?
                                .0,
                        );
                    }
                }
            }
        }
        plan.lower = Some(lower);
        plan.shared = tokens.len();
        Ok(plan)
    }

    /// Hooks for the unsteered lower pass: capture the input of block L when map
    /// steerings resume there.
    fn capture_hooks(&self) -> Hooks {
        let mut h = Hooks::new();
        if self.any_map && self.resume > self.block {
            h.capture(HookPoint::new(self.block, Site::ResidPre));
        }
        h
    }

    /// The residual entering block L, from the lower pass's hooks and output.
    fn block_input(&self, h: &mut Hooks, resid: &Tensor) -> Result<Tensor> {
        if self.resume == self.block {
            return Ok(resid.clone());
        }
        h.take(HookPoint::new(self.block, Site::ResidPre))
            .ok_or_else(|| EvalError::Input("residual capture missing".into()))
    }

    /// Hooks writing each row's `alpha * v` (zero for the unsteered kind), rows `kinds[r]`.
    fn add_rows(&self, kinds: &[Row]) -> Result<Hooks> {
        let mut h = Hooks::new();
        if !kinds.iter().any(|k| matches!(k, Row::Add(..))) {
            return Ok(h);
        }
        let d = self.cx.model.config().hidden_size;
        let mut deltas: Vec<f32> = Vec::with_capacity(kinds.len() * d);
        for &kind in kinds {
            match kind {
                Row::Unsteered => deltas.extend(std::iter::repeat_n(0.0, d)),
                Row::Add(si, a) => {
                    let Steer::Add { vector, .. } = self.cx.steers[si] else {
                        unreachable!("only additive rows")
                    };
                    deltas.extend(vector.iter().map(|x| x * self.cx.alphas[a]));
                }
            }
        }
        let per_row = Tensor::from_vec(deltas, (kinds.len(), d), self.cx.model.device())?;
        let what = Intervention::Add {
            vector: per_row,
            alpha: 1.0,
        };
        h.write(self.add_at, what, self.cx.opts.positions.clone());
        Ok(h)
    }

    fn run(&self, seqs: &[Sequence], reads: &[&Read]) -> Result<Vec<Vec<Vec<Value>>>> {
        let Ctx {
            model,
            steers,
            alphas,
            opts,
        } = self.cx;
        let n = seqs.len();
        let zeros = vec![0usize; n];
        let mut results: Vec<Vec<Option<Vec<Value>>>> =
            vec![vec![None; alphas.len()]; steers.len()];
        let mut h = self.capture_hooks();
        let resid = match &self.lower {
            Some(kv) => model.forward_prefix_shared(seqs, self.resume, kv, &zeros, &mut h)?,
            None => model.forward_prefix(seqs, self.resume, &mut h)?,
        };
        let resid_block = if self.any_map {
            Some(self.block_input(&mut h, &resid)?)
        } else {
            None
        };

        // Rows resumed from the shared residual, one per (row kind, item), kind-major.
        let mut zero_vals = None;
        let per_pass = (opts.max_rows / n.max(1)).max(1);
        for g0 in (0..self.kinds.len()).step_by(per_pass) {
            let group = &self.kinds[g0..(g0 + per_pass).min(self.kinds.len())];
            let rows: Vec<Sequence> = group.iter().flat_map(|_| seqs.iter().cloned()).collect();
            let idx: Vec<u32> = group.iter().flat_map(|_| 0..n as u32).collect();
            let row_kinds: Vec<Row> = group.iter().flat_map(|&k| vec![k; n]).collect();
            // Row r continues the upper prefix's row of its kind.
            let row_of: Vec<usize> = (g0..g0 + group.len()).flat_map(|k| vec![k; n]).collect();
            let rep = if group.len() == 1 {
                resid.clone()
            } else {
                let ix = Tensor::from_vec(idx.clone(), idx.len(), model.device())?;
                resid.index_select(&ix, 0)?
            };
            let mut h = self.add_rows(&row_kinds)?;
            let rep_reads: Vec<&Read> = idx.iter().map(|&i| reads[i as usize]).collect();
            let pass = Pass {
                from: Some((self.resume, &rep)),
                prefix: self.upper.as_ref().map(|kv| (kv, &row_of[..])),
                last_only: last_only(&rep_reads),
            };
            let vals = read_values(&model.forward_pass(&rows, &pass, &mut h)?, &rep_reads)?;
            for (g, &kind) in group.iter().enumerate() {
                let v = vals[g * n..(g + 1) * n].to_vec();
                match kind {
                    Row::Unsteered => zero_vals = Some(v),
                    Row::Add(si, a) => results[si][a] = Some(v),
                }
            }
        }
        for (a, &alpha) in alphas.iter().enumerate() {
            if alpha == 0.0 {
                for row in results.iter_mut() {
                    row[a] = zero_vals.clone();
                }
            }
        }
        // Other steerings: one pass per (steering, alpha != 0) from the input of block L.
        for (si, per_alpha) in results.iter_mut().enumerate() {
            for (a, slot) in per_alpha.iter_mut().enumerate() {
                if slot.is_some() {
                    continue;
                }
                let r = resid_block.as_ref().expect("captured for map steerings");
                let mut h = self.cx.install(si, alphas[a])?;
                let pass = Pass {
                    from: Some((self.block, r)),
                    prefix: self.maps[si][a].as_ref().map(|kv| (kv, &zeros[..])),
                    last_only: last_only(reads),
                };
                let out = model.forward_pass(seqs, &pass, &mut h)?;
                *slot = Some(read_values(&out, reads)?);
            }
        }
        Ok(unwrap_all(results))
    }
}

/// Steerings without a shared start block (ablation, ICV, mixed): one unsteered pass for
/// every alpha == 0 and one full steered pass per (steering, alpha != 0).
struct PlainPlan<'a> {
    cx: Ctx<'a>,
    /// Tokens of the shared prefix (0: none, and the prefixes below are `None`).
    shared: usize,
    /// The items' shared prefix through the unsteered model.
    unsteered: Option<SharedPrefix>,
    /// `[steering][alpha]`: the prefix under that steering and strength.
    steered: Vec<Vec<Option<SharedPrefix>>>,
}

impl<'a> PlainPlan<'a> {
    fn new(cx: Ctx<'a>, prefix: Option<&[u32]>) -> Result<Self> {
        let mut plan = PlainPlan {
            cx,
            shared: 0,
            unsteered: None,
            steered: vec![vec![None; cx.alphas.len()]; cx.steers.len()],
        };
        let Some(tokens) = prefix else {
            return Ok(plan);
        };
        if cx.alphas.contains(&0.0) {
            plan.unsteered = Some(full_prefix(cx.model, tokens, &mut Hooks::new())?);
        }
        for si in 0..cx.steers.len() {
            for (a, &alpha) in cx.alphas.iter().enumerate() {
                if alpha != 0.0 {
                    let mut h = cx.install(si, alpha)?;
                    plan.steered[si][a] = Some(full_prefix(cx.model, tokens, &mut h)?);
                }
            }
        }
        plan.shared = tokens.len();
        Ok(plan)
    }

    fn run(&self, seqs: &[Sequence], reads: &[&Read]) -> Result<Vec<Vec<Vec<Value>>>> {
        let Ctx {
            model,
            steers,
            alphas,
            ..
        } = self.cx;
        let zero_vals = if alphas.contains(&0.0) {
            let kv = self.unsteered.as_ref();
            Some(forward_read(model, seqs, reads, kv, &mut Hooks::new())?)
        } else {
            None
        };
        let mut results = Vec::with_capacity(steers.len());
        for si in 0..steers.len() {
            let mut per_alpha = Vec::with_capacity(alphas.len());
            for (a, &alpha) in alphas.iter().enumerate() {
                per_alpha.push(match &zero_vals {
                    Some(z) if alpha == 0.0 => z.clone(),
                    _ => {
                        let mut h = self.cx.install(si, alpha)?;
                        let kv = self.steered[si][a].as_ref();
                        forward_read(model, seqs, reads, kv, &mut h)?
                    }
                });
            }
            results.push(per_alpha);
        }
        Ok(results)
    }
}

fn unwrap_all(results: Vec<Vec<Option<Vec<Value>>>>) -> Vec<Vec<Vec<Value>>> {
    results
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| v.expect("every alpha computed"))
                .collect()
        })
        .collect()
}

/// One forward of `seqs` (continuing `prefix` when given) and the reads from it.
fn forward_read(
    model: &Model,
    seqs: &[Sequence],
    reads: &[&Read],
    prefix: Option<&SharedPrefix>,
    hooks: &mut Hooks,
) -> Result<Vec<Value>> {
    let zeros = vec![0; seqs.len()];
    let pass = Pass {
        from: None,
        prefix: prefix.map(|kv| (kv, &zeros[..])),
        last_only: last_only(reads),
    };
    read_values(&model.forward_pass(seqs, &pass, hooks)?, reads)
}

/// Whether every read is at the last position (so the final block can run there only).
fn last_only(reads: &[&Read]) -> bool {
    reads.iter().all(|r| !matches!(r, Read::Completion))
}

/// Read the requested values from a forward pass; logits are only computed where a
/// read needs them (the last position, or the completion tokens).
pub fn read_values(out: &steerbench_model::ForwardOutput, reads: &[&Read]) -> Result<Vec<Value>> {
    let needs_last = reads.iter().any(|r| !matches!(r, Read::Completion));
    let last = if needs_last {
        Some(candle_nn::ops::log_softmax(&out.last_logits()?, D::Minus1)?)
    } else {
        None
    };
    let mut vals = Vec::with_capacity(reads.len());
    for (row, read) in reads.iter().enumerate() {
        vals.push(match read {
            Read::NextToken(ids) => {
                let lp = last.as_ref().expect("computed above").get(row)?;
                let idx = Tensor::from_vec(ids.clone(), ids.len(), lp.device())?;
                Value::NextToken(lp.index_select(&idx, 0)?.to_vec1::<f32>()?)
            }
            Read::NextDist => Value::NextDist(
                last.as_ref()
                    .expect("computed above")
                    .get(row)?
                    .to_vec1::<f32>()?,
            ),
            Read::Completion => Value::Completion(out.completion_logprobs(row)?),
        });
    }
    Ok(vals)
}
