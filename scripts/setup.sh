#!/usr/bin/env bash
# Installs what Shardwise needs on a fresh Debian 12 machine (run as root or with sudo).
# Idempotent: packages already present are skipped without touching apt.
set -euo pipefail

# libopenblas0-pthread: GEMMs on the CPU backend; fonts-dejavu-core: text in the loss-curve PNG;
# openmpi-bin + libopenmpi-dev: multi-process runs (mpirun, libmpi).
packages=(libopenblas0-pthread fonts-dejavu-core openmpi-bin libopenmpi-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# NVRTC (Debian non-free, CUDA 11.8) and g++: kernels are compiled and emulated in every test run, GPU or not.
bash "$(dirname "${BASH_SOURCE[0]}")/setup-cuda-tools.sh"

if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup: the .NET 10 SDK is required (https://dot.net); dotnet was not found on PATH" >&2
  exit 1
fi
echo "setup: ok"
