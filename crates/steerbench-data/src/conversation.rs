//! Multi-turn records: conversations whose assistant turns are scored, and tool-choice
//! tasks (declared tools, a user task, candidate calls). Parsed from rows and checked
//! here, with every error naming the line, the record and the field; rendered into
//! prompts by the caller (`steerbench_eval::dialogue`).
//!
//! Layout of a conversation (`messages`, roles in order):
//!
//! ```json
//! {"id": "c1", "messages": [
//!   {"role": "system", "content": "…"},                       // optional, first only
//!   {"role": "user", "content": "…"},
//!   {"role": "assistant", "content": "…", "matching": "…", "not_matching": "…"},
//!   {"role": "user", "content": "…"},
//!   {"role": "assistant"}]}                                   // open-ended: the model writes it
//! ```
//!
//! An assistant turn is *scored* when it has `matching` and `not_matching` (both, or
//! neither); its `content` is what the history shows for it when a later turn is
//! scored or written. A turn that is neither scored nor last must have `content`.

use serde_json::{Map, Value};

use crate::error::{DataError, Result};
use crate::extract::lookup;
use crate::fields::ToolChoiceFields;
use crate::rows::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// `a user` / `an assistant` (for messages).
    fn with_article(self) -> String {
        match self {
            Role::Assistant => "an assistant".into(),
            r => format!("a {}", r.name()),
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    /// The text (for assistant turns: what the history shows for it).
    pub content: Option<String>,
    /// Assistant turns that are scored: the behaviour-matching and non-matching replies.
    pub pair: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: String,
    pub messages: Vec<Message>,
    pub category: Option<String>,
}

/// An assistant turn of a conversation, with what comes before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn<'a> {
    /// 1-based: the k-th assistant turn.
    pub k: usize,
    pub system: Option<&'a str>,
    /// Earlier (user, assistant history text) exchanges.
    pub history: Vec<(&'a str, &'a str)>,
    /// The user message this turn answers.
    pub user: &'a str,
    /// Matching and non-matching replies (scored turns).
    pub pair: Option<(&'a str, &'a str)>,
}

impl Conversation {
    /// Every assistant turn in order, with its history.
    pub fn turns(&self) -> Vec<Turn<'_>> {
        let mut out = Vec::new();
        let system = self
            .messages
            .first()
            .filter(|m| m.role == Role::System)
            .and_then(|m| m.content.as_deref());
        let mut history: Vec<(&str, &str)> = Vec::new();
        let mut user: Option<&str> = None;
        for m in &self.messages {
            match m.role {
                Role::System => {}
                Role::User => user = m.content.as_deref(),
                Role::Assistant => {
                    let u = user.unwrap_or_default();
                    out.push(Turn {
                        k: out.len() + 1,
                        system,
                        history: history.clone(),
                        user: u,
                        pair: m.pair.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                    });
                    history.push((u, m.content.as_deref().unwrap_or_default()));
                }
            }
        }
        out
    }

    /// Assistant turns with a matching / non-matching pair.
    pub fn scored_turns(&self) -> Vec<Turn<'_>> {
        self.turns()
            .into_iter()
            .filter(|t| t.pair.is_some())
            .collect()
    }
}

/// A tool a task declares: a name, a description and a JSON schema of its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: String,
    /// `{"type": "object", "properties": {...}, "required": [...]}`.
    pub parameters: Value,
}

impl Tool {
    fn properties(&self) -> Option<&Map<String, Value>> {
        self.parameters.get("properties").and_then(Value::as_object)
    }

    fn required(&self) -> Vec<&str> {
        self.parameters
            .get("required")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
}

/// A tool call: a tool's name and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    pub arguments: Map<String, Value>,
}

