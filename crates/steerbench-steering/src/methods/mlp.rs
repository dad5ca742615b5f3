//! A non-linear steering map: a small MLP f (d → hidden → d) trained with
//! candle autograd + AdamW so that f(neg) ≈ pos − neg for each pair, applied
//! as h ← h + α·f(h).

use crate::error::{Result, SteeringError};
use crate::matrix::{check_pairs, Matrix};
use crate::methods::random::standard_normal;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Hidden non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// GELU, tanh approximation (candle's `gelu`).
    Gelu,
    Tanh,
}

/// Training settings (full-batch AdamW).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlpConfig {
    pub hidden: usize,
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub activation: Activation,
    pub seed: u64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: 64,
            epochs: 500,
            lr: 1e-2,
            weight_decay: 1e-4,
            activation: Activation::Gelu,
            seed: 0,
        }
    }
}

/// A trained MLP steering map, stored as plain vectors so it can be written
/// anywhere. f(h) = out_scale · (W2 · act(W1 · (h − in_mean)/in_scale + b1) + b2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpSteer {
    pub dim: usize,
    pub hidden: usize,
    pub activation: Activation,
    /// Input standardisation (mean activation of the negatives, and the RMS of
    /// their centred entries): activations with norms in the hundreds would
    /// otherwise saturate the non-linearity.
    pub in_mean: Vec<f32>,
    pub in_scale: f32,
    /// RMS of the targets, so the network learns O(1) outputs.
    pub out_scale: f32,
    /// hidden × dim
    pub w1: Matrix,
    pub b1: Vec<f32>,
    /// dim × hidden
    pub w2: Matrix,
    pub b2: Vec<f32>,
    /// Training loss: mean squared error per element, in raw activation units,
    /// measured before each epoch's update plus once after the last (len = epochs + 1).
    pub losses: Vec<f32>,
}

/// Trains the MLP on paired activations: inputs `neg`, targets `pos − neg`.
/// Deterministic on CPU for a given `cfg.seed` (weights are initialised with ChaCha8).
pub fn train_mlp(pos: &Matrix, neg: &Matrix, cfg: &MlpConfig) -> Result<MlpSteer> {
    check_pairs(pos, neg, 2)?;
    if cfg.hidden == 0 || cfg.epochs == 0 || !(cfg.lr > 0.0) || !(cfg.weight_decay >= 0.0) {
        return Err(SteeringError::InvalidParameter(
            "mlp needs hidden > 0, epochs > 0, lr > 0, weight_decay >= 0".into(),
        ));
    }
    let (n, d, hdim) = (neg.rows, neg.cols, cfg.hidden);
    let in_mean = neg.col_mean()?;
    let mut sq = 0f64;
    for r in neg.iter_rows() {
        sq += r
            .iter()
            .zip(&in_mean)
            .map(|(x, m)| ((x - m) as f64).powi(2))
            .sum::<f64>();
    }
    let in_scale = ((sq / (n * d) as f64).sqrt() as f32).max(1e-6);
    let target = pos.sub(neg)?;
    let out_scale =
        ((target.data.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / (n * d) as f64).sqrt()
            as f32)
            .max(1e-6);

    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut init = |len: usize, std: f64| -> Vec<f32> {
        (0..len)
            .map(|_| (standard_normal(&mut rng) * std) as f32)
            .collect()
    };
    let w1 = Var::from_vec(init(hdim * d, (1.0 / d as f64).sqrt()), (hdim, d), &dev)?;
    let b1 = Var::from_vec(vec![0f32; hdim], hdim, &dev)?;
    let w2 = Var::from_vec(
        init(d * hdim, 0.1 * (1.0 / hdim as f64).sqrt()),
        (d, hdim),
        &dev,
    )?;
    let b2 = Var::from_vec(vec![0f32; d], d, &dev)?;

    let xs = standardise(
        &Tensor::from_vec(neg.data.clone(), (n, d), &dev)?,
        &in_mean,
        in_scale,
    )?;
    let ys = (Tensor::from_vec(target.data, (n, d), &dev)? / out_scale as f64)?;
    let params = ParamsAdamW {
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    let mut opt = AdamW::new(vec![w1.clone(), b1.clone(), w2.clone(), b2.clone()], params)?;
    let raw = (out_scale as f64).powi(2) as f32;
    let mut losses = Vec::with_capacity(cfg.epochs + 1);
    for _ in 0..cfg.epochs {
        let pred = forward(&xs, &w1, &b1, &w2, &b2, cfg.activation)?;
        let loss = (pred - &ys)?.sqr()?.mean_all()?;
        losses.push(loss.to_scalar::<f32>()? * raw);
        opt.backward_step(&loss)?;
    }
    let pred = forward(&xs, &w1, &b1, &w2, &b2, cfg.activation)?;
    losses.push((pred - &ys)?.sqr()?.mean_all()?.to_scalar::<f32>()? * raw);
    if losses.iter().any(|l| !l.is_finite()) {
        return Err(SteeringError::Numerical(
            "mlp training diverged (non-finite loss); lower lr".into(),
        ));
    }
    let flat = |v: &Var| -> Result<Vec<f32>> { Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?) };
    Ok(MlpSteer {
        dim: d,
        hidden: hdim,
        activation: cfg.activation,
        in_mean,
        in_scale,
        out_scale,
        w1: Matrix::new(hdim, d, flat(&w1)?)?,
        b1: flat(&b1)?,
        w2: Matrix::new(d, hdim, flat(&w2)?)?,
        b2: flat(&b2)?,
        losses,
    })
}

