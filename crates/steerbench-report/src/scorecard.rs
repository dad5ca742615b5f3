//! The cross-behaviour scorecard: per behaviour (one `evaluate` stage) and method, the
//! standardised effect toward the behaviour, the margin over the method's controls, the
//! anti-steerable share and the degradation, all at the setting the main table shows
//! (chosen on validation toward the behaviour, evaluated on test); and one summary row per
//! method across the behaviours.
//!
//! Pure: [`build`] only rearranges numbers the pipeline already computed (each behaviour's
//! `Toward` [`MainRow`]s and its [`Degradation`] rows); it selects nothing and bootstraps
//! nothing.
//! Rendering is in [`crate::tables::scorecard`] and the report template.
//!
//! Definitions (docs/outputs.md repeats them):
//! - *standardised effect*: `MainRow::metrics.standardized_effect` (steered minus unsteered
//!   mean over the unsteered standard deviation `sd`). Its CI is the effect's paired
//!   bootstrap CI divided by the same `sd`, recovered as `effect / standardised effect`
//!   (both are computed on the same paired inputs); without a usable `sd` (an effect of
//!   exactly 0, or no standardised effect) the CI is left out.
//! - *steerable*: the effect's 95% CI lies above zero (a CI wholly below zero is *wrong way*
//!   and not steerable). The same test on the standardised scale, since `sd > 0`.
//! - *margin*: [`MainRow::weakest_margin`], the method's effect minus that of the control
//!   with the largest effect at the same setting (paired over inputs), divided by `sd`.
//! - *degradation*: from [`Behaviour::degradation`] (measured with that behaviour's own
//!   vectors), the row at the same (method, layer, multiplier), chosen rows first, then the
//!   sweep; `None` when no degradation stage measured that setting with those vectors.

use serde::Serialize;

use crate::data::{
    BaselineKind, Behaviour, Degradation, DegradationRow, Direction, Estimate, MainRow,
};
use crate::format as f;
use crate::tables::perplexity_ratio;

/// Degradation measured at one setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SettingDamage {
    /// Steered / unsteered perplexity on the held-out corpus.
    pub perplexity_ratio: Option<f64>,
    /// KL(unsteered ‖ steered) of next-token distributions on neutral prompts, in nats.
    pub kl: Option<Estimate>,
}

/// One behaviour × method (× dataset, where a behaviour's stage selected on several).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorecardRow {
    /// [`Behaviour::label`].
    pub behaviour: String,
    /// [`Behaviour::stage`].
    pub stage: String,
    /// The main row's dataset (with its position when not `all`).
    pub dataset: String,
    pub method: String,
    pub metric: String,
    pub layer: Option<usize>,
    pub multiplier: Option<f64>,
    /// The effect in the metric's units, with its CI (as in the main table).
    pub effect: Option<Estimate>,
    /// The standardised effect, with the effect's CI on the same scale when known.
    pub standardized_effect: Option<Estimate>,
    /// The effect's 95% CI lies above zero.
    pub steerable: bool,
    /// The effect's 95% CI lies below zero: steering toward moved the metric the other way.
    pub wrong_way: bool,
    /// The control behind `margin` (the one with the largest effect at this setting).
    pub margin_control: Option<BaselineKind>,
    /// Effect minus that control's effect, paired over inputs, in the metric's units.
    pub margin: Option<Estimate>,
    /// `margin` over the unsteered standard deviation (with its CI); `None` without `sd`.
    pub standardized_margin: Option<Estimate>,
    /// Every control's margin CI lies above zero ([`MainRow::beats_every_control`]);
    /// `None` when no control margin with a CI was evaluated.
    pub beats_controls: Option<bool>,
    pub anti_steerable_fraction: Option<f64>,
    /// `None`: no degradation stage measured this setting (the report says `n/a`).
    pub degradation: Option<SettingDamage>,
    pub n: Option<usize>,
}

