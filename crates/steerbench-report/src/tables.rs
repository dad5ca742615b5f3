//! The report's tables, built from `ReportData`: a human `display` table (markdown, LaTeX)
//! and a full-precision `raw` table (CSV) for each.

use crate::data::{
    BaselineKind, BaselineRow, Caution, Degradation, DegradationRow, Direction, EffectMetrics,
    Estimate, IclRow, LetterBiasRow, MainRow, ReportData,
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
    /// Notes for the LaTeX caption: one sentence per caution whose `†` this table shows.
    pub notes: Vec<String>,
    pub display: Table,
    pub raw: Table,
}

/// Every exported table that has rows, in report order.
pub fn all(data: &ReportData) -> Result<Vec<NamedTable>> {
    let c = &data.cautions;
    let card = crate::scorecard::build(&data.behaviours);
    let (card_rows, card_summary) = match &card {
        Some(card) => scorecard(card)?,
        None => (empty("scorecard"), empty("scorecard_summary")),
    };
    let tables = [
        card_rows,
        card_summary,
        main(&data.main, c)?,
        main_away(&data.main, c)?,
        baselines(&data.baselines, c)?,
        degradation_chosen(&data.degradation, c)?,
        degradation_sweep(&data.degradation, c)?,
        letter_bias(&data.letter_bias)?,
        icl(&data.icl)?,
        generation_quality(&data.generation_quality)?,
        turns(&data.turns)?,
        training(&data.training)?,
        costs(&data.costs)?,
    ];
    let mut tables: Vec<NamedTable> = tables
        .into_iter()
        .filter(|t| !t.display.is_empty())
        .collect();
    for t in &mut tables {
        let marks = |cn: &Caution| -> bool {
            let one = std::slice::from_ref(cn);
            match t.name {
                "degradation" | "degradation_sweep" => cn.metric == MC_ACCURACY,
                "main" | "main_away" => {
                    let dir = if t.name == "main" {
                        Direction::Toward
                    } else {
                        Direction::Away
                    };
                    data.main
                        .iter()
                        .any(|r| r.direction == dir && caution_applies(one, &r.metric, &r.dataset))
                }
                "baselines" => data
                    .baselines
                    .iter()
                    .any(|r| caution_applies(one, &r.metric, &r.dataset)),
                _ => false,
            }
        };
        t.notes = c
            .iter()
            .filter(|cn| marks(cn))
            .map(|cn| format!("{CAUTION_MARK} {}", crate::cautions::note(cn)))
            .collect();
    }
    Ok(tables)
}

impl NamedTable {
    /// The caption with its caution notes, as the LaTeX export shows it.
    pub fn full_caption(&self) -> String {
        if self.notes.is_empty() {
            return self.caption.to_string();
        }
        format!("{}. {}", self.caption, self.notes.join(" "))
    }
}

/// A table without columns or rows (left out of the report and the exports).
fn empty(name: &'static str) -> NamedTable {
    NamedTable {
        name,
        caption: "",
        notes: Vec::new(),
        display: Table::plain(&[]),
        raw: Table::plain(&[]),
    }
}

/// What the scorecard prints where no degradation stage measured a setting.
pub const NOT_MEASURED: &str = "n/a";

/// `k of n`.
fn k_of(k: usize, n: usize) -> String {
    format!("{k} of {n}")
}

/// The worst degradation over a method's rows: `n/a` when none was measured, and how many
/// were when only some were.
fn worst(value: Option<f64>, measured: usize, rows: usize) -> String {
    if measured == 0 {
        return NOT_MEASURED.into();
    }
    let v = f::opt_sig(value, SIG);
    if measured < rows && value.is_some() {
        format!("{v} ({measured} of {rows} measured)")
    } else {
        v
    }
}

