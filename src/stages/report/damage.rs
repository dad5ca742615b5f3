//! Degradation beside the effects: perplexity, KL and multiple-choice accuracy at each
//! chosen setting and across the sweep, the effect–KL Pareto points, and the caution
//! for a benchmark that stays at chance.

use steerbench_report as rep;

use super::inputs::{Degraded, Evaluated};
use super::{est, Reported};
use crate::tables::{AggregateRow, Condition, ScoreMetric};

fn at(
    aggs: &[AggregateRow],
    method: Condition,
    layer: Option<usize>,
    multiplier: f64,
    metric: ScoreMetric,
) -> Option<rep::Estimate> {
    aggs.iter()
        .find(|a| {
            a.method == method
                && a.layer == layer
                && a.multiplier == multiplier
                && a.metric == metric
        })
        .map(|a| est(a.mean, a.ci_low, a.ci_high))
}

/// The degradation tables and the Pareto points (effect on the reported split against
/// KL at the same setting).
pub fn degradation(
    e: &Evaluated,
    d: &Degraded,
    reported: &Reported,
) -> (rep::Degradation, Vec<rep::ParetoPoint>) {
    let mut out = rep::Degradation::default();
    let mut pareto = Vec::new();
    if d.aggregates.is_empty() {
        return (out, pareto);
    }
    let base = |m| at(&d.aggregates, Condition::UNSTEERED, None, 0.0, m);
    let base_ppl = base(ScoreMetric::Perplexity);
    out.unsteered = Some(rep::DegradationReference {
        perplexity: base_ppl,
        mc_accuracy: base(ScoreMetric::McAccuracy),
    });
    for s in &d.settings {
        let method = Condition::Steered(s.method);
        let get = |m| at(&d.aggregates, method, s.layer, s.multiplier, m);
        let ppl = get(ScoreMetric::Perplexity);
        let kl = get(ScoreMetric::KlUnsteered);
        let row = rep::DegradationRow {
            dataset: None,
            method: s.method.to_string(),
            layer: s.layer,
            multiplier: s.multiplier,
            perplexity_ratio: match (ppl, base_ppl) {
                (Some(p), Some(b)) if b.value > 0.0 => Some(p.value / b.value),
                _ => None,
            },
            perplexity: ppl,
            kl,
            mc_accuracy: get(ScoreMetric::McAccuracy),
        };
        if s.chosen {
            out.at_chosen.push(rep::DegradationRow {
                dataset: Some(s.chosen_for.clone()),
                ..row.clone()
            });
        }
        out.sweep.push(row);
        let Some(kl) = kl else { continue };
        for a in e.aggregates.iter().filter(|a| {
            reported.is_reported_agg(a)
                && a.method == method
                && a.layer == s.layer
                && a.multiplier == s.multiplier
                && a.metric == ScoreMetric::Propensity
                && a.position == "all"
        }) {
            let unsteered = e.aggregates.iter().find(|u| {
                u.method == Condition::UNSTEERED
                    && u.dataset == a.dataset
                    && u.metric == ScoreMetric::Propensity
            });
            if let Some(u) = unsteered {
                pareto.push(rep::ParetoPoint {
                    dataset: a.dataset.clone(),
                    method: s.method.to_string(),
                    layer: s.layer.unwrap_or(0),
                    multiplier: s.multiplier,
                    effect: a.mean - u.mean,
                    degradation: kl.value,
                });
            }
        }
    }
    out.sweep.sort_by(|a, b| {
        (a.method.as_str(), a.layer, a.multiplier.to_bits()).cmp(&(
            b.method.as_str(),
            b.layer,
            b.multiplier.to_bits(),
        ))
    });
    (out, pareto)
}

/// A caution when multiple-choice accuracy cannot tell settings apart: every setting's
/// 95% CI, the unsteered model's included, contains chance accuracy.
pub fn cautions(d: &Degraded) -> Vec<rep::Caution> {
    let Some(chance) = d.mc_chance else {
        return Vec::new();
    };
    let mc: Vec<&AggregateRow> = d
        .aggregates
        .iter()
        .filter(|a| a.metric == ScoreMetric::McAccuracy && a.n > 0)
        .collect();
    at_chance(&mc, chance)
        .map(|(lo, hi)| rep::Caution {
            metric: ScoreMetric::McAccuracy.to_string(),
            dataset: mc.first().map(|a| a.dataset.clone()),
            chance,
            observed_low: lo,
            observed_high: hi,
        })
        .into_iter()
        .collect()
}

/// (lowest, highest) mean when every row's CI contains `chance` (a row without a CI
/// counts when its mean equals chance); None otherwise or without rows.
pub fn at_chance(rows: &[&AggregateRow], chance: f64) -> Option<(f64, f64)> {
    let contains = |a: &&AggregateRow| {
        if a.ci_low.is_finite() && a.ci_high.is_finite() {
            a.ci_low <= chance && chance <= a.ci_high
        } else {
            (a.mean - chance).abs() < 1e-9
        }
    };
    if rows.is_empty() || !rows.iter().all(contains) {
        return None;
    }
    let lo = rows.iter().map(|a| a.mean).fold(f64::INFINITY, f64::min);
    let hi = rows
        .iter()
        .map(|a| a.mean)
        .fold(f64::NEG_INFINITY, f64::max);
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(mean: f64, lo: f64, hi: f64) -> AggregateRow {
        AggregateRow {
            dataset: "mc.test".into(),
            split: "test".into(),
            method: Condition::UNSTEERED,
            layer: None,
            multiplier: 0.0,
            position: "all".into(),
            metric: ScoreMetric::McAccuracy,
            n: 16,
            mean,
            std: 0.4,
            ci_low: lo,
            ci_high: hi,
            frac_negative: 0.0,
        }
    }

    #[test]
    fn flags_a_benchmark_at_chance_only() {
        let a = agg(0.25, 0.06, 0.44);
        let b = agg(0.31, 0.12, 0.5);
        assert_eq!(at_chance(&[&a, &b], 0.25), Some((0.25, 0.31)));
        // The unsteered model is clearly above chance: informative.
        let good = agg(0.8, 0.6, 0.95);
        assert_eq!(at_chance(&[&good, &a], 0.25), None);
        assert_eq!(at_chance(&[], 0.25), None);
    }
}
