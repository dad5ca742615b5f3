//! Regression corpus (issue 17): malformed specs, datasets, model headers and control
//! vectors, each run through the built binary, with its expected exit code and its
//! message pinned by an insta snapshot (one per case, named by the case path).
//!
//! Case files live in `tests/corpus/<category>/<name>.txt`:
//!
//! ```text
//! # case: two YAML documents in one file
//! # args: validate pipeline.yaml
//! # exit: 2
//! # needs: model            (optional: the default model must be cached, else skipped)
//! # stdout: yes             (optional: pin stdout too)
//! -- pipeline.yaml --
//! ...
//! -- blob.gguf:hex --       (hex digits; whitespace and `;` comments ignored)
//! -- big.jsonl:repeat 1000 -- (the body is written 1000 times)
//! -- dir/ --                (an empty directory)
//! ```
//!
//! Inside a body, `{{repeat N:TEXT}}` expands to TEXT written N times (no newline in TEXT).
//!
//! `CORPUS_REPORT_ONLY=1` lists the cases whose exit code differs from the expected one,
//! and panics/aborts, without failing. `CORPUS_FILTER=substr` runs only matching cases.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HANG_GUARD: Duration = Duration::from_secs(60);
/// A case whose stdout or stderr grows beyond this is killed and fails (output flood).
const FLOOD_GUARD: u64 = 8 << 20;
/// At most this much of stdout/stderr is pinned in a snapshot.
const PIN_BYTES: usize = 16 << 10;

struct Case {
    #[allow(dead_code)]
    rel: String,
    title: String,
    args: Vec<String>,
    exit: i32,
    needs_model: bool,
    pin_stdout: bool,
    files: Vec<(String, Vec<u8>)>,
}

fn expand_repeats(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some(i) = rest.find("{{repeat ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 9..];
        let end = after.find("}}").expect("unterminated {{repeat");
        let inner = &after[..end];
        let (n, text) = inner.split_once(':').expect("{{repeat N:TEXT}}");
        let n: usize = n.trim().parse().expect("repeat count");
        out.push_str(&text.repeat(n));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn parse_hex(body: &str) -> Vec<u8> {
    let mut digits = String::new();
    for line in body.lines() {
        let line = line.split(';').next().unwrap();
        digits.extend(line.chars().filter(|c| c.is_ascii_hexdigit()));
    }
    assert!(digits.len() % 2 == 0, "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

fn parse_case(rel: &str, text: &str) -> Case {
    let mut title = String::new();
    let mut args = Vec::new();
    let mut exit = None;
    let mut needs_model = false;
    let mut pin_stdout = false;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut current: Option<(String, String, String)> = None; // name, modifier, body
    let flush = |cur: Option<(String, String, String)>, files: &mut Vec<(String, Vec<u8>)>| {
        if let Some((name, modifier, body)) = cur {
            let bytes = if modifier == "hex" {
                parse_hex(&expand_repeats(&body))
            } else if let Some(n) = modifier.strip_prefix("repeat ") {
                expand_repeats(&body)
                    .repeat(n.trim().parse().expect("repeat count"))
                    .into_bytes()
            } else {
                expand_repeats(&body).into_bytes()
            };
            files.push((name, bytes));
        }
    };
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end_matches(['\n', '\r']);
        if trimmed.starts_with("-- ") && trimmed.ends_with(" --") && trimmed.len() > 6 {
            flush(current.take(), &mut files);
            let spec = &trimmed[3..trimmed.len() - 3];
            let (name, modifier) = match spec.split_once(':') {
                Some((n, m)) => (n.to_string(), m.to_string()),
                None => (spec.to_string(), String::new()),
            };
            current = Some((name, modifier, String::new()));
            continue;
        }
        if let Some((_, _, body)) = current.as_mut() {
            body.push_str(line);
            continue;
        }
        if let Some(v) = trimmed.strip_prefix("# case:") {
            title = v.trim().to_string();
        } else if let Some(v) = trimmed.strip_prefix("# args:") {
            args = v.split_whitespace().map(str::to_string).collect();
        } else if let Some(v) = trimmed.strip_prefix("# exit:") {
            exit = Some(v.trim().parse().expect("exit code"));
        } else if let Some(v) = trimmed.strip_prefix("# needs:") {
            needs_model = v.trim() == "model";
        } else if let Some(v) = trimmed.strip_prefix("# stdout:") {
            pin_stdout = v.trim() == "yes";
        }
    }
    flush(current.take(), &mut files);
    assert!(!args.is_empty(), "{rel}: no `# args:`");
    Case {
        rel: rel.to_string(),
        title,
        args,
        exit: exit.unwrap_or_else(|| panic!("{rel}: no `# exit:`")),
        needs_model,
        pin_stdout,
        files,
    }
}

fn collect(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, root, out);
        } else if p.extension().is_some_and(|e| e == "txt") {
            out.push(p);
        }
    }
}

