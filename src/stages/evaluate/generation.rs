//! The `generation` metric: continuations of a dataset's prompts, unsteered and at each
//! method's validation-chosen *toward* setting, scored per input by
//! - `gen_concept_similarity`: cos(continuation, positive reference) − cos(continuation,
//!   negative reference) in MiniLM sentence-embedding space (when the data has both);
//! - `gen_fluency_ppl`: perplexity of the continuation under the unsteered model, given
//!   its prompt;
//! - `gen_distinct_1`, `gen_distinct_2`: distinct unigrams / bigrams over its tokens;
//! - tool-choice data (the prompt is the tool declaration and the task):
//!   `gen_tool_call_json` (1 when the continuation holds a JSON object, bare, in prose or
//!   in a code fence) and `gen_tool_call_valid` (1 when that object is a call
//!   `{"name", "arguments"}` naming a declared tool with arguments that fit its schema:
//!   declared names, declared JSON types, every required one). Their means are the shares.

use anyhow::{Context, Result};
use steerbench_data as data;
use steerbench_embed::cosine;
use steerbench_eval::steer::Steer;
use steerbench_model::{GenerateOptions, Hooks, LoadedModel, Positions, Sampling, Sequence};
use steerbench_steering::metrics::lm::distinct_n;

use super::units::At;
use super::EvalDataset;
use crate::spec::{EvaluateParams, GenerationParams, PositionSel};
use crate::stages::common::{self, Ctx};
use crate::stages::vectors::Stored;
use crate::tables::{Condition, Direction, GenerationRow, ScoreMetric, ScoreRow, SelectionRow};

/// Where a batch of continuations comes from.
pub struct Setting<'a> {
    pub at: At,
    /// `None`: the unsteered model.
    pub steer: Option<(&'a Steer, Positions)>,
}

/// One prompt of a dataset with the embeddings of its positive and negative reference
/// continuations, when it has both.
pub struct GenPrompt {
    pub id: String,
    pub text: String,
    pub tokens: Vec<u32>,
    pub references: Option<(Vec<f32>, Vec<f32>)>,
    /// Tool-choice tasks: the declared tools a generated call is checked against.
    pub tools: Option<Vec<data::conversation::Tool>>,
}

/// One continuation and its scores.
pub struct Generation {
    pub example_id: String,
    pub prompt: String,
    pub text: String,
    pub n_tokens: u32,
    pub scores: Vec<(ScoreMetric, f64)>,
}

/// The prompts of a completion or open-ended dataset, or the behaviour tasks of a
/// tool-choice dataset (the tool declaration and the task; the matching and non-matching
/// calls are the references), at most `limit`. Other formats have no free text to
/// continue and give none.
pub fn prompts(
    ctx: &Ctx<'_>,
    lm: &LoadedModel,
    records: &data::Records,
    limit: Option<usize>,
) -> Result<Vec<GenPrompt>> {
    let style = common::style(ctx);
    type Tools = Option<Vec<data::conversation::Tool>>;
    let items: Vec<(
        String,
        data::PromptParts,
        Option<String>,
        Option<String>,
        Tools,
    )> = match records {
        data::Records::ContrastiveCompletion(v) => v
            .iter()
            .map(|it| {
                let (parts, p, n) = data::completion_parts(it, None);
                (it.id.clone(), parts, Some(p), Some(n), None)
            })
            .collect(),
        data::Records::OpenEnded(v) => v
            .iter()
            .map(|it| {
                let (parts, m, n) = data::open_ended_parts(it, None);
                (it.id.clone(), parts, m, n, None)
            })
            .collect(),
        // The tasks `evaluate` scored: behaviour tasks (see `units`).
        data::Records::ToolChoice(v) => v
            .iter()
            .filter_map(|it| {
                let (parts, calls) = data::tool_parts(it);
                let (m, n) = calls?;
                Some((
                    it.id.clone(),
                    parts,
                    Some(m),
                    Some(n),
                    Some(it.tools.clone()),
                ))
            })
            .collect(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(|(id, parts, positive, negative, tools)| {
            let p = common::to_prompt(&parts);
            let references = match (positive, negative) {
                (Some(pos), Some(neg)) => {
                    let mut e = ctx
                        .services()
                        .embedder()?
                        .embed(&[pos.as_str(), neg.as_str()])?;
                    let neg = e.pop().expect("two embeddings");
                    Some((e.pop().expect("two embeddings"), neg))
                }
                _ => None,
            };
            Ok(GenPrompt {
                tokens: common::encode(lm, &p, style)?,
                text: parts.user.clone(),
                id,
                references,
                tools,
            })
        })
        .collect()
}

pub(super) fn options(g: &GenerationParams, seed: u64, eos: bool) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: g.max_new_tokens,
        sampling: if g.temperature > 0.0 {
            Sampling::Sample {
                temperature: g.temperature as f32,
                top_k: None,
                top_p: (g.top_p < 1.0).then_some(g.top_p as f32),
                seed,
            }
        } else {
            Sampling::Greedy
        },
        stop_strings: Vec::new(),
        stop_at_eos: eos,
        use_kv_cache: true,
    }
}

