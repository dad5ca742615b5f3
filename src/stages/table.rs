//! Small helpers to build and read the tidy tables stages write.

use anyhow::{anyhow, Result};
use polars::prelude::*;

pub fn str_col(name: &str, v: Vec<String>) -> Column {
    Column::new(name.into(), v)
}

pub fn u32_col(name: &str, v: Vec<u32>) -> Column {
    Column::new(name.into(), v)
}

pub fn i32_col(name: &str, v: Vec<i32>) -> Column {
    Column::new(name.into(), v)
}

pub fn f32_col(name: &str, v: Vec<f32>) -> Column {
    Column::new(name.into(), v)
}

pub fn f64_col(name: &str, v: Vec<f64>) -> Column {
    Column::new(name.into(), v)
}

/// A `list<f32>` column, one list per row.
pub fn f32_list_col(name: &str, rows: &[Vec<f32>]) -> Column {
    let lc: ListChunked = rows
        .iter()
        .map(|v| Some(Series::new(PlSmallStr::EMPTY, v.as_slice())))
        .collect();
    lc.into_series().with_name(name.into()).into_column()
}

/// A column with one value per row of `rows` (tables built from structs).
pub fn f64_of<T>(name: &str, rows: &[T], f: impl Fn(&T) -> f64) -> Column {
    f64_col(name, rows.iter().map(f).collect())
}

pub fn str_of<T>(name: &str, rows: &[T], f: impl Fn(&T) -> String) -> Column {
    str_col(name, rows.iter().map(f).collect())
}

pub fn frame(cols: Vec<Column>) -> Result<DataFrame> {
    Ok(DataFrame::new_infer_height(cols)?)
}

fn column<'a>(df: &'a DataFrame, name: &str) -> Result<&'a Column> {
    df.column(name)
        .map_err(|_| anyhow!("column `{name}` missing"))
}

pub fn read_bool(df: &DataFrame, name: &str) -> Result<Vec<bool>> {
    Ok(column(df, name)?
        .bool()?
        .iter()
        .map(|b| b.unwrap_or(false))
        .collect())
}

pub fn read_str(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let c = column(df, name)?;
    Ok(c.str()?
        .iter()
        .map(|s| s.unwrap_or_default().to_string())
        .collect())
}

pub fn read_u32(df: &DataFrame, name: &str) -> Result<Vec<u32>> {
    let c = column(df, name)?;
    c.u32()?
        .iter()
        .map(|x| x.ok_or_else(|| anyhow!("null in `{name}`")))
        .collect()
}

pub fn read_i32(df: &DataFrame, name: &str) -> Result<Vec<i32>> {
    let c = column(df, name)?;
    c.i32()?
        .iter()
        .map(|x| x.ok_or_else(|| anyhow!("null in `{name}`")))
        .collect()
}

pub fn read_f32(df: &DataFrame, name: &str) -> Result<Vec<f32>> {
    let c = column(df, name)?;
    c.f32()?
        .iter()
        .map(|x| x.ok_or_else(|| anyhow!("null in `{name}`")))
        .collect()
}

pub fn read_f64(df: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let c = column(df, name)?;
    Ok(c.f64()?.iter().map(|x| x.unwrap_or(f64::NAN)).collect())
}

pub fn read_f32_lists(df: &DataFrame, name: &str) -> Result<Vec<Vec<f32>>> {
    let c = column(df, name)?;
    c.list()?
        .series_iter()
        .map(|s| {
            let s = s.ok_or_else(|| anyhow!("null list in `{name}`"))?;
            Ok(s.f32()?.iter().map(|x| x.unwrap_or(f32::NAN)).collect())
        })
        .collect()
}
