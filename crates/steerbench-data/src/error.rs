//! Error type: every failure names the source, the row/line and the field involved.

use std::fmt;

/// Where in a source file a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    /// The file as a whole (e.g. it is not valid JSON at all).
    File,
    /// 1-based line of a JSONL or CSV file.
    Line(usize),
    /// 0-based element of a JSON array.
    Item(usize),
    /// 0-based row of a Parquet table.
    Row(usize),
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::File => write!(f, "file"),
            Loc::Line(n) => write!(f, "line {n}"),
            Loc::Item(n) => write!(f, "item [{n}]"),
            Loc::Row(n) => write!(f, "row {n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{source_name}: cannot read: {error}")]
    Io {
        source_name: String,
        error: std::io::Error,
    },

    #[error("{0}")]
    InvalidSource(String),

    #[error("{source_name}: the file changed after the pipeline was planned (blake3 {expected} at plan time, {actual} now); run again to plan with its new contents")]
    Changed {
        source_name: String,
        expected: String,
        actual: String,
    },

    #[error("{url}: download failed: {message}")]
    Http { url: String, message: String },

    /// Bytes whose sha256 differs from a pin (the message names both hashes and where the
    /// pin was written; see `remote::pin_mismatch`). Two fields keep `DataError` small.
    #[error("{url}: {message}")]
    PinMismatch { url: String, message: String },

    #[error("unknown built-in dataset `{name}`; available: {}", available.join(", "))]
    UnknownBuiltin {
        name: String,
        available: Vec<String>,
    },

    #[error("{source_name}: cannot tell the file type from its name; use a .json, .jsonl, .csv or .parquet file or set the file type")]
    UnknownFileType { source_name: String },

    #[error("{source_name}: {loc}: {message}")]
    Parse {
        source_name: String,
        loc: Loc,
        message: String,
    },

    #[error("{source_name}: {loc}{}: missing field `{field}`", id_note(id))]
    MissingField {
        source_name: String,
        loc: Loc,
        /// The record's id, when it has one.
        id: Option<String>,
        field: String,
    },

    #[error(
        "{source_name}: {loc}{}: field `{field}` should be {expected}, found {found}",
        id_note(id)
    )]
    WrongType {
        source_name: String,
        loc: Loc,
        /// The record's id, when it has one.
        id: Option<String>,
        field: String,
        expected: &'static str,
        found: &'static str,
    },

    #[error("{source_name}: {loc}{}: field `{field}`: {message}", id_note(id))]
    InvalidValue {
        source_name: String,
        loc: Loc,
        /// The record's id, when it has one.
        id: Option<String>,
        field: String,
        message: String,
    },

    #[error("{source_name}: contains no records")]
    Empty { source_name: String },

    #[error("{source_name}: duplicate id `{id}` ({loc})")]
    DuplicateId {
        source_name: String,
        loc: Loc,
        id: String,
    },

    #[error("field mapping for {format}: {message}")]
    FieldMap {
        format: &'static str,
        message: String,
    },

    #[error("invalid split: {0}")]
    Split(String),

    #[error("cannot render prompt for `{id}`: {message}")]
    Render { id: String, message: String },
}

/// ` (id `x`)` after a record's location, when its id is known.
fn id_note(id: &Option<String>) -> String {
    id.as_ref()
        .map(|i| format!(" (id `{i}`)"))
        .unwrap_or_default()
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
