//! Parity with transformers for every rotary family, on tiny random-weight models with
//! every quirk switched on (see `tests/golden/make_families_golden.py`): logits and every
//! hidden state within 1e-4, single rows and left-padded batches, whole-prompt and
//! chunked prefill (the chunked runs go through the KV cache, so its sliding-window
//! masking is checked too).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use steerbench_model::weights::load_hf_dir;
use steerbench_model::{Arch, HookPoint, Hooks, Model, Sequence, Site};

const TOL: f32 = 1e-4;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/families")
}

/// Max |a - b| of two (.., n) tensors.
fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Every golden case against `model`: (max logits error, max hidden error).
fn check(model: &Model, golden: &Path, what: &str) -> (f32, f32) {
    let g = candle_core::safetensors::load(golden, &Device::Cpu).expect("golden file");
    let n = model.config().n_layers;
    let (mut worst_logits, mut worst_hidden) = (0f32, 0f32);
    for case in ["single", "batch"] {
        let ids = g[&format!("{case}.input_ids")].to_vec2::<i64>().unwrap();
        let mask = g[&format!("{case}.attention_mask")]
            .to_vec2::<i64>()
            .unwrap();
        let batch: Vec<Sequence> = ids
            .iter()
            .zip(&mask)
            .map(|(ids, m)| {
                Sequence::prompt(
                    ids.iter()
                        .zip(m)
                        .filter(|(_, &m)| m == 1)
                        .map(|(&i, _)| i as u32)
                        .collect(),
                )
            })
            .collect();
        let mut hooks = Hooks::new();
        (0..n).for_each(|l| hooks.capture(HookPoint::new(l, Site::ResidPre)));
        let out = model.forward(&batch, &mut hooks).unwrap();
        let resid: Vec<Tensor> = (0..n)
            .map(|l| hooks.take(HookPoint::new(l, Site::ResidPre)).unwrap())
            .collect();
        let hs = &g[&format!("{case}.hidden")];
        let logits = &g[&format!("{case}.logits")];
        for (r, s) in batch.iter().enumerate() {
            let pad = out.pad_left(r);
            for p in 0..s.tokens.len() {
                for l in 0..=n {
                    let ours = resid.get(l).unwrap_or(out.hidden());
                    let ours = ours.get(r).unwrap().get(pad + p).unwrap();
                    let e = max_abs(
                        &ours,
                        &hs.get(l).unwrap().get(r).unwrap().get(pad + p).unwrap(),
                    );
                    assert!(
                        e <= TOL,
                        "{what}/{case}: hidden state {l} row {r} pos {p} differs by {e}"
                    );
                    worst_hidden = worst_hidden.max(e);
                }
                let theirs = logits.get(r).unwrap().get(pad + p).unwrap();
                let e = max_abs(&out.logits_at(r, p).unwrap(), &theirs);
                assert!(
                    e <= TOL,
                    "{what}/{case}: logits row {r} pos {p} differ by {e}"
                );
                worst_logits = worst_logits.max(e);
            }
        }
    }
    eprintln!(
        "{what}: max |logits err| = {worst_logits:.2e}, max |hidden err| = {worst_hidden:.2e}"
    );
    (worst_logits, worst_hidden)
}

/// Loads `families/<name>`, checks it whole and in prefill chunks of 1 (every token
/// through the KV cache, as in decoding) and 3.
fn parity(name: &str, arch: Arch) {
    let path = dir().join(name);
    let golden = dir().join(format!("{name}.golden.safetensors"));
    if !path.join("model.safetensors").is_file() || !golden.is_file() {
        eprintln!("{name} skipped: run tests/golden/make_families_golden.py to create it");
        return;
    }
    let mut model = load_hf_dir(&path, &Device::Cpu).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(model.config().arch, arch);
    check(&model, &golden, name);
    for chunk in [1, 3] {
        model.set_prefill_chunk(Some(chunk));
        check(&model, &golden, &format!("{name} (prefill chunk {chunk})"));
    }
}

#[test]
fn parity_mistral_sliding_window() {
    parity("mistral", Arch::Llama);
}

#[test]
fn parity_qwen2_qkv_bias_sliding_layers() {
    parity("qwen2", Arch::Qwen2);
}

#[test]
fn parity_qwen3_qk_norm_bias() {
    parity("qwen3", Arch::Qwen3);
}

#[test]
fn parity_gemma_geglu_offset_norm_scaled_embedding() {
    parity("gemma", Arch::Gemma);
}

#[test]
fn parity_gemma2_post_norms_softcaps_alternating_window() {
    parity("gemma2", Arch::Gemma2);
}

#[test]
fn parity_gemma3_qk_norm_local_global_rope() {
    parity("gemma3", Arch::Gemma3);
}

#[test]
fn parity_phi3_fused_projections() {
    parity("phi3", Arch::Phi3);
}

