//! Provenance: model, datasets (source and hash), spec hash, versions, stage times.

use std::collections::BTreeMap;

use steerbench_report as rep;

use super::inputs::Folder;

pub fn provenance(folders: &[Folder]) -> rep::Provenance {
    let pv = &folders[0].manifest.provenance;
    let mut datasets: BTreeMap<String, (String, String, Option<String>)> = BTreeMap::new();
    for f in folders {
        for (name, d) in &f.manifest.provenance.datasets {
            datasets.insert(
                name.clone(),
                (d.source.clone(), d.blake3.clone(), d.sha256.clone()),
            );
        }
    }
    rep::Provenance {
        model_id: folders
            .iter()
            .find_map(|f| f.manifest.provenance.model_id.clone())
            .unwrap_or_default(),
        weight_hash: folders
            .iter()
            .find_map(|f| f.manifest.provenance.model_weight_hash.clone()),
        model_dtype: folders
            .iter()
            .find_map(|f| f.manifest.provenance.model_dtype.clone()),
        datasets: datasets
            .into_iter()
            .map(|(name, (source, hash, sha256))| rep::DatasetProvenance {
                name,
                source: Some(source),
                hash: Some(hash),
                sha256,
            })
            .collect(),
        spec_hash: Some(pv.spec_hash.clone()),
        steerbench_version: pv.steerbench_version.clone(),
        git_commit: pv.git_commit.clone(),
        seed: Some(pv.seed),
        hardware: Some(format!(
            "{} threads, {}",
            pv.threads,
            std::env::consts::ARCH
        )),
        stage_times: folders
            .iter()
            .map(|f| rep::StageTime {
                stage: f.manifest.stage.clone(),
                seconds: f.manifest.timings.wall_seconds,
                cached: false,
            })
            .collect(),
    }
}
