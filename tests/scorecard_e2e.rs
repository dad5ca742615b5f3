//! The cross-behaviour scorecard end to end on a tiny random-weight Llama written to disk
//! as a Hugging Face directory (byte-level tokenizer, 2 layers, d = 16): two behaviours,
//! each its own extract → vectors → evaluate chain on a built-in A/B dataset, degradation
//! measured for one of them only, and a report over both. The report's first section is
//! the scorecard with both behaviours (the unmeasured one's degradation said to be `n/a`),
//! its tables are exported with the documented columns, and `steerbench report`
//! re-renders it byte for byte.

use std::path::Path;
use std::process::Command;

mod outputs;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use outputs::stage_dir;
use tiny_llama::write_tiny_model;

/// Two behaviours on the built-in A/B datasets, degradation for `sentiment` only.
fn spec(model: &Path) -> String {
    let mut s = format!(
        "# Scorecard end-to-end test.\nname: scorecard_e2e\nseed: 0\nmodel: {}\nprompt_format: chat\n",
        model.display()
    );
    s += r#"datasets:
  sentiment_ab:
    source: builtin:sentiment_ab
    format: contrastive_ab
    split: { train: 0.4, val: 0.3, test: 0.3 }
    limit: 20
  formality_ab:
    source: builtin:formality_ab
    format: contrastive_ab
    split: { train: 0.4, val: 0.3, test: 0.3 }
    limit: 20
  corpus:
    source: builtin:corpus_en
    format: text
    split: { train: 0.0, val: 0.0, test: 1.0 }
    limit: 2
    window_tokens: 64
stages:
"#;
    for b in ["sentiment", "formality"] {
        s += &format!(
            r#"  acts_{b}:
    extract: {{ dataset: {b}_ab.train, layers: all, read_position: answer }}
  vectors_{b}:
    vectors: {{ activations: acts_{b}, methods: [caa, pca, random, shuffled], normalize: resid_norm }}
  sweep_{b}:
    evaluate:
      vectors: vectors_{b}
      datasets: [{b}_ab.val, {b}_ab.test]
      layers: [0, 1]
      multipliers: [-1, 0, 0.5, 1]
      metrics: [propensity, steerability]
"#
        );
    }
    s += r#"  damage_sentiment:
    degradation: { vectors: vectors_sentiment, from: sweep_sentiment, corpus: corpus.test, metrics: [perplexity] }
  report:
    report: { inputs: [sweep_sentiment, sweep_formality, damage_sentiment] }
"#;
    s
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_steerbench"))
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect();
    (headers, rows)
}

#[test]
fn two_behaviours_open_the_report_with_the_scorecard() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny-llama");
    write_tiny_model(&model);
    let spec_path = tmp.path().join("scorecard_e2e.yaml");
    std::fs::write(&spec_path, spec(&model)).unwrap();
    let runs = tmp.path().join("runs");
    let out = bin()
        .arg("run")
        .arg(&spec_path)
        .arg("--runs-dir")
        .arg(&runs)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "run failed:\n{stdout}\n{stderr}");
    let run = runs.join("scorecard_e2e");
    let report = stage_dir(&run, "report");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();

    // The first section is the scorecard, naming both behaviours and their stages.
    let first = md.lines().find(|l| l.starts_with("## ")).unwrap();
    assert_eq!(first, "## Scorecard across behaviours", "{md}");
    let section = &md[md.find(first).unwrap()..md.find("\n## Summary\n").unwrap()];
    assert!(
        section.contains(
            "2 behaviours, one per evaluate stage: `formality_ab` (stage `sweep_formality`), `sentiment_ab` (stage `sweep_sentiment`)."
        ),
        "{section}"
    );
    assert!(
        section.contains("*n/a*: not measured; no degradation stage"),
        "{section}"
    );
    let table_rows: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("| sentiment_ab ") || l.starts_with("| formality_ab "))
        .collect();
    assert_eq!(table_rows.len(), 4, "{section}");
    for l in &table_rows {
        let cells: Vec<&str> = l.split('|').map(str::trim).collect();
        // | Behaviour | Method | Layer | Mult. | Std. effect | Steerable | Margin | Control |
        //   Anti-steerable | PPL ratio | KL | n |
        assert!(["caa", "pca"].contains(&cells[2]), "{l}");
        assert!(["shuffled", "random"].contains(&cells[8]), "{l}");
        if cells[1] == "formality_ab" {
            assert_eq!((cells[10], cells[11]), ("n/a", "n/a"), "{l}");
        } else {
            assert!(cells[10].parse::<f64>().is_ok(), "measured ppl ratio: {l}");
            assert_eq!(cells[11], "—", "KL was not requested: {l}");
        }
    }
    eprintln!("{section}");

    // The exports: the scorecard and its summary, first among the tables.
    let (headers, rows) = csv_rows(&report.join("tables/scorecard.csv"));
    assert_eq!(
        headers,
        [
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
        ]
    );
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let keys: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r[col("behaviour")].as_str(),
                r[col("stage")].as_str(),
                r[col("method")].as_str(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("formality_ab", "sweep_formality", "caa"),
            ("formality_ab", "sweep_formality", "pca"),
            ("sentiment_ab", "sweep_sentiment", "caa"),
            ("sentiment_ab", "sweep_sentiment", "pca"),
        ]
    );
    for r in &rows {
        let measured = r[col("behaviour")] == "sentiment_ab";
        assert_eq!(r[col("degradation_measured")], measured.to_string());
        assert_eq!(r[col("perplexity_ratio")].is_empty(), !measured);
        let std: f64 = r[col("standardized_effect")].parse().unwrap();
        let (lo, hi): (f64, f64) = (
            r[col("standardized_effect_ci_low")].parse().unwrap(),
            r[col("standardized_effect_ci_high")].parse().unwrap(),
        );
        assert!(std.is_finite() && lo <= hi, "{r:?}");
        assert_eq!(
            r[col("steerable")],
            (r[col("effect_ci_low")].parse::<f64>().unwrap() > 0.0).to_string()
        );
        assert!(r[col("n")].parse::<usize>().unwrap() >= 2, "{r:?}");
    }
    let (sh, srows) = csv_rows(&report.join("tables/scorecard_summary.csv"));
    assert_eq!(
        sh,
        [
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
        ]
    );
    let summary: Vec<(&str, &str, &str, &str)> = srows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str(), r[8].as_str()))
        .collect();
    assert_eq!(
        summary,
        [("caa", "2", "2", "1"), ("pca", "2", "2", "1")],
        "{srows:?}"
    );
    eprintln!("{srows:?}");

    // `steerbench report` rebuilds the same markdown from the Parquet outputs alone.
    let again = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("report")
        .arg(&run)
        .arg("--out")
        .arg(again.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md2 = std::fs::read_to_string(again.path().join("report/report.md")).unwrap();
    assert_eq!(md, md2, "re-rendered report differs");
}