#[test]
fn parity_phi3_longrope_short_and_long_factors() {
    parity("phi3_longrope", Arch::Phi3);
}

/// Phi-3's hub configs write LongRoPE as `rope_scaling` with the pretraining context at
/// the top level; the attention factor then follows from the context ratio.
#[test]
fn phi3_longrope_config_in_the_older_layout() {
    let cfg = steerbench_model::ModelConfig::from_hf_config(&serde_json::json!({
        "model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192,
        "num_hidden_layers": 32, "num_attention_heads": 32, "vocab_size": 32064,
        "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
        "rope_theta": 10000.0, "sliding_window": 262144,
        "rope_scaling": {"type": "longrope", "short_factor": vec![1.0; 48], "long_factor": vec![2.0; 48]}
    }))
    .unwrap();
    let l = cfg.longrope.as_ref().unwrap();
    assert_eq!(l.original_max_position_embeddings, 4096);
    let want = (1.0 + (32.0f64).ln() / (4096.0f64).ln()).sqrt();
    assert!((l.attention_factor - want).abs() < 1e-12);
    assert_eq!(cfg.rope.unwrap().theta, 10000.0);
    assert_eq!(cfg.head_dim, 96);
}

/// The goldens exercise each quirk: switching it off moves the logits far past the
/// tolerance, so the parity above is not passing by accident.
#[test]
fn each_quirk_changes_the_output() {
    use steerbench_model::weights::{read_config, safetensors_files, var_builder};
    use steerbench_model::ModelConfig;
    type Mutate = fn(&mut ModelConfig);
    let cases: &[(&str, &str, Mutate)] = &[
        ("mistral", "sliding window", |c| c.sliding_window = None),
        ("qwen2", "sliding window", |c| c.sliding_window = None),
        ("gemma2", "attention soft-cap", |c| {
            c.attn_logit_softcapping = None
        }),
        ("gemma2", "final soft-cap", |c| {
            c.final_logit_softcapping = None
        }),
        ("gemma2", "query_pre_attn_scalar", |c| {
            c.query_pre_attn_scalar = None
        }),
        ("gemma3", "local rope", |c| c.rope_local = None),
        ("gemma", "embedding scale", |c| c.embed_scale = None),
        ("phi3_longrope", "longrope", |c| c.longrope = None),
    ];
    for (name, quirk, mutate) in cases {
        let path = dir().join(name);
        let golden = dir().join(format!("{name}.golden.safetensors"));
        if !golden.is_file() {
            continue;
        }
        let mut cfg = read_config(&path).unwrap();
        mutate(&mut cfg);
        let vb = var_builder(&safetensors_files(&path).unwrap(), &Device::Cpu).unwrap();
        let model = Model::new(cfg, vb).unwrap();
        let g = candle_core::safetensors::load(&golden, &Device::Cpu).unwrap();
        let ids: Vec<u32> = g["batch.input_ids"].to_vec2::<i64>().unwrap()[3]
            .iter()
            .map(|&i| i as u32)
            .collect();
        let out = model
            .forward(&[Sequence::prompt(ids.clone())], &mut Hooks::new())
            .unwrap();
        let theirs = g["batch.logits"]
            .get(3)
            .unwrap()
            .get(ids.len() - 1)
            .unwrap();
        let e = max_abs(&out.logits_at(0, ids.len() - 1).unwrap(), &theirs);
        assert!(
            e > 100.0 * TOL,
            "{name}: without its {quirk} the logits still match ({e})"
        );
    }
}

/// Rows continuing a shared prefix are laid out `[prefix][pad][own tokens]`; the sliding
/// window counts unpadded positions, so it reaches across the padding gap into the
/// prefix exactly as in the whole sequence.
#[test]
fn windowed_families_with_a_shared_prefix_equal_whole_sequences() {
    use steerbench_model::Pass;
    let prefix = [1u32, 5, 9, 14, 20, 21];
    let own = [
        vec![22u32, 3, 7],
        vec![60],
        vec![30, 31, 32, 33, 34, 35, 36],
    ];
    for name in ["mistral", "qwen2", "gemma2", "gemma3", "phi3"] {
        let path = dir().join(name);
        if !path.join("model.safetensors").is_file() {
            continue;
        }
        let mut m = load_hf_dir(&path, &Device::Cpu).unwrap();
        for chunk in [None, Some(2)] {
            m.set_prefill_chunk(chunk);
            let whole: Vec<Sequence> = own
                .iter()
                .map(|c| Sequence::new([prefix.to_vec(), c.clone()].concat(), prefix.len()))
                .collect();
            let full = m.forward(&whole, &mut Hooks::new()).unwrap();
            let n = m.config().n_layers;
            let (sp, _) = m
                .shared_prefix(&prefix, 0..n, 1, None, &mut Hooks::new())
                .unwrap();
            let rows: Vec<Sequence> = own.iter().map(|c| Sequence::new(c.clone(), 0)).collect();
            let pass = Pass {
                prefix: Some((&sp, &[0, 0, 0])),
                ..Pass::default()
            };
            let part = m.forward_pass(&rows, &pass, &mut Hooks::new()).unwrap();
            for (r, c) in own.iter().enumerate() {
                for p in 0..c.len() {
                    let a = full.logits_at(r, prefix.len() + p).unwrap();
                    let b = part.logits_at(r, p).unwrap();
                    let e = max_abs(&a, &b);
                    assert!(e <= TOL, "{name} chunk {chunk:?}: row {r} pos {p}: {e}");
                }
            }
        }
    }
}

