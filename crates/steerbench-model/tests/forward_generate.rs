//! Generation: KV cache == no cache (with steering), seeded sampling, stopping.

mod common;

use common::*;
use steerbench_model::{
    Detokenizer, EosOnly, GenerateOptions, HookPoint, Hooks, Intervention, Positions, Sampling,
    Site,
};

fn opts(max: usize, cache: bool) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: max,
        use_kv_cache: cache,
        stop_at_eos: false,
        ..Default::default()
    }
}

fn steering(positions: Positions) -> Hooks {
    let mut h = Hooks::new();
    h.write(
        HookPoint::new(1, Site::ResidPre),
        Intervention::Add {
            vector: vector(32, 21),
            alpha: 6.0,
        },
        positions,
    );
    h
}

#[test]
fn kv_cache_equals_no_cache_with_steering() {
    let prompts = ragged_batch();
    for model in [tiny_llama(10), tiny_gpt2(10)] {
        let plain = model
            .generate(
                &EosOnly::default(),
                &prompts,
                &opts(12, true),
                &Hooks::new(),
            )
            .unwrap();
        for pos in [
            Positions::All,
            Positions::Prompt,
            Positions::Generated,
            Positions::Last,
            Positions::Indices(vec![1, 10]),
        ] {
            let hooks = steering(pos.clone());
            let cached = model
                .generate(&EosOnly::default(), &prompts, &opts(12, true), &hooks)
                .unwrap();
            let uncached = model
                .generate(&EosOnly::default(), &prompts, &opts(12, false), &hooks)
                .unwrap();
            assert_eq!(cached, uncached, "{pos:?}: KV cache changed the generation");
            assert!(cached.iter().all(|r| r.len() == 12));
            assert_ne!(cached, plain, "{pos:?}: steering had no effect");
        }
    }
}

#[test]
fn chunked_prefill_generation_equals_one_pass() {
    let mut model = tiny_llama(11);
    let prompts = ragged_batch();
    let hooks = steering(Positions::All);
    let one = model
        .generate(&EosOnly::default(), &prompts, &opts(8, true), &hooks)
        .unwrap();
    model.set_prefill_chunk(Some(3));
    let chunked = model
        .generate(&EosOnly::default(), &prompts, &opts(8, true), &hooks)
        .unwrap();
    assert_eq!(one, chunked);
}

#[test]
fn batched_generation_equals_single_row_generation() {
    let model = tiny_llama(12);
    let prompts = ragged_batch();
    let hooks = steering(Positions::Generated);
    let batched = model
        .generate(&EosOnly::default(), &prompts, &opts(10, true), &hooks)
        .unwrap();
    for (r, p) in prompts.iter().enumerate() {
        let single = model
            .generate(
                &EosOnly::default(),
                std::slice::from_ref(p),
                &opts(10, true),
                &hooks,
            )
            .unwrap();
        assert_eq!(single[0], batched[r], "row {r}");
    }
}

#[test]
fn sampling_is_seeded_and_cache_independent() {
    let model = tiny_gpt2(13);
    let prompts = ragged_batch();
    let sample = |seed, cache| {
        let o = GenerateOptions {
            sampling: Sampling::Sample {
                temperature: 1.5,
                top_k: Some(40),
                top_p: Some(0.95),
                seed,
            },
            ..opts(15, cache)
        };
        model
            .generate(&EosOnly::default(), &prompts, &o, &steering(Positions::All))
            .unwrap()
    };
    let a = sample(1, true);
    assert_eq!(a, sample(1, true));
    assert_eq!(a, sample(1, false));
    assert_ne!(a, sample(2, true));
}

/// Decodes token ids as letters, to test stop strings.
struct Letters;

impl Detokenizer for Letters {
    fn decode(&self, ids: &[u32]) -> steerbench_model::Result<String> {
        Ok(ids
            .iter()
            .map(|&i| (b'a' + (i % 26) as u8) as char)
            .collect())
    }
    fn eos_token_ids(&self) -> &[u32] {
        &[]
    }
}

