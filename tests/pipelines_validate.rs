//! Every shipped pipeline validates (no model needed) and is documented at its top.

use std::path::PathBuf;

#[test]
fn every_shipped_pipeline_validates() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let spec =
            steerbench::spec::load(&path).unwrap_or_else(|d| panic!("{}:\n{d}", path.display()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with('#'),
            "{} must be documented at its top",
            path.display()
        );
        assert!(!spec.stages.is_empty());
        n += 1;
    }
    assert!(n >= 6, "expected the reference pipelines, found {n}");
}

/// The Gemma-3-270M pipeline names the registry's base model and renders raw prompts (the
/// model has no chat template, so `chat` would fail at the first prompt).
#[test]
fn gemma3_pipeline_uses_raw_prompts_on_the_registry_model() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipelines/gemma3_sentiment.yaml");
    let spec = steerbench::spec::load(&path).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(spec.model, "gemma-3-270m");
    assert!(steerbench_model::lookup(&spec.model).is_ok());
    assert_eq!(spec.prompt_format, steerbench::spec::PromptFormat::Raw);
}
