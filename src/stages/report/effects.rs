//! Sections about effects: the setup, the main table (per direction, with controls),
//! the prompting baselines, the letter bias and the ICL table.

use std::collections::{BTreeMap, BTreeSet};

use steerbench_report as rep;

use super::inputs::{Degraded, Evaluated};
use super::{est, fin, label, Reported};
use crate::analysis::{mult_key, paired_effect, ScoreIndex, SettingKey};
use crate::tables::names::BaselineCondition;
use crate::tables::{
    AggregateRow, Condition, ControlRow, Direction, MethodKind, ScoreMetric, SelectionRow,
};

/// Methods, layers, multipliers, positions, split sizes and metrics evaluated.
pub fn setup(e: &Evaluated) -> rep::Setup {
    let steered = || e.aggregates.iter().filter(|a| a.method.method().is_some());
    let methods: BTreeSet<MethodKind> = steered().filter_map(|a| a.method.method()).collect();
    let layers: BTreeSet<usize> = e.aggregates.iter().filter_map(|a| a.layer).collect();
    let mut multipliers: Vec<f64> = steered()
        .map(|a| a.multiplier)
        .filter(|m| m.is_finite())
        .collect();
    multipliers.sort_by(f64::total_cmp);
    multipliers.dedup();
    let positions: BTreeSet<&str> = steered().map(|a| a.position.as_str()).collect();
    let metrics: BTreeSet<ScoreMetric> = e.aggregates.iter().map(|a| a.metric).collect();
    let mut sizes: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for a in e
        .aggregates
        .iter()
        .filter(|a| a.method == Condition::UNSTEERED && a.metric == ScoreMetric::Propensity)
    {
        let s = sizes
            .entry(crate::analysis::index::base_name(&a.dataset))
            .or_default();
        match a.split.as_str() {
            "train" => s.0 = a.n as usize,
            "val" => s.1 = a.n as usize,
            _ => s.2 = a.n as usize,
        }
    }
    rep::Setup {
        methods: methods.iter().map(|m| m.to_string()).collect(),
        layers: layers.into_iter().collect(),
        multipliers,
        positions: positions.into_iter().map(str::to_string).collect(),
        splits: sizes
            .into_iter()
            .map(|(dataset, (train, val, test))| rep::SplitInfo {
                dataset: dataset.to_string(),
                train,
                val,
                test,
            })
            .collect(),
        metrics: metrics.iter().map(|m| m.to_string()).collect(),
    }
}

/// Datasets whose propensity is log p(correct first answer token) (icl_task).
fn icl_datasets(aggs: &[AggregateRow]) -> BTreeSet<String> {
    aggs.iter()
        .filter(|a| a.metric == ScoreMetric::IclAccuracy)
        .map(|a| crate::analysis::index::base_name(&a.dataset).to_string())
        .collect()
}

fn opt_est(v: f64, lo: f64, hi: f64) -> Option<rep::Estimate> {
    v.is_finite().then(|| est(v, lo, hi))
}

/// One row per selection (method × dataset × position × direction), with its controls.
pub fn main_rows(e: &Evaluated) -> Vec<rep::MainRow> {
    rows_of(&e.selection, &e.controls, &icl_datasets(&e.aggregates))
}

/// [`main_rows`] of given selection and control rows.
fn rows_of(
    selection: &[SelectionRow],
    controls: &[ControlRow],
    icl: &BTreeSet<String>,
) -> Vec<rep::MainRow> {
    selection
        .iter()
        .map(|s| {
            let controls = controls
                .iter()
                .filter(|c| {
                    (
                        c.dataset.as_str(),
                        c.method,
                        c.position.as_str(),
                        c.direction,
                    ) == (
                        s.dataset.as_str(),
                        s.method,
                        s.position.as_str(),
                        s.direction,
                    )
                })
                .map(|c| rep::ControlEffect {
                    kind: control_kind(c.control),
                    effect: opt_est(c.effect, c.effect_ci_low, c.effect_ci_high),
                    margin: opt_est(c.margin, c.margin_ci_low, c.margin_ci_high),
                })
                .collect();
            rep::MainRow {
                dataset: label(&s.dataset, &s.position),
                method: s.method.to_string(),
                metric: if icl.contains(&s.dataset) {
                    "log p(answer)"
                } else {
                    "propensity"
                }
                .into(),
                direction: match s.direction {
                    Direction::Toward => rep::Direction::Toward,
                    Direction::Away => rep::Direction::Away,
                },
                best_layer: s.layer,
                best_multiplier: Some(s.multiplier),
                metrics: rep::EffectMetrics {
                    effect: Some(est(s.effect, s.effect_ci_low, s.effect_ci_high)),
                    standardized_effect: fin(s.standardized_effect).map(rep::Estimate::new),
                    steerability_mean: fin(s.steerability_mean),
                    steerability_std: fin(s.steerability_std),
                    anti_steerable_fraction: fin(s.anti_steerable_fraction),
                    r_squared: fin(s.r2_mean),
                    n: Some(s.n as usize),
                },
                controls,
            }
        })
        .collect()
}