/// One method across the behaviours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodSummary {
    pub method: String,
    /// Scorecard rows of this method (behaviours it was evaluated and selected on).
    pub rows: usize,
    /// Mean standardised effect over the rows that have one.
    pub mean_standardized_effect: Option<f64>,
    /// How many rows have a (finite) standardised effect.
    pub with_standardized_effect: usize,
    /// Rows whose effect CI lies above zero.
    pub steerable: usize,
    /// Rows that beat every control (margin CIs above zero), out of `with_controls`.
    pub beats_controls: usize,
    pub with_controls: usize,
    /// Rows whose setting a degradation stage measured.
    pub degradation_measured: usize,
    /// The largest perplexity ratio and KL over the measured rows.
    pub worst_perplexity_ratio: Option<f64>,
    pub worst_kl: Option<f64>,
}

/// A behaviour's label and stage, as the report's text names them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BehaviourName {
    pub label: String,
    pub stage: String,
}

/// The scorecard of a report with two or more behaviours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scorecard {
    pub behaviours: Vec<BehaviourName>,
    /// Behaviour order, then dataset order within it, then method order.
    pub rows: Vec<ScorecardRow>,
    /// One per method, in the rows' method order.
    pub summary: Vec<MethodSummary>,
    /// What a summary's `rows` is out of: the number of behaviours, counting a behaviour
    /// once per dataset when its stage selected on several (`per_dataset`).
    pub total: usize,
    /// Some behaviour's stage selected on more than one dataset (or position): rows are
    /// per behaviour × dataset, and the table shows the dataset.
    pub per_dataset: bool,
    /// Some behaviour has degradation data (a degradation stage among the report's inputs
    /// steered with its vectors).
    pub degradation_stage: bool,
    /// Rows whose setting no degradation stage measured.
    pub unmeasured: usize,
}

/// Labels for behaviours given as (stage name, its distinct dataset names): the cell value
/// of a stage named `name[cell]` (a matrix cell); else the stage's dataset when it evaluated
/// exactly one (it names the behaviour better than a generic stage name like `effect`); else
/// the stage name. Labels that would repeat fall back to `cell (name)` for a matrix cell
/// (the same behaviour evaluated by two matrix stages, e.g. A/B and open-ended), else to
/// the (unique) stage name.
pub fn behaviour_labels(stages: &[(&str, Vec<&str>)]) -> Vec<String> {
    let preferred: Vec<String> = stages
        .iter()
        .map(|(stage, datasets)| {
            if let Some(cell) = matrix_cell(stage) {
                cell.to_string()
            } else if let [only] = datasets.as_slice() {
                only.to_string()
            } else {
                stage.to_string()
            }
        })
        .collect();
    preferred
        .iter()
        .zip(stages)
        .map(|(label, (stage, _))| {
            if preferred.iter().filter(|l| *l == label).count() > 1 {
                match (matrix_cell(stage), stage.split_once('[')) {
                    (Some(cell), Some((name, _))) => format!("{cell} ({name})"),
                    _ => stage.to_string(),
                }
            } else {
                label.clone()
            }
        })
        .collect()
}

/// `cell` of `name[cell]` (non-empty name and cell), else None.
fn matrix_cell(stage: &str) -> Option<&str> {
    let inner = stage.strip_suffix(']')?;
    let open = inner.find('[')?;
    let cell = &inner[open + 1..];
    (open > 0 && !cell.is_empty() && !cell.contains('[')).then_some(cell)
}

/// The unsteered standard deviation behind a standardised effect, `effect / std. effect`,
/// when it is a positive finite number.
fn unsteered_sd(effect: Option<Estimate>, standardized: Option<Estimate>) -> Option<f64> {
    let sd = effect?.value / standardized?.value;
    (sd.is_finite() && sd > 0.0).then_some(sd)
}

fn scaled(e: Estimate, sd: f64) -> Estimate {
    Estimate {
        value: e.value / sd,
        ci_low: e.ci_low.map(|x| x / sd),
        ci_high: e.ci_high.map(|x| x / sd),
    }
}

fn same_multiplier(a: f64, b: f64) -> bool {
    f::snap(a, a) == f::snap(b, b)
}

