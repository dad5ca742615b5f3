//! Per-input steerability (Tan et al.): the OLS slope of propensity against
//! the multiplier, and its per-dataset summary.

use super::stats::mean_std;
use crate::error::{shape_err, Result, SteeringError};
use serde::{Deserialize, Serialize};

/// Ordinary least-squares line y ≈ slope·x + intercept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LineFit {
    pub slope: f32,
    pub intercept: f32,
    /// Share of y's variance explained by the line; `None` when y is constant
    /// (nothing to explain).
    pub r2: Option<f32>,
}

/// Fits y on x by OLS. Needs ≥ 2 points and ≥ 2 distinct x.
pub fn fit_line(x: &[f32], y: &[f32]) -> Result<LineFit> {
    if x.len() != y.len() {
        return Err(shape_err("multipliers vs propensities", x.len(), y.len()));
    }
    if x.len() < 2 {
        return Err(SteeringError::NotEnoughData(
            "a line needs at least 2 points".into(),
        ));
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(SteeringError::Numerical(
            "non-finite value in line fit".into(),
        ));
    }
    let n = x.len() as f64;
    let mx = x.iter().map(|v| *v as f64).sum::<f64>() / n;
    let my = y.iter().map(|v| *v as f64).sum::<f64>() / n;
    let sxx: f64 = x.iter().map(|v| (*v as f64 - mx).powi(2)).sum();
    let sxy: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| (*a as f64 - mx) * (*b as f64 - my))
        .sum();
    let syy: f64 = y.iter().map(|v| (*v as f64 - my).powi(2)).sum();
    if sxx == 0.0 {
        return Err(SteeringError::NotEnoughData(
            "all multipliers are equal; slope undefined".into(),
        ));
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let r2 = if syy > 0.0 {
        let ss_res: f64 = x
            .iter()
            .zip(y)
            .map(|(a, b)| (*b as f64 - slope * *a as f64 - intercept).powi(2))
            .sum();
        Some((1.0 - ss_res / syy) as f32)
    } else {
        None
    };
    Ok(LineFit {
        slope: slope as f32,
        intercept: intercept as f32,
        r2,
    })
}

/// Per-dataset steerability summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteerabilitySummary {
    /// One fit per input, in input order.
    pub per_input: Vec<LineFit>,
    pub mean_slope: f32,
    /// Sample standard deviation of the slopes (0 for a single input).
    pub std_slope: f32,
    /// Share of inputs whose slope is negative (steering pushes them the wrong way).
    pub anti_steerable_fraction: f32,
    /// Mean R² over inputs where it is defined (`None` if it is defined for none).
    pub mean_r2: Option<f32>,
}

/// Steerability over a dataset: `multipliers` is the shared sweep and
/// `propensities[i][j]` input i's propensity at `multipliers[j]`.
pub fn steerability(multipliers: &[f32], propensities: &[Vec<f32>]) -> Result<SteerabilitySummary> {
    if propensities.is_empty() {
        return Err(SteeringError::NotEnoughData(
            "steerability of zero inputs".into(),
        ));
    }
    let per_input = propensities
        .iter()
        .map(|p| fit_line(multipliers, p))
        .collect::<Result<Vec<_>>>()?;
    let slopes: Vec<f32> = per_input.iter().map(|f| f.slope).collect();
    let (mean_slope, std_slope) = mean_std(&slopes)?;
    let anti = slopes.iter().filter(|s| **s < 0.0).count() as f32 / slopes.len() as f32;
    let r2s: Vec<f32> = per_input.iter().filter_map(|f| f.r2).collect();
    let mean_r2 = (!r2s.is_empty()).then(|| r2s.iter().sum::<f32>() / r2s.len() as f32);
    Ok(SteerabilitySummary {
        per_input,
        mean_slope,
        std_slope,
        anti_steerable_fraction: anti,
        mean_r2,
    })
}
