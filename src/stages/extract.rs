//! `extract`: residual-stream (or other site) activations of paired examples.
//!
//! One forward pass per sequence serves every layer and site, and every method of
//! the downstream `vectors` stages (adding a method never re-runs the model).
//!
//! Writes `activations.parquet` (example_id, side, layer, site, position, vector) and
//! `norms.parquet` (layer, site, median_norm, n_tokens): the median token norm over
//! non-first positions, used to scale vectors (`normalize: resid_norm`).

use anyhow::{bail, Result};
use steerbench_data as data;
use steerbench_eval::capture::{capture, Captured, ReadAt};
use steerbench_eval::prompt;
use steerbench_model::{HookPoint, Sequence};
use steerbench_steering::methods::normalize::median;

use super::common::{self, Ctx};
use crate::exec::{Shard, StageOutputs, StageRunner};
use crate::spec::{ExtractParams, Layers, ReadPosition, StageSpec};
use crate::tables::{ActivationRow, NormRow};

pub struct Extract;

/// A contrastive pair as token sequences.
pub struct Pair {
    pub id: String,
    pub pos: Sequence,
    pub neg: Sequence,
}

/// Paired sequences of a contrastive dataset (A/B: prompt + letter; completions and
/// open-ended references: prompt + continuation).
pub fn pairs(
    lm: &steerbench_model::LoadedModel,
    records: &data::Records,
    style: prompt::PromptStyle,
) -> Result<Vec<Pair>> {
    let letters = common::letter_ids(lm, 26).unwrap_or_default();
    let mut out = Vec::new();
    let cont = |p: &data::PromptParts, c: &str| -> Result<(Vec<u32>, Sequence)> {
        let ids = common::encode(lm, &common::to_prompt(p), style)?;
        let seq = prompt::with_continuation(&lm.tokenizer, &ids, false, style, c)?;
        Ok((ids, seq))
    };
    match records {
        data::Records::ContrastiveAb(items) => {
            for it in items {
                let ids = common::encode(lm, &common::to_prompt(&data::ab_parts(it, None)), style)?;
                let (m, n) = (it.matching.index(), it.not_matching.index());
                let (Some(&lm_id), Some(&ln_id)) = (letters.get(m), letters.get(n)) else {
                    bail!("item {}: answer letters are not single tokens", it.id);
                };
                let mut pos = ids.clone();
                pos.push(lm_id);
                let mut neg = ids.clone();
                neg.push(ln_id);
                out.push(Pair { id: it.id.clone(), pos: Sequence::new(pos, ids.len()), neg: Sequence::new(neg, ids.len()) });
            }
        }
        data::Records::ContrastiveCompletion(items) => {
            for it in items {
                let (parts, p, n) = data::completion_parts(it, None);
                out.push(Pair { id: it.id.clone(), pos: cont(&parts, &p)?.1, neg: cont(&parts, &n)?.1 });
            }
        }
        data::Records::OpenEnded(items) => {
            for it in items {
                let (parts, m, n) = data::open_ended_parts(it, None);
                let (Some(m), Some(n)) = (m, n) else {
                    bail!("open_ended item {} has no matching/not_matching continuations to contrast", it.id);
                };
                out.push(Pair { id: it.id.clone(), pos: cont(&parts, &m)?.1, neg: cont(&parts, &n)?.1 });
            }
        }
        data::Records::ToolChoice(items) => {
            // Behaviour tasks: the matching call against the other, after the declaration.
            for it in items {
                let (parts, calls) = data::tool_parts(it);
                let Some((m, n)) = calls else { continue };
                out.push(Pair { id: it.id.clone(), pos: cont(&parts, &m)?.1, neg: cont(&parts, &n)?.1 });
            }
            if out.is_empty() {
                bail!("no tool-choice behaviour tasks (with `matching` / `not_matching` calls) to contrast");
            }
        }
        data::Records::IclTask(items) => {
            // In-Context Vectors (Liu et al.): the latent of a demonstration's output versus
            // that of its input, each run on its own.
            for it in items {
                let enc = |text: &str| -> Result<Sequence> {
                    let p = data::PromptParts { system: None, user: text.to_string(), assistant_prefix: String::new() };
                    Ok(Sequence::prompt(common::encode(lm, &common::to_prompt(&p), style)?))
                };
                out.push(Pair { id: it.id.clone(), pos: enc(&it.output)?, neg: enc(&it.input)? });
            }
        }
        other => bail!(
            "extract reads contrastive datasets (contrastive_ab, contrastive_completion, open_ended with references, tool_choice behaviour tasks) or icl_task, not {}",
            other.format().name()
        ),
    }
    Ok(out)
}

