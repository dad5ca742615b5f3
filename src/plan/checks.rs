//! Checks that need more than the spec text — the model's facts, the datasets'
//! records, the report template's syntax — and that still find a fault before any
//! model compute: a run refuses at plan time what it would otherwise find minutes in.

use std::collections::{BTreeMap, BTreeSet};

use steerbench_data as data;

use super::{ModelFacts, ResolvedDataset};
use crate::spec::{
    Diagnostic, FieldPath, Layers, Method, PositionSel, ReadPosition, Spec, Stage, StageSpec,
};

/// A dataset as the stages will see it: all records kept by `limit`, and the splits.
pub struct LoadedDataset {
    pub all: data::Records,
    pub splits: data::Splits,
}

/// Reads `rd`'s bytes (refusing them unless their blake3 is the plan's), parses them with
/// the dataset's field map, applies `limit` and splits with `seed`: the one path from a
/// dataset file to records, shared by planning and the stages.
pub fn load_dataset(rd: &ResolvedDataset, seed: u64) -> data::Result<LoadedDataset> {
    let spec = &rd.dataset.spec;
    let mut ds = data::load_checked(
        &rd.location,
        &rd.hash,
        &rd.dataset.fields,
        &data::LoadOptions::default(),
    )?;
    if rd.dataset.format() != rd.dataset.fields.format() {
        // `as:` (A/B questions read as open-ended or multiple-choice items).
        ds.records = data::derive_records(&ds.records, rd.dataset.format())?;
    }
    let idx = data::limit_indices(&ds.records.strata(), spec.limit, seed);
    let all = ds.records.select(&idx);
    let splits = data::split_records(&ds.records, spec.limit, &spec.split, seed)?;
    Ok(LoadedDataset { all, splits })
}

fn stage_path(s: &Stage) -> FieldPath {
    FieldPath::root()
        .key("stages")
        .key(&s.name)
        .key(s.spec.kind().name())
}

/// Every dataset a stage reads parses (each record valid, errors naming record and
/// field), and every split a stage reads has the records it needs. The records are
/// dropped afterwards: the stages read each file again, so that a file changed after
/// planning is refused by its hash (see `load_dataset`).
pub fn datasets(
    spec: &Spec,
    resolved: &BTreeMap<String, ResolvedDataset>,
    diags: &mut Vec<Diagnostic>,
) {
    let read: BTreeSet<&str> = spec
        .stages
        .iter()
        .flat_map(|s| {
            crate::spec::dataset_refs(s)
                .into_iter()
                .map(|r| r.r.dataset.as_str())
        })
        .collect();
    let mut loaded: BTreeMap<&str, LoadedDataset> = BTreeMap::new();
    for name in read {
        let Some(rd) = resolved.get(name) else {
            continue; // unresolved: already reported
        };
        match load_dataset(rd, spec.seed) {
            Ok(d) => {
                loaded.insert(name, d);
            }
            Err(e) => diags.push(spec.diagnostic(
                FieldPath::root().key("datasets").key(name),
                format!("dataset `{name}`: {e}"),
            )),
        }
    }
    for s in &spec.stages {
        for r in crate::spec::dataset_refs(s) {
            let Some(d) = loaded.get(r.r.dataset.as_str()) else {
                continue;
            };
            let (records, which) = match r.r.split {
                Some(split) => (d.splits.get(split), format!("split `{}`", split.name())),
                None => (&d.all, "dataset".to_string()),
            };
            // Vectors need pairs to contrast; every other reader needs one record.
            let need = if matches!(s.spec, StageSpec::Extract(_)) {
                2
            } else {
                1
            };
            // `tool_accuracy` scores neutral tasks (one right call among distractors).
            if let (StageSpec::Degradation(p), data::Records::ToolChoice(tasks)) =
                (&s.spec, records)
            {
                let neutral = tasks
                    .iter()
                    .filter(|t| matches!(t.kind, data::ToolTaskKind::Neutral { .. }))
                    .count();
                if p.tools.as_ref().is_some_and(|t| std::ptr::eq(t, r.r))
                    && !tasks.is_empty()
                    && neutral == 0
                {
                    diags.push(spec.diagnostic(
                        r.path.clone(),
                        format!(
                            "the {which} of `{}` has no neutral tool-choice tasks (with `correct` and `distractors`), and `tool_accuracy` scores only those: its {} task(s) are behaviour tasks (`matching` / `not_matching`), which `evaluate` scores",
                            r.r.dataset,
                            tasks.len(),
                        ),
                    ));
                }
            }
            if records.len() < need {
                diags.push(spec.diagnostic(
                    r.path.clone(),
                    format!(
                        "the {which} of `{}` has {} record(s) ({} in the dataset after `limit`), and this stage needs at least {need}: add records or change `split`",
                        r.r.dataset,
                        records.len(),
                        d.all.len(),
                    ),
                ));
            }
        }
    }
}

/// Whether a vectors stage holds vectors per extracted layer (every method but ICV,
/// which steers all layers at once, and function vectors, which have their own layers).
fn has_per_layer_vectors(methods: &[Method]) -> bool {
    methods
        .iter()
        .any(|m| !matches!(m, Method::Icv(_) | Method::FunctionVector(_)))
}

fn resolve(l: &Layers, n_layers: usize) -> Vec<usize> {
    match l {
        Layers::All => (0..n_layers).collect(),
        Layers::List(v) => v.clone(),
    }
}

