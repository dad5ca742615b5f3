//! A dataset's records as measurable items, and the per-input scores read from one
//! pass over them.

use anyhow::{bail, Result};
use steerbench_data as data;
use steerbench_eval::prompt::{self, Prompt, PromptStyle};
use steerbench_eval::sweep::{Item, Read, Value};
use steerbench_eval::turn_sweep::{Dialogue, ScoredTurn};
use steerbench_model::{LoadedModel, Sequence};
use steerbench_steering::metrics::behaviour::{ab_probability, propensity, Letter};

use crate::spec::Metric;
use crate::stages::common;
use crate::stages::icl;
use crate::tables::{Condition, ScoreMetric, ScoreRow};

/// A dataset's records as measurable items: one unit per record, each with one or
/// two items (A/B: one pass reads both letters; completions: a pass per side).
pub struct Units {
    pub ids: Vec<String>,
    pub items: Vec<Item>,
    kind: UnitKind,
}

enum UnitKind {
    /// Matching letter index per record (0 = A).
    Ab(Vec<usize>),
    /// Items 2i (positive / matching) and 2i+1 (negative / not matching).
    Pair { open_ended: bool },
    /// ICL queries: the first token of each correct answer.
    Icl(Vec<u32>),
}

/// Where a pass's scores belong: every column of a score row but the input and value.
#[derive(Debug, Clone)]
pub struct At {
    pub dataset: String,
    pub split: String,
    pub method: Condition,
    pub layer: Option<usize>,
    pub multiplier: f64,
    pub position: String,
}

impl At {
    /// The score row of input `example_id` at this setting.
    pub fn row(&self, example_id: &str, metric: ScoreMetric, value: f64) -> ScoreRow {
        ScoreRow {
            example_id: example_id.to_string(),
            dataset: self.dataset.clone(),
            split: self.split.clone(),
            method: self.method,
            layer: self.layer,
            multiplier: self.multiplier,
            position: self.position.clone(),
            metric,
            value,
        }
    }

    /// The unsteered model on a dataset split (also the setting of prompting baselines).
    pub fn baseline(dataset: &str, split: &str, method: Condition) -> At {
        At {
            dataset: dataset.to_string(),
            split: split.to_string(),
            method,
            layer: None,
            multiplier: 0.0,
            position: "none".into(),
        }
    }
}

/// ICL queries with `shots` demonstrations drawn from `pool`, as items that read the
/// full next-token distribution (top-1 and the correct token's log-probability).
pub fn icl_units(
    lm: &LoadedModel,
    queries: &[data::Icl],
    pool: &[data::Icl],
    shots: usize,
    template: &data::IclTemplate,
    style: PromptStyle,
    seed: u64,
) -> Result<Units> {
    let how = icl::IclPrompts {
        pool,
        shots,
        shuffle_labels: false,
        template,
        style,
        seed,
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

/// The first `k` behaviour-matching (prompt, answer) turns of `records` (few-shot).
pub fn shots_for(records: &data::Records, k: usize) -> Vec<(String, String)> {
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
        // A baseline's system prompt goes before the record's own (a tool declaration).
        if let Some(s) = system {
            p.system = Some(match p.system.take() {
                Some(own) => format!("{s}\n\n{own}"),
                None => s.to_string(),
            });
        }
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
                    bail!(
                        "item {}: ab metrics read letters A and B only, found ({}) / ({})",
                        it.id,
                        it.matching,
                        it.not_matching
                    );
                }
                let p = mk(data::ab_parts(it, None));
                items.push(Item {
                    seq: Sequence::prompt(common::encode(lm, &p, style)?),
                    read: Read::NextToken(letters.clone()),
                });
                ids.push(it.id.clone());
                matching.push(it.matching.index());
            }
            UnitKind::Ab(matching)
        }
        data::Records::ContrastiveCompletion(_)
        | data::Records::OpenEnded(_)
        | data::Records::ToolChoice(_) => {
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
                // Behaviour tasks: the matching call against the other, as JSON after the
                // tool declaration (neutral tasks have no behaviour to steer toward).
                data::Records::ToolChoice(v) => v
                    .iter()
                    .filter_map(|it| {
                        let (parts, calls) = data::tool_parts(it);
                        let (a, b) = calls?;
                        Some((it.id.clone(), parts, a, b))
                    })
                    .collect(),
                _ => unreachable!("matched above"),
            };
            if triples.is_empty() {
                if matches!(records, data::Records::ToolChoice(_)) {
                    bail!("no tool-choice behaviour tasks (with `matching` / `not_matching` calls) to score: neutral tasks (with `correct`) have no behaviour to steer toward");
                }
                bail!("no records with both continuations to compare");
            }
            for (id, parts, a, b) in triples {
                let pids = common::encode(lm, &mk(parts), style)?;
                for c in [a, b] {
                    items.push(Item {
                        seq: prompt::with_continuation(&lm.tokenizer, &pids, false, style, &c)?,
                        read: Read::Completion,
                    });
                }
                ids.push(id);
            }
            UnitKind::Pair { open_ended }
        }
        data::Records::Conversation(_) => {
            bail!("conversation datasets are scored turn by turn (conversation_units)")
        }
        other => bail!(
            "evaluate scores contrastive datasets (contrastive_ab, contrastive_completion, open_ended, tool_choice, conversation), not {}",
            other.format().name()
        ),
    };
    Ok(Units { ids, items, kind })
}

