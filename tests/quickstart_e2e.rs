//! The quickstart pipeline end to end on the real default model (fetched by
//! steerbench itself when missing): every stage runs, the scores hold every metric
//! and baseline, the report has every section with real numbers, `steerbench report`
//! reproduces it byte for byte without the model, and a second run executes nothing.

use std::path::PathBuf;
use std::process::Command;

mod outputs;

use outputs::{numbers, stage_dir, strings};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_steerbench"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn quickstart_runs_end_to_end_and_report_rerenders_identically() {
    // STEERBENCH_E2E_RUNS keeps the run (e.g. to refresh reports/examples/quickstart).
    let tmp = tempfile::tempdir().unwrap();
    let runs_dir = std::env::var_os("STEERBENCH_E2E_RUNS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let _ = std::fs::remove_dir_all(runs_dir.join("quickstart"));
    let runs = runs_dir.as_path();
    let spec = repo().join("pipelines/quickstart.yaml");
    let out = bin()
        .args(["run"])
        .arg(&spec)
        .arg("--runs-dir")
        .arg(runs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("5 stage(s) run, 0 cached"), "{stdout}");
    let run = runs.join("quickstart");

    // Scores: every metric and baseline of the spec, real numbers.
    let scores =
        steerbench::store::read_parquet(&stage_dir(&run, "effect").join("scores.parquet")).unwrap();
    let metrics = strings(&scores, "metric");
    for m in [
        "ab_probability",
        "propensity",
        "propensity_norm",
        "steerability_slope",
        "p_a_share",
        "gen_concept_similarity",
        "gen_fluency_ppl",
        "gen_distinct_2",
    ] {
        assert!(metrics.iter().any(|x| x == m), "scores lack {m}");
    }
    let methods = strings(&scores, "method");
    for m in [
        "caa",
        "pca",
        "probe",
        "random",
        "shuffled",
        "unsteered",
        "system_prompt_positive",
        "system_prompt_negative",
        "few_shot",
        "letter_swap",
    ] {
        assert!(methods.iter().any(|x| x == m), "scores lack method {m}");
    }
    let values: Vec<f64> = scores
        .column("value")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect();
    assert!(values.iter().all(|v| v.is_finite()), "non-finite score");
    let aggs =
        steerbench::store::read_parquet(&stage_dir(&run, "effect").join("aggregates.parquet"))
            .unwrap();
    assert!(aggs.column("ci_low").is_ok() && aggs.height() > 0);
    // Directional selection: both directions, never a control; controls read at the
    // method's own setting.
    use steerbench::tables::{read_table, ControlRow, Direction, MethodKind, SelectionRow};
    let sel: Vec<SelectionRow> = read_table(&stage_dir(&run, "effect")).unwrap();
    assert!(sel.iter().all(|s| s.selected_on == "val"));
    assert!(sel.iter().all(|s| !s.method.is_control()));
    for s in &sel {
        match s.direction {
            Direction::Toward => assert!(s.multiplier > 0.0, "{s:?}"),
            Direction::Away => assert!(s.multiplier < 0.0, "{s:?}"),
        }
    }
    let controls: Vec<ControlRow> = read_table(&stage_dir(&run, "effect")).unwrap();
    for s in &sel {
        for control in [MethodKind::Random, MethodKind::Shuffled] {
            let c = controls
                .iter()
                .find(|c| {
                    (c.dataset.as_str(), c.method, c.direction, c.control)
                        == (s.dataset.as_str(), s.method, s.direction, control)
                })
                .unwrap_or_else(|| panic!("no {control} control for {s:?}"));
            assert_eq!((c.layer, c.multiplier), (s.layer, s.multiplier));
            assert!(c.margin.is_finite() && c.n == s.n);
        }
    }
    for s in sel.iter().filter(|s| s.dataset == "sentiment_completion") {
        let margins: Vec<String> = controls
            .iter()
            .filter(|c| {
                (c.method, c.direction) == (s.method, s.direction) && c.dataset == s.dataset
            })
            .map(|c| {
                format!(
                    "{} {:.2} [{:.2}, {:.2}]",
                    c.control, c.margin, c.margin_ci_low, c.margin_ci_high
                )
            })
            .collect();
        eprintln!(
            "{} {} L{:?} x{}: effect {:.2} [{:.2}, {:.2}]; margins {margins:?}",
            s.method,
            s.direction,
            s.layer,
            s.multiplier,
            s.effect,
            s.effect_ci_low,
            s.effect_ci_high
        );
    }
    // Issue acceptance: CAA moves propensity monotonically with the multiplier at some
    // layer, and the damage grows with |multiplier| (numbers printed for the notes).
    let (ad, am, al, ax, ak, amean) = (
        strings(&aggs, "dataset"),
        strings(&aggs, "method"),
        numbers(&aggs, "layer"),
        numbers(&aggs, "multiplier"),
        strings(&aggs, "metric"),
        numbers(&aggs, "mean"),
    );
    let curve = |dataset: &str, metric: &str, layer: f64| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = (0..ad.len())
            .filter(|&i| ad[i] == dataset && am[i] == "caa" && ak[i] == metric && al[i] == layer)
            .map(|i| (ax[i], amean[i]))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let mut monotonic_layers = Vec::new();
    for layer in [6.0, 12.0] {
        let prop = curve("sentiment_completion.test", "propensity", layer);
        let ab = curve("sentiment_ab.test", "ab_probability", layer);
        eprintln!("caa L{layer}: completion propensity {prop:?}; A/B ab_probability {ab:?}");
        assert_eq!(prop.len(), 5);
        if prop.windows(2).all(|w| w[1].1 > w[0].1) {
            monotonic_layers.push(layer);
        }
    }
    assert!(
        !monotonic_layers.is_empty(),
        "propensity is monotonic in the multiplier at no layer"
    );
    let deg_aggs =
        steerbench::store::read_parquet(&stage_dir(&run, "damage").join("aggregates.parquet"))
            .unwrap();
    let (dm2, dl, dx, dk, dmean) = (
        strings(&deg_aggs, "method"),
        numbers(&deg_aggs, "layer"),
        numbers(&deg_aggs, "multiplier"),
        strings(&deg_aggs, "metric"),
        numbers(&deg_aggs, "mean"),
    );
    let deg_at = |metric: &str, method: &str, mult: f64| -> Vec<(f64, f64)> {
        (0..dm2.len())
            .filter(|&i| {
                dk[i] == metric && dm2[i] == method && (method == "unsteered" || dx[i] == mult)
            })
            .map(|i| (dl[i], dmean[i]))
            .collect()
    };
    let ppl0 = deg_at("perplexity", "unsteered", 0.0)[0].1;
    for mult in [-0.2, 0.2] {
        for (layer, ppl) in deg_at("perplexity", "caa", mult) {
            let kl = deg_at("kl_unsteered", "caa", mult)
                .into_iter()
                .find(|x| x.0 == layer)
                .map_or(f64::NAN, |x| x.1);
            eprintln!(
                "caa L{layer} x{mult}: perplexity {ppl:.3} (unsteered {ppl0:.3}), KL {kl:.4}"
            );
            assert!(ppl > ppl0, "steering at x{mult} must cost perplexity");
            assert!(kl > 0.0);
        }
    }

    // Generations: 3 prompts of the completion test split, unsteered and per method.
    let gens =
        steerbench::store::read_parquet(&stage_dir(&run, "effect").join("generations.parquet"))
            .unwrap();
    let gm = strings(&gens, "method");
    assert_eq!(gm.iter().filter(|m| *m == "unsteered").count(), 3);
    assert!(gm.iter().any(|m| m == "caa"));
    assert!(strings(&gens, "text").iter().any(|t| !t.trim().is_empty()));
    let deg =
        steerbench::store::read_parquet(&stage_dir(&run, "damage").join("scores.parquet")).unwrap();
    let dm = strings(&deg, "metric");
    for m in ["perplexity", "kl_unsteered", "mc_accuracy"] {
        assert!(dm.iter().any(|x| x == m), "degradation lacks {m}");
    }

    // The report: every section, with numbers, and plots on disk.
    let report_dir = stage_dir(&run, "report");
    let md = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    for h in [
        "## Provenance",
        "## Setup",
        "## Main results",
        "## Baselines",
        "## Degradation",
        "## A/B letter bias",
        "## Generations",
        "## Plots",
        "## How to reproduce",
    ] {
        assert!(md.contains(h), "report lacks {h}");
    }
    assert!(md.contains("smollm2-135m-instruct") && md.contains("caa") && md.contains("shuffled"));
    for plot in std::fs::read_dir(report_dir.join("plots")).unwrap() {
        let p = plot.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        match p.extension().and_then(|e| e.to_str()) {
            Some("png") => assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n"),
            Some("svg") => assert!(String::from_utf8_lossy(&bytes).contains("<svg")),
            _ => {}
        }
    }

    // Every real output opens in polars, pandas and pyarrow with its manifest's
    // rows and columns (skipped without them unless STEERBENCH_REQUIRE_PYTHON=1).
    let have_python = Command::new("python3")
        .args(["-c", "import polars, pandas, pyarrow"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if have_python {
        let out = Command::new("python3")
            .arg(repo().join("tests/python/check_parquet.py"))
            .arg(&run)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("0 problem(s)"),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(
            std::env::var("STEERBENCH_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "python3 with polars, pandas and pyarrow is required"
        );
    }

    // `steerbench report` re-renders the same markdown from the Parquet outputs alone.
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
    let md2 = std::fs::read_to_string(again.path().join("report").join("report.md")).unwrap();
    assert_eq!(md, md2, "re-rendered report differs");

    // Unchanged spec: nothing runs again.
    let out = bin()
        .args(["run"])
        .arg(&spec)
        .arg("--runs-dir")
        .arg(runs)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 stage(s) run, 5 cached"));
}
