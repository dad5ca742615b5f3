//! A token prefix shared by every row, computed once (`Model::shared_prefix`) and attended
//! to by later batches, gives what forwarding the whole sequences gives.

mod common;

use candle_core::Tensor;
use common::*;
use steerbench_model::{
    ForwardOutput, HookPoint, Hooks, Intervention, Pass, Positions, Sequence, SharedPrefix, Site,
};

const PREFIX: [u32; 4] = [1, 5, 9, 14];

/// Ragged continuations (so rows are padded between the prefix and their own tokens) and
/// the prompt length of each, counted on the continuation.
fn continuations() -> Vec<(Vec<u32>, usize)> {
    vec![
        (vec![22, 3, 7, 40], 2),
        (vec![60, 61], 1),
        (vec![30, 31, 32, 33, 34, 35], 3),
    ]
}

fn full_batch() -> Vec<Sequence> {
    continuations()
        .into_iter()
        .map(|(c, pl)| Sequence::new([PREFIX.to_vec(), c].concat(), PREFIX.len() + pl))
        .collect()
}

fn own_batch() -> Vec<Sequence> {
    continuations()
        .into_iter()
        .map(|(c, pl)| Sequence::new(c, pl))
        .collect()
}

fn hp(layer: usize, site: Site) -> HookPoint {
    HookPoint::new(layer, site)
}

/// Writes at several selectors, some of which land in the prefix and some not.
fn steer(h: &mut Hooks, d: usize, n_layers: usize) {
    let add = |seed, alpha| Intervention::Add {
        vector: vector(d, seed),
        alpha,
    };
    h.write(hp(1, Site::ResidPost), add(3, 0.7), Positions::All);
    h.write(hp(0, Site::ResidPost), add(4, 1.3), Positions::Last);
    h.write(
        hp(n_layers - 1, Site::ResidPre),
        add(5, 0.9),
        Positions::Indices(vec![1, 5, 7]),
    );
    h.write(hp(1, Site::ResidMid), add(6, 0.5), Positions::Prompt);
    h.write(hp(0, Site::MlpOut), add(7, 0.4), Positions::Generated);
}

/// Last logits and every row's completion log-probs agree.
fn assert_same_reads(full: &ForwardOutput, own: &ForwardOutput) {
    let d = max_abs_diff(&full.last_logits().unwrap(), &own.last_logits().unwrap());
    assert!(d < 1e-4, "last logits differ by {d}");
    for r in 0..full.batch_size() {
        let a = full.completion_logprobs(r).unwrap();
        let b = own.completion_logprobs(r).unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4, "row {r}: {a:?} vs {b:?}");
        }
    }
}

/// The final hidden states of row `r`'s last `n` tokens.
fn last_hidden(out: &ForwardOutput, r: usize, n: usize) -> Tensor {
    let t = out.hidden().dims()[1];
    out.hidden().get(r).unwrap().narrow(0, t - n, n).unwrap()
}

fn shared<'a>(prefix: &'a SharedPrefix, row_of: &'a [usize]) -> Pass<'a> {
    Pass {
        prefix: Some((prefix, row_of)),
        ..Pass::default()
    }
}

#[test]
fn shared_prefix_forward_equals_whole_sequences_llama_and_gpt2() {
    for (name, mut m) in [("llama", tiny_llama(21)), ("gpt2", tiny_gpt2(22))] {
        let d = m.config().hidden_size;
        for chunk in [None, Some(2)] {
            m.set_prefill_chunk(chunk);
            let mut h = Hooks::new();
            steer(&mut h, d, m.config().n_layers);
            let full = m.forward(&full_batch(), &mut h).unwrap();
            let mut h = Hooks::new();
            steer(&mut h, d, m.config().n_layers);
            let layers = 0..m.config().n_layers;
            let (prefix, _) = m.shared_prefix(&PREFIX, layers, 1, None, &mut h).unwrap();
            assert_eq!((prefix.len(), prefix.rows()), (4, 1));
            let own = m
                .forward_pass(&own_batch(), &shared(&prefix, &[0, 0, 0]), &mut h)
                .unwrap();
            eprintln!("{name} chunk {chunk:?}");
            assert_same_reads(&full, &own);
            // Hidden states of each row's own tokens.
            for (r, (c, _)) in continuations().iter().enumerate() {
                let (hf, ho) = (
                    last_hidden(&full, r, c.len()),
                    last_hidden(&own, r, c.len()),
                );
                assert!(max_abs_diff(&hf, &ho) < 1e-4, "row {r} hidden");
            }
        }
    }
}

