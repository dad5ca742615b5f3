#!/usr/bin/env python3
"""Compare steerbench's CAA sweep with the transformers / steering-vectors baselines.

    python3 bench/compare_caa_sweep.py [--ours target/bench/caa_sweep_steerbench.json]
                                       [--theirs target/bench/caa_sweep_transformers.json]
                                       [--inputs target/bench/caa_sweep_inputs.json]

Prints, per baseline variant, max |p(match)_ours - p(match)_theirs| over items x multipliers
(p(match) = p(matching letter) / (p(A) + p(B))), max |log p| differences, and the speed
ratio time_theirs / time_ours. Exits 1 when a p(match) difference exceeds --tol.
"""
import argparse
import json
import math
import sys


def p_match(lp, matching):
    a, b = lp
    m = max(a, b)
    ea, eb = math.exp(a - m), math.exp(b - m)
    return (ea if matching == 0 else eb) / (ea + eb)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ours", default="target/bench/caa_sweep_steerbench.json")
    p.add_argument("--theirs", default="target/bench/caa_sweep_transformers.json")
    p.add_argument("--inputs", default="target/bench/caa_sweep_inputs.json")
    p.add_argument("--tol", type=float, default=1e-3)
    args = p.parse_args()
    ours = json.load(open(args.ours))
    theirs = json.load(open(args.theirs))
    matching = json.load(open(args.inputs))["matching"]
    if ours["multipliers"] != theirs["multipliers"]:
        sys.exit(f"multipliers differ: {ours['multipliers']} vs {theirs['multipliers']}")
    n_items, n_mults = len(ours["lp"]), len(ours["multipliers"])
    print(f"steerbench: {ours['wall_s']:.2f} s ({n_items} items x {n_mults} multipliers, "
          f"threads {ours['threads']})")
    whole = ours.get("wall_whole_items_s")
    if whole:
        print(f"steerbench with every item run whole (no shared prefix): {whole:.2f} s "
              f"(shared prefix: {ours.get('shared_prefix_tokens')} tokens)")
    ok = True
    for name, v in theirs["variants"].items():
        dp = dlp = 0.0
        for i in range(n_items):
            for k in range(n_mults):
                mine, other = ours["lp"][i][k], v["lp"][i][k]
                dp = max(dp, abs(p_match(mine, matching[i]) - p_match(other, matching[i])))
                dlp = max(dlp, abs(mine[0] - other[0]), abs(mine[1] - other[1]))
        ratio = v["wall_s"] / ours["wall_s"]
        ok &= dp <= args.tol
        whole_ratio = f"  (whole items {v['wall_s'] / whole:4.2f}x)" if whole else ""
        print(f"{name:17s} {v['wall_s']:7.2f} s  ratio {ratio:5.2f}x{whole_ratio}  "
              f"max|dp(match)| {dp:.2e}  max|dlog p| {dlp:.2e}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
