//! The model runtime as the planner sees it: facts about a model (layers, hidden
//! size, weight hash) read from its metadata without loading the weights.

use crate::plan::{EnvError, ModelFacts, ModelProbe};
use steerbench_model::{resolve, ModelSource};

/// Resolves models through steerbench-model (fetching registry models when missing).
pub struct RuntimeProbe;

impl ModelProbe for RuntimeProbe {
    fn model_facts(&self, model: &str) -> Result<ModelFacts, EnvError> {
        let resolved = resolve(&ModelSource::parse(model))
            .map_err(|e| EnvError::Unavailable(format!("model `{model}`: {e}")))?;
        let cfg = resolved
            .config()
            .map_err(|e| EnvError::Unavailable(format!("model `{model}`: {e}")))?;
        Ok(ModelFacts {
            id: resolved.id.clone(),
            n_layers: cfg.n_layers,
            hidden_size: cfg.hidden_size,
            weight_hash: resolved.weight_hash.clone(),
            context_length: cfg.max_position_embeddings,
            lora_modules: steerbench_model::Proj::of_arch(cfg.arch)
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
        })
    }
}

/// Built-in datasets compiled into the binary (the same bytes as datasets/*.jsonl).
pub fn embedded_builtins() -> crate::plan::BuiltinStore {
    crate::plan::BuiltinStore::Embedded(
        steerbench_data::builtin::all()
            .iter()
            .map(|b| (b.name.to_string(), b.content.as_bytes()))
            .collect(),
    )
}

/// This machine's dataset cache: `$STEERBENCH_HOME/datasets` (else
/// `~/.cache/steerbench/datasets`), filled from `STEERBENCH_DATA_MIRROR` when that is set.
/// None when there is no home to put it in (URL sources are then refused with that reason).
pub fn dataset_store() -> Option<steerbench_data::RemoteStore> {
    let home = steerbench_model::steerbench_home().ok()?;
    Some(steerbench_data::RemoteStore::new(
        home.join("datasets"),
        steerbench_data::Mirror::from_env(),
    ))
}
