#!/usr/bin/env bash
# Compile the shaders that Debian's glslc cannot (shaders/cm2/*.comp: GL_NV_cooperative_matrix2, GL_KHR_cooperative_matrix)
# with a newer glslang, into shaders/prebuilt/<name>.spv, and record each source's SHA-256 beside it
# (<name>.source.sha256; a test fails when a source no longer matches its SPIR-V). The SPIR-V is committed: a fresh
# machine builds with Debian's glslc and embeds these files as they are.
# Usage: GLSLANG=/path/to/glslang bash scripts/build-cm2-spirv.sh   (glslang: scripts/build-glslang.sh builds one)
set -euo pipefail
cd "$(dirname "$0")/.."
GLSLANG=${GLSLANG:-/work/tools/glslang/bin/glslang}
[ -x "$GLSLANG" ] || { echo "build-cm2-spirv: no glslang at $GLSLANG (set GLSLANG; scripts/build-glslang.sh builds one)" >&2; exit 1; }
mkdir -p shaders/prebuilt
for src in shaders/cm2/*.comp; do
  name=$(basename "$src" .comp)
  "$GLSLANG" -V --target-env vulkan1.3 "$src" -o "shaders/prebuilt/$name.spv"
  sha256sum "$src" | cut -d' ' -f1 > "shaders/prebuilt/$name.source.sha256"
  echo "shaders/prebuilt/$name.spv: $(stat -c %s "shaders/prebuilt/$name.spv") bytes"
done
"$GLSLANG" --version | head -1
