//! Conversations scored turn by turn under steering, each history token computed once.
//!
//! A conversation's scored turns are nested: turn k's prompt (history, user message k,
//! assistant header) starts with turn k−1's prompt and its history reply. So for one
//! steering configuration (steering, strength, scope) the scorer keeps one KV cache per
//! conversation and grows it turn by turn ([`Model::extend_prefix`]); each turn's two
//! replies (matching, not matching) then run as a two-row batch on that cache. Nothing
//! is re-encoded per reply or per turn; [`score_naive`] is the re-encoding reference
//! (every turn and reply run whole) that tests and the benchmark compare with.
//!
//! Steering writes where the scope says ([`scope_positions`]), in positions of the whole
//! conversation: the same positions whether a token is computed in the cache or in a
//! reply pass, so both ways give the same numbers.

use candle_core::Tensor;
use steerbench_model::{
    ForwardOutput, HookPoint, Hooks, Intervention, Model, Pass, Positions, Sequence, SharedPrefix,
    Site,
};

use crate::dialogue::{scope_positions, Scope};
use crate::error::{EvalError, Result};
use crate::prompt::Encoded;
use crate::steer::Steer;
use crate::sweep::Value;

/// One scored assistant turn: its prompt with message spans, and the token ids of the
/// matching and the non-matching reply.
#[derive(Debug, Clone)]
pub struct ScoredTurn {
    /// 1-based index of the assistant turn in its conversation.
    pub k: usize,
    pub prompt: Encoded,
    pub replies: [Vec<u32>; 2],
}

/// A conversation's scored turns, in turn order.
#[derive(Debug, Clone)]
pub struct Dialogue {
    pub id: String,
    pub turns: Vec<ScoredTurn>,
}

impl Dialogue {
    /// Checks the turns are in order, every prompt has a token and every reply one.
    pub fn new(id: String, turns: Vec<ScoredTurn>) -> Result<Dialogue> {
        for (i, t) in turns.iter().enumerate() {
            if t.prompt.ids.is_empty() || t.replies.iter().any(|r| r.is_empty()) {
                return Err(EvalError::Input(format!(
                    "conversation {id}, turn {}: an empty prompt or reply",
                    t.k
                )));
            }
            if i > 0 && turns[i - 1].k >= t.k {
                return Err(EvalError::Input(format!(
                    "conversation {id}: turns out of order ({} after {})",
                    t.k,
                    turns[i - 1].k
                )));
            }
        }
        Ok(Dialogue { id, turns })
    }
}

/// The hooks of `steer` at `alpha` on `positions` (none when unsteered).
fn hooks(model: &Model, steer: Option<&Steer>, alpha: f32, positions: &Positions) -> Result<Hooks> {
    let mut h = Hooks::new();
    if let Some(s) = steer {
        s.install(
            &mut h,
            alpha,
            positions,
            model.config().n_layers,
            model.device(),
        )?;
    }
    Ok(h)
}

/// How the rows of one scoring run are steered: one strength for every row, or (for an
/// additive vector) one strength per row, `alpha_r * v`, so that several strengths share
/// each pass (`repeat`: consecutive batch rows per strength).
enum Rows<'a> {
    One(Option<&'a Steer>, f32),
    PerRow {
        /// Where the vector is added: the output of the steered block, or (when the
        /// blocks below run separately) the input of the one above, the same tensor.
        at: HookPoint,
        vector: &'a [f32],
        alphas: &'a [f32],
    },
}

impl Rows<'_> {
    fn n(&self) -> usize {
        match self {
            Rows::One(..) => 1,
            Rows::PerRow { alphas, .. } => alphas.len(),
        }
    }

    fn hooks(&self, model: &Model, positions: &Positions, repeat: usize) -> Result<Hooks> {
        match *self {
            Rows::One(steer, alpha) => hooks(model, steer, alpha, positions),
            Rows::PerRow { at, vector, alphas } => {
                let d = vector.len();
                let data: Vec<f32> = alphas
                    .iter()
                    .flat_map(|&a| std::iter::repeat_n(a, repeat))
                    .flat_map(|a| vector.iter().map(move |x| a * x))
                    .collect();
                let rows = data.len() / d;
                let v = Tensor::from_vec(data, (rows, d), model.device())?;
                let mut h = Hooks::new();
                h.write(
                    at,
                    Intervention::Add {
                        vector: v,
                        alpha: 1.0,
                    },
                    positions.clone(),
                );
                Ok(h)
            }
        }
    }
}

