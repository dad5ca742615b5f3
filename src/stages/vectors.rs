//! `vectors`: steering objects per method and layer, from an `extract` stage's
//! activations. Every method is a pure function in steerbench-steering; this file
//! only groups rows, calls them and writes the results.
//!
//! Writes `vectors.parquet` (method, layer, kind, params_hash, norm_raw, norm, vector,
//! info), `maps.safetensors` (affine matrices and MLP weights, which are too large for
//! a table), `vectors.safetensors` and one llama.cpp control vector per additive
//! method under `control_vectors/<method>.gguf`; with `function_vector`, also
//! `fv_heads.parquet` (rank, layer, head, mean_indirect_effect), the full head ranking.
//! `function_vector` is the one method that runs the model here (ICL prompts and head
//! patching); the others are pure functions of the extract stage's activations.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
use steerbench_steering::interop::safetensors::{write_vectors_safetensors, NamedVector};
use steerbench_steering::methods::function_vector as fv;
use steerbench_steering::methods::{affine, caa, icv, mlp, normalize, pca, probe, random};
use steerbench_steering::{ControlVector, Matrix, ModelFingerprint};

use super::common::{self, Ctx};
use super::icl;
use crate::exec::{StageOutputs, StageRunner};
use crate::plan::fingerprint::fingerprint_of;
use crate::spec::{AffineKind, Method, Normalize, StageSpec, VectorsParams};
use crate::tables::{
    read_table, ActivationRow, FvHeadRow, MethodKind, NormRow, VectorKind as Kind, VectorRow,
};

pub struct Vectors;

/// Paired activations of one layer: rows aligned by example.
struct LayerActs {
    pos: Matrix,
    neg: Matrix,
}

struct Row {
    method: MethodKind,
    layer: u32,
    kind: Kind,
    params_hash: String,
    norm_raw: f32,
    vector: Vec<f32>,
    info: serde_json::Value,
}

impl StageRunner<common::Services> for Vectors {
    fn version(&self) -> u32 {
        2
    }

    fn run(&self, ctx: &Ctx<'_>) -> Result<StageOutputs> {
        let StageSpec::Vectors(p) = ctx.params() else {
            bail!("not a vectors stage")
        };
        run(ctx, p)
    }
}

/// Reads resid_post activations of an extract stage: layer → paired matrices, and
/// layer → median residual norm.
fn read_acts(dir: &std::path::Path) -> Result<(BTreeMap<usize, LayerActs>, HashMap<usize, f32>)> {
    let acts: Vec<ActivationRow> = read_table(dir)?;
    // layer → (pos, neg), each example id → vector.
    type Sides = (BTreeMap<String, Vec<f32>>, BTreeMap<String, Vec<f32>>);
    let mut by_layer: BTreeMap<usize, Sides> = BTreeMap::new();
    for a in acts.into_iter().filter(|a| a.site == "resid_post") {
        let e = by_layer.entry(a.layer as usize).or_default();
        let side = if a.side == "pos" { &mut e.0 } else { &mut e.1 };
        side.insert(a.example_id, a.vector);
    }
    if by_layer.is_empty() {
        bail!("the extract stage has no resid_post activations (vectors steer the residual stream: add `resid_post` to its `sites`)");
    }
    let mut out = BTreeMap::new();
    for (l, (pos, neg)) in by_layer {
        let keys: Vec<&String> = pos.keys().filter(|k| neg.contains_key(*k)).collect();
        if keys.len() < 2 {
            bail!("layer {l}: fewer than 2 complete pos/neg pairs");
        }
        let p: Vec<Vec<f32>> = keys.iter().map(|k| pos[*k].clone()).collect();
        let n: Vec<Vec<f32>> = keys.iter().map(|k| neg[*k].clone()).collect();
        out.insert(
            l,
            LayerActs {
                pos: Matrix::from_rows(&p)?,
                neg: Matrix::from_rows(&n)?,
            },
        );
    }
    let norms = read_table::<NormRow>(dir)?
        .into_iter()
        .filter(|n| n.site == "resid_post")
        .map(|n| (n.layer as usize, n.median_norm))
        .collect();
    Ok((out, norms))
}

