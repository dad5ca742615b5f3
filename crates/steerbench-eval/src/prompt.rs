//! Prompt encoding: the same prompt text becomes token ids either through the model's
//! own chat template or as raw text, so one dataset serves chat and base models.

use steerbench_model::{ChatMessage, Sequence, Tokenizer};

use crate::error::{EvalError, Result};

/// How prompts are turned into text before tokenisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptStyle {
    /// The model's chat template (system/user turns, generation prompt), then the
    /// assistant prefix.
    Chat,
    /// `system\n\n` + demonstrations + `user\n` + assistant prefix; no special tokens but
    /// the BOS token of models that want one.
    Raw,
}

/// One prompt as data: optional system prompt, few-shot turns, the user turn and the
/// text the assistant's answer starts with (e.g. `"("` so the next token is a letter).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompt {
    pub system: Option<String>,
    /// Demonstrations as (user, assistant) turns placed before `user`.
    pub shots: Vec<(String, String)>,
    pub user: String,
    pub assistant_prefix: String,
}

impl Prompt {
    pub fn user(text: impl Into<String>) -> Self {
        Prompt {
            user: text.into(),
            ..Default::default()
        }
    }
}

/// The prompt as text, ready for tokenisation.
pub fn render(tok: &Tokenizer, p: &Prompt, style: PromptStyle) -> Result<String> {
    Ok(render_with_note(tok, p, style)?.0)
}

/// The chat messages of a prompt, the system message folded into the first user message
/// when `fold_system` (for templates without a system role).
fn chat_messages(p: &Prompt, fold_system: bool) -> Vec<ChatMessage> {
    let mut msgs = Vec::new();
    let mut pending_system = None;
    if let Some(s) = &p.system {
        if fold_system {
            pending_system = Some(s.clone());
        } else {
            msgs.push(ChatMessage::system(s.clone()));
        }
    }
    let mut user = |text: &str| match pending_system.take() {
        Some(sys) => ChatMessage::user(format!("{sys}\n\n{text}")),
        None => ChatMessage::user(text.to_string()),
    };
    for (u, a) in &p.shots {
        msgs.push(user(u));
        msgs.push(ChatMessage::assistant(a.clone()));
    }
    msgs.push(user(&p.user));
    msgs
}

