//! Forward, hooks, padding and resumption on tiny random-weight models.

mod common;

use std::sync::Arc;

use candle_core::{Device, Tensor, D};
use common::*;
use steerbench_model::{HookPoint, Hooks, Intervention, Model, Positions, Sequence, Site};

fn seqs(rows: &[Vec<u32>]) -> Vec<Sequence> {
    rows.iter().map(|r| Sequence::prompt(r.clone())).collect()
}

fn hp(layer: usize, site: Site) -> HookPoint {
    HookPoint::new(layer, site)
}

#[test]
fn hooks_capture_every_site_with_the_right_shape() {
    let m = tiny_llama(0);
    let batch = seqs(&ragged_batch());
    let mut hooks = Hooks::new();
    let sites = [
        Site::ResidPre,
        Site::ResidMid,
        Site::ResidPost,
        Site::AttnOut,
        Site::MlpOut,
        Site::HeadOut,
    ];
    for s in sites {
        hooks.capture(hp(1, s));
    }
    m.forward(&batch, &mut hooks).unwrap();
    for s in sites {
        let t = hooks.take(hp(1, s)).unwrap();
        let want: Vec<usize> = if s == Site::HeadOut {
            vec![3, 9, 4, 8]
        } else {
            vec![3, 9, 32]
        };
        assert_eq!(t.dims(), want.as_slice(), "{s:?}");
    }
    // ResidPost(l) is ResidPre(l + 1); ResidMid = ResidPre + AttnOut; ResidPost = ResidMid + MlpOut.
    let mut hooks = Hooks::new();
    for s in sites {
        hooks.capture(hp(0, s));
    }
    hooks.capture(hp(1, Site::ResidPre));
    m.forward(&batch, &mut hooks).unwrap();
    let g = |h: &mut Hooks, l, s| h.take(hp(l, s)).unwrap();
    let post0 = g(&mut hooks, 0, Site::ResidPost);
    assert_eq!(max_abs_diff(&post0, &g(&mut hooks, 1, Site::ResidPre)), 0.0);
    let mid = g(&mut hooks, 0, Site::ResidMid);
    let pre_plus_attn =
        (g(&mut hooks, 0, Site::ResidPre) + g(&mut hooks, 0, Site::AttnOut)).unwrap();
    assert!(max_abs_diff(&mid, &pre_plus_attn) < 1e-5);
    assert!(max_abs_diff(&post0, &(mid + g(&mut hooks, 0, Site::MlpOut)).unwrap()) < 1e-5);
}

#[test]
fn add_at_last_changes_only_the_last_position() {
    let m = tiny_llama(1);
    let batch = seqs(&ragged_batch());
    let run = |steer: bool| {
        let mut h = Hooks::new();
        if steer {
            h.write(
                hp(1, Site::ResidPre),
                Intervention::Add {
                    vector: vector(32, 9),
                    alpha: 4.0,
                },
                Positions::Last,
            );
        }
        m.forward(&batch, &mut h).unwrap()
    };
    let (base, steered) = (run(false), run(true));
    for (r, s) in batch.iter().enumerate() {
        let n = s.tokens.len();
        for p in 0..n - 1 {
            let d = max_abs_diff(
                &base.logits_at(r, p).unwrap(),
                &steered.logits_at(r, p).unwrap(),
            );
            assert_eq!(d, 0.0, "row {r} pos {p} changed");
        }
        let d = max_abs_diff(
            &base.logits_at(r, n - 1).unwrap(),
            &steered.logits_at(r, n - 1).unwrap(),
        );
        assert!(d > 1e-3, "row {r}: last position unchanged");
    }
}

#[test]
fn left_padding_matches_unpadded_single_rows_with_steering() {
    for m in [tiny_llama(2), tiny_gpt2(2)] {
        let rows = ragged_batch();
        let steer = |h: &mut Hooks| {
            h.write(
                hp(0, Site::ResidPost),
                Intervention::Add {
                    vector: vector(32, 1),
                    alpha: 2.0,
                },
                Positions::Indices(vec![0, 2]),
            );
            h.write(
                hp(1, Site::MlpOut),
                Intervention::Ablate {
                    direction: vector(32, 2),
                },
                Positions::All,
            );
        };
        let mut hb = Hooks::new();
        steer(&mut hb);
        let batched = m.forward(&seqs(&rows), &mut hb).unwrap();
        for (r, row) in rows.iter().enumerate() {
            let mut h1 = Hooks::new();
            steer(&mut h1);
            let single = m
                .forward(&seqs(std::slice::from_ref(row)), &mut h1)
                .unwrap();
            assert_eq!(single.pad_left(0), 0);
            for p in 0..row.len() {
                let d = max_abs_diff(
                    &batched.logits_at(r, p).unwrap(),
                    &single.logits_at(0, p).unwrap(),
                );
                assert!(
                    d < 1e-4,
                    "row {r} pos {p}: padded vs unpadded differ by {d}"
                );
            }
        }
    }
}

