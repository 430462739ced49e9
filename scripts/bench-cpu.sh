#!/usr/bin/env bash
# CPU benchmark of the synthetic xLSTM 7B model, one weight type at a time (each file is written, measured, deleted,
# so that disk and page cache hold only one 7B file at once).
# Usage: scripts/bench-cpu.sh [TYPE...]      TYPE: q4_0 q8_0 f16 bf16 f32 (default: q4_0 q8_0 f16)
# Environment: BIN (default build/xlstm-run), DIR (default .scratch), THREADS (default 0 = all cores), REPS (default 5),
#              KEEP=1 keeps the model files.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/xlstm-run}
DIR=${DIR:-.scratch}
THREADS=${THREADS:-0}
REPS=${REPS:-5}
TYPES=("$@")
[ ${#TYPES[@]} -eq 0 ] && TYPES=(q4_0 q8_0 f16)
[ -x "$BIN" ] || { echo "build the binary first (make publish)" >&2; exit 1; }
mkdir -p "$DIR"
for t in "${TYPES[@]}"; do
    f="$DIR/7b-$t.gguf"
    [ -f "$f" ] || { echo "== init $t" >&2; /usr/bin/time -f "init $t: %e s" "$BIN" init --preset 7b --type "$t" -o "$f" -q; }
    echo "== bench $t (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    "$BIN" bench -m "$f" --backend cpu -t "$THREADS" -r "$REPS"
    echo
    [ "${KEEP:-0}" = 1 ] || rm -f "$f"
done
