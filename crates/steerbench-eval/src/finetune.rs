//! Fine-tuning baselines on the steering methods' own pairs: LoRA adapters trained by
//! supervised fine-tuning on the positive side (`sft_lora`) or by DPO (Rafailov et al.
//! 2023; `dpo_lora`) with the positive side chosen, the negative rejected and the frozen
//! base model as reference.
//!
//! Training runs the runtime's ordinary forward with the adapter riding on the hooks
//! (`Hooks::set_adapter`), its A/B matrices candle `Var`s: the same block code as
//! evaluation, so every family trains without code of its own. AdamW (candle-nn), batches
//! of pairs in a seeded order, A initialised as PEFT does (uniform ±1/√d_in from a seeded
//! ChaCha stream) and B = 0, so the adapter starts as the base model and a rerun with the
//! same seed gives the same adapter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use steerbench_model::{Adapter, Hooks, LoraDropout, LoraPair, Model, Proj, Sequence};

use crate::error::{EvalError, Result};

/// What the adapter is trained to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    /// Mean next-token loss over the chosen answer's tokens.
    Sft,
    /// `−log σ(β [(log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))])`, log-probs
    /// summed over the answer tokens.
    Dpo { beta: f64 },
}

/// Which layers carry LoRA pairs.
#[derive(Debug, Clone, PartialEq)]
pub enum LoraLayers {
    All,
    List(Vec<usize>),
}

/// Training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub objective: Objective,
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f32,
    pub modules: Vec<Proj>,
    pub layers: LoraLayers,
    pub lr: f64,
    pub weight_decay: f64,
    pub epochs: usize,
    /// Pairs per optimizer step.
    pub batch_size: usize,
    pub seed: u64,
    /// Stop after this many epochs without a lower validation loss, keeping the best
    /// epoch's adapter (needs validation pairs).
    pub patience: Option<usize>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            objective: Objective::Sft,
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            modules: vec![Proj::Q, Proj::V],
            layers: LoraLayers::All,
            lr: 1e-3,
            weight_decay: 0.0,
            epochs: 3,
            batch_size: 8,
            seed: 0,
            patience: None,
        }
    }
}

/// One training pair: a rendered prompt and the two answers that may follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefPair {
    pub prompt: Vec<u32>,
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
}

/// One line of the training log: a train step, or an evaluation of the validation split.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    /// Optimizer steps taken so far (1-based for train rows; validation rows carry the
    /// step after which they were measured, 0 before training).
    pub step: usize,
    pub epoch: usize,
    /// `train` or `val`.
    pub split: &'static str,
    pub loss: f64,
    /// DPO: mean `β [(π_c − ref_c) − (π_r − ref_r)]`; SFT: the same quantity at β = 1
    /// (how far the log-likelihood gap moved from the base model's), measured on
    /// validation rows only (NaN on SFT's train rows, whose loss never runs the rejected
    /// answers).
    pub reward_margin: f64,
    /// Share of pairs whose chosen answer is more likely than the rejected one under the
    /// adapted model, `log π(c) > log π(r)` (about the base model's share before training;
    /// NaN where not measured).
    pub pref_accuracy: f64,
}

/// A trained adapter and what it cost.
#[derive(Debug, Clone)]
pub struct Trained {
    /// Plain tensors (no longer `Var`s); the best epoch's when early stopping ran.
    pub adapter: Adapter,
    pub log: Vec<LogRow>,
    /// Tokens through forward passes (policy, reference and validation).
    pub forward_tokens: u64,
    /// Tokens through backward passes.
    pub backward_tokens: u64,
    pub steps: usize,
    pub epochs_run: usize,
    pub wall_s: f64,
}

