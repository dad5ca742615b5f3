//! Function Vectors (Todd et al., 2024), the model-facing half: per-head mean outputs at
//! the last token of clean ICL prompts, average indirect effects of patching each head's
//! mean into corrupted (shuffled-label) prompts, and each head's contribution to the
//! residual stream through its layer's output projection.
//!
//! The ranking and the top-K sum are pure functions in
//! `steerbench_steering::methods::function_vector`.

use std::collections::BTreeMap;
use std::sync::Arc;

use candle_core::{Tensor, D};
use steerbench_model::{HookPoint, Hooks, Intervention, MapFn, Model, Positions, Sequence, Site};
use steerbench_steering::methods::function_vector::HeadId;
use steerbench_steering::Matrix;

use crate::capture::{capture, ReadAt};
use crate::error::{EvalError, Result};

/// Mean head outputs: `out[head]` is the mean over prompts of that head's output (before the
/// output projection) at the last token, length `head_dim`.
pub type HeadMeans = BTreeMap<HeadId, Vec<f32>>;

/// Per-head outputs at the last token, averaged over `prompts`, for every head of `layers`.
pub fn mean_head_outputs(
    model: &Model,
    prompts: &[Sequence],
    layers: &[usize],
    batch: usize,
    progress: impl FnMut(usize),
) -> Result<HeadMeans> {
    if prompts.is_empty() {
        return Err(EvalError::Input(
            "function vectors need at least one ICL prompt".into(),
        ));
    }
    let cfg = model.config();
    let (nh, hd) = (cfg.n_heads, cfg.head_dim);
    let points: Vec<HookPoint> = layers
        .iter()
        .map(|&l| HookPoint::new(l, Site::HeadOut))
        .collect();
    let cap = capture(model, prompts, &points, &ReadAt::Last, batch, progress)?;
    let mut sums = vec![vec![0f64; nh * hd]; points.len()];
    for per_seq in &cap.vectors {
        for (k, v) in per_seq.iter().enumerate() {
            if v.len() != nh * hd {
                return Err(EvalError::Input(format!(
                    "head outputs at layer {} have {} values, expected {nh} × {hd}",
                    layers[k],
                    v.len()
                )));
            }
            for (s, x) in sums[k].iter_mut().zip(v) {
                *s += *x as f64;
            }
        }
    }
    let n = prompts.len() as f64;
    let mut out = HeadMeans::new();
    for (k, &layer) in layers.iter().enumerate() {
        for head in 0..nh {
            let mean = sums[k][head * hd..(head + 1) * hd]
                .iter()
                .map(|s| (s / n) as f32)
                .collect();
            out.insert(HeadId { layer, head }, mean);
        }
    }
    Ok(out)
}

/// A hook for the last position of each row: row `i` gets head `heads[i].0` replaced by
/// `heads[i].1`; the other heads keep their values, or are zeroed when `zero_rest`.
fn patch_rows(
    heads: &[Option<(usize, Vec<f32>)>],
    nh: usize,
    hd: usize,
    zero_rest: bool,
) -> Result<MapFn> {
    let rows = heads.len();
    let mut keep = vec![if zero_rest { 0f32 } else { 1f32 }; rows * nh * hd];
    let mut put = vec![0f32; rows * nh * hd];
    for (r, h) in heads.iter().enumerate() {
        if let Some((head, value)) = h {
            if value.len() != hd || *head >= nh {
                return Err(EvalError::Input(format!(
                    "head patch: head {head} with {} values (model: {nh} heads × {hd})",
                    value.len()
                )));
            }
            let at = r * nh * hd + head * hd;
            keep[at..at + hd].iter_mut().for_each(|x| *x = 0.0);
            put[at..at + hd].copy_from_slice(value);
        }
    }
    let keep = Tensor::from_vec(keep, (rows, nh * hd), &candle_core::Device::Cpu)?;
    let put = Tensor::from_vec(put, (rows, nh * hd), &candle_core::Device::Cpu)?;
    Ok(Arc::new(move |xs: &Tensor| {
        // `xs` holds the selected (last) position of each row, in row order.
        let (n, d) = xs.dims2()?;
        if n != keep.dims()[0] || d != keep.dims()[1] {
            return Err(candle_core::Error::Msg(format!(
                "head patch expects ({}, {}) at the last positions, found ({n}, {d})",
                keep.dims()[0],
                keep.dims()[1]
            )));
        }
        let keep = keep.to_device(xs.device())?;
        let put = put.to_device(xs.device())?;
        (xs * keep)? + put
    }))
}

