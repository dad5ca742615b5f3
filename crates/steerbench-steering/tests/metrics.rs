use steerbench_steering::metrics::behaviour::{
    ab_probability, icl_accuracy, mc_accuracy, open_ended_likelihood, propensity,
    propensity_masked, Letter,
};
use steerbench_steering::metrics::lm::{distinct_n, kl_divergence, perplexity, perplexity_many};
use steerbench_steering::metrics::stats::{
    bootstrap_ci, bootstrap_mean_ci, effect_size, mean_std, select_best, BootstrapConfig, Candidate,
};
use steerbench_steering::metrics::steerability::{fit_line, steerability};

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn ab_probability_hand_cases() {
    let (a, b) = (0.3f32.ln(), 0.1f32.ln());
    assert!(close(ab_probability(a, b, Letter::A).unwrap(), 0.75, 1e-6));
    assert!(close(ab_probability(a, b, Letter::B).unwrap(), 0.25, 1e-6));
    // Tiny probabilities (exp would underflow to 0/0): still σ(1).
    assert!(close(
        ab_probability(-1000.0, -1001.0, Letter::A).unwrap(),
        0.731_058_6,
        1e-6
    ));
    assert!(close(
        ab_probability(f32::NEG_INFINITY, -1.0, Letter::B).unwrap(),
        1.0,
        0.0
    ));
    assert!(ab_probability(f32::NAN, -1.0, Letter::A).is_err());
    assert!(ab_probability(f32::NEG_INFINITY, f32::NEG_INFINITY, Letter::A).is_err());
}

#[test]
fn propensity_sum_and_length_normalised() {
    let p = propensity(&[-1.0, -2.0], &[-3.0]).unwrap();
    assert!(close(p.summed, 0.0, 1e-6));
    assert!(close(p.normalized, 1.5, 1e-6)); // −1.5 − (−3)
    assert!(propensity(&[], &[-1.0]).is_err());
    assert!(propensity(&[0.5], &[-1.0]).is_err());
}

#[test]
fn propensity_padding_never_enters() {
    // The same completions padded to length 4 with garbage log-probs.
    let pos = [-1.0, -2.0, -77.0, -99.0];
    let neg = [-3.0, -55.0, -66.0, -88.0];
    let p = propensity_masked(
        &pos,
        &[true, true, false, false],
        &neg,
        &[true, false, false, false],
    )
    .unwrap();
    assert_eq!(p, propensity(&[-1.0, -2.0], &[-3.0]).unwrap());
    // Left padding too.
    let p2 =
        propensity_masked(&[-9.0, -1.0, -2.0], &[false, true, true], &[-3.0], &[true]).unwrap();
    assert_eq!(p2, p);
    assert!(propensity_masked(&pos, &[true], &neg, &[true; 4]).is_err());
}

#[test]
fn line_fit_hand_case() {
    let f = fit_line(&[0.0, 1.0, 2.0], &[1.0, 2.0, 4.0]).unwrap();
    assert!(close(f.slope, 1.5, 1e-6));
    assert!(close(f.intercept, 5.0 / 6.0, 1e-6));
    assert!(close(f.r2.unwrap(), 1.0 - (1.0 / 6.0) / (42.0 / 9.0), 1e-6));
    assert_eq!(fit_line(&[0.0, 1.0], &[2.0, 2.0]).unwrap().r2, None);
    assert!(fit_line(&[1.0, 1.0], &[0.0, 1.0]).is_err());
    assert!(fit_line(&[1.0], &[0.0]).is_err());
}