/// The cross-behaviour scorecard (see [`crate::scorecard`]): `scorecard`, one row per
/// behaviour × method (× dataset when a behaviour has several), and `scorecard_summary`,
/// one row per method.
///
/// Display columns: behaviour, (dataset,) method, layer, multiplier, `Std. effect [95% CI]`,
/// `Steerable` (`yes`, `no`, `no (wrong way)`), `Margin (std.) [95% CI]` and `Control` (the
/// control it is over), `Anti-steerable`, `PPL ratio`, `KL (nats)` (`n/a`: not measured),
/// `n`. Summary: method, `Behaviours` (`k of N`), `Mean std. effect`, `Steerable`,
/// `Beats controls`, `Worst PPL ratio`, `Worst KL (nats)`.
pub fn scorecard(card: &crate::scorecard::Scorecard) -> Result<(NamedTable, NamedTable)> {
    let mut cols: Vec<(&str, Align)> = vec![("Behaviour", L)];
    if card.per_dataset {
        cols.push(("Dataset", L));
    }
    cols.extend([
        ("Method", L),
        ("Layer", R),
        ("Mult.", R),
        ("Std. effect [95% CI]", R),
        ("Steerable", L),
        ("Margin (std.) [95% CI]", R),
        ("Control", L),
        ("Anti-steerable", R),
        ("PPL ratio", R),
        ("KL (nats)", R),
        ("n", R),
    ]);
    let mut display = Table::new(&cols);
    let mut raw = Table::plain(&[
        "behaviour",
        "stage",
        "dataset",
        "method",
        "metric",
        "layer",
        "multiplier",
        "standardized_effect",
        "standardized_effect_ci_low",
        "standardized_effect_ci_high",
        "effect",
        "effect_ci_low",
        "effect_ci_high",
        "steerable",
        "margin_control",
        "margin",
        "margin_ci_low",
        "margin_ci_high",
        "standardized_margin",
        "standardized_margin_ci_low",
        "standardized_margin_ci_high",
        "beats_controls",
        "anti_steerable_fraction",
        "degradation_measured",
        "perplexity_ratio",
        "kl",
        "kl_ci_low",
        "kl_ci_high",
        "n",
    ]);
    let scale = f::sweep_scale(card.rows.iter().filter_map(|r| r.multiplier));
    for r in &card.rows {
        let mut d = vec![r.behaviour.clone()];
        if card.per_dataset {
            d.push(r.dataset.clone());
        }
        let deg = |show: &dyn Fn(&crate::scorecard::SettingDamage) -> String| {
            r.degradation
                .as_ref()
                .map_or_else(|| NOT_MEASURED.to_string(), show)
        };
        d.extend([
            r.method.clone(),
            opt_layer(r.layer),
            r.multiplier
                .map_or_else(|| MISSING.into(), |m| f::sweep_value(m, scale)),
            f::estimate(r.standardized_effect.as_ref(), SIG),
            match (r.effect.and_then(|e| e.ci_low), r.steerable, r.wrong_way) {
                (None, _, _) => MISSING.into(),
                (_, true, _) => "yes".into(),
                (_, _, true) => "no (wrong way)".into(),
                _ => "no".into(),
            },
            f::estimate(r.standardized_margin.as_ref(), SIG),
            r.margin_control
                .map_or_else(|| MISSING.into(), |k| k.as_str().to_string()),
            f::opt_pct(r.anti_steerable_fraction, 1),
            deg(&|d| f::opt_sig(d.perplexity_ratio, SIG)),
            deg(&|d| f::opt_sig(d.kl.map(|k| k.value), SIG)),
            f::opt_int(r.n),
        ]);
        display.push(d)?;
        let mut w = vec![
            r.behaviour.clone(),
            r.stage.clone(),
            r.dataset.clone(),
            r.method.clone(),
            r.metric.clone(),
            r.layer.map_or_else(String::new, |l| l.to_string()),
            f::raw(r.multiplier),
        ];
        w.extend(est_raw(r.standardized_effect.as_ref()));
        w.extend(est_raw(r.effect.as_ref()));
        w.push(r.steerable.to_string());
        w.push(
            r.margin_control
                .map_or_else(String::new, |k| k.as_str().to_string()),
        );
        w.extend(est_raw(r.margin.as_ref()));
        w.extend(est_raw(r.standardized_margin.as_ref()));
        w.push(r.beats_controls.map_or_else(String::new, |b| b.to_string()));
        w.push(f::raw(r.anti_steerable_fraction));
        w.push(r.degradation.is_some().to_string());
        w.push(f::raw(r.degradation.and_then(|d| d.perplexity_ratio)));
        w.extend(est_raw(r.degradation.and_then(|d| d.kl).as_ref()));
        w.push(r.n.map_or_else(String::new, |n| n.to_string()));
        raw.push(w)?;
    }

    let mut sdisplay = Table::new(&[
        ("Method", L),
        ("Behaviours", R),
        ("Mean std. effect", R),
        ("Steerable", R),
        ("Beats controls", R),
        ("Worst PPL ratio", R),
        ("Worst KL (nats)", R),
    ]);
    let mut sraw = Table::plain(&[
        "method",
        "behaviours",
        "behaviours_total",
        "mean_standardized_effect",
        "with_standardized_effect",
        "steerable",
        "beats_controls",
        "with_controls",
        "degradation_measured",
        "worst_perplexity_ratio",
        "worst_kl",
    ]);
    for s in &card.summary {
        sdisplay.push(vec![
            s.method.clone(),
            k_of(s.rows, card.total),
            f::opt_sig(s.mean_standardized_effect, SIG),
            k_of(s.steerable, s.rows),
            if s.with_controls == 0 {
                MISSING.into()
            } else {
                k_of(s.beats_controls, s.with_controls)
            },
            worst(s.worst_perplexity_ratio, s.degradation_measured, s.rows),
            worst(s.worst_kl, s.degradation_measured, s.rows),
        ])?;
        sraw.push(vec![
            s.method.clone(),
            s.rows.to_string(),
            card.total.to_string(),
            f::raw(s.mean_standardized_effect),
            s.with_standardized_effect.to_string(),
            s.steerable.to_string(),
            s.beats_controls.to_string(),
            s.with_controls.to_string(),
            s.degradation_measured.to_string(),
            f::raw(s.worst_perplexity_ratio),
            f::raw(s.worst_kl),
        ])?;
    }
    Ok((
        NamedTable {
            name: "scorecard",
            caption: "Scorecard across behaviours: per behaviour and method, at the setting chosen on validation toward the behaviour and evaluated on test, the standardised effect, the margin over the strongest control (standardised), the anti-steerable share and the degradation (n/a: not measured)",
            notes: Vec::new(),
            display,
            raw,
        },
        NamedTable {
            name: "scorecard_summary",
            caption: "Scorecard summary per method: mean standardised effect across behaviours, behaviours steerable (95% CI above zero) and beating every control, worst degradation over the measured settings",
            notes: Vec::new(),
            display: sdisplay,
            raw: sraw,
        },
    ))
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
    m.map_or_else(|| MISSING.into(), |m| f::sweep_value(m, m))
}

