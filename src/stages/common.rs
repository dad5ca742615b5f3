//! What every stage shares: the lazily loaded model, the datasets (each read,
//! checked against its plan-time blake3 and split once per run), and the
//! conversion of dataset prompts into token sequences.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use steerbench_data as data;
use steerbench_eval::prompt::{self, Prompt, PromptStyle};
use steerbench_model::{Device, LoadOptions, LoadedModel, ModelSource};

use crate::exec::{Lazy, StageContext};
use crate::plan::ResolvedDataset;
use crate::spec::{DatasetRef, Dtype, PromptFormat, SplitName};

/// Services shared by the stages of one run: the model and the embedder, loaded on
/// first use, and every dataset, loaded and split on first use.
#[derive(Default)]
pub struct Services {
    model: Lazy<LoadedModel>,
    embedder: Lazy<steerbench_embed::SentenceEmbedder>,
    /// Dataset name → its records, read once per run.
    datasets: Mutex<HashMap<String, Arc<SplitDataset>>>,
}

impl Services {
    pub fn new() -> Self {
        Self::default()
    }

    /// The run's model (loaded once, on the CPU, its weights held in `dtype`: a run has
    /// one model and one dtype).
    pub fn model(&self, name: &str, dtype: Dtype) -> Result<&LoadedModel> {
        let lm = self.model.get_or_try_init(|| -> Result<LoadedModel> {
            let resolved = steerbench_model::resolve(&ModelSource::parse(name))
                .with_context(|| format!("cannot resolve model `{name}`"))?;
            let opts = LoadOptions {
                dtype: dtype.candle(),
                ..LoadOptions::default()
            };
            let lm = resolved
                .load_with(&Device::Cpu, &opts)
                .with_context(|| format!("cannot load model `{name}` ({dtype})"))?;
            Ok(lm)
        })?;
        if lm.model.dtype() != dtype.candle() {
            return Err(anyhow!(
                "model `{name}` is loaded with {:?} weights, the stage asks for {dtype}",
                lm.model.dtype()
            ));
        }
        Ok(lm)
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
    ctx.services().model(name, ctx.dtype())
}

pub fn style(ctx: &Ctx<'_>) -> PromptStyle {
    match ctx.prompt_format() {
        PromptFormat::Chat => PromptStyle::Chat,
        PromptFormat::Raw => PromptStyle::Raw,
    }
}

/// A dataset as a run uses it: its bytes read once and checked against the plan-time
/// blake3, parsed with the spec's field mapping, limited and split with the run's seed.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitDataset {
    /// The resolved dataset and seed it was made from (a cached copy is reused only for these).
    resolved: (crate::spec::Dataset, String, u64),
    /// Hex blake3 of the bytes parsed (equal to the plan's).
    pub blake3: String,
    /// The records kept by `limit` (a seeded, stratified subsample; all splits together).
    pub all: data::Records,
    /// The train / val / test records.
    pub splits: data::Splits,
}

impl SplitDataset {
    /// Reads `rd`'s bytes, refuses them unless their blake3 is the plan's (`rd.hash`: a file
    /// changed after planning is an error naming it and both hashes), then parses, limits and
    /// splits with `seed`. No caching: see [`Services::dataset`].
    pub fn load(rd: &ResolvedDataset, seed: u64) -> Result<SplitDataset> {
        let d = crate::plan::checks::load_dataset(rd, seed)?;
        Ok(SplitDataset {
            resolved: (rd.dataset.clone(), rd.hash.clone(), seed),
            blake3: rd.hash.clone(),
            all: d.all,
            splits: d.splits,
        })
    }

    /// The records of one split, or of the whole (limited) dataset for `None`.
    pub fn get(&self, split: Option<SplitName>) -> &data::Records {
        match split {
            Some(s) => self.splits.get(s),
            None => &self.all,
        }
    }

    fn made_from(&self, rd: &ResolvedDataset, seed: u64) -> bool {
        let (dataset, hash, s) = &self.resolved;
        dataset == &rd.dataset && hash == &rd.hash && *s == seed
    }
}

impl Services {
    /// `rd` loaded, checked and split with `seed` — once per run: later calls share the copy.
    pub fn dataset(&self, rd: &ResolvedDataset, seed: u64) -> Result<Arc<SplitDataset>> {
        let name = &rd.dataset.name;
        let mut cache = self.datasets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = cache.get(name).filter(|d| d.made_from(rd, seed)) {
            return Ok(Arc::clone(d));
        }
        // Loaded under the lock: two stages asking at once still read the file once.
        let d =
            Arc::new(SplitDataset::load(rd, seed).with_context(|| format!("dataset `{name}`"))?);
        cache.insert(name.clone(), Arc::clone(&d));
        Ok(d)
    }
}

/// The run's copy of the dataset `r` names (whatever its split).
pub fn dataset(ctx: &Ctx<'_>, r: &DatasetRef) -> Result<Arc<SplitDataset>> {
    let rd = ctx.dataset(r)?;
    ctx.services().dataset(rd, ctx.seed())
}

/// The records of `r` (a split, or the whole dataset), split with the run's seed.
pub fn records(ctx: &Ctx<'_>, r: &DatasetRef) -> Result<data::Records> {
    let ds = dataset(ctx, r)?;
    let out = ds.get(r.split);
    if r.split.is_some() && out.is_empty() {
        return Err(anyhow!(
            "dataset split `{r}` is empty; raise `limit` or change `split`"
        ));
    }
    Ok(out.clone())
}

pub fn to_prompt(p: &data::PromptParts) -> Prompt {
    Prompt {
        system: p.system.clone(),
        shots: Vec::new(),
        user: p.user.clone(),
        assistant_prefix: p.assistant_prefix.clone(),
    }
}

/// Refuses, before any forward pass, a record whose sequence is longer than the
/// model's context, naming the dataset, the record and the length. (The model refuses
/// such a pass too, but without knowing which record it came from.)
pub fn check_lengths<'a>(
    ctx: &Ctx<'_>,
    lm: &LoadedModel,
    r: &DatasetRef,
    seqs: impl IntoIterator<Item = (&'a str, usize)>,
) -> Result<()> {
    let context = lm.model.config().max_position_embeddings;
    let max_tokens = ctx.dataset(r)?.dataset.spec.max_tokens;
    let (limit, what) = match max_tokens {
        Some(m) if context == 0 || m < context => (m, format!("the dataset's max_tokens of {m}")),
        _ if context > 0 => (context, format!("the model's context of {context} tokens")),
        _ => return Ok(()),
    };
    if let Some((id, n)) = seqs.into_iter().find(|&(_, n)| n > limit) {
        anyhow::bail!(
            "dataset `{r}`, record `{id}`: {n} tokens, longer than {what}; shorten or remove the record"
        );
    }
    Ok(())
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
