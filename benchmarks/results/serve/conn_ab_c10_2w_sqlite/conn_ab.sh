#!/bin/bash
# Issue 26: does the kernel's hand-out of kept-alive connections to the 2 workers explain the p95 spread?
# A: kept (one connection per client thread for the whole run), B: per-session (a new connection each session);
# interleaved A B A B after the frame cache is warm; short runs as lock_ab (40 per type, 10 at once, SQLite).
set -euo pipefail
cd /work/main; source .venv/bin/activate
export FACELIVE_DATA=/work/shared/data FACELIVE_DETECTOR=/work/shared/models/yunet/yunet_s_640_640.onnx
for r in ${RUNS:-A1 B1 A2 B2}; do
  mode=kept; [ ${r:0:1} = B ] && mode=per-session
  echo "=== $(date -u +%FT%T) $r $mode loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  facelive-bench serve --sessions-per-type 40 --concurrency 10 --workers 2 --frame-cache /work/runs/s11/framecache \
    --connections $mode --no-replay --no-per-frame-row --out /work/runs/s12/conn_$r --json > /work/runs/s12/conn_$r.json
done
echo "=== $(date -u +%FT%T) done"
