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
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use outputs::stage_dir;

fn spec(model: &Path) -> String {
    format!(
        r#"# Sharding test.
name: shards_e2e
seed: 3
model: {}
prompt_format: chat
datasets:
  ab:
    source: builtin:sentiment_ab
    format: contrastive_ab
    split: {{ train: 0.5, val: 0.25, test: 0.25 }}
    limit: 36
  corpus:
    source: builtin:corpus_en
    format: text
    split: {{ train: 0.0, val: 0.0, test: 1.0 }}
    limit: 2
    window_tokens: 64
stages:
  acts:
    extract: {{ dataset: ab.train, layers: all, read_position: answer }}
  vectors:
    vectors: {{ activations: acts, methods: [caa, pca, random, shuffled], normalize: resid_norm }}
  sweep:
    evaluate:
      vectors: vectors
      datasets: [ab.val, ab.test]
      layers: [0, 1]
      multipliers: [-2, -1, 0, 0.5, 1, 2]
      positions: [all, last]
      metrics: [propensity, steerability]
      baselines: [letter_swap]
  damage:
    degradation: {{ vectors: vectors, from: sweep, corpus: corpus.test, metrics: [perplexity] }}
  report:
    report: {{ inputs: [sweep, damage] }}
"#,
        model.display()
    )
}

struct Setup {
    _tmp: tempfile::TempDir,
    spec: PathBuf,
    root: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny-llama");
    tiny_llama::write_tiny_model(&model);
    let spec_path = tmp.path().join("shards_e2e.yaml");
    std::fs::write(&spec_path, spec(&model)).unwrap();
    Setup {
        root: tmp.path().to_path_buf(),
        spec: spec_path,
        _tmp: tmp,
    }
}

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "failed:\n{o}\n{e}");
    o.to_string()
}

fn run(s: &Setup, runs: &str, extra: &[&str]) -> PathBuf {
    let runs = s.root.join(runs);
    let mut args = vec![
        "run",
        s.spec.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
    ];
    args.extend(extra);
    ok(&bin(&args));
    runs.join("shards_e2e")
}

/// A duration as the report writes it (`0.52 s`, `3 min 04 s`, `1 h 02 min`).
fn is_duration(cell: &str) -> bool {
    let words: Vec<&str> = cell.split_whitespace().collect();
    match words.as_slice() {
        [n, "s"] => n.parse::<f64>().is_ok(),
        [a, "min", b, "s"] | [a, "h", b, "min"] => {
            a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok()
        }
        _ => false,
    }
}

/// The report with its stage wall times (the one thing two runs of the same spec
/// never share) blanked.
fn report_without_times(run: &Path) -> String {
    let md = std::fs::read_to_string(stage_dir(run, "report").join("report.md")).unwrap();
    md.lines()
        .map(|l| {
            if !l.starts_with('|') {
                return l.to_string();
            }
            l.split('|')
                .map(|c| if is_duration(c.trim()) { " T " } else { c })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every stage's outputs as the manifest lists them: (path, bytes, blake3, rows), but
/// for the report's markdown, compared by `report_without_times`.
fn outputs_of(run: &Path) -> Vec<(String, Vec<(String, u64, String, Option<u64>)>)> {
    ["acts", "vectors", "sweep", "damage", "report"]
        .iter()
        .map(|st| {
            let dir = stage_dir(run, st);
            let m = steerbench::store::RunStore::read_manifest(&dir).unwrap();
            assert!(
                !dir.join("shards").exists(),
                "{st}: shards removed by the merge"
            );
            let files = m
                .outputs
                .into_iter()
                .filter(|o| o.path != "report.md")
                .map(|o| (o.path, o.bytes, o.blake3, o.rows))
                .collect();
            (st.to_string(), files)
        })
        .collect()
}

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

/// The text without terminal colour codes (`ESC [ … m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
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
