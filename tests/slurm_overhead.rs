//! Benchmark (not a test: ignored by `cargo test`; nothing here asserts a time): the
//! Slurm executor's overhead on a real one-machine Slurm, against the local executor on
//! the same pipeline in the same sitting. With 2 CPUs there is no speed-up to show, so it
//! measures what distribution costs: submission, scheduling (slurmctld's ~1 s tick per
//! dependent job), one process and one model load per job, and the merge.
//!
//! ```sh
//! cargo test --test slurm_overhead -- --ignored --nocapture
//! ```
//!
//! Workloads: the tiny-model pipeline of the sharding tests (overhead only), and a small
//! real-model pipeline on SmolLM2-135M-Instruct (skipped when it is not cached) where
//! the stages do real work. Printed: wall time local / Slurm (`--shards 2 --wait`) and
//! their ratio; per sharded stage, the local stage time, the sum of its shards' times and
//! the merge time as a share of the local stage time. Figures: docs/cluster.md.

use std::path::Path;
use std::time::Instant;

mod outputs;
#[path = "support/sharded_run.rs"]
mod sharded_run;
#[path = "support/slurm.rs"]
mod slurm;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use outputs::stage_dir;

const EXE: &str = env!("CARGO_BIN_EXE_steerbench");

fn real_spec() -> &'static str {
    r#"name: slurm_overhead_real
seed: 0
model: smollm2-135m-instruct
prompt_format: chat
datasets:
  ab:
    source: builtin:sentiment_ab
    format: contrastive_ab
    split: { train: 0.5, val: 0.25, test: 0.25 }
    limit: 48
stages:
  acts:
    extract: { dataset: ab.train, layers: [6, 10, 14], read_position: answer }
  vectors:
    vectors: { activations: acts, methods: [caa, random], normalize: resid_norm }
  sweep:
    evaluate:
      vectors: vectors
      datasets: [ab.val, ab.test]
      layers: [6, 10, 14]
      multipliers: [-1, 0, 1]
      metrics: [propensity, steerability]
"#
}

fn wall(run: &Path, stage: &str) -> f64 {
    steerbench::store::RunStore::read_manifest(&stage_dir(run, stage))
        .unwrap()
        .timings
        .wall_seconds
}

/// Sum of the shards' own times, from the shard logs (`committed in X s`).
fn shard_seconds(run: &Path, stage: &str) -> f64 {
    let logs = run.join(".slurm/logs");
    std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with(&format!("{stage}.shard-"))
        })
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            let after = text.split("committed in ").nth(1)?;
            after.split(' ').next()?.parse::<f64>().ok()
        })
        .sum()
}

fn measure(cluster: &slurm::SlurmCluster, label: &str, spec: &Path, root: &Path, name: &str) {
    let local_runs = root.join(format!("{label}-local"));
    let clock = Instant::now();
    let out = std::process::Command::new(EXE)
        .args(["run", spec.to_str().unwrap(), "--runs-dir"])
        .arg(&local_runs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local = clock.elapsed().as_secs_f64();

    let slurm_runs = root.join(format!("{label}-slurm"));
    let clock = Instant::now();
    let out = cluster
        .command(EXE)
        .args(["run", spec.to_str().unwrap(), "--runs-dir"])
        .arg(&slurm_runs)
        .args(["--executor", "slurm", "--shards", "2", "--wait"])
        .env("STEERBENCH_SLURM_POLL_SECS", "0.2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let through = clock.elapsed().as_secs_f64();
    println!(
        "{label}: local {local:.1} s, Slurm --shards 2 {through:.1} s: {:.2}x local ({:+.1} s)",
        through / local,
        through - local
    );
    let (l, s) = (local_runs.join(name), slurm_runs.join(name));
    for stage in ["acts", "sweep"] {
        let whole = wall(&l, stage);
        let merge = wall(&s, stage);
        let shards = shard_seconds(&s, stage);
        println!(
            "  {stage}: local {whole:.2} s; shards {shards:.2} s in all; merge {merge:.2} s = {:.0}% of the local stage",
            100.0 * merge / whole
        );
    }
}

#[test]
#[ignore = "benchmark: cargo test --test slurm_overhead -- --ignored --nocapture"]
fn slurm_overhead() {
    let Some(cluster) = slurm::SlurmCluster::start() else {
        return;
    };
    println!(
        "cluster up in {:.2} s",
        cluster.startup_time().as_secs_f64()
    );
    let tiny = sharded_run::setup();
    measure(&cluster, "tiny model", &tiny.spec, &tiny.root, "shards_e2e");

    let home = steerbench_model::registry::steerbench_home().unwrap();
    if !home.join("models").exists() {
        println!("real model: skipped (SmolLM2 not cached; steerbench models pull smollm2-135m-instruct)");
        return;
    }
    let spec = tiny.root.join("real.yaml");
    std::fs::write(&spec, real_spec()).unwrap();
    measure(
        &cluster,
        "SmolLM2-135M",
        &spec,
        &tiny.root,
        "slurm_overhead_real",
    );
}
