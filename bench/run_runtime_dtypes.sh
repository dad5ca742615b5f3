#!/usr/bin/env bash
# Runtime benchmark per weight dtype, steerbench and transformers back to back in one sitting.
#
#   bench/run_runtime_dtypes.sh [MODEL]     # MODEL: registry name (default smollm2-135m-instruct),
#                                           # a .gguf file or a Hugging Face directory
#   DTYPES=f32,bf16,f16 PROFILE=release bench/run_runtime_dtypes.sh gemma-3-270m
#
# steerbench: the model crate's `runtime` bench, each dtype in its own process (peak RSS is
# per process): prefill 8x128 tokens, decode batch 1 and 8, peak RSS, and max |logit diff|
# against the first dtype. transformers (torch, $THREADS threads): `hf_baseline.py prefill`
# once per dtype, each in its own process. Then a table of every figure with ratios.
# PROFILE is the cargo profile of the bench build (default `dev`, which builds the model
# crate and every dependency at opt-level 3; `release` costs a full optimised build).
# Writes target/bench/runtime_dtypes{,_transformers_<dtype>}.json and runtime_dtypes.log.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-smollm2-135m-instruct}
dtypes=${DTYPES:-f32,bf16}
threads=${THREADS:-2}
profile=${PROFILE:-dev}
py=${PYTHON:-python3}
out=${STEERBENCH_BENCH_OUT:-target/bench}
mkdir -p "$out"
log="$out/runtime_dtypes.log"
note() { echo "[$(date +%T)] $* | $(cut -d' ' -f1-3 /proc/loadavg) load, $(pgrep -c rustc || true) rustc" | tee -a "$log"; }

# The file transformers reads: the path itself, or the registry model's cached file.
if [ -e "$model" ]; then
    path=$model
else
    home=${STEERBENCH_HOME:-$HOME/.cache/steerbench}
    path=$(ls -d "$home/models/$model"/*.gguf 2>/dev/null | head -1 || true)
    [ -n "$path" ] || path="$home/models/$model"
    [ -e "$path" ] || { echo "$model is not cached: steerbench models pull $model" >&2; exit 1; }
fi

cargo bench --profile "$profile" -p steerbench-model --bench runtime --no-run
note "steerbench start ($model, $dtypes, profile $profile)"
RAYON_NUM_THREADS=$threads STEERBENCH_BENCH_MODEL=$model STEERBENCH_BENCH_DTYPES=$dtypes \
    STEERBENCH_BENCH_OUT="$PWD/$out" \
    cargo bench --profile "$profile" -p steerbench-model --bench runtime 2>&1 | tee -a "$log"
for d in ${dtypes//,/ }; do
    note "transformers $d start"
    "$py" bench/hf_baseline.py prefill --model "$path" --dtype "$d" --threads "$threads" \
        --out "$out/runtime_dtypes_transformers_$d.json" 2>&1 \
        | grep -v -e '%|' -e deprecated | tee -a "$log"
done
note "transformers end"
"$py" bench/compare_runtime_dtypes.py --out-dir "$out" --dtypes "$dtypes" | tee -a "$log"
