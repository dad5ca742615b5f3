mod common;

use std::path::Path;

use steerbench_report::plots::{figures, render_png, render_svg, PlotKind};
use steerbench_report::*;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const SECTIONS: [&str; 11] = [
    "# quickstart",
    "## Provenance",
    "## Setup",
    "## Main results",
    "## Baselines",
    "## Degradation",
    "## A/B letter bias",
    "## ICL",
    "## Generations",
    "## Plots",
    "## How to reproduce",
];

#[test]
fn full_report_has_every_section_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::sample();
    let out = render(&data, dir.path(), None).unwrap();
    let md = read(&out.markdown);
    let mut at = 0;
    for h in SECTIONS {
        let found = md[at..]
            .find(&format!("{h}\n"))
            .unwrap_or_else(|| panic!("missing or out of order: {h}\n{md}"));
        at += found + h.len();
    }
    // Real numbers, human formatting, no debug output.
    assert!(
        md.contains(
            "| sentiment | caa    | propensity     |    10 |     2 | 2.40 [2.20, 2.60] |  0.0200 |"
        ),
        "{md}"
    );
    assert!(md.contains("This report evaluates 3 steering methods (caa, pca, and probe)"));
    for bad in ["Some(", "None", "Estimate {", "NaN", "{{", "{%"] {
        assert!(
            !md.contains(bad),
            "debug/template residue {bad:?} in report"
        );
    }
    // Every figure is embedded by relative path and exists on disk as SVG and PNG.
    assert_eq!(out.plots.len(), 8);
    for p in &out.plots {
        assert!(
            md.contains(&format!("](plots/{}.svg)", p.name)),
            "{} not embedded",
            p.name
        );
        assert!(p.svg.is_file() && p.png.is_file());
    }
    let names: Vec<&str> = out.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "main",
            "main_away",
            "baselines",
            "degradation",
            "degradation_sweep",
            "letter_bias",
            "icl",
            "generation_quality"
        ]
    );
    // Generation scores: one row per condition, CIs shown.
    assert!(md.contains("| sentiment | caa "), "{md}");
    assert!(md.contains("Concept similarity"));
    // The generation table is aligned and its pipe is escaped.
    assert!(
        md.contains("| What a glorious, sunny day \\| full of joy!<br>Truly lovely. |"),
        "{md}"
    );
}

#[test]
fn same_data_gives_byte_identical_outputs() {
    let data = common::sample();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ra = render(&data, a.path(), None).unwrap();
    let rb = render(&data, b.path(), None).unwrap();
    assert_eq!(
        std::fs::read(&ra.markdown).unwrap(),
        std::fs::read(&rb.markdown).unwrap()
    );
    for (pa, pb) in ra.plots.iter().zip(&rb.plots) {
        assert_eq!(
            std::fs::read(&pa.svg).unwrap(),
            std::fs::read(&pb.svg).unwrap(),
            "{}",
            pa.name
        );
        assert_eq!(
            std::fs::read(&pa.png).unwrap(),
            std::fs::read(&pb.png).unwrap(),
            "{}",
            pa.name
        );
    }
    for (ta, tb) in ra.tables.iter().zip(&rb.tables) {
        assert_eq!(
            std::fs::read(&ta.csv).unwrap(),
            std::fs::read(&tb.csv).unwrap(),
            "{}",
            ta.name
        );
        assert_eq!(
            std::fs::read(&ta.tex).unwrap(),
            std::fs::read(&tb.tex).unwrap(),
            "{}",
            ta.name
        );
    }
    // `render_markdown` (what `steerbench report` re-renders) is exactly the file.
    assert_eq!(render_markdown(&data, None).unwrap(), read(&ra.markdown));
}

/// Crude well-formedness: one root, balanced text elements, closed.
fn assert_svg(svg: &str, must_contain: &[&str]) {
    assert!(
        svg.starts_with("<svg"),
        "not an SVG: {}",
        &svg[..svg.len().min(80)]
    );
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), 1);
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    for s in must_contain {
        assert!(svg.contains(s), "SVG lacks {s:?}");
    }
}

