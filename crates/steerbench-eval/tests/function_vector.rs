//! Function-vector measurements on a tiny random Llama, checked against direct
//! computations: captured head outputs, one plain patched forward per head, and the
//! output projection's weights.

mod common;

use candle_core::D;
use steerbench_eval::function_vector::{head_contributions, indirect_effects, mean_head_outputs};
use steerbench_model::{HookPoint, Hooks, Intervention, Positions, Sequence, Site};
use steerbench_steering::methods::function_vector::{project_head, HeadId};
use steerbench_steering::Matrix;

fn prompts() -> Vec<Sequence> {
    vec![
        Sequence::prompt(vec![1, 5, 9, 14, 22, 3]),
        Sequence::prompt(vec![1, 30, 31]),
        Sequence::prompt(vec![2, 40, 41, 42, 43, 44, 45]),
    ]
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn mean_head_outputs_average_the_last_token_of_each_prompt() {
    let (model, _) = common::tiny_llama_with_weights(7);
    let means = mean_head_outputs(&model, &prompts(), &[0, 2], 2, |_| {}).unwrap();
    assert_eq!(means.len(), 2 * 4);
    // Direct: each prompt alone, HeadOut at layer 2, last token, head 3.
    let mut acc = vec![0f32; 4];
    for p in prompts() {
        let mut hooks = Hooks::new();
        hooks.capture(HookPoint::new(2, Site::HeadOut));
        model.forward(std::slice::from_ref(&p), &mut hooks).unwrap();
        let h = hooks.take(HookPoint::new(2, Site::HeadOut)).unwrap(); // (1, t, nh, hd)
        let t = h.dims()[1];
        let v = h.get(0).unwrap().get(t - 1).unwrap().get(3).unwrap();
        for (a, x) in acc.iter_mut().zip(v.to_vec1::<f32>().unwrap()) {
            *a += x / 3.0;
        }
    }
    assert!(max_diff(&means[&HeadId { layer: 2, head: 3 }], &acc) < 1e-5);
}

#[test]
fn indirect_effects_equal_one_patched_forward_per_head() {
    let (model, _) = common::tiny_llama_with_weights(7);
    let means = mean_head_outputs(&model, &prompts(), &[0, 1, 2], 3, |_| {}).unwrap();
    let corrupted = vec![
        (Sequence::prompt(vec![3, 8, 13, 21, 34]), 11u32),
        (Sequence::prompt(vec![4, 6]), 29u32),
    ];
    let (heads, effects) = indirect_effects(&model, &corrupted, &means, &[1, 2], |_| {}).unwrap();
    assert_eq!(heads.len(), 8);
    assert_eq!((effects.rows, effects.cols), (2, 8));
    let prob = |seq: &Sequence, target: u32, hooks: &mut Hooks| -> f32 {
        let out = model.forward(std::slice::from_ref(seq), hooks).unwrap();
        let p = candle_nn::ops::softmax(&out.last_logits().unwrap(), D::Minus1).unwrap();
        p.get(0)
            .unwrap()
            .get(target as usize)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let mut moved = 0;
    for (r, (seq, target)) in corrupted.iter().enumerate() {
        let base = prob(seq, *target, &mut Hooks::new());
        for (c, h) in heads.iter().enumerate() {
            let mut hooks = Hooks::new();
            let value =
                candle_core::Tensor::new(means[h].as_slice(), &candle_core::Device::Cpu).unwrap();
            hooks.write(
                HookPoint::new(h.layer, Site::HeadOut),
                Intervention::PatchHead {
                    head: h.head,
                    value,
                },
                Positions::Last,
            );
            let direct = prob(seq, *target, &mut hooks) - base;
            let got = effects.row(r)[c];
            assert!((got - direct).abs() < 1e-5, "{h:?}: {got} vs {direct}");
            moved += (direct.abs() > 1e-7) as usize;
        }
    }
    assert!(moved > 0, "patching must change something on this model");
}

#[test]
fn head_contributions_are_the_output_projection_of_the_mean() {
    let (model, weights) = common::tiny_llama_with_weights(7);
    let means = mean_head_outputs(&model, &prompts(), &[0, 2], 3, |_| {}).unwrap();
    let heads = [
        HeadId { layer: 2, head: 1 },
        HeadId { layer: 0, head: 3 },
        HeadId { layer: 2, head: 0 },
    ];
    let got = head_contributions(&model, &heads, &means, 1).unwrap();
    for h in heads {
        let w = &weights[&format!("model.layers.{}.self_attn.o_proj.weight", h.layer)];
        let rows: Vec<Vec<f32>> = w.to_vec2::<f32>().unwrap();
        let o_proj = Matrix::from_rows(&rows).unwrap();
        let want = project_head(&o_proj, h.head, &means[&h]).unwrap();
        assert!(max_diff(&got[&h], &want) < 1e-5, "{h:?}");
    }
}

#[test]
fn missing_head_means_are_errors() {
    let (model, _) = common::tiny_llama_with_weights(7);
    let means = mean_head_outputs(&model, &prompts(), &[0], 3, |_| {}).unwrap();
    let corrupted = vec![(Sequence::prompt(vec![3, 8]), 11u32)];
    assert!(indirect_effects(&model, &corrupted, &means, &[1], |_| {}).is_err());
    assert!(head_contributions(&model, &[HeadId { layer: 1, head: 0 }], &means, 1).is_err());
    assert!(mean_head_outputs(&model, &[], &[0], 3, |_| {}).is_err());
}
