#!/usr/bin/env bash
# Installs what the CUDA kernel checks need on a Debian 12 (bookworm) machine without a GPU (run as root or sudo):
#   libnvrtc11.2 — NVRTC from CUDA 11.8 (Debian non-free), which compiles kernels-cu/*.cu to PTX for
#                  compute_80/compute_90, so every kernel is proven to compile on machines with no GPU;
#   g++          — builds the SIMT emulation harness (tests/kernels-harness) that runs the same kernels on the CPU.
# Enables bookworm's non-free component in a sources file of its own if no apt source has it yet.
# Idempotent: does nothing (and never calls apt) when everything is present.
set -euo pipefail

packages=(libnvrtc11.2 g++)
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-cuda-tools: ok"
  exit 0
fi

# libnvrtc11.2 lives in non-free. Add it (for bookworm only) unless some source already lists it.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [[ " ${missing[*]} " == *" libnvrtc11.2 "* ]] && [ "$codename" = bookworm ] &&
   ! grep -rqsE '^[^#]*[[:space:]]non-free([[:space:]]|$)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "setup-cuda-tools: enabling Debian bookworm non-free in /etc/apt/sources.list.d/shardwise-non-free.sources"
  $SUDO tee /etc/apt/sources.list.d/shardwise-non-free.sources >/dev/null <<'SOURCES'
# Added by Shardwise scripts/setup-cuda-tools.sh: bookworm non-free for libnvrtc11.2 (CUDA 11.8 NVRTC).
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: non-free non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi

echo "setup-cuda-tools: installing ${missing[*]}"
# Other builds may hold the dpkg lock for a while; wait for it instead of failing.
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
if ! apt-cache show libnvrtc11.2 >/dev/null 2>&1; then
  echo "setup-cuda-tools: libnvrtc11.2 is not available from the configured apt sources" >&2
  exit 1
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
echo "setup-cuda-tools: ok ($(dpkg-query -W -f='${Package} ${Version}' libnvrtc11.2))"