fn assert_png(path: &Path, size: (u32, u32)) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap();
    assert_eq!((img.width(), img.height()), size);
    // Not blank: the plot drew something other than the white background.
    let rgb = img.to_rgb8();
    assert!(rgb.pixels().any(|p| p.0 != [255, 255, 255]));
}

#[test]
fn each_plot_kind_renders_valid_svg_and_png() {
    let data = common::sample();
    let figs = figures(&data);
    let dir = tempfile::tempdir().unwrap();
    for kind in [
        PlotKind::Curves,
        PlotKind::Heatmap,
        PlotKind::Slopes,
        PlotKind::Pareto,
    ] {
        let fig = figs
            .iter()
            .find(|f| f.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} figure"));
        let svg = render_svg(fig).unwrap();
        let mut expected: Vec<&str> = common::METHODS.to_vec();
        expected.push(&fig.title);
        match kind {
            PlotKind::Curves => {
                expected.extend(["layer 6", "layer 14", "multiplier", "propensity"])
            }
            PlotKind::Heatmap => expected.extend(["layer", "multiplier", "propensity"]),
            PlotKind::Slopes => expected.extend(["anti-steerable", "inputs"]),
            PlotKind::Pareto => expected.extend(["Pareto front", "KL from unsteered (nats)"]),
        }
        assert_svg(&svg, &expected);
        let png = dir.path().join(format!("{}.png", fig.name));
        render_png(fig, &png).unwrap();
        assert_png(&png, fig.size());
    }
}

#[test]
fn absent_sections_say_so() {
    let mut data = common::sample();
    data.main.clear();
    data.baselines.clear();
    data.degradation = Degradation::default();
    data.letter_bias.clear();
    data.icl.clear();
    data.generations.clear();
    data.generation_quality.clear();
    data.curves.clear();
    data.heatmap.clear();
    data.slopes.clear();
    data.pareto.points.clear();
    data.reproduce.clear();
    data.provenance.stage_times.clear();
    let dir = tempfile::tempdir().unwrap();
    let out = render(&data, dir.path(), None).unwrap();
    let md = read(&out.markdown);
    for line in [
        "No main results in this run.",
        "No baselines were evaluated in this run.",
        "No degradation stage in this pipeline.",
        "No A/B dataset was evaluated with swapped letters.",
        "No curve, heat-map, slope or Pareto data in this run.",
        "No reproduction commands were recorded.",
        "No stage timings were recorded.",
        "The pipeline produced no main results.",
    ] {
        assert!(md.contains(line), "missing {line:?} in\n{md}");
    }
    // ICL and generations appear only where present.
    assert!(!md.contains("## ICL") && !md.contains("## Generations"));
    assert!(out.plots.is_empty() && out.tables.is_empty());
}

#[test]
fn user_template_overrides_the_default_and_can_include() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("footer.md"),
        "-- {{ data.provenance.model_id }}\n",
    )
    .unwrap();
    let tpl = dir.path().join("mine.md.j2");
    std::fs::write(
        &tpl,
        "# {{ data.title | upper }}\n{{ data.main[0].metrics.effect | ci }} / {{ data.main[0].metrics.anti_steerable_fraction | pct }}\n{% include 'footer.md' %}",
    )
    .unwrap();
    let out = render(&common::sample(), &dir.path().join("out"), Some(&tpl)).unwrap();
    assert_eq!(
        read(&out.markdown),
        "# QUICKSTART\n2.40 [2.20, 2.60] / 6.2%\n-- smollm2-135m-instruct\n"
    );
}