fn standardise(xs: &Tensor, mean: &[f32], scale: f32) -> candle_core::Result<Tensor> {
    let m = Tensor::from_slice(mean, mean.len(), xs.device())?;
    xs.broadcast_sub(&m)? / scale as f64
}

fn forward(
    xs: &Tensor,
    w1: &Tensor,
    b1: &Tensor,
    w2: &Tensor,
    b2: &Tensor,
    act: Activation,
) -> candle_core::Result<Tensor> {
    let h = xs.matmul(&w1.t()?)?.broadcast_add(b1)?;
    let h = match act {
        Activation::Gelu => h.gelu()?,
        Activation::Tanh => h.tanh()?,
    };
    h.matmul(&w2.t()?)?.broadcast_add(b2)
}

impl MlpSteer {
    /// f(h) for one activation (plain Rust, no candle).
    pub fn delta(&self, h: &[f32]) -> Result<Vec<f32>> {
        if h.len() != self.dim {
            return Err(crate::error::shape_err(
                "mlp input width",
                self.dim,
                h.len(),
            ));
        }
        let x: Vec<f32> = h
            .iter()
            .zip(&self.in_mean)
            .map(|(a, m)| (a - m) / self.in_scale)
            .collect();
        let mut hid = self.w1.matvec(&x)?;
        for (v, b) in hid.iter_mut().zip(&self.b1) {
            let z = *v + b;
            *v = match self.activation {
                Activation::Gelu => gelu_tanh(z),
                Activation::Tanh => z.tanh(),
            };
        }
        let mut out = self.w2.matvec(&hid)?;
        out.iter_mut()
            .zip(&self.b2)
            .for_each(|(o, b)| *o = (*o + b) * self.out_scale);
        Ok(out)
    }

    /// h + α·f(h) for one activation.
    pub fn apply(&self, h: &[f32], alpha: f32) -> Result<Vec<f32>> {
        let f = self.delta(h)?;
        Ok(h.iter().zip(f).map(|(a, b)| a + alpha * b).collect())
    }

    /// [`MlpSteer::apply`] on every row.
    pub fn apply_rows(&self, m: &Matrix, alpha: f32) -> Result<Matrix> {
        let mut data = Vec::with_capacity(m.data.len());
        for r in m.iter_rows() {
            data.extend(self.apply(r, alpha)?);
        }
        Matrix::new(m.rows, m.cols, data)
    }

    /// f(xs) on a tensor whose last dimension is `dim` (any leading shape, any
    /// float dtype, any device); the result has xs's shape and dtype.
    pub fn delta_tensor(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let dev = xs.device();
        let shape = xs.shape().clone();
        let d = xs.dim(D::Minus1)?;
        if d != self.dim {
            candle_core::bail!("mlp steering map expects width {}, got {d}", self.dim)
        }
        let x2 = standardise(
            &xs.to_dtype(DType::F32)?.reshape(((), d))?,
            &self.in_mean,
            self.in_scale,
        )?;
        let t = |m: &Matrix| Tensor::from_slice(&m.data, (m.rows, m.cols), dev);
        let v = |v: &[f32]| Tensor::from_slice(v, v.len(), dev);
        let y = forward(
            &x2,
            &t(&self.w1)?,
            &v(&self.b1)?,
            &t(&self.w2)?,
            &v(&self.b2)?,
            self.activation,
        )?;
        (y * self.out_scale as f64)?
            .reshape(shape)?
            .to_dtype(xs.dtype())
    }

    /// xs + α·f(xs) — usable inside a model hook (`Intervention::Map`).
    pub fn apply_tensor(&self, xs: &Tensor, alpha: f32) -> candle_core::Result<Tensor> {
        xs + (self.delta_tensor(xs)? * alpha as f64)?
    }
}

fn gelu_tanh(x: f32) -> f32 {
    let c = (2.0f32 / std::f32::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}
