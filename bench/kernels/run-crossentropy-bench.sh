#!/usr/bin/env bash
# Builds bench/kernels/crossentropy_bench.cu with nvcc for sm_90 in four variants (SW_CE_VECTORS 2, 4, 8 with the
# ex2.approx exponential; 4 with expf), with the baseline kernel when bench/kernels/baseline_crossentropy.cuh exists,
# and runs each at GPT-2's shape, then variant 4 at a vocabulary that is not a multiple of 8 with misaligned rows.
# Run on the GPU machine from the repository root; output in $OUT (or ./out).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-out}
mkdir -p "$out" /tmp/ce-bench
baseline=()
[ -e "$here/baseline_crossentropy.cuh" ] && baseline=(-DSW_CE_BASELINE)
build() {  # name, flags...
  local name=$1; shift
  nvcc -std=c++17 -O3 -arch=sm_90 -Xptxas -v "$@" "${baseline[@]}" "$here/crossentropy_bench.cu" \
    -o /tmp/ce-bench/$name >"$out/build-$name.log" 2>&1
}
build v2 -DSW_CE_VECTORS=2 & build v4 -DSW_CE_VECTORS=4 & build v8 -DSW_CE_VECTORS=8 &
build v4expf -DSW_CE_VECTORS=4 -DSW_CE_EXPF &
wait
grep -h -A2 "for crossentropy_\(forward\|backward\)_bf16" "$out"/build-v4.log | grep -i "registers" || true
for v in v4 v4expf v8 v2; do /tmp/ce-bench/$v 2>&1 | tee -a "$out/bench.log"; done
/tmp/ce-bench/v4 4096 50257 3 2>&1 | tee -a "$out/bench.log"
