//! Conversations per turn: the effect of a setting at each scored turn and its
//! persistence (effect at turn k ÷ effect at turn 1), each with a bootstrap CI over
//! conversations.
//!
//! A conversation's scored turn k is the input `<conversation id>/turn<k>` in the score
//! rows. Effects are paired per input: steered (or baseline) minus unsteered, for
//! `propensity`, `propensity_norm` and the scores of written turns (`gen_*`: their
//! drift over turns); for `steerability_slope`, whose per-input slope is already
//! relative to the unsteered model, the value itself.

use std::collections::BTreeMap;

use steerbench_steering::metrics::stats::{bootstrap_ci, bootstrap_mean_ci};

use super::index::{mult_key, ScoreIndex, SettingKey};
use crate::tables::{Condition, ScoreMetric, ScoreRow, TurnRow};

/// `"<conversation id>/turn<k>"` → (conversation id, k).
pub fn split_turn_id(id: &str) -> Option<(&str, u32)> {
    let (conv, k) = id.rsplit_once("/turn")?;
    Some((conv, k.parse().ok()?))
}

const METRICS: [ScoreMetric; 7] = [
    ScoreMetric::Propensity,
    ScoreMetric::PropensityNorm,
    ScoreMetric::SteerabilitySlope,
    ScoreMetric::GenConceptSimilarity,
    ScoreMetric::GenFluencyPpl,
    ScoreMetric::GenDistinct1,
    ScoreMetric::GenDistinct2,
];

/// Per-turn rows for every steered setting (multiplier ≠ 0) and baseline of the given
/// (conversation) score rows, in setting order then turn order.
pub fn turn_table(scores: &[ScoreRow], seed: u64) -> Vec<TurnRow> {
    let index = ScoreIndex::new(scores);
    let cfg = super::bootstrap(seed);
    let mut out = Vec::new();
    for (key, values) in index.iter() {
        if !METRICS.contains(&key.metric)
            || key.method == Condition::UNSTEERED
            || (matches!(key.method, Condition::Steered(_)) && key.multiplier == mult_key(0.0))
        {
            continue;
        }
        let base = if key.metric == ScoreMetric::SteerabilitySlope {
            None
        } else {
            let unsteered = SettingKey {
                method: Condition::UNSTEERED,
                layer: None,
                multiplier: mult_key(0.0),
                position: "none".into(),
                ..key.clone()
            };
            match index.get(&unsteered) {
                Some(b) => Some(b),
                None => continue,
            }
        };
        // conversation → turn → delta
        let mut deltas: BTreeMap<&str, BTreeMap<u32, f64>> = BTreeMap::new();
        for (id, v) in values {
            let Some((conv, k)) = split_turn_id(id) else {
                continue;
            };
            let d = match base {
                Some(b) => match b.get(id) {
                    Some(u) => v - u,
                    None => continue,
                },
                None => *v,
            };
            deltas.entry(conv).or_default().insert(k, d);
        }
        let turns: std::collections::BTreeSet<u32> =
            deltas.values().flat_map(|t| t.keys().copied()).collect();
        let first = turns.first().copied();
        for &k in &turns {
            let at_k: Vec<f32> = deltas
                .values()
                .filter_map(|t| t.get(&k))
                .map(|&d| d as f32)
                .collect();
            let effect = bootstrap_mean_ci(&at_k, &cfg).ok();
            // Conversations scored at both the first turn and turn k.
            let pairs: Vec<(f64, f64)> = deltas
                .values()
                .filter_map(|t| Some((*t.get(&k)?, *t.get(&first?)?)))
                .collect();
            let persistence = persistence_ci(&pairs, &cfg);
            out.push(TurnRow {
                dataset: key.dataset.clone(),
                split: key.split.clone(),
                method: key.method,
                layer: key.layer,
                multiplier: key.multiplier(),
                position: key.position.clone(),
                metric: key.metric,
                turn: k,
                n: at_k.len() as u32,
                effect: effect.map_or(f64::NAN, |c| c.estimate as f64),
                effect_ci_low: effect.map_or(f64::NAN, |c| c.lo as f64),
                effect_ci_high: effect.map_or(f64::NAN, |c| c.hi as f64),
                persistence: persistence.0,
                persistence_ci_low: persistence.1,
                persistence_ci_high: persistence.2,
            });
        }
    }
    out
}