/// Marks a chance-level metric's cells and headers (explained by a note beside the table).
pub const CAUTION_MARK: &str = "†";

/// The metric name behind the degradation tables' MC accuracy column.
pub const MC_ACCURACY: &str = "mc_accuracy";

/// True when a caution covers `metric` on `dataset`.
pub fn caution_applies(cautions: &[Caution], metric: &str, dataset: &str) -> bool {
    cautions
        .iter()
        .any(|c| c.metric == metric && c.dataset.as_deref().is_none_or(|d| d == dataset))
}

/// The metric cell, with the caution mark when it is at chance.
fn metric_cell(cautions: &[Caution], metric: &str, dataset: &str) -> String {
    if caution_applies(cautions, metric, dataset) {
        format!("{metric}{CAUTION_MARK}")
    } else {
        metric.to_string()
    }
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

/// Control kinds in `rows`, in `BaselineKind` order.
fn control_kinds<'a>(rows: impl IntoIterator<Item = &'a MainRow>) -> Vec<BaselineKind> {
    let mut kinds: Vec<BaselineKind> = rows
        .into_iter()
        .flat_map(|r| r.controls.iter().map(|c| c.kind))
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

/// Column header of a control's effect in the main tables.
pub fn control_header(kind: BaselineKind) -> &'static str {
    match kind {
        BaselineKind::Random => "Random",
        BaselineKind::Shuffled => "Shuffled",
        BaselineKind::Unsteered => "Unsteered",
        BaselineKind::SystemPromptPositive => "System prompt (+)",
        BaselineKind::SystemPromptNegative => "System prompt (-)",
        BaselineKind::FewShotPositive => "Few-shot (+)",
    }
}