/// The layers an evaluate or degradation stage steers must be layers whose activations
/// the extract stage behind its vectors read: there is no vector anywhere else.
pub fn steered_layers_extracted(
    spec: &Spec,
    s: &Stage,
    m: &ModelFacts,
    diags: &mut Vec<Diagnostic>,
) {
    let (vectors, layers) = match &s.spec {
        StageSpec::Evaluate(p) => (&p.vectors, Some(&p.layers)),
        StageSpec::Degradation(p) => (&p.vectors, p.layers.as_ref()),
        _ => return,
    };
    let Some(layers) = layers else { return };
    let Some(Stage {
        spec: StageSpec::Vectors(v),
        ..
    }) = spec.stage(vectors)
    else {
        return;
    };
    if !has_per_layer_vectors(&v.methods) {
        return;
    }
    let Some(Stage {
        spec: StageSpec::Extract(e),
        ..
    }) = spec.stage(&v.activations)
    else {
        return;
    };
    let extracted: BTreeSet<usize> = resolve(&e.layers, m.n_layers).into_iter().collect();
    let path = stage_path(s).key("layers");
    let missing = |l: &usize| !extracted.contains(l) && *l < m.n_layers;
    let shown: Vec<String> = extracted.iter().map(usize::to_string).collect();
    match layers {
        Layers::All => {
            let absent: Vec<String> = (0..m.n_layers)
                .filter(missing)
                .map(|l| l.to_string())
                .collect();
            if !absent.is_empty() {
                diags.push(spec.diagnostic(
                    path,
                    format!(
                        "`all` includes layers {} that extract stage `{}` does not read (it reads {}): there are no vectors there; list the extracted layers, or extract `all`",
                        absent.join(", "),
                        v.activations,
                        shown.join(", ")
                    ),
                ));
            }
        }
        Layers::List(list) => {
            for (i, l) in list.iter().enumerate() {
                if missing(l) {
                    let p = if list.len() == 1 {
                        path.clone()
                    } else {
                        path.index(i)
                    };
                    diags.push(spec.diagnostic(
                        p,
                        format!(
                            "layer {l} is not read by extract stage `{}` (it reads {}): there is no vector for it",
                            v.activations,
                            shown.join(", ")
                        ),
                    ));
                }
            }
        }
    }
}

/// Token indices that no sequence of this model can have (at or past its context) are
/// faults of the spec, whatever the data.
pub fn indices_in_context(spec: &Spec, s: &Stage, m: &ModelFacts, diags: &mut Vec<Diagnostic>) {
    let ctx = m.context_length as i64;
    if ctx == 0 {
        return;
    }
    let at = stage_path(s);
    let mut check = |ix: &[i64], path: FieldPath, negative_ok: bool| {
        for (i, &x) in ix.iter().enumerate() {
            let beyond = if negative_ok {
                x >= ctx || x < -ctx
            } else {
                x >= ctx
            };
            if beyond {
                diags.push(spec.diagnostic(
                    path.index(i),
                    format!(
                        "token index {x} is beyond the model's context of {ctx} tokens: no sequence has it"
                    ),
                ));
            }
        }
    };
    match &s.spec {
        StageSpec::Extract(p) => {
            if let ReadPosition::Indices(ix) = &p.read_position {
                check(ix, at.key("read_position").key("indices"), true);
            }
        }
        StageSpec::Evaluate(p) => {
            for (i, sel) in p.positions.0.iter().enumerate() {
                if let PositionSel::Indices(ix) = sel {
                    check(ix, at.key("positions").index(i).key("indices"), false);
                }
            }
        }
        _ => {}
    }
}

/// A report template given in the spec parses (a syntax error would otherwise surface
/// only when the report stage runs, after every model stage).
pub fn template_parses(spec: &Spec, s: &Stage, diags: &mut Vec<Diagnostic>) {
    let StageSpec::Report(p) = &s.spec else {
        return;
    };
    let Some(t) = &p.template else { return };
    let full = crate::spec::resolve_path(&spec.base_dir, t);
    if !full.is_file() {
        return; // reported by the hashing step with the I/O error
    }
    if let Err(e) = steerbench_report::template::environment(Some(&full)) {
        diags.push(spec.diagnostic(
            stage_path(s).key("template"),
            format!("report template {}: {e}", full.display()),
        ));
    }
}

/// A perplexity window or an item limit longer than the model's context cannot be run.
pub fn lengths_in_context(spec: &Spec, m: &ModelFacts, diags: &mut Vec<Diagnostic>) {
    if m.context_length == 0 {
        return;
    }
    for d in &spec.datasets {
        if let Some(t) = d.spec.max_tokens.filter(|&t| t > m.context_length) {
            diags.push(
                spec.diagnostic(
                    FieldPath::root()
                        .key("datasets")
                        .key(&d.name)
                        .key("max_tokens"),
                    format!(
                        "max_tokens {t} is beyond the model's context of {} tokens",
                        m.context_length
                    ),
                ),
            );
        }
        if let Some(w) = d.window_tokens().filter(|&w| w > m.context_length) {
            diags.push(
                spec.diagnostic(
                    FieldPath::root()
                        .key("datasets")
                        .key(&d.name)
                        .key("window_tokens"),
                    format!(
                        "window_tokens {w} is longer than the model's context of {} tokens",
                        m.context_length
                    ),
                ),
            );
        }
    }
}