pub fn read_at(pos: &ReadPosition, records: &data::Records) -> ReadAt {
    match pos {
        ReadPosition::Answer => match records {
            data::Records::ContrastiveAb(_) | data::Records::IclTask(_) => ReadAt::Last,
            // Every call starts `{"name":"`: the first tokens of both sides are the same.
            data::Records::ToolChoice(_) => ReadAt::CompletionMean,
            _ => ReadAt::FirstCompletion,
        },
        ReadPosition::LastPrompt => ReadAt::LastPrompt,
        ReadPosition::CompletionMean => ReadAt::CompletionMean,
        ReadPosition::Indices(ix) => ReadAt::Indices(ix.clone()),
    }
}

pub fn hook_site(s: &crate::spec::Site) -> steerbench_model::Site {
    use crate::spec::Site as S;
    use steerbench_model::Site as M;
    match s {
        S::ResidPre => M::ResidPre,
        S::ResidMid => M::ResidMid,
        S::ResidPost => M::ResidPost,
        S::AttnOut => M::AttnOut,
        S::MlpOut => M::MlpOut,
        S::HeadOut => M::HeadOut,
    }
}

pub fn site_name(s: steerbench_model::Site) -> &'static str {
    use steerbench_model::Site as M;
    match s {
        M::ResidPre => "resid_pre",
        M::ResidMid => "resid_mid",
        M::ResidPost => "resid_post",
        M::AttnOut => "attn_out",
        M::MlpOut => "mlp_out",
        M::HeadOut => "head_out",
    }
}

impl StageRunner<common::Services> for Extract {
    fn version(&self) -> u32 {
        2
    }

    fn run(&self, ctx: &Ctx<'_>) -> Result<StageOutputs> {
        let w = work(ctx, params(ctx)?)?;
        let cap = w.capture(ctx, 0..w.pairs.len())?;
        let acts = w.activation_rows(0, cap.vectors);
        finish(ctx, &w, acts, cap.token_norms)
    }

    fn shardable(&self) -> bool {
        true
    }

    /// A shard does a contiguous run of batches (four pairs, eight sequences each, the
    /// batch a whole run uses), so every forward pass sees the same sequences.
    fn run_shard(&self, ctx: &Ctx<'_>, shard: Shard) -> Result<usize> {
        let w = work(ctx, params(ctx)?)?;
        let batches = shard.range(w.pairs.len().div_ceil(PAIRS_PER_BATCH));
        let pairs = (batches.start * PAIRS_PER_BATCH).min(w.pairs.len())
            ..(batches.end * PAIRS_PER_BATCH).min(w.pairs.len());
        let cap = w.capture(ctx, pairs.clone())?;
        ctx.write_table(&w.activation_rows(pairs.start, cap.vectors))?;
        let mut norms = token_norm_frame(&cap.token_norms)?;
        ctx.write_parquet(TOKEN_NORMS, &mut norms)?;
        Ok(batches.len())
    }

    fn merge(&self, ctx: &Ctx<'_>, shards: &[std::path::PathBuf]) -> Result<StageOutputs> {
        let w = work(ctx, params(ctx)?)?;
        let mut acts = Vec::new();
        let mut token_norms = vec![Vec::new(); w.points.len()];
        for dir in shards {
            acts.extend(crate::tables::read_table::<ActivationRow>(dir)?);
            let path = dir.join(format!("{TOKEN_NORMS}.parquet"));
            let df = crate::store::read_parquet(&path)?;
            let point = df.column("point")?.u32()?;
            let norm = df.column("norm")?.f32()?;
            for (k, v) in point.iter().zip(norm.iter()) {
                let (Some(k), Some(v)) = (k, v) else {
                    bail!("{}: null in token norms", path.display());
                };
                token_norms
                    .get_mut(k as usize)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{}: hook point {k} out of range", path.display())
                    })?
                    .push(v);
            }
        }
        let expected = w.pairs.len() * 2 * w.points.len();
        if acts.len() != expected {
            bail!(
                "the shards hold {} activation rows, the stage has {expected}",
                acts.len()
            );
        }
        finish(ctx, &w, acts, token_norms)
    }
}

/// Pairs per forward pass (two sequences each).
const PAIRS_PER_BATCH: usize = 4;
/// A shard's per-token norms (`point`, `norm`), concatenated by the merge before the medians.
const TOKEN_NORMS: &str = "token_norms";

fn params<'c>(ctx: &'c Ctx<'_>) -> Result<&'c ExtractParams> {
    match ctx.params() {
        StageSpec::Extract(p) => Ok(p),
        _ => bail!("not an extract stage"),
    }
}