fn run(ctx: &Ctx<'_>, p: &VectorsParams) -> Result<StageOutputs> {
    let dir = ctx.input_dir(&p.activations)?;
    let (acts, norms) =
        read_acts(dir).with_context(|| format!("reading activations of `{}`", p.activations))?;
    let progress = ctx.progress();
    progress.set_total((p.methods.len() * acts.len()) as u64);
    let mut rows: Vec<Row> = Vec::new();
    let mut maps: HashMap<String, Tensor> = HashMap::new();
    let mut summary = StageOutputs::default();
    for method in &p.methods {
        let name = method.name().to_string();
        let kind_of_method = MethodKind::from(method);
        let params_hash = fingerprint_of(&method_params_json(method))[..16].to_string();
        progress.set_message(name.clone());
        if let Method::Icv(ip) = method {
            let diffs: Vec<Matrix> = acts
                .values()
                .map(|a| a.pos.sub(&a.neg))
                .collect::<std::result::Result<_, _>>()?;
            let dirs = icv::icv(&diffs)?;
            for ((&l, _), v) in acts.iter().zip(dirs) {
                let v: Vec<f32> = v.iter().map(|x| x * ip.strength as f32).collect();
                let n = steerbench_steering::norm(&v);
                rows.push(Row {
                    method: kind_of_method,
                    layer: l as u32,
                    kind: Kind::Icv,
                    params_hash: params_hash.clone(),
                    norm_raw: n,
                    vector: v,
                    info: serde_json::json!({}),
                });
                progress.inc(1);
            }
            continue;
        }
        if let Method::FunctionVector(fp) = method {
            let (fv_rows, heads) = function_vector(ctx, fp, &name, &params_hash)
                .context("method `function_vector`")?;
            let ranking: Vec<FvHeadRow> = heads
                .iter()
                .enumerate()
                .map(|(i, h)| FvHeadRow {
                    rank: i as u32 + 1,
                    layer: h.head.layer as u32,
                    head: h.head.head as u32,
                    mean_indirect_effect: h.mean_indirect_effect,
                })
                .collect();
            ctx.write_table(&ranking)?;
            rows.extend(fv_rows);
            progress.inc(acts.len() as u64);
            continue;
        }
        for (&l, a) in &acts {
            let (kind, vector, info) = match method {
                Method::Caa => (
                    Kind::Additive,
                    caa::caa(&a.pos, &a.neg)?,
                    serde_json::json!({}),
                ),
                Method::Pca => {
                    let d = pca::pca_diff(&a.pos, &a.neg)?;
                    (
                        Kind::Additive,
                        d.direction,
                        serde_json::json!({ "explained": d.explained }),
                    )
                }
                Method::PcaCenter => {
                    let d = pca::pca_center(&a.pos, &a.neg)?;
                    (
                        Kind::Additive,
                        d.direction,
                        serde_json::json!({ "explained": d.explained }),
                    )
                }
                Method::Probe(pp) => {
                    let cfg = probe::ProbeConfig {
                        l2: pp.l2,
                        ..Default::default()
                    };
                    let r = probe::probe_pairs(&a.pos, &a.neg, &cfg)?;
                    (
                        Kind::Additive,
                        r.direction,
                        serde_json::json!({ "train_accuracy": r.train_accuracy }),
                    )
                }
                Method::Random(s) => {
                    let target = steerbench_steering::norm(&caa::caa(&a.pos, &a.neg)?);
                    let seed = s.seed.wrapping_mul(1_000_003).wrapping_add(l as u64);
                    (
                        Kind::Additive,
                        random::random_direction(a.pos.cols, target, seed)?,
                        serde_json::json!({ "seed": seed }),
                    )
                }
                Method::Shuffled(s) => {
                    let seed = s.seed.wrapping_mul(1_000_003).wrapping_add(l as u64);
                    (
                        Kind::Additive,
                        caa::shuffled_caa(&a.pos, &a.neg, seed)?,
                        serde_json::json!({ "seed": seed }),
                    )
                }
                Method::Ablation => (
                    Kind::Ablation,
                    caa::caa(&a.pos, &a.neg)?,
                    serde_json::json!({}),
                ),
                Method::Affine(ap) => {
                    let map = match ap.kind {
                        AffineKind::MeanShiftProjection => {
                            affine::mean_shift_projection(&a.pos, &a.neg, 1)?
                        }
                        AffineKind::GaussianTransport => affine::gaussian_transport(
                            &a.pos,
                            &a.neg,
                            affine::Shrinkage::LedoitWolf,
                        )?,
                    };
                    let d = map.dim();
                    maps.insert(
                        format!("{name}.layer{l}.matrix"),
                        Tensor::from_vec(map.matrix.data.clone(), (d, d), &Device::Cpu)?,
                    );
                    maps.insert(
                        format!("{name}.layer{l}.bias"),
                        Tensor::from_vec(map.bias.clone(), d, &Device::Cpu)?,
                    );
                    // The vector column holds the map's effect on the negative-class mean.
                    let mean_neg = a.neg.col_mean()?;
                    let moved = map.apply(&mean_neg)?;
                    let shift: Vec<f32> = moved.iter().zip(&mean_neg).map(|(x, y)| x - y).collect();
                    (
                        Kind::Affine,
                        shift,
                        serde_json::json!({ "kind": format!("{:?}", ap.kind) }),
                    )
                }
                Method::Mlp(mp) => {
                    let cfg = mlp::MlpConfig {
                        hidden: mp.hidden,
                        epochs: mp.epochs,
                        lr: mp.lr,
                        seed: mp.seed,
                        ..Default::default()
                    };
                    let m = mlp::train_mlp(&a.pos, &a.neg, &cfg)?;
                    let d = m.dim;
                    maps.insert(
                        format!("{name}.layer{l}.w1"),
                        Tensor::from_vec(m.w1.data.clone(), (m.hidden, d), &Device::Cpu)?,
                    );
                    maps.insert(
                        format!("{name}.layer{l}.w2"),
                        Tensor::from_vec(m.w2.data.clone(), (d, m.hidden), &Device::Cpu)?,
                    );
                    maps.insert(
                        format!("{name}.layer{l}.b1"),
                        Tensor::from_vec(m.b1.clone(), m.hidden, &Device::Cpu)?,
                    );
                    maps.insert(
                        format!("{name}.layer{l}.b2"),
                        Tensor::from_vec(m.b2.clone(), d, &Device::Cpu)?,
                    );
                    maps.insert(
                        format!("{name}.layer{l}.in_mean"),
                        Tensor::from_vec(m.in_mean.clone(), d, &Device::Cpu)?,
                    );
                    let final_loss = *m.losses.last().unwrap_or(&f32::NAN);
                    summary.summary.insert(
                        format!("{name}_layer{l}_final_loss"),
                        serde_json::json!(final_loss),
                    );
                    let mean_neg = a.neg.col_mean()?;
                    let shift = m.delta(&mean_neg)?;
                    let info = serde_json::json!({
                        "hidden": m.hidden, "activation": m.activation, "in_scale": m.in_scale,
                        "out_scale": m.out_scale, "losses": m.losses,
                    });
                    (Kind::Mlp, shift, info)
                }
                Method::Icv(_) | Method::FunctionVector(_) => unreachable!("handled above"),
            };
            let norm_raw = steerbench_steering::norm(&vector);
            rows.push(Row {
                method: kind_of_method,
                layer: l as u32,
                kind,
                params_hash: params_hash.clone(),
                norm_raw,
                vector,
                info,
            });
            progress.inc(1);
        }
    }

    // Normalise additive vectors so multipliers mean the same across methods and layers.
    let mut out_vecs = Vec::with_capacity(rows.len());
    let mut out_norms = Vec::with_capacity(rows.len());
    for r in &rows {
        let (v, n) = if matches!(r.kind, Kind::Additive) {
            let mode = match p.normalize {
                Normalize::Raw => normalize::Normalize::Raw,
                Normalize::Unit => normalize::Normalize::Unit,
                Normalize::ResidNorm => normalize::Normalize::ResidNorm(
                    *norms
                        .get(&(r.layer as usize))
                        .ok_or_else(|| anyhow!("no residual norm for layer {}", r.layer))?,
                ),
            };
            let (v, _) = normalize::normalize(&r.vector, mode)?;
            let n = steerbench_steering::norm(&v);
            (v, n)
        } else {
            (r.vector.clone(), r.norm_raw)
        };
        out_vecs.push(v);
        out_norms.push(n);
    }

    let table: Vec<VectorRow> = rows
        .iter()
        .zip(out_vecs.iter().zip(&out_norms))
        .map(|(r, (v, n))| VectorRow {
            method: r.method,
            layer: r.layer,
            kind: r.kind,
            params_hash: r.params_hash.clone(),
            norm_raw: r.norm_raw,
            norm: *n,
            vector: v.clone(),
            info: r.info.to_string(),
        })
        .collect();
    // A NaN in the activations (or a degenerate method fit) must not become a vector
    // that silently turns every steered score NaN downstream.
    if let Some(bad) = table
        .iter()
        .find(|r| r.vector.iter().any(|x| !x.is_finite()))
    {
        bail!(
            "method `{}` at layer {} produced a vector with non-finite values (NaN or infinity); check the extract stage's activations",
            bad.method,
            bad.layer
        );
    }
    ctx.write_table(&table)?;
    if !maps.is_empty() {
        candle_core::safetensors::save(&maps, ctx.out_dir().join("maps.safetensors"))?;
    }

    // Interop exports of the additive vectors.
    // The model the activations came from, as the extract stage recorded it.
    let acts_summary = ctx.input_manifest(&p.activations)?.summary;
    let fact = |k: &str| {
        acts_summary
            .get(k)
            .cloned()
            .ok_or_else(|| anyhow!("extract stage `{}` did not record `{k}`", p.activations))
    };
    let fp = ModelFingerprint {
        hidden_size: fact("hidden_size")?.as_u64().unwrap_or(0) as usize,
        n_layers: fact("n_layers")?.as_u64().unwrap_or(0) as usize,
        model_hash: fact("model_hash")?.as_str().unwrap_or("").to_string(),
    };
    let named: Vec<NamedVector> = rows
        .iter()
        .zip(&out_vecs)
        .filter(|(r, _)| matches!(r.kind, Kind::Additive | Kind::FixedAdditive))
        .map(|(r, v)| NamedVector {
            method: r.method.to_string(),
            layer: r.layer as usize,
            vector: v.clone(),
        })
        .collect();
    if !named.is_empty() {
        write_vectors_safetensors(&ctx.out_dir().join("vectors.safetensors"), &named, &fp)?;
        let cv_dir = ctx.out_dir().join("control_vectors");
        std::fs::create_dir_all(&cv_dir)?;
        let hint = ctx.model().0.to_string();
        let mut by_method: BTreeMap<&str, BTreeMap<usize, Vec<f32>>> = BTreeMap::new();
        for v in &named {
            // llama.cpp's direction.<k> is added to the output of block k; k = 0 is not allowed.
            if v.layer >= 1 {
                by_method
                    .entry(&v.method)
                    .or_default()
                    .insert(v.layer, v.vector.clone());
            }
        }
        for (m, directions) in by_method {
            ControlVector {
                model_hint: hint.clone(),
                directions,
            }
            .write_file(&cv_dir.join(format!("{m}.gguf")))?;
        }
    }
    summary.summary.insert("rows".into(), rows.len().into());
    Ok(summary)
}