#[test]
fn broken_user_template_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let tpl = dir.path().join("bad.md.j2");
    std::fs::write(&tpl, "{% for x in %}").unwrap();
    let err = render(&common::sample(), &dir.path().join("out"), Some(&tpl)).unwrap_err();
    assert!(matches!(err, ReportError::Template(_)), "{err}");
    assert!(!dir.path().join("out/report.md").exists());
}

#[test]
fn exported_tables_are_valid_csv_and_booktabs() {
    let dir = tempfile::tempdir().unwrap();
    let out = render(&common::sample(), dir.path(), None).unwrap();
    for t in &out.tables {
        let mut rdr = csv::Reader::from_path(&t.csv).unwrap();
        let width = rdr.headers().unwrap().len();
        let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
        assert!(!rows.is_empty(), "{}", t.name);
        assert!(rows.iter().all(|r| r.len() == width), "{}", t.name);
        let tex = read(&t.tex);
        for cmd in [
            "\\toprule",
            "\\midrule",
            "\\bottomrule",
            &format!("\\label{{tab:{}}}", t.name),
        ] {
            assert!(tex.contains(cmd), "{} lacks {cmd}", t.name);
        }
        // Every underscore and percent sign outside \label{} is escaped.
        let body: String = tex
            .lines()
            .filter(|l| !l.starts_with("\\label"))
            .collect::<Vec<_>>()
            .join("\n");
        let body = body.replace("\\_", "").replace("\\%", "");
        assert!(
            !body.contains('_') && !body.contains('%'),
            "{}: unescaped specials\n{tex}",
            t.name
        );
    }
    // Full precision in the CSV, not the rounded display.
    let main = read(&dir.path().join("tables/main.csv"));
    assert!(main.starts_with(
        "dataset,method,metric,direction,best_layer,best_multiplier,effect,effect_ci_low,effect_ci_high,"
    ));
    assert!(
        main.contains("sentiment,caa,propensity,toward,10,2,2.4"),
        "{main}"
    );
    // Controls at the row's setting: effect and margin with their CIs, both kinds always.
    let header = main.lines().next().unwrap();
    assert!(
        header.ends_with(",n,random_effect,random_effect_ci_low,random_effect_ci_high,random_margin,random_margin_ci_low,random_margin_ci_high,shuffled_effect,shuffled_effect_ci_low,shuffled_effect_ci_high,shuffled_margin,shuffled_margin_ci_low,shuffled_margin_ci_high"),
        "{header}"
    );
    let away = read(&dir.path().join("tables/main_away.csv"));
    assert!(
        away.contains("sentiment,caa,propensity,away,10,-2,-1.92"),
        "{away}"
    );
}

#[test]
fn main_table_snapshot() {
    let row = |method: &str, eff: Estimate, anti: f64| MainRow {
        dataset: "sentiment".into(),
        method: method.into(),
        metric: "propensity".into(),
        direction: Direction::Toward,
        best_layer: Some(10),
        best_multiplier: Some(-1.5),
        metrics: EffectMetrics {
            effect: Some(eff),
            standardized_effect: None,
            steerability_mean: Some(0.4234),
            steerability_std: Some(0.1311),
            anti_steerable_fraction: Some(anti),
            r_squared: Some(0.8123),
            n: Some(24),
        },
        controls: vec![],
    };
    // Without controls the table keeps its old columns (no empty control headers).
    let t = tables::main(
        &[
            row("caa", Estimate::with_ci(0.123, 0.101, 0.145), 0.125),
            row("mean_difference", Estimate::new(-0.0004), 0.5),
        ],
        &[],
    )
    .unwrap();
    let want = "\
| Dataset   | Method          | Metric     | Layer | Mult. |      Effect [95% CI] | Std. effect | Steerability | Anti-steerable |   R² |   n |
| --------- | --------------- | ---------- | ----: | ----: | -------------------: | ----------: | -----------: | -------------: | ---: | --: |
| sentiment | caa             | propensity |    10 |  -1.5 | 0.123 [0.101, 0.145] |           — |  0.42 ± 0.13 |          12.5% | 0.81 |  24 |
| sentiment | mean_difference | propensity |    10 |  -1.5 |            -0.000400 |           — |  0.42 ± 0.13 |          50.0% | 0.81 |  24 |
";
    assert_eq!(t.display.to_markdown(), want);
}