/// Checks the settings against the model before any work.
pub fn check_config(model: &Model, cfg: &LoraConfig) -> Result<Vec<(usize, Proj)>> {
    let bad = |m: String| Err(EvalError::Input(m));
    if cfg.rank == 0 {
        return bad("LoRA rank must be at least 1".into());
    }
    if !(cfg.alpha > 0.0) || !(cfg.lr > 0.0) || !(cfg.weight_decay >= 0.0) {
        return bad("LoRA needs alpha > 0, lr > 0 and weight_decay >= 0".into());
    }
    if !(0.0..1.0).contains(&cfg.dropout) {
        return bad(format!("LoRA dropout {} is not in [0, 1)", cfg.dropout));
    }
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return bad("LoRA needs epochs >= 1 and batch_size >= 1".into());
    }
    if let Objective::Dpo { beta } = cfg.objective {
        if !(beta > 0.0) {
            return bad(format!("DPO beta must be positive, got {beta}"));
        }
    }
    if cfg.modules.is_empty() {
        return bad("LoRA needs at least one module".into());
    }
    let n = model.config().n_layers;
    let layers: Vec<usize> = match &cfg.layers {
        LoraLayers::All => (0..n).collect(),
        LoraLayers::List(ls) => ls.clone(),
    };
    if let Some(l) = layers.iter().find(|&&l| l >= n) {
        return bad(format!("LoRA layer {l} out of range (the model has {n})"));
    }
    let have = model.projections();
    let mut out = Vec::new();
    for &l in &layers {
        for &p in &cfg.modules {
            if !have.iter().any(|i| i.layer == l && i.proj == p) {
                let names: Vec<&str> = have
                    .iter()
                    .filter(|i| i.layer == l)
                    .map(|i| i.proj.name())
                    .collect();
                return bad(format!(
                    "LoRA module `{}`: {} has no such projection (it has {})",
                    p.name(),
                    model.config().model_type,
                    names.join(", ")
                ));
            }
            out.push((l, p));
        }
    }
    Ok(out)
}

/// The pair indices of every optimizer step, epoch after epoch: each epoch a seeded
/// shuffle of `0..n` cut into batches (what [`train_lora`] follows; benchmarks replay it).
pub fn batch_order(n: usize, cfg: &LoraConfig) -> Vec<Vec<Vec<usize>>> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(1));
    let mut order: Vec<usize> = (0..n).collect();
    (0..cfg.epochs)
        .map(|_| {
            order.shuffle(&mut rng);
            order
                .chunks(cfg.batch_size.max(1))
                .map(|c| c.to_vec())
                .collect()
        })
        .collect()
}

/// A fresh adapter of `Var`s: A uniform in ±1/√d_in (PEFT's Kaiming init with a = √5),
/// B = 0. The one [`train_lora`] starts from for `cfg` (its seed).
pub fn init_adapter(
    model: &Model,
    targets: &[(usize, Proj)],
    cfg: &LoraConfig,
) -> Result<(Adapter, Vec<Var>)> {
    let dev = model.device();
    let have = model.projections();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut pairs = BTreeMap::new();
    let mut vars = Vec::new();
    for &(l, p) in targets {
        let info = have
            .iter()
            .find(|i| i.layer == l && i.proj == p)
            .expect("checked by check_config");
        let bound = 1.0 / (info.d_in as f64).sqrt();
        let a: Vec<f32> = (0..cfg.rank * info.d_in)
            .map(|_| rng.gen_range(-bound..bound) as f32)
            .collect();
        let a = Var::from_vec(a, (cfg.rank, info.d_in), dev)?;
        let b = Var::zeros((info.d_out, cfg.rank), candle_core::DType::F32, dev)?;
        pairs.insert(
            (l, p),
            LoraPair {
                a: a.as_tensor().clone(),
                b: b.as_tensor().clone(),
            },
        );
        vars.push(a);
        vars.push(b);
    }
    let dropout = (cfg.dropout > 0.0).then(|| {
        Arc::new(LoraDropout::new(
            cfg.dropout,
            cfg.seed ^ 0x9e37_79b9_7f4a_7c15,
        ))
    });
    Ok((
        Adapter {
            rank: cfg.rank,
            alpha: cfg.alpha,
            pairs,
            dropout,
        },
        vars,
    ))
}

/// The adapter's current values as plain tensors (no graph, no dropout).
fn snapshot(adapter: &Adapter) -> Result<Adapter> {
    let mut pairs = BTreeMap::new();
    for (k, p) in &adapter.pairs {
        pairs.insert(
            *k,
            LoraPair {
                a: p.a.detach().copy()?,
                b: p.b.detach().copy()?,
            },
        );
    }
    Ok(Adapter {
        rank: adapter.rank,
        alpha: adapter.alpha,
        pairs,
        dropout: None,
    })
}