/// A turn's two replies as sequences continuing its prompt's last token `last` (which
/// gives their first log-prob; the rest of the prompt is in the cache).
fn reply_pair(t: &ScoredTurn, last: u32) -> Vec<Sequence> {
    t.replies
        .iter()
        .map(|r| {
            let mut s = vec![last];
            s.extend_from_slice(r);
            Sequence::new(s, 1)
        })
        .collect()
}

/// Appends one turn's reply log-probs to each strength's rows: the pass holds rows
/// (strength r, reply j) at `2r + j`.
fn push_pairs(out: &mut [Vec<[Vec<f32>; 2]>], o: &ForwardOutput) -> Result<()> {
    for (r, per_row) in out.iter_mut().enumerate() {
        per_row.push([
            o.completion_logprobs(2 * r)?,
            o.completion_logprobs(2 * r + 1)?,
        ]);
    }
    Ok(())
}

/// Completion log-probs of each turn's two replies under `steer` at `alpha`, steering
/// where `scope` says: `out[t] = [matching, not matching]`, one log-prob per reply token.
pub fn score_dialogue(
    model: &Model,
    d: &Dialogue,
    steer: Option<&Steer>,
    alpha: f32,
    scope: Scope,
) -> Result<Vec<[Vec<f32>; 2]>> {
    Ok(score_rows(model, d, &Rows::One(steer, alpha), scope)?.remove(0))
}

/// [`score_dialogue`] at every strength of `alphas` (`out[a]`); an additive steering runs
/// all strengths as rows of the same passes.
pub fn score_dialogue_strengths(
    model: &Model,
    d: &Dialogue,
    steer: &Steer,
    alphas: &[f32],
    scope: Scope,
) -> Result<Vec<Vec<[Vec<f32>; 2]>>> {
    match steer {
        Steer::Add { layer, vector } if layer + 1 < model.config().n_layers => {
            score_strengths_split(model, d, *layer, vector, alphas, scope)
        }
        Steer::Add { layer, vector } => score_rows(
            model,
            d,
            &Rows::PerRow {
                at: HookPoint::new(*layer, Site::ResidPost),
                vector,
                alphas,
            },
            scope,
        ),
        _ => alphas
            .iter()
            .map(|&a| score_dialogue(model, d, Some(steer), a, scope))
            .collect(),
    }
}

/// The scorer: one cache of `rows.n()` rows grown turn by turn, and per turn one pass of
/// two rows per strength (matching, not matching). `out[row][turn]`.
fn score_rows(
    model: &Model,
    d: &Dialogue,
    rows: &Rows<'_>,
    scope: Scope,
) -> Result<Vec<Vec<[Vec<f32>; 2]>>> {
    let n_layers = model.config().n_layers;
    let n = rows.n();
    // The cache and the tokens it holds.
    let mut cache: Option<(SharedPrefix, Vec<u32>)> = None;
    let mut out = vec![Vec::with_capacity(d.turns.len()); n];
    for t in &d.turns {
        let ids = &t.prompt.ids;
        let positions = scope_positions(scope, &t.prompt);
        // The prompt's last token runs with the replies: it gives their first log-prob.
        let keep = ids.len() - 1;
        let mut h = rows.hooks(model, &positions, 1)?;
        cache = match cache.take() {
            _ if keep == 0 => None,
            // The usual case: this turn's prompt continues what the cache holds.
            Some((p, held)) if held.len() <= keep && ids[..held.len()] == held[..] => Some((
                model.extend_prefix(&p, &ids[held.len()..keep], &mut h)?,
                ids[..keep].to_vec(),
            )),
            // A template that renders history differently once more turns follow: this
            // turn starts a fresh cache (still exact, only slower).
            _ => Some((
                model
                    .shared_prefix(&ids[..keep], 0..n_layers, n, None, &mut h)?
                    .0,
                ids[..keep].to_vec(),
            )),
        };
        let pair = reply_pair(t, ids[keep]);
        let batch: Vec<Sequence> = (0..n).flat_map(|_| pair.iter().cloned()).collect();
        let row_of: Vec<usize> = (0..n).flat_map(|r| [r, r]).collect();
        let pass = Pass {
            prefix: cache.as_ref().map(|(p, _)| (p, &row_of[..])),
            ..Pass::default()
        };
        let mut h = rows.hooks(model, &positions, 2)?;
        let o = model.forward_pass(&batch, &pass, &mut h)?;
        push_pairs(&mut out, &o)?;
    }
    Ok(out)
}