#[test]
fn per_row_add_vector_steers_each_row_with_its_own_vector() {
    let m = tiny_llama(3);
    let rows = ragged_batch();
    let vs: Vec<Tensor> = (0..3).map(|i| vector(32, 100 + i)).collect();
    let mut hb = Hooks::new();
    let stacked = Tensor::stack(&vs, 0).unwrap();
    hb.write(
        hp(1, Site::ResidPre),
        Intervention::Add {
            vector: stacked,
            alpha: 3.0,
        },
        Positions::All,
    );
    let batched = m.forward(&seqs(&rows), &mut hb).unwrap();
    for (r, row) in rows.iter().enumerate() {
        let mut h = Hooks::new();
        h.write(
            hp(1, Site::ResidPre),
            Intervention::Add {
                vector: vs[r].clone(),
                alpha: 3.0,
            },
            Positions::All,
        );
        let single = m.forward(&seqs(std::slice::from_ref(row)), &mut h).unwrap();
        let p = row.len() - 1;
        assert!(
            max_abs_diff(
                &batched.logits_at(r, p).unwrap(),
                &single.logits_at(0, p).unwrap()
            ) < 1e-4
        );
    }
}

#[test]
fn prompt_and_generated_positions_split_at_prompt_len() {
    let m = tiny_llama(4);
    let batch = vec![
        Sequence::new(vec![1, 5, 9, 14, 22, 3], 4),
        Sequence::new(vec![1, 7, 8], 2),
    ];
    let mut h = Hooks::new();
    h.capture(hp(0, Site::ResidPre));
    m.forward(&batch, &mut h).unwrap();
    let base = h.take(hp(0, Site::ResidPre)).unwrap();
    for (sel, expect) in [
        (Positions::Prompt, [vec![0, 1, 2, 3], vec![0, 1]]),
        (Positions::Generated, [vec![4, 5], vec![2]]),
    ] {
        let mut h = Hooks::new();
        h.write(
            hp(0, Site::ResidPre),
            Intervention::Add {
                vector: vector(32, 5),
                alpha: 1.0,
            },
            sel.clone(),
        );
        h.capture(hp(0, Site::ResidPre));
        let out = m.forward(&batch, &mut h).unwrap();
        let got = h.take(hp(0, Site::ResidPre)).unwrap();
        for (r, s) in batch.iter().enumerate() {
            for p in 0..s.tokens.len() {
                let q = out.pad_left(r) + p;
                let d = max_abs_diff(
                    &got.get(r).unwrap().get(q).unwrap(),
                    &base.get(r).unwrap().get(q).unwrap(),
                );
                assert_eq!(d > 0.0, expect[r].contains(&p), "{sel:?} row {r} pos {p}");
            }
        }
    }
}

#[test]
fn forward_from_equals_full_forward() {
    let m = tiny_llama(5);
    let batch = seqs(&ragged_batch());
    let steer = |h: &mut Hooks| {
        h.write(
            hp(2, Site::ResidPre),
            Intervention::Add {
                vector: vector(32, 7),
                alpha: 1.5,
            },
            Positions::All,
        );
    };
    let mut h = Hooks::new();
    h.capture(hp(2, Site::ResidPre));
    m.forward(&batch, &mut h).unwrap();
    let resid = h.take(hp(2, Site::ResidPre)).unwrap();
    let mut full_hooks = Hooks::new();
    steer(&mut full_hooks);
    let full = m.forward(&batch, &mut full_hooks).unwrap();
    let mut from_hooks = Hooks::new();
    steer(&mut from_hooks);
    let resumed = m.forward_from(&batch, 2, &resid, &mut from_hooks).unwrap();
    assert!(max_abs_diff(full.hidden(), resumed.hidden()) < 1e-6);
    assert!(
        max_abs_diff(
            &full.last_logits().unwrap(),
            &resumed.last_logits().unwrap()
        ) < 1e-5
    );
    // Wrong shape is an input error, not a panic.
    let bad = resid.narrow(1, 0, 2).unwrap();
    assert!(m.forward_from(&batch, 2, &bad, &mut Hooks::new()).is_err());
    assert!(m
        .forward_from(&batch, 3, &resid, &mut Hooks::new())
        .is_err());
}

