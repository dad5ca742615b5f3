//! Pipeline matrices: the expanded plan (`steerbench plan`'s table), per-cell
//! fingerprints that do not move when an axis gains a value, and a run that then
//! executes only the new cells.

mod common;

use std::collections::BTreeMap;

use steerbench::spec;

/// A one-axis matrix pipeline over `behaviours`; `{behaviour}.jsonl` files hold
/// the A/B data, the corpus is shared.
fn matrix_spec(behaviours: &[&str]) -> String {
    format!(
        r#"# A matrix pipeline for the engine tests.
name: mx
seed: 7
model: fake-model
matrix:
  behaviour: [{}]
datasets:
  data:
    foreach: behaviour
    source: "{{behaviour}}.jsonl"
    format: contrastive_ab
  corpus: {{ source: builtin:corpus, format: text, window_tokens: 64 }}
stages:
  acts:
    foreach: behaviour
    extract: {{ dataset: data.train, layers: [2, 4] }}
  vecs: {{ foreach: behaviour, vectors: {{ activations: acts, methods: [caa, random] }} }}
  effect:
    foreach: behaviour
    evaluate:
      vectors: vecs
      datasets: [data.val, data.test]
      layers: [2, 4]
      multipliers: [-1, 0, 1]
      metrics: [ab_probability, propensity]
  damage:
    foreach: behaviour
    degradation: {{ vectors: vecs, from: effect, corpus: corpus, metrics: [perplexity] }}
  report: {{ report: {{ inputs: [effect, damage] }} }}
"#,
        behaviours.join(", ")
    )
}

/// A workspace with an A/B file per behaviour (different questions in each).
fn workspace(behaviours: &[&str]) -> common::Workspace {
    let ws = common::Workspace::new(&matrix_spec(behaviours));
    for b in ["sentiment", "formality", "refusal"] {
        let rows: String = (0..10)
            .map(|i| format!("{{\"question\": \"{b} q{i}? (A) yes (B) no\", \"answer_matching_behavior\": \"(A)\", \"answer_not_matching_behavior\": \"(B)\"}}\n"))
            .collect();
        std::fs::write(ws.dir.path().join(format!("{b}.jsonl")), rows).unwrap();
    }
    ws
}

fn fingerprints(plan: &steerbench::plan::Plan) -> BTreeMap<String, String> {
    plan.stages
        .iter()
        .map(|s| (s.name.clone(), s.fingerprint.clone()))
        .collect()
}