fn token_norm_frame(norms: &[Vec<f32>]) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::*;
    let point: Vec<u32> = norms
        .iter()
        .enumerate()
        .flat_map(|(k, v)| std::iter::repeat_n(k as u32, v.len()))
        .collect();
    let norm: Vec<f32> = norms.iter().flatten().copied().collect();
    Ok(DataFrame::new(
        point.len(),
        vec![
            Column::new("point".into(), point),
            Column::new("norm".into(), norm),
        ],
    )?)
}

/// An extract stage's inputs: hook points, pairs as sequences, where to read.
struct Work {
    points: Vec<HookPoint>,
    pairs: Vec<Pair>,
    at: ReadAt,
    position: String,
}

fn work(ctx: &Ctx<'_>, p: &ExtractParams) -> Result<Work> {
    let lm = common::model(ctx)?;
    let n_layers = lm.model.config().n_layers;
    let layers: Vec<usize> = match &p.layers {
        Layers::All => (0..n_layers).collect(),
        Layers::List(v) => v.clone(),
    };
    let points: Vec<HookPoint> = p
        .sites
        .iter()
        .flat_map(|s| layers.iter().map(move |&l| HookPoint::new(l, hook_site(s))))
        .collect();
    let records = common::records(ctx, &p.dataset)?;
    let pairs = pairs(lm, &records, common::style(ctx))?;
    common::check_lengths(
        ctx,
        lm,
        &p.dataset,
        pairs.iter().flat_map(|q| {
            [
                (q.id.as_str(), q.pos.tokens.len()),
                (q.id.as_str(), q.neg.tokens.len()),
            ]
        }),
    )?;
    Ok(Work {
        points,
        at: read_at(&p.read_position, &records),
        pairs,
        position: p.read_position.name().to_string(),
    })
}

impl Work {
    /// Activations of the pairs in `range` (both sides, batches of `PAIRS_PER_BATCH`).
    fn capture(&self, ctx: &Ctx<'_>, range: std::ops::Range<usize>) -> Result<Captured> {
        let lm = common::model(ctx)?;
        let seqs: Vec<Sequence> = self.pairs[range]
            .iter()
            .flat_map(|x| [x.pos.clone(), x.neg.clone()])
            .collect();
        let progress = ctx.progress();
        progress.set_total(seqs.len() as u64);
        progress.set_message(format!(
            "{} sequences × {} hook points",
            seqs.len(),
            self.points.len()
        ));
        Ok(capture(
            &lm.model,
            &seqs,
            &self.points,
            &self.at,
            2 * PAIRS_PER_BATCH,
            |n| progress.inc(n as u64),
        )?)
    }

    /// Rows of captured vectors, the first sequence being pair `first_pair`'s positive side.
    fn activation_rows(
        &self,
        first_pair: usize,
        vectors: Vec<Vec<Vec<f32>>>,
    ) -> Vec<ActivationRow> {
        let mut acts = Vec::new();
        for (s, per_point) in vectors.into_iter().enumerate() {
            for (k, vector) in per_point.into_iter().enumerate() {
                acts.push(ActivationRow {
                    example_id: self.pairs[first_pair + s / 2].id.clone(),
                    side: if s % 2 == 0 { "pos" } else { "neg" }.to_string(),
                    layer: self.points[k].layer as u32,
                    site: site_name(self.points[k].site).to_string(),
                    position: self.position.clone(),
                    vector,
                });
            }
        }
        acts
    }
}

/// Writes the activations and the norms (median over every captured token, per point).
fn finish(
    ctx: &Ctx<'_>,
    w: &Work,
    acts: Vec<ActivationRow>,
    token_norms: Vec<Vec<f32>>,
) -> Result<StageOutputs> {
    let lm = common::model(ctx)?;
    ctx.write_table(&acts)?;
    let mut norms = Vec::new();
    for (point, token_norms) in w.points.iter().zip(&token_norms) {
        norms.push(NormRow {
            layer: point.layer as u32,
            site: site_name(point.site).to_string(),
            median_norm: median(token_norms)?,
            n_tokens: token_norms.len() as u32,
        });
    }
    ctx.write_table(&norms)?;
    let mut out = StageOutputs::default();
    out.summary.insert("pairs".into(), w.pairs.len().into());
    // What the activations cost (the report's cost table).
    let tokens: usize = w
        .pairs
        .iter()
        .map(|p| p.pos.tokens.len() + p.neg.tokens.len())
        .sum();
    out.summary.insert("forward_tokens".into(), tokens.into());
    // What vectors computed from these activations are valid for (checked on use).
    let cfg = lm.model.config();
    out.summary.insert("n_layers".into(), cfg.n_layers.into());
    out.summary
        .insert("hidden_size".into(), cfg.hidden_size.into());
    out.summary
        .insert("model_hash".into(), lm.resolved.weight_hash.clone().into());
    Ok(out)
}
