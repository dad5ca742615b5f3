//! Remote datasets: an http(s) URL is downloaded once into a cache keyed by the URL and
//! read from there afterwards (offline too), optionally through a mirror, and checked
//! against a pinned sha256.
//!
//! Layout: `https://<host>/<path>` is cached at `<root>/<host>/<path>`, the same layout a
//! mirror has (`STEERBENCH_DATA_MIRROR`), so a pulled cache can be copied to a cluster and
//! served as its mirror. A query string becomes a prefix of the file name
//! (`<blake3(query)[..12]>-<name>`), so `x.json?raw=1` and `x.json` are different entries;
//! a mirror ignores queries.
//!
//! A download is written to a temporary file beside its destination and renamed into
//! place only after the whole body arrived, its sha256 matched the pin (when there is one)
//! and its bytes looked like the file type the URL names (JSON parses, Parquet has its magic
//! bytes): a 404, a truncated body or an HTML error page leave nothing in the cache.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};
use crate::source::FileType;

/// Environment variable naming a mirror: a directory or an http(s) URL.
pub const MIRROR_ENV: &str = "STEERBENCH_DATA_MIRROR";

/// Cap on downloaded size; steering datasets are small and this guards against a wrong URL.
pub const MAX_DOWNLOAD: u64 = 512 * 1024 * 1024;

/// Where URLs are read from instead of their own host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// `<dir>/<host>/<path>` is read in place (not copied into the cache).
    Dir(PathBuf),
    /// `<base>/<host>/<path>` is downloaded into the cache.
    Url(String),
}

impl Mirror {
    /// `http://…` / `https://…` is a URL mirror, anything else a directory. Empty: none.
    pub fn parse(s: &str) -> Option<Mirror> {
        let s = s.trim();
        if s.is_empty() {
            None
        } else if s.starts_with("http://") || s.starts_with("https://") {
            Some(Mirror::Url(s.trim_end_matches('/').to_string()))
        } else {
            Some(Mirror::Dir(PathBuf::from(s)))
        }
    }

    /// The mirror named by `STEERBENCH_DATA_MIRROR`, if set.
    pub fn from_env() -> Option<Mirror> {
        std::env::var(MIRROR_ENV)
            .ok()
            .and_then(|s| Mirror::parse(&s))
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mirror::Dir(d) => write!(f, "{}", d.display()),
            Mirror::Url(u) => f.write_str(u),
        }
    }
}

/// An expected sha256 and where it was written (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Lower-case hex.
    pub sha256: String,
    /// e.g. "the spec (`datasets.refusal.sha256`)" or "pipelines/suite_caa.lock".
    pub origin: String,
}

/// Where the bytes of a fetched URL came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Already in the cache: no network.
    Cache,
    /// Downloaded into the cache from this URL (the source itself or its mirror).
    Downloaded(String),
    /// Read in place from a mirror directory.
    MirrorDir,
}

/// A remote dataset available locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The local file holding the bytes (in the cache or a mirror directory).
    pub path: PathBuf,
    /// Lower-case hex sha256 of the bytes.
    pub sha256: String,
    pub bytes: u64,
    pub origin: Origin,
}

/// The dataset cache and the mirror it fills from.
#[derive(Debug, Clone)]
pub struct RemoteStore {
    root: PathBuf,
    mirror: Option<Mirror>,
}

