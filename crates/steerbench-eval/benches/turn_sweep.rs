//! Issue 15's multi-turn scoring benchmark on SmolLM2: 40 conversations of the built-in
//! `conversations_sentiment` (their first 4 scored turns; 10 of them have only 3) × 5
//! multipliers, a vector added to the output of block 15 at every position
//! (`all_turns`), the log-likelihood of each turn's matching and non-matching reply.
//!
//!   cargo bench -p steerbench-eval --bench turn_sweep
//!   python3 bench/hf_baseline.py turns     # the transformers hook loop, same inputs
//!
//! Timed in one process: the production scorer (`turn_sweep::sweep_dialogues`: one KV
//! cache per conversation and steering setting grown turn by turn, the strengths as rows
//! of each pass) against the naive re-encoding of every (turn, reply, multiplier) as a
//! whole sequence (`turn_sweep::score_naive`), with the largest log-prob difference
//! between them. Writes `turn_sweep_inputs.json` (token ids, vector, layer, multipliers:
//! what bench/hf_baseline.py replays) and `turn_sweep_steerbench.json` (times, values).
//!
//! Env: STEERBENCH_BENCH_MODEL (default smollm2-135m-instruct), STEERBENCH_BENCH_OUT
//! (default <workspace>/target/bench), TURN_SWEEP_CONVERSATIONS (default 40), TURN_SWEEP_NAIVE
//! (the naive reference on the first N of them only, default all).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use serde_json::{json, Value as Json};
use steerbench_eval::dialogue::Scope;
use steerbench_eval::prompt::{encode_with_spans, with_continuation, Prompt, PromptStyle};
use steerbench_eval::steer::Steer;
use steerbench_eval::turn_sweep::{score_naive, sweep_dialogues, Dialogue, ScoredTurn};
use steerbench_model::source::{resolve, ModelSource};

/// The built-in conversations (the file steerbench-data embeds), read directly.
const CONVERSATIONS: &str = include_str!("../../../datasets/conversations_sentiment.jsonl");
const LAYER: usize = 15;
const MULTIPLIERS: [f32; 5] = [-2.0, -1.0, 0.0, 1.0, 2.0];
const TURNS: usize = 4;

fn out_dir() -> PathBuf {
    std::env::var_os("STEERBENCH_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench"))
}

/// (system, [(user, history reply, matching, not matching)]) per conversation.
type Conv = (Option<String>, Vec<[String; 4]>);

fn conversations(n: usize) -> Result<Vec<(String, Conv)>> {
    let mut out = Vec::new();
    for (i, line) in CONVERSATIONS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        let v: Json = serde_json::from_str(line).with_context(|| format!("line {}", i + 1))?;
        let s = |m: &Json, k: &str| m.get(k).and_then(Json::as_str).map(str::to_string);
        let mut system = None;
        let mut turns = Vec::new();
        let mut user = String::new();
        for m in v["messages"].as_array().context("messages")? {
            match m["role"].as_str() {
                Some("system") => system = s(m, "content"),
                Some("user") => user = s(m, "content").context("user content")?,
                Some("assistant") => turns.push([
                    user.clone(),
                    s(m, "content").context("content")?,
                    s(m, "matching").context("matching")?,
                    s(m, "not_matching").context("not_matching")?,
                ]),
                _ => {}
            }
        }
        turns.truncate(TURNS);
        out.push((s(&v, "id").context("id")?, (system, turns)));
    }
    // Conversations with all four turns first, then the shorter ones.
    out.sort_by_key(|(_, (_, t))| std::cmp::Reverse(t.len()));
    out.truncate(n);
    Ok(out)
}

