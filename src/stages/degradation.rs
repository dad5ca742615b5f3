//! `degradation`: how much steering damages the model, beside every effect.
//!
//! Metrics (each on the unsteered model and under every steering setting):
//! - `perplexity`: per token window of a text corpus, exp(mean NLL);
//! - `kl_unsteered`: KL(unsteered ‖ steered) of the next-token distribution at the end
//!   of each neutral prompt (where a reply would start);
//! - `mc_accuracy`: 1/0 per multiple-choice question (argmax over the choice letters);
//! - `tool_accuracy`: 1/0 per neutral tool-choice task: every candidate call (the correct
//!   one and each distractor) is read as a continuation after the tool declaration and
//!   the task, and the model's choice is the call with the highest mean log-prob per
//!   token (summed log-likelihoods would favour short calls).
//!
//! Settings: every (layer, multiplier) an `evaluate` stage chose per method and
//! dataset (`from`), plus the `multipliers` sweep at each chosen layer; or `layers` × `multipliers` without
//! `from`. Writes `scores.parquet` and `aggregates.parquet` (same schemas as
//! `evaluate`) and `settings.parquet` (method, layer, multiplier, chosen, chosen_for).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use steerbench_data as data;
use steerbench_eval::sweep::{sweep, Item, Read, SweepOptions, Value};
use steerbench_model::{LoadedModel, Sequence};
use steerbench_steering::metrics::lm::{kl_divergence, perplexity};

use super::common::{self, Ctx};
use super::vectors::load_steerings;
use crate::analysis::aggregate;
use crate::exec::{StageOutputs, StageRunner};
use crate::spec::{DegradationMetric, DegradationParams, Layers, StageSpec};
use crate::tables::{
    read_table, Condition, Direction, MethodKind, ScoreMetric, ScoreRow, SelectionRow, SettingRow,
};

pub struct Degradation;

impl StageRunner<common::Services> for Degradation {
    fn version(&self) -> u32 {
        // 3: typed tables; settings chosen per direction (`dataset (away)`).
        // 4: perplexity windows start with BOS for models that want one (Gemma).
        4
    }

    fn run(&self, ctx: &Ctx<'_>) -> Result<StageOutputs> {
        let StageSpec::Degradation(p) = ctx.params() else {
            bail!("not a degradation stage")
        };
        run(ctx, p)
    }
}

/// One probe set: its items, ids and how to score a value against the unsteered one.
struct Probe {
    metric: DegradationMetric,
    dataset: String,
    /// One id per scored unit (a window, a prompt, a question, a task).
    ids: Vec<String>,
    items: Vec<Item>,
    /// multiple choice: the answer index per unit.
    answers: Vec<usize>,
    /// tool accuracy: the items of each unit (the correct call first, then the
    /// distractors); empty for the probes that read one item per unit.
    groups: Vec<std::ops::Range<usize>>,
}

impl Probe {
    /// The items unit `u` is scored on.
    fn unit(&self, u: usize) -> std::ops::Range<usize> {
        match self.groups.get(u) {
            Some(g) => g.clone(),
            None => u..u + 1,
        }
    }
}

