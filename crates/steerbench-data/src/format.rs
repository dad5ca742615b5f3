//! Dataset formats and their typed records.

use serde::{Deserialize, Serialize};
use std::fmt;

pub use crate::conversation::{Conversation, ToolTask};

/// The six dataset formats steerbench evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A question with lettered choices; behaviour-matching and non-matching answer letters (CAA).
    ContrastiveAb,
    /// A prompt with a positive and a negative completion (Tan et al.).
    ContrastiveCompletion,
    /// Prompts, optionally with matching / non-matching reference continuations (Pres et al.).
    OpenEnded,
    /// Input/output pairs rendered into k-shot prompts (Function Vectors, ICV).
    IclTask,
    /// Question, choices, answer index — for degradation.
    MultipleChoice,
    /// Plain text paragraphs — for perplexity.
    Text,
    /// Multi-turn conversations whose assistant turns are scored (or written).
    Conversation,
    /// Declared tools, a task and candidate tool calls (agentic settings).
    ToolChoice,
}

impl Format {
    pub const ALL: [Format; 8] = [
        Format::ContrastiveAb,
        Format::ContrastiveCompletion,
        Format::OpenEnded,
        Format::IclTask,
        Format::MultipleChoice,
        Format::Text,
        Format::Conversation,
        Format::ToolChoice,
    ];

