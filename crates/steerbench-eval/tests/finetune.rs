//! LoRA fine-tuning baselines (SFT, DPO) on a tiny random Llama: the DPO loss and its
//! gradient against a hand computation, training on planted preferences, determinism,
//! early stopping, and clear errors for impossible settings.

mod common;

use candle_core::{Device, Tensor, Var};
use steerbench_eval::finetune::{
    check_config, dpo_loss, train_lora, LoraConfig, LoraLayers, Objective, PrefPair,
};
use steerbench_model::Proj;

#[test]
fn dpo_loss_and_gradient_match_a_hand_computation() {
    let dev = Device::Cpu;
    // Two pairs: policy chosen/rejected summed log-probs, reference ones.
    let pc = Var::new(&[-3.0f32, -5.0], &dev).unwrap();
    let pr = Var::new(&[-4.0f32, -4.5], &dev).unwrap();
    let rc = Tensor::new(&[-3.5f32, -4.0], &dev).unwrap();
    let rr = Tensor::new(&[-3.8f32, -4.2], &dev).unwrap();
    let beta = 0.5;
    let (loss, z) = dpo_loss(pc.as_tensor(), pr.as_tensor(), &rc, &rr, beta).unwrap();
    // z_i = β ((pc − rc) − (pr − rr)): 0.5 (0.5 + 0.2) = 0.35; 0.5 (−1.0 + 0.3) = −0.35.
    let zs: Vec<f32> = z.to_vec1().unwrap();
    assert!(
        (zs[0] - 0.35).abs() < 1e-6 && (zs[1] + 0.35).abs() < 1e-6,
        "{zs:?}"
    );
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let want = -(sig(0.35).ln() + sig(-0.35).ln()) / 2.0;
    let got = loss.to_scalar::<f32>().unwrap() as f64;
    assert!((got - want).abs() < 1e-6, "loss {got} vs {want}");
    // dL/dpc_i = −β σ(−z_i) / n, dL/dpr_i = +β σ(−z_i) / n.
    let g = loss.backward().unwrap();
    let gc: Vec<f32> = g.get(pc.as_tensor()).unwrap().to_vec1().unwrap();
    let gr: Vec<f32> = g.get(pr.as_tensor()).unwrap().to_vec1().unwrap();
    for (i, z) in [0.35f64, -0.35].into_iter().enumerate() {
        let d = beta * sig(-z) / 2.0;
        assert!(
            (gc[i] as f64 + d).abs() < 1e-6,
            "dL/dpc[{i}] {} vs {}",
            gc[i],
            -d
        );
        assert!(
            (gr[i] as f64 - d).abs() < 1e-6,
            "dL/dpr[{i}] {} vs {d}",
            gr[i]
        );
    }
    // Large margins stay finite (softplus, not log of a rounded sigmoid).
    let big = Tensor::new(&[200.0f32], &dev).unwrap();
    let zero = Tensor::new(&[0.0f32], &dev).unwrap();
    let (l, _) = dpo_loss(&zero, &big, &zero, &zero, 1.0).unwrap();
    assert!((l.to_scalar::<f32>().unwrap() - 200.0).abs() < 1e-3);
}

/// Prompts of random tokens ending in a marker (20 or 21); the marker says which of two
/// answer tokens (30, 31) is preferred. Learnable, and about 50/50 for the random model.
fn planted(n: usize, seed: u64) -> Vec<PrefPair> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.gen_range(3..7);
            let mut prompt: Vec<u32> = (0..len).map(|_| rng.gen_range(1..19)).collect();
            let marker = rng.gen_range(0..2u32);
            prompt.push(20 + marker);
            let (c, r) = if marker == 0 { (30, 31) } else { (31, 30) };
            PrefPair {
                prompt,
                chosen: vec![c, 40],
                rejected: vec![r, 40],
            }
        })
        .collect()
}

fn cfg(objective: Objective) -> LoraConfig {
    LoraConfig {
        objective,
        rank: 4,
        alpha: 8.0,
        modules: Proj::SPLIT.to_vec(),
        layers: LoraLayers::All,
        lr: 2e-2,
        epochs: 6,
        batch_size: 8,
        seed: 3,
        ..LoraConfig::default()
    }
}

