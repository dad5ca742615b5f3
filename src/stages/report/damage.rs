//! Degradation beside the effects: perplexity, KL, multiple-choice and tool accuracy at each
//! chosen setting and across the sweep, the effect–KL Pareto points, and the caution
//! for a benchmark that stays at chance.

use std::collections::BTreeSet;

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
/// KL at the same setting). With several degradation inputs (a matrix: one per behaviour,
/// each with its own vectors) each is read on its own, so a setting two of them measured
/// keeps each one's numbers; its Pareto points pair it with the datasets of the evaluate
/// stages that used the same vectors.
pub fn degradation(
    e: &Evaluated,
    d: &Degraded,
    reported: &Reported,
) -> (rep::Degradation, Vec<rep::ParetoPoint>) {
    if d.stages.len() < 2 {
        return degradation_of(e, d, reported, None);
    }
    let mut out = rep::Degradation::default();
    let mut pareto = Vec::new();
    for (_, inputs, one) in &d.stages {
        let datasets: BTreeSet<&str> = e
            .stages
            .iter()
            .filter(|s| s.inputs.iter().any(|i| inputs.contains(i)))
            .flat_map(|s| s.selection.iter().map(|r| r.dataset.as_str()))
            .collect();
        let only = (!datasets.is_empty()).then_some(&datasets);
        let (dg, points) = degradation_of(e, one, reported, only);
        out.unsteered = out.unsteered.or(dg.unsteered);
        out.at_chosen.extend(dg.at_chosen);
        out.sweep.extend(dg.sweep);
        pareto.extend(points);
    }
    sort_sweep(&mut out.sweep);
    (out, pareto)
}

fn sort_sweep(sweep: &mut [rep::DegradationRow]) {
    sweep.sort_by(|a, b| {
        (a.method.as_str(), a.layer, a.multiplier.to_bits()).cmp(&(
            b.method.as_str(),
            b.layer,
            b.multiplier.to_bits(),
        ))
    });
}

/// [`degradation`] of one set of degradation tables; Pareto points only on `only`'s
/// datasets (base names) when given.
fn degradation_of(
    e: &Evaluated,
    d: &Degraded,
    reported: &Reported,
    only: Option<&BTreeSet<&str>>,
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
        tool_accuracy: base(ScoreMetric::ToolAccuracy),
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
            tool_accuracy: get(ScoreMetric::ToolAccuracy),
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
            only.is_none_or(|o| o.contains(crate::analysis::index::base_name(&a.dataset)))
                && reported.is_reported_agg(a)
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
    sort_sweep(&mut out.sweep);
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

    /// Two degradation stages (one per behaviour) measured the same setting with different
    /// vectors: each keeps its own numbers, against its own unsteered perplexity.
    #[test]
    fn several_degradation_stages_keep_their_own_numbers() {
        use crate::tables::{MethodKind, SettingRow};
        let ppl = |method: Condition, layer, multiplier, mean| AggregateRow {
            dataset: "corpus.test".into(),
            method,
            layer,
            multiplier,
            metric: ScoreMetric::Perplexity,
            ..agg(mean, mean, mean)
        };
        let stage = |name: &str, vectors: &str, steered: f64| {
            let caa = Condition::Steered(MethodKind::Caa);
            (
                name.to_string(),
                vec![vectors.to_string(), format!("sweep[{name}]")],
                Degraded {
                    aggregates: vec![
                        ppl(Condition::UNSTEERED, None, 0.0, 10.0),
                        ppl(caa, Some(1), 1.0, steered),
                    ],
                    settings: vec![SettingRow {
                        method: MethodKind::Caa,
                        layer: Some(1),
                        multiplier: 1.0,
                        chosen: true,
                        chosen_for: format!("ab[{name}]"),
                    }],
                    mc_chance: None,
                    stages: Vec::new(),
                },
            )
        };
        let stages = vec![stage("a", "vec[a]", 12.0), stage("b", "vec[b]", 15.0)];
        let mut all = Degraded::default();
        for (_, _, one) in &stages {
            all.aggregates.extend(one.aggregates.iter().cloned());
            all.settings.extend(one.settings.iter().cloned());
        }
        all.stages = stages;
        let e = Evaluated::default();
        let (deg, _) = degradation(&e, &all, &Reported::new(&[]));
        let got: Vec<(Option<&str>, Option<f64>)> = deg
            .at_chosen
            .iter()
            .map(|r| (r.dataset.as_deref(), r.perplexity_ratio))
            .collect();
        assert_eq!(
            got,
            [(Some("ab[a]"), Some(1.2)), (Some("ab[b]"), Some(1.5))]
        );
        assert_eq!(deg.sweep.len(), 2);
    }
}