/// mean(at k) / mean(at the first turn) over conversations `(at k, at first)`, and its
/// percentile bootstrap CI resampling conversations; NaN where the first turn's mean is
/// 0 or there are fewer than 2 conversations for a CI.
fn persistence_ci(
    pairs: &[(f64, f64)],
    cfg: &steerbench_steering::metrics::stats::BootstrapConfig,
) -> (f64, f64, f64) {
    let ratio = |ix: &mut dyn Iterator<Item = usize>| -> f32 {
        let (mut a, mut b, mut n) = (0.0, 0.0, 0.0);
        for i in ix {
            a += pairs[i].0;
            b += pairs[i].1;
            n += 1.0;
        }
        if n == 0.0 || b == 0.0 {
            f32::NAN
        } else {
            ((a / n) / (b / n)) as f32
        }
    };
    let estimate = ratio(&mut (0..pairs.len())) as f64;
    if pairs.len() < 2 || !estimate.is_finite() {
        return (estimate, f64::NAN, f64::NAN);
    }
    // Resample conversation indices (as values) and compute the ratio on each draw; a
    // draw whose first-turn mean is 0 gives NaN, which sorts last and is rare.
    let idx: Vec<f32> = (0..pairs.len()).map(|i| i as f32).collect();
    match bootstrap_ci(&idx, cfg, |s| ratio(&mut s.iter().map(|&x| x as usize))) {
        Ok(ci) => (estimate, ci.lo as f64, ci.hi as f64),
        Err(_) => (estimate, f64::NAN, f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::MethodKind;

    fn row(id: &str, method: Condition, mult: f64, metric: ScoreMetric, value: f64) -> ScoreRow {
        let steered = method != Condition::UNSTEERED;
        ScoreRow {
            example_id: id.into(),
            dataset: "conv.test".into(),
            split: "test".into(),
            method,
            layer: steered.then_some(3),
            multiplier: mult,
            position: if steered { "first_turn" } else { "none" }.into(),
            metric,
            value,
        }
    }

    #[test]
    fn effect_and_persistence_per_turn_by_hand() {
        let caa = Condition::Steered(MethodKind::Caa);
        let p = ScoreMetric::Propensity;
        let mut rows = Vec::new();
        // Unsteered 0 everywhere; steered deltas: conversation a: 2, 1; b: 4, 2; c: 6, 0.
        for (conv, d1, d2) in [("a", 2.0, 1.0), ("b", 4.0, 2.0), ("c", 6.0, 0.0)] {
            for (k, d) in [(1, d1), (2, d2)] {
                let id = format!("{conv}/turn{k}");
                rows.push(row(&id, Condition::UNSTEERED, 0.0, p, 10.0));
                rows.push(row(&id, caa, 2.0, p, 10.0 + d));
                rows.push(row(&id, caa, 0.0, p, 10.0)); // multiplier 0: left out
            }
        }
        let t = turn_table(&rows, 7);
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!((t[0].turn, t[0].n, t[0].effect), (1, 3, 4.0));
        assert_eq!(t[0].persistence, 1.0);
        assert_eq!((t[1].turn, t[1].effect), (2, 1.0));
        assert_eq!(t[1].persistence, 0.25);
        assert!(t[1].persistence_ci_low <= 0.25 && 0.25 <= t[1].persistence_ci_high);
        assert!(t[1].effect_ci_low <= 1.0 && t[1].effect_ci_high >= 1.0);
        assert_eq!(t[0].position, "first_turn");
        // Deterministic in the seed.
        assert_eq!(turn_table(&rows, 7), t);
    }

    #[test]
    fn turn_ids_parse_and_zero_first_effect_has_no_persistence() {
        assert_eq!(split_turn_id("x/y/turn12"), Some(("x/y", 12)));
        assert_eq!(split_turn_id("plain"), None);
        assert!(
            persistence_ci(&[(1.0, 0.0), (1.0, 0.0)], &crate::analysis::bootstrap(1))
                .0
                .is_nan()
        );
    }
}
