//! Statistics for aggregates: mean/std, percentile bootstrap CIs, standardised
//! effect size, and best-configuration selection.

use crate::error::{Result, SteeringError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Mean and sample standard deviation (n − 1 denominator; 0 when n = 1).
pub fn mean_std(xs: &[f32]) -> Result<(f32, f32)> {
    if xs.is_empty() {
        return Err(SteeringError::NotEnoughData("mean of zero values".into()));
    }
    if xs.iter().any(|x| !x.is_finite()) {
        return Err(SteeringError::Numerical(
            "non-finite value in mean/std".into(),
        ));
    }
    let n = xs.len() as f64;
    let m = xs.iter().map(|x| *x as f64).sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (*x as f64 - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Ok((m as f32, var.sqrt() as f32))
}

/// Bootstrap settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapConfig {
    pub resamples: usize,
    /// Confidence level, e.g. 0.95.
    pub level: f64,
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            resamples: 2000,
            level: 0.95,
            seed: 0,
        }
    }
}

/// A point estimate with a confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ci {
    pub estimate: f32,
    pub lo: f32,
    pub hi: f32,
}

/// Percentile bootstrap CI of the mean over inputs.
pub fn bootstrap_mean_ci(xs: &[f32], cfg: &BootstrapConfig) -> Result<Ci> {
    bootstrap_ci(xs, cfg, |s| {
        s.iter().map(|x| *x as f64).sum::<f64>() as f32 / s.len() as f32
    })
}

/// Percentile bootstrap CI of any statistic over inputs (resampled with
/// replacement, ChaCha8 seeded). Quantiles use linear interpolation between
/// order statistics.
pub fn bootstrap_ci(xs: &[f32], cfg: &BootstrapConfig, stat: impl Fn(&[f32]) -> f32) -> Result<Ci> {
    if xs.is_empty() {
        return Err(SteeringError::NotEnoughData(
            "bootstrap of zero values".into(),
        ));
    }
    if cfg.resamples == 0 || !(cfg.level > 0.0 && cfg.level < 1.0) {
        return Err(SteeringError::InvalidParameter(format!(
            "bootstrap needs resamples > 0 and 0 < level < 1, got {} and {}",
            cfg.resamples, cfg.level
        )));
    }
    if xs.iter().any(|x| !x.is_finite()) {
        return Err(SteeringError::Numerical(
            "non-finite value in bootstrap input".into(),
        ));
    }
    let estimate = stat(xs);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut buf = vec![0f32; xs.len()];
    let mut stats: Vec<f32> = (0..cfg.resamples)
        .map(|_| {
            buf.iter_mut()
                .for_each(|b| *b = xs[rng.gen_range(0..xs.len())]);
            stat(&buf)
        })
        .collect();
    stats.sort_by(f32::total_cmp);
    let alpha = (1.0 - cfg.level) / 2.0;
    Ok(Ci {
        estimate,
        lo: quantile(&stats, alpha),
        hi: quantile(&stats, 1.0 - alpha),
    })
}

/// Linear-interpolated quantile of sorted data.
fn quantile(sorted: &[f32], q: f64) -> f32 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    let j = (i + 1).min(sorted.len() - 1);
    (sorted[i] as f64 * (1.0 - f) + sorted[j] as f64 * f) as f32
}

/// Standardised effect size: (mean steered − mean unsteered) / std(unsteered)
/// (sample std of the unsteered propensities).
pub fn effect_size(steered: &[f32], unsteered: &[f32]) -> Result<f32> {
    let (ms, _) = mean_std(steered)?;
    let (mu, su) = mean_std(unsteered)?;
    if unsteered.len() < 2 || su == 0.0 {
        return Err(SteeringError::NotEnoughData(
            "effect size needs >= 2 unsteered values with non-zero spread".into(),
        ));
    }
    Ok((ms - mu) / su)
}

/// One evaluated steering configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub layer: usize,
    pub multiplier: f32,
    /// Validation score of the objective (higher is better).
    pub score: f32,
}

/// The candidate with the highest score. Ties (equal scores) go to the
/// smaller |multiplier| (less intervention), then the lower layer, then the
/// smaller multiplier — so the choice never depends on input order.
/// Candidates with a NaN score are ignored; errors when none remain.
pub fn select_best(candidates: &[Candidate]) -> Result<Candidate> {
    candidates
        .iter()
        .filter(|c| !c.score.is_nan())
        .copied()
        .reduce(|best, c| {
            let better = c
                .score
                .total_cmp(&best.score)
                .then(best.multiplier.abs().total_cmp(&c.multiplier.abs()))
                .then(best.layer.cmp(&c.layer))
                .then(best.multiplier.total_cmp(&c.multiplier));
            if better.is_gt() {
                c
            } else {
                best
            }
        })
        .ok_or_else(|| SteeringError::NotEnoughData("no candidate with a valid score".into()))
}
