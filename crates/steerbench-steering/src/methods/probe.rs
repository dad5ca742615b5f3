//! Linear probe: L2-regularised logistic regression fitted by Newton's method
//! (IRLS), which is deterministic and converges in a few steps at these sizes.

use crate::error::{shape_err, Result, SteeringError};
use crate::matrix::{check_pairs, unit, Matrix};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// Probe settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Weight of (l2/2)·‖w‖² added to the mean log-loss (bias not penalised).
    /// The default 0.1 is deliberately firm: with few, nearly separable
    /// examples a weak ridge lets a handful of boundary points set the direction.
    pub l2: f64,
    /// Standardise each feature (zero mean, unit variance) before fitting;
    /// the returned weights are mapped back to raw activation space. Off by
    /// default: the ridge then shrinks isotropically in activation space.
    pub standardize: bool,
    pub max_iter: usize,
    /// Stop when the Newton step's max-norm falls below this.
    pub tol: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            l2: 0.1,
            standardize: false,
            max_iter: 100,
            tol: 1e-9,
        }
    }
}

/// A fitted probe, in raw activation space: score(h) = weight·h + bias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// `weight / ‖weight‖`, oriented so positives score higher.
    pub direction: Vec<f32>,
    pub weight: Vec<f32>,
    pub bias: f32,
    /// Fraction of training rows classified correctly (score > 0 ⇔ positive).
    pub train_accuracy: f32,
    pub iterations: usize,
}

/// Fits a probe on labelled rows (`labels[i]` true = positive class).
pub fn probe(x: &Matrix, labels: &[bool], cfg: &ProbeConfig) -> Result<ProbeResult> {
    if labels.len() != x.rows {
        return Err(shape_err("probe labels", x.rows, labels.len()));
    }
    if !labels.iter().any(|l| *l) || labels.iter().all(|l| *l) {
        return Err(SteeringError::NotEnoughData(
            "probe needs both positive and negative rows".into(),
        ));
    }
    if !(cfg.l2 >= 0.0 && cfg.l2.is_finite()) || cfg.max_iter == 0 {
        return Err(SteeringError::InvalidParameter(
            "probe l2 must be >= 0 and max_iter > 0".into(),
        ));
    }
    x.check_finite("probe inputs")?;
    let (n, d) = (x.rows, x.cols);
    // Feature scaling (identity when not standardising).
    let (mu, sd) = feature_scaling(x, cfg.standardize);
    // Design matrix with a trailing 1 column for the bias.
    let z = DMatrix::from_fn(n, d + 1, |i, j| {
        if j == d {
            1.0
        } else {
            (x.get(i, j) as f64 - mu[j]) / sd[j]
        }
    });
    let y = DVector::from_fn(n, |i, _| if labels[i] { 1.0 } else { 0.0 });
    let mut theta = DVector::<f64>::zeros(d + 1);
    let mut reg = DVector::from_element(d + 1, cfg.l2);
    reg[d] = 1e-10; // keep the Hessian definite without shrinking the bias
    let mut iterations = 0;
    for it in 0..cfg.max_iter {
        iterations = it + 1;
        let p = (&z * &theta).map(sigmoid);
        let grad = z.transpose() * (&p - &y) / n as f64 + reg.component_mul(&theta);
        let w = p.map(|pi| (pi * (1.0 - pi)).max(1e-12) / n as f64);
        let mut zw = z.clone();
        for (mut row, wi) in zw.row_iter_mut().zip(w.iter()) {
            row *= *wi;
        }
        let mut hess = z.transpose() * zw;
        for j in 0..=d {
            hess[(j, j)] += reg[j];
        }
        let step = hess
            .cholesky()
            .ok_or_else(|| {
                SteeringError::Numerical("probe Hessian is not positive definite".into())
            })?
            .solve(&grad);
        theta -= &step;
        if step.amax() < cfg.tol {
            break;
        }
    }
    if theta.iter().any(|t| !t.is_finite()) {
        return Err(SteeringError::Numerical(
            "probe diverged (non-finite weights)".into(),
        ));
    }
    // Back to raw space: w_raw = w/sd, b_raw = b − Σ w·mu/sd.
    let weight: Vec<f32> = (0..d).map(|j| (theta[j] / sd[j]) as f32).collect();
    let bias = (theta[d] - (0..d).map(|j| theta[j] * mu[j] / sd[j]).sum::<f64>()) as f32;
    let scores: Vec<f32> = x
        .iter_rows()
        .map(|r| crate::matrix::dot(r, &weight) + bias)
        .collect();
    let correct = scores
        .iter()
        .zip(labels)
        .filter(|(s, l)| (**s > 0.0) == **l)
        .count();
    let mut direction = unit(&weight)?;
    let (mut sp, mut sn, mut np) = (0f64, 0f64, 0usize);
    for (s, l) in scores.iter().zip(labels) {
        if *l {
            sp += *s as f64;
            np += 1;
        } else {
            sn += *s as f64;
        }
    }
    if (sp / np as f64) < (sn / (n - np) as f64) {
        direction.iter_mut().for_each(|v| *v = -*v);
    }
    Ok(ProbeResult {
        direction,
        weight,
        bias,
        train_accuracy: correct as f32 / n as f32,
        iterations,
    })
}

/// Probe on paired activations: every `pos` row is a positive, every `neg` row a negative.
pub fn probe_pairs(pos: &Matrix, neg: &Matrix, cfg: &ProbeConfig) -> Result<ProbeResult> {
    check_pairs(pos, neg, 1)?;
    let mut data = pos.data.clone();
    data.extend_from_slice(&neg.data);
    let x = Matrix::new(2 * pos.rows, pos.cols, data)?;
    let labels: Vec<bool> = (0..2 * pos.rows).map(|i| i < pos.rows).collect();
    probe(&x, &labels, cfg)
}

fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

fn feature_scaling(x: &Matrix, standardize: bool) -> (Vec<f64>, Vec<f64>) {
    let d = x.cols;
    if !standardize {
        return (vec![0.0; d], vec![1.0; d]);
    }
    let n = x.rows as f64;
    let mut mu = vec![0f64; d];
    for r in x.iter_rows() {
        mu.iter_mut().zip(r).for_each(|(m, v)| *m += *v as f64 / n);
    }
    let mut var = vec![0f64; d];
    for r in x.iter_rows() {
        var.iter_mut()
            .zip(r)
            .zip(&mu)
            .for_each(|((s, v), m)| *s += (*v as f64 - m).powi(2) / n);
    }
    // Constant features keep scale 1 (their weight then only moves the bias).
    let sd = var
        .into_iter()
        .map(|v| if v > 1e-24 { v.sqrt() } else { 1.0 })
        .collect();
    (mu, sd)
}