/// The main table of one direction: `main` (toward, the headline) or `main_away`.
///
/// Display: dataset, method, metric, layer, multiplier, effect; then, only when some row has
/// controls, one column per control kind (its effect at the row's setting, value only) and
/// `Margin [95% CI]` (the least favourable margin over the row's controls, see
/// [`MainRow::weakest_margin`]); then the remaining effect metrics. Rows without controls
/// show `—` there. A metric at chance (see [`Caution`]) is marked `†`.
///
/// Raw (CSV): `dataset, method, metric, direction, best_layer, best_multiplier`, the effect
/// columns, then `<kind>_effect`, `<kind>_effect_ci_low`, `<kind>_effect_ci_high`,
/// `<kind>_margin`, `<kind>_margin_ci_low`, `<kind>_margin_ci_high` for `random`, `shuffled`
/// (always, empty when absent) and any other control kind present.
fn main_table(
    name: &'static str,
    caption: &'static str,
    direction: Direction,
    all_rows: &[MainRow],
    cautions: &[Caution],
) -> Result<NamedTable> {
    let rows: Vec<&MainRow> = all_rows
        .iter()
        .filter(|r| r.direction == direction)
        .collect();
    let kinds = control_kinds(rows.iter().copied());
    let mut raw_kinds = vec![BaselineKind::Random, BaselineKind::Shuffled];
    raw_kinds.extend(kinds.iter().copied());
    raw_kinds.sort_unstable();
    raw_kinds.dedup();

    let mut cols: Vec<(&str, Align)> = vec![
        ("Dataset", L),
        ("Method", L),
        ("Metric", L),
        ("Layer", R),
        ("Mult.", R),
        EFFECT_DISPLAY[0],
    ];
    if !kinds.is_empty() {
        cols.extend(kinds.iter().map(|&k| (control_header(k), R)));
        cols.push(("Margin [95% CI]", R));
    }
    cols.extend(&EFFECT_DISPLAY[1..]);
    let mut display = Table::new(&cols);

    let control_raw: Vec<String> = raw_kinds
        .iter()
        .flat_map(|k| {
            let k = k.as_str();
            [
                format!("{k}_effect"),
                format!("{k}_effect_ci_low"),
                format!("{k}_effect_ci_high"),
                format!("{k}_margin"),
                format!("{k}_margin_ci_low"),
                format!("{k}_margin_ci_high"),
            ]
        })
        .collect();
    let mut raw_cols = vec![
        "dataset",
        "method",
        "metric",
        "direction",
        "best_layer",
        "best_multiplier",
    ];
    raw_cols.extend(EFFECT_RAW);
    raw_cols.extend(control_raw.iter().map(String::as_str));
    let mut raw = Table::plain(&raw_cols);

    let scale = f::sweep_scale(rows.iter().filter_map(|r| r.best_multiplier));
    for r in rows {
        let effects = effect_display(&r.metrics);
        let mut d = vec![
            r.dataset.clone(),
            r.method.clone(),
            metric_cell(cautions, &r.metric, &r.dataset),
            opt_layer(r.best_layer),
            r.best_multiplier
                .map_or_else(|| MISSING.into(), |m| f::sweep_value(m, scale)),
            effects[0].clone(),
        ];
        if !kinds.is_empty() {
            d.extend(
                kinds.iter().map(|&k| {
                    f::opt_sig(r.control(k).and_then(|c| c.effect).map(|e| e.value), SIG)
                }),
            );
            d.push(f::estimate(
                r.weakest_margin().map(|(_, m)| m).as_ref(),
                SIG,
            ));
        }
        d.extend(effects[1..].iter().cloned());
        display.push(d)?;

        let mut w = vec![
            r.dataset.clone(),
            r.method.clone(),
            r.metric.clone(),
            r.direction.to_string(),
            r.best_layer.map_or_else(String::new, |l| l.to_string()),
            f::raw(r.best_multiplier),
        ];
        w.extend(effect_raw(&r.metrics));
        for &k in &raw_kinds {
            let c = r.control(k);
            w.extend(est_raw(c.and_then(|c| c.effect.as_ref())));
            w.extend(est_raw(c.and_then(|c| c.margin.as_ref())));
        }
        raw.push(w)?;
    }
    Ok(NamedTable {
        notes: Vec::new(),
        name,
        caption,
        display,
        raw,
    })
}