/// Function Vectors (Todd et al.): mean head outputs over clean k-shot prompts, heads
/// ranked by the average indirect effect of patching their mean into shuffled-label
/// prompts, and the top-K heads' contributions summed. Returns one vector row per layer
/// it is added at (the same vector) and the full head ranking (best first).
fn function_vector(
    ctx: &Ctx<'_>,
    fp: &crate::spec::FunctionVectorParams,
    name: &str,
    params_hash: &str,
) -> Result<(Vec<Row>, Vec<fv::HeadScore>)> {
    use steerbench_eval::function_vector as fve;
    let lm = common::model(ctx)?;
    let n_layers = lm.model.config().n_layers;
    let head_layers: Vec<usize> = match &fp.head_layers {
        crate::spec::Layers::All => (0..n_layers).collect(),
        crate::spec::Layers::List(v) => v.clone(),
    };
    if let Some(bad) = head_layers.iter().find(|&&l| l >= n_layers) {
        bail!("head_layers: layer {bad} does not exist (the model has {n_layers})");
    }
    let pool = icl::icl_records(common::records(ctx, &fp.dataset)?, "function_vector")?;
    let template = ctx
        .dataset(&fp.dataset)?
        .dataset
        .icl_template()
        .ok_or_else(|| anyhow!("dataset `{}` is not icl_task", fp.dataset))?;
    let queries = &pool[..fp.prompts.min(pool.len())];
    let how = |shuffle_labels| icl::IclPrompts {
        pool: &pool,
        shots: fp.shots,
        shuffle_labels,
        template: &template,
        style: common::style(ctx),
        seed: ctx.seed(),
    };
    let clean = icl::icl_items(lm, queries, &how(false))?;
    let corrupted = icl::icl_items(lm, queries, &how(true))?;
    let progress = ctx.progress();
    progress.set_message(format!(
        "{name}: mean head outputs over {} prompts",
        clean.len()
    ));
    let seqs: Vec<_> = clean.iter().map(|c| c.prompt.clone()).collect();
    let means = fve::mean_head_outputs(&lm.model, &seqs, &head_layers, 8, |_| {})?;
    progress.set_message(format!(
        "{name}: indirect effects of {} heads on {} shuffled-label prompts",
        means.len(),
        corrupted.len()
    ));
    let pairs: Vec<_> = corrupted
        .iter()
        .map(|c| (c.prompt.clone(), c.target))
        .collect();
    let (heads, effects) = fve::indirect_effects(&lm.model, &pairs, &means, &head_layers, |_| {})?;
    let ranking = fv::rank_heads(&effects, &heads)?;
    let k = fp.top_k.min(ranking.len());
    let top: Vec<fv::HeadId> = ranking[..k].iter().map(|s| s.head).collect();
    let contributions = fve::head_contributions(&lm.model, &top, &means, seqs[0].tokens[0])?;
    let v = fv::function_vector(&ranking, k, &contributions)?;
    let rows = fp.layer.0.iter().map(|&layer| Row {
        method: MethodKind::FunctionVector,
        layer: layer as u32,
        kind: Kind::FixedAdditive,
        params_hash: params_hash.to_string(),
        norm_raw: steerbench_steering::norm(&v.vector),
        vector: v.vector.clone(),
        info: serde_json::json!({
            "prompts": clean.len(),
            "shots": fp.shots,
            "heads": v.heads.iter().map(|h| serde_json::json!({
                "layer": h.head.layer, "head": h.head.head, "aie": h.mean_indirect_effect,
            })).collect::<Vec<_>>(),
        }),
    });
    Ok((rows.collect(), ranking))
}

