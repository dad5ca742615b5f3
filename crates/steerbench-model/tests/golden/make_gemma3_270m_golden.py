#!/usr/bin/env python3
"""Golden outputs of Gemma-3-270M (the registry's Q4_K_M GGUF) from Hugging Face transformers,
for tests/gemma3_270m_parity.rs.

transformers builds the tokenizer from the GGUF metadata and dequantizes the weights to f32
itself, so matching it checks our SentencePiece-style GGUF tokenizer, the Q4_K/Q5_0/Q6_K/Q8_0
dequantization and the Gemma 3 decoder end to end.

Writes gemma3_270m.golden.json (next to this script):
  tokens:   {text: ids} with add_special_tokens=True (so `<bos>` first), varied invented texts
  prompts:  per invented prompt: ids, the final-position logits at TOP ids (the 64 largest)
            and at every STRIDE-th vocabulary id, logsumexp / mean / std over the whole
            vocabulary, the residual-stream norm of every block's output at the first and
            last position, and GEN greedy tokens.
The vocabulary has 262,144 entries, so full logit dumps are not committed.

Usage: python3 make_gemma3_270m_golden.py [PATH.gguf]
(default: $STEERBENCH_HOME or ~/.cache/steerbench, models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf)
Needs: torch, transformers (>= 5), gguf, accelerate (PyPI). CPU, about a minute.
"""

import json
import os
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = Path(__file__).resolve().parent
STRIDE = 509
TOP = 64
GEN = 12

TEXTS = [
    "The small robot counted pebbles on the beach.",
    "  indented  twice,   then three\tand a tab",
    "first line\nsecond line\n\n\nafter three newlines",
    "Numbers: 7, 42, 1999 and 3.14159; dates like 2024-05-06.",
    "Caf\u00e9, na\u00efve co\u00f6perate, \u00fcber, \u65e5\u672c\u8a9e, \U0001f680 and \u00e7a va?",
    "<start_of_turn>user\nWrite a word.<end_of_turn>\n<start_of_turn>model\n",
    "trailing spaces   ",
    "CamelCaseIdentifiers and snake_case_names()",
]

PROMPTS = [
    "The old lighthouse keeper looked at the sea and",
    "My favourite thing about autumn is",
    "def add(a, b):\n    return",
]


def main():
    home = Path(os.environ.get("STEERBENCH_HOME") or Path.home() / ".cache" / "steerbench")
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        home / "models" / "gemma-3-270m" / "gemma-3-270m-q4_k_m.gguf"
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                 dtype=torch.float32)
    model.eval()
    out = {"tokens": {t: tok.encode(t, add_special_tokens=True) for t in TEXTS}, "prompts": []}
    vocab = model.config.vocab_size
    for text in PROMPTS:
        ids = tok.encode(text, add_special_tokens=True)
        with torch.no_grad():
            r = model(torch.tensor([ids]), output_hidden_states=True)
            logits = r.logits[0, -1].double()
            # hidden_states[l + 1] is block l's output, except the last, which transformers
            # gives after the final norm: recompute that one's input norm is not possible, so
            # only blocks 0 .. L-2 are compared.
            hs = r.hidden_states
            gen = model.generate(torch.tensor([ids]), max_new_tokens=GEN, do_sample=False)
        top = torch.topk(logits, TOP).indices.tolist()
        strided = list(range(0, vocab, STRIDE))
        out["prompts"].append({
            "text": text,
            "ids": ids,
            "top_ids": top,
            "top_logits": [logits[i].item() for i in top],
            "strided_logits": [logits[i].item() for i in strided],
            "logsumexp": torch.logsumexp(logits, 0).item(),
            "mean": logits.mean().item(),
            "std": logits.std(unbiased=False).item(),
            "resid_norm_first": [h[0, 0].norm().item() for h in hs[1:-1]],
            "resid_norm_last": [h[0, -1].norm().item() for h in hs[1:-1]],
            "greedy": gen[0, len(ids):].tolist(),
            "greedy_text": tok.decode(gen[0, len(ids):]),
        })
    out["stride"] = STRIDE
    with open(HERE / "gemma3_270m.golden.json", "w") as f:
        json.dump(out, f, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
