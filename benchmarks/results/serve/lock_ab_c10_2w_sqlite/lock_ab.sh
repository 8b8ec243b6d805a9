#!/bin/bash
# Issue 26: the worker's pipeline lock, threading.Lock (A) against FifoLock (B), interleaved A B A B on the
# same hour; short runs (40 sessions per type, 10 at once, 2 workers, SQLite), no replay, no per-frame row.
# Run from the repository root of commit 2cf0ea1 (the FifoLock variant; main went back to threading.Lock):
#   git checkout 2cf0ea1 && OUT=/tmp/lock_ab bash benchmarks/results/serve/lock_ab_c10_2w_sqlite/lock_ab.sh
# Bwarm fills the frame cache (its render CPU would bias the first timed run) and is not counted.
set -euo pipefail
source .venv/bin/activate; mkdir -p "${OUT:-/tmp/lock_ab}"
export FACELIVE_DATA=${FACELIVE_DATA:-../shared/data} FACELIVE_DETECTOR=${FACELIVE_DETECTOR:-../shared/models/yunet/yunet_s_640_640.onnx}
F=server/sessions.py
set_lock() {  # A: threading.Lock, B: FifoLock (the committed code)
  if [ $1 = A ]; then sed -i 's/field(default_factory=FifoLock)/field(default_factory=__import__("threading").Lock)/' $F
  else sed -i 's/field(default_factory=__import__("threading").Lock)/field(default_factory=FifoLock)/' $F; fi
  grep -n "lock:" $F
}
trap 'set_lock B' EXIT
for r in Bwarm A1 B1 A2 B2; do
  set_lock ${r:0:1}
  echo "=== $(date -u +%FT%T) $r"
  facelive-bench serve --sessions-per-type 40 --concurrency 10 --workers 2 --frame-cache "${FRAME_CACHE:-/tmp/facelive-framecache}" \
    --no-replay --no-per-frame-row --out "${OUT:-/tmp/lock_ab}"/lock_$r --json > "${OUT:-/tmp/lock_ab}"/lock_$r.json
done
echo "=== $(date -u +%FT%T) done"
