#!/usr/bin/env bash
# Train models/default on the GPU machine (one H100: PyTorch 2.11, transformers 5.17, tokenizers 0.23).
# First, on a Debian machine with apt:   python3 scripts/train_default_model.py prepare
#   (writes .scratch/corpus/{train,valid,heldout}.txt and models/default/heldout-excerpt.txt)
# Then, on the GPU machine, from the repository root:
#   bash scripts/train_default_model.sh OUT_DIR [extra 'train' arguments]
# OUT_DIR gets model/ (save_pretrained output + tokenizer.json), metrics.json and train_log.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-.scratch/default-hf}}"
shift || true
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 PYTHONHASHSEED=0 CUBLAS_WORKSPACE_CONFIG=:4096:8 TOKENIZERS_PARALLELISM=true
python3 scripts/train_default_model.py train --corpus .scratch/corpus --out "$OUT_DIR" "$@" 2>&1 \
  | tee "$OUT_DIR/train_log.txt"
