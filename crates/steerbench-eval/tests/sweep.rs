//! The sweep's shortcuts (shared prefix, strengths batched as rows) must give exactly
//! what one plain steered forward per strength gives.

mod common;

use candle_core::Device;
use steerbench_eval::capture::{capture, ReadAt};
use steerbench_eval::steer::Steer;
use steerbench_eval::sweep::{read_values, sweep, Item, Read, SweepOptions, Value};
use steerbench_model::{HookPoint, Hooks, Model, Positions, Sequence, Site};

fn pts(layers: &[usize]) -> Vec<HookPoint> {
    layers
        .iter()
        .map(|&l| HookPoint::new(l, Site::ResidPost))
        .collect()
}
use steerbench_steering::methods::affine::AffineMap;
use steerbench_steering::Matrix;

fn tiny_llama() -> Model {
    common::tiny_llama_with_weights(7).0
}

/// Additive steering at `layer` with the 16-wide vector `v(i)`.
fn add_steer(layer: usize, v: impl Fn(usize) -> f32) -> Steer {
    Steer::Add {
        layer,
        vector: (0..16).map(v).collect(),
    }
}

/// Affine steering at `layer`: identity with one matrix entry set, and a constant bias.
fn affine_steer(layer: usize, entry: usize, value: f32, bias: f32) -> Steer {
    let mut m = Matrix::identity(16);
    m.data[entry] = value;
    Steer::Affine {
        layer,
        map: AffineMap::new(m, vec![bias; 16]).unwrap(),
    }
}

fn items() -> Vec<Item> {
    vec![
        Item {
            seq: Sequence::prompt(vec![1, 5, 9, 14, 22, 3]),
            read: Read::NextToken(vec![7, 8]),
        },
        Item {
            seq: Sequence::new(vec![1, 30, 31, 32, 33], 3),
            read: Read::Completion,
        },
        Item {
            seq: Sequence::prompt(vec![2, 40]),
            read: Read::NextDist,
        },
    ]
}

/// One plain forward per (item, alpha) with the steering installed as hooks.
fn naive(
    model: &Model,
    items: &[Item],
    steer: &Steer,
    alphas: &[f32],
    positions: &Positions,
) -> Vec<Vec<Value>> {
    alphas
        .iter()
        .map(|&a| {
            items
                .iter()
                .map(|it| {
                    let mut h = Hooks::new();
                    steer
                        .install(&mut h, a, positions, 3, &Device::Cpu)
                        .unwrap();
                    let out = model
                        .forward(std::slice::from_ref(&it.seq), &mut h)
                        .unwrap();
                    read_values(&out, &[&it.read]).unwrap().remove(0)
                })
                .collect()
        })
        .collect()
}

fn assert_close(a: &[Vec<Value>], b: &[Vec<Value>]) {
    for (ra, rb) in a.iter().zip(b) {
        for (va, vb) in ra.iter().zip(rb) {
            let (x, y) = (va.as_slice(), vb.as_slice());
            assert_eq!(x.len(), y.len());
            for (p, q) in x.iter().zip(y) {
                assert!((p - q).abs() < 1e-4, "{p} vs {q}");
            }
        }
    }
}

#[test]
fn additive_sweep_matches_plain_forwards() {
    let model = tiny_llama();
    let steer = add_steer(1, |i| (i as f32 - 8.0) / 4.0);
    let alphas = [-2.0, 0.0, 1.0, 3.0];
    for positions in [Positions::All, Positions::Last, Positions::Generated] {
        let opts = SweepOptions {
            positions: positions.clone(),
            batch_items: 2,
            max_rows: 5,
            ..SweepOptions::default()
        };
        let fast = sweep(&model, &items(), Some(&steer), &alphas, &opts, |_| {}).unwrap();
        assert_close(&fast, &naive(&model, &items(), &steer, &alphas, &positions));
        // steering changes at least one item's reading
        assert!(
            (0..3).any(|i| fast[0][i] != fast[2][i]),
            "{positions:?} changed nothing"
        );
    }
}

