//! The lock file beside a spec: the sha256 of every remote dataset, written by
//! `steerbench lock FILE` and verified by every later plan and run.
//!
//! `pipelines/suite_caa.yaml` → `pipelines/suite_caa.lock` (a name no `*.yaml` glob
//! picks up as a spec). YAML, keyed by URL:
//!
//! ```yaml
//! version: 1
//! datasets:
//!   https://host/path/file.json:
//!     sha256: 3f…
//!     bytes: 12345
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const LOCK_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    pub version: u32,
    /// URL → what its bytes were when locked.
    pub datasets: BTreeMap<String, LockEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    /// Lower-case hex sha256.
    pub sha256: String,
    pub bytes: u64,
}

/// The lock file of the spec at `spec_file`.
pub fn lock_path(spec_file: &Path) -> PathBuf {
    spec_file.with_extension("lock")
}

impl LockFile {
    /// Reads the lock file at `path`; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<LockFile>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read the lock file {}: {e}", path.display())),
        };
        let lock: LockFile = serde_yaml_ng::from_str(&text).map_err(|e| {
            format!(
                "the lock file {} is malformed: {e}; write it again with `steerbench lock`",
                path.display()
            )
        })?;
        if lock.version != LOCK_VERSION {
            return Err(format!(
                "the lock file {} has version {}, this steerbench reads version {LOCK_VERSION}",
                path.display(),
                lock.version
            ));
        }
        for (url, e) in &lock.datasets {
            if !steerbench_data::remote::is_sha256_hex(&e.sha256) {
                return Err(format!(
                    "the lock file {}: the sha256 of {url} is not 64 hex digits",
                    path.display()
                ));
            }
        }
        Ok(Some(lock))
    }

    /// Writes the lock file atomically (temp file + rename).
    pub fn write(&self, path: &Path, spec_name: &str) -> std::io::Result<()> {
        let body = serde_yaml_ng::to_string(self).map_err(std::io::Error::other)?;
        let text = format!(
            "# Written by `steerbench lock {spec_name}`: the sha256 of every remote dataset.\n\
             # plan and run refuse bytes that differ. Commit it beside the spec.\n{body}"
        );
        let tmp = path.with_extension("lock.partial");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("suite.yaml");
        let p = lock_path(&spec);
        assert_eq!(p.file_name().unwrap(), "suite.lock");
        assert_eq!(LockFile::read(&p).unwrap(), None);
        let mut lock = LockFile {
            version: LOCK_VERSION,
            ..Default::default()
        };
        lock.datasets.insert(
            "https://h/x.json".into(),
            LockEntry {
                sha256: "a".repeat(64),
                bytes: 3,
            },
        );
        lock.write(&p, "suite.yaml").unwrap();
        assert_eq!(LockFile::read(&p).unwrap(), Some(lock));
        std::fs::write(
            &p,
            "version: 1\ndatasets:\n  u:\n    sha256: xyz\n    bytes: 1\n",
        )
        .unwrap();
        assert!(LockFile::read(&p).unwrap_err().contains("64 hex"));
        std::fs::write(&p, "version: 2\ndatasets: {}\n").unwrap();
        assert!(LockFile::read(&p).unwrap_err().contains("version 2"));
        std::fs::write(&p, "[").unwrap();
        assert!(LockFile::read(&p).unwrap_err().contains("malformed"));
    }
}
