mod common;

use common::{gauss, planted};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use steerbench_steering::methods::ablation::{ablate, ablate_rows, ablation_direction};
use steerbench_steering::methods::affine::{
    gaussian_transport, mean_shift, mean_shift_projection, Shrinkage,
};
use steerbench_steering::methods::caa::{caa, shuffled_caa};
use steerbench_steering::methods::function_vector::{
    function_vector, project_head, rank_heads, HeadId,
};
use steerbench_steering::methods::icv::{icv, icv_apply, icv_direction};
use steerbench_steering::methods::normalize::{median, normalize, resid_norm_stat, Normalize};
use steerbench_steering::methods::pca::{pca_center, pca_diff, pca_diff_centered};
use steerbench_steering::methods::probe::{probe, probe_pairs, ProbeConfig};
use steerbench_steering::methods::random::random_direction;
use steerbench_steering::{cosine, dot, norm, Matrix, SteeringError};

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn caa_recovers_planted_direction() {
    let p = planted(200, 32, 2.0, 1.0, 0.3, 1);
    let v = caa(&p.pos, &p.neg).unwrap();
    assert!(cosine(&v, &p.u) > 0.99, "cos {}", cosine(&v, &p.u));
    assert!(close(norm(&v), 2.0, 0.15), "norm {}", norm(&v));
}

#[test]
fn caa_hand_computed() {
    let pos = Matrix::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
    let neg = Matrix::from_rows(&[vec![0.0, 0.0], vec![1.0, 0.0]]).unwrap();
    assert_eq!(caa(&pos, &neg).unwrap(), vec![1.5, 3.0]);
}

#[test]
fn caa_rejects_mismatched_pairs() {
    let pos = Matrix::zeros(2, 3);
    let neg = Matrix::zeros(3, 3);
    assert!(matches!(caa(&pos, &neg), Err(SteeringError::Shape { .. })));
    assert!(matches!(
        caa(&Matrix::zeros(0, 3), &Matrix::zeros(0, 3)),
        Err(SteeringError::NotEnoughData(_))
    ));
}

#[test]
fn pca_diff_and_center_recover_planted_direction() {
    let p = planted(200, 32, 2.0, 1.0, 0.3, 2);
    let a = pca_diff(&p.pos, &p.neg).unwrap();
    assert!(
        cosine(&a.direction, &p.u) > 0.99,
        "pca_diff cos {}",
        cosine(&a.direction, &p.u)
    );
    assert!(close(norm(&a.direction), 1.0, 1e-4));
    // signal E[s²] ≈ 4.25 against noise 32·2·0.09 ≈ 5.8 → ≈ 0.44 explained.
    assert!(
        a.explained > 0.35 && a.explained < 0.55,
        "explained {}",
        a.explained
    );
    let c = pca_center(&p.pos, &p.neg).unwrap();
    assert!(
        cosine(&c.direction, &p.u) > 0.99,
        "pca_center cos {}",
        cosine(&c.direction, &p.u)
    );
    // Pair-centring makes pca_center equal to the uncentred pca_diff (documented).
    assert!(cosine(&a.direction, &c.direction) > 0.9999);
}

#[test]
fn pca_sign_correct_on_every_seed() {
    for seed in 0..20 {
        // Large context variance (shared per pair) and a modest shift: the
        // eigen-solver's sign is arbitrary, ours must always point pos-ward.
        let p = planted(40, 16, 1.0, 3.0, 0.2, 100 + seed);
        for dir in [
            pca_diff(&p.pos, &p.neg).unwrap().direction,
            pca_center(&p.pos, &p.neg).unwrap().direction,
            pca_diff_centered(&p.pos, &p.neg).unwrap().direction,
        ] {
            let gap: f32 = p
                .pos
                .iter_rows()
                .zip(p.neg.iter_rows())
                .map(|(a, b)| dot(a, &dir) - dot(b, &dir))
                .sum();
            assert!(gap > 0.0, "seed {seed}: positives project lower");
            assert!(cosine(&dir, &p.u) > 0.0, "seed {seed}");
        }
    }
}

#[test]
fn pca_is_deterministic() {
    let p = planted(50, 64, 2.0, 1.0, 0.3, 3);
    assert_eq!(
        pca_diff(&p.pos, &p.neg).unwrap(),
        pca_diff(&p.pos, &p.neg).unwrap()
    );
}

