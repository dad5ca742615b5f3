//! Where dataset bytes come from: `builtin:<name>`, a local path, or an http(s) URL.

use crate::builtin;
use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// A dataset source as written in a pipeline spec (and, once planned, where the bytes are read:
/// relative paths are then resolved against the spec file's folder).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// `builtin:<name>`: datasets/<name>.jsonl, embedded in the binary.
    Builtin(String),
    /// A local file.
    Path(PathBuf),
    /// An http(s) URL.
    Url(String),
}

impl Source {
    /// `builtin:<name>` | `http://…` / `https://…` | anything else is a local path. Surrounding
    /// whitespace is ignored; an empty source or a builtin name with other characters than
    /// letters, digits, `_` and `-` is an error.
    pub fn parse(s: &str) -> Result<Source> {
        let s = s.trim();
        let bad = |m: String| DataError::InvalidSource(m);
        if s.is_empty() {
            return Err(bad("dataset source must not be empty".into()));
        }
        if let Some(name) = s.strip_prefix("builtin:") {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(bad(format!(
                    "`{s}` is not a valid builtin name (letters, digits, `_`, `-`)"
                )));
            }
            return Ok(Source::Builtin(name.to_string()));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Source::Url(s.to_string()));
        }
        Ok(Source::Path(PathBuf::from(s)))
    }

    /// The file type implied by the name (builtins are JSONL).
    pub fn file_type(&self) -> Option<FileType> {
        match self {
            Source::Builtin(_) => Some(FileType::Jsonl),
            Source::Path(p) => FileType::from_name(&p.to_string_lossy()),
            Source::Url(u) => {
                let path = u.split(['?', '#']).next().unwrap_or(u);
                FileType::from_name(path)
            }
        }
    }

    /// Reads the raw bytes (downloads URLs; builtins come from the binary).
    pub fn read(&self) -> Result<Vec<u8>> {
        match self {
            Source::Builtin(name) => builtin::get(name)
                .map(|b| b.content.as_bytes().to_vec())
                .ok_or_else(|| DataError::UnknownBuiltin {
                    name: name.clone(),
                    available: builtin::all().iter().map(|b| b.name.to_string()).collect(),
                }),
            Source::Path(p) => std::fs::read(p).map_err(|error| DataError::Io {
                source_name: self.to_string(),
                error,
            }),
            Source::Url(url) => crate::remote::download(url, url),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Builtin(n) => write!(f, "builtin:{n}"),
            Source::Path(p) => write!(f, "{}", p.display()),
            Source::Url(u) => f.write_str(u),
        }
    }
}

impl std::str::FromStr for Source {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Source> {
        Source::parse(s)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Source::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for Source {
    fn schema_name() -> String {
        "DatasetSource".into()
    }
    fn json_schema(_: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::String.into()),
            metadata: Some(Box::new(schemars::schema::Metadata {
                description: Some(
                    "`builtin:<name>`, a local path (relative to the spec file) or an http(s) URL"
                        .into(),
                ),
                ..Default::default()
            })),
            ..Default::default()
        }
        .into()
    }
}

/// Serialization file types understood by the loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileType {
    /// A JSON array of objects, or an object holding such an array under a key.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated with a header row.
    Csv,
    Parquet,
}

impl FileType {
    pub fn from_name(name: &str) -> Option<FileType> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(FileType::Json),
            "jsonl" | "ndjson" => Some(FileType::Jsonl),
            "csv" => Some(FileType::Csv),
            "parquet" | "pq" => Some(FileType::Parquet),
            _ => None,
        }
    }
}

