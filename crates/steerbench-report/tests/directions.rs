//! Directional selection, controls at the method's setting, chance-level cautions and
//! sweep-value ticks, as the report renders them.

mod common;

use steerbench_report::plots::{figures, render_svg, PlotKind};
use steerbench_report::*;

fn est(v: f64, lo: f64, hi: f64) -> Estimate {
    Estimate::with_ci(v, lo, hi)
}

fn control(kind: BaselineKind, effect: Estimate, margin: Estimate) -> ControlEffect {
    ControlEffect {
        kind,
        effect: Some(effect),
        margin: Some(margin),
    }
}

fn row(
    method: &str,
    direction: Direction,
    mult: f64,
    effect: Estimate,
    controls: Vec<ControlEffect>,
) -> MainRow {
    MainRow {
        dataset: "sentiment".into(),
        method: method.into(),
        metric: "propensity".into(),
        direction,
        best_layer: Some(10),
        best_multiplier: Some(mult),
        metrics: EffectMetrics {
            effect: Some(effect),
            standardized_effect: None,
            steerability_mean: Some(0.4234),
            steerability_std: Some(0.1311),
            anti_steerable_fraction: Some(0.125),
            r_squared: Some(0.8123),
            n: Some(24),
        },
        controls,
    }
}

fn rows() -> Vec<MainRow> {
    use BaselineKind::{Random, Shuffled};
    vec![
        row(
            "caa",
            Direction::Toward,
            2.0,
            est(2.4, 2.2, 2.6),
            vec![
                control(Random, est(0.02, -0.13, 0.17), est(2.38, 2.16, 2.6)),
                control(Shuffled, est(0.61, 0.4, 0.82), est(1.79, 1.5, 2.08)),
            ],
        ),
        // Only one control evaluated: the other column shows a dash.
        row(
            "pca",
            Direction::Toward,
            0.1 * 3.0,
            est(0.5, 0.1, 0.9),
            vec![control(Random, est(0.1, -0.1, 0.3), est(0.4, -0.05, 0.85))],
        ),
        // No controls at all: dashes in every control column.
        row("probe", Direction::Toward, 1.0, est(0.3, 0.1, 0.5), vec![]),
        row(
            "caa",
            Direction::Away,
            -2.0,
            est(-1.9, -2.1, -1.7),
            vec![
                control(Random, est(-0.05, -0.2, 0.1), est(-1.85, -2.1, -1.6)),
                control(Shuffled, est(-0.3, -0.5, -0.1), est(-1.6, -1.9, -1.3)),
            ],
        ),
    ]
}

#[test]
fn main_tables_split_by_direction_with_control_columns() {
    let cautions = [Caution {
        metric: "propensity".into(),
        dataset: Some("sentiment".into()),
        chance: 0.0,
        observed_low: -0.1,
        observed_high: 0.1,
    }];
    let toward = tables::main(&rows(), &cautions).unwrap();
    let want = "\
| Dataset   | Method | Metric      | Layer | Mult. |   Effect [95% CI] | Random | Shuffled |    Margin [95% CI] | Std. effect | Steerability | Anti-steerable |   R² |   n |
| --------- | ------ | ----------- | ----: | ----: | ----------------: | -----: | -------: | -----------------: | ----------: | -----------: | -------------: | ---: | --: |
| sentiment | caa    | propensity† |    10 |     2 | 2.40 [2.20, 2.60] | 0.0200 |    0.610 |  1.79 [1.50, 2.08] |           — |  0.42 ± 0.13 |          12.5% | 0.81 |  24 |
| sentiment | pca    | propensity† |    10 |   0.3 | 0.50 [0.10, 0.90] |  0.100 |        — | 0.40 [-0.05, 0.85] |           — |  0.42 ± 0.13 |          12.5% | 0.81 |  24 |
| sentiment | probe  | propensity† |    10 |     1 | 0.30 [0.10, 0.50] |      — |        — |                  — |           — |  0.42 ± 0.13 |          12.5% | 0.81 |  24 |
";
    assert_eq!(toward.display.to_markdown(), want);
    assert_eq!(toward.name, "main");

    // Away: same layout, least favourable margin is the one closest to zero (-1.6).
    let away = tables::main_away(&rows(), &[]).unwrap();
    assert_eq!(away.name, "main_away");
    let md = away.display.to_markdown();
    assert_eq!(away.display.rows.len(), 1);
    assert!(md.contains("Random | Shuffled |"), "{md}");
    assert!(
        md.contains("| sentiment | caa    | propensity |    10 |    -2 |"),
        "{md}"
    );
    assert!(md.contains("-1.60 [-1.90, -1.30]"), "{md}");
    // No away rows: the table is empty and not exported.
    let only_toward: Vec<MainRow> = rows()
        .into_iter()
        .filter(|r| r.direction == Direction::Toward)
        .collect();
    assert!(tables::main_away(&only_toward, &[])
        .unwrap()
        .display
        .is_empty());
}

