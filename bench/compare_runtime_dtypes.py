#!/usr/bin/env python3
"""Table of the runtime benchmark per dtype: steerbench against transformers, same sitting.

Reads target/bench/runtime_dtypes.json (the `runtime` bench with STEERBENCH_BENCH_DTYPES)
and runtime_dtypes_transformers_<dtype>.json (hf_baseline.py prefill --out); see
bench/run_runtime_dtypes.sh.
"""
import argparse
import json
import os


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out-dir", default="target/bench")
    p.add_argument("--dtypes", default="f32,bf16")
    a = p.parse_args()
    ours = json.load(open(os.path.join(a.out_dir, "runtime_dtypes.json")))
    dtypes = [d for d in a.dtypes.split(",") if d]
    theirs = {}
    for d in dtypes:
        f = os.path.join(a.out_dir, f"runtime_dtypes_transformers_{d}.json")
        if os.path.exists(f):
            theirs[d] = json.load(open(f))
    rows = [
        # (label, our key, their key)
        ("prefill 8x128 tok/s (all positions kept)", "prefill_tokens_per_s", "prefill_last_logits_tokens_per_s"),
        ("prefill 8x128 tok/s (last position only)", "prefill_last_tokens_per_s", "prefill_last_logits_tokens_per_s"),
        ("decode batch 1 tok/s", "decode_b1_tokens_per_s", "decode_tokens_per_s"),
        ("peak RSS MB", "peak_rss_mb", "peak_rss_mb"),
    ]
    base = dtypes[0]
    print(f"model: {ours[base].get('model')}; transformers reads logits at the last position only "
          f"(logits_to_keep=1) in both prefill rows")
    print(f"| figure | dtype | steerbench | transformers | steerbench / transformers "
          f"| steerbench {base}-ratio | transformers {base}-ratio |")
    print("|---|---|---|---|---|---|---|")
    for label, ok, tk in rows:
        for d in dtypes:
            o = ours.get(d, {}).get(ok)
            t = theirs.get(d, {}).get(tk)
            ob = ours.get(base, {}).get(ok)
            tb = theirs.get(base, {}).get(tk)
            fmt = lambda x: "–" if x is None else f"{x:.0f}"
            r = lambda x, y: "–" if x is None or y is None else f"{x / y:.2f}×"
            print(f"| {label} | {d} | {fmt(o)} | {fmt(t)} | {r(o, t)} | {r(o, ob)} | {r(t, tb)} |")
    for d in dtypes:
        if d != base and d in ours:
            print(f"steerbench {d}: max |logit - logit_{base}| = {ours[d]['max_abs_logit_diff']:.4f}, "
                  f"same greedy token in {ours[d]['same_greedy_rows']}/8 rows")


if __name__ == "__main__":
    main()
