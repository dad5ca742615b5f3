//! Faults that need the model's facts, the datasets' records or the template's syntax,
//! found by `plan`, before any stage runs (issue 17): each with where it is and what.

mod common;

use steerbench::spec;

/// Plan errors of `spec_text` (written into a workspace whose files `edit` may change).
fn plan_errors(spec_text: &str, edit: impl FnOnce(&std::path::Path)) -> String {
    let ws = common::Workspace::new(spec_text);
    edit(ws.dir.path());
    let spec = spec::load(&ws.spec_path()).unwrap_or_else(|d| panic!("{d}"));
    let env = common::environment(&ws.dir.path().join("builtin"));
    match steerbench::plan::build(spec, &env, &common::registry(1).versions()) {
        Ok(_) => panic!("plan unexpectedly succeeded"),
        Err(d) => d
            .to_string()
            .replace(&ws.dir.path().display().to_string(), "<ws>"),
    }
}

#[test]
fn steered_layers_must_have_been_extracted() {
    let e = plan_errors(
        &common::SPEC.replace(
            "layers: [2, 4]\n      multipliers",
            "layers: [2, 4, 6]\n      multipliers",
        ),
        |_| {},
    );
    assert!(
        e.contains("layer 6 is not read by extract stage `acts` (it reads 2, 4)"),
        "{e}"
    );
    assert!(
        e.contains("pipeline.yaml:21:22"),
        "at the evaluate layers list: {e}"
    );
    let e = plan_errors(
        &common::SPEC.replace(
            "layers: [2, 4]\n      multipliers",
            "layers: all\n      multipliers",
        ),
        |_| {},
    );
    assert!(e.contains("`all` includes layers 0, 1, 3, 5, 6"), "{e}");
}

#[test]
fn token_indices_past_the_context_and_long_windows_are_refused() {
    let e = plan_errors(
        &common::SPEC
            .replace(
                "metrics: [ab_probability, propensity]",
                "metrics: [ab_probability, propensity]\n      positions: [{ indices: [3, 5000] }]",
            )
            .replace("window_tokens: 64", "window_tokens: 4096"),
        |_| {},
    );
    assert!(
        e.contains("token index 5000 is beyond the model's context of 2048 tokens"),
        "{e}"
    );
    assert!(
        e.contains("window_tokens 4096 is longer than the model's context of 2048 tokens"),
        "{e}"
    );
}

#[test]
fn a_template_that_does_not_parse_is_found_before_any_stage() {
    let e = plan_errors(
        &common::SPEC.replace(
            "report: { report: { inputs: [effect, damage] } }",
            "report: { report: { inputs: [effect, damage], template: t.md.j2 } }",
        ),
        |d| std::fs::write(d.join("t.md.j2"), "# {{ data.model }\n{% if %}\n").unwrap(),
    );
    assert!(e.contains("report template <ws>/t.md.j2"), "{e}");
    assert!(e.contains("syntax error"), "{e}");
}

#[test]
fn a_bad_record_is_found_at_plan_time_naming_dataset_line_id_and_field() {
    let e = plan_errors(common::SPEC, |d| {
        let mut text = std::fs::read_to_string(d.join("sent.jsonl")).unwrap();
        text.push_str("{\"id\": \"odd-one\", \"question\": \"No choices here\", \"answer_matching_behavior\": \"(A)\", \"answer_not_matching_behavior\": \"(B)\"}\n");
        std::fs::write(d.join("sent.jsonl"), text).unwrap();
    });
    assert!(e.contains("dataset `sent`: <ws>/sent.jsonl: line 11 (id `odd-one`): field `question`: the question lists no choice `(A)`"), "{e}");
}

#[test]
fn a_split_without_the_records_a_stage_needs_is_refused() {
    let e = plan_errors(common::SPEC, |d| {
        let text = std::fs::read_to_string(d.join("sent.jsonl")).unwrap();
        let two: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        std::fs::write(d.join("sent.jsonl"), two).unwrap();
    });
    assert!(e.contains("of `sent` has"), "{e}");
    assert!(e.contains("this stage needs at least 2"), "{e}");
}
