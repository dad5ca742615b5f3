//! Symmetric linear algebra in f64 via nalgebra: top principal component,
//! matrix square roots, covariance with shrinkage.

use crate::error::{Result, SteeringError};
use crate::matrix::Matrix;
use nalgebra::{DMatrix, DVector, SymmetricEigen};

pub(crate) fn to_dmatrix(m: &Matrix) -> DMatrix<f64> {
    DMatrix::from_fn(m.rows, m.cols, |i, j| m.get(i, j) as f64)
}

pub(crate) fn from_dmatrix(m: &DMatrix<f64>) -> Matrix {
    let mut data = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            data.push(m[(i, j)] as f32);
        }
    }
    Matrix {
        rows: m.nrows(),
        cols: m.ncols(),
        data,
    }
}

/// Eigen-decomposition of a symmetric matrix, eigenvalues sorted descending
/// (ties broken by original index, so the result is deterministic).
pub(crate) fn sym_eigen(a: &DMatrix<f64>) -> Result<(Vec<f64>, DMatrix<f64>)> {
    if a.iter().any(|x| !x.is_finite()) {
        return Err(SteeringError::Numerical(
            "matrix has NaN or infinite entries".into(),
        ));
    }
    let eig = SymmetricEigen::new(a.clone());
    let mut order: Vec<usize> = (0..eig.eigenvalues.len()).collect();
    order.sort_by(|&i, &j| {
        eig.eigenvalues[j]
            .total_cmp(&eig.eigenvalues[i])
            .then(i.cmp(&j))
    });
    let values = order.iter().map(|&i| eig.eigenvalues[i]).collect();
    let vectors = DMatrix::from_fn(a.nrows(), order.len(), |r, c| {
        eig.eigenvectors[(r, order[c])]
    });
    Ok((values, vectors))
}

/// First principal axis of the rows of `x` WITHOUT mean-centring (the top
/// eigenvector of the second-moment matrix XᵀX), and the share of the total
/// second moment it explains. Uses the n×n Gram matrix when n < d.
/// The sign is arbitrary here; callers fix it.
pub(crate) fn top_axis(x: &Matrix) -> Result<(Vec<f32>, f32)> {
    if x.rows == 0 || x.cols == 0 {
        return Err(SteeringError::NotEnoughData(
            "principal component of an empty matrix".into(),
        ));
    }
    let xm = to_dmatrix(x);
    let total: f64 = xm.iter().map(|v| v * v).sum();
    if total <= 0.0 {
        return Err(SteeringError::Numerical(
            "all rows are zero; no principal direction".into(),
        ));
    }
    let (lambda, axis) = if x.rows < x.cols {
        let gram = &xm * xm.transpose();
        let (vals, vecs) = sym_eigen(&gram)?;
        let u = vecs.column(0).into_owned();
        let v = xm.transpose() * u;
        let n = v.norm();
        (vals[0], v / n)
    } else {
        let cov = xm.transpose() * &xm;
        let (vals, vecs) = sym_eigen(&cov)?;
        (vals[0], vecs.column(0).into_owned())
    };
    let axis: Vec<f32> = axis.iter().map(|v| *v as f32).collect();
    Ok((axis, (lambda / total) as f32))
}

/// Symmetric PSD square root and inverse square root (eigenvalues clamped at `floor`).
pub(crate) fn sqrt_and_inv_sqrt(
    a: &DMatrix<f64>,
    floor: f64,
) -> Result<(DMatrix<f64>, DMatrix<f64>)> {
    let (vals, vecs) = sym_eigen(a)?;
    if vals.iter().any(|v| *v < -1e-6 * vals[0].abs().max(1.0)) {
        return Err(SteeringError::Numerical(
            "matrix is not positive semi-definite".into(),
        ));
    }
    let n = vals.len();
    let s = DMatrix::from_fn(n, n, |i, j| {
        if i == j {
            vals[i].max(floor).sqrt()
        } else {
            0.0
        }
    });
    let si = DMatrix::from_fn(n, n, |i, j| {
        if i == j {
            1.0 / vals[i].max(floor).sqrt()
        } else {
            0.0
        }
    });
    Ok((&vecs * s * vecs.transpose(), &vecs * si * vecs.transpose()))
}

/// Mean and covariance (divided by n) of the rows of `x`.
pub(crate) fn mean_cov(x: &Matrix) -> Result<(DVector<f64>, DMatrix<f64>)> {
    if x.rows == 0 {
        return Err(SteeringError::NotEnoughData(
            "covariance of zero rows".into(),
        ));
    }
    let xm = to_dmatrix(x);
    let mean = xm.row_mean().transpose();
    let mut c = xm.clone();
    for mut row in c.row_iter_mut() {
        row -= mean.transpose();
    }
    let cov = c.transpose() * &c / x.rows as f64;
    Ok((mean, cov))
}
