//! `evaluate`: steer over methods × layers × multipliers × positions and score every
//! input on the same forward passes.
//!
//! Writes (schemas in docs/outputs.md):
//! - `scores.parquet`: tidy per-input rows (example_id, dataset, split, method, layer,
//!   multiplier, position, metric, value);
//! - `aggregates.parquet`: per (dataset, split, method, layer, multiplier, position,
//!   metric) the mean, std, n and a bootstrap 95% CI over inputs;
//! - `selection.parquet`: per (dataset, method, position) the (layer, multiplier)
//!   chosen on validation and its test effect with CI, standardised effect and
//!   steerability at that layer.
//!
//! Baselines share the tables: method `unsteered` (layer −1, multiplier 0),
//! `system_prompt_positive` / `system_prompt_negative`, `few_shot`, and for A/B data
//! `letter_swap` (the same items with the answer letters exchanged).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use steerbench_data as data;
use steerbench_eval::prompt::{self, Prompt, PromptStyle};
use steerbench_eval::sweep::{sweep, sweep_many, Item, Read, SweepOptions, Value};
use steerbench_model::{LoadedModel, Positions};
use steerbench_steering::metrics::behaviour::{ab_probability, propensity, Letter};
use steerbench_steering::metrics::stats::{
    bootstrap_mean_ci, effect_size, mean_std, select_best, BootstrapConfig, Candidate,
};
use steerbench_steering::metrics::steerability::fit_line;

use super::common::{self, Ctx};
use super::table::*;
use super::vectors::load_stored;
use super::{generation, icl};
use crate::exec::{StageOutputs, StageRunner};
use crate::spec::{
    Baseline, DatasetRef, EvaluateParams, Layers, Metric, PositionSel, SplitName, StageSpec,
};

pub struct Evaluate;

impl StageRunner<common::Services> for Evaluate {
    fn version(&self) -> u32 {
        1
    }

    fn run(&self, ctx: &Ctx<'_>) -> Result<StageOutputs> {
        let StageSpec::Evaluate(p) = ctx.params() else {
            bail!("not an evaluate stage")
        };
        run(ctx, p)
    }
}

/// Layer value of rows that have no layer (baselines, all-layer methods).
pub const NO_LAYER: i32 = -1;

/// One tidy score row.
#[derive(Debug, Clone)]
pub struct Score {
    pub example_id: String,
    pub dataset: String,
    pub split: String,
    pub method: String,
    pub layer: i32,
    pub multiplier: f64,
    pub position: String,
    pub metric: &'static str,
    pub value: f64,
}

/// A dataset's records as measurable items: one unit per record, each with one or
/// two items (A/B: one pass reads both letters; completions: a pass per side).
pub struct Units {
    pub ids: Vec<String>,
    pub items: Vec<Item>,
    kind: UnitKind,
}

enum UnitKind {
    /// Matching letter index per record (0 = A) and whether it is item `i`.
    Ab(Vec<usize>),
    /// Items 2i (positive / matching) and 2i+1 (negative / not matching).
    Pair { open_ended: bool },
    /// ICL queries: the first token of each correct answer.
    Icl(Vec<u32>),
}

/// ICL queries of dataset `r` with `shots` demonstrations drawn from `pool`, as items that
/// read the full next-token distribution (top-1 and the correct token's log-probability).
fn icl_units(
    ctx: &Ctx<'_>,
    lm: &LoadedModel,
    r: &DatasetRef,
    queries: &[data::Icl],
    pool: &[data::Icl],
    shots: usize,
) -> Result<Units> {
    let template = icl_template(ctx, r)?;
    let how = icl::IclPrompts {
        pool,
        shots,
        shuffle_labels: false,
        template: &template,
        style: common::style(ctx),
        seed: ctx.seed(),
    };
    let items = icl::icl_items(lm, queries, &how)?;
    Ok(Units {
        ids: items.iter().map(|x| x.id.clone()).collect(),
        kind: UnitKind::Icl(items.iter().map(|x| x.target).collect()),
        items: items
            .into_iter()
            .map(|x| Item {
                seq: x.prompt,
                read: Read::NextDist,
            })
            .collect(),
    })
}

