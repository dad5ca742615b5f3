//! Spec → plan: a topologically ordered list of stage instances, each with a
//! fingerprint over exactly what it declares. Environment checks (model
//! available, layers in range, dataset files present) happen here, before
//! any stage runs, and are reported like spec errors (file:line:col).

pub mod checks;
pub mod env;
pub mod fingerprint;
pub mod lockfile;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::spec::{
    self, Dataset, DatasetRef, Diagnostic, Diagnostics, FieldPath, Layers, Method, PromptFormat,
    Spec, Stage, StageKind, StageSpec,
};
pub use env::{
    BuiltinStore, DatasetLocation, EnvError, Environment, LocalEnvironment, ModelFacts, ModelProbe,
    NoModelRuntime,
};

/// A dataset as a stage reads it: its validated spec, where its bytes are, their hash.
#[derive(Debug, Clone)]
pub struct ResolvedDataset {
    pub dataset: Dataset,
    /// Where the run reads the bytes: a built-in embedded in the binary, an absolute (or
    /// working-directory-relative) file path, or a URL.
    pub location: steerbench_data::Source,
    /// Hex blake3 of exactly the bytes at `location` when the plan was built; the loader
    /// refuses other bytes.
    pub hash: String,
    /// URL sources only: hex sha256 of the bytes (provenance; what pins hold).
    pub sha256: Option<String>,
}

/// What a dataset contributes to a fingerprint: its content and how it is read,
/// never where it lives.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetInput {
    pub hash: String,
    pub format: spec::Format,
    /// Role → record field for the format's roles; `id` and `category` only when overridden
    /// (so fingerprints of datasets that keep the defaults are what they were before those
    /// overrides existed).
    pub fields: BTreeMap<String, String>,
    pub split: spec::SplitFractions,
    pub limit: Option<usize>,
    pub window_tokens: Option<usize>,
    /// icl_task datasets only (absent otherwise, so other fingerprints are unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<steerbench_data::IclTemplate>,
    /// `as` (absent when not given, so other fingerprints are unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_as: Option<spec::Format>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelInput {
    pub id: String,
    pub weight_hash: String,
    /// The dtype the weights are held in; absent for f32, so the fingerprints of f32 runs
    /// are those from before `dtype` existed (their caches stay valid).
    #[serde(skip_serializing_if = "is_f32")]
    pub dtype: spec::Dtype,
}

fn is_f32(d: &spec::Dtype) -> bool {
    *d == spec::Dtype::F32
}

/// Everything a stage's fingerprint is computed from (also written to its manifest).
#[derive(Debug, Clone, Serialize)]
pub struct FingerprintInputs {
    pub kind: StageKind,
    pub kind_version: u32,
    /// The stage's typed parameters with defaults filled in.
    pub params: serde_json::Value,
    /// Fingerprints of the stages it reads, by stage name.
    pub inputs: BTreeMap<String, String>,
    /// Datasets it reads, by dataset name.
    pub datasets: BTreeMap<String, DatasetInput>,
    pub model: Option<ModelInput>,
    pub prompt_format: Option<PromptFormat>,
    pub seed: Option<u64>,
    /// Other files it reads (e.g. a report template), by spec path → blake3.
    pub files: BTreeMap<String, String>,
}

/// One stage to run.
#[derive(Debug, Clone)]
pub struct StageInstance {
    pub name: String,
    pub kind: StageKind,
    pub params: StageSpec,
    /// Names of the stages whose outputs it reads.
    pub inputs: Vec<String>,
    /// Dataset references it reads.
    pub dataset_refs: Vec<DatasetRef>,
    /// Whether it runs the model (such stages run one at a time).
    pub uses_model: bool,
    pub fingerprint: String,
    pub fingerprint_inputs: FingerprintInputs,
}

impl StageInstance {
    /// The folder name in the run store: the first 16 hex digits.
    pub fn short_fingerprint(&self) -> &str {
        &self.fingerprint[..16]
    }
}

/// The validated, environment-checked pipeline.
#[derive(Debug, Clone)]
pub struct Plan {
    pub spec: Spec,
    pub model: Option<ModelFacts>,
    pub datasets: BTreeMap<String, ResolvedDataset>,
    /// Stages in topological order (ties keep spec order).
    pub stages: Vec<StageInstance>,
}

