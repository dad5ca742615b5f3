//! The dataset cache against a local HTTP server serving files the tests write: download,
//! reuse with the server stopped, pins, mirrors (directory and URL), and faults (404,
//! truncated body, HTML instead of JSON, redirect) that must leave nothing in the cache.

#[path = "support/http_server.rs"]
mod http_server;

use std::path::Path;

use http_server::{put, FixtureServer};
use steerbench_data::remote::hex_sha256;
use steerbench_data::{Mirror, Origin, Pin, RemoteStore};

const AB: &[u8] = br#"[{"question": "Pick one.\n\nChoices:\n (A) yes\n (B) no", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}]"#;

/// Every file under `dir` (recursively), as paths relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn downloads_once_then_reads_the_cache_offline() {
    let srv_root = tempfile::tempdir().unwrap();
    put(srv_root.path(), "org/repo/abc123/data/x.json", AB);
    let server = FixtureServer::start(srv_root.path());
    let url = format!("{}/org/repo/abc123/data/x.json", server.base);
    let cache = tempfile::tempdir().unwrap();
    let store = RemoteStore::new(cache.path(), None);

    let first = store.fetch(&url, None).unwrap();
    assert!(matches!(first.origin, Origin::Downloaded(_)));
    assert_eq!(first.sha256, hex_sha256(AB));
    assert_eq!(std::fs::read(&first.path).unwrap(), AB);
    assert_eq!(first.path, store.cache_path(&url).unwrap());
    assert_eq!(server.requests(), 1);

    server.stop();
    let pin = Pin {
        sha256: hex_sha256(AB),
        origin: "test.lock".into(),
    };
    let again = store.fetch(&url, Some(&pin)).unwrap();
    assert_eq!(again.origin, Origin::Cache);
    assert_eq!(again.path, first.path);
    // Only the file itself, no temporaries.
    assert_eq!(files(cache.path()).len(), 1, "{:?}", files(cache.path()));
}

#[test]
fn a_pin_mismatch_names_both_hashes_and_caches_nothing() {
    let srv_root = tempfile::tempdir().unwrap();
    put(srv_root.path(), "d/x.json", AB);
    let server = FixtureServer::start(srv_root.path());
    let url = format!("{}/d/x.json", server.base);
    let cache = tempfile::tempdir().unwrap();
    let store = RemoteStore::new(cache.path(), None);
    let pin = Pin {
        sha256: "ab".repeat(32),
        origin: "the lock file suite.lock".into(),
    };
    let e = store.fetch(&url, Some(&pin)).unwrap_err().to_string();
    assert!(
        e.contains(&url)
            && e.contains(&"ab".repeat(32))
            && e.contains(&hex_sha256(AB))
            && e.contains("suite.lock"),
        "{e}"
    );
    assert!(files(cache.path()).is_empty(), "{:?}", files(cache.path()));

    // A cached copy that fails the pin is fetched again (and fails again here).
    store.fetch(&url, None).unwrap();
    let e = store.fetch(&url, Some(&pin)).unwrap_err().to_string();
    assert!(e.contains("suite.lock"), "{e}");
    assert_eq!(server.requests(), 3);
}

#[test]
fn faults_are_clear_and_leave_nothing_in_the_cache() {
    let srv_root = tempfile::tempdir().unwrap();
    put(srv_root.path(), "d/x.json", AB);
    let server = FixtureServer::start(srv_root.path());
    let cache = tempfile::tempdir().unwrap();
    let store = RemoteStore::new(cache.path(), None);
    let cases = [
        ("d/missing.json", "HTTP 404"),
        ("__truncate/d/x.json", "truncated"),
        ("__html/d/x.json", "not JSON"),
    ];
    for (path, needle) in cases {
        let url = format!("{}/{path}", server.base);
        let e = store.fetch(&url, None).unwrap_err().to_string();
        assert!(e.contains(&url) && e.contains(needle), "{path}: {e}");
    }
    let e = store
        .fetch(&format!("{}/__html/d/x.json", server.base), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("<!DOCTYPE html>") && e.contains("nothing was cached"),
        "{e}"
    );
    assert!(files(cache.path()).is_empty(), "{:?}", files(cache.path()));

    // A redirect is followed; the bytes are cached under the URL asked for.
    let url = format!("{}/__redirect/d/x.json", server.base);
    let got = store.fetch(&url, None).unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), AB);
    assert_eq!(got.path, store.cache_path(&url).unwrap());

    // Nothing listening at all.
    drop(server);
    let e = store.fetch("http://127.0.0.1:9/x.json", None).unwrap_err();
    assert!(e.to_string().contains("download failed"), "{e}");
}

#[test]
fn a_url_mirror_serves_host_and_path() {
    let mirror_root = tempfile::tempdir().unwrap();
    put(
        mirror_root.path(),
        "raw.example.org/org/repo/abc123/data/x.json",
        AB,
    );
    let server = FixtureServer::start(mirror_root.path());
    let cache = tempfile::tempdir().unwrap();
    let store = RemoteStore::new(
        cache.path(),
        Some(Mirror::parse(&format!("{}/", server.base)).unwrap()),
    );
    let url = "https://raw.example.org/org/repo/abc123/data/x.json";
    let got = store.fetch(url, None).unwrap();
    assert_eq!(
        got.origin,
        Origin::Downloaded(format!(
            "{}/raw.example.org/org/repo/abc123/data/x.json",
            server.base
        ))
    );
    assert_eq!(
        got.path,
        cache
            .path()
            .join("raw.example.org/org/repo/abc123/data/x.json")
    );
    let e = store
        .fetch("https://raw.example.org/org/repo/abc123/data/y.json", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("404") && e.contains("from the mirror"), "{e}");
}

#[test]
fn a_directory_mirror_is_read_in_place() {
    let mirror = tempfile::tempdir().unwrap();
    let file = put(mirror.path(), "raw.example.org/o/r/c/x.json", AB);
    let cache = tempfile::tempdir().unwrap();
    let store = RemoteStore::new(
        cache.path(),
        Mirror::parse(&mirror.path().display().to_string()),
    );
    let got = store
        .fetch("https://raw.example.org/o/r/c/x.json", None)
        .unwrap();
    assert_eq!((got.path, got.origin), (file, Origin::MirrorDir));
    assert!(files(cache.path()).is_empty());
}
