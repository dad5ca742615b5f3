//! The cross-behaviour scorecard as rendered: the report's first section with two or more
//! behaviours (markdown checked line by line), its CSV exports, and no change at all to a
//! report with one behaviour.

mod common;

use steerbench_report::*;

fn est(v: f64, lo: f64, hi: f64) -> Estimate {
    Estimate::with_ci(v, lo, hi)
}

/// A toward row at layer 2, ×0.5, with effect `e` and standardised effect `s`.
fn row(dataset: &str, method: &str, e: Estimate, s: f64, anti: f64) -> MainRow {
    MainRow {
        dataset: dataset.into(),
        method: method.into(),
        metric: "propensity".into(),
        direction: Direction::Toward,
        best_layer: Some(2),
        best_multiplier: Some(0.5),
        metrics: EffectMetrics {
            effect: Some(e),
            standardized_effect: Some(Estimate::new(s)),
            steerability_mean: Some(1.0),
            steerability_std: Some(0.5),
            anti_steerable_fraction: Some(anti),
            r_squared: Some(0.5),
            n: Some(10),
        },
        controls: Vec::new(),
    }
}

fn control(kind: BaselineKind, effect: f64, margin: Estimate) -> ControlEffect {
    ControlEffect {
        kind,
        effect: Some(Estimate::new(effect)),
        margin: Some(margin),
    }
}

/// Two behaviours (`refusal` from a matrix stage, `formality_ab` from a plain one), caa on
/// both and pca on `refusal` only; degradation measured for caa only.
fn two_behaviours() -> ReportData {
    let mut data = common::sample();
    let mut caa_r = row("refusal_ab", "caa", est(2.0, 1.0, 3.0), 0.5, 0.1);
    caa_r.controls = vec![
        control(BaselineKind::Random, 0.4, est(1.6, 0.8, 2.4)),
        control(BaselineKind::Shuffled, 1.2, est(0.8, 0.4, 1.2)),
    ];
    let pca_r = row("refusal_ab", "pca", est(-1.0, -2.0, -0.4), -0.25, 0.6);
    let mut caa_f = row("formality_ab", "caa", est(0.5, -0.5, 1.5), 0.25, 0.3);
    caa_f.controls = vec![control(BaselineKind::Random, 0.5, est(0.0, -1.0, 1.0))];
    let (refusal, formality) = (vec![caa_r, pca_r], vec![caa_f]);
    data.main = [formality.clone(), refusal.clone()].concat();
    let degradation = Degradation {
        unsteered: Some(DegradationReference {
            perplexity: Some(Estimate::new(10.0)),
            mc_accuracy: None,
            tool_accuracy: None,
        }),
        at_chosen: vec![DegradationRow {
            dataset: Some("refusal_ab, formality_ab".into()),
            method: "caa".into(),
            layer: Some(2),
            multiplier: 0.5,
            perplexity: Some(Estimate::new(12.5)),
            perplexity_ratio: None,
            kl: Some(est(0.25, 0.125, 0.5)),
            mc_accuracy: None,
            tool_accuracy: None,
        }],
        sweep: Vec::new(),
    };
    data.behaviours = vec![
        Behaviour {
            label: "refusal".into(),
            stage: "sweep[refusal]".into(),
            main: refusal,
            degradation: Some(degradation.clone()),
        },
        Behaviour {
            label: "formality_ab".into(),
            stage: "effect".into(),
            main: formality,
            degradation: Some(degradation),
        },
    ];
    data
}

/// The markdown between two headings (the heading line included).
fn section<'a>(md: &'a str, heading: &str) -> &'a str {
    let start = md
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no {heading}\n{md}"))
        + 1;
    let end = md[start + heading.len()..]
        .find("\n## ")
        .map_or(md.len(), |e| start + heading.len() + e + 1);
    &md[start..end]
}

#[test]
fn scorecard_is_the_first_section_with_two_behaviours() {
    let md = render_markdown(&two_behaviours(), None).unwrap();
    let first = md.lines().find(|l| l.starts_with("## ")).unwrap();
    assert_eq!(first, "## Scorecard across behaviours");
    // The summary paragraph follows under its own heading, before the usual sections.
    let summary = md.find("\n## Summary\n\nThis report evaluates").unwrap();
    assert!(summary < md.find("\n## Provenance\n").unwrap());

    let want = "\
## Scorecard across behaviours

2 behaviours, one per evaluate stage: `refusal` (stage `sweep[refusal]`), `formality_ab` (stage `effect`).
Per behaviour and method, at the layer and positive multiplier chosen on validation toward the behaviour (the setting of the main results), evaluated on test.
*Std. effect*: steered minus unsteered mean of the metric in units of the unsteered standard deviation, with the effect's 95% bootstrap CI on the same scale.
*Steerable*: that CI lies above zero (*wrong way*: below zero).
*Margin (std.)*: the method's effect minus that of its strongest control at the same setting (named under *Control*; the random and shuffled vectors are norm-matched), paired over inputs, in the same units.
*Anti-steerable*: share of inputs whose per-input slope against the multiplier is negative.
*PPL ratio*: perplexity on held-out text relative to the unsteered model; *KL*: KL(unsteered ‖ steered) of next-token distributions on neutral prompts, in nats; both at the same setting.
*n/a*: not measured; no degradation stage among the inputs steered with that behaviour's vectors at that setting.

| Behaviour    | Method | Layer | Mult. | Std. effect [95% CI] | Steerable      | Margin (std.) [95% CI] | Control  | Anti-steerable | PPL ratio | KL (nats) |   n |
| ------------ | ------ | ----: | ----: | -------------------: | -------------- | ---------------------: | -------- | -------------: | --------: | --------: | --: |
| refusal      | caa    |     2 |   0.5 |    0.50 [0.25, 0.75] | yes            |      0.20 [0.10, 0.30] | shuffled |          10.0% |      1.25 |     0.250 |  10 |
| refusal      | pca    |     2 |   0.5 | -0.25 [-0.50, -0.10] | no (wrong way) |                      — | —        |          60.0% |       n/a |       n/a |  10 |
| formality_ab | caa    |     2 |   0.5 |   0.25 [-0.25, 0.75] | no             |     0.00 [-0.50, 0.50] | random   |          30.0% |      1.25 |     0.250 |  10 |

Per method, across the behaviours: on how many it was evaluated, the mean standardised effect, how many are steerable and how many beat every control (margin CI above zero for each), and the worst perplexity ratio and KL over the settings measured.

| Method | Behaviours | Mean std. effect | Steerable | Beats controls | Worst PPL ratio | Worst KL (nats) |
| ------ | ---------: | ---------------: | --------: | -------------: | --------------: | --------------: |
| caa    |     2 of 2 |            0.375 |    1 of 2 |         1 of 2 |            1.25 |           0.250 |
| pca    |     1 of 2 |           -0.250 |    0 of 1 |              — |             n/a |             n/a |

";
    assert_eq!(section(&md, "## Scorecard across behaviours"), want);
}

