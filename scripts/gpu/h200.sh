#!/usr/bin/env bash
# Everything we measure on the GPU test machine (an NVIDIA H200 reached through the device tool), in one call:
#   setup    unpack the carried Vulkan/OpenCL loaders (.gl/*.deb), find the NVIDIA driver files, list devices
#   check    the conformance checks on every backend and device (xlstm-run check): one table
#   opbench  op-level benchmark at 7B shapes (bench --op 7b): decode matvecs and prefill GEMMs per type, cell kernels
#   overlap  32 products per submission with barriers between them and without (does the device overlap dispatches?)
#   vecgemm  products of 8/16/64 tokens as matvecs (default) and as GEMMs (XLSTM_VK_VEC_TOKENS=1)
#   fewtok   prompt feeds of a few tokens: the split-K GEMM (bench --op matmul --feed) against the matvec
#   clocks   the GPU's clocks under the op bench: eight identical cases in one process, nvidia-smi's SM clock and
#            throttle reasons before and after (session 9: identical cases ran 4-5x slower once the clocks fell to idle)
#   vecsweep few-token matvec shapes (tokens per workgroup x rows per workgroup)
#   tcvec    int8 products over several tokens: matvec (XLSTM_VK_TCVEC=0) against the tensor-core kernel, and its statistics
#   ab       two binaries side by side, alternating (BIN_B against BIN): products at AB_SHAPES x AB_TOKENS per AB_TYPES
#            (bench --op matmul, µs per call), then tg128 (and pp64) on the synthetic 7B models of AB_MODEL_TYPES
#   preq     int8 matvecs with activations quantized once per token (XLSTM_VK_PREQ) against per workgroup, and shapes
#   gemm     prefill GEMM variants (GEMM_VARIANTS=label=ENV=v+ENV=v ...; GEMM_TILES2 tiles under GEMM_TILE_ENV; GEMM_T tokens)
#   sweep    matvec launch shapes (XLSTM_VK_MATVEC) and GEMM tiles (XLSTM_VK_GEMM) through bench --op matmul
#   model    synthetic 7B models (init --preset 7b, in the background from the start): bench pp/tg per type, decode
#            profile, device memory
#   batch    batch --parallel 1/4/16/64 on synthetic 7B models with a tokenizer: aggregate tokens/s, device memory,
#            greedy outputs of every B against B=1 (BATCH_WAVES=w: B·w lines per B; BATCH_PROFILE=1: the step's op table)
#   anchor   Hugging Face transformers' xLSTM on a 7B-shape model (.scratch/hf_xlstm7b_bench.py, copied from the
#            team's shared bench folder), in the same call; then cublas
#   cublas   cuBLAS GEMMs at our prefill shapes through torch (scripts/gpu/torch_gemm.py): the ceiling for our GEMM
# Usage (from the repository root, build/xlstm-run carried): PHASES="setup check opbench model" bash scripts/gpu/h200.sh
# Writes tables and logs under $OUT (the device tool brings back at most 8 files: logs go into one tarball).
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT/logs"
BIN=${BIN:-$PWD/build/xlstm-run}
PHASES=${PHASES:-setup check opbench model}
TYPES=${TYPES:-q4_0 q8_0 f16}
TMP=/tmp/xlstm-gpu
mkdir -p "$TMP"
SUM=$OUT/summary.md
: > "$SUM"
T0=$(date +%s)
BUDGET=${BUDGET:-500}
say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/logs/progress.txt"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
has() { [[ " $PHASES " == *" $1 "* ]]; }
sec() { echo; echo "## $*"; } >> "$SUM"
opline() { grep '^| ' | grep -v '^| op \|^| ---' | awk -F'|' '{print $7 " |" $6}'; }
# µs per call of the product $t ($shp rows x cols, $T tokens) by binary $1, under the environment assignments after it
op_us() { local b=$1; shift; env "$@" timeout 30 "$b" bench --op matmul --backend vulkan --type "$t" --rows "${shp%x*}" --cols "${shp#*x}" --tokens "$T" -r 10 ${OPFLAGS:-} 2>/dev/null | opline | awk -F'|' '{print $1}'; }
# wait (up to 4 minutes) for the synthetic models made in the background
wait_models() { for i in $(seq 1 240); do [ -f "$TMP/models.done" ] && break; sleep 1; done; }