/// The behaviours of the scorecard: one per `evaluate` input, labelled by
/// [`rep::scorecard::behaviour_labels`] (the matrix cell of `name[cell]`, else the
/// stage's only dataset, else the stage name), with its own main rows and the degradation
/// measured with its vectors ([`Degraded::for_stage`]).
pub fn behaviours(e: &Evaluated, d: &Degraded, reported: &Reported) -> Vec<rep::Behaviour> {
    let named: Vec<(&str, Vec<&str>)> = e
        .stages
        .iter()
        .map(|s| {
            let mut datasets: Vec<&str> = Vec::new();
            for sel in &s.selection {
                if !datasets.contains(&sel.dataset.as_str()) {
                    datasets.push(&sel.dataset);
                }
            }
            (s.stage.as_str(), datasets)
        })
        .collect();
    let icl = icl_datasets(&e.aggregates);
    rep::scorecard::behaviour_labels(&named)
        .into_iter()
        .zip(&e.stages)
        .map(|(name, s)| rep::Behaviour {
            label: name,
            stage: s.stage.clone(),
            main: rows_of(&s.selection, &s.controls, &icl),
            degradation: d
                .for_stage(s)
                .map(|own| super::damage::degradation(e, &own, reported).0),
        })
        .collect()
}

fn control_kind(m: MethodKind) -> rep::BaselineKind {
    match m {
        MethodKind::Shuffled => rep::BaselineKind::Shuffled,
        _ => rep::BaselineKind::Random,
    }
}

/// Prompting baselines (and the unsteered row) on the reported split: the paired
/// effect against unsteered on the same inputs.
pub fn baselines(e: &Evaluated, reported: &Reported, seed: u64) -> Vec<rep::BaselineRow> {
    let index = ScoreIndex::new(&e.scores);
    let mut out = Vec::new();
    for (key, values) in index.iter().filter(|(k, _)| {
        k.metric == ScoreMetric::Propensity
            && matches!(k.method, Condition::Baseline(_))
            && reported.is_reported(&k.dataset, &k.split)
    }) {
        let Condition::Baseline(b) = key.method else {
            continue;
        };
        let kind = match b {
            BaselineCondition::Unsteered => rep::BaselineKind::Unsteered,
            BaselineCondition::SystemPromptPositive => rep::BaselineKind::SystemPromptPositive,
            BaselineCondition::SystemPromptNegative => rep::BaselineKind::SystemPromptNegative,
            BaselineCondition::FewShot => rep::BaselineKind::FewShotPositive,
            // Shown in the letter-bias table.
            BaselineCondition::LetterSwap => continue,
        };
        let unsteered = SettingKey {
            method: Condition::UNSTEERED,
            layer: None,
            multiplier: mult_key(0.0),
            position: "none".into(),
            ..key.clone()
        };
        let Some(base) = index.get(&unsteered) else {
            continue;
        };
        let Some(p) = paired_effect(values, base, 1.0, seed) else {
            continue;
        };
        out.push(rep::BaselineRow {
            dataset: key.dataset.clone(),
            baseline: kind,
            metric: "propensity".into(),
            layer: None,
            multiplier: None,
            metrics: rep::EffectMetrics {
                effect: Some(rep::Estimate::with_ci(p.mean, p.ci_low, p.ci_high)),
                standardized_effect: fin(p.standardized).map(rep::Estimate::new),
                n: Some(p.n as usize),
                ..Default::default()
            },
        });
    }
    out.sort_by(|a, b| (a.dataset.as_str(), a.baseline).cmp(&(b.dataset.as_str(), b.baseline)));
    out
}

/// p(A) share unsteered, with the original and the swapped answer letters.
pub fn letter_bias(e: &Evaluated, reported: &Reported) -> Vec<rep::LetterBiasRow> {
    let share = |a: &&AggregateRow| a.metric == ScoreMetric::PAShare;
    e.aggregates
        .iter()
        .filter(share)
        .filter(|a| a.method == Condition::UNSTEERED && reported.is_reported_agg(a))
        .map(|a| {
            let swapped = e.aggregates.iter().filter(share).find(|b| {
                b.method == Condition::Baseline(BaselineCondition::LetterSwap)
                    && b.dataset == a.dataset
            });
            rep::LetterBiasRow {
                dataset: a.dataset.clone(),
                condition: "unsteered".into(),
                p_a_original: Some(est(a.mean, a.ci_low, a.ci_high)),
                p_a_swapped: swapped.map(|b| est(b.mean, b.ci_low, b.ci_high)),
                n: Some(a.n as usize),
            }
        })
        .collect()
}

/// ICL tasks: top-1 accuracy zero-shot, few-shot, and zero-shot with each method's
/// vector at its *toward* setting, on the reported split.
pub fn icl_rows(e: &Evaluated) -> Vec<rep::IclRow> {
    let find = |dataset: &str, method: Condition, pred: &dyn Fn(&AggregateRow) -> bool| {
        e.aggregates
            .iter()
            .find(|a| {
                a.dataset == dataset
                    && a.method == method
                    && a.metric == ScoreMetric::IclAccuracy
                    && pred(a)
            })
            .map(|a| (est(a.mean, a.ci_low, a.ci_high), a.n as usize))
    };
    let mut out = Vec::new();
    for s in e
        .selection
        .iter()
        .filter(|s| s.direction == Direction::Toward)
    {
        let split_ds = format!("{}.{}", s.dataset, s.reported_on);
        let Some((vector, n)) = find(&split_ds, Condition::Steered(s.method), &|a| {
            a.layer == s.layer && a.multiplier == s.multiplier && a.position == s.position
        }) else {
            continue;
        };
        out.push(rep::IclRow {
            task: label(&s.dataset, &s.position),
            method: s.method.to_string(),
            layer: s.layer,
            zero_shot: find(&split_ds, Condition::UNSTEERED, &|_| true).map(|e| e.0),
            few_shot: find(
                &split_ds,
                Condition::Baseline(BaselineCondition::FewShot),
                &|_| true,
            )
            .map(|e| e.0),
            zero_shot_vector: Some(vector),
            n: Some(n),
        });
    }
    out
}
