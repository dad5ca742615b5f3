//! ICL prompts of `icl_task` datasets as token sequences: k-shot (demonstrations drawn
//! per query with a seed derived from the run seed and the query id), zero-shot, and the
//! shuffled-label variant Function Vectors patch into. The target is the first token of
//! the correct answer.

use anyhow::{bail, Context, Result};
use steerbench_data as data;
use steerbench_eval::prompt::{self, PromptStyle};
use steerbench_model::{LoadedModel, Sequence};

use super::common;

/// One ICL query: its prompt tokens and the first token of the correct answer.
#[derive(Debug, Clone)]
pub struct IclItem {
    pub id: String,
    pub prompt: Sequence,
    pub target: u32,
}

/// How the prompts of one batch of queries are built.
pub struct IclPrompts<'a> {
    /// Demonstrations are drawn from here (never the query itself).
    pub pool: &'a [data::Icl],
    pub shots: usize,
    /// Permute the demonstrations' outputs (Function Vectors' corrupted prompts).
    pub shuffle_labels: bool,
    pub template: &'a data::IclTemplate,
    pub style: PromptStyle,
    pub seed: u64,
}

/// The items of `queries` under `how`.
pub fn icl_items(
    lm: &LoadedModel,
    queries: &[data::Icl],
    how: &IclPrompts<'_>,
) -> Result<Vec<IclItem>> {
    queries
        .iter()
        .map(|q| {
            let seed = data::item_seed(how.seed, &q.id);
            let demos = data::sample_demos(how.pool, how.shots, &q.id, seed);
            if demos.len() < how.shots {
                bail!(
                    "query {}: {} demonstrations requested, the pool has only {} other items",
                    q.id,
                    how.shots,
                    demos.len()
                );
            }
            let shuffled;
            let demos: Vec<&data::Icl> = if how.shuffle_labels {
                shuffled = data::shuffle_labels(&demos, seed.wrapping_add(1));
                shuffled.iter().collect()
            } else {
                demos
            };
            let p = data::icl_prompt(&demos, q, how.template, None)?;
            encode(lm, &p, how.style)
                .with_context(|| format!("ICL query {}", q.id))
                .map(|(prompt, target)| IclItem {
                    id: q.id.clone(),
                    prompt,
                    target,
                })
        })
        .collect()
}

/// Prompt tokens and first answer token. Raw prompts end exactly where the template's
/// query ends (e.g. `A:`), so the answer keeps its leading space; in chat style the
/// prompt is the user turn and the answer starts the assistant turn.
fn encode(lm: &LoadedModel, p: &data::IclPrompt, style: PromptStyle) -> Result<(Sequence, u32)> {
    let (ids, answer) = match style {
        PromptStyle::Raw => {
            let mut text = String::new();
            if let Some(s) = &p.parts.system {
                text.push_str(s);
                text.push_str("\n\n");
            }
            text.push_str(&p.parts.user);
            (lm.tokenizer.encode(&text, false)?, p.target.clone())
        }
        PromptStyle::Chat => (
            common::encode(lm, &common::to_prompt(&p.parts), style)?,
            p.target.trim_start().to_string(),
        ),
    };
    if ids.is_empty() {
        bail!("the prompt encodes to zero tokens");
    }
    let seq = prompt::with_continuation(&lm.tokenizer, &ids, true, style, &answer)?;
    let target = seq.tokens[seq.prompt_len];
    Ok((Sequence::prompt(ids), target))
}

/// The icl_task records of a dataset, or an error naming what it is instead.
pub fn icl_records(records: data::Records, what: &str) -> Result<Vec<data::Icl>> {
    match records {
        data::Records::IclTask(v) => Ok(v),
        other => bail!(
            "{what} needs an icl_task dataset, not {}",
            other.format().name()
        ),
    }
}
