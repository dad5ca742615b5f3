//! A tiny random-weight Llama built in memory (3 layers, 4 heads over 2 KV heads, d = 16).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use steerbench_model::{Model, ModelConfig};

/// The model and its weights by Hugging Face name (for checks against the raw matrices).
pub fn tiny_llama_with_weights(seed: u64) -> (Model, HashMap<String, Tensor>) {
    let cfg = ModelConfig::from_hf_config(&serde_json::json!({
        "model_type": "llama", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 50, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": true
    }))
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut map = HashMap::new();
    let mut put = |name: String, shape: &[usize], center: f32| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| center + 0.3 * rng.gen_range(-1.0f32..1.0))
            .collect();
        map.insert(name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap());
    };
    put("model.embed_tokens.weight".into(), &[50, 16], 0.0);
    for l in 0..3 {
        let p = format!("model.layers.{l}");
        put(format!("{p}.input_layernorm.weight"), &[16], 1.0);
        put(format!("{p}.post_attention_layernorm.weight"), &[16], 1.0);
        put(format!("{p}.self_attn.q_proj.weight"), &[16, 16], 0.0);
        put(format!("{p}.self_attn.k_proj.weight"), &[8, 16], 0.0);
        put(format!("{p}.self_attn.v_proj.weight"), &[8, 16], 0.0);
        put(format!("{p}.self_attn.o_proj.weight"), &[16, 16], 0.0);
        put(format!("{p}.mlp.gate_proj.weight"), &[32, 16], 0.0);
        put(format!("{p}.mlp.up_proj.weight"), &[32, 16], 0.0);
        put(format!("{p}.mlp.down_proj.weight"), &[16, 32], 0.0);
    }
    put("model.norm.weight".into(), &[16], 1.0);
    let model = Model::new(
        cfg,
        VarBuilder::from_tensors(map.clone(), DType::F32, &Device::Cpu),
    )
    .unwrap();
    (model, map)
}
