#!/usr/bin/env python3
"""Generate tiny random-weight HF models and transformers reference outputs.

Run from anywhere:  python3 crates/steerbench-model/tests/golden/make_golden.py
Needs torch, transformers, safetensors (PyPI). Deterministic: fixed seeds.

For each model `<name>` it writes `<name>/` (config.json + safetensors, a Hugging
Face directory our loader reads) and `<name>.golden.safetensors` holding, per case
`<case>`: `<case>.input_ids` (b, t) i64 left-padded, `<case>.attention_mask`,
`<case>.logits` (b, t, vocab) and `<case>.hidden` (n_layers + 1, b, t, d) from
`output_hidden_states` (entry i = input of block i, the last = after final norm).
Position ids are passed explicitly as cumsum(mask) - 1 so padding never shifts them.
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = 256

# Fixed token-id prompts. "batch" mixes lengths, so it is left-padded.
PROMPTS = {
    "single": [[1, 17, 200, 45, 3, 99, 128, 7, 64, 250, 33, 12]],
    "batch": [
        [1, 17, 200, 45, 3, 99, 128, 7, 64, 250, 33, 12],
        [1, 5, 6, 7, 8, 9, 10],
        [42],
        [1, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116,
         117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 130, 131, 132, 133, 134, 135,
         136, 137, 138, 139, 140, 141, 142, 143, 144, 145],
    ],
}


def randomize(model, seed):
    """HF's init (std 0.02) gives near-uniform logits; use larger weights so errors show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
            elif "norm" in name or name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
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
    save_file(out, os.path.join(HERE, f"{name}.golden.safetensors"))  # absolute `name` wins


def save_dir(model, name, **kw):
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True, **kw)
    for extra in ("generation_config.json",):
        p = os.path.join(d, extra)
        if os.path.exists(p):
            os.remove(p)
    return d


def llama(name, seed, shard=False, **cfg):
    torch.manual_seed(seed)
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
                rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    base.update(cfg)
    model = LlamaForCausalLM(LlamaConfig(**base)).eval()
    randomize(model, seed)
    if model.config.tie_word_embeddings:
        model.tie_weights()
    save_dir(model, name, **({"max_shard_size": "150KB"} if shard else {}))
    golden(model, name)


def gpt2(name, seed):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=3, n_head=4, n_positions=64,
                     bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    model = GPT2LMHeadModel(cfg).eval()
    randomize(model, seed)
    model.tie_weights()
    d = save_dir(model, name)
    golden(model, name)
    # The same weights without the `transformer.` prefix (as GPT2Model saves them).
    nd = os.path.join(HERE, name + "_noprefix")
    shutil.rmtree(nd, ignore_errors=True)
    os.makedirs(nd)
    shutil.copy(os.path.join(d, "config.json"), nd)
    sd = {k.removeprefix("transformer."): v.contiguous() for k, v in model.state_dict().items()
          if not k.startswith("lm_head.")}
    save_file(sd, os.path.join(nd, "model.safetensors"), metadata={"format": "pt"})


def external(hf_dir):
    """Golden outputs for an existing HF dir (e.g. SmolLM2 converted from GGUF), written
    to <dir>/golden.golden.safetensors; run `STEERBENCH_PARITY_DIR=<dir> cargo test -p
    steerbench-model --test parity_hf parity_external_dir`."""
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    out = os.path.join(hf_dir, "golden")
    golden(model, out)


def main():
    torch.set_num_threads(2)
    if len(sys.argv) == 3 and sys.argv[1] == "--hf-dir":
        external(sys.argv[2])
        return
    # GQA 4/2, tied embeddings, default rope.
    llama("llama_gqa", 0, tie_word_embeddings=True, rope_theta=10000.0)
    # Attention + MLP bias, untied lm_head, explicit head_dim != hidden/heads, MQA, sharded files.
    llama("llama_bias", 1, shard=True, attention_bias=True, mlp_bias=True, tie_word_embeddings=False,
          head_dim=24, num_key_value_heads=1, rope_theta=500000.0, num_hidden_layers=2)
    # Llama 3 rope scaling (original context 32 so every frequency band is exercised).
    llama("llama3_rope", 2, tie_word_embeddings=True,
          rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 32})
    gpt2("gpt2", 3)
    total = 0
    for root, _, files in os.walk(HERE):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print(f"golden files: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
