//! Aggregates over inputs: per setting and metric, mean, std, n, bootstrap CI and the
//! share of negative values.

use std::collections::BTreeMap;

use steerbench_steering::metrics::stats::{bootstrap_mean_ci, mean_std};

use crate::tables::{AggregateRow, ScoreRow};

/// One row per (dataset, split, method, layer, multiplier, position, metric), in that
/// order. Non-finite values are left out (a NaN measures nothing); `n` counts the
/// values used, and a group with none has NaN statistics and `n = 0`.
pub fn aggregate(scores: &[ScoreRow], seed: u64) -> Vec<AggregateRow> {
    // The group key keeps the dataset as written (`name.split`) and the multiplier's bits.
    type Key<'a> = (
        &'a str,
        &'a str,
        crate::tables::Condition,
        Option<usize>,
        u64,
        &'a str,
        crate::tables::ScoreMetric,
    );
    let mut groups: BTreeMap<Key, (f64, Vec<f32>)> = BTreeMap::new();
    for s in scores {
        let key = (
            s.dataset.as_str(),
            s.split.as_str(),
            s.method,
            s.layer,
            super::mult_key(s.multiplier),
            s.position.as_str(),
            s.metric,
        );
        let g = groups.entry(key).or_insert((s.multiplier, Vec::new()));
        if s.value.is_finite() {
            g.1.push(s.value as f32);
        }
    }
    let cfg = super::bootstrap(seed);
    groups
        .into_iter()
        .map(
            |((dataset, split, method, layer, _, position, metric), (multiplier, xs))| {
                let (mean, std) =
                    mean_std(&xs).map_or((f64::NAN, f64::NAN), |(m, s)| (m as f64, s as f64));
                let ci = if xs.len() >= 2 {
                    bootstrap_mean_ci(&xs, &cfg).ok()
                } else {
                    None
                };
                let n = xs.len();
                AggregateRow {
                    dataset: dataset.to_string(),
                    split: split.to_string(),
                    method,
                    layer,
                    multiplier,
                    position: position.to_string(),
                    metric,
                    n: n as u32,
                    mean,
                    std,
                    ci_low: ci.map_or(f64::NAN, |c| c.lo as f64),
                    ci_high: ci.map_or(f64::NAN, |c| c.hi as f64),
                    frac_negative: if n == 0 {
                        f64::NAN
                    } else {
                        xs.iter().filter(|x| **x < 0.0).count() as f64 / n as f64
                    },
                }
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{Condition, MethodKind, ScoreMetric};

    fn row(id: &str, method: Condition, mult: f64, value: f64) -> ScoreRow {
        ScoreRow {
            example_id: id.into(),
            dataset: "d.test".into(),
            split: "test".into(),
            method,
            layer: Some(1),
            multiplier: mult,
            position: "all".into(),
            metric: ScoreMetric::Propensity,
            value,
        }
    }

    #[test]
    fn hand_computed_groups() {
        let caa = Condition::Steered(MethodKind::Caa);
        let rows = vec![
            row("a", caa, 1.0, 1.0),
            row("b", caa, 1.0, 3.0),
            row("c", caa, 1.0, -2.0),
            row("a", caa, -1.0, 5.0),
            row("a", caa, 2.0, f64::NAN),
        ];
        let a = aggregate(&rows, 0);
        assert_eq!(a.len(), 3);
        // Ordered by multiplier bits within a setting: 1.0, 2.0, then -1.0 (sign bit).
        let one = a.iter().find(|r| r.multiplier == 1.0).unwrap();
        assert_eq!(one.n, 3);
        assert!((one.mean - 2.0 / 3.0).abs() < 1e-6);
        // sample std of (1, 3, -2): mean 2/3, sum sq dev = 1/9 + 49/9 + 64/9 = 114/9, / 2
        assert!((one.std - (114.0f64 / 18.0).sqrt()).abs() < 1e-5);
        assert!(one.ci_low <= one.mean && one.mean <= one.ci_high);
        assert!((one.frac_negative - 1.0 / 3.0).abs() < 1e-12);
        // One input: mean is the value, no spread, no CI.
        let neg = a.iter().find(|r| r.multiplier == -1.0).unwrap();
        assert_eq!((neg.n, neg.mean, neg.std), (1, 5.0, 0.0));
        assert!(neg.ci_low.is_nan() && neg.ci_high.is_nan());
        // Only a NaN: nothing measured.
        let nan = a.iter().find(|r| r.multiplier == 2.0).unwrap();
        assert_eq!(nan.n, 0);
        assert!(nan.mean.is_nan() && nan.frac_negative.is_nan());
    }

    #[test]
    fn deterministic_in_the_seed() {
        let caa = Condition::Steered(MethodKind::Caa);
        let rows: Vec<ScoreRow> = (0..20)
            .map(|i| row(&i.to_string(), caa, 1.0, (i as f64).sin()))
            .collect();
        assert_eq!(aggregate(&rows, 3), aggregate(&rows, 3));
        assert_ne!(aggregate(&rows, 3)[0].ci_low, aggregate(&rows, 4)[0].ci_low);
    }
}
