//! kill -9 at several points, then resume: the outputs must equal an
//! uninterrupted run's, bit for bit. Also lock contention.
//! The child process is this test binary itself, re-run on `child_process_entry`.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{parquet_tables, Workspace, SPEC};
use steerbench::exec::ExecError;
use steerbench::store::LockError;

const PARTS: usize = 3;

/// Entry point of the child process (does nothing when run directly).
#[test]
#[ignore]
fn child_process_entry() {
    if let Some(r) = common::child_run(PARTS) {
        r.unwrap();
    }
}

fn spawn_child(ws: &Workspace, sleep_ms: u64) -> Child {
    common::child_command(ws, sleep_ms)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn assert_no_incomplete_folder_counts(ws: &Workspace) {
    let root = ws.runs().join("demo");
    let Ok(entries) = steerbench::store::RunStore::new(&root).list() else {
        return;
    };
    for e in entries {
        if let steerbench::store::Status::Complete(m) = &e.status {
            // A complete folder holds every output its manifest lists.
            for o in &m.outputs {
                let p = e.dir.join(&o.path);
                let bytes = std::fs::read(&p).unwrap();
                assert_eq!(
                    blake3::hash(&bytes).to_hex().to_string(),
                    o.blake3,
                    "{}",
                    p.display()
                );
            }
        }
    }
}

#[test]
fn resume_after_sigkill_matches_an_uninterrupted_run() {
    let reference = Workspace::new(SPEC);
    let r = reference.run(PARTS, false).unwrap();
    let expected = parquet_tables(&r.run_dir);

    // 5 stages × 3 parts × 60 ms ≈ 0.9 s of work; kill at several points.
    let mut interrupted_mid_pipeline = 0;
    for kill_after_ms in [30u64, 200, 450, 700] {
        let ws = Workspace::new(SPEC);
        let mut child = spawn_child(&ws, 60);
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        assert_no_incomplete_folder_counts(&ws);
        let resumed = ws.run(PARTS, false).unwrap();
        assert_eq!(resumed.executed.len() + resumed.cached.len(), 5);
        if !resumed.executed.is_empty() && !resumed.cached.is_empty() {
            interrupted_mid_pipeline += 1;
        }
        let got = parquet_tables(&resumed.run_dir);
        assert_eq!(got.len(), expected.len(), "kill at {kill_after_ms} ms");
        for ((pa, a), (pb, b)) in expected.iter().zip(&got) {
            assert_eq!(pa, pb);
            assert!(
                a.equals_missing(b),
                "{pa} differs after kill at {kill_after_ms} ms"
            );
        }
        // A third run has nothing to do.
        assert!(ws.run(PARTS, false).unwrap().executed.is_empty());
    }
    // The test is only meaningful if some kill landed between the first and last stage.
    assert!(
        interrupted_mid_pipeline > 0,
        "no kill point interrupted the pipeline midway"
    );
}

#[test]
fn second_run_fails_with_the_holder_pid_or_waits() {
    let ws = Workspace::new(SPEC);
    let mut child = spawn_child(&ws, 300);
    let lock = ws.runs().join("demo/.lock");
    let start = Instant::now();
    while std::fs::read_to_string(&lock)
        .map(|s| s.trim().is_empty())
        .unwrap_or(true)
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "child never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    match ws.run(PARTS, false) {
        Err(ExecError::Lock(LockError::Held { pid, .. })) => {
            assert_eq!(pid, child.id().to_string())
        }
        other => panic!("expected a lock error, got {other:?}"),
    }
    let msg = ws.run(PARTS, false).unwrap_err().to_string();
    assert!(
        msg.contains("in use by another steerbench run") && msg.contains("--wait"),
        "{msg}"
    );
    // --wait blocks until the child is done, then finds everything cached.
    let waited = ws.run(PARTS, true).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(waited.executed.is_empty(), "{:?}", waited.executed);
}
