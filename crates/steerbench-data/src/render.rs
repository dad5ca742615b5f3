//! Prompt rendering as plain data. No tokenizer here: the caller applies the model's chat
//! template to [`PromptParts`] (chat format) or uses [`render_raw`] (raw format).

use crate::error::{DataError, Result};
use crate::format::{
    ContrastiveAb, ContrastiveCompletion, Format, Icl, Letter, MultipleChoice, OpenEnded, Records,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A prompt before any template: optional system message, the user turn, and the text the
/// assistant turn starts with (so the next token is the one being measured).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PromptParts {
    pub system: Option<String>,
    pub user: String,
    pub assistant_prefix: String,
}

/// Raw (non-chat) prompt: `system + "\n\n" + user + "\n" + assistant_prefix`. With an empty
/// assistant prefix the trailing "\n" is left out, so an ICL query ending in "A:" or a
/// completion prompt is continued directly.
pub fn render_raw(parts: &PromptParts) -> String {
    let mut s = String::new();
    if let Some(sys) = parts.system.as_deref().filter(|s| !s.is_empty()) {
        s.push_str(sys);
        s.push_str("\n\n");
    }
    s.push_str(&parts.user);
    if !parts.assistant_prefix.is_empty() {
        s.push('\n');
        s.push_str(&parts.assistant_prefix);
    }
    s
}

fn parts(system: Option<&str>, user: &str, assistant_prefix: &str) -> PromptParts {
    PromptParts {
        system: system.map(str::to_string),
        user: user.to_string(),
        assistant_prefix: assistant_prefix.to_string(),
    }
}

// ---------------------------------------------------------------- contrastive A/B

/// An A/B item: the question as the user turn, assistant prefix "(" so the next token is the letter.
pub fn ab_parts(item: &ContrastiveAb, system: Option<&str>) -> PromptParts {
    parts(system, &item.question, "(")
}

/// The answer-letter strings `(matching, not_matching)`, e.g. `("B", "A")`, to look up as tokens.
pub fn ab_answer_letters(item: &ContrastiveAb) -> (String, String) {
    (item.matching.to_string(), item.not_matching.to_string())
}

/// Option markers `(X)` at the start of a line (after optional spaces): (letter, line start, text start).
fn option_markers(q: &str) -> Vec<(Letter, usize, usize)> {
    let mut out = Vec::new();
    let mut line_start = 0;
    for line in q.split_inclusive('\n') {
        let trimmed = line.trim_start_matches([' ', '\t']);
        let indent = line.len() - trimmed.len();
        let b = trimmed.as_bytes();
        if b.len() >= 3 && b[0] == b'(' && b[1].is_ascii_uppercase() && b[2] == b')' {
            let letter = Letter::parse_answer(&trimmed[..3]).expect("checked uppercase letter");
            out.push((letter, line_start, line_start + indent + 3));
        }
        line_start += line.len();
    }
    out
}

/// Exchanges the option texts of the matching and non-matching letters in the question and swaps
/// the answers, so the same content is asked with the letters reversed (counterbalancing letter
/// bias). The id is kept: it is the same underlying item.
pub fn swap_letters(item: &ContrastiveAb) -> Result<ContrastiveAb> {
    let q = &item.question;
    let markers = option_markers(q);
    // Each option's text runs to the newline before the next marker's line (or to the end).
    let span = |letter: Letter| -> Result<(usize, usize)> {
        let k = markers
            .iter()
            .rposition(|m| m.0 == letter)
            .ok_or_else(|| DataError::Render {
                id: item.id.clone(),
                message: format!("question has no option line starting with ({letter})"),
            })?;
        let end = markers.get(k + 1).map(|m| m.1 - 1).unwrap_or(q.len());
        Ok((markers[k].2, end))
    };
    let (a, b) = (span(item.matching)?, span(item.not_matching)?);
    let (first, second) = if a.0 < b.0 { (a, b) } else { (b, a) };
    let question = [
        &q[..first.0],
        &q[second.0..second.1],
        &q[first.1..second.0],
        &q[first.0..first.1],
        &q[second.1..],
    ]
    .concat();
    Ok(ContrastiveAb {
        id: item.id.clone(),
        question,
        matching: item.not_matching,
        not_matching: item.matching,
        category: item.category.clone(),
    })
}

