//! What every stage shares: the lazily loaded model, dataset loading and splitting,
//! and the conversion of dataset prompts into token sequences.

use anyhow::{anyhow, Context, Result};
use steerbench_data as data;
use steerbench_eval::prompt::{self, Prompt, PromptStyle};
use steerbench_model::{Device, LoadedModel, ModelSource};

use crate::exec::{Lazy, StageContext};
use crate::plan::{DatasetLocation, ResolvedDataset};
use crate::spec::{DatasetRef, PromptFormat, SplitName};

/// Services shared by the stages of one run: the model, loaded on first use.
#[derive(Default)]
pub struct Services {
    model: Lazy<LoadedModel>,
    embedder: Lazy<steerbench_embed::SentenceEmbedder>,
}

impl Services {
    pub fn new() -> Self {
        Self::default()
    }

    /// The run's model (loaded once, f32 on the CPU).
    pub fn model(&self, name: &str) -> Result<&LoadedModel> {
        self.model.get_or_try_init(|| -> Result<LoadedModel> {
            let resolved = steerbench_model::resolve(&ModelSource::parse(name))
                .with_context(|| format!("cannot resolve model `{name}`"))?;
            let lm = resolved
                .load(&Device::Cpu)
                .with_context(|| format!("cannot load model `{name}`"))?;
            Ok(lm)
        })
    }
}

impl Services {
    /// The sentence embedder of the `generation` metric (fetched into the cache when missing).
    pub fn embedder(&self) -> Result<&steerbench_embed::SentenceEmbedder> {
        self.embedder.get_or_try_init(|| {
            let home = steerbench_model::registry::steerbench_home()?;
            steerbench_embed::SentenceEmbedder::from_registry(&home, &Device::Cpu).with_context(
                || {
                    format!(
                        "cannot load the sentence embedder `{}` (steerbench models pull {0})",
                        steerbench_embed::REGISTRY_NAME
                    )
                },
            )
        })
    }
}

pub type Ctx<'a> = StageContext<'a, Services>;

/// The stage's model.
pub fn model<'a>(ctx: &'a Ctx<'_>) -> Result<&'a LoadedModel> {
    let (name, _) = ctx.model();
    ctx.services().model(name)
}

pub fn style(ctx: &Ctx<'_>) -> PromptStyle {
    match ctx.prompt_format() {
        PromptFormat::Chat => PromptStyle::Chat,
        PromptFormat::Raw => PromptStyle::Raw,
    }
}

/// All records of a dataset (before splitting).
pub fn load_all(rd: &ResolvedDataset) -> Result<data::Dataset> {
    let source = match &rd.location {
        DatasetLocation::Builtin(n) => data::Source::Builtin(n.clone()),
        DatasetLocation::File(p) => data::Source::Path(p.clone()),
        DatasetLocation::Url(u) => data::Source::Url(u.clone()),
    };
    let format = data::Format::from_name(rd.dataset.spec.format.name())
        .ok_or_else(|| anyhow!("unknown dataset format {}", rd.dataset.spec.format))?;
    let overrides: serde_json::Map<String, serde_json::Value> = rd
        .dataset
        .spec
        .fields
        .given()
        .into_iter()
        .map(|(role, field)| {
            (
                role.to_string(),
                serde_json::Value::String(field.to_string()),
            )
        })
        .collect();
    let fields = data::FieldMap::from_json(format, &serde_json::Value::Object(overrides))?;
    Ok(data::load(&source, &fields, &data::LoadOptions::default())?)
}

/// The records of `r` (a split, or the whole dataset), split with the run's seed.
pub fn records(ctx: &Ctx<'_>, r: &DatasetRef) -> Result<data::Records> {
    let rd = ctx.dataset(r)?;
    let ds = load_all(rd).with_context(|| format!("dataset `{}`", r.dataset))?;
    let spec = &rd.dataset.spec;
    let Some(split) = r.split else {
        let idx = data::limit_indices(&ds.records.strata(), spec.limit, ctx.seed());
        return Ok(ds.records.select(&idx));
    };
    let fractions = data::SplitFractions {
        train: spec.split.train,
        val: spec.split.val,
        test: spec.split.test,
    };
    let splits = data::split_records(&ds.records, spec.limit, &fractions, ctx.seed())?;
    let name = match split {
        SplitName::Train => data::SplitName::Train,
        SplitName::Val => data::SplitName::Val,
        SplitName::Test => data::SplitName::Test,
    };
    let out = splits.get(name).clone();
    if out.is_empty() {
        return Err(anyhow!(
            "dataset split `{r}` is empty; raise `limit` or change `split`"
        ));
    }
    Ok(out)
}

pub fn to_prompt(p: &data::PromptParts) -> Prompt {
    Prompt {
        system: p.system.clone(),
        shots: Vec::new(),
        user: p.user.clone(),
        assistant_prefix: p.assistant_prefix.clone(),
    }
}

/// Token ids of a dataset prompt.
pub fn encode(lm: &LoadedModel, p: &Prompt, style: PromptStyle) -> Result<Vec<u32>> {
    Ok(prompt::encode(&lm.tokenizer, p, style)?)
}

/// Token ids of the letters `A`..: the token the model emits after `(`.
pub fn letter_ids(lm: &LoadedModel, n: usize) -> Result<Vec<u32>> {
    (0..n)
        .map(|i| {
            let l = ((b'A' + i as u8) as char).to_string();
            Ok(prompt::single_token(&lm.tokenizer, &l)?)
        })
        .collect()
}