#[test]
fn scorecard_tables_are_exported_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = render(&two_behaviours(), dir.path(), None).unwrap();
    let names: Vec<&str> = out.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(&names[..3], ["scorecard", "scorecard_summary", "main"]);
    let csv = std::fs::read_to_string(dir.path().join("tables/scorecard.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "behaviour,stage,dataset,method,metric,layer,multiplier,\
         standardized_effect,standardized_effect_ci_low,standardized_effect_ci_high,\
         effect,effect_ci_low,effect_ci_high,steerable,margin_control,margin,margin_ci_low,\
         margin_ci_high,standardized_margin,standardized_margin_ci_low,\
         standardized_margin_ci_high,beats_controls,anti_steerable_fraction,\
         degradation_measured,perplexity_ratio,kl,kl_ci_low,kl_ci_high,n"
    );
    assert_eq!(
        lines[1],
        "refusal,sweep[refusal],refusal_ab,caa,propensity,2,0.5,0.5,0.25,0.75,2,1,3,true,\
         shuffled,0.8,0.4,1.2,0.2,0.1,0.3,true,0.1,true,1.25,0.25,0.125,0.5,10"
    );
    assert_eq!(
        lines[2],
        "refusal,sweep[refusal],refusal_ab,pca,propensity,2,0.5,-0.25,-0.5,-0.1,-1,-2,-0.4,\
         false,,,,,,,,,0.6,false,,,,,10"
    );
    assert_eq!(lines.len(), 4);
    let summary = std::fs::read_to_string(dir.path().join("tables/scorecard_summary.csv")).unwrap();
    assert_eq!(
        summary,
        "method,behaviours,behaviours_total,mean_standardized_effect,with_standardized_effect,\
         steerable,beats_controls,with_controls,degradation_measured,worst_perplexity_ratio,\
         worst_kl\n\
         caa,2,2,0.375,2,1,1,2,2,1.25,0.25\n\
         pca,1,2,-0.25,1,0,0,0,0,,\n"
    );
    let tex = std::fs::read_to_string(dir.path().join("tables/scorecard.tex")).unwrap();
    assert!(tex.contains("\\label{tab:scorecard}"), "{tex}");
}

#[test]
fn without_a_degradation_stage_the_scorecard_says_so() {
    let mut data = two_behaviours();
    for b in &mut data.behaviours {
        b.degradation = None;
    }
    let md = render_markdown(&data, None).unwrap();
    let s = section(&md, "## Scorecard across behaviours");
    assert!(
        s.contains(
            "No degradation stage is among this report's inputs, so degradation was not measured (*n/a*)."
        ),
        "{s}"
    );
    assert!(s.contains("|             n/a |             n/a |"), "{s}");
}

#[test]
fn one_behaviour_leaves_the_report_as_it_was() {
    let data = common::sample();
    let before = render_markdown(&data, None).unwrap();
    let mut one = data.clone();
    one.behaviours = vec![Behaviour {
        label: "sentiment".into(),
        stage: "effect".into(),
        main: data.main.clone(),
        degradation: None,
    }];
    assert_eq!(render_markdown(&one, None).unwrap(), before);
    assert!(!before.contains("Scorecard") && !before.contains("## Summary"));
    let dir = tempfile::tempdir().unwrap();
    let out = render(&one, dir.path(), None).unwrap();
    assert!(out.tables.iter().all(|t| !t.name.starts_with("scorecard")));
}

#[test]
fn partly_measured_degradation_is_counted() {
    let mut data = two_behaviours();
    data.behaviours[1].degradation = None;
    let md = render_markdown(&data, None).unwrap();
    let s = section(&md, "## Scorecard across behaviours");
    assert!(
        s.contains("| formality_ab | caa    |     2 |   0.5 |   0.25 [-0.25, 0.75] | no             |     0.00 [-0.50, 0.50] | random   |          30.0% |       n/a |       n/a |  10 |"),
        "{s}"
    );
    assert!(
        s.contains("| caa    |     2 of 2 |            0.375 |    1 of 2 |         1 of 2 | 1.25 (1 of 2 measured) | 0.250 (1 of 2 measured) |"),
        "{s}"
    );
}
