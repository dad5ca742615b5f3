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
        SweepOptions { positions: Positions::All, batch_items: 8, max_rows: 32 }
    }
}

/// Values for every strength and item: `out[a][i]` is item `i` under `alphas[a]`.
/// `steer = None` (or `alpha = 0`) is the unsteered model.
pub fn sweep(model: &Model, items: &[Item], steer: Option<&Steer>, alphas: &[f32], opts: &SweepOptions, mut progress: impl FnMut(usize)) -> Result<Vec<Vec<Value>>> {
    let cfg = model.config();
    if let Some(s) = steer {
        if s.dim() != cfg.hidden_size {
            return Err(EvalError::Input(format!(
                "steering has hidden size {}, the model has {}",
                s.dim(),
                cfg.hidden_size
            )));
        }
    }
    let mut out: Vec<Vec<Value>> = vec![Vec::with_capacity(items.len()); alphas.len()];
    for chunk in items.chunks(opts.batch_items.max(1)) {
        let seqs: Vec<Sequence> = chunk.iter().map(|it| it.seq.clone()).collect();
        let reads: Vec<&Read> = chunk.iter().map(|it| &it.read).collect();
        let per_alpha = match steer {
            None => {
                let vals = forward_read(model, &seqs, &reads, &mut Hooks::new())?;
                vec![vals; alphas.len()]
            }
            Some(s) => sweep_chunk(model, &seqs, &reads, s, alphas, opts)?,
        };
        for (a, vals) in per_alpha.into_iter().enumerate() {
            out[a].extend(vals);
        }
        progress(chunk.len());
    }
    Ok(out)
}

fn sweep_chunk(model: &Model, seqs: &[Sequence], reads: &[&Read], steer: &Steer, alphas: &[f32], opts: &SweepOptions) -> Result<Vec<Vec<Value>>> {
    let cfg = model.config();
    let dev = model.device().clone();
    let start = steer.first_point();
    // Resume point: the input of the first steered block (its ResidPost hook runs there).
    let resume_layer = start.layer;
    let prefix = if start.site == Site::ResidPost && resume_layer > 0 {
        let mut h = Hooks::new();
        let at = HookPoint::new(resume_layer, Site::ResidPre);
        h.capture(at);
        // The unsteered forward also serves every alpha == 0 exactly.
        let out = model.forward(seqs, &mut h)?;
        let resid = h.take(at).ok_or_else(|| EvalError::Input("residual capture missing".into()))?;
        Some((resid, read_values(&out, reads)?))
    } else {
        None
    };
    let mut results: Vec<Option<Vec<Value>>> = vec![None; alphas.len()];
    if let Some((_, zero_vals)) = &prefix {
        for (a, &alpha) in alphas.iter().enumerate() {
            if alpha == 0.0 {
                results[a] = Some(zero_vals.clone());
            }
        }
    }
    let todo: Vec<usize> = (0..alphas.len()).filter(|&a| results[a].is_none()).collect();
    match (steer, &prefix) {
        (Steer::Add { layer, vector }, Some((resid, _))) => {
            // Rows = items × strengths, in groups that fit max_rows.
            let n = seqs.len();
            let per_pass = (opts.max_rows / n.max(1)).max(1);
            let v = Tensor::from_vec(vector.clone(), vector.len(), &dev)?;
            for group in todo.chunks(per_pass) {
                let mut rows = Vec::with_capacity(group.len() * n);
                let mut idx = Vec::with_capacity(group.len() * n);
                let mut alpha_rows = Vec::with_capacity(group.len() * n);
                for &a in group {
                    for (i, s) in seqs.iter().enumerate() {
                        rows.push(s.clone());
                        idx.push(i as u32);
                        alpha_rows.push(alphas[a]);
                    }
                }
                let idx_t = Tensor::from_vec(idx.clone(), idx.len(), &dev)?;
                let resid_rep = resid.index_select(&idx_t, 0)?;
                let scale = Tensor::from_vec(alpha_rows, (rows.len(), 1), &dev)?;
                let per_row = scale.broadcast_mul(&v.unsqueeze(0)?)?; // (rows, d)
                let mut h = Hooks::new();
                h.write(
                    HookPoint::new(*layer, Site::ResidPost),
                    Intervention::Add { vector: per_row, alpha: 1.0 },
                    opts.positions.clone(),
                );
                let rep_reads: Vec<&Read> = idx.iter().map(|&i| reads[i as usize]).collect();
                let out = model.forward_from(&rows, resume_layer, &resid_rep, &mut h)?;
                let vals = read_values(&out, &rep_reads)?;
                for (g, &a) in group.iter().enumerate() {
                    results[a] = Some(vals[g * n..(g + 1) * n].to_vec());
                }
            }
        }
        _ => {
            for &a in &todo {
                let mut h = Hooks::new();
                steer.install(&mut h, alphas[a], &opts.positions, cfg.n_layers, &dev)?;
                let out = match &prefix {
                    Some((resid, _)) => model.forward_from(seqs, resume_layer, resid, &mut h)?,
                    None => model.forward(seqs, &mut h)?,
                };
                results[a] = Some(read_values(&out, reads)?);
            }
        }
    }
    Ok(results.into_iter().map(|r| r.expect("every alpha computed")).collect())
}

fn forward_read(model: &Model, seqs: &[Sequence], reads: &[&Read], hooks: &mut Hooks) -> Result<Vec<Value>> {
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
            Read::NextDist => Value::NextDist(last.as_ref().expect("computed above").get(row)?.to_vec1::<f32>()?),
            Read::Completion => Value::Completion(out.completion_logprobs(row)?),
        });
    }
    Ok(vals)
}
