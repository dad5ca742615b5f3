//! Prompting baselines: the unsteered model on other prompts of the same inputs
//! (a system prompt asking for / against the behaviour, few-shot demonstrations from
//! the train split, A/B items with the letters swapped).

use anyhow::{bail, Result};
use steerbench_data as data;
use steerbench_eval::sweep::{sweep, SweepOptions};
use steerbench_model::LoadedModel;

use steerbench_eval::dialogue::Scope;
use steerbench_eval::turn_sweep::{sweep_dialogues, Dialogue};

use super::units::{conversation_units, icl_units, shots_for, units, At, Units};
use super::EvalDataset;
use crate::spec::{Baseline, DatasetRef, EvaluateParams, SplitName};
use crate::stages::common::{self, Ctx};
use crate::tables::names::BaselineCondition;
use crate::tables::{Condition, ScoreRow};

/// The score rows of every baseline of `p` on one evaluated dataset split.
pub fn baselines(
    ctx: &Ctx<'_>,
    lm: &LoadedModel,
    p: &EvaluateParams,
    d: &EvalDataset,
) -> Result<Vec<ScoreRow>> {
    let style = common::style(ctx);
    let mut out = Vec::new();
    let mut score =
        |which: BaselineCondition, u: &Units, dialogues: Option<&[Dialogue]>| -> Result<()> {
            let vals = match dialogues {
                Some(ds) => sweep_dialogues(&lm.model, ds, None, &[0.0], Scope::AllTurns, |_| {})?,
                None => sweep(
                    &lm.model,
                    &u.items,
                    None,
                    &[0.0],
                    &SweepOptions::default(),
                    |_| {},
                )?,
            }
            .remove(0);
            let at = At::baseline(&d.at.dataset, &d.at.split, Condition::Baseline(which));
            out.extend(u.rows(&at, &vals, &p.metrics)?);
            Ok(())
        };
    for b in &p.baselines {
        match b {
            // A system prompt cannot state an ICL task's answer; few-shot is its baseline.
            Baseline::SystemPrompt(_) if matches!(d.records, data::Records::IclTask(_)) => {}
            Baseline::SystemPrompt(sp) => {
                for (which, text) in [
                    (BaselineCondition::SystemPromptPositive, &sp.positive),
                    (BaselineCondition::SystemPromptNegative, &sp.negative),
                ] {
                    let Some(text) = text else {
                        bail!("baseline system_prompt needs `positive` and `negative` texts (the dataset has none of its own)");
                    };
                    match &d.records {
                        data::Records::Conversation(convs) => {
                            let (u, ds) = conversation_units(lm, convs, style, Some(text))?;
                            score(which, &u, Some(&ds))?;
                        }
                        records => {
                            score(which, &units(lm, records, style, Some(text), &[])?, None)?
                        }
                    }
                }
            }
            Baseline::FewShot(_) if matches!(d.records, data::Records::Conversation(_)) => {
                bail!("baseline few_shot is not defined for conversation datasets: a conversation's own history already precedes every scored turn; use system_prompt")
            }
            Baseline::FewShot(_) if matches!(d.records, data::Records::ToolChoice(_)) => {
                bail!("baseline few_shot is not defined for tool_choice datasets: each task declares its own tools, so another task's call is no demonstration; use system_prompt")
            }
            Baseline::FewShot(fs) => {
                let train = common::records(
                    ctx,
                    &DatasetRef {
                        dataset: d.dataset.dataset.clone(),
                        split: Some(SplitName::Train),
                    },
                )?;
                let u = match (&d.records, &train) {
                    (data::Records::IclTask(queries), data::Records::IclTask(pool)) => {
                        let template = super::icl_template(ctx, &d.dataset)?;
                        icl_units(lm, queries, pool, fs.k, &template, style, ctx.seed())?
                    }
                    _ => units(lm, &d.records, style, None, &shots_for(&train, fs.k))?,
                };
                score(BaselineCondition::FewShot, &u, None)?;
            }
            Baseline::LetterSwap => {
                if let data::Records::ContrastiveAb(v) = &d.records {
                    let swapped = data::Records::ContrastiveAb(
                        v.iter()
                            .map(data::swap_letters)
                            .collect::<std::result::Result<_, _>>()?,
                    );
                    score(
                        BaselineCondition::LetterSwap,
                        &units(lm, &swapped, style, None, &[])?,
                        None,
                    )?;
                }
            }
        }
    }
    Ok(out)
}
