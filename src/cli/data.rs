//! `steerbench data pull FILE` and `steerbench lock FILE`: fetch a pipeline's remote
//! datasets into the cache ahead of a run, and pin their sha256 in a lock file.
//! Both go through the planning environment, so they fetch, cache and check exactly as
//! `plan` and `run` do.

use std::collections::BTreeMap;
use std::path::Path;

use crate::plan::lockfile::{lock_path, LockEntry, LockFile, LOCK_VERSION};
use crate::plan::{self, Environment};
use crate::spec::{self, Diagnostics, Source, Spec};

/// One remote dataset, fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The datasets of the spec reading this URL.
    pub datasets: Vec<String>,
    pub url: String,
    pub sha256: String,
    pub bytes: u64,
    /// The local file the run reads.
    pub path: String,
}

/// Why a pull did not complete.
#[derive(Debug)]
pub enum PullError {
    /// The spec (or its lock file) is invalid: exit code 2.
    Spec(Diagnostics),
    /// Some URLs could not be fetched or failed their pin: one message each.
    Fetch(Vec<String>),
}

/// Fetches every remote dataset of the spec at `file`. With `use_lock`, the lock file's
/// pins are checked too (`data pull`); without, only the spec's own (`lock`, which
/// rewrites the lock file).
pub fn pull(file: &Path, env: &dyn Environment, use_lock: bool) -> Result<Vec<Pulled>, PullError> {
    let spec = spec::load(file).map_err(PullError::Spec)?;
    let lock = if use_lock {
        let path = lock_path(file);
        LockFile::read(&path)
            .map_err(|e| {
                PullError::Spec(Diagnostics(vec![
                    spec.diagnostic(spec::FieldPath::root(), e)
                ]))
            })?
            .map(|l| (path, l))
    } else {
        None
    };
    let mut by_url: BTreeMap<String, Vec<&spec::Dataset>> = BTreeMap::new();
    for d in &spec.datasets {
        if let Source::Url(u) = &d.spec.source {
            by_url.entry(u.clone()).or_default().push(d);
        }
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (url, readers) in by_url {
        let names: Vec<String> = readers.iter().map(|d| d.name.clone()).collect();
        match fetch_one(&spec, env, &readers, lock.as_ref()) {
            Ok((sha256, path)) => {
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                out.push(Pulled {
                    datasets: names,
                    url,
                    sha256,
                    bytes,
                    path,
                });
            }
            Err(e) => errors.push(format!("dataset `{}`: {e}", names.join("`, `"))),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(PullError::Fetch(errors))
    }
}

fn fetch_one(
    spec: &Spec,
    env: &dyn Environment,
    readers: &[&spec::Dataset],
    lock: Option<&(std::path::PathBuf, LockFile)>,
) -> Result<(String, String), String> {
    // Every reader's pin must agree; the first one that pins decides what is fetched.
    let mut pin = None;
    for d in readers {
        if let Some(p) = plan::dataset_pin(d, lock)? {
            if pin
                .as_ref()
                .is_some_and(|q: &steerbench_data::Pin| q.sha256 != p.sha256)
            {
                return Err(format!(
                    "datasets reading the same URL pin different sha256 ({} and {})",
                    pin.as_ref().map(|q| q.sha256.as_str()).unwrap_or_default(),
                    p.sha256
                ));
            }
            pin = Some(p);
        }
    }
    let found = env
        .dataset(&readers[0].spec.source, &spec.base_dir, pin.as_ref())
        .map_err(|e| e.to_string())?;
    let sha256 = found
        .sha256
        .ok_or("the environment returned no sha256 for a URL")?;
    Ok((sha256, found.location.to_string()))
}

/// Writes the lock file of the spec at `file` from `pulled`; returns its path.
pub fn write_lock(file: &Path, pulled: &[Pulled]) -> std::io::Result<std::path::PathBuf> {
    let lock = LockFile {
        version: LOCK_VERSION,
        datasets: pulled
            .iter()
            .map(|p| {
                (
                    p.url.clone(),
                    LockEntry {
                        sha256: p.sha256.clone(),
                        bytes: p.bytes,
                    },
                )
            })
            .collect(),
    };
    let path = lock_path(file);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    lock.write(&path, &name)?;
    Ok(path)
}

/// The table `data pull` and `lock` print.
pub fn render(pulled: &[Pulled]) -> String {
    let rows: Vec<[String; 4]> = pulled
        .iter()
        .map(|p| {
            [
                p.datasets.join(", "),
                p.url.clone(),
                p.sha256.clone(),
                super::human_bytes(p.bytes),
            ]
        })
        .collect();
    super::table(&["dataset", "url", "sha256", "size"], &rows)
}
