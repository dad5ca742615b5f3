//! One conversation kept in a KV cache across turns: the caller feeds each new stretch
//! of tokens (a user message, the template's turn markers) and generates each reply on
//! top of the cache, so every token of the history is computed once, as a chat server
//! does, instead of re-encoding the conversation at every turn.
//!
//! Positions are those of the whole conversation: a hook writing at `Indices`, `All` or
//! `Generated` (the reply being generated) selects the same tokens as a forward of the
//! whole sequence would, so a session equals [`Model::generate`] on the concatenated
//! tokens (tests/forward_generate.rs checks it).

use candle_core::Tensor;

use crate::decoder::{BatchLayout, Model, Sequence};
use crate::error::{ModelError, Result};
use crate::generate::{finite_logits, gen_frame, last_rows, Detokenizer, GenerateOptions, Stepper};
use crate::hooks::Hooks;
use crate::kv_cache::KvCache;

/// A single-row generation state that grows turn by turn.
pub struct Session<'m> {
    model: &'m Model,
    cache: KvCache,
    /// Tokens whose keys and values the cache holds.
    held: Vec<u32>,
    /// Final hidden state (1, d) of the last token run: the next token's logits.
    last: Option<Tensor>,
}

impl Model {
    /// An empty conversation state on this model.
    pub fn session(&self) -> Session<'_> {
        Session {
            model: self,
            cache: KvCache::new(self.config().n_layers),
            held: Vec::new(),
            last: None,
        }
    }
}

impl Session<'_> {
    /// Every token of the conversation so far (fed and generated).
    pub fn tokens(&self) -> &[u32] {
        &self.held
    }

    /// Runs `tokens` into the cache, as prompt, with the hooks' writes at their
    /// positions in the whole conversation.
    pub fn feed(&mut self, new: &[u32], hooks: &Hooks) -> Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        let all = [self.held.as_slice(), new].concat();
        self.model.admit(1, all.len())?;
        let lay = BatchLayout::new(
            &[Sequence::prompt(all.clone())],
            self.model.config().vocab_size,
        )?;
        let start = self.held.len();
        let frame = lay.frame(start, new.len());
        let xs = self.model.embed(&lay.ids_chunk(start, new.len()), &frame)?;
        let mut hooks = hooks.writes_only();
        let n = self.model.config().n_layers;
        let out =
            self.model
                .run_chunk(&frame, 0..n, xs, Some(&mut self.cache), &mut hooks, true)?;
        self.last = Some(last_rows(&out)?);
        self.held = all;
        Ok(())
    }

    /// Generates a reply after what was fed, with the hooks' writes (positions of the
    /// whole conversation; `Generated` = this reply's tokens). Returns the reply's tokens
    /// (an EOS that stops it is not included, as in [`Model::generate`]).
    pub fn generate<T: Detokenizer + ?Sized>(
        &mut self,
        tok: &T,
        opts: &GenerateOptions,
        hooks: &Hooks,
    ) -> Result<Vec<u32>> {
        if opts.max_new_tokens == 0 {
            return Ok(Vec::new());
        }
        let Some(mut h) = self.last.take() else {
            return Err(ModelError::Input(
                "session: feed the prompt (or the next turn's tokens) before generating".into(),
            ));
        };
        self.model.admit(1, self.held.len() + opts.max_new_tokens)?;
        let lay = BatchLayout::new(
            &[Sequence::prompt(self.held.clone())],
            self.model.config().vocab_size,
        )?;
        let mut hooks = hooks.writes_only();
        let mut state = Stepper::new(tok, opts, 1);
        let n = self.model.config().n_layers;
        // Every chosen token runs into the cache under the reply's hooks, the last one
        // too (a session goes on after the reply), unless it ended the reply as EOS.
        for step in 0.. {
            let next = state.step(&finite_logits(self.model.logits(&h)?)?)?;
            let stop = state.done() || step + 1 == opts.max_new_tokens;
            if state.out[0].len() == step {
                break; // EOS: not part of the reply
            }
            let frame = gen_frame(&lay, lay.t + step, 1, step + 1);
            let xs = self.model.embed(&next, &frame)?;
            h = last_rows(&self.model.run_chunk(
                &frame,
                0..n,
                xs,
                Some(&mut self.cache),
                &mut hooks,
                true,
            )?)?;
            self.held.push(next[0]);
            if stop {
                break;
            }
        }
        self.last = Some(h);
        Ok(state.out.remove(0))
    }
}
