//! The run store: `runs/<name>/<stage>/<fingerprint16>/` folders holding a
//! stage's outputs and `manifest.json`. A folder is complete exactly when its
//! manifest exists: outputs are written into `runs/<name>/.tmp-<stage>-<fp>/`,
//! synced, the manifest is written last, and the folder is renamed into place.

pub mod lock;
pub mod manifest;
pub mod parquet;

use std::fs;
use std::path::{Path, PathBuf};

pub use lock::{LockError, RunLock};
pub use manifest::{Manifest, OutputFile, Provenance, Timings};
pub use parquet::{parquet_meta, read_parquet, write_parquet, ParquetError};

pub const MANIFEST: &str = "manifest.json";

/// Where `steerbench report RUN_DIR` writes by default: `RUN_DIR/.report/<stage>/`. Stage
/// names cannot start with `.` (spec::check_name), so no stage folder can be called this,
/// and `list` skips it: a re-rendered report never shows up as a stage.
pub const RENDERED_REPORTS: &str = ".report";

/// Why a stage folder with a manifest does not hold what the manifest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The output's path relative to the stage folder.
    pub file: String,
    pub why: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.why)
    }
}

/// The cheap check done on every cache decision: each output listed in the manifest
/// exists as a file with the recorded size. A same-size change is not seen (see `verify`).
pub fn check_sizes(dir: &Path, m: &Manifest) -> Result<(), Damage> {
    for o in &m.outputs {
        let p = dir.join(&o.path);
        match fs::metadata(&p) {
            Ok(md) if !md.is_file() => {
                return Err(Damage {
                    file: o.path.clone(),
                    why: "not a file".into(),
                })
            }
            Ok(md) if md.len() != o.bytes => {
                return Err(Damage {
                    file: o.path.clone(),
                    why: format!("size {}, manifest says {}", md.len(), o.bytes),
                })
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Damage {
                    file: o.path.clone(),
                    why: if e.kind() == std::io::ErrorKind::NotFound {
                        "missing".into()
                    } else {
                        e.to_string()
                    },
                })
            }
        }
    }
    Ok(())
}