/// Summed answer log-probs of each sequence `prompt ++ answer` under `hooks`: a
/// differentiable (rows,) tensor, and the number of answer tokens per row.
pub fn answer_logprobs(
    model: &Model,
    seqs: &[(&[u32], &[u32])],
    hooks: &mut Hooks,
) -> Result<(Tensor, Vec<usize>)> {
    let batch: Vec<Sequence> = seqs
        .iter()
        .map(|(p, a)| {
            let mut t = p.to_vec();
            t.extend_from_slice(a);
            Sequence::new(t, p.len())
        })
        .collect();
    if let Some((i, _)) = seqs
        .iter()
        .enumerate()
        .find(|(_, (p, a))| p.is_empty() || a.is_empty())
    {
        return Err(EvalError::Input(format!(
            "training sequence {i}: an empty prompt or answer"
        )));
    }
    let (hidden, pad) = model.forward_train(&batch, hooks)?;
    let t = hidden.dim(1)?;
    let (mut idx, mut targets, mut owner) = (Vec::new(), Vec::new(), Vec::new());
    let mut counts = Vec::with_capacity(seqs.len());
    for (r, s) in batch.iter().enumerate() {
        for j in s.prompt_len..s.tokens.len() {
            idx.push((r * t + pad[r] + j - 1) as u32);
            targets.push(s.tokens[j]);
            owner.push(r);
        }
        counts.push(s.tokens.len() - s.prompt_len);
    }
    let lp = model.logprobs_at(&hidden, &idx, &targets)?;
    // Sum per row as a (rows, n) 0/1 matrix times the log-probs.
    let n = idx.len();
    let mut m = vec![0f32; seqs.len() * n];
    for (i, &r) in owner.iter().enumerate() {
        m[r * n + i] = 1.0;
    }
    let m = Tensor::from_vec(m, (seqs.len(), n), hidden.device())?;
    let sums = m.matmul(&lp.unsqueeze(1)?)?.squeeze(1)?;
    Ok((sums, counts))
}