fn probes(ctx: &Ctx<'_>, p: &DegradationParams, lm: &LoadedModel) -> Result<Vec<Probe>> {
    let style = common::style(ctx);
    let mut out = Vec::new();
    for m in &p.metrics {
        let (r, what) = match m {
            DegradationMetric::Perplexity => (p.corpus.as_ref(), "corpus"),
            DegradationMetric::KlUnsteered => (p.neutral.as_ref(), "neutral"),
            DegradationMetric::McAccuracy => (p.mc.as_ref(), "mc"),
            DegradationMetric::ToolAccuracy => (p.tools.as_ref(), "tools"),
        };
        let r = r.ok_or_else(|| anyhow!("metric {m:?} needs `{what}:` (a dataset split)"))?;
        let records = common::records(ctx, r)?;
        let mut probe = Probe {
            metric: *m,
            dataset: r.to_string(),
            ids: vec![],
            items: vec![],
            answers: vec![],
            groups: vec![],
        };
        match (m, &records) {
            (DegradationMetric::Perplexity, data::Records::Text(texts)) => {
                let window = ctx.dataset(r)?.dataset.window_tokens().unwrap_or(256);
                for t in texts {
                    let ids = lm.tokenizer.encode(&t.text, false)?;
                    for (k, w) in data::chunk_token_windows(&ids, window)
                        .into_iter()
                        .enumerate()
                    {
                        probe.ids.push(format!("{}#{k}", t.id));
                        // A model trained with BOS first (Gemma) is far off without it:
                        // each window starts with BOS then, and all its tokens are scored.
                        let seq = match lm.tokenizer.missing_bos(w) {
                            Some(bos) => {
                                let mut s = vec![bos];
                                s.extend_from_slice(w);
                                Sequence::new(s, 1)
                            }
                            None => Sequence::new(w.to_vec(), 1),
                        };
                        probe.items.push(Item {
                            seq,
                            read: Read::Completion,
                        });
                    }
                }
            }
            (DegradationMetric::KlUnsteered, recs) => {
                let prompts: Vec<(String, String)> = match recs {
                    data::Records::OpenEnded(v) => v.iter().map(|x| (x.id.clone(), x.prompt.clone())).collect(),
                    data::Records::ContrastiveCompletion(v) => v.iter().map(|x| (x.id.clone(), x.prompt.clone())).collect(),
                    data::Records::Text(v) => v.iter().map(|x| (x.id.clone(), x.text.clone())).collect(),
                    other => bail!("kl_unsteered reads prompts (open_ended, contrastive_completion or text), not {}", other.format().name()),
                };
                for (id, text) in prompts {
                    let ids =
                        common::encode(lm, &steerbench_eval::prompt::Prompt::user(text), style)?;
                    probe.ids.push(id);
                    probe.items.push(Item {
                        seq: Sequence::prompt(ids),
                        read: Read::NextDist,
                    });
                }
            }
            (DegradationMetric::McAccuracy, data::Records::MultipleChoice(v)) => {
                let n_choices = v.iter().map(|x| x.choices.len()).max().unwrap_or(0);
                let letters = common::letter_ids(lm, n_choices)?;
                for it in v {
                    let (parts, _) = data::mc_parts(it, data::McStyle::Paren, None)?;
                    let ids = common::encode(lm, &common::to_prompt(&parts), style)?;
                    probe.ids.push(it.id.clone());
                    probe.items.push(Item {
                        seq: Sequence::prompt(ids),
                        read: Read::NextToken(letters[..it.choices.len()].to_vec()),
                    });
                    probe.answers.push(it.answer);
                }
            }
            (DegradationMetric::ToolAccuracy, data::Records::ToolChoice(v)) => {
                for task in v {
                    let data::ToolTaskKind::Neutral {
                        correct,
                        distractors,
                    } = &task.kind
                    else {
                        continue; // behaviour tasks are `evaluate`'s
                    };
                    let (parts, _) = data::tool_parts(task);
                    let pids = common::encode(lm, &common::to_prompt(&parts), style)?;
                    let start = probe.items.len();
                    for call in std::iter::once(correct).chain(distractors) {
                        probe.items.push(Item {
                            seq: steerbench_eval::prompt::with_continuation(
                                &lm.tokenizer,
                                &pids,
                                false,
                                style,
                                &call.to_json(),
                            )?,
                            read: Read::Completion,
                        });
                    }
                    probe.ids.push(task.id.clone());
                    probe.groups.push(start..probe.items.len());
                }
                if probe.ids.is_empty() {
                    bail!(
                        "dataset `{r}` has no neutral tool-choice tasks (with `correct` and `distractors`), and `tool_accuracy` scores only those: its {} task(s) are behaviour tasks, which `evaluate` scores",
                        v.len()
                    );
                }
            }
            (m, other) => bail!(
                "metric {m:?} cannot read a {} dataset",
                other.format().name()
            ),
        }
        if probe.items.is_empty() {
            // Planning refuses empty splits, so only perplexity can get here.
            bail!(
                "dataset `{r}`: each of its {} text(s) is a single token, and perplexity needs windows of at least 2 tokens",
                records.len()
            );
        }
        let lengths: Vec<(&str, usize)> = (0..probe.ids.len())
            .flat_map(|u| probe.unit(u).map(move |i| (u, i)).collect::<Vec<_>>())
            .map(|(u, i)| (probe.ids[u].as_str(), probe.items[i].seq.tokens.len()))
            .collect();
        common::check_lengths(ctx, lm, r, lengths.into_iter())?;
        out.push(probe);
    }
    Ok(out)
}

/// Mean log-prob per token of a completion (length-normalised log-likelihood).
fn mean_logprob(v: &Value) -> f64 {
    let lp = v.as_slice();
    lp.iter().map(|x| *x as f64).sum::<f64>() / lp.len().max(1) as f64
}

