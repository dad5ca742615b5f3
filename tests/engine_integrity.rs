//! Integrity of the run store (issue 17): damaged stage folders are detected (size on every
//! cache decision, blake3 by `verify`) and re-run; `report`'s default output stays out of
//! the stage namespace; readers during a run; read-only run directories; a full disk.
//! Child processes are this test binary, re-run on `child_process_entry`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{parquet_tables, Workspace, SPEC};
use steerbench::cli::{render_ls, render_plan, render_verify};
use steerbench::store::{Cached, RunStore, Status};

const PARTS: usize = 3;

/// Entry point of the child process (does nothing when run directly). Prints the error
/// as the CLI does and exits 1, so tests can check the message and that nothing panicked.
#[test]
#[ignore]
fn child_process_entry() {
    if let Some(Err(e)) = common::child_run(PARTS) {
        eprintln!("error: {}", steerbench::exec::error_chain(&e));
        std::process::exit(1);
    }
}

/// The child, optionally through `sh` with a file-size limit (512-byte blocks) and SIGXFSZ
/// ignored (inherited across exec), so an oversized write fails with EFBIG like a full disk.
fn child(ws: &Workspace, sleep_ms: u64, fsize_blocks: Option<u64>) -> Command {
    let direct = common::child_command(ws, sleep_ms);
    match fsize_blocks {
        Some(n) => wrap(
            "sh",
            &[
                "-c",
                &format!("trap '' XFSZ; ulimit -f {n}; exec \"$0\" \"$@\""),
            ],
            &direct,
        ),
        None => direct,
    }
}

/// `inner` (program, arguments, environment) run through `program args…`.
fn wrap(program: &str, args: &[&str], inner: &Command) -> Command {
    let mut c = Command::new(program);
    c.args(args).arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c
}

fn root(ws: &Workspace) -> PathBuf {
    ws.runs().join("demo")
}

