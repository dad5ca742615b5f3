//! Parsing file bytes into generic rows (JSON objects) that remember where they came from.
//! Typed extraction happens afterwards in `extract`, so every file type shares one error path.

use crate::error::{DataError, Loc, Result};
use crate::source::FileType;
use serde_json::{Map, Value};

/// One row of a source file.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub loc: Loc,
    pub fields: Map<String, Value>,
}

/// Parses `bytes` as `file_type`. `json_key` picks the list inside a top-level JSON object.
pub fn parse_rows(
    bytes: &[u8],
    file_type: FileType,
    source_name: &str,
    json_key: Option<&str>,
) -> Result<Vec<Row>> {
    match file_type {
        FileType::Jsonl => parse_jsonl(bytes, source_name),
        FileType::Json => parse_json(bytes, source_name, json_key),
        FileType::Csv => parse_csv(bytes, source_name),
        FileType::Parquet => parse_parquet(bytes, source_name),
    }
}

fn parse_err(source_name: &str, loc: Loc, message: impl Into<String>) -> DataError {
    DataError::Parse {
        source_name: source_name.to_string(),
        loc,
        message: message.into(),
    }
}

fn utf8<'a>(bytes: &'a [u8], source_name: &str) -> Result<&'a str> {
    // A UTF-8 byte-order mark (some editors write one) is not content.
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    std::str::from_utf8(bytes)
        .map_err(|e| parse_err(source_name, Loc::File, format!("not UTF-8 text: {e}")))
}

fn object(v: Value, source_name: &str, loc: Loc) -> Result<Row> {
    match v {
        Value::Object(fields) => Ok(Row { loc, fields }),
        other => Err(parse_err(
            source_name,
            loc,
            format!("expected a JSON object, found {}", kind(&other)),
        )),
    }
}

/// Short description of a JSON value's type for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_jsonl(bytes: &[u8], source_name: &str) -> Result<Vec<Row>> {
    let text = utf8(bytes, source_name)?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let loc = Loc::Line(i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| parse_err(source_name, loc, format!("invalid JSON: {e}")))?;
        rows.push(object(v, source_name, loc)?);
    }
    Ok(rows)
}

fn parse_json(bytes: &[u8], source_name: &str, json_key: Option<&str>) -> Result<Vec<Row>> {
    let text = utf8(bytes, source_name)?;
    let v: Value = serde_json::from_str(text).map_err(|e| {
        parse_err(
            source_name,
            Loc::File,
            format!(
                "invalid JSON at line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let list = match (v, json_key) {
        (Value::Array(items), None) => items,
        (Value::Object(mut obj), Some(key)) => match obj.remove(key) {
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(parse_err(
                    source_name,
                    Loc::File,
                    format!("`{key}` holds {}, not a list", kind(&other)),
                ))
            }
            None => {
                let keys: Vec<&String> = obj.keys().collect();
                return Err(parse_err(
                    source_name,
                    Loc::File,
                    format!("no key `{key}` at the top level (keys: {keys:?})"),
                ));
            }
        },
        (Value::Object(obj), None) => {
            // Accept `{"<anything>": [...]}` when exactly one key holds a list.
            let mut lists: Vec<(String, Vec<Value>)> = obj
                .into_iter()
                .filter_map(|(k, v)| match v {
                    Value::Array(items) => Some((k, items)),
                    _ => None,
                })
                .collect();
            let keys: Vec<&String> = lists.iter().map(|(k, _)| k).collect();
            match keys.as_slice() {
                [_] => lists.pop().map(|(_, items)| items).unwrap_or_default(),
                [] => {
                    return Err(parse_err(
                        source_name,
                        Loc::File,
                        "top-level object holds no list of records",
                    ))
                }
                many => {
                    return Err(parse_err(
                        source_name,
                        Loc::File,
                        format!(
                            "top-level object holds several lists ({many:?}); say which key to use"
                        ),
                    ))
                }
            }
        }
        (Value::Array(_), Some(key)) => {
            return Err(parse_err(
                source_name,
                Loc::File,
                format!("a JSON key `{key}` was given but the file is an array"),
            ))
        }
        (other, _) => {
            return Err(parse_err(
                source_name,
                Loc::File,
                format!("expected an array or object, found {}", kind(&other)),
            ))
        }
    };
    list.into_iter()
        .enumerate()
        .map(|(i, v)| object(v, source_name, Loc::Item(i)))
        .collect()
}

fn parse_csv(bytes: &[u8], source_name: &str) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| {
            parse_err(
                source_name,
                Loc::Line(1),
                format!("invalid CSV header: {e}"),
            )
        })?
        .clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
            parse_err(source_name, Loc::Line(line), format!("invalid CSV: {e}"))
        })?;
        let loc = Loc::Line(record.position().map(|p| p.line() as usize).unwrap_or(0));
        let fields = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.to_string(), Value::String(v.to_string())))
            .collect();
        rows.push(Row { loc, fields });
    }
    Ok(rows)
}

