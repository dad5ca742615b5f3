//! Multi-turn prompts: rendering through the chat template (golden strings, with and
//! without a system role), the token span of every message, the positions of each
//! steering scope, and `first_turn` = steering turn 1 into a KV cache and continuing
//! unsteered from it.

mod common;

use std::path::Path;

use candle_core::{Device, Tensor};
use steerbench_eval::dialogue::{scope_positions, Scope};
use steerbench_eval::prompt::{encode_with_spans, render_with_note, Prompt, PromptStyle};
use steerbench_model::hooks::{HookPoint, Hooks, Intervention, Positions, Site};
use steerbench_model::tokenizer::Tokenizer;
use steerbench_model::{Pass, Sequence};

const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
/// Like Gemma's: no system role (it raises), `model` for the assistant.
const NO_SYSTEM: &str = "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n{{ m.content }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

/// A byte-level tokenizer (every byte one token) with the template's special tokens.
fn tokenizer(dir: &Path, template: &str, specials: &[&str]) -> Tokenizer {
    let mut vocab = serde_json::Map::new();
    // GPT-2's byte alphabet: printable bytes map to themselves, the rest above 255.
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars = printable.clone();
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + extra);
            extra += 1;
        }
    }
    for (i, c) in chars.iter().enumerate() {
        vocab.insert(
            char::from_u32(*c).unwrap().to_string(),
            serde_json::json!(i),
        );
    }
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({"id": 256 + i, "content": s, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let byte_level = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true});
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "vocab": vocab, "merges": []}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let cfg = serde_json::json!({"chat_template": template, "eos_token": specials[1]});
    std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
    Tokenizer::from_hf_dir(dir).unwrap()
}

fn conversation() -> Prompt {
    Prompt {
        system: Some("Be brief.".into()),
        shots: vec![
            ("Hi".into(), "Hello there".into()),
            ("Any plans?".into(), "A long walk.".into()),
        ],
        user: "How was it?".into(),
        assistant_prefix: String::new(),
    }
}