fn main() -> Result<()> {
    let name =
        std::env::var("STEERBENCH_BENCH_MODEL").unwrap_or_else(|_| "smollm2-135m-instruct".into());
    let n: usize = std::env::var("TURN_SWEEP_CONVERSATIONS")
        .ok()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(40);
    let resolved = resolve(&ModelSource::parse(&name))?;
    let lm = resolved.load(&Device::Cpu)?;
    let model = &lm.model;
    let style = PromptStyle::Chat;
    let mut dialogues = Vec::new();
    for (id, (system, turns)) in conversations(n)? {
        let mut scored = Vec::new();
        for (k, t) in turns.iter().enumerate() {
            let p = Prompt {
                system: system.clone(),
                shots: turns[..k]
                    .iter()
                    .map(|h| (h[0].clone(), h[1].clone()))
                    .collect(),
                user: t[0].clone(),
                assistant_prefix: String::new(),
            };
            let enc = encode_with_spans(&lm.tokenizer, &p, style)?;
            let reply = |r: &str| -> Result<Vec<u32>> {
                let s = with_continuation(&lm.tokenizer, &enc.ids, false, style, r)?;
                Ok(s.tokens[s.prompt_len..].to_vec())
            };
            let replies = [reply(&t[2])?, reply(&t[3])?];
            scored.push(ScoredTurn {
                k: k + 1,
                prompt: enc,
                replies,
            });
        }
        dialogues.push(Dialogue::new(id, scored)?);
    }
    let turns: usize = dialogues.iter().map(|d| d.turns.len()).sum();
    let d = model.config().hidden_size;
    // A fixed direction of norm 8 (about a tenth of the residual norm at block 15).
    let raw: Vec<f32> = (0..d).map(|i| ((i as f32) * 0.7311).sin()).collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    let vector: Vec<f32> = raw.iter().map(|x| 8.0 * x / norm).collect();
    let steer = Steer::Add {
        layer: LAYER,
        vector: vector.clone(),
    };
    eprintln!(
        "{} conversations, {turns} scored turns, {} multipliers",
        dialogues.len(),
        MULTIPLIERS.len()
    );

    let t = Instant::now();
    let cached = sweep_dialogues(
        model,
        &dialogues,
        Some(&steer),
        &MULTIPLIERS,
        Scope::AllTurns,
        |_| {},
    )?;
    let cached_s = t.elapsed().as_secs_f64();
    eprintln!("turn-by-turn cache: {cached_s:.1} s");

    // The naive reference on the first `naive_n` conversations (TURN_SWEEP_NAIVE; all by
    // default; it takes about 3-5x the cached run), the cache re-timed on the same ones
    // when they are fewer.
    let naive_n: usize = std::env::var("TURN_SWEEP_NAIVE")
        .ok()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(dialogues.len())
        .min(dialogues.len());
    let cached_subset_s = if naive_n < dialogues.len() {
        let t = Instant::now();
        sweep_dialogues(
            model,
            &dialogues[..naive_n],
            Some(&steer),
            &MULTIPLIERS,
            Scope::AllTurns,
            |_| {},
        )?;
        t.elapsed().as_secs_f64()
    } else {
        cached_s
    };
    let t = Instant::now();
    let mut naive = Vec::new();
    for &a in &MULTIPLIERS {
        let mut per = Vec::new();
        for dlg in &dialogues[..naive_n] {
            let s = (a != 0.0).then_some(&steer);
            for [m, nm] in score_naive(model, dlg, s, a, Scope::AllTurns)? {
                per.push(m);
                per.push(nm);
            }
        }
        naive.push(per);
    }
    let naive_s = t.elapsed().as_secs_f64();
    let mut max_diff = 0f32;
    for (c, nv) in cached.iter().zip(&naive) {
        for (x, y) in c.iter().zip(nv) {
            for (p, q) in x.as_slice().iter().zip(y) {
                max_diff = max_diff.max((p - q).abs());
            }
        }
    }
    eprintln!(
        "naive re-encoding of {naive_n} conversations: {naive_s:.1} s (cache on them {cached_subset_s:.1} s); cache speed-up {:.2}x; max |log-prob difference| {max_diff:.2e}",
        naive_s / cached_subset_s
    );

    let out = out_dir();
    std::fs::create_dir_all(&out)?;
    let gguf = resolved
        .files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "gguf"))
        .map(|p| p.display().to_string());
    let items: Vec<Json> = dialogues
        .iter()
        .map(|dl| {
            json!({"id": dl.id, "turns": dl.turns.iter().map(|t| json!({
                "prompt": t.prompt.ids, "replies": t.replies})).collect::<Vec<_>>()})
        })
        .collect();
    std::fs::write(
        out.join("turn_sweep_inputs.json"),
        serde_json::to_vec(&json!({
            "model": name, "gguf": gguf, "layer": LAYER, "site": "resid_post", "positions": "all",
            "vector": vector, "multipliers": MULTIPLIERS, "conversations": items,
        }))?,
    )?;
    let values: Vec<Vec<Vec<f32>>> = cached
        .iter()
        .map(|c| c.iter().map(|v| v.as_slice().to_vec()).collect())
        .collect();
    std::fs::write(
        out.join("turn_sweep_steerbench.json"),
        serde_json::to_vec(&json!({
            "conversations": dialogues.len(), "turns": turns,
            "cached_s": cached_s, "naive_conversations": naive_n,
            "cached_subset_s": cached_subset_s, "naive_s": naive_s, "max_abs_diff": max_diff,
            "logprobs": values,
        }))?,
    )?;
    println!(
        "turn_sweep: cached {cached_s:.1} s ({} conversations); on the first {naive_n}: cached {cached_subset_s:.1} s, naive {naive_s:.1} s ({:.2}x)",
        dialogues.len(),
        naive_s / cached_subset_s
    );
    Ok(())
}
