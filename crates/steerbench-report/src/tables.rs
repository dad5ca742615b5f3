//! The report's tables, built from `ReportData`: a human `display` table (markdown, LaTeX)
//! and a full-precision `raw` table (CSV) for each.

use crate::data::{
    BaselineRow, Degradation, DegradationRow, EffectMetrics, Estimate, IclRow, LetterBiasRow,
    MainRow, ReportData,
};
use crate::error::Result;
use crate::format::{self as f, MISSING};
use crate::table::{Align, Table};

use Align::{Left as L, Right as R};

/// Significant digits for measurements in tables.
const SIG: u32 = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct NamedTable {
    /// File stem under tables/ and LaTeX label suffix.
    pub name: &'static str,
    pub caption: &'static str,
    pub display: Table,
    pub raw: Table,
}

/// Every exported table that has rows, in report order.
pub fn all(data: &ReportData) -> Result<Vec<NamedTable>> {
    let tables = [
        main(&data.main)?,
        baselines(&data.baselines)?,
        degradation_chosen(&data.degradation)?,
        degradation_sweep(&data.degradation)?,
        letter_bias(&data.letter_bias)?,
        icl(&data.icl)?,
        generation_quality(&data.generation_quality)?,
    ];
    Ok(tables
        .into_iter()
        .filter(|t| !t.display.is_empty())
        .collect())
}

fn est_raw(e: Option<&Estimate>) -> [String; 3] {
    [
        f::raw(e.map(|e| e.value)),
        f::raw(e.and_then(|e| e.ci_low)),
        f::raw(e.and_then(|e| e.ci_high)),
    ]
}

fn opt_layer(l: Option<usize>) -> String {
    f::opt_int(l)
}

fn opt_mult(m: Option<f64>) -> String {
    m.map_or_else(|| MISSING.into(), f::compact)
}

const EFFECT_DISPLAY: [(&str, Align); 6] = [
    ("Effect [95% CI]", R),
    ("Std. effect", R),
    ("Steerability", R),
    ("Anti-steerable", R),
    ("R²", R),
    ("n", R),
];

const EFFECT_RAW: [&str; 11] = [
    "effect",
    "effect_ci_low",
    "effect_ci_high",
    "standardized_effect",
    "standardized_effect_ci_low",
    "standardized_effect_ci_high",
    "steerability_mean",
    "steerability_std",
    "anti_steerable_fraction",
    "r_squared",
    "n",
];

fn effect_display(m: &EffectMetrics) -> Vec<String> {
    vec![
        f::estimate(m.effect.as_ref(), SIG),
        f::estimate(m.standardized_effect.as_ref(), SIG),
        f::opt_pm(m.steerability_mean, m.steerability_std, SIG),
        f::opt_pct(m.anti_steerable_fraction, 1),
        f::opt_sig(m.r_squared, 2),
        f::opt_int(m.n),
    ]
}

fn effect_raw(m: &EffectMetrics) -> Vec<String> {
    let mut v = Vec::with_capacity(11);
    v.extend(est_raw(m.effect.as_ref()));
    v.extend(est_raw(m.standardized_effect.as_ref()));
    v.push(f::raw(m.steerability_mean));
    v.push(f::raw(m.steerability_std));
    v.push(f::raw(m.anti_steerable_fraction));
    v.push(f::raw(m.r_squared));
    v.push(m.n.map_or_else(String::new, |n| n.to_string()));
    v
}

fn columns<'a>(lead: &[(&'a str, Align)]) -> Vec<(&'a str, Align)> {
    lead.iter().copied().chain(EFFECT_DISPLAY).collect()
}

fn raw_columns<'a>(lead: &[&'a str]) -> Vec<&'a str> {
    lead.iter().copied().chain(EFFECT_RAW).collect()
}

