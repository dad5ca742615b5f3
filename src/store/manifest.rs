//! `manifest.json`: what a stage folder holds and how it was made (docs/schemas.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bumped when the manifest layout changes.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub manifest_version: u32,
    pub pipeline: String,
    pub stage: String,
    pub kind: String,
    /// Full 64-hex-digit fingerprint (the folder name is its first 16 digits).
    pub fingerprint: String,
    /// Exactly what the fingerprint was computed from.
    pub fingerprint_inputs: serde_json::Value,
    pub outputs: Vec<OutputFile>,
    pub timings: Timings,
    pub provenance: Provenance,
    /// Free-form numbers a stage reports about itself (e.g. a training loss).
    #[serde(default)]
    pub summary: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputFile {
    /// Path relative to the stage folder.
    pub path: String,
    pub bytes: u64,
    pub blake3: String,
    /// Parquet files only.
    pub rows: Option<u64>,
    pub columns: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    /// Unix time (seconds) when the stage started / finished.
    pub started_unix: f64,
    pub finished_unix: f64,
    pub wall_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    pub steerbench_version: String,
    /// `git rev-parse HEAD` of the repository holding the spec, if any.
    pub git_commit: Option<String>,
    pub model_id: Option<String>,
    pub model_weight_hash: Option<String>,
    /// The dtype the model's weights were held in (`f32`, `bf16`, `f16`) for model stages;
    /// absent in manifests written before it was recorded (f32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_dtype: Option<String>,
    /// Dataset name → {source, blake3} for the datasets this stage read.
    pub datasets: BTreeMap<String, DatasetProvenance>,
    /// blake3 of the spec file.
    pub spec_hash: String,
    pub seed: u64,
    /// Threads the stage could use (results of float reductions can depend on it).
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetProvenance {
    pub source: String,
    pub blake3: String,
    /// URL sources: sha256 of the downloaded bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}