#[test]
fn probe_recovers_planted_direction() {
    // The probe does not see the pairing, so the shared context is noise to it.
    let p = planted(1000, 32, 2.0, 0.5, 0.3, 4);
    let r = probe_pairs(&p.pos, &p.neg, &ProbeConfig::default()).unwrap();
    assert!(
        cosine(&r.direction, &p.u) > 0.99,
        "probe cos {}",
        cosine(&r.direction, &p.u)
    );
    assert!(r.train_accuracy > 0.8, "acc {}", r.train_accuracy);
    // Positives score higher along the direction.
    let sp: f32 = p.pos.iter_rows().map(|x| dot(x, &r.direction)).sum();
    let sn: f32 = p.neg.iter_rows().map(|x| dot(x, &r.direction)).sum();
    assert!(sp > sn);
    let st = probe_pairs(
        &p.pos,
        &p.neg,
        &ProbeConfig {
            standardize: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        cosine(&st.direction, &p.u) > 0.99,
        "standardised probe cos {}",
        cosine(&st.direction, &p.u)
    );
}

#[test]
fn probe_separable_1d_hand_case() {
    let x = Matrix::from_rows(&[vec![-2.0], vec![-1.0], vec![1.0], vec![2.0]]).unwrap();
    let r = probe(
        &x,
        &[false, false, true, true],
        &ProbeConfig {
            l2: 0.1,
            standardize: false,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.direction, vec![1.0]);
    assert_eq!(r.train_accuracy, 1.0);
    assert!(
        r.bias.abs() < 1e-5,
        "symmetric data → zero bias, got {}",
        r.bias
    );
    assert!(probe(&x, &[true; 4], &ProbeConfig::default()).is_err());
}

#[test]
fn icv_direction_and_norm_preserving_apply() {
    let p = planted(60, 24, 2.0, 0.5, 0.3, 5);
    let diffs = p.pos.sub(&p.neg).unwrap();
    let v = icv_direction(&diffs).unwrap();
    assert!(cosine(&v, &p.u) > 0.99);
    let all = icv(&[diffs.clone(), diffs.clone()]).unwrap();
    assert_eq!(all.len(), 2);
    // Scaled to the mean projection of the differences: direction × mean(diff·v).
    let mean_proj: f32 = diffs
        .iter_rows()
        .map(|r| steerbench_steering::dot(r, &v))
        .sum::<f32>()
        / diffs.rows as f32;
    assert!(mean_proj > 0.5);
    assert!(close(norm(&all[0]), mean_proj, 1e-3 * mean_proj));
    assert!(cosine(&all[0], &v) > 0.9999);
    let h = vec![3.0, 4.0, 0.0];
    let out = icv_apply(&h, &[0.0, 0.0, 1.0], 5.0).unwrap();
    assert!(close(norm(&out), 5.0, 1e-5));
    // h + 5e3 = (3,4,5), rescaled by 5/√50.
    let s = 5.0 / 50f32.sqrt();
    assert!(close(out[0], 3.0 * s, 1e-5) && close(out[2], 5.0 * s, 1e-5));
    assert_eq!(icv_apply(&h, &[0.0, 0.0, 1.0], 0.0).unwrap(), h);
    assert!(icv_apply(&h, &[1.0], 1.0).is_err());
}

#[test]
fn function_vector_hand_computed() {
    // 2 layers × 2 heads, head_dim 2, d_model 3.
    let heads = [
        HeadId { layer: 0, head: 0 },
        HeadId { layer: 0, head: 1 },
        HeadId { layer: 1, head: 0 },
        HeadId { layer: 1, head: 1 },
    ];
    // 3 prompts; mean effects: 0.1, 0.5, 0.3, 0.5 (tie between (0,1) and (1,1)).
    let effects = Matrix::from_rows(&[
        vec![0.0, 0.4, 0.3, 0.6],
        vec![0.1, 0.5, 0.3, 0.5],
        vec![0.2, 0.6, 0.3, 0.4],
    ])
    .unwrap();
    let ranking = rank_heads(&effects, &heads).unwrap();
    let order: Vec<HeadId> = ranking.iter().map(|s| s.head).collect();
    assert_eq!(order, vec![heads[1], heads[3], heads[2], heads[0]]);
    assert!(close(ranking[0].mean_indirect_effect, 0.5, 1e-6));

    let mut mean_out = BTreeMap::new();
    mean_out.insert(heads[0], vec![9.0, 9.0]);
    mean_out.insert(heads[1], vec![1.0, 2.0]);
    mean_out.insert(heads[2], vec![9.0, 9.0]);
    mean_out.insert(heads[3], vec![3.0, -1.0]);
    let mut o_proj: BTreeMap<usize, Matrix> = BTreeMap::new();
    // d_model 3 × (2 heads · 2): columns 0..2 head 0, 2..4 head 1.
    o_proj.insert(
        0,
        Matrix::from_rows(&[
            vec![0., 0., 1., 0.],
            vec![0., 0., 0., 1.],
            vec![0., 0., 1., 1.],
        ])
        .unwrap(),
    );
    o_proj.insert(
        1,
        Matrix::from_rows(&[
            vec![0., 0., 2., 0.],
            vec![0., 0., 0., 2.],
            vec![0., 0., 1., -1.],
        ])
        .unwrap(),
    );
    let contributions: BTreeMap<HeadId, Vec<f32>> = heads
        .iter()
        .map(|h| {
            (
                *h,
                project_head(&o_proj[&h.layer], h.head, &mean_out[h]).unwrap(),
            )
        })
        .collect();
    // layer0 head1: (1, 2, 3); layer1 head1: (6, -2, 4).
    assert_eq!(contributions[&heads[1]], vec![1.0, 2.0, 3.0]);
    assert_eq!(contributions[&heads[3]], vec![6.0, -2.0, 4.0]);
    let fv = function_vector(&ranking, 2, &contributions).unwrap();
    assert_eq!(fv.vector, vec![7.0, 0.0, 7.0]);
    assert_eq!(fv.heads.len(), 2);
    assert!(function_vector(&ranking, 0, &contributions).is_err());
    assert!(function_vector(&ranking, 5, &contributions).is_err());
    // A head dimension that does not fit the projection is an error, not a panic.
    assert!(project_head(&o_proj[&0], 2, &[1.0, 2.0]).is_err());
    let mut missing = contributions.clone();
    missing.remove(&heads[3]);
    assert!(function_vector(&ranking, 2, &missing).is_err());
}

#[test]
fn ablation_hand_case_and_direction() {
    assert_eq!(ablate(&[3.0, 4.0], &[2.0, 0.0]).unwrap(), vec![0.0, 4.0]);
    assert!(ablate(&[1.0, 1.0], &[0.0, 0.0]).is_err());
    let p = planted(100, 16, 2.0, 1.0, 0.3, 6);
    let u = ablation_direction(&p.pos, &p.neg).unwrap();
    let ab = ablate_rows(&p.pos, &u).unwrap();
    // After ablation the classes no longer differ along the concept.
    let abn = ablate_rows(&p.neg, &u).unwrap();
    let v = caa(&ab, &abn).unwrap();
    assert!(dot(&v, &u).abs() < 1e-4);
}

#[test]
fn mean_shift_projection_maps_means() {
    let p = planted(80, 12, 2.0, 1.0, 0.3, 7);
    for k in [1, 3] {
        let map = mean_shift_projection(&p.pos, &p.neg, k).unwrap();
        let mn = p.neg.col_mean().unwrap();
        let mp = p.pos.col_mean().unwrap();
        let mapped = map.apply(&mn).unwrap();
        for (a, b) in mapped.iter().zip(&mp) {
            assert!(close(*a, *b, 1e-4), "k={k}: {a} vs {b}");
        }
        // Positives are fixed points of the projected part (their concept
        // coordinate equals μ+'s only on average, so check the mean).
        let mapped_pos = map.apply_rows(&p.pos).unwrap().col_mean().unwrap();
        for (a, b) in mapped_pos.iter().zip(&mp) {
            assert!(close(*a, *b, 1e-4));
        }
        let half = map.interpolate(0.5).apply(&mn).unwrap();
        for ((h, a), b) in half.iter().zip(&mn).zip(&mp) {
            assert!(close(*h, (a + b) / 2.0, 1e-4));
        }
    }
    assert!(mean_shift_projection(&p.pos, &p.neg, 0).is_err());
    let ms = mean_shift(&p.pos, &p.neg).unwrap();
    assert_eq!(ms.matrix, Matrix::identity(12));
}

#[test]
fn gaussian_transport_maps_means_and_covariances() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (n, d) = (4000, 4);
    // neg ~ N(0, diag(1, 4, 0.25, 1)), pos = A·z + μ with a mixing A.
    let a = [
        [1.0, 0.5, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.3],
        [0.2, 0.0, 2.0, 0.0],
        [0.0, 0.0, 0.0, 0.5],
    ];
    let scales = [1.0, 2.0, 0.5, 1.0];
    let mu = [3.0, -1.0, 0.5, 2.0];
    let (mut p, mut q) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let z: Vec<f32> = (0..d).map(|_| gauss(&mut rng)).collect();
        for i in 0..d {
            p.push(mu[i] + (0..d).map(|j| a[i][j] * z[j]).sum::<f32>());
        }
        for s in scales {
            q.push(s * gauss(&mut rng));
        }
    }
    let pos = Matrix::new(n, d, p).unwrap();
    let neg = Matrix::new(n, d, q).unwrap();
    for shrink in [Shrinkage::Fixed(1e-6), Shrinkage::LedoitWolf] {
        let map = gaussian_transport(&pos, &neg, shrink).unwrap();
        let mapped = map.apply_rows(&neg).unwrap();
        let (m1, m2) = (mapped.col_mean().unwrap(), pos.col_mean().unwrap());
        for (x, y) in m1.iter().zip(&m2) {
            assert!(close(*x, *y, 1e-3), "{shrink:?} mean {x} vs {y}");
        }
        let (c1, c2) = (cov(&mapped), cov(&pos));
        for (x, y) in c1.iter().zip(&c2) {
            assert!(close(*x, *y, 0.05), "{shrink:?} cov {x} vs {y}");
        }
        // W is symmetric (a Monge map between Gaussians is the gradient of a convex function).
        for i in 0..d {
            for j in 0..d {
                assert!(close(map.matrix.get(i, j), map.matrix.get(j, i), 1e-5));
            }
        }
        assert_eq!(
            map.interpolate(0.0).apply(&[1.0, 2.0, 3.0, 4.0]).unwrap(),
            vec![1.0, 2.0, 3.0, 4.0]
        );
    }
}

