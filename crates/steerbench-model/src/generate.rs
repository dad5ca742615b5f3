//! Autoregressive generation (greedy or seeded sampling) with steering hooks.
//!
//! The KV-cache and no-cache paths run the same padded layout, positions and hook
//! selection, so a token's steering is the same whichever path computes it; tests
//! check that both give identical tokens.

use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::decoder::{BatchLayout, Model, Sequence};
use crate::error::{ModelError, Result};
use crate::hooks::{Frame, Hooks};
use crate::kv_cache::KvCache;

/// What generation needs from a tokenizer: text for stop strings, and EOS ids.
pub trait Detokenizer {
    fn decode(&self, ids: &[u32]) -> Result<String>;
    fn eos_token_ids(&self) -> &[u32];
}

/// A detokenizer that only knows EOS ids (no stop strings): for token-level use and tests.
#[derive(Debug, Clone, Default)]
pub struct EosOnly(pub Vec<u32>);

impl Detokenizer for EosOnly {
    fn decode(&self, _ids: &[u32]) -> Result<String> {
        Err(ModelError::Input(
            "stop strings need a tokenizer that can decode".into(),
        ))
    }
    fn eos_token_ids(&self) -> &[u32] {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    Greedy,
    /// Temperature, then top-k, then top-p (nucleus); one ChaCha stream per batch row,
    /// so a row's sample depends on `seed` and its row index only.
    Sample {
        temperature: f32,
        top_k: Option<usize>,
        top_p: Option<f32>,
        seed: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Stop a row once its decoded continuation contains one of these (the token that
    /// completes it is kept).
    pub stop_strings: Vec<String>,
    /// Stop a row at an EOS id of the detokenizer (the EOS token is not returned).
    pub stop_at_eos: bool,
    /// Reuse keys/values across steps; `false` recomputes the whole sequence each step.
    pub use_kv_cache: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            sampling: Sampling::Greedy,
            stop_strings: Vec::new(),
            stop_at_eos: true,
            use_kv_cache: true,
        }
    }
}

impl Model {
    /// Continue each prompt; returns the new tokens per row. Hook writes apply with
    /// positions on the prompt + generated sequence (`Positions::Last` = last prompt
    /// token); captures are ignored.
    pub fn generate<T: Detokenizer + ?Sized>(
        &self,
        tok: &T,
        prompts: &[Vec<u32>],
        opts: &GenerateOptions,
        hooks: &Hooks,
    ) -> Result<Vec<Vec<u32>>> {
        self.generate_streaming(tok, prompts, opts, hooks, &mut |_, _| {})
    }

