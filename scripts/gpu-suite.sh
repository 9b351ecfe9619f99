#!/usr/bin/env bash
# The one script for a GPU machine (see /work/shared/gpu/README.md and docs/cuda.md). Two phases:
#
#   scripts/gpu-suite.sh prepare    on the CPU machine (needs the .NET SDK, g++ and NVRTC): packs the .NET runtime
#                                   into .gpu/dotnet-runtime.tar.xz, publishes tests/Shardwise.Kernels.Tests as a
#                                   self-running MSTest application into .gpu/kernels-tests and builds the CPU
#                                   emulation library it needs next to it, publishes examples/Gpt2Small (the
#                                   benchmark model's trainer) into .gpu/gpt2 with TinyGpt's trainer beside it (same
#                                   dependencies), and copies ../shared/data/tinyshakespeare.txt into .gpu (the GPU
#                                   machine has no ../shared). Nothing is committed; .gpu/ is ignored.
#                                   The whole .gpu must stay under the 64 MiB carry limit: prepare measures it.
#   scripts/gpu-suite.sh run        on the GPU machine (no .NET, no registry; carry .gpu), from the repository root:
#                                   unpacks the runtime, finds the CUDA 13 libraries and exports SHARDWISE_CUDA_PATH,
#                                   runs the whole kernel test suite (NVRTC compile checks with the machine's NVRTC,
#                                   the CPU emulation tests, and the "Gpu" category: driver, modules, kernels against
#                                   the CPU backend, cuBLAS, cuBLASLt, NCCL, every CudaOps op against CpuOps, TinyGpt
#                                   forward/backward and training steps on CudaOps), then compute-sanitizer memcheck
#                                   and racecheck on the "Gpu" category without the TinyGpt runs, then the TinyGpt
#                                   loss curve (below), then the benchmark.
#   scripts/gpu-suite.sh run STEPS  on the GPU machine: only the named steps, comma-separated, in order: tests,
#                                   sanitizers, curve, shardwise (Shardwise's bench), pytorch (the PyTorch reference),
#                                   profile (Shardwise's bench with --profile: device time per operation, in bench.log),
#                                   ncu (Nsight Compute on the kernels SHARDWISE_NCU_KERNELS names, into ncu.log);
#                                   "bench" is shardwise,pytorch. Split runs let one call look at the results before a
#                                   second call on the still-warm machine spends the rest (bench results of the first
#                                   call stay in /tmp there, so the report of the second covers both).
#
# The loss curve: TinyGpt's trainer, 200 steps of tinyshakespeare with bench/configs/tinygpt-curve.json (micro-batch
# 12, one metrics row per step, validation at steps 100 and 200), once with --device cuda and once with --device cpu
# (same seed, so same initial weights and batches), then `TinyGpt compare-curves` at its default tolerances (max
# |Δ training loss| 2e-3 on any step, final validation loss within 1e-4 relative; docs/cuda.md explains them).
#
# The benchmark (docs/benchmarks.md, "GPU: GPT-2 124M"): Gpt2Small's `bench --device cuda` with
# bench/configs/gpt2-fp16.json and gpt2-bf16.json, then bench/pytorch/gpt2_bench.py on the same model, batch and
# optimizer, eager and torch.compile, fp16 and bf16, all in this one call on this one card; bench/gpu_bench_report.py
# turns the JSON results into bench.md with the ratio Shardwise tokens/s ÷ torch.compile tokens/s.
#
# Results go under $OUT (at most 8 files come back): environment.txt, tests.log, tests.trx, sanitizers.log (memcheck
# then racecheck), curve.log (both training runs, the comparison, both metrics.csv), bench.log, bench.md, summary.txt. The summary is written row by row as steps finish (so a run cut
# short still leaves one) and printed last.
#
# Time budget (the device tool allows 600 s per command, and a session has 15 minutes of device time in all,
# machine start included): every step runs under `timeout`. Caps, and what the steps took on an H200 (2026-11-26,
# docs/gpu-results.md):
#     unpack and environment                    ~10 s
#     kernel test suite                         140 s   (took ~30 s; since the flash kernels' ldmatrix emulation the
#                                                        emulation tests alone pass 140 s there, so the step runs
#                                                        the GPU-relevant tests only: SHARDWISE_TESTS_FILTER)
#     compute-sanitizer memcheck, racecheck      60 s + 90 s  (partial logs on timeout; ~25 s + ~30 s on the filters used)
#     TinyGpt loss curve: GPU and CPU runs side by side 50 s, compare 10 s (took ~20 s)
#     Shardwise bench fp16, bf16                 50 s + 50 s  (2 warm-up steps, up to 10 timed, --max-seconds 20; ~8 s each)
#     Shardwise bench --profile per precision    40 s   (~6 s)
#     each opt-in variant (bf16; SHARDWISE_BENCH_VARIANTS, default "tuned product sparse sparse16", "" or
#     SHARDWISE_BENCH_FLASH_DQ_STORED=0 for none): bench 50 s, profile 40 s (~7 s each)
#     PyTorch eager + compile, fp16 and bf16     90 s + 90 s  (one process per precision; took 44 s and 25 s; the
#                                                              eager result is kept if compile runs out of time)
# The whole list (tests, curve, both benches, PyTorch, a bf16 profile, narrowed sanitizers) took 248 s in one call;
# tests, both benches with three variants, PyTorch, four bf16 profiles and narrowed sanitizers took 232 s (run 13),
# about 30 s more for the machine's start: three such calls (runs 11 to 13) used 833 s of the 900.
# A step that hits its cap shows exit code 124 in the summary; the steps after it still run.
# Rehearsal on a machine without a GPU: OUT=/tmp/out SHARDWISE_BENCH_PYTORCH_ARGS="--device cpu --tiny --precision bf16"
# scripts/gpu-suite.sh run bench (the CUDA steps fail with one line each; the PyTorch steps run the tiny model).
#
# From the CPU machine, with the device tool: command "scripts/gpu-suite.sh run", carry [".gpu"].
# Record what ran, on which card and when, in docs/gpu-results.md.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tests_dir=.gpu/kernels-tests
tests_dll=$tests_dir/Shardwise.Kernels.Tests.dll
gpt2_dir=.gpu/gpt2
gpt2_dll=$gpt2_dir/Gpt2Small.dll
tinygpt_dll=$gpt2_dir/TinyGpt.dll
curve_data=.gpu/tinyshakespeare.txt
curve_config=bench/configs/tinygpt-curve.json
carry_limit_kib=$((64 * 1024))

