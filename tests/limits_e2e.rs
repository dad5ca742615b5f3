//! On the real default model: items longer than the context, or than a dataset's
//! `max_tokens`, are refused by name before any forward pass; a 10 MB record is refused
//! at plan time (issue 17). Both finish in about a second instead of running for minutes
//! or aborting.

use std::process::Command;

fn run(dir: &std::path::Path, spec: &str) -> (Option<i32>, String) {
    std::fs::write(dir.join("p.yaml"), spec).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args(["run", "p.yaml", "--runs-dir", "runs"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn spec(extra: &str) -> String {
    format!(
        "name: limits\nmodel: smollm2-135m-instruct\ndatasets:\n  d: {{ source: d.jsonl, format: contrastive_completion, split: {{ train: 1.0, val: 0.0, test: 0.0 }}{extra} }}\nstages:\n  acts: {{ extract: {{ dataset: d.train, layers: [3] }} }}\n"
    )
}

fn records(long: &str) -> String {
    (0..6)
        .map(|i| {
            let prompt = if i == 4 { long.to_string() } else { format!("Say something about item {i}.") };
            serde_json::json!({"id": format!("r{i}"), "prompt": prompt, "positive": " good", "negative": " bad"})
                .to_string()
                + "\n"
        })
        .collect()
}

#[test]
fn items_beyond_the_context_or_max_tokens_are_refused_by_record() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.jsonl"), records(&"word ".repeat(20_000))).unwrap();
    let (code, err) = run(dir.path(), &spec(""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("dataset `d.train`, record `r4`"), "{err}");
    assert!(
        err.contains("longer than the model's context of 8192 tokens"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    std::fs::write(
        dir.path().join("d.jsonl"),
        records(&"A much longer prompt than the others. ".repeat(8)),
    )
    .unwrap();
    let (code, err) = run(dir.path(), &spec(", max_tokens: 50"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("record `r4`"), "{err}");
    assert!(
        err.contains("longer than the dataset's max_tokens of 50"),
        "{err}"
    );
    // Nothing half-written: the failed stage left no complete folder.
    assert!(
        !dir.path().join("runs/limits/acts").exists()
            || std::fs::read_dir(dir.path().join("runs/limits/acts"))
                .unwrap()
                .count()
                == 0
    );

    let (code, err) = run(dir.path(), &spec(", max_tokens: 100000"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("max_tokens 100000 is beyond the model's context of 8192 tokens"),
        "{err}"
    );
}

#[test]
fn a_ten_megabyte_record_is_refused_at_plan_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.jsonl"), records(&"x ".repeat(5_000_000))).unwrap();
    let (code, err) = run(dir.path(), &spec(""));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("line 5 (id `r4`): field `prompt`: is 9.5 MiB long; a text field may have at most 1 MiB"),
        "{err}"
    );
}