impl Plan {
    pub fn stage(&self, name: &str) -> Option<&StageInstance> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Names of the stages that (transitively) depend on `name`, including itself.
    pub fn dependents(&self, name: &str) -> Vec<String> {
        let mut out = vec![name.to_string()];
        for s in &self.stages {
            if s.inputs.iter().any(|i| out.contains(i)) && !out.contains(&s.name) {
                out.push(s.name.clone());
            }
        }
        out
    }
}

/// The sha256 a URL dataset must have: the spec's `sha256`, else its lock-file entry.
/// Both given and different is an error.
pub fn dataset_pin(
    ds: &Dataset,
    lock: Option<&(std::path::PathBuf, lockfile::LockFile)>,
) -> Result<Option<steerbench_data::Pin>, String> {
    let spec::Source::Url(url) = &ds.spec.source else {
        return Ok(None);
    };
    let locked = lock.and_then(|(path, l)| {
        l.datasets.get(url).map(|e| steerbench_data::Pin {
            sha256: e.sha256.to_ascii_lowercase(),
            origin: format!("the lock file {}", path.display()),
        })
    });
    let pinned = ds.spec.sha256.as_ref().map(|h| steerbench_data::Pin {
        sha256: h.to_ascii_lowercase(),
        origin: format!("the spec (`datasets.{}.sha256`)", ds.name),
    });
    match (pinned, locked) {
        (Some(p), Some(l)) if p.sha256 != l.sha256 => Err(format!(
            "the spec pins sha256 {} but {} has {} for {url}; run `steerbench lock` again or fix the pin",
            p.sha256, l.origin, l.sha256
        )),
        (Some(p), _) => Ok(Some(p)),
        (None, l) => Ok(l),
    }
}

/// Which stage kinds run the model.
fn uses_model(stage: &Stage) -> bool {
    match &stage.spec {
        StageSpec::Extract(_)
        | StageSpec::Finetune(_)
        | StageSpec::Evaluate(_)
        | StageSpec::Degradation(_) => true,
        StageSpec::Vectors(p) => p
            .methods
            .iter()
            .any(|m| matches!(m, Method::FunctionVector(_))),
        StageSpec::Report(_) => false,
    }
}

