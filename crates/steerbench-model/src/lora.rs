//! LoRA adapters (Hu et al. 2021) on a block's projections, applied inside the shared
//! forward: a projection `y = x Wᵀ (+ b)` becomes `y + s · (x Aᵀ) Bᵀ` with A (r, in),
//! B (out, r) and `s = multiplier · alpha / r`. The multiplier is the sweep's strength:
//! 0 is the base model, 1 the trained adapter, other values scale the delta like a
//! steering strength.
//!
//! An adapter rides on [`crate::Hooks`] ([`crate::Hooks::set_adapter`]), so every forward
//! path (plain, split, shared prefix, KV cache, generation) applies it without a separate
//! code path, and every family gets it through its block's projections
//! ([`crate::Model::projections`] lists them with their Hugging Face module paths, the
//! names PEFT uses). A/B held as candle `Var`s make the forward differentiable: the
//! runtime's own kernels carry backward passes for the activations (frozen weights get no
//! gradient), which is what LoRA training needs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{ModelError, Result};

/// A projection of a decoder block that can carry a LoRA delta. Families with fused
/// projections (Phi-3, GPT-2) offer `Qkv` / `GateUp` instead of the separate ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proj {
    Q,
    K,
    V,
    Qkv,
    O,
    Gate,
    Up,
    GateUp,
    Down,
}

impl Proj {
    pub const ALL: [Proj; 9] = [
        Proj::Q,
        Proj::K,
        Proj::V,
        Proj::Qkv,
        Proj::O,
        Proj::Gate,
        Proj::Up,
        Proj::GateUp,
        Proj::Down,
    ];

    /// Every projection of a block with separate q/k/v and gate/up (Llama, Qwen, Gemma).
    pub const SPLIT: [Proj; 7] = [
        Proj::Q,
        Proj::K,
        Proj::V,
        Proj::O,
        Proj::Gate,
        Proj::Up,
        Proj::Down,
    ];

