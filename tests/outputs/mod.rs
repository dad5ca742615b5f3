//! Reading a finished run's outputs in the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use polars::prelude::*;

/// The one finished folder of `stage` in a run directory.
pub fn stage_dir(run: &Path, stage: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(run.join(stage))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("manifest.json").exists())
        .collect();
    assert_eq!(dirs.len(), 1, "one complete folder for {stage}: {dirs:?}");
    dirs.pop().unwrap()
}

/// A string column ("" for nulls).
pub fn strings(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap_or("").to_string())
        .collect()
}

/// A numeric column as f64 (NaN for nulls).
pub fn numbers(df: &DataFrame, name: &str) -> Vec<f64> {
    let c = df.column(name).unwrap().cast(&DataType::Float64).unwrap();
    c.f64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect()
}