/// [`render`], and whether the system prompt had to be folded into the first user turn:
/// when the chat template refuses a system message (Gemma's raises an exception), the
/// system text is put before the first user message, separated by a blank line.
pub fn render_with_note(tok: &Tokenizer, p: &Prompt, style: PromptStyle) -> Result<(String, bool)> {
    match style {
        PromptStyle::Chat => {
            if !tok.has_chat_template() {
                return Err(EvalError::Input(
                    "prompt_format is `chat` but the model has no chat template; use prompt_format: raw".into(),
                ));
            }
            let (mut text, folded) = match tok.apply_chat_template(&chat_messages(p, false), true) {
                Ok(t) => (t, false),
                Err(e) if p.system.is_some() => {
                    match tok.apply_chat_template(&chat_messages(p, true), true) {
                        Ok(t) => (t, true),
                        Err(_) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            text.push_str(&p.assistant_prefix);
            Ok((text, folded))
        }
        PromptStyle::Raw => {
            let mut text = String::new();
            if let Some(s) = &p.system {
                text.push_str(s);
                text.push_str("\n\n");
            }
            for (u, a) in &p.shots {
                text.push_str(u);
                text.push('\n');
                text.push_str(a);
                text.push_str("\n\n");
            }
            text.push_str(&p.user);
            text.push('\n');
            text.push_str(&p.assistant_prefix);
            Ok((text, false))
        }
    }
}

/// Where one message's text lies in an encoded prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSpan {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    /// 0-based exchange: the user message and assistant reply of shot `i` (the prompt's
    /// own user message is exchange `shots.len()`); 0 for the system message.
    pub exchange: usize,
    /// Token indices whose text overlaps the message's text.
    pub tokens: std::ops::Range<usize>,
}

/// A prompt's token ids with the token span of each message's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub text: String,
    pub spans: Vec<MessageSpan>,
    /// The template has no system role: the system text went into the first user turn
    /// (its span is then inside that user message's span).
    pub system_folded: bool,
}

/// [`encode`] with the token span of every message (system, each shot's user and
/// assistant text, the user message), found in the rendered text in order. Used to steer
/// only some turns of a conversation.
pub fn encode_with_spans(tok: &Tokenizer, p: &Prompt, style: PromptStyle) -> Result<Encoded> {
    let (text, system_folded) = render_with_note(tok, p, style)?;
    let enc = tok
        .inner()
        .encode(text.as_str(), false)
        .map_err(|e| EvalError::Input(format!("cannot tokenize the prompt: {e}")))?;
    let mut ids = enc.get_ids().to_vec();
    if ids.is_empty() {
        return Err(EvalError::Input("prompt encodes to zero tokens".into()));
    }
    let mut offsets = enc.get_offsets().to_vec();
    // BOS the model wants and the text did not write (as `encode` does), covering no text.
    if let Some(bos) = tok.missing_bos(&ids) {
        ids.insert(0, bos);
        offsets.insert(0, (0, 0));
    }
    let mut parts: Vec<(&'static str, usize, &str)> = Vec::new();
    if let Some(s) = &p.system {
        parts.push(("system", 0, s));
    }
    for (i, (u, a)) in p.shots.iter().enumerate() {
        parts.push(("user", i, u));
        parts.push(("assistant", i, a));
    }
    parts.push(("user", p.shots.len(), &p.user));
    let mut from = 0;
    let mut spans = Vec::new();
    for (role, exchange, content) in parts {
        let needle = content.trim();
        let Some(at) = text[from..].find(needle).map(|i| i + from) else {
            return Err(EvalError::Input(format!(
                "the rendered prompt does not contain the {role} message {:?} verbatim (the chat template rewrites it), so its tokens cannot be located",
                truncate(needle, 60)
            )));
        };
        let end = at + needle.len();
        let toks: Vec<usize> = offsets
            .iter()
            .enumerate()
            .filter(|(_, &(s, e))| s < end && e > at)
            .map(|(i, _)| i)
            .collect();
        let tokens = match (toks.first(), toks.last()) {
            (Some(&a), Some(&b)) => a..b + 1,
            _ => 0..0,
        };
        spans.push(MessageSpan {
            role,
            exchange,
            tokens,
        });
        // A folded system text sits inside the first user message: search that from the
        // system text's start.
        from = if role == "system" && system_folded {
            at
        } else {
            end
        };
    }
    Ok(Encoded {
        ids,
        text,
        spans,
        system_folded,
    })
}

fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Token ids of the prompt, with the BOS token first when the model wants one and the text
/// (a chat template) did not write it already ([`Tokenizer::encode_prompt`]): Gemma and
/// Llama 2 prompts start with BOS in both styles, SmolLM2's and Qwen2's never.
pub fn encode(tok: &Tokenizer, p: &Prompt, style: PromptStyle) -> Result<Vec<u32>> {
    let text = render(tok, p, style)?;
    let ids = tok.encode_prompt(&text)?;
    if ids.is_empty() {
        return Err(EvalError::Input("prompt encodes to zero tokens".into()));
    }
    Ok(ids)
}

/// A prompt followed by a continuation whose log-likelihood is read. The continuation
/// is tokenised on its own so every candidate continuation of one prompt shares exactly
/// the same prompt tokens; in raw style a separating space is added when needed.
pub fn with_continuation(
    tok: &Tokenizer,
    prompt_ids: &[u32],
    prompt_text_ends_with_space: bool,
    style: PromptStyle,
    continuation: &str,
) -> Result<Sequence> {
    let text = match style {
        PromptStyle::Raw
            if !prompt_text_ends_with_space && !continuation.starts_with(char::is_whitespace) =>
        {
            format!(" {continuation}")
        }
        _ => continuation.to_string(),
    };
    let cont = tok.encode(&text, false)?;
    if cont.is_empty() {
        return Err(EvalError::Input(format!(
            "continuation {continuation:?} encodes to zero tokens"
        )));
    }
    let mut tokens = prompt_ids.to_vec();
    tokens.extend_from_slice(&cont);
    Ok(Sequence::new(tokens, prompt_ids.len()))
}

/// The single token id of `text` (e.g. a letter), or an error naming it.
pub fn single_token(tok: &Tokenizer, text: &str) -> Result<u32> {
    let ids = tok.encode(text, false)?;
    match ids.as_slice() {
        [id] => Ok(*id),
        _ => Err(EvalError::Input(format!(
            "{text:?} is not a single token for this tokenizer (got {} tokens)",
            ids.len()
        ))),
    }
}
