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
//! - `generations.parquet` (with the `generation` metric);
//! - `turns.parquet` (conversation datasets): effect and persistence per scored turn
//!   ([`analysis::turn_table`]).
//!
//! Baselines share the tables: `unsteered` (no layer, multiplier 0), the prompting
//! baselines ([`baselines`]) and, for A/B data, `letter_swap`.
//!
//! This file only orchestrates: items and per-input metrics live in [`units`], the
//! statistics in [`crate::analysis`].

mod baselines;
mod dialogue_generation;
pub mod generation;
pub mod units;

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use steerbench_data as data;
use steerbench_eval::dialogue::Scope;
use steerbench_eval::steer::Steer;
use steerbench_eval::sweep::{sweep, sweep_many, SweepOptions};
use steerbench_model::Positions;

use super::common::{self, Ctx};
use super::vectors::{load_steerings, Stored};
use crate::analysis;
use crate::exec::{Shard, StageOutputs, StageRunner};
use crate::spec::{DatasetRef, EvaluateParams, Layers, PositionSel, StageSpec};
use crate::tables::{Condition, ScoreRow, Table};
use steerbench_eval::turn_sweep::{sweep_dialogues, Dialogue};
use units::{conversation_units, icl_units, units, At, Units};

pub struct Evaluate;

impl StageRunner<common::Services> for Evaluate {
    fn version(&self) -> u32 {
        // 2: directional selection, controls at the method's setting, controls.parquet.
        2
    }

    fn run(&self, ctx: &Ctx<'_>) -> Result<StageOutputs> {
        run(ctx, params(ctx)?)
    }

    fn shardable(&self) -> bool {
        true
    }

    fn run_shard(&self, ctx: &Ctx<'_>, shard: Shard) -> Result<usize> {
        run_shard(ctx, params(ctx)?, shard)
    }

    fn merge(&self, ctx: &Ctx<'_>, shards: &[std::path::PathBuf]) -> Result<StageOutputs> {
        merge(ctx, params(ctx)?, shards)
    }
}

fn params<'c>(ctx: &'c Ctx<'_>) -> Result<&'c EvaluateParams> {
    match ctx.params() {
        StageSpec::Evaluate(p) => Ok(p),
        _ => bail!("not an evaluate stage"),
    }
}

/// One evaluated dataset split: its records, items and where its scores go.
pub struct EvalDataset {
    pub dataset: DatasetRef,
    pub records: data::Records,
    pub units: Units,
    /// Conversation datasets: the scored turns for the turn-by-turn scorer, in the
    /// order of `units`' items.
    pub dialogues: Option<Vec<Dialogue>>,
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
        PositionSel::AllTurns
        | PositionSel::FirstTurn
        | PositionSel::CurrentTurn
        | PositionSel::UserTurns => bail!(
            "positions `{}` is a turn scope: it steers conversation datasets only",
            sel.name()
        ),
    })
}

fn eval_dataset(ctx: &Ctx<'_>, r: &DatasetRef) -> Result<EvalDataset> {
    let lm = common::model(ctx)?;
    let style = common::style(ctx);
    let records = common::records(ctx, r)?;
    let (units, dialogues) = match &records {
        // Zero-shot: the vectors have to supply the task.
        data::Records::IclTask(queries) => {
            let template = icl_template(ctx, r)?;
            let u = icl_units(lm, queries, queries, 0, &template, style, ctx.seed())?;
            (u, None)
        }
        data::Records::Conversation(convs) => {
            let (u, d) = conversation_units(lm, convs, style, None)?;
            (u, Some(d))
        }
        _ => (units(lm, &records, style, None, &[])?, None),
    };
    units.check_lengths(ctx, lm, r)?;
    let split = r.split.map_or("all", |s| s.name()).to_string();
    Ok(EvalDataset {
        at: At::baseline(&r.to_string(), &split, Condition::UNSTEERED),
        dataset: r.clone(),
        records,
        units,
        dialogues,
    })
}

/// The multipliers a steering is swept over: `adapter_multipliers` for a fine-tuned
/// adapter when given (its delta's scale: 1 is the trained adapter), else `multipliers`.
fn multipliers_of<'p>(p: &'p EvaluateParams, s: &Stored) -> &'p [f64] {
    match &p.adapter_multipliers {
        Some(m) if s.is_adapter() => m,
        _ => &p.multipliers,
    }
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

