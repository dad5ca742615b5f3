//! Which model a vector was computed for, and the check that refuses to apply
//! it to another.

use crate::error::{Result, SteeringError};
use serde::{Deserialize, Serialize};

/// Identity of a model as far as steering vectors care.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFingerprint {
    pub hidden_size: usize,
    pub n_layers: usize,
    /// Hex hash of the weight file(s) (e.g. `ResolvedModel::weight_hash`).
    pub model_hash: String,
}

impl ModelFingerprint {
    /// Ok when `model` is the model this vector was computed for; otherwise a
    /// clear error naming both.
    pub fn check_compatible(&self, model: &ModelFingerprint) -> Result<()> {
        if self == model {
            return Ok(());
        }
        Err(SteeringError::ModelMismatch(format!(
            "vector was computed for a model with hidden size {} and {} layers (hash {}), \
             this model has hidden size {} and {} layers (hash {})",
            self.hidden_size,
            self.n_layers,
            short(&self.model_hash),
            model.hidden_size,
            model.n_layers,
            short(&model.model_hash)
        )))
    }
}

/// A vector's length must equal the model's hidden size.
impl ModelFingerprint {
    pub fn check_vector(&self, v: &[f32]) -> Result<()> {
        if v.len() != self.hidden_size {
            return Err(SteeringError::ModelMismatch(format!(
                "vector has length {}, this model has hidden size {}",
                v.len(),
                self.hidden_size
            )));
        }
        Ok(())
    }
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}
