//! Vector normalisation, so multipliers mean the same across layers/methods,
//! and a robust residual-norm statistic to scale by.

use crate::error::{Result, SteeringError};
use crate::matrix::{norm, Matrix};
use serde::{Deserialize, Serialize};

/// How a steering vector is scaled before use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Normalize {
    /// Keep the vector as extracted.
    Raw,
    /// Unit norm.
    Unit,
    /// Norm equal to the layer's typical residual norm (see [`resid_norm_stat`]).
    ResidNorm(f32),
}

/// Applies `mode` to `v`; returns the scaled vector and `v`'s original norm.
pub fn normalize(v: &[f32], mode: Normalize) -> Result<(Vec<f32>, f32)> {
    let n = norm(v);
    let target = match mode {
        Normalize::Raw => return Ok((v.to_vec(), n)),
        Normalize::Unit => 1.0,
        Normalize::ResidNorm(r) => {
            if !(r > 0.0 && r.is_finite()) {
                return Err(SteeringError::InvalidParameter(format!(
                    "residual norm must be > 0, got {r}"
                )));
            }
            r
        }
    };
    if !(n > 0.0 && n.is_finite()) {
        return Err(SteeringError::Numerical(
            "cannot rescale a zero or non-finite vector".into(),
        ));
    }
    Ok((v.iter().map(|x| x / n * target).collect(), n))
}

/// Median of the rows' Euclidean norms (token residuals at one layer).
///
/// The median, not the mean: the first token (BOS / attention sink) carries
/// massive activations (≈ 22,000 vs ≈ 150 for SmolLM2), which would dominate a mean.
pub fn resid_norm_stat(tokens: &Matrix) -> Result<f32> {
    let norms: Vec<f32> = tokens.iter_rows().map(norm).collect();
    median(&norms)
}

/// Median (mean of the two middle values for even lengths); errors on empty or NaN input.
pub fn median(xs: &[f32]) -> Result<f32> {
    if xs.is_empty() {
        return Err(SteeringError::NotEnoughData(
            "median of an empty list".into(),
        ));
    }
    if xs.iter().any(|x| x.is_nan()) {
        return Err(SteeringError::Numerical(
            "median of values containing NaN".into(),
        ));
    }
    let mut v = xs.to_vec();
    v.sort_by(f32::total_cmp);
    let m = v.len() / 2;
    Ok(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}
