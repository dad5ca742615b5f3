//! Reading residual-stream activations at declared layers and positions.

use steerbench_model::{HookPoint, Hooks, Model, Sequence};

use crate::error::{EvalError, Result};

/// Which token(s) of a sequence an activation is read at (unpadded positions).
#[derive(Debug, Clone, PartialEq)]
pub enum ReadAt {
    /// The last token (the answer letter of an A/B item).
    Last,
    /// The last prompt token `tokens[prompt_len - 1]`.
    LastPrompt,
    /// The first completion token `tokens[prompt_len]`.
    FirstCompletion,
    /// Mean over the completion tokens `tokens[prompt_len..]`.
    CompletionMean,
    /// Mean over explicit positions (negative counts from the end).
    Indices(Vec<i64>),
}

/// Activations of each sequence at each requested hook point: `out[seq][k]` is the
/// vector at `points[k]` (per-head outputs are flattened to `n_heads * head_dim`). Also returns, per layer, the token norms
/// of every non-first position (for robust residual-norm statistics: the first token
/// carries massive activations).
pub struct Captured {
    pub vectors: Vec<Vec<Vec<f32>>>,
    pub token_norms: Vec<Vec<f32>>,
}

pub fn capture(
    model: &Model,
    seqs: &[Sequence],
    points: &[HookPoint],
    at: &ReadAt,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Captured> {
    let n_layers = model.config().n_layers;
    if let Some(bad) = points.iter().find(|p| p.layer >= n_layers) {
        return Err(EvalError::Input(format!(
            "layer {} does not exist: the model has {n_layers} layers (0..{})",
            bad.layer,
            n_layers - 1
        )));
    }
    let mut vectors = Vec::with_capacity(seqs.len());
    let mut token_norms = vec![Vec::new(); points.len()];
    for chunk in seqs.chunks(batch.max(1)) {
        let mut hooks = Hooks::new();
        for &p in points {
            hooks.capture(p);
        }
        let out = model.forward(chunk, &mut hooks)?;
        let mut per_layer = Vec::with_capacity(points.len());
        for &p in points {
            let t = hooks
                .take(p)
                .ok_or_else(|| EvalError::Input(format!("no capture at {p:?}")))?;
            let (b, t_len) = (t.dims()[0], t.dims()[1]);
            per_layer.push(
                t.reshape((b, t_len, ()))?
                    .to_dtype(candle_core::DType::F32)?
                    .to_vec3::<f32>()?,
            );
        }
        for (r, s) in chunk.iter().enumerate() {
            let pad = out.pad_left(r);
            let len = s.tokens.len();
            let positions = positions_for(at, s, len)?;
            let mut row = Vec::with_capacity(points.len());
            for (k, acts) in per_layer.iter().enumerate() {
                let d = acts[r][0].len();
                let mut mean = vec![0f32; d];
                for &p in &positions {
                    for (m, x) in mean.iter_mut().zip(&acts[r][pad + p]) {
                        *m += *x;
                    }
                }
                let inv = 1.0 / positions.len() as f32;
                mean.iter_mut().for_each(|m| *m *= inv);
                if let Some(i) = mean.iter().position(|x| !x.is_finite()) {
                    return Err(EvalError::Input(format!(
                        "non-finite activation at {:?}, component {i}",
                        points[k]
                    )));
                }
                row.push(mean);
                for p in 1..len {
                    let v = &acts[r][pad + p];
                    token_norms[k].push(v.iter().map(|x| x * x).sum::<f32>().sqrt());
                }
            }
            vectors.push(row);
        }
        progress(chunk.len());
    }
    Ok(Captured {
        vectors,
        token_norms,
    })
}

fn positions_for(at: &ReadAt, s: &Sequence, len: usize) -> Result<Vec<usize>> {
    let ps: Vec<usize> = match at {
        ReadAt::Last => vec![len - 1],
        ReadAt::LastPrompt => s.prompt_len.checked_sub(1).into_iter().collect(),
        ReadAt::FirstCompletion => (s.prompt_len..len).take(1).collect(),
        ReadAt::CompletionMean => (s.prompt_len..len).collect(),
        ReadAt::Indices(ix) => ix
            .iter()
            .map(|&i| if i < 0 { len as i64 + i } else { i })
            .filter(|&i| i >= 0 && (i as usize) < len)
            .map(|i| i as usize)
            .collect(),
    };
    if ps.is_empty() {
        return Err(EvalError::Input(format!(
            "no token positions to read for {at:?} in a sequence of {len} tokens"
        )));
    }
    Ok(ps)
}