/// A conversation dataset's scored turns: as units (one per conversation and scored
/// turn, id `<conversation id>/turn<k>`, items = the turn's prompt followed by the
/// matching and by the non-matching reply), and as dialogues for the turn-by-turn
/// scorer, which lays its values out in the same order. `system` (a baseline's system
/// prompt) goes before the conversation's own.
pub fn conversation_units(
    lm: &LoadedModel,
    conversations: &[data::Conversation],
    style: PromptStyle,
    system: Option<&str>,
) -> Result<(Units, Vec<Dialogue>)> {
    let (mut ids, mut items, mut dialogues) = (Vec::new(), Vec::new(), Vec::new());
    for c in conversations {
        let mut turns = Vec::new();
        for t in c.scored_turns() {
            let (matching, not_matching) = t.pair.expect("scored turns have a pair");
            let p = Prompt {
                system: match (system, t.system) {
                    (Some(s), Some(own)) => Some(format!("{s}\n\n{own}")),
                    (s, own) => s.or(own).map(str::to_string),
                },
                shots: t
                    .history
                    .iter()
                    .map(|(u, a)| (u.to_string(), a.to_string()))
                    .collect(),
                user: t.user.to_string(),
                assistant_prefix: String::new(),
            };
            let enc = prompt::encode_with_spans(&lm.tokenizer, &p, style)
                .map_err(|e| anyhow::anyhow!("conversation {}, turn {}: {e}", c.id, t.k))?;
            let mut replies = Vec::with_capacity(2);
            for reply in [matching, not_matching] {
                let seq = prompt::with_continuation(&lm.tokenizer, &enc.ids, false, style, reply)?;
                replies.push(seq.tokens[seq.prompt_len..].to_vec());
                items.push(Item {
                    seq,
                    read: Read::Completion,
                });
            }
            ids.push(format!("{}/turn{}", c.id, t.k));
            let not = replies.pop().expect("two replies");
            turns.push(ScoredTurn {
                k: t.k,
                prompt: enc,
                replies: [replies.pop().expect("two replies"), not],
            });
        }
        dialogues.push(Dialogue::new(c.id.clone(), turns)?);
    }
    if ids.is_empty() {
        bail!("no conversation has a scored assistant turn (with `matching` / `not_matching`)");
    }
    Ok((
        Units {
            ids,
            items,
            kind: UnitKind::Pair { open_ended: false },
        },
        dialogues,
    ))
}