/// One independent piece of an evaluate stage's work. A whole run does them in
/// `work_units` order; shards do contiguous runs of them. Items are never split across
/// units: the sweep shares one prompt prefix pass over all items of a dataset and
/// batches them eight at a time, and a different split would change floating-point
/// summation order (and so the last bits of the scores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// The unsteered model on dataset `d`.
    Unsteered(usize),
    /// Every steering of layer group `group` at position selector `position` on `d`.
    Steered {
        d: usize,
        position: usize,
        group: usize,
    },
    /// The prompting baselines on `d`.
    Baselines(usize),
}

fn work_units(n_datasets: usize, n_positions: usize, n_groups: usize) -> Vec<Unit> {
    let mut out = Vec::new();
    for d in 0..n_datasets {
        out.push(Unit::Unsteered(d));
        for position in 0..n_positions {
            for group in 0..n_groups {
                out.push(Unit::Steered { d, position, group });
            }
        }
        out.push(Unit::Baselines(d));
    }
    out
}

/// What an evaluate stage works on: the vectors, the layers, the datasets as items.
struct Work {
    stored: Vec<Stored>,
    groups: Vec<(Option<usize>, Vec<usize>)>,
    datasets: Vec<EvalDataset>,
    units: Vec<Unit>,
}

fn work(ctx: &Ctx<'_>, p: &EvaluateParams) -> Result<Work> {
    let lm = common::model(ctx)?;
    let adapters = p.adapters.as_ref().map(|a| ctx.input_dir(a)).transpose()?;
    let stored = load_steerings(ctx.input_dir(&p.vectors)?, adapters, &lm.model)?;
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
    let groups = layer_groups(&stored, &layers);
    let units = work_units(datasets.len(), p.positions.0.len(), groups.len());
    Ok(Work {
        stored,
        groups,
        datasets,
        units,
    })
}

/// Runs one unit: its score rows in blocks. Steered units give one block per steering
/// (method), each later followed by its derived rows ([`assemble`]).
fn run_unit(ctx: &Ctx<'_>, p: &EvaluateParams, w: &Work, unit: Unit) -> Result<Vec<Vec<ScoreRow>>> {
    let lm = common::model(ctx)?;
    let progress = ctx.progress();
    match unit {
        Unit::Unsteered(d) => {
            let d = &w.datasets[d];
            progress.set_message(format!("{}: unsteered", d.dataset));
            let base = match &d.dialogues {
                Some(ds) => sweep_dialogues(&lm.model, ds, None, &[0.0], Scope::AllTurns, |n| {
                    progress.inc(n as u64)
                })?,
                None => sweep(
                    &lm.model,
                    &d.units.items,
                    None,
                    &[0.0],
                    &SweepOptions::default(),
                    |n| progress.inc(n as u64),
                )?,
            }
            .remove(0);
            Ok(vec![d.units.rows(&d.at, &base, &p.metrics)?])
        }
        Unit::Steered { d, position, group } => {
            let (layer, members) = &w.groups[group];
            steered(
                ctx,
                p,
                &w.datasets[d],
                &w.stored,
                *layer,
                members,
                &p.positions.0[position],
            )
        }
        Unit::Baselines(d) => Ok(vec![baselines::baselines(ctx, lm, p, &w.datasets[d])?]),
    }
}

/// The score rows of a whole stage, in the order of a whole run, from every unit's
/// blocks: each steered block is followed by its derived rows (steerability, relative
/// likelihood), computed against the unsteered rows of its dataset.
fn assemble(
    p: &EvaluateParams,
    units: &[Unit],
    blocks: Vec<Vec<Vec<ScoreRow>>>,
) -> Result<Vec<ScoreRow>> {
    let mut unsteered: BTreeMap<usize, Vec<ScoreRow>> = BTreeMap::new();
    for (u, b) in units.iter().zip(&blocks) {
        if let Unit::Unsteered(d) = u {
            unsteered.insert(*d, b.concat());
        }
    }
    let mut scores = Vec::new();
    for (u, unit_blocks) in units.iter().zip(blocks) {
        match u {
            Unit::Steered { d, .. } => {
                let base = &unsteered[d];
                for rows in unit_blocks {
                    let derived = analysis::derive_scores(&rows, base, &p.metrics)?;
                    scores.extend(rows);
                    scores.extend(derived);
                }
            }
            _ => scores.extend(unit_blocks.into_iter().flatten()),
        }
    }
    Ok(scores)
}