pub fn main(rows: &[MainRow]) -> Result<NamedTable> {
    let mut display = Table::new(&columns(&[
        ("Dataset", L),
        ("Method", L),
        ("Metric", L),
        ("Layer", R),
        ("Mult.", R),
    ]));
    let mut raw = Table::plain(&raw_columns(&[
        "dataset",
        "method",
        "metric",
        "best_layer",
        "best_multiplier",
    ]));
    for r in rows {
        let mut d = vec![
            r.dataset.clone(),
            r.method.clone(),
            r.metric.clone(),
            opt_layer(r.best_layer),
            opt_mult(r.best_multiplier),
        ];
        d.extend(effect_display(&r.metrics));
        display.push(d)?;
        let mut w = vec![
            r.dataset.clone(),
            r.method.clone(),
            r.metric.clone(),
            r.best_layer.map_or_else(String::new, |l| l.to_string()),
            f::raw(r.best_multiplier),
        ];
        w.extend(effect_raw(&r.metrics));
        raw.push(w)?;
    }
    Ok(NamedTable {
        name: "main",
        caption: "Main results: per dataset and method, the layer and multiplier chosen on validation, evaluated on test",
        display,
        raw,
    })
}

fn setting(layer: Option<usize>, mult: Option<f64>) -> String {
    match (layer, mult) {
        (Some(l), Some(m)) => format!("L{l} {}", f::multiplier(m)),
        (Some(l), None) => format!("L{l}"),
        (None, Some(m)) => f::multiplier(m),
        (None, None) => MISSING.into(),
    }
}

pub fn baselines(rows: &[BaselineRow]) -> Result<NamedTable> {
    let mut display = Table::new(&columns(&[
        ("Dataset", L),
        ("Baseline", L),
        ("Metric", L),
        ("Setting", L),
    ]));
    let mut raw = Table::plain(&raw_columns(&[
        "dataset",
        "baseline",
        "metric",
        "layer",
        "multiplier",
    ]));
    for r in rows {
        let mut d = vec![
            r.dataset.clone(),
            r.baseline.label().to_string(),
            r.metric.clone(),
            setting(r.layer, r.multiplier),
        ];
        d.extend(effect_display(&r.metrics));
        display.push(d)?;
        let kind = serde_json::to_value(r.baseline)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string));
        let mut w = vec![
            r.dataset.clone(),
            kind.unwrap_or_default(),
            r.metric.clone(),
            r.layer.map_or_else(String::new, |l| l.to_string()),
            f::raw(r.multiplier),
        ];
        w.extend(effect_raw(&r.metrics));
        raw.push(w)?;
    }
    Ok(NamedTable {
        name: "baselines",
        caption: "Baselines and controls on the same metrics",
        display,
        raw,
    })
}

/// Steered / unsteered perplexity: the row's own ratio, else derived from the reference.
pub fn perplexity_ratio(row: &DegradationRow, deg: &Degradation) -> Option<f64> {
    row.perplexity_ratio.or_else(|| {
        let base = deg.unsteered.as_ref()?.perplexity?.value;
        let ppl = row.perplexity?.value;
        (base > 0.0).then(|| ppl / base)
    })
}

const DEG_DISPLAY: [(&str, Align); 4] = [
    ("Perplexity [95% CI]", R),
    ("PPL ratio", R),
    ("KL (nats) [95% CI]", R),
    ("MC accuracy", R),
];
const DEG_RAW: [&str; 10] = [
    "perplexity",
    "perplexity_ci_low",
    "perplexity_ci_high",
    "perplexity_ratio",
    "kl",
    "kl_ci_low",
    "kl_ci_high",
    "mc_accuracy",
    "mc_accuracy_ci_low",
    "mc_accuracy_ci_high",
];

fn deg_display(row: &DegradationRow, deg: &Degradation) -> Vec<String> {
    vec![
        f::estimate(row.perplexity.as_ref(), SIG),
        f::opt_sig(perplexity_ratio(row, deg), SIG),
        f::estimate(row.kl.as_ref(), SIG),
        f::pct_estimate(row.mc_accuracy.as_ref(), 1),
    ]
}

fn deg_raw(row: &DegradationRow, deg: &Degradation) -> Vec<String> {
    let mut v = Vec::with_capacity(10);
    v.extend(est_raw(row.perplexity.as_ref()));
    v.push(f::raw(perplexity_ratio(row, deg)));
    v.extend(est_raw(row.kl.as_ref()));
    v.extend(est_raw(row.mc_accuracy.as_ref()));
    v
}

