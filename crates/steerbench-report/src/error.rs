use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read template {path}: {source}")]
    TemplateRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template error: {0:#}")]
    Template(#[from] minijinja::Error),
    #[error("table: {0}")]
    Table(String),
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    #[error("plot {name}: {message}")]
    Plot { name: String, message: String },
    #[error("invalid report data: {0}")]
    Data(String),
    #[error("cannot load the bundled font")]
    Font,
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ReportError {
    let path = path.into();
    move |source| ReportError::Io { path, source }
}
