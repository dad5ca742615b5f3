//! Affine steering maps h ↦ W h + b: a mean shift with a projection, and the
//! optimal-transport (Monge) map between two fitted Gaussians.

use crate::error::{shape_err, Result, SteeringError};
use crate::linalg::{from_dmatrix, mean_cov, sqrt_and_inv_sqrt, to_dmatrix, top_axis};
use crate::matrix::{check_pairs, dot, norm, Matrix};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// h ↦ matrix · h + bias (`matrix` is d×d, row-major).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffineMap {
    pub matrix: Matrix,
    pub bias: Vec<f32>,
}

impl AffineMap {
    /// Builds a map, checking shapes.
    pub fn new(matrix: Matrix, bias: Vec<f32>) -> Result<Self> {
        if matrix.rows != matrix.cols || bias.len() != matrix.rows {
            return Err(shape_err(
                "affine map",
                format!("d×d matrix and d bias"),
                format!(
                    "{}×{} matrix, {} bias",
                    matrix.rows,
                    matrix.cols,
                    bias.len()
                ),
            ));
        }
        Ok(Self { matrix, bias })
    }

    pub fn dim(&self) -> usize {
        self.bias.len()
    }

    /// W h + b.
    pub fn apply(&self, h: &[f32]) -> Result<Vec<f32>> {
        let mut y = self.matrix.matvec(h)?;
        y.iter_mut().zip(&self.bias).for_each(|(a, b)| *a += b);
        Ok(y)
    }

    /// [`AffineMap::apply`] on every row.
    pub fn apply_rows(&self, m: &Matrix) -> Result<Matrix> {
        let mut data = Vec::with_capacity(m.data.len());
        for r in m.iter_rows() {
            data.extend(self.apply(r)?);
        }
        Matrix::new(m.rows, m.cols, data)
    }

    /// Strength interpolation h ↦ h + α(W h + b − h), itself affine:
    /// W_α = (1−α)I + αW, b_α = αb. α = 0 is the identity, α = 1 the map.
    pub fn interpolate(&self, alpha: f32) -> AffineMap {
        let d = self.dim();
        let mut matrix = self.matrix.clone();
        for i in 0..d {
            for j in 0..d {
                let id = if i == j { 1.0 } else { 0.0 };
                matrix.data[i * d + j] = (1.0 - alpha) * id + alpha * self.matrix.data[i * d + j];
            }
        }
        AffineMap {
            matrix,
            bias: self.bias.iter().map(|b| alpha * b).collect(),
        }
    }
}

/// Mean shift with projection: with U the orthonormal basis of the concept
/// subspace (first axis = the mean difference μ+ − μ−, further axes the next
/// principal axes of the paired differences, Gram–Schmidt-orthogonalised),
/// h ↦ (I − UUᵀ) h + UUᵀ μ+. The component of h along the concept is
/// replaced by the positive mean's; everything orthogonal is kept. Maps μ− to μ+.
pub fn mean_shift_projection(pos: &Matrix, neg: &Matrix, n_directions: usize) -> Result<AffineMap> {
    check_pairs(pos, neg, 1)?;
    if n_directions == 0 || n_directions > pos.cols {
        return Err(SteeringError::InvalidParameter(format!(
            "n_directions must be in 1..={}, got {n_directions}",
            pos.cols
        )));
    }
    let (mu_p, mu_n) = (pos.col_mean()?, neg.col_mean()?);
    let delta: Vec<f32> = mu_p.iter().zip(&mu_n).map(|(a, b)| a - b).collect();
    let mut basis: Vec<Vec<f32>> = Vec::new();
    push_orthonormal(&mut basis, &delta)
        .then_some(())
        .ok_or_else(|| {
            SteeringError::Numerical("class means coincide; no shift direction".into())
        })?;
    // Further axes: principal axes of the differences with the basis projected out.
    let mut resid = pos.sub(neg)?;
    while basis.len() < n_directions {
        for r in resid.data.chunks_mut(pos.cols) {
            for u in &basis {
                let c = dot(r, u);
                r.iter_mut().zip(u).for_each(|(x, y)| *x -= c * y);
            }
        }
        let Ok((axis, _)) = top_axis(&resid) else {
            break;
        };
        if !push_orthonormal(&mut basis, &axis) {
            break;
        }
    }
    if basis.len() < n_directions {
        return Err(SteeringError::NotEnoughData(format!(
            "the paired differences span only {} directions, {n_directions} requested",
            basis.len()
        )));
    }
    let d = pos.cols;
    let mut w = Matrix::identity(d);
    let mut bias = vec![0f32; d];
    for u in &basis {
        let c = dot(&mu_p, u);
        for i in 0..d {
            bias[i] += c * u[i];
            for j in 0..d {
                w.data[i * d + j] -= u[i] * u[j];
            }
        }
    }
    AffineMap::new(w, bias)
}

/// Covariance regularisation for [`gaussian_transport`] (needed: n < d in practice).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Shrinkage {
    /// Σ + εI.
    Fixed(f32),
    /// Ledoit–Wolf shrinkage towards (tr Σ / d)·I with the data-driven intensity.
    LedoitWolf,
}

