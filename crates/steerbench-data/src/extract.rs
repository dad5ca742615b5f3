//! Typed records from generic rows through a field mapping. Errors name the source, the
//! row/line and the field.

use crate::error::{DataError, Result};
use crate::fields::{FieldMap, DEFAULT_CATEGORY_FIELD, DEFAULT_ID_FIELD};
use crate::format::*;
use crate::load::MAX_TEXT_BYTES;
use crate::rows::{kind, Row};
use serde_json::Value;
use std::collections::HashSet;

/// Converts `rows` into records of the mapping's format. Ids must be unique. An id column
/// named by an override must be in every row (the default `id` column may be absent: the row
/// index is used), and a category column named by an override must be in at least one row.
pub fn extract(rows: &[Row], fields: &FieldMap, source_name: &str) -> Result<Records> {
    let (id_f, cat_f) = fields.id_and_category();
    let x = Extractor {
        source_name,
        id_field: id_f,
    };
    let id_required = id_f != DEFAULT_ID_FIELD;
    if cat_f != DEFAULT_CATEGORY_FIELD && !rows.iter().any(|r| x.present(r, cat_f).is_some()) {
        if let Some(first) = rows.first() {
            return Err(x.missing(first, cat_f));
        }
    }
    let base = |i: usize, row: &Row| -> Result<(String, Option<String>)> {
        Ok((x.id(row, id_f, i, id_required)?, x.category(row, cat_f)?))
    };
    let records = match fields {
        FieldMap::ContrastiveAb(f) => Records::ContrastiveAb(collect(rows, |i, row| {
            let (id, category) = base(i, row)?;
            let matching = x.letter(row, &f.matching)?;
            let not_matching = x.letter(row, &f.not_matching)?;
            if matching == not_matching {
                return Err(x.invalid(
                    row,
                    &f.not_matching,
                    format!("same letter ({matching}) as the matching answer"),
                ));
            }
            let question = x.string(row, &f.question)?;
            for (letter, role) in [(matching, &f.matching), (not_matching, &f.not_matching)] {
                if !question.contains(&format!("({letter})")) {
                    return Err(x.invalid(
                        row,
                        &f.question,
                        format!("the question lists no choice `({letter})`, the answer in `{role}`: A/B questions list their choices as `(A) …`, `(B) …`"),
                    ));
                }
            }
            Ok(ContrastiveAb {
                id,
                question,
                matching,
                not_matching,
                category,
            })
        })?),
        FieldMap::ContrastiveCompletion(f) => {
            Records::ContrastiveCompletion(collect(rows, |i, row| {
                let (id, category) = base(i, row)?;
                Ok(ContrastiveCompletion {
                    id,
                    prompt: x.string(row, &f.prompt)?,
                    positive: x.string(row, &f.positive)?,
                    negative: x.string(row, &f.negative)?,
                    category,
                })
            })?)
        }
        FieldMap::OpenEnded(f) => Records::OpenEnded(collect(rows, |i, row| {
            let (id, category) = base(i, row)?;
            Ok(OpenEnded {
                id,
                prompt: x.string(row, &f.prompt)?,
                matching: x.opt_string(row, &f.matching)?,
                not_matching: x.opt_string(row, &f.not_matching)?,
                category,
            })
        })?),
        FieldMap::IclTask(f) => Records::IclTask(collect(rows, |i, row| {
            let (id, category) = base(i, row)?;
            Ok(Icl {
                id,
                input: x.scalar(row, &f.input)?,
                output: x.scalar(row, &f.output)?,
                category,
            })
        })?),
        FieldMap::MultipleChoice(f) => Records::MultipleChoice(collect(rows, |i, row| {
            let (id, category) = base(i, row)?;
            let choices = x.choices(row, &f.choices)?;
            let answer = x.answer(row, &f.answer, choices.len())?;
            Ok(MultipleChoice {
                id,
                question: x.string(row, &f.question)?,
                choices,
                answer,
                category,
            })
        })?),
        FieldMap::Text(f) => Records::Text(collect(rows, |i, row| {
            let (id, category) = base(i, row)?;
            Ok(Text {
                id,
                text: x.string(row, &f.text)?,
                category,
            })
        })?),
        FieldMap::Conversation(f) => Records::Conversation(collect(rows, |i, row| {
            let (id, category) = base(i, row)?;
            crate::conversation::Reader { source_name }.conversation(row, id, category, &f.messages)
        })?),
        FieldMap::ToolChoice(f) => Records::ToolChoice(collect(rows, |i, row| {
            let (id, category) = base(i, row)?;
            crate::conversation::Reader { source_name }.tool_task(row, id, category, f)
        })?),
    };
    check_unique_ids(&records, rows, source_name)?;
    Ok(records)
}

