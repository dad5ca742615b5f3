//! The Slurm executor on a real single-machine Slurm (munged, slurmctld, slurmd started
//! by tests/support/slurm.rs; skipped, saying so, only when Slurm is not installed):
//! a pipeline run through Slurm with sharded stages gives outputs identical to a local
//! run; status names every shard; a second submission and a local run are refused while
//! jobs are queued; a cancelled running shard leaves no shard folder, and running the
//! same command again submits only that shard and completes identically; bad partitions,
//! a missing sbatch and an invisible run directory are clear errors.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

mod outputs;
#[path = "support/sharded_run.rs"]
mod sharded_run;
#[path = "support/slurm.rs"]
mod slurm;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use sharded_run::*;
use slurm::SlurmCluster;

const EXE: &str = env!("CARGO_BIN_EXE_steerbench");

fn steerbench(cluster: &SlurmCluster, args: &[&str]) -> Output {
    cluster
        .command(EXE)
        .args(args)
        .env("STEERBENCH_SLURM_POLL_SECS", "0.3")
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn submission(run_dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run_dir.join(".slurm/submission.json")).unwrap()).unwrap()
}

fn stage_jobs<'a>(sub: &'a serde_json::Value, stage: &str) -> &'a serde_json::Value {
    sub["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == stage)
        .unwrap()
}

fn slurm_run(cluster: &SlurmCluster, s: &Setup, runs: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        s.spec.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
        "--executor",
        "slurm",
        "--shards",
        "3",
    ];
    args.extend(extra);
    steerbench(cluster, &args)
}

/// Waits until the run directory's submission has no job in the queue.
fn wait_idle(cluster: &SlurmCluster, run_dir: &Path) {
    let sub = submission(run_dir);
    for st in sub["stages"].as_array().unwrap() {
        for key in ["array_job", "job"] {
            if let Some(id) = st[key].as_str() {
                cluster.wait_job_done(id, Duration::from_secs(300));
            }
        }
    }
}

#[test]
fn a_pipeline_through_slurm_equals_the_local_run() {
    let Some(cluster) = SlurmCluster::start() else {
        return;
    };
    let s = setup();
    let clock = Instant::now();
    let local = run(&s, "local", &[]);
    let local_secs = clock.elapsed().as_secs_f64();

    let runs = s.root.join("slurm");
    let clock = Instant::now();
    let out = slurm_run(&cluster, &s, &runs, &["--wait"]);
    let slurm_secs = clock.elapsed().as_secs_f64();
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}\n{e}");
    assert!(
        o.contains("job(s) submitted for 5 stage(s), 0 cached"),
        "{o}"
    );
    assert!(
        o.lines().any(|l| l.starts_with("[00:")),
        "progress lines: {o}"
    );
    let run_dir = runs.join("shards_e2e");
    assert_eq!(outputs_of(&run_dir), outputs_of(&local));
    assert_eq!(report_without_times(&run_dir), report_without_times(&local));
    eprintln!(
        "local {local_secs:.1} s, through Slurm {slurm_secs:.1} s (ratio {:.2})",
        slurm_secs / local_secs
    );

    // The record: acts and sweep as 3-shard arrays with a merge job, the rest whole.
    let sub = submission(&run_dir);
    for st in ["acts", "sweep"] {
        let j = stage_jobs(&sub, st);
        assert_eq!(j["shard_count"], 3, "{j}");
        assert_eq!(j["submitted_shards"], serde_json::json!([0, 1, 2]));
        assert!(j["array_job"].is_string() && j["job"].is_string(), "{j}");
    }
    for st in ["vectors", "damage", "report"] {
        let j = stage_jobs(&sub, st);
        assert!(j["array_job"].is_null() && j["job"].is_string(), "{j}");
    }
    // Each shard ran in its own Slurm job (the merged folder is gone, the logs stay).
    for k in 0..3 {
        let log = std::fs::read_to_string(run_dir.join(format!(".slurm/logs/acts.shard-{k}.log")))
            .unwrap();
        assert!(log.contains(&format!("shard {k} of 3 committed")), "{log}");
        assert!(log.contains("steerbench job"), "{log}");
    }

    // Status: every stage done, shards and merges listed with their jobs.
    let out = steerbench(&cluster, &["status", run_dir.to_str().unwrap()]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{e}");
    assert!(
        o.contains("STAGE") && o.contains("JOB") && o.contains("LOG"),
        "{o}"
    );
    assert!(o.contains("5 done"), "{o}");

    // Submitting again finds every stage cached: no job.
    let out = slurm_run(&cluster, &s, &runs, &[]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}\n{e}");
    assert!(
        o.contains("0 job(s) submitted for 0 stage(s), 5 cached"),
        "{o}"
    );
}

