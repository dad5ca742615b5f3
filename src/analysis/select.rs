//! Directional selection, with controls held to the chosen setting.
//!
//! For every (dataset, method, position) and each direction:
//! - *toward*: among the settings with a positive multiplier, the (layer, multiplier)
//!   with the highest mean propensity on the selection split (`val`, else the only
//!   split evaluated);
//! - *away*: among negative multipliers, the lowest mean propensity.
//!
//! Ties go to the smaller |multiplier| (less intervention), then the lower layer.
//! The choice is reported on `test` (else the selection split) as the paired effect
//! against unsteered. Controls (`random`, `shuffled`) are never selected: each is read
//! at exactly the setting chosen for the method it controls, and the method's margin
//! over it is `method − control` per input, bootstrapped over inputs. Effects and
//! margins are signed alike: toward, the method beats its control when the margin is
//! positive; away, when it is negative.

use std::collections::{BTreeMap, BTreeSet};

use steerbench_steering::metrics::stats::{self, mean_std, select_best};

use super::index::{ScoreIndex, SettingKey};
use super::paired::paired_effect;
use crate::tables::{
    Condition, ControlRow, Direction, MethodKind, ScoreMetric, ScoreRow, SelectionRow,
};

/// The selection table and the controls at each selected setting.
#[derive(Debug, Default)]
pub struct Selected {
    pub selection: Vec<SelectionRow>,
    pub controls: Vec<ControlRow>,
}

/// One candidate setting and its validation score (larger is better after the sign).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub layer: Option<usize>,
    pub multiplier: f64,
    pub score: f64,
}

/// The best candidate: highest `score`; ties to the smaller |multiplier|, then the
/// lower layer (all-layer methods, `None`, last), then the smaller multiplier
/// ([`select_best`]). NaN scores never win; None when no candidate has a score.
pub fn best(candidates: &[Candidate]) -> Option<Candidate> {
    let ranked: Vec<stats::Candidate> = candidates
        .iter()
        .map(|c| stats::Candidate {
            layer: c.layer.unwrap_or(usize::MAX),
            multiplier: c.multiplier as f32,
            score: c.score as f32,
        })
        .collect();
    let b = select_best(&ranked).ok()?;
    candidates
        .iter()
        .zip(&ranked)
        .find(|(_, r)| **r == b)
        .map(|(c, _)| *c)
}

fn mean(values: &BTreeMap<String, f64>) -> f64 {
    let xs: Vec<f32> = values.values().map(|v| *v as f32).collect();
    mean_std(&xs).map_or(f64::NAN, |(m, _)| m as f64)
}

/// Splits of a dataset: (selected on, reported on).
fn splits_of(index: &ScoreIndex, dataset: &str) -> Option<(String, String)> {
    let splits: BTreeSet<&str> = index
        .keys()
        .filter(|k| k.dataset == dataset)
        .map(|k| k.split.as_str())
        .collect();
    let sel = if splits.contains("val") {
        "val"
    } else {
        splits.iter().next()?
    };
    let rep = if splits.contains("test") { "test" } else { sel };
    Some((sel.to_string(), rep.to_string()))
}

