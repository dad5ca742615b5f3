//! In-Context Vectors (Liu et al., 2023): the first principal direction of
//! demonstration-pair latent differences, one per layer, applied with norm
//! preservation.

use crate::error::{shape_err, Result, SteeringError};
use crate::linalg::top_axis;
use crate::matrix::{dot, norm, Matrix};

/// ICV direction at one layer from an `n × d` matrix of latent differences
/// (target demonstration − source demonstration, last token). Unit norm,
/// oriented so the differences project positively on average (the
/// uncentred first PC, as the mean shift is the signal).
pub fn icv_direction(diffs: &Matrix) -> Result<Vec<f32>> {
    diffs.check_finite("ICV differences")?;
    let (mut v, _) = top_axis(diffs)?;
    let mean_proj: f64 = diffs.iter_rows().map(|r| dot(r, &v) as f64).sum();
    if mean_proj < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    Ok(v)
}

/// ICV vectors for all layers: `per_layer[l]` is layer l's `n × d` differences. Each is
/// the layer's direction scaled by the mean projection of the differences on it, so a
/// strength of 1 moves a latent by one typical demonstration difference (as Liu et al.'s
/// ICV carries the differences' scale, not a unit norm).
pub fn icv(per_layer: &[Matrix]) -> Result<Vec<Vec<f32>>> {
    if per_layer.is_empty() {
        return Err(SteeringError::NotEnoughData(
            "ICV needs at least one layer".into(),
        ));
    }
    per_layer
        .iter()
        .map(|diffs| {
            let v = icv_direction(diffs)?;
            let scale = diffs.iter_rows().map(|r| dot(r, &v) as f64).sum::<f64>()
                / diffs.rows.max(1) as f64;
            Ok(v.into_iter().map(|x| x * scale as f32).collect())
        })
        .collect()
}

/// ICV application rule: h' = h + λ·v, then rescaled to ‖h‖ (the norm is
/// preserved so the residual stream stays in distribution). A zero `h` stays zero.
pub fn icv_apply(h: &[f32], v: &[f32], lambda: f32) -> Result<Vec<f32>> {
    if h.len() != v.len() {
        return Err(shape_err("ICV vector length", h.len(), v.len()));
    }
    let shifted: Vec<f32> = h.iter().zip(v).map(|(a, b)| a + lambda * b).collect();
    let (n0, n1) = (norm(h), norm(&shifted));
    if n1 == 0.0 {
        return Ok(shifted);
    }
    let scale = n0 / n1;
    Ok(shifted.into_iter().map(|x| x * scale).collect())
}