/// The unsteered reference as a degradation row (multiplier 0, KL 0 by definition).
fn reference_row(deg: &Degradation) -> Option<DegradationRow> {
    let u = deg.unsteered.as_ref()?;
    Some(DegradationRow {
        dataset: None,
        method: "unsteered".into(),
        layer: None,
        multiplier: 0.0,
        perplexity: u.perplexity,
        perplexity_ratio: u.perplexity.map(|_| 1.0),
        kl: Some(Estimate::new(0.0)),
        mc_accuracy: u.mc_accuracy,
    })
}

fn degradation_table(
    name: &'static str,
    caption: &'static str,
    rows: &[DegradationRow],
    deg: &Degradation,
    with_dataset: bool,
) -> Result<NamedTable> {
    let lead: Vec<(&str, Align)> = [("Dataset", L)]
        .into_iter()
        .filter(|_| with_dataset)
        .chain([("Method", L), ("Layer", R), ("Mult.", R)])
        .chain(DEG_DISPLAY)
        .collect();
    let raw_lead: Vec<&str> = ["dataset"]
        .into_iter()
        .filter(|_| with_dataset)
        .chain(["method", "layer", "multiplier"])
        .chain(DEG_RAW)
        .collect();
    let mut display = Table::new(&lead);
    let mut raw = Table::plain(&raw_lead);
    if rows.is_empty() {
        return Ok(NamedTable {
            name,
            caption,
            display,
            raw,
        });
    }
    let reference = reference_row(deg);
    for r in reference.iter().chain(rows) {
        let mut d = Vec::new();
        let mut w = Vec::new();
        if with_dataset {
            d.push(r.dataset.clone().unwrap_or_else(|| MISSING.into()));
            w.push(r.dataset.clone().unwrap_or_default());
        }
        d.extend([
            r.method.clone(),
            opt_layer(r.layer),
            f::compact(r.multiplier),
        ]);
        w.extend([
            r.method.clone(),
            r.layer.map_or_else(String::new, |l| l.to_string()),
            f::raw(Some(r.multiplier)),
        ]);
        d.extend(deg_display(r, deg));
        w.extend(deg_raw(r, deg));
        display.push(d)?;
        raw.push(w)?;
    }
    Ok(NamedTable {
        name,
        caption,
        display,
        raw,
    })
}

pub fn degradation_chosen(deg: &Degradation) -> Result<NamedTable> {
    degradation_table(
        "degradation",
        "Degradation at the chosen settings (first row: the unsteered model)",
        &deg.at_chosen,
        deg,
        true,
    )
}

pub fn degradation_sweep(deg: &Degradation) -> Result<NamedTable> {
    degradation_table(
        "degradation_sweep",
        "Degradation across the multiplier sweep (first row: the unsteered model)",
        &deg.sweep,
        deg,
        false,
    )
}

/// Mean p(A) share over both letter orders minus 1/2: 0 when the answer follows content, +0.5 when always A.
pub fn letter_bias_value(row: &LetterBiasRow) -> Option<f64> {
    Some((row.p_a_original?.value + row.p_a_swapped?.value) / 2.0 - 0.5)
}

pub fn letter_bias(rows: &[LetterBiasRow]) -> Result<NamedTable> {
    let mut display = Table::new(&[
        ("Dataset", L),
        ("Condition", L),
        ("p(A) share, original", R),
        ("p(A) share, swapped", R),
        ("Letter bias", R),
        ("n", R),
    ]);
    let mut raw = Table::plain(&[
        "dataset",
        "condition",
        "p_a_original",
        "p_a_original_ci_low",
        "p_a_original_ci_high",
        "p_a_swapped",
        "p_a_swapped_ci_low",
        "p_a_swapped_ci_high",
        "letter_bias",
        "n",
    ]);
    for r in rows {
        let bias = letter_bias_value(r);
        display.push(vec![
            r.dataset.clone(),
            r.condition.clone(),
            f::pct_estimate(r.p_a_original.as_ref(), 1),
            f::pct_estimate(r.p_a_swapped.as_ref(), 1),
            bias.map_or_else(|| MISSING.into(), f::signed_pp),
            f::opt_int(r.n),
        ])?;
        let mut w = vec![r.dataset.clone(), r.condition.clone()];
        w.extend(est_raw(r.p_a_original.as_ref()));
        w.extend(est_raw(r.p_a_swapped.as_ref()));
        w.push(f::raw(bias));
        w.push(r.n.map_or_else(String::new, |n| n.to_string()));
        raw.push(w)?;
    }
    Ok(NamedTable {
        name: "letter_bias",
        caption: "A/B letter bias: share of p(A) with the original and the swapped answer order",
        display,
        raw,
    })
}

