//! Notes for metrics at chance level ([`Caution`]): the sentence, and the report section it
//! belongs in (beside the table whose column or cells carry the `†` mark).

use serde::Serialize;

use crate::data::{Caution, ReportData};
use crate::format as f;
use crate::tables::{caution_applies, CAUTION_MARK, MC_ACCURACY};

/// Where a caution note goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CautionSection {
    /// Under the degradation tables (`mc_accuracy`, their MC accuracy column).
    Degradation,
    /// Under the main results (a metric of a main or baselines row).
    Main,
    /// In a "Cautions" note after the summary (a metric no table shows).
    General,
}

/// A caution as the template sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CautionNote {
    pub section: CautionSection,
    /// `†` when the section's table marks the metric, else empty.
    pub mark: &'static str,
    /// One sentence, e.g. "Multiple-choice accuracy stays at chance (25%) for every setting
    /// (observed 22–28%): it cannot tell methods apart on this model."
    pub text: String,
}

/// Metrics whose values are fractions in [0, 1], shown as percentages.
fn is_fraction(metric: &str) -> bool {
    metric.contains("accuracy") || metric.contains("probability") || metric.ends_with("share")
}

fn metric_name(metric: &str) -> String {
    match metric {
        MC_ACCURACY => "Multiple-choice accuracy".into(),
        "icl_accuracy" => "ICL accuracy".into(),
        m => format!("`{m}`"),
    }
}

/// `22–28%` for fractions (more decimals if that would hide the spread), `-0.05 to 0.03` else.
fn observed(c: &Caution, fraction: bool) -> String {
    if fraction {
        let (lo, hi) = (0..=2)
            .map(|d| (f::pct(c.observed_low, d), f::pct(c.observed_high, d)))
            .find(|(lo, hi)| lo != hi || c.observed_low == c.observed_high)
            .unwrap_or_else(|| (f::pct(c.observed_low, 2), f::pct(c.observed_high, 2)));
        format!("{}–{hi}", lo.trim_end_matches('%'))
    } else {
        format!(
            "{} to {}",
            f::sig(c.observed_low, 2),
            f::sig(c.observed_high, 2)
        )
    }
}

/// The note's sentence.
pub fn note(c: &Caution) -> String {
    let fraction = is_fraction(&c.metric);
    let chance = if fraction {
        f::pct(
            c.chance,
            if (c.chance * 100.0).fract().abs() < 1e-9 {
                0
            } else {
                1
            },
        )
    } else {
        f::sig(c.chance, 3)
    };
    let on = c
        .dataset
        .as_ref()
        .map_or_else(String::new, |d| format!(" on `{d}`"));
    format!(
        "{}{on} stays at chance ({chance}) for every setting (observed {}): it cannot tell methods apart on this model.",
        metric_name(&c.metric),
        observed(c, fraction)
    )
}

fn has_degradation(data: &ReportData) -> bool {
    !data.degradation.at_chosen.is_empty() || !data.degradation.sweep.is_empty()
}

/// True when some table marks the caution's metric with `†`.
fn marked(data: &ReportData, c: &Caution) -> bool {
    let one = std::slice::from_ref(c);
    if c.metric == MC_ACCURACY {
        has_degradation(data)
    } else {
        data.main
            .iter()
            .map(|r| (&r.metric, &r.dataset))
            .chain(data.baselines.iter().map(|r| (&r.metric, &r.dataset)))
            .any(|(m, d)| caution_applies(one, m, d))
    }
}

/// The section showing the table of the caution's metric: degradation for `mc_accuracy`
/// (when that section has tables), main results for a metric of a main row, else general.
pub fn section(data: &ReportData, c: &Caution) -> CautionSection {
    let one = std::slice::from_ref(c);
    if c.metric == MC_ACCURACY && has_degradation(data) {
        CautionSection::Degradation
    } else if data
        .main
        .iter()
        .any(|r| caution_applies(one, &r.metric, &r.dataset))
    {
        CautionSection::Main
    } else {
        CautionSection::General
    }
}

/// Every caution of `data` as a note, in input order.
pub fn notes(data: &ReportData) -> Vec<CautionNote> {
    data.cautions
        .iter()
        .map(|c| CautionNote {
            section: section(data, c),
            mark: if marked(data, c) { CAUTION_MARK } else { "" },
            text: note(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caution(metric: &str, dataset: Option<&str>, chance: f64, lo: f64, hi: f64) -> Caution {
        Caution {
            metric: metric.into(),
            dataset: dataset.map(Into::into),
            chance,
            observed_low: lo,
            observed_high: hi,
        }
    }

    #[test]
    fn notes_read_as_sentences() {
        assert_eq!(
            note(&caution("mc_accuracy", None, 0.25, 0.22, 0.28)),
            "Multiple-choice accuracy stays at chance (25%) for every setting (observed 22–28%): it cannot tell methods apart on this model."
        );
        assert_eq!(
            note(&caution("ab_probability", Some("sentiment"), 0.5, 0.497, 0.503)),
            "`ab_probability` on `sentiment` stays at chance (50%) for every setting (observed 49.7–50.3%): it cannot tell methods apart on this model."
        );
        assert_eq!(
            note(&caution("propensity", Some("formality"), 0.0, -0.051, 0.032)),
            "`propensity` on `formality` stays at chance (0) for every setting (observed -0.051 to 0.032): it cannot tell methods apart on this model."
        );
        assert_eq!(
            note(&caution("mc_accuracy", None, 1.0 / 3.0, 0.3, 0.36)),
            "Multiple-choice accuracy stays at chance (33.3%) for every setting (observed 30–36%): it cannot tell methods apart on this model."
        );
    }
}