fn shots_for(records: &data::Records, k: usize) -> Vec<(String, String)> {
    match records {
        data::Records::ContrastiveAb(v) => v
            .iter()
            .take(k)
            .map(|it| (it.question.clone(), format!("({})", it.matching)))
            .collect(),
        data::Records::ContrastiveCompletion(v) => v
            .iter()
            .take(k)
            .map(|it| (it.prompt.clone(), it.positive.clone()))
            .collect(),
        data::Records::OpenEnded(v) => v
            .iter()
            .filter_map(|it| it.matching.as_ref().map(|m| (it.prompt.clone(), m.clone())))
            .take(k)
            .collect(),
        _ => Vec::new(),
    }
}

/// Builds the items of `records` with an optional system prompt and few-shot turns.
pub fn units(
    lm: &LoadedModel,
    records: &data::Records,
    style: PromptStyle,
    system: Option<&str>,
    shots: &[(String, String)],
) -> Result<Units> {
    let letters = common::letter_ids(lm, 2)?;
    let mk = |parts: data::PromptParts| -> Prompt {
        let mut p = common::to_prompt(&parts);
        p.system = system.map(str::to_string);
        p.shots = shots.to_vec();
        p
    };
    let mut ids = Vec::new();
    let mut items = Vec::new();
    let kind = match records {
        data::Records::ContrastiveAb(v) => {
            let mut matching = Vec::new();
            for it in v {
                if it.matching.index() > 1 || it.not_matching.index() > 1 {
                    bail!("item {}: ab metrics read letters A and B only, found ({}) / ({})", it.id, it.matching, it.not_matching);
                }
                let p = mk(data::ab_parts(it, None));
                items.push(Item { seq: steerbench_model::Sequence::prompt(common::encode(lm, &p, style)?), read: Read::NextToken(letters.clone()) });
                ids.push(it.id.clone());
                matching.push(it.matching.index());
            }
            UnitKind::Ab(matching)
        }
        data::Records::ContrastiveCompletion(_) | data::Records::OpenEnded(_) => {
            let open_ended = matches!(records, data::Records::OpenEnded(_));
            let triples: Vec<(String, data::PromptParts, String, String)> = match records {
                data::Records::ContrastiveCompletion(v) => v
                    .iter()
                    .map(|it| {
                        let (parts, a, b) = data::completion_parts(it, None);
                        (it.id.clone(), parts, a, b)
                    })
                    .collect(),
                data::Records::OpenEnded(v) => v
                    .iter()
                    .filter_map(|it| {
                        let (parts, a, b) = data::open_ended_parts(it, None);
                        Some((it.id.clone(), parts, a?, b?))
                    })
                    .collect(),
                _ => unreachable!(),
            };
            if triples.is_empty() {
                bail!("no records with both continuations to compare");
            }
            for (id, parts, a, b) in triples {
                let p = mk(parts);
                let pids = common::encode(lm, &p, style)?;
                for c in [a, b] {
                    items.push(Item { seq: prompt::with_continuation(&lm.tokenizer, &pids, false, style, &c)?, read: Read::Completion });
                }
                ids.push(id);
            }
            UnitKind::Pair { open_ended }
        }
        other => bail!("evaluate scores contrastive datasets (contrastive_ab, contrastive_completion, open_ended), not {}", other.format().name()),
    };
    Ok(Units { ids, items, kind })
}

impl Units {
    /// Per-record metrics from one strength's values: (metric, value) pairs.
    fn metrics(&self, vals: &[Value], r: usize) -> Result<Vec<(&'static str, f64)>> {
        Ok(match &self.kind {
            UnitKind::Ab(matching) => {
                let lp = vals[r].as_slice();
                let (m, n) = (matching[r], 1 - matching[r]);
                let letter = if m == 0 { Letter::A } else { Letter::B };
                let pa = ab_probability(lp[0], lp[1], Letter::A)?;
                vec![
                    (
                        "ab_probability",
                        ab_probability(lp[0], lp[1], letter)? as f64,
                    ),
                    ("propensity", (lp[m] - lp[n]) as f64),
                    ("p_a_share", pa as f64),
                ]
            }
            UnitKind::Pair { open_ended } => {
                let pr = propensity(vals[2 * r].as_slice(), vals[2 * r + 1].as_slice())?;
                let mut v = vec![
                    ("propensity", pr.summed as f64),
                    ("propensity_norm", pr.normalized as f64),
                ];
                if *open_ended {
                    v.push(("loglik_matching_minus_not", pr.summed as f64));
                }
                v
            }
            UnitKind::Icl(targets) => {
                let lp = vals[r].as_slice();
                let t = targets[r] as usize;
                let Some(&target_lp) = lp.get(t) else {
                    bail!(
                        "ICL target token {t} is outside the vocabulary ({})",
                        lp.len()
                    );
                };
                let top = lp
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(usize::MAX, |(i, _)| i);
                vec![
                    ("icl_accuracy", (top == t) as u8 as f64),
                    // For ICL items the propensity is log p(correct first answer token).
                    ("propensity", target_lp as f64),
                ]
            }
        })
    }
}

