#!/usr/bin/env bash
# Vulkan backend on the H100 test machine, in one call of the device tool (see docs/notes/vulkan-backend.md).
# The device machine has no .NET and no Vulkan loader: bring the NativeAOT binary and Debian's libvulkan1.
# Expects, relative to the current directory (the repository copy on the device):
#   .scratch/vk/xlstm-run      the binary (make publish → build/xlstm-run)
#   .gl/libvulkan1_*.deb       the loader (device README recipe)
#   models/default/*.gguf      the default model (tracked in the repository), for the correctness check
# Steps: device info; Vulkan vs CPU on the default model and on a 7B-shape Q4_0 model (logits + greedy ids);
# per type (q4_0, q8_0, f16): `init --preset 7b`, 3 timed runs of a 512-token prompt + 128 generated tokens
# (XLSTM_VK_STATS=1 prints prefill wall time and the decode step period), one --profile run of decode steps;
# a matvec workgroup-shape sweep at q4_0 and f16. Logs go to $OUT (or ./h100-out); a summary is printed last.
set -uo pipefail
OUT=${OUT:-$PWD/h100-out}
mkdir -p "$OUT"
BIN=${BIN:-.scratch/vk/xlstm-run}
PRESET=${PRESET:-7b}          # PRESET=tiny for a dry run on lavapipe (with NO_DRIVER_OVERRIDE=1)
TMP=/tmp/h100-vk
mkdir -p "$TMP"
FULL=$OUT/full.txt
: > "$FULL"
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
SUM=$OUT/summary.txt
: > "$SUM"