/// Greedy generation through the KV cache (with and without it, and with chunked
/// prefill) picks transformers' tokens, 16 steps past a 5-token sliding window.
#[test]
fn greedy_generation_matches_transformers() {
    use steerbench_model::{EosOnly, GenerateOptions};
    for name in [
        "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3",
    ] {
        let golden = dir().join(format!("{name}.golden.safetensors"));
        if !golden.is_file() {
            continue;
        }
        let g = candle_core::safetensors::load(&golden, &Device::Cpu).unwrap();
        let ids = g["generate.input_ids"].to_vec2::<i64>().unwrap();
        let mask = g["generate.attention_mask"].to_vec2::<i64>().unwrap();
        let want: Vec<Vec<u32>> = g["generate.new_tokens"]
            .to_vec2::<i64>()
            .unwrap()
            .into_iter()
            .map(|r| r.into_iter().map(|x| x as u32).collect())
            .collect();
        let prompts: Vec<Vec<u32>> = ids
            .iter()
            .zip(&mask)
            .map(|(i, m)| {
                i.iter()
                    .zip(m)
                    .filter(|(_, &m)| m == 1)
                    .map(|(&x, _)| x as u32)
                    .collect()
            })
            .collect();
        let mut model = load_hf_dir(&dir().join(name), &Device::Cpu).unwrap();
        for (cache, chunk) in [(true, None), (false, None), (true, Some(2))] {
            model.set_prefill_chunk(chunk);
            let opts = GenerateOptions {
                max_new_tokens: want[0].len(),
                use_kv_cache: cache,
                stop_at_eos: false,
                ..Default::default()
            };
            let got = model
                .generate(&EosOnly::default(), &prompts, &opts, &Hooks::new())
                .unwrap();
            assert_eq!(got, want, "{name}: cache {cache}, prefill chunk {chunk:?}");
        }
    }
}

/// Hook sites mean the same in every family: `ResidMid = ResidPre + AttnOut`,
/// `ResidPost = ResidMid + MlpOut` (for Gemma 2/3 the branches are post-normed before
/// being added), `ResidPost(l) = ResidPre(l + 1)`, and `HeadOut` is (b, t, heads, head_dim).
#[test]
fn hook_sites_mean_the_same_in_every_family() {
    let names = [
        "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3",
    ];
    for name in names {
        let path = dir().join(name);
        if !path.join("model.safetensors").is_file() {
            continue;
        }
        let m = load_hf_dir(&path, &Device::Cpu).unwrap();
        let c = m.config().clone();
        let mut h = Hooks::new();
        let sites = [
            Site::ResidPre,
            Site::AttnOut,
            Site::ResidMid,
            Site::MlpOut,
            Site::ResidPost,
            Site::HeadOut,
        ];
        for s in sites {
            h.capture(HookPoint::new(1, s));
        }
        h.capture(HookPoint::new(2, Site::ResidPre));
        let batch = [
            Sequence::prompt((1..12).collect()),
            Sequence::prompt(vec![5, 6, 7]),
        ];
        m.forward(&batch, &mut h).unwrap();
        let mut get = |s| h.take(HookPoint::new(1, s)).unwrap();
        let (pre, attn, mid, mlp, post, heads) = (
            get(Site::ResidPre),
            get(Site::AttnOut),
            get(Site::ResidMid),
            get(Site::MlpOut),
            get(Site::ResidPost),
            get(Site::HeadOut),
        );
        let next = h.take(HookPoint::new(2, Site::ResidPre)).unwrap();
        assert!(
            max_abs(&(pre + attn).unwrap(), &mid) < 1e-6,
            "{name}: ResidMid"
        );
        assert!(
            max_abs(&(&mid + mlp).unwrap(), &post) < 1e-6,
            "{name}: ResidPost"
        );
        assert!(
            max_abs(&post, &next) == 0.0,
            "{name}: ResidPost != next ResidPre"
        );
        assert_eq!(
            heads.dims(),
            &[2, 11, c.n_heads, c.head_dim],
            "{name}: HeadOut"
        );
    }
}
