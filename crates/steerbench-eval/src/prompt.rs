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
    /// `system\n\n` + demonstrations + `user\n` + assistant prefix, no special tokens.
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
    match style {
        PromptStyle::Chat => {
            if !tok.has_chat_template() {
                return Err(EvalError::Input(
                    "prompt_format is `chat` but the model has no chat template; use prompt_format: raw".into(),
                ));
            }
            let mut msgs = Vec::new();
            if let Some(s) = &p.system {
                msgs.push(ChatMessage::system(s.clone()));
            }
            for (u, a) in &p.shots {
                msgs.push(ChatMessage::user(u.clone()));
                msgs.push(ChatMessage::assistant(a.clone()));
            }
            msgs.push(ChatMessage::user(p.user.clone()));
            let mut text = tok.apply_chat_template(&msgs, true)?;
            text.push_str(&p.assistant_prefix);
            Ok(text)
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
            Ok(text)
        }
    }
}

/// Token ids of the prompt.
pub fn encode(tok: &Tokenizer, p: &Prompt, style: PromptStyle) -> Result<Vec<u32>> {
    let text = render(tok, p, style)?;
    let ids = tok.encode(&text, false)?;
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
