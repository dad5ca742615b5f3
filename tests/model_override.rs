//! `--model NAME` runs a pipeline on another model without editing it: `plan` shows the
//! other model and other fingerprints, `run` computes with it (the manifests record its
//! weights), and the spec's own model is untouched.

use std::path::Path;
use std::process::{Command, Output};

mod outputs;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use outputs::stage_dir;

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn weight_hash(run: &Path) -> String {
    let m = steerbench::store::RunStore::read_manifest(&stage_dir(run, "acts")).unwrap();
    m.provenance.model_weight_hash.unwrap()
}

#[test]
fn another_model_without_editing_the_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("model-a");
    let b = tmp.path().join("model-b");
    tiny_llama::write_tiny_model(&a);
    tiny_llama::write_model(&b, 16, 48, 2);
    let spec = tmp.path().join("override.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: override\nseed: 0\nmodel: {}\nprompt_format: chat\ndatasets:\n  ab:\n    source: builtin:sentiment_ab\n    format: contrastive_ab\n    limit: 8\nstages:\n  acts:\n    extract: {{ dataset: ab, layers: all, read_position: answer }}\n",
            a.display()
        ),
    )
    .unwrap();
    let s = spec.to_str().unwrap();
    let runs = tmp.path().join("runs");
    let r = runs.to_str().unwrap();

    let plan_a = ok(bin(&["plan", s, "--runs-dir", r]));
    let plan_b = ok(bin(&[
        "plan",
        s,
        "--runs-dir",
        r,
        "--model",
        b.to_str().unwrap(),
    ]));
    assert!(plan_b.contains(&b.display().to_string()), "{plan_b}");
    assert!(!plan_a.contains(&b.display().to_string()), "{plan_a}");
    let fp = |p: &str| -> String {
        p.lines()
            .find(|l| l.trim_start().starts_with("acts"))
            .unwrap_or_else(|| panic!("{p}"))
            .to_string()
    };
    assert_ne!(fp(&plan_a), fp(&plan_b), "fingerprints follow the model");
    ok(bin(&["validate", s, "--model", b.to_str().unwrap()]));

    let runs_a = tmp.path().join("runs-a");
    let runs_b = tmp.path().join("runs-b");
    ok(bin(&["run", s, "--runs-dir", runs_a.to_str().unwrap()]));
    ok(bin(&[
        "run",
        s,
        "--runs-dir",
        runs_b.to_str().unwrap(),
        "--model",
        b.to_str().unwrap(),
    ]));
    let (ha, hb) = (
        weight_hash(&runs_a.join("override")),
        weight_hash(&runs_b.join("override")),
    );
    assert_ne!(ha, hb);
    // An unknown model is an error naming it.
    let out = bin(&["plan", s, "--model", "no-such-model-anywhere"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-model-anywhere"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