/// Probability of `target` at the last position of each row.
fn target_probs(out: &steerbench_model::ForwardOutput, target: u32) -> Result<Vec<f32>> {
    let probs = candle_nn::ops::softmax_last_dim(&out.last_logits()?)?;
    let idx = Tensor::new(&[target], probs.device())?;
    Ok(probs
        .index_select(&idx, D::Minus1)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// Indirect effect of each head: for every corrupted prompt (shuffled demonstration labels)
/// and its correct first answer token, `p(target | head := mean) − p(target)`. Rows follow
/// `corrupted`, columns follow the returned head list (layer-major).
///
/// The residual entering layer L is computed once per prompt; the heads of L are then
/// patched one per batch row in a single pass that starts at L.
pub fn indirect_effects(
    model: &Model,
    corrupted: &[(Sequence, u32)],
    means: &HeadMeans,
    layers: &[usize],
    mut progress: impl FnMut(usize),
) -> Result<(Vec<HeadId>, Matrix)> {
    let cfg = model.config();
    let (nh, hd) = (cfg.n_heads, cfg.head_dim);
    let heads: Vec<HeadId> = layers
        .iter()
        .flat_map(|&layer| (0..nh).map(move |head| HeadId { layer, head }))
        .collect();
    let mut rows = Vec::with_capacity(corrupted.len());
    for (seq, target) in corrupted {
        let mut hooks = Hooks::new();
        for &l in layers {
            hooks.capture(HookPoint::new(l, Site::ResidPre));
        }
        let base_out = model.forward(std::slice::from_ref(seq), &mut hooks)?;
        let base = target_probs(&base_out, *target)?[0];
        let mut row = Vec::with_capacity(heads.len());
        for &l in layers {
            let resid = hooks
                .take(HookPoint::new(l, Site::ResidPre))
                .ok_or_else(|| EvalError::Input(format!("no residual captured at layer {l}")))?;
            let batch: Vec<Sequence> = vec![seq.clone(); nh];
            let resid = resid.repeat((nh, 1, 1))?;
            let patches: Vec<Option<(usize, Vec<f32>)>> = (0..nh)
                .map(|head| {
                    means
                        .get(&HeadId { layer: l, head })
                        .map(|m| (head, m.clone()))
                        .ok_or_else(|| {
                            EvalError::Input(format!("no mean output for layer {l} head {head}"))
                        })
                        .map(Some)
                })
                .collect::<Result<_>>()?;
            let mut ph = Hooks::new();
            ph.write(
                HookPoint::new(l, Site::HeadOut),
                Intervention::Map(patch_rows(&patches, nh, hd, false)?),
                Positions::Last,
            );
            let out = model.forward_from(&batch, l, &resid, &mut ph)?;
            row.extend(target_probs(&out, *target)?.into_iter().map(|p| p - base));
        }
        rows.push(row);
        progress(1);
    }
    Ok((heads, Matrix::from_rows(&rows)?))
}

/// Each head's mean output passed through its layer's output projection: the vector that
/// head adds to the residual stream. Measured with hooks, so it holds for every
/// architecture: all heads of the layer are set (row i: only head i carries its mean, the
/// rest zero) and the attention output is read; a last all-zero row removes the
/// projection's bias.
pub fn head_contributions(
    model: &Model,
    heads: &[HeadId],
    means: &HeadMeans,
    probe_token: u32,
) -> Result<BTreeMap<HeadId, Vec<f32>>> {
    let cfg = model.config();
    let (nh, hd) = (cfg.n_heads, cfg.head_dim);
    let rows = heads.len() + 1;
    let batch = vec![Sequence::prompt(vec![probe_token]); rows];
    let mut layers: Vec<usize> = heads.iter().map(|h| h.layer).collect();
    layers.sort_unstable();
    layers.dedup();
    let mut hooks = Hooks::new();
    for &l in &layers {
        // Every head of every row is overwritten: zero everywhere, then row i's own head.
        let mut only = Vec::with_capacity(rows);
        for r in 0..rows {
            only.push(match heads.get(r) {
                Some(h) if h.layer == l => {
                    let m = means.get(h).ok_or_else(|| {
                        EvalError::Input(format!(
                            "no mean output for layer {} head {}",
                            h.layer, h.head
                        ))
                    })?;
                    Some((h.head, m.clone()))
                }
                _ => None,
            });
        }
        hooks.write(
            HookPoint::new(l, Site::HeadOut),
            Intervention::Map(patch_rows(&only, nh, hd, true)?),
            Positions::Last,
        );
        hooks.capture(HookPoint::new(l, Site::AttnOut));
    }
    model.forward(&batch, &mut hooks)?;
    let mut out = BTreeMap::new();
    for &l in &layers {
        let a = hooks
            .take(HookPoint::new(l, Site::AttnOut))
            .ok_or_else(|| {
                EvalError::Input(format!("no attention output captured at layer {l}"))
            })?;
        let a = a.squeeze(1)?; // (rows, d): one token per row
        let bias = a.get(rows - 1)?;
        for (r, h) in heads.iter().enumerate().filter(|(_, h)| h.layer == l) {
            out.insert(*h, (a.get(r)? - &bias)?.to_vec1::<f32>()?);
        }
    }
    Ok(out)
}
