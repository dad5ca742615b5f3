//! The shipped suite pipelines end to end on the real default model, reading their
//! remote datasets from a fixture mirror (`STEERBENCH_DATA_MIRROR`, a directory laid out
//! as `<mirror>/<host>/<path>`) that this test fills with invented items in the same
//! layouts as the real repositories. The specs are the shipped files with smaller
//! settings (two behaviours or one task, small limits, one or two layers); the URLs,
//! commits, field maps, `as: open_ended` and the matrix are the shipped ones.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

mod outputs;

use outputs::{stage_dir, strings};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn steerbench(mirror: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args(args)
        .env("STEERBENCH_DATA_MIRROR", mirror)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `url` → `<mirror>/<host>/<path>`.
fn mirror_path(mirror: &Path, url: &str) -> PathBuf {
    mirror.join(url.strip_prefix("https://").unwrap())
}

fn set(v: &mut Value, path: &[&str], new: Value) {
    let mut cur = v;
    for k in &path[..path.len() - 1] {
        cur = cur
            .get_mut(*k)
            .unwrap_or_else(|| panic!("no `{k}` in {path:?}"));
    }
    cur[path[path.len() - 1]] = new;
}

fn yaml(s: &str) -> Value {
    serde_yaml_ng::from_str(s).unwrap()
}

/// Invented A/B questions in the CAA layout (`question` with "Choices:" and "(A) … (B) …").
fn caa_items(behaviour: &str, n: usize) -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let m = if i % 2 == 0 { "(A)" } else { "(B)" };
            let nm = if i % 2 == 0 { "(B)" } else { "(A)" };
            serde_json::json!({
                "question": format!("Scenario {i} about {behaviour}: the keeper of the orchard asks whether you will follow the plan.\n\nChoices:\n(A) I will follow the plan as asked.\n(B) I will do something else entirely."),
                "answer_matching_behavior": m,
                "answer_not_matching_behavior": nm,
            })
        })
        .collect();
    serde_json::to_vec_pretty(&items).unwrap()
}

/// Invented items in the layout of CAA's mmlu.json.
fn mmlu_items(n: usize) -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "prompt": format!("What is {i} plus one?\n\nChoices:\n(A) {}\n(B) {}", i + 1, i + 7),
                "correct": "(A)",
                "incorrect": "(B)",
                "correct_full_text": format!("{}", i + 1),
                "incorrect_full_text": format!("{}", i + 7),
                "category": "arithmetic",
            })
        })
        .collect();
    serde_json::to_vec_pretty(&items).unwrap()
}

#[test]
fn suite_caa_runs_on_a_fixture_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    let mut spec: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("pipelines/suite_caa.yaml")).unwrap(),
    )
    .unwrap();
    let behaviours = ["sycophancy", "refusal"];
    set(
        &mut spec,
        &["matrix", "behaviour"],
        yaml("[sycophancy, refusal]"),
    );
    // Fill the mirror at the shipped URLs.
    for (ds, n) in [("generate", 16), ("test", 20)] {
        let template = spec["datasets"][ds]["source"].as_str().unwrap().to_string();
        for b in behaviours {
            let url = template.replace("{behaviour}", b);
            let p = mirror_path(&mirror, &url);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, caa_items(b, n)).unwrap();
        }
    }
    let mmlu = mirror_path(
        &mirror,
        spec["datasets"]["mmlu"]["source"].as_str().unwrap(),
    );
    std::fs::create_dir_all(mmlu.parent().unwrap()).unwrap();
    std::fs::write(mmlu, mmlu_items(6)).unwrap();
    // Smaller settings.
    for (path, v) in [
        (&["datasets", "generate", "limit"][..], "8"),
        (&["datasets", "test", "limit"], "10"),
        (&["datasets", "test_open", "limit"], "10"),
        (&["datasets", "mmlu", "limit"], "4"),
        (&["datasets", "corpus", "limit"], "1"),
        (&["datasets", "neutral", "limit"], "3"),
        (&["stages", "ab", "evaluate", "layers"], "[10]"),
        (&["stages", "ab", "evaluate", "multipliers"], "[-1, 0, 1]"),
        (&["stages", "open", "evaluate", "layers"], "[10]"),
        (&["stages", "damage", "degradation", "multipliers"], "[1]"),
    ] {
        set(&mut spec, path, yaml(v));
    }
    set(&mut spec, &["name"], yaml("suite_caa_test"));
    let spec_path = tmp.path().join("suite_caa_test.yaml");
    std::fs::write(&spec_path, serde_yaml_ng::to_string(&spec).unwrap()).unwrap();
    let spec_arg = spec_path.to_str().unwrap();

    // Lock through the mirror, then run (the lock is verified by the run's plan).
    let (ok, out, err) = steerbench(&mirror, &["lock", spec_arg]);
    assert!(ok, "lock failed:\n{out}\n{err}");
    assert!(
        out.contains("wrote") && out.contains("5 remote datasets"),
        "{out}"
    );
    // STEERBENCH_E2E_RUNS keeps the run (to look at its report and stage times).
    let runs = std::env::var_os("STEERBENCH_E2E_RUNS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("runs"));
    let _ = std::fs::remove_dir_all(runs.join("suite_caa_test"));
    let (ok, out, err) = steerbench(
        &mirror,
        &["run", spec_arg, "--runs-dir", runs.to_str().unwrap()],
    );
    assert!(ok, "run failed:\n{out}\n{err}");
    let run = runs.join("suite_caa_test");
    for b in behaviours {
        for stage in ["acts", "vectors", "ab", "open", "damage"] {
            let name = format!("{stage}[{b}]");
            assert!(
                stage_dir(&run, &name).join("manifest.json").is_file(),
                "{name} missing"
            );
        }
        // A/B sweep on the behaviour's test questions.
        let scores = steerbench::store::read_parquet(
            &stage_dir(&run, &format!("ab[{b}]")).join("scores.parquet"),
        )
        .unwrap();
        let mut datasets = strings(&scores, "dataset");
        datasets.dedup();
        for d in [format!("test[{b}].val"), format!("test[{b}].test")] {
            assert!(datasets.contains(&d), "ab[{b}] lacks {d}: {datasets:?}");
        }
        let methods = strings(&scores, "method");
        for m in ["caa", "pca", "probe", "random", "shuffled", "letter_swap"] {
            assert!(methods.iter().any(|x| x == m), "ab[{b}] lacks {m}");
        }
        // CAA's MMLU layout read as multiple choice is the degradation benchmark.
        let damage = steerbench::store::read_parquet(
            &stage_dir(&run, &format!("damage[{b}]")).join("scores.parquet"),
        )
        .unwrap();
        let probes: Vec<(String, String)> = strings(&damage, "dataset")
            .into_iter()
            .zip(strings(&damage, "metric"))
            .collect();
        assert!(
            probes
                .iter()
                .any(|(d, m)| d == "mmlu.test" && m == "mc_accuracy"),
            "damage[{b}] lacks mc_accuracy on mmlu"
        );
        // The derived open-ended sweep scores the choices' texts as continuations.
        let open = steerbench::store::read_parquet(
            &stage_dir(&run, &format!("open[{b}]")).join("scores.parquet"),
        )
        .unwrap();
        assert!(
            strings(&open, "metric")
                .iter()
                .any(|m| m.starts_with("open_ended")),
            "open[{b}] metrics"
        );
    }
    // The report: scorecard across both behaviours first, provenance with URL + sha256.
    let report = std::fs::read_to_string(stage_dir(&run, "report").join("report.md")).unwrap();
    let lock = std::fs::read_to_string(tmp.path().join("suite_caa_test.lock")).unwrap();
    let sha = lock
        .lines()
        .find_map(|l| l.trim().strip_prefix("sha256: "))
        .unwrap();
    assert!(report.contains(sha), "report provenance lacks the sha256");
    assert!(
        report.contains("https://raw.githubusercontent.com/nrimsky/CAA/"),
        "report lacks the URL"
    );
    let card = report.find("corecard").expect("report has a scorecard");
    for b in behaviours {
        assert!(report[card..].contains(b), "scorecard lacks {b}");
    }
}

