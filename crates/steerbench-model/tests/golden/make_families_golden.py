#!/usr/bin/env python3
"""Tiny random-weight models of every rotary family with every quirk switched on, and
transformers reference outputs, for tests/parity_families.rs.

Run from anywhere:  python3 crates/steerbench-model/tests/golden/make_families_golden.py
Needs torch, transformers (>= 5), safetensors (PyPI; CPU is enough, ~20 s).
Deterministic: fixed seeds.

For each model `<name>` it writes `families/<name>/` (config.json + model.safetensors,
a Hugging Face directory our loader reads) and `families/<name>.golden.safetensors` in
the layout make_golden.py documents: per case `<case>.input_ids` (b, t) left-padded,
`<case>.attention_mask`, `<case>.logits` (b, t, vocab), `<case>.hidden`
(n_layers + 1, b, t, d), and `generate.*`: the first two batch rows (left-padded) and the
GEN_TOKENS tokens transformers' greedy `generate` adds to them. Models are kept small (< 200 KB each) so they are committed.

Each model is also written as `families/<name>.gguf` the way llama.cpp's converter
writes it (the `gguf` package's tensor names per architecture, Q/K rows permuted for
`llama`, Gemma norm weights stored + 1, metadata keys per architecture), f32, for
tests/gguf_families.rs. What llama.cpp does not carry is lost there, as in real GGUF
files: Mistral's and Qwen's sliding windows, Gemma 2/3's query_pre_attn_scalar (llama.cpp
scales by head_dim^-1/2 except on the 27B models). qwen2 and gemma3 are also written with
Q8_0 matrices (`<name>.q8_0.gguf`) for the quantized load.

Quirks exercised, per family:
  mistral: sliding window (5) shorter than the test sequences, GQA, untied head.
  qwen2:   bias on q/k/v only, sliding window on layers >= max_window_layers, untied.
  qwen3:   per-head q/k RMSNorm, attention bias (q/k/v and o), sliding window, tied.
  gemma:   GeGLU gelu-tanh, RMSNorm (1 + w), embeddings x sqrt(hidden), head_dim 12
           != hidden / heads, MQA, tied.
  gemma2:  pre/post attention and feed-forward norms, attention and final soft-caps,
           alternating sliding window, query_pre_attn_scalar != head_dim.
  gemma3:  q/k norms, local/global layers with separate rope bases (global linear rope
           scaling), sliding window on local layers, untied head.
  phi3:    fused qkv_proj and gate_up_proj, sliding window, untied.
  phi3_longrope: LongRoPE with a pretraining context of 12 (the single 12-token case
           uses the short factors, the 20-token batch the long ones; cos/sin scaled).
"""
import os
import shutil

import gguf
import numpy as np
import torch
from safetensors.torch import save_file
from transformers import (Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig,
                          GemmaConfig, GemmaForCausalLM, MistralConfig, MistralForCausalLM,
                          Phi3Config, Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "families")
VOCAB = 128
WINDOW = 5
GEN_TOKENS = 16

# Token-id prompts. "batch" mixes lengths (left-padded); the longest rows are several
# windows long.
PROMPTS = {
    "single": [[1, 17, 100, 45, 3, 99, 120, 7, 64, 125, 33, 12]],
    "batch": [
        [1, 17, 100, 45, 3, 99, 120, 7, 64, 125, 33, 12],
        [1, 5, 6, 7, 8, 9, 10],
        [42],
        [1, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108],
    ],
}

BASE = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
            rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0)


