#!/usr/bin/env bash
# Three runs of the benchmarks, each saved as a criterion baseline, then the
# the tables of docs/performance.md from the median of the three (see benches/report.py).
set -euo pipefail
cd "$(dirname "$0")/.."
for run in 1 2 3; do
    cargo bench --bench breakers -- --noplot --save-baseline "run$run"
done
python3 benches/report.py