/// Selects every (dataset, method, position, direction) of `scores` (see module docs).
pub fn select(scores: &[ScoreRow], seed: u64) -> Selected {
    let index = ScoreIndex::new(scores);
    // (dataset, method, position) of every steered, non-control propensity score.
    let groups: BTreeSet<(String, MethodKind, String)> = index
        .keys()
        .filter(|k| k.metric == ScoreMetric::Propensity)
        .filter_map(|k| match k.method {
            Condition::Steered(m) if !m.is_control() => {
                Some((k.dataset.clone(), m, k.position.clone()))
            }
            _ => None,
        })
        .collect();
    let controls: BTreeSet<MethodKind> = index
        .keys()
        .filter_map(|k| k.method.method())
        .filter(|m| m.is_control())
        .collect();
    let mut out = Selected::default();
    for (dataset, method, position) in groups {
        let Some((sel_split, rep_split)) = splits_of(&index, &dataset) else {
            continue;
        };
        let key = |split: &str, method: MethodKind, layer, multiplier, metric| SettingKey {
            dataset: dataset.clone(),
            split: split.to_string(),
            method: Condition::Steered(method),
            layer,
            multiplier,
            position: position.clone(),
            metric,
        };
        let Some(unsteered) = index.unsteered(&dataset, &rep_split, ScoreMetric::Propensity) else {
            continue;
        };
        for direction in Direction::ALL.iter().copied() {
            let candidates: Vec<Candidate> = index
                .iter()
                .filter(|(k, _)| {
                    k.dataset == dataset
                        && k.split == sel_split
                        && k.method == Condition::Steered(method)
                        && k.position == position
                        && k.metric == ScoreMetric::Propensity
                        && direction.admits(k.multiplier())
                })
                .map(|(k, v)| Candidate {
                    layer: k.layer,
                    multiplier: k.multiplier(),
                    score: direction.sign() * mean(v),
                })
                .collect();
            let Some(chosen) = best(&candidates) else {
                continue;
            };
            let mk = super::mult_key(chosen.multiplier);
            let Some(steered) = index.get(&key(
                &rep_split,
                method,
                chosen.layer,
                mk,
                ScoreMetric::Propensity,
            )) else {
                continue;
            };
            let effect = paired_effect(steered, unsteered, 1.0, seed);
            // Steerability: the per-input fits at the chosen layer and position.
            let fits = |metric: ScoreMetric| -> Vec<f32> {
                index
                    .iter()
                    .filter(|(k, _)| {
                        k.dataset == dataset
                            && k.split == rep_split
                            && k.method == Condition::Steered(method)
                            && k.layer == chosen.layer
                            && k.position == position
                            && k.metric == metric
                    })
                    .flat_map(|(_, v)| v.values().map(|x| *x as f32))
                    .collect()
            };
            let slopes = fits(ScoreMetric::SteerabilitySlope);
            let (sm, ss) =
                mean_std(&slopes).map_or((f64::NAN, f64::NAN), |(m, s)| (m as f64, s as f64));
            let r2 =
                mean_std(&fits(ScoreMetric::SteerabilityR2)).map_or(f64::NAN, |(m, _)| m as f64);
            out.selection.push(SelectionRow {
                dataset: dataset.clone(),
                method,
                position: position.clone(),
                direction,
                selected_on: sel_split.clone(),
                reported_on: rep_split.clone(),
                layer: chosen.layer,
                multiplier: chosen.multiplier,
                val_score: direction.sign() * chosen.score,
                effect: effect.map_or(f64::NAN, |e| e.mean),
                effect_ci_low: effect.map_or(f64::NAN, |e| e.ci_low),
                effect_ci_high: effect.map_or(f64::NAN, |e| e.ci_high),
                standardized_effect: effect.map_or(f64::NAN, |e| e.standardized),
                steerability_mean: sm,
                steerability_std: ss,
                anti_steerable_fraction: if slopes.is_empty() {
                    f64::NAN
                } else {
                    slopes.iter().filter(|x| **x < 0.0).count() as f64 / slopes.len() as f64
                },
                r2_mean: r2,
                n: effect.map_or(0, |e| e.n),
            });
            for &control in &controls {
                let Some(c) = index.get(&key(
                    &rep_split,
                    control,
                    chosen.layer,
                    mk,
                    ScoreMetric::Propensity,
                )) else {
                    continue;
                };
                let ce = paired_effect(c, unsteered, 1.0, seed);
                let margin = paired_effect(steered, c, 1.0, seed);
                out.controls.push(ControlRow {
                    dataset: dataset.clone(),
                    method,
                    position: position.clone(),
                    direction,
                    control,
                    layer: chosen.layer,
                    multiplier: chosen.multiplier,
                    effect: ce.map_or(f64::NAN, |e| e.mean),
                    effect_ci_low: ce.map_or(f64::NAN, |e| e.ci_low),
                    effect_ci_high: ce.map_or(f64::NAN, |e| e.ci_high),
                    margin: margin.map_or(f64::NAN, |e| e.mean),
                    margin_ci_low: margin.map_or(f64::NAN, |e| e.ci_low),
                    margin_ci_high: margin.map_or(f64::NAN, |e| e.ci_high),
                    n: margin.map_or(0, |e| e.n),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ScoreMetric = ScoreMetric::Propensity;

    fn s(
        split: &str,
        method: Condition,
        layer: Option<usize>,
        mult: f64,
        id: &str,
        v: f64,
    ) -> ScoreRow {
        ScoreRow {
            example_id: id.into(),
            dataset: format!("d.{split}"),
            split: split.into(),
            method,
            layer,
            multiplier: mult,
            position: if method == Condition::UNSTEERED {
                "none"
            } else {
                "all"
            }
            .into(),
            metric: P,
            value: v,
        }
    }

    /// Three inputs per split, each at `values` (one per input).
    fn setting(
        split: &str,
        method: Condition,
        layer: Option<usize>,
        mult: f64,
        values: [f64; 3],
    ) -> Vec<ScoreRow> {
        ["a", "b", "c"]
            .iter()
            .zip(values)
            .map(|(id, v)| s(split, method, layer, mult, id, v))
            .collect()
    }

    const CAA: Condition = Condition::Steered(MethodKind::Caa);
    const RANDOM: Condition = Condition::Steered(MethodKind::Random);
    const SHUFFLED: Condition = Condition::Steered(MethodKind::Shuffled);

    #[test]
    fn best_breaks_ties_by_less_intervention_then_lower_layer() {
        let c = |layer, multiplier, score| Candidate {
            layer,
            multiplier,
            score,
        };
        let b = best(&[
            c(Some(6), 2.0, 1.0),
            c(Some(3), 1.0, 1.0),
            c(Some(9), 1.0, 1.0),
        ])
        .unwrap();
        assert_eq!((b.layer, b.multiplier), (Some(3), 1.0));
        let b = best(&[c(Some(6), 2.0, f64::NAN), c(Some(3), 1.0, 0.5)]).unwrap();
        assert_eq!(b.layer, Some(3));
        assert!(best(&[c(Some(1), 1.0, f64::NAN)]).is_none());
        assert!(best(&[]).is_none());
    }

    /// Val decides; test reports. Toward picks the largest positive-multiplier mean,
    /// away the smallest negative-multiplier mean; a negative multiplier never wins
    /// toward even when it moves the metric more.
    #[test]
    fn directional_choice_on_val_reported_on_test() {
        let mut rows = Vec::new();
        for split in ["val", "test"] {
            rows.extend(setting(
                split,
                Condition::UNSTEERED,
                None,
                0.0,
                [0.0, 0.0, 0.0],
            ));
            rows.extend(setting(split, CAA, Some(1), 1.0, [1.0, 1.0, 1.0]));
            rows.extend(setting(split, CAA, Some(2), 1.0, [2.0, 2.0, 2.0]));
            rows.extend(setting(split, CAA, Some(1), -1.0, [-3.0, -3.0, -3.0]));
            // A huge increase at a negative multiplier: not a toward candidate.
            rows.extend(setting(split, CAA, Some(2), -1.0, [9.0, 9.0, 9.0]));
        }
        // On test the layer-2 toward setting is weaker than on val: reported as measured.
        for r in rows.iter_mut() {
            if r.split == "test" && r.layer == Some(2) && r.multiplier == 1.0 {
                r.value = 0.5;
            }
        }
        let sel = select(&rows, 0).selection;
        assert_eq!(sel.len(), 2);
        let toward = sel
            .iter()
            .find(|x| x.direction == Direction::Toward)
            .unwrap();
        assert_eq!((toward.layer, toward.multiplier), (Some(2), 1.0));
        assert_eq!(
            (toward.selected_on.as_str(), toward.reported_on.as_str()),
            ("val", "test")
        );
        assert_eq!(toward.val_score, 2.0);
        assert_eq!(toward.effect, 0.5);
        assert_eq!(toward.n, 3);
        let away = sel.iter().find(|x| x.direction == Direction::Away).unwrap();
        assert_eq!((away.layer, away.multiplier), (Some(1), -1.0));
        assert_eq!(away.val_score, -3.0);
        assert_eq!(away.effect, -3.0);
    }

    /// Controls are not selected on their own; they are read at the method's setting,
    /// and the margin is signed by direction.
    #[test]
    fn controls_at_the_methods_setting() {
        let mut rows = setting("test", Condition::UNSTEERED, None, 0.0, [0.0, 0.0, 0.0]);
        rows.extend(setting("test", CAA, Some(1), 1.0, [3.0, 2.0, 4.0]));
        rows.extend(setting("test", CAA, Some(1), -1.0, [-2.0, -2.0, -2.0]));
        rows.extend(setting("test", RANDOM, Some(1), 1.0, [1.0, 0.0, 2.0]));
        rows.extend(setting("test", RANDOM, Some(1), -1.0, [0.0, 0.0, 0.0]));
        // The shuffled control's best setting (layer 2) is not where CAA was chosen.
        rows.extend(setting("test", SHUFFLED, Some(1), 1.0, [0.0, 0.0, 0.0]));
        rows.extend(setting("test", SHUFFLED, Some(2), 1.0, [50.0, 50.0, 50.0]));
        let out = select(&rows, 0);
        assert!(out.selection.iter().all(|x| x.method == MethodKind::Caa));
        assert_eq!(out.selection.len(), 2);
        let c = |dir, control| {
            out.controls
                .iter()
                .find(|c| c.direction == dir && c.control == control)
                .unwrap()
        };
        let r = c(Direction::Toward, MethodKind::Random);
        assert_eq!((r.layer, r.multiplier), (Some(1), 1.0));
        assert_eq!(r.effect, 1.0);
        // Per input: 3−1, 2−0, 4−2 = 2, 2, 2.
        assert_eq!(
            (r.margin, r.margin_ci_low, r.margin_ci_high),
            (2.0, 2.0, 2.0)
        );
        let sh = c(Direction::Toward, MethodKind::Shuffled);
        assert_eq!((sh.layer, sh.effect, sh.margin), (Some(1), 0.0, 3.0));
        // Away: method −2, random 0 → margin −2 (the method wins in its direction).
        let ra = c(Direction::Away, MethodKind::Random);
        assert_eq!((ra.multiplier, ra.margin), (-1.0, -2.0));
        // The shuffled control was not run at (1, −1): no row rather than a made-up one.
        assert!(out
            .controls
            .iter()
            .all(|c| !(c.direction == Direction::Away && c.control == MethodKind::Shuffled)));
    }

    /// Every input pushed the wrong way: the fraction is 1 and the selection still
    /// reports the (negative) effect honestly. NaN scores are ignored, one input works.
    #[test]
    fn all_anti_steerable_nan_and_one_input() {
        let mut rows = vec![s("val", Condition::UNSTEERED, None, 0.0, "a", 1.0)];
        rows.push(s("val", CAA, Some(0), 1.0, "a", 0.0));
        rows.push(s("val", CAA, Some(0), 2.0, "a", -1.0));
        rows.push(s("val", CAA, Some(1), 1.0, "a", f64::NAN));
        let mut slope = s("val", CAA, Some(0), f64::NAN, "a", -1.0);
        slope.metric = ScoreMetric::SteerabilitySlope;
        rows.push(slope);
        let sel = select(&rows, 0).selection;
        assert_eq!(sel.len(), 1, "no negative multipliers: no away row");
        let t = &sel[0];
        assert_eq!((t.layer, t.multiplier), (Some(0), 1.0));
        assert_eq!(
            (t.selected_on.as_str(), t.reported_on.as_str()),
            ("val", "val")
        );
        assert_eq!(
            (t.effect, t.effect_ci_low, t.effect_ci_high, t.n),
            (-1.0, -1.0, -1.0, 1)
        );
        assert!(t.standardized_effect.is_nan());
        assert_eq!(t.anti_steerable_fraction, 1.0);
        assert_eq!(t.steerability_mean, -1.0);
    }
}
