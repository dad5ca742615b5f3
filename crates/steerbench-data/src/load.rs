//! Loading: source → bytes (hashed) → rows → typed records.

use crate::builtin;
use crate::error::{DataError, Result};
use crate::extract::extract;
use crate::fields::FieldMap;
use crate::format::Records;
use crate::rows::parse_rows;
use crate::source::{content_hash, FileType, Source};

/// The most records a dataset may have. Every record is held in memory and most are
/// run through the model several times; a larger file is almost surely a mistake.
pub const MAX_RECORDS: usize = 1_000_000;

/// The longest text field, in bytes (~250,000 tokens): far past any model's context, far
/// below what could exhaust memory when a whole field is tokenised and embedded.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// A loaded dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The source as written (`builtin:x`, a path or a URL); used in messages.
    pub source: String,
    /// Hex blake3 of the source bytes, for stage fingerprints.
    pub content_hash: String,
    pub records: Records,
}

/// Options for reading a file whose type or layout the name does not tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Overrides the type implied by the file extension.
    pub file_type: Option<FileType>,
    /// For a JSON object file: the key that holds the list of records.
    pub json_key: Option<String>,
}

/// Reads `source` and extracts records of `fields.format()`.
pub fn load(source: &Source, fields: &FieldMap, opts: &LoadOptions) -> Result<Dataset> {
    let (name, file_type) = name_and_type(source, opts)?;
    let bytes = source.read()?;
    load_bytes(&bytes, &name, file_type, fields, opts.json_key.as_deref())
}

/// Like [`load`], but refuses the bytes unless their hex blake3 is `expected_blake3` (the hash
/// taken when the pipeline was planned): the records parsed are exactly the ones planned for.
/// The check comes before any parsing.
pub fn load_checked(
    source: &Source,
    expected_blake3: &str,
    fields: &FieldMap,
    opts: &LoadOptions,
) -> Result<Dataset> {
    let (name, file_type) = name_and_type(source, opts)?;
    let bytes = source.read()?;
    check_hash(&bytes, &name, expected_blake3)?;
    load_bytes(&bytes, &name, file_type, fields, opts.json_key.as_deref())
}

