#!/usr/bin/env bash
# The one script for a GPU machine (see /work/shared/gpu/README.md and docs/cuda.md). Two phases:
#
#   scripts/gpu-suite.sh prepare   on the CPU machine (needs the .NET SDK, g++ and NVRTC): packs the .NET runtime
#                                  into .gpu/dotnet-runtime.tar.xz, publishes tests/Shardwise.Kernels.Tests as a
#                                  self-running MSTest application into .gpu/kernels-tests and builds the CPU
#                                  emulation library it needs next to it. Nothing is committed; .gpu/ is ignored.
#   scripts/gpu-suite.sh run       on the GPU machine (no .NET, no registry; carry .gpu), from the repository root:
#                                  unpacks the runtime, finds the CUDA 13 libraries and exports SHARDWISE_CUDA_PATH,
#                                  runs the whole kernel test suite (NVRTC compile checks with the machine's NVRTC,
#                                  the CPU emulation tests, and the "Gpu" category: driver, modules, kernels against
#                                  the CPU backend, cuBLAS, cuBLASLt, NCCL, every CudaOps op against CpuOps, TinyGpt
#                                  forward/backward and training steps on CudaOps), then compute-sanitizer memcheck
#                                  and racecheck on the "Gpu" category without the TinyGpt runs. Results go under
#                                  $OUT (at most 8 files): environment.txt, tests.log, tests.trx, memcheck.log, racecheck.log, summary.txt;
#                                  the summary table is printed last.
#
# From the CPU machine, with the device tool: command "scripts/gpu-suite.sh run", carry [".gpu"].
# Record what ran, on which card and when, in docs/gpu-results.md.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tests_dir=.gpu/kernels-tests
tests_dll=$tests_dir/Shardwise.Kernels.Tests.dll