#[test]
fn ablate_clamp_affine_map_and_patch_head() {
    let m = tiny_llama(6);
    let batch = seqs(&ragged_batch());
    let u = vector(32, 11);
    let un = (&u
        / u.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64)
        .unwrap();
    let proj = |h: &Tensor| h.broadcast_mul(&un).unwrap().sum(D::Minus1).unwrap();
    let at = hp(1, Site::ResidPost);
    let captured = |what: Option<Intervention>| {
        let mut h = Hooks::new();
        if let Some(w) = what {
            h.write(at, w, Positions::All);
        }
        h.capture(at);
        let out = m.forward(&batch, &mut h).unwrap();
        (h.take(at).unwrap(), out)
    };
    let (base, out) = captured(None);
    let real = |t: &Tensor| -> Vec<f32> {
        let mut v = vec![];
        for r in 0..3 {
            let row = t.get(r).unwrap().to_vec1::<f32>().unwrap();
            v.extend_from_slice(&row[out.pad_left(r)..]);
        }
        v
    };
    // Ablate: projection on û is zero at every real position.
    let (abl, _) = captured(Some(Intervention::Ablate {
        direction: u.clone(),
    }));
    assert!(real(&proj(&abl)).iter().all(|x| x.abs() < 1e-4));
    assert!(real(&proj(&base)).iter().any(|x| x.abs() > 1e-2));
    // Clamp: projection equals the value.
    let (cl, _) = captured(Some(Intervention::Clamp {
        direction: u.clone(),
        value: 2.5,
    }));
    assert!(real(&proj(&cl)).iter().all(|x| (x - 2.5).abs() < 1e-4));
    // Affine with 2I and Map(h -> 2h) agree; identity Affine changes nothing.
    let eye = Tensor::eye(32, candle_core::DType::F32, &Device::Cpu).unwrap();
    let zero = Tensor::zeros(32, candle_core::DType::F32, &Device::Cpu).unwrap();
    let (id, _) = captured(Some(Intervention::Affine {
        matrix: eye.clone(),
        bias: zero.clone(),
    }));
    assert!(max_abs_diff(&id, &base) < 1e-5);
    let (two, _) = captured(Some(Intervention::Affine {
        matrix: (&eye * 2.0).unwrap(),
        bias: zero,
    }));
    let (map, _) = captured(Some(Intervention::Map(Arc::new(|h: &Tensor| h * 2.0))));
    assert!(max_abs_diff(&two, &map) < 1e-5);
    // PatchHead: head 1 becomes the value, other heads unchanged.
    let at = hp(0, Site::HeadOut);
    let mut h = Hooks::new();
    h.capture(at);
    m.forward(&batch, &mut h).unwrap();
    let heads = h.take(at).unwrap();
    let mut h = Hooks::new();
    let value = vector(8, 3);
    h.write(
        at,
        Intervention::PatchHead {
            head: 1,
            value: value.clone(),
        },
        Positions::Last,
    );
    h.capture(at);
    m.forward(&batch, &mut h).unwrap();
    let patched = h.take(at).unwrap();
    let t = patched.dims()[1];
    for r in 0..3 {
        let last = patched.get(r).unwrap().get(t - 1).unwrap();
        assert!(max_abs_diff(&last.get(1).unwrap(), &value) < 1e-6);
        let before = heads.get(r).unwrap().get(t - 1).unwrap();
        for head in [0, 2, 3] {
            assert!(max_abs_diff(&last.get(head).unwrap(), &before.get(head).unwrap()) < 1e-6);
        }
    }
    // PatchHead elsewhere is an input error.
    let mut h = Hooks::new();
    h.write(
        hp(0, Site::ResidPre),
        Intervention::PatchHead { head: 0, value },
        Positions::All,
    );
    assert!(m.forward(&batch, &mut h).is_err());
}

#[test]
fn bad_hook_inputs_are_errors() {
    let m = tiny_llama(7);
    let batch = seqs(&ragged_batch());
    let mut h = Hooks::new();
    h.write(
        hp(0, Site::ResidPre),
        Intervention::Add {
            vector: vector(31, 0),
            alpha: 1.0,
        },
        Positions::All,
    );
    let e = m.forward(&batch, &mut h).unwrap_err().to_string();
    assert!(e.contains("expected shape (32)"), "{e}");
    let mut h = Hooks::new();
    h.capture(hp(3, Site::ResidPre));
    assert!(m
        .forward(&batch, &mut h)
        .unwrap_err()
        .to_string()
        .contains("layer 3"));
    assert!(m.forward(&[], &mut Hooks::new()).is_err());
    assert!(m
        .forward(&seqs(&[vec![1, 500]]), &mut Hooks::new())
        .unwrap_err()
        .to_string()
        .contains("vocab"));
}

