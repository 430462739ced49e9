#!/usr/bin/env bash
# Two GPUs, two shards (issue 12): the same prompt file through `batch` on one GPU, then split with --shard 0/2 and
# 1/2 over two GPUs at once (--device 0 / 1), merged with batch-merge; aggregate tokens/s and whether the merged
# output equals the one-GPU output. Run on the two-GPU machine kind from the repository root with build/xlstm-run and
# .gl carried (see h200.sh). Writes $OUT/shards.md.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
BIN=${BIN:-$PWD/build/xlstm-run}
LINES=${LINES:-256}
PAR=${PAR:-16}
TYPE=${TYPE:-q4_0}
TMP=/tmp/xlstm-shards
mkdir -p "$OUT" "$TMP"
SUM=$OUT/shards.md
if [ -d .gl ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$icd" ] && { export VK_DRIVER_FILES=$icd; break; }
done
{ echo "## two GPUs, two shards ($(date -u +%Y-%m-%dT%H:%MZ))"; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; "$BIN" info --devices; } > "$SUM" 2>&1
m=$TMP/7b-$TYPE.gguf
[ -f "$m" ] || "$BIN" init --preset 7b --type "$TYPE" --tokenizer tests/data/tokenizers/gpt-neox-20b.tokenizer.json -o "$m" -q > /dev/null 2>&1
python3 - "$TMP/prompts.jsonl" "$LINES" <<'PY'
import json, sys
words = "the of and to in is was for on with as by at from that this which be are or an it not but have".split()
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        n = 8 + (i * 7) % 40
        f.write(json.dumps({"id": f"p{i}", "prompt": " ".join(words[(i * 3 + j) % len(words)] for j in range(n)), "n_predict": 64, "temperature": 0}) + "\n")
PY
run() { "$BIN" batch -m "$m" --backend vulkan -i "$TMP/prompts.jsonl" --parallel "$PAR" --ignore-eos --force "$@"; }
t0=$(date +%s.%N); run --device 0 -o "$TMP/one.jsonl" 2> "$TMP/one.txt" > /dev/null; t1=$(date +%s.%N)
run --device 0 --shard 0/2 -o "$TMP/s0.jsonl" 2> "$TMP/s0.txt" > /dev/null &
run --device 1 --shard 1/2 -o "$TMP/s1.jsonl" 2> "$TMP/s1.txt" > /dev/null &
wait; t2=$(date +%s.%N)
"$BIN" batch-merge "$TMP/s0.jsonl" "$TMP/s1.jsonl" -i "$TMP/prompts.jsonl" -o "$TMP/merged.jsonl" 2> "$TMP/merge.txt"
# records are written as they complete: compare by id
same=$(python3 -c "
import json
a={r['id']: r.get('text') for r in map(json.loads, open('$TMP/one.jsonl'))}
b={r['id']: r.get('text') for r in map(json.loads, open('$TMP/merged.jsonl'))}
print(sum(a[k] == b.get(k) for k in a), 'of', len(a), 'lines identical; merged has', len(b))")
tok=$((LINES * 64))
python3 - "$t0" "$t1" "$t2" "$tok" >> "$SUM" <<'PY'
import sys
t0, t1, t2, tok = map(float, sys.argv[1:])
one, two = t1 - t0, t2 - t1
print(f"| GPUs | wall s (load included) | tokens/s |\n|---|---|---|\n| 1 | {one:.2f} | {tok/one:.1f} |\n| 2 (two shards at once) | {two:.2f} | {tok/two:.1f} |\n\nspeed-up {one/two:.2f}x")
PY
{ echo "merged vs one GPU: $same"; echo; for f in one s0 s1 merge; do echo "$f: $(grep -E 'done:|prefill|merged|error' "$TMP/$f.txt" | tr '\n' ' ')"; done; } >> "$SUM"
cat "$SUM"