impl RemoteStore {
    /// A cache rooted at `root` (steerbench uses `$STEERBENCH_HOME/datasets`).
    pub fn new(root: impl Into<PathBuf>, mirror: Option<Mirror>) -> Self {
        RemoteStore {
            root: root.into(),
            mirror,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn mirror(&self) -> Option<&Mirror> {
        self.mirror.as_ref()
    }

    /// Where `url` is cached.
    pub fn cache_path(&self, url: &str) -> Result<PathBuf> {
        let parts = UrlParts::parse(url)?;
        let mut p = self.root.join(&parts.host);
        let (dirs, file) = parts.segments.split_at(parts.segments.len() - 1);
        for d in dirs {
            p.push(d);
        }
        match &parts.query {
            None => p.push(&file[0]),
            Some(q) => {
                let tag = &blake3::hash(q.as_bytes()).to_hex()[..12];
                p.push(format!("{tag}-{}", file[0]));
            }
        }
        Ok(p)
    }

    /// The bytes of `url` as a local file: the cached copy when there is one (checked
    /// against `pin`; a copy that fails the pin is fetched again), else the mirror
    /// directory's file, else a download (from the mirror URL when one is set).
    pub fn fetch(&self, url: &str, pin: Option<&Pin>) -> Result<Fetched> {
        let cached = self.cache_path(url)?;
        if !cached.is_file() {
            return self.fetch_fresh(url, pin);
        }
        let (sha256, bytes) = sha256_file(&cached)?;
        if pin.is_none_or(|p| p.sha256.eq_ignore_ascii_case(&sha256)) {
            return Ok(Fetched {
                path: cached,
                sha256,
                bytes,
                origin: Origin::Cache,
            });
        }
        // The cached copy fails its pin: fetch again; when that is impossible (offline),
        // the mismatch of the copy at hand is the error to report.
        match self.fetch_fresh(url, pin) {
            Err(e @ DataError::PinMismatch { .. }) => Err(e),
            Err(e) => Err(pin_mismatch(
                url,
                pin.expect("a cached copy is refetched only when it fails a pin"),
                &sha256,
                &format!(
                    " (the cached copy {}; fetching it again failed: {e})",
                    cached.display()
                ),
            )),
            ok => ok,
        }
    }

    /// Like [`fetch`](Self::fetch) but never uses the cached copy (it is replaced on success).
    pub fn fetch_fresh(&self, url: &str, pin: Option<&Pin>) -> Result<Fetched> {
        let parts = UrlParts::parse(url)?;
        match &self.mirror {
            Some(Mirror::Dir(dir)) => {
                let mut p = dir.join(&parts.host);
                for s in &parts.segments {
                    p.push(s);
                }
                if !p.is_file() {
                    return Err(DataError::Http {
                        url: url.to_string(),
                        message: format!(
                            "not in the mirror directory {} (looked for {}; {MIRROR_ENV} is set)",
                            dir.display(),
                            p.display()
                        ),
                    });
                }
                let (sha256, bytes) = sha256_file(&p)?;
                check_pin(url, &sha256, pin)?;
                Ok(Fetched {
                    path: p,
                    sha256,
                    bytes,
                    origin: Origin::MirrorDir,
                })
            }
            Some(Mirror::Url(base)) => {
                let from = format!("{base}/{}/{}", parts.host, parts.segments.join("/"));
                self.download_into_cache(url, &from, pin)
            }
            None => self.download_into_cache(url, url, pin),
        }
    }

    fn download_into_cache(&self, url: &str, from: &str, pin: Option<&Pin>) -> Result<Fetched> {
        let dest = self.cache_path(url)?;
        let io = |error: std::io::Error| DataError::Io {
            source_name: dest.display().to_string(),
            error,
        };
        let dir = dest.parent().expect("a cache path has a parent");
        std::fs::create_dir_all(dir).map_err(io)?;
        let body = download(url, from)?;
        let sha256 = hex_sha256(&body);
        check_pin(url, &sha256, pin)?;
        if let Some(ft) = crate::source::Source::Url(url.to_string()).file_type() {
            check_body(url, from, ft, &body)?;
        }
        // Unique per process and call: concurrent fetches of one URL never share a file.
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(
            ".{}.partial-{}-{n}",
            dest.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &dest)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(Fetched {
            path: dest,
            sha256,
            bytes: body.len() as u64,
            origin: Origin::Downloaded(from.to_string()),
        })
    }
}

fn check_pin(url: &str, actual: &str, pin: Option<&Pin>) -> Result<()> {
    match pin {
        Some(p) if !p.sha256.eq_ignore_ascii_case(actual) => Err(pin_mismatch(url, p, actual, "")),
        _ => Ok(()),
    }
}

/// The error for bytes of `url` whose sha256 `actual` is not `pin`'s; `detail` (empty or
/// starting with a space) says where the bytes were when that helps.
fn pin_mismatch(url: &str, pin: &Pin, actual: &str, detail: &str) -> DataError {
    DataError::PinMismatch {
        url: url.to_string(),
        message: format!(
            "sha256 is {actual}{detail}, but {} pins {}; if the source changed on purpose, pin the new hash (`steerbench lock` rewrites the lock file)",
            pin.origin,
            pin.sha256.to_ascii_lowercase()
        ),
    }
}

/// Whether `s` is a sha256 as a pin must be written: 64 hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Lower-case hex sha256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 (hex) and size of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let io = |error| DataError::Io {
        source_name: path.display().to_string(),
        error,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h.finalize().iter().map(|b| format!("{b:02x}")).collect(), n))
}