/// The headline table: `Toward` rows (see [`main_table`] for the columns).
pub fn main(rows: &[MainRow], cautions: &[Caution]) -> Result<NamedTable> {
    main_table(
        "main",
        "Main results, steering toward the behaviour: per dataset and method, the layer and positive multiplier chosen on validation, evaluated on test, with the random and shuffled controls at the same setting",
        Direction::Toward,
        rows,
        cautions,
    )
}

/// `Away` rows in the same layout as [`main`]; empty (not exported) when there are none.
pub fn main_away(rows: &[MainRow], cautions: &[Caution]) -> Result<NamedTable> {
    main_table(
        "main_away",
        "Steering away from the behaviour: per dataset and method, the layer and negative multiplier chosen on validation, evaluated on test, with the random and shuffled controls at the same setting",
        Direction::Away,
        rows,
        cautions,
    )
}

fn setting(layer: Option<usize>, mult: Option<f64>) -> String {
    match (layer, mult) {
        (Some(l), Some(m)) => format!("L{l} {}", f::multiplier(m)),
        (Some(l), None) => format!("L{l}"),
        (None, Some(m)) => f::multiplier(m),
        (None, None) => MISSING.into(),
    }
}

/// Reference conditions (unsteered, prompting; random/shuffled only if a `BaselineRow` has them).
pub fn baselines(rows: &[BaselineRow], cautions: &[Caution]) -> Result<NamedTable> {
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
            metric_cell(cautions, &r.metric, &r.dataset),
            setting(r.layer, r.multiplier),
        ];
        d.extend(effect_display(&r.metrics));
        display.push(d)?;
        let mut w = vec![
            r.dataset.clone(),
            r.baseline.as_str().to_string(),
            r.metric.clone(),
            r.layer.map_or_else(String::new, |l| l.to_string()),
            f::raw(r.multiplier),
        ];
        w.extend(effect_raw(&r.metrics));
        raw.push(w)?;
    }
    Ok(NamedTable {
        notes: Vec::new(),
        name: "baselines",
        caption: "Baselines: the unsteered model and prompting on the same metrics",
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

/// The tool-accuracy columns (after the fixed ones), present only when measured.
const DEG_TOOLS_DISPLAY: (&str, Align) = ("Tool accuracy", R);
const DEG_TOOLS_RAW: [&str; 3] = [
    "tool_accuracy",
    "tool_accuracy_ci_low",
    "tool_accuracy_ci_high",
];

/// Whether a degradation stage measured `tool_accuracy` (the reference or any row).
pub fn has_tool_accuracy(deg: &Degradation) -> bool {
    deg.unsteered
        .as_ref()
        .is_some_and(|u| u.tool_accuracy.is_some())
        || deg
            .at_chosen
            .iter()
            .chain(&deg.sweep)
            .any(|r| r.tool_accuracy.is_some())
}

fn deg_display(row: &DegradationRow, deg: &Degradation, tools: bool) -> Vec<String> {
    let mut v = vec![
        f::estimate(row.perplexity.as_ref(), SIG),
        f::opt_sig(perplexity_ratio(row, deg), SIG),
        f::estimate(row.kl.as_ref(), SIG),
        f::pct_estimate(row.mc_accuracy.as_ref(), 1),
    ];
    if tools {
        v.push(f::pct_estimate(row.tool_accuracy.as_ref(), 1));
    }
    v
}

fn deg_raw(row: &DegradationRow, deg: &Degradation, tools: bool) -> Vec<String> {
    let mut v = Vec::with_capacity(13);
    v.extend(est_raw(row.perplexity.as_ref()));
    v.push(f::raw(perplexity_ratio(row, deg)));
    v.extend(est_raw(row.kl.as_ref()));
    v.extend(est_raw(row.mc_accuracy.as_ref()));
    if tools {
        v.extend(est_raw(row.tool_accuracy.as_ref()));
    }
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
        tool_accuracy: u.tool_accuracy,
    })
}

/// True when a caution says multiple-choice accuracy is at chance.
pub fn mc_at_chance(cautions: &[Caution]) -> bool {
    cautions.iter().any(|c| c.metric == MC_ACCURACY)
}

