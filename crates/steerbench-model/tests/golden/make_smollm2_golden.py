"""Golden outputs of SmolLM2-135M-Instruct (the Q4_1 GGUF) from Hugging Face transformers.

transformers dequantizes the GGUF to f32 and undoes llama.cpp's Q/K permutation itself, so
matching it proves our GGUF loader (names, dequantization, un-permutation) and decoder.

Writes (next to this script):
  smollm2.golden.safetensors  per prompt p (0..2), unbatched:
      p{p}.ids            (t,)        int64 token ids (HF tokenizer)
      p{p}.logits_last    (vocab,)    f32 logits at the last position
      p{p}.resid_post     (L, d)      output of every block at the last position
      p{p}.resid_post_all.{l} (t, d)  output of block l at every position, l in LAYERS
      p{p}.final_hidden   (t, d)      final-normed hidden states
    and the three prompts as one left-padded batch (pad id 2, positions from the mask):
      batch.logits_last   (3, vocab), batch.resid_post_last (3, L, d)
  smollm2_tokens.json  HF token ids for strings and the rendered chat template.

Usage: python3 make_smollm2_golden.py [PATH.gguf]
(default: $STEERBENCH_HOME or ~/.cache/steerbench, models/smollm2-135m-instruct/...)
Needs: torch, transformers, gguf, accelerate, safetensors (PyPI).
"""

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = Path(__file__).resolve().parent
LAYERS = [0, 5, 15, 29]
PROMPTS_TEXT = [
    "The capital of France is",
    "I absolutely loved this movie, it was wonderful and",
]
CHAT = [{"role": "user", "content": "What is 2+2? Answer in one word."}]
TOKENIZER_STRINGS = [
    "Hello world!",
    "  leading spaces and\ttabs\nnewlines\n\n",
    "In 2024, 12345 apples cost $3.50 (approx.)",
    "naïve café — déjà vu 😀 日本語",
    "<|im_start|>user\nhi<|im_end|>",
    "don't won't I'll we've",
    "def f(x):\n    return x**2  # square",
]


def gguf_path():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    home = os.environ.get("STEERBENCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "steerbench")
    return Path(home) / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    path = gguf_path()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    model.eval()

    chat_text = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    texts = PROMPTS_TEXT + [chat_text]
    prompts = [tok(t, add_special_tokens=True)["input_ids"] for t in texts]

    # Capture every block's output with forward hooks (independent of how a transformers
    # version arranges `hidden_states`).
    captured = {}

    def hook(i):
        def f(_m, _inp, out):
            captured[i] = (out[0] if isinstance(out, tuple) else out).detach()
        return f

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(model.model.layers)]
    norm_out = {}
    handles.append(model.model.norm.register_forward_hook(lambda _m, _i, o: norm_out.__setitem__("h", o.detach())))
    n_layers = len(model.model.layers)

    out = {}
    with torch.no_grad():
        for p, ids in enumerate(prompts):
            x = torch.tensor([ids])
            logits = model(input_ids=x).logits[0]
            out[f"p{p}.ids"] = x[0].to(torch.int64)
            out[f"p{p}.logits_last"] = logits[-1].contiguous()
            out[f"p{p}.resid_post"] = torch.stack([captured[l][0, -1] for l in range(n_layers)])
            for l in LAYERS:
                out[f"p{p}.resid_post_all.{l}"] = captured[l][0].contiguous()
            out[f"p{p}.final_hidden"] = norm_out["h"][0].contiguous()

        # Left-padded batch; position ids counted from the first real token.
        t = max(len(ids) for ids in prompts)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        x = torch.tensor([[pad] * (t - len(ids)) + ids for ids in prompts])
        mask = torch.tensor([[0] * (t - len(ids)) + [1] * len(ids) for ids in prompts])
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=x, attention_mask=mask, position_ids=pos).logits
        out["batch.logits_last"] = logits[:, -1].contiguous()
        out["batch.resid_post_last"] = torch.stack(
            [torch.stack([captured[l][b, -1] for l in range(n_layers)]) for b in range(len(prompts))]
        )
    for h in handles:
        h.remove()

    save_file({k: v.contiguous() for k, v in out.items()}, str(HERE / "smollm2.golden.safetensors"))
    tokens = {
        "prompts": texts,
        "chat_messages": CHAT,
        "chat_text": chat_text,
        "encode": [{"text": s, "ids": tok(s, add_special_tokens=False)["input_ids"]} for s in TOKENIZER_STRINGS + texts],
        "eos_token": tok.eos_token,
        "bos_token": tok.bos_token,
    }
    (HERE / "smollm2_tokens.json").write_text(json.dumps(tokens, indent=1, ensure_ascii=False) + "\n")
    for p, ids in enumerate(prompts):
        print(f"prompt {p}: {len(ids)} tokens; top-1 next token: {tok.decode([int(out[f'p{p}.logits_last'].argmax())])!r}")


if __name__ == "__main__":
    main()
