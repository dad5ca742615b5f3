//! Metrics (pure functions over log-probs, tokens and scores) and statistics.

pub mod behaviour;
pub mod lm;
pub mod stats;
pub mod steerability;

use crate::error::{Result, SteeringError};

/// log Σ exp(xs), stable; errors on empty input or NaN.
pub fn log_sum_exp(xs: &[f32]) -> Result<f64> {
    if xs.is_empty() {
        return Err(SteeringError::NotEnoughData(
            "log-sum-exp of an empty vector".into(),
        ));
    }
    if xs.iter().any(|x| x.is_nan()) {
        return Err(SteeringError::Numerical("log-probs contain NaN".into()));
    }
    let m = xs.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b)) as f64;
    if m == f64::NEG_INFINITY {
        return Ok(m);
    }
    Ok(m + xs.iter().map(|x| (*x as f64 - m).exp()).sum::<f64>().ln())
}
