//! Slurm resources and sharding: the `[slurm]` section of `steerbench.toml`, overridden
//! by the command line. The file is per cluster, not per pipeline (a partition name
//! means nothing elsewhere), so it is not part of the spec and never enters a
//! fingerprint: `./steerbench.toml` if present, else `$STEERBENCH_HOME/steerbench.toml`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Resources of every job (`sbatch --partition …`), shards per shardable stage and the
/// most array tasks running at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// `sbatch --time` (e.g. `02:00:00`).
    pub time: Option<String>,
    pub cpus_per_task: Option<u32>,
    /// `sbatch --mem` (e.g. `16G`).
    pub mem: Option<String>,
    /// `sbatch --gres` (e.g. `gpu:1`).
    pub gres: Option<String>,
    pub account: Option<String>,
    /// Array throttle: at most this many shards of a stage run at once.
    pub max_parallel: Option<u32>,
    /// Shards per shardable stage (`extract`, `evaluate`); 1 runs every stage whole.
    #[serde(default = "one")]
    pub shards: usize,
}

fn one() -> usize {
    1
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    slurm: Option<SlurmOptions>,
}

/// Where the optional config file is looked for, in order.
pub fn config_candidates() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("steerbench.toml")];
    if let Ok(home) = steerbench_model::registry::steerbench_home() {
        v.push(home.join("steerbench.toml"));
    }
    v
}

impl SlurmOptions {
    /// The `[slurm]` section of the first config file found (defaults when none).
    pub fn from_config() -> Result<(SlurmOptions, Option<PathBuf>), String> {
        for path in config_candidates() {
            if path.is_file() {
                return Ok((Self::from_file(&path)?, Some(path)));
            }
        }
        Ok((
            SlurmOptions {
                shards: 1,
                ..Default::default()
            },
            None,
        ))
    }

    pub fn from_file(path: &Path) -> Result<SlurmOptions, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> Result<SlurmOptions, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let opts = file.slurm.unwrap_or(SlurmOptions {
            shards: 1,
            ..Default::default()
        });
        if opts.shards == 0 {
            return Err("[slurm] shards must be at least 1".into());
        }
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_slurm_section() {
        let o = SlurmOptions::from_toml(
            "[slurm]\npartition = \"gpu\"\ntime = \"02:00:00\"\ncpus-per-task = 8\nmem = \"32G\"\ngres = \"gpu:1\"\nmax-parallel = 16\nshards = 8\n",
        )
        .unwrap();
        assert_eq!(o.partition.as_deref(), Some("gpu"));
        assert_eq!(o.cpus_per_task, Some(8));
        assert_eq!(o.max_parallel, Some(16));
        assert_eq!(o.shards, 8);
        assert_eq!(SlurmOptions::from_toml("").unwrap().shards, 1);
    }

    #[test]
    fn unknown_keys_are_errors_with_their_place() {
        let e = SlurmOptions::from_toml("[slurm]\npartiton = \"gpu\"\n").unwrap_err();
        assert!(e.contains("partiton") && e.contains("line 2"), "{e}");
        let e = SlurmOptions::from_toml("[slurm]\nshards = 0\n").unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
    }
}