/// The steered sweep of one dataset at one position selector and one layer group: raw
/// score rows for each member method × multiplier, one block per method.
fn steered(
    ctx: &Ctx<'_>,
    p: &EvaluateParams,
    d: &EvalDataset,
    stored: &[Stored],
    layer: Option<usize>,
    members: &[usize],
    sel: &PositionSel,
) -> Result<Vec<Vec<ScoreRow>>> {
    let lm = common::model(ctx)?;
    let progress = ctx.progress();
    if let Some(dialogues) = &d.dialogues {
        return steered_dialogues(ctx, p, d, dialogues, stored, layer, members, sel);
    }
    let opts = SweepOptions {
        positions: positions(sel)?,
        batch_items: 8,
        max_rows: 40,
        ..SweepOptions::default()
    };
    let multipliers = multipliers_of(p, &stored[members[0]]);
    let mults: Vec<f32> = multipliers.iter().map(|&m| m as f32).collect();
    let mut out = Vec::new();
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
                    multiplier: multipliers[a],
                    position: sel.name().to_string(),
                    ..d.at.clone()
                };
                rows.extend(d.units.rows(&at, per_item, &p.metrics)?);
            }
            out.push(rows);
        }
    }
    Ok(out)
}

/// [`steered`] on a conversation dataset: each member method turn by turn at the
/// selector's turn scope, one block of rows per method.
#[allow(clippy::too_many_arguments)]
fn steered_dialogues(
    ctx: &Ctx<'_>,
    p: &EvaluateParams,
    d: &EvalDataset,
    dialogues: &[Dialogue],
    stored: &[Stored],
    layer: Option<usize>,
    members: &[usize],
    sel: &PositionSel,
) -> Result<Vec<Vec<ScoreRow>>> {
    let lm = common::model(ctx)?;
    let progress = ctx.progress();
    let Some(scope) = sel.scope() else {
        bail!(
            "dataset `{}` is a conversation: steer it with a turn scope (positions: all_turns, first_turn, current_turn, user_turns), not `{}`",
            d.dataset,
            sel.name()
        );
    };
    let mut out = Vec::new();
    for &k in members {
        let multipliers = multipliers_of(p, &stored[k]);
        let mults: Vec<f32> = multipliers.iter().map(|&m| m as f32).collect();
        let steer = stored[k].steer(layer.unwrap_or(0))?;
        progress.set_message(format!(
            "{}: {} at layer {}, {}",
            d.dataset,
            stored[k].method,
            layer.map_or("all".into(), |l| l.to_string()),
            scope.name()
        ));
        let vals = sweep_dialogues(&lm.model, dialogues, Some(&steer), &mults, scope, |n| {
            progress.inc(n as u64)
        })?;
        let mut rows = Vec::new();
        for (a, per_item) in vals.iter().enumerate() {
            let at = At {
                method: Condition::Steered(stored[k].method),
                layer,
                multiplier: multipliers[a],
                position: sel.name().to_string(),
                ..d.at.clone()
            };
            rows.extend(d.units.rows(&at, per_item, &p.metrics)?);
        }
        out.push(rows);
    }
    Ok(out)
}

/// Progress total: items × passes of the given units.
fn set_progress_total(ctx: &Ctx<'_>, w: &Work, units: &[Unit]) {
    let total: usize = units
        .iter()
        .map(|u| match *u {
            Unit::Unsteered(d) => w.datasets[d].units.items.len(),
            Unit::Steered { d, group, .. } => {
                w.datasets[d].units.items.len() * w.groups[group].1.len()
            }
            Unit::Baselines(_) => 0,
        })
        .sum();
    ctx.progress().set_total(total as u64);
}

fn run(ctx: &Ctx<'_>, p: &EvaluateParams) -> Result<StageOutputs> {
    let w = work(ctx, p)?;
    set_progress_total(ctx, &w, &w.units);
    let blocks = w
        .units
        .iter()
        .map(|&u| run_unit(ctx, p, &w, u))
        .collect::<Result<Vec<_>>>()?;
    let scores = assemble(p, &w.units, blocks)?;
    finish(ctx, p, &w, scores)
}

/// A shard's file of one block: `unit<u>-block<b>.parquet` (score rows, raw).
fn block_file(unit: usize, block: usize) -> String {
    format!("unit{unit:05}-block{block:03}")
}

