//! Contrastive Activation Addition: the mean paired difference, and its
//! label-permutation null control.

use crate::error::{Result, SteeringError};
use crate::matrix::{check_pairs, dot, norm, Matrix};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// CAA vector: mean over pairs of (pos − neg). Rows of `pos` and `neg` are paired.
pub fn caa(pos: &Matrix, neg: &Matrix) -> Result<Vec<f32>> {
    check_pairs(pos, neg, 1)?;
    pos.sub(neg)?.col_mean()
}

/// Control: a null for CAA that carries no concept, with CAA's norm.
///
/// 1. The `2n` activations of both sides are pooled and split into two random halves
///    (a label permutation, ChaCha8 seeded with `seed`); the vector is the difference
///    of the halves' means. Its expectation over permutations is zero, and it points
///    along directions the activations really vary in (not an isotropic draw like
///    `random`).
/// 2. The CAA direction is projected out. A finite permutation leaves part of the
///    concept in the difference (the halves hold unequal numbers of positives:
///    hypergeometric imbalance of order √n), and a coin-flip sign per pair leaves all of
///    it with a random sign; either way a strong concept direction would leak into the
///    control. After the projection the control is orthogonal to CAA for every seed,
///    not only on average.
/// 3. It is rescaled to CAA's norm, so at the same multiplier the control perturbs the
///    residual stream as strongly as CAA: a method's margin over it measures direction,
///    not magnitude.
///
/// Errors when fewer than two pairs are given or when the permuted difference lies
/// entirely along CAA (nothing is left to scale).
pub fn shuffled_caa(pos: &Matrix, neg: &Matrix, seed: u64) -> Result<Vec<f32>> {
    check_pairs(pos, neg, 2)?;
    let c = caa(pos, neg)?;
    let rows: Vec<&[f32]> = pos.iter_rows().chain(neg.iter_rows()).collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let half = pos.rows;
    let mut diff = vec![0f64; pos.cols];
    for (k, &i) in order.iter().enumerate() {
        let sign = if k < half { 1.0 } else { -1.0 };
        for (d, x) in diff.iter_mut().zip(rows[i]) {
            *d += sign * *x as f64;
        }
    }
    let mut v: Vec<f32> = diff.iter().map(|d| (d / half as f64) as f32).collect();
    let target = norm(&c);
    if target > 0.0 {
        let proj = dot(&v, &c) / (target * target);
        v.iter_mut().zip(&c).for_each(|(x, ci)| *x -= proj * ci);
    }
    let n = norm(&v);
    if !(n > 0.0 && n.is_finite()) {
        return Err(SteeringError::Numerical(
            "shuffled control: the permuted mean difference has no component orthogonal to CAA"
                .into(),
        ));
    }
    Ok(v.iter().map(|x| x * target / n).collect())
}