fn icl_template(ctx: &Ctx<'_>, r: &DatasetRef) -> Result<data::IclTemplate> {
    ctx.dataset(r)?
        .dataset
        .icl_template()
        .ok_or_else(|| anyhow::anyhow!("dataset `{r}` is not icl_task"))
}

fn positions(sel: &PositionSel) -> Result<Positions> {
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

fn wanted(p: &EvaluateParams, metric: &str) -> bool {
    let has = |m: Metric| p.metrics.contains(&m);
    match metric {
        "ab_probability" | "p_a_share" => has(Metric::AbProbability),
        "propensity" => true, // steerability, selection and baselines are defined on it
        "propensity_norm" => has(Metric::Propensity),
        "icl_accuracy" => has(Metric::IclAccuracy),
        "loglik_matching_minus_not" | "open_ended_likelihood" => has(Metric::OpenEndedLikelihood),
        _ => true,
    }
}

fn run(ctx: &Ctx<'_>, p: &EvaluateParams) -> Result<StageOutputs> {
    let lm = common::model(ctx)?;
    let style = common::style(ctx);
    let stored = load_stored(ctx.input_dir(&p.vectors)?)?;
    let n_layers = lm.model.config().n_layers;
    let layers: Vec<usize> = match &p.layers {
        Layers::All => (0..n_layers).collect(),
        Layers::List(v) => v.clone(),
    };
    let mults: Vec<f32> = p.multipliers.iter().map(|&m| m as f32).collect();
    let opts_for = |sel: &PositionSel| -> Result<SweepOptions> {
        Ok(SweepOptions {
            positions: positions(sel)?,
            batch_items: 8,
            max_rows: 40,
            ..SweepOptions::default()
        })
    };

    // Work estimate for the progress bar: items × passes.
    let mut datasets = Vec::new();
    for r in p.datasets.0.iter() {
        let records = common::records(ctx, r)?;
        let u = match &records {
            // Zero-shot: the vectors have to supply the task.
            data::Records::IclTask(queries) => icl_units(ctx, lm, r, queries, queries, 0)?,
            _ => units(lm, &records, style, None, &[])?,
        };
        datasets.push((r.clone(), records, u));
    }
    let passes: usize = stored
        .iter()
        .map(|s| {
            if s.per_layer() {
                layers.len()
            } else {
                s.fixed_layers().len()
            }
        })
        .sum::<usize>()
        * p.positions.0.len()
        + 1;
    let total: usize = datasets
        .iter()
        .map(|(_, _, u)| u.items.len() * passes)
        .sum();
    let progress = ctx.progress();
    progress.set_total(total as u64);

    let mut scores: Vec<Score> = Vec::new();
    for (r, records, u) in &datasets {
        let split = r.split.map_or("all", SplitName::name).to_string();
        let push = |method: &str,
                    layer: i32,
                    mult: f64,
                    position: &str,
                    vals: &[Value],
                    scores: &mut Vec<Score>|
         -> Result<()> {
            for i in 0..u.ids.len() {
                for (metric, value) in u.metrics(vals, i)? {
                    if wanted(p, metric) {
                        scores.push(Score {
                            example_id: u.ids[i].clone(),
                            dataset: r.to_string(),
                            split: split.clone(),
                            method: method.to_string(),
                            layer,
                            multiplier: mult,
                            position: position.to_string(),
                            metric,
                            value,
                        });
                    }
                }
            }
            Ok(())
        };
        progress.set_message(format!("{r}: unsteered"));
        let base = sweep(
            &lm.model,
            &u.items,
            None,
            &[0.0],
            &SweepOptions::default(),
            |n| progress.inc(n as u64),
        )?
        .remove(0);
        push("unsteered", NO_LAYER, 0.0, "none", &base, &mut scores)?;

        for sel in &p.positions.0 {
            let pos_name = sel.name();
            let opts = opts_for(sel)?;
            // (method index, layer) groups: per-layer methods at one layer share the
            // unsteered prefix below it; all-layer methods (ICV) run on their own.
            let mut groups: Vec<(Option<usize>, Vec<usize>)> = layers
                .iter()
                .map(|&l| {
                    (
                        Some(l),
                        (0..stored.len())
                            .filter(|&k| stored[k].per_layer())
                            .collect(),
                    )
                })
                .collect();
            for k in (0..stored.len()).filter(|&k| !stored[k].per_layer()) {
                for l in stored[k].fixed_layers() {
                    groups.push((l, vec![k]));
                }
            }
            for (layer, members) in groups {
                if members.is_empty() {
                    continue;
                }
                let steers: Vec<steerbench_eval::steer::Steer> = members
                    .iter()
                    .map(|&k| stored[k].steer(layer.unwrap_or(0)))
                    .collect::<Result<_>>()?;
                let layer_i = layer.map_or(NO_LAYER, |l| l as i32);
                progress.set_message(format!(
                    "{r}: layer {}",
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
                    let refs: Vec<&steerbench_eval::steer::Steer> =
                        js.iter().map(|&j| &steers[j]).collect();
                    let vals = sweep_many(&lm.model, &u.items, &refs, &mults, &opts, |n| {
                        progress.inc(n as u64)
                    })?;
                    for (v, &j) in vals.iter().zip(&js) {
                        let method = &stored[members[j]].method;
                        for (a, per_item) in v.iter().enumerate() {
                            push(
                                method,
                                layer_i,
                                p.multipliers[a],
                                pos_name,
                                per_item,
                                &mut scores,
                            )?;
                        }
                        // Open-ended likelihood relative to unsteered, and steerability slopes.
                        derived(&mut scores, p, u, r, &split, method, layer_i, pos_name)?;
                    }
                }
            }
        }

        // Prompting baselines (unsteered model, different prompts).
        for b in &p.baselines {
            match b {
                // A system prompt cannot state an ICL task's answer; few-shot is its baseline.
                Baseline::SystemPrompt(_) if matches!(records, data::Records::IclTask(_)) => {}
                Baseline::SystemPrompt(sp) => {
                    for (name, text) in [
                        ("system_prompt_positive", &sp.positive),
                        ("system_prompt_negative", &sp.negative),
                    ] {
                        let Some(text) = text else {
                            bail!("baseline system_prompt needs `positive` and `negative` texts (the dataset has none of its own)");
                        };
                        let bu = units(lm, records, style, Some(text), &[])?;
                        let vals = sweep(
                            &lm.model,
                            &bu.items,
                            None,
                            &[0.0],
                            &SweepOptions::default(),
                            |_| {},
                        )?
                        .remove(0);
                        push(name, NO_LAYER, 0.0, "none", &vals, &mut scores)?;
                    }
                }
                Baseline::FewShot(fs) => {
                    let train = common::records(
                        ctx,
                        &DatasetRef {
                            dataset: r.dataset.clone(),
                            split: Some(SplitName::Train),
                        },
                    )?;
                    let bu = match (records, &train) {
                        (data::Records::IclTask(queries), data::Records::IclTask(pool)) => {
                            icl_units(ctx, lm, r, queries, pool, fs.k)?
                        }
                        _ => units(lm, records, style, None, &shots_for(&train, fs.k))?,
                    };
                    let vals = sweep(
                        &lm.model,
                        &bu.items,
                        None,
                        &[0.0],
                        &SweepOptions::default(),
                        |_| {},
                    )?
                    .remove(0);
                    push("few_shot", NO_LAYER, 0.0, "none", &vals, &mut scores)?;
                }
                Baseline::LetterSwap => {
                    if let data::Records::ContrastiveAb(v) = records {
                        let swapped = data::Records::ContrastiveAb(
                            v.iter()
                                .map(data::swap_letters)
                                .collect::<std::result::Result<_, _>>()?,
                        );
                        let bu = units(lm, &swapped, style, None, &[])?;
                        let vals = sweep(
                            &lm.model,
                            &bu.items,
                            None,
                            &[0.0],
                            &SweepOptions::default(),
                            |_| {},
                        )?
                        .remove(0);
                        push("letter_swap", NO_LAYER, 0.0, "none", &vals, &mut scores)?;
                    }
                }
            }
        }
    }

    let sel = select(&scores, ctx.seed())?;
    if p.metrics.contains(&Metric::Generation) {
        let gens = generations(ctx, lm, p, &datasets, &sel, &stored, &mut scores)?;
        let mut gdf = generations_frame(&gens)?;
        ctx.write_parquet("generations", &mut gdf)?;
    }
    let mut df = scores_frame(&scores)?;
    ctx.write_parquet("scores", &mut df)?;
    let aggs = aggregate(&scores, ctx.seed());
    let mut adf = aggregates_frame(&aggs)?;
    ctx.write_parquet("aggregates", &mut adf)?;
    let mut sdf = selection_frame(&sel)?;
    ctx.write_parquet("selection", &mut sdf)?;
    let mut out = StageOutputs::default();
    out.summary.insert("score_rows".into(), scores.len().into());
    Ok(out)
}

/// A continuation with the dataset split it was generated on.
pub struct GenRow {
    pub dataset: String,
    pub split: String,
    pub g: generation::Generation,
}

/// The `generation` metric on each evaluated split that a selection is reported on:
/// continuations unsteered and at every method's chosen setting, their scores appended
/// to `scores`.
fn generations(
    ctx: &Ctx<'_>,
    lm: &LoadedModel,
    p: &EvaluateParams,
    datasets: &[(DatasetRef, data::Records, Units)],
    sel: &[Selection],
    stored: &[super::vectors::Stored],
    scores: &mut Vec<Score>,
) -> Result<Vec<GenRow>> {
    let progress = ctx.progress();
    let mut out = Vec::new();
    for (r, records, _) in datasets {
        let split = r.split.map_or("all", SplitName::name).to_string();
        let chosen: Vec<&Selection> = sel
            .iter()
            .filter(|s| s.dataset == r.dataset && s.reported_on == split)
            .collect();
        if chosen.is_empty() {
            continue;
        }
        let prompts = generation::prompts(ctx, lm, records, p.generation.limit)?;
        if prompts.is_empty() {
            continue;
        }
        let mut steers = Vec::new();
        for s in &chosen {
            let st = stored
                .iter()
                .find(|x| x.method == s.method)
                .ok_or_else(|| anyhow::anyhow!("no stored vector for `{}`", s.method))?;
            let sel = p
                .positions
                .0
                .iter()
                .find(|x| x.name() == s.position)
                .unwrap_or(&PositionSel::All);
            steers.push((st.steer(s.layer.max(0) as usize)?, positions(sel)?, *s));
        }
        let mut settings = vec![generation::Setting {
            method: "unsteered".into(),
            layer: NO_LAYER,
            multiplier: 0.0,
            position: "none".into(),
            steer: None,
        }];
        for (st, pos, s) in &steers {
            settings.push(generation::Setting {
                method: s.method.clone(),
                layer: s.layer,
                multiplier: s.multiplier,
                position: s.position.clone(),
                steer: Some((st, pos.clone())),
            });
        }
        for setting in &settings {
            progress.set_message(format!("{r}: generating ({})", setting.method));
            for g in generation::generate_and_score(ctx, lm, &prompts, setting, &p.generation)? {
                for (metric, value) in &g.scores {
                    scores.push(Score {
                        example_id: g.example_id.clone(),
                        dataset: r.to_string(),
                        split: split.clone(),
                        method: g.method.clone(),
                        layer: g.layer,
                        multiplier: g.multiplier,
                        position: g.position.clone(),
                        metric,
                        value: *value,
                    });
                }
                out.push(GenRow {
                    dataset: r.to_string(),
                    split: split.clone(),
                    g,
                });
            }
        }
    }
    Ok(out)
}

fn generations_frame(rows: &[GenRow]) -> Result<polars::prelude::DataFrame> {
    frame(vec![
        str_of("dataset", rows, |x| x.dataset.clone()),
        str_of("split", rows, |x| x.split.clone()),
        str_of("example_id", rows, |x| x.g.example_id.clone()),
        str_of("method", rows, |x| x.g.method.clone()),
        i32_col("layer", rows.iter().map(|x| x.g.layer).collect()),
        f64_of("multiplier", rows, |x| x.g.multiplier),
        str_of("position", rows, |x| x.g.position.clone()),
        str_of("prompt", rows, |x| x.g.prompt.clone()),
        str_of("text", rows, |x| x.g.text.clone()),
        u32_col("n_tokens", rows.iter().map(|x| x.g.n_tokens).collect()),
    ])
}

/// Rows derived from a finished sweep of one (method, layer, position): the
/// open-ended likelihood relative to unsteered, and per-input steerability.
#[allow(clippy::too_many_arguments)]
fn derived(
    scores: &mut Vec<Score>,
    p: &EvaluateParams,
    u: &Units,
    r: &DatasetRef,
    split: &str,
    method: &str,
    layer: i32,
    pos: &str,
) -> Result<()> {
    let ds = r.to_string();
    let mut prop: BTreeMap<&str, Vec<(f32, f64)>> = BTreeMap::new();
    let mut ll0: BTreeMap<&str, f64> = BTreeMap::new();
    for s in scores.iter().filter(|s| s.dataset == ds) {
        if s.method == "unsteered" && s.metric == "loglik_matching_minus_not" {
            ll0.insert(&s.example_id, s.value);
        }
        if s.method == method && s.layer == layer && s.position == pos && s.metric == "propensity" {
            prop.entry(&s.example_id)
                .or_default()
                .push((s.multiplier as f32, s.value));
        }
    }
    let mut new = Vec::new();
    let mk = |id: &str, mult: f64, metric: &'static str, value: f64| Score {
        example_id: id.to_string(),
        dataset: ds.clone(),
        split: split.to_string(),
        method: method.to_string(),
        layer,
        multiplier: mult,
        position: pos.to_string(),
        metric,
        value,
    };
    if wanted(p, "open_ended_likelihood") {
        for s in scores.iter().filter(|s| {
            s.dataset == ds
                && s.method == method
                && s.layer == layer
                && s.position == pos
                && s.metric == "loglik_matching_minus_not"
        }) {
            if let Some(b) = ll0.get(s.example_id.as_str()) {
                new.push(mk(
                    &s.example_id,
                    s.multiplier,
                    "open_ended_likelihood",
                    s.value - b,
                ));
            }
        }
    }
    let distinct: std::collections::BTreeSet<u64> =
        p.multipliers.iter().map(|m| m.to_bits()).collect();
    if p.metrics.contains(&Metric::Steerability) && distinct.len() >= 2 {
        for id in &u.ids {
            let Some(pts) = prop.get(id.as_str()) else {
                continue;
            };
            let (x, y): (Vec<f32>, Vec<f32>) = pts.iter().map(|(m, v)| (*m, *v as f32)).unzip();
            let fit = fit_line(&x, &y)?;
            new.push(mk(id, f64::NAN, "steerability_slope", fit.slope as f64));
            if let Some(r2) = fit.r2 {
                new.push(mk(id, f64::NAN, "steerability_r2", r2 as f64));
            }
        }
    }
    scores.extend(new);
    Ok(())
}

pub fn scores_frame(s: &[Score]) -> Result<polars::prelude::DataFrame> {
    frame(vec![
        str_col(
            "example_id",
            s.iter().map(|x| x.example_id.clone()).collect(),
        ),
        str_col("dataset", s.iter().map(|x| x.dataset.clone()).collect()),
        str_col("split", s.iter().map(|x| x.split.clone()).collect()),
        str_col("method", s.iter().map(|x| x.method.clone()).collect()),
        i32_col("layer", s.iter().map(|x| x.layer).collect()),
        f64_col("multiplier", s.iter().map(|x| x.multiplier).collect()),
        str_col("position", s.iter().map(|x| x.position.clone()).collect()),
        str_col("metric", s.iter().map(|x| x.metric.to_string()).collect()),
        f64_col("value", s.iter().map(|x| x.value).collect()),
    ])
}

/// Group key of aggregates: (dataset, split, method, layer, multiplier bits, position, metric).
type Key = (String, String, String, i32, u64, String, String);

pub struct Agg {
    pub key: Key,
    pub n: u32,
    pub mean: f64,
    pub std: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Share of negative values (the anti-steerable fraction for slopes).
    pub frac_negative: f64,
}

pub fn aggregate(scores: &[Score], seed: u64) -> Vec<Agg> {
    let mut groups: BTreeMap<Key, Vec<f32>> = BTreeMap::new();
    for s in scores {
        let key = (
            s.dataset.clone(),
            s.split.clone(),
            s.method.clone(),
            s.layer,
            s.multiplier.to_bits(),
            s.position.clone(),
            s.metric.to_string(),
        );
        groups.entry(key).or_default().push(s.value as f32);
    }
    let cfg = BootstrapConfig {
        resamples: 1000,
        level: 0.95,
        seed,
    };
    groups
        .into_iter()
        .map(|(key, xs)| {
            let (mean, std) = mean_std(&xs).unwrap_or((f32::NAN, f32::NAN));
            let ci = bootstrap_mean_ci(&xs, &cfg).ok();
            Agg {
                key,
                n: xs.len() as u32,
                mean: mean as f64,
                std: std as f64,
                ci_low: ci.map_or(f64::NAN, |c| c.lo as f64),
                ci_high: ci.map_or(f64::NAN, |c| c.hi as f64),
                frac_negative: xs.iter().filter(|x| **x < 0.0).count() as f64 / xs.len() as f64,
            }
        })
        .collect()
}

pub fn aggregates_frame(a: &[Agg]) -> Result<polars::prelude::DataFrame> {
    frame(vec![
        str_col("dataset", a.iter().map(|x| x.key.0.clone()).collect()),
        str_col("split", a.iter().map(|x| x.key.1.clone()).collect()),
        str_col("method", a.iter().map(|x| x.key.2.clone()).collect()),
        i32_col("layer", a.iter().map(|x| x.key.3).collect()),
        f64_col(
            "multiplier",
            a.iter().map(|x| f64::from_bits(x.key.4)).collect(),
        ),
        str_col("position", a.iter().map(|x| x.key.5.clone()).collect()),
        str_col("metric", a.iter().map(|x| x.key.6.clone()).collect()),
        u32_col("n", a.iter().map(|x| x.n).collect()),
        f64_col("mean", a.iter().map(|x| x.mean).collect()),
        f64_col("std", a.iter().map(|x| x.std).collect()),
        f64_col("ci_low", a.iter().map(|x| x.ci_low).collect()),
        f64_col("ci_high", a.iter().map(|x| x.ci_high).collect()),
        f64_col("frac_negative", a.iter().map(|x| x.frac_negative).collect()),
    ])
}

/// The chosen setting of one (dataset, method, position) and its test result.
pub struct Selection {
    pub dataset: String,
    pub method: String,
    pub position: String,
    pub selected_on: String,
    pub reported_on: String,
    pub layer: i32,
    pub multiplier: f64,
    pub val_score: f64,
    pub effect: f64,
    pub effect_ci_low: f64,
    pub effect_ci_high: f64,
    pub standardized_effect: f64,
    pub steerability_mean: f64,
    pub steerability_std: f64,
    pub anti_steerable_fraction: f64,
    pub r2_mean: f64,
    pub n: u32,
}

/// Best (layer, multiplier) per method on the validation split by mean propensity,
/// reported on the test split (or the same split when only one was evaluated).
fn select(scores: &[Score], seed: u64) -> Result<Vec<Selection>> {
    let base_name = |d: &str| d.split('.').next().unwrap_or(d).to_string();
    let splits_of = |ds: &str| -> Vec<String> {
        let mut v: Vec<String> = scores
            .iter()
            .filter(|s| base_name(&s.dataset) == ds)
            .map(|s| s.split.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut keys: BTreeMap<(String, String, String), ()> = BTreeMap::new();
    for s in scores.iter().filter(|s| {
        s.layer != NO_LAYER
            || (s.method != "unsteered"
                && !s.method.starts_with("system_prompt")
                && s.method != "few_shot"
                && s.method != "letter_swap")
    }) {
        keys.insert(
            (base_name(&s.dataset), s.method.clone(), s.position.clone()),
            (),
        );
    }
    let cfg = BootstrapConfig {
        resamples: 1000,
        level: 0.95,
        seed,
    };
    let mut out = Vec::new();
    for (ds, method, pos) in keys.into_keys() {
        let splits = splits_of(&ds);
        let sel_split = if splits.iter().any(|s| s == "val") {
            "val"
        } else {
            splits[0].as_str()
        };
        let rep_split = if splits.iter().any(|s| s == "test") {
            "test"
        } else {
            sel_split
        };
        let prop = |split: &str, layer: i32, mult: f64| -> BTreeMap<String, f32> {
            scores
                .iter()
                .filter(|s| {
                    base_name(&s.dataset) == ds && s.split == split && s.metric == "propensity"
                })
                .filter(|s| {
                    (s.method == method
                        && s.layer == layer
                        && s.position == pos
                        && s.multiplier == mult)
                        || (mult == 0.0 && s.method == "unsteered")
                })
                .map(|s| (s.example_id.clone(), s.value as f32))
                .collect()
        };
        // Candidates are the steered settings (multiplier 0 is the unsteered baseline,
        // reported on its own); `exact` keeps each one's multiplier as written.
        let mut candidates = Vec::new();
        let mut exact: Vec<(i32, f64)> = Vec::new();
        for s in scores.iter().filter(|s| {
            base_name(&s.dataset) == ds
                && s.split == sel_split
                && s.method == method
                && s.position == pos
                && s.metric == "propensity"
                && s.multiplier != 0.0
        }) {
            if !exact.contains(&(s.layer, s.multiplier)) {
                let vals: Vec<f32> = prop(sel_split, s.layer, s.multiplier)
                    .into_values()
                    .collect();
                let (m, _) = mean_std(&vals)?;
                candidates.push(Candidate {
                    layer: s.layer.max(0) as usize,
                    multiplier: s.multiplier as f32,
                    score: m,
                });
                exact.push((s.layer, s.multiplier));
            }
        }
        let Ok(best) = select_best(&candidates) else {
            continue;
        };
        let Some(&(layer, multiplier)) = candidates
            .iter()
            .position(|c| *c == best)
            .map(|k| &exact[k])
        else {
            continue;
        };
        let steered = prop(rep_split, layer, multiplier);
        let unsteered: BTreeMap<String, f32> = scores
            .iter()
            .filter(|s| {
                base_name(&s.dataset) == ds
                    && s.split == rep_split
                    && s.method == "unsteered"
                    && s.metric == "propensity"
            })
            .map(|s| (s.example_id.clone(), s.value as f32))
            .collect();
        let diffs: Vec<f32> = steered
            .iter()
            .filter_map(|(id, v)| unsteered.get(id).map(|u| v - u))
            .collect();
        let ci = bootstrap_mean_ci(&diffs, &cfg).ok();
        let sv: Vec<f32> = steered.values().copied().collect();
        let uv: Vec<f32> = unsteered.values().copied().collect();
        // Per-input rows of the chosen (layer, position) on the reported split.
        let at_choice = |metric: &str| -> Vec<f32> {
            scores
                .iter()
                .filter(|s| {
                    base_name(&s.dataset) == ds
                        && s.split == rep_split
                        && s.method == method
                        && s.layer == layer
                        && s.position == pos
                        && s.metric == metric
                })
                .map(|s| s.value as f32)
                .collect()
        };
        let slopes = at_choice("steerability_slope");
        let r2s = at_choice("steerability_r2");
        let (sm, ss) = mean_std(&slopes).unwrap_or((f32::NAN, f32::NAN));
        out.push(Selection {
            dataset: ds.clone(),
            method: method.clone(),
            position: pos.clone(),
            selected_on: sel_split.to_string(),
            reported_on: rep_split.to_string(),
            layer,
            multiplier,
            val_score: best.score as f64,
            effect: ci.map_or(f64::NAN, |c| c.estimate as f64),
            effect_ci_low: ci.map_or(f64::NAN, |c| c.lo as f64),
            effect_ci_high: ci.map_or(f64::NAN, |c| c.hi as f64),
            standardized_effect: effect_size(&sv, &uv).map_or(f64::NAN, |e| e as f64),
            steerability_mean: sm as f64,
            steerability_std: ss as f64,
            anti_steerable_fraction: if slopes.is_empty() {
                f64::NAN
            } else {
                slopes.iter().filter(|x| **x < 0.0).count() as f64 / slopes.len() as f64
            },
            r2_mean: mean_std(&r2s).map_or(f64::NAN, |(m, _)| m as f64),
            n: diffs.len() as u32,
        });
    }
    Ok(out)
}

fn selection_frame(s: &[Selection]) -> Result<polars::prelude::DataFrame> {
    frame(vec![
        str_of("dataset", s, |x| x.dataset.clone()),
        str_of("method", s, |x| x.method.clone()),
        str_of("position", s, |x| x.position.clone()),
        str_of("selected_on", s, |x| x.selected_on.clone()),
        str_of("reported_on", s, |x| x.reported_on.clone()),
        i32_col("layer", s.iter().map(|x| x.layer).collect()),
        f64_of("multiplier", s, |x| x.multiplier),
        f64_of("val_score", s, |x| x.val_score),
        f64_of("effect", s, |x| x.effect),
        f64_of("effect_ci_low", s, |x| x.effect_ci_low),
        f64_of("effect_ci_high", s, |x| x.effect_ci_high),
        f64_of("standardized_effect", s, |x| x.standardized_effect),
        f64_of("steerability_mean", s, |x| x.steerability_mean),
        f64_of("steerability_std", s, |x| x.steerability_std),
        f64_of("anti_steerable_fraction", s, |x| x.anti_steerable_fraction),
        f64_of("r2_mean", s, |x| x.r2_mean),
        u32_col("n", s.iter().map(|x| x.n).collect()),
    ])
}