fn method_params_json(m: &Method) -> serde_json::Value {
    match m {
        Method::Probe(p) => serde_json::json!({ "probe": p }),
        Method::Icv(p) => serde_json::json!({ "icv": p }),
        Method::FunctionVector(p) => serde_json::json!({ "function_vector": p }),
        Method::Affine(p) => serde_json::json!({ "affine": p }),
        Method::Mlp(p) => serde_json::json!({ "mlp": p }),
        Method::Random(p) => serde_json::json!({ "random": p }),
        Method::Shuffled(p) => serde_json::json!({ "shuffled": p }),
        other => serde_json::json!(other.name()),
    }
}

/// A stored steering object, rebuilt from a vectors stage's outputs.
pub struct Stored {
    pub method: MethodKind,
    pub kind: Kind,
    /// layer → vector (additive, ablation, icv: one per layer).
    pub vectors: BTreeMap<usize, Vec<f32>>,
    maps: Option<std::sync::Arc<HashMap<String, Tensor>>>,
    info: BTreeMap<usize, serde_json::Value>,
    /// A fine-tuned LoRA adapter (from a `finetune` stage) instead of vectors.
    adapter: Option<std::sync::Arc<steerbench_model::Adapter>>,
}

/// The steering objects of a vectors stage followed by the adapters of a finetune stage
/// (`evaluate` / `degradation` with `adapters:`), each a method of the sweep.
pub fn load_steerings(
    vectors: &std::path::Path,
    adapters: Option<&std::path::Path>,
    model: &steerbench_model::Model,
) -> Result<Vec<Stored>> {
    let mut out = load_stored(vectors)?;
    if let Some(dir) = adapters {
        for (method, a) in super::finetune::load_adapters(dir, model)? {
            out.push(Stored {
                method,
                kind: Kind::Additive,
                vectors: BTreeMap::new(),
                maps: None,
                info: BTreeMap::new(),
                adapter: Some(a),
            });
        }
    }
    Ok(out)
}

