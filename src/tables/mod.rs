//! Every Parquet table the stages exchange, as a row type.
//!
//! A table is declared once with [`table!`]: the struct's field names are the Parquet
//! column names, and its field types say how each column is stored ([`Cell`]). The
//! writer (`ctx.write_table(&rows)`) and every reader ([`read_table`]) use the same
//! type, so a renamed or retyped column is a compile error, not a runtime `column
//! missing`. docs/outputs.md documents the same schemas for users.
//!
//! The names inside the tables (metrics, conditions, methods, directions) are enums in
//! [`names`], parsed on read with no fallback: an unknown name in a file is an error
//! that says which column and which value.

pub mod cell;
pub mod names;
pub mod rows;

use std::path::Path;

use anyhow::{Context, Result};
use polars::prelude::DataFrame;

pub use cell::Cell;
pub use names::{Condition, Direction, MethodKind, ScoreMetric, VectorKind};
pub use rows::*;

/// A Parquet table of rows of `Self`.
pub trait Table: Sized {
    /// File stem inside a stage folder (`scores` → `scores.parquet`).
    const FILE: &'static str;
    /// Column names in file order (the struct's field names).
    const COLUMNS: &'static [&'static str];
    fn to_frame(rows: &[Self]) -> Result<DataFrame>;
    fn from_frame(df: &DataFrame) -> Result<Vec<Self>>;
}

/// Reads table `T` from a stage folder.
pub fn read_table<T: Table>(dir: &Path) -> Result<Vec<T>> {
    let path = dir.join(format!("{}.parquet", T::FILE));
    let df = crate::store::read_parquet(&path)?;
    T::from_frame(&df).with_context(|| format!("reading {}", path.display()))
}

/// Declares a table: a row struct whose fields are the columns.
///
/// ```ignore
/// table! {
///     /// doc
///     pub struct NormRow = "norms" { pub layer: u32, pub site: String }
/// }
/// ```
#[macro_export]
macro_rules! table {
    (
        $(#[$meta:meta])*
        pub struct $Row:ident = $file:literal {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $Row {
            $( $(#[$fmeta])* pub $field: $ty ),+
        }

        impl $crate::tables::Table for $Row {
            const FILE: &'static str = $file;
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),+];

            fn to_frame(rows: &[Self]) -> anyhow::Result<polars::prelude::DataFrame> {
                let columns = vec![$(
                    <$ty as $crate::tables::Cell>::column(
                        stringify!($field),
                        rows.iter().map(|r| r.$field.clone()).collect(),
                    )?
                ),+];
                Ok(polars::prelude::DataFrame::new_infer_height(columns)?)
            }

            fn from_frame(df: &polars::prelude::DataFrame) -> anyhow::Result<Vec<Self>> {
                $( let mut $field = <$ty as $crate::tables::Cell>::read(df, stringify!($field))?.into_iter(); )+
                (0..df.height())
                    .map(|i| {
                        Ok($Row { $( $field: $field.next().ok_or_else(|| {
                            anyhow::anyhow!("column `{}` ends at row {i}", stringify!($field))
                        })? ),+ })
                    })
                    .collect()
            }
        }
    };
}
