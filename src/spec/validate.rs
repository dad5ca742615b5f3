//! Cross-reference and value checks that need the whole spec: stage and
//! dataset references, kinds of referenced stages, empty sweeps, metric /
//! dataset-format compatibility, dependency cycles.

use super::diag::{did_you_mean, Diagnostic, FieldPath};
use super::types::*;
use super::{Spec, Stage};

/// A reference from a stage to another stage.
pub struct StageRef<'a> {
    pub path: FieldPath,
    pub name: &'a str,
    /// The kinds the referenced stage may have (empty: any).
    pub kinds: &'static [StageKind],
}

/// A reference from a stage to a dataset, with the formats it accepts (empty: any).
pub struct DataRef<'a> {
    pub path: FieldPath,
    pub r: &'a DatasetRef,
    pub formats: &'static [Format],
}

const PROMPT_FORMATS: &[Format] = &[
    Format::ContrastiveAb,
    Format::ContrastiveCompletion,
    Format::OpenEnded,
    Format::IclTask,
];

/// What `extract` contrasts: the prompt formats and tool-choice behaviour tasks.
const EXTRACT_FORMATS: &[Format] = &[
    Format::ContrastiveAb,
    Format::ContrastiveCompletion,
    Format::OpenEnded,
    Format::IclTask,
    Format::ToolChoice,
];

/// What `finetune` trains on: datasets of contrastive pairs (a positive and a negative
/// answer to one prompt).
const PAIR_FORMATS: &[Format] = &[
    Format::ContrastiveAb,
    Format::ContrastiveCompletion,
    Format::OpenEnded,
    Format::ToolChoice,
];

/// What `evaluate` scores: what `extract` reads, and conversations turn by turn.
const EVALUATE_FORMATS: &[Format] = &[
    Format::ContrastiveAb,
    Format::ContrastiveCompletion,
    Format::OpenEnded,
    Format::IclTask,
    Format::ToolChoice,
    Format::Conversation,
];

/// The stage references of a stage, with their field paths relative to `stages.<name>`.
pub fn stage_refs(stage: &Stage) -> Vec<StageRef<'_>> {
    let at = FieldPath::root()
        .key("stages")
        .key(&stage.name)
        .key(stage.spec.kind().name());
    match &stage.spec {
        StageSpec::Extract(_) => vec![],
        StageSpec::Vectors(p) => {
            vec![StageRef {
                path: at.key("activations"),
                name: &p.activations,
                kinds: &[StageKind::Extract],
            }]
        }
        StageSpec::Finetune(_) => vec![],
        StageSpec::Evaluate(p) => {
            let mut v = vec![StageRef {
                path: at.key("vectors"),
                name: &p.vectors,
                kinds: &[StageKind::Vectors],
            }];
            if let Some(a) = &p.adapters {
                v.push(StageRef {
                    path: at.key("adapters"),
                    name: a,
                    kinds: &[StageKind::Finetune],
                });
            }
            v
        }
        StageSpec::Degradation(p) => {
            let mut v = vec![StageRef {
                path: at.key("vectors"),
                name: &p.vectors,
                kinds: &[StageKind::Vectors],
            }];
            if let Some(a) = &p.adapters {
                v.push(StageRef {
                    path: at.key("adapters"),
                    name: a,
                    kinds: &[StageKind::Finetune],
                });
            }
            if let Some(from) = &p.from {
                v.push(StageRef {
                    path: at.key("from"),
                    name: from,
                    kinds: &[StageKind::Evaluate],
                });
            }
            v
        }
        StageSpec::Report(p) => p
            .inputs
            .iter()
            .enumerate()
            .map(|(i, n)| StageRef {
                path: at.key("inputs").index(i),
                name: n,
                kinds: &[],
            })
            .collect(),
    }
}