def randomize(model, seed, norm_center):
    """Larger-than-init weights so errors show; norms around `norm_center` (Gemma stores
    offsets from 1, so 0 there)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            elif "norm" in name:
                p.copy_(norm_center + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def pad_left(rows):
    t = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), t, dtype=torch.long)
    mask = torch.zeros(len(rows), t, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, t - len(r):] = torch.tensor(r)
        mask[i, t - len(r):] = 1
    return ids, mask


def golden(model, name):
    out = {}
    for case, rows in PROMPTS.items():
        ids, mask = pad_left(rows)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            o = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True)
        out[f"{case}.input_ids"] = ids
        out[f"{case}.attention_mask"] = mask
        out[f"{case}.logits"] = o.logits.float().contiguous()
        out[f"{case}.hidden"] = torch.stack(o.hidden_states).float().contiguous()
    # Greedy generation through transformers' KV cache, well past the sliding window
    # (LongRoPE is left out: transformers recomputes the cache when a sequence crosses
    # the pretraining context, which our runtime does not).
    if not name.endswith("longrope"):
        ids, mask = pad_left(PROMPTS["batch"][:2])
        model.generation_config.eos_token_id = None
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=GEN_TOKENS,
                                 do_sample=False, pad_token_id=0)
        out["generate.input_ids"] = ids
        out["generate.attention_mask"] = mask
        out["generate.new_tokens"] = gen[:, ids.shape[1]:].contiguous()
    save_file(out, os.path.join(HERE, f"{name}.golden.safetensors"))


def llama_cpp_permute(w, n_head):
    """convert_hf_to_gguf.py's Q/K row permutation (its interleaved rope layout)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# HF model_type -> (GGUF architecture, Q/K rows permuted, norm weights shifted by).
GGUF_ARCH = {
    "mistral": (gguf.MODEL_ARCH.LLAMA, True, 0.0),
    "qwen2": (gguf.MODEL_ARCH.QWEN2, False, 0.0),
    "qwen3": (gguf.MODEL_ARCH.QWEN3, False, 0.0),
    "gemma": (gguf.MODEL_ARCH.GEMMA, False, 1.0),
    "gemma2": (gguf.MODEL_ARCH.GEMMA2, False, 1.0),
    "gemma3_text": (gguf.MODEL_ARCH.GEMMA3, False, 1.0),
    "phi3": (gguf.MODEL_ARCH.PHI3, False, 0.0),
}


def write_gguf(model, name, q8=False):
    """f32, or with `q8` every matrix whose rows split into 32-blocks as Q8_0 (norms and
    the rest stay f32, as llama.cpp's quantizer leaves them)."""
    c = model.config
    arch, permute, shift = GGUF_ARCH[c.model_type]
    path = os.path.join(HERE, f"{name}.q8_0.gguf" if q8 else f"{name}.gguf")
    w = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[arch])
    head_dim = c.head_dim
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    rope = c.rope_parameters.get("full_attention", c.rope_parameters)
    w.add_rope_freq_base(rope["rope_theta"])
    if c.model_type.startswith("gemma"):
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    else:
        w.add_rope_dimension_count(head_dim)
    if c.model_type == "gemma2":
        w.add_attn_logit_softcapping(c.attn_logit_softcapping)
        w.add_final_logit_softcapping(c.final_logit_softcapping)
        w.add_sliding_window(c.sliding_window)
    if c.model_type == "gemma3_text":
        w.add_sliding_window(c.sliding_window)
        w.add_sliding_window_pattern([t == "sliding_attention" for t in c.layer_types])
        if rope.get("rope_type") == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(rope["factor"])
    if c.model_type == "phi3":
        w.add_sliding_window(c.sliding_window or 0)
        w.add_rope_scaling_orig_ctx_len(c.rope_parameters.get("original_max_position_embeddings",
                                                              c.max_position_embeddings))
        if c.rope_parameters.get("rope_type") == "longrope":
            orig = c.rope_parameters["original_max_position_embeddings"]
            scale = c.max_position_embeddings / orig
            w.add_rope_scaling_attn_factors(
                (1 + np.log(scale) / np.log(orig)) ** 0.5 if scale > 1.0 else 1.0)
            w.add_tensor("rope_factors_long.weight",
                         np.array(c.rope_parameters["long_factor"], dtype=np.float32))
            w.add_tensor("rope_factors_short.weight",
                         np.array(c.rope_parameters["short_factor"], dtype=np.float32))
    names = gguf.get_tensor_name_map(arch, c.num_hidden_layers)
    for hf, t in model.state_dict().items():
        if hf == "lm_head.weight" and c.tie_word_embeddings:
            continue
        new = names.get_name(hf, try_suffixes=(".weight", ".bias"))
        assert new is not None, hf
        data = t.float().numpy().copy()
        if permute and ".q_proj." in hf:
            data = llama_cpp_permute(data, c.num_attention_heads)
        if permute and ".k_proj." in hf:
            data = llama_cpp_permute(data, c.num_key_value_heads)
        if shift and hf.endswith("norm.weight"):
            data = data + np.float32(shift)
        if q8 and data.ndim == 2 and data.shape[1] % 32 == 0:
            qt = gguf.GGMLQuantizationType.Q8_0
            w.add_tensor(new, gguf.quants.quantize(data, qt), raw_dtype=qt)
        else:
            w.add_tensor(new, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def build(name, seed, config_cls, model_cls, norm_center=1.0, **cfg):
    torch.manual_seed(seed)
    kw = dict(BASE)
    kw.update(cfg)
    config = config_cls(**kw)
    config._attn_implementation = "eager"
    model = model_cls(config).eval()
    randomize(model, seed, norm_center)
    if model.config.tie_word_embeddings:
        model.tie_weights()
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True)
    p = os.path.join(d, "generation_config.json")
    if os.path.exists(p):
        os.remove(p)
    golden(model, name)
    write_gguf(model, name)
    if name in ("qwen2", "gemma3"):
        write_gguf(model, name, q8=True)


