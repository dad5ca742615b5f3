//! The real one-machine Slurm cluster of tests/support/slurm.rs (munged, slurmctld and
//! slurmd as child processes): job arrays, dependencies, cancellation and sbatch's errors,
//! plus two clusters side by side and the clean-up on drop. Skips (returns early, with a
//! message) when Slurm or munge is not installed; see docs/slurm-testing.md.

#[path = "support/slurm.rs"]
mod slurm;

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use slurm::SlurmCluster;

const WAIT: Duration = Duration::from_secs(120);

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/bash\nset -e\n{body}\n")).unwrap();
    path.display().to_string()
}

fn field(cluster: &SlurmCluster, id: &str, key: &str) -> String {
    let records = cluster
        .show_job(id)
        .unwrap_or_else(|| panic!("job {id} unknown"));
    records[0].get(key).cloned().unwrap_or_default()
}

#[test]
fn arrays_dependencies_cancel_and_errors() {
    let Some(cluster) = SlurmCluster::start() else {
        return;
    };
    eprintln!(
        "slurm test cluster up in {:.2?} (node {}, {} CPUs, ports {:?})",
        cluster.startup_time(),
        cluster.node_name(),
        cluster.cpus(),
        cluster.ports()
    );
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let log = |name: &str| w.join(name).display().to_string();

    // A trivial job, submit to COMPLETED.
    let t = Instant::now();
    let id = cluster
        .sbatch(&["-o", &log("true.log"), "--wrap", "true"])
        .unwrap();
    assert!(
        id.chars().all(|c| c.is_ascii_digit()),
        "sbatch --parsable: {id:?}"
    );
    assert_eq!(cluster.wait_job_done(&id, WAIT), "COMPLETED");
    eprintln!("trivial job: submit to COMPLETED in {:.2?}", t.elapsed());

    // A job array: one file per task, named by SLURM_ARRAY_TASK_ID.
    let body = format!(
        "echo $SLURM_ARRAY_TASK_ID > {}/task_$SLURM_ARRAY_TASK_ID",
        w.display()
    );
    let array_script = script(w, "array.sh", &body);
    let t = Instant::now();
    let array = cluster
        .sbatch(&["--array=0-2", "-o", &log("array_%A_%a.log"), &array_script])
        .unwrap();
    assert!(
        array.chars().all(|c| c.is_ascii_digit()),
        "array id: {array:?}"
    );
    assert_eq!(cluster.wait_job_done(&array, WAIT), "COMPLETED");
    eprintln!("3-task array: submit to COMPLETED in {:.2?}", t.elapsed());
    for i in 0..3 {
        let text = fs::read_to_string(w.join(format!("task_{i}"))).unwrap();
        assert_eq!(text.trim(), i.to_string());
    }
    // `scontrol show job <array id>` lists every task; squeue -r names them <id>_<task>.
    let mut tasks: Vec<String> = cluster
        .show_job(&array)
        .unwrap()
        .iter()
        .map(|r| r["ArrayTaskId"].clone())
        .collect();
    tasks.sort();
    assert_eq!(tasks, ["0", "1", "2"]);
    let out = slurm::run_timeout(
        {
            let mut c = cluster.command("squeue");
            c.args(["-h", "-r", "-t", "all", "-j", &array, "-o", "%i|%T"]);
            c
        },
        WAIT,
    )
    .unwrap();
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort();
    let want: Vec<String> = (0..3).map(|i| format!("{array}_{i}|COMPLETED")).collect();
    assert_eq!(lines, want, "squeue: {}{}", out.stdout, out.stderr);

    // afterok: B waits for A and then sees its output.
    let a = cluster
        .sbatch(&[
            "-o",
            &log("a.log"),
            "--wrap",
            &format!("sleep 3; echo a > {}/a", w.display()),
        ])
        .unwrap();
    let b_body = format!("cat {0}/a > {0}/b", w.display());
    let dep = format!("--dependency=afterok:{a}");
    let b = cluster
        .sbatch(&[&dep, "-o", &log("b.log"), "--wrap", &b_body])
        .unwrap();
    assert_eq!(cluster.job_state(&b).as_deref(), Some("PENDING"));
    assert_eq!(field(&cluster, &b, "Reason"), "Dependency");
    assert_eq!(cluster.wait_job_done(&b, WAIT), "COMPLETED");
    assert_eq!(cluster.job_state(&a).as_deref(), Some("COMPLETED"));
    assert_eq!(fs::read_to_string(w.join("b")).unwrap().trim(), "a");
    let a_end = field(&cluster, &a, "EndTime");
    let b_start = field(&cluster, &b, "StartTime");
    assert!(
        a_end <= b_start,
        "B started {b_start} before A ended {a_end}"
    );

    // A failing job is FAILED with its exit code; afterok on it never runs (stays PENDING).
    let f = cluster
        .sbatch(&["-o", &log("f.log"), "--wrap", "exit 3"])
        .unwrap();
    let dep = format!("--dependency=afterok:{f}");
    let never = cluster
        .sbatch(&[&dep, "-o", &log("never.log"), "--wrap", "true"])
        .unwrap();
    assert_eq!(cluster.wait_job_done(&f, WAIT), "FAILED");
    assert_eq!(field(&cluster, &f, "ExitCode"), "3:0");
    let deadline = Instant::now() + WAIT;
    while field(&cluster, &never, "Reason") != "DependencyNeverSatisfied" {
        assert!(Instant::now() < deadline, "{:?}", cluster.show_job(&never));
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(cluster.job_state(&never).as_deref(), Some("PENDING"));
    cluster.scancel(&never).unwrap();
    assert_eq!(cluster.wait_job_done(&never, WAIT), "CANCELLED");

    // scancel of a running job.
    let c = cluster
        .sbatch(&["-o", &log("c.log"), "--wrap", "sleep 60"])
        .unwrap();
    cluster.wait_job_state(&c, "RUNNING", WAIT);
    let t = Instant::now();
    cluster.scancel(&c).unwrap();
    assert_eq!(cluster.wait_job_done(&c, WAIT), "CANCELLED");
    eprintln!("scancel of a running job: CANCELLED in {:.2?}", t.elapsed());
    assert!(field(&cluster, &c, "ExitCode").ends_with(":15"));

    // Unknown ids: scontrol fails, scancel does not (without -v).
    assert!(cluster.show_job("999999").is_none());
    let mut show = cluster.command("scontrol");
    show.args(["show", "job", "-o", "999999"]);
    let out = slurm::run_timeout(show, WAIT).unwrap();
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("Invalid job id specified"),
        "{}",
        out.stderr
    );
    cluster.scancel("999999").unwrap();

    // An unknown partition is refused at submission.
    let err = cluster
        .sbatch(&["-p", "nosuchpartition", "--wrap", "true"])
        .unwrap_err();
    assert!(err.to_lowercase().contains("invalid partition"), "{err}");
    eprintln!("sbatch -p nosuchpartition:\n{err}");
}