/// Every method of a vectors stage, in table order.
pub fn load_stored(dir: &std::path::Path) -> Result<Vec<Stored>> {
    let rows: Vec<VectorRow> = read_table(dir)?;
    let maps_path = dir.join("maps.safetensors");
    let maps = if maps_path.exists() {
        Some(std::sync::Arc::new(candle_core::safetensors::load(
            &maps_path,
            &Device::Cpu,
        )?))
    } else {
        None
    };
    let mut out: Vec<Stored> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|s| s.method != r.method) {
            out.push(Stored {
                method: r.method,
                kind: r.kind,
                vectors: BTreeMap::new(),
                maps: maps.clone(),
                info: BTreeMap::new(),
                adapter: None,
            });
        }
        let s = out.last_mut().expect("pushed above");
        s.vectors.insert(r.layer as usize, r.vector);
        s.info.insert(
            r.layer as usize,
            serde_json::from_str(&r.info).unwrap_or(serde_json::Value::Null),
        );
    }
    Ok(out)
}

impl Stored {
    /// A fine-tuned adapter (from a `finetune` stage), not vectors.
    pub fn is_adapter(&self) -> bool {
        self.adapter.is_some()
    }

    /// Whether the layer sweep applies. ICV acts on all layers at once; ablation
    /// removes the direction found at the swept layer from every layer.
    pub fn per_layer(&self) -> bool {
        self.adapter.is_none() && !matches!(self.kind, Kind::Icv | Kind::FixedAdditive)
    }