/// The full check (`steerbench verify`): sizes, then the blake3 of every output.
pub fn verify_outputs(dir: &Path, m: &Manifest) -> Result<(), Damage> {
    check_sizes(dir, m)?;
    for o in &m.outputs {
        let p = dir.join(&o.path);
        let hash = fs::File::open(&p).and_then(|mut f| {
            let mut h = blake3::Hasher::new();
            std::io::copy(&mut f, &mut h)?;
            Ok(h.finalize().to_hex().to_string())
        });
        match hash {
            Ok(h) if h != o.blake3 => {
                return Err(Damage {
                    file: o.path.clone(),
                    why: format!(
                        "blake3 {}, manifest says {}",
                        &h[..16],
                        &o.blake3[..o.blake3.len().min(16)]
                    ),
                })
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Damage {
                    file: o.path.clone(),
                    why: e.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// What the store holds for one stage instance.
#[derive(Debug)]
pub enum Cached {
    /// No complete folder (none, or one without a manifest): run it.
    Missing,
    /// Complete and its files match the manifest's sizes: reuse it.
    Complete(PathBuf),
    /// It has a manifest, but a file is missing or has another size (or the manifest
    /// does not parse): run it again.
    Damaged(PathBuf, Damage),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid manifest: {source}")]
    Manifest {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Parquet(#[from] ParquetError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One pipeline's run directory.
#[derive(Debug, Clone)]
pub struct RunStore {
    pub root: PathBuf,
}

impl RunStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunStore { root: root.into() }
    }

    pub fn stage_dir(&self, stage: &str, fp16: &str) -> PathBuf {
        self.root.join(stage).join(fp16)
    }

    /// The committed folder of a stage instance, if complete and undamaged.
    pub fn complete(&self, stage: &str, fp16: &str) -> Option<PathBuf> {
        match self.cached(stage, fp16) {
            Cached::Complete(d) => Some(d),
            _ => None,
        }
    }

    /// Whether a stage instance can be reused: its manifest exists and parses, and every
    /// output it lists exists with the recorded size.
    pub fn cached(&self, stage: &str, fp16: &str) -> Cached {
        let d = self.stage_dir(stage, fp16);
        if !d.join(MANIFEST).is_file() {
            return Cached::Missing;
        }
        match Self::read_manifest(&d) {
            Ok(m) => match check_sizes(&d, &m) {
                Ok(()) => Cached::Complete(d),
                Err(damage) => Cached::Damaged(d, damage),
            },
            Err(e) => Cached::Damaged(
                d,
                Damage {
                    file: MANIFEST.into(),
                    why: match e {
                        StoreError::Manifest { source, .. } => format!("invalid: {source}"),
                        other => other.to_string(),
                    },
                },
            ),
        }
    }

    /// A fresh, empty temporary folder for a stage (leftovers of a killed run are removed).
    pub fn begin(&self, stage: &str, fp16: &str) -> Result<PathBuf, StoreError> {
        let tmp = self.root.join(format!(".tmp-{stage}-{fp16}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(tmp)
    }

    /// Writes the manifest into `tmp`, syncs everything and renames `tmp` into place.
    pub fn commit(
        &self,
        tmp: &Path,
        stage: &str,
        fp16: &str,
        manifest: &Manifest,
    ) -> Result<PathBuf, StoreError> {
        let mpath = tmp.join(MANIFEST);
        let json = serde_json::to_vec_pretty(manifest).map_err(|source| StoreError::Manifest {
            path: mpath.clone(),
            source,
        })?;
        write_synced(&mpath, &json)?;
        sync_tree(tmp)?;
        let dest = self.stage_dir(stage, fp16);
        let parent = dest.parent().expect("stage dir has a parent");
        fs::create_dir_all(parent).map_err(io(parent))?;
        // An incomplete or damaged folder may be here (undamaged complete ones are
        // skipped). It is moved aside in one rename, the new folder renamed into place, and
        // only then is the old one deleted: a kill at any point leaves either the old folder
        // or the new one at `dest` (or neither, never a mix), and other stages are untouched.
        let old = self.root.join(format!(".old-{stage}-{fp16}"));
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        let moved_aside = match fs::rename(&dest, &old) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => return Err(StoreError::Io { path: dest, source }),
        };
        fs::rename(tmp, &dest).map_err(io(&dest))?;
        sync_dir(parent)?;
        sync_dir(&self.root)?;
        if moved_aside {
            fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        Ok(dest)
    }

    pub fn read_manifest(dir: &Path) -> Result<Manifest, StoreError> {
        let p = dir.join(MANIFEST);
        let bytes = fs::read(&p).map_err(io(&p))?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Manifest { path: p, source })
    }

    /// Everything in the run directory, for `steerbench ls`.
    pub fn list(&self) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        let rd = fs::read_dir(&self.root).map_err(io(&self.root))?;
        let mut names: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            if let Some(rest) = name.strip_prefix(".tmp-") {
                out.push(Entry {
                    stage: rest.to_string(),
                    fingerprint: String::new(),
                    status: Status::Interrupted,
                    dir: p,
                });
                continue;
            }
            if let Some(rest) = name.strip_prefix(".old-") {
                // A damaged folder moved aside by a commit that was killed before deleting it.
                out.push(Entry {
                    stage: rest.to_string(),
                    fingerprint: String::new(),
                    status: Status::Replaced,
                    dir: p,
                });
                continue;
            }
            // Other dot names (`.lock`, `.report`) are not stage folders.
            if name.starts_with('.') || !p.is_dir() {
                continue;
            }
            let mut fps: Vec<_> = fs::read_dir(&p)
                .map_err(io(&p))?
                .flatten()
                .map(|e| e.path())
                .collect();
            fps.sort();
            for d in fps.into_iter().filter(|d| d.is_dir()) {
                let fp = d
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("")
                    .to_string();
                let status = match Self::read_manifest(&d) {
                    Ok(m) => match check_sizes(&d, &m) {
                        Ok(()) => Status::Complete(Box::new(m)),
                        Err(damage) => Status::Damaged(Box::new(m), damage),
                    },
                    Err(_) if !d.join(MANIFEST).exists() => Status::Incomplete,
                    Err(e) => Status::Corrupt(e.to_string()),
                };
                out.push(Entry {
                    stage: name.clone(),
                    fingerprint: fp,
                    status,
                    dir: d,
                });
            }
        }
        Ok(out)
    }
}

#[derive(Debug)]
pub struct Entry {
    pub stage: String,
    pub fingerprint: String,
    pub status: Status,
    pub dir: PathBuf,
}

#[derive(Debug)]
pub enum Status {
    Complete(Box<Manifest>),
    /// A manifest whose outputs are missing or have another size: `run` re-runs it.
    Damaged(Box<Manifest>, Damage),
    /// A damaged folder a re-run moved aside and was killed before deleting; the next
    /// commit of that stage removes it.
    Replaced,
    /// A stage folder without a manifest (never counts as done).
    Incomplete,
    /// A temporary folder left by a killed run; the next run removes it.
    Interrupted,
    Corrupt(String),
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir))
}

/// fsyncs every file and folder under `dir` (stage code may have written files without syncing).
pub(crate) fn sync_tree(dir: &Path) -> Result<(), StoreError> {
    for e in fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let p = e.path();
        if p.is_dir() {
            sync_tree(&p)?;
        } else {
            fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(io(&p))?;
        }
    }
    sync_dir(dir)
}

/// Lists the files of a finished stage folder with sizes, hashes and (for Parquet) row counts.
pub fn describe_outputs(dir: &Path) -> Result<Vec<OutputFile>, StoreError> {
    let mut out = Vec::new();
    collect(dir, dir, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<OutputFile>) -> Result<(), StoreError> {
    for e in fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(base, &p, out)?;
            continue;
        }
        let rel = p
            .strip_prefix(base)
            .unwrap_or(&p)
            .to_string_lossy()
            .replace('\\', "/");
        if rel == MANIFEST {
            continue;
        }
        let bytes = fs::read(&p).map_err(io(&p))?;
        let (rows, columns) = if rel.ends_with(".parquet") {
            let (r, c) = parquet_meta(&p)?;
            (Some(r), Some(c))
        } else {
            (None, None)
        };
        out.push(OutputFile {
            path: rel,
            bytes: bytes.len() as u64,
            blake3: blake3::hash(&bytes).to_hex().to_string(),
            rows,
            columns,
        });
    }
    Ok(())
}
