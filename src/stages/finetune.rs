//! `finetune`: LoRA adapters trained on a dataset's contrastive pairs, the fine-tuning
//! baselines (`sft_lora`, `dpo_lora`) that `evaluate` and `degradation` run beside the
//! steering methods (`adapters:`).
//!
//! The pairs are the ones `extract` reads (the same rendered prompts, positive side
//! chosen, negative rejected; [`super::extract::pairs`]); training is
//! [`steerbench_eval::finetune::train_lora`].
//!
//! Writes (docs/outputs.md):
//! - `adapters/<method>/adapter_model.safetensors` + `adapter_config.json`: PEFT's layout
//!   (`peft.PeftModel.from_pretrained(model, dir)` loads it onto the Hugging Face model);
//! - `train_log.parquet`: per method, every optimizer step (train) and every epoch's
//!   validation (loss, reward margin, preference accuracy);
//! - `cost.parquet`: per method, wall time, forward/backward tokens, trainable
//!   parameters, pairs used.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use steerbench_data as data;
use steerbench_eval::finetune::{train_lora, LoraConfig, LoraLayers, Objective, PrefPair, Trained};
use steerbench_model::{Adapter, Proj};

use super::common::{self, Ctx};
use crate::exec::{StageOutputs, StageRunner};
use crate::spec::{DatasetRef, FinetuneMethod, FinetuneParams, Layers, StageSpec};
use crate::tables::{CostRow, MethodKind, TrainLogRow};

pub struct Finetune;

/// Where a method's adapter lies inside the stage folder.
pub fn adapter_dir(stage_dir: &std::path::Path, method: MethodKind) -> std::path::PathBuf {
    stage_dir.join("adapters").join(method.name())
}

impl StageRunner<common::Services> for Finetune {
    fn version(&self) -> u32 {
        1
    }

    fn run(&self, ctx: &Ctx<'_>) -> Result<StageOutputs> {
        let StageSpec::Finetune(p) = ctx.params() else {
            bail!("not a finetune stage")
        };
        run(ctx, p)
    }
}

/// The training pairs of a dataset split: prompt, positive answer, negative answer.
fn pref_pairs(ctx: &Ctx<'_>, r: &DatasetRef) -> Result<Vec<PrefPair>> {
    let lm = common::model(ctx)?;
    let records = common::records(ctx, r)?;
    if matches!(records, data::Records::IclTask(_)) {
        bail!("dataset `{r}` is icl_task: it has no positive/negative answers to train on");
    }
    let pairs = super::extract::pairs(lm, &records, common::style(ctx))
        .with_context(|| format!("dataset `{r}`"))?;
    let out: Vec<PrefPair> = pairs
        .into_iter()
        .map(|p| PrefPair {
            prompt: p.pos.tokens[..p.pos.prompt_len].to_vec(),
            chosen: p.pos.tokens[p.pos.prompt_len..].to_vec(),
            rejected: p.neg.tokens[p.neg.prompt_len..].to_vec(),
        })
        .collect();
    if out.is_empty() {
        bail!("dataset `{r}` has no pairs to train on");
    }
    Ok(out)
}

/// The training settings of a spec method.
pub fn lora_config(m: &FinetuneMethod) -> Result<LoraConfig> {
    let p = m.params();
    let modules = p
        .modules
        .iter()
        .map(|n| Proj::parse(n).with_context(|| format!("unknown LoRA module `{n}`")))
        .collect::<Result<Vec<_>>>()?;
    Ok(LoraConfig {
        objective: match m {
            FinetuneMethod::SftLora(_) => Objective::Sft,
            FinetuneMethod::DpoLora(_) => Objective::Dpo {
                beta: p.beta.unwrap_or(0.1),
            },
        },
        rank: p.rank,
        alpha: p.alpha,
        dropout: p.dropout as f32,
        modules,
        layers: match &p.layers {
            Layers::All => LoraLayers::All,
            Layers::List(v) => LoraLayers::List(v.clone()),
        },
        lr: p.lr,
        weight_decay: p.weight_decay,
        epochs: p.epochs,
        batch_size: p.batch_size,
        seed: p.seed,
        patience: p.patience,
    })
}

fn run(ctx: &Ctx<'_>, p: &FinetuneParams) -> Result<StageOutputs> {
    let lm = common::model(ctx)?;
    let train = pref_pairs(ctx, &p.dataset)?;
    let val = match &p.val {
        Some(r) => pref_pairs(ctx, r)?,
        None => Vec::new(),
    };
    let progress = ctx.progress();
    let steps: usize = p
        .methods
        .iter()
        .map(|m| m.params().epochs * train.len().div_ceil(m.params().batch_size.max(1)))
        .sum();
    progress.set_total(steps as u64);
    let (mut log, mut cost) = (Vec::new(), Vec::new());
    let mut summary = StageOutputs::default();
    let conv1d = lm.model.config().arch == steerbench_model::Arch::Gpt2;
    for m in &p.methods {
        let kind = MethodKind::from(m);
        let cfg = lora_config(m)?;
        progress.set_message(kind.name().to_string());
        let trained: Trained = train_lora(&lm.model, &train, &val, &cfg, |_, _| progress.inc(1))
            .with_context(|| format!("training `{}`", kind.name()))?;
        let dir = adapter_dir(ctx.out_dir(), kind);
        trained
            .adapter
            .save_peft(&dir, &lm.model.projections(), &lm.resolved.id, conv1d)
            .with_context(|| format!("writing the `{}` adapter", kind.name()))?;
        log.extend(trained.log.iter().map(|r| TrainLogRow {
            method: kind,
            step: r.step as u32,
            epoch: r.epoch as u32,
            split: r.split.to_string(),
            loss: r.loss,
            reward_margin: r.reward_margin,
            pref_accuracy: r.pref_accuracy,
        }));
        cost.push(CostRow {
            method: kind,
            stage: ctx.name().to_string(),
            wall_s: trained.wall_s,
            forward_tokens: trained.forward_tokens as f64,
            backward_tokens: trained.backward_tokens as f64,
            trainable_params: trained.adapter.n_params() as f64,
            examples: train.len() as u32,
        });
        let last = |split: &str| trained.log.iter().rev().find(|r| r.split == split);
        if let Some(v) = last("val") {
            summary.summary.insert(
                format!("{}_val_pref_accuracy", kind.name()),
                serde_json::json!(v.pref_accuracy),
            );
        }
        if let Some(t) = last("train") {
            summary.summary.insert(
                format!("{}_final_train_loss", kind.name()),
                serde_json::json!(t.loss),
            );
        }
    }
    ctx.write_table(&log)?;
    ctx.write_table(&cost)?;
    Ok(summary)
}

/// Every adapter of a finetune stage, in its methods' order.
pub fn load_adapters(
    dir: &std::path::Path,
    model: &steerbench_model::Model,
) -> Result<Vec<(MethodKind, Arc<Adapter>)>> {
    let costs: Vec<CostRow> = crate::tables::read_table(dir)?;
    let projections = model.projections();
    costs
        .iter()
        .map(|c| {
            let at = adapter_dir(dir, c.method);
            let a = Adapter::load_peft(&at, &projections)
                .with_context(|| format!("adapter `{}`", c.method))?;
            Ok((c.method, Arc::new(a)))
        })
        .collect()
}
