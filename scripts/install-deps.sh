#!/usr/bin/env bash
# Installs the system packages the build and the tests need (Debian/Ubuntu), only those that are missing.
#   glslc                      shader compiler (GLSL -> SPIR-V) used at build time
#   libvulkan1 + mesa-vulkan-drivers   Vulkan loader + lavapipe (software Vulkan device for tests)
#   ocl-icd-libopencl1 + pocl-opencl-icd   OpenCL loader + PoCL (CPU OpenCL device for tests)
#   clang lld zlib1g-dev       NativeAOT link step
#   tmux                       a real terminal for the chat tests
set -euo pipefail
pkgs=(glslc libvulkan1 mesa-vulkan-drivers ocl-icd-libopencl1 pocl-opencl-icd clang lld zlib1g-dev tmux)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all system packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