#[test]
fn dpo_on_planted_preferences_learns_them_and_reruns_identically() {
    let (model, _) = common::tiny_llama_with_weights(11);
    let train = planted(64, 1);
    let val = planted(32, 2);
    let c = cfg(Objective::Dpo { beta: 0.5 });
    let mut steps = 0;
    let t = train_lora(&model, &train, &val, &c, |_, _| steps += 1).unwrap();
    let vals: Vec<_> = t.log.iter().filter(|r| r.split == "val").collect();
    let (first, last) = (vals[0], vals[vals.len() - 1]);
    eprintln!(
        "DPO val: accuracy {:.2} -> {:.2}, loss {:.3} -> {:.3}, margin {:.2} -> {:.2}",
        first.pref_accuracy,
        last.pref_accuracy,
        first.loss,
        last.loss,
        first.reward_margin,
        last.reward_margin
    );
    assert!(
        (0.3..=0.7).contains(&first.pref_accuracy),
        "the base model prefers at chance: {}",
        first.pref_accuracy
    );
    assert!(last.pref_accuracy > 0.9, "learned: {}", last.pref_accuracy);
    assert!(last.loss < first.loss && last.reward_margin > 0.5);
    assert_eq!(steps, t.steps);
    assert_eq!(t.steps, 6 * 8);
    assert!(t.backward_tokens > 0 && t.forward_tokens > t.backward_tokens);
    assert_eq!(
        t.adapter.n_params(),
        3 * 4 * (16 + 16 + 16 + 8 + 16 + 8 + 16 + 16 + 16 + 32 + 16 + 32 + 32 + 16)
    );
    // Same seed, same machine: the same adapter, bit for bit.
    let again = train_lora(&model, &train, &val, &c, |_, _| {}).unwrap();
    for (k, p) in &t.adapter.pairs {
        let q = &again.adapter.pairs[k];
        let same = |x: &Tensor, y: &Tensor| {
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                == y.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        assert!(
            same(&p.a, &q.a) && same(&p.b, &q.b),
            "{k:?} differs on a rerun"
        );
    }
}

#[test]
fn sft_on_the_chosen_side_raises_its_likelihood_and_the_preference() {
    let (model, _) = common::tiny_llama_with_weights(11);
    let train = planted(64, 1);
    let val = planted(32, 2);
    let t = train_lora(&model, &train, &val, &cfg(Objective::Sft), |_, _| {}).unwrap();
    let train_rows: Vec<_> = t.log.iter().filter(|r| r.split == "train").collect();
    // SFT train steps never run the rejected answers: no margins there.
    assert!(train_rows.iter().all(|r| r.pref_accuracy.is_nan()));
    let vals: Vec<_> = t.log.iter().filter(|r| r.split == "val").collect();
    let (first, last) = (vals[0], vals[vals.len() - 1]);
    eprintln!(
        "SFT val: loss {:.3} -> {:.3}, accuracy {:.2} -> {:.2}",
        first.loss, last.loss, first.pref_accuracy, last.pref_accuracy
    );
    assert!(
        last.loss < 0.5 * first.loss,
        "{} -> {}",
        first.loss,
        last.loss
    );
    assert!(last.pref_accuracy > 0.9);
}

#[test]
fn early_stopping_keeps_the_best_epoch() {
    let (model, _) = common::tiny_llama_with_weights(11);
    let train = planted(16, 1);
    let val = planted(16, 2);
    let c = LoraConfig {
        epochs: 30,
        lr: 0.2,
        patience: Some(1),
        ..cfg(Objective::Dpo { beta: 0.5 })
    };
    let t = train_lora(&model, &train, &val, &c, |_, _| {}).unwrap();
    let vals: Vec<_> = t
        .log
        .iter()
        .filter(|r| r.split == "val" && r.epoch > 0)
        .collect();
    assert_eq!(vals.len(), t.epochs_run);
    if t.epochs_run < 30 {
        // Stopped: the last epoch was no better than the best one.
        let best = vals.iter().map(|r| r.loss).fold(f64::INFINITY, f64::min);
        assert!(vals.last().unwrap().loss >= best);
    }
    // Needs validation pairs.
    let err = train_lora(&model, &train, &[], &c, |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("validation"), "{err}");
}

#[test]
fn impossible_settings_are_refused_before_training() {
    let (model, _) = common::tiny_llama_with_weights(11);
    let msg = |c: LoraConfig| check_config(&model, &c).unwrap_err().to_string();
    assert!(msg(LoraConfig {
        rank: 0,
        ..cfg(Objective::Sft)
    })
    .contains("rank"));
    assert!(msg(LoraConfig {
        modules: vec![Proj::Qkv],
        ..cfg(Objective::Sft)
    })
    .contains("`qkv`"));
    assert!(msg(LoraConfig {
        layers: LoraLayers::List(vec![7]),
        ..cfg(Objective::Sft)
    })
    .contains("layer 7"));
    assert!(msg(cfg(Objective::Dpo { beta: 0.0 })).contains("beta"));
    let err = train_lora(&model, &[], &[], &cfg(Objective::Sft), |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("at least one pair"), "{err}");
    let empty = vec![PrefPair {
        prompt: vec![1, 2],
        chosen: vec![],
        rejected: vec![3],
    }];
    let err = train_lora(
        &model,
        &empty,
        &[],
        &cfg(Objective::Dpo { beta: 0.1 }),
        |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}