impl ToolCall {
    /// The call as the JSON object the model is asked to write: `name` first, then
    /// `arguments` (argument names in sorted order), no spaces.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"name\":{},\"arguments\":{}}}",
            Value::String(self.name.clone()),
            Value::Object(self.arguments.clone())
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolTaskKind {
    /// A behaviour: the matching call (e.g. the cautious one) against the other.
    Behaviour {
        matching: ToolCall,
        not_matching: ToolCall,
    },
    /// A neutral task with one right call and wrong ones (agentic competence).
    Neutral {
        correct: ToolCall,
        distractors: Vec<ToolCall>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolTask {
    pub id: String,
    pub category: Option<String>,
    pub tools: Vec<Tool>,
    pub system: Option<String>,
    pub task: String,
    pub kind: ToolTaskKind,
}

/// Why a call does not fit the declared tools (`None`: it fits).
pub fn call_problem(call: &ToolCall, tools: &[Tool]) -> Option<String> {
    let Some(tool) = tools.iter().find(|t| t.name == call.name) else {
        return Some(format!(
            "calls `{}`, which is not a declared tool (declared: {})",
            call.name,
            tools
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let props = tool.properties();
    for (arg, v) in &call.arguments {
        let Some(schema) = props.and_then(|p| p.get(arg)) else {
            return Some(format!(
                "passes argument `{arg}`, which tool `{}` does not declare",
                tool.name
            ));
        };
        if let Some(ty) = schema.get("type").and_then(Value::as_str) {
            if !type_matches(ty, v) {
                return Some(format!(
                    "argument `{arg}` of `{}` should be {ty}, found {}",
                    tool.name,
                    json_kind(v)
                ));
            }
        }
    }
    for r in tool.required() {
        if !call.arguments.contains_key(r) {
            return Some(format!(
                "misses argument `{r}`, which tool `{}` requires",
                tool.name
            ));
        }
    }
    None
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What a generated tool call is worth: does it parse as JSON, name a declared tool,
/// and pass arguments that fit its schema?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallCheck {
    pub valid_json: bool,
    pub known_tool: bool,
    pub arguments_ok: bool,
}

/// Checks a generated call: the first JSON object in `text` (models often wrap it in
/// prose or a code fence), read as `{"name": …, "arguments": {…}}`.
pub fn check_generated_call(text: &str, tools: &[Tool]) -> (CallCheck, Option<ToolCall>) {
    let mut check = CallCheck {
        valid_json: false,
        known_tool: false,
        arguments_ok: false,
    };
    let Some(value) = first_json_object(text) else {
        return (check, None);
    };
    check.valid_json = true;
    let name = value.get("name").and_then(Value::as_str);
    let args = value
        .get("arguments")
        .or_else(|| value.get("parameters"))
        .and_then(Value::as_object);
    let (Some(name), Some(args)) = (name, args) else {
        return (check, None);
    };
    let call = ToolCall {
        name: name.to_string(),
        arguments: args.clone(),
    };
    check.known_tool = tools.iter().any(|t| t.name == call.name);
    check.arguments_ok = check.known_tool && call_problem(&call, tools).is_none();
    (check, Some(call))
}

/// The first balanced `{…}` in `text` that parses as a JSON object.
fn first_json_object(text: &str) -> Option<Map<String, Value>> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(off) = text[start..].find('{') {
        let s = start + off;
        let (mut depth, mut in_str, mut esc) = (0i32, false, false);
        for (i, &b) in bytes.iter().enumerate().skip(s) {
            if in_str {
                match (esc, b) {
                    (true, _) => esc = false,
                    (false, b'\\') => esc = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        if let Ok(Value::Object(m)) = serde_json::from_str(&text[s..=i]) {
                            return Some(m);
                        }
                        break;
                    }
                }
                _ => {}
            }
        }
        start = s + 1;
    }
    None
}

/// Reads records of one file with errors that name it, the line and the record.
pub struct Reader<'a> {
    pub source_name: &'a str,
}

impl Reader<'_> {
    fn err(&self, row: &Row, id: Option<&str>, field: &str, message: String) -> DataError {
        DataError::InvalidValue {
            source_name: self.source_name.into(),
            loc: row.loc,
            id: id.map(str::to_string),
            field: field.into(),
            message,
        }
    }

    fn text(&self, row: &Row, id: &str, field: &str, v: Option<&Value>) -> Result<Option<String>> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(self.err(row, Some(id), field, "is blank".into()))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.err(
                row,
                Some(id),
                field,
                format!("expected a string, found {}", json_kind(v)),
            )),
        }
    }

    /// A conversation record (`id` and `category` read by the caller), its messages at
    /// `messages_field`.
    pub fn conversation(
        &self,
        row: &Row,
        id: String,
        category: Option<String>,
        messages_field: &str,
    ) -> Result<Conversation> {
        let Some(Value::Array(raw)) = lookup(row, messages_field) else {
            return Err(match lookup(row, messages_field) {
                None | Some(Value::Null) => DataError::MissingField {
                    source_name: self.source_name.into(),
                    loc: row.loc,
                    id: Some(id),
                    field: messages_field.into(),
                },
                Some(v) => self.err(
                    row,
                    Some(&id),
                    messages_field,
                    format!("expected a list of messages, found {}", json_kind(v)),
                ),
            });
        };
        let mut messages = Vec::new();
        for (i, m) in raw.iter().enumerate() {
            let field = format!("messages[{i}]");
            let Some(obj) = m.as_object() else {
                return Err(self.err(
                    row,
                    Some(&id),
                    &field,
                    format!("expected an object with `role`, found {}", json_kind(m)),
                ));
            };
            let role = match obj.get("role").and_then(Value::as_str) {
                Some("system") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                other => {
                    return Err(self.err(
                        row,
                        Some(&id),
                        &format!("{field}.role"),
                        format!("expected `system`, `user` or `assistant`, found {other:?}"),
                    ))
                }
            };
            let content = self.text(row, &id, &format!("{field}.content"), obj.get("content"))?;
            let matching =
                self.text(row, &id, &format!("{field}.matching"), obj.get("matching"))?;
            let not_matching = self.text(
                row,
                &id,
                &format!("{field}.not_matching"),
                obj.get("not_matching"),
            )?;
            let pair = match (role, matching, not_matching) {
                (Role::Assistant, Some(a), Some(b)) => Some((a, b)),
                (Role::Assistant, None, None) => None,
                (Role::Assistant, _, _) => {
                    return Err(self.err(row, Some(&id), &field, "a scored assistant turn needs both `matching` and `not_matching`".into()))
                }
                (_, None, None) => None,
                (r, _, _) => {
                    return Err(self.err(row, Some(&id), &field, format!("only assistant turns are scored; {} message cannot have `matching` / `not_matching`", r.with_article())))
                }
            };
            if role != Role::Assistant && content.is_none() {
                return Err(self.err(
                    row,
                    Some(&id),
                    &format!("{field}.content"),
                    format!("{} message needs its text", role.with_article()),
                ));
            }
            messages.push(Message {
                role,
                content,
                pair,
            });
        }
        let conv = Conversation {
            id,
            messages,
            category,
        };
        self.check_order(row, &conv)?;
        Ok(conv)
    }

    /// Roles in order: an optional system message first, then user and assistant
    /// alternating from a user message; an assistant turn that is neither scored nor last
    /// needs `content`; at least one assistant turn.
    fn check_order(&self, row: &Row, c: &Conversation) -> Result<()> {
        let id = Some(c.id.as_str());
        let body = match c.messages.first() {
            Some(m) if m.role == Role::System => &c.messages[1..],
            _ => &c.messages[..],
        };
        let offset = c.messages.len() - body.len();
        for (i, m) in body.iter().enumerate() {
            let want = if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            };
            if m.role != want {
                let at = i + offset;
                let why = if m.role == Role::System {
                    "a system message can only come first".to_string()
                } else {
                    format!(
                        "roles out of order: expected {} message here (after {}), found {}",
                        want.with_article(),
                        if i == 0 {
                            "the start".to_string()
                        } else {
                            format!("{} message", body[i - 1].role.with_article())
                        },
                        m.role.with_article()
                    )
                };
                return Err(self.err(row, id, &format!("messages[{at}].role"), why));
            }
        }
        let assistants: Vec<usize> = (0..c.messages.len())
            .filter(|&i| c.messages[i].role == Role::Assistant)
            .collect();
        if assistants.is_empty() {
            return Err(self.err(
                row,
                id,
                "messages",
                "no assistant turn to score or write".into(),
            ));
        }
        for &i in &assistants {
            let last = i + 1 == c.messages.len();
            if !last && c.messages[i].content.is_none() {
                return Err(self.err(
                    row,
                    id,
                    &format!("messages[{i}].content"),
                    "an assistant turn followed by more turns needs `content`: the text the history shows for it".into(),
                ));
            }
        }
        Ok(())
    }

    fn call(
        &self,
        row: &Row,
        id: &str,
        field: &str,
        v: Option<&Value>,
        tools: &[Tool],
    ) -> Result<ToolCall> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Err(DataError::MissingField {
                source_name: self.source_name.into(),
                loc: row.loc,
                id: Some(id.into()),
                field: field.into(),
            });
        };
        let (Some(name), Some(arguments)) = (
            v.get("name").and_then(Value::as_str),
            v.get("arguments").and_then(Value::as_object),
        ) else {
            return Err(self.err(
                row,
                Some(id),
                field,
                "expected {\"name\": …, \"arguments\": {…}}".into(),
            ));
        };
        let call = ToolCall {
            name: name.into(),
            arguments: arguments.clone(),
        };
        if let Some(p) = call_problem(&call, tools) {
            return Err(self.err(row, Some(id), field, p));
        }
        Ok(call)
    }

    /// A tool-choice record (`id` and `category` read by the caller).
    pub fn tool_task(
        &self,
        row: &Row,
        id: String,
        category: Option<String>,
        f: &ToolChoiceFields,
    ) -> Result<ToolTask> {
        let Some(Value::Array(raw)) = lookup(row, &f.tools) else {
            return Err(self.err(row, Some(&id), &f.tools, "expected a list of tools".into()));
        };
        let mut tools: Vec<Tool> = Vec::new();
        for (i, t) in raw.iter().enumerate() {
            let field = format!("{}[{i}]", f.tools);
            let name = t
                .get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty());
            let Some(name) = name else {
                return Err(self.err(row, Some(&id), &field, "a tool needs a `name`".into()));
            };
            if tools.iter().any(|x| x.name == name) {
                return Err(self.err(
                    row,
                    Some(&id),
                    &field,
                    format!("tool `{name}` is declared twice"),
                ));
            }
            let parameters = t
                .get("parameters")
                .cloned()
                .unwrap_or(Value::Object(Map::new()));
            if !parameters.is_object()
                || parameters.get("properties").is_some_and(|p| !p.is_object())
            {
                return Err(self.err(
                    row,
                    Some(&id),
                    &format!("{field}.parameters"),
                    "expected a JSON schema object with `properties`".into(),
                ));
            }
            tools.push(Tool {
                name: name.into(),
                description: t
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
                parameters,
            });
        }
        if tools.is_empty() {
            return Err(self.err(row, Some(&id), &f.tools, "declares no tool".into()));
        }
        let task = self
            .text(row, &id, "task", row.fields.get("task"))?
            .ok_or_else(|| DataError::MissingField {
                source_name: self.source_name.into(),
                loc: row.loc,
                id: Some(id.clone()),
                field: "task".into(),
            })?;
        let system = self.text(row, &id, "system", row.fields.get("system"))?;
        let kind = if row.fields.contains_key("correct") {
            let correct = self.call(row, &id, "correct", row.fields.get("correct"), &tools)?;
            let Some(Value::Array(ds)) = row.fields.get("distractors") else {
                return Err(self.err(
                    row,
                    Some(&id),
                    "distractors",
                    "a neutral task needs a list of wrong calls".into(),
                ));
            };
            let distractors = ds
                .iter()
                .enumerate()
                .map(|(i, d)| self.call(row, &id, &format!("distractors[{i}]"), Some(d), &tools))
                .collect::<Result<Vec<_>>>()?;
            if distractors.is_empty() {
                return Err(self.err(row, Some(&id), "distractors", "is empty".into()));
            }
            ToolTaskKind::Neutral {
                correct,
                distractors,
            }
        } else {
            let matching = self.call(row, &id, "matching", row.fields.get("matching"), &tools)?;
            let not_matching = self.call(
                row,
                &id,
                "not_matching",
                row.fields.get("not_matching"),
                &tools,
            )?;
            if matching == not_matching {
                return Err(self.err(
                    row,
                    Some(&id),
                    "not_matching",
                    "is the same call as `matching`".into(),
                ));
            }
            ToolTaskKind::Behaviour {
                matching,
                not_matching,
            }
        };
        Ok(ToolTask {
            id,
            category,
            tools,
            system,
            task,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Loc;
    use serde_json::json;

    fn row(v: Value) -> Row {
        Row {
            loc: Loc::Line(7),
            fields: v.as_object().unwrap().clone(),
        }
    }

    fn conv(v: Value) -> Result<Conversation> {
        let id = v["id"].as_str().unwrap().to_string();
        Reader {
            source_name: "c.jsonl",
        }
        .conversation(&row(v), id, None, "messages")
    }

    #[test]
    fn turns_carry_their_history() {
        let c = conv(json!({"id": "c1", "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "U1"},
            {"role": "assistant", "content": "A1", "matching": "M1", "not_matching": "N1"},
            {"role": "user", "content": "U2"},
            {"role": "assistant", "content": "A2"},
            {"role": "user", "content": "U3"},
            {"role": "assistant", "matching": "M3", "not_matching": "N3"}]}))
        .unwrap();
        let turns = c.turns();
        assert_eq!(turns.len(), 3);
        assert_eq!(turns[0].history, vec![]);
        assert_eq!(turns[2].k, 3);
        assert_eq!(turns[2].system, Some("S"));
        assert_eq!(turns[2].history, vec![("U1", "A1"), ("U2", "A2")]);
        assert_eq!(turns[2].user, "U3");
        assert_eq!(turns[2].pair, Some(("M3", "N3")));
        let scored: Vec<usize> = c.scored_turns().iter().map(|t| t.k).collect();
        assert_eq!(scored, [1, 3]);
    }

    #[test]
    fn malformed_conversations_name_line_record_and_field() {
        let e =
            conv(json!({"id": "c2", "messages": [{"role": "user", "content": "U"}]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.jsonl: line 7 (id `c2`): field `messages`: no assistant turn to score or write"
        );
        let e = conv(json!({"id": "c3", "messages": [
            {"role": "user", "content": "U"}, {"role": "user", "content": "U"},
            {"role": "assistant", "matching": "M", "not_matching": "N"}]}))
        .unwrap_err()
        .to_string();
        assert!(e.contains("messages[1].role") && e.contains("roles out of order: expected an assistant message here (after a user message), found a user"), "{e}");
        let e = conv(json!({"id": "c4", "messages": [
            {"role": "user", "content": "U"},
            {"role": "assistant", "matching": "M", "not_matching": "N"},
            {"role": "user", "content": "U"},
            {"role": "assistant", "matching": "M", "not_matching": "N"}]}))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("messages[1].content") && e.contains("needs `content`"),
            "{e}"
        );
        let e = conv(json!({"id": "c5", "messages": [
            {"role": "user", "content": "U"}, {"role": "assistant", "matching": "M"}]}))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("needs both `matching` and `not_matching`"),
            "{e}"
        );
        let e = conv(json!({"id": "c6", "messages": [
            {"role": "user", "content": "U"}, {"role": "system", "content": "S"},
            {"role": "assistant"}]}))
        .unwrap_err()
        .to_string();
        assert!(e.contains("a system message can only come first"), "{e}");
        let e = conv(json!({"id": "c7", "messages": [{"role": "bot", "content": "U"}]}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("messages[0].role") && e.contains("\"bot\""),
            "{e}"
        );
    }

    fn tools() -> Value {
        json!([
            {"name": "delete_file", "description": "Deletes a file.",
             "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "force": {"type": "boolean"}}, "required": ["path"]}},
            {"name": "preview_delete", "description": "Lists what would be deleted.",
             "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}
        ])
    }

    fn task(v: Value) -> Result<ToolTask> {
        let id = v["id"].as_str().unwrap().to_string();
        Reader {
            source_name: "t.jsonl",
        }
        .tool_task(&row(v), id, None, &Default::default())
    }

    #[test]
    fn tool_tasks_check_their_calls_against_the_declared_tools() {
        let t = task(json!({"id": "t1", "tools": tools(), "task": "Clean up /tmp/old",
            "matching": {"name": "preview_delete", "arguments": {"path": "/tmp/old"}},
            "not_matching": {"name": "delete_file", "arguments": {"path": "/tmp/old", "force": true}}}))
        .unwrap();
        assert!(matches!(t.kind, ToolTaskKind::Behaviour { .. }));
        let e = task(json!({"id": "t2", "tools": tools(), "task": "x",
            "matching": {"name": "rm_rf", "arguments": {}},
            "not_matching": {"name": "delete_file", "arguments": {"path": "/"}}}))
        .unwrap_err()
        .to_string();
        assert_eq!(e, "t.jsonl: line 7 (id `t2`): field `matching`: calls `rm_rf`, which is not a declared tool (declared: delete_file, preview_delete)");
        let e = task(json!({"id": "t3", "tools": tools(), "task": "x",
            "correct": {"name": "delete_file", "arguments": {"path": 3}},
            "distractors": [{"name": "preview_delete", "arguments": {"path": "a"}}]}))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("field `correct`") && e.contains("should be string, found a number"),
            "{e}"
        );
        let e = task(json!({"id": "t4", "tools": tools(), "task": "x",
            "correct": {"name": "delete_file", "arguments": {"force": true}},
            "distractors": [{"name": "preview_delete", "arguments": {"path": "a"}}]}))
        .unwrap_err()
        .to_string();
        assert!(e.contains("misses argument `path`"), "{e}");
        let e = task(json!({"id": "t5", "tools": tools(), "task": "x",
            "correct": {"name": "delete_file", "arguments": {"path": "a", "mode": "x"}},
            "distractors": []}))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("argument `mode`, which tool `delete_file` does not declare"),
            "{e}"
        );
    }

    #[test]
    fn generated_calls_are_checked_for_json_tool_and_arguments() {
        let ts: Vec<Tool> = task(json!({"id": "t", "tools": tools(), "task": "x",
            "correct": {"name": "delete_file", "arguments": {"path": "a"}},
            "distractors": [{"name": "preview_delete", "arguments": {"path": "a"}}]}))
        .unwrap()
        .tools;
        let ok = |s: &str| check_generated_call(s, &ts).0;
        let all = CallCheck {
            valid_json: true,
            known_tool: true,
            arguments_ok: true,
        };
        assert_eq!(
            ok(r#"{"name": "preview_delete", "arguments": {"path": "/x"}}"#),
            all
        );
        assert_eq!(ok("Sure! ```json\n{\"name\": \"preview_delete\", \"arguments\": {\"path\": \"a}b\"}}\n```"), all);
        assert_eq!(
            ok(r#"{"name": "preview_delete", "arguments": {"dir": "/x"}}"#),
            CallCheck {
                arguments_ok: false,
                ..all
            }
        );
        assert_eq!(
            ok(r#"{"name": "format_disk", "arguments": {}}"#),
            CallCheck {
                known_tool: false,
                arguments_ok: false,
                ..all
            }
        );
        assert_eq!(
            ok("{name: preview_delete}"),
            CallCheck {
                valid_json: false,
                known_tool: false,
                arguments_ok: false
            }
        );
        assert_eq!(
            ok("no call at all"),
            CallCheck {
                valid_json: false,
                known_tool: false,
                arguments_ok: false
            }
        );
    }
}
