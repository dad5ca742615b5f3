//! LoRA adapters in the shared forward, on the tiny random-weight models of every family
//! (tests/golden): B = 0 is exactly the base model; an adapter equals the model with the
//! delta merged into its weights; gradients of A and B match finite differences (which
//! checks the backward passes of the runtime's matmul, attention, rotary and norm
//! kernels); PEFT export and import round-trip, and PEFT itself reproduces the adapted
//! logits (golden written by tests/golden/make_lora_golden.py).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use steerbench_model::weights::load_hf_dir;
use steerbench_model::{Adapter, Arch, Hooks, LoraPair, Model, Proj, Sequence};

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Every tiny model: (name, directory).
fn tiny_models() -> Vec<(&'static str, PathBuf)> {
    let g = golden();
    let mut out = vec![("llama_gqa", g.join("llama_gqa")), ("gpt2", g.join("gpt2"))];
    for f in [
        "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3",
    ] {
        out.push((f, g.join("families").join(f)));
    }
    out
}

fn load(dir: &Path) -> Model {
    load_hf_dir(dir, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// A deterministic adapter on every projection of every block (rank 4, alpha 8):
/// entries `scale * sin(...)` so no two are alike.
fn formula_adapter(model: &Model, b_scale: f32) -> Adapter {
    let rank = 4;
    let mut pairs = BTreeMap::new();
    for (k, info) in model.projections().iter().enumerate() {
        let f = |rows: usize, cols: usize, phase: f32, scale: f32| {
            let v: Vec<f32> = (0..rows * cols)
                .map(|i| scale * ((i as f32) * 0.37 + phase + k as f32 * 1.1).sin())
                .collect();
            Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
        };
        pairs.insert(
            (info.layer, info.proj),
            LoraPair {
                a: f(rank, info.d_in, 0.3, 0.2),
                b: f(info.d_out, rank, 1.7, b_scale),
            },
        );
    }
    Adapter {
        rank,
        alpha: 8.0,
        pairs,
        dropout: None,
    }
}

fn batch() -> Vec<Sequence> {
    vec![
        Sequence::new(vec![3, 17, 5, 9, 22, 4, 11], 4),
        Sequence::new(vec![8, 2, 30, 6], 2),
    ]
}

fn logits(model: &Model, adapter: Option<(&Arc<Adapter>, f32)>) -> Vec<Vec<f32>> {
    let mut hooks = Hooks::new();
    if let Some((a, m)) = adapter {
        hooks.set_adapter(a.clone(), m);
    }
    let b = batch();
    let out = model.forward(&b, &mut hooks).unwrap();
    let mut rows = Vec::new();
    for (r, s) in b.iter().enumerate() {
        for p in 0..s.tokens.len() {
            rows.push(out.logits_at(r, p).unwrap().to_vec1::<f32>().unwrap());
        }
    }
    rows
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0f32, f32::max)
}

#[test]
fn b_zero_is_exactly_the_base_model_and_multiplier_zero_too() {
    for (name, dir) in tiny_models() {
        let model = load(&dir);
        // What plans check against (from the config) is what the blocks offer.
        let offered: Vec<Proj> = model
            .projections()
            .iter()
            .filter(|p| p.layer == 0)
            .map(|p| p.proj)
            .collect();
        assert_eq!(offered, Proj::of_arch(model.config().arch), "{name}");
        let base = logits(&model, None);
        let zero_b = Arc::new(formula_adapter(&model, 0.0));
        assert_eq!(max_diff(&logits(&model, Some((&zero_b, 1.0))), &base), 0.0);
        let real = Arc::new(formula_adapter(&model, 0.05));
        assert_eq!(max_diff(&logits(&model, Some((&real, 0.0))), &base), 0.0);
        let moved = max_diff(&logits(&model, Some((&real, 1.0))), &base);
        assert!(
            moved > 1e-3,
            "{name}: the adapter changes nothing ({moved})"
        );
    }
}

/// The model with `scale * B A` added to each adapted weight, written as a new directory.
fn merged_model(
    dir: &Path,
    model: &Model,
    adapter: &Adapter,
    mult: f32,
) -> (tempfile::TempDir, Model) {
    let tmp = tempfile::tempdir().unwrap();
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let gpt2 = model.config().arch == Arch::Gpt2;
    let scale = mult as f64 * adapter.base_scale();
    for info in model.projections() {
        let Some(p) = adapter.pairs.get(&(info.layer, info.proj)) else {
            continue;
        };
        let delta = (p.b.matmul(&p.a).unwrap() * scale).unwrap(); // (out, in)
                                                                  // Checkpoints may or may not carry GPT-2's `transformer.` prefix.
        let name = [
            format!("{}.weight", info.path),
            format!("{}.weight", info.path.trim_start_matches("transformer.")),
        ]
        .into_iter()
        .find(|n| tensors.contains_key(n))
        .unwrap_or_else(|| panic!("{}: no weight", info.path));
        let w = &tensors[&name];
        let delta = if gpt2 { delta.t().unwrap() } else { delta };
        let merged = (w.to_dtype(DType::F32).unwrap() + delta).unwrap();
        tensors.insert(name, merged.contiguous().unwrap());
    }
    candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
    std::fs::copy(dir.join("config.json"), tmp.path().join("config.json")).unwrap();
    let m = load(tmp.path());
    (tmp, m)
}

#[test]
fn an_adapter_equals_its_delta_merged_into_the_weights() {
    for (name, dir) in tiny_models() {
        let model = load(&dir);
        let adapter = Arc::new(formula_adapter(&model, 0.05));
        for mult in [1.0f32, -0.5] {
            let (_tmp, merged) = merged_model(&dir, &model, &adapter, mult);
            let e = max_diff(
                &logits(&model, Some((&adapter, mult))),
                &logits(&merged, None),
            );
            eprintln!("{name} x{mult}: adapter vs merged {e:.2e}");
            assert!(
                e <= 1e-5,
                "{name} x{mult}: adapter vs merged weights differ by {e}"
            );
        }
    }
}

/// Mean answer log-prob of the test batch under an adapter built from `a`/`b` tensors.
fn loss(model: &Model, template: &Adapter, tensors: &[(Tensor, Tensor)]) -> Tensor {
    let pairs = template
        .pairs
        .keys()
        .zip(tensors)
        .map(|(k, (a, b))| {
            (
                *k,
                LoraPair {
                    a: a.clone(),
                    b: b.clone(),
                },
            )
        })
        .collect();
    let adapter = Arc::new(Adapter {
        pairs,
        ..template.clone()
    });
    let mut hooks = Hooks::new();
    hooks.set_adapter(adapter, 1.0);
    let b = batch();
    let (hidden, pad) = model.forward_train(&b, &mut hooks).unwrap();
    let t = hidden.dim(1).unwrap();
    let (mut idx, mut tg) = (Vec::new(), Vec::new());
    for (r, s) in b.iter().enumerate() {
        for j in s.prompt_len..s.tokens.len() {
            idx.push((r * t + pad[r] + j - 1) as u32);
            tg.push(s.tokens[j]);
        }
    }
    model
        .logprobs_at(&hidden, &idx, &tg)
        .unwrap()
        .mean_all()
        .unwrap()
}

#[test]
fn lora_gradients_match_finite_differences_in_every_family() {
    for (name, dir) in tiny_models() {
        let model = load(&dir);
        let template = formula_adapter(&model, 0.05);
        let vars: Vec<(Var, Var)> = template
            .pairs
            .values()
            .map(|p| {
                (
                    Var::from_tensor(&p.a).unwrap(),
                    Var::from_tensor(&p.b).unwrap(),
                )
            })
            .collect();
        let as_tensors = |v: &[(Var, Var)]| -> Vec<(Tensor, Tensor)> {
            v.iter()
                .map(|(a, b)| (a.as_tensor().clone(), b.as_tensor().clone()))
                .collect()
        };
        let l = loss(&model, &template, &as_tensors(&vars));
        let grads = l.backward().unwrap();
        // A few entries of A and B in the first, a middle and the last pair.
        let n = vars.len();
        let mut worst = 0f32;
        for (k, which, entry) in [
            (0, 0, 1),
            (0, 1, 2),
            (n / 2, 0, 5),
            (n / 2, 1, 0),
            (n - 1, 0, 3),
            (n - 1, 1, 1),
        ] {
            let var = if which == 0 { &vars[k].0 } else { &vars[k].1 };
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient for pair {k}"))
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()[entry];
            let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let h = 1e-2f32;
            let at = |delta: f32| -> f32 {
                let mut v = base.clone();
                v[entry] += delta;
                let t = Tensor::from_vec(v, var.as_tensor().shape(), &Device::Cpu).unwrap();
                let mut ts = as_tensors(&vars);
                if which == 0 {
                    ts[k].0 = t;
                } else {
                    ts[k].1 = t;
                }
                loss(&model, &template, &ts).to_scalar::<f32>().unwrap()
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            let err = (fd - g).abs();
            assert!(
                err <= 2e-3 + 2e-2 * g.abs(),
                "{name}: pair {k} {} entry {entry}: autograd {g}, finite difference {fd}",
                if which == 0 { "A" } else { "B" }
            );
            worst = worst.max(err);
        }
        eprintln!("{name}: max |grad - finite difference| = {worst:.2e}");
    }
}

#[test]
fn peft_export_and_import_round_trip_and_refuse_foreign_modules() {
    for (name, dir) in tiny_models() {
        let model = load(&dir);
        let adapter = formula_adapter(&model, 0.05);
        let tmp = tempfile::tempdir().unwrap();
        let gpt2 = model.config().arch == Arch::Gpt2;
        adapter
            .save_peft(tmp.path(), &model.projections(), name, gpt2)
            .unwrap();
        let back = Adapter::load_peft(tmp.path(), &model.projections()).unwrap();
        assert_eq!((back.rank, back.alpha), (adapter.rank, adapter.alpha));
        assert_eq!(back.pairs.len(), adapter.pairs.len());
        let a = Arc::new(adapter);
        let b = Arc::new(back);
        assert_eq!(
            max_diff(
                &logits(&model, Some((&a, 1.0))),
                &logits(&model, Some((&b, 1.0)))
            ),
            0.0,
            "{name}"
        );
    }
    // An adapter for a module the model lacks: GPT-2 has no gate projection.
    let gpt2 = load(&golden().join("gpt2"));
    let llama = load(&golden().join("llama_gqa"));
    let mut foreign = formula_adapter(&llama, 0.05);
    foreign.pairs.retain(|(_, p), _| *p == Proj::Gate);
    let mut hooks = Hooks::new();
    hooks.set_adapter(Arc::new(foreign), 1.0);
    let err = gpt2.forward(&batch(), &mut hooks).unwrap_err().to_string();
    assert!(
        err.contains("`gate`") && err.contains("no such projection"),
        "{err}"
    );
}

/// steerbench's PEFT export of [`formula_adapter`], loaded by PEFT onto the Hugging Face
/// model (tests/golden/make_lora_golden.py), gives the logits steerbench computes.
#[test]
fn peft_loads_our_export_and_reproduces_our_logits() {
    let out = golden().join("lora");
    for (name, dir) in tiny_models()
        .into_iter()
        .filter(|(n, _)| ["llama_gqa", "gpt2", "phi3", "gemma3"].contains(n))
    {
        let model = load(&dir);
        let adapter = formula_adapter(&model, 0.05);
        let export = out.join(name);
        let gpt2 = model.config().arch == Arch::Gpt2;
        if std::env::var_os("STEERBENCH_WRITE_LORA_EXPORT").is_some() {
            adapter
                .save_peft(&export, &model.projections(), name, gpt2)
                .unwrap();
            continue;
        }
        // The committed export is exactly what steerbench writes today.
        let fresh = tempfile::tempdir().unwrap();
        adapter
            .save_peft(fresh.path(), &model.projections(), name, gpt2)
            .unwrap();
        for f in ["adapter_model.safetensors", "adapter_config.json"] {
            let committed = std::fs::read(export.join(f)).unwrap_or_else(|e| {
                panic!("{name}/{f}: {e} (STEERBENCH_WRITE_LORA_EXPORT=1 writes it)")
            });
            assert!(
                committed == std::fs::read(fresh.path().join(f)).unwrap(),
                "{name}/{f}: the committed export differs from what save_peft writes now"
            );
        }
        let golden_file = out.join(format!("{name}.golden.safetensors"));
        let g = candle_core::safetensors::load(&golden_file, &Device::Cpu).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run tests/golden/make_lora_golden.py)",
                golden_file.display()
            )
        });
        let a = Arc::new(adapter);
        let ours = logits(&model, Some((&a, 1.0)));
        let b = batch();
        let mut row = 0;
        let mut worst = 0f32;
        for (r, s) in b.iter().enumerate() {
            let theirs = g[&format!("logits.{r}")].to_vec2::<f32>().unwrap();
            assert_eq!(theirs.len(), s.tokens.len());
            for t in theirs {
                worst = worst.max(max_diff(&[ours[row].clone()], &[t]));
                row += 1;
            }
        }
        eprintln!("{name}: PEFT vs steerbench logits {worst:.2e}");
        assert!(worst <= 1e-4, "{name}: PEFT's logits differ by {worst}");
    }
}