# dotnet publish, retried: other builds on the machine may hold files for a moment.
publish() {
  local attempt
  for attempt in 1 2 3; do
    dotnet publish "$@" -c Release -nologo -v:q -p:SatelliteResourceLanguages=en && return 0
    [ "$attempt" -lt 3 ] || return 1
    sleep 10
  done
}

# Only linux-x64 runs on the GPU machine: drop other platforms' native assets (this keeps .gpu within the carry).
prune_runtimes() {
  find "$1/runtimes" -mindepth 1 -maxdepth 1 -type d ! -name linux-x64 -exec rm -rf {} + 2>/dev/null || true
}

prepare() {
  set -e
  local shared=${SHARDWISE_SHARED:-$root/../shared}
  [ -x "$shared/gpu/pack-dotnet-runtime.sh" ] || { echo "gpu-suite: $shared/gpu/pack-dotnet-runtime.sh not found (set SHARDWISE_SHARED)" >&2; exit 1; }
  mkdir -p .gpu
  if ! "$shared/gpu/pack-dotnet-runtime.sh"; then
    # The shared script records .gpu/ in .git/info/exclude, which fails in a git worktree (.git is a file there);
    # .gitignore already ignores .gpu/, so pack the same runtime (the newest Microsoft.NETCore.App) here.
    local dn rt
    dn=$(dirname "$(readlink -f "$(command -v dotnet)")")
    rt=$(ls -d "$dn"/shared/Microsoft.NETCore.App/* | sort -V | tail -1)
    [ -s .gpu/dotnet-runtime.tar.xz ] ||
      tar -C "$dn" -cf - dotnet host/fxr "shared/Microsoft.NETCore.App/$(basename "$rt")" | xz -T2 -6 > .gpu/dotnet-runtime.tar.xz
    ls -la .gpu/dotnet-runtime.tar.xz
  fi

  # Publish the test project as a Microsoft.Testing.Platform application (runs with `dotnet X.dll`, no SDK, no
  # vstest). The properties apply to the test project only: CustomBeforeMicrosoftCommonProps is imported by every
  # project, and the condition picks the one; setting OutputType=Exe globally would break the libraries.
  cat > .gpu/kernels-tests-runner.props <<'PROPS'
<Project>
  <!-- Written by scripts/gpu-suite.sh prepare. -->
  <PropertyGroup Condition="'$(MSBuildProjectName)' == 'Shardwise.Kernels.Tests'">
    <OutputType>Exe</OutputType>
    <EnableMSTestRunner>true</EnableMSTestRunner>
    <UseAppHost>false</UseAppHost>
  </PropertyGroup>
</Project>
PROPS
  rm -rf "$tests_dir"
  publish tests/Shardwise.Kernels.Tests -o "$tests_dir" \
    -p:CustomBeforeMicrosoftCommonProps="$root/.gpu/kernels-tests-runner.props" ||
    { echo "gpu-suite: publishing the kernel tests failed" >&2; exit 1; }
  # Code coverage is never collected there.
  rm -rf "$tests_dir/Microsoft.CodeCoverage"
  rm -f "$tests_dir"/runtimes/linux-x64/native/{libInstrumentationEngine.so,libCoverageInstrumentationMethod.so,Cov_x64.config}
  prune_runtimes "$tests_dir"
  # The tests build the CPU emulation library on start (g++); build it here so the GPU machine needs no compiler.
  tests/kernels-harness/build.sh "$tests_dir/kernels-emu" >/dev/null

  # The benchmark model's trainer, framework-dependent (the packed runtime runs it).
  rm -rf "$gpt2_dir"
  publish examples/Gpt2Small -o "$gpt2_dir" -p:UseAppHost=false ||
    { echo "gpu-suite: publishing examples/Gpt2Small failed" >&2; exit 1; }
  prune_runtimes "$gpt2_dir"
  # Only bench runs there, and it draws no loss curve: the plotting natives (SkiaSharp, HarfBuzz; 11 MB, loaded only
  # when train plots) stay behind so that .gpu fits the carry. Symbols stay for readable stack traces.
  rm -f "$gpt2_dir"/runtimes/linux-x64/native/{libSkiaSharp.so,libHarfBuzzSharp.so}
  # TinyGpt's trainer for the loss-curve step: its dependencies are Gpt2Small's (same tree, same build), so only its
  # own files join .gpu/gpt2. Without the plotting natives its train writes metrics.csv and says "loss.png not written".
  local tinygpt_publish=.gpu/tinygpt-publish
  rm -rf "$tinygpt_publish"
  publish examples/TinyGpt -o "$tinygpt_publish" -p:UseAppHost=false ||
    { echo "gpu-suite: publishing examples/TinyGpt failed" >&2; exit 1; }
  local dependency
  for dependency in "$tinygpt_publish"/*.dll; do
    case "$(basename "$dependency")" in TinyGpt.dll) continue ;; esac
    cmp -s "$dependency" "$gpt2_dir/$(basename "$dependency")" ||
      { echo "gpu-suite: $(basename "$dependency") of TinyGpt differs from Gpt2Small's (or is missing there)" >&2; exit 1; }
  done
  cp "$tinygpt_publish"/TinyGpt.{dll,pdb,deps.json,runtimeconfig.json} "$gpt2_dir"/
  rm -rf "$tinygpt_publish"
  cp "$shared/data/tinyshakespeare.txt" "$curve_data"

  du -sk --apparent-size .gpu/* | awk '{printf "  %8d KiB  %s\n", $1, $2}'
  local kib
  kib=$(du -sk --apparent-size .gpu | cut -f1)
  if [ "$kib" -ge "$carry_limit_kib" ]; then
    echo "gpu-suite: .gpu is ${kib} KiB, over the 64 MiB carry limit" >&2
    exit 1
  fi
  echo "gpu-suite: prepared (.gpu ${kib} KiB of ${carry_limit_kib}); run 'scripts/gpu-suite.sh run' on the GPU machine with carry [\".gpu\"]"
}

# The first file matching a library glob: in the Python wheels, in ldconfig's cache, then a bounded search.
find_library() {
  local pattern=$1 wheel_root hit
  wheel_root=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__file__))' 2>/dev/null || true)
  if [ -n "$wheel_root" ]; then
    hit=$(find "$wheel_root" -name "$pattern" 2>/dev/null | head -1)
  fi
  if [ -z "${hit:-}" ]; then
    hit=$(ldconfig -p 2>/dev/null | awk '{print $NF}' | while read -r f; do
            case "$(basename "$f")" in $pattern) echo "$f" ;; esac
          done | head -1)
  fi
  if [ -z "${hit:-}" ]; then
    hit=$(timeout 60 find /usr /opt /lib /lib64 -xdev -name "$pattern" 2>/dev/null | head -1)
  fi
  [ -n "${hit:-}" ] && echo "$hit"
  return 0
}

# The directories (as found, and with links resolved) of the given library globs, colon-separated, no repeats.
library_dirs() {
  local pattern hit
  for pattern in "$@"; do
    hit=$(find_library "$pattern")
    [ -n "$hit" ] || continue
    dirname "$hit"
    dirname "$(readlink -f "$hit")"
  done | awk 'NF && !seen[$0]++' | paste -sd: -
}

# Unpacks the runtime, exports the library path and kernel cache, writes environment.txt and starts the summary.
setup_machine() {
  # Unpacked once per machine: several `run` invocations in one call share it.
  [ -x /tmp/dn/dotnet ] || { mkdir -p /tmp/dn && tar -C /tmp/dn -xJf .gpu/dotnet-runtime.tar.xz; }
  export DOTNET_ROOT=/tmp/dn PATH=/tmp/dn:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

  # The CUDA libraries: some live only inside the Python packages; the runtime finds them through
  # SHARDWISE_CUDA_PATH (probed before the system loader), never through a hard-coded path.
  SHARDWISE_CUDA_PATH=$(library_dirs 'libnvrtc.so.*' 'libcublas.so.*' 'libcublasLt.so.*' 'libnccl.so.2' 'libcuda.so.1')
  export SHARDWISE_CUDA_PATH
  export SHARDWISE_KERNEL_CACHE=/tmp/shardwise-kernel-cache

  {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown) (plus uncommitted changes, if any)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || echo "nvidia-smi failed"
    echo "dotnet: $(dotnet --list-runtimes 2>&1 | tail -1)"
    echo "python3: $(python3 -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1)"
    echo "SHARDWISE_CUDA_PATH=$SHARDWISE_CUDA_PATH"
    echo "ldconfig:"; ldconfig -p 2>/dev/null | grep -E 'libcuda\.|nvrtc|cublas|nccl' | sed 's/^/  /'
    echo "compute-sanitizer: $(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1 || echo none)"
  } > "$env_file" 2>&1

  {
    echo "| step | exit code | result |"
    echo "|---|---|---|"
  } > "$summary"
}

summary_row() { echo "| $1 | $2 | $3 |" >> "$summary"; }

use_prebuilt_emulation() {
  # The tests' assembly setup runs tests/kernels-harness/build.sh, which wants g++ even when everything is built.
  # prepare built the library from this same tree: mark it up to date, and stand in for a missing g++ with a shim
  # that fails loudly if a compilation were really needed.
  if ! command -v g++ >/dev/null; then
    mkdir -p /tmp/gxx-shim
    printf '#!/bin/sh\necho "gpu-suite: no g++ on this machine; the emulation library should have been prebuilt" >&2\nexit 1\n' \
      > /tmp/gxx-shim/g++
    chmod +x /tmp/gxx-shim/g++
    export PATH=/tmp/gxx-shim:$PATH
  fi
  touch "$tests_dir"/kernels-emu/obj/*.o
  sleep 1
  touch "$tests_dir/kernels-emu/libswkernels_emu.so"
}

run_tests() {
  [ -s "$tests_dll" ] ||
    { summary_row "kernel test suite" missing ".gpu/kernels-tests: run 'scripts/gpu-suite.sh prepare' and carry .gpu"; return 1; }
  # The Gpu tests fail (instead of being inconclusive) when the GPU or a library is missing.
  export SHARDWISE_REQUIRE_GPU=1

  use_prebuilt_emulation

  local results=/tmp/gpu-suite-results
  rm -rf "$results"
  # 1. What a GPU adds: NVRTC (this machine's CUDA 13) compile checks, the Gpu category, and every CudaOps/CudaModel
  #    test (on the real device here). The emulation-only tests (kernels on the SIMT harness) run in every CI run on
  #    the CPU and take minutes; SHARDWISE_TESTS_FILTER="" runs the whole suite anyway.
  local filter=(--filter "${SHARDWISE_TESTS_FILTER-TestCategory=Gpu|FullyQualifiedName~Cuda|FullyQualifiedName~Nvrtc|FullyQualifiedName~BackendSelection}")
  [ -n "${SHARDWISE_TESTS_FILTER-x}" ] || filter=()
  timeout 140 dotnet "$tests_dll" --results-directory "$results" --report-trx --report-trx-filename tests.trx \
    "${filter[@]}" --progress off --output Detailed > "$OUT/tests.log" 2>&1
  local tests_rc=$?
  cp "$results/tests.trx" "$OUT/tests.trx" 2>/dev/null || true
  # Microsoft.Testing.Platform's summary line: "Test run summary: Passed! - ... total: N, failed: F, ...".
  local tests_line
  tests_line=$(grep -E '^ +(total|failed|succeeded|skipped): ' "$OUT/tests.log" | tr -s ' ' | paste -sd, -)
  summary_row "kernel test suite (NVRTC, emulation, Gpu category)" "$tests_rc" "${tests_line:-see tests.log}"

  # The Gpu category: CudaInteropGpuTests, every CudaOpsTests and CudaModelTests method (TinyGpt on CudaOps).
  local gpu_tests='Gpu|LoadStoreZero|PositionsEmbedding|AnIdOutside|VocabularyParallelEmbedding|LinearForward|BiasAndAdd'
  gpu_tests+='|LayerNormAndGelu|AttentionForwardAndBackward|CrossEntropyWholeAnd|ActivationWindowsAre|OperationsAllocateNothing'
  gpu_tests+='|TinyGptForwardAndBackward|TrainingStepsOnTheGpu|DeviceMemoryInUse'
  gpu_lines=$(grep -E "^(passed|failed|skipped) ($gpu_tests)" "$OUT/tests.log" | head -40)
  [ "$tests_rc" -eq 0 ]
}

# compute-sanitizer on the short run: the Gpu category (launches, cuBLAS, cuBLASLt, NCCL, every CudaOps op)
# without the TinyGpt training runs of CudaModelTests, which are too long under the sanitizers.
run_sanitizers() {
  [ -s "$tests_dll" ] ||
    { summary_row "compute-sanitizer" missing ".gpu/kernels-tests: run 'scripts/gpu-suite.sh prepare' and carry .gpu"; return 1; }
  export SHARDWISE_REQUIRE_GPU=1
  use_prebuilt_emulation
  local sanitizer
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1 ||
              timeout 30 find / -xdev -name compute-sanitizer -type f 2>/dev/null | head -1)
  local memcheck_rc=skipped racecheck_rc=skipped
  # SHARDWISE_MEMCHECK_FILTER / SHARDWISE_RACECHECK_FILTER narrow the tests each sanitizer runs (MSTest filters).
  local sanitized=${SHARDWISE_MEMCHECK_FILTER:-"TestCategory=Gpu&FullyQualifiedName!~CudaModelTests&FullyQualifiedName!~CudaProfiler"}
  local raced=${SHARDWISE_RACECHECK_FILTER:-"FullyQualifiedName~CudaOps"}
  if [ -n "$sanitizer" ]; then
    # One file for both (the device tool brings back at most 8 files): memcheck, then racecheck.
    # API errors are not counted: the tests provoke some on purpose (cuModuleGetFunction of a missing kernel) and NCCL's
    # initialisation probes kernels it may not have; memcheck then reports memory access errors and leaks alone.
    timeout 60 "$sanitizer" --tool memcheck --report-api-errors no --error-exitcode 99 --print-limit 50 \
      --target-processes all dotnet "$tests_dll" --filter "$sanitized" --progress off > /tmp/memcheck.log 2>&1
    memcheck_rc=$?
    # racecheck (shared-memory hazards) is much slower: only the CudaOps op tests, fp32 and 16-bit, which launch
    # every kernel that uses shared memory.
    timeout 90 "$sanitizer" --tool racecheck --report-api-errors no --error-exitcode 99 --print-limit 50 \
      --target-processes all dotnet "$tests_dll" --filter "$raced" --progress off > /tmp/racecheck.log 2>&1
    racecheck_rc=$?
  else
    echo "compute-sanitizer not found" | tee /tmp/memcheck.log > /tmp/racecheck.log
  fi
  { echo "=== memcheck (exit code $memcheck_rc)"; cat /tmp/memcheck.log
    echo "=== racecheck (exit code $racecheck_rc)"; cat /tmp/racecheck.log; } > "$OUT/sanitizers.log"
  summary_row "compute-sanitizer memcheck (Gpu category)" "$memcheck_rc" "$(grep -E 'ERROR SUMMARY' /tmp/memcheck.log | tail -1)"
  summary_row "compute-sanitizer racecheck (Gpu category)" "$racecheck_rc" "$(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' /tmp/racecheck.log | tail -1)"

  [ "$memcheck_rc" != 99 ] && [ "$racecheck_rc" != 99 ]
}

# One benchmark step: a row in the summary and its output appended to bench.log.
bench_step() {
  local name=$1 limit=$2
  shift 2
  echo "=== $name (timeout ${limit}s): $*" >> "$OUT/bench.log"
  local started=$SECONDS offset
  offset=$(stat -c %s "$OUT/bench.log")
  timeout "$limit" "$@" >> "$OUT/bench.log" 2>&1
  local rc=$?
  echo "=== $name: exit code $rc after $((SECONDS - started)) s" >> "$OUT/bench.log"
  local why=""
  if [ "$rc" -eq 124 ]; then
    why="stopped by its ${limit} s time limit"
  elif [ "$rc" -ne 0 ]; then
    # This step's last error line (its output starts at offset).
    why=$(tail -c +"$((offset + 1))" "$OUT/bench.log" | grep -E '^error:|Error|[Ee]xception' | tail -1 | cut -c1-200 | tr '|' '/')
  fi
  summary_row "$name" "$rc" "$why"
  return "$rc"
}

# A loss-curve step's row: its exit code, and the verdict line of compare-curves or the run's last "done:"/"error:".
curve_row() {
  local name=$1 rc=$2 limit=$3 log=$4 result
  if [ "$rc" -eq 124 ]; then
    result="stopped by its ${limit} s time limit"
  else
    result=$(grep -E '^(curves (agree|differ)|done:|error:)' "$log" | tail -1 | cut -c1-200 | tr '|' '/')
  fi
  summary_row "$name" "$rc" "$result"
}

# TinyGpt on the GPU against the CPU: 200 steps each, same config and seed, then compare-curves (exit 1 = differ).
# The two runs are independent and use different hardware (the GPU run keeps one core busy, the CPU run the
# others), so they run side by side under one cap.
run_curve() {
  : > "$OUT/curve.log"
  if [ ! -s "$tinygpt_dll" ] || [ ! -s "$curve_data" ]; then
    summary_row "TinyGpt loss curve" missing "$tinygpt_dll or $curve_data: run 'scripts/gpu-suite.sh prepare' and carry .gpu"
    return 1
  fi
  local runs=/tmp/gpu-curve device limit=50 started=$SECONDS
  rm -rf "$runs" && mkdir -p "$runs"
  local train=(train --config "$curve_config" --data "$curve_data" --steps 200 --eval-interval 100 --eval-batches 20
               --save-interval 1000 --seed 1337)
  declare -A pid rc
  for device in cuda cpu; do
    timeout "$limit" dotnet "$tinygpt_dll" "${train[@]}" --device "$device" --output "$runs/$device" > "$runs/$device.log" 2>&1 &
    pid[$device]=$!
  done
  for device in cuda cpu; do
    wait "${pid[$device]}"
    rc[$device]=$?
    { echo "=== TinyGpt 200 steps, --device $device (timeout ${limit}s): exit code ${rc[$device]}"; cat "$runs/$device.log"; } >> "$OUT/curve.log"
    curve_row "TinyGpt 200 steps, --device $device" "${rc[$device]}" "$limit" "$runs/$device.log"
  done
  echo "=== both runs took $((SECONDS - started)) s" >> "$OUT/curve.log"

  timeout 10 dotnet "$tinygpt_dll" compare-curves --reference "$runs/cpu/metrics.csv" --candidate "$runs/cuda/metrics.csv" \
    > "$runs/compare.log" 2>&1
  local curve_rc=$?
  { echo "=== compare-curves, GPU against CPU: exit code $curve_rc"; cat "$runs/compare.log"; } >> "$OUT/curve.log"
  curve_row "TinyGpt loss curve: GPU against CPU" "$curve_rc" 10 "$runs/compare.log"
  for device in cpu cuda; do
    { echo "=== $device metrics.csv"; cat "$runs/$device/metrics.csv" 2>/dev/null || echo "(none)"; } >> "$OUT/curve.log"
  done
  return "$curve_rc"
}

bench_results=/tmp/gpu-bench-results
bench_files=("$bench_results/shardwise-fp16.json" "$bench_results/shardwise-bf16.json"
             "$bench_results/pytorch-fp16.json" "$bench_results/pytorch-bf16.json")

# Shardwise's bench on the given precisions (default both). Results of earlier calls on the same warm machine stay,
# so a later call can add the PyTorch side and still report all four.
run_shardwise_bench() {
  mkdir -p "$bench_results"
  touch "$OUT/bench.log"
  if [ ! -s "$gpt2_dll" ]; then
    summary_row "Shardwise bench" missing ".gpu/gpt2: run 'scripts/gpu-suite.sh prepare' and carry .gpu"
    return 1
  fi
  local rc=0 precision
  for precision in ${SHARDWISE_BENCH_PRECISIONS:-fp16 bf16}; do
    rm -f "$bench_results/shardwise-$precision.json"
    bench_step "Shardwise bench, Gpt2Small $precision" 50 \
      dotnet "$gpt2_dll" bench --device cuda --config "bench/configs/gpt2-$precision.json" \
      --warmup 2 --steps 10 --max-seconds 20 --json "$bench_results/shardwise-$precision.json" || rc=1
  done
  # SHARDWISE_BENCH_GEMM_ATTENTION=1: bf16 once more with the GEMM + softmax attention (bench.log only), to compare it
  # with the default fused flash attention.
  if [ "${SHARDWISE_BENCH_GEMM_ATTENTION:-0}" = 1 ]; then
    bench_step "Shardwise bench, Gpt2Small bf16, GEMM + softmax attention" 50 \
      env SHARDWISE_FUSED_ATTENTION=0 dotnet "$gpt2_dll" bench --device cuda --config bench/configs/gpt2-bf16.json --warmup 2 --steps 10 --max-seconds 20 ||
      rc=1
  fi
  # The opt-in variants (SHARDWISE_BENCH_VARIANTS, below), bf16 once more each (bench.log only).
  local variant
  for variant in $(bench_variants); do
    bench_step "Shardwise bench, Gpt2Small bf16, $(variant_label "$variant")" 50 \
      env $(variant_environment "$variant") dotnet "$gpt2_dll" bench --device cuda --config "$(variant_config "$variant")" \
      --warmup 2 --steps 10 --max-seconds 20 || rc=1
  done
  return "$rc"
}

# Variants timed beside the default until a measurement decides them (SHARDWISE_BENCH_VARIANTS, space-separated; ""
# for none): recompute (flash dQ recomputed instead of read from stored dSᵀ, the default before run 12,
# SHARDWISE_FLASH_DQ=recompute), tuned (GEMM algorithms timed at their first call, SHARDWISE_GEMM_TUNING=1), product
# (16-bit bias gradients as one cuBLAS product dyᵀ·1, SHARDWISE_BIAS_GRADIENT=product), product+tuned (both), pair
# (the loss's forward and backward cross-entropy kernels instead of the fused one, SHARDWISE_CROSS_ENTROPY=pair),
# sparse (block-sparse attention, bench/configs/gpt2-bf16-sparse.json: fixed, blocks of 64, 4-block windows, so the
# flash kernels visit 47% of the causal tiles; against the dense bf16 row of the same call), sparse16 (the same
# pattern with DeepSpeed's default blocks of 16, bench/configs/gpt2-bf16-sparse16.json: every 64×64 tile is visited,
# and the warps skip the 16-wide key groups their rows drop).
# SHARDWISE_BENCH_FLASH_DQ_STORED=0, an older switch, still drops every variant.
bench_variants() {
  [ "${SHARDWISE_BENCH_FLASH_DQ_STORED:-1}" = 1 ] || return 0
  echo "${SHARDWISE_BENCH_VARIANTS-tuned product sparse sparse16}"
}

variant_config() {
  case "$1" in
    sparse) echo bench/configs/gpt2-bf16-sparse.json ;;
    sparse16) echo bench/configs/gpt2-bf16-sparse16.json ;;
    *) echo bench/configs/gpt2-bf16.json ;;
  esac
}

variant_environment() {
  case "$1" in
    sparse) echo SHARDWISE_BENCH_VARIANT=sparse ;;
    sparse16) echo SHARDWISE_BENCH_VARIANT=sparse16 ;;
    recompute) echo SHARDWISE_FLASH_DQ=recompute ;;
    tuned) echo SHARDWISE_GEMM_TUNING=1 ;;
    product) echo SHARDWISE_BIAS_GRADIENT=product ;;
    product+tuned) echo SHARDWISE_BIAS_GRADIENT=product SHARDWISE_GEMM_TUNING=1 ;;
    pair) echo SHARDWISE_CROSS_ENTROPY=pair ;;
    *) echo "SHARDWISE_UNKNOWN_VARIANT=$1" ;;
  esac
}

variant_label() {
  case "$1" in
    recompute) echo "flash dQ recomputed" ;;
    tuned) echo "GEMM algorithms tuned" ;;
    product) echo "bias gradients as a cuBLAS product" ;;
    product+tuned) echo "bias gradients as a cuBLAS product, GEMM algorithms tuned" ;;
    pair) echo "cross-entropy as forward and backward kernels (not fused)" ;;
    sparse) echo "block-sparse attention (fixed, blocks of 64)" ;;
    sparse16) echo "block-sparse attention (fixed, blocks of 16: DeepSpeed's default block)" ;;
    *) echo "unknown variant $1" ;;
  esac
}

# Shardwise's bench again with --profile: device time per operation (bench.log only; the timed numbers above stay
# the unprofiled ones).
run_profile() {
  touch "$OUT/bench.log"
  [ -s "$gpt2_dll" ] || { summary_row "Shardwise bench --profile" missing ".gpu/gpt2"; return 1; }
  local rc=0 precision
  for precision in ${SHARDWISE_PROFILE_PRECISIONS:-${SHARDWISE_BENCH_PRECISIONS:-fp16 bf16}}; do
    bench_step "Shardwise bench --profile, Gpt2Small $precision" 40 \
      dotnet "$gpt2_dll" bench --device cuda --config "bench/configs/gpt2-$precision.json" \
      --warmup 2 --steps 5 --max-seconds 10 --profile || rc=1
  done
  local variant
  for variant in $(bench_variants); do
    bench_step "Shardwise bench --profile, Gpt2Small bf16, $(variant_label "$variant")" 40 \
      env $(variant_environment "$variant") dotnet "$gpt2_dll" bench --device cuda --config "$(variant_config "$variant")" \
      --warmup 2 --steps 5 --max-seconds 10 --profile || rc=1
  done
  return "$rc"
}

# Nsight Compute on chosen kernels of one bench step (ncu.log): duration, memory and compute throughput, occupancy.
# SHARDWISE_NCU_KERNELS lists kernel-name regular expressions, space-separated; each gets one ncu run of its own
# that profiles its first launch after SHARDWISE_NCU_SKIP (default 0) matching ones. SHARDWISE_NCU_ENV: variables for
# the profiled bench only (e.g. SHARDWISE_FLASH_DQ=stored, to profile a variant's kernels).
run_ncu() {
  local ncu pattern rc=0
  ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [ -z "$ncu" ]; then summary_row "ncu" missing "Nsight Compute not found"; return 1; fi
  : > "$OUT/ncu.log"
  # SHARDWISE_NCU_SECTIONS overrides the sections (e.g. add WarpStateStats InstructionStats for stall reasons).
  local section ncu_sections=""
  # The defaults look at the attention kernels, the largest gap to torch.compile (docs/gpu-results.md, tenth session):
  # where their warps stall (WarpStateStats), how often the schedulers issue (SchedulerStats).
  for section in ${SHARDWISE_NCU_SECTIONS:-SpeedOfLight LaunchStats Occupancy MemoryWorkloadAnalysis WarpStateStats SchedulerStats}; do
    ncu_sections+=" --section $section"
  done
  for pattern in ${SHARDWISE_NCU_KERNELS:-backward_dkdv_d64 forward_d64 backward_dq_stored}; do
    echo "=== ncu -k regex:$pattern" >> "$OUT/ncu.log"
    timeout 60 env ${SHARDWISE_NCU_ENV:-} "$ncu" --target-processes all -k "regex:$pattern" --launch-skip "${SHARDWISE_NCU_SKIP:-0}" -c 1 \
      $ncu_sections \
      dotnet "$gpt2_dll" bench --device cuda --config bench/configs/gpt2-bf16.json --warmup 0 --steps 1 >> "$OUT/ncu.log" 2>&1
    local step_rc=$?
    summary_row "ncu $pattern" "$step_rc" "$(grep -E 'Duration|Memory Throughput' "$OUT/ncu.log" | tail -2 | tr -s ' ' | paste -sd';' -)"
    [ "$step_rc" -eq 0 ] || rc=1
  done
  return "$rc"
}

# PyTorch on the same model, batch and optimizer: eager and torch.compile, one process per precision.
run_pytorch_bench() {
  mkdir -p "$bench_results"
  touch "$OUT/bench.log"
  local rc=0 precision
  for precision in ${SHARDWISE_BENCH_PRECISIONS:-fp16 bf16}; do
    rm -f "$bench_results/pytorch-$precision.json"
    bench_step "PyTorch eager + torch.compile $precision" 90 \
      python3 bench/pytorch/gpt2_bench.py --config "bench/configs/gpt2-$precision.json" --mode both \
      --warmup 3 --steps 10 --json "$bench_results/pytorch-$precision.json" ${SHARDWISE_BENCH_PYTORCH_ARGS:-} || rc=1
  done
  return "$rc"
}

# bench.md and the ratio rows from whichever results exist.
bench_report() {
  python3 bench/gpu_bench_report.py "${bench_files[@]}" > "$OUT/bench.md" 2>> "$OUT/bench.log" ||
    echo "gpu_bench_report.py failed; see bench.log" >> "$OUT/bench.md"
  local file line
  {
    echo; echo '## Raw results'
    for file in "${bench_files[@]}"; do
      echo; echo "$(basename "$file"):"; echo '```json'; cat "$file" 2>/dev/null || echo "(none)"; echo '```'
    done
  } >> "$OUT/bench.md"
  while IFS= read -r line; do
    summary_row "ratio" "" "$line"
  done < <(python3 bench/gpu_bench_report.py --ratio-only "${bench_files[@]}" 2>/dev/null)
}

# Steps: tests, sanitizers, curve, shardwise, pytorch, profile (comma- or space-separated), or all, bench (shardwise and
# pytorch). SHARDWISE_BENCH_PRECISIONS narrows the two bench steps (default "fp16 bf16").
run() {
  : "${OUT:?gpu-suite run: OUT is not set (the device tool sets it to its output folder)}"
  local what=${*:-all} steps="" step
  what=${what//,/ }
  for step in $what; do
    case "$step" in
      all) steps+=" tests sanitizers curve shardwise profile pytorch" ;;
      bench) steps+=" shardwise pytorch" ;;
      tests|sanitizers|curve|shardwise|pytorch|profile|ncu) steps+=" $step" ;;
      *) echo "usage: $0 run [all | bench | STEP,STEP...]  (steps: tests sanitizers curve shardwise pytorch profile ncu)" >&2; exit 2 ;;
    esac
  done
  mkdir -p "$OUT"
  env_file=$OUT/environment.txt summary=$OUT/summary.txt gpu_lines=""
  [ -s .gpu/dotnet-runtime.tar.xz ] ||
    { echo "gpu-suite: .gpu is missing or incomplete: run 'scripts/gpu-suite.sh prepare' and carry .gpu" | tee "$summary"; exit 1; }
  setup_machine

  local failed=0 benched=0
  for step in $steps; do
    case "$step" in
      tests) run_tests || failed=1 ;;
      sanitizers) run_sanitizers || failed=1 ;;
      curve) run_curve || failed=1 ;;
      shardwise) run_shardwise_bench || failed=1; benched=1 ;;
      pytorch) run_pytorch_bench || failed=1; benched=1 ;;
      profile) run_profile || failed=1 ;;
      ncu) run_ncu || failed=1 ;;
    esac
  done
  [ "$benched" -eq 1 ] && bench_report
  {
    echo
    echo "steps:$steps"
    echo "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
    echo "SHARDWISE_CUDA_PATH=$SHARDWISE_CUDA_PATH"
    [ "$benched" -eq 1 ] && echo "benchmark table: bench.md"
    [ -n "$gpu_lines" ] && echo "$gpu_lines"
  } >> "$summary"
  cat "$summary"
  [ "$failed" -eq 0 ]
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 prepare | run [all | bench | STEP,STEP...]   (see the comment at the top of this script and docs/cuda.md)" >&2; exit 2 ;;
esac