    /// [`Model::generate`], calling `on_token(row, token)` for each token as soon as
    /// it is chosen (for printing a continuation while it is produced).
    pub fn generate_streaming<T: Detokenizer + ?Sized>(
        &self,
        tok: &T,
        prompts: &[Vec<u32>],
        opts: &GenerateOptions,
        hooks: &Hooks,
        on_token: &mut dyn FnMut(usize, u32),
    ) -> Result<Vec<Vec<u32>>> {
        if let Sampling::Sample {
            temperature, top_p, ..
        } = opts.sampling
        {
            if !(temperature.is_finite() && temperature >= 0.0)
                || top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0))
            {
                return Err(ModelError::Input(
                    "temperature must be >= 0 and top_p in (0, 1]".into(),
                ));
            }
        }
        let seqs: Vec<Sequence> = prompts
            .iter()
            .map(|p| Sequence::prompt(p.clone()))
            .collect();
        let lay = BatchLayout::new(&seqs, self.config().vocab_size)?;
        self.admit(seqs.len(), lay.t + opts.max_new_tokens)?;
        let mut hooks = hooks.writes_only();
        let b = prompts.len();
        let mut state = Stepper::new(tok, opts, b);
        if opts.max_new_tokens == 0 {
            return Ok(state.out);
        }
        if opts.use_kv_cache {
            let mut cache = KvCache::new(self.config().n_layers);
            let chunk = self.prefill_chunk().unwrap_or(lay.t).max(1);
            let mut h = None;
            for start in (0..lay.t).step_by(chunk) {
                let t = chunk.min(lay.t - start);
                let frame = gen_frame(&lay, start, t, 0);
                let xs = self.embed(&lay.ids_chunk(start, t), &frame)?;
                // Only the prompt's last position feeds the first token.
                h = Some(self.run_chunk(
                    &frame,
                    0..self.config().n_layers,
                    xs,
                    Some(&mut cache),
                    &mut hooks,
                    start + t == lay.t,
                )?);
            }
            let mut h = last_rows(&h.expect("non-empty prompt"))?;
            for step in 0.. {
                let next = state.step_emitting(&finite_logits(self.logits(&h)?)?, on_token)?;
                if state.done() || step + 1 == opts.max_new_tokens {
                    break;
                }
                let frame = gen_frame(&lay, lay.t + step, 1, step + 1);
                let xs = self.embed(&next, &frame)?;
                h = last_rows(&self.run_chunk(
                    &frame,
                    0..self.config().n_layers,
                    xs,
                    Some(&mut cache),
                    &mut hooks,
                    true,
                )?)?;
            }
        } else {
            let mut rows: Vec<Vec<u32>> = prompts.to_vec();
            for step in 0.. {
                let seqs: Vec<Sequence> = rows
                    .iter()
                    .zip(prompts)
                    .map(|(r, p)| Sequence::new(r.clone(), p.len()))
                    .collect();
                let mut l = BatchLayout::new(&seqs, self.config().vocab_size)?;
                l.last = prompts.iter().map(|p| p.len() - 1).collect();
                let h = last_rows(&self.run(&l, 0, None, &mut hooks)?)?;
                let next = state.step_emitting(&finite_logits(self.logits(&h)?)?, on_token)?;
                if state.done() || step + 1 == opts.max_new_tokens {
                    break;
                }
                rows.iter_mut().zip(&next).for_each(|(r, &n)| r.push(n));
            }
        }
        Ok(state.out)
    }
}

/// Frame of padded positions [start, start + t) during generation, `generated` tokens in.
pub(crate) fn gen_frame(lay: &BatchLayout, start: usize, t: usize, generated: usize) -> Frame {
    let mut f = lay.frame(start, t);
    f.lens = lay.lens.iter().map(|l| l + generated).collect();
    f
}

/// (b, t, d) -> (b, d) at the last position (left padding puts every row's end there).
pub(crate) fn last_rows(h: &Tensor) -> Result<Tensor> {
    let (b, t, d) = h.dims3()?;
    Ok(h.narrow(1, t - 1, 1)?.reshape((b, d))?)
}

/// Token choice and stopping, shared by both paths.
pub(crate) struct Stepper<'a, T: Detokenizer + ?Sized> {
    tok: &'a T,
    opts: &'a GenerateOptions,
    rngs: Vec<ChaCha8Rng>,
    finished: Vec<bool>,
    /// Token fed for each row at the next step (finished rows repeat their last one).
    feed: Vec<u32>,
    pub(crate) out: Vec<Vec<u32>>,
}