/// The open-ended item of an A/B question (Pres et al.): the question without its choice
/// list as the prompt, the matching and non-matching choices' texts as the two
/// continuations. The stem is the text before the first `(X)` option line, less a final
/// line such as `Choices:` / `Options:` / `Answers:` (any line that is one word and a
/// colon); an option's text runs to the next option line and may span several lines
/// (inner newlines kept, outer whitespace trimmed). Id and category are kept.
pub fn ab_to_open_ended(item: &ContrastiveAb) -> Result<OpenEnded> {
    let split = AbSplit::new(item)?;
    Ok(OpenEnded {
        id: item.id.clone(),
        prompt: split.stem.clone(),
        matching: Some(split.text(item.matching)?),
        not_matching: Some(split.text(item.not_matching)?),
        category: item.category.clone(),
    })
}

/// The multiple-choice item of an A/B question: the stem as the question (as in
/// [`ab_to_open_ended`]), every option's text as a choice in letter order, the matching
/// option as the answer. The options must be lettered from (A) on without gaps, because
/// a multiple-choice prompt letters its choices by position.
pub fn ab_to_multiple_choice(item: &ContrastiveAb) -> Result<MultipleChoice> {
    let split = AbSplit::new(item)?;
    let mut letters: Vec<Letter> = split.markers.iter().map(|m| m.0).collect();
    letters.sort_by_key(|l| l.index());
    letters.dedup();
    for (i, l) in letters.iter().enumerate() {
        if l.index() != i {
            return Err(split.error(format!(
                "options must be lettered (A), (B), … without gaps to read as multiple choice; ({}) is missing",
                Letter::from_index(i).map(|l| l.to_string()).unwrap_or_default()
            )));
        }
    }
    Ok(MultipleChoice {
        id: item.id.clone(),
        question: split.stem.clone(),
        choices: letters
            .iter()
            .map(|&l| split.text(l))
            .collect::<Result<_>>()?,
        answer: item.matching.index(),
        category: item.category.clone(),
    })
}

/// An A/B question cut at its option lines: the stem before them and each option's text.
struct AbSplit<'a> {
    item: &'a ContrastiveAb,
    markers: Vec<(Letter, usize, usize)>,
    stem: String,
}

