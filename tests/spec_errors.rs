//! Spec validation: every error at once, located, with did-you-mean; pinned with insta.

mod common;

use std::path::Path;

use steerbench::spec;

fn errors(text: &str) -> String {
    match spec::parse_str(text, "pipeline.yaml", Path::new(".")) {
        Ok(_) => panic!("spec unexpectedly valid"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn five_mistakes_are_all_reported_with_positions() {
    let text = std::fs::read_to_string("tests/fixtures/five_mistakes.yaml").unwrap();
    let d = spec::parse_str(&text, "five_mistakes.yaml", Path::new(".")).unwrap_err();
    let located: Vec<(usize, usize)> = d.0.iter().map(|e| (e.pos.line, e.pos.col)).collect();
    assert_eq!(located, [(9, 5), (11, 31), (12, 56), (17, 7), (20, 32)]);
    insta::assert_snapshot!(d.to_string());
}

#[test]
fn binary_exits_2_on_spec_errors() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args(["validate", "tests/fixtures/five_mistakes.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("5 errors in tests/fixtures/five_mistakes.yaml"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn misspelled_kinds_fields_and_values() {
    insta::assert_snapshot!(errors(
        r#"name: x
modle: m
stages:
  a: { extrct: { dataset: d.train } }
  b: { vectors: { activations: a, methods: [{ probe: { l2: -1 } }], normalize: unit_norm } }
  c: { evaluate: { vectors: b, datasets: [], layers: [], multipliers: [], metrics: [] } }
"#
    ));
}

#[test]
fn reference_kinds_cycles_and_formats() {
    insta::assert_snapshot!(errors(
        r#"name: x
model: m
datasets:
  corpus: { source: c.jsonl, format: text, fields: { prompt: p } }
  ab: { source: a.jsonl, format: contrastive_ab, window_tokens: 5 }
stages:
  acts: { extract: { dataset: corpus.train } }
  vecs: { vectors: { activations: acts, methods: [caa, caa] } }
  eval: { evaluate: { vectors: acts, datasets: [ab.test], layers: [1], multipliers: [1], metrics: [icl_accuracy] } }
  dmg: { degradation: { vectors: vecs, metrics: [perplexity] } }
  r1: { report: { inputs: [r2] } }
  r2: { report: { inputs: [r1] } }
"#
    ));
}

#[test]
fn id_and_category_fields_are_accepted_for_every_format_and_misspelled_roles_suggested() {
    let ok = r#"name: x
model: m
datasets:
  ab: { source: a.jsonl, format: contrastive_ab, fields: { id: uid, category: topic } }
  corpus: { source: c.jsonl, format: text, fields: { text: body, id: doc_id } }
stages:
  acts: { extract: { dataset: ab.train } }
"#;
    let s = spec::parse_str(ok, "ok.yaml", Path::new(".")).unwrap();
    assert_eq!(
        s.dataset("ab").unwrap().fields.id_and_category(),
        ("uid", "topic")
    );
    let corpus = &s.dataset("corpus").unwrap().fields;
    assert_eq!(corpus.roles(), [("text", "body")]);
    assert_eq!(corpus.id_and_category(), ("doc_id", "category"));

    let e = errors(
        r#"name: x
model: m
datasets:
  ab: { source: a.jsonl, format: contrastive_ab, fields: { idd: uid } }
stages:
  acts: { extract: { dataset: ab.train } }
"#,
    );
    assert!(e.contains("pipeline.yaml:4:60"), "{e}");
    assert!(e.contains("unknown field `idd`"), "{e}");
    assert!(e.contains("field: datasets.ab.fields.idd"), "{e}");
    assert!(e.contains("did you mean `id`?"), "{e}");
}

#[test]
fn split_fractions_need_all_three_parts() {
    let e = errors(
        r#"name: x
model: m
datasets:
  ab: { source: a.jsonl, format: contrastive_ab, split: { train: 0.8, test: 0.2 } }
  cd: { source: c.jsonl, format: contrastive_ab, split: { train: 1.5, val: 0, test: 0 } }
stages:
  acts: { extract: { dataset: ab.train } }
"#,
    );
    assert!(e.contains("missing field `val`"), "{e}");
    assert!(e.contains("field: datasets.ab.split"), "{e}");
    assert!(
        e.contains("split fraction train = 1.5 is outside 0..1"),
        "{e}"
    );
    assert!(e.contains("field: datasets.cd.split.train"), "{e}");
}

#[test]
fn yaml_syntax_errors_are_located() {
    insta::assert_snapshot!(errors("name: x\nstages: [a, b\nmodel: m\n"));
}

#[test]
fn a_valid_spec_parses_with_defaults() {
    let s = spec::parse_str(common::SPEC, "demo.yaml", Path::new(".")).unwrap();
    assert_eq!(s.name, "demo");
    assert_eq!(s.stages.len(), 5);
    let sent = s.dataset("sent").unwrap();
    assert_eq!(
        sent.fields.roles()[1],
        ("matching", "answer_matching_behavior")
    );
    assert_eq!(sent.fields.id_and_category(), ("id", "category"));
    match &s.stage("acts").unwrap().spec {
        spec::StageSpec::Extract(p) => assert_eq!(p.sites, [spec::Site::ResidPost]),
        other => panic!("{other:?}"),
    }
    match &s.stage("vecs").unwrap().spec {
        spec::StageSpec::Vectors(p) => {
            assert_eq!(
                p.methods[1],
                spec::Method::Probe(spec::ProbeParams { l2: 0.5 })
            );
            assert_eq!(
                p.methods[2],
                spec::Method::Random(spec::SeedParams { seed: 0 })
            );
            assert_eq!(p.normalize, spec::Normalize::ResidNorm);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn environment_errors_are_reported_at_plan_time_with_positions() {
    let ws = common::Workspace::new(
        &common::SPEC
            .replace(
                "layers: [2, 4], read_position",
                "layers: [2, 40], read_position",
            )
            .replace("source: sent.jsonl", "source: missing.jsonl")
            .replace("builtin:corpus", "builtin:corpsu"),
    );
    let spec = spec::load(&ws.spec_path()).unwrap();
    let env = common::environment(&ws.dir.path().join("builtin"));
    let err = steerbench::plan::build(spec, &env, &common::registry(1).versions()).unwrap_err();
    let text = err
        .to_string()
        .replace(&ws.dir.path().display().to_string(), "<ws>");
    insta::assert_snapshot!(text);
}

#[test]
fn unavailable_model_is_a_plan_error() {
    let ws =
        common::Workspace::new(&common::SPEC.replace("model: fake-model", "model: no-such-model"));
    let spec = spec::load(&ws.spec_path()).unwrap();
    let env = common::environment(&ws.dir.path().join("builtin"));
    let err = steerbench::plan::build(spec, &env, &common::registry(1).versions()).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!((err.0[0].pos.line, err.0[0].pos.col), (4, 8));
    assert!(
        err.0[0].message.contains("no model named `no-such-model`"),
        "{}",
        err.0[0].message
    );
}

#[test]
fn json_schema_describes_every_stage_kind_and_method() {
    let schema: serde_json::Value = serde_json::from_str(&steerbench::cli::schema_json()).unwrap();
    let text = schema.to_string();
    for word in [
        "extract",
        "vectors",
        "evaluate",
        "degradation",
        "report",
        "function_vector",
        "gaussian_transport",
        "kl_unsteered",
        "letter_swap",
    ] {
        assert!(text.contains(word), "schema lacks {word}");
    }
    assert_eq!(
        schema["required"],
        serde_json::json!(["model", "name", "stages"])
    );
}

#[test]
fn icl_template_and_function_vector_parameters_are_checked() {
    let text = r#"
name: icl
model: smollm2-135m-instruct
datasets:
  ant:
    source: builtin:icl_antonyms
    format: icl_task
    template: { demo: "Q: {input}\n", query: "Q: {input}\nA:" }
  sent:
    source: builtin:sentiment_completion
    format: contrastive_completion
    template: { demo: "{input} {output}", query: "{input}" }
stages:
  acts:
    extract: { dataset: sent }
  vectors:
    vectors:
      activations: acts
      methods:
        - function_vector: { layer: [3, 4], dataset: sent, shots: 1, prompts: 0 }
"#;
    let e = errors(text);
    assert!(e.contains("must contain {input} and {output}"), "{e}");
    assert!(
        e.contains("template applies to format `icl_task` only, not `contrastive_completion`"),
        "{e}"
    );
    assert!(e.contains("shots must be at least 2"), "{e}");
    assert!(e.contains("prompts must be at least 1"), "{e}");
    assert!(
        e.contains("icl_task"),
        "a contrastive dataset for a function vector: {e}"
    );
    // A valid ICL spec: the default template, one layer given as a bare number.
    let ok = r#"
name: icl
model: smollm2-135m-instruct
datasets:
  ant: { source: "builtin:icl_antonyms", format: icl_task }
stages:
  acts:
    extract: { dataset: ant }
  vectors:
    vectors:
      activations: acts
      methods: [icv, { function_vector: { layer: 9, dataset: ant } }]
"#;
    let spec = spec::parse_str(ok, "ok.yaml", Path::new(".")).unwrap();
    let spec::StageSpec::Vectors(v) = &spec.stages[1].spec else {
        panic!("vectors stage")
    };
    let spec::Method::FunctionVector(fv) = &v.methods[1] else {
        panic!("function_vector")
    };
    assert_eq!(fv.layer.0, vec![9]);
    assert_eq!((fv.top_k, fv.shots, fv.prompts), (10, 10, 16));
    assert_eq!(
        spec.datasets[0].icl_template().unwrap(),
        steerbench_data::IclTemplate::default()
    );
}

#[test]
fn faults_the_spec_alone_shows_are_found_by_validate() {
    insta::assert_snapshot!(errors(
        r#"name: x
model: m
datasets:
  comp: { source: c.jsonl, format: contrastive_completion }
stages:
  acts: { extract: { dataset: comp.train, layers: [3, 5, 3], sites: [resid_mid, resid_mid] } }
  vecs: { vectors: { activations: acts, methods: [caa] } }
  eval:
    evaluate:
      vectors: vecs
      datasets: [comp.test, comp.test]
      layers: [3, 5]
      multipliers: [-1, 0, 1, 1.0, 1e30]
      positions: [all, all, { indices: [] }, { indices: [-1, 2, 2] }]
      metrics: [propensity, propensity]
      baselines: [letter_swap]
  dmg: { degradation: { vectors: vecs, from: eval, corpus: comp, metrics: [perplexity, perplexity] } }
"#
    ));
}

#[test]
fn non_finite_numbers_say_so_where_they_are() {
    let e = errors(
        "name: x\nmodel: m\nstages:\n  d: { degradation: { vectors: v, layers: [1], multipliers: [.nan, 1e309], metrics: [perplexity] } }\n",
    );
    assert!(e.contains("`.nan` is not a finite number"), "{e}");
    assert!(e.contains("pipeline.yaml:4:62"), "{e}");
}

#[test]
fn a_byte_order_mark_and_the_largest_seed_are_valid_and_long_names_are_not() {
    let ok = "\u{feff}name: x\nseed: 18446744073709551615\nmodel: m\nstages:\n  r: { report: { inputs: [r2] } }\n  r2: { report: { inputs: [r] } }\n";
    // (the cycle is the only error: BOM and seed parse)
    let e = errors(ok);
    assert!(e.contains("dependency cycle"), "{e}");
    assert!(!e.contains("unknown field") && !e.contains("seed"), "{e}");
    let long = "a".repeat(300);
    let e = errors(&format!(
        "name: x\nmodel: m\nstages:\n  {long}: {{ report: {{ inputs: [b] }} }}\n  b: {{ report: {{ inputs: [c] }} }}\n  c: {{ extract: {{ dataset: d }} }}\n"
    ));
    assert!(e.contains("names are at most 100 characters"), "{e}");
    let spec = spec::parse_str(
        "\u{feff}name: x\nseed: 18446744073709551615\nmodel: m\nstages:\n  r: { report: { inputs: [a] } }\n  a: { extract: { dataset: d } }\ndatasets:\n  d: { source: d.jsonl, format: contrastive_ab }\n",
        "p.yaml",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(spec.seed, u64::MAX);
}

#[test]
fn dtype_is_one_of_f32_bf16_f16() {
    for (d, want) in [
        ("f32", steerbench::spec::Dtype::F32),
        ("bf16", steerbench::spec::Dtype::Bf16),
        ("f16", steerbench::spec::Dtype::F16),
    ] {
        let text = format!("name: x\nmodel: m\ndtype: {d}\nstages:\n  a: {{ extract: {{ dataset: ab }} }}\ndatasets:\n  ab: {{ source: builtin:sentiment_ab, format: contrastive_ab }}\n");
        let s = spec::parse_str(&text, "pipeline.yaml", Path::new(".")).unwrap();
        assert_eq!(s.dtype, want);
    }
    let text = "name: x\nmodel: m\nstages:\n  a: { extract: { dataset: ab } }\ndatasets:\n  ab: { source: builtin:sentiment_ab, format: contrastive_ab }\n";
    let s = spec::parse_str(text, "pipeline.yaml", Path::new(".")).unwrap();
    assert_eq!(s.dtype, steerbench::spec::Dtype::F32, "default");
    insta::assert_snapshot!(errors(
        "name: x\nmodel: m\ndtype: bfloat16\nstages:\n  a: { extract: { dataset: ab } }\ndatasets:\n  ab: { source: builtin:sentiment_ab, format: contrastive_ab }\n"
    ));
}
