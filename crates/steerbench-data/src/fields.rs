//! Field mappings: which column (or dotted path into nested JSON) holds each record field.
//!
//! Defaults are the layouts of the built-in datasets (datasets/README.md); users override only
//! the names that differ. A dotted path such as `positive.response` reads a nested object
//! (Tan et al.'s `{positive: {prompt, response}, negative: {...}}`); a column whose name literally
//! contains a dot is matched first.

use crate::error::{DataError, Result};
use crate::format::Format;
use serde::{Deserialize, Serialize};

macro_rules! field_struct {
    ($(#[$meta:meta])* $name:ident { $($(#[$fm:meta])* $field:ident = $default:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            /// Stable record id; when the column is absent the 0-based row index is used.
            pub id: String,
            /// Optional stratum for stratified splits.
            pub category: String,
            $($(#[$fm])* pub $field: String,)*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { id: "id".into(), category: "category".into(), $($field: $default.into(),)* }
            }
        }
    };
}

field_struct!(
    /// Fields of `contrastive_ab` (CAA model-written-evals layout).
    AbFields {
        /// Question text ending with lettered choices.
        question = "question",
        /// Behaviour-matching answer, e.g. "(A)".
        matching = "answer_matching_behavior",
        /// Non-matching answer, e.g. "(B)".
        not_matching = "answer_not_matching_behavior",
    }
);

field_struct!(
    /// Fields of `contrastive_completion`. Tan et al.'s nested layout:
    /// `{prompt: positive.prompt, positive: positive.response, negative: negative.response}`.
    CompletionFields {
        prompt = "prompt",
        positive = "positive",
        negative = "negative",
    }
);

field_struct!(
    /// Fields of `open_ended`; `matching` / `not_matching` may be absent from the data.
    OpenEndedFields {
        prompt = "prompt",
        matching = "matching",
        not_matching = "not_matching",
    }
);

field_struct!(
    /// Fields of `icl_task` (Function Vectors' `[{input, output}]`).
    IclFields {
        input = "input",
        output = "output",
    }
);

field_struct!(
    /// Fields of `multiple_choice`. `choices` is a list (or, in CSV, a JSON-array string); when
    /// that column is absent, columns `choice_0`, `choice_1`, ... are used.
    McFields {
        question = "question",
        choices = "choices",
        /// 0-based answer index (a letter such as "B" is also accepted).
        answer = "answer",
    }
);

field_struct!(
    /// Fields of `text`.
    TextFields {
        text = "text",
    }
);

/// A field mapping for one format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldMap {
    ContrastiveAb(AbFields),
    ContrastiveCompletion(CompletionFields),
    OpenEnded(OpenEndedFields),
    IclTask(IclFields),
    MultipleChoice(McFields),
    Text(TextFields),
}

impl FieldMap {
    /// The default layout for `format`.
    pub fn default_for(format: Format) -> FieldMap {
        match format {
            Format::ContrastiveAb => FieldMap::ContrastiveAb(Default::default()),
            Format::ContrastiveCompletion => FieldMap::ContrastiveCompletion(Default::default()),
            Format::OpenEnded => FieldMap::OpenEnded(Default::default()),
            Format::IclTask => FieldMap::IclTask(Default::default()),
            Format::MultipleChoice => FieldMap::MultipleChoice(Default::default()),
            Format::Text => FieldMap::Text(Default::default()),
        }
    }

    /// Builds the mapping for `format` from a (partial) JSON object of overrides, e.g. the
    /// `fields:` entry of a pipeline spec. Unknown keys are rejected with the valid ones listed.
    pub fn from_json(format: Format, overrides: &serde_json::Value) -> Result<FieldMap> {
        fn parse<T: serde::de::DeserializeOwned>(
            format: Format,
            v: &serde_json::Value,
        ) -> Result<T> {
            T::deserialize(v).map_err(|e| DataError::FieldMap {
                format: format.name(),
                message: e.to_string(),
            })
        }
        Ok(match format {
            Format::ContrastiveAb => FieldMap::ContrastiveAb(parse(format, overrides)?),
            Format::ContrastiveCompletion => {
                FieldMap::ContrastiveCompletion(parse(format, overrides)?)
            }
            Format::OpenEnded => FieldMap::OpenEnded(parse(format, overrides)?),
            Format::IclTask => FieldMap::IclTask(parse(format, overrides)?),
            Format::MultipleChoice => FieldMap::MultipleChoice(parse(format, overrides)?),
            Format::Text => FieldMap::Text(parse(format, overrides)?),
        })
    }

    pub fn format(&self) -> Format {
        match self {
            FieldMap::ContrastiveAb(_) => Format::ContrastiveAb,
            FieldMap::ContrastiveCompletion(_) => Format::ContrastiveCompletion,
            FieldMap::OpenEnded(_) => Format::OpenEnded,
            FieldMap::IclTask(_) => Format::IclTask,
            FieldMap::MultipleChoice(_) => Format::MultipleChoice,
            FieldMap::Text(_) => Format::Text,
        }
    }

    /// `(id field, category field)` — shared by every format.
    pub fn id_and_category(&self) -> (&str, &str) {
        match self {
            FieldMap::ContrastiveAb(f) => (&f.id, &f.category),
            FieldMap::ContrastiveCompletion(f) => (&f.id, &f.category),
            FieldMap::OpenEnded(f) => (&f.id, &f.category),
            FieldMap::IclTask(f) => (&f.id, &f.category),
            FieldMap::MultipleChoice(f) => (&f.id, &f.category),
            FieldMap::Text(f) => (&f.id, &f.category),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_match_builtin_layouts() {
        let FieldMap::ContrastiveAb(f) = FieldMap::default_for(Format::ContrastiveAb) else {
            panic!()
        };
        assert_eq!(f.matching, "answer_matching_behavior");
        assert_eq!(f.id, "id");
        for format in Format::ALL {
            assert_eq!(FieldMap::default_for(format).format(), format);
        }
    }

    #[test]
    fn overrides_keep_other_defaults_and_accept_dotted_paths() {
        let m = FieldMap::from_json(
            Format::ContrastiveCompletion,
            &json!({"prompt": "positive.prompt", "positive": "positive.response", "negative": "negative.response"}),
        )
        .unwrap();
        let FieldMap::ContrastiveCompletion(f) = m else {
            panic!()
        };
        assert_eq!(f.positive, "positive.response");
        assert_eq!(f.id, "id");
    }

    #[test]
    fn unknown_override_is_rejected_with_valid_names() {
        let err = FieldMap::from_json(Format::IclTask, &json!({"question": "q"})).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("icl_task") && msg.contains("question") && msg.contains("input"),
            "{msg}"
        );
    }

    #[test]
    fn json_schema_is_generated() {
        let schema = schemars::schema_for!(McFields);
        let s = serde_json::to_string(&schema).unwrap();
        assert!(
            s.contains("choices") && s.contains("additionalProperties"),
            "{s}"
        );
    }
}
