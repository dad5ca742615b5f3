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
    /// Conversation datasets' per-turn effects (`turns.parquet`).
    pub turns: Vec<crate::tables::TurnRow>,
    /// One per `evaluate` input, ordered by stage name: the behaviours of the
    /// cross-behaviour scorecard.
    pub stages: Vec<EvaluatedStage>,
}

/// An `evaluate` input: its stage name, the stages it read (its `vectors`), and its own
/// selection and controls (also in [`Evaluated`]'s concatenated tables).
pub struct EvaluatedStage {
    pub stage: String,
    pub inputs: Vec<String>,
    pub selection: Vec<SelectionRow>,
    pub controls: Vec<ControlRow>,
}

/// The tables of the `degradation` inputs, concatenated (and, in `stages`, per input).
#[derive(Default, Clone)]
pub struct Degraded {
    pub aggregates: Vec<AggregateRow>,
    pub settings: Vec<SettingRow>,
    /// Chance accuracy of the multiple-choice probe, when one was run.
    pub mc_chance: Option<f64>,
    /// Each `degradation` input on its own: (stage, the stages it read, its tables).
    pub stages: Vec<(String, Vec<String>, Degraded)>,
}

impl Degraded {
    fn add(&mut self, other: &Degraded) {
        self.aggregates.extend(other.aggregates.iter().cloned());
        self.settings.extend(other.settings.iter().cloned());
        self.mc_chance = other.mc_chance.or(self.mc_chance);
    }

    /// The degradation measured with the vectors an `evaluate` stage steered with: the
    /// `degradation` inputs that read a stage the evaluate stage also read (its `vectors`;
    /// degradation depends on the vectors, the method and the setting, not on the evaluated
    /// dataset). None when no degradation input did.
    pub fn for_stage(&self, e: &EvaluatedStage) -> Option<Degraded> {
        let mut out: Option<Degraded> = None;
        for (_, inputs, d) in &self.stages {
            if inputs.iter().any(|i| e.inputs.contains(i)) {
                out.get_or_insert_with(Degraded::default).add(d);
            }
        }
        out
    }
}

/// The names of the stages a folder's stage read (its manifest's fingerprint inputs).
fn input_stages(m: &Manifest) -> Vec<String> {
    m.fingerprint_inputs
        .get("inputs")
        .and_then(|v| v.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Reads the tables of the given input folders (not of their lineage).
pub fn tables(folders: &[Folder], inputs: &[PathBuf]) -> Result<(Evaluated, Degraded)> {
    let (mut e, mut d) = (Evaluated::default(), Degraded::default());
    for f in folders.iter().filter(|f| inputs.contains(&f.dir)) {
        match f.manifest.kind.as_str() {
            "evaluate" => {
                e.aggregates.extend(read_table::<AggregateRow>(&f.dir)?);
                e.scores.extend(read_table::<ScoreRow>(&f.dir)?);
                let selection = read_table::<SelectionRow>(&f.dir)?;
                let controls = read_table::<ControlRow>(&f.dir)?;
                e.selection.extend(selection.iter().cloned());
                e.controls.extend(controls.iter().cloned());
                e.stages.push(EvaluatedStage {
                    stage: f.manifest.stage.clone(),
                    inputs: input_stages(&f.manifest),
                    selection,
                    controls,
                });
                if f.dir.join("turns.parquet").exists() {
                    e.turns
                        .extend(read_table::<crate::tables::TurnRow>(&f.dir)?);
                }
                if f.dir.join("generations.parquet").exists() {
                    e.generations.extend(read_table::<GenerationRow>(&f.dir)?);
                }
            }
            "degradation" => {
                let one = Degraded {
                    aggregates: read_table::<AggregateRow>(&f.dir)?,
                    settings: read_table::<SettingRow>(&f.dir)?,
                    mc_chance: f.manifest.summary.get("mc_chance").and_then(|v| v.as_f64()),
                    stages: Vec::new(),
                };
                d.add(&one);
                d.stages
                    .push((f.manifest.stage.clone(), input_stages(&f.manifest), one));
            }
            _ => {}
        }
    }
    // Behaviours in stage-name order: `steerbench report` only knows the inputs as the
    // report manifest's (sorted) map, and must render the same report as the run did.
    e.stages.sort_by(|a, b| a.stage.cmp(&b.stage));
    Ok((e, d))
}
