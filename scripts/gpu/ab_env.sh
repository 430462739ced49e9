#!/usr/bin/env bash
# Settings side by side on the synthetic 7B models (after `h200.sh` set-up with the models made): for each type in
# AB_TYPES and each test in AB_TESTS (ppN: `bench -p N -n 0`, tgN: `bench -p 0 -n N`), alternating the settings of
# AB_ENVS (one +-separated set of assignments per setting, "-" for the defaults), AB_ROUNDS times. Usage: OUT=dir BIN=build/xlstm-run AB_ENVS="- X=0" bash scripts/gpu/ab_env.sh
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}; BIN=${BIN:-$PWD/build/xlstm-run}; SUM=$OUT/summary.md; TMP=/tmp/xlstm-gpu
{ echo; echo "## settings side by side: tokens/s (bench -r ${AB_REPS:-3}), rounds alternate"; } >> "$SUM"
for t in ${AB_TYPES:-q4_0}; do for test in ${AB_TESTS:-pp64 pp512 pp2048 tg128}; do
  n=${test#??}; if [[ $test == pp* ]]; then args="-p $n -n 0"; else args="-p 0 -n $n"; fi
  row="| $t | $test |"
  for r in $(seq 1 "${AB_ROUNDS:-2}"); do for e in ${AB_ENVS:--}; do
    v=""; [ "$e" != "-" ] && v=${e//+/ }
    tps=$(env $v timeout 120 "$BIN" bench -m "$TMP/7b-$t.gguf" --backend vulkan $args -r "${AB_REPS:-3}" 2>/dev/null | grep -E '^\| xlstm' | awk -F'|' '{print $8}' | awk '{print $1}')
    row="$row $e: ${tps:-?} |"
  done; done
  echo "$row" >> "$SUM"
done; done
