#!/usr/bin/env bash
# Builds the emulated NVIDIA libraries into OUTDIR: libcuda.so.1 (the driver, with every kernels-cu kernel compiled
# by tests/kernels-harness/build.sh and run by its SIMT scheduler), libcublas.so.13, libcublasLt.so.13 and
# libnccl.so.2. Point SHARDWISE_CUDA_PATH at OUTDIR and the runtime loads them instead of the real ones (NVRTC stays
# the system's). Each library exports only its API (a version script), so the harness's own symbols cannot clash
# with a libswkernels_emu.so loaded in the same process. Objects are rebuilt only when a source or header changed.
# Usage: tests/cuda-emulator/build.sh OUTDIR      (the emulation tests run it once per test run)
set -euo pipefail
# A failed compile inside $(object …) must stop the build, not leave a stale object to be linked.
shopt -s inherit_errexit
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
mkdir -p "$out/obj"
command -v g++ >/dev/null || { echo "build.sh: g++ not found (run scripts/setup-cuda-tools.sh)" >&2; exit 1; }

"$here/../kernels-harness/build.sh" "$out/harness" >/dev/null
harness_objects=("$out"/harness/obj/*.o)

CXX=${CXX:-g++}
flags=(-std=c++17 -O2 -fPIC -Wall -Wextra -Werror)
headers=("$here"/*.hpp)

# Compiles $1.cpp to obj/$1.o when the object is missing or older than the source or any header.
object() {
  local name=$1 source="$here/$1.cpp" target="$out/obj/$1.o"
  local rebuild=0
  [ -e "$target" ] && [ ! "$source" -nt "$target" ] || rebuild=1
  for header in "${headers[@]}"; do [ "$header" -nt "$target" ] && rebuild=1; done
  if [ $rebuild -eq 1 ]; then
    "$CXX" "${flags[@]}" -c "$source" -o "$target.tmp"
    mv "$target.tmp" "$target"
  fi
  echo "$target"
}

# link LIBRARY EXPORT-PATTERN OBJECT...: a shared library that exports only symbols matching the pattern(s).
link() {
  local name=$1 library="$out/$1" exports=$2
  shift 2
  local needs=0
  [ -e "$library" ] || needs=1
  for o in "$@"; do [ "$o" -nt "$library" ] && needs=1; done
  [ $needs -eq 1 ] || return 0
  local script="$out/obj/$name.map"
  printf '{ global: %s local: *; };\n' "$exports" > "$script"
  "$CXX" -shared -o "$library.tmp" -Wl,--version-script="$script" -Wl,-soname,"$name" "$@" -ldl
  mv "$library.tmp" "$library"
}

# Assignments, so that a failing compile ends the script (set -e ignores substitutions inside a command's arguments).
driver=$(object driver)
memory=$(object memory)
ptx=$(object ptx)
stream_order=$(object stream_order)
errors=$(object errors)
cublas=$(object cublas)
gemm=$(object gemm)
cublaslt=$(object cublaslt)
nccl=$(object nccl)
rendezvous=$(object rendezvous)
link libcuda.so.1 "cu*; swemu_*;" "$driver" "$memory" "$ptx" "$stream_order" "$errors" "${harness_objects[@]}"
link libcublas.so.13 "cublas*;" "$cublas" "$gemm"
link libcublasLt.so.13 "cublasLt*;" "$cublaslt" "$gemm"
link libnccl.so.2 "nccl*;" "$nccl" "$rendezvous" "$gemm"
echo "$out"