#[test]
fn multi_turn_prompts_render_through_the_template_with_message_spans() {
    let d = tempfile::tempdir().unwrap();
    let tok = tokenizer(d.path(), CHATML, &["<|im_start|>", "<|im_end|>"]);
    let p = conversation();
    let (text, folded) = render_with_note(&tok, &p, PromptStyle::Chat).unwrap();
    assert!(!folded);
    assert_eq!(
        text,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there<|im_end|>\n<|im_start|>user\nAny plans?<|im_end|>\n<|im_start|>assistant\nA long walk.<|im_end|>\n<|im_start|>user\nHow was it?<|im_end|>\n<|im_start|>assistant\n"
    );
    let enc = encode_with_spans(&tok, &p, PromptStyle::Chat).unwrap();
    assert_eq!(enc.ids, tok.encode(&text, false).unwrap());
    let got: Vec<(&str, usize, String)> = enc
        .spans
        .iter()
        .map(|s| {
            (
                s.role,
                s.exchange,
                tok.decode(&enc.ids[s.tokens.clone()]).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("system", 0, "Be brief.".to_string()),
            ("user", 0, "Hi".into()),
            ("assistant", 0, "Hello there".into()),
            ("user", 1, "Any plans?".into()),
            ("assistant", 1, "A long walk.".into()),
            ("user", 2, "How was it?".into()),
        ]
    );

    // Scopes on this turn-3 prompt: first_turn ends with "Hello there".
    let first_end = enc.spans[2].tokens.end;
    assert_eq!(
        scope_positions(Scope::FirstTurn, &enc),
        Positions::Indices((0..first_end).collect())
    );
    let Positions::Indices(users) = scope_positions(Scope::UserTurns, &enc) else {
        panic!()
    };
    let user_text: String = users
        .iter()
        .map(|&i| tok.decode(&enc.ids[i..i + 1]).unwrap())
        .collect();
    assert_eq!(user_text, "HiAny plans?How was it?");
    assert_eq!(
        scope_positions(Scope::CurrentTurn, &enc),
        Positions::Generated
    );
    assert_eq!(scope_positions(Scope::AllTurns, &enc), Positions::All);
}

#[test]
fn templates_without_a_system_role_get_it_in_the_first_user_turn() {
    let d = tempfile::tempdir().unwrap();
    let tok = tokenizer(d.path(), NO_SYSTEM, &["<start_of_turn>", "<end_of_turn>"]);
    let p = conversation();
    let enc = encode_with_spans(&tok, &p, PromptStyle::Chat).unwrap();
    assert!(enc.system_folded);
    assert_eq!(
        enc.text,
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello there<end_of_turn>\n<start_of_turn>user\nAny plans?<end_of_turn>\n<start_of_turn>model\nA long walk.<end_of_turn>\n<start_of_turn>user\nHow was it?<end_of_turn>\n<start_of_turn>model\n"
    );
    let decoded: Vec<String> = enc
        .spans
        .iter()
        .map(|s| tok.decode(&enc.ids[s.tokens.clone()]).unwrap())
        .collect();
    assert_eq!(
        decoded,
        [
            "Be brief.",
            "Hi",
            "Hello there",
            "Any plans?",
            "A long walk.",
            "How was it?"
        ]
    );
    // Without a system prompt nothing is folded.
    let mut q = p.clone();
    q.system = None;
    assert!(!render_with_note(&tok, &q, PromptStyle::Chat).unwrap().1);
    // A template that refuses for another reason still fails.
    let d2 = tempfile::tempdir().unwrap();
    let bad = tokenizer(
        d2.path(),
        "{{ raise_exception('nothing works') }}",
        &["<s>", "</s>"],
    );
    let e = render_with_note(&bad, &p, PromptStyle::Chat)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing works"), "{e}");
}

#[test]
fn first_turn_equals_steering_turn_one_then_continuing_unsteered_from_its_cache() {
    let (model, _) = common::tiny_llama_with_weights(11);
    let tokens: Vec<u32> = (0..20).map(|i| (i * 7 + 3) % 50).collect();
    let end_of_turn_one = 8;
    let v = Tensor::from_vec(
        (0..16)
            .map(|i| ((i as f32) * 0.37).sin())
            .collect::<Vec<f32>>(),
        16,
        &Device::Cpu,
    )
    .unwrap();
    let at = HookPoint::new(1, Site::ResidPost);
    let add = || Intervention::Add {
        vector: v.clone(),
        alpha: 3.0,
    };

    // One pass, steering positions 0..8 only.
    let mut hooks = Hooks::new();
    hooks.write(
        at,
        add(),
        Positions::Indices((0..end_of_turn_one).collect()),
    );
    let one = model
        .forward(&[Sequence::prompt(tokens.clone())], &mut hooks)
        .unwrap();

    // Turn 1 steered into a KV cache, the rest unsteered on top of it.
    let n = model.config().n_layers;
    let mut steered = Hooks::new();
    steered.write(at, add(), Positions::All);
    let (prefix, _) = model
        .shared_prefix(&tokens[..end_of_turn_one], 0..n, 1, None, &mut steered)
        .unwrap();
    let rest = [Sequence::prompt(tokens[end_of_turn_one..].to_vec())];
    let pass = Pass {
        prefix: Some((&prefix, &[0])),
        ..Pass::default()
    };
    let two = model.forward_pass(&rest, &pass, &mut Hooks::new()).unwrap();

    // And unsteered throughout, to see that steering turn 1 matters downstream.
    let plain = model
        .forward(&[Sequence::prompt(tokens.clone())], &mut Hooks::new())
        .unwrap();
    let mut max_diff = 0f32;
    let mut max_effect = 0f32;
    for (j, pos) in (end_of_turn_one..tokens.len()).enumerate() {
        let a: Vec<f32> = one.logits_at(0, pos).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = two.logits_at(0, j).unwrap().to_vec1().unwrap();
        let c: Vec<f32> = plain.logits_at(0, pos).unwrap().to_vec1().unwrap();
        for ((x, y), z) in a.iter().zip(&b).zip(&c) {
            max_diff = max_diff.max((x - y).abs());
            max_effect = max_effect.max((x - z).abs());
        }
    }
    assert!(max_diff < 1e-4, "one pass vs cached turn 1: {max_diff}");
    assert!(
        max_effect > 1e-2,
        "steering turn 1 changes later logits: {max_effect}"
    );
}

/// A conversation of three scored turns on made-up token ids: turn k's prompt is turn
/// k−1's prompt, its history reply, user message k and an assistant header.
fn nested_dialogue() -> steerbench_eval::turn_sweep::Dialogue {
    use steerbench_eval::prompt::{Encoded, MessageSpan};
    use steerbench_eval::turn_sweep::{Dialogue, ScoredTurn};
    let tok = |i: usize| ((i * 13 + 5) % 47) as u32 + 1;
    // (user span, assistant-header end) per turn; history replies of 4 tokens.
    let mut ids: Vec<u32> = Vec::new();
    let mut spans: Vec<MessageSpan> = vec![MessageSpan {
        role: "system",
        exchange: 0,
        tokens: 1..3,
    }];
    ids.extend((0..4).map(tok));
    let mut turns = Vec::new();
    for k in 1..=3usize {
        let start = ids.len();
        ids.extend((start..start + 3 + k).map(tok));
        spans.push(MessageSpan {
            role: "user",
            exchange: k - 1,
            tokens: start + 1..start + 2 + k,
        });
        turns.push(ScoredTurn {
            k,
            prompt: Encoded {
                ids: ids.clone(),
                text: String::new(),
                spans: spans.clone(),
                system_folded: false,
            },
            replies: [vec![tok(k + 40), tok(k + 41), 7], vec![tok(k + 30)]],
        });
        // The history reply of turn k.
        let start = ids.len();
        ids.extend((start..start + 4).map(|i| tok(i + 100)));
        spans.push(MessageSpan {
            role: "assistant",
            exchange: k - 1,
            tokens: start..start + 4,
        });
    }
    Dialogue::new("c1".into(), turns).unwrap()
}

#[test]
fn turn_by_turn_scoring_on_one_cache_equals_re_encoding_every_turn_in_every_scope() {
    use steerbench_eval::steer::Steer;
    use steerbench_eval::turn_sweep::{score_dialogue, score_naive, sweep_dialogues};
    let (model, _) = common::tiny_llama_with_weights(5);
    let d = nested_dialogue();
    let steer = Steer::Add {
        layer: 1,
        vector: (0..16).map(|i| ((i as f32) * 0.61).cos()).collect(),
    };
    let max_diff = |a: &[[Vec<f32>; 2]], b: &[[Vec<f32>; 2]]| {
        let mut m = 0f32;
        for (x, y) in a.iter().zip(b) {
            for c in 0..2 {
                assert_eq!(x[c].len(), y[c].len());
                for (p, q) in x[c].iter().zip(&y[c]) {
                    m = m.max((p - q).abs());
                }
            }
        }
        m
    };
    let base = score_naive(&model, &d, None, 0.0, Scope::AllTurns).unwrap();
    assert!(
        max_diff(
            &score_dialogue(&model, &d, None, 0.0, Scope::AllTurns).unwrap(),
            &base
        ) < 1e-4
    );
    let mut effects = Vec::new();
    for scope in Scope::ALL {
        let fast = score_dialogue(&model, &d, Some(&steer), 2.5, scope).unwrap();
        let slow = score_naive(&model, &d, Some(&steer), 2.5, scope).unwrap();
        assert_eq!(fast.len(), 3);
        let diff = max_diff(&fast, &slow);
        assert!(diff < 1e-4, "{}: cached vs re-encoded {diff}", scope.name());
        effects.push((scope, max_diff(&fast, &base)));
    }
    // Every scope steers something on these turns (turn 1 at least).
    for (scope, e) in &effects {
        assert!(*e > 1e-3, "{} changes nothing: {e}", scope.name());
    }
    // current_turn steers only the replies: on turn 3, first_turn (turns 1..) and
    // current_turn differ.
    let ft = score_dialogue(&model, &d, Some(&steer), 2.5, Scope::FirstTurn).unwrap();
    let ct = score_dialogue(&model, &d, Some(&steer), 2.5, Scope::CurrentTurn).unwrap();
    assert!(max_diff(&ft[2..], &ct[2..]) > 1e-3);
    // Strengths as rows of one pass equal one strength at a time, at every layer: below
    // the last block the unsteered blocks run once for all strengths (their own cache),
    // at the last block every block runs per strength.
    let alphas = [-1.0f32, 2.5, 4.0];
    for layer in 0..3 {
        let steer = Steer::Add {
            layer,
            vector: (0..16).map(|i| ((i as f32) * 0.61).cos()).collect(),
        };
        for scope in Scope::ALL {
            let rows = steerbench_eval::turn_sweep::score_dialogue_strengths(
                &model, &d, &steer, &alphas, scope,
            )
            .unwrap();
            for (a, r) in alphas.iter().zip(&rows) {
                let one = score_naive(&model, &d, Some(&steer), *a, scope).unwrap();
                let diff = max_diff(r, &one);
                assert!(
                    diff < 1e-4,
                    "layer {layer}, {} at {a}: rows vs re-encoded {diff}",
                    scope.name()
                );
                // (Written at the last block's output, user positions reach no reply.)
                if layer < 2 || scope != Scope::UserTurns {
                    assert!(max_diff(r, &base) > 1e-3, "layer {layer} steers");
                }
            }
        }
    }
    // The sweep lays values out per turn, matching then not matching; strength 0 is the
    // unsteered model.
    let swept = sweep_dialogues(
        &model,
        &[d.clone(), d.clone()],
        Some(&steer),
        &[0.0, 2.5],
        Scope::FirstTurn,
        |_| {},
    )
    .unwrap();
    assert_eq!((swept.len(), swept[0].len()), (2, 12));
    // (Strength 0 is a zero row of the same passes: equal up to float summation order.)
    let cached_base = score_dialogue(&model, &d, None, 0.0, Scope::FirstTurn).unwrap();
    let close = |a: &[f32], b: &[f32]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
    };
    assert!(close(swept[0][4].as_slice(), &cached_base[2][0]));
    assert!(close(swept[1][11].as_slice(), &ft[2][1]));
}