/// Top-1 tool accuracy of one task: 1 when the correct call (the first of `calls`) has
/// the highest mean log-prob per token among the candidates (ties count against it).
pub(crate) fn tool_choice_correct(calls: &[Value]) -> f64 {
    let means: Vec<f64> = calls.iter().map(mean_logprob).collect();
    let best = means
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map_or(usize::MAX, |(k, _)| k);
    let unique = means.iter().filter(|m| **m == means[0]).count() == 1;
    (best == 0 && unique) as u8 as f64
}

/// Per-unit value of a degradation metric from the values of its items (`base` = the
/// unsteered values).
fn score(probe: &Probe, u: usize, vals: &[Value], base: &[Value]) -> Result<f64> {
    let items = probe.unit(u);
    if probe.metric == DegradationMetric::ToolAccuracy {
        return Ok(tool_choice_correct(&vals[items]));
    }
    let (i, v, base) = (u, &vals[items.start], &base[items.start]);
    Ok(match probe.metric {
        DegradationMetric::ToolAccuracy => unreachable!("scored above"),
        DegradationMetric::Perplexity => perplexity(v.as_slice())? as f64,
        DegradationMetric::KlUnsteered => kl_divergence(base.as_slice(), v.as_slice())? as f64,
        DegradationMetric::McAccuracy => {
            let lp = v.as_slice();
            let best = (0..lp.len())
                .max_by(|&a, &b| lp[a].total_cmp(&lp[b]))
                .unwrap_or(0);
            (best == probe.answers[i]) as u8 as f64
        }
    })
}

/// One steering setting to measure: `chosen_for` names the datasets whose
/// validation chose it (empty for sweep points).
#[derive(Debug, Clone, PartialEq)]
struct Setting {
    layer: Option<usize>,
    multiplier: f64,
    chosen_for: Vec<String>,
}

/// method → settings: every (layer, multiplier) an evaluate stage chose for some
/// dataset, plus the `multipliers` sweep at each chosen layer; or, without `from`,
/// `layers` × `multipliers`.
fn settings(
    ctx: &Ctx<'_>,
    p: &DegradationParams,
    methods: &[MethodKind],
    n_layers: usize,
) -> Result<BTreeMap<MethodKind, Vec<Setting>>> {
    let mut out: BTreeMap<MethodKind, Vec<Setting>> = BTreeMap::new();
    let sweep_mults = p.multipliers.clone().unwrap_or_default();
    let mut add =
        |method: MethodKind, layer: Option<usize>, multiplier: f64, dataset: Option<&str>| {
            let list = out.entry(method).or_default();
            match list
                .iter_mut()
                .find(|s| s.layer == layer && s.multiplier == multiplier)
            {
                Some(s) => s.chosen_for.extend(dataset.map(str::to_string)),
                None => list.push(Setting {
                    layer,
                    multiplier,
                    chosen_for: dataset.map(str::to_string).into_iter().collect(),
                }),
            }
        };
    if let Some(from) = &p.from {
        let selection: Vec<SelectionRow> = read_table(ctx.input_dir(from)?)?;
        for sel in selection.iter().filter(|s| methods.contains(&s.method)) {
            let chosen_for = match sel.direction {
                Direction::Toward => sel.dataset.clone(),
                Direction::Away => format!("{} ({})", sel.dataset, sel.direction),
            };
            add(sel.method, sel.layer, sel.multiplier, Some(&chosen_for));
            for &m in &sweep_mults {
                add(sel.method, sel.layer, m, None);
            }
        }
    } else {
        let layers: Vec<usize> = match p.layers.as_ref() {
            Some(Layers::List(v)) => v.clone(),
            Some(Layers::All) => (0..n_layers).collect(),
            None => bail!("degradation without `from` needs `layers` and `multipliers`"),
        };
        if sweep_mults.is_empty() {
            bail!("degradation without `from` needs `multipliers`");
        }
        for &m in methods {
            for &l in &layers {
                for &x in &sweep_mults {
                    add(m, Some(l), x, None);
                }
            }
        }
    }
    Ok(out)
}

