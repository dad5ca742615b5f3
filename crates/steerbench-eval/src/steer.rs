//! A steering object and the hooks it installs at a given strength.
//!
//! The strength `alpha` is the sweep's multiplier: a vector is added as `alpha * v`,
//! an affine map or MLP is interpolated (`h + alpha (f(h) - h)` / `h + alpha f(h)`),
//! ablation removes `alpha` times the projection, ICV adds `alpha * v_l` at every layer
//! and restores each token's norm, a LoRA adapter scales its delta by `alpha`.
//! `alpha = 0` is always the unsteered model.

use std::sync::Arc;

use candle_core::{Device, Tensor, D};
use steerbench_model::{Adapter, HookPoint, Hooks, Intervention, Positions, Site};
use steerbench_steering::methods::affine::AffineMap;
use steerbench_steering::methods::mlp::MlpSteer;

use crate::error::{EvalError, Result};

#[derive(Clone)]
pub enum Steer {
    /// `h <- h + alpha v` on the output of block `layer` (CAA, PCA, probe, FV, controls).
    Add { layer: usize, vector: Vec<f32> },
    /// `h <- h - alpha (h·û)û` on the embeddings and the output of every block.
    Ablate { direction: Vec<f32> },
    /// `h <- h + alpha (W h + b - h)` on the output of block `layer`.
    Affine { layer: usize, map: AffineMap },
    /// `h <- h + alpha f(h)` on the output of block `layer`.
    Mlp { layer: usize, mlp: Arc<MlpSteer> },
    /// In-Context Vectors: `h <- (h + alpha v_l) * |h| / |h + alpha v_l|` after every block.
    Icv { vectors: Vec<Vec<f32>> },
    /// A LoRA adapter (a fine-tuned baseline) with its delta scaled by `alpha`: 0 is the
    /// base model, 1 the trained adapter. It acts inside the blocks it adapts, at every
    /// position (the position selector does not apply).
    Lora { adapter: Arc<Adapter> },
}

impl Steer {
    /// The first hook point this steering writes to: everything strictly below it is the
    /// unsteered model and can be computed once for all strengths.
    pub fn first_point(&self) -> HookPoint {
        match self {
            Steer::Add { layer, .. } | Steer::Affine { layer, .. } | Steer::Mlp { layer, .. } => {
                HookPoint::new(*layer, Site::ResidPost)
            }
            Steer::Ablate { .. } | Steer::Icv { .. } => HookPoint::new(0, Site::ResidPre),
            // The adapter changes block l: blocks below it (up to the output of l - 1)
            // are the base model.
            Steer::Lora { adapter } => match adapter.first_layer() {
                Some(l) if l > 0 => HookPoint::new(l - 1, Site::ResidPost),
                _ => HookPoint::new(0, Site::ResidPre),
            },
        }
    }

    /// Install this steering at strength `alpha` on `positions` into `hooks`.
    pub fn install(
        &self,
        hooks: &mut Hooks,
        alpha: f32,
        positions: &Positions,
        n_layers: usize,
        device: &Device,
    ) -> Result<()> {
        if alpha == 0.0 {
            return Ok(());
        }
        match self {
            Steer::Lora { adapter } => hooks.set_adapter(adapter.clone(), alpha),
            Steer::Add { layer, vector } => {
                let v = Tensor::from_vec(vector.clone(), vector.len(), device)?;
                hooks.write(
                    HookPoint::new(*layer, Site::ResidPost),
                    Intervention::Add { vector: v, alpha },
                    positions.clone(),
                );
            }
            Steer::Affine { layer, map } => {
                let m = map.interpolate(alpha);
                let d = m.dim();
                let matrix = Tensor::from_vec(m.matrix.data.clone(), (d, d), device)?;
                let bias = Tensor::from_vec(m.bias.clone(), d, device)?;
                hooks.write(
                    HookPoint::new(*layer, Site::ResidPost),
                    Intervention::Affine { matrix, bias },
                    positions.clone(),
                );
            }
            Steer::Mlp { layer, mlp } => {
                let mlp = mlp.clone();
                let f = Arc::new(move |xs: &Tensor| mlp.apply_tensor(xs, alpha));
                hooks.write(
                    HookPoint::new(*layer, Site::ResidPost),
                    Intervention::Map(f),
                    positions.clone(),
                );
            }
            Steer::Ablate { direction } => {
                let n = steerbench_steering::norm(direction);
                if !(n > 0.0) {
                    return Err(EvalError::Input("ablation direction has zero norm".into()));
                }
                let u: Vec<f32> = direction.iter().map(|x| x / n).collect();
                let u = Tensor::from_vec(u, direction.len(), device)?;
                let f: steerbench_model::MapFn = Arc::new(move |xs: &Tensor| {
                    let proj = xs.matmul(&u.unsqueeze(1)?)?; // (n, 1)
                    xs - (proj.broadcast_mul(&u.unsqueeze(0)?)? * alpha as f64)?
                });
                hooks.write(
                    HookPoint::new(0, Site::ResidPre),
                    Intervention::Map(f.clone()),
                    positions.clone(),
                );
                for l in 0..n_layers {
                    hooks.write(
                        HookPoint::new(l, Site::ResidPost),
                        Intervention::Map(f.clone()),
                        positions.clone(),
                    );
                }
            }
            Steer::Icv { vectors } => {
                if vectors.len() != n_layers {
                    return Err(EvalError::Input(format!(
                        "ICV has {} layer vectors, the model has {n_layers} layers",
                        vectors.len()
                    )));
                }
                for (l, v) in vectors.iter().enumerate() {
                    let v = Tensor::from_vec(v.clone(), v.len(), device)?;
                    let f: steerbench_model::MapFn = Arc::new(move |xs: &Tensor| {
                        let shifted = xs.broadcast_add(&(&v * alpha as f64)?)?;
                        let old = xs.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
                        let new = shifted
                            .sqr()?
                            .sum_keepdim(D::Minus1)?
                            .sqrt()?
                            .clamp(1e-12, f64::MAX)?;
                        shifted.broadcast_mul(&(old / new)?)
                    });
                    hooks.write(
                        HookPoint::new(l, Site::ResidPost),
                        Intervention::Map(f),
                        positions.clone(),
                    );
                }
            }
        }
        Ok(())
    }

    /// Hidden size the steering expects, where it has one (an adapter is checked against
    /// the model's projections when it runs).
    pub fn dim(&self) -> Option<usize> {
        Some(match self {
            Steer::Add { vector, .. } => vector.len(),
            Steer::Ablate { direction } => direction.len(),
            Steer::Affine { map, .. } => map.dim(),
            Steer::Mlp { mlp, .. } => mlp.dim,
            Steer::Icv { vectors } => vectors.first().map_or(0, |v| v.len()),
            Steer::Lora { .. } => return None,
        })
    }
}
