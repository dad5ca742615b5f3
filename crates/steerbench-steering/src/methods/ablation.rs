//! Directional ablation: remove a direction's component from activations.

use crate::error::{shape_err, Result};
use crate::matrix::{dot, unit, Matrix};

/// The ablation direction for a concept: the unit CAA vector.
pub fn ablation_direction(pos: &Matrix, neg: &Matrix) -> Result<Vec<f32>> {
    unit(&super::caa::caa(pos, neg)?)
}

/// h − (h·û)û, with û = u/‖u‖ (u need not be unit).
pub fn ablate(h: &[f32], u: &[f32]) -> Result<Vec<f32>> {
    if h.len() != u.len() {
        return Err(shape_err("ablation direction length", h.len(), u.len()));
    }
    let uh = unit(u)?;
    let c = dot(h, &uh);
    Ok(h.iter().zip(&uh).map(|(x, d)| x - c * d).collect())
}

/// [`ablate`] applied to every row.
pub fn ablate_rows(m: &Matrix, u: &[f32]) -> Result<Matrix> {
    let mut data = Vec::with_capacity(m.data.len());
    for r in m.iter_rows() {
        data.extend(ablate(r, u)?);
    }
    Matrix::new(m.rows, m.cols, data)
}
