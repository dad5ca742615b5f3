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

/// FV = Σ over the top-`k` heads of `o_proj[layer][:, head·hd .. (head+1)·hd] · mean_output[head]`.
///
/// * `ranking`: output of [`rank_heads`] (best first).
/// * `mean_outputs`: per-head mean output before the output projection (length `head_dim`).
/// * `o_proj`: per layer, the output-projection weight in Hugging Face layout,
///   `d_model × (n_heads·head_dim)` (y = W·concat(heads)).
pub fn function_vector(
    ranking: &[HeadScore],
    k: usize,
    mean_outputs: &BTreeMap<HeadId, Vec<f32>>,
    o_proj: &BTreeMap<usize, Matrix>,
) -> Result<FunctionVector> {
    if k == 0 || k > ranking.len() {
        return Err(SteeringError::InvalidParameter(format!(
            "top-K must be between 1 and the number of ranked heads ({}), got {k}",
            ranking.len()
        )));
    }
    let top = &ranking[..k];
    let mut fv: Option<Vec<f64>> = None;
    for s in top {
        let h = s.head;
        let out = mean_outputs.get(&h).ok_or_else(|| {
            SteeringError::NotEnoughData(format!(
                "no mean output for layer {} head {}",
                h.layer, h.head
            ))
        })?;
        let w = o_proj.get(&h.layer).ok_or_else(|| {
            SteeringError::NotEnoughData(format!("no output projection for layer {}", h.layer))
        })?;
        let hd = out.len();
        if hd == 0 || (h.head + 1) * hd > w.cols {
            return Err(shape_err(
                format!(
                    "o_proj columns for layer {} head {} (head_dim {hd})",
                    h.layer, h.head
                ),
                format!(">= {}", (h.head + 1) * hd),
                w.cols,
            ));
        }
        let acc = fv.get_or_insert_with(|| vec![0.0; w.rows]);
        if acc.len() != w.rows {
            return Err(shape_err(
                format!("o_proj rows for layer {}", h.layer),
                acc.len(),
                w.rows,
            ));
        }
        for (i, a) in acc.iter_mut().enumerate() {
            let row = &w.row(i)[h.head * hd..(h.head + 1) * hd];
            *a += row
                .iter()
                .zip(out)
                .map(|(x, y)| *x as f64 * *y as f64)
                .sum::<f64>();
        }
    }
    let vector = fv
        .unwrap_or_default()
        .into_iter()
        .map(|x| x as f32)
        .collect();
    Ok(FunctionVector {
        vector,
        heads: top.to_vec(),
    })
}