#[test]
fn margins_and_beating_controls_respect_the_direction() {
    let r = rows();
    assert_eq!(r[0].weakest_margin().unwrap().0, BaselineKind::Shuffled);
    assert!(r[0].beats_every_control());
    assert!(
        !r[1].beats_every_control(),
        "CI of the margin reaches below 0"
    );
    assert!(!r[2].beats_every_control(), "no controls");
    assert_eq!(r[3].weakest_margin().unwrap().1.value, -1.6);
    assert!(r[3].beats_every_control());
    assert_eq!(Direction::Away.to_string(), "away");
    assert_eq!(
        serde_json::to_string(&Direction::Toward).unwrap(),
        "\"toward\""
    );
}

#[test]
fn report_with_toward_away_and_controls() {
    let mut data = common::sample();
    data.main = rows();
    let md = render_markdown(&data, None).unwrap();
    let at = |s: &str| {
        md.find(s)
            .unwrap_or_else(|| panic!("missing {s:?} in\n{md}"))
    };
    // Headline table first, then the away table under its own heading, both in Main results.
    assert!(at("## Main results") < at("Random | Shuffled |"));
    assert!(at("Random | Shuffled |") < at("### Steering away from the behaviour"));
    assert!(at("### Steering away from the behaviour") < at("## Baselines"));
    assert!(md.contains("*Random*, *Shuffled*: the effect of a random vector and of a vector extracted from label-shuffled pairs"), "{md}");
    // The baselines section no longer claims to hold the vector controls.
    assert!(md.contains("Reference conditions on the same metrics: the unsteered model and prompting. The random and shuffled vector controls are in the main results"), "{md}");
    assert!(!md.contains("| random vector"), "no random baseline rows");
    // Summary: largest toward effect, its margins, the count over every control.
    let s = summary(&data);
    assert!(
        s.contains("The largest test effect toward the behaviour is `caa` on `sentiment` at layer 10, ×2: propensity changes by 2.40 [2.20, 2.60]."),
        "{s}"
    );
    assert!(
        s.contains("Its margin over its controls at the same setting is 2.38 [2.16, 2.60] over the random vector and 1.79 [1.50, 2.08] over the shuffled vector (paired 95% CIs over inputs)."),
        "{s}"
    );
    assert!(
        s.contains(" 1 of 2 method × dataset pairs have a margin over every control whose 95% CI lies above zero."),
        "{s}"
    );
    // Degradation at exactly the headline's setting (×2, not the away row's ×-2).
    assert!(s.contains("At that setting perplexity is 1.11× that of the unsteered model and KL from the unsteered model is 0.090 nats."), "{s}");
    // The away row does not enter the summary's counts.
    assert!(
        s.contains("3 method × dataset pairs have a 95% CI on the effect that excludes zero"),
        "{s}"
    );
}

#[test]
fn no_controls_and_no_away_rows_render_no_empty_columns_or_headings() {
    let mut data = common::sample();
    data.main.retain(|r| r.direction == Direction::Toward);
    for r in &mut data.main {
        r.controls.clear();
    }
    let md = render_markdown(&data, None).unwrap();
    for absent in [
        "Random",
        "Shuffled",
        "Margin",
        "Steering away",
        "controls are in the main results",
    ] {
        assert!(!md.contains(absent), "{absent:?} in\n{md}");
    }
    assert!(md.contains(
        "Reference conditions on the same metrics: the unsteered model and prompting.\n"
    ));
    let s = summary(&data);
    assert!(
        s.contains("No control was evaluated at that setting."),
        "{s}"
    );
    assert!(!s.contains("margin over every control"), "{s}");
    let names: Vec<&str> = tables::all(&data).unwrap().iter().map(|t| t.name).collect();
    assert!(!names.contains(&"main_away"), "{names:?}");

    // Only away rows: the headline says so instead of an empty table.
    let mut away_only = common::sample();
    away_only.main.retain(|r| r.direction == Direction::Away);
    let md = render_markdown(&away_only, None).unwrap();
    assert!(
        md.contains("No setting was selected toward the behaviour."),
        "{md}"
    );
    assert!(md.contains("### Steering away from the behaviour"));
    assert!(summary(&away_only).contains("only steering away was evaluated"));
}