#[test]
fn chunked_prefill_equals_full_forward_including_captures() {
    let mut m = tiny_llama(8);
    let batch = seqs(&ragged_batch());
    let mut steer = Hooks::new();
    steer.write(
        hp(1, Site::ResidPre),
        Intervention::Add {
            vector: vector(32, 4),
            alpha: 2.0,
        },
        Positions::Prompt,
    );
    steer.capture(hp(1, Site::AttnOut));
    let mut h = steer.clone();
    let full = m.forward(&batch, &mut h).unwrap();
    let cap_full = h.take(hp(1, Site::AttnOut)).unwrap();
    for chunk in [1, 2, 4] {
        m.set_prefill_chunk(Some(chunk));
        let mut h = steer.clone();
        let chunked = m.forward(&batch, &mut h).unwrap();
        assert!(
            max_abs_diff(full.hidden(), chunked.hidden()) < 1e-5,
            "chunk {chunk}"
        );
        assert!(max_abs_diff(&cap_full, &h.take(hp(1, Site::AttnOut)).unwrap()) < 1e-5);
    }
}

#[test]
fn logprobs_agree_with_log_softmax_of_logits() {
    let m = tiny_gpt2(9);
    let batch = vec![
        Sequence::new(vec![1, 5, 9, 14, 22], 3),
        Sequence::new(vec![4, 8], 1),
    ];
    let mut h = Hooks::new();
    let out = m.forward(&batch, &mut h).unwrap();
    let all = m.token_logprobs(&batch, &mut Hooks::new()).unwrap();
    for (r, s) in batch.iter().enumerate() {
        assert_eq!(all[r].len(), s.tokens.len() - 1);
        for i in 1..s.tokens.len() {
            let ls = candle_nn::ops::log_softmax(&out.logits_at(r, i - 1).unwrap(), 0).unwrap();
            let want = ls
                .get(s.tokens[i] as usize)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!((all[r][i - 1] - want).abs() < 1e-5);
        }
        let comp = out.completion_logprobs(r).unwrap();
        assert_eq!(comp.len(), s.tokens.len() - s.prompt_len);
        for (a, b) in comp.iter().zip(&all[r][s.prompt_len - 1..]) {
            assert!((a - b).abs() < 1e-5);
        }
    }
    assert!(out.logits_at(1, 2).is_err());
}

#[test]
fn model_new_names_tensor_and_shapes() {
    let cfg = llama_config();
    let mut w = llama_weights(&cfg, 0);
    w.rand(
        "model.layers.1.self_attn.k_proj.weight",
        &[32, 32],
        0.0,
        0.1,
    );
    let e = Model::new(cfg.clone(), w.vb()).err().unwrap().to_string();
    assert!(
        e.contains("model.layers.1.self_attn.k_proj.weight")
            && e.contains("[16, 32]")
            && e.contains("[32, 32]"),
        "{e}"
    );
    let mut w = llama_weights(&cfg, 0);
    w.map.remove("model.layers.2.mlp.up_proj.weight");
    let e = Model::new(cfg, w.vb()).err().unwrap().to_string();
    assert!(e.contains("model.layers.2.mlp.up_proj.weight"), "{e}");
}

