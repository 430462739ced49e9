#!/usr/bin/env bash
# Vulkan decode/prefill on the H100 test machine through `xlstm-run bench`, new binary against a baseline binary, in one
# call of the device tool (see docs/notes/vulkan-backend.md). Expects, relative to the current directory:
#   .scratch/vk/xlstm-run-new   the binary under test (make publish → build/xlstm-run)
#   .scratch/vk/xlstm-run-base  the baseline binary (previous commit), optional
#   .gl/*.deb                   Vulkan loader + glvnd (device README recipe)
#   models/default/*.gguf       the default model (correctness checks)
# Steps: devices; new vs base vs CPU on the default model (logits, greedy ids; cooperative-matrix vs fp32 GEMM); per type
# (q4_0, q8_0, f16): init --preset 7b, a matvec shape sweep of the new binary, bench -p 512 -n 128 -r 3 of the
# new binary (defaults, and the sweep's best if different) and of the base binary, fusion off (q4_0), --profile
# of decode steps. Summary last.
set -uo pipefail
OUT=${OUT:-$PWD/h100-out}
mkdir -p "$OUT"
NEW=${NEW:-.scratch/vk/xlstm-run-new}
BASE=${BASE:-.scratch/vk/xlstm-run-base}
PRESET=${PRESET:-7b}
TYPES=${TYPES:-q4_0 q8_0 f16}
TMP=/tmp/h100-vk
mkdir -p "$TMP"
SUM=$OUT/summary.txt
: > "$SUM"
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
elapsed() { echo $(( $(date +%s) - T0 )); }
BUDGET=${BUDGET:-480}   # seconds: sweeps stop at 55 % of it, baseline benches at 85 %
log() { echo "$*" | tee -a "$SUM"; }
[ -x "$BASE" ] || BASE=""