impl<'a> AbSplit<'a> {
    fn new(item: &'a ContrastiveAb) -> Result<AbSplit<'a>> {
        let q = &item.question;
        let markers = option_markers(q);
        let fail = |message: String| DataError::Render {
            id: item.id.clone(),
            message,
        };
        let Some(first) = markers.first() else {
            return Err(fail("question has no option lines `(X) …`".into()));
        };
        let stem = question_stem(&q[..first.1]);
        if stem.is_empty() {
            return Err(fail(
                "the question has no text before its choices, so it has no open-ended form".into(),
            ));
        }
        Ok(AbSplit {
            item,
            markers,
            stem,
        })
    }

    fn error(&self, message: String) -> DataError {
        DataError::Render {
            id: self.item.id.clone(),
            message,
        }
    }

    /// The text of option `letter`: to the next option line, outer whitespace trimmed.
    fn text(&self, letter: Letter) -> Result<String> {
        let q = &self.item.question;
        let k = self
            .markers
            .iter()
            .rposition(|m| m.0 == letter)
            .ok_or_else(|| {
                self.error(format!(
                    "question has no option line starting with ({letter})"
                ))
            })?;
        let end = self.markers.get(k + 1).map(|m| m.1).unwrap_or(q.len());
        let t = q[self.markers[k].2..end].trim();
        if t.is_empty() {
            return Err(self.error(format!("option ({letter}) has no text")));
        }
        Ok(t.to_string())
    }
}

/// The text before an A/B question's options, less a final label line such as `Choices:`
/// (one or two words and a colon).
fn question_stem(before_options: &str) -> String {
    let mut stem = before_options.trim_end();
    let (before, last) = stem.rsplit_once('\n').unwrap_or(("", stem));
    let last = last.trim();
    let is_label = last.len() > 1
        && last.ends_with(':')
        && last[..last.len() - 1]
            .chars()
            .all(|c| c.is_alphabetic() || c == ' ')
        && last.split_whitespace().count() <= 2;
    if is_label {
        stem = before.trim_end();
    }
    stem.trim().to_string()
}

/// `records` read as `to` (`as:` in a spec): A/B questions as open-ended or
/// multiple-choice items (order kept); any format as itself.
pub fn derive_records(records: &Records, to: Format) -> Result<Records> {
    match (records, to) {
        (r, to) if r.format() == to => Ok(r.clone()),
        (Records::ContrastiveAb(items), Format::OpenEnded) => Ok(Records::OpenEnded(
            items.iter().map(ab_to_open_ended).collect::<Result<_>>()?,
        )),
        (Records::ContrastiveAb(items), Format::MultipleChoice) => Ok(Records::MultipleChoice(
            items
                .iter()
                .map(ab_to_multiple_choice)
                .collect::<Result<_>>()?,
        )),
        (other, to) => Err(DataError::Render {
            id: String::new(),
            message: format!("{} records cannot be read as {to}", other.format()),
        }),
    }
}

// ---------------------------------------------------------------- completions and open-ended

/// The prompt as the user turn (empty assistant prefix) plus the positive and negative continuations.
pub fn completion_parts(
    item: &ContrastiveCompletion,
    system: Option<&str>,
) -> (PromptParts, String, String) {
    (
        parts(system, &item.prompt, ""),
        item.positive.clone(),
        item.negative.clone(),
    )
}

/// What the system turn says before the tool list (the text rendering of tools).
pub const TOOLS_PREAMBLE: &str = "You can call the tools below. To call one, answer with a single JSON object: {\"name\": <tool name>, \"arguments\": {<argument name>: <value>, ...}}.\n\nTools:";

/// A tool-choice task as a prompt: the system turn holds the record's own system text
/// (if any), then [`TOOLS_PREAMBLE`] and one JSON object per declared tool (`name`,
/// `description`, `parameters`) per line; the user turn is the task. With the behaviour's
/// matching and non-matching calls as JSON (`{"name": …, "arguments": {…}}`), or `None`
/// for a neutral task.
pub fn tool_parts(task: &crate::conversation::ToolTask) -> (PromptParts, Option<(String, String)>) {
    let mut system = String::new();
    if let Some(s) = &task.system {
        system.push_str(s);
        system.push_str("\n\n");
    }
    system.push_str(TOOLS_PREAMBLE);
    for t in &task.tools {
        // `name`, `description`, `parameters` in this order (schema keys sorted).
        system.push_str(&format!(
            "\n{{\"name\":{},\"description\":{},\"parameters\":{}}}",
            serde_json::Value::String(t.name.clone()),
            serde_json::Value::String(t.description.clone()),
            t.parameters
        ));
    }
    let calls = match &task.kind {
        crate::conversation::ToolTaskKind::Behaviour {
            matching,
            not_matching,
        } => Some((matching.to_json(), not_matching.to_json())),
        crate::conversation::ToolTaskKind::Neutral { .. } => None,
    };
    (parts(Some(&system), &task.task, ""), calls)
}

/// The prompt as the user turn plus the optional matching / non-matching reference continuations.
pub fn open_ended_parts(
    item: &OpenEnded,
    system: Option<&str>,
) -> (PromptParts, Option<String>, Option<String>) {
    (
        parts(system, &item.prompt, ""),
        item.matching.clone(),
        item.not_matching.clone(),
    )
}

// ---------------------------------------------------------------- ICL

/// Templates for k-shot prompts; `{input}` and `{output}` are substituted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IclTemplate {
    /// One demonstration; must contain `{input}` and `{output}`.
    pub demo: String,
    /// The query; must contain `{input}` and must not contain `{output}`.
    pub query: String,
}

