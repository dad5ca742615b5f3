//! A plain row-major f32 matrix and the small vector helpers the methods share.

use crate::error::{shape_err, Result, SteeringError};
use serde::{Deserialize, Serialize};

/// Row-major `rows × cols` matrix of f32 (one activation per row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    /// Builds a matrix, checking that `data.len() == rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != rows * cols {
            return Err(shape_err("matrix data length", rows * cols, data.len()));
        }
        Ok(Self { rows, cols, data })
    }

    /// All-zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Identity matrix of size `n`.
    pub fn identity(n: usize) -> Self {
        let mut m = Self::zeros(n, n);
        for i in 0..n {
            m.data[i * n + i] = 1.0;
        }
        m
    }

    /// Builds a matrix from equally long rows (an empty slice gives a 0×0 matrix).
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (i, r) in rows.iter().enumerate() {
            if r.len() != cols {
                return Err(shape_err(format!("row {i} length"), cols, r.len()));
            }
            data.extend_from_slice(r);
        }
        Ok(Self {
            rows: rows.len(),
            cols,
            data,
        })
    }

    /// Row `i` as a slice.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Iterator over rows.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks(self.cols.max(1)).take(self.rows)
    }

    /// Rows as owned vectors.
    pub fn to_rows(&self) -> Vec<Vec<f32>> {
        self.iter_rows().map(<[f32]>::to_vec).collect()
    }

    /// Element (i, j).
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.cols + j]
    }

    /// Matrix–vector product `self · v`.
    pub fn matvec(&self, v: &[f32]) -> Result<Vec<f32>> {
        if v.len() != self.cols {
            return Err(shape_err("matvec vector length", self.cols, v.len()));
        }
        Ok(self.iter_rows().map(|r| dot(r, v)).collect())
    }

    /// Column means (the mean activation).
    pub fn col_mean(&self) -> Result<Vec<f32>> {
        if self.rows == 0 {
            return Err(SteeringError::NotEnoughData(
                "mean of a matrix with no rows".into(),
            ));
        }
        let mut acc = vec![0f64; self.cols];
        for r in self.iter_rows() {
            for (a, x) in acc.iter_mut().zip(r) {
                *a += *x as f64;
            }
        }
        Ok(acc
            .into_iter()
            .map(|a| (a / self.rows as f64) as f32)
            .collect())
    }

    /// `self − other`, elementwise (same shape required).
    pub fn sub(&self, other: &Matrix) -> Result<Matrix> {
        self.same_shape(other, "matrix subtraction")?;
        let data = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| a - b)
            .collect();
        Ok(Matrix {
            rows: self.rows,
            cols: self.cols,
            data,
        })
    }

    pub(crate) fn same_shape(&self, other: &Matrix, what: &str) -> Result<()> {
        if self.rows != other.rows || self.cols != other.cols {
            return Err(shape_err(
                what,
                format!("{}×{}", self.rows, self.cols),
                format!("{}×{}", other.rows, other.cols),
            ));
        }
        Ok(())
    }

    /// Errors if any value is NaN or infinite.
    pub fn check_finite(&self, what: &str) -> Result<()> {
        if self.data.iter().any(|x| !x.is_finite()) {
            return Err(SteeringError::Numerical(format!(
                "{what} contains NaN or infinite values"
            )));
        }
        Ok(())
    }
}

/// Dot product (accumulated in f64).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| *x as f64 * *y as f64)
        .sum::<f64>() as f32
}

/// Euclidean norm.
pub fn norm(a: &[f32]) -> f32 {
    a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt() as f32
}

/// Cosine similarity (0 when either vector is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot(a, b) / (na * nb)
}

/// `a / ‖a‖`; errors on a zero vector.
pub fn unit(a: &[f32]) -> Result<Vec<f32>> {
    let n = norm(a);
    if !(n > 0.0 && n.is_finite()) {
        return Err(SteeringError::Numerical(
            "cannot normalise a zero or non-finite vector".into(),
        ));
    }
    Ok(a.iter().map(|x| x / n).collect())
}

/// Checks two paired matrices have the same shape and at least `min_rows` rows.
pub(crate) fn check_pairs(pos: &Matrix, neg: &Matrix, min_rows: usize) -> Result<()> {
    pos.same_shape(neg, "positive vs negative activations")?;
    if pos.rows < min_rows {
        return Err(SteeringError::NotEnoughData(format!(
            "need at least {min_rows} pairs, got {}",
            pos.rows
        )));
    }
    if pos.cols == 0 {
        return Err(SteeringError::NotEnoughData(
            "activations have zero width".into(),
        ));
    }
    pos.check_finite("positive activations")?;
    neg.check_finite("negative activations")
}