/// The dataset references of a stage.
pub fn dataset_refs(stage: &Stage) -> Vec<DataRef<'_>> {
    let at = FieldPath::root()
        .key("stages")
        .key(&stage.name)
        .key(stage.spec.kind().name());
    match &stage.spec {
        StageSpec::Extract(p) => vec![DataRef {
            path: at.key("dataset"),
            r: &p.dataset,
            formats: EXTRACT_FORMATS,
        }],
        StageSpec::Vectors(p) => p
            .methods
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match m {
                Method::FunctionVector(fv) => Some(DataRef {
                    path: at
                        .key("methods")
                        .index(i)
                        .key("function_vector")
                        .key("dataset"),
                    r: &fv.dataset,
                    formats: &[Format::IclTask],
                }),
                _ => None,
            })
            .collect(),
        StageSpec::Finetune(p) => {
            let mut v = vec![DataRef {
                path: at.key("dataset"),
                r: &p.dataset,
                formats: PAIR_FORMATS,
            }];
            if let Some(r) = &p.val {
                v.push(DataRef {
                    path: at.key("val"),
                    r,
                    formats: PAIR_FORMATS,
                });
            }
            v
        }
        StageSpec::Evaluate(p) => p
            .datasets
            .0
            .iter()
            .enumerate()
            .map(|(i, r)| DataRef {
                path: at.key("datasets").index(i),
                r,
                formats: EVALUATE_FORMATS,
            })
            .collect(),
        StageSpec::Degradation(p) => {
            let mut v = Vec::new();
            if let Some(r) = &p.corpus {
                v.push(DataRef {
                    path: at.key("corpus"),
                    r,
                    formats: &[Format::Text],
                });
            }
            if let Some(r) = &p.neutral {
                v.push(DataRef {
                    path: at.key("neutral"),
                    r,
                    formats: PROMPT_FORMATS,
                });
            }
            if let Some(r) = &p.mc {
                v.push(DataRef {
                    path: at.key("mc"),
                    r,
                    formats: &[Format::MultipleChoice],
                });
            }
            if let Some(r) = &p.tools {
                v.push(DataRef {
                    path: at.key("tools"),
                    r,
                    formats: &[Format::ToolChoice],
                });
            }
            v
        }
        StageSpec::Report(_) => vec![],
    }
}

pub fn check(spec: &Spec) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let stage_names: Vec<&str> = spec.declared_stages.iter().map(String::as_str).collect();
    let dataset_names: Vec<&str> = spec.declared_datasets.iter().map(String::as_str).collect();

    for stage in &spec.stages {
        for r in stage_refs(stage) {
            match spec.stage(r.name) {
                None if spec.declares_stage(r.name) => {} // its own errors are reported
                None => {
                    let mut d = spec.diagnostic(r.path, format!("unknown stage `{}`", r.name));
                    d.expected = Some(describe_kinds(r.kinds));
                    d.help = did_you_mean(
                        r.name,
                        stage_names.iter().copied().filter(|n| *n != stage.name),
                    );
                    out.push(d);
                }
                Some(target) if target.name == stage.name => {
                    let message = format!(
                        "`{}` names stage `{}` itself; a stage cannot read its own outputs",
                        r.path, r.name
                    );
                    out.push(spec.diagnostic(r.path, message));
                }
                Some(target) if !r.kinds.is_empty() && !r.kinds.contains(&target.spec.kind()) => {
                    let mut d = spec.diagnostic(
                        r.path,
                        format!("stage `{}` is of kind `{}`", r.name, target.spec.kind()),
                    );
                    d.expected = Some(describe_kinds(r.kinds));
                    out.push(d);
                }
                Some(_) => {}
            }
        }
        for r in dataset_refs(stage) {
            match spec.dataset(&r.r.dataset) {
                None if spec.declares_dataset(&r.r.dataset) => {}
                None => {
                    let mut d =
                        spec.diagnostic(r.path, format!("unknown dataset `{}`", r.r.dataset));
                    d.expected = Some(if dataset_names.is_empty() {
                        "a dataset declared under `datasets` (there are none)".into()
                    } else {
                        format!("one of {}", quoted(&dataset_names))
                    });
                    d.help = did_you_mean(&r.r.dataset, dataset_names.iter().copied());
                    out.push(d);
                }
                Some(ds) if !r.formats.is_empty() && !r.formats.contains(&ds.format()) => {
                    let mut d = spec.diagnostic(
                        r.path,
                        format!(
                            "dataset `{}` has format `{}`, which this field cannot use",
                            ds.name,
                            ds.format()
                        ),
                    );
                    let names: Vec<&str> = r.formats.iter().map(|f| f.name()).collect();
                    d.expected = Some(format!("a dataset of format {}", quoted(&names)));
                    out.push(d);
                }
                Some(_) => {}
            }
        }
        check_values(spec, stage, &mut out);
        check_sites(spec, stage, &mut out);
    }
    out.extend(check_cycles(spec));
    out
}

