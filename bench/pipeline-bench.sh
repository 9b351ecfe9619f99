#!/usr/bin/env bash
# The pipeline bubble benchmark of issue #5: the benchmark GPT (TinyGpt's architecture, 8 blocks) trained with 1F1B
# on p = 2 and p = 4 stages (one mpirun rank per stage) for m = 1, 2, 4, 8 micro-batches. Each mpirun job first
# trains the whole program on rank 0 alone (--baseline: same global batch, same data, the other ranks wait in a
# barrier), then the pipelined steps, and prints both rows, so each speed-up is measured side by side.
# Every rank, and the baseline, computes on one thread (OpenBLAS and the CPU backend's worker pool): a rank stands
# for one device, and the baseline for one device training the whole model. Ranks are not bound to cores (p = 4 has
# two ranks per core); TERM=dumb keeps .NET from writing terminal control codes into mpirun's output.
#
# Usage: bench/pipeline-bench.sh            (environment: STEPS=20 WARMUP=3 MICRO_BATCH=4)
set -euo pipefail
cd "$(dirname "$0")/.."

steps=${STEPS:-20}
warmup=${WARMUP:-3}
micro_batch=${MICRO_BATCH:-4}
dll=bench/Shardwise.PipelineBench/bin/Release/net10.0/Shardwise.PipelineBench.dll
dotnet build bench/Shardwise.PipelineBench -c Release --nologo -v quiet > /dev/null

cores=$(grep -c '^processor' /proc/cpuinfo)
echo "# bench/pipeline-bench.sh, $(date -u '+%Y-%m-%d %H:%M') UTC: $steps timed steps after $warmup warm-up steps, micro-batch $micro_batch × 64 tokens"
echo "# $cores cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for p in 2 4; do
    if (( p > cores )); then
        echo "# p = $p: $p ranks on $cores cores — OVERSUBSCRIBED: stages share cores, so idle and speed-up show the mechanics, not scaling"
    fi
    header=""
    for m in 1 2 4 8; do
        mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$p" \
            -x OPENBLAS_NUM_THREADS=1 -x DOTNET_PROCESSOR_COUNT=1 -x TERM=dumb \
            dotnet "$dll" --stages "$p" --micro-batches "$m" --micro-batch "$micro_batch" --steps "$steps" --warmup "$warmup" \
            --baseline $header < /dev/null
        header="--rows-only"
    done
    echo
done
