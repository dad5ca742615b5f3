#!/usr/bin/env python3
"""Hugging Face transformers baselines for steerbench's benchmarks.

Runs the same workloads as `steerbench bench` on PyPI torch + transformers
(f32, 2 threads by default) so the closing notes can report ratios measured
in the same sitting. Inputs (token ids, steering vector) come from the JSON
file steerbench writes, so both sides see identical tokens.

    python3 bench/hf_baseline.py prefill  --gguf MODEL.gguf
    python3 bench/hf_baseline.py caa-sweep --gguf MODEL.gguf --inputs runs/bench/caa_sweep_inputs.json

Needs: pip install torch transformers gguf numpy
"""
import argparse
import json
import os
import resource
import time


def load(gguf_path, threads):
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    d, f = os.path.split(os.path.abspath(gguf_path))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    model.eval()
    return model


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def prefill(args):
    import torch

    model = load(args.gguf, args.threads)
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(100, vocab - 100, (args.batch, args.seq), generator=g)
    with torch.no_grad():
        model(ids[:1, :16])  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            model(ids)
        dt = (time.perf_counter() - t0) / args.repeats
        prefill_tps = args.batch * args.seq / dt
        # decode: greedy, one row, KV cache
        prompt = ids[:1, :32]
        t0 = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=args.decode_tokens, do_sample=False,
                             min_new_tokens=args.decode_tokens)
        ddt = time.perf_counter() - t0
        n_new = out.shape[1] - prompt.shape[1]
    print(json.dumps({
        "impl": "transformers", "threads": args.threads, "batch": args.batch, "seq": args.seq,
        "prefill_tokens_per_s": prefill_tps, "decode_tokens_per_s": n_new / ddt,
        "peak_rss_mb": peak_rss_mb(),
    }))


def caa_sweep(args):
    import torch

    spec = json.load(open(args.inputs))
    model = load(args.gguf, args.threads)
    layer = spec["layer"]  # vector added to the output of block `layer`
    vec = torch.tensor(spec["vector"], dtype=torch.float32)
    mults = spec["multipliers"]
    a_id, b_id = spec["a_token"], spec["b_token"]
    items = spec["items"]
    state = {"alpha": None}

    def hook(_module, _inputs, output):
        hs = output[0] if isinstance(output, tuple) else output
        alpha = state["alpha"]
        if isinstance(alpha, torch.Tensor):
            hs = hs + alpha[:, None, None] * vec
        else:
            hs = hs + alpha * vec
        return (hs,) + tuple(output[1:]) if isinstance(output, tuple) else hs

    handle = model.model.layers[layer].register_forward_hook(hook)
    results = {}
    with torch.no_grad():
        # unbatched: one forward per (item, multiplier)
        t0 = time.perf_counter()
        unbatched = []
        for m in mults:
            state["alpha"] = float(m)
            for ids in items:
                logits = model(torch.tensor([ids])).logits[0, -1]
                lp = torch.log_softmax(logits, -1)
                unbatched.append([m, float(lp[a_id]), float(lp[b_id])])
        results["unbatched_s"] = time.perf_counter() - t0
        # hand-batched: all items of one multiplier in a left-padded batch
        t0 = time.perf_counter()
        batched = []
        pad = model.config.eos_token_id if model.config.pad_token_id is None else model.config.pad_token_id
        width = max(len(x) for x in items)
        ids = torch.tensor([[pad] * (width - len(x)) + x for x in items])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in items])
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        for m in mults:
            state["alpha"] = float(m)
            for s in range(0, len(items), args.batch):
                out = model(ids[s:s + args.batch], attention_mask=mask[s:s + args.batch],
                            position_ids=pos[s:s + args.batch]).logits[:, -1]
                lp = torch.log_softmax(out, -1)
                for r in range(lp.shape[0]):
                    batched.append([m, float(lp[r, a_id]), float(lp[r, b_id])])
        results["batched_s"] = time.perf_counter() - t0
    handle.remove()
    results.update({"impl": "transformers", "threads": args.threads, "n_items": len(items),
                    "multipliers": mults, "unbatched": unbatched, "batched": batched})
    json.dump(results, open(args.out, "w"))
    print(json.dumps({k: v for k, v in results.items() if k not in ("unbatched", "batched")}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prefill")
    a.add_argument("--gguf", required=True)
    a.add_argument("--threads", type=int, default=2)
    a.add_argument("--batch", type=int, default=8)
    a.add_argument("--seq", type=int, default=128)
    a.add_argument("--repeats", type=int, default=3)
    a.add_argument("--decode-tokens", type=int, default=64)
    b = sub.add_parser("caa-sweep")
    b.add_argument("--gguf", required=True)
    b.add_argument("--inputs", required=True)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--batch", type=int, default=10)
    b.add_argument("--out", default="hf_caa_sweep.json")
    args = p.parse_args()
    {"prefill": prefill, "caa-sweep": caa_sweep}[args.cmd](args)


if __name__ == "__main__":
    main()