/// `Ok` when the hex blake3 of `bytes` is `expected`; else [`DataError::Changed`] naming
/// `source_name` and both hashes.
pub fn check_hash(bytes: &[u8], source_name: &str, expected: &str) -> Result<()> {
    let actual = content_hash(bytes);
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(DataError::Changed {
            source_name: source_name.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

fn name_and_type(source: &Source, opts: &LoadOptions) -> Result<(String, FileType)> {
    let name = source.to_string();
    let file_type = opts
        .file_type
        .or_else(|| source.file_type())
        .ok_or_else(|| DataError::UnknownFileType {
            source_name: name.clone(),
        })?;
    Ok((name, file_type))
}

/// Extracts records from in-memory bytes (the I/O-free core of `load`).
pub fn load_bytes(
    bytes: &[u8],
    source_name: &str,
    file_type: FileType,
    fields: &FieldMap,
    json_key: Option<&str>,
) -> Result<Dataset> {
    let rows = parse_rows(bytes, file_type, source_name, json_key)?;
    if rows.is_empty() {
        return Err(DataError::Empty {
            source_name: source_name.to_string(),
        });
    }
    if rows.len() > MAX_RECORDS {
        return Err(DataError::InvalidSource(format!(
            "{source_name}: {} records, more than the {MAX_RECORDS} a dataset may have; use `limit` on a smaller file",
            rows.len()
        )));
    }
    let records = extract(&rows, fields, source_name)?;
    Ok(Dataset {
        source: source_name.to_string(),
        content_hash: content_hash(bytes),
        records,
    })
}

/// Loads an embedded dataset with its own format's default field mapping.
pub fn load_builtin(name: &str) -> Result<Dataset> {
    let source = Source::Builtin(name.to_string());
    let b = builtin::get(name).ok_or_else(|| DataError::UnknownBuiltin {
        name: name.to_string(),
        available: builtin::all().iter().map(|b| b.name.to_string()).collect(),
    })?;
    load(
        &source,
        &FieldMap::default_for(b.format),
        &LoadOptions::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Format;
    use std::io::Write;

    fn write(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> Source {
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(content)
            .unwrap();
        Source::Path(path)
    }

    const AB: &str = r#"{"id":"q1","question":"Pick\n\nChoices:\n (A) good\n (B) bad","answer_matching_behavior":"(A)","answer_not_matching_behavior":"(B)"}
{"id":"q2","question":"Pick\n\nChoices:\n (A) bad\n (B) good","answer_matching_behavior":"(B)","answer_not_matching_behavior":"(A)"}
"#;

    #[test]
    fn jsonl_file_loads_with_hash() {
        let dir = tempfile::tempdir().unwrap();
        let src = write(&dir, "ab.jsonl", AB.as_bytes());
        let ds = load(
            &src,
            &FieldMap::default_for(Format::ContrastiveAb),
            &LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(ds.records.ids(), vec!["q1", "q2"]);
        assert_eq!(ds.content_hash, content_hash(AB.as_bytes()));
        assert!(ds.source.ends_with("ab.jsonl"));
    }

    #[test]
    fn load_checked_refuses_changed_bytes_and_names_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let src = write(&dir, "ab.jsonl", AB.as_bytes());
        let fm = FieldMap::default_for(Format::ContrastiveAb);
        let planned = content_hash(AB.as_bytes());
        let ds = load_checked(&src, &planned, &fm, &LoadOptions::default()).unwrap();
        assert_eq!(ds.records.ids(), vec!["q1", "q2"]);
        assert_eq!(ds.content_hash, planned);
        // The file changes after planning: refused before parsing, naming file and hashes.
        let changed = AB.replace("q2", "q3");
        std::fs::write(dir.path().join("ab.jsonl"), &changed).unwrap();
        let err = load_checked(&src, &planned, &fm, &LoadOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::Changed { .. }), "{msg}");
        assert!(msg.contains("ab.jsonl"), "{msg}");
        assert!(msg.contains(&planned), "{msg}");
        assert!(msg.contains(&content_hash(changed.as_bytes())), "{msg}");
        // Not even parsed: unparseable new bytes give the same error.
        std::fs::write(dir.path().join("ab.jsonl"), "{not json").unwrap();
        let err = load_checked(&src, &planned, &fm, &LoadOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Changed { .. }), "{err}");
    }

    #[test]
    fn load_checked_builtin_hash_is_the_embedded_bytes() {
        let b = crate::builtin::get("sentiment_ab").unwrap();
        let ds = load_checked(
            &Source::Builtin(b.name.into()),
            &content_hash(b.content.as_bytes()),
            &FieldMap::default_for(b.format),
            &LoadOptions::default(),
        )
        .unwrap();
        assert!(!ds.records.is_empty());
    }

    #[test]
    fn json_file_and_forced_type() {
        let dir = tempfile::tempdir().unwrap();
        let src = write(
            &dir,
            "fv.data",
            br#"[{"input":"hot","output":"cold"},{"input":"up","output":"down"}]"#,
        );
        let fm = FieldMap::default_for(Format::IclTask);
        let err = load(&src, &fm, &LoadOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::UnknownFileType { .. }), "{err}");
        let opts = LoadOptions {
            file_type: Some(FileType::Json),
            json_key: None,
        };
        let ds = load(&src, &fm, &opts).unwrap();
        assert_eq!(ds.records.ids(), vec!["0", "1"]);
    }

    #[test]
    fn csv_multiple_choice_both_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let fm = FieldMap::default_for(Format::MultipleChoice);
        let src = write(&dir, "mc.csv", b"id,question,choices,answer\nm1,2+2?,\"[\"\"3\"\",\"\"4\"\",\"\"5\"\",\"\"6\"\"]\",1\n");
        let Records::MultipleChoice(v) = load(&src, &fm, &LoadOptions::default()).unwrap().records
        else {
            panic!()
        };
        assert_eq!(v[0].choices, vec!["3", "4", "5", "6"]);
        assert_eq!(v[0].answer, 1);
        let src = write(
            &dir,
            "mc2.csv",
            b"question,choice_0,choice_1,choice_2,choice_3,answer\nSky?,red,blue,green,black,1\n",
        );
        let Records::MultipleChoice(v) = load(&src, &fm, &LoadOptions::default()).unwrap().records
        else {
            panic!()
        };
        assert_eq!(v[0].choices[1], "blue");
        assert_eq!(v[0].id, "0");
        let src = write(
            &dir,
            "mc3.csv",
            b"question,choice_0,choice_1,answer\nSky?,red,blue,x\n",
        );
        let err = load(&src, &fm, &LoadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("line 2: field `answer`"), "{err}");
    }

    #[test]
    fn parquet_round_trip() {
        use polars::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.parquet");
        let mut df = df!(
            "id" => ["a", "b"],
            "prompt" => ["I feel", "Today is"],
            "positive" => ["great", "lovely"],
            "negative" => ["awful", "grim"],
            "category" => [1i64, 2],
        )
        .unwrap();
        ParquetWriter::new(std::fs::File::create(&path).unwrap())
            .finish(&mut df)
            .unwrap();
        let ds = load(
            &Source::Path(path),
            &FieldMap::default_for(Format::ContrastiveCompletion),
            &LoadOptions::default(),
        )
        .unwrap();
        let Records::ContrastiveCompletion(v) = ds.records else {
            panic!()
        };
        assert_eq!(v[1].positive, "lovely");
        assert_eq!(v[1].category.as_deref(), Some("2"));
    }

    #[test]
    fn parquet_list_column_and_missing_field() {
        use polars::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mc.parquet");
        let choices = Series::new(
            "choices".into(),
            [
                Series::new("".into(), ["x", "y"]),
                Series::new("".into(), ["p", "q"]),
            ],
        );
        let mut df = DataFrame::new_infer_height(vec![
            Series::new("question".into(), ["q1", "q2"]).into(),
            choices.into(),
            Series::new("answer".into(), [0i32, 1]).into(),
        ])
        .unwrap();
        ParquetWriter::new(std::fs::File::create(&path).unwrap())
            .finish(&mut df)
            .unwrap();
        let src = Source::Path(path);
        let Records::MultipleChoice(v) = load(
            &src,
            &FieldMap::default_for(Format::MultipleChoice),
            &LoadOptions::default(),
        )
        .unwrap()
        .records
        else {
            panic!()
        };
        assert_eq!(v[1].choices, vec!["p", "q"]);
        assert_eq!(v[1].answer, 1);
        let err = load(
            &src,
            &FieldMap::default_for(Format::Text),
            &LoadOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("mc.parquet: row 0: missing field `text`"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_parquet_file_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = write(&dir, "bad.parquet", b"PAR1\x00\x01garbagePAR1");
        let err = load(
            &src,
            &FieldMap::default_for(Format::Text),
            &LoadOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, DataError::Parse { .. }), "{err}");
        let missing = Source::Path(dir.path().join("nope.jsonl"));
        let err = load(
            &missing,
            &FieldMap::default_for(Format::Text),
            &LoadOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, DataError::Io { .. }) && err.to_string().contains("nope.jsonl"),
            "{err}"
        );
    }

    #[test]
    fn empty_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let src = write(&dir, "e.jsonl", b"\n\n");
        let err = load(
            &src,
            &FieldMap::default_for(Format::Text),
            &LoadOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
    }

    #[test]
    fn malformed_jsonl_line_in_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = write(&dir, "t.jsonl", b"{\"text\":\"a\"}\n{\"text\":\"b\"\n");
        let err = load(
            &src,
            &FieldMap::default_for(Format::Text),
            &LoadOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("t.jsonl: line 2: invalid JSON"),
            "{err}"
        );
    }
}