#[test]
fn map_steerings_match_plain_forwards() {
    let model = tiny_llama();
    let mut m = Matrix::identity(16);
    for i in 0..16 {
        m.data[i * 16 + (i + 1) % 16] = 0.5;
    }
    let affine = Steer::Affine {
        layer: 2,
        map: AffineMap::new(m, vec![0.1; 16]).unwrap(),
    };
    let ablate = Steer::Ablate {
        direction: (0..16).map(|i| i as f32).collect(),
    };
    let icv = Steer::Icv {
        vectors: vec![vec![0.5; 16]; 3],
    };
    let alphas = [0.0, 1.0, -1.5];
    for steer in [affine, ablate, icv] {
        let opts = SweepOptions {
            positions: Positions::All,
            batch_items: 3,
            max_rows: 8,
            ..SweepOptions::default()
        };
        let fast = sweep(&model, &items(), Some(&steer), &alphas, &opts, |_| {}).unwrap();
        assert_close(
            &fast,
            &naive(&model, &items(), &steer, &alphas, &Positions::All),
        );
        assert_ne!(fast[0][2], fast[1][2]);
    }
}

#[test]
fn unsteered_sweep_repeats_one_pass_and_rejects_wrong_width() {
    let model = tiny_llama();
    let out = sweep(
        &model,
        &items(),
        None,
        &[0.0, 1.0],
        &SweepOptions::default(),
        |_| {},
    )
    .unwrap();
    assert_eq!(out[0], out[1]);
    let bad = Steer::Add {
        layer: 0,
        vector: vec![1.0; 8],
    };
    let err = sweep(
        &model,
        &items(),
        Some(&bad),
        &[1.0],
        &SweepOptions::default(),
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("hidden size 8"), "{err}");
}

#[test]
fn capture_reads_last_and_completion_mean() {
    let model = tiny_llama();
    let seqs = vec![
        Sequence::new(vec![1, 5, 9, 14], 2),
        Sequence::new(vec![3, 4], 1),
    ];
    let last = capture(&model, &seqs, &pts(&[0, 2]), &ReadAt::Last, 2, |_| {}).unwrap();
    let single = capture(&model, &seqs[1..], &pts(&[0, 2]), &ReadAt::Last, 1, |_| {}).unwrap();
    // left padding in the batch must not change what is read
    for (a, b) in last.vectors[1][1].iter().zip(&single.vectors[0][1]) {
        assert!((a - b).abs() < 1e-4);
    }
    let mean = capture(
        &model,
        &seqs,
        &pts(&[2]),
        &ReadAt::CompletionMean,
        2,
        |_| {},
    )
    .unwrap();
    let idx = capture(
        &model,
        &seqs[..1],
        &pts(&[2]),
        &ReadAt::Indices(vec![2, 3]),
        1,
        |_| {},
    )
    .unwrap();
    for (a, b) in mean.vectors[0][0].iter().zip(&idx.vectors[0][0]) {
        assert!((a - b).abs() < 1e-5);
    }
    assert!(capture(&model, &seqs, &pts(&[3]), &ReadAt::Last, 2, |_| {}).is_err());
    // token norms exclude the first position: 3 + 1 non-first tokens per layer
    assert_eq!(last.token_norms[0].len(), 4);
}

#[test]
fn many_steerings_share_the_prefix_and_match_one_by_one() {
    let model = tiny_llama();
    let a = add_steer(1, |i| (i as f32 - 8.0) / 4.0);
    let b = add_steer(1, |i| ((i * 7 % 5) as f32) / 3.0);
    let c = affine_steer(1, 3, 0.7, 0.2);
    let alphas = [-1.0, 0.0, 2.0];
    let opts = SweepOptions {
        positions: Positions::All,
        batch_items: 2,
        max_rows: 7,
        ..SweepOptions::default()
    };
    let many =
        steerbench_eval::sweep::sweep_many(&model, &items(), &[&a, &b, &c], &alphas, &opts, |_| {})
            .unwrap();
    for (k, s) in [&a, &b, &c].into_iter().enumerate() {
        assert_close(
            &many[k],
            &naive(&model, &items(), s, &alphas, &Positions::All),
        );
    }
}