/// The host and path of an http(s) URL, checked to be safe as cache path components.
struct UrlParts {
    host: String,
    segments: Vec<String>,
    query: Option<String>,
}

impl UrlParts {
    fn parse(url: &str) -> Result<UrlParts> {
        let bad = |why: &str| DataError::InvalidSource(format!("dataset URL `{url}`: {why}"));
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| bad("only http:// and https:// URLs are supported"))?;
        let rest = rest.split('#').next().unwrap_or(rest);
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q.to_string())),
            None => (rest, None),
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = host.rsplit('@').next().unwrap_or(host).to_ascii_lowercase();
        let safe = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && !s.starts_with('.')
                && !s.chars().any(|c| c == '\\' || c == '\0' || c.is_control())
        };
        if !safe(&host) {
            return Err(bad("it has no host"));
        }
        let segments: Vec<String> = path.split('/').map(str::to_string).collect();
        if segments.iter().any(|s| !safe(s)) {
            return Err(bad(
                "its path must name a file, with no empty, `.`-leading or `..` parts",
            ));
        }
        Ok(UrlParts {
            host,
            segments,
            query,
        })
    }
}

/// GETs `from` (redirects followed), the whole body or an error naming `url`.
pub(crate) fn download(url: &str, from: &str) -> Result<Vec<u8>> {
    let http = |message: String| DataError::Http {
        url: url.to_string(),
        message: if from == url {
            message
        } else {
            format!("{message} (from the mirror: {from})")
        },
    };
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(120))
        .redirects(5)
        .build();
    let resp = agent.get(from).call().map_err(|e| match e {
        ureq::Error::Status(code, r) => http(format!("HTTP {code} {}", r.status_text())),
        ureq::Error::Transport(t) => http(t.to_string()),
    })?;
    let declared: Option<u64> = resp
        .header("Content-Length")
        .and_then(|v| v.trim().parse().ok());
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(MAX_DOWNLOAD + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            http(format!(
                "the body is truncated: it broke off after {} bytes ({e})",
                bytes.len()
            ))
        })?;
    if bytes.len() as u64 > MAX_DOWNLOAD {
        return Err(http(format!("larger than {MAX_DOWNLOAD} bytes")));
    }
    if let Some(n) = declared {
        if n != bytes.len() as u64 {
            return Err(http(format!(
                "the body is truncated: {} of the {n} bytes announced arrived",
                bytes.len()
            )));
        }
    }
    Ok(bytes)
}