#[test]
fn report_data_round_trips_through_json_and_rejects_unknown_fields() {
    let data = common::sample();
    let json = serde_json::to_string(&data).unwrap();
    let back: ReportData = serde_json::from_str(&json).unwrap();
    // serde_json (without `float_roundtrip`) may parse a float 1 ulp off; the report is unaffected.
    assert_eq!(back.main.len(), data.main.len());
    assert_eq!(
        render_markdown(&back, None).unwrap(),
        render_markdown(&data, None).unwrap()
    );
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["provenance"]["modle_id"] = "x".into();
    let err = serde_json::from_value::<ReportData>(v)
        .unwrap_err()
        .to_string();
    assert!(err.contains("modle_id"), "{err}");
}

#[test]
fn unwritable_output_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a_file");
    std::fs::write(&file, "x").unwrap();
    let err = render(&common::sample(), &file.join("sub"), None).unwrap_err();
    assert!(matches!(err, ReportError::Io { .. }), "{err}");
}

#[test]
fn degenerate_plot_data_still_renders() {
    let mut data = common::sample();
    data.curves.truncate(1);
    data.curves[0].points.truncate(1);
    data.curves[0].points[0].ci_low = None;
    for c in &mut data.heatmap {
        c.value = 0.5;
    }
    data.heatmap[0].value = f64::NAN;
    data.slopes.truncate(1);
    data.slopes[0].slopes = vec![0.0, f64::INFINITY];
    data.pareto.points.truncate(1);
    let dir = tempfile::tempdir().unwrap();
    let out = render(&data, dir.path(), None).unwrap();
    for p in &out.plots {
        assert_svg(&read(&p.svg), &[]);
        let fig = figures(&data)
            .into_iter()
            .find(|f| f.name == p.name)
            .unwrap();
        assert_png(&p.png, fig.size());
    }
}

#[test]
fn unsteerable_results_are_stated_plainly() {
    let mut data = common::sample();
    for r in &mut data.main {
        r.metrics.effect = Some(Estimate::with_ci(0.01, -0.05, 0.07));
    }
    let s = summary(&data);
    assert!(
        s.contains(
            "None of the 6 method × dataset pairs moves its metric beyond the 95% CI on test"
        ),
        "{s}"
    );
}

#[test]
fn wide_sweep_renders_every_method_in_every_figure() {
    let data = common::sample_large();
    let dir = tempfile::tempdir().unwrap();
    let out = render(&data, dir.path(), None).unwrap();
    assert_eq!(out.plots.len(), 4);
    for p in &out.plots {
        let svg = read(&p.svg);
        assert_svg(
            &svg,
            &["caa", "mean_centring", "function_vector", "shuffled"],
        );
        let fig = figures(&data)
            .into_iter()
            .find(|f| f.name == p.name)
            .unwrap();
        assert_png(&p.png, fig.size());
    }
}

#[test]
fn all_layer_methods_get_their_own_labelled_panel() {
    let mut data = common::sample();
    let first = data.curves[0].clone();
    data.curves.push(Curve {
        method: "icv".into(),
        layer: None,
        ..first.clone()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = render(&data, dir.path(), None).unwrap();
    let name = format!(
        "curves_{}_{}",
        first.dataset.to_lowercase(),
        first.metric.to_lowercase()
    );
    let plot = out
        .plots
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", out.plots));
    let svg = std::fs::read_to_string(&plot.svg).unwrap();
    assert!(svg.contains("all layers"), "no all-layer panel");
    assert!(!svg.contains(">layer 0<") || data.curves.iter().any(|c| c.layer == Some(0)));
}