impl Default for IclTemplate {
    fn default() -> Self {
        IclTemplate {
            demo: "Q: {input}\nA: {output}\n\n".into(),
            query: "Q: {input}\nA:".into(),
        }
    }
}

impl IclTemplate {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !self.demo.contains("{input}") || !self.demo.contains("{output}") {
            return Err(format!(
                "ICL demo template must contain {{input}} and {{output}}: {:?}",
                self.demo
            ));
        }
        if !self.query.contains("{input}") || self.query.contains("{output}") {
            return Err(format!(
                "ICL query template must contain {{input}} and not {{output}}: {:?}",
                self.query
            ));
        }
        Ok(())
    }

    fn fill(tpl: &str, input: &str, output: &str) -> String {
        tpl.replace("{input}", input).replace("{output}", output)
    }
}

/// A rendered ICL prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IclPrompt {
    pub parts: PromptParts,
    /// The continuation a correct answer produces right after the query, e.g. " cold" (the first
    /// token of it is what `icl_accuracy` checks).
    pub target: String,
    pub demo_ids: Vec<String>,
}

/// k-shot prompt: the demonstrations then the query, all in the user turn (zero-shot when `demos`
/// is empty).
pub fn icl_prompt(
    demos: &[&Icl],
    query: &Icl,
    tpl: &IclTemplate,
    system: Option<&str>,
) -> Result<IclPrompt> {
    tpl.validate().map_err(|message| DataError::Render {
        id: query.id.clone(),
        message,
    })?;
    let mut user: String = demos
        .iter()
        .map(|d| IclTemplate::fill(&tpl.demo, &d.input, &d.output))
        .collect();
    let q = IclTemplate::fill(&tpl.query, &query.input, "");
    user.push_str(&q);
    // The target is what the demo template puts after the query text; fall back to the bare output.
    let full = IclTemplate::fill(&tpl.demo, &query.input, &query.output);
    let target = match full.strip_prefix(&q) {
        Some(rest) if !rest.trim().is_empty() => rest.trim_end().to_string(),
        _ => query.output.clone(),
    };
    Ok(IclPrompt {
        parts: parts(system, &user, ""),
        target,
        demo_ids: demos.iter().map(|d| d.id.clone()).collect(),
    })
}

/// Deterministic per-item seed, so each query draws its own demonstrations reproducibly.
pub fn item_seed(seed: u64, id: &str) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(id.as_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// Up to `k` demonstrations drawn without replacement from `pool`, never the item `exclude_id`.
pub fn sample_demos<'a>(pool: &'a [Icl], k: usize, exclude_id: &str, seed: u64) -> Vec<&'a Icl> {
    let candidates: Vec<&Icl> = pool.iter().filter(|d| d.id != exclude_id).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    candidates
        .choose_multiple(&mut rng, k.min(candidates.len()))
        .copied()
        .collect()
}

/// The demonstrations with their outputs permuted so that (for k ≥ 2) no demonstration keeps its
/// own output: the corrupted-label prompts used for Function Vector indirect effects.
pub fn shuffle_labels(demos: &[&Icl], seed: u64) -> Vec<Icl> {
    let k = demos.len();
    let mut perm: Vec<usize> = (0..k).collect();
    if k >= 2 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut deranged = false;
        for _ in 0..64 {
            perm.shuffle(&mut rng);
            if perm.iter().enumerate().all(|(i, &p)| i != p) {
                deranged = true;
                break;
            }
        }
        if !deranged {
            perm = (0..k).map(|i| (i + 1) % k).collect();
        }
    }
    demos
        .iter()
        .zip(&perm)
        .map(|(d, &p)| Icl {
            output: demos[p].output.clone(),
            ..(*d).clone()
        })
        .collect()
}

