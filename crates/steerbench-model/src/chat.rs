//! Chat templates: Hugging Face's jinja dialect rendered with minijinja.
//!
//! transformers renders with `trim_blocks` + `lstrip_blocks`, passes `messages`,
//! `add_generation_prompt` and the special tokens, and offers `raise_exception`; Python string
//! methods (`.strip()`, `.startswith()`, ...) come from minijinja-contrib's pycompat.

use minijinja::{Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Special-token strings a template may reference.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TemplateTokens {
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub unk_token: Option<String>,
    pub pad_token: Option<String>,
}

/// A compiled chat template.
pub struct ChatTemplate {
    source: String,
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .finish()
    }
}

impl Clone for ChatTemplate {
    fn clone(&self) -> Self {
        Self::new(&self.source).expect("template compiled once already")
    }
}

fn raise_exception(msg: String) -> std::result::Result<String, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

impl ChatTemplate {
    /// Compiles the template; syntax errors are reported here, not at first use.
    pub fn new(source: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| ModelError::ChatTemplate(format!("cannot compile: {e:#}")))?;
        Ok(Self {
            source: source.to_string(),
            env,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tokens: &TemplateTokens,
    ) -> Result<String> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| ModelError::ChatTemplate(e.to_string()))?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => tokens.bos_token.clone().unwrap_or_default(),
            eos_token => tokens.eos_token.clone().unwrap_or_default(),
            unk_token => tokens.unk_token.clone().unwrap_or_default(),
            pad_token => tokens.pad_token.clone().unwrap_or_default(),
        })
        .map_err(|e| ModelError::ChatTemplate(format!("cannot render: {e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_renders_like_transformers() {
        let t = ChatTemplate::new(CHATML).unwrap();
        let out = t
            .render(
                &[ChatMessage::user("Hi there")],
                true,
                &TemplateTokens::default(),
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t
            .render(
                &[ChatMessage::system("S"), ChatMessage::user("U")],
                false,
                &TemplateTokens::default(),
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
        );
    }

    #[test]
    fn pycompat_trim_blocks_and_raise() {
        let src = "{{ bos_token }}{% for m in messages %}\n  {% if m.role == 'bot' %}{{ raise_exception('no bots') }}{% endif %}\n{{ m.content.strip() | upper }}\n{% endfor %}";
        let t = ChatTemplate::new(src).unwrap();
        let toks = TemplateTokens {
            bos_token: Some("<s>".into()),
            ..Default::default()
        };
        assert_eq!(
            t.render(&[ChatMessage::user("  hi ")], false, &toks)
                .unwrap(),
            "<s>HI\n"
        );
        let e = t
            .render(&[ChatMessage::new("bot", "x")], false, &toks)
            .unwrap_err();
        assert!(e.to_string().contains("no bots"), "{e}");
        assert!(ChatTemplate::new("{% for %}").is_err());
    }
}