#[test]
fn steerability_with_anti_steerable_input() {
    let m = [-2.0, -1.0, 0.0, 1.0, 2.0];
    let props = vec![
        m.iter().map(|x| 2.0 * x + 1.0).collect::<Vec<f32>>(), // slope 2
        m.iter().map(|x| -x).collect(),                        // anti-steerable, slope −1
        m.iter().map(|x| 0.5 * x).collect(),                   // slope 0.5
        vec![0.0, 0.0, 0.0, 0.0, 0.0],                         // flat: slope 0, R² undefined
    ];
    let s = steerability(&m, &props).unwrap();
    let slopes: Vec<f32> = s.per_input.iter().map(|f| f.slope).collect();
    assert!(slopes
        .iter()
        .zip([2.0, -1.0, 0.5, 0.0])
        .all(|(a, b)| close(*a, b, 1e-6)));
    assert!(close(s.mean_slope, 0.375, 1e-6));
    // sample std of [2, −1, 0.5, 0]: mean .375, Σd² = 2.640625+1.890625+.015625+.140625 = 4.6875, /3 → 1.5625
    assert!(close(s.std_slope, 1.25, 1e-5));
    assert!(close(s.anti_steerable_fraction, 0.25, 0.0));
    assert!(close(s.mean_r2.unwrap(), 1.0, 1e-6));
    assert!(steerability(&m, &[]).is_err());
}

#[test]
fn open_ended_likelihood_delta() {
    let s = open_ended_likelihood(&[-1.0, -1.0], &[-3.0], &[-2.0, -2.0], &[-2.0]).unwrap();
    assert!(close(s.gap_steered, 1.0, 1e-6));
    assert!(close(s.gap_unsteered, -2.0, 1e-6));
    assert!(close(s.delta, 3.0, 1e-6));
    assert!(open_ended_likelihood(&[-1.0], &[-3.0], &[-2.0, -2.0], &[-2.0]).is_err());
}

#[test]
fn accuracies() {
    assert_eq!(icl_accuracy(&[1, 2, 3, 4], &[1, 2, 0, 4]).unwrap(), 0.75);
    assert!(icl_accuracy(&[1], &[1, 2]).is_err());
    assert!(icl_accuracy(&[], &[]).is_err());
    // Item 2 ties between choices 0 and 1 → choice 0 (lowest index).
    let scores = vec![
        vec![-1.0, -2.0, -3.0],
        vec![-5.0, -0.5, -3.0],
        vec![-1.0, -1.0],
    ];
    assert!(close(
        mc_accuracy(&scores, &[0, 1, 1]).unwrap(),
        2.0 / 3.0,
        1e-6
    ));
    assert!(mc_accuracy(&scores, &[0, 1, 2]).is_err());
}

#[test]
fn perplexity_hand_case() {
    let p = perplexity(&[0.5f32.ln(), 0.25f32.ln()]).unwrap();
    assert!(close(p, 8f32.sqrt(), 1e-5));
    // Token-weighted across texts: same as one concatenated text.
    let many = perplexity_many(&[vec![0.5f32.ln()], vec![0.25f32.ln()]]).unwrap();
    assert!(close(many, p, 1e-6));
    assert!(perplexity(&[]).is_err());
}

#[test]
fn kl_hand_case_and_logit_invariance() {
    let p = [0.5f32.ln(), 0.5f32.ln()];
    let q = [0.25f32.ln(), 0.75f32.ln()];
    let expect = 0.5 * 2f32.ln() + 0.5 * (0.5f32 / 0.75).ln();
    assert!(close(kl_divergence(&p, &q).unwrap(), expect, 1e-6));
    // Unnormalised logits give the same value.
    let q_logits = [q[0] + 7.0, q[1] + 7.0];
    assert!(close(kl_divergence(&p, &q_logits).unwrap(), expect, 1e-6));
    assert_eq!(kl_divergence(&p, &p).unwrap(), 0.0);
    assert_eq!(
        kl_divergence(&[0.0, 0.0], &[0.0, f32::NEG_INFINITY]).unwrap(),
        f32::INFINITY
    );
    assert!(close(
        kl_divergence(&[0.0, f32::NEG_INFINITY], &[0.0, 0.0]).unwrap(),
        2f32.ln(),
        1e-6
    ));
    assert!(kl_divergence(&p, &[0.0]).is_err());
}

