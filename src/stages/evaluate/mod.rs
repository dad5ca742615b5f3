//! `evaluate`: steer over methods × layers × multipliers × positions and score every
//! input on the same forward passes.
//!
//! Writes (schemas in docs/outputs.md, row types in [`crate::tables`]):
//! - `scores.parquet`: tidy per-input rows;
//! - `aggregates.parquet`: per setting and metric, mean, std, n and a bootstrap 95% CI;
//! - `selection.parquet`: per (dataset, method, position, direction) the (layer,
//!   multiplier) chosen on validation and its effect on test ([`analysis::select`]);
//! - `controls.parquet`: the random / shuffled controls at each chosen setting and the
//!   method's margin over them;
//! - `generations.parquet` (with the `generation` metric).
//!
//! Baselines share the tables: `unsteered` (no layer, multiplier 0), the prompting
//! baselines ([`baselines`]) and, for A/B data, `letter_swap`.
//!
//! This file only orchestrates: items and per-input metrics live in [`units`], the
//! statistics in [`crate::analysis`].

mod baselines;
pub mod generation;
pub mod units;

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use steerbench_data as data;
use steerbench_eval::steer::Steer;
use steerbench_eval::sweep::{sweep, sweep_many, SweepOptions};
use steerbench_model::Positions;

use super::common::{self, Ctx};
use super::vectors::{load_stored, Stored};
use crate::analysis;
use crate::exec::{StageOutputs, StageRunner};
use crate::spec::{DatasetRef, EvaluateParams, Layers, PositionSel, StageSpec};
use crate::tables::{Condition, ScoreRow};
use units::{icl_units, units, At, Units};

pub struct Evaluate;

impl StageRunner<common::Services> for Evaluate {
    fn version(&self) -> u32 {
        // 2: directional selection, controls at the method's setting, controls.parquet.
        2
    }

    fn run(&self, ctx: &Ctx<'_>) -> Result<StageOutputs> {
        let StageSpec::Evaluate(p) = ctx.params() else {
            bail!("not an evaluate stage")
        };
        run(ctx, p)
    }
}

/// One evaluated dataset split: its records, items and where its scores go.
pub struct EvalDataset {
    pub dataset: DatasetRef,
    pub records: data::Records,
    pub units: Units,
    /// Dataset (as written), split, unsteered.
    pub at: At,
}

pub(crate) fn icl_template(ctx: &Ctx<'_>, r: &DatasetRef) -> Result<data::IclTemplate> {
    ctx.dataset(r)?
        .dataset
        .icl_template()
        .ok_or_else(|| anyhow::anyhow!("dataset `{r}` is not icl_task"))
}

pub(crate) fn positions(sel: &PositionSel) -> Result<Positions> {
    Ok(match sel {
        PositionSel::All => Positions::All,
        PositionSel::Prompt => Positions::Prompt,
        PositionSel::Generated => Positions::Generated,
        PositionSel::Last => Positions::Last,
        PositionSel::Indices(ix) => {
            if ix.iter().any(|&i| i < 0) {
                bail!("steering positions count from the start of the sequence; negative indices are only supported by `read_position`");
            }
            Positions::Indices(ix.iter().map(|&i| i as usize).collect())
        }
    })
}

fn eval_dataset(ctx: &Ctx<'_>, r: &DatasetRef) -> Result<EvalDataset> {
    let lm = common::model(ctx)?;
    let style = common::style(ctx);
    let records = common::records(ctx, r)?;
    let units = match &records {
        // Zero-shot: the vectors have to supply the task.
        data::Records::IclTask(queries) => {
            let template = icl_template(ctx, r)?;
            icl_units(lm, queries, queries, 0, &template, style, ctx.seed())?
        }
        _ => units(lm, &records, style, None, &[])?,
    };
    units.check_lengths(ctx, lm, r)?;
    let split = r.split.map_or("all", |s| s.name()).to_string();
    Ok(EvalDataset {
        at: At::baseline(&r.to_string(), &split, Condition::UNSTEERED),
        dataset: r.clone(),
        records,
        units,
    })
}

/// Groups of steerings run together: per-layer methods at one swept layer share the
/// unsteered prefix below it; methods with their own layers (function vectors) or
/// none (ICV) run on their own.
fn layer_groups(stored: &[Stored], layers: &[usize]) -> Vec<(Option<usize>, Vec<usize>)> {
    let per_layer: Vec<usize> = (0..stored.len())
        .filter(|&k| stored[k].per_layer())
        .collect();
    let mut groups: Vec<(Option<usize>, Vec<usize>)> = if per_layer.is_empty() {
        Vec::new()
    } else {
        layers
            .iter()
            .map(|&l| (Some(l), per_layer.clone()))
            .collect()
    };
    for k in (0..stored.len()).filter(|&k| !stored[k].per_layer()) {
        for l in stored[k].fixed_layers() {
            groups.push((l, vec![k]));
        }
    }
    groups
}

