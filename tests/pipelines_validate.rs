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