#[test]
fn eos_and_stop_strings_end_rows_independently() {
    let model = tiny_llama(14);
    let prompts = ragged_batch();
    let free = model
        .generate(
            &EosOnly::default(),
            &prompts,
            &opts(10, true),
            &Hooks::new(),
        )
        .unwrap();
    // EOS = the 4th token generated for row 0: row 0 stops before it, other rows go on
    // unless they produce it too.
    let eos = free[0][3];
    let o = GenerateOptions {
        stop_at_eos: true,
        ..opts(10, true)
    };
    let out = model
        .generate(&EosOnly(vec![eos]), &prompts, &o, &Hooks::new())
        .unwrap();
    for (r, row) in free.iter().enumerate() {
        let cut = row.iter().position(|&t| t == eos).unwrap_or(row.len());
        assert_eq!(out[r], row[..cut].to_vec(), "row {r}");
    }
    // Stop string = the text of row 1's 2nd and 3rd tokens: row 1 stops after its 3rd.
    let stop = Letters.decode(&free[1][1..3]).unwrap();
    let o = GenerateOptions {
        stop_strings: vec![stop.clone()],
        ..opts(10, false)
    };
    let out = model
        .generate(&Letters, &prompts, &o, &Hooks::new())
        .unwrap();
    assert!(out[1].len() <= 3 && Letters.decode(&out[1]).unwrap().contains(&stop));
    assert_eq!(out[1], free[1][..out[1].len()].to_vec());
}

#[test]
fn streaming_reports_every_token_as_it_is_chosen() {
    let m = tiny_llama(3);
    let prompts = ragged_batch();
    let hooks = steering(Positions::All);
    for cache in [true, false] {
        let mut seen: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
        let out = m
            .generate_streaming(
                &EosOnly::default(),
                &prompts,
                &opts(9, cache),
                &hooks,
                &mut |r, t| seen[r].push(t),
            )
            .unwrap();
        assert_eq!(seen, out);
        assert_eq!(
            out,
            m.generate(&EosOnly::default(), &prompts, &opts(9, cache), &hooks)
                .unwrap()
        );
    }
}

#[test]
fn a_session_carries_its_cache_across_turns_and_equals_generating_from_the_whole_sequence() {
    let prompt: Vec<u32> = vec![3, 9, 14, 2, 7, 11];
    let next_turn: Vec<u32> = vec![5, 8, 1, 4];
    for model in [tiny_llama(12), tiny_gpt2(12)] {
        for pos in [
            Positions::All,
            Positions::Generated,
            Positions::Indices(vec![0, 1, 2, 3, 4, 5, 7, 12, 15]),
        ] {
            let hooks = steering(pos.clone());
            let tok = EosOnly::default();
            let mut s = model.session();
            s.feed(&prompt, &hooks).unwrap();
            let r1 = s.generate(&tok, &opts(6, true), &hooks).unwrap();
            let whole1 = model
                .generate(&tok, &[prompt.clone()], &opts(6, true), &hooks)
                .unwrap();
            assert_eq!(r1, whole1[0], "{pos:?}: turn 1");
            // Turn 2: the reply and the next turn's tokens stay in the cache.
            s.feed(&next_turn, &hooks).unwrap();
            let r2 = s.generate(&tok, &opts(5, true), &hooks).unwrap();
            let history = [prompt.as_slice(), &r1, &next_turn].concat();
            assert_eq!(s.tokens(), [history.as_slice(), &r2].concat().as_slice());
            // In the session, turn 1's reply was steered as `Generated` while it was
            // written; in one pass over the history it is prompt, so name it.
            let whole_hooks = match &pos {
                Positions::Generated => steering(Positions::Indices(
                    (prompt.len()..prompt.len() + r1.len())
                        .chain(history.len()..history.len() + 5)
                        .collect(),
                )),
                _ => hooks.clone(),
            };
            let whole2 = model
                .generate(&tok, &[history.clone()], &opts(5, false), &whole_hooks)
                .unwrap();
            assert_eq!(r2, whole2[0], "{pos:?}: turn 2 from the carried cache");
        }
    }
    // Generating before anything was fed is an error, not a panic.
    let model = tiny_llama(12);
    let mut s = model.session();
    assert!(s
        .generate(&EosOnly::default(), &opts(3, true), &Hooks::new())
        .is_err());
}