def main():
    torch.set_num_threads(2)
    os.makedirs(HERE, exist_ok=True)
    build("mistral", 10, MistralConfig, MistralForCausalLM, sliding_window=WINDOW,
          tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    build("qwen2", 11, Qwen2Config, Qwen2ForCausalLM, use_sliding_window=True, sliding_window=WINDOW,
          max_window_layers=1, tie_word_embeddings=False,
          rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    build("qwen3", 12, Qwen3Config, Qwen3ForCausalLM, attention_bias=True, use_sliding_window=True,
          sliding_window=WINDOW, max_window_layers=1, tie_word_embeddings=True)
    build("gemma", 13, GemmaConfig, GemmaForCausalLM, norm_center=0.0, head_dim=12,
          num_key_value_heads=1, hidden_act="gelu_pytorch_tanh")
    build("gemma2", 14, Gemma2Config, Gemma2ForCausalLM, norm_center=0.0, sliding_window=WINDOW,
          attn_logit_softcapping=2.0, final_logit_softcapping=3.0, query_pre_attn_scalar=20,
          head_dim=12)
    build("gemma3", 15, Gemma3TextConfig, Gemma3ForCausalLM, norm_center=0.0, sliding_window=WINDOW,
          layer_types=["sliding_attention", "full_attention", "sliding_attention"],
          query_pre_attn_scalar=10, tie_word_embeddings=False,
          rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
                           "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})
    build("phi3", 16, Phi3Config, Phi3ForCausalLM, sliding_window=WINDOW, tie_word_embeddings=False,
          original_max_position_embeddings=64)
    build("phi3_longrope", 17, Phi3Config, Phi3ForCausalLM, tie_word_embeddings=False,
          original_max_position_embeddings=12,
          rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                           "short_factor": [1.0, 1.3, 2.1, 3.4], "long_factor": [1.1, 2.5, 4.0, 7.5]})
    for root, _, files in os.walk(HERE):
        for f in sorted(files):
            p = os.path.join(root, f)
            print(f"{os.path.relpath(p, HERE)}: {os.path.getsize(p) / 1e3:.0f} KB")


if __name__ == "__main__":
    main()