/// Continuations of `prompts` under `setting`, scored.
pub fn generate_and_score(
    ctx: &Ctx<'_>,
    lm: &LoadedModel,
    prompts: &[GenPrompt],
    setting: &Setting<'_>,
    g: &GenerationParams,
) -> Result<Vec<Generation>> {
    let model = &lm.model;
    let mut hooks = Hooks::new();
    if let Some((steer, pos)) = &setting.steer {
        steer.install(
            &mut hooks,
            setting.at.multiplier as f32,
            pos,
            model.config().n_layers,
            model.device(),
        )?;
    }
    let opts = options(g, ctx.seed(), true);
    let mut out = Vec::with_capacity(prompts.len());
    let embedder = ctx.services().embedder()?;
    for chunk in prompts.chunks(8) {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|p| p.tokens.clone()).collect();
        let gens = model
            .generate(&lm.tokenizer, &ids, &opts, &hooks)
            .with_context(|| format!("generating with {}", setting.at.method))?;
        // Fluency: the unsteered model's log-probs of each continuation given its prompt.
        let seqs: Vec<Sequence> = chunk
            .iter()
            .zip(&gens)
            .filter(|(_, g)| !g.is_empty())
            .map(|(p, g)| Sequence::new([p.tokens.clone(), g.clone()].concat(), p.tokens.len()))
            .collect();
        let fwd = if seqs.is_empty() {
            None
        } else {
            Some(model.forward(&seqs, &mut Hooks::new())?)
        };
        let texts: Vec<String> = gens
            .iter()
            .map(|g| lm.tokenizer.decode(g))
            .collect::<std::result::Result<_, _>>()?;
        let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let emb = embedder.embed(&text_refs)?;
        let mut row = 0;
        for (k, (p, gen)) in chunk.iter().zip(&gens).enumerate() {
            let mut scores = Vec::new();
            if let (Some((pos, neg)), false) = (&p.references, gen.is_empty()) {
                let sim = cosine(&emb[k], pos)? - cosine(&emb[k], neg)?;
                scores.push((ScoreMetric::GenConceptSimilarity, sim as f64));
            }
            if !gen.is_empty() {
                let lp = fwd
                    .as_ref()
                    .expect("a forward when any continuation")
                    .completion_logprobs(row)?;
                row += 1;
                let mean = lp.iter().map(|x| *x as f64).sum::<f64>() / lp.len() as f64;
                scores.push((ScoreMetric::GenFluencyPpl, (-mean).exp()));
                scores.push((
                    ScoreMetric::GenDistinct1,
                    distinct_n(std::slice::from_ref(gen), 1)? as f64,
                ));
                if gen.len() >= 2 {
                    scores.push((
                        ScoreMetric::GenDistinct2,
                        distinct_n(std::slice::from_ref(gen), 2)? as f64,
                    ));
                }
            }
            if let Some(tools) = &p.tools {
                scores.extend(tool_call_scores(&texts[k], tools));
            }
            out.push(Generation {
                example_id: p.id.clone(),
                prompt: p.text.clone(),
                text: texts[k].clone(),
                n_tokens: gen.len() as u32,
                scores,
            });
        }
    }
    Ok(out)
}

/// `gen_tool_call_json` and `gen_tool_call_valid` of one continuation (1/0 each).
pub fn tool_call_scores(text: &str, tools: &[data::conversation::Tool]) -> [(ScoreMetric, f64); 2] {
    let (c, _) = data::conversation::check_generated_call(text, tools);
    let valid = c.valid_json && c.known_tool && c.arguments_ok;
    [
        (ScoreMetric::GenToolCallJson, c.valid_json as u8 as f64),
        (ScoreMetric::GenToolCallValid, valid as u8 as f64),
    ]
}