/// Builds the plan. `versions` gives each stage kind's implementation version
/// (bumping it invalidates that kind's cached outputs).
pub fn build(
    spec: Spec,
    env: &dyn Environment,
    versions: &BTreeMap<StageKind, u32>,
) -> Result<Plan, Diagnostics> {
    let mut diags: Vec<Diagnostic> = Vec::new();

    for s in &spec.stages {
        if !versions.contains_key(&s.spec.kind()) {
            let path = FieldPath::root()
                .key("stages")
                .key(&s.name)
                .key(s.spec.kind().name());
            diags.push(spec.diagnostic(
                path,
                format!(
                    "stage kind `{}` is not available in this build of steerbench",
                    s.spec.kind()
                ),
            ));
        }
    }

    let model = if spec.stages.iter().any(uses_model) {
        match env.model_facts(&spec.model) {
            Ok(f) => Some(f),
            Err(e) => {
                diags.push(spec.diagnostic(
                    FieldPath::root().key("model"),
                    format!("model unavailable: {e}"),
                ));
                None
            }
        }
    } else {
        None
    };

    let lock = if spec
        .datasets
        .iter()
        .any(|d| matches!(d.spec.source, spec::Source::Url(_)))
    {
        let path = lockfile::lock_path(std::path::Path::new(&spec.file));
        match lockfile::LockFile::read(&path) {
            Ok(l) => l.map(|l| (path, l)),
            Err(e) => {
                diags.push(spec.diagnostic(FieldPath::root(), e));
                None
            }
        }
    } else {
        None
    };
    let mut datasets = BTreeMap::new();
    for ds in &spec.datasets {
        let at = FieldPath::root().key("datasets").key(&ds.name);
        let pin = match dataset_pin(ds, lock.as_ref()) {
            Ok(p) => p,
            Err(e) => {
                diags.push(spec.diagnostic(at.key("sha256"), e));
                continue;
            }
        };
        match env.dataset(&ds.spec.source, &spec.base_dir, pin.as_ref()) {
            Ok(found) => {
                datasets.insert(
                    ds.name.clone(),
                    ResolvedDataset {
                        dataset: ds.clone(),
                        location: found.location,
                        hash: found.hash,
                        sha256: found.sha256,
                    },
                );
            }
            Err(e) => {
                let message = match ds.spec.source {
                    spec::Source::Url(_) => format!("dataset `{}`: {e}", ds.name),
                    _ => e.to_string(),
                };
                diags.push(spec.diagnostic(at.key("source"), message));
            }
        }
    }

    let mut files: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for s in &spec.stages {
        if let StageSpec::Report(p) = &s.spec {
            if let Some(t) = &p.template {
                let full = crate::spec::resolve_path(&spec.base_dir, t);
                match env.file_hash(&full) {
                    Ok(h) => {
                        files
                            .entry(s.name.clone())
                            .or_default()
                            .insert(t.display().to_string(), h);
                    }
                    Err(e) => diags.push(
                        spec.diagnostic(
                            FieldPath::root()
                                .key("stages")
                                .key(&s.name)
                                .key("report")
                                .key("template"),
                            format!("report template: {e}"),
                        ),
                    ),
                }
            }
        }
    }

    if let Some(m) = &model {
        checks::lengths_in_context(&spec, m, &mut diags);
        for s in &spec.stages {
            check_layers(&spec, s, m, &mut diags);
            check_lora_modules(&spec, s, m, &mut diags);
            checks::steered_layers_extracted(&spec, s, m, &mut diags);
            checks::indices_in_context(&spec, s, m, &mut diags);
        }
    }
    for s in &spec.stages {
        checks::template_parses(&spec, s, &mut diags);
    }
    // Parsed here, with the stages' own loader, so a bad record stops the run before
    // any model compute.
    checks::datasets(&spec, &datasets, &mut diags);

    if !diags.is_empty() {
        diags.sort_by_key(|d| (d.pos.line, d.pos.col));
        return Err(Diagnostics(diags));
    }

    let order = topo_order(&spec);
    let mut instances: Vec<StageInstance> = Vec::new();
    for i in order {
        let s = &spec.stages[i];
        let inputs: Vec<String> = {
            let mut v: Vec<String> = spec::stage_refs(s)
                .iter()
                .map(|r| r.name.to_string())
                .collect();
            v.dedup();
            v
        };
        let dataset_refs: Vec<DatasetRef> =
            spec::dataset_refs(s).iter().map(|r| r.r.clone()).collect();
        let uses_model = uses_model(s);
        let mut ds_inputs = BTreeMap::new();
        for r in &dataset_refs {
            let rd = &datasets[&r.dataset];
            ds_inputs.insert(
                r.dataset.clone(),
                DatasetInput {
                    hash: rd.hash.clone(),
                    format: rd.dataset.spec.format,
                    fields: fingerprint_fields(&rd.dataset.fields),
                    split: rd.dataset.spec.split,
                    limit: rd.dataset.spec.limit,
                    window_tokens: rd.dataset.window_tokens(),
                    template: rd.dataset.icl_template(),
                    read_as: rd.dataset.spec.read_as,
                },
            );
        }
        let input_fps: BTreeMap<String, String> = inputs
            .iter()
            .map(|n| {
                let fp = instances
                    .iter()
                    .find(|x| &x.name == n)
                    .map(|x| x.fingerprint.clone());
                (n.clone(), fp.expect("topological order puts inputs first"))
            })
            .collect();
        let reads_data = !dataset_refs.is_empty();
        let fi = FingerprintInputs {
            kind: s.spec.kind(),
            kind_version: versions[&s.spec.kind()],
            params: serde_json::to_value(&s.spec).expect("stage params serialize"),
            inputs: input_fps,
            datasets: ds_inputs,
            model: if uses_model {
                model.as_ref().map(|m| ModelInput {
                    id: m.id.clone(),
                    weight_hash: m.weight_hash.clone(),
                    dtype: spec.dtype,
                })
            } else {
                None
            },
            prompt_format: (uses_model || reads_data).then_some(spec.prompt_format),
            seed: (uses_model || reads_data).then_some(spec.seed),
            files: files.remove(&s.name).unwrap_or_default(),
        };
        instances.push(StageInstance {
            name: s.name.clone(),
            kind: s.spec.kind(),
            params: s.spec.clone(),
            inputs,
            dataset_refs,
            uses_model,
            fingerprint: fingerprint::fingerprint_of(&fi),
            fingerprint_inputs: fi,
        });
    }
    Ok(Plan {
        spec,
        model,
        datasets,
        stages: instances,
    })
}

