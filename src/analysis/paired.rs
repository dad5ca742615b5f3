//! Paired effects: per-input differences on the inputs both conditions measured.

use std::collections::BTreeMap;

use steerbench_steering::metrics::stats::{bootstrap_mean_ci, effect_size};

/// Mean of per-input differences with a percentile bootstrap CI, and the standardised
/// effect (difference of means over the reference's standard deviation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedEffect {
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// NaN with fewer than two reference values or zero spread.
    pub standardized: f64,
    /// Inputs present in both.
    pub n: u32,
}

/// `scale × (x − reference)` per input common to both, bootstrapped over inputs.
/// None when no input is common.
pub fn paired_effect(
    x: &BTreeMap<String, f64>,
    reference: &BTreeMap<String, f64>,
    scale: f64,
    seed: u64,
) -> Option<PairedEffect> {
    let common: Vec<(&f64, &f64)> = x
        .iter()
        .filter_map(|(id, v)| reference.get(id).map(|r| (v, r)))
        .collect();
    let diffs: Vec<f32> = common
        .iter()
        .map(|(v, r)| (scale * (**v - **r)) as f32)
        .collect();
    let ci = bootstrap_mean_ci(&diffs, &super::bootstrap(seed)).ok()?;
    let xs: Vec<f32> = common.iter().map(|(v, _)| **v as f32).collect();
    let rs: Vec<f32> = common.iter().map(|(_, r)| **r as f32).collect();
    Some(PairedEffect {
        mean: ci.estimate as f64,
        ci_low: ci.lo as f64,
        ci_high: ci.hi as f64,
        standardized: effect_size(&xs, &rs).map_or(f64::NAN, |e| scale * e as f64),
        n: diffs.len() as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: &[(&str, f64)]) -> BTreeMap<String, f64> {
        v.iter().map(|(k, x)| (k.to_string(), *x)).collect()
    }

    #[test]
    fn pairs_by_input_and_skips_unmatched() {
        let x = m(&[("a", 3.0), ("b", 5.0), ("z", 100.0)]);
        let r = m(&[("a", 1.0), ("b", 2.0), ("c", 7.0)]);
        let e = paired_effect(&x, &r, 1.0, 0).unwrap();
        assert_eq!(e.n, 2);
        assert!((e.mean - 2.5).abs() < 1e-6);
        assert!(e.ci_low >= 2.0 - 1e-6 && e.ci_high <= 3.0 + 1e-6);
        // (mean 4 − mean 1.5) / sd(1, 2) = 2.5 / 0.7071
        assert!((e.standardized - 2.5 / 0.5f64.sqrt()).abs() < 1e-4);
        let away = paired_effect(&x, &r, -1.0, 0).unwrap();
        assert!((away.mean + 2.5).abs() < 1e-6);
    }

    #[test]
    fn one_input_has_a_point_ci_and_no_standardised_effect() {
        let e = paired_effect(&m(&[("a", 2.0)]), &m(&[("a", 0.5)]), 1.0, 0).unwrap();
        assert_eq!((e.mean, e.ci_low, e.ci_high, e.n), (1.5, 1.5, 1.5, 1));
        assert!(e.standardized.is_nan());
        assert!(paired_effect(&m(&[("a", 1.0)]), &m(&[("b", 1.0)]), 1.0, 0).is_none());
    }
}