/// The sweep resumes at block L+1 (or, steering the last block, at L itself) and reads
/// the unsteered model from a zero row; with or without alpha 0 among the strengths and
/// for items chunked out of their given order, it must equal plain forwards.
#[test]
fn additive_sweep_at_first_and_last_block_matches_plain_forwards() {
    let model = tiny_llama();
    let mut items = items();
    items.push(Item {
        seq: Sequence::prompt(vec![4, 8, 15, 16]),
        read: Read::NextToken(vec![1, 2, 3]),
    });
    for layer in [0, 2] {
        let add = add_steer(layer, |i| ((i * 5 % 7) as f32 - 3.0) / 2.0);
        let affine = affine_steer(layer, 17, -0.4, -0.1);
        for alphas in [&[-1.5f32, 2.0][..], &[0.0, -1.0, 0.5][..]] {
            let opts = SweepOptions {
                positions: Positions::All,
                batch_items: 2,
                max_rows: 5,
                ..SweepOptions::default()
            };
            let many = steerbench_eval::sweep::sweep_many(
                &model,
                &items,
                &[&add, &affine],
                alphas,
                &opts,
                |_| {},
            )
            .unwrap();
            for (k, s) in [&add, &affine].into_iter().enumerate() {
                assert_close(&many[k], &naive(&model, &items, s, alphas, &Positions::All));
            }
            let one = sweep(&model, &items, Some(&add), alphas, &opts, |_| {}).unwrap();
            assert_close(&one, &naive(&model, &items, &add, alphas, &Positions::All));
        }
    }
}

/// Items that start with the same tokens (a chat header, a system prompt): with the
/// common prefix run once per steering configuration the sweep must still equal plain
/// whole-sequence forwards, for every kind of steering, position selector and read.
#[test]
fn shared_prefix_sweeps_match_plain_forwards() {
    use steerbench_eval::sweep::{common_prefix, sweep_many, MIN_SHARED_PREFIX};
    let model = tiny_llama();
    let head: Vec<u32> = vec![1, 11, 12, 13, 14, 15, 16, 17, 18, 19];
    let with_head = |own: &[u32], prompt_own: usize, read: Read| Item {
        seq: Sequence::new(
            [head.clone(), own.to_vec()].concat(),
            head.len() + prompt_own,
        ),
        read,
    };
    let items = vec![
        with_head(&[5, 9, 14, 22, 3], 5, Read::NextToken(vec![7, 8])),
        with_head(&[30, 31, 32, 33], 2, Read::Completion),
        with_head(&[40], 1, Read::NextDist),
        with_head(&[41, 42, 43, 44, 45, 46, 47], 4, Read::Completion),
    ];
    assert_eq!(common_prefix(&items), Some(head.clone()));
    // Every item keeps a token of its own before what it reads.
    let mut short = items.clone();
    short.push(with_head(&[], 0, Read::NextToken(vec![1])));
    assert_eq!(common_prefix(&short).map(|p| p.len()), Some(head.len() - 1));
    // ... and stays within every prompt (a next-token item with a completion part).
    let mut partial = items.clone();
    partial.push(Item {
        seq: Sequence::new([head.clone(), vec![3, 4]].concat(), head.len() - 1),
        read: Read::NextToken(vec![1]),
    });
    assert_eq!(
        common_prefix(&partial).map(|p| p.len()),
        Some(head.len() - 1)
    );
    short.push(Item {
        seq: Sequence::prompt(head[..MIN_SHARED_PREFIX - 1].to_vec()),
        read: Read::NextDist,
    });
    assert_eq!(common_prefix(&short), None);

    let add = add_steer(1, |i| (i as f32 - 8.0) / 4.0);
    let add2 = add_steer(1, |i| ((i * 3 % 5) as f32) / 2.0);
    let affine = affine_steer(1, 5, 0.6, 0.1);
    let ablate = Steer::Ablate {
        direction: (0..16).map(|i| i as f32).collect(),
    };
    let icv = Steer::Icv {
        vectors: vec![vec![0.5; 16]; 3],
    };
    let alphas = [-1.5f32, 0.0, 2.0];
    let selectors = [
        Positions::All,
        Positions::Last,
        Positions::Prompt,
        Positions::Generated,
        Positions::Indices(vec![3, 12]),
    ];
    for positions in selectors {
        let opts = SweepOptions {
            positions: positions.clone(),
            batch_items: 3,
            max_rows: 6,
            ..SweepOptions::default()
        };
        let block = sweep_many(
            &model,
            &items,
            &[&add, &add2, &affine],
            &alphas,
            &opts,
            |_| {},
        )
        .unwrap();
        for (k, s) in [&add, &add2, &affine].into_iter().enumerate() {
            assert_close(&block[k], &naive(&model, &items, s, &alphas, &positions));
        }
        let plain = sweep_many(&model, &items, &[&ablate, &icv], &alphas, &opts, |_| {}).unwrap();
        for (k, s) in [&ablate, &icv].into_iter().enumerate() {
            assert_close(&plain[k], &naive(&model, &items, s, &alphas, &positions));
        }
        // Sharing off gives the same values.
        let whole = SweepOptions {
            share_prefix: false,
            ..opts.clone()
        };
        let off = sweep(&model, &items, Some(&add), &alphas, &whole, |_| {}).unwrap();
        assert_close(&off, &block[0]);
    }
    let unsteered = sweep(
        &model,
        &items,
        None,
        &[0.0],
        &SweepOptions::default(),
        |_| {},
    )
    .unwrap();
    assert_close(
        &unsteered,
        &naive(&model, &items, &add, &[0.0], &Positions::All),
    );
}

