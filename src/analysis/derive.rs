//! Per-input scores derived from a finished sweep of one (dataset, method, layer,
//! position): the open-ended likelihood relative to unsteered, and steerability.

use std::collections::BTreeMap;

use anyhow::Result;
use steerbench_steering::metrics::steerability::fit_line;

use crate::spec::Metric;
use crate::tables::{ScoreMetric, ScoreRow};

/// `sweep`: the rows of one (dataset, method, layer, position) over its multipliers;
/// `unsteered`: the unsteered rows of the same dataset. Returns
/// - `open_ended_likelihood` = `loglik_matching_minus_not` − its unsteered value, per
///   input and multiplier (with the `open_ended_likelihood` metric);
/// - `steerability_slope` / `steerability_r2`: the OLS fit of each input's propensity
///   against the multiplier (multiplier NaN), for inputs measured at two or more
///   distinct multipliers (with the `steerability` metric). Non-finite points are left
///   out of the fit.
pub fn derive_scores(
    sweep: &[ScoreRow],
    unsteered: &[ScoreRow],
    metrics: &[Metric],
) -> Result<Vec<ScoreRow>> {
    let mut out = Vec::new();
    let derived = |s: &ScoreRow, multiplier: f64, metric: ScoreMetric, value: f64| ScoreRow {
        multiplier,
        metric,
        value,
        ..s.clone()
    };
    if ScoreMetric::OpenEndedLikelihood.wanted_by(metrics) {
        let base: BTreeMap<&str, f64> = unsteered
            .iter()
            .filter(|s| s.metric == ScoreMetric::LoglikMatchingMinusNot)
            .map(|s| (s.example_id.as_str(), s.value))
            .collect();
        for s in sweep
            .iter()
            .filter(|s| s.metric == ScoreMetric::LoglikMatchingMinusNot)
        {
            if let Some(b) = base.get(s.example_id.as_str()) {
                out.push(derived(
                    s,
                    s.multiplier,
                    ScoreMetric::OpenEndedLikelihood,
                    s.value - b,
                ));
            }
        }
    }
    if ScoreMetric::SteerabilitySlope.wanted_by(metrics) {
        // Input → (its first row, as the template of derived rows; (multiplier, value) points).
        type Points<'a> = (&'a ScoreRow, Vec<(f32, f32)>);
        let mut points: BTreeMap<&str, Points> = BTreeMap::new();
        for s in sweep.iter().filter(|s| {
            s.metric == ScoreMetric::Propensity && s.value.is_finite() && s.multiplier.is_finite()
        }) {
            points
                .entry(&s.example_id)
                .or_insert((s, Vec::new()))
                .1
                .push((s.multiplier as f32, s.value as f32));
        }
        for (first, pts) in points.values() {
            let mut xs: Vec<u32> = pts.iter().map(|(x, _)| x.to_bits()).collect();
            xs.sort_unstable();
            xs.dedup();
            if xs.len() < 2 {
                continue;
            }
            let (x, y): (Vec<f32>, Vec<f32>) = pts.iter().copied().unzip();
            let fit = fit_line(&x, &y)?;
            out.push(derived(
                first,
                f64::NAN,
                ScoreMetric::SteerabilitySlope,
                fit.slope as f64,
            ));
            if let Some(r2) = fit.r2 {
                out.push(derived(
                    first,
                    f64::NAN,
                    ScoreMetric::SteerabilityR2,
                    r2 as f64,
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{Condition, MethodKind};

    fn row(id: &str, method: Condition, mult: f64, metric: ScoreMetric, value: f64) -> ScoreRow {
        ScoreRow {
            example_id: id.into(),
            dataset: "d.val".into(),
            split: "val".into(),
            method,
            layer: Some(3),
            multiplier: mult,
            position: "all".into(),
            metric,
            value,
        }
    }

    #[test]
    fn slopes_per_input_and_relative_likelihood() {
        let caa = Condition::Steered(MethodKind::Caa);
        let p = ScoreMetric::Propensity;
        let ll = ScoreMetric::LoglikMatchingMinusNot;
        let sweep = vec![
            row("a", caa, -1.0, p, -2.0),
            row("a", caa, 0.0, p, 0.0),
            row("a", caa, 1.0, p, 2.0),
            // b goes the wrong way: anti-steerable.
            row("b", caa, -1.0, p, 1.0),
            row("b", caa, 1.0, p, -1.0),
            // c has one finite point only: no fit.
            row("c", caa, -1.0, p, 1.0),
            row("c", caa, 1.0, p, f64::NAN),
            row("a", caa, 1.0, ll, 5.0),
        ];
        let unsteered = vec![row("a", Condition::UNSTEERED, 0.0, ll, 1.5)];
        let all = [Metric::Steerability, Metric::OpenEndedLikelihood];
        let d = derive_scores(&sweep, &unsteered, &all).unwrap();
        let get = |id: &str, m: ScoreMetric| {
            d.iter()
                .find(|s| s.example_id == id && s.metric == m)
                .map(|s| s.value)
        };
        assert!((get("a", ScoreMetric::SteerabilitySlope).unwrap() - 2.0).abs() < 1e-6);
        assert!((get("a", ScoreMetric::SteerabilityR2).unwrap() - 1.0).abs() < 1e-6);
        assert!((get("b", ScoreMetric::SteerabilitySlope).unwrap() + 1.0).abs() < 1e-6);
        assert_eq!(get("c", ScoreMetric::SteerabilitySlope), None);
        assert_eq!(get("a", ScoreMetric::OpenEndedLikelihood), Some(3.5));
        assert!(d
            .iter()
            .filter(|s| s.metric == ScoreMetric::SteerabilitySlope)
            .all(|s| s.multiplier.is_nan() && s.layer == Some(3)));
        // Nothing derived that was not asked for.
        assert!(derive_scores(&sweep, &unsteered, &[Metric::Propensity])
            .unwrap()
            .is_empty());
    }
}
