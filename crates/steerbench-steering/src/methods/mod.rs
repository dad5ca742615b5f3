//! Extraction methods: pure functions from activations at one layer to a
//! steering object (a vector, an affine map or a small MLP).

pub mod ablation;
pub mod affine;
pub mod caa;
pub mod function_vector;
pub mod icv;
pub mod mlp;
pub mod normalize;
pub mod pca;
pub mod probe;
pub mod random;

use crate::matrix::{dot, Matrix};

/// Orients `dir` so that positives project higher than negatives on average
/// (mean over rows of pos·dir > mean of neg·dir); flips in place.
pub(crate) fn orient_pos_higher(dir: &mut [f32], pos: &Matrix, neg: &Matrix) {
    let gap: f64 = pos
        .iter_rows()
        .zip(neg.iter_rows())
        .map(|(p, n)| (dot(p, dir) - dot(n, dir)) as f64)
        .sum();
    if gap < 0.0 {
        dir.iter_mut().for_each(|x| *x = -*x);
    }
}