#[test]
fn two_clusters_side_by_side_and_drop_cleans_up() {
    let starts: Vec<_> = (0..2).map(|_| thread::spawn(SlurmCluster::start)).collect();
    let clusters: Vec<SlurmCluster> = starts
        .into_iter()
        .filter_map(|h| h.join().unwrap())
        .collect();
    if clusters.len() < 2 {
        return;
    }
    assert_ne!(clusters[0].ports(), clusters[1].ports());
    let work = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let out = work.path().join(format!("from_{i}"));
        let cmd = format!("sleep 1; echo $SLURM_CONF > {}", out.display());
        let log = work.path().join(format!("{i}.log")).display().to_string();
        ids.push(cluster.sbatch(&["-o", &log, "--wrap", &cmd]).unwrap());
    }
    for (i, cluster) in clusters.iter().enumerate() {
        assert_eq!(cluster.wait_job_done(&ids[i], WAIT), "COMPLETED");
        let seen = fs::read_to_string(work.path().join(format!("from_{i}"))).unwrap();
        assert_eq!(Path::new(seen.trim()), cluster.conf_path());
    }

    // Dropping a cluster with a running job leaves no process behind.
    let mut clusters = clusters;
    let cluster = clusters.pop().unwrap();
    let log = work.path().join("sleep.log").display().to_string();
    let id = cluster
        .sbatch(&["-o", &log, "--wrap", "sleep 300"])
        .unwrap();
    cluster.wait_job_state(&id, "RUNNING", WAIT);
    let conf = cluster.conf_path().to_path_buf();
    let dir = cluster.dir().to_path_buf();
    let before = slurm::processes_of(&conf);
    assert!(
        before.len() >= 4,
        "daemons, slurmstepd and the job: {before:?}"
    );
    let t = Instant::now();
    drop(cluster);
    eprintln!("drop with a running job: {:.2?}", t.elapsed());
    let left = slurm::processes_of(&conf);
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(!dir.exists());
    // The other cluster is still up.
    let other = &clusters[0];
    let id = other.sbatch(&["-o", &log, "--wrap", "true"]).unwrap();
    assert_eq!(other.wait_job_done(&id, WAIT), "COMPLETED");
}