pub fn generation_quality(rows: &[crate::data::GenerationQualityRow]) -> Result<NamedTable> {
    let mut display = Table::new(&[
        ("Dataset", L),
        ("Method", L),
        ("Layer", R),
        ("Mult.", R),
        ("Concept similarity", R),
        ("Fluency (PPL)", R),
        ("Distinct-2", R),
        ("n", R),
    ]);
    let mut raw = Table::plain(&[
        "dataset",
        "method",
        "layer",
        "multiplier",
        "concept_similarity",
        "concept_similarity_ci_low",
        "concept_similarity_ci_high",
        "fluency_ppl",
        "fluency_ppl_ci_low",
        "fluency_ppl_ci_high",
        "distinct_2",
        "distinct_2_ci_low",
        "distinct_2_ci_high",
        "n",
    ]);
    for r in rows {
        display.push(vec![
            r.dataset.clone(),
            r.method.clone(),
            opt_layer(r.layer),
            opt_mult(r.multiplier),
            f::estimate(r.concept_similarity.as_ref(), 2),
            f::estimate(r.fluency_ppl.as_ref(), 3),
            f::estimate(r.distinct_2.as_ref(), 2),
            f::opt_int(r.n),
        ])?;
        let mut w = vec![
            r.dataset.clone(),
            r.method.clone(),
            r.layer.map_or_else(String::new, |l| l.to_string()),
            f::raw(r.multiplier),
        ];
        w.extend(est_raw(r.concept_similarity.as_ref()));
        w.extend(est_raw(r.fluency_ppl.as_ref()));
        w.extend(est_raw(r.distinct_2.as_ref()));
        w.push(r.n.map_or_else(String::new, |n| n.to_string()));
        raw.push(w)?;
    }
    Ok(NamedTable {
        name: "generation_quality",
        caption: "Generations: concept similarity (cosine to the positive minus the negative reference, MiniLM), fluency (perplexity under the unsteered model) and distinct bigrams",
        display,
        raw,
    })
}

pub fn icl(rows: &[IclRow]) -> Result<NamedTable> {
    let mut display = Table::new(&[
        ("Task", L),
        ("Method", L),
        ("Layer", R),
        ("Zero-shot", R),
        ("Few-shot", R),
        ("Zero-shot + vector", R),
        ("n", R),
    ]);
    let mut raw = Table::plain(&[
        "task",
        "method",
        "layer",
        "zero_shot",
        "zero_shot_ci_low",
        "zero_shot_ci_high",
        "few_shot",
        "few_shot_ci_low",
        "few_shot_ci_high",
        "zero_shot_vector",
        "zero_shot_vector_ci_low",
        "zero_shot_vector_ci_high",
        "n",
    ]);
    for r in rows {
        display.push(vec![
            r.task.clone(),
            r.method.clone(),
            opt_layer(r.layer),
            f::pct_estimate(r.zero_shot.as_ref(), 1),
            f::pct_estimate(r.few_shot.as_ref(), 1),
            f::pct_estimate(r.zero_shot_vector.as_ref(), 1),
            f::opt_int(r.n),
        ])?;
        let mut w = vec![
            r.task.clone(),
            r.method.clone(),
            r.layer.map_or_else(String::new, |l| l.to_string()),
        ];
        w.extend(est_raw(r.zero_shot.as_ref()));
        w.extend(est_raw(r.few_shot.as_ref()));
        w.extend(est_raw(r.zero_shot_vector.as_ref()));
        w.push(r.n.map_or_else(String::new, |n| n.to_string()));
        raw.push(w)?;
    }
    Ok(NamedTable {
        name: "icl",
        caption:
            "In-context learning: top-1 accuracy zero-shot, few-shot and zero-shot with the vector",
        display,
        raw,
    })
}

