//! The methods at SmolLM2's width (d = 576) with realistic pair counts
//! (n < d) and activation magnitudes: they must run quickly and stay finite.

mod common;

use std::time::Instant;
use steerbench_steering::methods::affine::{gaussian_transport, Shrinkage};
use steerbench_steering::methods::mlp::{train_mlp, MlpConfig};
use steerbench_steering::methods::pca::pca_diff;
use steerbench_steering::methods::probe::{probe_pairs, ProbeConfig};
use steerbench_steering::{cosine, Matrix};

fn scaled(m: &Matrix, s: f32) -> Matrix {
    Matrix::new(m.rows, m.cols, m.data.iter().map(|x| x * s).collect()).unwrap()
}

#[test]
fn methods_at_model_width() {
    let p = common::planted(64, 576, 2.0, 1.0, 0.1, 11);
    // Residual-stream-like magnitudes (per-dim ≈ 6, token norm ≈ 150).
    let (pos, neg) = (scaled(&p.pos, 6.0), scaled(&p.neg, 6.0));
    let t = Instant::now();
    let pca = pca_diff(&pos, &neg).unwrap();
    assert!(
        cosine(&pca.direction, &p.u) > 0.9,
        "pca cos {}",
        cosine(&pca.direction, &p.u)
    );
    let probe = probe_pairs(&pos, &neg, &ProbeConfig::default()).unwrap();
    assert!(probe.direction.iter().all(|x| x.is_finite()));
    assert!(
        cosine(&probe.direction, &p.u) > 0.8,
        "probe cos {}",
        cosine(&probe.direction, &p.u)
    );
    let map = gaussian_transport(&pos, &neg, Shrinkage::LedoitWolf).unwrap();
    assert!(map.matrix.data.iter().all(|x| x.is_finite()));
    let mlp = train_mlp(
        &pos,
        &neg,
        &MlpConfig {
            epochs: 100,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(mlp.losses.last().unwrap() < &mlp.losses[0]);
    let secs = t.elapsed().as_secs_f32();
    assert!(secs < 60.0, "took {secs} s");
    eprintln!("d=576 methods took {secs:.2} s");
}
