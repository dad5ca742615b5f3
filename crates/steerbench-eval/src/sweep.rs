//! Steered sweeps: many items × many strengths with as few forward passes as possible.
//!
//! For steering that writes at the output of block L, blocks `0..=L` are the unsteered
//! model whatever the strength, so they run once per item (`Model::forward_prefix`) and
//! every strength resumes at block L+1 from that residual (`Model::forward_from`).
//! Additive steering batches the strengths as rows (one per-row vector `alpha * v`, the
//! unsteered model as a zero row), so a 7-multiplier sweep costs one prefix pass plus
//! one batched suffix pass per chunk of items. Items are chunked in length order so a
//! chunk needs little padding, and logits are computed at the last position only (or
//! at the completion tokens) by [`read_values`].

use candle_core::{Tensor, D};
use steerbench_model::{HookPoint, Hooks, Intervention, Model, Positions, Sequence, Site};

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
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            positions: Positions::All,
            batch_items: 8,
            max_rows: 32,
        }
    }
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
    match steer {
        None => {
            let mut out: Vec<Vec<Option<Value>>> = vec![vec![None; items.len()]; alphas.len()];
            let mut progress = progress;
            for chunk in chunks(items, opts.batch_items, 1) {
                let seqs: Vec<Sequence> = chunk.iter().map(|&i| items[i].seq.clone()).collect();
                let reads: Vec<&Read> = chunk.iter().map(|&i| &items[i].read).collect();
                let vals = forward_read(model, &seqs, &reads, &mut Hooks::new())?;
                for o in out.iter_mut() {
                    for (&i, v) in chunk.iter().zip(&vals) {
                        o[i] = Some(v.clone());
                    }
                }
                progress(chunk.len());
            }
            Ok(out
                .into_iter()
                .map(|vals| {
                    vals.into_iter()
                        .map(|v| v.expect("every item read"))
                        .collect()
                })
                .collect())
        }
        Some(s) => Ok(sweep_many(model, items, &[s], alphas, opts, progress)?.remove(0)),
    }
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
        if s.dim() != cfg.hidden_size {
            return Err(EvalError::Input(format!(
                "steering has hidden size {}, the model has {}",
                s.dim(),
                cfg.hidden_size
            )));
        }
    }
    let mut out: Vec<Vec<Vec<Option<Value>>>> =
        vec![vec![vec![None; items.len()]; alphas.len()]; steers.len()];
    // Rows one item contributes to a pass: the batched strengths (see `sweep_chunk`).
    let n_add = steers
        .iter()
        .filter(|s| matches!(s, Steer::Add { .. }))
        .count();
    let kinds =
        usize::from(alphas.contains(&0.0)) + n_add * alphas.iter().filter(|&&a| a != 0.0).count();
    let rows_per_item = if shared_block(steers).is_some() {
        kinds.clamp(1, opts.max_rows.max(1))
    } else {
        1
    };
    for chunk in chunks(items, opts.batch_items, rows_per_item) {
        let seqs: Vec<Sequence> = chunk.iter().map(|&i| items[i].seq.clone()).collect();
        let reads: Vec<&Read> = chunk.iter().map(|&i| &items[i].read).collect();
        let per_steer = sweep_chunk(model, &seqs, &reads, steers, alphas, opts)?;
        for (s, per_alpha) in per_steer.into_iter().enumerate() {
            for (a, vals) in per_alpha.into_iter().enumerate() {
                for (&i, v) in chunk.iter().zip(vals) {
                    out[s][a][i] = Some(v);
                }
            }
        }
        progress(chunk.len() * steers.len());
    }
    Ok(out
        .into_iter()
        .map(|per_alpha| {
            per_alpha
                .into_iter()
                .map(|vals| {
                    vals.into_iter()
                        .map(|v| v.expect("every item read"))
                        .collect()
                })
                .collect()
        })
        .collect())
}

/// Padded tokens (rows × length) one forward pass may hold when chunking items. Measured
/// on the CAA bench (2 cores, ~160-token items × 7 strengths): one item per pass (7 rows)
/// beat 2, 4 and 8 items per pass by ~15%; short items still batch up to `batch_items`.
const TOKENS_PER_PASS: usize = 2048;