fn model_available() -> bool {
    let home = std::env::var_os("STEERBENCH_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/steerbench")));
    home.is_some_and(|h| h.join("models/smollm2-135m-instruct").exists())
}

struct Outcome {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    secs: f64,
    hung: bool,
    flooded: Option<u64>,
}

fn read_capped(path: &Path) -> String {
    use std::io::Read;
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .unwrap()
        .take(PIN_BYTES as u64)
        .read_to_end(&mut buf)
        .unwrap();
    let mut s = String::from_utf8_lossy(&buf).into_owned();
    if len > PIN_BYTES as u64 {
        s.push_str(&format!(
            "\n[... {} more bytes not pinned]\n",
            len - PIN_BYTES as u64
        ));
    }
    s
}

fn run_case(case: &Case, dir: &Path) -> Outcome {
    for (name, bytes) in &case.files {
        let path = dir.join(name);
        if name.ends_with('/') {
            std::fs::create_dir_all(&path).unwrap();
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
    }
    let start = Instant::now();
    let out_path = dir.join(".stdout");
    let err_path = dir.join(".stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args(&case.args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let mut hung = false;
    let mut flooded = None;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let big = size(&out_path).max(size(&err_path));
        if big > FLOOD_GUARD {
            let _ = child.kill();
            flooded = Some(big);
            break child.wait().unwrap();
        }
        if start.elapsed() > HANG_GUARD {
            let _ = child.kill();
            hung = true;
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = start.elapsed().as_secs_f64();
    #[cfg(unix)]
    let signal = {
        use std::os::unix::process::ExitStatusExt;
        status.signal()
    };
    #[cfg(not(unix))]
    let signal = None;
    Outcome {
        code: status.code(),
        signal,
        stdout: read_capped(&out_path),
        stderr: read_capped(&err_path),
        secs,
        hung,
        flooded,
    }
}

fn normalise(s: &str, dir: &Path) -> String {
    // Control characters (a NUL from a spec, terminal escapes) are shown escaped.
    let mut s: String = s
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    for d in [dir.to_path_buf(), dir.canonicalize().unwrap_or_default()] {
        let d = d.display().to_string();
        if !d.is_empty() {
            s = s.replace(&d, "[TMP]");
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        let h = PathBuf::from(home).display().to_string();
        if h.len() > 1 {
            s = s.replace(&h, "[HOME]");
        }
    }
    // Timings vary from run to run.
    let re_time = |s: &str| -> String {
        let mut out = String::new();
        let mut chars = s.char_indices().peekable();
        let bytes = s.as_bytes();
        let mut last = 0;
        while let Some((i, c)) = chars.next() {
            if c.is_ascii_digit() && (i == 0 || !(bytes[i - 1] as char).is_ascii_alphanumeric()) {
                let mut j = i;
                while j < s.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.') {
                    j += 1;
                }
                let unit = &s[j..];
                let is_time = ["ms", "s ", "s)", "s\n", "s,"]
                    .iter()
                    .any(|u| unit.starts_with(u))
                    && s[i..j].contains('.');
                if is_time {
                    out.push_str(&s[last..i]);
                    out.push_str("[T]");
                    last = j;
                }
                while chars.peek().is_some_and(|(k, _)| *k < j) {
                    chars.next();
                }
            }
        }
        out.push_str(&s[last..]);
        out
    };
    re_time(&s)
}

#[test]
fn corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut paths = Vec::new();
    collect(&root, &root, &mut paths);
    let report_only = std::env::var("CORPUS_REPORT_ONLY").is_ok_and(|v| v == "1");
    let filter = std::env::var("CORPUS_FILTER").ok();
    let have_model = model_available();
    let mut per_category: std::collections::BTreeMap<String, usize> = Default::default();
    let (mut ran, mut skipped, mut panics, mut aborts, mut hangs, mut floods) = (0, 0, 0, 0, 0, 0);
    let mut unreviewed = 0;
    let mut max_secs = (0.0f64, String::new());
    let mut mismatches = Vec::new();
    let mut failures = Vec::new();
    let total_start = Instant::now();
    for path in &paths {
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        if filter.as_deref().is_some_and(|f| !rel.contains(f)) {
            continue;
        }
        let case = parse_case(&rel, &std::fs::read_to_string(path).unwrap());
        let category = rel.split('/').next().unwrap().to_string();
        *per_category.entry(category).or_default() += 1;
        if case.needs_model && !have_model {
            eprintln!("skipped {rel}: the default model smollm2-135m-instruct is not cached (run `steerbench models pull smollm2-135m-instruct`)");
            skipped += 1;
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let o = run_case(&case, dir.path());
        ran += 1;
        if o.secs > max_secs.0 {
            max_secs = (o.secs, rel.clone());
        }
        let stderr = normalise(&o.stderr, dir.path());
        let stdout = normalise(&o.stdout, dir.path());
        let panicked = stderr.contains("panicked") || o.code == Some(101);
        if panicked {
            panics += 1;
            failures.push(format!("{rel}: PANIC: {}", first_line(&stderr)));
        }
        if let Some(n) = o.flooded {
            floods += 1;
            failures.push(format!(
                "{rel}: FLOOD: killed after writing {n} bytes of output"
            ));
        } else if o.hung {
            hangs += 1;
            failures.push(format!(
                "{rel}: HANG: killed after {}s",
                HANG_GUARD.as_secs()
            ));
        } else if let Some(sig) = o.signal {
            aborts += 1;
            failures.push(format!("{rel}: ABORT: killed by signal {sig}"));
        }
        let code_str = match (o.code, o.signal) {
            _ if o.flooded.is_some() => "killed (output flood)".to_string(),
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => format!("signal {s}"),
            _ => "?".into(),
        };
        if o.code != Some(case.exit) {
            mismatches.push(format!(
                "{rel}: expected {} got {code_str}: {}",
                case.exit,
                first_line(if stderr.trim().is_empty() {
                    &stdout
                } else {
                    &stderr
                })
            ));
        }
        let mut snap = format!(
            "case: {}\nargs: {}\nexit: {code_str}\n--- stderr\n{stderr}",
            case.title,
            case.args.join(" ")
        );
        if case.pin_stdout {
            snap.push_str(&format!("--- stdout\n{stdout}"));
        }
        let name = format!(
            "corpus__{}",
            rel.trim_end_matches(".txt").replace(['/', '.'], "__")
        );
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/corpus"),
        );
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        let snap_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/corpus");
        let accepted = snap_dir.join(format!("{name}.snap")).exists();
        settings.bind(|| {
            let r = std::panic::catch_unwind(|| insta::assert_snapshot!(name.as_str(), snap));
            if r.is_err() {
                if accepted {
                    failures.push(format!(
                        "{rel}: snapshot differs (review with `cargo insta review`)"
                    ));
                } else {
                    unreviewed += 1;
                }
            }
        });
    }
    let mut summary = String::new();
    macro_rules! summary_line {
        ($($t:tt)*) => {{
            let line = format!($($t)*);
            eprintln!("{line}");
            summary.push_str(&line);
            summary.push('\n');
        }};
    }
    summary_line!("\n=== corpus summary ===");
    summary_line!("cases: {} ({ran} run, {skipped} skipped)", ran + skipped);
    for (cat, n) in &per_category {
        summary_line!("  {cat}: {n}");
    }
    summary_line!("panics: {panics}, aborts: {aborts}, hangs: {hangs}, output floods: {floods}");
    summary_line!("max seconds per case: {:.2} ({})", max_secs.0, max_secs.1);
    summary_line!("total seconds: {:.1}", total_start.elapsed().as_secs_f64());
    summary_line!("new snapshots not yet accepted (.snap.new; `cargo insta review`): {unreviewed}");
    summary_line!("exit-code mismatches: {}", mismatches.len());
    for m in &mismatches {
        summary_line!("  MISMATCH {m}");
    }
    for f in &failures {
        summary_line!("  FAIL {f}");
    }
    // Also kept on disk: the test harness captures stderr of a passing test.
    let _ = std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("corpus-summary.txt"),
        &summary,
    );
    if !report_only {
        let hard: Vec<_> = mismatches.iter().chain(failures.iter()).collect();
        assert!(
            hard.is_empty(),
            "{} corpus failures (see above)",
            hard.len()
        );
        assert!(
            unreviewed == 0,
            "{unreviewed} corpus snapshots are new: review them with `cargo insta review`"
        );
    }
}

fn first_line(s: &str) -> String {
    let l = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    l.chars().take(200).collect()
}
