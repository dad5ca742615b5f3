//! The data behind the plots: dose-response curves, the layer × multiplier heat map
//! and the per-input slope distributions.

use std::collections::{BTreeMap, BTreeSet};

use steerbench_report as rep;

use super::inputs::Evaluated;
use super::{label, Reported};
use crate::tables::{MethodKind, ScoreMetric};

/// Mean propensity / A/B probability against multiplier per (dataset, method, layer),
/// and the propensity heat map, on the reported split. Controls are drawn too: a flat
/// control curve beside a rising method curve is the point of the plot.
pub fn curves(e: &Evaluated, reported: &Reported) -> (Vec<rep::Curve>, Vec<rep::HeatCell>) {
    type Key = (String, MethodKind, Option<usize>, ScoreMetric);
    let mut curves: BTreeMap<Key, Vec<rep::CurvePoint>> = BTreeMap::new();
    let mut heat = Vec::new();
    for a in e
        .aggregates
        .iter()
        .filter(|a| reported.is_reported_agg(a) && a.multiplier.is_finite() && has_curve(a.metric))
    {
        let Some(method) = a.method.method() else {
            continue;
        };
        let dataset = label(&a.dataset, &a.position);
        curves
            .entry((dataset.clone(), method, a.layer, a.metric))
            .or_default()
            .push(rep::CurvePoint {
                multiplier: a.multiplier,
                mean: a.mean,
                ci_low: a.ci_low.is_finite().then_some(a.ci_low),
                ci_high: a.ci_high.is_finite().then_some(a.ci_high),
            });
        if let (ScoreMetric::Propensity, Some(layer)) = (a.metric, a.layer) {
            heat.push(rep::HeatCell {
                dataset,
                method: method.to_string(),
                metric: a.metric.to_string(),
                layer,
                multiplier: a.multiplier,
                value: a.mean,
            });
        }
    }
    let curves = curves
        .into_iter()
        .map(|((dataset, method, layer, metric), mut points)| {
            points.sort_by(|a, b| a.multiplier.total_cmp(&b.multiplier));
            rep::Curve {
                dataset,
                method: method.to_string(),
                layer,
                metric: metric.to_string(),
                points,
            }
        })
        .collect();
    (curves, heat)
}

/// Whether a metric gets a dose-response curve (exhaustive: a new metric must decide).
fn has_curve(m: ScoreMetric) -> bool {
    use ScoreMetric::*;
    match m {
        Propensity | AbProbability => true,
        PAShare | PropensityNorm | LoglikMatchingMinusNot | OpenEndedLikelihood | IclAccuracy => {
            false
        }
        // Per-input fits and generation scores have no multiplier sweep.
        SteerabilitySlope | SteerabilityR2 | GenConceptSimilarity | GenFluencyPpl
        | GenDistinct1 | GenDistinct2 | GenToolCallValid | GenToolCallJson => false,
        // Degradation metrics have their own tables.
        Perplexity | KlUnsteered | McAccuracy | ToolAccuracy => false,
    }
}

/// Per-input steerability slopes at each selected (dataset, method, layer, position),
/// on the reported split.
pub fn slopes(e: &Evaluated) -> Vec<rep::SlopeSet> {
    let chosen: BTreeSet<(&str, MethodKind, Option<usize>, &str, &str)> = e
        .selection
        .iter()
        .map(|s| {
            (
                s.dataset.as_str(),
                s.method,
                s.layer,
                s.position.as_str(),
                s.reported_on.as_str(),
            )
        })
        .collect();
    chosen
        .into_iter()
        .filter_map(|(dataset, method, layer, position, split)| {
            let slopes: Vec<f64> = e
                .scores
                .iter()
                .filter(|s| {
                    s.metric == ScoreMetric::SteerabilitySlope
                        && crate::analysis::index::base_name(&s.dataset) == dataset
                        && s.split == split
                        && s.method.method() == Some(method)
                        && s.layer == layer
                        && s.position == position
                        && s.value.is_finite()
                })
                .map(|s| s.value)
                .collect();
            (!slopes.is_empty()).then(|| rep::SlopeSet {
                dataset: label(dataset, position),
                method: method.to_string(),
                layer,
                slopes,
            })
        })
        .collect()
}
