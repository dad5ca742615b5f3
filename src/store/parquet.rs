//! Parquet I/O for stage outputs: polars, zstd, fsync'd.

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: PolarsError },
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: PolarsError },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Writes `df` to `path` (zstd) and syncs it to disk. Returns the file size in bytes.
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<u64, ParquetError> {
    let p = path.display().to_string();
    let io = |source| ParquetError::Io {
        path: p.clone(),
        source,
    };
    let file = File::create(path).map_err(io)?;
    let mut w = KeepIoError {
        inner: &file,
        error: None,
    };
    let written = ParquetWriter::new(&mut w)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::default())
        .finish(df);
    if let Err(source) = written {
        // The Parquet writer turns an I/O failure (a full disk: ENOSPC, EFBIG) into an
        // unhelpful "Invalid thrift: transport error"; report the OS error instead.
        return Err(match w.error.take() {
            Some(e) => io(e),
            None => ParquetError::Write {
                path: p.clone(),
                source,
            },
        });
    }
    file.sync_all().map_err(io)?;
    Ok(file.metadata().map_err(io)?.len())
}

/// A writer that remembers the first I/O error of its inner writer.
struct KeepIoError<W> {
    inner: W,
    error: Option<std::io::Error>,
}

impl<W: std::io::Write> std::io::Write for KeepIoError<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| self.keep(e))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|e| self.keep(e))
    }
}

impl<W> KeepIoError<W> {
    fn keep(&mut self, e: &std::io::Error) {
        if self.error.is_none() {
            self.error = Some(std::io::Error::new(e.kind(), e.to_string()));
        }
    }
}

pub fn read_parquet(path: &Path) -> Result<DataFrame, ParquetError> {
    let p = path.display().to_string();
    let file = File::open(path).map_err(|source| ParquetError::Io {
        path: p.clone(),
        source,
    })?;
    ParquetReader::new(file)
        .finish()
        .map_err(|source| ParquetError::Read { path: p, source })
}

/// Row count and column names from the file's metadata (no data read).
pub fn parquet_meta(path: &Path) -> Result<(u64, Vec<String>), ParquetError> {
    let p = path.display().to_string();
    let file = File::open(path).map_err(|source| ParquetError::Io {
        path: p.clone(),
        source,
    })?;
    let mut r = ParquetReader::new(file);
    let rows = r.num_rows().map_err(|source| ParquetError::Read {
        path: p.clone(),
        source,
    })? as u64;
    let schema = r
        .schema()
        .map_err(|source| ParquetError::Read { path: p, source })?;
    Ok((rows, schema.iter_names().map(|n| n.to_string()).collect()))
}