fn collect<T>(rows: &[Row], f: impl Fn(usize, &Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().enumerate().map(|(i, r)| f(i, r)).collect()
}

fn check_unique_ids(records: &Records, rows: &[Row], source_name: &str) -> Result<()> {
    let mut seen = HashSet::new();
    for (i, id) in records.ids().into_iter().enumerate() {
        if !seen.insert(id) {
            return Err(DataError::DuplicateId {
                source_name: source_name.to_string(),
                loc: rows[i].loc,
                id: id.to_string(),
            });
        }
    }
    Ok(())
}

/// Looks up `path` in a row: the literal key first, then a dotted path into nested objects.
pub fn lookup<'r>(row: &'r Row, path: &str) -> Option<&'r Value> {
    if let Some(v) = row.fields.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut cur = row.fields.get(parts.next()?)?;
    for part in parts {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

struct Extractor<'a> {
    source_name: &'a str,
    id_field: &'a str,
}

impl Extractor<'_> {
    /// The record's id for messages, when its id column holds one.
    fn record_id(&self, row: &Row) -> Option<String> {
        match self.present(row, self.id_field)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn missing(&self, row: &Row, field: &str) -> DataError {
        DataError::MissingField {
            source_name: self.source_name.into(),
            loc: row.loc,
            id: self.record_id(row),
            field: field.into(),
        }
    }

    fn wrong(&self, row: &Row, field: &str, expected: &'static str, found: &Value) -> DataError {
        DataError::WrongType {
            source_name: self.source_name.into(),
            loc: row.loc,
            id: self.record_id(row),
            field: field.into(),
            expected,
            found: kind(found),
        }
    }

    fn invalid(&self, row: &Row, field: &str, message: String) -> DataError {
        DataError::InvalidValue {
            source_name: self.source_name.into(),
            loc: row.loc,
            id: self.record_id(row),
            field: field.into(),
            message,
        }
    }

    fn present<'r>(&self, row: &'r Row, field: &str) -> Option<&'r Value> {
        lookup(row, field).filter(|v| !v.is_null())
    }

    /// A text the model reads: not blank (it would encode to no tokens, or to
    /// whitespace only) and at most [`MAX_TEXT_BYTES`].
    fn text(&self, row: &Row, field: &str, s: &str) -> Result<String> {
        if s.trim().is_empty() {
            return Err(self.invalid(row, field, "is empty".into()));
        }
        if s.len() > MAX_TEXT_BYTES {
            return Err(self.invalid(
                row,
                field,
                format!(
                    "is {:.1} MiB long; a text field may have at most {} MiB",
                    s.len() as f64 / (1 << 20) as f64,
                    MAX_TEXT_BYTES >> 20
                ),
            ));
        }
        Ok(s.to_string())
    }

    fn string(&self, row: &Row, field: &str) -> Result<String> {
        match self.present(row, field) {
            None => Err(self.missing(row, field)),
            Some(Value::String(s)) => self.text(row, field, s),
            Some(v) => Err(self.wrong(row, field, "a string", v)),
        }
    }

    /// Like `string`, but an integer is accepted as its digits (ICL outputs like `4`).
    /// Other numbers and booleans are refused: how `0.10` or `1e3` should be spelled
    /// is the dataset's to say, as a string.
    fn scalar(&self, row: &Row, field: &str) -> Result<String> {
        match self.present(row, field) {
            None => Err(self.missing(row, field)),
            Some(Value::String(s)) => self.text(row, field, s),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            Some(v) => Err(self.wrong(row, field, "a string (or an integer)", v)),
        }
    }

    /// Absent, null and empty (CSV's empty cell) all mean "not given".
    fn opt_string(&self, row: &Row, field: &str) -> Result<Option<String>> {
        match self.present(row, field) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => self.text(row, field, s).map(Some),
            Some(v) => Err(self.wrong(row, field, "a string", v)),
        }
    }

    /// The record id: a string or integer in the id column, else (unless `required`) the
    /// 0-based row index.
    fn id(&self, row: &Row, field: &str, index: usize, required: bool) -> Result<String> {
        match self.present(row, field) {
            None if required => Err(self.missing(row, field)),
            None => Ok(index.to_string()),
            Some(Value::String(s)) if s.is_empty() => {
                Err(self.invalid(row, field, "empty id".into()))
            }
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
            Some(v) => Err(self.wrong(row, field, "a string or integer", v)),
        }
    }

    fn category(&self, row: &Row, field: &str) -> Result<Option<String>> {
        match self.present(row, field) {
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            _ => self.opt_string(row, field),
        }
    }

    fn letter(&self, row: &Row, field: &str) -> Result<Letter> {
        let s = self.string(row, field)?;
        Letter::parse_answer(&s).ok_or_else(|| {
            self.invalid(
                row,
                field,
                format!("expected an answer letter like \"(A)\", found {s:?}"),
            )
        })
    }

    fn choices(&self, row: &Row, field: &str) -> Result<Vec<String>> {
        let list: Vec<Value> = match self.present(row, field) {
            Some(Value::Array(items)) => items.clone(),
            // CSV: a JSON array written into one cell.
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Array(items)) => items,
                _ => {
                    return Err(self.invalid(
                        row,
                        field,
                        format!("expected a JSON array of strings, found {s:?}"),
                    ))
                }
            },
            Some(v) => return Err(self.wrong(row, field, "a list of strings", v)),
            None => {
                // Flattened columns `choice_0`, `choice_1`, ... (CSV / Parquet).
                let cols: Vec<Value> = (0..)
                    .map_while(|i| self.present(row, &format!("choice_{i}")).cloned())
                    .collect();
                if cols.is_empty() {
                    return Err(DataError::MissingField {
                        source_name: self.source_name.into(),
                        loc: row.loc,
                        id: self.record_id(row),
                        field: format!("{field}` (or `choice_0`, `choice_1`, ..."),
                    });
                }
                cols
            }
        };
        let choices = list
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(_) | Value::Bool(_) => Ok(v.to_string()),
                other => Err(self.wrong(row, &format!("{field}[{i}]"), "a string", other)),
            })
            .collect::<Result<Vec<_>>>()?;
        if !(2..=26).contains(&choices.len()) {
            return Err(self.invalid(
                row,
                field,
                format!("needs 2 to 26 choices, found {}", choices.len()),
            ));
        }
        Ok(choices)
    }

    /// A 0-based index (number, or digits in a CSV cell) or a letter such as "B" / "(B)".
    fn answer(&self, row: &Row, field: &str, n_choices: usize) -> Result<usize> {
        let idx = match self.present(row, field) {
            None => return Err(self.missing(row, field)),
            Some(Value::Number(n)) => n.as_u64().map(|x| x as usize),
            Some(Value::String(s)) => s
                .trim()
                .parse::<usize>()
                .ok()
                .or_else(|| Letter::parse_answer(s).map(Letter::index)),
            Some(v) => return Err(self.wrong(row, field, "an integer index", v)),
        };
        match idx {
            Some(i) if i < n_choices => Ok(i),
            _ => Err(self.invalid(
                row,
                field,
                format!(
                    "expected a choice index 0..{} (or letter), found {}",
                    n_choices - 1,
                    self.present(row, field).unwrap()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Loc;
    use crate::format::Format;
    use serde_json::json;

    fn rows(values: Vec<Value>) -> Vec<Row> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| Row {
                loc: Loc::Line(i + 1),
                fields: v.as_object().unwrap().clone(),
            })
            .collect()
    }

    fn defaults(f: Format) -> FieldMap {
        FieldMap::default_for(f)
    }

    fn overrides(v: Value) -> crate::fields::FieldOverrides {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ab_records_with_letters_and_index_ids() {
        let r = rows(vec![
            json!({"question": "Q?\n\nChoices:\n (A) x\n (B) y", "answer_matching_behavior": " (B)", "answer_not_matching_behavior": "(A)"}),
            json!({"question": "Q2 (A) a (B) b", "answer_matching_behavior": "A", "answer_not_matching_behavior": "B", "category": "c"}),
        ]);
        let Records::ContrastiveAb(v) = extract(&r, &defaults(Format::ContrastiveAb), "s").unwrap()
        else {
            panic!()
        };
        assert_eq!(v[0].id, "0");
        assert_eq!(v[1].id, "1");
        assert_eq!(v[0].matching, Letter::B);
        assert_eq!(v[1].category.as_deref(), Some("c"));
    }

    #[test]
    fn ab_bad_letter_and_equal_letters() {
        let r = rows(vec![
            json!({"question": "Q", "answer_matching_behavior": "yes", "answer_not_matching_behavior": "(A)"}),
        ]);
        let err = extract(&r, &defaults(Format::ContrastiveAb), "s.jsonl").unwrap_err();
        assert!(
            err.to_string().contains(
                "s.jsonl: line 1: field `answer_matching_behavior`: expected an answer letter"
            ),
            "{err}"
        );
        let r = rows(vec![
            json!({"question": "Q", "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(A)"}),
        ]);
        assert!(extract(&r, &defaults(Format::ContrastiveAb), "s").is_err());
    }

    #[test]
    fn missing_field_names_field_and_line() {
        let r = rows(vec![
            json!({"id": "a", "prompt": "p", "positive": "x", "negative": "y"}),
            json!({"id": "b", "prompt": "p", "positive": "x"}),
        ]);
        let err = extract(&r, &defaults(Format::ContrastiveCompletion), "c.jsonl").unwrap_err();
        assert!(matches!(err, DataError::MissingField { .. }));
        assert_eq!(
            err.to_string(),
            "c.jsonl: line 2 (id `b`): missing field `negative`"
        );
    }

    #[test]
    fn ab_questions_must_list_both_answers_and_not_be_empty() {
        let ab = |q: &str, m: &str| {
            let r = rows(vec![
                json!({"id": "q7", "question": q, "answer_matching_behavior": m, "answer_not_matching_behavior": "(A)"}),
            ]);
            extract(&r, &defaults(Format::ContrastiveAb), "ab.jsonl").map_err(|e| e.to_string())
        };
        assert!(ab("Pick:\n (A) x\n (B) y", "(B)").is_ok());
        let no_choices = ab("How was it?", "(B)").unwrap_err();
        assert!(
            no_choices.starts_with(
                "ab.jsonl: line 1 (id `q7`): field `question`: the question lists no choice `(B)`"
            ),
            "{no_choices}"
        );
        let only_a = ab("Pick: (A) x", "(B)").unwrap_err();
        assert!(only_a.contains("no choice `(B)`"), "{only_a}");
        let answer_c = ab("Pick: (A) x (B) y", "(C)").unwrap_err();
        assert!(answer_c.contains("no choice `(C)`"), "{answer_c}");
        let empty = ab("  ", "(B)").unwrap_err();
        assert_eq!(
            empty,
            "ab.jsonl: line 1 (id `q7`): field `question`: is empty"
        );
    }

    #[test]
    fn icl_outputs_are_text_or_integers_and_texts_have_a_size_limit() {
        let icl = |out: Value| {
            let r = rows(vec![json!({"input": "hot", "output": out})]);
            extract(&r, &defaults(Format::IclTask), "t.jsonl").map_err(|e| e.to_string())
        };
        assert!(icl(json!("cold")).is_ok());
        assert!(icl(json!(4)).is_ok());
        assert!(icl(json!(""))
            .unwrap_err()
            .ends_with("field `output`: is empty"));
        let float = icl(json!(0.1)).unwrap_err();
        assert!(
            float.contains("should be a string (or an integer), found"),
            "{float}"
        );
        assert!(icl(json!(true)).is_err());
        let big = "x".repeat(MAX_TEXT_BYTES + 1);
        let r = rows(vec![json!({"text": big})]);
        let err = extract(&r, &defaults(Format::Text), "c.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field `text`: is 1.0 MiB long; a text field may have at most 1 MiB"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_expected_and_found() {
        let r = rows(vec![json!({"prompt": 3, "positive": "x", "negative": "y"})]);
        let err = extract(&r, &defaults(Format::ContrastiveCompletion), "c.jsonl").unwrap_err();
        assert_eq!(
            err.to_string(),
            "c.jsonl: line 1: field `prompt` should be a string, found a number"
        );
        let r = rows(vec![json!({"id": [1], "text": "t"})]);
        let err = extract(&r, &defaults(Format::Text), "t").unwrap_err();
        assert!(
            err.to_string()
                .contains("`id` should be a string or integer, found an array"),
            "{err}"
        );
    }

    #[test]
    fn tan_nested_layout_via_dotted_paths() {
        let r = rows(vec![json!({
            "positive": {"prompt": "P", "response": "good"},
            "negative": {"prompt": "P", "response": "bad"}
        })]);
        let fm = FieldMap::new(
            Format::ContrastiveCompletion,
            &overrides(json!({"prompt": "positive.prompt", "positive": "positive.response", "negative": "negative.response"})),
        )
        .unwrap();
        let Records::ContrastiveCompletion(v) = extract(&r, &fm, "tan.json").unwrap() else {
            panic!()
        };
        assert_eq!(
            (
                v[0].prompt.as_str(),
                v[0].positive.as_str(),
                v[0].negative.as_str()
            ),
            ("P", "good", "bad")
        );
        let fm = FieldMap::new(
            Format::ContrastiveCompletion,
            &overrides(json!({"prompt": "positive.missing"})),
        )
        .unwrap();
        let err = extract(&r, &fm, "tan.json").unwrap_err();
        assert!(
            err.to_string().contains("missing field `positive.missing`"),
            "{err}"
        );
    }

    #[test]
    fn literal_dotted_key_wins() {
        let r = rows(vec![json!({"a.b": "lit", "a": {"b": "nested"}})]);
        assert_eq!(lookup(&r[0], "a.b"), Some(&json!("lit")));
        let r = rows(vec![json!({"a": {"b": ["x", "y"]}})]);
        assert_eq!(lookup(&r[0], "a.b.1"), Some(&json!("y")));
        assert_eq!(lookup(&r[0], "a.c"), None);
    }

    #[test]
    fn open_ended_optional_continuations() {
        let r = rows(vec![
            json!({"id": 7, "prompt": "p"}),
            json!({"id": 8, "prompt": "p", "matching": "m", "not_matching": ""}),
        ]);
        let Records::OpenEnded(v) = extract(&r, &defaults(Format::OpenEnded), "o").unwrap() else {
            panic!()
        };
        assert_eq!(v[0].id, "7");
        assert_eq!(v[0].matching, None);
        assert_eq!(v[1].matching.as_deref(), Some("m"));
        assert_eq!(v[1].not_matching, None);
    }

    #[test]
    fn icl_accepts_numeric_outputs() {
        let r = rows(vec![json!({"input": "2+2", "output": 4})]);
        let Records::IclTask(v) = extract(&r, &defaults(Format::IclTask), "i").unwrap() else {
            panic!()
        };
        assert_eq!(v[0].output, "4");
    }

    #[test]
    fn multiple_choice_list_json_string_columns_and_letters() {
        let r = rows(vec![
            json!({"question": "q", "choices": ["a", "b", "c", "d"], "answer": 2}),
            json!({"question": "q", "choices": "[\"a\", \"b\"]", "answer": "1"}),
            json!({"question": "q", "choice_0": "a", "choice_1": "b", "choice_2": "c", "answer": "C"}),
        ]);
        let Records::MultipleChoice(v) =
            extract(&r, &defaults(Format::MultipleChoice), "m").unwrap()
        else {
            panic!()
        };
        assert_eq!(v[0].answer, 2);
        assert_eq!(v[1].choices, vec!["a", "b"]);
        assert_eq!(v[1].answer, 1);
        assert_eq!(v[2].choices.len(), 3);
        assert_eq!(v[2].answer, 2);
    }

    #[test]
    fn multiple_choice_errors() {
        let fm = defaults(Format::MultipleChoice);
        let err = extract(
            &rows(vec![
                json!({"question": "q", "choices": ["a", "b"], "answer": 5}),
            ]),
            &fm,
            "m",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("field `answer`: expected a choice index 0..1"),
            "{err}"
        );
        let err =
            extract(&rows(vec![json!({"question": "q", "answer": 0})]), &fm, "m").unwrap_err();
        assert!(matches!(err, DataError::MissingField { .. }), "{err}");
        let err = extract(
            &rows(vec![
                json!({"question": "q", "choices": "a|b", "answer": 0}),
            ]),
            &fm,
            "m",
        )
        .unwrap_err();
        assert!(err.to_string().contains("JSON array"), "{err}");
        let err = extract(
            &rows(vec![
                json!({"question": "q", "choices": ["a", {"x": 1}], "answer": 0}),
            ]),
            &fm,
            "m",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("`choices[1]` should be a string"),
            "{err}"
        );
        let err = extract(
            &rows(vec![
                json!({"question": "q", "choices": ["a"], "answer": 0}),
            ]),
            &fm,
            "m",
        )
        .unwrap_err();
        assert!(err.to_string().contains("2 to 26 choices"), "{err}");
        let err = extract(
            &rows(vec![
                json!({"question": "q", "choices": ["a", "b"], "answer": true}),
            ]),
            &fm,
            "m",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("should be an integer index, found a boolean"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let r = rows(vec![
            json!({"id": "x", "text": "a"}),
            json!({"id": "x", "text": "b"}),
        ]);
        let err = extract(&r, &defaults(Format::Text), "t").unwrap_err();
        assert_eq!(err.to_string(), "t: duplicate id `x` (line 2)");
    }

    #[test]
    fn id_and_category_overrides_are_honoured() {
        let r = rows(vec![
            json!({"uid": "u-1", "topic": "t1", "id": "ignored", "text": "a"}),
            json!({"uid": 7, "topic": "t2", "text": "b"}),
        ]);
        let fm = FieldMap::new(
            Format::Text,
            &overrides(json!({"id": "uid", "category": "topic"})),
        )
        .unwrap();
        let Records::Text(v) = extract(&r, &fm, "t.jsonl").unwrap() else {
            panic!()
        };
        assert_eq!(
            v.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["u-1", "7"]
        );
        assert_eq!(v[1].category.as_deref(), Some("t2"));
    }

    #[test]
    fn overridden_id_and_category_columns_must_exist() {
        let r = rows(vec![json!({"uid": "a", "text": "a"}), json!({"text": "b"})]);
        let fm = FieldMap::new(Format::Text, &overrides(json!({"id": "uid"}))).unwrap();
        let err = extract(&r, &fm, "t.jsonl").unwrap_err();
        assert_eq!(err.to_string(), "t.jsonl: line 2: missing field `uid`");
        let fm = FieldMap::new(Format::Text, &overrides(json!({"category": "topc"}))).unwrap();
        let err = extract(&r, &fm, "t.jsonl").unwrap_err();
        assert_eq!(err.to_string(), "t.jsonl: line 1: missing field `topc`");
        // The default columns stay optional.
        assert!(extract(&r, &defaults(Format::Text), "t.jsonl").is_ok());
    }
}
