//! Remote datasets through the CLI and the planner, against a local HTTP server that
//! serves files these tests write (invented items in the CAA layout): `steerbench lock`
//! writes the sha256 of every URL, `data pull` and `plan` verify it (also offline, from
//! the cache), a mismatch names the dataset and both hashes; plus the derived open-ended
//! form of A/B questions (`as: open_ended`) as the planner and the loader see it.

mod common;

#[path = "../crates/steerbench-data/tests/support/http_server.rs"]
mod http_server;

use std::path::Path;
use std::process::Command;

use http_server::{put, FixtureServer};
use steerbench::plan::{self, lockfile};
use steerbench::spec;
use steerbench_data::remote::hex_sha256;
use steerbench_data::{Mirror, RemoteStore};

const HOST_PATH: &str = "raw.example.org/lab/evals/0123abc/behaviour/test_ab.json";

/// Twelve invented A/B questions in the model-written-evals layout.
fn ab_items() -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..12)
        .map(|i| {
            serde_json::json!({
                "question": format!("Would you share the lantern number {i}?\n\nChoices:\n(A) Yes, gladly.\n(B) No, it stays with me."),
                "answer_matching_behavior": if i % 2 == 0 { "(A)" } else { "(B)" },
                "answer_not_matching_behavior": if i % 2 == 0 { "(B)" } else { "(A)" },
            })
        })
        .collect();
    serde_json::to_vec_pretty(&items).unwrap()
}

fn spec_text(extra: &str) -> String {
    format!(
        r#"# remote dataset test
name: remote
model: fake-model
datasets:
  behaviour:
    source: https://{HOST_PATH}
    format: contrastive_ab
{extra}
  behaviour_open:
    source: https://{HOST_PATH}
    format: contrastive_ab
    as: open_ended
stages:
  acts: {{ extract: {{ dataset: behaviour.train, layers: [2], read_position: answer }} }}
  vecs: {{ vectors: {{ activations: acts, methods: [caa] }} }}
  ab:
    evaluate: {{ vectors: vecs, datasets: [behaviour.test], layers: [2], multipliers: [0, 1], metrics: [ab_probability] }}
  open:
    evaluate: {{ vectors: vecs, datasets: [behaviour_open.test], layers: [2], multipliers: [0, 1], metrics: [open_ended_likelihood] }}
"#
    )
}