/// Hex blake3 of the bytes: the dataset's content identity for stage fingerprints.
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Serves exactly one HTTP response on a local port and returns its base URL.
    fn serve_once(status: &'static str, body: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(resp.as_bytes());
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn parse_kinds() {
        assert_eq!(
            Source::parse("builtin:sentiment_ab").unwrap(),
            Source::Builtin("sentiment_ab".into())
        );
        assert_eq!(
            Source::parse("https://x.org/a.csv").unwrap(),
            Source::Url("https://x.org/a.csv".into())
        );
        assert_eq!(
            Source::parse("data/a.jsonl").unwrap(),
            Source::Path("data/a.jsonl".into())
        );
        assert_eq!(Source::parse("builtin:x").unwrap().to_string(), "builtin:x");
    }

    #[test]
    fn invalid_sources_and_serde_round_trip() {
        assert_eq!(
            Source::parse("  builtin:x ").unwrap(),
            Source::Builtin("x".into())
        );
        let err = Source::parse(" ").unwrap_err().to_string();
        assert_eq!(err, "dataset source must not be empty");
        let err = Source::parse("builtin:a b").unwrap_err().to_string();
        assert!(err.contains("not a valid builtin name"), "{err}");
        let src: Source = serde_json::from_str("\"data/a.jsonl\"").unwrap();
        assert_eq!(src, Source::Path("data/a.jsonl".into()));
        assert_eq!(serde_json::to_string(&src).unwrap(), "\"data/a.jsonl\"");
        let err = serde_json::from_str::<Source>("\"builtin:\"").unwrap_err();
        assert!(
            err.to_string().contains("not a valid builtin name"),
            "{err}"
        );
        let schema = serde_json::to_string(&schemars::schema_for!(Source)).unwrap();
        assert!(schema.contains("builtin:<name>"), "{schema}");
    }

    #[test]
    fn file_types_from_names() {
        assert_eq!(
            Source::parse("a/b.JSONL").unwrap().file_type(),
            Some(FileType::Jsonl)
        );
        assert_eq!(
            Source::parse("b.parquet").unwrap().file_type(),
            Some(FileType::Parquet)
        );
        assert_eq!(
            Source::parse("http://h/x.csv?raw=1").unwrap().file_type(),
            Some(FileType::Csv)
        );
        assert_eq!(
            Source::parse("builtin:anything").unwrap().file_type(),
            Some(FileType::Jsonl)
        );
        assert_eq!(Source::parse("noext").unwrap().file_type(), None);
        assert_eq!(Source::parse("x.txt").unwrap().file_type(), None);
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Source::parse("/nonexistent/dir/data.jsonl")
            .unwrap()
            .read()
            .unwrap_err();
        assert!(matches!(err, DataError::Io { .. }));
        assert!(
            err.to_string().contains("/nonexistent/dir/data.jsonl"),
            "{err}"
        );
    }

    #[test]
    fn unknown_builtin_lists_available() {
        let err = Source::parse("builtin:no_such_dataset")
            .unwrap()
            .read()
            .unwrap_err();
        assert!(matches!(err, DataError::UnknownBuiltin { .. }));
        assert!(err.to_string().contains("no_such_dataset"));
    }

    #[test]
    fn url_is_downloaded_from_local_server() {
        let base = serve_once("200 OK", "{\"id\":\"1\",\"text\":\"hi\"}\n");
        let bytes = Source::parse(&format!("{base}/corpus.jsonl"))
            .unwrap()
            .read()
            .unwrap();
        assert_eq!(bytes, b"{\"id\":\"1\",\"text\":\"hi\"}\n");
    }

    #[test]
    fn url_source_loads_records_with_type_from_url_path() {
        use crate::{load, FieldMap, Format, LoadOptions};
        let base = serve_once("200 OK", "id,input,output\na1,hot,cold\na2,up,down\n");
        let src = Source::parse(&format!("{base}/antonyms.csv?download=1")).unwrap();
        let ds = load(
            &src,
            &FieldMap::default_for(Format::IclTask),
            &LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(ds.records.ids(), vec!["a1", "a2"]);
        assert_eq!(
            ds.content_hash,
            content_hash(b"id,input,output\na1,hot,cold\na2,up,down\n")
        );
    }

    #[test]
    fn http_error_status_is_reported() {
        let base = serve_once("404 Not Found", "nope");
        let url = format!("{base}/missing.jsonl");
        let err = Source::parse(&url).unwrap().read().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("404") && msg.contains(&url), "{msg}");
    }

    #[test]
    fn hash_is_blake3_hex() {
        assert_eq!(content_hash(b"abc").len(), 64);
        assert_ne!(content_hash(b"abc"), content_hash(b"abd"));
        assert_eq!(
            content_hash(b""),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }
}