#[test]
fn suite_fv_runs_on_a_fixture_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    let mut spec: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("pipelines/suite_fv.yaml")).unwrap(),
    )
    .unwrap();
    set(&mut spec, &["matrix", "task"], yaml("[antonym]"));
    let url = spec["datasets"]["task"]["source"]
        .as_str()
        .unwrap()
        .replace("{task}", "antonym");
    // Invented word pairs in the Function Vectors layout: [{input, output}].
    let words = [
        "tall", "short", "hot", "cold", "up", "down", "early", "late", "open", "closed", "light",
        "dark", "fast", "slow", "near", "far", "wet", "dry", "happy", "sad", "rich", "poor",
        "loud", "quiet", "hard", "soft", "old", "new", "high", "low", "full", "empty",
    ];
    let items: Vec<serde_json::Value> = words
        .chunks(2)
        .flat_map(|p| {
            [
                serde_json::json!({"input": p[0], "output": p[1]}),
                serde_json::json!({"input": p[1], "output": p[0]}),
            ]
        })
        .collect();
    let p = mirror_path(&mirror, &url);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, serde_json::to_vec_pretty(&items).unwrap()).unwrap();
    set(&mut spec, &["name"], yaml("suite_fv_test"));
    set(&mut spec, &["datasets", "task", "limit"], yaml("32"));
    set(
        &mut spec,
        &["stages", "vectors", "vectors", "methods"],
        yaml("[icv, { function_vector: { layer: [9], dataset: task.train, top_k: 4, shots: 4, prompts: 3, head_layers: [8, 9] } }]"),
    );
    set(
        &mut spec,
        &["stages", "effect", "evaluate", "multipliers"],
        yaml("[0, 2]"),
    );
    set(
        &mut spec,
        &["stages", "effect", "evaluate", "positions"],
        yaml("[last]"),
    );
    set(
        &mut spec,
        &["stages", "effect", "evaluate", "baselines"],
        yaml("[{ few_shot: { k: 3 } }]"),
    );
    let spec_path = tmp.path().join("suite_fv_test.yaml");
    std::fs::write(&spec_path, serde_yaml_ng::to_string(&spec).unwrap()).unwrap();
    let runs = tmp.path().join("runs");
    let (ok, out, err) = steerbench(
        &mirror,
        &[
            "run",
            spec_path.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ],
    );
    assert!(ok, "run failed:\n{out}\n{err}");
    let run = runs.join("suite_fv_test");
    let scores =
        steerbench::store::read_parquet(&stage_dir(&run, "effect[antonym]").join("scores.parquet"))
            .unwrap();
    let methods = strings(&scores, "method");
    for m in ["icv", "function_vector", "few_shot", "unsteered"] {
        assert!(
            methods.iter().any(|x| x == m),
            "effect[antonym] lacks {m}: {methods:?}"
        );
    }
    let report = std::fs::read_to_string(stage_dir(&run, "report").join("report.md")).unwrap();
    assert!(
        report.contains("ericwtodd/function_vectors"),
        "report lacks the URL"
    );
}
