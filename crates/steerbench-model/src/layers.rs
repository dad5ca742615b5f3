//! Building blocks shared by the architecture files: shape-checked weight lookup,
//! linear layers in both storage layouts, norms, rotary frequencies.

use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;

use crate::config::{RopeConfig, RopeScaling};
use crate::error::{ModelError, Result};

/// Fetch `name` under `vb`'s prefix, checking its shape; errors name the full tensor.
pub(crate) fn get(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Tensor> {
    let full = full_name(vb, name);
    if !vb.contains_tensor(name) {
        return Err(ModelError::MissingTensor(full));
    }
    let t = vb.get_unchecked_dtype(name, DType::F32)?;
    if t.dims() != shape {
        return Err(ModelError::Shape {
            name: full,
            expected: shape.to_vec(),
            found: t.dims().to_vec(),
        });
    }
    Ok(t)
}

pub(crate) fn full_name(vb: &VarBuilder, name: &str) -> String {
    let p = vb.prefix();
    if p.is_empty() {
        name.to_string()
    } else {
        format!("{p}.{name}")
    }
}

/// A dense layer. `w` is stored as (out, in) (`nn.Linear`) or (in, out) (GPT-2 `Conv1D`);
/// both multiply without a copy, since the matmul kernel takes strides.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    w_in_out: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    /// `nn.Linear`: weight (out, in).
    pub(crate) fn torch(
        vb: &VarBuilder,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Self> {
        let w = get(vb, &[d_out, d_in], &format!("{name}.weight"))?;
        let b = if bias {
            Some(get(vb, &[d_out], &format!("{name}.bias"))?)
        } else {
            None
        };
        Ok(Self {
            w_in_out: w.t()?,
            b,
        })
    }

    /// GPT-2 `Conv1D`: weight (in, out), always with bias.
    pub(crate) fn conv1d(vb: &VarBuilder, name: &str, d_in: usize, d_out: usize) -> Result<Self> {
        let w = get(vb, &[d_in, d_out], &format!("{name}.weight"))?;
        let b = get(vb, &[d_out], &format!("{name}.bias"))?;
        Ok(Self {
            w_in_out: w,
            b: Some(b),
        })
    }

    /// (.., in) -> (.., out); flattens leading dims so one 2-D matmul runs.
    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims().to_vec();
        let d_in = *dims.last().unwrap_or(&0);
        let n = xs.elem_count() / d_in.max(1);
        let ys = xs.reshape((n, d_in))?.matmul(&self.w_in_out)?;
        let ys = match &self.b {
            Some(b) => ys.broadcast_add(b)?,
            None => ys,
        };
        let mut out = dims;
        *out.last_mut().expect("non-scalar") = ys.dim(1)?;
        Ok(ys.reshape(out)?)
    }
}

/// RMSNorm or LayerNorm over the last dimension.
#[derive(Debug, Clone)]
pub(crate) enum Norm {
    Rms { w: Tensor, eps: f32 },
    Layer { w: Tensor, b: Tensor, eps: f32 },
}

impl Norm {
    pub(crate) fn rms(vb: &VarBuilder, name: &str, d: usize, eps: f64) -> Result<Self> {
        Ok(Norm::Rms {
            w: get(vb, &[d], &format!("{name}.weight"))?,
            eps: eps as f32,
        })
    }

    pub(crate) fn layer(vb: &VarBuilder, name: &str, d: usize, eps: f64) -> Result<Self> {
        Ok(Norm::Layer {
            w: get(vb, &[d], &format!("{name}.weight"))?,
            b: get(vb, &[d], &format!("{name}.bias"))?,
            eps: eps as f32,
        })
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = xs.contiguous()?;
        Ok(match self {
            Norm::Rms { w, eps } => candle_nn::ops::rms_norm(&xs, w, *eps)?,
            Norm::Layer { w, b, eps } => candle_nn::ops::layer_norm(&xs, w, b, *eps)?,
        })
    }
}

/// Rotary inverse frequencies (head_dim / 2 of them), with the configured scaling.
/// Mirrors transformers' `_compute_default_rope_parameters` / `_compute_llama3_parameters`.
pub(crate) fn rope_inv_freq(rope: &RopeConfig, head_dim: usize) -> Vec<f32> {
    let base: Vec<f64> = (0..head_dim / 2)
        .map(|i| 1.0 / rope.theta.powf((2 * i) as f64 / head_dim as f64))
        .collect();
    match rope.scaling {
        RopeScaling::None => base.iter().map(|&f| f as f32).collect(),
        RopeScaling::Linear { factor } => base.iter().map(|&f| (f / factor) as f32).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let old = original_max_position_embeddings as f64;
            let low_wavelen = old / low_freq_factor;
            let high_wavelen = old / high_freq_factor;
            base.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let scaled = if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    };
                    scaled as f32
                })
                .collect()
        }
    }
}

/// cos/sin tables (b, t, head_dim/2) for per-row positions `pos` (b, t) u32.
pub(crate) fn rope_tables(inv_freq: &Tensor, pos: &Tensor) -> Result<(Tensor, Tensor)> {
    let freqs = pos
        .to_dtype(DType::F32)?
        .unsqueeze(D::Minus1)?
        .broadcast_mul(inv_freq)?;
    Ok((freqs.cos()?.contiguous()?, freqs.sin()?.contiguous()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let cfg = RopeConfig {
            theta: 500000.0,
            partial_rotary_factor: 1.0,
            scaling: RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 32,
            },
        };
        let plain = rope_inv_freq(
            &RopeConfig {
                scaling: RopeScaling::None,
                ..cfg
            },
            16,
        );
        let scaled = rope_inv_freq(&cfg, 16);
        assert_eq!(plain[0], scaled[0]);
        assert!((scaled[7] - plain[7] / 8.0).abs() < 1e-12);
        assert!(scaled.iter().zip(&plain).all(|(s, p)| s <= p));
    }
}
