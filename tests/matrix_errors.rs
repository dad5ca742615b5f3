//! Validation errors of pipeline matrices, as `steerbench validate` prints them:
//! at the template's line:col, naming the cell; matrix and `foreach` mistakes where
//! they are written. Pinned with insta.

use std::process::Command;

/// stderr of `steerbench validate pipeline.yaml` run beside the spec (exit code 2).
fn validate(spec: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipeline.yaml"), spec).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args(["validate", "pipeline.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn errors_inside_cells_point_at_the_template_and_name_the_cell() {
    insta::assert_snapshot!(validate(
        r#"name: x
model: m
matrix:
  behaviour: [sentiment, formality]
datasets:
  data:
    foreach: behaviour
    source: ../datasets/{behaviour}_ab.jsonl
    format: contrastive_ab
    limit: 0
stages:
  acts:
    foreach: behaviour
    extract: { dataset: data.tran, layers: [1, 1] }
  vecs:
    foreach: behaviour
    vectors: { activations: acts, methods: [cca] }
  sweep:
    foreach: behaviour
    evaluate: { vectors: acts, datasets: [data.test], layers: [1], multipliers: [1], metrics: [propensity] }
"#
    ));
}

#[test]
fn matrix_and_foreach_mistakes_are_located() {
    insta::assert_snapshot!(validate(
        r#"name: x
model: m
matrix:
  behaviour: [sentiment, formality, sentiment]
  output: [a]
  layer: []
  unused: [u]
datasets:
  data: { foreach: behavior, source: a.jsonl, format: contrastive_ab }
stages:
  acts: { extract: { dataset: data.train } }
"#
    ));
    insta::assert_snapshot!(
        "foreach_without_a_matrix",
        validate(
            r#"name: x
model: m
datasets:
  data: { foreach: behaviour, source: a.jsonl, format: contrastive_ab }
stages:
  acts: { extract: { dataset: data.train } }
"#
        )
    );
}

#[test]
fn placeholders_and_references_across_the_matrix_boundary() {
    insta::assert_snapshot!(validate(
        r#"name: x
model: m
matrix:
  behaviour: [sentiment, formality]
  layer: [3, 6]
datasets:
  data:
    foreach: behaviour
    source: "{behaviour}_{layr}.jsonl"
    format: contrastive_ab
  shared: { source: "{behaviour}.jsonl", format: contrastive_ab }
stages:
  acts:
    foreach: [behaviour, layer]
    extract: { dataset: data.train, layers: all }
  vecs: { foreach: behaviour, vectors: { activations: acts, methods: [caa] } }
  outside: { vectors: { activations: acts, methods: [caa] } }
  named: { vectors: { activations: "acts[sentiment,3]", methods: [caa] } }
  report: { report: { inputs: [acts, named, "acts[joy,3]"] } }
"#
    ));
}

#[test]
fn too_many_cells_are_refused_at_the_matrix() {
    let values: Vec<String> = (0..120).map(|i| format!("v{i}")).collect();
    let spec = format!(
        "name: x\nmodel: m\nmatrix:\n  a: [{v}]\n  b: [{v}]\nstages:\n  s: {{ foreach: [a, b], report: {{ inputs: [t] }} }}\n  t: {{ report: {{ inputs: [s] }} }}\n",
        v = values.join(", ")
    );
    let e = validate(&spec);
    assert!(
        e.contains("the matrix expands to 14400 datasets and stages; at most 10000 are allowed"),
        "{e}"
    );
    assert!(e.contains("pipeline.yaml:3:1"), "{e}");
    assert!(e.contains("1 error in pipeline.yaml"), "{e}");
}
