//! `report`: builds the report's data from other stages' Parquet outputs and renders
//! it with steerbench-report. `steerbench report RUN_DIR` calls the same
//! [`build`] on the same folders, so it reproduces report.md byte for byte without
//! loading the model.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use steerbench_report as rep;
use steerbench_steering::metrics::stats::{bootstrap_mean_ci, effect_size, BootstrapConfig};

use super::common::{self, Ctx};
use super::table::*;
use crate::exec::{StageOutputs, StageRunner};
use crate::spec::StageSpec;
use crate::store::{Manifest, RunStore};

pub struct Report;

impl StageRunner<common::Services> for Report {
    fn version(&self) -> u32 {
        1
    }

    fn run(&self, ctx: &Ctx<'_>) -> Result<StageOutputs> {
        let StageSpec::Report(p) = ctx.params() else {
            bail!("not a report stage")
        };
        let mut inputs = Vec::new();
        for name in &p.inputs {
            let dir = ctx.input_dir(name)?.to_path_buf();
            inputs.push(dir);
        }
        let data = build(&inputs)?;
        let template = p.template.as_deref();
        rep::render(&data, ctx.out_dir(), template)?;
        Ok(StageOutputs::default())
    }
}

/// A committed stage folder and its manifest.
struct Folder {
    dir: PathBuf,
    manifest: Manifest,
}