#[test]
fn gaussian_transport_handles_n_less_than_d() {
    let p = planted(10, 40, 2.0, 1.0, 0.3, 9);
    let map = gaussian_transport(&p.pos, &p.neg, Shrinkage::LedoitWolf).unwrap();
    let mapped = map.apply(&p.neg.col_mean().unwrap()).unwrap();
    let mp = p.pos.col_mean().unwrap();
    assert!(mapped.iter().zip(&mp).all(|(a, b)| close(*a, *b, 1e-3)));
    assert!(map.matrix.data.iter().all(|x| x.is_finite()));
    assert!(gaussian_transport(&p.pos, &p.neg, Shrinkage::Fixed(-1.0)).is_err());
}

fn cov(m: &Matrix) -> Vec<f32> {
    let mean = m.col_mean().unwrap();
    let d = m.cols;
    let mut c = vec![0f64; d * d];
    for r in m.iter_rows() {
        for i in 0..d {
            for j in 0..d {
                c[i * d + j] += ((r[i] - mean[i]) * (r[j] - mean[j])) as f64 / m.rows as f64;
            }
        }
    }
    c.into_iter().map(|x| x as f32).collect()
}

#[test]
fn random_direction_has_norm_and_is_reproducible() {
    let a = random_direction(576, 12.5, 42).unwrap();
    assert!(close(norm(&a), 12.5, 1e-3));
    assert_eq!(a, random_direction(576, 12.5, 42).unwrap());
    assert_ne!(a, random_direction(576, 12.5, 43).unwrap());
    assert!(random_direction(0, 1.0, 0).is_err());
    assert!(random_direction(4, f32::NAN, 0).is_err());
}

