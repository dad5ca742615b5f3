//! Synthetic activations with a planted concept direction.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use steerbench_steering::{unit, Matrix};

pub fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
    let u2: f32 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

pub fn random_unit(d: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    unit(&(0..d).map(|_| gauss(rng)).collect::<Vec<_>>()).unwrap()
}

/// Pairs sharing a per-pair context b_i ~ N(0, ctx²I), separated along `u`
/// by s_i ~ shift + 0.5·N(0,1), with independent noise of std `noise`.
pub struct Planted {
    pub pos: Matrix,
    pub neg: Matrix,
    pub u: Vec<f32>,
}

pub fn planted(n: usize, d: usize, shift: f32, ctx: f32, noise: f32, seed: u64) -> Planted {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let u = random_unit(d, &mut rng);
    let (mut p, mut q) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let s = shift + 0.5 * gauss(&mut rng);
        for j in 0..d {
            let b = ctx * gauss(&mut rng);
            p.push(b + s / 2.0 * u[j] + noise * gauss(&mut rng));
            q.push(b - s / 2.0 * u[j] + noise * gauss(&mut rng));
        }
    }
    Planted {
        pos: Matrix::new(n, d, p).unwrap(),
        neg: Matrix::new(n, d, q).unwrap(),
        u,
    }
}