fn degradation_table(
    name: &'static str,
    caption: &'static str,
    rows: &[DegradationRow],
    deg: &Degradation,
    with_dataset: bool,
    cautions: &[Caution],
) -> Result<NamedTable> {
    let mc_header = format!("{}{CAUTION_MARK}", DEG_DISPLAY[3].0);
    let mut deg_cols: [(&str, Align); 4] = DEG_DISPLAY;
    if mc_at_chance(cautions) {
        deg_cols[3].0 = &mc_header;
    }
    let tools = has_tool_accuracy(deg);
    let lead: Vec<(&str, Align)> = [("Dataset", L)]
        .into_iter()
        .filter(|_| with_dataset)
        .chain([("Method", L), ("Layer", R), ("Mult.", R)])
        .chain(deg_cols)
        .chain(Some(DEG_TOOLS_DISPLAY).filter(|_| tools))
        .collect();
    let raw_lead: Vec<&str> = ["dataset"]
        .into_iter()
        .filter(|_| with_dataset)
        .chain(["method", "layer", "multiplier"])
        .chain(DEG_RAW)
        .chain(DEG_TOOLS_RAW.into_iter().filter(|_| tools))
        .collect();
    let mut display = Table::new(&lead);
    let mut raw = Table::plain(&raw_lead);
    if rows.is_empty() {
        return Ok(NamedTable {
            notes: Vec::new(),
            name,
            caption,
            display,
            raw,
        });
    }
    let reference = reference_row(deg);
    let scale = f::sweep_scale(rows.iter().map(|r| r.multiplier));
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
            f::sweep_value(r.multiplier, scale),
        ]);
        w.extend([
            r.method.clone(),
            r.layer.map_or_else(String::new, |l| l.to_string()),
            f::raw(Some(r.multiplier)),
        ]);
        d.extend(deg_display(r, deg, tools));
        w.extend(deg_raw(r, deg, tools));
        display.push(d)?;
        raw.push(w)?;
    }
    Ok(NamedTable {
        notes: Vec::new(),
        name,
        caption,
        display,
        raw,
    })
}

/// Degradation at each chosen setting; `MC accuracy†` when a `mc_accuracy` caution applies.
pub fn degradation_chosen(deg: &Degradation, cautions: &[Caution]) -> Result<NamedTable> {
    degradation_table(
        "degradation",
        "Degradation at the chosen settings (first row: the unsteered model)",
        &deg.at_chosen,
        deg,
        true,
        cautions,
    )
}

/// Degradation across the sweep; `MC accuracy†` when a `mc_accuracy` caution applies.
pub fn degradation_sweep(deg: &Degradation, cautions: &[Caution]) -> Result<NamedTable> {
    degradation_table(
        "degradation_sweep",
        "Degradation across the multiplier sweep (first row: the unsteered model)",
        &deg.sweep,
        deg,
        false,
        cautions,
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
        notes: Vec::new(),
        name: "letter_bias",
        caption: "A/B letter bias: share of p(A) with the original and the swapped answer order",
        display,
        raw,
    })
}

