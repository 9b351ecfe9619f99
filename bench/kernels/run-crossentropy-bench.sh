#!/usr/bin/env bash
# Builds bench/kernels/crossentropy_bench.cu with nvcc for sm_90 (SW_CE_VECTORS 2, 4 and 8; with the baseline kernel
# when bench/kernels/baseline_crossentropy.cuh exists) and runs it at GPT-2's shape, then at a vocabulary that is not
# a multiple of 8 with misaligned rows. Run on the GPU machine from the repository root; output in $OUT (or ./out).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-out}
mkdir -p "$out" /tmp/ce-bench
baseline=()
[ -e "$here/baseline_crossentropy.cuh" ] && baseline=(-DSW_CE_BASELINE)
for v in 2 4 8; do
  nvcc -std=c++17 -O3 -arch=sm_90 -Xptxas -v -DSW_CE_VECTORS=$v "${baseline[@]}" "$here/crossentropy_bench.cu" \
    -o /tmp/ce-bench/bench$v >"$out/build$v.log" 2>&1 &
done
wait
grep -h -A1 "crossentropy_\(forward\|backward\|fused\).*bf16" "$out"/build4.log | grep -i "registers" || true
for v in 2 4 8; do /tmp/ce-bench/bench$v | tee -a "$out/bench.log"; done
/tmp/ce-bench/bench4 4096 50257 3 | tee -a "$out/bench.log"