# ---- setup -------------------------------------------------------------------------------------------------------------
if [ -d .gl ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
has_gpu() { "$BIN" info --devices 2>/dev/null | grep -q 'discrete GPU'; }
if ! has_gpu; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$icd" ] || continue; export VK_DRIVER_FILES=$icd; has_gpu && break
  done
fi
if [ ! -f /etc/OpenCL/vendors/nvidia.icd ] && ldconfig -p | grep -q libnvidia-opencl.so.1; then
  mkdir -p /etc/OpenCL/vendors && echo libnvidia-opencl.so.1 > /etc/OpenCL/vendors/nvidia.icd
fi
sec "devices ($(date -u +%Y-%m-%dT%H:%MZ))"
{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader; "$BIN" info --devices; } >> "$SUM" 2>&1
has_gpu || { say "NO VULKAN GPU"; VK_LOADER_DEBUG=error,warn,driver "$BIN" info --devices > "$OUT/logs/loader.txt" 2>&1; }

# synthetic 7B models (with the GPT-NeoX tokenizer, for batch), made in the background while the GPU checks run
TOKENIZER=tests/data/tokenizers/gpt-neox-20b.tokenizer.json
if has model || has batch || has ab; then
  ( for t in $TYPES; do [ -f "$TMP/7b-$t.gguf" ] || "$BIN" init --preset 7b --type "$t" --tokenizer "$TOKENIZER" -o "$TMP/7b-$t.gguf" > "$OUT/logs/init-$t.txt" 2>&1; done; touch "$TMP/models.done" ) &
fi

# ---- check -------------------------------------------------------------------------------------------------------------
if has check; then
  say "check"
  sec "conformance (xlstm-run check ${CHECK_ARGS:-})"
  timeout "${CHECK_TIMEOUT:-240}" "$BIN" check ${CHECK_ARGS:-} --json "$OUT/logs/check.json" > "$OUT/logs/check.txt" 2> "$OUT/logs/check.err"
  echo "exit $?" >> "$SUM"
  grep -v '| pass |' "$OUT/logs/check.txt" | head -60 >> "$SUM"
  tail -3 "$OUT/logs/check.txt" >> "$SUM"
fi

# ---- op bench ----------------------------------------------------------------------------------------------------------
if has opbench; then
  say "opbench"
  sec "op bench, 7B shapes (bench --op 7b)"
  timeout 200 "$BIN" bench --op 7b --backend vulkan --type "${OPTYPES:-f16,q8_0,q4_0}" --tokens "${OPTOKENS:-1,2048}" -r "${OPREPS:-10}" >> "$SUM" 2> "$OUT/logs/opbench.err"
  if [ -x "${BIN_B:-}" ]; then
    sec "op bench, 7B shapes, B = $BIN_B"
    timeout 200 "$BIN_B" bench --op 7b --backend vulkan --type "${OPTYPES:-f16,q8_0,q4_0}" --tokens "${OPTOKENS:-1,2048}" -r "${OPREPS:-10}" 2>> "$OUT/logs/opbench.err" | grep -E '^\| (matmul|fused|cell)' >> "$SUM"
  fi
fi

# ---- dependent vs independent dispatches (bench --op --overlap) ---------------------------------------------------------
if has overlap; then
  say "overlap"
  sec "32 products per submission, dependent (barriers) vs independent (bench --op 7b --overlap; wall clock)"
  timeout 120 "$BIN" bench --op 7b --overlap --backend vulkan --type "${OV_TYPES:-q4_0,f16}" --tokens 1 -r "${OV_REPS:-5}" >> "$SUM" 2> "$OUT/logs/overlap.err"
fi

# ---- matvec vs GEMM for a few tokens (the multi-sequence decode step) ---------------------------------------------------
if has vecgemm; then
  say "vecgemm"
  for v in 64 1; do
    sec "few-token products with XLSTM_VK_VEC_TOKENS=$v (64: matvecs up to 64 tokens, the default; 1: GEMMs from 2 tokens)"
    XLSTM_VK_VEC_TOKENS=$v timeout 120 "$BIN" bench --op 7b --backend vulkan --type "${VG_TYPES:-q4_0,f16}" --tokens "${VG_TOKENS:-8,16,64}" -r 5 2>> "$OUT/logs/vecgemm.err" | grep -E '^\| (matmul|fused)|^\| op|^\| ---' >> "$SUM"
  done
fi

# ---- prompt feeds of a few tokens: split-K GEMM against the matvec (FT_VARIANTS: label=ENV=v+ENV=v, more feed columns) ------
if has fewtok; then
  say "fewtok"
  sec "few-token products, µs per call: decode rows (matvec) | prompt feed (bench --op matmul --feed: split-K GEMM) | feed variants"
  for t in ${FT_TYPES:-q4_0}; do for T in ${FT_TOKENS:-8 16 32 64}; do
    echo "| $t | T=$T | shape | matvec | feed | $(for v in ${FT_VARIANTS:-}; do printf '%s | ' "${v%%=*}"; done)" >> "$SUM"
    for shp in ${FT_SHAPES:-4096x4096 12288x4096 21888x4096 4096x10944}; do
      [ "$(left)" -gt 30 ] || break
      row="| $t | T=$T | $shp | $(op_us "$BIN") | $(OPFLAGS=--feed op_us "$BIN") |"
      for v in ${FT_VARIANTS:-}; do e=${v#*=}; row="$row $(OPFLAGS=--feed op_us "$BIN" ${e//+/ }) |"; done
      echo "$row" >> "$SUM"
    done
  done; done
fi

# ---- the GPU's clocks under the op bench ------------------------------------------------------------------------------
if has clocks; then
  say "clocks"
  sec "eight identical op-bench cases in one process (bench --op matmul q4_0 21888x4096, 64 tokens), SM clock before | after"
  smi() { nvidia-smi --query-gpu=clocks.sm,power.draw,clocks_throttle_reasons.active --format=csv,noheader 2>/dev/null; }
  echo "before: $(smi)" >> "$SUM"
  timeout 120 "$BIN" bench --op matmul --backend vulkan --type q4_0 --rows 21888 --cols 4096 --tokens 64,64,64,64,64,64,64,64 -r 10 2>/dev/null | grep '^| matmul' >> "$SUM"
  echo "after: $(smi)" >> "$SUM"
fi

if has vecsweep; then
  say "vecsweep"
  sec "few-token matvec shapes (XLSTM_VK_VEC_GROUP tokens per workgroup, XLSTM_VK_VEC_MATVEC=128,rows; µs per call, 21888x4096 | 4096x10944)"
  for t in ${VS_TYPES:-q4_0 f16}; do for T in ${VS_TOKENS:-16 64}; do for g in ${VS_GROUPS:-2 4 8}; do for r in ${VS_ROWS:-1 2 4 8}; do
    [ "$(left)" -gt 20 ] || break
    a=$(XLSTM_VK_VEC_GROUP=$g XLSTM_VK_VEC_MATVEC=128,$r timeout 30 "$BIN" bench --op matmul --backend vulkan --type "$t" --rows 21888 --cols 4096 --tokens "$T" -r 5 2>/dev/null | opline)
    b=$(XLSTM_VK_VEC_GROUP=$g XLSTM_VK_VEC_MATVEC=128,$r timeout 30 "$BIN" bench --op matmul --backend vulkan --type "$t" --rows 4096 --cols 10944 --tokens "$T" -r 5 2>/dev/null | opline)
    echo "| $t | T=$T | group $g | rows $r | $a | $b |" >> "$SUM"
  done; done; done; done
fi

# ---- several tokens' int8 products on tensor cores (XLSTM_VK_TCVEC) ---------------------------------------------------------
if has tcvec; then
  say "tcvec"
  sec "int8 products over several tokens (µs per call): matvec (XLSTM_VK_TCVEC=0) | tensor cores with XLSTM_VK_TC_KB blocks per step"
  echo "| type | shape | T | matvec | $(for k in ${TC_KBS:-4}; do printf 'tc kb=%s | ' "$k"; done)" >> "$SUM"   # kb or kb:ENV=v
  for t in ${TC_TYPES:-q4_0 q8_0}; do for shp in ${TC_SHAPES:-21888x4096 4096x10944 12288x4096}; do for T in ${TC_TOKENS:-4 16 64}; do
    [ "$(left)" -gt 30 ] || break
    row="| $t | $shp | $T | $(op_us "$BIN" XLSTM_VK_TCVEC=0) |"
    for k in ${TC_KBS:-4}; do
      e=""; [[ $k == *:* ]] && e=${k#*:}
      row="$row $(op_us "$BIN" ${e//+/ } XLSTM_VK_TC_KB=${k%%:*}) |"
    done
    echo "$row" >> "$SUM"
  done; done; done
  XLSTM_VK_PIPELINE_STATS=1 timeout 30 "$BIN" bench --op matmul --backend vulkan --type q4_0 --rows 4096 --cols 4096 --tokens 16 -r 2 2>&1 | grep "pipeline matvec" >> "$SUM"
fi

# ---- two binaries side by side -------------------------------------------------------------------------------------------
if has ab && [ -x "${BIN_B:-}" ]; then
  say "ab"
  sec "A = $BIN, B = $BIN_B: products, µs per call (A | B | A | B)"
  echo "| type | shape | T | A | B | A | B |" >> "$SUM"
  for t in ${AB_TYPES:-q4_0 q8_0}; do for shp in ${AB_SHAPES:-21888x4096 4096x10944 12288x4096}; do for T in ${AB_TOKENS:-1 16 64}; do
    [ "$(left)" -gt 60 ] || break
    echo "| $t | $shp | $T | $(op_us "$BIN") | $(op_us "$BIN_B") | $(op_us "$BIN") | $(op_us "$BIN_B") |" >> "$SUM"
  done; done; done
  wait_models
  sec "A = $BIN, B = $BIN_B: bench -p 64 -n 128 (A, B, A, B)"
  for t in ${AB_MODEL_TYPES:-q4_0}; do for b in "$BIN" "$BIN_B" "$BIN" "$BIN_B"; do
    [ -f "$TMP/7b-$t.gguf" ] && [ "$(left)" -gt 40 ] || continue
    echo "$b $t: $(timeout 120 "$b" bench -m "$TMP/7b-$t.gguf" --backend vulkan -p 64 -n 128 -r 3 2>/dev/null | grep -E '^\| xlstm' | awk -F'|' '{print $7 $8}' | tr '\n' ' ')" >> "$SUM"
  done; done
fi

# ---- pre-quantized activations for int8 matvecs (XLSTM_VK_PREQ) ----------------------------------------------------------
if has preq; then
  say "preq"
  for pq in ${PQ_MODES:-1 65536}; do
    sec "int8 matvecs with XLSTM_VK_PREQ=$pq (1: quantize_x once per token; 65536: every workgroup quantizes its slice)"
    XLSTM_VK_PREQ=$pq timeout 120 "$BIN" bench --op 7b --backend vulkan --type "${PQ_TYPES:-q4_0}" --tokens "${PQ_TOKENS:-1,16,64}" -r 5 2>> "$OUT/logs/preq.err" | grep -E '^\| (matmul|fused)|^\| op|^\| ---' >> "$SUM"
  done
  sec "few-token int8 matvec shapes with XLSTM_VK_PREQ=1 (tokens per workgroup x rows x row groups per workgroup; µs per call, 21888x4096 | 4096x10944)"
  for t in ${PQ_TYPES:-q4_0}; do for T in ${PQ_SWEEP_TOKENS:-16 64}; do for g in ${PQ_GROUPS:-4 8 16}; do for r in ${PQ_ROWS:-2 4 8}; do for l in ${PQ_RLOOPS:-1}; do
    [ "$(left)" -gt 60 ] || break
    a=$(XLSTM_VK_VEC_GROUP=$g XLSTM_VK_VEC_MATVEC=128,$r XLSTM_VK_VEC_RLOOP=$l timeout 30 "$BIN" bench --op matmul --backend vulkan --type "$t" --rows 21888 --cols 4096 --tokens "$T" -r 5 2>/dev/null | opline)
    b=$(XLSTM_VK_VEC_GROUP=$g XLSTM_VK_VEC_MATVEC=128,$r XLSTM_VK_VEC_RLOOP=$l timeout 30 "$BIN" bench --op matmul --backend vulkan --type "$t" --rows 4096 --cols 10944 --tokens "$T" -r 5 2>/dev/null | opline)
    echo "| $t | T=$T | group $g | rows $r | rloop $l | $a | $b |" >> "$SUM"
  done; done; done; done; done
fi

# ---- sweeps ------------------------------------------------------------------------------------------------------------
if has sweep; then
  say "sweep"
  sec "matvec shapes (XLSTM_VK_MATVEC=wg,rows,unroll; µs per call at 4096x4096 | 21888x4096 | 4096x10944, T=1)"
  for t in ${SWEEP_TYPES:-q4_0}; do
    shapes=MATVEC_SHAPES_${t^^}; shapes=${!shapes:-${MATVEC_SHAPES:-}}
    for s in ${shapes:-128,8,1 32,8,4 64,8,2 32,16,2 64,16,2 256,4,1 64,4,4 32,4,4}; do
      [ "$(left)" -gt 60 ] || break
      r=$(XLSTM_VK_MATVEC=$s timeout 60 "$BIN" bench --op matmul --backend vulkan --type "$t" --rows 4096 --cols 4096 --tokens 1 -r 20 2>/dev/null | opline)
      r2=$(XLSTM_VK_MATVEC=$s timeout 60 "$BIN" bench --op matmul --backend vulkan --type "$t" --rows 21888 --cols 4096 --tokens 1 -r 20 2>/dev/null | opline)
      r3=$(XLSTM_VK_MATVEC=$s timeout 60 "$BIN" bench --op matmul --backend vulkan --type "$t" --rows 4096 --cols 10944 --tokens 1 -r 20 2>/dev/null | opline)
      echo "| $t | $s | $r | $r2 | $r3 |" >> "$SUM"
    done
  done
  for t in ${FLOAT_Q_TYPES:-q4_0}; do
    r=$(XLSTM_VK_INTDOT=0 timeout 60 "$BIN" bench --op matmul --backend vulkan --type "$t" --rows 21888 --cols 4096 --tokens 1 -r 20 2>/dev/null | opline)
    echo "| $t float activations (INTDOT=0) | 128,8,1 | - | $r |" >> "$SUM"
  done
  sec "step kernel rows per workgroup (XLSTM_VK_STEP_ROWS; cell, T=1)"
  for r in ${STEP_ROWS:-8 16 32 64}; do
    o=$(XLSTM_VK_STEP_ROWS=$r timeout 60 "$BIN" bench --op cell --backend vulkan --tokens 1 -r 20 2>/dev/null | opline)
    echo "| $r | $o |" >> "$SUM"
  done
  sec "GEMM tiles (XLSTM_VK_GEMM=warpsM,warpsN,tm,tn,bkv; µs per call; 4096x4096 f16 and q4_0, T=2048)"
  for g in ${GEMM_TILES:-2,4,4,2,4 4,2,2,4,4 2,4,4,4,2 4,2,4,4,2 2,4,4,2,2 4,2,2,4,2 2,2,4,4,4 4,4,2,2,2}; do
    [ "$(left)" -gt 40 ] || break
    r=$(XLSTM_VK_GEMM=$g timeout 60 "$BIN" bench --op matmul --backend vulkan --type f16,q4_0 --rows 4096 --cols 4096 --tokens 2048 -r 10 2>&1 | opline | tr '\n' ' ')
    echo "| $g | $r |" >> "$SUM"
  done
fi

# ---- prefill GEMM variants (issue 10) -------------------------------------------------------------------------------
if has gemm; then
  say "gemm"
  sec "prefill GEMM variants (µs per call and TFLOP/s; T=${GEMM_T:-2048}; columns: 4096x4096 | 21888x4096 | 4096x10944)"
  echo "| variant | type | 4096x4096 | 21888x4096 | 4096x10944 |" >> "$SUM"
  echo "| --- | --- | --- | --- | --- |" >> "$SUM"
  gemm_row() {  # $1 label, $2 type, rest: environment assignments
    local label=$1 t=$2; shift 2
    local envs=("$@") cells="" shape
    for shape in 4096x4096 21888x4096 4096x10944; do
      cells="$cells | $(env "${envs[@]}" timeout 60 "$BIN" bench --op matmul --backend vulkan --type "$t" --rows "${shape%x*}" --cols "${shape#*x}" --tokens "${GEMM_T:-2048}" -r "${GEMM_REPS:-10}" 2>/dev/null | grep '^| matmul' | awk -F'|' '{print $7 "/" $8}')"
    done
    echo "| $label | $t$cells |" >> "$SUM"
  }
  # GEMM_VARIANTS: label=ENV=value+ENV=value ... (label alone: the defaults)
  for v in ${GEMM_VARIANTS:-default per-tile=XLSTM_VK_GEMM_XF16=65536+XLSTM_VK_GEMM_DEQUANT=65536 rs1=XLSTM_VK_GEMM_RSTAGES=1}; do
    label=${v%%=*}; envs=()
    [[ $v == *=* ]] && IFS=+ read -r -a envs <<< "${v#*=}"
    for t in ${GEMM_TYPES:-f16 q4_0 q8_0}; do
      [ "$(left)" -gt 60 ] || break
      gemm_row "$label" "$t" "${envs[@]}"
    done
  done
  tile_env=${GEMM_TILE_ENV:-}
  for g in ${GEMM_TILES2:-}; do
    [ "$(left)" -gt 60 ] || break
    gemm_row "tile $g $tile_env" f16 XLSTM_VK_GEMM=$g ${tile_env//+/ }
  done
fi

# ---- model benches -----------------------------------------------------------------------------------------------------
if has model; then
  say "model: waiting for the synthetic models"
  wait_models
  sec "bench, synthetic 7B (bench --backend vulkan)"
  for t in $TYPES; do
    [ -f "$TMP/7b-$t.gguf" ] || { echo "no model $t" >> "$SUM"; continue; }
    [ "$(left)" -gt 40 ] || break
    say "bench $t"
    timeout 150 "$BIN" bench -m "$TMP/7b-$t.gguf" --backend vulkan -p "${PP:-2048}" -n "${TG:-128}" -r "${REPS:-3}" >> "$SUM" 2> "$OUT/logs/bench-$t.err"
  done
  # the same benches under other settings (MODEL_VARIANTS="XLSTM_VK_GEMM_CM2=1+XLSTM_VK_CM2_TILE=256,128,128,32 ...":
  # one +-separated set of assignments per variant), prefill only (MODEL_VARIANT_PP tokens) unless MODEL_VARIANT_TG is set
  for mv in ${MODEL_VARIANTS:-}; do
    for t in $TYPES; do
      [ -f "$TMP/7b-$t.gguf" ] && [ "$(left)" -gt 40 ] || continue
      echo "variant $mv, $t:" >> "$SUM"
      env ${mv//+/ } timeout 150 "$BIN" bench -m "$TMP/7b-$t.gguf" --backend vulkan -p "${MODEL_VARIANT_PP:-${PP:-2048}}" -n "${MODEL_VARIANT_TG:-0}" -r "${REPS:-3}" 2>> "$OUT/logs/bench-variants.err" | grep -E '^\| xlstm' >> "$SUM"
    done
  done
  for t in ${PROFILE_TYPES:-q4_0 f16}; do
    [ -f "$TMP/7b-$t.gguf" ] && [ "$(left)" -gt 30 ] || continue
    sec "decode and prefill profile $t (--profile: 512-token prompt, 32 steps)"
    timeout 60 "$BIN" -m "$TMP/7b-$t.gguf" --backend vulkan --ids "$(seq -s, 1 512)" -n 32 --profile > /dev/null 2> "$OUT/logs/profile-$t.txt"
    grep -A40 "GPU profile" "$OUT/logs/profile-$t.txt" | head -60 >> "$SUM"
  done
  if [ -n "${PP_LONG:-}" ] && [ -f "$TMP/7b-f16.gguf" ] && [ "$(left)" -gt 40 ]; then
    sec "long prompt f16"
    timeout 120 "$BIN" bench -m "$TMP/7b-f16.gguf" --backend vulkan -p "$PP_LONG" -n 128 -r 2 >> "$SUM" 2> "$OUT/logs/bench-long.err"
  fi
fi

# ---- batch throughput --------------------------------------------------------------------------------------------------
if has batch; then
  say "batch"
  sec "batch throughput (--parallel B, --ignore-eos, 64 tokens per line; synthetic 7B with the GPT-NeoX tokenizer)"
  python3 - "$TMP/prompts.jsonl" <<'PY'
import json, sys
words = "the of and to in is was for on with as by at from that this which be are or an it not but have".split()
with open(sys.argv[1], "w") as f:
    for i in range(256):
        n = 8 + (i * 7) % 40
        f.write(json.dumps({"id": f"p{i}", "prompt": " ".join(words[(i * 3 + j) % len(words)] for j in range(n)), "n_predict": 64, "temperature": 0}) + "\n")
PY
  for t in ${BATCH_TYPES:-q4_0 f16}; do
    wait_models
    m="$TMP/7b-$t.gguf"
    [ -f "$m" ] || "$BIN" init --preset 7b --type "$t" --tokenizer "$TOKENIZER" -o "$m" -q > /dev/null 2>&1
    # warm-up: the driver compiles each pipeline on first use (a fresh machine's shader cache is empty: B=1 measured
    # 224 ms per prompt's prefill cold, 23 warm), so the first measured B would pay for it
    head -n 8 "$TMP/prompts.jsonl" > "$TMP/warm.jsonl"
    for B in 1 8; do timeout 120 "$BIN" batch -m "$m" --backend vulkan -i "$TMP/warm.jsonl" -o "$TMP/warm-$t-$B.jsonl" --parallel "$B" --ignore-eos --force > /dev/null 2>&1; done
    for B in ${BATCH_SIZES:-1 4 16 64}; do
      [ "$(left)" -gt 30 ] || break
      n=$(( B == 1 ? 24 : (B == 4 ? 48 : (B == 16 ? 128 : 256)) ))
      [ -n "${BATCH_WAVES:-}" ] && n=$(( B * BATCH_WAVES < 8 ? 8 : B * BATCH_WAVES ))
      head -n "$n" "$TMP/prompts.jsonl" > "$TMP/p$n.jsonl"
      timeout 120 "$BIN" batch -m "$m" --backend vulkan -i "$TMP/p$n.jsonl" -o "$TMP/out-$t-$B.jsonl" --parallel "$B" --ignore-eos --force ${BATCH_PROFILE:+--profile} 2> "$OUT/logs/batch-$t-$B.txt" > /dev/null
      echo "| $t | B=$B | $n lines | $(grep -E 'done:|device memory|prefill' "$OUT/logs/batch-$t-$B.txt" | sed 's/^batch: //' | tr '\n' ' ') |" >> "$SUM"
      [ -n "${BATCH_PROFILE:-}" ] && grep -E -A9 'replayed decode steps|eager ops|wall clock' "$OUT/logs/batch-$t-$B.txt" | grep -v '^ *$' >> "$SUM"
    done
    # greedy equality: each B against B=1 on the lines both ran
    python3 - "$TMP" "$t" >> "$SUM" <<'PY'
import json, sys, os
tmp, t = sys.argv[1], sys.argv[2]
def load(p):
    d = {}
    if os.path.exists(p):
        for l in open(p):
            r = json.loads(l); d[r["id"]] = r.get("text")
    return d
one = load(f"{tmp}/out-{t}-1.jsonl")
for B in (4, 16, 64):
    other = load(f"{tmp}/out-{t}-{B}.jsonl")
    common = [k for k in one if k in other]
    same = sum(one[k] == other[k] for k in common)
    print(f"| {t} | greedy B={B} vs B=1 | {same} of {len(common)} lines identical |")
PY
  done
fi

# ---- anchor ------------------------------------------------------------------------------------------------------------
if has anchor && [ -f .scratch/hf_xlstm7b_bench.py ]; then
  say "anchor"
  sec "anchor: transformers xLSTM, bf16, same card"
  PYTHONUNBUFFERED=1 timeout 180 python3 .scratch/hf_xlstm7b_bench.py "$OUT/logs/hf.json" > "$OUT/logs/hf.txt" 2>&1
  cat "$OUT/logs/hf.json" >> "$SUM" 2>/dev/null || tail -5 "$OUT/logs/hf.txt" >> "$SUM"
fi

if has anchor || has cublas; then
  sec "cuBLAS through torch (scripts/gpu/torch_gemm.py): the ceiling for our GEMM shapes"
  timeout 60 python3 scripts/gpu/torch_gemm.py >> "$SUM" 2> "$OUT/logs/torch_gemm.err"
  { command -v ncu nsys nv-nsight-cu-cli; nvidia-smi -q -d CLOCK | grep -A3 -i "max clocks"; } > "$OUT/logs/tools.txt" 2>&1
fi

say "done"
tar -C "$OUT" -czf "$OUT/logs.tgz" logs && rm -rf "$OUT/logs"
cat "$SUM"