/// Chunks of item indices, in length order (stable) so neighbours need little left
/// padding, each at most `batch_items` items and, beyond its first item, at most
/// `TOKENS_PER_PASS` padded tokens over `rows_per_item` rows per item. Callers put the
/// results back in their own order.
fn chunks(items: &[Item], batch_items: usize, rows_per_item: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| items[i].seq.tokens.len());
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in order {
        let len = items[i].seq.tokens.len();
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

/// `out[s][a]`: the chunk's values under steering `s` at strength `a`.
fn sweep_chunk(
    model: &Model,
    seqs: &[Sequence],
    reads: &[&Read],
    steers: &[&Steer],
    alphas: &[f32],
    opts: &SweepOptions,
) -> Result<Vec<Vec<Vec<Value>>>> {
    let Some(block) = shared_block(steers) else {
        return sweep_chunk_plain(model, seqs, reads, steers, alphas, opts);
    };
    let cfg = model.config();
    let dev = model.device().clone();
    let n = seqs.len();
    let mut results: Vec<Vec<Option<Vec<Value>>>> = vec![vec![None; alphas.len()]; steers.len()];

    // Additive steering on the output of block L equals adding at the input of block L+1,
    // so blocks 0..=L run once (unsteered) and the strengths resume at L+1. After the last
    // block there is no L+1: resume at L itself and write at its output.
    let resume = if block + 1 < cfg.n_layers {
        block + 1
    } else {
        block
    };
    let add_at = if resume > block {
        HookPoint::new(resume, Site::ResidPre)
    } else {
        HookPoint::new(block, Site::ResidPost)
    };
    // Other steerings (affine, MLP) install at ResidPost(L) and resume at L.
    let any_map = steers.iter().any(|s| !matches!(s, Steer::Add { .. }));
    let mut h = Hooks::new();
    if any_map && resume > block {
        h.capture(HookPoint::new(block, Site::ResidPre));
    }
    let resid = model.forward_prefix(seqs, resume, &mut h)?;
    let resid_block = if resume > block {
        match h.take(HookPoint::new(block, Site::ResidPre)) {
            Some(r) => Some(r),
            None if any_map => {
                return Err(EvalError::Input("residual capture missing".into()));
            }
            None => None,
        }
    } else {
        Some(resid.clone())
    };

    // Rows resumed from the shared residual, one per (row kind, item): the unsteered model
    // (read once for every alpha == 0) and each (additive steering, alpha != 0).
    #[derive(Clone, Copy)]
    enum Row {
        Unsteered,
        Add(usize, usize),
    }
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
    let mut zero_vals = None;
    let per_pass = (opts.max_rows / n.max(1)).max(1);
    for group in kinds.chunks(per_pass) {
        let mut rows = Vec::with_capacity(group.len() * n);
        let mut idx = Vec::with_capacity(group.len() * n);
        let mut deltas: Vec<f32> = Vec::with_capacity(group.len() * n * cfg.hidden_size);
        for &kind in group {
            for (i, s) in seqs.iter().enumerate() {
                rows.push(s.clone());
                idx.push(i as u32);
                match kind {
                    Row::Unsteered => deltas.extend(std::iter::repeat_n(0.0, cfg.hidden_size)),
                    Row::Add(si, a) => {
                        let Steer::Add { vector, .. } = steers[si] else {
                            unreachable!("only additive rows")
                        };
                        deltas.extend(vector.iter().map(|x| x * alphas[a]));
                    }
                }
            }
        }
        let rep = if group.len() == 1 {
            resid.clone()
        } else {
            resid.index_select(&Tensor::from_vec(idx.clone(), idx.len(), &dev)?, 0)?
        };
        let mut h = Hooks::new();
        if group.iter().any(|k| matches!(k, Row::Add(..))) {
            let per_row = Tensor::from_vec(deltas, (rows.len(), cfg.hidden_size), &dev)?;
            let what = Intervention::Add {
                vector: per_row,
                alpha: 1.0,
            };
            h.write(add_at, what, opts.positions.clone());
        }
        let rep_reads: Vec<&Read> = idx.iter().map(|&i| reads[i as usize]).collect();
        let out = model.forward_from(&rows, resume, &rep, &mut h)?;
        let vals = read_values(&out, &rep_reads)?;
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
    for (si, s) in steers.iter().enumerate() {
        for a in 0..alphas.len() {
            if results[si][a].is_some() {
                continue;
            }
            let r = resid_block.as_ref().expect("captured for map steerings");
            let mut h = Hooks::new();
            s.install(&mut h, alphas[a], &opts.positions, cfg.n_layers, &dev)?;
            let out = model.forward_from(seqs, block, r, &mut h)?;
            results[si][a] = Some(read_values(&out, reads)?);
        }
    }
    Ok(unwrap_all(results))
}

/// Steerings without a shared start block (ablation, ICV, mixed): one unsteered pass for
/// every alpha == 0 and one full steered pass per (steering, alpha != 0).
fn sweep_chunk_plain(
    model: &Model,
    seqs: &[Sequence],
    reads: &[&Read],
    steers: &[&Steer],
    alphas: &[f32],
    opts: &SweepOptions,
) -> Result<Vec<Vec<Vec<Value>>>> {
    let cfg = model.config();
    let dev = model.device().clone();
    let zero_vals = if alphas.contains(&0.0) {
        Some(forward_read(model, seqs, reads, &mut Hooks::new())?)
    } else {
        None
    };
    let mut results: Vec<Vec<Option<Vec<Value>>>> = vec![vec![None; alphas.len()]; steers.len()];
    for (si, s) in steers.iter().enumerate() {
        for (a, &alpha) in alphas.iter().enumerate() {
            results[si][a] = if alpha == 0.0 {
                zero_vals.clone()
            } else {
                let mut h = Hooks::new();
                s.install(&mut h, alpha, &opts.positions, cfg.n_layers, &dev)?;
                Some(forward_read(model, seqs, reads, &mut h)?)
            };
        }
    }
    Ok(unwrap_all(results))
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

fn forward_read(
    model: &Model,
    seqs: &[Sequence],
    reads: &[&Read],
    hooks: &mut Hooks,
) -> Result<Vec<Value>> {
    let out = model.forward(seqs, hooks)?;
    read_values(&out, reads)
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