#[test]
fn chance_level_metrics_are_flagged_beside_their_tables() {
    let data = common::sample();
    let md = render_markdown(&data, None).unwrap();
    let note = "† Multiple-choice accuracy stays at chance (25%) for every setting (observed 22–28%): it cannot tell methods apart on this model.";
    let (deg, plots) = (
        md.find("## Degradation").unwrap(),
        md.find("## A/B letter bias").unwrap(),
    );
    let at = md.find(note).unwrap_or_else(|| panic!("no note in\n{md}"));
    assert!(
        deg < at && at < plots,
        "note outside the degradation section"
    );
    // Both degradation tables mark the column.
    assert_eq!(md.matches("MC accuracy† |").count(), 2, "{md}");
    let sweep = tables::degradation_sweep(&data.degradation, &data.cautions).unwrap();
    assert_eq!(sweep.display.headers.last().unwrap(), "MC accuracy†");
    assert_eq!(sweep.raw.headers.last().unwrap(), "mc_accuracy_ci_high");

    // A main-table metric: note under the main results, its cells marked, only on that dataset.
    let mut data = common::sample();
    data.cautions = vec![
        Caution {
            metric: "ab_probability".into(),
            dataset: Some("formality".into()),
            chance: 0.5,
            observed_low: 0.48,
            observed_high: 0.53,
        },
        // Not in any table: a general note after the summary, unmarked.
        Caution {
            metric: "icl_accuracy".into(),
            dataset: Some("antonyms".into()),
            chance: 0.1,
            observed_low: 0.08,
            observed_high: 0.12,
        },
    ];
    let md = render_markdown(&data, None).unwrap();
    assert!(
        md.contains("| formality | caa    | ab_probability† |"),
        "{md}"
    );
    assert!(
        !md.contains("propensity†"),
        "only the cautioned metric is marked\n{md}"
    );
    let main_note = "† `ab_probability` on `formality` stays at chance (50%) for every setting (observed 48–53%)";
    let at = md
        .find(main_note)
        .unwrap_or_else(|| panic!("no note in\n{md}"));
    assert!(md.find("## Main results").unwrap() < at && at < md.find("## Baselines").unwrap());
    let general = "**Cautions.**\nICL accuracy on `antonyms` stays at chance (10%) for every setting (observed 8–12%)";
    let at = md
        .find(general)
        .unwrap_or_else(|| panic!("no general note in\n{md}"));
    assert!(at < md.find("## Provenance").unwrap());
    // Without the mc caution the degradation header is plain.
    assert!(md.contains("MC accuracy |") && !md.contains("MC accuracy†"));
    // The LaTeX export escapes the dagger and carries the note in its caption.
    let all = tables::all(&data).unwrap();
    let main = all.iter().find(|t| t.name == "main").unwrap();
    assert_eq!(main.notes.len(), 1);
    assert!(main.full_caption().ends_with(". † `ab_probability` on `formality` stays at chance (50%) for every setting (observed 48–53%): it cannot tell methods apart on this model."), "{}", main.full_caption());
    // The formality rows of the away and baselines tables carry the mark too; no other table.
    for t in &all {
        let marked = ["main", "main_away", "baselines"].contains(&t.name);
        assert_eq!(t.notes.len(), usize::from(marked), "{}", t.name);
    }
    let tex = tables::main(&data.main, &data.cautions)
        .unwrap()
        .display
        .to_latex("c", "main");
    assert!(tex.contains("ab\\_probability\\dag{}"), "{tex}");
}

#[test]
fn old_report_data_without_the_new_fields_still_loads() {
    let data = common::sample();
    let mut v = serde_json::to_value(&data).unwrap();
    v.as_object_mut().unwrap().remove("cautions");
    for r in v["main"].as_array_mut().unwrap() {
        r.as_object_mut().unwrap().remove("direction");
        r.as_object_mut().unwrap().remove("controls");
    }
    let back: ReportData = serde_json::from_value(v).unwrap();
    assert!(back.cautions.is_empty());
    assert!(back
        .main
        .iter()
        .all(|r| r.direction == Direction::Toward && r.controls.is_empty()));
    render_markdown(&back, None).unwrap();
}

/// -1 + 0.2 + 0.2 + ... : the sweep a float accumulator produces (0 is -5.55e-17).
fn noisy_sweep() -> Vec<f64> {
    let mut x = -1.0f64;
    let mut out = vec![x];
    for _ in 0..10 {
        x += 0.2;
        out.push(x);
    }
    out
}