pub fn generation_quality(rows: &[crate::data::GenerationQualityRow]) -> Result<NamedTable> {
    // Tool-call columns only where some generations were tool calls.
    let tools = rows
        .iter()
        .any(|r| r.tool_call_json.is_some() || r.tool_call_valid.is_some());
    let tool_cols = [("JSON", R), ("Valid tool call", R)];
    let display_cols: Vec<(&str, Align)> = [
        ("Dataset", L),
        ("Method", L),
        ("Layer", R),
        ("Mult.", R),
        ("Concept similarity", R),
        ("Fluency (PPL)", R),
        ("Distinct-2", R),
    ]
    .into_iter()
    .chain(tool_cols.into_iter().filter(|_| tools))
    .chain([("n", R)])
    .collect();
    let mut display = Table::new(&display_cols);
    let raw_cols: Vec<&str> = [
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
    ]
    .into_iter()
    .chain(
        [
            "tool_call_json",
            "tool_call_json_ci_low",
            "tool_call_json_ci_high",
            "tool_call_valid",
            "tool_call_valid_ci_low",
            "tool_call_valid_ci_high",
        ]
        .into_iter()
        .filter(|_| tools),
    )
    .chain(["n"])
    .collect();
    let mut raw = Table::plain(&raw_cols);
    for r in rows {
        let mut d = vec![
            r.dataset.clone(),
            r.method.clone(),
            opt_layer(r.layer),
            opt_mult(r.multiplier),
            f::estimate(r.concept_similarity.as_ref(), 2),
            f::estimate(r.fluency_ppl.as_ref(), 3),
            f::estimate(r.distinct_2.as_ref(), 2),
        ];
        if tools {
            d.push(f::pct_estimate(r.tool_call_json.as_ref(), 1));
            d.push(f::pct_estimate(r.tool_call_valid.as_ref(), 1));
        }
        d.push(f::opt_int(r.n));
        display.push(d)?;
        let mut w = vec![
            r.dataset.clone(),
            r.method.clone(),
            r.layer.map_or_else(String::new, |l| l.to_string()),
            f::raw(r.multiplier),
        ];
        w.extend(est_raw(r.concept_similarity.as_ref()));
        w.extend(est_raw(r.fluency_ppl.as_ref()));
        w.extend(est_raw(r.distinct_2.as_ref()));
        if tools {
            w.extend(est_raw(r.tool_call_json.as_ref()));
            w.extend(est_raw(r.tool_call_valid.as_ref()));
        }
        w.push(r.n.map_or_else(String::new, |n| n.to_string()));
        raw.push(w)?;
    }
    Ok(NamedTable {
        notes: Vec::new(),
        name: "generation_quality",
        caption: if tools {
            "Generations: concept similarity (cosine to the positive minus the negative reference, MiniLM), fluency (perplexity under the unsteered model), distinct bigrams, and for tool-choice prompts the share of continuations holding a JSON object and the share that are a valid call (a declared tool, arguments fitting its schema)"
        } else {
            "Generations: concept similarity (cosine to the positive minus the negative reference, MiniLM), fluency (perplexity under the unsteered model) and distinct bigrams"
        },
        display,
        raw,
    })
}

pub fn turns(rows: &[crate::data::TurnPoint]) -> Result<NamedTable> {
    let mut display = Table::new(&[
        ("Dataset", L),
        ("Metric", L),
        ("Scope", L),
        ("Method", L),
        ("Layer", R),
        ("Mult.", R),
        ("Turn", R),
        ("Effect", R),
        ("Persistence", R),
        ("n", R),
    ]);
    let mut raw = Table::plain(&[
        "dataset",
        "metric",
        "scope",
        "method",
        "layer",
        "multiplier",
        "turn",
        "effect",
        "effect_ci_low",
        "effect_ci_high",
        "persistence",
        "persistence_ci_low",
        "persistence_ci_high",
        "n",
    ]);
    for r in rows {
        display.push(vec![
            r.dataset.clone(),
            r.metric.clone(),
            r.scope.clone(),
            r.method.clone(),
            opt_layer(r.layer),
            opt_mult(r.multiplier),
            r.turn.to_string(),
            f::estimate(Some(&r.effect), 3),
            f::estimate(r.persistence.as_ref(), 2),
            r.n.to_string(),
        ])?;
        let mut w = vec![
            r.dataset.clone(),
            r.metric.clone(),
            r.scope.clone(),
            r.method.clone(),
            r.layer.map_or_else(String::new, |l| l.to_string()),
            f::raw(r.multiplier),
            r.turn.to_string(),
        ];
        w.extend(est_raw(Some(&r.effect)));
        w.extend(est_raw(r.persistence.as_ref()));
        w.push(r.n.to_string());
        raw.push(w)?;
    }
    Ok(NamedTable {
        notes: Vec::new(),
        name: "turns",
        caption: "Conversations: effect (condition minus unsteered) at each turn and its persistence (effect at the turn over effect at the first turn), per metric and turn scope",
        display,
        raw,
    })
}