/// The same two behaviours written as a matrix (`sweep[sentiment]`, `sweep[formality]`):
/// behaviours are labelled by their cell.
const MATRIX_SPEC: &str = r#"matrix:
  behaviour: [sentiment, formality]
datasets:
  ab:
    foreach: behaviour
    source: builtin:{behaviour}_ab
    format: contrastive_ab
    split: { train: 0.4, val: 0.3, test: 0.3 }
    limit: 20
  corpus:
    source: builtin:corpus_en
    format: text
    split: { train: 0.0, val: 0.0, test: 1.0 }
    limit: 2
    window_tokens: 64
  neutral:
    source: builtin:neutral_prompts
    format: open_ended
    split: { train: 0.0, val: 0.0, test: 1.0 }
    limit: 4
stages:
  acts:
    foreach: behaviour
    extract: { dataset: ab.train, layers: all, read_position: answer }
  vectors:
    foreach: behaviour
    vectors: { activations: acts, methods: [caa, random, shuffled], normalize: resid_norm }
  sweep:
    foreach: behaviour
    evaluate:
      vectors: vectors
      datasets: [ab.val, ab.test]
      layers: [0, 1]
      multipliers: [-1, 0, 0.5, 1]
      metrics: [propensity, steerability]
  damage:
    foreach: behaviour
    degradation: { vectors: vectors, from: sweep, corpus: corpus.test, metrics: [perplexity, kl_unsteered], neutral: neutral.test }
  report:
    report: { inputs: [sweep, damage] }
"#;

#[test]
fn matrix_behaviours_are_labelled_by_their_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny-llama");
    write_tiny_model(&model);
    let spec_path = tmp.path().join("scorecard_matrix.yaml");
    let text = format!(
        "name: scorecard_matrix\nseed: 0\nmodel: {}\nprompt_format: chat\n{MATRIX_SPEC}",
        model.display()
    );
    std::fs::write(&spec_path, text).unwrap();
    let runs = tmp.path().join("runs");
    let out = bin()
        .arg("run")
        .arg(&spec_path)
        .arg("--runs-dir")
        .arg(&runs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stage_dir(&runs.join("scorecard_matrix"), "report");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    let first = md.lines().find(|l| l.starts_with("## ")).unwrap();
    assert_eq!(first, "## Scorecard across behaviours", "{md}");
    assert!(
        md.contains(
            "2 behaviours, one per evaluate stage: `formality` (stage `sweep[formality]`), `sentiment` (stage `sweep[sentiment]`)."
        ),
        "{md}"
    );
    let section = &md[md.find(first).unwrap()..md.find("\n## Summary\n").unwrap()];
    eprintln!("{section}");
    let (headers, rows) = csv_rows(&report.join("tables/scorecard.csv"));
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let keys: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r[col("behaviour")].as_str(),
                r[col("stage")].as_str(),
                r[col("dataset")].as_str(),
                r[col("method")].as_str(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("formality", "sweep[formality]", "ab[formality]", "caa"),
            ("sentiment", "sweep[sentiment]", "ab[sentiment]", "caa"),
        ]
    );
    // Each behaviour's degradation comes from its own cell's stage (its own vectors).
    for r in &rows {
        assert_eq!(r[col("degradation_measured")], "true", "{r:?}");
        assert!(r[col("perplexity_ratio")].parse::<f64>().unwrap() > 0.0);
        assert!(r[col("kl")].parse::<f64>().unwrap() >= 0.0);
    }
    let (_, srows) = csv_rows(&report.join("tables/scorecard_summary.csv"));
    eprintln!("{srows:?}");
    assert_eq!(srows.len(), 1);
    assert_eq!(
        (
            srows[0][0].as_str(),
            srows[0][1].as_str(),
            srows[0][2].as_str()
        ),
        ("caa", "2", "2")
    );
}