    /// The name used in pipeline specs.
    pub fn name(self) -> &'static str {
        match self {
            Format::ContrastiveAb => "contrastive_ab",
            Format::ContrastiveCompletion => "contrastive_completion",
            Format::OpenEnded => "open_ended",
            Format::IclTask => "icl_task",
            Format::MultipleChoice => "multiple_choice",
            Format::Text => "text",
            Format::Conversation => "conversation",
            Format::ToolChoice => "tool_choice",
        }
    }

    pub fn from_name(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == s)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An answer letter `A`..=`Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Letter(u8);

impl Letter {
    pub const A: Letter = Letter(b'A');
    pub const B: Letter = Letter(b'B');

    /// The letter for a 0-based choice index (0 → A); `None` past Z.
    pub fn from_index(i: usize) -> Option<Letter> {
        (i < 26).then(|| Letter(b'A' + i as u8))
    }

    /// 0-based choice index (A → 0).
    pub fn index(self) -> usize {
        (self.0 - b'A') as usize
    }

    pub fn as_char(self) -> char {
        self.0 as char
    }

    /// Parses answer strings as they appear in CAA-style files: `(A)`, ` (A)`, `A`, `(a)`, `A)`.
    pub fn parse_answer(s: &str) -> Option<Letter> {
        let t = s.trim();
        let t = t.strip_prefix('(').unwrap_or(t);
        let t = t.strip_suffix(')').unwrap_or(t).trim();
        let mut chars = t.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphabetic() => {
                Some(Letter(c.to_ascii_uppercase() as u8))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Letter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// CAA model-written-evals item: `question` ends with lettered choices; answers are letters.
#[derive(Debug, Clone, PartialEq)]
pub struct ContrastiveAb {
    pub id: String,
    pub question: String,
    pub matching: Letter,
    pub not_matching: Letter,
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContrastiveCompletion {
    pub id: String,
    pub prompt: String,
    pub positive: String,
    pub negative: String,
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenEnded {
    pub id: String,
    pub prompt: String,
    pub matching: Option<String>,
    pub not_matching: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Icl {
    pub id: String,
    pub input: String,
    pub output: String,
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MultipleChoice {
    pub id: String,
    pub question: String,
    pub choices: Vec<String>,
    /// 0-based index into `choices`.
    pub answer: usize,
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    pub id: String,
    pub text: String,
    pub category: Option<String>,
}

/// What every record offers to generic code (splits, fingerprints).
pub trait Record {
    fn id(&self) -> &str;
    /// The stratum used by stratified splits.
    fn stratum(&self) -> Option<String>;
}

macro_rules! category_stratum {
    ($($t:ty),*) => {$(
        impl Record for $t {
            fn id(&self) -> &str { &self.id }
            fn stratum(&self) -> Option<String> { self.category.clone() }
        }
    )*};
}
category_stratum!(
    ContrastiveCompletion,
    OpenEnded,
    Icl,
    MultipleChoice,
    Text,
    Conversation,
    ToolTask
);

impl Record for ContrastiveAb {
    fn id(&self) -> &str {
        &self.id
    }
    /// Stratified by the matching letter so every split sees both answer letters.
    fn stratum(&self) -> Option<String> {
        Some(self.matching.to_string())
    }
}

/// A loaded dataset's records, one variant per format.
#[derive(Debug, Clone, PartialEq)]
pub enum Records {
    ContrastiveAb(Vec<ContrastiveAb>),
    ContrastiveCompletion(Vec<ContrastiveCompletion>),
    OpenEnded(Vec<OpenEnded>),
    IclTask(Vec<Icl>),
    MultipleChoice(Vec<MultipleChoice>),
    Text(Vec<Text>),
    Conversation(Vec<Conversation>),
    ToolChoice(Vec<ToolTask>),
}

macro_rules! each_records {
    ($self:expr, $v:ident => $body:expr) => {
        match $self {
            Records::ContrastiveAb($v) => $body,
            Records::ContrastiveCompletion($v) => $body,
            Records::OpenEnded($v) => $body,
            Records::IclTask($v) => $body,
            Records::MultipleChoice($v) => $body,
            Records::Text($v) => $body,
            Records::Conversation($v) => $body,
            Records::ToolChoice($v) => $body,
        }
    };
}

impl Records {
    pub fn format(&self) -> Format {
        match self {
            Records::ContrastiveAb(_) => Format::ContrastiveAb,
            Records::ContrastiveCompletion(_) => Format::ContrastiveCompletion,
            Records::OpenEnded(_) => Format::OpenEnded,
            Records::IclTask(_) => Format::IclTask,
            Records::MultipleChoice(_) => Format::MultipleChoice,
            Records::Text(_) => Format::Text,
            Records::Conversation(_) => Format::Conversation,
            Records::ToolChoice(_) => Format::ToolChoice,
        }
    }

    pub fn len(&self) -> usize {
        each_records!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn ids(&self) -> Vec<&str> {
        each_records!(self, v => v.iter().map(|r| r.id()).collect())
    }

    pub fn strata(&self) -> Vec<Option<String>> {
        each_records!(self, v => v.iter().map(|r| r.stratum()).collect())
    }

    /// The records at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Records {
        fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
            idx.iter().map(|&i| v[i].clone()).collect()
        }
        match self {
            Records::ContrastiveAb(v) => Records::ContrastiveAb(pick(v, indices)),
            Records::ContrastiveCompletion(v) => Records::ContrastiveCompletion(pick(v, indices)),
            Records::OpenEnded(v) => Records::OpenEnded(pick(v, indices)),
            Records::IclTask(v) => Records::IclTask(pick(v, indices)),
            Records::MultipleChoice(v) => Records::MultipleChoice(pick(v, indices)),
            Records::Text(v) => Records::Text(pick(v, indices)),
            Records::Conversation(v) => Records::Conversation(pick(v, indices)),
            Records::ToolChoice(v) => Records::ToolChoice(pick(v, indices)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_parse_caa_answer_forms() {
        for s in ["(A)", " (A)", "A", "(a)", "A)", " ( B ) "] {
            assert!(Letter::parse_answer(s).is_some(), "{s}");
        }
        assert_eq!(Letter::parse_answer(" (B)"), Some(Letter::B));
        assert_eq!(Letter::parse_answer("(AB)"), None);
        assert_eq!(Letter::parse_answer(""), None);
        assert_eq!(Letter::parse_answer("(1)"), None);
        assert_eq!(Letter::from_index(3).unwrap().as_char(), 'D');
        assert_eq!(Letter::B.index(), 1);
        assert_eq!(Letter::from_index(26), None);
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.name()), Some(f));
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.name()));
        }
        assert_eq!(Format::from_name("nope"), None);
    }

    #[test]
    fn ab_records_stratify_by_matching_letter() {
        let r = ContrastiveAb {
            id: "1".into(),
            question: "q".into(),
            matching: Letter::B,
            not_matching: Letter::A,
            category: Some("x".into()),
        };
        assert_eq!(r.stratum().as_deref(), Some("B"));
        let recs = Records::ContrastiveAb(vec![r.clone(), r]);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs.select(&[1]).len(), 1);
        assert_eq!(recs.format(), Format::ContrastiveAb);
    }
}