/// `steerbench plan`'s output with the workspace path and the (content-dependent)
/// hashes masked: what the snapshot pins is the expanded DAG.
fn rendered_plan(ws: &common::Workspace) -> String {
    let plan = ws.plan(1);
    let text = steerbench::cli::render_plan(&plan, &ws.runs())
        .replace(&ws.dir.path().display().to_string(), "<ws>");
    let mut out = String::new();
    for line in text.lines() {
        let masked: Vec<String> = line
            .split(' ')
            .map(|w| {
                let hex = w.trim_end_matches([')', ',']);
                if hex.len() >= 12 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    w.replace(hex, &"#".repeat(hex.len()))
                } else {
                    w.to_string()
                }
            })
            .collect();
        out.push_str(masked.join(" ").trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn the_plan_shows_the_expanded_dag() {
    let ws = workspace(&["sentiment", "formality"]);
    insta::assert_snapshot!(rendered_plan(&ws));
}

#[test]
fn two_axes_expand_to_every_combination_in_matrix_order() {
    let ws = workspace(&["sentiment"]);
    ws.write_spec(
        r#"name: mx2
model: fake-model
matrix:
  behaviour: [sentiment, formality]
  layer: [2, 4]
datasets:
  data: { foreach: behaviour, source: "{behaviour}.jsonl", format: contrastive_ab }
stages:
  acts:
    foreach: behaviour
    extract: { dataset: data.train, layers: [2, 4] }
  vecs: { foreach: behaviour, vectors: { activations: acts, methods: [caa] } }
  sweep:
    foreach: [layer, behaviour]
    evaluate: { vectors: vecs, datasets: [data.test], layers: [2, 4], multipliers: [0, 1], metrics: [propensity] }
  per_behaviour: { foreach: behaviour, report: { inputs: [sweep] } }
  all: { report: { inputs: [per_behaviour, "sweep[formality,4]"] } }
"#,
    );
    let spec = spec::load(&ws.spec_path()).unwrap_or_else(|d| panic!("{d}"));
    let listing: Vec<String> = spec
        .stages
        .iter()
        .map(|s| {
            let v = serde_json::to_value(&s.spec).unwrap();
            let (kind, params) = v.as_object().unwrap().iter().next().unwrap();
            let reads: Vec<String> = ["activations", "vectors", "dataset", "datasets", "inputs"]
                .iter()
                .filter_map(|k| params.get(*k).map(|x| format!("{k}={x}")))
                .collect();
            format!("{} ({kind}): {}", s.name, reads.join(" "))
        })
        .collect();
    insta::assert_snapshot!(listing.join("\n"));
}

#[test]
fn adding_a_behaviour_keeps_the_fingerprints_of_the_existing_cells() {
    let ws = workspace(&["sentiment", "formality"]);
    let before = fingerprints(&ws.plan(1));
    assert_eq!(before.len(), 9, "{before:?}");
    ws.write_spec(&matrix_spec(&["sentiment", "formality", "refusal"]));
    let after = fingerprints(&ws.plan(1));
    assert_eq!(after.len(), 13, "{after:?}");
    for (name, fp) in &before {
        if name == "report" {
            // It reads every cell: one more input, a new fingerprint.
            assert_ne!(after[name], *fp);
        } else {
            assert_eq!(after[name], *fp, "{name} changed");
        }
    }
    // Each cell is its own stage: no two cells share a fingerprint.
    let mut fps: Vec<&String> = after.values().collect();
    fps.sort();
    fps.dedup();
    assert_eq!(fps.len(), after.len());
}

#[test]
fn a_run_after_adding_a_behaviour_executes_only_its_cells_and_the_report() {
    let ws = workspace(&["sentiment", "formality"]);
    let first = ws.run(1, false).unwrap();
    assert_eq!(first.executed.len(), 9, "{:?}", first.executed);
    ws.write_spec(&matrix_spec(&["sentiment", "formality", "refusal"]));
    let second = ws.run(1, false).unwrap();
    let mut executed = second.executed.clone();
    executed.sort();
    assert_eq!(
        executed,
        [
            "acts[refusal]",
            "damage[refusal]",
            "effect[refusal]",
            "report",
            "vecs[refusal]"
        ]
    );
    assert_eq!(second.cached.len(), 8, "{:?}", second.cached);
    // The cells are folders of the run store under their expanded names.
    assert!(second.run_dir.join("acts[refusal]").is_dir());
    let ls = steerbench::cli::render_ls(&second.run_dir).unwrap();
    assert!(ls.contains("effect[formality]"), "{ls}");
}

#[test]
fn the_schema_documents_matrix_and_foreach() {
    let v: serde_json::Value = serde_json::from_str(&steerbench::cli::schema_json()).unwrap();
    assert!(v["properties"]["matrix"]["description"]
        .as_str()
        .unwrap()
        .contains("foreach"));
    let defs = &v["definitions"];
    assert!(defs["DatasetEntry"]["properties"]["foreach"].is_object());
    // Every stage kind may carry `foreach` beside its one kind key.
    let kinds = defs["StageEntry"]["oneOf"].as_array().unwrap();
    assert_eq!(kinds.len(), steerbench::spec::StageKind::ALL.len());
    assert!(kinds.iter().all(|k| k["properties"]["foreach"].is_object()));
    assert!(defs["Foreach"]["description"].is_string());
}

#[test]
fn plan_errors_inside_a_cell_point_at_the_template_and_name_the_cell() {
    let ws = workspace(&["sentiment", "formality", "joy"]);
    let spec = spec::load(&ws.spec_path()).unwrap_or_else(|d| panic!("{d}"));
    let env = common::environment(&ws.dir.path().join("builtin"));
    let e = match steerbench::plan::build(spec, &env, &common::registry(1).versions()) {
        Ok(_) => panic!("plan unexpectedly succeeded"),
        Err(d) => d.to_string(),
    };
    // Only the cell whose file is missing is named, at the template's `source:` line.
    assert!(e.contains("datasets.data[joy].source"), "{e}");
    assert!(e.contains("pipeline.yaml:10:13"), "{e}");
    assert!(!e.contains("data[sentiment]"), "{e}");
    assert!(e.contains("1 error"), "{e}");
}
