//! Inputs the model must refuse before allocating, and non-finite results it must not
//! return silently (issue 17).

mod common;

use common::*;
use steerbench_model::{
    EosOnly, GenerateOptions, HookPoint, Hooks, Intervention, Model, Positions, Sequence, Site,
};

fn short_context_llama() -> Model {
    let mut cfg = llama_config();
    cfg.max_position_embeddings = 16;
    let w = llama_weights(&cfg, 3);
    Model::new(cfg, w.vb()).unwrap()
}

#[test]
fn a_sequence_longer_than_the_context_is_refused_in_every_entry_point() {
    let m = short_context_llama();
    let fits = Sequence::prompt((1..=16).collect());
    assert!(m.forward(&[fits], &mut Hooks::new()).is_ok());
    let long = Sequence::prompt((1..=17).collect());
    let e = m
        .forward(&[long], &mut Hooks::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a sequence of 17 tokens is longer than the model's context of 16 tokens"),
        "{e}"
    );
    let e = m
        .shared_prefix(
            &(1..=20).collect::<Vec<u32>>(),
            0..3,
            1,
            None,
            &mut Hooks::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("20 tokens"), "{e}");
    // Generation counts the tokens it may add.
    let opts = GenerateOptions {
        max_new_tokens: 8,
        ..Default::default()
    };
    let e = m
        .generate(
            &EosOnly(vec![]),
            &[(1..=10).collect()],
            &opts,
            &Hooks::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("a sequence of 18 tokens"), "{e}");
}

#[test]
fn a_pass_larger_than_memory_is_refused_before_allocation() {
    let m = tiny_llama(1);
    // 10^7 rows of 2,048 tokens: petabytes; refused by the estimate, nothing allocated.
    let e = m.admit(10_000_000, 2048).unwrap_err().to_string();
    assert!(e.contains("GiB of memory available"), "{e}");
    assert!(m.admit(4, 32).is_ok());
    // The estimate grows with rows and (quadratically, through attention) with length.
    assert!(m.pass_bytes(2, 64) == 2 * m.pass_bytes(1, 64));
    assert!(m.pass_bytes(1, 128) > 2 * m.pass_bytes(1, 64));
}

#[test]
fn nan_weights_and_overflowing_steering_are_errors_not_nan_outputs() {
    let cfg = llama_config();
    let mut w = llama_weights(&cfg, 5);
    w.rand(
        "model.layers.1.mlp.up_proj.weight",
        &[cfg.intermediate_size, cfg.hidden_size],
        f32::NAN,
        0.0,
    );
    let m = Model::new(cfg, w.vb()).unwrap();
    let e = m
        .forward(&[Sequence::prompt(vec![1, 2, 3])], &mut Hooks::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-finite final hidden states"), "{e}");

    let m = tiny_llama(5);
    let mut hooks = Hooks::new();
    hooks.write(
        HookPoint::new(0, Site::ResidPost),
        Intervention::Add {
            vector: vector(32, 1),
            alpha: f32::INFINITY,
        },
        Positions::All,
    );
    let e = m
        .forward(&[Sequence::prompt(vec![1, 2, 3])], &mut hooks)
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-finite"), "{e}");
}
