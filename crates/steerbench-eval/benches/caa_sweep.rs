//! The CAA A/B sweep of issue 5 on SmolLM2, through the production sweep
//! (`steerbench_eval::sweep`): 50 A/B items of ~160 tokens × 7 multipliers, the vector
//! added to the output of block 15 at every position, next-token log p(A), log p(B).
//!
//!   cargo bench -p steerbench-eval --bench caa_sweep
//!
//! Env: STEERBENCH_BENCH_MODEL (registry name, dir or .gguf; default smollm2-135m-instruct),
//! STEERBENCH_BENCH_OUT (output folder; default <workspace>/target/bench),
//! CAA_SWEEP_REPEATS (timed runs, the minimum is reported; default 1),
//! CAA_SWEEP_ITEMS (fewer items, for quick tuning runs only; default 50),
//! CAA_SWEEP_TUNE (e.g. "1x7,2x14,8x32": time these ITEMSxROWS batchings instead; no output),
//! CAA_SWEEP_BATCH_ITEMS / CAA_SWEEP_MAX_ROWS (sweep batching; default: SweepOptions::default()).
//!
//! Writes `caa_sweep_inputs.json` (token ids, vector, layer, multipliers, letter ids: what
//! bench/hf_baseline.py replays) and `caa_sweep_steerbench.json` (log-probs per item ×
//! multiplier and the wall time).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde_json::{json, Value as Json};
use steerbench_eval::capture::{capture, ReadAt};
use steerbench_eval::prompt::{encode, single_token, Prompt, PromptStyle};
use steerbench_eval::steer::Steer;
use steerbench_eval::sweep::{common_prefix, sweep, Item, Read, SweepOptions, Value};
use steerbench_model::source::{resolve, ModelSource};
use steerbench_model::{HookPoint, Positions, Sequence, Site};

/// The built-in sentiment A/B items (the same file steerbench-data embeds as
/// `builtin:sentiment_ab`; read directly so the bench needs no polars build).
const SENTIMENT_AB: &str = include_str!("../../../datasets/sentiment_ab.jsonl");
const N_ITEMS: usize = 50;
/// Steered block: the vector is added to its output (= the input of block 16).
const LAYER: usize = 15;
/// Multipliers of the steering vector: the CAA direction (mean matching − non-matching
/// activation difference) scaled to `SCALE` × the layer's mean residual-stream norm.
const MULTIPLIERS: [f32; 7] = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0];
const SCALE: f32 = 0.1;
/// A fixed system prompt that brings the prompts to about 160 tokens, as in a realistic
/// chat evaluation with instructions.
const SYSTEM: &str = "You are a careful assistant taking part in a survey about everyday \
experiences. Each question describes a situation from daily life and offers two possible \
answers, labelled (A) and (B). Read the situation and both answers, then choose the one that \
best matches how you would describe the experience yourself. Answer with the letter of your \
choice only, written in parentheses, with no explanation, no hedging and no further text. \
There are no right or wrong answers here.";

struct AbItem {
    id: String,
    question: String,
    /// 0 when the matching answer is (A), 1 when it is (B).
    matching: usize,
}

fn letter_index(s: &str) -> Result<usize> {
    match s.trim() {
        "(A)" | "A" => Ok(0),
        "(B)" | "B" => Ok(1),
        other => bail!("answer {other:?} is not (A) or (B)"),
    }
}

fn ab_items() -> Result<Vec<AbItem>> {
    let mut out = Vec::new();
    for (i, line) in SENTIMENT_AB
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        let v: Json = serde_json::from_str(line).with_context(|| format!("line {}", i + 1))?;
        let field = |k: &str| -> Result<String> {
            v.get(k)
                .and_then(Json::as_str)
                .map(str::to_string)
                .with_context(|| format!("line {}: no string field {k}", i + 1))
        };
        let matching = letter_index(&field("answer_matching_behavior")?)?;
        if letter_index(&field("answer_not_matching_behavior")?)? == matching {
            bail!("line {}: matching and non-matching answers agree", i + 1);
        }
        out.push(AbItem {
            id: field("id")?,
            question: field("question")?,
            matching,
        });
    }
    Ok(out)
}

fn out_dir() -> PathBuf {
    std::env::var_os("STEERBENCH_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench"))
}

fn env_usize(name: &str) -> Result<Option<usize>> {
    match std::env::var(name) {
        Ok(s) => Ok(Some(s.parse().with_context(|| format!("{name}={s}"))?)),
        Err(_) => Ok(None),
    }
}