/// Vectors are built from the residual stream after each block: the extract stage a
/// vectors stage reads must capture `resid_post`.
fn check_sites(spec: &Spec, stage: &Stage, out: &mut Vec<Diagnostic>) {
    let StageSpec::Vectors(p) = &stage.spec else {
        return;
    };
    let Some(Stage {
        spec: StageSpec::Extract(e),
        ..
    }) = spec.stage(&p.activations)
    else {
        return; // a missing or mistyped reference is reported above
    };
    if !e.sites.contains(&Site::ResidPost) {
        out.push(spec.diagnostic(
            FieldPath::root()
                .key("stages")
                .key(&stage.name)
                .key("vectors")
                .key("activations"),
            format!(
                "extract stage `{}` does not capture `resid_post`, which vectors are built from: add it to its `sites`",
                p.activations
            ),
        ));
    }
}

fn check_values(spec: &Spec, stage: &Stage, out: &mut Vec<Diagnostic>) {
    let at = FieldPath::root()
        .key("stages")
        .key(&stage.name)
        .key(stage.spec.kind().name());
    let mut err = |path: FieldPath, msg: String| out.push(spec.diagnostic(path, msg));
    let empty = |n: usize| n == 0;
    match &stage.spec {
        StageSpec::Extract(p) => {
            check_layers(&p.layers, &at.key("layers"), &mut err);
            if empty(p.sites.len()) {
                err(
                    at.key("sites"),
                    "`sites` is empty: list at least one hook site".into(),
                );
            }
            if let ReadPosition::Indices(ix) = &p.read_position {
                if ix.is_empty() {
                    err(at.key("read_position"), "`indices` is empty".into());
                }
                check_unique(
                    ix,
                    &at.key("read_position").key("indices"),
                    "index",
                    &mut err,
                );
            }
            check_unique(&p.sites, &at.key("sites"), "site", &mut err);
        }
        StageSpec::Finetune(p) => check_finetune(p, &at, &mut err),
        StageSpec::Vectors(p) => {
            if empty(p.methods.len()) {
                err(
                    at.key("methods"),
                    "`methods` is empty: list at least one method".into(),
                );
            }
            for (i, m) in p.methods.iter().enumerate() {
                let path = at.key("methods").index(i);
                listed_once(&p.methods[..i], m.name(), |x| x.name(), &path, &mut err);
                let here = path.key(m.name());
                match m {
                    Method::Probe(pp) if !(pp.l2.is_finite() && pp.l2 >= 0.0) => err(
                        here.key("l2"),
                        format!("l2 must be a finite number >= 0, got {}", pp.l2),
                    ),
                    Method::Icv(ip) if !ip.strength.is_finite() => {
                        err(here.key("strength"), "strength must be finite".into())
                    }
                    Method::FunctionVector(fv) => {
                        if fv.top_k == 0 {
                            err(here.key("top_k"), "top_k must be at least 1".into());
                        }
                        if fv.shots < 2 {
                            err(
                                here.key("shots"),
                                "shots must be at least 2 (shuffled labels need two demonstrations)"
                                    .into(),
                            );
                        }
                        if fv.prompts == 0 {
                            err(here.key("prompts"), "prompts must be at least 1".into());
                        }
                    }
                    Method::Mlp(mp) => {
                        if mp.hidden == 0 {
                            err(here.key("hidden"), "hidden must be at least 1".into());
                        }
                        if mp.epochs == 0 {
                            err(here.key("epochs"), "epochs must be at least 1".into());
                        }
                        if !(mp.lr.is_finite() && mp.lr > 0.0) {
                            err(
                                here.key("lr"),
                                format!("lr must be a finite number > 0, got {}", mp.lr),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        StageSpec::Evaluate(p) => {
            if empty(p.datasets.0.len()) {
                err(
                    at.key("datasets"),
                    "`datasets` is empty: list at least one dataset split".into(),
                );
            }
            check_unique(
                &p.datasets.0,
                &at.key("datasets"),
                "dataset split",
                &mut err,
            );
            check_layers(&p.layers, &at.key("layers"), &mut err);
            check_multipliers(&p.multipliers, &at.key("multipliers"), &mut err);
            if let Some(m) = &p.adapter_multipliers {
                if p.adapters.is_none() {
                    err(
                        at.key("adapter_multipliers"),
                        "`adapter_multipliers` needs `adapters` (a finetune stage)".into(),
                    );
                }
                check_multipliers(m, &at.key("adapter_multipliers"), &mut err);
            }
            if empty(p.positions.0.len()) {
                err(at.key("positions"), "`positions` is empty".into());
            }
            check_unique(&p.positions.0, &at.key("positions"), "position", &mut err);
            for (i, sel) in p.positions.0.iter().enumerate() {
                if let PositionSel::Indices(ix) = sel {
                    let path = at.key("positions").index(i).key("indices");
                    if ix.is_empty() {
                        err(
                            path.clone(),
                            "`indices` is empty: list the token positions to steer".into(),
                        );
                    }
                    if let Some(&neg) = ix.iter().find(|&&x| x < 0) {
                        err(path.clone(), format!("steering index {neg} is negative: steering positions count from the start of the sequence (negative indices are for `read_position`)"));
                    }
                    check_unique(ix, &path, "index", &mut err);
                }
            }
            check_unique(&p.metrics, &at.key("metrics"), "metric", &mut err);
            check_unique(&p.baselines, &at.key("baselines"), "baseline", &mut err);
            if empty(p.metrics.len()) {
                err(
                    at.key("metrics"),
                    "`metrics` is empty: list at least one metric".into(),
                );
            }
            let formats: Vec<Format> = p
                .datasets
                .0
                .iter()
                .filter_map(|r| spec.dataset(&r.dataset))
                .map(|d| d.format())
                .collect();
            for (i, m) in p.metrics.iter().enumerate() {
                let needs: &[Format] = match m {
                    Metric::AbProbability => &[Format::ContrastiveAb],
                    Metric::Propensity | Metric::Steerability => &[
                        Format::ContrastiveAb,
                        Format::ContrastiveCompletion,
                        Format::OpenEnded,
                        Format::ToolChoice,
                        Format::Conversation,
                    ],
                    Metric::OpenEndedLikelihood => &[Format::OpenEnded],
                    Metric::IclAccuracy => &[Format::IclTask],
                    Metric::Generation => &[],
                };
                if !formats.is_empty()
                    && !needs.is_empty()
                    && !formats.iter().any(|f| needs.contains(f))
                {
                    let names: Vec<&str> = needs.iter().map(|f| f.name()).collect();
                    err(
                        at.key("metrics").index(i),
                        format!("metric `{}` needs a dataset of format {}, and none of `datasets` has one", metric_name(*m), quoted(&names)),
                    );
                }
            }
            // Turn scopes steer conversations; conversations are steered by turn scope.
            let conversations = formats
                .iter()
                .filter(|f| **f == Format::Conversation)
                .count();
            for (i, sel) in p.positions.0.iter().enumerate() {
                let path = at.key("positions").index(i);
                if sel.scope().is_some() && conversations < formats.len() {
                    err(path, format!("positions `{}` is a turn scope: it steers conversation datasets only, and `datasets` lists other formats (evaluate them in another stage)", sel.name()));
                } else if sel.scope().is_none() && conversations > 0 {
                    err(path, format!("`datasets` lists a conversation: steer it with turn scopes (all_turns, first_turn, current_turn, user_turns), not `{}`", sel.name()));
                }
            }
            for (i, b) in p.baselines.iter().enumerate() {
                if matches!(b, Baseline::FewShot(_)) && conversations > 0 {
                    err(
                        at.key("baselines").index(i),
                        "baseline `few_shot` is not defined for conversations: their own history precedes every scored turn; use `system_prompt`".into(),
                    );
                }
                if matches!(b, Baseline::LetterSwap)
                    && !formats.is_empty()
                    && !formats.contains(&Format::ContrastiveAb)
                {
                    err(
                        at.key("baselines").index(i),
                        "baseline `letter_swap` swaps the answer letters of A/B questions, and none of `datasets` has format `contrastive_ab`".into(),
                    );
                }
                if let Baseline::FewShot(f) = b {
                    if f.k == 0 {
                        err(
                            at.key("baselines").index(i).key("few_shot").key("k"),
                            "k must be at least 1".into(),
                        );
                    }
                }
            }
            let g = &p.generation;
            if !(g.temperature.is_finite() && g.temperature >= 0.0) {
                err(
                    at.key("generation").key("temperature"),
                    "temperature must be >= 0".into(),
                );
            }
            if !(g.top_p > 0.0 && g.top_p <= 1.0) {
                err(
                    at.key("generation").key("top_p"),
                    "top_p must be in (0, 1]".into(),
                );
            }
            if g.max_new_tokens == 0 {
                err(
                    at.key("generation").key("max_new_tokens"),
                    "max_new_tokens must be at least 1".into(),
                );
            }
        }
        StageSpec::Degradation(p) => {
            if empty(p.metrics.len()) {
                err(
                    at.key("metrics"),
                    "`metrics` is empty: list at least one degradation metric".into(),
                );
            }
            check_unique(&p.metrics, &at.key("metrics"), "metric", &mut err);
            for (i, m) in p.metrics.iter().enumerate() {
                let (field, present) = match m {
                    DegradationMetric::Perplexity => ("corpus", p.corpus.is_some()),
                    DegradationMetric::KlUnsteered => ("neutral", p.neutral.is_some()),
                    DegradationMetric::McAccuracy => ("mc", p.mc.is_some()),
                    DegradationMetric::ToolAccuracy => ("tools", p.tools.is_some()),
                };
                if !present {
                    err(
                        at.key("metrics").index(i),
                        format!(
                            "metric `{}` needs `{field}`: add `{field}: <dataset>` to this stage",
                            degradation_name(*m)
                        ),
                    );
                }
            }
            if p.from.is_none() && (p.layers.is_none() || p.multipliers.is_none()) {
                err(
                    at.clone(),
                    "without `from`, a degradation stage needs both `layers` and `multipliers`"
                        .into(),
                );
            }
            if let Some(l) = &p.layers {
                check_layers(l, &at.key("layers"), &mut err);
            }
            if let Some(m) = &p.multipliers {
                check_multipliers(m, &at.key("multipliers"), &mut err);
            }
        }
        StageSpec::Report(p) => {
            if empty(p.inputs.len()) {
                err(
                    at.key("inputs"),
                    "`inputs` is empty: list the stages to report".into(),
                );
            }
        }
    }
}

/// A `finetune` stage's methods: at least one, each once, and LoRA settings that can train.
fn check_finetune(p: &FinetuneParams, at: &FieldPath, err: &mut impl FnMut(FieldPath, String)) {
    if p.methods.is_empty() {
        err(
            at.key("methods"),
            "`methods` is empty: list sft_lora and/or dpo_lora".into(),
        );
    }
    for (i, m) in p.methods.iter().enumerate() {
        let path = at.key("methods").index(i);
        listed_once(&p.methods[..i], m.name(), |x| x.name(), &path, err);
        let here = path.key(m.name());
        let lp = m.params();
        if lp.rank == 0 {
            err(here.key("rank"), "LoRA rank must be at least 1".into());
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(lp.alpha) {
            err(
                here.key("alpha"),
                format!("alpha must be > 0, got {}", lp.alpha),
            );
        }
        if !positive(lp.lr) {
            err(here.key("lr"), format!("lr must be > 0, got {}", lp.lr));
        }
        if !(lp.weight_decay.is_finite() && lp.weight_decay >= 0.0) {
            err(
                here.key("weight_decay"),
                format!("weight_decay must be >= 0, got {}", lp.weight_decay),
            );
        }
        if !(0.0..1.0).contains(&lp.dropout) {
            err(
                here.key("dropout"),
                format!("dropout must be in [0, 1), got {}", lp.dropout),
            );
        }
        if lp.epochs == 0 {
            err(here.key("epochs"), "epochs must be at least 1".into());
        }
        if lp.batch_size == 0 {
            err(
                here.key("batch_size"),
                "batch_size must be at least 1".into(),
            );
        }
        if lp.patience.is_some() && p.val.is_none() {
            err(
                here.key("patience"),
                "early stopping (`patience`) needs a validation split: set `val`".into(),
            );
        }
        match (m, lp.beta) {
            (FinetuneMethod::SftLora(_), Some(_)) => err(
                here.key("beta"),
                "`beta` is DPO's temperature: it applies to dpo_lora only".into(),
            ),
            (FinetuneMethod::DpoLora(_), Some(b)) if !positive(b) => {
                err(here.key("beta"), format!("beta must be > 0, got {b}"))
            }
            _ => {}
        }
        if lp.modules.is_empty() {
            err(
                here.key("modules"),
                "`modules` is empty: list at least one projection".into(),
            );
        }
        for (j, name) in lp.modules.iter().enumerate() {
            if steerbench_model::Proj::parse(name).is_none() {
                let names: Vec<&str> = steerbench_model::Proj::ALL
                    .iter()
                    .map(|p| p.name())
                    .collect();
                err(
                    here.key("modules").index(j),
                    format!(
                        "unknown LoRA module `{name}`; modules are {}",
                        names.join(", ")
                    ),
                );
            }
        }
        check_unique(&lp.modules, &here.key("modules"), "module", err);
        check_layers(&lp.layers, &here.key("layers"), err);
    }
}

fn check_layers(l: &Layers, path: &FieldPath, err: &mut impl FnMut(FieldPath, String)) {
    if let Layers::List(v) = l {
        if v.is_empty() {
            err(path.clone(), "the layer list is empty".into());
        }
        check_unique(v, path, "layer", err);
    }
}

/// The largest steering multiplier accepted. Beyond it the steered residual's squares
/// overflow f32 inside RMSNorm (a residual of norm ~1e2 times 1e6 is 1e8, squared and
/// summed over the hidden size still far below 3.4e38); no published sweep comes near it.
pub const MAX_ABS_MULTIPLIER: f64 = 1e6;

fn check_multipliers(m: &[f64], path: &FieldPath, err: &mut impl FnMut(FieldPath, String)) {
    if m.is_empty() {
        err(path.clone(), "the multiplier list is empty".into());
    }
    for (i, x) in m.iter().enumerate() {
        if !x.is_finite() {
            err(
                path.index(i),
                format!("multiplier {x} is not a finite number"),
            );
        } else if x.abs() > MAX_ABS_MULTIPLIER {
            err(
                path.index(i),
                format!("multiplier {x:e} is beyond ±{MAX_ABS_MULTIPLIER:e}: the steered activations would overflow 32-bit floats"),
            );
        }
    }
    // -0.0 == 0.0, so "0" and "-0" are the same sweep value, as they should be.
    check_unique(m, path, "multiplier", err);
}

/// Each value of a sweep or list once: a repeat would be computed twice and counted twice.
/// The error sits at the repeat and names the first occurrence.
/// An error at `path` when `name` is already among the `earlier` methods of the list.
fn listed_once<T>(
    earlier: &[T],
    name: &str,
    name_of: impl Fn(&T) -> &str,
    path: &FieldPath,
    err: &mut impl FnMut(FieldPath, String),
) {
    if earlier.iter().any(|o| name_of(o) == name) {
        err(
            path.clone(),
            format!("method `{name}` is listed twice; each method may appear once"),
        );
    }
}

fn check_unique<T: PartialEq + serde::Serialize>(
    items: &[T],
    path: &FieldPath,
    what: &str,
    err: &mut impl FnMut(FieldPath, String),
) {
    for (i, x) in items.iter().enumerate() {
        if let Some(first) = items[..i].iter().position(|y| y == x) {
            err(
                path.index(i),
                format!(
                    "{what} {} is listed twice (first at index {first}); list each once",
                    show(x)
                ),
            );
        }
    }
}

/// A value for messages, as the spec spells it (its serde form).
fn show<T: serde::Serialize>(x: &T) -> String {
    match serde_json::to_value(x) {
        Ok(serde_json::Value::String(s)) => format!("`{s}`"),
        Ok(serde_json::Value::Number(n)) => n.to_string(),
        Ok(v) => format!("`{v}`"),
        Err(_) => "(a value)".into(),
    }
}

/// Cycles through report inputs (the only kind that may reference any stage).
fn check_cycles(spec: &Spec) -> Vec<Diagnostic> {
    let deps =
        |s: &Stage| -> Vec<String> { stage_refs(s).iter().map(|r| r.name.to_string()).collect() };
    let mut out = Vec::new();
    // 0 = unvisited, 1 = on stack, 2 = done
    let mut state = vec![0u8; spec.stages.len()];
    let idx = |n: &str| spec.stages.iter().position(|s| s.name == n);
    fn visit(
        i: usize,
        spec: &Spec,
        state: &mut [u8],
        stack: &mut Vec<usize>,
        idx: &dyn Fn(&str) -> Option<usize>,
        deps: &dyn Fn(&Stage) -> Vec<String>,
        out: &mut Vec<Diagnostic>,
    ) {
        state[i] = 1;
        stack.push(i);
        for d in deps(&spec.stages[i]) {
            let Some(j) = idx(&d) else { continue };
            if j == i {
                continue; // reported as self-reference
            }
            if state[j] == 1 {
                let start = stack.iter().position(|&s| s == j).unwrap_or(0);
                let mut names: Vec<&str> = stack[start..]
                    .iter()
                    .map(|&s| spec.stages[s].name.as_str())
                    .collect();
                names.push(&spec.stages[j].name);
                let s = &spec.stages[i];
                let path = stage_refs(s)
                    .into_iter()
                    .find(|r| r.name == d)
                    .map(|r| r.path)
                    .unwrap_or_default();
                out.push(
                    spec.diagnostic(path, format!("dependency cycle: {}", names.join(" -> "))),
                );
            } else if state[j] == 0 {
                visit(j, spec, state, stack, idx, deps, out);
            }
        }
        stack.pop();
        state[i] = 2;
    }
    for i in 0..spec.stages.len() {
        if state[i] == 0 {
            let mut stack = Vec::new();
            visit(i, spec, &mut state, &mut stack, &idx, &deps, &mut out);
        }
    }
    out
}

fn describe_kinds(kinds: &[StageKind]) -> String {
    match kinds {
        [] => "the name of a stage in this pipeline".into(),
        [k] => format!("the name of a `{k}` stage"),
        ks => format!(
            "the name of a stage of kind {}",
            quoted(&ks.iter().map(|k| k.name()).collect::<Vec<_>>())
        ),
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::AbProbability => "ab_probability",
        Metric::Propensity => "propensity",
        Metric::Steerability => "steerability",
        Metric::OpenEndedLikelihood => "open_ended_likelihood",
        Metric::IclAccuracy => "icl_accuracy",
        Metric::Generation => "generation",
    }
}

pub fn degradation_name(m: DegradationMetric) -> &'static str {
    match m {
        DegradationMetric::Perplexity => "perplexity",
        DegradationMetric::KlUnsteered => "kl_unsteered",
        DegradationMetric::McAccuracy => "mc_accuracy",
        DegradationMetric::ToolAccuracy => "tool_accuracy",
    }
}