/// The blocks a split run computes once for every strength (`0..split`, below the
/// steered output) and those it computes per strength (`split..n`).
struct Split {
    lower: SharedPrefix,
    upper: SharedPrefix,
    /// The tokens both hold.
    held: Vec<u32>,
}

/// `copies` copies of `x` (r, t, d) stacked: (copies * r, t, d), copy c of row i at
/// `c * r + i`.
fn tile_rows(x: &Tensor, copies: usize) -> Result<Tensor> {
    let r = x.dim(0)?;
    let ix: Vec<u32> = (0..copies).flat_map(|_| 0..r as u32).collect();
    let ix = Tensor::from_vec(ix, r * copies, x.device())?;
    Ok(x.index_select(&ix, 0)?.contiguous()?)
}

/// [`score_rows`] for an additive vector at the output of a block `layer` below the last:
/// blocks `0..=layer` see no steering, so they run once (one row) for every strength, in
/// their own cache, and only the blocks above run as one row per strength. Same values as
/// [`score_rows`] up to float summation order; `(layer + 1) / n_layers` of the work is
/// no longer repeated per strength.
fn score_strengths_split(
    model: &Model,
    d: &Dialogue,
    layer: usize,
    vector: &[f32],
    alphas: &[f32],
    scope: Scope,
) -> Result<Vec<Vec<[Vec<f32>; 2]>>> {
    let n_layers = model.config().n_layers;
    let split = layer + 1;
    let rows = Rows::PerRow {
        at: HookPoint::new(split, Site::ResidPre),
        vector,
        alphas,
    };
    let n = alphas.len();
    let mut cache: Option<Split> = None;
    let mut out = vec![Vec::with_capacity(d.turns.len()); n];
    for t in &d.turns {
        let ids = &t.prompt.ids;
        let positions = scope_positions(scope, &t.prompt);
        let keep = ids.len() - 1;
        let mut h = rows.hooks(model, &positions, 1)?;
        cache = match cache.take() {
            _ if keep == 0 => None,
            Some(c) if c.held.len() == keep && ids[..keep] == c.held[..] => Some(c),
            Some(c) if c.held.len() < keep && ids[..c.held.len()] == c.held[..] => {
                let new = &ids[c.held.len()..keep];
                let (lower, resid) =
                    model.extend_prefix_from(&c.lower, new, None, &mut Hooks::new())?;
                let resid = tile_rows(&resid, n)?;
                let (upper, _) = model.extend_prefix_from(&c.upper, new, Some(&resid), &mut h)?;
                Some(Split {
                    lower,
                    upper,
                    held: ids[..keep].to_vec(),
                })
            }
            _ => {
                let toks = &ids[..keep];
                let (lower, resid) =
                    model.shared_prefix(toks, 0..split, 1, None, &mut Hooks::new())?;
                let resid = tile_rows(&resid, n)?;
                let (upper, _) =
                    model.shared_prefix(toks, split..n_layers, n, Some(&resid), &mut h)?;
                Some(Split {
                    lower,
                    upper,
                    held: toks.to_vec(),
                })
            }
        };
        let pair = reply_pair(t, ids[keep]);
        // The two replies below the steered output, once.
        let below = match &cache {
            Some(c) => {
                model.forward_prefix_shared(&pair, split, &c.lower, &[0, 0], &mut Hooks::new())?
            }
            None => model.forward_prefix(&pair, split, &mut Hooks::new())?,
        };
        // Above it, once per strength: rows (strength r, reply j) at 2r + j.
        let batch: Vec<Sequence> = (0..n).flat_map(|_| pair.iter().cloned()).collect();
        let resid = tile_rows(&below, n)?;
        let row_of: Vec<usize> = (0..n).flat_map(|r| [r, r]).collect();
        let pass = Pass {
            from: Some((split, &resid)),
            prefix: cache.as_ref().map(|c| (&c.upper, &row_of[..])),
            ..Pass::default()
        };
        let mut h = rows.hooks(model, &positions, 2)?;
        let o = model.forward_pass(&batch, &pass, &mut h)?;
        push_pairs(&mut out, &o)?;
    }
    Ok(out)
}

