//! Function Vectors (Todd et al., 2024), the pure parts: rank attention heads
//! by average indirect effect and sum the top heads' mean outputs, each passed
//! through its layer's output projection.
//!
//! The model side (collecting per-head mean outputs at the last token over ICL
//! prompts, patching them into shuffled-label prompts to measure the gain in
//! the correct token's probability) produces the inputs of these functions.

use crate::error::{shape_err, Result, SteeringError};
use crate::matrix::Matrix;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One attention head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HeadId {
    pub layer: usize,
    pub head: usize,
}

/// A head and its average indirect effect over prompts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadScore {
    pub head: HeadId,
    pub mean_indirect_effect: f32,
}

/// A function vector and the heads it was built from (best first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionVector {
    pub vector: Vec<f32>,
    pub heads: Vec<HeadScore>,
}

/// Ranks heads by mean indirect effect. `effects` is `n_prompts × heads.len()`
/// (column j measures `heads[j]`). Sorted descending; ties broken by
/// (layer, head) ascending so the ranking is deterministic.
pub fn rank_heads(effects: &Matrix, heads: &[HeadId]) -> Result<Vec<HeadScore>> {
    if effects.cols != heads.len() {
        return Err(shape_err(
            "indirect-effect columns vs heads",
            heads.len(),
            effects.cols,
        ));
    }
    effects.check_finite("indirect effects")?;
    let mean = effects.col_mean()?;
    let mut scores: Vec<HeadScore> = heads
        .iter()
        .zip(mean)
        .map(|(h, m)| HeadScore {
            head: *h,
            mean_indirect_effect: m,
        })
        .collect();
    scores.sort_by(|a, b| {
        b.mean_indirect_effect
            .total_cmp(&a.mean_indirect_effect)
            .then(a.head.cmp(&b.head))
    });
    Ok(scores)
}

/// One head's contribution to the residual stream: `o_proj[:, head·hd .. (head+1)·hd] · output`,
/// with `o_proj` in Hugging Face layout, `d_model × (n_heads·head_dim)` (y = W·concat(heads)).
pub fn project_head(o_proj: &Matrix, head: usize, output: &[f32]) -> Result<Vec<f32>> {
    let hd = output.len();
    if hd == 0 || (head + 1) * hd > o_proj.cols {
        return Err(shape_err(
            format!("o_proj columns for head {head} (head_dim {hd})"),
            format!(">= {}", (head + 1) * hd),
            o_proj.cols,
        ));
    }
    Ok((0..o_proj.rows)
        .map(|i| {
            let row = &o_proj.row(i)[head * hd..(head + 1) * hd];
            row.iter()
                .zip(output)
                .map(|(x, y)| *x as f64 * *y as f64)
                .sum::<f64>() as f32
        })
        .collect())
}

/// FV = Σ over the top-`k` heads of their contributions to the residual stream (each head's
/// mean output passed through its layer's output projection, see [`project_head`]).
///
/// * `ranking`: output of [`rank_heads`] (best first).
/// * `contributions`: per head, a `d_model` vector.
pub fn function_vector(
    ranking: &[HeadScore],
    k: usize,
    contributions: &BTreeMap<HeadId, Vec<f32>>,
) -> Result<FunctionVector> {
    if k == 0 || k > ranking.len() {
        return Err(SteeringError::InvalidParameter(format!(
            "top-K must be between 1 and the number of ranked heads ({}), got {k}",
            ranking.len()
        )));
    }
    let top = &ranking[..k];
    let mut acc: Option<Vec<f64>> = None;
    for s in top {
        let h = s.head;
        let c = contributions.get(&h).ok_or_else(|| {
            SteeringError::NotEnoughData(format!(
                "no contribution for layer {} head {}",
                h.layer, h.head
            ))
        })?;
        let a = acc.get_or_insert_with(|| vec![0.0; c.len()]);
        if a.len() != c.len() {
            return Err(shape_err(
                format!("contribution of layer {} head {}", h.layer, h.head),
                a.len(),
                c.len(),
            ));
        }
        for (a, x) in a.iter_mut().zip(c) {
            *a += *x as f64;
        }
    }
    let vector: Vec<f32> = acc
        .unwrap_or_default()
        .into_iter()
        .map(|x| x as f32)
        .collect();
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(SteeringError::NotEnoughData(
            "function vector is not finite (NaN in head outputs)".into(),
        ));
    }
    Ok(FunctionVector {
        vector,
        heads: top.to_vec(),
    })
}
