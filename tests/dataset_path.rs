//! One dataset path: the spec's field mapping (including `id` and `category`) is what the
//! loader uses, a run reads and splits each dataset once, and the bytes it parses are the
//! bytes hashed at plan time (a file changed after planning is refused).

mod common;

use std::sync::Arc;

use steerbench::plan::{self, LocalEnvironment, Plan};
use steerbench::spec;
use steerbench::stages::common::{Services, SplitDataset};
use steerbench_data::{content_hash, Records, Source};

const SPEC: &str = r#"name: paths
seed: 3
model: fake-model
datasets:
  mine:
    source: mine.jsonl
    format: contrastive_completion
    fields: { id: uid, category: topic, prompt: text }
    split: { train: 0.5, val: 0.25, test: 0.25 }
  corpus:
    source: builtin:corpus
    format: text
stages:
  acts: { extract: { dataset: mine.train, layers: [1] } }
  damage: { degradation: { vectors: vecs, corpus: corpus, metrics: [perplexity], layers: [1], multipliers: [1] } }
  vecs: { vectors: { activations: acts, methods: [caa] } }
"#;

fn mine_jsonl() -> String {
    (0..8)
        .map(|i| {
            format!(
                "{{\"uid\": \"item-{i}\", \"topic\": \"t{}\", \"text\": \"Prompt {i}\", \"positive\": \"good\", \"negative\": \"bad\"}}\n",
                i % 2
            )
        })
        .collect()
}

fn workspace() -> common::Workspace {
    let ws = common::Workspace::new(SPEC);
    std::fs::write(ws.dir.path().join("mine.jsonl"), mine_jsonl()).unwrap();
    ws
}

fn plan_with(ws: &common::Workspace, env: &dyn plan::Environment) -> Plan {
    let spec = spec::load(&ws.spec_path()).unwrap_or_else(|d| panic!("{d}"));
    plan::build(spec, env, &common::registry(1).versions()).unwrap_or_else(|d| panic!("{d}"))
}

fn plan(ws: &common::Workspace) -> Plan {
    plan_with(ws, &common::environment(&ws.dir.path().join("builtin")))
}

#[test]
fn id_and_category_overrides_reach_the_loaded_records() {
    let ws = workspace();
    let plan = plan(&ws);
    let rd = &plan.datasets["mine"];
    let ds = SplitDataset::load(rd, plan.spec.seed).unwrap();
    let mut ids = ds.all.ids();
    ids.sort();
    let expected: Vec<String> = (0..8).map(|i| format!("item-{i}")).collect();
    assert_eq!(ids, expected);
    let Records::ContrastiveCompletion(v) = &ds.all else {
        panic!("format")
    };
    for r in v {
        let i: usize = r.id.trim_start_matches("item-").parse().unwrap();
        assert_eq!(r.category.as_deref(), Some(format!("t{}", i % 2).as_str()));
    }
    assert!(v.iter().all(|r| r.prompt.starts_with("Prompt ")));
    // The split is stratified by the mapped category: both topics in every split.
    for split in steerbench_data::SplitName::ALL {
        let Records::ContrastiveCompletion(v) = ds.get(Some(split)) else {
            panic!("format")
        };
        let topics: std::collections::BTreeSet<_> =
            v.iter().map(|r| r.category.clone().unwrap()).collect();
        assert_eq!(topics.len(), 2, "{split}: {v:?}");
    }
    // The overrides are part of the fingerprint inputs of the stages that read the dataset.
    let acts = plan.stage("acts").unwrap();
    let fields = &acts.fingerprint_inputs.datasets["mine"].fields;
    assert_eq!(fields["id"], "uid");
    assert_eq!(fields["category"], "topic");
    assert_eq!(fields["prompt"], "text");
    let corpus = &plan.stage("damage").unwrap().fingerprint_inputs.datasets["corpus"].fields;
    assert_eq!(
        corpus.keys().collect::<Vec<_>>(),
        ["text"],
        "defaults for id/category stay out of fingerprints"
    );
}

#[test]
fn a_run_loads_each_dataset_once() {
    let ws = workspace();
    let plan = plan(&ws);
    let services = Services::new();
    let rd = &plan.datasets["mine"];
    let a = services.dataset(rd, plan.spec.seed).unwrap();
    // Even with the file gone, the run's copy is reused (it is not read again).
    std::fs::remove_file(ws.dir.path().join("mine.jsonl")).unwrap();
    let b = services.dataset(rd, plan.spec.seed).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    // Another seed is another split, so it is not served from the cache.
    let err = services.dataset(rd, plan.spec.seed + 1).unwrap_err();
    assert!(format!("{err:#}").contains("mine.jsonl"), "{err:#}");
}

#[test]
fn a_file_changed_after_planning_is_refused_naming_file_and_hashes() {
    let ws = workspace();
    let plan = plan(&ws);
    let rd = &plan.datasets["mine"];
    let planned = content_hash(mine_jsonl().as_bytes());
    assert_eq!(
        rd.hash, planned,
        "the plan hashes the bytes the loader reads"
    );
    let changed = mine_jsonl().replace("item-3", "item-33");
    std::fs::write(ws.dir.path().join("mine.jsonl"), &changed).unwrap();
    let err = Services::new()
        .dataset(rd, plan.spec.seed)
        .expect_err("changed file must be refused");
    let msg = format!("{err:#}");
    let file = ws.dir.path().join("mine.jsonl");
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains(&planned), "{msg}");
    assert!(msg.contains(&content_hash(changed.as_bytes())), "{msg}");
    assert!(
        msg.contains("changed after the pipeline was planned"),
        "{msg}"
    );
}

#[test]
fn builtins_are_checked_against_the_bytes_the_loader_reads() {
    // A builtin store on disk (tests, source trees): the dataset resolves to that file.
    let ws = workspace();
    let plan = plan(&ws);
    let rd = &plan.datasets["corpus"];
    let file = ws.dir.path().join("builtin/corpus.jsonl");
    assert_eq!(rd.location, Source::Path(file.clone()));
    let ds = SplitDataset::load(rd, 0).unwrap();
    assert_eq!(ds.all.len(), 1);
    std::fs::write(&file, "{\"text\": \"Other text.\"}\n").unwrap();
    let err = SplitDataset::load(rd, 0).unwrap_err();
    assert!(format!("{err:#}").contains("corpus.jsonl"), "{err:#}");

    // The binary's embedded builtins: hashed and read from the same embedded bytes.
    let text = SPEC.replace("builtin:corpus", "builtin:corpus_en");
    let ws = common::Workspace::new(&text);
    std::fs::write(ws.dir.path().join("mine.jsonl"), mine_jsonl()).unwrap();
    let env = LocalEnvironment::new(steerbench::runtime::embedded_builtins(), common::FakeModels);
    let plan = plan_with(&ws, &env);
    let rd = &plan.datasets["corpus"];
    assert_eq!(rd.location, Source::Builtin("corpus_en".into()));
    let embedded = steerbench_data::builtin::get("corpus_en").unwrap();
    assert_eq!(rd.hash, content_hash(embedded.content.as_bytes()));
    assert!(!SplitDataset::load(rd, 0).unwrap().all.is_empty());
}
