//! Hugging Face hub models (`org/name@revision`) through the hf-hub crate, into the standard
//! HF cache (`$HF_HOME/hub`), so files are shared with Python tools. Cached files are used
//! without network access.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{ModelError, Result};

/// Where to reach the hub and where to cache (defaults: `HF_ENDPOINT` / `HF_HOME` like hf-hub).
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    pub endpoint: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub token: Option<String>,
}

/// Files of a downloaded hub model, all inside one snapshot directory.
#[derive(Debug, Clone)]
pub struct HubSnapshot {
    pub dir: PathBuf,
    pub weights: Vec<PathBuf>,
}

fn hub_err(repo: &str, revision: &str, file: &str, e: ApiError) -> ModelError {
    ModelError::Hub(format!("{repo}@{revision}: {file}: {e}"))
}

fn is_not_found(e: &ApiError) -> bool {
    matches!(e, ApiError::RequestError(r) if matches!(**r, ureq::Error::Status(404, _)))
}

/// Fetch `file` (from the cache if there), `Ok(None)` if the repo does not have it.
fn get_opt(api: &ApiRepo, repo: &str, rev: &str, file: &str) -> Result<Option<PathBuf>> {
    match api.get(file) {
        Ok(p) => Ok(Some(p)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(hub_err(repo, rev, file, e)),
    }
}

/// The snapshot if config, tokenizer and all weights are already cached (no network).
fn from_cache(cache: &Cache, repo: &str, revision: &str) -> Option<HubSnapshot> {
    let c = cache.repo(Repo::with_revision(
        repo.to_string(),
        RepoType::Model,
        revision.to_string(),
    ));
    let config = c.get("config.json")?;
    c.get("tokenizer.json")?;
    let weights = match c.get("model.safetensors") {
        Some(p) => vec![p],
        None => shard_names(&c.get("model.safetensors.index.json")?)
            .ok()?
            .iter()
            .map(|f| c.get(f))
            .collect::<Option<Vec<_>>>()?,
    };
    Some(HubSnapshot {
        dir: config.parent()?.to_path_buf(),
        weights,
    })
}

/// Download (or find in the cache) config, tokenizer and safetensors weights of `repo@revision`.
pub fn download(repo: &str, revision: &str, opts: &HubOptions) -> Result<HubSnapshot> {
    let cache = opts
        .cache_dir
        .clone()
        .map(Cache::new)
        .unwrap_or_else(Cache::from_env);
    if let Some(snap) = from_cache(&cache, repo, revision) {
        return Ok(snap);
    }
    let mut builder = ApiBuilder::from_cache(cache).with_progress(false);
    if let Some(e) = opts
        .endpoint
        .clone()
        .or_else(|| std::env::var("HF_ENDPOINT").ok())
    {
        builder = builder.with_endpoint(e);
    }
    if opts.token.is_some() {
        builder = builder.with_token(opts.token.clone());
    }
    let api = builder
        .build()
        .map_err(|e| ModelError::Hub(format!("cannot set up the hub client: {e}")))?;
    let api = api.repo(Repo::with_revision(
        repo.to_string(),
        RepoType::Model,
        revision.to_string(),
    ));
    let need = |file: &str| -> Result<PathBuf> {
        get_opt(&api, repo, revision, file)?
            .ok_or_else(|| ModelError::Hub(format!("{repo}@{revision} has no {file}")))
    };
    eprintln!("steerbench: downloading {repo}@{revision} from the hub");
    let config = need("config.json")?;
    need("tokenizer.json")?;
    for optional in ["tokenizer_config.json", "generation_config.json"] {
        get_opt(&api, repo, revision, optional)?;
    }
    let weights = match get_opt(&api, repo, revision, "model.safetensors")? {
        Some(p) => vec![p],
        None => {
            let index = get_opt(&api, repo, revision, "model.safetensors.index.json")?
                .ok_or_else(|| {
                    ModelError::Hub(format!(
                        "{repo}@{revision} has neither model.safetensors nor model.safetensors.index.json (pickle-only repos are refused: unpickling runs code)"
                    ))
                })?;
            shard_names(&index)?
                .iter()
                .map(|f| need(f))
                .collect::<Result<Vec<_>>>()?
        }
    };
    let dir = config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| ModelError::Hub("cache path without a parent".into()))?;
    Ok(HubSnapshot { dir, weights })
}

fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|source| ModelError::Io {
        path: index.to_path_buf(),
        source,
    })?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::Hub(format!("{}: invalid JSON: {e}", index.display())))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::Hub(format!("{}: no `weight_map`", index.display())))?;
    let mut files: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    files.sort();
    files.dedup();
    if let Some(bad) = files
        .iter()
        .find(|f| f.contains("..") || f.starts_with('/'))
    {
        return Err(ModelError::Hub(format!(
            "{}: unsafe shard name `{bad}`",
            index.display()
        )));
    }
    Ok(files)
}
