//! Field mappings: which column (or dotted path into nested JSON) holds each record field.
//!
//! Defaults are the layouts of the built-in datasets (datasets/README.md); users override only
//! the names that differ, through [`FieldOverrides`] (the `fields:` entry of a pipeline spec),
//! which [`FieldMap::new`] resolves against a format. A dotted path such as `positive.response`
//! reads a nested object (Tan et al.'s `{positive: {prompt, response}, negative: {...}}`); a
//! column whose name literally contains a dot is matched first.

use crate::error::{DataError, Result};
use crate::format::Format;
use serde::{Deserialize, Serialize};

/// Default record field of the `id` role (every format).
pub const DEFAULT_ID_FIELD: &str = "id";
/// Default record field of the `category` role (every format).
pub const DEFAULT_CATEGORY_FIELD: &str = "category";
/// The roles every format has, with their default record fields.
pub const COMMON_ROLES: &[(&str, &str)] = &[
    ("id", DEFAULT_ID_FIELD),
    ("category", DEFAULT_CATEGORY_FIELD),
];

macro_rules! field_struct {
    ($(#[$meta:meta])* $name:ident { $($(#[$fm:meta])* $field:ident = $default:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// Stable record id; when the default column `id` is absent the 0-based row index
            /// is used (a column named by an override must be present).
            pub id: String,
            /// Optional stratum for stratified splits.
            pub category: String,
            $($(#[$fm])* pub $field: String,)*
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    id: DEFAULT_ID_FIELD.into(),
                    category: DEFAULT_CATEGORY_FIELD.into(),
                    $($field: $default.into(),)*
                }
            }
        }

        impl $name {
            /// The format's own roles with their default record fields, in order
            /// (`id` and `category`, common to every format, are not listed).
            pub const ROLES: &'static [(&'static str, &'static str)] =
                &[$((stringify!($field), $default)),*];

            /// Sets the record field of `role`; false if the format has no such role.
            fn set(&mut self, role: &str, field: &str) -> bool {
                let slot = match role {
                    "id" => &mut self.id,
                    "category" => &mut self.category,
                    $(stringify!($field) => &mut self.$field,)*
                    _ => return false,
                };
                *slot = field.to_string();
                true
            }

            fn roles(&self) -> Vec<(&'static str, &str)> {
                vec![$((stringify!($field), self.$field.as_str())),*]
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

field_struct!(
    /// Fields of `conversation`: the list of messages (each `{role, content, matching,
    /// not_matching}`, keys fixed; see `conversation`).
    ConversationFields {
        messages = "messages",
    }
);

field_struct!(
    /// Fields of `tool_choice`: declared tools, the user task, an optional system text, and
    /// either a behaviour pair of calls (`matching` / `not_matching`) or a neutral task's
    /// `correct` call and `distractors`.
    ToolChoiceFields {
        tools = "tools",
        task = "task",
        system = "system",
        matching = "matching",
        not_matching = "not_matching",
        correct = "correct",
        distractors = "distractors",
    }
);

/// Record field names per role, as written in a pipeline spec (`fields:`); every key is
/// optional and roles left out keep the format's default. Which roles apply depends on the
/// format: contrastive_ab: question, matching, not_matching; contrastive_completion: prompt,
/// positive, negative; open_ended: prompt, matching, not_matching (the last two optional in the
/// data); icl_task: input, output; multiple_choice: question, choices, answer; text: text;
/// conversation: messages; tool_choice: tools, task, system, matching, not_matching, correct,
/// distractors.
/// `id` and `category` apply to every format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldOverrides {
    /// Question text (contrastive_ab, multiple_choice). Default `question`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// Behaviour-matching answer or continuation (contrastive_ab: default `answer_matching_behavior`; open_ended: default `matching`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching: Option<String>,
    /// Non-matching answer or continuation (contrastive_ab: default `answer_not_matching_behavior`; open_ended: default `not_matching`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_matching: Option<String>,
    /// Prompt text (contrastive_completion, open_ended). Default `prompt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Positive completion (contrastive_completion). Default `positive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive: Option<String>,
    /// Negative completion (contrastive_completion). Default `negative`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative: Option<String>,
    /// ICL input (icl_task). Default `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// ICL output (icl_task). Default `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// List of choices (multiple_choice). Default `choices`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<String>,
    /// Index of the right choice (multiple_choice). Default `answer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Text of a corpus record (text). Default `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The list of messages (conversation). Default `messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<String>,
    /// The declared tools (tool_choice). Default `tools`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<String>,
    /// The user's task (tool_choice). Default `task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Optional system text (tool_choice). Default `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The right call of a neutral task (tool_choice). Default `correct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<String>,
    /// The wrong calls of a neutral task (tool_choice). Default `distractors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distractors: Option<String>,
    /// Record id, any format. Default `id`; when that default column is absent the 0-based row
    /// index is used, while a column named here must be present in every record. Ids must be unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Stratum for the seeded, stratified split, any format. Default `category` (optional in
    /// the data); a column named here must be present in at least one record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

impl FieldOverrides {
    /// The roles that were written, in declaration order.
    pub fn given(&self) -> Vec<(&'static str, &str)> {
        let all = [
            ("question", &self.question),
            ("matching", &self.matching),
            ("not_matching", &self.not_matching),
            ("prompt", &self.prompt),
            ("positive", &self.positive),
            ("negative", &self.negative),
            ("input", &self.input),
            ("output", &self.output),
            ("choices", &self.choices),
            ("answer", &self.answer),
            ("text", &self.text),
            ("messages", &self.messages),
            ("tools", &self.tools),
            ("task", &self.task),
            ("system", &self.system),
            ("correct", &self.correct),
            ("distractors", &self.distractors),
            ("id", &self.id),
            ("category", &self.category),
        ];
        all.into_iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
            .collect()
    }
}

impl Format {
    /// The format's own roles with their default record fields, in order (`id` and `category`,
    /// common to every format, are in [`COMMON_ROLES`]).
    pub fn roles(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Format::ContrastiveAb => AbFields::ROLES,
            Format::ContrastiveCompletion => CompletionFields::ROLES,
            Format::OpenEnded => OpenEndedFields::ROLES,
            Format::IclTask => IclFields::ROLES,
            Format::MultipleChoice => McFields::ROLES,
            Format::Text => TextFields::ROLES,
            Format::Conversation => ConversationFields::ROLES,
            Format::ToolChoice => ToolChoiceFields::ROLES,
        }
    }

    /// Every role a `fields:` mapping may name for this format: its own, then `id`, `category`.
    pub fn role_names(self) -> Vec<&'static str> {
        self.roles()
            .iter()
            .chain(COMMON_ROLES)
            .map(|(r, _)| *r)
            .collect()
    }

    /// Whether a `fields:` mapping for this format may name `role`.
    pub fn has_role(self, role: &str) -> bool {
        self.role_names().contains(&role)
    }
}

/// A field mapping for one format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldMap {
    ContrastiveAb(AbFields),
    ContrastiveCompletion(CompletionFields),
    OpenEnded(OpenEndedFields),
    IclTask(IclFields),
    MultipleChoice(McFields),
    Text(TextFields),
    Conversation(ConversationFields),
    ToolChoice(ToolChoiceFields),
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
            Format::Conversation => FieldMap::Conversation(Default::default()),
            Format::ToolChoice => FieldMap::ToolChoice(Default::default()),
        }
    }

    /// The mapping for `format`: its defaults with `overrides` applied. A role the format does
    /// not have is an error that lists the roles it has.
    pub fn new(format: Format, overrides: &FieldOverrides) -> Result<FieldMap> {
        let mut map = FieldMap::default_for(format);
        for (role, field) in overrides.given() {
            let known = match &mut map {
                FieldMap::ContrastiveAb(f) => f.set(role, field),
                FieldMap::ContrastiveCompletion(f) => f.set(role, field),
                FieldMap::OpenEnded(f) => f.set(role, field),
                FieldMap::IclTask(f) => f.set(role, field),
                FieldMap::MultipleChoice(f) => f.set(role, field),
                FieldMap::Text(f) => f.set(role, field),
                FieldMap::Conversation(f) => f.set(role, field),
                FieldMap::ToolChoice(f) => f.set(role, field),
            };
            if !known {
                let roles: Vec<String> = format
                    .role_names()
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect();
                return Err(DataError::FieldMap {
                    format: format.name(),
                    message: format!(
                        "role `{role}` does not apply; its roles are {}",
                        roles.join(", ")
                    ),
                });
            }
        }
        Ok(map)
    }

    pub fn format(&self) -> Format {
        match self {
            FieldMap::ContrastiveAb(_) => Format::ContrastiveAb,
            FieldMap::ContrastiveCompletion(_) => Format::ContrastiveCompletion,
            FieldMap::OpenEnded(_) => Format::OpenEnded,
            FieldMap::IclTask(_) => Format::IclTask,
            FieldMap::MultipleChoice(_) => Format::MultipleChoice,
            FieldMap::Text(_) => Format::Text,
            FieldMap::Conversation(_) => Format::Conversation,
            FieldMap::ToolChoice(_) => Format::ToolChoice,
        }
    }

    /// The format's own roles with their record fields, in [`Format::roles`] order
    /// (`id` and `category` are in [`FieldMap::id_and_category`]).
    pub fn roles(&self) -> Vec<(&'static str, &str)> {
        match self {
            FieldMap::ContrastiveAb(f) => f.roles(),
            FieldMap::ContrastiveCompletion(f) => f.roles(),
            FieldMap::OpenEnded(f) => f.roles(),
            FieldMap::IclTask(f) => f.roles(),
            FieldMap::MultipleChoice(f) => f.roles(),
            FieldMap::Text(f) => f.roles(),
            FieldMap::Conversation(f) => f.roles(),
            FieldMap::ToolChoice(f) => f.roles(),
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
            FieldMap::Conversation(f) => (&f.id, &f.category),
            FieldMap::ToolChoice(f) => (&f.id, &f.category),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(json: serde_json::Value) -> FieldOverrides {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_match_builtin_layouts() {
        let FieldMap::ContrastiveAb(f) = FieldMap::default_for(Format::ContrastiveAb) else {
            panic!()
        };
        assert_eq!(f.matching, "answer_matching_behavior");
        assert_eq!(f.id, "id");
        for format in Format::ALL {
            let m = FieldMap::default_for(format);
            assert_eq!(m.format(), format);
            assert_eq!(m.roles(), format.roles().to_vec());
            assert_eq!(
                m,
                FieldMap::new(format, &FieldOverrides::default()).unwrap()
            );
        }
        assert_eq!(
            Format::OpenEnded.role_names(),
            ["prompt", "matching", "not_matching", "id", "category"]
        );
    }

    #[test]
    fn overrides_keep_other_defaults_and_accept_dotted_paths() {
        let m = FieldMap::new(
            Format::ContrastiveCompletion,
            &overrides(serde_json::json!({"prompt": "positive.prompt", "positive": "positive.response", "negative": "negative.response"})),
        )
        .unwrap();
        let FieldMap::ContrastiveCompletion(f) = &m else {
            panic!()
        };
        assert_eq!(f.positive, "positive.response");
        assert_eq!(m.id_and_category(), ("id", "category"));
    }

    #[test]
    fn id_and_category_can_be_mapped_for_every_format() {
        let o = overrides(serde_json::json!({"id": "uid", "category": "topic"}));
        for format in Format::ALL {
            let m = FieldMap::new(format, &o).unwrap();
            assert_eq!(m.id_and_category(), ("uid", "topic"), "{format}");
            assert_eq!(m.roles(), format.roles().to_vec(), "{format}");
        }
    }

    #[test]
    fn inapplicable_role_is_rejected_with_valid_names() {
        let err = FieldMap::new(
            Format::IclTask,
            &overrides(serde_json::json!({"question": "q"})),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("icl_task")
                && msg.contains("`question`")
                && msg.contains("`input`, `output`, `id`, `category`"),
            "{msg}"
        );
        assert!(Format::IclTask.has_role("category"));
        assert!(!Format::IclTask.has_role("question"));
    }

    #[test]
    fn unknown_role_is_a_deserialization_error() {
        let err = serde_json::from_value::<FieldOverrides>(serde_json::json!({"uid": "x"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `uid`") && err.contains("`id`"),
            "{err}"
        );
    }

    #[test]
    fn json_schema_is_generated() {
        let schema = schemars::schema_for!(FieldOverrides);
        let s = serde_json::to_string(&schema).unwrap();
        assert!(
            s.contains("choices") && s.contains("category") && s.contains("additionalProperties"),
            "{s}"
        );
    }
}