/// The `generation` metric on one evaluated dataset split: continuations unsteered and
/// at each method's *toward* setting chosen for this split, as generation rows plus
/// their score rows.
pub fn at_selections(
    ctx: &Ctx<'_>,
    lm: &LoadedModel,
    p: &EvaluateParams,
    d: &EvalDataset,
    selection: &[SelectionRow],
    stored: &[Stored],
) -> Result<(Vec<GenerationRow>, Vec<ScoreRow>)> {
    let chosen: Vec<&SelectionRow> = selection
        .iter()
        .filter(|s| {
            s.dataset == d.dataset.dataset
                && s.reported_on == d.at.split
                && s.direction == Direction::Toward
        })
        .collect();
    if chosen.is_empty() {
        return Ok(Default::default());
    }
    let prompts = prompts(ctx, lm, &d.records, p.generation.limit)?;
    if prompts.is_empty() {
        return Ok(Default::default());
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
        steers.push((st.steer(s.layer.unwrap_or(0))?, super::positions(sel)?, *s));
    }
    let mut settings = vec![Setting {
        at: At::baseline(&d.at.dataset, &d.at.split, Condition::UNSTEERED),
        steer: None,
    }];
    for (st, pos, s) in &steers {
        settings.push(Setting {
            at: At {
                dataset: d.at.dataset.clone(),
                split: d.at.split.clone(),
                method: Condition::Steered(s.method),
                layer: s.layer,
                multiplier: s.multiplier,
                position: s.position.clone(),
            },
            steer: Some((st, pos.clone())),
        });
    }
    let (mut gens, mut scores) = (Vec::new(), Vec::new());
    for setting in &settings {
        ctx.progress()
            .set_message(format!("{}: generating ({})", d.dataset, setting.at.method));
        let at = &setting.at;
        for g in generate_and_score(ctx, lm, &prompts, setting, &p.generation)? {
            for (metric, value) in &g.scores {
                scores.push(at.row(&g.example_id, *metric, *value));
            }
            gens.push(GenerationRow {
                dataset: at.dataset.clone(),
                split: at.split.clone(),
                example_id: g.example_id,
                method: at.method,
                layer: at.layer,
                multiplier: at.multiplier,
                position: at.position.clone(),
                prompt: g.prompt,
                text: g.text,
                n_tokens: g.n_tokens,
            });
        }
    }
    Ok((gens, scores))
}

#[cfg(test)]
mod tests {
    use super::*;
    use data::conversation::Tool;
    use serde_json::json;

    fn tools() -> Vec<Tool> {
        vec![
            Tool {
                name: "get_weather".into(),
                description: "Current weather in a city.".into(),
                parameters: json!({"type": "object",
                    "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                    "required": ["city"]}),
            },
            Tool {
                name: "send_email".into(),
                description: "Sends an email.".into(),
                parameters: json!({"type": "object",
                    "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
                    "required": ["to", "body"]}),
            },
        ]
    }

    /// (gen_tool_call_json, gen_tool_call_valid)
    fn check(text: &str) -> (f64, f64) {
        let [(j, json), (v, valid)] = tool_call_scores(text, &tools());
        assert_eq!(
            (j, v),
            (ScoreMetric::GenToolCallJson, ScoreMetric::GenToolCallValid)
        );
        (json, valid)
    }

    #[test]
    fn generated_tool_calls_score_json_and_validity() {
        // Valid: bare, with an optional argument, inside prose, inside a code fence.
        assert_eq!(
            check(r#"{"name": "get_weather", "arguments": {"city": "Oslo"}}"#),
            (1.0, 1.0)
        );
        assert_eq!(
            check(r#"{"name":"get_weather","arguments":{"city":"Oslo","unit":"C"}}"#),
            (1.0, 1.0)
        );
        assert_eq!(
            check(
                r#"I will check that. {"name": "get_weather", "arguments": {"city": "Oslo"}} Done."#
            ),
            (1.0, 1.0)
        );
        assert_eq!(
            check("```json\n{\"name\": \"send_email\", \"arguments\": {\"to\": \"a@b.c\", \"body\": \"hi {there}\"}}\n```"),
            (1.0, 1.0)
        );
        // JSON, but not a valid call: an undeclared tool, a missing required argument,
        // an undeclared argument, a wrong type, no `arguments`.
        assert_eq!(
            check(r#"{"name": "book_flight", "arguments": {"city": "Oslo"}}"#),
            (1.0, 0.0)
        );
        assert_eq!(
            check(r#"{"name": "send_email", "arguments": {"to": "a@b.c"}}"#),
            (1.0, 0.0)
        );
        assert_eq!(
            check(r#"{"name": "get_weather", "arguments": {"city": "Oslo", "days": 3}}"#),
            (1.0, 0.0)
        );
        assert_eq!(
            check(r#"{"name": "get_weather", "arguments": {"city": 7}}"#),
            (1.0, 0.0)
        );
        assert_eq!(check(r#"{"name": "get_weather"}"#), (1.0, 0.0));
        // Broken JSON: cut off, single quotes, unquoted keys, none at all.
        assert_eq!(
            check(r#"{"name": "get_weather", "arguments": {"city": "Os"#),
            (0.0, 0.0)
        );
        assert_eq!(
            check("{'name': 'get_weather', 'arguments': {'city': 'Oslo'}}"),
            (0.0, 0.0)
        );
        assert_eq!(check("{name: get_weather}"), (0.0, 0.0));
        assert_eq!(check("The weather in Oslo is sunny."), (0.0, 0.0));
        assert_eq!(check(""), (0.0, 0.0));
    }
}