/// The input folders plus their declared lineage (inputs of inputs), for provenance.
fn lineage(inputs: &[PathBuf]) -> Result<Vec<Folder>> {
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

/// One aggregates row.
#[derive(Debug, Clone)]
struct AggRow {
    dataset: String,
    split: String,
    method: String,
    layer: i32,
    multiplier: f64,
    position: String,
    metric: String,
    n: u32,
    mean: f64,
    ci_low: f64,
    ci_high: f64,
}

fn read_aggs(path: &Path) -> Result<Vec<AggRow>> {
    let df = crate::store::read_parquet(path)?;
    let (d, s, m, l, x, p, k, n, mean, lo, hi) = (
        read_str(&df, "dataset")?,
        read_str(&df, "split")?,
        read_str(&df, "method")?,
        read_i32(&df, "layer")?,
        read_f64(&df, "multiplier")?,
        read_str(&df, "position")?,
        read_str(&df, "metric")?,
        read_u32(&df, "n")?,
        read_f64(&df, "mean")?,
        read_f64(&df, "ci_low")?,
        read_f64(&df, "ci_high")?,
    );
    Ok((0..d.len())
        .map(|i| AggRow {
            dataset: d[i].clone(),
            split: s[i].clone(),
            method: m[i].clone(),
            layer: l[i],
            multiplier: x[i],
            position: p[i].clone(),
            metric: k[i].clone(),
            n: n[i],
            mean: mean[i],
            ci_low: lo[i],
            ci_high: hi[i],
        })
        .collect())
}

/// Per-input scores: (dataset, split, method, layer, multiplier bits, metric) → id → value.
type ScoreMap = BTreeMap<(String, String, String, i32, u64, String), BTreeMap<String, f64>>;

fn read_scores(path: &Path) -> Result<ScoreMap> {
    let df = crate::store::read_parquet(path)?;
    let (id, d, s, m, l, x, k, v) = (
        read_str(&df, "example_id")?,
        read_str(&df, "dataset")?,
        read_str(&df, "split")?,
        read_str(&df, "method")?,
        read_i32(&df, "layer")?,
        read_f64(&df, "multiplier")?,
        read_str(&df, "metric")?,
        read_f64(&df, "value")?,
    );
    let mut out = ScoreMap::new();
    for i in 0..id.len() {
        out.entry((
            d[i].clone(),
            s[i].clone(),
            m[i].clone(),
            l[i],
            x[i].to_bits(),
            k[i].clone(),
        ))
        .or_default()
        .insert(id[i].clone(), v[i]);
    }
    Ok(out)
}

fn est(mean: f64, lo: f64, hi: f64) -> rep::Estimate {
    if lo.is_finite() && hi.is_finite() {
        rep::Estimate::with_ci(mean, lo, hi)
    } else {
        rep::Estimate::new(mean)
    }
}

fn opt_layer(l: i32) -> Option<usize> {
    (l >= 0).then_some(l as usize)
}

const BASELINE_METHODS: &[&str] = &[
    "unsteered",
    "system_prompt_positive",
    "system_prompt_negative",
    "few_shot",
    "few_shot_negative",
    "letter_swap",
];

/// Paired effect (baseline − unsteered) on the same inputs, with a bootstrap CI.
fn paired_effect(
    scores: &ScoreMap,
    key: &(String, String, String, i32, u64, String),
    seed: u64,
) -> Option<rep::EffectMetrics> {
    let base_key = (
        key.0.clone(),
        key.1.clone(),
        "unsteered".to_string(),
        -1,
        0f64.to_bits(),
        key.5.clone(),
    );
    let (x, u) = (scores.get(key)?, scores.get(&base_key)?);
    let diffs: Vec<f32> = x
        .iter()
        .filter_map(|(id, v)| u.get(id).map(|b| (v - b) as f32))
        .collect();
    let ci = bootstrap_mean_ci(
        &diffs,
        &BootstrapConfig {
            resamples: 1000,
            level: 0.95,
            seed,
        },
    )
    .ok()?;
    let xv: Vec<f32> = x.values().map(|v| *v as f32).collect();
    let uv: Vec<f32> = u.values().map(|v| *v as f32).collect();
    Some(rep::EffectMetrics {
        effect: Some(rep::Estimate::with_ci(
            ci.estimate as f64,
            ci.lo as f64,
            ci.hi as f64,
        )),
        standardized_effect: effect_size(&xv, &uv)
            .ok()
            .map(|e| rep::Estimate::new(e as f64)),
        n: Some(diffs.len()),
        ..Default::default()
    })
}

/// The report's data from the given stage folders (evaluate and degradation stages).
/// Mean generation scores per (dataset split, condition).
fn generation_quality(aggs: &[AggRow]) -> Vec<rep::GenerationQualityRow> {
    let mut groups: BTreeMap<(String, String, i32, u64, String), rep::GenerationQualityRow> =
        BTreeMap::new();
    for a in aggs.iter().filter(|a| a.metric.starts_with("gen_")) {
        let key = (
            a.dataset.clone(),
            a.method.clone(),
            a.layer,
            a.multiplier.to_bits(),
            a.position.clone(),
        );
        let row = groups
            .entry(key)
            .or_insert_with(|| rep::GenerationQualityRow {
                dataset: if a.position == "all" || a.position == "none" {
                    a.dataset.clone()
                } else {
                    format!("{} ({})", a.dataset, a.position)
                },
                method: a.method.clone(),
                layer: opt_layer(a.layer),
                multiplier: (a.method != "unsteered").then_some(a.multiplier),
                concept_similarity: None,
                fluency_ppl: None,
                distinct_2: None,
                n: None,
            });
        let e = Some(est(a.mean, a.ci_low, a.ci_high));
        match a.metric.as_str() {
            "gen_concept_similarity" => row.concept_similarity = e,
            "gen_fluency_ppl" => {
                row.fluency_ppl = e;
                row.n = Some(a.n as usize);
            }
            "gen_distinct_2" => row.distinct_2 = e,
            _ => {}
        }
    }
    groups.into_values().collect()
}

/// Side-by-side continuations: per dataset split, the first `k` prompts unsteered and
/// under the method with the largest chosen effect.
fn generation_examples(
    path: &Path,
    selection: &polars::prelude::DataFrame,
    k: usize,
) -> Result<Vec<rep::GenerationRow>> {
    let df = crate::store::read_parquet(path)?;
    let (ds, id, m, l, x, pos, prompt, text) = (
        read_str(&df, "dataset")?,
        read_str(&df, "example_id")?,
        read_str(&df, "method")?,
        read_i32(&df, "layer")?,
        read_f64(&df, "multiplier")?,
        read_str(&df, "position")?,
        read_str(&df, "prompt")?,
        read_str(&df, "text")?,
    );
    let (sd, sm, sp, se) = (
        read_str(selection, "dataset")?,
        read_str(selection, "method")?,
        read_str(selection, "position")?,
        read_f64(selection, "effect")?,
    );
    // Distinct dataset splits in first-seen order (rows need not be grouped).
    let mut datasets: Vec<&String> = Vec::new();
    for d in &ds {
        if !datasets.contains(&d) {
            datasets.push(d);
        }
    }
    let mut out = Vec::new();
    for d in datasets {
        let base = d.split('.').next().unwrap_or(d);
        let best = (0..sd.len())
            .filter(|&i| sd[i] == base && se[i].is_finite())
            .filter(|&i| (0..m.len()).any(|j| &ds[j] == d && m[j] == sm[i] && pos[j] == sp[i]))
            .max_by(|&a, &b| se[a].total_cmp(&se[b]));
        let Some(b) = best else { continue };
        let unsteered: BTreeMap<&str, &str> = (0..m.len())
            .filter(|&j| &ds[j] == d && m[j] == "unsteered")
            .map(|j| (id[j].as_str(), text[j].as_str()))
            .collect();
        for j in (0..m.len())
            .filter(|&j| &ds[j] == d && m[j] == sm[b] && pos[j] == sp[b])
            .take(k)
        {
            out.push(rep::GenerationRow {
                dataset: Some(d.clone()),
                prompt: prompt[j].clone(),
                unsteered: unsteered.get(id[j].as_str()).unwrap_or(&"").to_string(),
                steered: text[j].clone(),
                method: m[j].clone(),
                layer: opt_layer(l[j]),
                multiplier: x[j],
            });
        }
    }
    Ok(out)
}

/// ICL rows: per chosen (dataset, method, position) of an icl_task dataset, top-1 accuracy
/// on the reported split zero-shot (unsteered), few-shot, and zero-shot with the vector
/// at the validation-chosen setting.
fn icl_rows(selection: &polars::prelude::DataFrame, aggs: &[AggRow]) -> Result<Vec<rep::IclRow>> {
    let (ds, m, pos, l, x, rep_on) = (
        read_str(selection, "dataset")?,
        read_str(selection, "method")?,
        read_str(selection, "position")?,
        read_i32(selection, "layer")?,
        read_f64(selection, "multiplier")?,
        read_str(selection, "reported_on")?,
    );
    let find = |dataset: &str, method: &str, pred: &dyn Fn(&AggRow) -> bool| {
        aggs.iter()
            .find(|a| {
                a.dataset == dataset && a.method == method && a.metric == "icl_accuracy" && pred(a)
            })
            .map(|a| (est(a.mean, a.ci_low, a.ci_high), a.n as usize))
    };
    let mut out = Vec::new();
    for i in 0..ds.len() {
        let split_ds = format!("{}.{}", ds[i], rep_on[i]);
        let Some((vector, n)) = find(&split_ds, &m[i], &|a| {
            a.layer == l[i] && a.multiplier == x[i] && a.position == pos[i]
        }) else {
            continue;
        };
        let task = if pos[i] == "all" {
            ds[i].clone()
        } else {
            format!("{} ({})", ds[i], pos[i])
        };
        out.push(rep::IclRow {
            task,
            method: m[i].clone(),
            layer: opt_layer(l[i]),
            zero_shot: find(&split_ds, "unsteered", &|_| true).map(|e| e.0),
            few_shot: find(&split_ds, "few_shot", &|_| true).map(|e| e.0),
            zero_shot_vector: Some(vector),
            n: Some(n),
        });
    }
    Ok(out)
}

pub fn build(inputs: &[PathBuf]) -> Result<rep::ReportData> {
    let folders = lineage(inputs)?;
    let first = folders
        .first()
        .context("a report needs at least one input stage")?;
    let pv = &first.manifest.provenance;
    let mut datasets: BTreeMap<String, (String, String)> = BTreeMap::new();
    for f in &folders {
        for (name, d) in &f.manifest.provenance.datasets {
            datasets.insert(name.clone(), (d.source.clone(), d.blake3.clone()));
        }
    }
    let model_id = folders
        .iter()
        .find_map(|f| f.manifest.provenance.model_id.clone())
        .unwrap_or_default();
    let weight_hash = folders
        .iter()
        .find_map(|f| f.manifest.provenance.model_weight_hash.clone());
    let provenance = rep::Provenance {
        model_id: model_id.clone(),
        weight_hash,
        datasets: datasets
            .into_iter()
            .map(|(name, (source, hash))| rep::DatasetProvenance {
                name,
                source: Some(source),
                hash: Some(hash),
            })
            .collect(),
        spec_hash: Some(pv.spec_hash.clone()),
        steerbench_version: pv.steerbench_version.clone(),
        git_commit: pv.git_commit.clone(),
        seed: Some(pv.seed),
        hardware: Some(format!(
            "{} threads, {}",
            pv.threads,
            std::env::consts::ARCH
        )),
        stage_times: folders
            .iter()
            .map(|f| rep::StageTime {
                stage: f.manifest.stage.clone(),
                seconds: f.manifest.timings.wall_seconds,
                cached: false,
            })
            .collect(),
    };
    let seed = pv.seed;

    let mut data = rep::ReportData {
        title: format!("steerbench report: {}", first.manifest.pipeline),
        provenance,
        setup: rep::Setup {
            methods: vec![],
            layers: vec![],
            multipliers: vec![],
            positions: vec![],
            splits: vec![],
            metrics: vec![],
        },
        main: vec![],
        baselines: vec![],
        degradation: Default::default(),
        letter_bias: vec![],
        icl: vec![],
        generations: vec![],
        generation_quality: vec![],
        curves: vec![],
        heatmap: vec![],
        slopes: vec![],
        pareto: rep::Pareto {
            effect_label: "propensity effect (test)".into(),
            degradation_label: "KL from unsteered (nats)".into(),
            points: vec![],
        },
        reproduce: vec![
            format!("steerbench run pipelines/{}.yaml", first.manifest.pipeline),
            format!("steerbench report runs/{}", first.manifest.pipeline),
        ],
    };

    let mut eval_aggs = Vec::new();
    let mut eval_scores = ScoreMap::new();
    let mut deg_aggs = Vec::new();
    let mut settings: Vec<(String, i32, f64, String)> = Vec::new();
    for f in folders.iter().filter(|f| inputs.contains(&f.dir)) {
        match f.manifest.kind.as_str() {
            "evaluate" => {
                let aggs = read_aggs(&f.dir.join("aggregates.parquet"))?;
                eval_scores.extend(read_scores(&f.dir.join("scores.parquet"))?);
                let df = crate::store::read_parquet(&f.dir.join("selection.parquet"))?;
                data.icl.extend(icl_rows(&df, &aggs)?);
                let gen_path = f.dir.join("generations.parquet");
                if gen_path.exists() {
                    data.generation_quality.extend(generation_quality(&aggs));
                    data.generations
                        .extend(generation_examples(&gen_path, &df, 3)?);
                }
                // ICL datasets are selected on log p(correct first answer token).
                let icl_sets: BTreeSet<String> = aggs
                    .iter()
                    .filter(|a| a.metric == "icl_accuracy")
                    .map(|a| a.dataset.split('.').next().unwrap_or("").to_string())
                    .collect();
                eval_aggs.extend(aggs);
                let (ds, m, pos, l, x) = (
                    read_str(&df, "dataset")?,
                    read_str(&df, "method")?,
                    read_str(&df, "position")?,
                    read_i32(&df, "layer")?,
                    read_f64(&df, "multiplier")?,
                );
                let (e, lo, hi, se) = (
                    read_f64(&df, "effect")?,
                    read_f64(&df, "effect_ci_low")?,
                    read_f64(&df, "effect_ci_high")?,
                    read_f64(&df, "standardized_effect")?,
                );
                let (sm, ss, af, r2, n) = (
                    read_f64(&df, "steerability_mean")?,
                    read_f64(&df, "steerability_std")?,
                    read_f64(&df, "anti_steerable_fraction")?,
                    read_f64(&df, "r2_mean")?,
                    read_u32(&df, "n")?,
                );
                let fin = |v: f64| v.is_finite().then_some(v);
                for i in 0..ds.len() {
                    let metrics = rep::EffectMetrics {
                        effect: Some(est(e[i], lo[i], hi[i])),
                        standardized_effect: fin(se[i]).map(rep::Estimate::new),
                        steerability_mean: fin(sm[i]),
                        steerability_std: fin(ss[i]),
                        anti_steerable_fraction: fin(af[i]),
                        r_squared: fin(r2[i]),
                        n: Some(n[i] as usize),
                    };
                    let label = if pos[i] == "all" {
                        ds[i].clone()
                    } else {
                        format!("{} ({})", ds[i], pos[i])
                    };
                    let baseline = match m[i].as_str() {
                        "random" => Some(rep::BaselineKind::Random),
                        "shuffled" => Some(rep::BaselineKind::Shuffled),
                        _ => None,
                    };
                    if let Some(kind) = baseline {
                        data.baselines.push(rep::BaselineRow {
                            dataset: label.clone(),
                            baseline: kind,
                            metric: "propensity".into(),
                            layer: opt_layer(l[i]),
                            multiplier: Some(x[i]),
                            metrics: metrics.clone(),
                        });
                    }
                    let metric = if icl_sets.contains(&ds[i]) {
                        "log p(answer)"
                    } else {
                        "propensity"
                    };
                    data.main.push(rep::MainRow {
                        dataset: label,
                        method: m[i].clone(),
                        metric: metric.into(),
                        best_layer: opt_layer(l[i]),
                        best_multiplier: Some(x[i]),
                        metrics,
                    });
                }
            }
            "degradation" => {
                deg_aggs.extend(read_aggs(&f.dir.join("aggregates.parquet"))?);
                let df = crate::store::read_parquet(&f.dir.join("settings.parquet"))?;
                let (m, l, x) = (
                    read_str(&df, "method")?,
                    read_i32(&df, "layer")?,
                    read_f64(&df, "multiplier")?,
                );
                let c = read_str(&df, "chosen_for")?;
                for i in 0..m.len() {
                    settings.push((m[i].clone(), l[i], x[i], c[i].clone()));
                }
            }
            _ => {}
        }
    }

    // Setup.
    let methods: BTreeSet<String> = eval_aggs
        .iter()
        .filter(|a| !BASELINE_METHODS.contains(&a.method.as_str()))
        .map(|a| a.method.clone())
        .collect();
    let layers: BTreeSet<usize> = eval_aggs
        .iter()
        .filter_map(|a| opt_layer(a.layer))
        .collect();
    let mut mults: Vec<f64> = eval_aggs
        .iter()
        .filter(|a| !BASELINE_METHODS.contains(&a.method.as_str()) && a.multiplier.is_finite())
        .map(|a| a.multiplier)
        .collect();
    mults.sort_by(f64::total_cmp);
    mults.dedup();
    let positions: BTreeSet<String> = eval_aggs
        .iter()
        .filter(|a| a.position != "none")
        .map(|a| a.position.clone())
        .collect();
    let metrics: BTreeSet<String> = eval_aggs.iter().map(|a| a.metric.clone()).collect();
    let mut split_sizes: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for a in eval_aggs
        .iter()
        .filter(|a| a.method == "unsteered" && a.metric == "propensity")
    {
        let e = split_sizes
            .entry(a.dataset.split('.').next().unwrap_or("").to_string())
            .or_default();
        match a.split.as_str() {
            "train" => e.0 = a.n as usize,
            "val" => e.1 = a.n as usize,
            _ => e.2 = a.n as usize,
        }
    }
    data.setup = rep::Setup {
        methods: methods.iter().cloned().collect(),
        layers: layers.into_iter().collect(),
        multipliers: mults,
        positions: positions.into_iter().collect(),
        splits: split_sizes
            .into_iter()
            .map(|(dataset, (train, val, test))| rep::SplitInfo {
                dataset,
                train,
                val,
                test,
            })
            .collect(),
        metrics: metrics.into_iter().collect(),
    };

    // The reported split of each dataset: test when present.
    let reported = |a: &AggRow| -> bool {
        let has_test = eval_aggs.iter().any(|b| {
            b.dataset.split('.').next() == a.dataset.split('.').next() && b.split == "test"
        });
        if has_test {
            a.split == "test"
        } else {
            true
        }
    };

    // Prompting baselines and the unsteered row, on the reported split.
    for (key, _) in eval_scores
        .iter()
        .filter(|(k, _)| k.5 == "propensity" && BASELINE_METHODS.contains(&k.2.as_str()))
    {
        let has_test = eval_scores
            .keys()
            .any(|k| k.0.split('.').next() == key.0.split('.').next() && k.1 == "test");
        if has_test && key.1 != "test" {
            continue;
        }
        let kind = match key.2.as_str() {
            "unsteered" => rep::BaselineKind::Unsteered,
            "system_prompt_positive" => rep::BaselineKind::SystemPromptPositive,
            "system_prompt_negative" => rep::BaselineKind::SystemPromptNegative,
            "few_shot" => rep::BaselineKind::FewShotPositive,
            "few_shot_negative" => rep::BaselineKind::FewShotNegative,
            _ => continue,
        };
        if let Some(metrics) = paired_effect(&eval_scores, key, seed) {
            let dataset = key.0.split('.').next().unwrap_or("").to_string();
            data.baselines.push(rep::BaselineRow {
                dataset,
                baseline: kind,
                metric: "propensity".into(),
                layer: None,
                multiplier: None,
                metrics,
            });
        }
    }
    data.baselines
        .sort_by(|a, b| (a.dataset.as_str(), a.baseline).cmp(&(b.dataset.as_str(), b.baseline)));

    // Letter bias: p(A) share, original vs swapped letters, unsteered.
    for a in eval_aggs
        .iter()
        .filter(|a| a.metric == "p_a_share" && a.method == "unsteered" && reported(a))
    {
        let swapped = eval_aggs.iter().find(|b| {
            b.metric == "p_a_share" && b.method == "letter_swap" && b.dataset == a.dataset
        });
        data.letter_bias.push(rep::LetterBiasRow {
            dataset: a.dataset.clone(),
            condition: "unsteered".into(),
            p_a_original: Some(est(a.mean, a.ci_low, a.ci_high)),
            p_a_swapped: swapped.map(|b| est(b.mean, b.ci_low, b.ci_high)),
            n: Some(a.n as usize),
        });
    }

    // Curves and heat map on the reported split.
    let mut curves: BTreeMap<(String, String, i32, String), Vec<rep::CurvePoint>> = BTreeMap::new();
    for a in eval_aggs.iter().filter(|a| {
        reported(a) && !BASELINE_METHODS.contains(&a.method.as_str()) && a.multiplier.is_finite()
    }) {
        if a.metric == "propensity" || a.metric == "ab_probability" {
            let label = if a.position == "all" {
                a.dataset.clone()
            } else {
                format!("{} ({})", a.dataset, a.position)
            };
            curves
                .entry((label.clone(), a.method.clone(), a.layer, a.metric.clone()))
                .or_default()
                .push(rep::CurvePoint {
                    multiplier: a.multiplier,
                    mean: a.mean,
                    ci_low: a.ci_low.is_finite().then_some(a.ci_low),
                    ci_high: a.ci_high.is_finite().then_some(a.ci_high),
                });
            if a.metric == "propensity" && a.layer >= 0 {
                data.heatmap.push(rep::HeatCell {
                    dataset: label,
                    method: a.method.clone(),
                    metric: a.metric.clone(),
                    layer: a.layer as usize,
                    multiplier: a.multiplier,
                    value: a.mean,
                });
            }
        }
    }
    for ((dataset, method, layer, metric), mut points) in curves {
        points.sort_by(|a, b| a.multiplier.total_cmp(&b.multiplier));
        data.curves.push(rep::Curve {
            dataset,
            method,
            layer: opt_layer(layer),
            metric,
            points,
        });
    }

    // Per-input slopes at each method's chosen layer.
    for m in &data.main {
        let layer = m.best_layer.map_or(-1, |l| l as i32);
        let slopes: Vec<f64> = eval_scores
            .iter()
            .filter(|(k, _)| {
                k.0.split('.').next() == m.dataset.split(' ').next()
                    && k.2 == m.method
                    && k.3 == layer
                    && k.5 == "steerability_slope"
            })
            .filter(|(k, _)| k.1 == "test" || !eval_scores.keys().any(|j| j.1 == "test"))
            .flat_map(|(_, v)| v.values().copied())
            .collect();
        if !slopes.is_empty() {
            data.slopes.push(rep::SlopeSet {
                dataset: m.dataset.clone(),
                method: m.method.clone(),
                layer: m.best_layer,
                slopes,
            });
        }
    }

    // Degradation.
    let deg = |method: &str, layer: i32, mult: f64, metric: &str| -> Option<rep::Estimate> {
        deg_aggs
            .iter()
            .find(|a| {
                a.method == method && a.layer == layer && a.multiplier == mult && a.metric == metric
            })
            .map(|a| est(a.mean, a.ci_low, a.ci_high))
    };
    let base_ppl = deg("unsteered", -1, 0.0, "perplexity");
    if !deg_aggs.is_empty() {
        data.degradation.unsteered = Some(rep::DegradationReference {
            perplexity: base_ppl,
            mc_accuracy: deg("unsteered", -1, 0.0, "mc_accuracy"),
        });
    }
    for (method, layer, mult, chosen) in &settings {
        let ppl = deg(method, *layer, *mult, "perplexity");
        let row = rep::DegradationRow {
            dataset: None,
            method: method.clone(),
            layer: opt_layer(*layer),
            multiplier: *mult,
            perplexity_ratio: match (ppl, base_ppl) {
                (Some(p), Some(b)) if b.value > 0.0 => Some(p.value / b.value),
                _ => None,
            },
            perplexity: ppl,
            kl: deg(method, *layer, *mult, "kl_unsteered"),
            mc_accuracy: deg(method, *layer, *mult, "mc_accuracy"),
        };
        if !chosen.is_empty() {
            data.degradation.at_chosen.push(rep::DegradationRow {
                dataset: Some(chosen.clone()),
                ..row.clone()
            });
        }
        data.degradation.sweep.push(row);
        // Pareto: effect on the reported split against KL at the same setting.
        if let Some(kl) = deg(method, *layer, *mult, "kl_unsteered") {
            for a in eval_aggs.iter().filter(|a| {
                reported(a)
                    && a.method == *method
                    && a.layer == *layer
                    && a.multiplier == *mult
                    && a.metric == "propensity"
                    && a.position == "all"
            }) {
                if let Some(u) = eval_aggs.iter().find(|u| {
                    u.method == "unsteered" && u.dataset == a.dataset && u.metric == "propensity"
                }) {
                    data.pareto.points.push(rep::ParetoPoint {
                        dataset: a.dataset.clone(),
                        method: method.clone(),
                        layer: layer.max(&0).to_owned() as usize,
                        multiplier: *mult,
                        effect: a.mean - u.mean,
                        degradation: kl.value,
                    });
                }
            }
        }
    }
    data.degradation.sweep.sort_by(|a, b| {
        (a.method.as_str(), a.layer, a.multiplier.to_bits()).cmp(&(
            b.method.as_str(),
            b.layer,
            b.multiplier.to_bits(),
        ))
    });
    if data.main.is_empty() && deg_aggs.is_empty() {
        bail!("the report's inputs hold no evaluate or degradation results");
    }
    Ok(data)
}
