//! Caching, fingerprints and the Parquet outputs of the engine.

mod common;

use common::{parquet_tables, Workspace, SPEC};

fn fingerprints(ws: &Workspace) -> Vec<(String, String)> {
    ws.plan(2)
        .stages
        .iter()
        .map(|s| (s.name.clone(), s.fingerprint.clone()))
        .collect()
}

#[test]
fn second_run_executes_nothing() {
    let ws = Workspace::new(SPEC);
    let first = ws.run(2, false).unwrap();
    assert_eq!(
        first.executed,
        ["acts", "vecs", "effect", "damage", "report"]
    );
    let second = ws.run(2, false).unwrap();
    assert!(second.executed.is_empty(), "{:?}", second.executed);
    assert_eq!(second.cached.len(), 5);
}

#[test]
fn changing_one_multiplier_reruns_only_its_dependents() {
    let ws = Workspace::new(SPEC);
    ws.run(2, false).unwrap();
    ws.write_spec(&SPEC.replace("multipliers: [-1, 0, 1]", "multipliers: [-1, 0, 2]"));
    let r = ws.run(2, false).unwrap();
    assert_eq!(r.executed, ["effect", "damage", "report"]);
    assert_eq!(r.cached, ["acts", "vecs"]);
}

#[test]
fn changing_a_method_param_reruns_from_vectors() {
    let ws = Workspace::new(SPEC);
    ws.run(1, false).unwrap();
    ws.write_spec(&SPEC.replace("l2: 0.5", "l2: 0.25"));
    let r = ws.run(1, false).unwrap();
    assert_eq!(r.executed, ["vecs", "effect", "damage", "report"]);
}

#[test]
fn key_order_comments_and_defaults_do_not_change_fingerprints() {
    let ws = Workspace::new(SPEC);
    let before = fingerprints(&ws);
    let reordered = SPEC
        .replace(
            "acts: { extract: { dataset: sent.train, layers: [2, 4], read_position: answer } }",
            "acts: { extract: { read_position: answer, layers: [2, 4], dataset: sent.train, sites: [resid_post] } }  # same, reordered",
        )
        .replace("multipliers: [-1, 0, 1]", "multipliers: [-1.0, 0.0, 1.0]   # floats written differently")
        .replace("seed: 7\nmodel: fake-model", "model: fake-model\n# a comment\nseed: 7");
    assert_ne!(reordered, SPEC);
    ws.write_spec(&reordered);
    assert_eq!(before, fingerprints(&ws));
}

#[test]
fn dataset_content_is_part_of_the_fingerprint() {
    let ws = Workspace::new(SPEC);
    let before = fingerprints(&ws);
    std::fs::write(
        ws.dir.path().join("builtin/corpus.jsonl"),
        "{\"text\": \"Other text.\"}\n",
    )
    .unwrap();
    let after = fingerprints(&ws);
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| a.0.as_str())
        .collect();
    assert_eq!(changed, ["damage", "report"]);
}

#[test]
fn every_output_opens_with_the_documented_columns_and_manifest() {
    let ws = Workspace::new(SPEC);
    let r = ws.run(2, false).unwrap();
    let tables = parquet_tables(&r.run_dir);
    assert_eq!(tables.len(), 10);
    for (path, df) in &tables {
        let cols: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(cols, ["row", "label", "value"], "{path}");
        assert!(df.height() >= 5);
    }
    let plan = ws.plan(2);
    for s in &plan.stages {
        let dir = r.run_dir.join(&s.name).join(s.short_fingerprint());
        let m = steerbench::store::RunStore::read_manifest(&dir).unwrap();
        assert_eq!(m.fingerprint, s.fingerprint);
        assert_eq!(m.outputs.len(), 2);
        assert_eq!(m.outputs[0].rows, Some(5));
        assert_eq!(
            m.outputs[0].columns.as_deref().unwrap(),
            ["row", "label", "value"]
        );
        assert_eq!(m.provenance.spec_hash, plan.spec.hash);
        let uses_model = s.uses_model;
        assert_eq!(m.provenance.model_id.is_some(), uses_model, "{}", s.name);
    }
    let listing = steerbench::cli::render_ls(&r.run_dir).unwrap();
    assert!(listing.contains("part1.parquet"), "{listing}");
    assert!(
        listing.lines().skip(1).all(|l| l.contains("complete")),
        "{listing}"
    );
}

#[test]
fn plan_shows_cached_and_to_run() {
    let ws = Workspace::new(SPEC);
    let text = steerbench::cli::render_plan(&ws.plan(1), &ws.runs());
    assert!(text.contains("5 stage(s), 5 to run"), "{text}");
    ws.run(1, false).unwrap();
    let text = steerbench::cli::render_plan(&ws.plan(1), &ws.runs());
    assert!(text.contains("5 stage(s), 0 to run"), "{text}");
    assert!(text.contains("effect"));
}

struct Failing;

impl steerbench::exec::StageRunner<()> for Failing {
    fn version(&self) -> u32 {
        1
    }
    fn run(
        &self,
        _: &steerbench::exec::StageContext<'_, ()>,
    ) -> anyhow::Result<steerbench::exec::StageOutputs> {
        anyhow::bail!("the test runner refuses")
    }
}

#[test]
fn a_failing_stage_leaves_no_folder_and_the_next_run_resumes() {
    use steerbench::exec::{execute, ProgressBoard, RunOptions};
    use steerbench::spec::StageKind;
    let ws = Workspace::new(SPEC);
    let mut broken = common::registry(1);
    broken.register(StageKind::Evaluate, Failing);
    let plan = ws.plan(1);
    let opts = RunOptions {
        shards: 1,
        runs_dir: ws.runs(),
        wait: false,
        progress: ProgressBoard::hidden(),
    };
    let err = execute(&plan, &broken, &(), &opts).unwrap_err().to_string();
    assert!(
        err.contains("stage `effect` failed") && err.contains("the test runner refuses"),
        "{err}"
    );
    let root = ws.runs().join("demo");
    assert!(!root.join("effect").exists());
    assert!(std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().starts_with(".tmp-")));
    let r = ws.run(1, false).unwrap();
    assert_eq!(r.cached, ["acts", "vecs"]);
    assert_eq!(r.executed, ["effect", "damage", "report"]);
}

#[test]
fn plan_errors_stop_before_anything_is_written() {
    let ws = Workspace::new(&SPEC.replace("layers: [2, 4]\n", "layers: [2, 99]\n"));
    let spec = steerbench::spec::load(&ws.spec_path()).unwrap();
    let env = common::environment(&ws.dir.path().join("builtin"));
    let err = steerbench::plan::build(spec, &env, &common::registry(1).versions()).unwrap_err();
    assert!(
        err.to_string()
            .contains("layer 99 does not exist: the model has 30 layers (0..29)"),
        "{err}"
    );
    assert!(!ws.runs().exists());
}