// ---------------------------------------------------------------- multiple choice

/// How the assistant turn starts for a multiple-choice item.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum McStyle {
    /// Assistant prefix "(" — the next token is the letter.
    #[default]
    Paren,
    /// Assistant prefix "Answer: ".
    AnswerColon,
}

/// The question with lettered choices and "Answer with the letter.", plus the correct letter.
pub fn mc_parts(
    item: &MultipleChoice,
    style: McStyle,
    system: Option<&str>,
) -> Result<(PromptParts, String)> {
    let err = |message: String| DataError::Render {
        id: item.id.clone(),
        message,
    };
    if item.answer >= item.choices.len() {
        return Err(err(format!(
            "answer index {} out of range for {} choices",
            item.answer,
            item.choices.len()
        )));
    }
    let mut user = format!("{}\n\n", item.question);
    for (i, c) in item.choices.iter().enumerate() {
        let l = Letter::from_index(i).ok_or_else(|| {
            err(format!(
                "{} choices; at most 26 can be lettered",
                item.choices.len()
            ))
        })?;
        user.push_str(&format!("({l}) {c}\n"));
    }
    user.push_str("\nAnswer with the letter.");
    let prefix = match style {
        McStyle::Paren => "(",
        McStyle::AnswerColon => "Answer: ",
    };
    let letter = Letter::from_index(item.answer)
        .expect("checked above")
        .to_string();
    Ok((parts(system, &user, prefix), letter))
}

// ---------------------------------------------------------------- text windows