/// Optimal affine (Monge) transport N(μ−, Σ−) → N(μ+, Σ+):
/// W = Σ−^{-1/2} (Σ−^{1/2} Σ+ Σ−^{1/2})^{1/2} Σ−^{-1/2}, b = μ+ − W μ−.
/// W is symmetric PSD, maps μ− to μ+ and W Σ− W = Σ+ (regularised covariances).
/// Rows of `pos`/`neg` need not be paired; counts may differ.
pub fn gaussian_transport(pos: &Matrix, neg: &Matrix, shrinkage: Shrinkage) -> Result<AffineMap> {
    if pos.cols != neg.cols {
        return Err(shape_err(
            "activation width (pos vs neg)",
            pos.cols,
            neg.cols,
        ));
    }
    if pos.rows < 2 || neg.rows < 2 {
        return Err(SteeringError::NotEnoughData(
            "gaussian transport needs >= 2 rows per class".into(),
        ));
    }
    pos.check_finite("positive activations")?;
    neg.check_finite("negative activations")?;
    let (mu_p, cov_p) = regularised_gaussian(pos, shrinkage)?;
    let (mu_n, cov_n) = regularised_gaussian(neg, shrinkage)?;
    let (sn, sn_inv) = sqrt_and_inv_sqrt(&cov_n, 0.0)?;
    let mid = &sn * &cov_p * &sn;
    let mid = (&mid + mid.transpose()) * 0.5;
    let (mid_sqrt, _) = sqrt_and_inv_sqrt(&mid, 0.0)?;
    let w = &sn_inv * mid_sqrt * &sn_inv;
    let w = (&w + w.transpose()) * 0.5;
    let b: DVector<f64> = &mu_p - &w * &mu_n;
    let bias = b.iter().map(|x| *x as f32).collect();
    AffineMap::new(from_dmatrix(&w), bias)
}

fn regularised_gaussian(x: &Matrix, shrinkage: Shrinkage) -> Result<(DVector<f64>, DMatrix<f64>)> {
    let (mean, cov) = mean_cov(x)?;
    let d = x.cols;
    let cov = match shrinkage {
        Shrinkage::Fixed(eps) => {
            if !(eps >= 0.0 && eps.is_finite()) {
                return Err(SteeringError::InvalidParameter(format!(
                    "shrinkage ε must be >= 0, got {eps}"
                )));
            }
            cov + DMatrix::identity(d, d) * eps as f64
        }
        Shrinkage::LedoitWolf => ledoit_wolf(x, &mean, &cov),
    };
    let trace_floor = cov.trace() / d as f64 * 1e-9;
    if cov.trace() <= 0.0 {
        return Err(SteeringError::Numerical(
            "covariance is zero (all rows identical) and no shrinkage ε was given".into(),
        ));
    }
    Ok((mean, cov + DMatrix::identity(d, d) * trace_floor))
}

/// Ledoit & Wolf (2004): Σ* = s·m·I + (1−s)·S, m = tr S / d,
/// s = min(b̄², d²)/d² with d² = ‖S − mI‖²_F and b̄² = n⁻² Σ_k ‖x_k x_kᵀ − S‖²_F.
fn ledoit_wolf(x: &Matrix, mean: &DVector<f64>, s: &DMatrix<f64>) -> DMatrix<f64> {
    let d = x.cols;
    let n = x.rows as f64;
    let m = s.trace() / d as f64;
    let target = DMatrix::identity(d, d) * m;
    let d2 = (s - &target).norm_squared();
    if d2 <= 0.0 {
        return s.clone();
    }
    let xs = to_dmatrix(x);
    let s_fro2 = s.norm_squared();
    let mut b_bar2 = 0.0;
    for row in xs.row_iter() {
        let c = row.transpose() - mean;
        // ‖ccᵀ − S‖² = ‖c‖⁴ − 2 cᵀSc + ‖S‖².
        let cn2 = c.norm_squared();
        b_bar2 += cn2 * cn2 - 2.0 * (c.transpose() * s * &c)[(0, 0)] + s_fro2;
    }
    b_bar2 /= n * n;
    let shrink = (b_bar2.min(d2) / d2).clamp(0.0, 1.0);
    target * shrink + s * (1.0 - shrink)
}

/// Mean-shift baseline as an affine map (W = I, b = μ+ − μ−); handy for comparisons.
pub fn mean_shift(pos: &Matrix, neg: &Matrix) -> Result<AffineMap> {
    check_pairs(pos, neg, 1)?;
    let delta = super::caa::caa(pos, neg)?;
    if norm(&delta) == 0.0 {
        return Err(SteeringError::Numerical(
            "class means coincide; no shift".into(),
        ));
    }
    AffineMap::new(Matrix::identity(pos.cols), delta)
}

fn push_orthonormal(basis: &mut Vec<Vec<f32>>, v: &[f32]) -> bool {
    let mut r = v.to_vec();
    for _ in 0..2 {
        for u in basis.iter() {
            let c = dot(&r, u);
            r.iter_mut().zip(u).for_each(|(x, y)| *x -= c * y);
        }
    }
    let n = norm(&r);
    if !(n > 1e-6 * norm(v).max(f32::MIN_POSITIVE)) {
        return false;
    }
    basis.push(r.into_iter().map(|x| x / n).collect());
    true
}
