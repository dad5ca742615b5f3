//! Sharded stages end to end on a tiny random-weight Llama: `run --shards N` (shards of
//! `extract` and `evaluate` run one after another, then merged) writes outputs identical
//! to a whole run, bit for bit (every output file's blake3 in the manifests, the report
//! included); `steerbench stage` runs single shards and merges; a merge with missing
//! shards names them; a re-run does only the missing shards; a shard killed with SIGKILL
//! leaves no shard folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod outputs;
#[path = "support/sharded_run.rs"]
mod sharded_run;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use outputs::stage_dir;
use sharded_run::*;

#[test]
fn sharded_runs_equal_a_whole_run_bit_for_bit() {
    let s = setup();
    let whole = run(&s, "whole", &[]);
    let expected = outputs_of(&whole);
    let n_files: usize = expected.iter().map(|(_, f)| f.len()).sum();
    assert!(n_files >= 10, "{expected:?}");
    for shards in ["2", "5", "40"] {
        let sharded = run(&s, &format!("shards{shards}"), &["--shards", shards]);
        assert_eq!(
            outputs_of(&sharded),
            expected,
            "--shards {shards} differs from the whole run"
        );
        assert_eq!(report_without_times(&sharded), report_without_times(&whole));
    }
    // The scores really are the sweep's (not an empty table that would match trivially).
    let scores =
        steerbench::store::read_parquet(&stage_dir(&whole, "sweep").join("scores.parquet"))
            .unwrap();
    assert!(scores.height() > 1000, "{}", scores.height());
}

fn stage(s: &Setup, runs: &Path, args: &[&str]) -> Output {
    let mut a = vec![
        "stage",
        s.spec.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
    ];
    a.extend(args);
    bin(&a)
}

/// The one (incomplete) fingerprint folder of a stage.
fn only_dir(run: &Path, stage: &str) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(run.join(stage))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(v.len(), 1, "{v:?}");
    v.pop().unwrap()
}

#[test]
fn single_shards_merge_and_rerun_only_the_missing_ones() {
    let s = setup();
    let runs = s.root.join("runs");
    let run_dir = runs.join("shards_e2e");

    // Bad requests are clear errors.
    let out = stage(&s, &runs, &["--stage", "nope"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("no stage `nope`") && e.contains("acts, vectors, sweep"),
        "{e}"
    );
    let out = stage(
        &s,
        &runs,
        &["--stage", "acts", "--shard", "3", "--shards", "3"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shard 3 is not one of --shards 3"));
    let out = stage(
        &s,
        &runs,
        &["--stage", "acts", "--fingerprint", "0123456789abcdef"],
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("now has fingerprint") && e.contains("submit again"),
        "{e}"
    );
    let out = stage(&s, &runs, &["--stage", "vectors"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("needs stage `acts`, which is not complete"),
        "{e}"
    );
    let out = stage(
        &s,
        &runs,
        &["--stage", "vectors", "--shard", "0", "--shards", "2"],
    );
    assert!(!out.status.success());

    // Shards 0 and 2 of 3; the merge names the missing one.
    ok(&stage(
        &s,
        &runs,
        &["--stage", "acts", "--shard", "0", "--shards", "3"],
    ));
    ok(&stage(
        &s,
        &runs,
        &["--stage", "acts", "--shard", "2", "--shards", "3"],
    ));
    let acts = only_dir(&run_dir, "acts");
    let out = stage(&s, &runs, &["--stage", "acts", "--merge", "--shards", "3"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("shard(s) 1 of 3 are not complete"), "{e}");
    assert!(!acts.join("manifest.json").exists());

    // A shard killed with SIGKILL mid-way leaves no shard folder, only a temporary one.
    let mut child = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args([
            "stage",
            s.spec.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
            "--stage",
            "acts",
            "--shard",
            "1",
            "--shards",
            "3",
        ])
        .spawn()
        .unwrap();
    let shards = acts.join("shards");
    let started = Instant::now();
    let tmp_seen = loop {
        let tmp = std::fs::read_dir(&shards)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".tmp-1-"));
        if tmp || started.elapsed() > Duration::from_secs(60) {
            break tmp;
        }
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    if tmp_seen && !shards.join("1").exists() {
        eprintln!("killed shard 1 while it was running");
    } else {
        // The shard finished before the kill landed: it must then be complete.
        assert!(shards.join("1").join("shard.json").is_file());
        std::fs::remove_dir_all(shards.join("1")).unwrap();
    }
    assert!(!shards.join("1").exists(), "no half-written shard folder");

    // `run --shards 3` runs shard 1 only (the log says which shards ran), merges, and
    // goes on.
    let out = bin(&[
        "run",
        s.spec.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
        "--shards",
        "3",
        "--verbose",
    ]);
    ok(&out);
    let log = strip_ansi(&String::from_utf8_lossy(&out.stderr));
    let acts_lines = |what: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains(what) && l.contains("stage=acts"))
            .map(|l| l.split(what).nth(1).unwrap_or("").trim().to_string())
            .collect()
    };
    let ran = acts_lines("running shard");
    assert_eq!(ran.len(), 1, "{log}");
    assert!(ran[0].contains("shard=1"), "{ran:?}");
    assert_eq!(acts_lines("shard complete").len(), 2, "{log}");
    let whole = run(&s, "whole", &[]);
    assert_eq!(outputs_of(&run_dir), outputs_of(&whole));
    assert_eq!(report_without_times(&run_dir), report_without_times(&whole));

    // `status` without a Slurm submission lists the stages in the store.
    let st = ok(&bin(&["status", run_dir.to_str().unwrap()]));
    assert!(st.contains("acts") && st.contains("done"), "{st}");
}

/// The default real model (SmolLM2-135M-Instruct, pulled by `.ci/run`): batched,
/// left-padded forward passes of real width, shared prompt prefixes, layer groups of
/// two methods; three shards give the same bytes as a whole run.
#[test]
fn on_the_real_model_three_shards_equal_a_whole_run() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("shards_real.yaml");
    std::fs::write(
        &spec,
        r#"name: shards_real
seed: 1
model: smollm2-135m-instruct
prompt_format: chat
datasets:
  ab:
    source: builtin:sentiment_ab
    format: contrastive_ab
    split: { train: 0.5, val: 0.25, test: 0.25 }
    limit: 16
stages:
  acts:
    extract: { dataset: ab.train, layers: [4, 10], read_position: answer }
  vectors:
    vectors: { activations: acts, methods: [caa, random], normalize: resid_norm }
  sweep:
    evaluate:
      vectors: vectors
      datasets: [ab.val, ab.test]
      layers: [4, 10]
      multipliers: [-1, 1]
      metrics: [ab_probability, propensity, steerability]
"#,
    )
    .unwrap();
    let run_in = |runs: &str, extra: &[&str]| -> PathBuf {
        let dir = tmp.path().join(runs);
        let mut args = vec![
            "run",
            spec.to_str().unwrap(),
            "--runs-dir",
            dir.to_str().unwrap(),
        ];
        args.extend(extra);
        ok(&bin(&args));
        dir.join("shards_real")
    };
    let whole = run_in("whole", &[]);
    let sharded = run_in("sharded", &["--shards", "3"]);
    let stages = ["acts", "vectors", "sweep"];
    assert_eq!(
        outputs_of_stages(&sharded, &stages),
        outputs_of_stages(&whole, &stages)
    );
    let scores =
        steerbench::store::read_parquet(&stage_dir(&whole, "sweep").join("scores.parquet"))
            .unwrap();
    assert!(scores.height() > 50, "{}", scores.height());
}