    /// The spec's name of the projection.
    pub fn name(self) -> &'static str {
        match self {
            Proj::Q => "q",
            Proj::K => "k",
            Proj::V => "v",
            Proj::Qkv => "qkv",
            Proj::O => "o",
            Proj::Gate => "gate",
            Proj::Up => "up",
            Proj::GateUp => "gate_up",
            Proj::Down => "down",
        }
    }

    pub fn parse(s: &str) -> Option<Proj> {
        Proj::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The projections every block of `arch` has (what its block's `projections` lists),
    /// known from the config alone so plans can check LoRA modules without the weights.
    pub fn of_arch(arch: crate::config::Arch) -> &'static [Proj] {
        use crate::config::Arch;
        match arch {
            Arch::Gpt2 => &[Proj::Qkv, Proj::O, Proj::Up, Proj::Down],
            Arch::Phi3 => &[Proj::Qkv, Proj::O, Proj::GateUp, Proj::Down],
            Arch::Llama | Arch::Qwen2 | Arch::Qwen3 | Arch::Gemma | Arch::Gemma2 | Arch::Gemma3 => {
                &Proj::SPLIT
            }
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One projection of one block: where it lives in the Hugging Face module tree and its
/// shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjInfo {
    pub layer: usize,
    pub proj: Proj,
    /// Module path, e.g. `model.layers.3.self_attn.q_proj` or `transformer.h.3.attn.c_attn`.
    pub path: String,
    pub d_in: usize,
    pub d_out: usize,
}

/// The delta on one projection: `(x Aᵀ) Bᵀ`.
#[derive(Debug, Clone)]
pub struct LoraPair {
    /// (r, d_in)
    pub a: Tensor,
    /// (d_out, r)
    pub b: Tensor,
}

/// Seeded dropout on the LoRA input while training (PEFT's `lora_dropout`).
#[derive(Debug)]
pub struct LoraDropout {
    pub p: f32,
    rng: Mutex<ChaCha8Rng>,
}

impl LoraDropout {
    pub fn new(p: f32, seed: u64) -> Self {
        Self {
            p,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    fn apply(&self, xs: &Tensor) -> Result<Tensor> {
        if self.p <= 0.0 {
            return Ok(xs.clone());
        }
        let keep = 1.0 - self.p;
        let n = xs.elem_count();
        let mask: Vec<f32> = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| ModelError::Other("LoRA dropout RNG poisoned".into()))?;
            (0..n)
                .map(|_| {
                    if rng.gen::<f32>() < keep {
                        1.0 / keep
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?;
        Ok((xs * mask)?)
    }
}

/// A LoRA adapter: rank, alpha and one pair per adapted (layer, projection).
#[derive(Debug, Clone)]
pub struct Adapter {
    pub rank: usize,
    pub alpha: f64,
    pub pairs: BTreeMap<(usize, Proj), LoraPair>,
    /// Only while training.
    pub dropout: Option<Arc<LoraDropout>>,
}

impl Adapter {
    /// `alpha / rank`: the delta's scale at multiplier 1.
    pub fn base_scale(&self) -> f64 {
        self.alpha / self.rank.max(1) as f64
    }

    /// The lowest adapted block: everything below it is the base model.
    pub fn first_layer(&self) -> Option<usize> {
        self.pairs.keys().map(|(l, _)| *l).min()
    }

    /// The adapted layers, ascending.
    pub fn layers(&self) -> Vec<usize> {
        let mut ls: Vec<usize> = self.pairs.keys().map(|(l, _)| *l).collect();
        ls.dedup();
        ls
    }

    /// Trainable parameters (entries of every A and B).
    pub fn n_params(&self) -> usize {
        self.pairs
            .values()
            .map(|p| p.a.elem_count() + p.b.elem_count())
            .sum()
    }

    /// Checks every pair against the model's projections: it must exist, and A/B must
    /// have shapes (rank, d_in) and (d_out, rank).
    pub fn check(&self, projections: &[ProjInfo]) -> Result<()> {
        if self.rank == 0 {
            return Err(ModelError::Input("LoRA rank must be at least 1".into()));
        }
        for (&(layer, proj), pair) in &self.pairs {
            let Some(info) = projections
                .iter()
                .find(|p| p.layer == layer && p.proj == proj)
            else {
                return Err(ModelError::Input(format!(
                    "LoRA on `{}` of block {layer}: the model has no such projection",
                    proj.name()
                )));
            };
            let (want_a, want_b) = ([self.rank, info.d_in], [info.d_out, self.rank]);
            if pair.a.dims() != want_a || pair.b.dims() != want_b {
                return Err(ModelError::Input(format!(
                    "LoRA on {}: A {:?} and B {:?}, expected {want_a:?} and {want_b:?}",
                    info.path,
                    pair.a.dims(),
                    pair.b.dims()
                )));
            }
        }
        Ok(())
    }
}

/// What one block applies: its pairs and the scale `multiplier · alpha / r`.
#[derive(Default, Clone)]
pub(crate) struct BlockLora<'a> {
    pairs: [Option<&'a LoraPair>; 9],
    scale: f64,
    dropout: Option<&'a LoraDropout>,
}

impl<'a> BlockLora<'a> {
    /// No delta anywhere.
    pub(crate) fn none() -> Self {
        Self::default()
    }

    pub(crate) fn of(adapter: Option<&'a (Arc<Adapter>, f32)>, layer: usize) -> Self {
        let Some((a, mult)) = adapter else {
            return Self::none();
        };
        if *mult == 0.0 {
            return Self::none();
        }
        let mut pairs = [None; 9];
        for p in Proj::ALL {
            pairs[p.index()] = a.pairs.get(&(layer, p));
        }
        Self {
            pairs,
            scale: *mult as f64 * a.base_scale(),
            dropout: a.dropout.as_deref(),
        }
    }

    /// `base + scale · (x Aᵀ) Bᵀ` when `proj` is adapted, else `base`. `xs` (.., d_in),
    /// `base` (.., d_out).
    pub(crate) fn add(&self, proj: Proj, xs: &Tensor, base: Tensor) -> Result<Tensor> {
        let Some(pair) = self.pairs[proj.index()] else {
            return Ok(base);
        };
        let dims = xs.dims().to_vec();
        let d_in = *dims.last().unwrap_or(&0);
        // Activations are f32 whatever the weights' dtype (the runtime's contract).
        let x = xs.reshape((xs.elem_count() / d_in.max(1), d_in))?;
        let x = match self.dropout {
            Some(d) => d.apply(&x)?,
            None => x,
        };
        let delta = x.matmul(&pair.a.t()?)?.matmul(&pair.b.t()?)?;
        let delta = (delta * self.scale)?.reshape(base.shape())?;
        Ok((base + delta)?)
    }
}

/// The safetensors file PEFT's `PeftModel.from_pretrained` reads.
pub const PEFT_WEIGHTS: &str = "adapter_model.safetensors";
/// Its configuration beside it.
pub const PEFT_CONFIG: &str = "adapter_config.json";

fn peft_name(path: &str, which: &str) -> String {
    format!("base_model.model.{path}.lora_{which}.weight")
}

impl Adapter {
    /// Writes the adapter in PEFT's layout into `dir`: [`PEFT_WEIGHTS`] (tensors
    /// `base_model.model.<module path>.lora_A.weight` (r, in) and `.lora_B.weight`
    /// (out, r)) and [`PEFT_CONFIG`] (a LoRA config whose `target_modules` is a regex of
    /// exactly the adapted module paths, so GPT-2's two `c_proj` are told apart).
    /// `conv1d`: the base model stores weights (in, out) (GPT-2), PEFT's `fan_in_fan_out`.
    pub fn save_peft(
        &self,
        dir: &std::path::Path,
        projections: &[ProjInfo],
        base_model: &str,
        conv1d: bool,
    ) -> Result<()> {
        self.check(projections)?;
        let mut tensors = std::collections::HashMap::new();
        let mut paths = Vec::new();
        for (&(layer, proj), pair) in &self.pairs {
            let info = projections
                .iter()
                .find(|p| p.layer == layer && p.proj == proj)
                .expect("checked above");
            tensors.insert(peft_name(&info.path, "A"), pair.a.detach().contiguous()?);
            tensors.insert(peft_name(&info.path, "B"), pair.b.detach().contiguous()?);
            paths.push(info.path.replace('.', "\\."));
        }
        let config = serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": self.rank,
            "lora_alpha": self.alpha,
            "lora_dropout": 0.0,
            "bias": "none",
            "fan_in_fan_out": conv1d,
            "target_modules": format!("(?:{})", paths.join("|")),
            "inference_mode": true,
            "init_lora_weights": true,
            "use_rslora": false,
            "use_dora": false,
            "modules_to_save": null,
        });
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| ModelError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        candle_core::safetensors::save(&tensors, dir.join(PEFT_WEIGHTS))?;
        let text = serde_json::to_string_pretty(&config)
            .map_err(|e| ModelError::Other(format!("adapter config: {e}")))?;
        let cfg_path = dir.join(PEFT_CONFIG);
        std::fs::write(&cfg_path, text + "\n").map_err(io(&cfg_path))?;
        Ok(())
    }

    /// Reads an adapter in PEFT's layout from `dir` (as [`Adapter::save_peft`] writes it,
    /// or as PEFT saves a LoRA adapter of this model): every `lora_A`/`lora_B` pair must
    /// name a projection of `projections`.
    pub fn load_peft(dir: &std::path::Path, projections: &[ProjInfo]) -> Result<Adapter> {
        let cfg_path = dir.join(PEFT_CONFIG);
        let text = std::fs::read_to_string(&cfg_path)
            .map_err(|e| ModelError::Input(format!("{}: {e}", cfg_path.display())))?;
        let cfg: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::Input(format!("{}: {e}", cfg_path.display())))?;
        let rank = cfg["r"]
            .as_u64()
            .ok_or_else(|| ModelError::Input(format!("{}: no integer `r`", cfg_path.display())))?
            as usize;
        let alpha = cfg["lora_alpha"].as_f64().ok_or_else(|| {
            ModelError::Input(format!("{}: no number `lora_alpha`", cfg_path.display()))
        })?;
        let w_path = dir.join(PEFT_WEIGHTS);
        let tensors = candle_core::safetensors::load(&w_path, &candle_core::Device::Cpu)
            .map_err(|e| ModelError::Input(format!("{}: {e}", w_path.display())))?;
        let mut pairs = BTreeMap::new();
        for name in tensors.keys() {
            let Some(path) = name
                .strip_prefix("base_model.model.")
                .and_then(|n| n.strip_suffix(".lora_A.weight"))
            else {
                if !name.ends_with(".lora_B.weight") {
                    return Err(ModelError::Input(format!(
                        "{}: unexpected tensor `{name}` (LoRA A/B weights only)",
                        w_path.display()
                    )));
                }
                continue;
            };
            let info = projections.iter().find(|p| p.path == path).ok_or_else(|| {
                ModelError::Input(format!(
                    "{}: `{name}` names no projection of this model",
                    w_path.display()
                ))
            })?;
            let b = tensors.get(&peft_name(path, "B")).ok_or_else(|| {
                ModelError::Input(format!("{}: `{name}` has no lora_B", w_path.display()))
            })?;
            let f32 = |t: &Tensor| t.to_dtype(DType::F32);
            pairs.insert(
                (info.layer, info.proj),
                LoraPair {
                    a: f32(&tensors[name])?,
                    b: f32(b)?,
                },
            );
        }
        if pairs.is_empty() {
            return Err(ModelError::Input(format!(
                "{}: no LoRA weights",
                w_path.display()
            )));
        }
        let adapter = Adapter {
            rank,
            alpha,
            pairs,
            dropout: None,
        };
        adapter.check(projections)?;
        Ok(adapter)
    }
}