# Vulkan loader + glvnd (the NVIDIA ICD, libGLX_nvidia, needs libGLdispatch from libglvnd0): the device README's recipe
if [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
has_gpu() { "$BIN" info --devices 2>/dev/null | grep -q 'discrete GPU\|integrated GPU'; }
if [ "${NO_DRIVER_OVERRIDE:-0}" != 1 ] && ! has_gpu; then
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
             $(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan -name 'nvidia_icd*.json' 2>/dev/null); do
    [ -f "$icd" ] || continue
    export VK_DRIVER_FILES=$icd
    has_gpu && break
  done
fi
if [ "${NO_DRIVER_OVERRIDE:-0}" != 1 ] && ! has_gpu; then
  echo "NO VULKAN GPU: diagnostics follow"
  ls -la /usr/local/nvidia/share/vulkan/icd.d/ /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>&1 | head -20
  cat "${VK_DRIVER_FILES:-/dev/null}" 2>&1 | head -20
  ldconfig -p | grep -i 'nvidia\|GLdispatch\|vulkan' | head -20
  lib=$(grep -o '"library_path"[^,]*' "${VK_DRIVER_FILES:-/dev/null}" 2>/dev/null | cut -d'"' -f4)
  [ -n "$lib" ] && { p=$(ldconfig -p | grep -m1 "$lib" | awk '{print $NF}'); ldd "${p:-$lib}" 2>&1 | grep -i 'not found' | head; }
  VK_LOADER_DEBUG=error,warn,driver "$BIN" info --devices 2>&1 | head -60
  exit 1
fi
{
  date -u +"date: %Y-%m-%d %H:%M UTC"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
  "$BIN" info --devices
} 2>&1 | tee "$OUT/devices.txt" | tee -a "$SUM"

relerr() { # relerr A.npy B.npy: ‖a − b‖ / ‖b‖ (numpy if present)
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

# ---- 1. correctness on the card ------------------------------------------------------------------------------------
CHK=$TMP/check.txt
: > "$CHK"
P100=$(seq 1000 7 1693 | paste -sd,)   # 100 ids
for m in models/default/default.gguf models/default/default-q8_0.gguf; do
  [ -f "$m" ] || continue
  rm -f "$TMP/v.npy"
  timeout 60 "$BIN" logits -m "$m" --backend vulkan --ids "$P100" -o $TMP/v.npy 2>>"$CHK"
  timeout 60 "$BIN" logits -m "$m" --backend cpu --ids "$P100" -o $TMP/c.npy 2>>"$CHK"
  gv=$(timeout 60 "$BIN" generate -m "$m" --backend vulkan --ids "$P100" -n 32 2>>"$CHK")
  gc=$(timeout 60 "$BIN" generate -m "$m" --backend cpu --ids "$P100" -n 32 2>>"$CHK")
  if [ ! -f "$TMP/v.npy" ]; then echo "VULKAN RUN FAILED on $m:"; tail -5 "$CHK"; exit 1; fi
  echo "check $(basename "$m"): prefill logits rel err vulkan vs cpu $(relerr $TMP/v.npy $TMP/c.npy); greedy 32 ids equal: $([ "$gv" = "$gc" ] && echo yes || echo "NO ($gv | $gc)")" | tee -a "$CHK" "$SUM"
done

P512=$(seq 0 511 | paste -sd,)   # 512 ids
run_type() {
  local T=$1 M=$TMP/x-$PRESET-$T.gguf
  say "init $PRESET $T"
  timeout 240 "$BIN" init --preset "$PRESET" --type "$T" -o "$M" -q --force 2>&1 | tail -1
  [ -f "$M" ] || { echo "init $T failed" | tee -a "$SUM"; return; }
  if [ "$T" = q4_0 ]; then
    # 7B shapes (dqk 256, dv 512, 8 step splits, chunk kernels) against the CPU engine
    timeout 120 "$BIN" logits -m "$M" --backend vulkan --ids 11,22,33,44,55 -o $TMP/v7.npy 2>>"$CHK"
    timeout 120 "$BIN" logits -m "$M" --backend cpu --ids 11,22,33,44,55 -o $TMP/c7.npy 2>>"$CHK"
    gv=$(timeout 120 "$BIN" generate -m "$M" --backend vulkan --ids 11,22,33 -n 6 2>>"$CHK")
    gc=$(timeout 120 "$BIN" generate -m "$M" --backend cpu --ids 11,22,33 -n 6 2>>"$CHK")
    echo "check $PRESET q4_0: 5-token logits rel err vulkan vs cpu $(relerr $TMP/v7.npy $TMP/c7.npy); greedy 6 ids equal: $([ "$gv" = "$gc" ] && echo yes || echo "NO ($gv | $gc)")" | tee -a "$CHK" "$SUM"
  fi
  for r in 1 2 3; do
    say "$T run $r: 512-token prompt + 128 tokens"
    local s0 s1
    s0=$(date +%s.%N)
    XLSTM_VK_STATS=1 timeout 180 "$BIN" generate -m "$M" --backend vulkan --ids "$P512" -n 128 >/dev/null 2>"$TMP/run-$T-$r.txt"
    s1=$(date +%s.%N)
    { echo "== run $T $r"; cat "$TMP/run-$T-$r.txt"; } >> "$FULL"
    echo "$T run $r: process $(python3 -c "print(f'{$s1-$s0:.2f}')") s; $(grep -h 'wall clock\|weights\|error' "$TMP/run-$T-$r.txt" | tr '\n' ' ')" | tee -a "$SUM"
  done
  say "$T profile: 16-token prompt + 64 decode steps"
  timeout 180 "$BIN" generate -m "$M" --backend vulkan --ids "$(seq 100 115 | paste -sd,)" -n 64 --profile >/dev/null 2>"$TMP/profile-$T.txt"
  { echo "== profile $T"; cat "$TMP/profile-$T.txt"; } | tee -a "$FULL" >> "$SUM"
  if [ "$T" = q4_0 ] || [ "$T" = f16 ]; then
    for mv in 64,4 256,2 64,8; do
      XLSTM_VK_MATVEC=$mv XLSTM_VK_STATS=1 timeout 120 "$BIN" generate -m "$M" --backend vulkan --ids 5,6,7,8 -n 96 >/dev/null 2>$TMP/mv.txt
      echo "matvec sweep $T wg,rows=$mv: $(grep -o 'step period median [0-9.]* ms' $TMP/mv.txt)" | tee -a "$SUM"
    done
  fi
  rm -f "$M"
}

for T in q4_0 f16 q8_0; do run_type "$T"; done
cat "$CHK" >> "$FULL"
say "done"
echo "================ SUMMARY ================"
cat "$SUM"