/// The re-encoding reference: every (turn, reply) run whole, steered at the same
/// positions. Same values as [`score_dialogue`] up to float summation order.
pub fn score_naive(
    model: &Model,
    d: &Dialogue,
    steer: Option<&Steer>,
    alpha: f32,
    scope: Scope,
) -> Result<Vec<[Vec<f32>; 2]>> {
    let mut out = Vec::with_capacity(d.turns.len());
    for t in &d.turns {
        let positions = scope_positions(scope, &t.prompt);
        let mut pair = Vec::with_capacity(2);
        for r in &t.replies {
            let mut s = t.prompt.ids.clone();
            s.extend_from_slice(r);
            let seq = Sequence::new(s, t.prompt.ids.len());
            let mut h = hooks(model, steer, alpha, &positions)?;
            let o = model.forward(&[seq], &mut h)?;
            pair.push(o.completion_logprobs(0)?);
        }
        let b = pair.pop().expect("two replies");
        let a = pair.pop().expect("two replies");
        out.push([a, b]);
    }
    Ok(out)
}

/// Every dialogue under every strength: `out[a][i]`, items in the order evaluate lays
/// them out (per dialogue, per turn: matching then not matching). `progress` gets
/// items (replies) done.
pub fn sweep_dialogues(
    model: &Model,
    dialogues: &[Dialogue],
    steer: Option<&Steer>,
    alphas: &[f32],
    scope: Scope,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Vec<Value>>> {
    let mut out = vec![Vec::new(); alphas.len()];
    // An additive vector runs every strength as a row, 0 (the unsteered model) included;
    // other steerings run each nonzero strength and the unsteered model on its own.
    let rows_for_all = matches!(steer, Some(Steer::Add { .. }));
    let steered: Vec<f32> = alphas
        .iter()
        .copied()
        .filter(|&a| rows_for_all || a != 0.0)
        .collect();
    for d in dialogues {
        let base = match steer {
            Some(_) if steered.len() == alphas.len() => None,
            _ => Some(flatten(score_dialogue(model, d, None, 0.0, scope)?)),
        };
        let mut by_strength = match steer {
            Some(s) if !steered.is_empty() => {
                score_dialogue_strengths(model, d, s, &steered, scope)?
            }
            _ => Vec::new(),
        }
        .into_iter();
        for (a, &alpha) in alphas.iter().enumerate() {
            let vals = if steer.is_none() || (alpha == 0.0 && !rows_for_all) {
                base.clone()
                    .expect("computed when any strength runs unsteered")
            } else {
                flatten(by_strength.next().expect("one result per strength"))
            };
            out[a].extend(vals);
        }
        progress(2 * d.turns.len());
    }
    Ok(out)
}

fn flatten(turns: Vec<[Vec<f32>; 2]>) -> Vec<Value> {
    turns
        .into_iter()
        .flat_map(|[a, b]| [Value::Completion(a), Value::Completion(b)])
        .collect()
}
