//! The report's inputs: the stage folders it was given, their lineage (for
//! provenance), and their typed tables.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::store::{Manifest, RunStore};
use crate::tables::{
    read_table, AggregateRow, ControlRow, GenerationRow, ScoreRow, SelectionRow, SettingRow,
};

/// A committed stage folder and its manifest.
pub struct Folder {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// The input folders plus their declared lineage (inputs of inputs), oldest first.
pub fn lineage(inputs: &[PathBuf]) -> Result<Vec<Folder>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = inputs.to_vec();
    while let Some(dir) = todo.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let manifest =
            RunStore::read_manifest(&dir).with_context(|| format!("reading {}", dir.display()))?;
        let run_dir = dir
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if let Some(ins) = manifest
            .fingerprint_inputs
            .get("inputs")
            .and_then(|v| v.as_object())
        {
            for (stage, fp) in ins {
                if let Some(fp) = fp.as_str() {
                    let d = run_dir.join(stage).join(&fp[..fp.len().min(16)]);
                    if d.exists() {
                        todo.push(d);
                    }
                }
            }
        }
        out.push(Folder { dir, manifest });
    }
    out.sort_by(|a, b| {
        a.manifest
            .timings
            .started_unix
            .total_cmp(&b.manifest.timings.started_unix)
    });
    Ok(out)
}

/// The tables of the `evaluate` inputs, concatenated.
#[derive(Default)]
pub struct Evaluated {
    pub aggregates: Vec<AggregateRow>,
    pub scores: Vec<ScoreRow>,
    pub selection: Vec<SelectionRow>,
    pub controls: Vec<ControlRow>,
    pub generations: Vec<GenerationRow>,
}

/// The tables of the `degradation` inputs, concatenated.
#[derive(Default)]
pub struct Degraded {
    pub aggregates: Vec<AggregateRow>,
    pub settings: Vec<SettingRow>,
    /// Chance accuracy of the multiple-choice probe, when one was run.
    pub mc_chance: Option<f64>,
}

/// Reads the tables of the given input folders (not of their lineage).
pub fn tables(folders: &[Folder], inputs: &[PathBuf]) -> Result<(Evaluated, Degraded)> {
    let (mut e, mut d) = (Evaluated::default(), Degraded::default());
    for f in folders.iter().filter(|f| inputs.contains(&f.dir)) {
        match f.manifest.kind.as_str() {
            "evaluate" => {
                e.aggregates.extend(read_table::<AggregateRow>(&f.dir)?);
                e.scores.extend(read_table::<ScoreRow>(&f.dir)?);
                e.selection.extend(read_table::<SelectionRow>(&f.dir)?);
                e.controls.extend(read_table::<ControlRow>(&f.dir)?);
                if f.dir.join("generations.parquet").exists() {
                    e.generations.extend(read_table::<GenerationRow>(&f.dir)?);
                }
            }
            "degradation" => {
                d.aggregates.extend(read_table::<AggregateRow>(&f.dir)?);
                d.settings.extend(read_table::<SettingRow>(&f.dir)?);
                if let Some(c) = f.manifest.summary.get("mc_chance").and_then(|v| v.as_f64()) {
                    d.mc_chance = Some(c);
                }
            }
            _ => {}
        }
    }
    Ok((e, d))
}