#[test]
fn shuffled_caa_is_seeded_orthogonal_and_norm_matched() {
    let p = planted(40, 32, 2.0, 1.0, 0.3, 10);
    let s = shuffled_caa(&p.pos, &p.neg, 7).unwrap();
    assert_eq!(s, shuffled_caa(&p.pos, &p.neg, 7).unwrap());
    assert_ne!(s, shuffled_caa(&p.pos, &p.neg, 8).unwrap());
    let c = caa(&p.pos, &p.neg).unwrap();
    assert!(cosine(&s, &c).abs() < 1e-4, "cos to caa {}", cosine(&s, &c));
    assert!(
        close(norm(&s), norm(&c), 1e-4 * norm(&c)),
        "{} vs {}",
        norm(&s),
        norm(&c)
    );
    let one = Matrix::from_rows(&[vec![1.0, 0.0]]).unwrap();
    assert!(
        shuffled_caa(&one, &one, 0).is_err(),
        "one pair is not a permutation"
    );
}

/// The control the report holds CAA against must be a null: on planted data with one
/// strong concept direction (few pairs, shift far above the noise), steering along the
/// shuffled control moves a linear read-out of the concept by ≈ 0 on average over seeds
/// and for every seed, while CAA moves it by nearly its full norm. The coin-flip control
/// this replaced leaked the concept with a random sign (shown for contrast).
#[test]
fn shuffled_control_is_a_null_on_a_strong_concept() {
    let p = planted(16, 32, 4.0, 1.0, 0.3, 10);
    let c = caa(&p.pos, &p.neg).unwrap();
    // Effect of adding v on the read-out u·h, relative to the vector's norm.
    let effect = |v: &[f32]| dot(v, &p.u) / norm(v);
    assert!(effect(&c) > 0.95, "caa {}", effect(&c));
    let seeds = 0..64u64;
    let shuffled: Vec<f32> = seeds
        .clone()
        .map(|s| effect(&shuffled_caa(&p.pos, &p.neg, s).unwrap()))
        .collect();
    let mean = shuffled.iter().sum::<f32>() / shuffled.len() as f32;
    let mean_abs = shuffled.iter().map(|e| e.abs()).sum::<f32>() / shuffled.len() as f32;
    assert!(mean.abs() < 0.05, "mean shuffled effect {mean}");
    assert!(mean_abs < 0.1, "mean |shuffled effect| {mean_abs}");
    let coin_flip = |seed: u64| -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut acc = vec![0f32; p.pos.cols];
        for (a, b) in p.pos.iter_rows().zip(p.neg.iter_rows()) {
            let sign = if rand::Rng::gen_bool(&mut rng, 0.5) {
                1.0
            } else {
                -1.0
            };
            for ((x, y), z) in acc.iter_mut().zip(a).zip(b) {
                *x += sign * (y - z);
            }
        }
        acc
    };
    let leaked = seeds
        .map(|s| effect(&coin_flip(s)).abs())
        .filter(|e| e.is_finite())
        .sum::<f32>()
        / 64.0;
    assert!(
        leaked > 0.3,
        "coin flip leaks the concept: mean |effect| {leaked}"
    );
}