if [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
has_gpu() { "$NEW" info --devices 2>/dev/null | grep -q 'discrete GPU\|integrated GPU'; }
if [ "${NO_DRIVER_OVERRIDE:-0}" != 1 ] && ! has_gpu; then
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    [ -f "$icd" ] || continue
    export VK_DRIVER_FILES=$icd
    has_gpu && break
  done
fi
if [ "${NO_DRIVER_OVERRIDE:-0}" != 1 ] && ! has_gpu; then
  echo "NO VULKAN GPU"; VK_LOADER_DEBUG=error,warn,driver "$NEW" info --devices 2>&1 | head -40; exit 1
fi
{
  date -u +"date: %Y-%m-%d %H:%M UTC"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader 2>/dev/null
  "$NEW" info --devices
} 2>&1 | tee "$OUT/devices.txt" | tee -a "$SUM"

relerr() { # relerr A.npy B.npy: ‖a − b‖ / ‖b‖
  python3 - "$1" "$2" <<'PY'
import sys, struct, math
def load(p):
    b = open(p, 'rb').read()
    hl = struct.unpack('<H', b[8:10])[0]
    d = b[10 + hl:]
    return struct.unpack('<%df' % (len(d) // 4), d)
try:
    a, c = load(sys.argv[1]), load(sys.argv[2])
    print(f"{math.sqrt(sum((x - y) ** 2 for x, y in zip(a, c)) / sum(y * y for y in c)):.3e}")
except Exception as e:
    print(f"n/a ({e})")
PY
}

# ---- correctness: new Vulkan vs base Vulkan (same float arithmetic) and vs the CPU engine ---------------------------
P100=$(seq 1000 7 1693 | paste -sd,)
for m in models/default/default.gguf models/default/default-q8_0.gguf; do
  [ -f "$m" ] || continue
  rm -f $TMP/n.npy $TMP/b.npy $TMP/c.npy $TMP/nf.npy $TMP/nc.npy
  timeout 60 "$NEW" logits -m "$m" --backend vulkan --ids "$P100" -o $TMP/n.npy 2>>$OUT/check.txt
  XLSTM_VK_COOPMAT=0 timeout 60 "$NEW" logits -m "$m" --backend vulkan --ids "$P100" -o $TMP/nc.npy 2>>$OUT/check.txt
  [ -n "$BASE" ] && timeout 60 "$BASE" logits -m "$m" --backend vulkan --ids "$P100" -o $TMP/b.npy 2>>$OUT/check.txt
  timeout 60 "$NEW" logits -m "$m" --backend cpu --ids "$P100" -o $TMP/c.npy 2>>$OUT/check.txt
  gn=$(timeout 60 "$NEW" generate -m "$m" --backend vulkan --ids "$P100" -n 32 2>>$OUT/check.txt)
  gf=$(XLSTM_VK_FUSE=0 timeout 60 "$NEW" generate -m "$m" --backend vulkan --ids "$P100" -n 32 2>>$OUT/check.txt)
  gm=$(XLSTM_VK_COOPMAT=0 timeout 60 "$NEW" generate -m "$m" --backend vulkan --ids "$P100" -n 32 2>>$OUT/check.txt)
  gb=$([ -n "$BASE" ] && timeout 60 "$BASE" generate -m "$m" --backend vulkan --ids "$P100" -n 32 2>>$OUT/check.txt)
  gc=$(timeout 60 "$NEW" generate -m "$m" --backend cpu --ids "$P100" -n 32 2>>$OUT/check.txt)
  log "check $(basename $m): prefill logits new vs base $( [ -f $TMP/b.npy ] && relerr $TMP/n.npy $TMP/b.npy), new vs new-fp32-gemm $(relerr $TMP/n.npy $TMP/nc.npy), new-fp32-gemm vs base $( [ -f $TMP/b.npy ] && relerr $TMP/nc.npy $TMP/b.npy), new vs cpu(int8 act) $(relerr $TMP/n.npy $TMP/c.npy); greedy 32: new=base $([ "$gn" = "$gb" ] && echo yes || echo NO), new=unfused $([ "$gn" = "$gf" ] && echo yes || echo NO), new=fp32-gemm $([ "$gn" = "$gm" ] && echo yes || echo NO), new=cpu $([ "$gn" = "$gc" ] && echo yes || echo NO)"
  [ "$gn" = "$gb" ] || log "  new:  $gn" "  base: $gb"
done

P512=$(seq 0 511 | paste -sd,)
period() { grep -o 'step period median [0-9.]* ms' "$1" | grep -o '[0-9.]*' | head -1; }
decode_period() { # env assignments... : prints the median step period (ms) of 4-token prompt + 96 steps
  env "$@" XLSTM_VK_STATS=1 timeout 120 "$NEW" generate -m "$M" --backend vulkan --ids 5,6,7,8 -n 96 >/dev/null 2>$TMP/p.txt
  p=$(period $TMP/p.txt); echo "${p:-fail}"
}
bench() { # label binary [env...]
  local label=$1 bin=$2; shift 2
  say "bench $label"
  env "$@" timeout 240 "$bin" bench -m "$M" --backend vulkan -p 512 -n 128 -r 3 >$TMP/bench-$label.md 2>$TMP/bench-err-$label.txt \
    || { log "bench $label FAILED: $(tail -3 $TMP/bench-err-$label.txt)"; return; }
  { echo "== bench $label ($*)"; grep -E '^\| xlstm|^device|bandwidth|bytes per' $TMP/bench-$label.md; } | tee -a "$SUM"
}

for T in $TYPES; do
  M=$TMP/x-$PRESET-$T.gguf
  say "init $PRESET $T"
  timeout 300 "$NEW" init --preset "$PRESET" --type "$T" -o "$M" -q --force 2>&1 | tail -1
  [ -f "$M" ] || { log "init $T failed"; continue; }
  if [ "$T" = q4_0 ]; then
    rm -f $TMP/v7n.npy $TMP/v7b.npy $TMP/v7c.npy
    P64=$(seq 7 7 448 | paste -sd,)
    timeout 120 "$NEW" logits -m "$M" --backend vulkan --ids 11,22,33,44,55 -o $TMP/v7n.npy 2>>$OUT/check.txt
    timeout 120 "$NEW" logits -m "$M" --backend vulkan --ids "$P64" -o $TMP/v7g.npy 2>>$OUT/check.txt
    XLSTM_VK_COOPMAT=0 timeout 120 "$NEW" logits -m "$M" --backend vulkan --ids "$P64" -o $TMP/v7c.npy 2>>$OUT/check.txt
    [ -n "$BASE" ] && timeout 120 "$BASE" logits -m "$M" --backend vulkan --ids 11,22,33,44,55 -o $TMP/v7b.npy 2>>$OUT/check.txt
    gn=$(timeout 120 "$NEW" generate -m "$M" --backend vulkan --ids 11,22,33 -n 8 2>>$OUT/check.txt)
    gb=$([ -n "$BASE" ] && timeout 120 "$BASE" generate -m "$M" --backend vulkan --ids 11,22,33 -n 8 2>>$OUT/check.txt)
    log "check $PRESET q4_0: 5-token logits new vs base $(relerr $TMP/v7n.npy $TMP/v7b.npy); 64-token logits coopmat vs fp32 GEMM $(relerr $TMP/v7g.npy $TMP/v7c.npy); greedy 8 equal: $([ "$gn" = "$gb" ] && echo yes || echo "NO ($gn | $gb)")"
  fi
  # matvec shape sweep of the new binary (decode step period, 4-token prompt + 96 steps); the best goes to the tuned
  # bench when it differs from the defaults (Q8_0/Q4_0 128,8; F16 128,2)
  BEST_ENV=""
  DEF_MV=128,8; [ "$T" = f16 ] && DEF_MV=128,2
  if [ $(elapsed) -lt $(( BUDGET * 55 / 100 )) ]; then
    best=999
    if [ "$T" = f16 ]; then SHAPES="128,2 128,4 256,2 128,8"; else SHAPES="128,8 64,8 128,4 256,8"; fi
    for mv in $SHAPES; do
      p=$(decode_period XLSTM_VK_MATVEC=$mv)
      log "sweep $T matvec wg,rows=$mv: step period $p ms"
      if [ "$p" != fail ] && python3 -c "import sys; sys.exit(0 if $p < $best else 1)"; then best=$p; BEST_ENV="XLSTM_VK_MATVEC=$mv"; fi
    done
    log "sweep $T: best $BEST_ENV ($best ms)"
    if [ "$T" = q4_0 ]; then
      p=$(decode_period $BEST_ENV XLSTM_VK_FUSE=0); log "sweep $T fusion off (best shapes): step period $p ms"
    fi
  fi
  bench "$T-new-default" "$NEW"
  if [ -n "$BEST_ENV" ] && [ "$BEST_ENV" != "XLSTM_VK_MATVEC=$DEF_MV" ]; then
    bench "$T-new-tuned" "$NEW" $BEST_ENV
  fi
  if [ -n "$BASE" ] && [ $(elapsed) -lt $(( BUDGET * 85 / 100 )) ]; then bench "$T-base" "$BASE"; else log "bench $T-base skipped (time)"; fi
  if true; then
    say "profile $T"
    env $BEST_ENV timeout 180 "$NEW" generate -m "$M" --backend vulkan \
      --ids "$(seq 100 115 | paste -sd,)" -n 64 --profile >/dev/null 2>"$TMP/profile-$T.txt"
    { echo "== profile $T (new)"; cat "$TMP/profile-$T.txt"; } >> "$SUM"
  fi
  rm -f "$M"
done
say "done"
(cd $TMP && tar czf $OUT/logs.tgz --exclude='*.gguf' --exclude='*.npy' . 2>/dev/null)
echo "================ SUMMARY ================"
cat "$SUM"
