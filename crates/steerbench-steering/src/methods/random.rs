//! The random-direction control: a seeded Gaussian direction of a given norm.

use crate::error::{Result, SteeringError};
use crate::matrix::norm;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A direction drawn from N(0, I_d) with ChaCha8 seeded by `seed`, scaled to
/// exactly `target_norm`. Same (d, seed) → same vector on every platform.
pub fn random_direction(d: usize, target_norm: f32, seed: u64) -> Result<Vec<f32>> {
    if d == 0 {
        return Err(SteeringError::InvalidParameter(
            "random direction needs d > 0".into(),
        ));
    }
    if !(target_norm >= 0.0 && target_norm.is_finite()) {
        return Err(SteeringError::InvalidParameter(format!(
            "target norm must be finite and >= 0, got {target_norm}"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..d).map(|_| standard_normal(&mut rng) as f32).collect();
    let n = norm(&v);
    Ok(v.into_iter().map(|x| x / n * target_norm).collect())
}

/// Box–Muller standard normal (kept here so no extra distribution crate is needed).
pub(crate) fn standard_normal<R: Rng>(rng: &mut R) -> f64 {
    loop {
        let u1: f64 = rng.gen();
        let u2: f64 = rng.gen();
        if u1 > f64::MIN_POSITIVE {
            return (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        }
    }
}
