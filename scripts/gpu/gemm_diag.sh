#!/usr/bin/env bash
# Where the tensor-core GEMM's time goes (diagnosis, issue 10): the F16 GEMM at 7B shapes with parts of its loop left
# out (XLSTM_VK_GEMM_DIAG bits: 1 global loads, 2 products, 4 shared stores, 8 barriers; results are wrong by design),
# then the driver's register counts of the GEMM and cell pipelines. Run after `h200.sh` set-up (PHASES=setup).
# Usage: OUT=dir BIN=build/xlstm-run bash scripts/gpu/gemm_diag.sh
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}; BIN=${BIN:-$PWD/build/xlstm-run}; SUM=$OUT/summary.md
mkdir -p "$OUT/logs"
us() { env "$@" timeout 60 "$BIN" bench --op matmul --backend vulkan --type f16 --rows "${shp%x*}" --cols "${shp#*x}" --tokens "${T:-2048}" -r 10 2>/dev/null | grep '^| matmul' | awk -F'|' '{print $7 "|" $8}'; }
{ echo; echo "## GEMM parts (f16, T=${T:-2048}; µs | TFLOP/s per shape; DIAG bits 1 loads, 2 products, 4 stores, 8 barriers off)"; } >> "$SUM"
for d in ${DIAGS:-0 1 2 4 8 5 3 6 7 13 9}; do
  row="| diag $d ${DIAG_ENV:-} |"
  for shp in ${SHAPES:-4096x4096 21888x4096}; do row="$row $(us XLSTM_VK_GEMM_DIAG=$d ${DIAG_ENV:-}) |"; done
  echo "$row" >> "$SUM"
done
# other settings, one +-separated set of assignments per variant, with the GEMM pipeline's register count
for v in ${VARIANTS:-}; do
  row="| $v |"
  for shp in ${SHAPES:-4096x4096 21888x4096}; do row="$row $(us ${v//+/ }) |"; done
  regs=$(env ${v//+/ } XLSTM_VK_PIPELINE_STATS=1 timeout 60 "$BIN" bench --op matmul --backend vulkan --type f16 --rows 4096 --cols 4096 --tokens 2048 -r 1 2>&1 | grep -o 'matmul_coopmat \[[^]]*\]: Register Count=[0-9]*' | head -1 | sed 's/.*Count=//')
  echo "$row regs ${regs:-?} |" >> "$SUM"
done
{ echo; echo "## pipeline statistics"; } >> "$SUM"
XLSTM_VK_PIPELINE_STATS=1 timeout 60 "$BIN" bench --op matmul --backend vulkan --type f16 --rows 4096 --cols 4096 --tokens 2048 -r 2 2>&1 | grep -i "pipeline" | head -20 >> "$SUM"
XLSTM_VK_PIPELINE_STATS=1 timeout 60 "$BIN" bench --op cell --backend vulkan --tokens 2048 -r 2 2>&1 | grep -i "pipeline" | head -20 >> "$SUM"
