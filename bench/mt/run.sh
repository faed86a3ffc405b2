#!/usr/bin/env bash
# Builds the MarianMT benchmark, writes the random-weight OPUS-MT-base checkpoint into the build
# folder (once; ~300 MB) and runs mt_bench. Extra arguments go to mt_bench, e.g.
#   bench/mt/run.sh --runs 5 --scenarios encoder,b
#   BUILD_DIR=build/bench THREADS=2 bench/mt/run.sh --int8
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${BUILD_DIR:-$repo/build/mt-bench}"
threads="${THREADS:-2}"

cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTRANSNOTES_BUILD_BENCH=ON >/dev/null
cmake --build "$build" --target mt_make_checkpoint mt_bench -j"$threads"

checkpoint="$build/mt-bench-checkpoint/opus-mt-base-random"
if [[ ! -f "$checkpoint/model.safetensors" ]]; then
  "$build/bench/mt/mt_make_checkpoint" --out "$checkpoint"
fi

# One BLAS thread pool of $threads threads and nothing else competing inside the process.
export OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads"
exec "$build/bench/mt/mt_bench" --model "$checkpoint" --threads "$threads" "$@"
