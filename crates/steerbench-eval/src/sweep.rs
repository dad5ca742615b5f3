//! Steered sweeps: many items × many strengths with as few forward passes as possible.
//!
//! For steering that starts at block L, the residual entering block L is computed once
//! per item (the unsteered model below L cannot depend on the strength) and every
//! strength resumes from it with `forward_from`. Additive steering also batches the
//! strengths as rows (one per-row vector `alpha * v`), so a 7-multiplier sweep costs one
//! prefix pass plus one batched suffix pass per chunk of items.

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
            let mut out: Vec<Vec<Value>> = vec![Vec::with_capacity(items.len()); alphas.len()];
            let mut progress = progress;
            for chunk in items.chunks(opts.batch_items.max(1)) {
                let seqs: Vec<Sequence> = chunk.iter().map(|it| it.seq.clone()).collect();
                let reads: Vec<&Read> = chunk.iter().map(|it| &it.read).collect();
                let vals = forward_read(model, &seqs, &reads, &mut Hooks::new())?;
                for o in out.iter_mut() {
                    o.extend(vals.iter().cloned());
                }
                progress(chunk.len());
            }
            Ok(out)
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
    let mut out: Vec<Vec<Vec<Value>>> =
        vec![vec![Vec::with_capacity(items.len()); alphas.len()]; steers.len()];
    for chunk in items.chunks(opts.batch_items.max(1)) {
        let seqs: Vec<Sequence> = chunk.iter().map(|it| it.seq.clone()).collect();
        let reads: Vec<&Read> = chunk.iter().map(|it| &it.read).collect();
        let per_steer = sweep_chunk(model, &seqs, &reads, steers, alphas, opts)?;
        for (s, per_alpha) in per_steer.into_iter().enumerate() {
            for (a, vals) in per_alpha.into_iter().enumerate() {
                out[s][a].extend(vals);
            }
        }
        progress(chunk.len() * steers.len());
    }
    Ok(out)
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
    let cfg = model.config();
    let dev = model.device().clone();
    let n = seqs.len();
    let mut results: Vec<Vec<Option<Vec<Value>>>> = vec![vec![None; alphas.len()]; steers.len()];
    // One unsteered pass serves every alpha == 0 and, when all steerings write at the
    // output of the same block L > 0, gives the residual entering L to resume from.
    let start = steers.first().map(|s| s.first_point());
    let shared = start.filter(|p| {
        p.site == Site::ResidPost && p.layer > 0 && steers.iter().all(|s| s.first_point() == *p)
    });
    let mut h = Hooks::new();
    if let Some(p) = shared {
        h.capture(HookPoint::new(p.layer, Site::ResidPre));
    }
    let base_out = model.forward(seqs, &mut h)?;
    let zero_vals = read_values(&base_out, reads)?;
    let resid = match shared {
        Some(p) => Some(
            h.take(HookPoint::new(p.layer, Site::ResidPre))
                .ok_or_else(|| EvalError::Input("residual capture missing".into()))?,
        ),
        None => None,
    };
    for row in results.iter_mut() {
        for (a, &alpha) in alphas.iter().enumerate() {
            if alpha == 0.0 {
                row[a] = Some(zero_vals.clone());
            }
        }
    }
    // Additive steerings resuming from the shared residual: (steer, alpha) combos as rows.
    let mut combos = Vec::new();
    for (si, s) in steers.iter().enumerate() {
        if let (Steer::Add { .. }, Some(_)) = (s, &resid) {
            for (a, &alpha) in alphas.iter().enumerate() {
                if alpha != 0.0 {
                    combos.push((si, a));
                }
            }
        }
    }
    if let (Some(resid), Some(p)) = (&resid, shared) {
        let per_pass = (opts.max_rows / n.max(1)).max(1);
        for group in combos.chunks(per_pass) {
            let mut rows = Vec::with_capacity(group.len() * n);
            let mut idx = Vec::with_capacity(group.len() * n);
            let mut deltas: Vec<f32> = Vec::with_capacity(group.len() * n * cfg.hidden_size);
            for &(si, a) in group {
                let Steer::Add { vector, .. } = steers[si] else {
                    unreachable!("only additive combos")
                };
                for (i, s) in seqs.iter().enumerate() {
                    rows.push(s.clone());
                    idx.push(i as u32);
                    deltas.extend(vector.iter().map(|x| x * alphas[a]));
                }
            }
            let idx_t = Tensor::from_vec(idx.clone(), idx.len(), &dev)?;
            let resid_rep = resid.index_select(&idx_t, 0)?;
            let per_row = Tensor::from_vec(deltas, (rows.len(), cfg.hidden_size), &dev)?;
            let mut h = Hooks::new();
            h.write(
                HookPoint::new(p.layer, Site::ResidPost),
                Intervention::Add {
                    vector: per_row,
                    alpha: 1.0,
                },
                opts.positions.clone(),
            );
            let rep_reads: Vec<&Read> = idx.iter().map(|&i| reads[i as usize]).collect();
            let out = model.forward_from(&rows, p.layer, &resid_rep, &mut h)?;
            let vals = read_values(&out, &rep_reads)?;
            for (g, &(si, a)) in group.iter().enumerate() {
                results[si][a] = Some(vals[g * n..(g + 1) * n].to_vec());
            }
        }
    }
    // Everything else: one steered pass per (steering, alpha).
    for (si, s) in steers.iter().enumerate() {
        for a in 0..alphas.len() {
            if results[si][a].is_some() {
                continue;
            }
            let mut h = Hooks::new();
            s.install(&mut h, alphas[a], &opts.positions, cfg.n_layers, &dev)?;
            let out = match (&resid, shared) {
                (Some(r), Some(p)) => model.forward_from(seqs, p.layer, r, &mut h)?,
                _ => model.forward(seqs, &mut h)?,
            };
            results[si][a] = Some(read_values(&out, reads)?);
        }
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| v.expect("every alpha computed"))
                .collect()
        })
        .collect())
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