/// The shared prefix with steering at the first and the last block (the last resumes at
/// the block itself and writes at its output).
#[test]
fn shared_prefix_sweeps_at_first_and_last_block() {
    let model = tiny_llama();
    let head: Vec<u32> = (20..32).collect();
    let items: Vec<Item> = [
        (vec![5u32, 9, 14], 2usize),
        (vec![7, 8], 1),
        (vec![3, 4, 5, 6, 7], 3),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (own, pl))| Item {
        seq: Sequence::new([head.clone(), own].concat(), head.len() + pl),
        read: if i == 1 {
            Read::NextToken(vec![1, 2])
        } else {
            Read::Completion
        },
    })
    .collect();
    for layer in [0, 2] {
        let add = add_steer(layer, |i| ((i * 5 % 7) as f32 - 3.0) / 2.0);
        let affine = affine_steer(layer, 17, -0.4, -0.1);
        let alphas = [0.0f32, -1.0, 0.5];
        let opts = SweepOptions {
            batch_items: 2,
            max_rows: 4,
            ..SweepOptions::default()
        };
        let many = steerbench_eval::sweep::sweep_many(
            &model,
            &items,
            &[&add, &affine],
            &alphas,
            &opts,
            |_| {},
        )
        .unwrap();
        for (k, s) in [&add, &affine].into_iter().enumerate() {
            assert_close(
                &many[k],
                &naive(&model, &items, s, &alphas, &Positions::All),
            );
        }
    }
}

/// A LoRA adapter as a steering: the sweep runs the blocks below its first adapted block
/// once (shared) and the adapted ones per strength; the values equal plain forwards with
/// the adapter on the hooks, and strength 0 is the base model.
#[test]
fn adapter_sweeps_match_plain_forwards_from_any_first_block() {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use steerbench_model::{Adapter, LoraPair, Proj};
    let model = tiny_llama();
    let pair = |rows: usize, cols: usize, phase: f32| {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| 0.3 * ((i as f32) * 0.41 + phase).sin())
            .collect();
        candle_core::Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    };
    for first in [0usize, 1, 2] {
        let mut pairs = BTreeMap::new();
        for l in first..3 {
            pairs.insert(
                (l, Proj::Q),
                LoraPair {
                    a: pair(2, 16, 0.1 + l as f32),
                    b: pair(16, 2, 1.3 + l as f32),
                },
            );
            pairs.insert(
                (l, Proj::Down),
                LoraPair {
                    a: pair(2, 32, 0.7 + l as f32),
                    b: pair(16, 2, 2.1 + l as f32),
                },
            );
        }
        let steer = Steer::Lora {
            adapter: Arc::new(Adapter {
                rank: 2,
                alpha: 4.0,
                pairs,
                dropout: None,
            }),
        };
        let alphas = [0.0, 1.0, -0.5];
        let opts = SweepOptions {
            positions: Positions::All,
            batch_items: 2,
            max_rows: 6,
            ..SweepOptions::default()
        };
        let fast = sweep(&model, &items(), Some(&steer), &alphas, &opts, |_| {}).unwrap();
        assert_close(
            &fast,
            &naive(&model, &items(), &steer, &alphas, &Positions::All),
        );
        let base = sweep(&model, &items(), None, &[0.0], &opts, |_| {}).unwrap();
        assert_close(&fast[..1], &base);
        assert!(
            (0..3).any(|i| fast[0][i] != fast[1][i]),
            "the adapter from block {first} changes nothing"
        );
    }
}
