//! The conversations section: effect and persistence per turn, per turn scope, for each
//! method at its setting chosen toward the behaviour, and for the prompting baselines;
//! propensity, and the drift of the written turns' concept similarity and fluency.

use steerbench_report as rep;

use super::inputs::Evaluated;
use super::{est, Reported};
use crate::analysis::index::base_name;
use crate::tables::{Condition, Direction, ScoreMetric, TurnRow};

/// The turn points of the reported split, in (dataset, scope, method, turn) order.
pub fn points(e: &Evaluated, reported: &Reported) -> Vec<rep::TurnPoint> {
    let shown = |t: &TurnRow| -> bool {
        let metric_shown = matches!(
            t.metric,
            ScoreMetric::Propensity
                | ScoreMetric::GenConceptSimilarity
                | ScoreMetric::GenFluencyPpl
        );
        if !metric_shown || !reported.is_reported(&t.dataset, &t.split) {
            return false;
        }
        match t.method {
            Condition::Baseline(_) => true,
            Condition::Steered(m) => e.selection.iter().any(|s| {
                s.direction == Direction::Toward
                    && s.method == m
                    && s.dataset == base_name(&t.dataset)
                    && s.reported_on == t.split
                    && s.layer == t.layer
                    && s.multiplier == t.multiplier
                    && s.position == t.position
            }),
        }
    };
    let mut out: Vec<rep::TurnPoint> = e
        .turns
        .iter()
        .filter(|t| shown(t))
        .map(|t| rep::TurnPoint {
            dataset: t.dataset.clone(),
            scope: t.position.clone(),
            method: t.method.to_string(),
            layer: t.layer,
            multiplier: matches!(t.method, Condition::Steered(_)).then_some(t.multiplier),
            metric: t.metric.to_string(),
            turn: t.turn,
            n: t.n as usize,
            effect: est(t.effect, t.effect_ci_low, t.effect_ci_high),
            persistence: t
                .persistence
                .is_finite()
                .then(|| est(t.persistence, t.persistence_ci_low, t.persistence_ci_high)),
        })
        .collect();
    let scope_rank = |s: &str| {
        ["all_turns", "first_turn", "current_turn", "user_turns"]
            .iter()
            .position(|x| *x == s)
            .unwrap_or(usize::MAX)
    };
    // Propensity first, then the written turns' scores; within a metric by scope.
    let key = |p: &rep::TurnPoint| {
        (
            p.dataset.clone(),
            p.metric != "propensity",
            p.metric.clone(),
            scope_rank(&p.scope),
            p.method.clone(),
            p.turn,
        )
    };
    out.sort_by_key(key);
    out
}