#[test]
fn a_cancelled_shard_is_the_only_one_submitted_again() {
    let Some(cluster) = SlurmCluster::start() else {
        return;
    };
    // A wider model and sweep, so that a shard of it runs long enough (seconds) to be
    // cancelled while running.
    let s = setup_sized(
        "[-3, -2.5, -2, -1.5, -1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 6]",
        Some((384, 1536)),
    );
    let runs = s.root.join("runs");
    let run_dir = runs.join("shards_e2e");
    // One shard at a time, so that the others are still pending when one runs.
    let out = slurm_run(&cluster, &s, &runs, &["--max-parallel", "1"]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}\n{e}");

    // While jobs are queued: a second submission and a local run are refused.
    let out = slurm_run(&cluster, &s, &runs, &[]);
    let (_, e) = text(&out);
    assert!(!out.status.success());
    assert!(e.contains("has an active Slurm submission"), "{e}");
    let out = steerbench(
        &cluster,
        &[
            "run",
            s.spec.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ],
    );
    let (_, e) = text(&out);
    assert!(!out.status.success());
    assert!(e.contains("has an active Slurm submission"), "{e}");

    // Cancel sweep's shard 1 once it runs.
    let sub = submission(&run_dir);
    let sweep = stage_jobs(&sub, "sweep");
    let task = format!("{}_1", sweep["array_job"].as_str().unwrap());
    cluster.wait_job_state(&task, "RUNNING", Duration::from_secs(300));
    std::thread::sleep(Duration::from_millis(500));
    cluster.scancel(&task).unwrap();
    let log0 = std::fs::read_to_string(run_dir.join(".slurm/logs/sweep.shard-0.log")).unwrap();
    eprintln!("sweep shard 0: {}", log0.trim());
    wait_idle(&cluster, &run_dir);
    let sweep_dir = std::fs::read_dir(run_dir.join("sweep"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let shards = sweep_dir.join("shards");
    let out = steerbench(&cluster, &["status", run_dir.to_str().unwrap()]);
    let (status, _) = text(&out);
    assert!(
        shards.join("0").join("shard.json").is_file(),
        "{status}\n{}",
        cluster.log_tails()
    );
    assert!(
        !shards.join("1").exists(),
        "a cancelled shard leaves no shard folder"
    );
    assert!(!sweep_dir.join("manifest.json").exists());
    let o = status;
    let line = o
        .lines()
        .find(|l| l.starts_with("sweep") && l.contains("shard 1/3"))
        .unwrap_or_else(|| panic!("{o}"));
    assert!(line.contains("failed") && line.contains("CANCELLED"), "{o}");
    assert!(
        o.contains("last lines of"),
        "the failed shard's log tail: {o}"
    );

    // The same command again: only the missing shards (1, and 2 if the merge's
    // cancellation stopped it first) are submitted; the result equals a local run.
    let out = slurm_run(&cluster, &s, &runs, &["--wait"]);
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o}\n{e}");
    let sub = submission(&run_dir);
    let resubmitted = stage_jobs(&sub, "sweep")["submitted_shards"].clone();
    assert!(
        resubmitted == serde_json::json!([1]) || resubmitted == serde_json::json!([1, 2]),
        "{resubmitted}"
    );
    assert_eq!(stage_jobs(&sub, "acts")["cached"], true);
    let local = run(&s, "local", &[]);
    assert_eq!(outputs_of(&run_dir), outputs_of(&local));
}

#[test]
fn bad_partitions_missing_tools_and_invisible_run_directories_are_clear_errors() {
    let Some(cluster) = SlurmCluster::start() else {
        return;
    };
    let s = setup();
    let runs = s.root.join("runs");
    let out = slurm_run(&cluster, &s, &runs, &["--partition", "nosuch"]);
    let (_, e) = text(&out);
    assert!(!out.status.success());
    assert!(
        e.contains("partition `nosuch` does not exist") && e.contains(slurm::PARTITION),
        "{e}"
    );

    // No sbatch on PATH.
    let empty = tempfile::tempdir().unwrap();
    let out = cluster
        .command(EXE)
        .args([
            "run",
            s.spec.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
            "--executor",
            "slurm",
        ])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let (_, e) = text(&out);
    assert!(!out.status.success());
    assert!(e.contains("`sbatch` is not on PATH"), "{e}");

    // Slurm-only flags without Slurm.
    let out = steerbench(
        &cluster,
        &["run", s.spec.to_str().unwrap(), "--partition", "debug"],
    );
    assert!(text(&out)
        .1
        .contains("--partition applies to --executor slurm"));

    // A job on a node that does not see the run directory (no submission record there).
    let out = steerbench(
        &cluster,
        &[
            "stage",
            s.spec.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
            "--stage",
            "acts",
            "--submission",
            "0123456789abcdef",
        ],
    );
    let (_, e) = text(&out);
    assert!(!out.status.success());
    assert!(
        e.contains("is not visible on node") && e.contains("a filesystem the compute nodes share"),
        "{e}"
    );
}
