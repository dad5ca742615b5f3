//! The crate's error type: every bad input is reported, never a panic.

use thiserror::Error;

/// Errors of the steering math, metrics and interop.
#[derive(Debug, Error)]
pub enum SteeringError {
    /// Two inputs that must have the same shape do not.
    #[error("shape mismatch: {what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    /// A method needs more data than it was given (e.g. PCA on one pair).
    #[error("not enough data: {0}")]
    NotEnoughData(String),
    /// A parameter outside its valid range (negative shrinkage, zero resamples, …).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// A numeric failure (non-finite values, a matrix that cannot be factorised).
    #[error("numerical problem: {0}")]
    Numerical(String),
    /// A vector computed for one model applied to another.
    #[error("{0}")]
    ModelMismatch(String),
    /// A file that is not what its reader expects.
    #[error("format error: {0}")]
    Format(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("candle error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, SteeringError>;

pub(crate) fn shape_err(
    what: impl Into<String>,
    expected: impl ToString,
    got: impl ToString,
) -> SteeringError {
    SteeringError::Shape {
        what: what.into(),
        expected: expected.to_string(),
        got: got.to_string(),
    }
}
