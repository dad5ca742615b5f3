//! Language-model quality: perplexity, KL divergence between next-token
//! distributions, distinct-n.

use super::log_sum_exp;
use crate::error::{shape_err, Result, SteeringError};
use std::collections::HashSet;

/// exp(−mean log p) over the tokens of one text.
pub fn perplexity(token_logprobs: &[f32]) -> Result<f32> {
    perplexity_many(&[token_logprobs.to_vec()])
}

/// Token-weighted perplexity over several texts: exp(−Σ log p / Σ tokens).
pub fn perplexity_many(texts: &[Vec<f32>]) -> Result<f32> {
    let n: usize = texts.iter().map(Vec::len).sum();
    if n == 0 {
        return Err(SteeringError::NotEnoughData(
            "perplexity of zero tokens".into(),
        ));
    }
    let mut s = 0f64;
    for x in texts.iter().flatten() {
        if x.is_nan() || *x > 1e-4 {
            return Err(SteeringError::Numerical(format!(
                "invalid token log-prob {x}"
            )));
        }
        s += *x as f64;
    }
    Ok((-s / n as f64).exp() as f32)
}

/// KL(P‖Q) = Σ p (log p − log q) from two log-prob (or logit) vectors over
/// the same vocabulary. Both are log-softmax-normalised first (stable
/// log-sum-exp), so raw logits are accepted too. Never negative.
pub fn kl_divergence(logp: &[f32], logq: &[f32]) -> Result<f32> {
    if logp.len() != logq.len() {
        return Err(shape_err("KL vocabulary sizes", logp.len(), logq.len()));
    }
    let (zp, zq) = (log_sum_exp(logp)?, log_sum_exp(logq)?);
    if !zp.is_finite() || !zq.is_finite() {
        return Err(SteeringError::Numerical(
            "a distribution has no finite mass".into(),
        ));
    }
    let mut kl = 0f64;
    for (a, b) in logp.iter().zip(logq) {
        let lp = *a as f64 - zp;
        if lp == f64::NEG_INFINITY {
            continue; // 0 · log(0/q) = 0
        }
        let lq = *b as f64 - zq;
        if lq == f64::NEG_INFINITY {
            return Ok(f32::INFINITY);
        }
        kl += lp.exp() * (lp - lq);
    }
    Ok(kl.max(0.0) as f32)
}

/// distinct-n: unique n-grams / total n-grams across the given token sequences
/// (n-grams never cross sequence boundaries).
pub fn distinct_n(sequences: &[Vec<u32>], n: usize) -> Result<f32> {
    if n == 0 {
        return Err(SteeringError::InvalidParameter(
            "distinct-n needs n >= 1".into(),
        ));
    }
    let mut seen = HashSet::new();
    let mut total = 0usize;
    for s in sequences {
        for w in s.windows(n) {
            seen.insert(w.to_vec());
            total += 1;
        }
    }
    if total == 0 {
        return Err(SteeringError::NotEnoughData(format!(
            "no sequence has {n} tokens"
        )));
    }
    Ok(seen.len() as f32 / total as f32)
}
