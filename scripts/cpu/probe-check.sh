#!/usr/bin/env bash
# Checks xlstm-run's host read-bandwidth probe (the one `bench` reports decode against) against a plain C/OpenMP AVX2
# sum over the same amount of memory (scripts/cpu/read_probe.c). `bench` probes before and after its tests (best of 8
# passes each) and keeps the better; so the C sum runs right before and right after it, and the better of those two
# is the reference: same number of passes, same minutes of the machine.
# Usage: scripts/cpu/probe-check.sh [ROUNDS]     Environment: BIN (default build/xlstm-run), MIB (default 1024),
#        RT=1 runs every measurement under `chrt -f 10` (the other processes of a shared machine then get ~5 %).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/xlstm-run}
MIB=${MIB:-1024}
ROUNDS=${1:-3}
[ -x "$BIN" ] || { echo "error: build the binary first (make publish)" >&2; exit 1; }
CC=${CC:-$(command -v gcc || command -v cc || command -v clang)}   # clang needs libomp-dev for -fopenmp
PROBE=$(mktemp -d)/read_probe
"$CC" -O3 -march=native -fopenmp scripts/cpu/read_probe.c -o "$PROBE"
PRE=()
[ "${RT:-0}" = 1 ] && PRE=(chrt -f 10)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
csum() { "${PRE[@]}" "$PROBE" "$MIB" 8 | sed -E 's/.*: ([0-9.]+) GB\/s.*/\1/'; }
for r in $(seq 1 "$ROUNDS"); do
    c1=$(csum)
    x=$("${PRE[@]}" "$BIN" bench --backend cpu -p 0 -n 0 -o json --probe-mib "$MIB" 2>/dev/null | sed -E 's/.*"probe_gb_s":([0-9.]+).*/\1/')
    c2=$(csum)
    awk -v r="$r" -v a="$c1" -v b="$c2" -v x="$x" 'BEGIN { c = a > b ? a : b;
        printf "round %d: C sum %.1f / %.1f GB/s (before / after), xlstm-run probe %.1f GB/s = %.0f %% of the better C sum\n", r, a, b, x, 100 * x / c }'
done
