use proptest::prelude::*;
use steerbench_steering::methods::ablation::ablate;
use steerbench_steering::methods::affine::AffineMap;
use steerbench_steering::methods::icv::icv_apply;
use steerbench_steering::metrics::behaviour::{ab_probability, Letter};
use steerbench_steering::metrics::lm::kl_divergence;
use steerbench_steering::{dot, norm, unit, Matrix};

fn vecs(d: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-100.0f32..100.0, d)
}

proptest! {
    #[test]
    fn ablation_output_is_orthogonal_and_idempotent(h in vecs(16), u in vecs(16)) {
        prop_assume!(norm(&u) > 1e-2);
        let a = ablate(&h, &u).unwrap();
        let uh = unit(&u).unwrap();
        prop_assert!(dot(&a, &uh).abs() <= 1e-3 * (1.0 + norm(&h)));
        let b = ablate(&a, &u).unwrap();
        for (x, y) in a.iter().zip(&b) {
            prop_assert!((x - y).abs() <= 1e-3 * (1.0 + norm(&h)));
        }
    }

    #[test]
    fn kl_is_non_negative(p in prop::collection::vec(-30.0f32..30.0, 2..50), seed in 0u64..1000) {
        let q: Vec<f32> = p.iter().enumerate().map(|(i, x)| x + ((i as u64 * 2654435761 + seed) % 17) as f32 - 8.0).collect();
        let kl = kl_divergence(&p, &q).unwrap();
        prop_assert!(kl >= 0.0);
        prop_assert!(kl_divergence(&p, &p).unwrap().abs() < 1e-5);
    }

    #[test]
    fn ab_probabilities_sum_to_one(a in -50.0f32..0.0, b in -50.0f32..0.0) {
        let s = ab_probability(a, b, Letter::A).unwrap() + ab_probability(a, b, Letter::B).unwrap();
        prop_assert!((s - 1.0).abs() < 1e-5);
    }

    #[test]
    fn icv_apply_preserves_norm(h in vecs(8), v in vecs(8), lambda in -5.0f32..5.0) {
        let out = icv_apply(&h, &v, lambda).unwrap();
        let shifted_norm = norm(&h.iter().zip(&v).map(|(a, b)| a + lambda * b).collect::<Vec<_>>());
        prop_assume!(shifted_norm > 1e-3);
        prop_assert!((norm(&out) - norm(&h)).abs() <= 1e-3 * (1.0 + norm(&h)));
    }

    #[test]
    fn affine_interpolation_endpoints(h in vecs(3), w in vecs(9), b in vecs(3)) {
        let map = AffineMap::new(Matrix::new(3, 3, w).unwrap(), b).unwrap();
        prop_assert_eq!(map.interpolate(0.0).apply(&h).unwrap(), h.clone());
        let full = map.apply(&h).unwrap();
        let one = map.interpolate(1.0).apply(&h).unwrap();
        for (x, y) in full.iter().zip(&one) {
            prop_assert!((x - y).abs() <= 1e-3 * (1.0 + x.abs()));
        }
    }
}