#[test]
fn each_scope_writes_exactly_its_positions_seen_by_a_capture_hook() {
    use steerbench_eval::steer::Steer;
    let (model, _) = common::tiny_llama_with_weights(9);
    let d = nested_dialogue();
    let t = &d.turns[2]; // turn 3: two earlier exchanges in its history
    let mut tokens = t.prompt.ids.clone();
    tokens.extend_from_slice(&t.replies[0]);
    let seq = Sequence::new(tokens.clone(), t.prompt.ids.len());
    let at = HookPoint::new(1, Site::ResidPost);
    let steer = Steer::Add {
        layer: 1,
        vector: vec![1.0; 16],
    };
    let captured = |positions: Option<&Positions>| -> Vec<Vec<f32>> {
        let mut h = Hooks::new();
        if let Some(p) = positions {
            steer
                .install(&mut h, 2.0, p, model.config().n_layers, &Device::Cpu)
                .unwrap();
        }
        h.capture(at);
        model.forward(&[seq.clone()], &mut h).unwrap();
        h.take(at).unwrap().squeeze(0).unwrap().to_vec2().unwrap()
    };
    let plain = captured(None);
    let user: Vec<usize> = t
        .prompt
        .spans
        .iter()
        .filter(|s| s.role == "user")
        .flat_map(|s| s.tokens.clone())
        .collect();
    let first_end = t
        .prompt
        .spans
        .iter()
        .find(|s| s.role == "assistant")
        .unwrap()
        .tokens
        .end;
    let n = tokens.len();
    for scope in Scope::ALL {
        let steered = captured(Some(&scope_positions(scope, &t.prompt)));
        let moved: Vec<usize> = (0..n)
            .filter(|&i| {
                steered[i]
                    .iter()
                    .zip(&plain[i])
                    .any(|(a, b)| (a - b).abs() > 1e-6)
            })
            .collect();
        let want: Vec<usize> = match scope {
            Scope::AllTurns => (0..n).collect(),
            Scope::FirstTurn => (0..first_end).collect(),
            Scope::CurrentTurn => (t.prompt.ids.len()..n).collect(),
            Scope::UserTurns => user.clone(),
        };
        assert_eq!(moved, want, "{}", scope.name());
        // Each moved position moved by exactly the added vector (2 × 1 per unit).
        for &i in &moved {
            for (a, b) in steered[i].iter().zip(&plain[i]) {
                assert!(((a - b) - 2.0).abs() < 1e-5);
            }
        }
    }
}
