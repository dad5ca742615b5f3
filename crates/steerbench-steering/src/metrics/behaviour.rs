//! Behaviour metrics: A/B probability (CAA), propensity (Tan et al.),
//! open-ended likelihood gap (Pres et al.), ICL and multiple-choice accuracy.

use crate::error::{shape_err, Result, SteeringError};
use serde::{Deserialize, Serialize};

/// Answer letter of a two-choice item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Letter {
    A,
    B,
}

/// p(matching) / (p(A) + p(B)) from the two letters' log-probs, computed as
/// σ(logp_match − logp_other) so tiny probabilities do not underflow.
pub fn ab_probability(logp_a: f32, logp_b: f32, matching: Letter) -> Result<f32> {
    if logp_a.is_nan() || logp_b.is_nan() || logp_a == f32::INFINITY || logp_b == f32::INFINITY {
        return Err(SteeringError::Numerical(format!(
            "invalid letter log-probs ({logp_a}, {logp_b})"
        )));
    }
    if logp_a == f32::NEG_INFINITY && logp_b == f32::NEG_INFINITY {
        return Err(SteeringError::Numerical(
            "both letters have probability 0".into(),
        ));
    }
    let (m, o) = match matching {
        Letter::A => (logp_a as f64, logp_b as f64),
        Letter::B => (logp_b as f64, logp_a as f64),
    };
    let t = m - o;
    let p = if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        t.exp() / (1.0 + t.exp())
    };
    Ok(p as f32)
}

/// Propensity of one contrastive pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Propensity {
    /// Σ log p(positive tokens) − Σ log p(negative tokens).
    pub summed: f32,
    /// mean log p(positive tokens) − mean log p(negative tokens); each side
    /// normalised by its own real (unpadded) token count.
    pub normalized: f32,
}

/// Propensity from the completion tokens' log-probs. The slices must hold the
/// real tokens only; see [`propensity_masked`] for padded rows.
pub fn propensity(logp_pos_tokens: &[f32], logp_neg_tokens: &[f32]) -> Result<Propensity> {
    if logp_pos_tokens.is_empty() || logp_neg_tokens.is_empty() {
        return Err(SteeringError::NotEnoughData(
            "propensity needs at least one token per completion".into(),
        ));
    }
    let (sp, sn) = (sum(logp_pos_tokens)?, sum(logp_neg_tokens)?);
    Ok(Propensity {
        summed: (sp - sn) as f32,
        normalized: (sp / logp_pos_tokens.len() as f64 - sn / logp_neg_tokens.len() as f64) as f32,
    })
}

/// [`propensity`] on padded rows: only positions whose mask is true count,
/// both in the sums and in the lengths (padding never enters).
pub fn propensity_masked(
    pos: &[f32],
    pos_mask: &[bool],
    neg: &[f32],
    neg_mask: &[bool],
) -> Result<Propensity> {
    if pos.len() != pos_mask.len() {
        return Err(shape_err("positive mask length", pos.len(), pos_mask.len()));
    }
    if neg.len() != neg_mask.len() {
        return Err(shape_err("negative mask length", neg.len(), neg_mask.len()));
    }
    let keep = |v: &[f32], m: &[bool]| -> Vec<f32> {
        v.iter()
            .zip(m)
            .filter(|(_, k)| **k)
            .map(|(x, _)| *x)
            .collect()
    };
    propensity(&keep(pos, pos_mask), &keep(neg, neg_mask))
}

/// Open-ended likelihood score of one prompt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenEndedScore {
    /// Σ log p(matching) − Σ log p(non-matching) under steering.
    pub gap_steered: f32,
    /// The same gap without steering (multiplier 0).
    pub gap_unsteered: f32,
    /// gap_steered − gap_unsteered: how much steering moved the preference.
    pub delta: f32,
}

/// Log-likelihood gap of the behaviour-matching vs non-matching continuation,
/// steered and unsteered (token log-probs of the real continuation tokens).
pub fn open_ended_likelihood(
    steered_matching: &[f32],
    steered_nonmatching: &[f32],
    unsteered_matching: &[f32],
    unsteered_nonmatching: &[f32],
) -> Result<OpenEndedScore> {
    if steered_matching.len() != unsteered_matching.len()
        || steered_nonmatching.len() != unsteered_nonmatching.len()
    {
        return Err(SteeringError::Shape {
            what: "steered vs unsteered continuation lengths".into(),
            expected: format!(
                "{} and {}",
                unsteered_matching.len(),
                unsteered_nonmatching.len()
            ),
            got: format!(
                "{} and {}",
                steered_matching.len(),
                steered_nonmatching.len()
            ),
        });
    }
    let s = propensity(steered_matching, steered_nonmatching)?.summed;
    let u = propensity(unsteered_matching, unsteered_nonmatching)?.summed;
    Ok(OpenEndedScore {
        gap_steered: s,
        gap_unsteered: u,
        delta: s - u,
    })
}

/// Top-1 accuracy of first answer tokens: share of `predicted[i] == target[i]`.
pub fn icl_accuracy(predicted: &[u32], target: &[u32]) -> Result<f32> {
    if predicted.len() != target.len() {
        return Err(shape_err(
            "ICL predictions vs targets",
            target.len(),
            predicted.len(),
        ));
    }
    if predicted.is_empty() {
        return Err(SteeringError::NotEnoughData(
            "accuracy of zero items".into(),
        ));
    }
    Ok(
        predicted.iter().zip(target).filter(|(p, t)| p == t).count() as f32
            / predicted.len() as f32,
    )
}

/// Multiple-choice accuracy: item i is correct when its highest-scoring choice
/// (ties → the lowest index) equals `answers[i]`. Scores are e.g. choice log-likelihoods.
pub fn mc_accuracy(choice_scores: &[Vec<f32>], answers: &[usize]) -> Result<f32> {
    if choice_scores.len() != answers.len() {
        return Err(shape_err(
            "multiple-choice items vs answers",
            answers.len(),
            choice_scores.len(),
        ));
    }
    if answers.is_empty() {
        return Err(SteeringError::NotEnoughData(
            "accuracy of zero items".into(),
        ));
    }
    let mut correct = 0;
    for (i, (scores, ans)) in choice_scores.iter().zip(answers).enumerate() {
        if *ans >= scores.len() || scores.iter().any(|s| s.is_nan()) {
            return Err(SteeringError::InvalidParameter(format!(
                "item {i}: answer {ans} with {} choices (or NaN scores)",
                scores.len()
            )));
        }
        let best = scores
            .iter()
            .enumerate()
            .fold(0, |b, (j, s)| if *s > scores[b] { j } else { b });
        correct += (best == *ans) as usize;
    }
    Ok(correct as f32 / answers.len() as f32)
}

fn sum(xs: &[f32]) -> Result<f64> {
    if xs.iter().any(|x| x.is_nan() || *x > 0.0) {
        return Err(SteeringError::Numerical(
            "token log-probs must be <= 0 and not NaN".into(),
        ));
    }
    Ok(xs.iter().map(|x| *x as f64).sum())
}