fn run(ctx: &Ctx<'_>, p: &DegradationParams) -> Result<StageOutputs> {
    let lm = common::model(ctx)?;
    let adapters = p.adapters.as_ref().map(|a| ctx.input_dir(a)).transpose()?;
    let stored = load_steerings(
        ctx.input_dir(&p.vectors)?,
        adapters,
        &common::model(ctx)?.model,
    )?;
    let probes = probes(ctx, p, lm)?;
    let names: Vec<MethodKind> = stored.iter().map(|s| s.method).collect();
    let plan = settings(ctx, p, &names, lm.model.config().n_layers)?;
    let n_items: usize = probes.iter().map(|x| x.items.len()).sum();
    let n_layer_groups: usize = plan
        .values()
        .map(|v| {
            v.iter()
                .map(|s| s.layer)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        })
        .sum();
    let progress = ctx.progress();
    progress.set_total((n_items * (1 + n_layer_groups)) as u64);

    let mut scores: Vec<ScoreRow> = Vec::new();
    let row = |probe: &Probe,
               i: usize,
               method: Condition,
               layer: Option<usize>,
               mult: f64,
               value: f64| ScoreRow {
        example_id: probe.ids[i].clone(),
        dataset: probe.dataset.clone(),
        split: probe.dataset.split('.').nth(1).unwrap_or("all").to_string(),
        method,
        layer,
        multiplier: mult,
        position: "all".into(),
        metric: ScoreMetric::of_degradation(probe.metric),
        value,
    };
    let opts = SweepOptions::default();
    for probe in &probes {
        progress.set_message(format!(
            "{}: unsteered",
            ScoreMetric::of_degradation(probe.metric)
        ));
        let base = sweep(&lm.model, &probe.items, None, &[0.0], &opts, |n| {
            progress.inc(n as u64)
        })?
        .remove(0);
        for u in 0..probe.ids.len() {
            scores.push(row(
                probe,
                u,
                Condition::UNSTEERED,
                None,
                0.0,
                score(probe, u, &base, &base)?,
            ));
        }
        for s in &stored {
            let Some(list) = plan.get(&s.method) else {
                continue;
            };
            let mut by_layer: BTreeMap<Option<usize>, Vec<f64>> = BTreeMap::new();
            for st in list {
                by_layer.entry(st.layer).or_default().push(st.multiplier);
            }
            for (layer, ms) in by_layer {
                progress.set_message(format!(
                    "{}: {} layer {layer:?}",
                    ScoreMetric::of_degradation(probe.metric),
                    s.method
                ));
                let steer = s.steer(layer.unwrap_or(0))?;
                let alphas: Vec<f32> = ms.iter().map(|m| *m as f32).collect();
                let vals = sweep(&lm.model, &probe.items, Some(&steer), &alphas, &opts, |n| {
                    progress.inc(n as u64)
                })?;
                for (a, mult) in ms.iter().enumerate() {
                    for u in 0..probe.ids.len() {
                        scores.push(row(
                            probe,
                            u,
                            Condition::Steered(s.method),
                            layer,
                            *mult,
                            score(probe, u, &vals[a], &base)?,
                        ));
                    }
                }
            }
        }
    }
    let set_rows: Vec<SettingRow> = plan
        .iter()
        .flat_map(|(method, list)| {
            list.iter().map(|st| SettingRow {
                method: *method,
                layer: st.layer,
                multiplier: st.multiplier,
                chosen: !st.chosen_for.is_empty(),
                chosen_for: st.chosen_for.join(", "),
            })
        })
        .collect();
    ctx.write_table(&scores)?;
    ctx.write_table(&aggregate(&scores, ctx.seed()))?;
    ctx.write_table(&set_rows)?;
    let mut out = StageOutputs::default();
    out.summary.insert("score_rows".into(), scores.len().into());
    // Chance accuracy of the multiple-choice probe (mean of 1 / choices), for the report.
    if let Some(mc) = probes
        .iter()
        .find(|x| x.metric == DegradationMetric::McAccuracy)
    {
        let chance = mc
            .items
            .iter()
            .map(|it| match &it.read {
                Read::NextToken(letters) => 1.0 / letters.len().max(1) as f64,
                _ => f64::NAN,
            })
            .sum::<f64>()
            / mc.items.len() as f64;
        out.summary
            .insert("mc_chance".into(), serde_json::json!(chance));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(lp: &[f32]) -> Value {
        Value::Completion(lp.to_vec())
    }

    #[test]
    fn the_chosen_call_has_the_best_mean_log_prob_per_token() {
        // Summed, the short distractor (−2) beats the correct call (−3); per token the
        // correct call (−0.5) wins.
        let correct = c(&[-0.5; 6]);
        let short = c(&[-1.0, -1.0]);
        assert_eq!(tool_choice_correct(&[correct.clone(), short.clone()]), 1.0);
        assert_eq!(tool_choice_correct(&[short, correct.clone()]), 0.0);
        // A tie with a distractor is not a correct choice.
        assert_eq!(tool_choice_correct(&[correct.clone(), c(&[-0.5])]), 0.0);
        assert_eq!(tool_choice_correct(&[correct]), 1.0);
    }
}