/// The steered sweep of one dataset at one position selector: score rows for every
/// method × layer × multiplier, plus the derived rows (steerability, relative likelihood).
fn steered(
    ctx: &Ctx<'_>,
    p: &EvaluateParams,
    d: &EvalDataset,
    stored: &[Stored],
    layers: &[usize],
    sel: &PositionSel,
    unsteered: &[ScoreRow],
) -> Result<Vec<ScoreRow>> {
    let lm = common::model(ctx)?;
    let progress = ctx.progress();
    let opts = SweepOptions {
        positions: positions(sel)?,
        batch_items: 8,
        max_rows: 40,
        ..SweepOptions::default()
    };
    let mults: Vec<f32> = p.multipliers.iter().map(|&m| m as f32).collect();
    let mut out = Vec::new();
    for (layer, members) in layer_groups(stored, layers) {
        let steers: Vec<Steer> = members
            .iter()
            .map(|&k| stored[k].steer(layer.unwrap_or(0)))
            .collect::<Result<_>>()?;
        progress.set_message(format!(
            "{}: layer {}",
            d.dataset,
            layer.map_or("all".into(), |l| l.to_string())
        ));
        // Steerings starting at the same hook point share a prefix pass.
        let mut by_start: BTreeMap<(usize, u8), Vec<usize>> = BTreeMap::new();
        for (j, st) in steers.iter().enumerate() {
            let fp = st.first_point();
            by_start
                .entry((fp.layer, fp.site as u8))
                .or_default()
                .push(j);
        }
        for js in by_start.into_values() {
            let refs: Vec<&Steer> = js.iter().map(|&j| &steers[j]).collect();
            let vals = sweep_many(&lm.model, &d.units.items, &refs, &mults, &opts, |n| {
                progress.inc(n as u64)
            })?;
            for (v, &j) in vals.iter().zip(&js) {
                let method = Condition::Steered(stored[members[j]].method);
                let mut rows = Vec::new();
                for (a, per_item) in v.iter().enumerate() {
                    let at = At {
                        method,
                        layer,
                        multiplier: p.multipliers[a],
                        position: sel.name().to_string(),
                        ..d.at.clone()
                    };
                    rows.extend(d.units.rows(&at, per_item, &p.metrics)?);
                }
                let derived = analysis::derive_scores(&rows, unsteered, &p.metrics)?;
                out.extend(rows);
                out.extend(derived);
            }
        }
    }
    Ok(out)
}

fn run(ctx: &Ctx<'_>, p: &EvaluateParams) -> Result<StageOutputs> {
    let lm = common::model(ctx)?;
    let stored = load_stored(ctx.input_dir(&p.vectors)?)?;
    let layers: Vec<usize> = match &p.layers {
        Layers::All => (0..lm.model.config().n_layers).collect(),
        Layers::List(v) => v.clone(),
    };
    let datasets: Vec<EvalDataset> = p
        .datasets
        .0
        .iter()
        .map(|r| eval_dataset(ctx, r))
        .collect::<Result<_>>()?;

    // Work estimate for the progress bar: items × passes.
    let passes: usize = layer_groups(&stored, &layers)
        .iter()
        .map(|(_, members)| members.len())
        .sum::<usize>()
        * p.positions.0.len()
        + 1;
    let progress = ctx.progress();
    progress.set_total(
        datasets
            .iter()
            .map(|d| d.units.items.len() * passes)
            .sum::<usize>() as u64,
    );

    let mut scores: Vec<ScoreRow> = Vec::new();
    for d in &datasets {
        progress.set_message(format!("{}: unsteered", d.dataset));
        let base = sweep(
            &lm.model,
            &d.units.items,
            None,
            &[0.0],
            &SweepOptions::default(),
            |n| progress.inc(n as u64),
        )?
        .remove(0);
        let unsteered = d.units.rows(&d.at, &base, &p.metrics)?;
        scores.extend(unsteered.iter().cloned());
        for sel in &p.positions.0 {
            scores.extend(steered(ctx, p, d, &stored, &layers, sel, &unsteered)?);
        }
        scores.extend(baselines::baselines(ctx, lm, p, d)?);
    }

    let selected = analysis::select(&scores, ctx.seed());
    if p.metrics.contains(&crate::spec::Metric::Generation) {
        let mut gens = Vec::new();
        for d in &datasets {
            let (g, s) = generation::at_selections(ctx, lm, p, d, &selected.selection, &stored)?;
            gens.extend(g);
            scores.extend(s);
        }
        ctx.write_table(&gens)?;
    }
    ctx.write_table(&scores)?;
    ctx.write_table(&analysis::aggregate(&scores, ctx.seed()))?;
    ctx.write_table(&selected.selection)?;
    ctx.write_table(&selected.controls)?;
    let mut out = StageOutputs::default();
    out.summary.insert("score_rows".into(), scores.len().into());
    Ok(out)
}
