#!/usr/bin/env bash
# Build a recent glslang (standalone `glslang` / `glslangValidator`) from source.
#
# Why: Debian 12 ships glslang 11.13 / shaderc 2023.2, which cannot compile
# shaders using GL_NV_cooperative_matrix2 / GL_KHR_cooperative_matrix.
# Verified with glslang tag 16.5.0.
#
# THIS SCRIPT DOWNLOADS NOTHING. Get the glslang sources yourself (e.g. a
# checkout of https://github.com/KhronosGroup/glslang at a release tag) and
# point the script at them. SPIRV-Tools / SPIRV-Headers are NOT needed: we build
# without the optimizer (ENABLE_OPT=OFF); glslang carries its own SPIR-V headers.
#
# Usage:
#   scripts/build-glslang.sh [GLSLANG_SRC] [PREFIX]
#   GLSLANG_SRC=/path/to/glslang PREFIX=/opt/glslang scripts/build-glslang.sh
# Defaults: PREFIX=/work/tools/glslang, build dir = $BUILD_DIR or $PREFIX-build,
#           JOBS = nproc.
# Requires (Debian 12): apt-get install cmake ninja-build g++ python3
# Result: $PREFIX/bin/glslang (and glslangValidator symlink).
set -euo pipefail

SRC="${1:-${GLSLANG_SRC:-}}"
PREFIX="${2:-${PREFIX:-/work/tools/glslang}}"
BUILD_DIR="${BUILD_DIR:-${PREFIX}-build}"
JOBS="${JOBS:-$(nproc)}"

if [[ -z "$SRC" || ! -f "$SRC/CMakeLists.txt" || ! -d "$SRC/glslang" ]]; then
    echo "usage: $0 <glslang-source-dir> [prefix]   (or set GLSLANG_SRC)" >&2
    exit 1
fi

for tool in cmake ninja c++ python3; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

# Configure: release build, static libs, standalone binaries on,
# optimizer (needs External/spirv-tools) and tests (need googletest) off.
cmake -S "$SRC" -B "$BUILD_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" \
    -DBUILD_SHARED_LIBS=OFF \
    -DENABLE_OPT=OFF \
    -DGLSLANG_TESTS=OFF \
    -DENABLE_GLSLANG_BINARIES=ON \
    -DGLSLANG_ENABLE_INSTALL=ON

# Build and install (about 4 minutes on 2 cores).
ninja -C "$BUILD_DIR" -j "$JOBS"
ninja -C "$BUILD_DIR" install

echo "Installed: $PREFIX/bin/glslang"
"$PREFIX/bin/glslang" --version