impl Units {
    /// Every item within the model's context (see [`common::check_lengths`]).
    pub fn check_lengths(
        &self,
        ctx: &common::Ctx<'_>,
        lm: &LoadedModel,
        r: &crate::spec::DatasetRef,
    ) -> Result<()> {
        let per_unit = (self.items.len() / self.ids.len().max(1)).max(1);
        common::check_lengths(
            ctx,
            lm,
            r,
            self.items
                .iter()
                .enumerate()
                .map(|(k, it)| (self.ids[k / per_unit].as_str(), it.seq.tokens.len())),
        )
    }

    /// Record `r`'s value of `metric` from one pass, or None where a pass over this kind
    /// of unit does not produce it. Exhaustive over [`ScoreMetric`]: a new metric is a
    /// compile error here until it says whether (and how) a pass computes it.
    fn value(&self, metric: ScoreMetric, vals: &[Value], r: usize) -> Result<Option<f64>> {
        use ScoreMetric::*;
        let pair = |r: usize| propensity(vals[2 * r].as_slice(), vals[2 * r + 1].as_slice());
        Ok(match metric {
            AbProbability | PAShare => match &self.kind {
                UnitKind::Ab(matching) => {
                    let lp = vals[r].as_slice();
                    let letter = match (metric, matching[r]) {
                        (PAShare, _) | (_, 0) => Letter::A,
                        _ => Letter::B,
                    };
                    Some(ab_probability(lp[0], lp[1], letter)? as f64)
                }
                _ => None,
            },
            Propensity => Some(match &self.kind {
                UnitKind::Ab(matching) => {
                    let lp = vals[r].as_slice();
                    let m = matching[r];
                    (lp[m] - lp[1 - m]) as f64
                }
                UnitKind::Pair { .. } => pair(r)?.summed as f64,
                // For ICL items the propensity is log p(correct first answer token).
                UnitKind::Icl(targets) => self.icl_target(vals, r, targets)?.0 as f64,
            }),
            PropensityNorm => match &self.kind {
                UnitKind::Pair { .. } => Some(pair(r)?.normalized as f64),
                _ => None,
            },
            LoglikMatchingMinusNot => match &self.kind {
                UnitKind::Pair { open_ended: true } => Some(pair(r)?.summed as f64),
                _ => None,
            },
            IclAccuracy => match &self.kind {
                UnitKind::Icl(targets) => Some(self.icl_target(vals, r, targets)?.1 as u8 as f64),
                _ => None,
            },
            // Derived from a finished sweep (crate::analysis::derive).
            OpenEndedLikelihood | SteerabilitySlope | SteerabilityR2 => None,
            // Scored on generations (generation.rs).
            GenConceptSimilarity | GenFluencyPpl | GenDistinct1 | GenDistinct2
            | GenToolCallValid | GenToolCallJson => None,
            // The degradation stage's probes.
            Perplexity | KlUnsteered | McAccuracy | ToolAccuracy => None,
        })
    }

    /// ICL record `r`: log p(first token of the correct answer), and whether it is the top-1.
    fn icl_target(&self, vals: &[Value], r: usize, targets: &[u32]) -> Result<(f32, bool)> {
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
        Ok((target_lp, top == t))
    }

    /// The score rows of one pass (`vals`: one value per item) that `metrics` asks for.
    pub fn rows(&self, at: &At, vals: &[Value], metrics: &[Metric]) -> Result<Vec<ScoreRow>> {
        let mut out = Vec::new();
        for (i, id) in self.ids.iter().enumerate() {
            for &metric in ScoreMetric::ALL.iter().filter(|m| m.wanted_by(metrics)) {
                if let Some(value) = self.value(metric, vals, i)? {
                    out.push(at.row(id, metric, value));
                }
            }
        }
        Ok(out)
    }
}