    /// Where a method that is not swept over the evaluate stage's layers runs: its own
    /// layers for function vectors; `[None]` (all layers at once) for ICV and adapters.
    pub fn fixed_layers(&self) -> Vec<Option<usize>> {
        if self.adapter.is_some() {
            return vec![None];
        }
        match self.kind {
            Kind::FixedAdditive => self.vectors.keys().map(|&l| Some(l)).collect(),
            _ => vec![None],
        }
    }

    /// The steering object at `layer` (ignored for ICV and adapters).
    pub fn steer(&self, layer: usize) -> Result<steerbench_eval::steer::Steer> {
        use steerbench_eval::steer::Steer;
        if let Some(a) = &self.adapter {
            return Ok(Steer::Lora { adapter: a.clone() });
        }
        let vec_at = |l: usize| {
            self.vectors.get(&l).cloned().ok_or_else(|| {
                anyhow!(
                    "method `{}` has no vector for layer {l} (extract that layer)",
                    self.method
                )
            })
        };
        let map = |suffix: &str| -> Result<Tensor> {
            let key = format!("{}.layer{layer}.{suffix}", self.method);
            self.maps
                .as_ref()
                .and_then(|m| m.get(&key).cloned())
                .ok_or_else(|| anyhow!("maps.safetensors lacks `{key}`"))
        };
        Ok(match self.kind {
            Kind::Additive | Kind::FixedAdditive => Steer::Add {
                layer,
                vector: vec_at(layer)?,
            },
            Kind::Ablation => Steer::Ablate {
                direction: vec_at(layer)?,
            },
            Kind::Icv => Steer::Icv {
                vectors: self.vectors.values().cloned().collect(),
            },
            Kind::Affine => {
                let m = map("matrix")?;
                let d = m.dims()[0];
                let matrix = Matrix::new(d, d, m.flatten_all()?.to_vec1::<f32>()?)?;
                Steer::Affine {
                    layer,
                    map: affine::AffineMap::new(matrix, map("bias")?.to_vec1::<f32>()?)?,
                }
            }
            Kind::Mlp => {
                let info = self
                    .info
                    .get(&layer)
                    .ok_or_else(|| anyhow!("no MLP info for layer {layer}"))?;
                let w1 = map("w1")?;
                let (hidden, d) = w1.dims2()?;
                let steer = mlp::MlpSteer {
                    dim: d,
                    hidden,
                    activation: serde_json::from_value(info["activation"].clone())?,
                    in_mean: map("in_mean")?.to_vec1::<f32>()?,
                    in_scale: info["in_scale"].as_f64().unwrap_or(1.0) as f32,
                    out_scale: info["out_scale"].as_f64().unwrap_or(1.0) as f32,
                    w1: Matrix::new(hidden, d, w1.flatten_all()?.to_vec1::<f32>()?)?,
                    b1: map("b1")?.to_vec1::<f32>()?,
                    w2: Matrix::new(d, hidden, map("w2")?.flatten_all()?.to_vec1::<f32>()?)?,
                    b2: map("b2")?.to_vec1::<f32>()?,
                    losses: Vec::new(),
                };
                Steer::Mlp {
                    layer,
                    mlp: std::sync::Arc::new(steer),
                }
            }
        })
    }
}
