#!/usr/bin/env python3
"""Hugging Face transformers baselines for steerbench's benchmarks.

Runs the same workloads as `steerbench bench` on PyPI torch + transformers
(f32, 2 threads by default) so the closing notes can report ratios measured
in the same sitting. Inputs (token ids, steering vector) come from the JSON
file steerbench writes, so both sides see identical tokens.

    python3 bench/hf_baseline.py prefill  --gguf MODEL.gguf [--dtype bf16] [--out FILE.json]
    python3 bench/hf_baseline.py prefill  --model HF_DIR_OR.gguf --dtype f32
    python3 bench/hf_baseline.py caa-sweep [--inputs target/bench/caa_sweep_inputs.json]
    python3 bench/compare_caa_sweep.py
    python3 bench/hf_baseline.py turns     [--inputs target/bench/turn_sweep_inputs.json]

Needs: pip install torch transformers gguf numpy (caa-sweep also: steering-vectors)
"""
import argparse
import json
import os
import resource
import time


TORCH_DTYPES = {"f32": "float32", "float32": "float32", "bf16": "bfloat16",
                "bfloat16": "bfloat16", "f16": "float16", "float16": "float16"}


def load(path, threads, dtype="f32"):
    """A .gguf file (dequantized by transformers) or a Hugging Face directory, in `dtype`."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    torch_dtype = getattr(torch, TORCH_DTYPES[dtype])
    path = os.path.abspath(path)
    if os.path.isdir(path):
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch_dtype)
    else:
        d, f = os.path.split(path)
        kw = {}
        try:
            # transformers >= 5 can keep GGUF weights in their quantized blocks; the baseline
            # is the dense model (what steerbench's default load computes with).
            from transformers import GgufConfig

            kw["quantization_config"] = GgufConfig(gguf_file=f, dequantize=True)
        except ImportError:
            pass
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch_dtype, **kw)
    model.eval()
    return model


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def prefill(args):
    import torch

    path = args.model or args.gguf
    if not path:
        raise SystemExit("give --model (a .gguf file or HF directory) or --gguf")
    t_load = time.perf_counter()
    model = load(path, args.threads, args.dtype)
    load_s = time.perf_counter() - t_load
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
        # the same prefill computing the LM head at the last position only (what
        # steerbench's prefill benchmark reads), instead of logits for every position
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            model(ids, logits_to_keep=1)
        last_tps = args.batch * args.seq / ((time.perf_counter() - t0) / args.repeats)
        # decode: greedy, one row, KV cache
        prompt = ids[:1, :32]
        t0 = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=args.decode_tokens, do_sample=False,
                             min_new_tokens=args.decode_tokens)
        ddt = time.perf_counter() - t0
        n_new = out.shape[1] - prompt.shape[1]
    result = {
        "impl": "transformers", "torch": torch.__version__, "model": path,
        "dtype": TORCH_DTYPES[args.dtype], "threads": args.threads, "batch": args.batch,
        "seq": args.seq, "load_s": load_s,
        "prefill_tokens_per_s": prefill_tps, "prefill_last_logits_tokens_per_s": last_tps,
        "decode_tokens_per_s": n_new / ddt,
        "peak_rss_mb": peak_rss_mb(),
    }
    print(json.dumps(result))
    if args.out:
        json.dump(result, open(args.out, "w"))


def caa_sweep(args):
    """The CAA A/B sweep steerbench's `caa_sweep` bench runs, replayed from its inputs JSON.

    Variants (all f32, torch threads = --threads, one process, same loaded model):
      unbatched         one forward per (item, multiplier), forward hook on block `layer`
      batched_mults     one forward per item: its multipliers as the rows of one batch
                        (equal lengths, no padding), the hook adds alpha_row * v
      batched_items     one forward per (multiplier, --batch items): left-padded batches
                        with attention mask and position ids
      steering_vectors  the steering-vectors library: SteeringVector({layer: v}).apply(
                        model, multiplier=m) around one forward per (item, multiplier)
    Every variant reads log p(A), log p(B) from the last position's logits.
    """
    import torch

    spec = json.load(open(args.inputs))
    gguf = args.gguf or spec.get("gguf")
    if not gguf:
        raise SystemExit("no --gguf given and the inputs JSON names none")
    model = load(gguf, args.threads)
    layer = spec["layer"]  # vector added to the output of block `layer` (= input of layer+1)
    assert spec.get("site", "resid_post") == "resid_post" and spec.get("positions", "all") == "all"
    vec = torch.tensor(spec["vector"], dtype=torch.float32)
    mults = [float(m) for m in spec["multipliers"]]
    a_id, b_id = spec["a_token"], spec["b_token"]
    items = spec["items"]
    variants = args.variants.split(",")
    # `logits_to_keep=1` computes the LM head at the last position only (off by default: the
    # plain call, as a user of transformers writes it).
    extra = {"logits_to_keep": 1} if args.last_logits_only else {}
    state = {"alpha": 0.0}

    def hook(_module, _inputs, output):
        hs = output[0] if isinstance(output, tuple) else output
        alpha = state["alpha"]
        if isinstance(alpha, torch.Tensor):
            hs = hs + alpha[:, None, None] * vec
        else:
            hs = hs + alpha * vec
        return (hs,) + tuple(output[1:]) if isinstance(output, tuple) else hs

    def read(logits):  # (b, vocab) -> [[lpA, lpB]] per row
        lp = torch.log_softmax(logits.float(), -1)
        return [[float(lp[r, a_id]), float(lp[r, b_id])] for r in range(lp.shape[0])]

    def empty():
        return [[None] * len(mults) for _ in items]

    def unbatched():
        lp = empty()
        handle = model.model.layers[layer].register_forward_hook(hook)
        try:
            for k, m in enumerate(mults):
                state["alpha"] = m
                for i, ids in enumerate(items):
                    lp[i][k] = read(model(torch.tensor([ids]), **extra).logits[:, -1])[0]
        finally:
            handle.remove()
        return lp

    def batched_mults():
        lp = empty()
        state["alpha"] = torch.tensor(mults)
        handle = model.model.layers[layer].register_forward_hook(hook)
        try:
            for i, ids in enumerate(items):
                batch = torch.tensor([ids] * len(mults))
                for k, row in enumerate(read(model(batch, **extra).logits[:, -1])):
                    lp[i][k] = row
        finally:
            handle.remove()
        return lp

    def batched_items():
        lp = empty()
        pad = model.config.pad_token_id
        if pad is None:
            pad = model.config.eos_token_id if isinstance(model.config.eos_token_id, int) else 0
        handle = model.model.layers[layer].register_forward_hook(hook)
        try:
            for k, m in enumerate(mults):
                state["alpha"] = m
                for s in range(0, len(items), args.batch):
                    chunk = items[s:s + args.batch]
                    width = max(len(x) for x in chunk)
                    ids = torch.tensor([[pad] * (width - len(x)) + x for x in chunk])
                    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in chunk])
                    pos = (mask.cumsum(-1) - 1).clamp(min=0)
                    out = model(ids, attention_mask=mask, position_ids=pos, **extra).logits[:, -1]
                    for r, row in enumerate(read(out)):
                        lp[s + r][k] = row
        finally:
            handle.remove()
        return lp

    def steering_vectors():
        from steering_vectors import SteeringVector

        # layer_type "decoder_block" matches model.model.layers[i]; the library adds
        # multiplier * v to that block's output at every position (min_token_index=0).
        sv = SteeringVector(layer_activations={layer: vec}, layer_type="decoder_block")
        lp = empty()
        for k, m in enumerate(mults):
            with sv.apply(model, multiplier=m):
                for i, ids in enumerate(items):
                    lp[i][k] = read(model(torch.tensor([ids]), **extra).logits[:, -1])[0]
        return lp

    runs = {"unbatched": unbatched, "batched_mults": batched_mults,
            "batched_items": batched_items, "steering_vectors": steering_vectors}
    unknown = [v for v in variants if v not in runs]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {sorted(runs)}")
    results = {"impl": "transformers", "torch": torch.__version__, "threads": args.threads,
               "n_items": len(items), "multipliers": mults, "batch": args.batch,
               "last_logits_only": args.last_logits_only, "variants": {}}
    with torch.no_grad():
        model(torch.tensor([items[0][:16]]))  # warm-up
        for v in variants:
            t0 = time.perf_counter()
            lp = runs[v]()
            wall = time.perf_counter() - t0
            results["variants"][v] = {"wall_s": wall, "lp": lp}
            print(json.dumps({"variant": v, "wall_s": round(wall, 2)}), flush=True)
            json.dump(results, open(args.out, "w"))  # after each variant: partial runs count
    print(f"wrote {args.out}")


def turns(args):
    """Issue 15's multi-turn scoring, replayed from `turn_sweep_inputs.json` as a
    forward-hook loop: for every multiplier, conversation, turn and reply, the whole
    sequence (history + user message + reply) through the model with a forward hook
    adding alpha * v to the output of block `layer` at every position, then the reply's
    token log-probs. Variants: `per_reply` (one forward per reply) and `pair_batch` (a
    turn's two replies as one right-padded batch with an attention mask).
    """
    import torch

    spec = json.load(open(args.inputs))
    if args.conversations:
        spec["conversations"] = spec["conversations"][:args.conversations]
    model = load(args.gguf or spec["gguf"], args.threads)
    layer = spec["layer"]
    assert spec["site"] == "resid_post" and spec["positions"] == "all"
    vec = torch.tensor(spec["vector"], dtype=torch.float32)
    mults = [float(m) for m in spec["multipliers"]]
    state = {"alpha": 0.0}

    def hook(_module, _inputs, output):
        hs = output[0] if isinstance(output, tuple) else output
        hs = hs + state["alpha"] * vec
        return (hs,) + tuple(output[1:]) if isinstance(output, tuple) else hs

    def reply_logprobs(logits, prompt_len, reply):
        lp = torch.log_softmax(logits.float(), -1)
        return [float(lp[prompt_len - 1 + j, t]) for j, t in enumerate(reply)]

    def per_reply():
        out = []
        for m in mults:
            state["alpha"] = m
            vals = []
            for c in spec["conversations"]:
                for t in c["turns"]:
                    for r in t["replies"]:
                        ids = torch.tensor([t["prompt"] + r])
                        logits = model(ids).logits[0]
                        vals.append(reply_logprobs(logits, len(t["prompt"]), r))
            out.append(vals)
        return out

    def pair_batch():
        out = []
        for m in mults:
            state["alpha"] = m
            vals = []
            for c in spec["conversations"]:
                for t in c["turns"]:
                    seqs = [t["prompt"] + r for r in t["replies"]]
                    n = max(len(x) for x in seqs)
                    ids = torch.tensor([x + [0] * (n - len(x)) for x in seqs])
                    mask = torch.tensor([[1] * len(x) + [0] * (n - len(x)) for x in seqs])
                    logits = model(ids, attention_mask=mask).logits
                    for b, r in enumerate(t["replies"]):
                        vals.append(reply_logprobs(logits[b], len(t["prompt"]), r))
            out.append(vals)
        return out

    results = {}
    handle = model.model.layers[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            for name in args.variants.split(","):
                t0 = time.perf_counter()
                vals = {"per_reply": per_reply, "pair_batch": pair_batch}[name]()
                dt = time.perf_counter() - t0
                results[name] = {"seconds": dt, "logprobs": vals}
                print(f"{name}: {dt:.1f} s", flush=True)
    finally:
        handle.remove()
    ours = args.steerbench
    if ours and os.path.exists(ours):
        sb = json.load(open(ours))
        for name, r in results.items():
            diff = max(
                abs(a - b)
                for sa, ta in zip(sb["logprobs"], r["logprobs"])
                for x, y in zip(sa, ta)
                for a, b in zip(x, y)
            )
            r["max_abs_diff_vs_steerbench"] = diff
            # The same conversations on both sides: all of them, or the naive subset.
            ours_s, n = sb["cached_s"], sb.get("conversations")
            if args.conversations and args.conversations == sb.get("naive_conversations"):
                ours_s, n = sb["cached_subset_s"], args.conversations
            r["steerbench_s"] = ours_s
            r["conversations"] = n
            print(f"{name}: {r['seconds'] / ours_s:.2f}x steerbench's turn-by-turn scorer "
                  f"({ours_s:.1f} s, {n} conversations), max |log-prob difference| {diff:.2e}")
    json.dump({k: {kk: vv for kk, vv in v.items() if kk != "logprobs"} for k, v in results.items()},
              open(args.out, "w"), indent=1)


def dpo(args):
    """Issue 13's fine-tuning benchmark in torch: one DPO-LoRA epoch replayed from
    `dpo_lora_inputs.json` (the same token ids, batch order and settings as
    `cargo bench -p steerbench-eval --bench dpo_lora`), starting from steerbench's initial
    adapter (loaded with peft, trainable), AdamW (weight decay 0), log-probs summed over
    the answer tokens, the base model (adapter disabled) as reference. A plain torch DPO
    loop (trl's trainer adds its own data pipeline around the same math). Prints the
    per-step losses against steerbench's, the time and the peak RSS.
    """
    import torch
    from peft import PeftModel

    spec = json.load(open(args.inputs))
    base = load(args.gguf or spec["gguf"], args.threads)
    model = PeftModel.from_pretrained(base, spec["init"], is_trainable=True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=spec["lr"], weight_decay=0.0)
    beta = spec["beta"]
    pairs = spec["pairs"]
    rss_load = peak_rss_mb()

    def batch(idx):
        seqs, spans = [], []
        for i in idx:
            p = pairs[i]
            for ans in (p["chosen"], p["rejected"]):
                seqs.append(p["prompt"] + ans)
                spans.append((len(p["prompt"]), len(p["prompt"]) + len(ans)))
        n = max(len(s) for s in seqs)
        # Left padding, as steerbench lays batches out.
        ids = torch.tensor([[0] * (n - len(s)) + s for s in seqs])
        mask = torch.tensor([[0] * (n - len(s)) + [1] * len(s) for s in seqs])
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids, mask, pos, [(n - len(s), a, b) for s, (a, b) in zip(seqs, spans)]

    def summed_logprobs(m, ids, mask, pos, spans):
        logits = m(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
        out = []
        for r, (pad, a, b) in enumerate(spans):
            lp = torch.log_softmax(logits[r, pad + a - 1:pad + b - 1], -1)
            tgt = ids[r, pad + a:pad + b]
            out.append(lp.gather(-1, tgt[:, None]).sum())
        return torch.stack(out)

    t0 = time.perf_counter()
    # Reference log-probs once, adapter disabled (as steerbench computes them up front).
    refs = {}
    with torch.no_grad(), model.disable_adapter():
        for idx in spec["batches"]:
            ids, mask, pos, spans = batch(idx)
            refs[tuple(idx)] = summed_logprobs(model, ids, mask, pos, spans)
    losses = []
    for idx in spec["batches"]:
        ids, mask, pos, spans = batch(idx)
        lp = summed_logprobs(model, ids, mask, pos, spans)
        ref = refs[tuple(idx)]
        z = beta * ((lp[0::2] - ref[0::2]) - (lp[1::2] - ref[1::2]))
        loss = torch.nn.functional.softplus(-z).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
        print(f"step {len(losses)}: loss {losses[-1]:.6f}", flush=True)
    secs = time.perf_counter() - t0
    result = {"impl": "torch+peft", "torch": torch.__version__, "threads": args.threads,
              "seconds": secs, "peak_rss_mb": peak_rss_mb(), "rss_after_load_mb": rss_load,
              "losses": losses}
    ours = args.steerbench
    if ours and os.path.exists(ours):
        sb = json.load(open(ours))
        result["max_abs_loss_diff_vs_steerbench"] = max(
            abs(a - b) for a, b in zip(sb["losses"], losses))
        print(f"torch: {secs:.1f} s, steerbench {sb['seconds']:.1f} s: steerbench "
              f"{secs / sb['seconds']:.2f}x torch's speed; peak RSS torch "
              f"{result['peak_rss_mb']:.0f} MB, steerbench {sb['peak_rss_mb']:.0f} MB; "
              f"max |loss difference| {result['max_abs_loss_diff_vs_steerbench']:.2e}")
    json.dump(result, open(args.out, "w"), indent=1)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prefill")
    a.add_argument("--gguf", help="model file (same as --model)")
    a.add_argument("--model", help="a .gguf file or a Hugging Face directory")
    a.add_argument("--dtype", default="f32", choices=sorted(TORCH_DTYPES),
                   help="dtype the weights (and, in torch, the activations) are held in")
    a.add_argument("--out", help="also write the JSON result here")
    a.add_argument("--threads", type=int, default=2)
    a.add_argument("--batch", type=int, default=8)
    a.add_argument("--seq", type=int, default=128)
    a.add_argument("--repeats", type=int, default=3)
    a.add_argument("--decode-tokens", type=int, default=64)
    b = sub.add_parser("caa-sweep")
    b.add_argument("--inputs", default="target/bench/caa_sweep_inputs.json")
    b.add_argument("--gguf", help="model file (default: the one the inputs JSON names)")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--batch", type=int, default=10, help="items per batch in batched_items")
    b.add_argument("--variants", default="unbatched,batched_mults,batched_items,steering_vectors")
    b.add_argument("--last-logits-only", action="store_true",
                   help="pass logits_to_keep=1 (LM head at the last position only)")
    b.add_argument("--out", default="target/bench/caa_sweep_transformers.json")
    c = sub.add_parser("turns")
    c.add_argument("--inputs", default="target/bench/turn_sweep_inputs.json")
    c.add_argument("--steerbench", default="target/bench/turn_sweep_steerbench.json")
    c.add_argument("--gguf", help="model file (default: the one the inputs JSON names)")
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--variants", default="per_reply,pair_batch")
    c.add_argument("--conversations", type=int, default=0,
                   help="only the first N conversations (the bench's TURN_SWEEP_NAIVE subset)")
    c.add_argument("--out", default="target/bench/turn_sweep_transformers.json")
    d = sub.add_parser("dpo")
    d.add_argument("--inputs", default="target/bench/dpo_lora_inputs.json")
    d.add_argument("--steerbench", default="target/bench/dpo_lora_steerbench.json")
    d.add_argument("--gguf", help="model file (default: the one the inputs JSON names)")
    d.add_argument("--threads", type=int, default=2)
    d.add_argument("--out", default="target/bench/dpo_lora_torch.json")
    args = p.parse_args()
    {"prefill": prefill, "caa-sweep": caa_sweep, "turns": turns, "dpo": dpo}[args.cmd](args)


if __name__ == "__main__":
    main()
