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

use steerbench_model::{Hooks, Model, Pass, Positions, Sequence, SharedPrefix};

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

/// Completion log-probs of each turn's two replies under `steer` at `alpha`, steering
/// where `scope` says: `out[t] = [matching, not matching]`, one log-prob per reply token.
pub fn score_dialogue(
    model: &Model,
    d: &Dialogue,
    steer: Option<&Steer>,
    alpha: f32,
    scope: Scope,
) -> Result<Vec<[Vec<f32>; 2]>> {
    let n_layers = model.config().n_layers;
    // The cache and the tokens it holds.
    let mut cache: Option<(SharedPrefix, Vec<u32>)> = None;
    let mut out = Vec::with_capacity(d.turns.len());
    for t in &d.turns {
        let ids = &t.prompt.ids;
        let positions = scope_positions(scope, &t.prompt);
        // The prompt's last token runs with the replies: it gives their first log-prob.
        let keep = ids.len() - 1;
        let mut h = hooks(model, steer, alpha, &positions)?;
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
                    .shared_prefix(&ids[..keep], 0..n_layers, 1, None, &mut h)?
                    .0,
                ids[..keep].to_vec(),
            )),
        };
        let batch: Vec<Sequence> = t
            .replies
            .iter()
            .map(|r| {
                let mut s = vec![ids[keep]];
                s.extend_from_slice(r);
                Sequence::new(s, 1)
            })
            .collect();
        let row_of = [0usize, 0];
        let pass = Pass {
            prefix: cache.as_ref().map(|(p, _)| (p, &row_of[..])),
            ..Pass::default()
        };
        let mut h = hooks(model, steer, alpha, &positions)?;
        let o = model.forward_pass(&batch, &pass, &mut h)?;
        out.push([o.completion_logprobs(0)?, o.completion_logprobs(1)?]);
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
    for d in dialogues {
        // Unsteered strengths are one computation.
        let mut base: Option<Vec<Value>> = None;
        for (a, &alpha) in alphas.iter().enumerate() {
            let vals = if steer.is_none() || alpha == 0.0 {
                if base.is_none() {
                    base = Some(flatten(score_dialogue(model, d, None, 0.0, scope)?));
                }
                base.clone().expect("set above")
            } else {
                flatten(score_dialogue(model, d, steer, alpha, scope)?)
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
