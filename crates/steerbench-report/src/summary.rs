//! The one-paragraph summary at the top of the report: plain sentences from the numbers,
//! saying plainly when nothing moved. It is about steering *toward* the behaviour (the
//! headline direction): the largest toward effect, its margin over the controls at the same
//! setting, how many pairs beat every control, degradation there, and the anti-steerable range.

use crate::data::{BaselineKind, Direction, MainRow, ReportData};
use crate::format as f;
use crate::tables::perplexity_ratio;

fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [a, b] => format!("{a} and {b}"),
        [init @ .., last] => format!("{}, and {last}", init.join(", ")),
    }
}

fn unique<'a>(it: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in it {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Strength used to pick the headline row: the standardised effect, else the effect (signed:
/// a toward row that lowered its metric is not a large effect toward the behaviour).
fn strength(r: &MainRow) -> Option<f64> {
    let m = &r.metrics;
    m.standardized_effect
        .or(m.effect)
        .map(|e| e.value)
        .filter(|v| v.is_finite())
}

/// `the random vector`, `the shuffled vector`, ...
fn control_name(kind: BaselineKind) -> String {
    format!("the {}", kind.label())
}

pub fn summary(data: &ReportData) -> String {
    let methods = if data.setup.methods.is_empty() {
        unique(data.main.iter().map(|r| &r.method))
    } else {
        data.setup.methods.clone()
    };
    let datasets = unique(
        data.main
            .iter()
            .map(|r| &r.dataset)
            .chain(data.setup.splits.iter().map(|s| &s.dataset)),
    );
    let mut out = format!(
        "This report evaluates {} ({}) on {} ({}) with the model `{}`.",
        plural(methods.len(), "steering method", "steering methods"),
        list(&methods),
        plural(datasets.len(), "dataset", "datasets"),
        list(&datasets),
        data.provenance.model_id
    );
    if data.main.is_empty() {
        out += " The pipeline produced no main results.";
        return out;
    }
    let toward: Vec<&MainRow> = data
        .main
        .iter()
        .filter(|r| r.direction == Direction::Toward)
        .collect();
    if toward.is_empty() {
        out += " No setting was selected toward the behaviour; only steering away was evaluated.";
        return out;
    }
    let best = toward
        .iter()
        .copied()
        .filter_map(|r| strength(r).map(|s| (s, r)))
        .fold(None::<(f64, &MainRow)>, |acc, (s, r)| match acc {
            Some((b, _)) if b >= s => acc,
            _ => Some((s, r)),
        });
    if let Some((_, r)) = best {
        let setting = match (r.best_layer, r.best_multiplier) {
            (Some(l), Some(m)) => format!(" at layer {l}, {}", f::multiplier(m)),
            _ => String::new(),
        };
        out += &format!(
            " The largest test effect toward the behaviour is `{}` on `{}`{setting}: {} changes by {}",
            r.method,
            r.dataset,
            r.metric,
            f::estimate(r.metrics.effect.as_ref(), 3)
        );
        if let Some(se) = r.metrics.standardized_effect {
            out += &format!(" ({} unsteered standard deviations)", f::sig(se.value, 2));
        }
        out.push('.');
        let margins: Vec<String> = r
            .controls
            .iter()
            .filter_map(|c| {
                let m = c.margin?;
                Some(format!(
                    "{} over {}",
                    f::estimate(Some(&m), 3),
                    control_name(c.kind)
                ))
            })
            .collect();
        if !margins.is_empty() {
            out += &format!(
                " Its margin over its controls at the same setting is {} (paired 95% CIs over inputs).",
                list(&margins)
            );
        } else if r.controls.is_empty() {
            out += " No control was evaluated at that setting.";
        }
        // Degradation at exactly this setting (the away row of the same method has another).
        let deg = data.degradation.at_chosen.iter().find(|d| {
            d.method == r.method
                && d.dataset.as_deref().is_none_or(|ds| ds == r.dataset)
                && r.best_layer.is_none_or(|l| d.layer == Some(l))
                && r.best_multiplier
                    .is_none_or(|m| f::snap(m, m) == f::snap(d.multiplier, d.multiplier))
        });
        if let Some(d) = deg {
            let mut parts = Vec::new();
            if let Some(ratio) = perplexity_ratio(d, &data.degradation) {
                parts.push(format!(
                    "perplexity is {}× that of the unsteered model",
                    f::sig(ratio, 3)
                ));
            }
            if let Some(kl) = d.kl {
                parts.push(format!(
                    "KL from the unsteered model is {} nats",
                    f::sig(kl.value, 2)
                ));
            }
            let tools_base = data
                .degradation
                .unsteered
                .as_ref()
                .and_then(|u| u.tool_accuracy);
            if let (Some(t), Some(u)) = (d.tool_accuracy, tools_base) {
                parts.push(format!(
                    "top-1 tool accuracy is {} (unsteered: {})",
                    f::pct(t.value, 0),
                    f::pct(u.value, 0)
                ));
            }
            if let Some(last) = parts.pop() {
                let head = parts.join(", ");
                let joined = if head.is_empty() {
                    last
                } else {
                    format!("{head} and {last}")
                };
                out += &format!(" At that setting {joined}.");
            }
        }
    }
    let with_ci: Vec<&MainRow> = toward
        .iter()
        .copied()
        .filter(|r| r.metrics.effect.is_some_and(|e| e.ci_low.is_some()))
        .collect();
    if !with_ci.is_empty() {
        let sig_rows = with_ci
            .iter()
            .filter(|r| r.metrics.effect.is_some_and(|e| e.ci_excludes_zero()))
            .count();
        if sig_rows == 0 {
            out += &format!(
                " None of the {} method × dataset pairs moves its metric beyond the 95% CI on test: with these settings the behaviour is not steerable.",
                with_ci.len()
            );
        } else {
            out += &format!(
                " {sig_rows} of {} method × dataset pairs have a 95% CI on the effect that excludes zero.",
                with_ci.len()
            );
        }
    }
    let controlled: Vec<&MainRow> = toward
        .iter()
        .copied()
        .filter(|r| {
            r.controls
                .iter()
                .any(|c| c.margin.is_some_and(|m| m.ci_low.is_some()))
        })
        .collect();
    if !controlled.is_empty() {
        let k = controlled
            .iter()
            .filter(|r| r.beats_every_control())
            .count();
        out += &format!(
            " {k} of {} method × dataset pairs have a margin over every control whose 95% CI lies above zero.",
            controlled.len()
        );
    }
    let anti: Vec<f64> = toward
        .iter()
        .filter_map(|r| r.metrics.anti_steerable_fraction)
        .filter(|v| v.is_finite())
        .collect();
    if !anti.is_empty() {
        let lo = anti.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = anti.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if anti.len() == 1 || lo == hi {
            out += &format!(
                " {} of inputs are anti-steerable (pushed the wrong way).",
                f::pct(lo, 0)
            );
        } else {
            out += &format!(
                " Between {} and {} of inputs are anti-steerable (pushed the wrong way), depending on method and dataset.",
                f::pct(lo, 0),
                f::pct(hi, 0)
            );
        }
    }
    out
}
