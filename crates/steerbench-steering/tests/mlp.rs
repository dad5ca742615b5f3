mod common;

use candle_core::{Device, Tensor};
use common::gauss;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use steerbench_steering::methods::caa::caa;
use steerbench_steering::methods::mlp::{train_mlp, Activation, MlpConfig};
use steerbench_steering::Matrix;

/// XOR-like concept in 4-D: the positive partner of x is x shifted along
/// e₂ by +2 when x₀·x₁ > 0 and by −2 otherwise. The mean shift is ≈ 0, so
/// no fixed vector can do it.
fn xor_pairs(n: usize, seed: u64) -> (Matrix, Matrix) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut p, mut q) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let x: Vec<f32> = (0..4).map(|_| gauss(&mut rng)).collect();
        let s = if x[0] * x[1] > 0.0 { 2.0 } else { -2.0 };
        q.extend_from_slice(&x);
        p.extend(
            x.iter()
                .enumerate()
                .map(|(i, v)| if i == 2 { v + s } else { *v }),
        );
    }
    (Matrix::new(n, 4, p).unwrap(), Matrix::new(n, 4, q).unwrap())
}

fn mse(a: &Matrix, b: &Matrix) -> f32 {
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f32>()
        / a.data.len() as f32
}

#[test]
fn mlp_learns_nonlinear_concept_and_beats_mean_shift() {
    let (pos, neg) = xor_pairs(600, 1);
    let cfg = MlpConfig {
        hidden: 64,
        epochs: 600,
        lr: 1e-2,
        weight_decay: 1e-4,
        activation: Activation::Gelu,
        seed: 0,
    };
    let m = train_mlp(&pos, &neg, &cfg).unwrap();
    assert_eq!(m.losses.len(), cfg.epochs + 1);
    let (first, last) = (m.losses[0], *m.losses.last().unwrap());
    assert!(last < 0.25 * first, "loss {first} → {last}");

    // Held-out pairs: MLP vs the best fixed shift (CAA fitted on the training pairs).
    let (tp, tn) = xor_pairs(400, 2);
    let steered = m.apply_rows(&tn, 1.0).unwrap();
    let shift = caa(&pos, &neg).unwrap();
    let shifted_rows: Vec<Vec<f32>> = tn
        .iter_rows()
        .map(|r| r.iter().zip(&shift).map(|(a, b)| a + b).collect())
        .collect();
    let shifted = Matrix::from_rows(&shifted_rows).unwrap();
    let (e_mlp, e_lin) = (mse(&steered, &tp), mse(&shifted, &tp));
    assert!(e_mlp < 0.5 * e_lin, "mlp {e_mlp} vs mean shift {e_lin}");
    // α = 0 is the identity.
    assert_eq!(m.apply_rows(&tn, 0.0).unwrap(), tn);
}

#[test]
fn mlp_is_deterministic_and_tensor_apply_matches() {
    let (pos, neg) = xor_pairs(100, 3);
    let cfg = MlpConfig {
        epochs: 50,
        activation: Activation::Tanh,
        seed: 9,
        ..Default::default()
    };
    let a = train_mlp(&pos, &neg, &cfg).unwrap();
    let b = train_mlp(&pos, &neg, &cfg).unwrap();
    assert_eq!(a, b);
    let c = train_mlp(&pos, &neg, &MlpConfig { seed: 10, ..cfg }).unwrap();
    assert_ne!(a.w1, c.w1);

    // The candle path (used inside model hooks) equals the plain one, for any leading shape.
    let xs = Tensor::from_vec(neg.data[..24].to_vec(), (2, 3, 4), &Device::Cpu).unwrap();
    let ys = a.apply_tensor(&xs, 1.5).unwrap();
    assert_eq!(ys.dims(), &[2, 3, 4]);
    let flat = ys.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let rows = Matrix::new(6, 4, neg.data[..24].to_vec()).unwrap();
    let plain = a.apply_rows(&rows, 1.5).unwrap();
    for (x, y) in flat.iter().zip(&plain.data) {
        assert!((x - y).abs() < 1e-4, "{x} vs {y}");
    }
    let wrong = Tensor::zeros((2, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(a.apply_tensor(&wrong, 1.0).is_err());
    assert!(a.apply(&[1.0], 1.0).is_err());
}

#[test]
fn mlp_rejects_bad_config() {
    let (pos, neg) = xor_pairs(10, 4);
    assert!(train_mlp(
        &pos,
        &neg,
        &MlpConfig {
            hidden: 0,
            ..Default::default()
        }
    )
    .is_err());
    assert!(train_mlp(
        &pos,
        &neg,
        &MlpConfig {
            lr: 0.0,
            ..Default::default()
        }
    )
    .is_err());
}