/// `units.json` in a shard folder: which units it did and how many blocks each gave.
#[derive(serde::Serialize, serde::Deserialize)]
struct ShardUnits {
    total_units: usize,
    first: usize,
    blocks: Vec<usize>,
}

fn run_shard(ctx: &Ctx<'_>, p: &EvaluateParams, shard: Shard) -> Result<usize> {
    let w = work(ctx, p)?;
    let range = shard.range(w.units.len());
    set_progress_total(ctx, &w, &w.units[range.clone()]);
    let mut blocks = Vec::new();
    for u in range.clone() {
        let unit_blocks = run_unit(ctx, p, &w, w.units[u])?;
        for (b, rows) in unit_blocks.iter().enumerate() {
            let mut df = ScoreRow::to_frame(rows)?;
            ctx.write_parquet(&block_file(u, b), &mut df)?;
        }
        blocks.push(unit_blocks.len());
    }
    let record = ShardUnits {
        total_units: w.units.len(),
        first: range.start,
        blocks,
    };
    ctx.write_file("units.json", &serde_json::to_vec_pretty(&record)?)?;
    Ok(range.len())
}

fn merge(ctx: &Ctx<'_>, p: &EvaluateParams, shards: &[std::path::PathBuf]) -> Result<StageOutputs> {
    let w = work(ctx, p)?;
    let mut blocks: Vec<Vec<Vec<ScoreRow>>> = Vec::with_capacity(w.units.len());
    for dir in shards {
        let path = dir.join("units.json");
        let rec: ShardUnits = serde_json::from_slice(&std::fs::read(&path)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if rec.total_units != w.units.len() || rec.first != blocks.len() {
            bail!(
                "{}: shard holds units {}..{} of {}, expected to start at unit {} of {}",
                dir.display(),
                rec.first,
                rec.first + rec.blocks.len(),
                rec.total_units,
                blocks.len(),
                w.units.len()
            );
        }
        for (i, &n) in rec.blocks.iter().enumerate() {
            let u = rec.first + i;
            let mut unit_blocks = Vec::with_capacity(n);
            for b in 0..n {
                let file = dir.join(format!("{}.parquet", block_file(u, b)));
                let df = crate::store::read_parquet(&file)?;
                unit_blocks.push(
                    ScoreRow::from_frame(&df)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
                );
            }
            blocks.push(unit_blocks);
        }
    }
    if blocks.len() != w.units.len() {
        bail!(
            "the shards hold {} of {} units",
            blocks.len(),
            w.units.len()
        );
    }
    let scores = assemble(p, &w.units, blocks)?;
    finish(ctx, p, &w, scores)
}

/// From all score rows: selection, controls, generations at the selected settings,
/// aggregates; writes every table.
fn finish(
    ctx: &Ctx<'_>,
    p: &EvaluateParams,
    w: &Work,
    mut scores: Vec<ScoreRow>,
) -> Result<StageOutputs> {
    let lm = common::model(ctx)?;
    let selected = analysis::select(&scores, ctx.seed());
    if p.metrics.contains(&crate::spec::Metric::Generation) {
        let mut gens = Vec::new();
        for d in &w.datasets {
            let (g, s) = match d.dialogues {
                Some(_) => dialogue_generation::at_selections(
                    ctx,
                    lm,
                    p,
                    d,
                    &selected.selection,
                    &w.stored,
                )?,
                None => generation::at_selections(ctx, lm, p, d, &selected.selection, &w.stored)?,
            };
            gens.extend(g);
            scores.extend(s);
        }
        ctx.write_table(&gens)?;
    }
    // Conversations: effects and persistence per turn.
    let conversations: Vec<&str> = w
        .datasets
        .iter()
        .filter(|d| d.dialogues.is_some())
        .map(|d| d.at.dataset.as_str())
        .collect();
    if !conversations.is_empty() {
        let rows: Vec<ScoreRow> = scores
            .iter()
            .filter(|s| conversations.contains(&s.dataset.as_str()))
            .cloned()
            .collect();
        ctx.write_table(&analysis::turn_table(&rows, ctx.seed()))?;
    }
    ctx.write_table(&scores)?;
    ctx.write_table(&analysis::aggregate(&scores, ctx.seed()))?;
    ctx.write_table(&selected.selection)?;
    ctx.write_table(&selected.controls)?;
    let mut out = StageOutputs::default();
    out.summary.insert("score_rows".into(), scores.len().into());
    Ok(out)
}