/// Degradation at (method, layer, multiplier): a chosen-setting row first, else a sweep row.
fn damage_at(
    deg: &Degradation,
    method: &str,
    layer: Option<usize>,
    multiplier: Option<f64>,
) -> Option<SettingDamage> {
    let m = multiplier?;
    let same = |d: &&DegradationRow| {
        d.method == method && d.layer == layer && same_multiplier(d.multiplier, m)
    };
    let d = deg
        .at_chosen
        .iter()
        .find(same)
        .or_else(|| deg.sweep.iter().find(same))?;
    Some(SettingDamage {
        perplexity_ratio: perplexity_ratio(d, deg).filter(|x| x.is_finite()),
        kl: d.kl.filter(|k| k.value.is_finite()),
    })
}

fn row(b: &Behaviour, r: &MainRow) -> ScorecardRow {
    let m = &r.metrics;
    let effect = m.effect;
    let sd = unsteered_sd(effect, m.standardized_effect);
    let standardized_effect = m.standardized_effect.map(|s| match (sd, effect) {
        (Some(sd), Some(e)) => Estimate {
            value: s.value,
            ci_low: e.ci_low.map(|x| x / sd),
            ci_high: e.ci_high.map(|x| x / sd),
        },
        _ => s,
    });
    let weakest = r.weakest_margin();
    let has_margin_ci = r.controls.iter().any(|c| {
        c.margin
            .is_some_and(|m| m.ci_low.is_some() && m.ci_high.is_some())
    });
    ScorecardRow {
        behaviour: b.label.clone(),
        stage: b.stage.clone(),
        dataset: r.dataset.clone(),
        method: r.method.clone(),
        metric: r.metric.clone(),
        layer: r.best_layer,
        multiplier: r.best_multiplier,
        effect,
        standardized_effect,
        steerable: effect.is_some_and(|e| e.ci_low.is_some_and(|lo| lo > 0.0)),
        wrong_way: effect.is_some_and(|e| e.ci_high.is_some_and(|hi| hi < 0.0)),
        margin_control: weakest.map(|(k, _)| k),
        margin: weakest.map(|(_, m)| m),
        standardized_margin: weakest.and_then(|(_, m)| Some(scaled(m, sd?))),
        beats_controls: has_margin_ci.then(|| r.beats_every_control()),
        anti_steerable_fraction: m.anti_steerable_fraction.filter(|x| x.is_finite()),
        degradation: b
            .degradation
            .as_ref()
            .and_then(|deg| damage_at(deg, &r.method, r.best_layer, r.best_multiplier)),
        n: m.n,
    }
}

fn max_of(xs: impl Iterator<Item = f64>) -> Option<f64> {
    xs.filter(|x| x.is_finite()).fold(None, |acc, x| match acc {
        Some(a) if a >= x => Some(a),
        _ => Some(x),
    })
}

fn summarise(method: &str, rows: &[&ScorecardRow]) -> MethodSummary {
    let std: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.standardized_effect.map(|e| e.value))
        .filter(|v| v.is_finite())
        .collect();
    let measured: Vec<&SettingDamage> =
        rows.iter().filter_map(|r| r.degradation.as_ref()).collect();
    MethodSummary {
        method: method.to_string(),
        rows: rows.len(),
        mean_standardized_effect: (!std.is_empty())
            .then(|| std.iter().sum::<f64>() / std.len() as f64),
        with_standardized_effect: std.len(),
        steerable: rows.iter().filter(|r| r.steerable).count(),
        beats_controls: rows
            .iter()
            .filter(|r| r.beats_controls == Some(true))
            .count(),
        with_controls: rows.iter().filter(|r| r.beats_controls.is_some()).count(),
        degradation_measured: measured.len(),
        worst_perplexity_ratio: max_of(measured.iter().filter_map(|d| d.perplexity_ratio)),
        worst_kl: max_of(measured.iter().filter_map(|d| d.kl.map(|k| k.value))),
    }
}

/// A behaviour's `Toward` rows.
fn toward(b: &Behaviour) -> Vec<&MainRow> {
    b.main
        .iter()
        .filter(|r| r.direction == Direction::Toward)
        .collect()
}

/// The distinct datasets of a behaviour's `Toward` rows, in row order.
fn toward_datasets(b: &Behaviour) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for r in b.main.iter().filter(|r| r.direction == Direction::Toward) {
        if !out.contains(&r.dataset.as_str()) {
            out.push(&r.dataset);
        }
    }
    out
}