/// Refuses a body that is not the file type its URL names (an HTML error page served
/// with status 200, a half file): such bytes must not enter the cache.
fn check_body(url: &str, from: &str, ft: FileType, body: &[u8]) -> Result<()> {
    let text = || std::str::from_utf8(body).ok();
    let problem: Option<String> = match ft {
        FileType::Json => serde_json::from_slice::<serde::de::IgnoredAny>(
            body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body),
        )
        .err()
        .map(|e| format!("not JSON ({e})")),
        FileType::Jsonl => match text() {
            None => Some("not UTF-8 text".into()),
            Some(t) => t
                .trim_start_matches('\u{feff}')
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .find_map(|(i, l)| {
                    serde_json::from_str::<serde::de::IgnoredAny>(l)
                        .err()
                        .map(|e| format!("not JSON Lines (line {}: {e})", i + 1))
                }),
        },
        FileType::Csv => text().is_none().then(|| "not UTF-8 text".into()),
        FileType::Parquet => {
            (!(body.len() >= 8 && body.starts_with(b"PAR1") && body.ends_with(b"PAR1")))
                .then(|| "not a Parquet file (no PAR1 magic at both ends)".into())
        }
    };
    match problem {
        None => Ok(()),
        Some(p) => {
            let head: String = String::from_utf8_lossy(&body[..body.len().min(60)])
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let via = if from == url {
                String::new()
            } else {
                format!(" (from the mirror: {from})")
            };
            Err(DataError::Http {
                url: url.to_string(),
                message: format!(
                    "the body is {p}; it starts with `{}`{via}; nothing was cached",
                    head.trim()
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_paths_follow_host_and_path() {
        let s = RemoteStore::new("/c", None);
        assert_eq!(
            s.cache_path("https://raw.example.org/o/r/abc/d/x.json")
                .unwrap(),
            PathBuf::from("/c/raw.example.org/o/r/abc/d/x.json")
        );
        let q = s.cache_path("http://h:8080/a/x.csv?raw=1").unwrap();
        assert_eq!(q.parent().unwrap(), Path::new("/c/h:8080/a"));
        assert!(q.file_name().unwrap().to_str().unwrap().ends_with("-x.csv"));
        assert_ne!(q, s.cache_path("http://h:8080/a/x.csv?raw=2").unwrap());
        for bad in [
            "https://h/a/../x.json",
            "https://h//x.json",
            "https://h/",
            "https:///x.json",
            "https://h/.hidden",
            "ftp://h/x.json",
        ] {
            let e = s.cache_path(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn mirror_parse() {
        assert_eq!(Mirror::parse(""), None);
        assert_eq!(
            Mirror::parse("https://m.example/base/"),
            Some(Mirror::Url("https://m.example/base".into()))
        );
        assert_eq!(
            Mirror::parse("/srv/mirror"),
            Some(Mirror::Dir("/srv/mirror".into()))
        );
    }

    #[test]
    fn sha256_known_value() {
        assert_eq!(
            hex_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha256_hex(&hex_sha256(b"")));
        assert!(!is_sha256_hex("abc"));
    }

    #[test]
    fn body_checks() {
        let u = "https://h/x.json";
        assert!(check_body(u, u, FileType::Json, b"[{\"a\":1}]").is_ok());
        let e = check_body(u, u, FileType::Json, b"<!DOCTYPE html><html>")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not JSON") && e.contains("<!DOCTYPE html>"),
            "{e}"
        );
        let e = check_body(u, u, FileType::Jsonl, b"{\"a\":1}\n{oops\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(check_body(u, u, FileType::Parquet, b"PAR1....PAR1").is_ok());
        assert!(check_body(u, u, FileType::Parquet, b"PAR1").is_err());
    }

    #[test]
    fn mirror_dir_is_read_in_place_and_pins_checked() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("mirror");
        let f = m.join("h.example/o/x.json");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, b"[]").unwrap();
        let s = RemoteStore::new(dir.path().join("cache"), Some(Mirror::Dir(m.clone())));
        let got = s.fetch("https://h.example/o/x.json", None).unwrap();
        assert_eq!(got.path, f);
        assert_eq!(got.origin, Origin::MirrorDir);
        assert_eq!(got.sha256, hex_sha256(b"[]"));
        let pin = Pin {
            sha256: "0".repeat(64),
            origin: "x.lock".into(),
        };
        let e = s
            .fetch("https://h.example/o/x.json", Some(&pin))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.lock") && e.contains(&got.sha256), "{e}");
        let e = s
            .fetch("https://h.example/o/missing.json", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not in the mirror directory"), "{e}");
        assert!(!dir.path().join("cache").exists());
    }
}
