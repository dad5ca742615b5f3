//! How one Rust field type is stored as a Parquet column and read back.

use anyhow::{anyhow, Result};
use polars::prelude::*;

/// A column type of a [`Table`](super::Table).
pub trait Cell: Sized + Clone {
    fn column(name: &str, values: Vec<Self>) -> Result<Column>;
    fn read(df: &DataFrame, name: &str) -> Result<Vec<Self>>;
}

fn column<'a>(df: &'a DataFrame, name: &str) -> Result<&'a Column> {
    df.column(name)
        .map_err(|_| anyhow!("column `{name}` missing"))
}

fn non_null<T>(name: &str, xs: impl Iterator<Item = Option<T>>) -> Result<Vec<T>> {
    xs.enumerate()
        .map(|(i, x)| x.ok_or_else(|| anyhow!("null in `{name}` at row {i}")))
        .collect()
}

macro_rules! plain_cell {
    ($ty:ty, $get:ident) => {
        impl Cell for $ty {
            fn column(name: &str, values: Vec<Self>) -> Result<Column> {
                Ok(Column::new(name.into(), values))
            }
            fn read(df: &DataFrame, name: &str) -> Result<Vec<Self>> {
                let c = column(df, name)?;
                let ca = c.$get().map_err(|e| anyhow!("column `{name}`: {e}"))?;
                non_null(name, ca.iter())
            }
        }
    };
}

plain_cell!(u32, u32);
plain_cell!(i32, i32);
plain_cell!(f32, f32);
plain_cell!(bool, bool);

/// f64 measurements: a null (written by other tools) reads as NaN, the value steerbench
/// writes for "not defined here".
impl Cell for f64 {
    fn column(name: &str, values: Vec<Self>) -> Result<Column> {
        Ok(Column::new(name.into(), values))
    }
    fn read(df: &DataFrame, name: &str) -> Result<Vec<Self>> {
        let c = column(df, name)?;
        let ca = c.f64().map_err(|e| anyhow!("column `{name}`: {e}"))?;
        Ok(ca.iter().map(|x| x.unwrap_or(f64::NAN)).collect())
    }
}

impl Cell for String {
    fn column(name: &str, values: Vec<Self>) -> Result<Column> {
        Ok(Column::new(name.into(), values))
    }
    fn read(df: &DataFrame, name: &str) -> Result<Vec<Self>> {
        let c = column(df, name)?;
        let ca = c.str().map_err(|e| anyhow!("column `{name}`: {e}"))?;
        non_null(name, ca.iter().map(|s| s.map(str::to_string)))
    }
}

/// A layer: stored as `i32`, −1 where the row has no layer (baselines, all-layer methods).
impl Cell for Option<usize> {
    fn column(name: &str, values: Vec<Self>) -> Result<Column> {
        let v: Vec<i32> = values
            .into_iter()
            .map(|l| l.map_or(Ok(-1), i32::try_from))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Column::new(name.into(), v))
    }
    fn read(df: &DataFrame, name: &str) -> Result<Vec<Self>> {
        Ok(i32::read(df, name)?
            .into_iter()
            .map(|l| usize::try_from(l).ok())
            .collect())
    }
}

/// `list<f32>`: one vector per row.
impl Cell for Vec<f32> {
    fn column(name: &str, values: Vec<Self>) -> Result<Column> {
        let lc: ListChunked = values
            .iter()
            .map(|v| Some(Series::new(PlSmallStr::EMPTY, v.as_slice())))
            .collect();
        Ok(lc.into_series().with_name(name.into()).into_column())
    }
    fn read(df: &DataFrame, name: &str) -> Result<Vec<Self>> {
        let c = column(df, name)?;
        let lists = c.list().map_err(|e| anyhow!("column `{name}`: {e}"))?;
        lists
            .series_iter()
            .enumerate()
            .map(|(i, s)| {
                let s = s.ok_or_else(|| anyhow!("null list in `{name}` at row {i}"))?;
                Ok(s.f32()?.iter().map(|x| x.unwrap_or(f32::NAN)).collect())
            })
            .collect()
    }
}

/// Implements [`Cell`] for a name enum: a string column parsed with `FromStr`.
#[macro_export]
macro_rules! name_cell {
    ($ty:ty) => {
        impl $crate::tables::Cell for $ty {
            fn column(name: &str, values: Vec<Self>) -> anyhow::Result<polars::prelude::Column> {
                let v: Vec<String> = values.iter().map(|x| x.to_string()).collect();
                Ok(polars::prelude::Column::new(name.into(), v))
            }
            fn read(df: &polars::prelude::DataFrame, name: &str) -> anyhow::Result<Vec<Self>> {
                <String as $crate::tables::Cell>::read(df, name)?
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        s.parse::<$ty>()
                            .map_err(|e| anyhow::anyhow!("column `{name}`, row {i}: {e}"))
                    })
                    .collect()
            }
        }
    };
}