/// The scorecard, or None with fewer than two behaviours (the report then has none).
/// Each behaviour contributes the `Toward` rows of its own [`Behaviour::main`].
pub fn build(behaviours: &[Behaviour]) -> Option<Scorecard> {
    if behaviours.len() < 2 {
        return None;
    }
    let mut methods: Vec<&str> = Vec::new();
    for b in behaviours {
        for r in toward(b) {
            if !methods.contains(&r.method.as_str()) {
                methods.push(&r.method);
            }
        }
    }
    let mut rows = Vec::new();
    for b in behaviours {
        let own = toward(b);
        for dataset in toward_datasets(b) {
            for method in &methods {
                rows.extend(
                    own.iter()
                        .filter(|r| r.dataset == dataset && r.method == *method)
                        .map(|r| row(b, r)),
                );
            }
        }
    }
    let summary = methods
        .iter()
        .map(|m| {
            let of: Vec<&ScorecardRow> = rows.iter().filter(|r| r.method == *m).collect();
            summarise(m, &of)
        })
        .collect();
    let unmeasured = rows.iter().filter(|r| r.degradation.is_none()).count();
    Some(Scorecard {
        behaviours: behaviours
            .iter()
            .map(|b| BehaviourName {
                label: b.label.clone(),
                stage: b.stage.clone(),
            })
            .collect(),
        total: behaviours
            .iter()
            .map(|b| toward_datasets(b).len().max(1))
            .sum(),
        per_dataset: behaviours.iter().any(|b| toward_datasets(b).len() > 1),
        degradation_stage: behaviours.iter().any(|b| b.degradation.is_some()),
        unmeasured,
        rows,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ControlEffect, DegradationReference, EffectMetrics};

    /// A behaviour of stage `sweep[label]` holding the rows of `main` on its datasets.
    fn behaviour(label: &str, datasets: &[&str], main: &[MainRow]) -> Behaviour {
        Behaviour {
            label: label.into(),
            stage: format!("sweep[{label}]"),
            main: main
                .iter()
                .filter(|r| datasets.contains(&r.dataset.as_str()))
                .cloned()
                .collect(),
            degradation: None,
        }
    }

    fn measured(mut b: Behaviour, deg: &Degradation) -> Behaviour {
        b.degradation = Some(deg.clone());
        b
    }

    /// A toward row: effect `e` [lo, hi], standardised effect `s`, at layer 2, ×1.
    fn main_row(dataset: &str, method: &str, e: [f64; 3], s: f64) -> MainRow {
        MainRow {
            dataset: dataset.into(),
            method: method.into(),
            metric: "propensity".into(),
            direction: Direction::Toward,
            best_layer: Some(2),
            best_multiplier: Some(1.0),
            metrics: EffectMetrics {
                effect: Some(Estimate::with_ci(e[0], e[1], e[2])),
                standardized_effect: Some(Estimate::new(s)),
                anti_steerable_fraction: Some(0.25),
                n: Some(8),
                ..Default::default()
            },
            controls: Vec::new(),
        }
    }

    fn control(kind: BaselineKind, effect: f64, margin: [f64; 3]) -> ControlEffect {
        ControlEffect {
            kind,
            effect: Some(Estimate::new(effect)),
            margin: Some(Estimate::with_ci(margin[0], margin[1], margin[2])),
        }
    }

    fn deg_row(method: &str, multiplier: f64, ppl: f64, kl: f64) -> DegradationRow {
        DegradationRow {
            dataset: Some("x".into()),
            method: method.into(),
            layer: Some(2),
            multiplier,
            perplexity: Some(Estimate::new(ppl)),
            perplexity_ratio: None,
            kl: Some(Estimate::with_ci(kl, kl / 2.0, kl * 2.0)),
            mc_accuracy: None,
            tool_accuracy: None,
        }
    }

    fn degradation(rows: Vec<DegradationRow>) -> Degradation {
        Degradation {
            unsteered: Some(DegradationReference {
                perplexity: Some(Estimate::new(10.0)),
                mc_accuracy: None,
                tool_accuracy: None,
            }),
            at_chosen: rows,
            sweep: Vec::new(),
        }
    }

    #[test]
    fn labels_prefer_the_matrix_cell_then_the_only_dataset_then_the_stage() {
        let labels = behaviour_labels(&[
            ("sweep[refusal]", vec!["refusal_ab", "refusal_open"]),
            ("effect", vec!["sentiment_ab"]),
            ("mixed", vec!["a", "b"]),
            ("[odd]", vec!["c"]),
            ("x[]", vec![]),
        ]);
        assert_eq!(labels, ["refusal", "sentiment_ab", "mixed", "c", "x[]"]);
        // Two stages on the same dataset, or the same cell in two matrices: stage names.
        let labels = behaviour_labels(&[
            ("a", vec!["d"]),
            ("b", vec!["d"]),
            ("sweep[x]", vec!["e"]),
            ("other[x]", vec!["f"]),
        ]);
        assert_eq!(labels, ["a", "b", "x (sweep)", "x (other)"]);
    }

    #[test]
    fn fewer_than_two_behaviours_have_no_scorecard() {
        let main = [main_row("d", "caa", [1.0, 0.5, 1.5], 0.5)];
        assert!(build(&[]).is_none());
        assert!(build(&[behaviour("one", &["d"], &main)]).is_none());
    }

    /// Two behaviours, two methods; `pca` was not selected on `b`; each behaviour's
    /// degradation is its own (its vectors differ). Exact numbers throughout.
    #[test]
    fn rows_and_summary_on_a_tiny_example() {
        let mut caa_a = main_row("da", "caa", [2.0, 1.0, 3.0], 0.5); // sd 4
        caa_a.controls = vec![
            control(BaselineKind::Random, 0.25, [1.75, 1.0, 2.5]),
            control(BaselineKind::Shuffled, 1.0, [1.0, 0.25, 1.75]),
        ];
        let mut caa_b = main_row("db", "caa", [0.5, -0.5, 1.5], 0.25); // sd 2, CI spans 0
        caa_b.controls = vec![control(BaselineKind::Random, 0.5, [0.0, -1.0, 1.0])];
        let pca_a = main_row("da", "pca", [-1.0, -2.0, -0.5], -1.0); // sd 1, wrong way
                                                                     // An away row and a row of a dataset no behaviour lists never enter.
        let mut away = main_row("da", "caa", [-3.0, -4.0, -2.0], -0.75);
        away.direction = Direction::Away;
        let stray = main_row("elsewhere", "probe", [9.0, 8.0, 10.0], 3.0);
        let main = vec![caa_a, pca_a, caa_b, away, stray];
        let deg_a = degradation(vec![deg_row("caa", 1.0, 12.0, 0.5)]);
        let deg_b = degradation(vec![deg_row("caa", 1.0, 14.0, 0.75)]);
        let b = [
            measured(behaviour("a", &["da"], &main), &deg_a),
            measured(behaviour("b", &["db"], &main), &deg_b),
        ];
        let sc = build(&b).unwrap();

        assert_eq!(
            (sc.total, sc.per_dataset, sc.degradation_stage),
            (2, false, true)
        );
        let keys: Vec<(&str, &str)> = sc
            .rows
            .iter()
            .map(|r| (r.behaviour.as_str(), r.method.as_str()))
            .collect();
        assert_eq!(keys, [("a", "caa"), ("a", "pca"), ("b", "caa")]);

        let r = &sc.rows[0];
        assert_eq!(r.stage, "sweep[a]");
        assert_eq!(
            r.standardized_effect,
            Some(Estimate::with_ci(0.5, 0.25, 0.75))
        );
        assert!(r.steerable && !r.wrong_way);
        // The weakest margin is over the shuffled vector (the control with the larger effect).
        assert_eq!(r.margin_control, Some(BaselineKind::Shuffled));
        assert_eq!(r.margin, Some(Estimate::with_ci(1.0, 0.25, 1.75)));
        assert_eq!(
            r.standardized_margin,
            Some(Estimate::with_ci(0.25, 0.0625, 0.4375))
        );
        assert_eq!(r.beats_controls, Some(true));
        assert_eq!(r.anti_steerable_fraction, Some(0.25));
        assert_eq!(
            r.degradation,
            Some(SettingDamage {
                perplexity_ratio: Some(1.2),
                kl: Some(Estimate::with_ci(0.5, 0.25, 1.0)),
            })
        );

        let p = &sc.rows[1];
        assert_eq!(
            p.standardized_effect,
            Some(Estimate::with_ci(-1.0, -2.0, -0.5))
        );
        assert!(!p.steerable && p.wrong_way);
        assert_eq!((p.margin, p.beats_controls), (None, None));
        assert_eq!(p.degradation, None, "pca's setting was not measured");

        let c = &sc.rows[2];
        assert_eq!(
            c.standardized_effect,
            Some(Estimate::with_ci(0.25, -0.25, 0.75))
        );
        assert!(!c.steerable && !c.wrong_way);
        assert_eq!(
            c.standardized_margin,
            Some(Estimate::with_ci(0.0, -0.5, 0.5))
        );
        assert_eq!(c.beats_controls, Some(false));
        assert_eq!(
            c.degradation,
            Some(SettingDamage {
                perplexity_ratio: Some(1.4),
                kl: Some(Estimate::with_ci(0.75, 0.375, 1.5)),
            })
        );
        assert_eq!(sc.unmeasured, 1);

        assert_eq!(
            sc.summary,
            [
                MethodSummary {
                    method: "caa".into(),
                    rows: 2,
                    mean_standardized_effect: Some(0.375),
                    with_standardized_effect: 2,
                    steerable: 1,
                    beats_controls: 1,
                    with_controls: 2,
                    degradation_measured: 2,
                    worst_perplexity_ratio: Some(1.4),
                    worst_kl: Some(0.75),
                },
                MethodSummary {
                    method: "pca".into(),
                    rows: 1,
                    mean_standardized_effect: Some(-1.0),
                    with_standardized_effect: 1,
                    steerable: 0,
                    beats_controls: 0,
                    with_controls: 0,
                    degradation_measured: 0,
                    worst_perplexity_ratio: None,
                    worst_kl: None,
                },
            ]
        );
    }

    #[test]
    fn degradation_from_the_sweep_and_worst_over_measured_settings() {
        let mut a = main_row("da", "caa", [1.0, 0.5, 1.5], 0.5);
        a.best_multiplier = Some(0.30000000000000004);
        let mut b = main_row("db", "caa", [1.0, 0.5, 1.5], 0.5);
        b.best_multiplier = Some(2.0);
        let c = main_row("dc", "caa", [1.0, 0.5, 1.5], 0.5);
        let main = [a, b, c];
        let mut deg = degradation(vec![deg_row("caa", 0.3, 11.0, 0.25)]);
        deg.sweep = vec![
            deg_row("caa", 2.0, 15.0, 2.0),
            deg_row("caa", 0.3, 99.0, 9.0),
        ];
        let b3 = [
            measured(behaviour("a", &["da"], &main), &deg),
            measured(behaviour("b", &["db"], &main), &deg),
            measured(behaviour("c", &["dc"], &main), &deg),
        ];
        let sc = build(&b3).unwrap();
        // 0.3 matches 0.30000000000000004, and the chosen row wins over the sweep's.
        assert_eq!(sc.rows[0].degradation.unwrap().perplexity_ratio, Some(1.1));
        assert_eq!(sc.rows[1].degradation.unwrap().perplexity_ratio, Some(1.5));
        assert_eq!(sc.rows[2].degradation, None);
        let s = &sc.summary[0];
        assert_eq!((s.rows, s.degradation_measured), (3, 2));
        assert_eq!(
            (s.worst_perplexity_ratio, s.worst_kl),
            (Some(1.5), Some(2.0))
        );
        assert_eq!(s.steerable, 3);
    }

    #[test]
    fn without_a_degradation_stage_nothing_is_measured() {
        let main = [
            main_row("da", "caa", [1.0, 0.5, 1.5], 0.5),
            main_row("db", "caa", [1.0, 0.5, 1.5], 0.5),
        ];
        let b = [
            behaviour("a", &["da"], &main),
            behaviour("b", &["db"], &main),
        ];
        let sc = build(&b).unwrap();
        assert!(!sc.degradation_stage);
        assert_eq!(sc.unmeasured, 2);
        assert!(sc.rows.iter().all(|r| r.degradation.is_none()));
        assert_eq!(sc.summary[0].worst_kl, None);
    }

    /// No usable sd (an effect of exactly 0, a missing standardised effect, a CI-less effect):
    /// the standardised effect keeps its value without a CI and the margin is not scaled.
    #[test]
    fn standardised_ci_needs_the_unsteered_sd() {
        let mut zero = main_row("da", "caa", [0.0, -1.0, 1.0], 0.0);
        zero.controls = vec![control(BaselineKind::Random, 0.5, [-0.5, -1.0, 0.0])];
        let mut none = main_row("db", "caa", [1.0, 0.5, 1.5], 0.0);
        none.metrics.standardized_effect = None;
        let mut no_ci = main_row("dc", "caa", [1.0, 1.0, 1.0], 0.5);
        no_ci.metrics.effect = Some(Estimate::new(1.0));
        let main = [zero, none, no_ci];
        let b = [
            behaviour("a", &["da"], &main),
            behaviour("b", &["db"], &main),
            behaviour("c", &["dc"], &main),
        ];
        let sc = build(&b).unwrap();
        assert_eq!(sc.rows[0].standardized_effect, Some(Estimate::new(0.0)));
        assert_eq!(sc.rows[0].margin, Some(Estimate::with_ci(-0.5, -1.0, 0.0)));
        assert_eq!(sc.rows[0].standardized_margin, None);
        assert_eq!(sc.rows[1].standardized_effect, None);
        assert!(
            sc.rows[1].steerable,
            "steerable is read on the effect's own CI"
        );
        assert_eq!(sc.rows[2].standardized_effect, Some(Estimate::new(0.5)));
        assert!(!sc.rows[2].steerable, "no CI, not counted as steerable");
        let s = &sc.summary[0];
        assert_eq!((s.with_standardized_effect, s.rows, s.steerable), (2, 3, 1));
        assert_eq!(s.mean_standardized_effect, Some(0.25));
    }

    /// A behaviour whose stage selected on two datasets gets one row per dataset.
    #[test]
    fn several_datasets_per_behaviour() {
        let main = [
            main_row("ab", "caa", [1.0, 0.5, 1.5], 0.5),
            main_row("open (last)", "caa", [1.0, 0.5, 1.5], 0.5),
            main_row("other", "caa", [1.0, 0.5, 1.5], 0.5),
        ];
        let b = [
            behaviour("a", &["ab", "open (last)"], &main),
            behaviour("b", &["other"], &main),
        ];
        let sc = build(&b).unwrap();
        assert_eq!((sc.total, sc.per_dataset), (3, true));
        let ds: Vec<&str> = sc.rows.iter().map(|r| r.dataset.as_str()).collect();
        assert_eq!(ds, ["ab", "open (last)", "other"]);
    }

    /// Two stages on the same dataset (a matrix over layers): each behaviour shows only
    /// its own stage's rows, and its own degradation.
    #[test]
    fn behaviours_sharing_a_dataset_keep_their_own_rows() {
        let mut at3 = main_row("d", "caa", [1.0, 0.5, 1.5], 0.5);
        at3.best_layer = Some(3);
        let mut at5 = main_row("d", "caa", [2.0, 1.0, 3.0], 1.0);
        at5.best_layer = Some(5);
        let mut deg5 = degradation(vec![deg_row("caa", 1.0, 20.0, 1.0)]);
        deg5.at_chosen[0].layer = Some(5);
        let b = [
            behaviour("a,3", &["d"], std::slice::from_ref(&at3)),
            measured(behaviour("a,5", &["d"], std::slice::from_ref(&at5)), &deg5),
        ];
        let sc = build(&b).unwrap();
        let got: Vec<(&str, Option<usize>, f64)> = sc
            .rows
            .iter()
            .map(|r| {
                (
                    r.behaviour.as_str(),
                    r.layer,
                    r.standardized_effect.unwrap().value,
                )
            })
            .collect();
        assert_eq!(got, [("a,3", Some(3), 0.5), ("a,5", Some(5), 1.0)]);
        assert_eq!(sc.rows[0].degradation, None);
        assert_eq!(sc.rows[1].degradation.unwrap().perplexity_ratio, Some(2.0));
        assert_eq!((sc.total, sc.per_dataset), (2, false));
        assert_eq!(sc.summary[0].mean_standardized_effect, Some(0.75));
    }
}
