//! `extract` contrasts tool-choice behaviour tasks (the cautious call against the risky
//! one, after the tool declaration): a CAA vector from them, on a tiny random model.

use std::process::Command;

mod outputs;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use outputs::stage_dir;

#[test]
fn a_vector_from_cautious_versus_risky_calls() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny_llama::write_tiny_model(&model);
    let spec = tmp.path().join("x.yaml");
    std::fs::write(
        &spec,
        format!(
            "name: x\nseed: 0\nmodel: {}\nprompt_format: chat\ndatasets:\n  caution:\n    source: builtin:tools_caution\n    format: tool_choice\n    limit: 6\n  neutral:\n    source: builtin:tools_neutral\n    format: tool_choice\n    limit: 3\nstages:\n  acts:\n    extract: {{ dataset: caution, layers: all, read_position: answer }}\n  vectors:\n    vectors: {{ activations: acts, methods: [caa] }}\n",
            model.display()
        ),
    )
    .unwrap();
    let runs = tmp.path().join("runs");
    let out = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args([
            "run",
            spec.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acts = steerbench::store::read_parquet(
        &stage_dir(&runs.join("x"), "acts").join("activations.parquet"),
    )
    .unwrap();
    // 6 tasks × 2 sides × 2 layers.
    assert_eq!(acts.height(), 6 * 2 * tiny_llama::LAYERS);

    // Neutral tasks have no behaviour to contrast.
    std::fs::write(
        &spec,
        std::fs::read_to_string(&spec)
            .unwrap()
            .replace("dataset: caution,", "dataset: neutral,"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args([
            "run",
            spec.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("no tool-choice behaviour tasks"), "{e}");
}