/// The DPO loss of a batch (mean over pairs) from summed answer log-probs: policy chosen
/// and rejected `pc`, `pr` (differentiable), reference `rc`, `rr`. Also returns the
/// per-pair margins `β [(pc − rc) − (pr − rr)]`.
pub fn dpo_loss(
    pc: &Tensor,
    pr: &Tensor,
    rc: &Tensor,
    rr: &Tensor,
    beta: f64,
) -> Result<(Tensor, Tensor)> {
    let z = (((pc - rc)? - (pr - rr)?)? * beta)?;
    // −log σ(z) = softplus(−z) = max(−z, 0) + log(1 + exp(−|z|)), stable for any z.
    let neg = z.neg()?;
    let softplus = (neg.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    Ok((softplus.mean_all()?, z))
}

/// Loss and margins of one batch of pairs under the adapter (or the base model when
/// `adapter` is `None`); the tokens run through the forward.
struct BatchOut {
    loss: Tensor,
    /// `β [(π_c − ref_c) − (π_r − ref_r)]` per pair (β = 1 under SFT).
    margins: Vec<f32>,
    /// `π_c − π_r` per pair.
    gaps: Vec<f32>,
    tokens: u64,
}

/// `margins`: also run the rejected answers under SFT (whose loss does not need them) to
/// report margins; DPO always runs both.
fn batch_loss(
    model: &Model,
    pairs: &[&PrefPair],
    refs: &[(f32, f32)],
    adapter: &Arc<Adapter>,
    objective: Objective,
    margins: bool,
) -> Result<BatchOut> {
    let mut seqs: Vec<(&[u32], &[u32])> = Vec::with_capacity(2 * pairs.len());
    let both = margins || matches!(objective, Objective::Dpo { .. });
    for p in pairs {
        seqs.push((&p.prompt, &p.chosen));
        if both {
            seqs.push((&p.prompt, &p.rejected));
        }
    }
    let tokens = seqs.iter().map(|(p, a)| (p.len() + a.len()) as u64).sum();
    let mut hooks = Hooks::new();
    hooks.set_adapter(adapter.clone(), 1.0);
    let (sums, counts) = answer_logprobs(model, &seqs, &mut hooks)?;
    if !both {
        let chosen_tokens: usize = counts.iter().sum();
        return Ok(BatchOut {
            loss: (sums.sum_all()? / -(chosen_tokens as f64))?,
            margins: Vec::new(),
            gaps: Vec::new(),
            tokens,
        });
    }
    let dev = sums.device().clone();
    let n = pairs.len();
    let pick = |off: usize| -> Result<Tensor> {
        let ix: Vec<u32> = (0..n).map(|i| (2 * i + off) as u32).collect();
        Ok(sums.index_select(&Tensor::new(ix.as_slice(), &dev)?, 0)?)
    };
    let (pc, pr) = (pick(0)?, pick(1)?);
    let rc = Tensor::new(refs.iter().map(|r| r.0).collect::<Vec<_>>(), &dev)?;
    let rr = Tensor::new(refs.iter().map(|r| r.1).collect::<Vec<_>>(), &dev)?;
    let (loss, margins) = match objective {
        Objective::Dpo { beta } => dpo_loss(&pc, &pr, &rc, &rr, beta)?,
        Objective::Sft => {
            let chosen_tokens: usize = counts.iter().step_by(2).sum();
            let loss = (pc.sum_all()? / -(chosen_tokens as f64))?;
            let z = ((pc.detach() - &rc)? - (pr.detach() - &rr)?)?;
            (loss, z)
        }
    };
    let gaps = (pc.detach() - pr.detach())?.to_vec1()?;
    Ok(BatchOut {
        loss,
        margins: margins.detach().to_vec1()?,
        gaps,
        tokens,
    })
}

/// Reference (base model) summed answer log-probs of each pair, chosen and rejected.
fn reference(model: &Model, pairs: &[PrefPair], batch: usize) -> Result<(Vec<(f32, f32)>, u64)> {
    let mut out = Vec::with_capacity(pairs.len());
    let mut tokens = 0;
    for chunk in pairs.chunks(batch.max(1)) {
        let mut seqs: Vec<(&[u32], &[u32])> = Vec::new();
        for p in chunk {
            seqs.push((&p.prompt, &p.chosen));
            seqs.push((&p.prompt, &p.rejected));
        }
        tokens += seqs
            .iter()
            .map(|(p, a)| (p.len() + a.len()) as u64)
            .sum::<u64>();
        let (sums, _) = answer_logprobs(model, &seqs, &mut Hooks::new())?;
        let v: Vec<f32> = sums.to_vec1()?;
        out.extend(v.chunks(2).map(|c| (c[0], c[1])));
    }
    Ok((out, tokens))
}

/// Loss, mean margin and accuracy of `pairs` under `adapter` without gradients.
fn evaluate(
    model: &Model,
    pairs: &[PrefPair],
    refs: &[(f32, f32)],
    adapter: &Arc<Adapter>,
    cfg: &LoraConfig,
) -> Result<(f64, f64, f64, u64)> {
    let (mut loss, mut margins, mut gaps, mut tokens) = (0f64, Vec::new(), Vec::new(), 0u64);
    for (chunk, r) in pairs
        .chunks(cfg.batch_size)
        .zip(refs.chunks(cfg.batch_size))
    {
        let refs: Vec<&PrefPair> = chunk.iter().collect();
        let out = batch_loss(model, &refs, r, adapter, cfg.objective, true)?;
        loss += out.loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        margins.extend(out.margins);
        gaps.extend(out.gaps);
        tokens += out.tokens;
    }
    let n = pairs.len().max(1) as f64;
    let (margin, acc) = summarize(&margins, &gaps);
    Ok((loss / n, margin, acc, tokens))
}

/// Mean margin, and the share of positive gaps (NaN when none were measured).
fn summarize(margins: &[f32], gaps: &[f32]) -> (f64, f64) {
    let mean = |v: &[f32]| v.iter().map(|&m| m as f64).sum::<f64>() / v.len() as f64;
    let margin = if margins.is_empty() {
        f64::NAN
    } else {
        mean(margins)
    };
    let acc = if gaps.is_empty() {
        f64::NAN
    } else {
        gaps.iter().filter(|&&g| g > 0.0).count() as f64 / gaps.len() as f64
    };
    (margin, acc)
}

/// Trains a LoRA adapter on `train` (validation on `val`, may be empty). `progress` gets
/// (step, loss) after each optimizer step.
pub fn train_lora(
    model: &Model,
    train: &[PrefPair],
    val: &[PrefPair],
    cfg: &LoraConfig,
    mut progress: impl FnMut(usize, f64),
) -> Result<Trained> {
    let started = Instant::now();
    if train.is_empty() {
        return Err(EvalError::Input(
            "LoRA training needs at least one pair".into(),
        ));
    }
    if cfg.patience.is_some() && val.is_empty() {
        return Err(EvalError::Input(
            "early stopping (patience) needs validation pairs".into(),
        ));
    }
    let targets = check_config(model, cfg)?;
    let (adapter, vars) = init_adapter(model, &targets, cfg)?;
    let adapter = Arc::new(adapter);
    let (train_refs, mut fwd) = reference(model, train, cfg.batch_size)?;
    let (val_refs, t) = reference(model, val, cfg.batch_size)?;
    fwd += t;
    let mut bwd = 0u64;
    let mut opt = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let eval_adapter = |a: &Adapter| -> Result<Arc<Adapter>> { Ok(Arc::new(snapshot(a)?)) };
    let mut log = Vec::new();
    let mut best: Option<(f64, Adapter)> = None;
    let mut since_best = 0usize;
    let order = batch_order(train.len(), cfg);
    let mut step = 0usize;
    let mut epochs_run = 0usize;
    if !val.is_empty() {
        let (loss, margin, acc, t) =
            evaluate(model, val, &val_refs, &eval_adapter(&adapter)?, cfg)?;
        fwd += t;
        log.push(LogRow {
            step: 0,
            epoch: 0,
            split: "val",
            loss,
            reward_margin: margin,
            pref_accuracy: acc,
        });
    }
    for (epoch, batches) in (1..).zip(&order) {
        for chunk in batches {
            let pairs: Vec<&PrefPair> = chunk.iter().map(|&i| &train[i]).collect();
            let refs: Vec<(f32, f32)> = chunk.iter().map(|&i| train_refs[i]).collect();
            let out = batch_loss(model, &pairs, &refs, &adapter, cfg.objective, false)?;
            let loss = out.loss.to_scalar::<f32>()? as f64;
            if !loss.is_finite() {
                return Err(EvalError::Input(format!(
                    "LoRA training diverged: loss {loss} at step {}",
                    step + 1
                )));
            }
            opt.backward_step(&out.loss)?;
            fwd += out.tokens;
            bwd += out.tokens;
            step += 1;
            let (margin, acc) = summarize(&out.margins, &out.gaps);
            log.push(LogRow {
                step,
                epoch,
                split: "train",
                loss,
                reward_margin: margin,
                pref_accuracy: acc,
            });
            progress(step, loss);
        }
        epochs_run = epoch;
        if !val.is_empty() {
            let snap = eval_adapter(&adapter)?;
            let (loss, margin, acc, t) = evaluate(model, val, &val_refs, &snap, cfg)?;
            fwd += t;
            log.push(LogRow {
                step,
                epoch,
                split: "val",
                loss,
                reward_margin: margin,
                pref_accuracy: acc,
            });
            if let Some(patience) = cfg.patience {
                if best.as_ref().is_none_or(|(b, _)| loss < *b) {
                    best = Some((loss, (*snap).clone()));
                    since_best = 0;
                } else {
                    since_best += 1;
                    if since_best >= patience {
                        break;
                    }
                }
            }
        }
    }
    let adapter = match best {
        Some((_, a)) => a,
        None => snapshot(&adapter)?,
    };
    Ok(Trained {
        adapter,
        log,
        forward_tokens: fwd,
        backward_tokens: bwd,
        steps: step,
        epochs_run,
        wall_s: started.elapsed().as_secs_f64(),
    })
}