/// Per fine-tuning baseline: the validation pass before training and after the last
/// epoch, and the last training step.
pub fn training(rows: &[crate::data::TrainPoint]) -> Result<NamedTable> {
    let mut display = Table::new(&[
        ("Method", L),
        ("Steps", R),
        ("Epochs", R),
        ("Train loss (last step)", R),
        ("Val loss: before → after", R),
        ("Val pref. accuracy: before → after", R),
        ("Val reward margin (after)", R),
    ]);
    let mut raw = Table::plain(&[
        "method",
        "steps",
        "epochs",
        "train_loss_last",
        "val_loss_before",
        "val_loss_after",
        "val_pref_accuracy_before",
        "val_pref_accuracy_after",
        "val_reward_margin_after",
    ]);
    let mut methods: Vec<&str> = Vec::new();
    for r in rows {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    let num = |v: Option<f64>, d: u32| f::opt_sig(v, d);
    let rawn = |v: Option<f64>| v.map_or_else(String::new, |x| x.to_string());
    for m in methods {
        let of = |split: &'static str| {
            rows.iter()
                .filter(move |r| r.method == m && r.split == split)
        };
        let last_train = of("train").last();
        let (before, after) = (of("val").next(), of("val").last());
        let steps = last_train.map_or(0, |r| r.step);
        let epochs = last_train.map_or(0, |r| r.epoch);
        let loss = |r: Option<&crate::data::TrainPoint>| r.map(|r| r.loss);
        let acc = |r: Option<&crate::data::TrainPoint>| r.and_then(|r| r.pref_accuracy);
        let arrow = |a: Option<f64>, b: Option<f64>, d: u32| match (a, b) {
            (None, None) => MISSING.to_string(),
            _ => format!("{} → {}", num(a, d), num(b, d)),
        };
        display.push(vec![
            m.to_string(),
            steps.to_string(),
            epochs.to_string(),
            num(loss(last_train), 3),
            arrow(loss(before), loss(after), 3),
            arrow(acc(before), acc(after), 2),
            num(after.and_then(|r| r.reward_margin), 2),
        ])?;
        raw.push(vec![
            m.to_string(),
            steps.to_string(),
            epochs.to_string(),
            rawn(loss(last_train)),
            rawn(loss(before)),
            rawn(loss(after)),
            rawn(acc(before)),
            rawn(acc(after)),
            rawn(after.and_then(|r| r.reward_margin)),
        ])?;
    }
    Ok(NamedTable {
        notes: Vec::new(),
        name: "training",
        caption: "Fine-tuning baselines: training on the train pairs, measured on the validation pairs before training and after the last epoch",
        display,
        raw,
    })
}

/// What each method's steering object cost to make.
pub fn costs(rows: &[crate::data::CostLine]) -> Result<NamedTable> {
    let mut display = Table::new(&[
        ("Method", L),
        ("Made by", L),
        ("Wall time (s)", R),
        ("Forward tokens", R),
        ("Backward tokens", R),
        ("Parameters fitted", R),
        ("Pairs", R),
    ]);
    let mut raw = Table::plain(&[
        "method",
        "made_by",
        "wall_s",
        "forward_tokens",
        "backward_tokens",
        "trainable_params",
        "examples",
    ]);
    let int =
        |v: Option<f64>| v.map_or_else(|| MISSING.to_string(), |x| format!("{}", x.round() as u64));
    let rawn = |v: Option<f64>| v.map_or_else(String::new, |x| x.to_string());
    for r in rows {
        display.push(vec![
            r.method.clone(),
            r.made_by.clone(),
            f::sig(r.wall_s, 3),
            int(r.forward_tokens),
            int(r.backward_tokens),
            int(r.trainable_params),
            r.examples
                .map_or_else(|| MISSING.to_string(), |e| e.to_string()),
        ])?;
        raw.push(vec![
            r.method.clone(),
            r.made_by.clone(),
            r.wall_s.to_string(),
            rawn(r.forward_tokens),
            rawn(r.backward_tokens),
            rawn(r.trainable_params),
            r.examples.map_or_else(String::new, |e| e.to_string()),
        ])?;
    }
    Ok(NamedTable {
        notes: Vec::new(),
        name: "costs",
        caption: "What each method cost to make: wall time, tokens through forward and backward passes, parameters fitted, training pairs",
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
        notes: Vec::new(),
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
    if let Some(d) = &p.model_dtype {
        t.push(vec!["Weight dtype".into(), format!("`{d}`")])?;
    }
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
            match (&d.source, &d.sha256) {
                (None, _) => MISSING.into(),
                (Some(s), None) => format!("`{s}`"),
                (Some(s), Some(h)) => format!("`{s}` (sha256 `{h}`)"),
            },
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
        if s.multipliers.is_empty() {
            MISSING.into()
        } else {
            f::sweep_values(&s.multipliers).join(", ")
        },
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
