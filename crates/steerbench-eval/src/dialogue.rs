//! Conversations under steering: which positions of a multi-turn sequence a steering
//! scope writes to, and the per-turn statistics (effect per turn, persistence).
//!
//! A scored turn k is the sequence *history of turns 1..k-1 + user message k + the
//! assistant's reply* (a matching or non-matching continuation), encoded with the token
//! span of every message ([`crate::prompt::encode_with_spans`]). Scopes:
//!
//! - `all_turns`: every position.
//! - `first_turn`: every position up to the end of the first assistant reply, none after:
//!   the model is steered while it reads and writes turn 1, then runs unsteered on its
//!   cached history. Causal attention makes this one pass equal to steering turn 1 into
//!   a KV cache and continuing unsteered from it (tests/dialogue.rs checks it). At k = 1
//!   it is every position.
//! - `current_turn`: only the reply being scored (`Positions::Generated`).
//! - `user_turns`: only the tokens of user messages.

use steerbench_model::Positions;

use crate::prompt::Encoded;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    AllTurns,
    FirstTurn,
    CurrentTurn,
    UserTurns,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::AllTurns,
        Scope::FirstTurn,
        Scope::CurrentTurn,
        Scope::UserTurns,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::AllTurns => "all_turns",
            Scope::FirstTurn => "first_turn",
            Scope::CurrentTurn => "current_turn",
            Scope::UserTurns => "user_turns",
        }
    }

    pub fn from_name(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// The positions `scope` steers on a turn's sequence: its prompt `enc` (history, user
/// message, assistant header) followed by the reply.
pub fn scope_positions(scope: Scope, enc: &Encoded) -> Positions {
    match scope {
        Scope::AllTurns => Positions::All,
        Scope::CurrentTurn => Positions::Generated,
        Scope::FirstTurn => match enc.spans.iter().find(|s| s.role == "assistant") {
            // Turn 1 is the one being written: steer all of it.
            None => Positions::All,
            Some(first) => Positions::Indices((0..first.tokens.end).collect()),
        },
        Scope::UserTurns => Positions::Indices(
            enc.spans
                .iter()
                .filter(|s| s.role == "user")
                .flat_map(|s| s.tokens.clone())
                .collect(),
        ),
    }
}

/// The effect at each turn and its persistence: per turn k, the mean over conversations
/// of (steered − unsteered) and that mean divided by turn 1's.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnEffect {
    pub turn: usize,
    pub n: usize,
    pub effect: f64,
    /// effect(k) / effect(1); NaN when turn 1's effect is 0 or missing.
    pub persistence: f64,
}

/// `deltas[i]` = (turn, steered − unsteered value) for one conversation's scored turns
/// (any order); conversations without a turn-1 score do not enter persistence.
pub fn turn_effects(deltas: &[(usize, f64)]) -> Vec<TurnEffect> {
    let mut by_turn: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
    for &(k, d) in deltas {
        if d.is_finite() {
            by_turn.entry(k).or_default().push(d);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let first = by_turn.get(&1).map(|v| mean(v));
    by_turn
        .iter()
        .map(|(&turn, v)| {
            let effect = mean(v);
            TurnEffect {
                turn,
                n: v.len(),
                effect,
                persistence: match first {
                    Some(f) if f != 0.0 => effect / f,
                    _ => f64::NAN,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::MessageSpan;

    fn enc(spans: Vec<(&'static str, usize, std::ops::Range<usize>)>) -> Encoded {
        Encoded {
            ids: vec![0; 40],
            text: String::new(),
            spans: spans
                .into_iter()
                .map(|(role, exchange, tokens)| MessageSpan {
                    role,
                    exchange,
                    tokens,
                })
                .collect(),
            system_folded: false,
        }
    }

    #[test]
    fn scopes_pick_their_positions() {
        // system 1..3, user 5..8, assistant 10..14, user 16..18 (turn 2's prompt).
        let e = enc(vec![
            ("system", 0, 1..3),
            ("user", 0, 5..8),
            ("assistant", 0, 10..14),
            ("user", 1, 16..18),
        ]);
        assert_eq!(scope_positions(Scope::AllTurns, &e), Positions::All);
        assert_eq!(
            scope_positions(Scope::CurrentTurn, &e),
            Positions::Generated
        );
        assert_eq!(
            scope_positions(Scope::FirstTurn, &e),
            Positions::Indices((0..14).collect())
        );
        assert_eq!(
            scope_positions(Scope::UserTurns, &e),
            Positions::Indices(vec![5, 6, 7, 16, 17])
        );
        // Turn 1: first_turn is everything.
        let e1 = enc(vec![("user", 0, 2..6)]);
        assert_eq!(scope_positions(Scope::FirstTurn, &e1), Positions::All);
        for s in Scope::ALL {
            assert_eq!(Scope::from_name(s.name()), Some(s));
        }
    }

    #[test]
    fn persistence_is_the_effect_relative_to_turn_one() {
        // Two conversations: turn-1 effects 2 and 4 (mean 3), turn 2: 1.5 and 1.5, turn 3: 0.
        let d = [
            (1, 2.0),
            (2, 1.5),
            (3, 0.0),
            (1, 4.0),
            (2, 1.5),
            (3, f64::NAN),
        ];
        let t = turn_effects(&d);
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[0].turn, t[0].n, t[0].effect, t[0].persistence),
            (1, 2, 3.0, 1.0)
        );
        assert_eq!((t[1].effect, t[1].persistence), (1.5, 0.5));
        assert_eq!((t[2].n, t[2].effect, t[2].persistence), (1, 0.0, 0.0));
        assert!(turn_effects(&[(2, 1.0)])[0].persistence.is_nan());
    }
}
