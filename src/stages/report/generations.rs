//! Generation sections: mean scores per condition, and side-by-side continuations.

use std::collections::BTreeMap;

use steerbench_report as rep;

use super::inputs::Evaluated;
use super::{est, label};
use crate::tables::{Condition, Direction, ScoreMetric};

/// Mean generation scores per (dataset split, condition).
pub fn quality(e: &Evaluated) -> Vec<rep::GenerationQualityRow> {
    type Key = (String, Condition, Option<usize>, u64, String);
    let mut groups: BTreeMap<Key, rep::GenerationQualityRow> = BTreeMap::new();
    for a in &e.aggregates {
        let field = match a.metric {
            ScoreMetric::GenConceptSimilarity
            | ScoreMetric::GenFluencyPpl
            | ScoreMetric::GenDistinct2
            | ScoreMetric::GenToolCallJson
            | ScoreMetric::GenToolCallValid => a.metric,
            _ => continue,
        };
        let key = (
            a.dataset.clone(),
            a.method,
            a.layer,
            a.multiplier.to_bits(),
            a.position.clone(),
        );
        let row = groups
            .entry(key)
            .or_insert_with(|| rep::GenerationQualityRow {
                dataset: if a.position == "none" {
                    a.dataset.clone()
                } else {
                    label(&a.dataset, &a.position)
                },
                method: a.method.to_string(),
                layer: a.layer,
                multiplier: (a.method != Condition::UNSTEERED).then_some(a.multiplier),
                concept_similarity: None,
                fluency_ppl: None,
                distinct_2: None,
                tool_call_json: None,
                tool_call_valid: None,
                n: None,
            });
        let v = Some(est(a.mean, a.ci_low, a.ci_high));
        match field {
            ScoreMetric::GenConceptSimilarity => row.concept_similarity = v,
            ScoreMetric::GenFluencyPpl => {
                row.fluency_ppl = v;
                row.n = Some(a.n as usize);
            }
            ScoreMetric::GenToolCallJson => row.tool_call_json = v,
            ScoreMetric::GenToolCallValid => {
                row.tool_call_valid = v;
                row.n = row.n.or(Some(a.n as usize));
            }
            _ => row.distinct_2 = v,
        }
    }
    groups.into_values().collect()
}

/// Per dataset split, the first `k` prompts unsteered and under the method with the
/// largest *toward* effect that has generations there.
pub fn examples(e: &Evaluated, k: usize) -> Vec<rep::GenerationRow> {
    // Distinct dataset splits in first-seen order (rows need not be grouped).
    let mut datasets: Vec<&str> = Vec::new();
    for g in &e.generations {
        if !datasets.contains(&g.dataset.as_str()) {
            datasets.push(&g.dataset);
        }
    }
    let mut out = Vec::new();
    for d in datasets {
        let base = crate::analysis::index::base_name(d);
        let best = e
            .selection
            .iter()
            .filter(|s| {
                s.dataset == base && s.direction == Direction::Toward && s.effect.is_finite()
            })
            .filter(|s| {
                e.generations.iter().any(|g| {
                    g.dataset == d
                        && g.method == Condition::Steered(s.method)
                        && g.position == s.position
                })
            })
            .max_by(|a, b| a.effect.total_cmp(&b.effect));
        let Some(best) = best else { continue };
        let unsteered: BTreeMap<&str, &str> = e
            .generations
            .iter()
            .filter(|g| g.dataset == d && g.method == Condition::UNSTEERED)
            .map(|g| (g.example_id.as_str(), g.text.as_str()))
            .collect();
        for g in e
            .generations
            .iter()
            .filter(|g| {
                g.dataset == d
                    && g.method == Condition::Steered(best.method)
                    && g.position == best.position
            })
            .take(k)
        {
            out.push(rep::GenerationRow {
                dataset: Some(d.to_string()),
                prompt: g.prompt.clone(),
                unsteered: unsteered
                    .get(g.example_id.as_str())
                    .unwrap_or(&"")
                    .to_string(),
                steered: g.text.clone(),
                method: g.method.to_string(),
                layer: g.layer,
                multiplier: g.multiplier,
            });
        }
    }
    out
}
