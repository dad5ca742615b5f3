//! `dtype:` at the top level of a spec and `--dtype` on validate / plan / run: the
//! fingerprints of the stages that run the model follow it (f32, the default, keeps the
//! fingerprints of specs written before `dtype` existed), a run computes with weights in
//! that dtype, and its manifests and fingerprint inputs record it.

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

/// The plan line of stage `name` (it carries the fingerprint).
fn line(plan: &str, name: &str) -> String {
    plan.lines()
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("{plan}"))
        .to_string()
}

fn spec_text(model: &Path, dtype: Option<&str>) -> String {
    let dtype = dtype.map(|d| format!("dtype: {d}\n")).unwrap_or_default();
    format!(
        "name: dtypes\nseed: 0\nmodel: {}\n{dtype}datasets:\n  ab:\n    source: builtin:sentiment_ab\n    format: contrastive_ab\n    limit: 8\nstages:\n  acts:\n    extract: {{ dataset: ab, layers: all, read_position: answer }}\n",
        model.display()
    )
}

#[test]
fn dtype_in_the_spec_and_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    tiny_llama::write_tiny_model(&model);
    let write = |name: &str, dtype: Option<&str>| {
        let p = tmp.path().join(name);
        std::fs::write(&p, spec_text(&model, dtype)).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (plain, f32_spec, bf16_spec) = (
        write("plain.yaml", None),
        write("f32.yaml", Some("f32")),
        write("bf16.yaml", Some("bf16")),
    );
    let runs = tmp.path().join("runs");
    let r = runs.to_str().unwrap();
    let plan = |spec: &str, extra: &[&str]| {
        let mut args = vec!["plan", spec, "--runs-dir", r];
        args.extend_from_slice(extra);
        ok(bin(&args))
    };
    let p_plain = plan(&plain, &[]);
    let p_f32 = plan(&f32_spec, &[]);
    let p_bf16 = plan(&bf16_spec, &[]);
    let p_flag = plan(&plain, &["--dtype", "bf16"]);
    let p_f16 = plan(&bf16_spec, &["--dtype", "f16"]);
    // f32 written out is the default: same fingerprints.
    assert_eq!(line(&p_plain, "acts"), line(&p_f32, "acts"));
    // The model stage follows the dtype, from the spec or the flag alike.
    assert_ne!(line(&p_plain, "acts"), line(&p_bf16, "acts"));
    assert_eq!(line(&p_bf16, "acts"), line(&p_flag, "acts"));
    assert_ne!(line(&p_f16, "acts"), line(&p_bf16, "acts"));
    assert!(p_bf16.contains(", bf16)"), "{p_bf16}");
    assert!(p_f16.contains(", f16)"), "{p_f16}");
    ok(bin(&["validate", &plain, "--dtype", "f16"]));
    let bad = bin(&["validate", &plain, "--dtype", "fp8"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("fp8") && err.contains("bf16"), "{err}");

    // A run in bf16 records it in the manifest and the fingerprint inputs.
    ok(bin(&["run", &plain, "--runs-dir", r, "--dtype", "bf16"]));
    let run = runs.join("dtypes");
    let m = steerbench::store::RunStore::read_manifest(&stage_dir(&run, "acts")).unwrap();
    assert_eq!(m.provenance.model_dtype.as_deref(), Some("bf16"));
    assert_eq!(m.fingerprint_inputs["model"]["dtype"], "bf16");
    // The plan now shows the bf16 stages cached and the f32 ones not.
    let again = plan(&plain, &["--dtype", "bf16"]);
    assert!(line(&again, "acts").contains("cached"), "{again}");
    assert!(!line(&plan(&plain, &[]), "acts").contains("cached"));
}
