//! Open-ended conversations under steering: the model writes every assistant turn in
//! sequence, on one KV cache carried across turns ([`steerbench_model::Session`]).
//!
//! Turn k's new tokens are the text the chat template adds after the conversation so far
//! (end of the previous reply, user message k, the assistant header), found by rendering
//! the conversation with the model's own replies and cutting off what was already fed;
//! they are tokenised on their own and appended, as a chat server does, so no token of
//! the history is computed twice. Steering follows the scope: `all_turns` everything,
//! `first_turn` everything up to the end of the first reply, `current_turn` only the
//! reply being written, `user_turns` only user messages.

use std::ops::Range;

use steerbench_model::{GenerateOptions, Hooks, Model, Positions, Tokenizer};

use crate::dialogue::Scope;
use crate::error::{EvalError, Result};
use crate::prompt::{render, Prompt, PromptStyle};
use crate::steer::Steer;

/// A conversation the model wrote: every token fed and generated, and per turn the
/// token range of its reply and the reply's text.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedConversation {
    pub tokens: Vec<u32>,
    pub replies: Vec<(Range<usize>, String)>,
}

/// Where `scope` steers while turn `k` (1-based) feeds its new tokens (`user`: the user
/// message's token range among them, in conversation positions) and while it writes
/// the reply: `(feed, reply)`, `None` for unsteered.
pub fn session_positions(
    scope: Scope,
    k: usize,
    user: Range<usize>,
) -> (Option<Positions>, Option<Positions>) {
    match scope {
        Scope::AllTurns => (Some(Positions::All), Some(Positions::All)),
        Scope::FirstTurn if k == 1 => (Some(Positions::All), Some(Positions::All)),
        Scope::FirstTurn => (None, None),
        Scope::CurrentTurn => (None, Some(Positions::Generated)),
        Scope::UserTurns => (Some(Positions::Indices(user.collect())), None),
    }
}

/// Writes every assistant turn after `users` (and an optional system prompt) with
/// `steer` at strength `alpha` (None: unsteered) in `scope`.
#[allow(clippy::too_many_arguments)]
pub fn generate_conversation(
    model: &Model,
    tok: &Tokenizer,
    style: PromptStyle,
    system: Option<&str>,
    users: &[&str],
    steer: Option<(&Steer, f32)>,
    scope: Scope,
    opts: &GenerateOptions,
) -> Result<GeneratedConversation> {
    let hooks = |p: Option<Positions>| -> Result<Hooks> {
        let mut h = Hooks::new();
        if let (Some((s, alpha)), Some(p)) = (steer, p) {
            s.install(&mut h, alpha, &p, model.config().n_layers, model.device())?;
        }
        Ok(h)
    };
    let mut session = model.session();
    // The rendered text the session holds so far.
    let mut covered = String::new();
    let mut replies: Vec<(Range<usize>, String)> = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let p = Prompt {
            system: system.map(str::to_string),
            shots: users[..i]
                .iter()
                .zip(&replies)
                .map(|(u, (_, r))| (u.to_string(), r.clone()))
                .collect(),
            user: user.to_string(),
            assistant_prefix: String::new(),
        };
        let text = render(tok, &p, style)?;
        let new_text = new_part(&text, &covered, replies.last().map(|(_, r)| r.as_str()))
            .ok_or_else(|| {
                EvalError::Input(format!(
                    "turn {}: the chat template renders the conversation so far differently once a turn is added, so the cached history cannot be continued",
                    i + 1
                ))
            })?;
        let start = session.tokens().len();
        let (mut ids, mut user_range) = encode_locating(tok, new_text, user)?;
        // The conversation starts with the BOS a model wants (as `prompt::encode` does).
        if let Some(bos) = tok.missing_bos(&ids).filter(|_| start == 0) {
            ids.insert(0, bos);
            user_range = user_range.start + 1..user_range.end + 1;
        }
        let user_abs = start + user_range.start..start + user_range.end;
        let (feed, reply) = session_positions(scope, i + 1, user_abs);
        session.feed(&ids, &hooks(feed)?)?;
        let reply_start = session.tokens().len();
        let out = session.generate(tok, opts, &hooks(reply)?)?;
        let reply_text = tok.decode_skip_special(&out)?;
        replies.push((reply_start..reply_start + out.len(), reply_text.clone()));
        covered = format!("{text}{reply_text}");
    }
    Ok(GeneratedConversation {
        tokens: session.tokens().to_vec(),
        replies,
    })
}

/// What `text` (the conversation rendered up to the next reply) adds to `covered` (what
/// was fed and generated): its tail after `covered`, or, when the template rewrote the
/// previous reply (trimmed it, say), its tail after that reply's text.
fn new_part<'a>(text: &'a str, covered: &str, last_reply: Option<&str>) -> Option<&'a str> {
    if let Some(rest) = text.strip_prefix(covered) {
        return Some(rest);
    }
    let reply = last_reply?.trim();
    let at = text.rfind(reply)?;
    Some(&text[at + reply.len()..])
}

/// Token ids of `text` and the token range covering `needle` (the user message) in it.
fn encode_locating(tok: &Tokenizer, text: &str, needle: &str) -> Result<(Vec<u32>, Range<usize>)> {
    let enc = tok
        .inner()
        .encode(text, false)
        .map_err(|e| EvalError::Input(format!("cannot tokenize a turn: {e}")))?;
    let ids = enc.get_ids().to_vec();
    let needle = needle.trim();
    let range = match text.find(needle) {
        Some(at) => {
            let end = at + needle.len();
            let toks: Vec<usize> = enc
                .get_offsets()
                .iter()
                .enumerate()
                .filter(|(_, &(s, e))| s < end && e > at)
                .map(|(i, _)| i)
                .collect();
            match (toks.first(), toks.last()) {
                (Some(&a), Some(&b)) => a..b + 1,
                _ => 0..0,
            }
        }
        None => 0..0,
    };
    if ids.is_empty() {
        return Err(EvalError::Input("a turn encodes to zero tokens".into()));
    }
    Ok((ids, range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_text_is_the_tail_after_what_was_covered() {
        assert_eq!(new_part("ab<r>hi</r>", "ab<r>hi", Some("hi")), Some("</r>"));
        // The template trimmed the reply: find it instead.
        assert_eq!(
            new_part("ab<r>hi</r><u>q", "ab<r>hi ", Some("hi ")),
            Some("</r><u>q")
        );
        assert_eq!(new_part("xyz", "ab", Some("q")), None);
    }

    #[test]
    fn scopes_steer_feeds_and_replies_as_documented() {
        use Positions::*;
        assert_eq!(
            session_positions(Scope::AllTurns, 3, 0..1),
            (Some(All), Some(All))
        );
        assert_eq!(
            session_positions(Scope::FirstTurn, 1, 0..1),
            (Some(All), Some(All))
        );
        assert_eq!(session_positions(Scope::FirstTurn, 2, 0..1), (None, None));
        assert_eq!(
            session_positions(Scope::CurrentTurn, 2, 0..1),
            (None, Some(Generated))
        );
        assert_eq!(
            session_positions(Scope::UserTurns, 2, 5..8),
            (Some(Indices(vec![5, 6, 7])), None)
        );
    }
}