#[test]
fn forward_prefix_then_forward_from_equals_forward() {
    let batch = seqs(&ragged_batch());
    let add = |h: &mut Hooks, at: HookPoint, seed: u64| {
        h.write(
            at,
            Intervention::Add {
                vector: vector(32, seed),
                alpha: 2.0,
            },
            Positions::All,
        );
    };
    // A write below the split (runs in the prefix) and one at it (runs in forward_from).
    let below = |h: &mut Hooks, layer: usize| {
        if layer > 0 {
            add(h, hp(layer - 1, Site::ResidMid), 4);
        }
    };
    type Maker = fn(u64) -> Model;
    let makers: [(&str, Maker); 2] = [("llama", tiny_llama), ("gpt2", tiny_gpt2)];
    for (name, make) in makers {
        for chunk in [None, Some(4)] {
            let mut m = make(6);
            m.set_prefill_chunk(chunk);
            let n = m.config().n_layers;
            for layer in 0..n {
                let what = format!("{name} layer {layer} chunk {chunk:?}");
                let mut full_hooks = Hooks::new();
                below(&mut full_hooks, layer);
                add(&mut full_hooks, hp(layer, Site::ResidPre), 3);
                let full = m.forward(&batch, &mut full_hooks).unwrap();

                let mut pre_hooks = Hooks::new();
                below(&mut pre_hooks, layer);
                add(&mut pre_hooks, hp(layer, Site::ResidPre), 3);
                let resid = m.forward_prefix(&batch, layer, &mut pre_hooks).unwrap();

                // The prefix is ResidPre(layer) before the writes at that site.
                let mut plain = Hooks::new();
                below(&mut plain, layer);
                plain.capture(hp(layer, Site::ResidPre));
                m.forward(&batch, &mut plain).unwrap();
                let want = plain.take(hp(layer, Site::ResidPre)).unwrap();
                assert_eq!(resid.dims(), want.dims(), "{what}");
                assert!(max_abs_diff(&resid, &want) <= 1e-5, "{what}");

                let mut from_hooks = Hooks::new();
                add(&mut from_hooks, hp(layer, Site::ResidPre), 3);
                let out = m
                    .forward_from(&batch, layer, &resid, &mut from_hooks)
                    .unwrap();
                assert!(max_abs_diff(full.hidden(), out.hidden()) <= 1e-5, "{what}");
                let (a, b) = (full.last_logits().unwrap(), out.last_logits().unwrap());
                assert!(max_abs_diff(&a, &b) <= 1e-5, "{what}");
            }
            assert!(m.forward_prefix(&batch, n, &mut Hooks::new()).is_err());
        }
    }
}

/// A last-position-only pass gives the full pass's last logits, with writes in the final
/// block (which cannot reach the last position from elsewhere), chunked prefill and a
/// resumed start; reads of other positions and captures it cannot serve are errors.
#[test]
fn last_only_pass_keeps_the_last_logits() {
    use steerbench_model::Pass;
    let mut m = tiny_llama(31);
    let n = m.config().n_layers;
    let d = m.config().hidden_size;
    let batch = seqs(&ragged_batch());
    let steer = |h: &mut Hooks| {
        for (k, site) in [Site::ResidPre, Site::AttnOut, Site::MlpOut, Site::ResidPost]
            .into_iter()
            .enumerate()
        {
            h.write(
                hp(n - 1, site),
                Intervention::Add {
                    vector: vector(d, 40 + k as u64),
                    alpha: 0.8,
                },
                Positions::All,
            );
        }
    };
    for chunk in [None, Some(2)] {
        m.set_prefill_chunk(chunk);
        let mut h = Hooks::new();
        steer(&mut h);
        let full = m.forward(&batch, &mut h).unwrap();
        let mut h = Hooks::new();
        steer(&mut h);
        let last_only = Pass {
            last_only: true,
            ..Pass::default()
        };
        let last = m.forward_pass(&batch, &last_only, &mut h).unwrap();
        assert_eq!(last.hidden().dims(), &[3, 1, d]);
        let diff = max_abs_diff(&full.last_logits().unwrap(), &last.last_logits().unwrap());
        assert!(diff < 1e-5, "chunk {chunk:?}: {diff}");
        assert!(last.logits_at(0, 0).is_err());
        assert!(last.completion_logprobs(0).is_err());
    }
    m.set_prefill_chunk(None);
    // Resumed at a block.
    let mut h = Hooks::new();
    h.capture(hp(1, Site::ResidPre));
    let full = m.forward(&batch, &mut h).unwrap();
    let resid = h.take(hp(1, Site::ResidPre)).unwrap();
    let pass = Pass {
        from: Some((1, &resid)),
        last_only: true,
        ..Pass::default()
    };
    let last = m.forward_pass(&batch, &pass, &mut Hooks::new()).unwrap();
    let diff = max_abs_diff(&full.last_logits().unwrap(), &last.last_logits().unwrap());
    assert!(diff < 1e-5, "resumed: {diff}");
    // Captures in the final block past its input cannot be served; at its input they can.
    let mut h = Hooks::new();
    h.capture(hp(n - 1, Site::MlpOut));
    let e = m
        .forward_pass(
            &batch,
            &Pass {
                last_only: true,
                ..Pass::default()
            },
            &mut h,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("last-position-only"), "{e}");
    let mut h = Hooks::new();
    h.capture(hp(n - 1, Site::ResidPre));
    m.forward_pass(
        &batch,
        &Pass {
            last_only: true,
            ..Pass::default()
        },
        &mut h,
    )
    .unwrap();
    assert_eq!(h.take(hp(n - 1, Site::ResidPre)).unwrap().dims()[1], 9);
}