/// The sweep's pattern: unsteered lower blocks shared by all rows, then one prefix row
/// per steering strength for the upper blocks, and every (strength, item) row resuming
/// from its item's residual with its strength's prefix.
#[test]
fn per_row_steered_prefix_resumes_like_whole_sequences() {
    let m = tiny_llama(23);
    let (d, n_layers) = (m.config().hidden_size, m.config().n_layers);
    let resume = 2;
    let v = vector(d, 9);
    let alphas = [-2.0f32, 0.0, 1.5];
    let items = own_batch();
    let n = items.len();
    let per_row = |rows: &[usize]| -> Tensor {
        let data: Vec<f32> = rows
            .iter()
            .flat_map(|&k| {
                v.to_vec1::<f32>()
                    .unwrap()
                    .into_iter()
                    .map(move |x| x * alphas[k])
            })
            .collect();
        Tensor::from_vec(data, (rows.len(), d), v.device()).unwrap()
    };
    let add_at = |h: &mut Hooks, rows: &[usize]| {
        h.write(
            hp(resume, Site::ResidPre),
            Intervention::Add {
                vector: per_row(rows),
                alpha: 1.0,
            },
            Positions::All,
        )
    };
    // Rows: kind-major, item-minor.
    let kinds: Vec<usize> = (0..alphas.len())
        .flat_map(|k| std::iter::repeat_n(k, n))
        .collect();
    let items_of: Vec<usize> = (0..alphas.len()).flat_map(|_| 0..n).collect();

    let full_rows: Vec<Sequence> = items_of.iter().map(|&i| full_batch()[i].clone()).collect();
    let mut h = Hooks::new();
    add_at(&mut h, &kinds);
    let full = m.forward(&full_rows, &mut h).unwrap();

    let (lower, resid_p) = m
        .shared_prefix(&PREFIX, 0..resume, 1, None, &mut Hooks::new())
        .unwrap();
    let rep = resid_p
        .broadcast_as((alphas.len(), PREFIX.len(), d))
        .unwrap()
        .contiguous()
        .unwrap();
    let mut h = Hooks::new();
    add_at(&mut h, &[0, 1, 2]);
    let (upper, _) = m
        .shared_prefix(&PREFIX, resume..n_layers, alphas.len(), Some(&rep), &mut h)
        .unwrap();
    let resid = m
        .forward_prefix_shared(&items, resume, &lower, &vec![0; n], &mut Hooks::new())
        .unwrap();
    let ix = Tensor::from_vec(
        items_of.iter().map(|&i| i as u32).collect::<Vec<_>>(),
        items_of.len(),
        resid.device(),
    )
    .unwrap();
    let rows: Vec<Sequence> = items_of.iter().map(|&i| items[i].clone()).collect();
    let mut h = Hooks::new();
    add_at(&mut h, &kinds);
    let rep = resid.index_select(&ix, 0).unwrap();
    let pass = Pass {
        from: Some((resume, &rep)),
        ..shared(&upper, &kinds)
    };
    let own = m.forward_pass(&rows, &pass, &mut h).unwrap();
    assert_same_reads(&full, &own);
}

#[test]
fn shared_prefix_misuse_is_an_input_error() {
    let m = tiny_llama(24);
    let n_layers = m.config().n_layers;
    let mut h = Hooks::new();
    let (lower, resid) = m.shared_prefix(&PREFIX, 0..2, 2, None, &mut h).unwrap();
    let items = own_batch();
    let err = |r: steerbench_model::Result<ForwardOutput>| r.expect_err("an error").to_string();
    // Row map of the wrong length, a row the prefix lacks, blocks it does not hold.
    let e = err(m.forward_pass(&items, &shared(&lower, &[0, 0]), &mut h));
    assert!(e.contains("2 row indices for a batch of 3"), "{e}");
    assert!(m
        .forward_prefix_shared(&items, 2, &lower, &[0, 2, 0], &mut h)
        .unwrap_err()
        .to_string()
        .contains("row 2 out of range"));
    let e = err(m.forward_pass(&items, &shared(&lower, &[0, 1, 0]), &mut h));
    assert!(e.contains("holds blocks 0..2"), "{e}");
    // Starting above block 0 needs the residual, of the right shape.
    assert!(m
        .shared_prefix(&PREFIX, 2..n_layers, 1, None, &mut h)
        .is_err());
    let bad = resid.narrow(1, 0, 2).unwrap();
    assert!(m
        .shared_prefix(&PREFIX, 2..n_layers, 2, Some(&bad), &mut h)
        .is_err());
    assert!(m.shared_prefix(&[], 0..2, 1, None, &mut h).is_err());
    assert!(m.shared_prefix(&PREFIX, 0..9, 1, None, &mut h).is_err());
}