/// Key/value tables shown in the markdown only (provenance and setup); not exported.
pub fn provenance(data: &ReportData) -> Result<Table> {
    let p = &data.provenance;
    let code = |s: &Option<String>| {
        s.as_ref()
            .map_or_else(|| MISSING.into(), |s| format!("`{s}`"))
    };
    let mut t = Table::new(&[("Item", L), ("Value", L)]);
    t.push(vec!["Model".into(), format!("`{}`", p.model_id)])?;
    t.push(vec!["Weight hash (sha256)".into(), code(&p.weight_hash)])?;
    t.push(vec!["Spec hash".into(), code(&p.spec_hash)])?;
    t.push(vec![
        "steerbench version".into(),
        p.steerbench_version.clone(),
    ])?;
    t.push(vec!["Git commit".into(), code(&p.git_commit)])?;
    t.push(vec![
        "Seed".into(),
        p.seed.map_or_else(|| MISSING.into(), |s| s.to_string()),
    ])?;
    t.push(vec![
        "Hardware".into(),
        p.hardware.clone().unwrap_or_else(|| MISSING.into()),
    ])?;
    if !p.stage_times.is_empty() {
        let total: f64 = p.stage_times.iter().map(|s| s.seconds).sum();
        t.push(vec!["Total wall time".into(), f::duration(total)])?;
    }
    Ok(t)
}

pub fn datasets(data: &ReportData) -> Result<Table> {
    let mut t = Table::new(&[("Dataset", L), ("Source", L), ("Hash", L)]);
    for d in &data.provenance.datasets {
        t.push(vec![
            d.name.clone(),
            d.source
                .as_ref()
                .map_or_else(|| MISSING.into(), |s| format!("`{s}`")),
            d.hash
                .as_ref()
                .map_or_else(|| MISSING.into(), |s| format!("`{s}`")),
        ])?;
    }
    Ok(t)
}

pub fn stage_times(data: &ReportData) -> Result<Table> {
    let mut t = Table::new(&[("Stage", L), ("Wall time", R), ("Cached", L)]);
    for s in &data.provenance.stage_times {
        t.push(vec![
            s.stage.clone(),
            f::duration(s.seconds),
            if s.cached { "yes" } else { "no" }.into(),
        ])?;
    }
    Ok(t)
}

fn joined<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        MISSING.into()
    } else {
        items.iter().map(show).collect::<Vec<_>>().join(", ")
    }
}

pub fn setup(data: &ReportData) -> Result<Table> {
    let s = &data.setup;
    let mut t = Table::new(&[("Setting", L), ("Values", L)]);
    t.push(vec![
        "Methods".into(),
        joined(&s.methods, |m| format!("`{m}`")),
    ])?;
    t.push(vec!["Layers".into(), joined(&s.layers, |l| l.to_string())])?;
    t.push(vec![
        "Multipliers".into(),
        joined(&s.multipliers, |m| f::compact(*m)),
    ])?;
    t.push(vec![
        "Positions".into(),
        joined(&s.positions, |p| p.clone()),
    ])?;
    t.push(vec![
        "Metrics".into(),
        joined(&s.metrics, |m| format!("`{m}`")),
    ])?;
    Ok(t)
}

pub fn splits(data: &ReportData) -> Result<Table> {
    let mut t = Table::new(&[("Dataset", L), ("Train", R), ("Val", R), ("Test", R)]);
    for s in &data.setup.splits {
        t.push(vec![
            s.dataset.clone(),
            s.train.to_string(),
            s.val.to_string(),
            s.test.to_string(),
        ])?;
    }
    Ok(t)
}

/// One generation as a two-column (unsteered | steered) table; line breaks become `<br>`.
pub fn generation(g: &crate::data::GenerationRow) -> Result<Table> {
    let cell = |s: &str| s.trim().replace("\r\n", "<br>").replace('\n', "<br>");
    let mut t = Table::new(&[("Unsteered", L), ("Steered", L)]);
    t.push(vec![cell(&g.unsteered), cell(&g.steered)])?;
    Ok(t)
}
