//! The `generation` metric on conversation datasets: the model writes every assistant
//! turn of the first `generation.limit` conversations itself, in sequence on one KV
//! cache ([`steerbench_eval::dialogue_gen`]), unsteered and at each method's setting
//! chosen toward the behaviour (in that setting's turn scope). Each written turn
//! `<conversation>/turn<k>` is scored like single-turn generations:
//! `gen_concept_similarity` against the turn's matching and non-matching replies (when
//! it has them), `gen_fluency_ppl` under the unsteered model given the conversation as
//! it was written, `gen_distinct_1` / `gen_distinct_2`; `turns.parquet` then shows
//! their drift over turns.

use anyhow::{Context, Result};
use steerbench_data as data;
use steerbench_embed::cosine;
use steerbench_eval::dialogue::Scope;
use steerbench_eval::dialogue_gen::generate_conversation;
use steerbench_model::{Hooks, LoadedModel, Sequence};
use steerbench_steering::metrics::lm::distinct_n;

use super::units::At;
use super::EvalDataset;
use crate::spec::EvaluateParams;
use crate::stages::common::{self, Ctx};
use crate::stages::vectors::Stored;
use crate::tables::{Condition, Direction, GenerationRow, ScoreMetric, ScoreRow, SelectionRow};

/// Written conversations and their score rows, unsteered and at each chosen setting.
pub fn at_selections(
    ctx: &Ctx<'_>,
    lm: &LoadedModel,
    p: &EvaluateParams,
    d: &EvalDataset,
    selection: &[SelectionRow],
    stored: &[Stored],
) -> Result<(Vec<GenerationRow>, Vec<ScoreRow>)> {
    let data::Records::Conversation(convs) = &d.records else {
        return Ok(Default::default());
    };
    let convs = &convs[..convs.len().min(p.generation.limit.unwrap_or(usize::MAX))];
    let mut settings: Vec<(At, Option<(steerbench_eval::steer::Steer, Scope)>)> =
        vec![(d.at.clone(), None)];
    for s in selection.iter().filter(|s| {
        s.dataset == d.dataset.dataset
            && s.reported_on == d.at.split
            && s.direction == Direction::Toward
    }) {
        let st = stored
            .iter()
            .find(|x| x.method == s.method)
            .ok_or_else(|| anyhow::anyhow!("no stored vector for `{}`", s.method))?;
        let scope = Scope::from_name(&s.position)
            .ok_or_else(|| anyhow::anyhow!("`{}` is not a turn scope", s.position))?;
        settings.push((
            At {
                method: Condition::Steered(s.method),
                layer: s.layer,
                multiplier: s.multiplier,
                position: s.position.clone(),
                ..d.at.clone()
            },
            Some((st.steer(s.layer.unwrap_or(0))?, scope)),
        ));
    }
    let style = common::style(ctx);
    let opts = super::generation::options(&p.generation, ctx.seed(), true);
    let embedder = ctx.services().embedder()?;
    let (mut gens, mut scores) = (Vec::new(), Vec::new());
    for (at, steer) in &settings {
        ctx.progress().set_message(format!(
            "{}: writing conversations ({} {})",
            d.dataset, at.method, at.position
        ));
        for c in convs {
            let turns = c.turns();
            let users: Vec<&str> = turns.iter().map(|t| t.user).collect();
            let system = turns.first().and_then(|t| t.system);
            let written = generate_conversation(
                &lm.model,
                &lm.tokenizer,
                style,
                system,
                &users,
                steer.as_ref().map(|(s, _)| (s, at.multiplier as f32)),
                steer.as_ref().map_or(Scope::AllTurns, |(_, sc)| *sc),
                &opts,
            )
            .with_context(|| format!("conversation {}", c.id))?;
            // Fluency: the unsteered model's log-probs over the conversation as written.
            let lp = lm
                .model
                .token_logprobs(
                    &[Sequence::prompt(written.tokens.clone())],
                    &mut Hooks::new(),
                )?
                .remove(0);
            for (t, (range, text)) in turns.iter().zip(&written.replies) {
                let id = format!("{}/turn{}", c.id, t.k);
                let reply = &written.tokens[range.clone()];
                let mut row_scores = Vec::new();
                if let (Some((m, n)), false) = (t.pair, reply.is_empty()) {
                    let e = embedder.embed(&[text.as_str(), m, n])?;
                    let sim = cosine(&e[0], &e[1])? - cosine(&e[0], &e[2])?;
                    row_scores.push((ScoreMetric::GenConceptSimilarity, sim as f64));
                }
                if !reply.is_empty() {
                    let own = &lp[range.start - 1..range.end - 1];
                    let mean = own.iter().map(|x| *x as f64).sum::<f64>() / own.len() as f64;
                    row_scores.push((ScoreMetric::GenFluencyPpl, (-mean).exp()));
                    let one = [reply.to_vec()];
                    row_scores.push((ScoreMetric::GenDistinct1, distinct_n(&one, 1)? as f64));
                    if reply.len() >= 2 {
                        row_scores.push((ScoreMetric::GenDistinct2, distinct_n(&one, 2)? as f64));
                    }
                }
                scores.extend(row_scores.into_iter().map(|(m, v)| at.row(&id, m, v)));
                gens.push(GenerationRow {
                    dataset: at.dataset.clone(),
                    split: at.split.clone(),
                    example_id: id,
                    method: at.method,
                    layer: at.layer,
                    multiplier: at.multiplier,
                    position: at.position.clone(),
                    prompt: t.user.to_string(),
                    text: text.clone(),
                    n_tokens: reply.len() as u32,
                });
            }
        }
    }
    Ok((gens, scores))
}
