//! Quantized GGUF tensors under HF names: the Q4_1/Q8_0 blocks, with Q/K rows moved as whole
//! quantized rows, dequantize to exactly the f32 tensors the f32 loader produces.
//! Uses the cached SmolLM2 GGUF; skips with a note otherwise.

use steerbench_model::gguf::GgufFile;
use steerbench_model::{lookup, steerbench_home, Device};

#[test]
fn quantized_tensors_match_the_dequantized_loader() {
    let entry = lookup("smollm2-135m-instruct").unwrap();
    let Some(path) = entry.cached(&steerbench_home().unwrap()) else {
        eprintln!("NOTE: skipping: SmolLM2 is not cached");
        return;
    };
    let f = GgufFile::open(path).unwrap();
    let dev = Device::Cpu;
    let q = f.hf_qtensors(&dev).unwrap();
    let full = f.hf_tensors(&dev).unwrap();
    assert_eq!(q.len(), full.len());
    for name in [
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.7.self_attn.q_proj.weight",
        "model.layers.29.self_attn.k_proj.weight",
        "model.layers.3.mlp.down_proj.weight",
        "model.embed_tokens.weight",
    ] {
        let a = q[name].dequantize(&dev).unwrap();
        let d: f32 = (a - &full[name])
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(d, 0.0, "{name}");
    }
}