/// The field mapping as it enters a fingerprint (see [`DatasetInput::fields`]).
fn fingerprint_fields(fields: &steerbench_data::FieldMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = fields
        .roles()
        .into_iter()
        .map(|(role, field)| (role.to_string(), field.to_string()))
        .collect();
    let (id, category) = fields.id_and_category();
    for ((role, default), field) in steerbench_data::COMMON_ROLES.iter().zip([id, category]) {
        if field != *default {
            out.insert(role.to_string(), field.to_string());
        }
    }
    out
}

fn check_layers(spec: &Spec, s: &Stage, m: &ModelFacts, diags: &mut Vec<Diagnostic>) {
    let at = FieldPath::root()
        .key("stages")
        .key(&s.name)
        .key(s.spec.kind().name());
    let mut check_list = |layers: &Layers, path: FieldPath| {
        if let Layers::List(v) = layers {
            for (i, &l) in v.iter().enumerate() {
                if l >= m.n_layers {
                    let p = if v.len() == 1 {
                        path.clone()
                    } else {
                        path.index(i)
                    };
                    diags.push(spec.diagnostic(p, layer_message(l, m)));
                }
            }
        }
    };
    match &s.spec {
        StageSpec::Finetune(p) => {
            for (i, meth) in p.methods.iter().enumerate() {
                let here = at.key("methods").index(i).key(meth.name());
                check_list(&meth.params().layers, here.key("layers"));
            }
        }
        StageSpec::Extract(p) => check_list(&p.layers, at.key("layers")),
        StageSpec::Evaluate(p) => check_list(&p.layers, at.key("layers")),
        StageSpec::Degradation(p) => {
            if let Some(l) = &p.layers {
                check_list(l, at.key("layers"))
            }
        }
        StageSpec::Vectors(p) => {
            for (i, meth) in p.methods.iter().enumerate() {
                if let Method::FunctionVector(fv) = meth {
                    for (j, &l) in fv.layer.0.iter().enumerate() {
                        if l >= m.n_layers {
                            let mut path = at
                                .key("methods")
                                .index(i)
                                .key("function_vector")
                                .key("layer");
                            if fv.layer.0.len() > 1 {
                                path = path.index(j);
                            }
                            diags.push(spec.diagnostic(path, layer_message(l, m)));
                        }
                    }
                }
            }
        }
        StageSpec::Report(_) => {}
    }
}

/// A `finetune` stage's LoRA modules against the projections the architecture has
/// (known from its config; unchecked when the probe does not say).
fn check_lora_modules(spec: &Spec, s: &Stage, m: &ModelFacts, diags: &mut Vec<Diagnostic>) {
    let StageSpec::Finetune(p) = &s.spec else {
        return;
    };
    if m.lora_modules.is_empty() {
        return;
    }
    let at = FieldPath::root()
        .key("stages")
        .key(&s.name)
        .key(s.spec.kind().name());
    for (i, meth) in p.methods.iter().enumerate() {
        let here = at.key("methods").index(i).key(meth.name());
        for (j, name) in meth.params().modules.iter().enumerate() {
            let known = steerbench_model::Proj::parse(name).is_some();
            if known && !m.lora_modules.contains(name) {
                diags.push(spec.diagnostic(
                    here.key("modules").index(j),
                    format!(
                        "model `{}` has no `{name}` projection to adapt; its blocks have {}",
                        m.id,
                        m.lora_modules.join(", ")
                    ),
                ));
            }
        }
    }
}

fn layer_message(l: usize, m: &ModelFacts) -> String {
    format!(
        "layer {l} does not exist: the model has {} layers (0..{})",
        m.n_layers,
        m.n_layers.saturating_sub(1)
    )
}

/// Kahn's algorithm; among ready stages the one declared first runs first.
/// Validation has already rejected cycles.
fn topo_order(spec: &Spec) -> Vec<usize> {
    let n = spec.stages.len();
    let deps: Vec<Vec<usize>> = spec
        .stages
        .iter()
        .map(|s| {
            spec::stage_refs(s)
                .iter()
                .filter_map(|r| spec.stages.iter().position(|t| t.name == r.name))
                .collect()
        })
        .collect();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let next = (0..n).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => break,
        }
    }
    order
}