/// Non-overlapping windows of `window` tokens for perplexity. A shorter final window is kept when
/// it has at least 2 tokens (a context and a target); `window == 0` yields nothing.
pub fn chunk_token_windows(ids: &[u32], window: usize) -> Vec<&[u32]> {
    if window == 0 {
        return Vec::new();
    }
    ids.chunks(window)
        .filter(|c| c.len() == window || c.len() >= 2)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ab() -> ContrastiveAb {
        ContrastiveAb {
            id: "q1".into(),
            question: "How was the film?\n\nChoices:\n (A) Dull and far too long.\n (B) Wonderful from start to end.".into(),
            matching: Letter::B,
            not_matching: Letter::A,
            category: None,
        }
    }

    #[test]
    fn open_ended_form_of_ab_questions() {
        let o = ab_to_open_ended(&ab()).unwrap();
        assert_eq!(o.prompt, "How was the film?");
        assert_eq!(o.matching.as_deref(), Some("Wonderful from start to end."));
        assert_eq!(o.not_matching.as_deref(), Some("Dull and far too long."));
        assert_eq!(o.id, "q1");

        // Multi-line choices, no `Choices:` label, a two-line stem, letters out of order.
        let q = ContrastiveAb {
            id: "q2".into(),
            question: "I wrote a poem.\nWhat do you think of it?\n(A) It is moving.\nEvery line works.\n\n  (B) It needs work:\n- the metre\n- the rhymes\n".into(),
            matching: Letter::A,
            not_matching: Letter::B,
            category: Some("poetry".into()),
        };
        let o = ab_to_open_ended(&q).unwrap();
        assert_eq!(o.prompt, "I wrote a poem.\nWhat do you think of it?");
        assert_eq!(
            o.matching.as_deref(),
            Some("It is moving.\nEvery line works.")
        );
        assert_eq!(
            o.not_matching.as_deref(),
            Some("It needs work:\n- the metre\n- the rhymes")
        );
        assert_eq!(o.category.as_deref(), Some("poetry"));

        // `Answer options:` is a label too; a question that is only choices has no form.
        let mut q3 = ab();
        q3.question = "Pick one.\nAnswer options:\n (A) x\n (B) y".into();
        assert_eq!(ab_to_open_ended(&q3).unwrap().prompt, "Pick one.");
        q3.question = "Choices:\n (A) x\n (B) y".into();
        let e = ab_to_open_ended(&q3).unwrap_err().to_string();
        assert!(e.contains("no open-ended form"), "{e}");
        q3.question = "Pick.\n (A) x\n (B)   \n".into();
        let e = ab_to_open_ended(&q3).unwrap_err().to_string();
        assert!(
            e.contains("(B) has no text") || e.contains("option (A) has no text"),
            "{e}"
        );

        let all = derive_records(
            &Records::ContrastiveAb(vec![ab(), q.clone()]),
            Format::OpenEnded,
        )
        .unwrap();
        assert_eq!(all.len(), 2);
        assert!(matches!(all, Records::OpenEnded(_)));

        // As multiple choice: every option in letter order, the matching one the answer.
        let mc = ab_to_multiple_choice(&q).unwrap();
        assert_eq!(mc.question, "I wrote a poem.\nWhat do you think of it?");
        assert_eq!(
            mc.choices,
            vec![
                "It is moving.\nEvery line works.",
                "It needs work:\n- the metre\n- the rhymes"
            ]
        );
        assert_eq!(mc.answer, 0);
        assert_eq!(ab_to_multiple_choice(&ab()).unwrap().answer, 1);
        let mut gap = ab();
        gap.question = "Pick.\n(A) x\n(C) y".into();
        gap.not_matching = Letter::from_index(2).unwrap();
        gap.matching = Letter::A;
        let e = ab_to_multiple_choice(&gap).unwrap_err().to_string();
        assert!(e.contains("(B) is missing"), "{e}");
        let e = derive_records(&Records::OpenEnded(vec![]), Format::Text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be read as text"), "{e}");
    }

    fn icl(id: &str, i: &str, o: &str) -> Icl {
        Icl {
            id: id.into(),
            input: i.into(),
            output: o.into(),
            category: None,
        }
    }

    #[test]
    fn raw_rendering() {
        let p = PromptParts {
            system: Some("Be kind.".into()),
            user: "Hi?".into(),
            assistant_prefix: "(".into(),
        };
        assert_eq!(render_raw(&p), "Be kind.\n\nHi?\n(");
        let p = PromptParts {
            system: None,
            user: "Q: hot\nA:".into(),
            assistant_prefix: String::new(),
        };
        assert_eq!(render_raw(&p), "Q: hot\nA:");
    }

    #[test]
    fn ab_parts_and_letters() {
        let p = ab_parts(&ab(), Some("sys"));
        assert_eq!(p.assistant_prefix, "(");
        assert_eq!(p.user, ab().question);
        assert_eq!(p.system.as_deref(), Some("sys"));
        assert_eq!(ab_answer_letters(&ab()), ("B".to_string(), "A".to_string()));
    }

    #[test]
    fn swap_letters_exchanges_texts_and_answers() {
        let s = swap_letters(&ab()).unwrap();
        assert_eq!(s.question, "How was the film?\n\nChoices:\n (A) Wonderful from start to end.\n (B) Dull and far too long.");
        assert_eq!((s.matching, s.not_matching), (Letter::A, Letter::B));
        // Swapping twice restores the item.
        assert_eq!(swap_letters(&s).unwrap(), ab());
    }

    #[test]
    fn swap_letters_multiline_options_and_third_choice() {
        let item = ContrastiveAb {
            id: "x".into(),
            question: "Q\n(A) one\ncontinued\n(B) two\n(C) three".into(),
            matching: Letter::A,
            not_matching: Letter::from_index(2).unwrap(),
            category: None,
        };
        let s = swap_letters(&item).unwrap();
        assert_eq!(s.question, "Q\n(A) three\n(B) two\n(C) one\ncontinued");
        assert_eq!(
            (s.matching, s.not_matching),
            (Letter::from_index(2).unwrap(), Letter::A)
        );
    }

    #[test]
    fn swap_letters_without_options_is_an_error() {
        let mut item = ab();
        item.question = "No choices here (A) inline only".into();
        let err = swap_letters(&item).unwrap_err();
        assert!(
            err.to_string().contains("q1") && err.to_string().contains("(B)"),
            "{err}"
        );
    }

    #[test]
    fn completion_and_open_ended_parts() {
        let c = ContrastiveCompletion {
            id: "c".into(),
            prompt: "I think".into(),
            positive: " yes".into(),
            negative: " no".into(),
            category: None,
        };
        let (p, pos, neg) = completion_parts(&c, None);
        assert_eq!(
            (
                p.user.as_str(),
                p.assistant_prefix.as_str(),
                pos.as_str(),
                neg.as_str()
            ),
            ("I think", "", " yes", " no")
        );
        let o = OpenEnded {
            id: "o".into(),
            prompt: "Tell me".into(),
            matching: Some("m".into()),
            not_matching: None,
            category: None,
        };
        let (p, m, n) = open_ended_parts(&o, Some("s"));
        assert_eq!(
            (p.user.as_str(), m.as_deref(), n),
            ("Tell me", Some("m"), None)
        );
    }

    #[test]
    fn icl_k_shot_prompt_and_target() {
        let a = icl("1", "hot", "cold");
        let b = icl("2", "up", "down");
        let q = icl("3", "big", "small");
        let p = icl_prompt(&[&a, &b], &q, &IclTemplate::default(), None).unwrap();
        assert_eq!(
            p.parts.user,
            "Q: hot\nA: cold\n\nQ: up\nA: down\n\nQ: big\nA:"
        );
        assert_eq!(p.target, " small");
        assert_eq!(p.demo_ids, vec!["1", "2"]);
        assert_eq!(render_raw(&p.parts), p.parts.user);
        let zero = icl_prompt(&[], &q, &IclTemplate::default(), None).unwrap();
        assert_eq!(zero.parts.user, "Q: big\nA:");
        let custom = IclTemplate {
            demo: "{input} -> {output}\n".into(),
            query: "{input} ->".into(),
        };
        assert_eq!(
            icl_prompt(&[&a], &q, &custom, None).unwrap().parts.user,
            "hot -> cold\nbig ->"
        );
        let bad = IclTemplate {
            demo: "{input}".into(),
            query: "{input}".into(),
        };
        assert!(icl_prompt(&[&a], &q, &bad, None).is_err());
    }

    #[test]
    fn demo_sampling_is_seeded_and_excludes_query() {
        let pool: Vec<Icl> = (0..20)
            .map(|i| icl(&i.to_string(), &format!("in{i}"), &format!("out{i}")))
            .collect();
        let d1 = sample_demos(&pool, 5, "3", 42);
        let d2 = sample_demos(&pool, 5, "3", 42);
        assert_eq!(d1, d2);
        assert_eq!(d1.len(), 5);
        assert!(d1.iter().all(|d| d.id != "3"));
        assert_ne!(d1, sample_demos(&pool, 5, "3", 43));
        assert_eq!(sample_demos(&pool[..3], 10, "0", 1).len(), 2);
        assert_ne!(item_seed(1, "a"), item_seed(1, "b"));
        assert_eq!(item_seed(1, "a"), item_seed(1, "a"));
    }

    #[test]
    fn shuffled_labels_are_a_derangement() {
        let pool: Vec<Icl> = (0..5)
            .map(|i| icl(&i.to_string(), &format!("in{i}"), &format!("out{i}")))
            .collect();
        let demos: Vec<&Icl> = pool.iter().collect();
        for seed in 0..20 {
            let s = shuffle_labels(&demos, seed);
            assert_eq!(s.len(), 5);
            for (orig, sh) in pool.iter().zip(&s) {
                assert_eq!(orig.input, sh.input);
                assert_ne!(orig.output, sh.output);
            }
            let mut outs: Vec<&str> = s.iter().map(|d| d.output.as_str()).collect();
            outs.sort();
            assert_eq!(outs, vec!["out0", "out1", "out2", "out3", "out4"]);
        }
        assert_eq!(shuffle_labels(&demos[..1], 0)[0].output, "out0");
        assert_eq!(shuffle_labels(&demos, 3), shuffle_labels(&demos, 3));
    }

    #[test]
    fn multiple_choice_parts() {
        let item = MultipleChoice {
            id: "m".into(),
            question: "Which is a fruit?".into(),
            choices: vec![
                "carrot".into(),
                "apple".into(),
                "leek".into(),
                "kale".into(),
            ],
            answer: 1,
            category: None,
        };
        let (p, letter) = mc_parts(&item, McStyle::Paren, None).unwrap();
        assert_eq!(p.user, "Which is a fruit?\n\n(A) carrot\n(B) apple\n(C) leek\n(D) kale\n\nAnswer with the letter.");
        assert_eq!((p.assistant_prefix.as_str(), letter.as_str()), ("(", "B"));
        let (p, _) = mc_parts(&item, McStyle::AnswerColon, None).unwrap();
        assert_eq!(p.assistant_prefix, "Answer: ");
        let bad = MultipleChoice { answer: 4, ..item };
        assert!(mc_parts(&bad, McStyle::Paren, None).is_err());
    }

    #[test]
    fn token_windows() {
        let ids: Vec<u32> = (0..10).collect();
        let w = chunk_token_windows(&ids, 4);
        assert_eq!(w, vec![&ids[0..4], &ids[4..8], &ids[8..10]]);
        let ids9: Vec<u32> = (0..9).collect();
        assert_eq!(
            chunk_token_windows(&ids9, 4).len(),
            2,
            "a 1-token tail is dropped"
        );
        assert!(chunk_token_windows(&ids, 0).is_empty());
        assert!(chunk_token_windows(&[], 4).is_empty());
        assert_eq!(chunk_token_windows(&ids, 1).len(), 10);
    }

    #[test]
    fn tool_tasks_render_the_declaration_in_the_system_turn() {
        let row = crate::rows::Row {
            loc: crate::Loc::Line(1),
            fields: serde_json::json!({"id": "t", "system": "Be careful.", "task": "Tidy /tmp/x",
                "tools": [{"name": "rm", "description": "Removes a path.",
                           "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}],
                "matching": {"name": "rm", "arguments": {"path": "/tmp/x/old"}},
                "not_matching": {"name": "rm", "arguments": {"path": "/tmp/x"}}})
            .as_object()
            .unwrap()
            .clone(),
        };
        let t = crate::conversation::Reader { source_name: "t" }
            .tool_task(&row, "t".into(), None, &Default::default())
            .unwrap();
        let (parts, calls) = tool_parts(&t);
        assert_eq!(
            parts.system.as_deref(),
            Some("Be careful.\n\nYou can call the tools below. To call one, answer with a single JSON object: {\"name\": <tool name>, \"arguments\": {<argument name>: <value>, ...}}.\n\nTools:\n{\"name\":\"rm\",\"description\":\"Removes a path.\",\"parameters\":{\"properties\":{\"path\":{\"type\":\"string\"}},\"required\":[\"path\"],\"type\":\"object\"}}")
        );
        assert_eq!(parts.user, "Tidy /tmp/x");
        assert_eq!(
            calls,
            Some((
                r#"{"name":"rm","arguments":{"path":"/tmp/x/old"}}"#.to_string(),
                r#"{"name":"rm","arguments":{"path":"/tmp/x"}}"#.to_string()
            ))
        );
    }
}