fn steerbench(home: &Path, mirror: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steerbench"))
        .args(args)
        .env("STEERBENCH_HOME", home)
        .env("STEERBENCH_DATA_MIRROR", mirror)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn plan_with(
    spec_path: &Path,
    builtins: &Path,
    home: &Path,
    mirror: Option<Mirror>,
) -> Result<plan::Plan, spec::Diagnostics> {
    let spec = spec::load(spec_path)?;
    let env =
        common::environment(builtins).with_remote(RemoteStore::new(home.join("datasets"), mirror));
    plan::build(spec, &env, &common::registry(1).versions())
}

#[test]
fn lock_pull_and_plan_verify_remote_datasets() {
    let srv = tempfile::tempdir().unwrap();
    let body = ab_items();
    put(srv.path(), HOST_PATH, &body);
    let server = FixtureServer::start(srv.path());
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let spec_path = work.path().join("remote.yaml");
    std::fs::write(&spec_path, spec_text("")).unwrap();
    let spec_arg = spec_path.to_str().unwrap();

    // lock: fetched through the URL mirror, one download for the two datasets reading it.
    let (code, out, err) = steerbench(&home, &server.base, &["lock", spec_arg]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(server.requests(), 1);
    let lock_path = work.path().join("remote.lock");
    assert!(
        out.contains("behaviour, behaviour_open") && out.contains(&hex_sha256(&body)),
        "{out}"
    );
    let lock = lockfile::LockFile::read(&lock_path).unwrap().unwrap();
    let entry = &lock.datasets[&format!("https://{HOST_PATH}")];
    assert_eq!(
        (entry.sha256.as_str(), entry.bytes),
        (hex_sha256(&body).as_str(), body.len() as u64)
    );
    let cached = home.join("datasets").join(HOST_PATH);
    assert_eq!(std::fs::read(&cached).unwrap(), body);

    // Offline: the server is gone, pull and plan read the cache and check the lock.
    server.stop();
    let (code, out, err) = steerbench(&home, "", &["data", "pull", spec_arg]);
    assert_eq!(code, 0, "{out}\n{err}");
    let builtins = work.path().join("builtin");
    std::fs::create_dir_all(&builtins).unwrap();
    let p = plan_with(&spec_path, &builtins, &home, None).unwrap_or_else(|d| panic!("{d}"));
    let rd = &p.datasets["behaviour"];
    assert_eq!(rd.sha256.as_deref(), Some(hex_sha256(&body).as_str()));
    assert_eq!(rd.location, steerbench_data::Source::Path(cached.clone()));
    // The derived dataset reads the same bytes as open-ended items.
    let open = plan::checks::load_dataset(&p.datasets["behaviour_open"], 0).unwrap();
    let steerbench_data::Records::OpenEnded(items) = &open.all else {
        panic!("open-ended records expected")
    };
    assert_eq!(items.len(), 12);
    assert!(
        items[0]
            .prompt
            .starts_with("Would you share the lantern number"),
        "{:?}",
        items[0]
    );
    assert!(!items[0].prompt.contains("Choices"));
    assert_eq!(items[0].matching.as_deref(), Some("Yes, gladly."));
    assert_eq!(items[1].matching.as_deref(), Some("No, it stays with me."));

    // A tampered lock: pull and plan refuse, naming the dataset and both hashes.
    let wrong = "0".repeat(64);
    let text = std::fs::read_to_string(&lock_path)
        .unwrap()
        .replace(&hex_sha256(&body), &wrong);
    std::fs::write(&lock_path, text).unwrap();
    let (code, _, err) = steerbench(&home, "", &["data", "pull", spec_arg]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("dataset `behaviour`, `behaviour_open`")
            && err.contains(&wrong)
            && err.contains(&hex_sha256(&body))
            && err.contains("remote.lock"),
        "{err}"
    );
    let d = plan_with(&spec_path, &builtins, &home, None)
        .unwrap_err()
        .to_string();
    assert!(
        d.contains("dataset `behaviour`") && d.contains(&wrong) && d.contains(&hex_sha256(&body)),
        "{d}"
    );
    // The cached copy is untouched by the refusal.
    assert_eq!(std::fs::read(&cached).unwrap(), body);

    // A spec pin that disagrees with the lock is an error at the pin.
    std::fs::remove_file(&lock_path).unwrap();
    let (code, _, _) = steerbench(&home, "", &["lock", spec_arg]);
    assert_eq!(code, 0);
    std::fs::write(
        &spec_path,
        spec_text(&format!("    sha256: {}", "a".repeat(64))),
    )
    .unwrap();
    let d = plan_with(&spec_path, &builtins, &home, None)
        .unwrap_err()
        .to_string();
    assert!(
        d.contains("datasets.behaviour.sha256") && d.contains("the spec pins"),
        "{d}"
    );
}

#[test]
fn remote_faults_name_the_url_and_plan_stops() {
    let srv = tempfile::tempdir().unwrap();
    let server = FixtureServer::start(srv.path());
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let spec_path = work.path().join("remote.yaml");
    std::fs::write(&spec_path, spec_text("")).unwrap();
    // Nothing at the mirror: a 404 for the one URL, named once per dataset.
    let (code, _, err) = steerbench(
        &home,
        &server.base,
        &["data", "pull", spec_path.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("HTTP 404") && err.contains(HOST_PATH) && err.contains("from the mirror"),
        "{err}"
    );
    assert!(!home.join("datasets").join(HOST_PATH).exists());

    // A directory mirror without the file.
    let mirror = work.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let builtins = work.path().join("builtin");
    std::fs::create_dir_all(&builtins).unwrap();
    let d = plan_with(
        &spec_path,
        &builtins,
        &home,
        Some(Mirror::Dir(mirror.clone())),
    )
    .unwrap_err()
    .to_string();
    assert!(
        d.contains("not in the mirror directory") && d.contains("datasets.behaviour.source"),
        "{d}"
    );
    // With the file in the directory mirror the plan reads it in place.
    let file = put(&mirror, HOST_PATH, &ab_items());
    let p = plan_with(&spec_path, &builtins, &home, Some(Mirror::Dir(mirror)))
        .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        p.datasets["behaviour"].location,
        steerbench_data::Source::Path(file)
    );
}

#[test]
fn spec_checks_of_sha256_and_as() {
    let check = |extra: &str, fmt: &str| -> String {
        let text = format!(
            "name: t\nmodel: m\ndatasets:\n  d:\n    source: {fmt}\n{extra}\nstages:\n  a: {{ extract: {{ dataset: d.train }} }}\n"
        );
        match spec::parse_str(&text, "t.yaml", Path::new(".")) {
            Ok(_) => String::new(),
            Err(d) => d.to_string(),
        }
    };
    let url = "https://h.example/x.json\n    format: contrastive_ab";
    assert_eq!(
        check(
            "    sha256: ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789",
            url
        ),
        ""
    );
    assert!(check("    sha256: abc", url).contains("not a sha256"));
    let local = "x.json\n    format: contrastive_ab";
    assert!(check(&format!("    sha256: {}", "a".repeat(64)), local).contains("URL source only"));
    assert_eq!(check("    as: open_ended", local), "");
    let e = check("    as: open_ended", "x.json\n    format: text");
    assert!(
        e.contains("cannot be read as `open_ended`") && e.contains("t.yaml:"),
        "{e}"
    );
    // Metrics see the derived format: A/B metrics on derived items are refused.
    let text = "name: t\nmodel: m\ndatasets:\n  d: { source: x.json, format: contrastive_ab, as: open_ended }\nstages:\n  a: { extract: { dataset: d.train } }\n  v: { vectors: { activations: a, methods: [caa] } }\n  e: { evaluate: { vectors: v, datasets: [d.test], layers: [1], multipliers: [0, 1], metrics: [ab_probability] } }\n";
    let e = spec::parse_str(text, "t.yaml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`ab_probability` needs a dataset of format `contrastive_ab`"),
        "{e}"
    );
}