#[test]
fn distinct_n_hand_case() {
    assert_eq!(distinct_n(&[vec![1, 2, 1, 2]], 1).unwrap(), 0.5);
    assert!(close(
        distinct_n(&[vec![1, 2, 1, 2]], 2).unwrap(),
        2.0 / 3.0,
        1e-6
    ));
    // n-grams do not cross sequences: (2,1) would only appear across the boundary.
    assert_eq!(distinct_n(&[vec![1, 2], vec![1, 2]], 2).unwrap(), 0.5);
    assert!(distinct_n(&[vec![1]], 2).is_err());
    assert!(distinct_n(&[vec![1]], 0).is_err());
}

#[test]
fn mean_std_and_effect_size() {
    assert_eq!(mean_std(&[1.0, 2.0, 3.0]).unwrap(), (2.0, 1.0));
    assert_eq!(mean_std(&[4.0]).unwrap(), (4.0, 0.0));
    assert!(close(
        effect_size(&[3.0, 4.0, 5.0], &[1.0, 2.0, 3.0]).unwrap(),
        2.0,
        1e-6
    ));
    assert!(effect_size(&[1.0], &[2.0, 2.0]).is_err());
}

#[test]
fn bootstrap_ci_properties() {
    let cfg = BootstrapConfig {
        resamples: 2000,
        level: 0.95,
        seed: 3,
    };
    let c = bootstrap_mean_ci(&[2.0; 10], &cfg).unwrap();
    assert_eq!((c.estimate, c.lo, c.hi), (2.0, 2.0, 2.0));
    // Standard-normal-ish data: deterministic pseudo-random values.
    let xs: Vec<f32> = (0..1000)
        .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 3.4641)
        .collect();
    let a = bootstrap_mean_ci(&xs, &cfg).unwrap();
    assert_eq!(a, bootstrap_mean_ci(&xs, &cfg).unwrap());
    assert!(a.lo < a.estimate && a.estimate < a.hi);
    // Uniform with std 1: half-width ≈ 1.96/√1000 ≈ 0.062.
    let half = (a.hi - a.lo) / 2.0;
    assert!(half > 0.045 && half < 0.08, "half-width {half}");
    let med = bootstrap_ci(&xs, &cfg, |s| {
        let mut v = s.to_vec();
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    })
    .unwrap();
    assert!(med.lo <= med.estimate && med.estimate <= med.hi);
    assert!(bootstrap_mean_ci(&[], &cfg).is_err());
    assert!(bootstrap_mean_ci(
        &xs,
        &BootstrapConfig {
            resamples: 0,
            ..cfg.clone()
        }
    )
    .is_err());
    assert!(bootstrap_mean_ci(&xs, &BootstrapConfig { level: 1.0, ..cfg }).is_err());
}

#[test]
fn select_best_with_deterministic_ties() {
    let c = |layer, multiplier, score| Candidate {
        layer,
        multiplier,
        score,
    };
    let cands = [
        c(10, 2.0, 0.9),
        c(6, -1.0, 0.9),
        c(6, 1.0, 0.9),
        c(14, 1.0, 0.9),
        c(3, 4.0, f32::NAN),
        c(8, 0.5, 0.1),
    ];
    // Ties at 0.9: smallest |m| = 1 → layers 6 and 14 → layer 6 → m −1 before +1.
    assert_eq!(select_best(&cands).unwrap(), c(6, -1.0, 0.9));
    let mut rev = cands;
    rev.reverse();
    assert_eq!(select_best(&rev).unwrap(), c(6, -1.0, 0.9));
    assert_eq!(
        select_best(&[c(1, 1.0, 0.2), c(2, 2.0, 0.3)]).unwrap(),
        c(2, 2.0, 0.3)
    );
    assert!(select_best(&[c(1, 1.0, f32::NAN)]).is_err());
}