fn parse_parquet(bytes: &[u8], source_name: &str) -> Result<Vec<Row>> {
    use polars::prelude::*;
    let df = ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| parse_err(source_name, Loc::File, format!("invalid Parquet: {e}")))?;
    let columns = df.columns();
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let loc = Loc::Row(i);
        let mut fields = Map::new();
        for col in columns {
            let av = col
                .get(i)
                .map_err(|e| parse_err(source_name, loc, e.to_string()))?;
            let v = any_to_json(&av).map_err(|m| {
                parse_err(source_name, loc, format!("column `{}`: {m}", col.name()))
            })?;
            fields.insert(col.name().to_string(), v);
        }
        rows.push(Row { loc, fields });
    }
    Ok(rows)
}

fn any_to_json(av: &polars::prelude::AnyValue<'_>) -> std::result::Result<Value, String> {
    use polars::prelude::AnyValue as A;
    Ok(match av {
        A::Null => Value::Null,
        A::Boolean(b) => Value::Bool(*b),
        A::String(s) => Value::String(s.to_string()),
        A::StringOwned(s) => Value::String(s.to_string()),
        A::UInt8(x) => (*x).into(),
        A::UInt16(x) => (*x).into(),
        A::UInt32(x) => (*x).into(),
        A::UInt64(x) => (*x).into(),
        A::Int8(x) => (*x).into(),
        A::Int16(x) => (*x).into(),
        A::Int32(x) => (*x).into(),
        A::Int64(x) => (*x).into(),
        A::Float32(x) => serde_json::Number::from_f64(*x as f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        A::Float64(x) => serde_json::Number::from_f64(*x)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        A::List(series) => Value::Array(
            series
                .iter()
                .map(|x| any_to_json(&x))
                .collect::<std::result::Result<_, _>>()?,
        ),
        other => return Err(format!("unsupported value type {}", other.dtype())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jsonl_skips_blank_lines_and_numbers_lines() {
        let rows = parse_rows(
            b"{\"a\":1}\n\n{\"a\":2}\n",
            FileType::Jsonl,
            "t.jsonl",
            None,
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].loc, Loc::Line(3));
        assert_eq!(rows[1].fields["a"], json!(2));
    }

    #[test]
    fn jsonl_malformed_line_reports_line() {
        let err =
            parse_rows(b"{\"a\":1}\n{\"a\":\n", FileType::Jsonl, "t.jsonl", None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("t.jsonl: line 2: invalid JSON"), "{msg}");
        let err = parse_rows(b"[1,2]\n", FileType::Jsonl, "t.jsonl", None).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 1: expected a JSON object, found an array"),
            "{err}"
        );
    }

    #[test]
    fn json_array_and_keyed_object() {
        let rows = parse_rows(br#"[{"a":1},{"a":2}]"#, FileType::Json, "t.json", None).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].loc, Loc::Item(1));
        let rows = parse_rows(
            br#"{"meta":1,"data":[{"a":1}]}"#,
            FileType::Json,
            "t.json",
            None,
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        let rows = parse_rows(
            br#"{"x":[],"data":[{"a":1}]}"#,
            FileType::Json,
            "t.json",
            Some("data"),
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        let err = parse_rows(
            br#"{"x":[],"data":[{"a":1}]}"#,
            FileType::Json,
            "t.json",
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("several lists"), "{err}");
        let err = parse_rows(br#"{"x":[]}"#, FileType::Json, "t.json", Some("data")).unwrap_err();
        assert!(err.to_string().contains("no key `data`"), "{err}");
        let err = parse_rows(br#"[{"a":1}, 3]"#, FileType::Json, "t.json", None).unwrap_err();
        assert!(err.to_string().contains("item [1]"), "{err}");
        let err = parse_rows(b"[{\"a\":1},\n{", FileType::Json, "t.json", None).unwrap_err();
        assert!(err.to_string().contains("invalid JSON at line 2"), "{err}");
    }

    #[test]
    fn csv_rows_are_strings_with_line_numbers() {
        let rows = parse_rows(
            b"id,text\n1,hello\n2,\"a, b\"\n",
            FileType::Csv,
            "t.csv",
            None,
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].fields["text"], json!("a, b"));
        assert_eq!(rows[1].loc, Loc::Line(3));
        let err = parse_rows(b"id,text\n1,hello\n2\n", FileType::Csv, "t.csv", None).unwrap_err();
        assert!(err.to_string().contains("t.csv: line 3"), "{err}");
    }

    #[test]
    fn corrupt_parquet_is_an_error() {
        let err = parse_rows(
            b"PAR1 this is not parquet",
            FileType::Parquet,
            "t.parquet",
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t.parquet: file: invalid Parquet"),
            "{err}"
        );
    }

    #[test]
    fn not_utf8_is_an_error() {
        let err = parse_rows(&[0xff, 0xfe, b'{'], FileType::Jsonl, "t.jsonl", None).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }
}