#[test]
fn normalisation_modes() {
    let v = [3.0, 4.0];
    assert_eq!(
        normalize(&v, Normalize::Raw).unwrap(),
        (vec![3.0, 4.0], 5.0)
    );
    assert_eq!(
        normalize(&v, Normalize::Unit).unwrap(),
        (vec![0.6, 0.8], 5.0)
    );
    let (r, n) = normalize(&v, Normalize::ResidNorm(150.0)).unwrap();
    assert!(close(norm(&r), 150.0, 1e-3) && n == 5.0);
    assert!(normalize(&[0.0, 0.0], Normalize::Unit).is_err());
    assert!(normalize(&v, Normalize::ResidNorm(0.0)).is_err());
}

#[test]
fn resid_norm_ignores_massive_first_token() {
    // First token norm 22,000, the others 140..160.
    let mut rows = vec![vec![22_000.0, 0.0]];
    for k in 0..9 {
        rows.push(vec![0.0, 140.0 + 2.5 * k as f32]);
    }
    let m = Matrix::from_rows(&rows).unwrap();
    let r = resid_norm_stat(&m).unwrap();
    // Sorted: 140, 142.5, …, 160, 22000 → mean of the 5th and 6th = 151.25.
    assert!(close(r, 151.25, 1e-3), "median {r}");
    assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]).unwrap(), 2.5);
    assert!(median(&[]).is_err());
}