/// relative path → blake3 of every file under `dir` (except the lock).
fn hashes(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.file_name().unwrap() != ".lock" {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().to_string();
                out.insert(
                    rel,
                    blake3::hash(&std::fs::read(&p).unwrap())
                        .to_hex()
                        .to_string(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn stage_dir(ws: &Workspace, stage: &str) -> PathBuf {
    let plan = ws.plan(PARTS);
    let st = plan.stages.iter().find(|s| s.name == stage).unwrap();
    root(ws).join(stage).join(st.short_fingerprint())
}

fn assert_same_tables(a: &Path, b: &Path) {
    let (x, y) = (parquet_tables(a), parquet_tables(b));
    assert_eq!(x.len(), y.len());
    for ((pa, da), (pb, db)) in x.iter().zip(&y) {
        assert_eq!(pa, pb);
        assert!(da.equals_missing(db), "{pa} differs");
    }
}

#[test]
fn truncated_output_is_damaged_listed_planned_and_rerun_alone() {
    let reference = Workspace::new(SPEC);
    reference.run(PARTS, false).unwrap();

    let ws = Workspace::new(SPEC);
    ws.run(PARTS, false).unwrap();
    let vecs = stage_dir(&ws, "vecs");
    let victim = vecs.join("part1.parquet");
    let len = std::fs::metadata(&victim).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let others_before: BTreeMap<_, _> = hashes(&root(&ws))
        .into_iter()
        .filter(|(k, _)| !k.starts_with("vecs/"))
        .collect();

    // ls: damaged, naming the file and both sizes.
    let ls = render_ls(&root(&ws)).unwrap();
    let line = ls.lines().find(|l| l.starts_with("vecs")).unwrap();
    assert!(line.contains("damaged: part1.parquet"), "{ls}");
    assert!(
        line.contains(&format!("size {}, manifest says {len}", len / 2)),
        "{ls}"
    );
    assert!(
        !ls.lines()
            .any(|l| l.starts_with("vecs") && l.contains("complete")),
        "{ls}"
    );

    // plan: damaged -> will re-run; the others cached.
    let plan = render_plan(&ws.plan(PARTS), &ws.runs());
    let line = plan.lines().find(|l| l.starts_with("vecs")).unwrap();
    assert!(
        line.contains("damaged (part1.parquet: size") && line.contains("will re-run"),
        "{plan}"
    );
    assert!(plan.contains("5 stage(s), 1 to run"), "{plan}");
    assert!(matches!(
        RunStore::new(root(&ws)).cached("vecs", vecs.file_name().unwrap().to_str().unwrap()),
        Cached::Damaged(..)
    ));

    // run: exactly the damaged stage runs again; dependents stay cached.
    let r = ws.run(PARTS, false).unwrap();
    assert_eq!(r.executed, vec!["vecs".to_string()]);
    assert_eq!(r.repaired, vec!["vecs".to_string()]);
    assert_eq!(r.cached.len(), 4);
    assert_same_tables(&root(&reference), &root(&ws));
    // The other stages' files were not touched; no leftovers.
    let others_after: BTreeMap<_, _> = hashes(&root(&ws))
        .into_iter()
        .filter(|(k, _)| !k.starts_with("vecs/"))
        .collect();
    assert_eq!(others_before, others_after);
    let (s, ok) = render_verify(&root(&ws)).unwrap();
    assert!(ok, "{s}");
    assert!(!std::fs::read_dir(root(&ws))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(".old-")));
    assert!(ws.run(PARTS, false).unwrap().executed.is_empty());
}

#[test]
fn missing_output_is_damaged_and_rerun_message_names_it() {
    let ws = Workspace::new(SPEC);
    ws.run(PARTS, false).unwrap();
    std::fs::remove_file(stage_dir(&ws, "effect").join("part0.parquet")).unwrap();
    let ls = render_ls(&root(&ws)).unwrap();
    assert!(ls.contains("damaged: part0.parquet: missing"), "{ls}");
    // The CLI's path (a child process): one line on stderr names stage and file.
    let out = child(&ws, 0, None).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<_> = stderr.lines().filter(|l| l.contains("damaged")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("stage `effect` is damaged (part0.parquet: missing)")
            && lines[0].contains("running it again"),
        "{stderr}"
    );
    let r = ws.run(PARTS, false).unwrap();
    assert!(r.executed.is_empty() && r.cached.len() == 5);
    let (s, ok) = render_verify(&root(&ws)).unwrap();
    assert!(ok, "{s}");
}

#[test]
fn verify_catches_a_flipped_byte_that_the_size_check_does_not() {
    let ws = Workspace::new(SPEC);
    ws.run(PARTS, false).unwrap();
    let (s, ok) = render_verify(&root(&ws)).unwrap();
    assert!(ok, "{s}");
    assert_eq!(s.lines().count(), 5, "{s}");
    assert!(s.lines().all(|l| l.contains(": ok (")), "{s}");

    let victim = stage_dir(&ws, "acts").join("part2.parquet");
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();

    // Same size: the cheap check (ls, plan, run) still calls it complete ...
    let ls = render_ls(&root(&ws)).unwrap();
    assert!(!ls.contains("damaged"), "{ls}");
    // ... verify does not.
    let (s, ok) = render_verify(&root(&ws)).unwrap();
    assert!(!ok);
    let line = s.lines().find(|l| l.starts_with("acts")).unwrap();
    assert!(line.contains("damaged: part2.parquet: blake3"), "{s}");
    assert_eq!(s.lines().filter(|l| l.contains(": ok (")).count(), 4, "{s}");

    // Incomplete and interrupted folders are listed, and are not damage.
    std::fs::write(&victim, {
        bytes[mid] ^= 0xff;
        &bytes
    })
    .unwrap();
    std::fs::create_dir_all(root(&ws).join("acts/0123456789abcdef")).unwrap();
    std::fs::create_dir_all(root(&ws).join(".tmp-vecs-0123456789abcdef")).unwrap();
    let (s, ok) = render_verify(&root(&ws)).unwrap();
    assert!(ok, "{s}");
    assert!(s.contains("acts 0123456789abcdef: incomplete"), "{s}");
    assert!(s.contains("vecs-0123456789abcdef -: interrupted"), "{s}");
}

#[test]
fn rendered_report_folder_is_not_a_stage() {
    // `steerbench report RUN_DIR` writes into RUN_DIR/.report/<stage>/ (rendering needs real
    // stage tables, which the test doubles do not write; the folder is made by hand here).
    let ws = Workspace::new(SPEC);
    ws.run(PARTS, false).unwrap();
    let out = root(&ws)
        .join(steerbench::store::RENDERED_REPORTS)
        .join("report");
    std::fs::create_dir_all(out.join("plots")).unwrap();
    std::fs::write(out.join("report.md"), "# r\n").unwrap();
    assert!(steerbench::spec::check_name(steerbench::store::RENDERED_REPORTS).is_err());
    let ls = render_ls(&root(&ws)).unwrap();
    assert!(!ls.contains("incomplete"), "{ls}");
    assert!(!ls.contains(".report"), "{ls}");
    let entries = RunStore::new(root(&ws)).list().unwrap();
    assert!(entries
        .iter()
        .all(|e| matches!(e.status, Status::Complete(_))));
    let (s, ok) = render_verify(&root(&ws)).unwrap();
    assert!(ok && s.lines().count() == 5, "{s}");
}

#[test]
fn ls_and_verify_during_a_run_work_and_do_not_disturb_it() {
    let reference = Workspace::new(SPEC);
    reference.run(PARTS, false).unwrap();

    let ws = Workspace::new(SPEC);
    let mut c = child(&ws, 60, None)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut reads = 0;
    loop {
        if let Some(status) = c.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "child hangs");
        if root(&ws).is_dir() {
            // Readers take no lock; a complete folder seen mid-run is whole.
            render_ls(&root(&ws)).unwrap();
            let (s, ok) = render_verify(&root(&ws)).unwrap();
            assert!(ok, "{s}");
            reads += 1;
        }
        std::thread::sleep(Duration::from_millis(15));
    }
    assert!(reads > 5, "only {reads} reads during the run");
    assert_same_tables(&root(&reference), &root(&ws));
    let (s, ok) = render_verify(&root(&ws)).unwrap();
    assert!(ok && s.lines().count() == 5, "{s}");
}

fn can_write_in_readonly_dir(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    let r = std::fs::write(&probe, b"x").is_ok();
    let _ = std::fs::remove_file(&probe);
    r
}

#[test]
fn read_only_run_directory_names_the_path_and_keeps_results() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new(SPEC);
    ws.run(PARTS, false).unwrap();
    let before = hashes(&root(&ws));
    // A changed spec makes `effect` and its dependents run again.
    ws.write_spec(&SPEC.replace("multipliers: [-1, 0, 1]", "multipliers: [-2, 0, 2]"));
    let set =
        |mode| std::fs::set_permissions(root(&ws), std::fs::Permissions::from_mode(mode)).unwrap();
    set(0o555);
    let msg = if !can_write_in_readonly_dir(&root(&ws)) {
        // Permissions are enforced for this user: run in this process.
        let err = ws.run(PARTS, false).unwrap_err();
        steerbench::exec::error_chain(&err)
    } else {
        // Root ignores permissions: run the child as `nobody` (setpriv, util-linux), with
        // the workspace readable by it.
        let status = Command::new("setpriv").arg("--version").output();
        if !status.map(|o| o.status.success()).unwrap_or(false) {
            set(0o755);
            eprintln!("skipped: running as root and `setpriv` is missing, so permissions cannot be enforced");
            return;
        }
        std::fs::set_permissions(ws.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = wrap(
            "setpriv",
            &["--reuid=65534", "--regid=65534", "--clear-groups"],
            &child(&ws, 0, None),
        )
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_else(|| panic!("no error line: {stderr}"))
            .to_string()
    };
    set(0o755);
    assert!(msg.contains(&root(&ws).display().to_string()), "{msg}");
    assert!(msg.contains("ermission denied"), "{msg}");
    assert_eq!(msg.matches("os error 13").count(), 1, "{msg}");
    assert_eq!(before, hashes(&root(&ws)));
}

#[test]
fn full_disk_names_the_file_fails_cleanly_and_keeps_earlier_stages() {
    let ws = Workspace::new(SPEC);
    ws.run(PARTS, false).unwrap();
    let before = hashes(&root(&ws));
    ws.write_spec(&SPEC.replace("multipliers: [-1, 0, 1]", "multipliers: [-2, 0, 2]"));
    // 1 block of 512 bytes: the lock file's pid fits, a Parquet part does not.
    let out = child(&ws, 0, Some(1)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(line.contains("stage `effect` failed"), "{line}");
    assert!(
        line.contains(".tmp-effect-") && line.contains(".parquet"),
        "{line}"
    );
    assert!(line.contains("os error 27"), "{line}");
    assert_eq!(line.matches("os error 27").count(), 1, "{line}");
    // Earlier stages unchanged, nothing half-written counts as complete.
    let after = hashes(&root(&ws));
    assert_eq!(before, after);
    let (s, ok) = render_verify(&root(&ws)).unwrap();
    assert!(ok, "{s}");
    assert_eq!(s.lines().filter(|l| l.contains(": ok (")).count(), 5, "{s}");
    // With room again, the run finishes.
    let r = ws.run(PARTS, false).unwrap();
    assert_eq!(r.executed.len(), 3);
}

#[test]
fn verify_command_exit_codes() {
    let ws = Workspace::new(SPEC);
    ws.run(PARTS, false).unwrap();
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_steerbench"))
            .arg("verify")
            .arg(root(&ws))
            .output()
            .unwrap()
    };
    let out = verify();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);
    let victim = stage_dir(&ws, "damage").join("part0.parquet");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&victim, &bytes).unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("damaged: part0.parquet: blake3"),
        "{stdout}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .arg("verify")
        .arg(ws.dir.path().join("no-such-run"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-run") && stderr.matches("os error 2").count() == 1,
        "{stderr}"
    );
}
