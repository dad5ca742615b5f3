//! The fine-tuning section: the training logs of `finetune` stages, and what every
//! method's steering object cost to make (fine-tuned adapters and steering vectors).

use anyhow::Result;
use steerbench_report as rep;

use super::inputs::Folder;
use crate::tables::{read_table, CostRow, MethodKind, TrainLogRow, VectorRow};

fn fin(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Training logs and costs from the report's lineage. Empty when no `finetune` stage
/// is in it (the section is left out).
pub fn training_and_costs(
    folders: &[Folder],
) -> Result<(Vec<rep::TrainPoint>, Vec<rep::CostLine>)> {
    let finetunes: Vec<&Folder> = folders
        .iter()
        .filter(|f| f.manifest.kind == "finetune")
        .collect();
    if finetunes.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut training = Vec::new();
    let mut costs = Vec::new();
    // Steering methods: the extract stage each vectors stage read, plus its own time.
    for v in folders.iter().filter(|f| f.manifest.kind == "vectors") {
        let extract = folders.iter().find(|f| {
            f.manifest.kind == "extract"
                && v.manifest
                    .fingerprint_inputs
                    .get("inputs")
                    .and_then(|i| i.as_object())
                    .is_some_and(|o| o.contains_key(&f.manifest.stage))
        });
        let rows: Vec<VectorRow> = read_table(&v.dir)?;
        let mut methods: Vec<MethodKind> = Vec::new();
        for r in &rows {
            if !methods.contains(&r.method) {
                methods.push(r.method);
            }
        }
        let summary = |key: &str| -> Option<f64> {
            extract
                .and_then(|e| e.manifest.summary.get(key))
                .and_then(|x| x.as_f64())
        };
        let wall = v.manifest.timings.wall_seconds
            + extract.map_or(0.0, |e| e.manifest.timings.wall_seconds);
        let made_by = match extract {
            Some(e) => format!(
                "extract {} + vectors {}",
                e.manifest.stage, v.manifest.stage
            ),
            None => format!("vectors {}", v.manifest.stage),
        };
        for m in methods {
            let params: usize = rows
                .iter()
                .filter(|r| r.method == m)
                .map(|r| r.vector.len())
                .sum();
            costs.push(rep::CostLine {
                method: m.to_string(),
                made_by: made_by.clone(),
                wall_s: wall,
                forward_tokens: summary("forward_tokens"),
                backward_tokens: Some(0.0),
                trainable_params: Some(params as f64),
                examples: summary("pairs").map(|p| p as usize),
            });
        }
    }
    for f in finetunes {
        for r in read_table::<TrainLogRow>(&f.dir)? {
            training.push(rep::TrainPoint {
                method: r.method.to_string(),
                split: r.split,
                step: r.step as usize,
                epoch: r.epoch as usize,
                loss: r.loss,
                reward_margin: fin(r.reward_margin),
                pref_accuracy: fin(r.pref_accuracy),
            });
        }
        for c in read_table::<CostRow>(&f.dir)? {
            costs.push(rep::CostLine {
                method: c.method.to_string(),
                made_by: format!("finetune {}", c.stage),
                wall_s: c.wall_s,
                forward_tokens: Some(c.forward_tokens),
                backward_tokens: Some(c.backward_tokens),
                trainable_params: Some(c.trainable_params),
                examples: Some(c.examples as usize),
            });
        }
    }
    Ok((training, costs))
}
