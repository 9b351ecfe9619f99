#!/usr/bin/env bash
# Builds the SIMT emulation library OUTDIR/libswkernels_emu.so: every kernels-cu/*.cu compiled as C++ with simt.hpp
# force-included, plus the scheduler (simt.cpp), its context switch (fiber.cpp) and the harness's own self-test
# kernels. Objects are rebuilt only when their source or a header is newer, two compiles at a time, so a rerun with
# nothing changed takes no time.
# Usage: tests/kernels-harness/build.sh OUTDIR      (the C# kernel tests run it once per test run)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
kernels=$(cd "$here/../../kernels-cu" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
mkdir -p "$out/obj"
command -v g++ >/dev/null || { echo "build.sh: g++ not found (run scripts/setup-cuda-tools.sh)" >&2; exit 1; }

CXX=${CXX:-g++}
flags=(-std=c++17 -O1 -fPIC -Wall -Wextra -Werror -Wno-unused-parameter -I "$kernels")
headers=("$here/simt.hpp" "$here/fiber.hpp" "$kernels"/*.cuh)

sources=("$kernels"/*.cu "$here"/*.cu "$here/simt.cpp" "$here/fiber.cpp")
objects=()
for source in "${sources[@]}"; do objects+=("$out/obj/$(basename "$source").o"); done

# Prints "source object" for every object that is missing or older than its source or any header.
stale() {
  for source in "${sources[@]}"; do
    object="$out/obj/$(basename "$source").o"
    local rebuild=0
    [ -e "$object" ] && [ ! "$source" -nt "$object" ] || rebuild=1
    for header in "${headers[@]}"; do [ "$header" -nt "$object" ] && rebuild=1; done
    [ $rebuild -eq 0 ] || echo "$source $object"
  done
}

compile() {
  local source=$1 object=$2
  case "$source" in
    *.cu) "$CXX" "${flags[@]}" -x c++ -include "$here/simt.hpp" -c "$source" -o "$object.tmp" ;;
    *) "$CXX" "${flags[@]}" -c "$source" -o "$object.tmp" ;;
  esac
  mv "$object.tmp" "$object"
}
work=$(stale)
if [ -n "$work" ]; then
  pids=()
  while read -r source object; do
    compile "$source" "$object" &
    pids+=($!)
    if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  done <<< "$work"
  for pid in "${pids[@]}"; do wait "$pid"; done
fi

library="$out/libswkernels_emu.so"
needs_link=0
[ -e "$library" ] || needs_link=1
for object in "${objects[@]}"; do [ "$object" -nt "$library" ] && needs_link=1; done
if [ $needs_link -eq 1 ]; then
  "$CXX" -shared -o "$library.tmp" "${objects[@]}"
  mv "$library.tmp" "$library"
fi
echo "$library"