prepare() {
  set -e
  local shared=${SHARDWISE_SHARED:-$root/../shared}
  [ -x "$shared/gpu/pack-dotnet-runtime.sh" ] || { echo "gpu-suite: $shared/gpu/pack-dotnet-runtime.sh not found (set SHARDWISE_SHARED)" >&2; exit 1; }
  "$shared/gpu/pack-dotnet-runtime.sh"

  # Publish the test project as a Microsoft.Testing.Platform application (runs with `dotnet X.dll`, no SDK, no
  # vstest). The properties apply to the test project only: CustomBeforeMicrosoftCommonProps is imported by every
  # project, and the condition picks the one; setting OutputType=Exe globally would break the libraries.
  mkdir -p .gpu
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
  local attempt
  for attempt in 1 2 3; do
    # Other builds may hold files for a moment: retry a failed publish.
    if dotnet publish tests/Shardwise.Kernels.Tests -c Release -o "$tests_dir" -nologo -v:q \
         -p:CustomBeforeMicrosoftCommonProps="$root/.gpu/kernels-tests-runner.props" \
         -p:SatelliteResourceLanguages=en; then
      break
    fi
    [ "$attempt" -lt 3 ] || { echo "gpu-suite: publish failed" >&2; exit 1; }
    sleep 10
  done
  # Only linux-x64 runs there; code coverage is never collected. This keeps .gpu within the 64 MiB carry limit.
  rm -rf "$tests_dir/Microsoft.CodeCoverage"
  find "$tests_dir/runtimes" -mindepth 1 -maxdepth 1 -type d ! -name linux-x64 -exec rm -rf {} + 2>/dev/null || true
  # The tests build the CPU emulation library on start (g++); build it here so the GPU machine needs no compiler.
  tests/kernels-harness/build.sh "$tests_dir/kernels-emu" >/dev/null
  du -sh .gpu
  local kib
  kib=$(du -sk .gpu | cut -f1)
  [ "$kib" -lt $((64 * 1024)) ] || echo "gpu-suite: WARNING: .gpu is ${kib} KiB, over the 64 MiB carry limit" >&2
  echo "gpu-suite: prepared; run 'scripts/gpu-suite.sh run' on the GPU machine with carry [\".gpu\"]"
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

run() {
  : "${OUT:?gpu-suite run: OUT is not set (the device tool sets it to its output folder)}"
  mkdir -p "$OUT"
  local env_file=$OUT/environment.txt summary=$OUT/summary.txt
  [ -s .gpu/dotnet-runtime.tar.xz ] && [ -s "$tests_dll" ] ||
    { echo "gpu-suite: .gpu is missing or incomplete: run 'scripts/gpu-suite.sh prepare' and carry .gpu" | tee "$summary"; exit 1; }

  mkdir -p /tmp/dn && tar -C /tmp/dn -xJf .gpu/dotnet-runtime.tar.xz
  export DOTNET_ROOT=/tmp/dn PATH=/tmp/dn:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

  # The CUDA libraries: some live only inside the Python packages; the runtime finds them through
  # SHARDWISE_CUDA_PATH (probed before the system loader), never through a hard-coded path.
  SHARDWISE_CUDA_PATH=$(library_dirs 'libnvrtc.so.*' 'libcublas.so.*' 'libcublasLt.so.*' 'libnccl.so.2' 'libcuda.so.1')
  export SHARDWISE_CUDA_PATH
  export SHARDWISE_KERNEL_CACHE=/tmp/shardwise-kernel-cache
  # The Gpu tests fail (instead of being inconclusive) when the GPU or a library is missing.
  export SHARDWISE_REQUIRE_GPU=1

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

  {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown) (plus uncommitted changes, if any)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || echo "nvidia-smi failed"
    echo "dotnet: $(dotnet --list-runtimes 2>&1 | tail -1)"
    echo "SHARDWISE_CUDA_PATH=$SHARDWISE_CUDA_PATH"
    echo "ldconfig:"; ldconfig -p 2>/dev/null | grep -E 'libcuda\.|nvrtc|cublas|nccl' | sed 's/^/  /'
    echo "compute-sanitizer: $(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1 || echo none)"
  } > "$env_file" 2>&1

  local results=/tmp/gpu-suite-results
  rm -rf "$results"
  # 1. The whole suite: NVRTC (this machine's CUDA 13) compile checks, emulation tests, and the Gpu category.
  timeout 300 dotnet "$tests_dll" --results-directory "$results" --report-trx --report-trx-filename tests.trx \
    --progress off --output Detailed > "$OUT/tests.log" 2>&1
  local tests_rc=$?
  cp "$results/tests.trx" "$OUT/tests.trx" 2>/dev/null || true

  # 2. compute-sanitizer on the short run: the Gpu category (launches, cuBLAS, cuBLASLt, NCCL, every CudaOps op)
  #    without the TinyGpt training runs of CudaModelTests, which are too long under the sanitizers.
  local sanitizer
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1 ||
              timeout 60 find / -xdev -name compute-sanitizer -type f 2>/dev/null | head -1)
  local memcheck_rc=skipped racecheck_rc=skipped
  local sanitized="TestCategory=Gpu&FullyQualifiedName!~CudaModelTests"
  if [ -n "$sanitizer" ]; then
    timeout 150 "$sanitizer" --tool memcheck --error-exitcode 99 --print-limit 50 --target-processes all \
      dotnet "$tests_dll" --filter "$sanitized" --progress off > "$OUT/memcheck.log" 2>&1
    memcheck_rc=$?
    timeout 150 "$sanitizer" --tool racecheck --error-exitcode 99 --print-limit 50 --target-processes all \
      dotnet "$tests_dll" --filter "$sanitized" --progress off > "$OUT/racecheck.log" 2>&1
    racecheck_rc=$?
  else
    echo "compute-sanitizer not found" | tee "$OUT/memcheck.log" > "$OUT/racecheck.log"
  fi

  # Microsoft.Testing.Platform's summary line: "Test run summary: Passed! - ... total: N, failed: F, ...".
  local tests_line gpu_line
  tests_line=$(grep -E '^ +(total|failed|succeeded|skipped): ' "$OUT/tests.log" | tr -s ' ' | paste -sd, -)
  # The Gpu category: CudaInteropGpuTests, every CudaOpsTests and CudaModelTests method (TinyGpt on CudaOps).
  local gpu_tests='Gpu|LoadStoreZero|PositionsEmbedding|AnIdOutside|VocabularyParallelEmbedding|LinearForward|BiasAndAdd'
  gpu_tests+='|LayerNormAndGelu|AttentionForwardAndBackward|CrossEntropyWholeAnd|ActivationWindowsAre|OperationsAllocateNothing'
  gpu_tests+='|TinyGptForwardAndBackward|TrainingStepsOnTheGpu'
  gpu_line=$(grep -E "^(passed|failed|skipped) ($gpu_tests)" "$OUT/tests.log" | head -40)
  {
    echo "| step | exit code | result |"
    echo "|---|---|---|"
    echo "| kernel test suite (NVRTC, emulation, Gpu category) | $tests_rc | ${tests_line:-see tests.log} |"
    echo "| compute-sanitizer memcheck (Gpu category) | $memcheck_rc | $(grep -E 'ERROR SUMMARY' "$OUT/memcheck.log" | tail -1) |"
    echo "| compute-sanitizer racecheck (Gpu category) | $racecheck_rc | $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$OUT/racecheck.log" | tail -1) |"
    echo
    echo "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
    echo "SHARDWISE_CUDA_PATH=$SHARDWISE_CUDA_PATH"
    [ -n "$gpu_line" ] && echo "$gpu_line"
  } > "$summary"
  cat "$summary"
  [ "$tests_rc" -eq 0 ] && [ "$memcheck_rc" != 99 ] && [ "$racecheck_rc" != 99 ]
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run   (see the comment at the top of this script and docs/cuda.md)" >&2; exit 2 ;;
esac