#[test]
fn multiplier_axes_show_the_sweep_values_without_float_noise() {
    let mut data = common::sample();
    let sweep = noisy_sweep();
    assert!(sweep[5] != 0.0 && sweep[5].abs() < 1e-15);
    for c in &mut data.curves {
        c.points = sweep
            .iter()
            .map(|&x| CurvePoint {
                multiplier: x,
                mean: x,
                ci_low: Some(x - 0.1),
                ci_high: Some(x + 0.1),
            })
            .collect();
    }
    let first = data.heatmap[0].clone();
    data.heatmap = sweep
        .iter()
        .map(|&x| HeatCell {
            multiplier: x,
            // A measurement, not a sweep value: kept clear of 0 so its own labels carry no noise.
            value: 1.0 + x,
            ..first.clone()
        })
        .collect();
    let figs = figures(&data);
    let labels = [
        "-1", "-0.8", "-0.6", "-0.4", "-0.2", "0", "0.2", "0.4", "0.6", "0.8", "1",
    ];
    for kind in [PlotKind::Curves, PlotKind::Heatmap] {
        let fig = figs.iter().find(|f| f.kind == kind).unwrap();
        let svg = render_svg(fig).unwrap();
        assert!(
            !svg.contains("e-17") && !svg.contains("e-16"),
            "{kind:?} shows float noise"
        );
        for l in labels {
            assert!(
                svg.contains(&format!(">\n{l}\n<")),
                "{kind:?} lacks tick {l}"
            );
        }
        // Accumulated 0.6000000000000001 and friends print as the sweep's decimals.
        assert!(!svg.contains("0000000"), "{kind:?}");
    }
    // The heat map bins the noisy 0 and a clean 0 into one column.
    let mut data2 = data.clone();
    data2.heatmap.push(HeatCell {
        multiplier: 0.0,
        layer: first.layer + 1,
        ..first.clone()
    });
    let fig = figures(&data2)
        .into_iter()
        .find(|f| f.kind == PlotKind::Heatmap)
        .unwrap();
    let before = figures(&data)
        .into_iter()
        .find(|f| f.kind == PlotKind::Heatmap)
        .unwrap();
    assert_eq!(fig.size().0, before.size().0, "one column for 0, not two");
}

#[test]
fn setup_and_degradation_tables_print_sweep_values_exactly() {
    let mut data = common::sample();
    data.setup.multipliers = noisy_sweep();
    let setup = tables::setup(&data).unwrap().to_markdown();
    assert!(
        setup.contains("-1, -0.8, -0.6, -0.4, -0.2, 0, 0.2, 0.4, 0.6, 0.8, 1"),
        "{setup}"
    );
    data.degradation.sweep[0].multiplier = noisy_sweep()[5];
    let t = tables::degradation_sweep(&data.degradation, &[])
        .unwrap()
        .display
        .to_markdown();
    assert!(!t.contains("e-17"), "{t}");
}

/// Tool accuracy (degradation) and tool-call validity (generations) get their columns,
/// a sentence each and a summary clause only when measured.
#[test]
fn tool_columns_show_only_when_measured() {
    let data = common::sample();
    let md = render_markdown(&data, None).unwrap();
    assert!(!md.contains("Tool accuracy") && !md.contains("Valid tool call"));

    let mut data = common::sample();
    let e = |v: f64| Some(steerbench_report::Estimate::new(v));
    data.degradation.unsteered.as_mut().unwrap().tool_accuracy = e(0.75);
    for r in data
        .degradation
        .at_chosen
        .iter_mut()
        .chain(&mut data.degradation.sweep)
    {
        r.tool_accuracy = e(0.5);
    }
    for r in &mut data.generation_quality {
        r.tool_call_json = e(1.0);
        r.tool_call_valid = e(0.25);
    }
    let md = render_markdown(&data, None).unwrap();
    assert_eq!(md.matches("Tool accuracy |").count(), 2, "{md}");
    assert!(md.contains("*Tool accuracy*: share of neutral tool-choice tasks"));
    assert!(md.contains("Valid tool call |") && md.contains("*Valid tool call*: share"));
    assert!(
        md.contains("top-1 tool accuracy is 50% (unsteered: 75%)"),
        "{md}"
    );
    let sweep = tables::degradation_sweep(&data.degradation, &data.cautions).unwrap();
    assert_eq!(sweep.raw.headers.last().unwrap(), "tool_accuracy_ci_high");
    let g = tables::generation_quality(&data.generation_quality).unwrap();
    assert!(g.raw.headers.contains(&"tool_call_valid".to_string()));
}