/// Tuning only: times the sweep under each `ITEMSxROWS` batching of `spec` (e.g.
/// "1x7,2x14,8x32"), the configurations interleaved `repeats` times so drift in the
/// machine's load hits all of them alike; prints the minimum of each and writes nothing.
fn tune(
    model: &steerbench_model::Model,
    items: &[Item],
    steer: &Steer,
    spec: &str,
    repeats: usize,
) -> Result<()> {
    let mut configs = Vec::new();
    for c in spec.split(',') {
        let (b, r) = c
            .split_once('x')
            .with_context(|| format!("CAA_SWEEP_TUNE entry {c:?} is not ITEMSxROWS"))?;
        configs.push(SweepOptions {
            positions: Positions::All,
            batch_items: b.trim().parse()?,
            max_rows: r.trim().parse()?,
            ..SweepOptions::default()
        });
    }
    sweep(
        model,
        &items[..1],
        Some(steer),
        &MULTIPLIERS,
        &configs[0],
        |_| {},
    )?;
    let mut best = vec![f64::INFINITY; configs.len()];
    for round in 0..repeats {
        for (k, opts) in configs.iter().enumerate() {
            let t = Instant::now();
            sweep(model, items, Some(steer), &MULTIPLIERS, opts, |_| {})?;
            let s = t.elapsed().as_secs_f64();
            best[k] = best[k].min(s);
            println!(
                "round {round} batch_items {:2} max_rows {:3}: {s:.2} s",
                opts.batch_items, opts.max_rows
            );
        }
    }
    for (opts, s) in configs.iter().zip(&best) {
        println!(
            "best batch_items {:2} max_rows {:3}: {s:.2} s ({:.3} s/item)",
            opts.batch_items,
            opts.max_rows,
            s / items.len() as f64
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let name =
        std::env::var("STEERBENCH_BENCH_MODEL").unwrap_or_else(|_| "smollm2-135m-instruct".into());
    let resolved = resolve(&ModelSource::parse(&name))?;
    let t = Instant::now();
    let lm = resolved.load(&Device::Cpu)?;
    eprintln!("loaded {name} in {:.1}s", t.elapsed().as_secs_f64());
    let model = &lm.model;
    let cfg = model.config().clone();
    if LAYER >= cfg.n_layers {
        bail!(
            "model has {} layers, the bench steers block {LAYER}",
            cfg.n_layers
        );
    }

    // Items: chat template, fixed system prompt, assistant prefix "(" so the next token is
    // the letter; both letters are read from the same logits.
    let n_items = env_usize("CAA_SWEEP_ITEMS")?.unwrap_or(N_ITEMS);
    let records: Vec<AbItem> = ab_items()?.into_iter().take(n_items).collect();
    let letters = [
        single_token(&lm.tokenizer, "A")?,
        single_token(&lm.tokenizer, "B")?,
    ];
    let mut prompts = Vec::with_capacity(records.len());
    for r in &records {
        let p = Prompt {
            system: Some(SYSTEM.to_string()),
            shots: Vec::new(),
            user: r.question.clone(),
            assistant_prefix: "(".into(),
        };
        prompts.push(encode(&lm.tokenizer, &p, PromptStyle::Chat)?);
    }
    let lens: Vec<usize> = prompts.iter().map(Vec::len).collect();
    let mean = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
    println!(
        "items: {} × {} multipliers; tokens per item min {} mean {:.1} max {} (total {})",
        prompts.len(),
        MULTIPLIERS.len(),
        lens.iter().min().unwrap_or(&0),
        mean,
        lens.iter().max().unwrap_or(&0),
        lens.iter().sum::<usize>()
    );

    // The CAA vector at ResidPost(LAYER): mean over items of the activation at the answer
    // letter after the matching answer minus after the non-matching one.
    let t = Instant::now();
    let mut pairs = Vec::with_capacity(2 * prompts.len());
    for (ids, r) in prompts.iter().zip(&records) {
        for letter in [letters[r.matching], letters[1 - r.matching]] {
            let mut tokens = ids.clone();
            tokens.push(letter);
            pairs.push(Sequence::new(tokens, ids.len()));
        }
    }
    let point = HookPoint::new(LAYER, Site::ResidPost);
    let acts = capture(model, &pairs, &[point], &ReadAt::Last, 8, |_| {})?;
    let mut vector = vec![0f32; cfg.hidden_size];
    for pair in acts.vectors.chunks(2) {
        for ((v, m), n) in vector.iter_mut().zip(&pair[0][0]).zip(&pair[1][0]) {
            *v += (m - n) / records.len() as f32;
        }
    }
    let raw_norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    let norms = &acts.token_norms[0];
    let resid_norm = norms.iter().sum::<f32>() / norms.len() as f32;
    if !(raw_norm > 0.0) {
        bail!("the CAA difference is zero");
    }
    let k = SCALE * resid_norm / raw_norm;
    vector.iter_mut().for_each(|x| *x *= k);
    println!(
        "vector: CAA direction at ResidPost({LAYER}) from the same items (raw |v| {raw_norm:.2}), \
         scaled to {SCALE} × the mean residual norm there ({resid_norm:.2}), in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let items: Vec<Item> = prompts
        .iter()
        .map(|ids| Item {
            seq: Sequence::prompt(ids.clone()),
            read: Read::NextToken(letters.to_vec()),
        })
        .collect();
    let steer = Steer::Add {
        layer: LAYER,
        vector: vector.clone(),
    };
    let mut opts = SweepOptions {
        positions: Positions::All,
        ..SweepOptions::default()
    };
    if let Some(b) = env_usize("CAA_SWEEP_BATCH_ITEMS")? {
        opts.batch_items = b;
    }
    if let Some(r) = env_usize("CAA_SWEEP_MAX_ROWS")? {
        opts.max_rows = r;
    }
    let repeats = env_usize("CAA_SWEEP_REPEATS")?.unwrap_or(1).max(1);
    if let Ok(spec) = std::env::var("CAA_SWEEP_TUNE") {
        return tune(model, &items, &steer, &spec, repeats);
    }

    // Warm-up (allocator, thread pool) on one item, then the timed sweeps.
    sweep(
        model,
        &items[..1],
        Some(&steer),
        &MULTIPLIERS,
        &opts,
        |_| {},
    )?;
    let mut times = Vec::with_capacity(repeats);
    let mut vals = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        vals = sweep(model, &items, Some(&steer), &MULTIPLIERS, &opts, |_| {})?;
        times.push(t.elapsed().as_secs_f64());
    }
    let wall = times.iter().cloned().fold(f64::INFINITY, f64::min);
    // The same sweep with every item run whole: what the shared prefix saves.
    let shared = common_prefix(&items).map_or(0, |p| p.len());
    let whole_opts = SweepOptions {
        share_prefix: false,
        ..opts.clone()
    };
    let mut whole_times = Vec::with_capacity(repeats);
    let mut whole_vals = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        whole_vals = sweep(
            model,
            &items,
            Some(&steer),
            &MULTIPLIERS,
            &whole_opts,
            |_| {},
        )?;
        whole_times.push(t.elapsed().as_secs_f64());
    }
    let wall_whole = whole_times.iter().cloned().fold(f64::INFINITY, f64::min);
    let max_lp_diff = vals
        .iter()
        .flatten()
        .zip(whole_vals.iter().flatten())
        .flat_map(|(a, b)| {
            a.as_slice()
                .iter()
                .zip(b.as_slice())
                .map(|(x, y)| (x - y).abs())
        })
        .fold(0f32, f32::max);

    // lp[item][multiplier] = [log p(A), log p(B)]; p(match) = p(matching) / (p(A) + p(B)).
    let mut lp = vec![Vec::with_capacity(MULTIPLIERS.len()); items.len()];
    let mut p_match = vec![Vec::with_capacity(MULTIPLIERS.len()); items.len()];
    for per_item in &vals {
        for (i, v) in per_item.iter().enumerate() {
            let Value::NextToken(ab) = v else {
                bail!("sweep returned {v:?} for a next-token read")
            };
            let (a, b) = (ab[0] as f64, ab[1] as f64);
            let pm = [a, b][records[i].matching].exp() / (a.exp() + b.exp());
            lp[i].push([a, b]);
            p_match[i].push(pm);
        }
    }
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    println!(
        "sweep: {wall:.2} s (runs: {times:.2?}), threads {threads}, batch_items {}, max_rows {}",
        opts.batch_items, opts.max_rows
    );
    println!(
        "  shared prefix {shared} tokens run once; every item run whole instead: \
         {wall_whole:.2} s (runs: {whole_times:.2?}), max |Δ log p| {max_lp_diff:.2e}"
    );
    let zero = MULTIPLIERS.iter().position(|&m| m == 0.0);
    for (a, m) in MULTIPLIERS.iter().enumerate() {
        let mean = p_match.iter().map(|r| r[a]).sum::<f64>() / p_match.len() as f64;
        let moved = zero.map_or(f64::NAN, |z| {
            p_match.iter().map(|r| (r[a] - r[z]).abs()).sum::<f64>() / p_match.len() as f64
        });
        println!("  multiplier {m:+.1}: mean p(match) {mean:.4}, mean |p - p(0)| {moved:.4}");
    }

    let dir = out_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let gguf = resolved
        .files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "gguf"))
        .map(|p| p.display().to_string());
    let inputs = json!({
        "model": name,
        "gguf": gguf,
        "layer": LAYER,
        "site": "resid_post",
        "positions": "all",
        "vector": vector,
        "multipliers": MULTIPLIERS,
        "a_token": letters[0],
        "b_token": letters[1],
        "ids": records.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        "matching": records.iter().map(|r| r.matching).collect::<Vec<_>>(),
        "items": prompts,
    });
    let results = json!({
        "impl": "steerbench",
        "threads": threads,
        "wall_s": wall,
        "runs_s": times,
        "shared_prefix_tokens": shared,
        "wall_whole_items_s": wall_whole,
        "runs_whole_items_s": whole_times,
        "max_logp_diff_whole_items": max_lp_diff,
        "batch_items": opts.batch_items,
        "max_rows": opts.max_rows,
        "multipliers": MULTIPLIERS,
        "lp": lp,
        "p_match": p_match,
    });
    for (file, v) in [
        ("caa_sweep_inputs.json", &inputs),
        ("caa_sweep_steerbench.json", &results),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, serde_json::to_string(v)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
