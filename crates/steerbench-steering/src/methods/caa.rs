//! Contrastive Activation Addition: the mean paired difference, and its
//! label-shuffled control.

use crate::error::Result;
use crate::matrix::{check_pairs, Matrix};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// CAA vector: mean over pairs of (pos − neg). Rows of `pos` and `neg` are paired.
pub fn caa(pos: &Matrix, neg: &Matrix) -> Result<Vec<f32>> {
    check_pairs(pos, neg, 1)?;
    pos.sub(neg)?.col_mean()
}

/// Control: CAA on pairs whose labels are swapped by an independent fair coin
/// per pair (ChaCha8 seeded with `seed`), so the vector carries no concept
/// beyond chance while keeping CAA's norm statistics.
pub fn shuffled_caa(pos: &Matrix, neg: &Matrix, seed: u64) -> Result<Vec<f32>> {
    check_pairs(pos, neg, 1)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut acc = vec![0f64; pos.cols];
    for (p, n) in pos.iter_rows().zip(neg.iter_rows()) {
        let sign = if rng.gen_bool(0.5) { -1.0 } else { 1.0 };
        for ((a, x), y) in acc.iter_mut().zip(p).zip(n) {
            *a += sign * (*x as f64 - *y as f64);
        }
    }
    Ok(acc
        .into_iter()
        .map(|a| (a / pos.rows as f64) as f32)
        .collect())
}
