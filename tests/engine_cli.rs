//! The binary's read-only commands: `schema` and `ls`.

mod common;

use std::process::Command;

#[test]
fn schema_prints_json_schema() {
    let out = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "PipelineFile");
    assert!(v["properties"]["stages"].is_object());
}

#[test]
fn ls_lists_stages_outputs_rows_and_sizes() {
    let ws = common::Workspace::new(common::SPEC);
    let r = ws.run(1, false).unwrap();
    std::fs::create_dir_all(r.run_dir.join(".tmp-effect-0123456789abcdef")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .arg("ls")
        .arg(&r.run_dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("STAGE") && lines[0].contains("ROWS") && lines[0].contains("SIZE"),
        "{text}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("complete") && l.contains("part0.parquet"))
            .count(),
        5,
        "{text}"
    );
    assert!(lines.iter().any(|l| l.contains("interrupted")), "{text}");
}

#[test]
fn validate_reports_ok_for_a_valid_spec() {
    let ws = common::Workspace::new(common::SPEC);
    let out = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .arg("validate")
        .arg(ws.spec_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (2 datasets, 5 stages)"));
}
