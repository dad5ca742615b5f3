#!/usr/bin/env bash
# The CAA A/B sweep benchmark, both sides back to back in one sitting (see bench/README.md).
#
#   bench/run_caa_sweep.sh                 # steerbench, then transformers + steering-vectors, then compare
#   VARIANTS=unbatched,batched_mults bench/run_caa_sweep.sh
#
# Writes target/bench/caa_sweep_{inputs,steerbench,transformers}.json and a log with the
# machine load before and after each side (the machine is shared; read ratios, not seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${STEERBENCH_BENCH_OUT:-target/bench}
mkdir -p "$out"
log="$out/caa_sweep.log"
threads=${THREADS:-2}
note() { echo "[$(date +%T)] $* | $(cut -d' ' -f1-3 /proc/loadavg) load, $(pgrep -c rustc || true) rustc" | tee -a "$log"; }

cargo bench -p steerbench-eval --bench caa_sweep --no-run
note "steerbench start"
RAYON_NUM_THREADS=$threads STEERBENCH_BENCH_OUT="$PWD/$out" \
    cargo bench -p steerbench-eval --bench caa_sweep 2>&1 | tee -a "$log"
note "steerbench end / transformers start"
python3 bench/hf_baseline.py caa-sweep --threads "$threads" \
    --inputs "$out/caa_sweep_inputs.json" --out "$out/caa_sweep_transformers.json" \
    ${VARIANTS:+--variants "$VARIANTS"} ${HF_ARGS:-} 2>&1 | grep -v -e '%|' -e deprecated | tee -a "$log"
note "transformers end"
python3 bench/compare_caa_sweep.py --ours "$out/caa_sweep_steerbench.json" \
    --theirs "$out/caa_sweep_transformers.json" --inputs "$out/caa_sweep_inputs.json" | tee -a "$log"
