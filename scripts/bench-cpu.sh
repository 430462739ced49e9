#!/usr/bin/env bash
# CPU benchmark of the synthetic xLSTM 7B model, one weight type at a time: for each type, `xlstm-run bench` with pp512
# and tg128 (its own read-bandwidth probe before and after), then pp64, with the plain C read sum
# (scripts/cpu/read_probe.c) right before and after, and the machine's load. Each model file is written, measured and
# deleted (only one 7B file on disk and in the page cache at once) unless KEEP=1.
# Usage: scripts/bench-cpu.sh [TYPE...]      TYPE: q4_0 q8_0 f16 bf16 f32 (default: q4_0 q8_0 f16)
# Environment: BIN (default build/xlstm-run), DIR (default $TMPDIR or /tmp, /xlstm-cpu-bench), THREADS (default 0 =
#              all cores), REPS (default 3), KEEP=1 keeps the model files, RT=1 runs the measurements under
#              `chrt -f 10` (isolates them from other work on a shared machine; needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/xlstm-run}
DIR=${DIR:-${TMPDIR:-/tmp}/xlstm-cpu-bench}
THREADS=${THREADS:-0}
REPS=${REPS:-3}
TYPES=("$@")
[ ${#TYPES[@]} -eq 0 ] && TYPES=(q4_0 q8_0 f16)
[ -x "$BIN" ] || { echo "error: build the binary first (make publish)" >&2; exit 1; }
PRE=()
[ "${RT:-0}" = 1 ] && PRE=(chrt -f 10)
CC=${CC:-$(command -v gcc || command -v cc || command -v clang)}   # clang needs libomp-dev for -fopenmp
mkdir -p "$DIR"
PROBE="$DIR/read_probe"
"$CC" -O3 -march=native -fopenmp scripts/cpu/read_probe.c -o "$PROBE"
csum() { echo "C read sum: $("${PRE[@]}" "$PROBE" 1024 8 | sed -E 's/.*: ([0-9.]+ GB\/s).*/\1/') (load $(cut -d' ' -f1-3 /proc/loadavg))"; }
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB"
for t in "${TYPES[@]}"; do
    f="$DIR/7b-$t.gguf"
    [ -f "$f" ] || { echo "== init $t" >&2; /usr/bin/time -f "init $t: %e s" "$BIN" init --preset 7b --type "$t" -o "$f" -q; }
    echo "== $t"
    csum
    "${PRE[@]}" "$BIN" bench -m "$f" --backend cpu -t "$THREADS" -r "$REPS" -p 512 -n 128
    "${PRE[@]}" "$BIN" bench -m "$f" --backend cpu -t "$THREADS" -r "$REPS" -p 64 -n 0 --probe-mib 0 | grep -E '^\| (model|xlstm)'
    csum
    echo
    [ "${KEEP:-0}" = 1 ] || rm -f "$f"
done