impl<'a, T: Detokenizer + ?Sized> Stepper<'a, T> {
    pub(crate) fn new(tok: &'a T, opts: &'a GenerateOptions, b: usize) -> Self {
        let seed = match opts.sampling {
            Sampling::Sample { seed, .. } => seed,
            Sampling::Greedy => 0,
        };
        let rngs = (0..b)
            .map(|r| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(r as u64);
                rng
            })
            .collect();
        Self {
            tok,
            opts,
            rngs,
            finished: vec![false; b],
            feed: vec![0; b],
            out: vec![Vec::new(); b],
        }
    }

    pub(crate) fn done(&self) -> bool {
        self.finished.iter().all(|&f| f)
    }

    /// Choose each unfinished row's next token from logits (b, vocab); returns the feed.
    /// [`Stepper::step`], reporting every token it appended to a row.
    fn step_emitting(
        &mut self,
        logits: &Tensor,
        on_token: &mut dyn FnMut(usize, u32),
    ) -> Result<Vec<u32>> {
        let before: Vec<usize> = self.out.iter().map(Vec::len).collect();
        let next = self.step(logits)?;
        for (r, row) in self.out.iter().enumerate() {
            for &t in &row[before[r]..] {
                on_token(r, t);
            }
        }
        Ok(next)
    }

    pub(crate) fn step(&mut self, logits: &Tensor) -> Result<Vec<u32>> {
        let logits = logits.to_vec2::<f32>()?;
        for (r, row) in logits.iter().enumerate() {
            if self.finished[r] {
                continue;
            }
            let t = match self.opts.sampling {
                Sampling::Greedy => argmax(row),
                Sampling::Sample {
                    temperature,
                    top_k,
                    top_p,
                    ..
                } => sample(row, temperature, top_k, top_p, &mut self.rngs[r]),
            };
            self.feed[r] = t;
            if self.opts.stop_at_eos && self.tok.eos_token_ids().contains(&t) {
                self.finished[r] = true;
                continue;
            }
            self.out[r].push(t);
            if !self.opts.stop_strings.is_empty() {
                let text = self.tok.decode(&self.out[r])?;
                if self
                    .opts
                    .stop_strings
                    .iter()
                    .any(|s| text.contains(s.as_str()))
                {
                    self.finished[r] = true;
                }
            }
        }
        Ok(self.feed.clone())
    }
}

/// First index of the maximum (NaN never wins).
pub(crate) fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] || xs[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// Temperature / top-k / top-p sampling. Temperature 0 is greedy.
pub(crate) fn sample(
    logits: &[f32],
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
    rng: &mut impl Rng,
) -> u32 {
    if temperature <= 0.0 {
        return argmax(logits);
    }
    let mut c: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            (
                i as u32,
                if l.is_nan() {
                    f64::NEG_INFINITY
                } else {
                    l as f64 / temperature as f64
                },
            )
        })
        .collect();
    // Stable sort: equal logits keep index order, so results are reproducible.
    c.sort_by(|a, b| b.1.total_cmp(&a.1));
    if let Some(k) = top_k.filter(|&k| k > 0) {
        c.truncate(k);
    }
    let max = c[0].1;
    let mut p: Vec<f64> = c.iter().map(|(_, l)| (l - max).exp()).collect();
    let total: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= total);
    if let Some(tp) = top_p {
        let mut acc = 0.0;
        let mut keep = p.len();
        for (i, x) in p.iter().enumerate() {
            acc += x;
            if acc >= tp as f64 {
                keep = i + 1;
                break;
            }
        }
        p.truncate(keep);
    }
    let total: f64 = p.iter().sum();
    let mut u = rng.gen::<f64>() * total;
    for (i, x) in p.iter().enumerate() {
        u -= x;
        if u <= 0.0 {
            return c[i].0;
        }
    }
    c[p.len() - 1].0
}

/// Logits checked for NaN / infinity before a token is chosen from them.
pub(crate) fn finite_logits(logits: Tensor) -> Result<Tensor> {
    crate::decoder::check_finite(&logits, "logits")?;
    Ok(logits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_one_is_greedy_and_sampling_is_seeded() {
        let logits = [0.1f32, 2.0, 1.9, -1.0];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20 {
            assert_eq!(sample(&logits, 1.0, Some(1), None, &mut rng), 1);
        }
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..50)
                .map(|_| sample(&logits, 1.0, None, Some(0.9), &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        let d = draw(3);
        assert!(d.contains(&1) && d.contains(&2));
        assert!(
            !d.contains(&3),
            "top-p 0.9 must drop the least likely token"
        );
    }

    #[test]
    fn argmax_takes_first_max() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, f32::NAN]), 1);
    }
}
