#!/usr/bin/env bash
# Test-time-compute tables (issue: test-time compute that buys accuracy). CPU; each run resumable
# with --resume. Tables: python benchmarks/tts_table.py runs/tts-<name>-*  (recorded in BENCHMARKS.md).
set -euo pipefail
COUNT=${COUNT:-50}
OUT=${OUT:-runs}
# maze-mcq, out of distribution: the sampled pool at N=16 read as best-of-k / weighted / majority,
# compute_optimal at N=4 and 16 (budget 4 greedy units), then the searches that rewind (refine) and
# the greedy chain with sketch search, at N=1 and 4.
vot bench maze --size 7,8 --count "$COUNT" --n 4,16 --strategy greedy,best_of_n,weighted_best_of_n,self_consistency,compute_optimal \
  --out "$OUT/tts-maze78-pool" "$@"
vot bench maze --size 7,8 --count "$COUNT" --n 1,4 --strategy refine,sketch_search --out "$OUT/tts-maze78-search" "$@"
# frozenlake-mcq and frozenlake-nav, all benchmark sizes
vot bench frozenlake --count "${LAKE_COUNT:-15}" --n 4,16 --strategy greedy,best_of_n,weighted_best_of_n,self_consistency,compute_optimal,refine \
  --out "$OUT/tts-frozenlake-mcq" "$@"
vot bench frozenlake-nav --count "${LAKE_COUNT:-15}" --n 4,16 --strategy greedy,best_of_n,weighted_best_of_n,self_consistency,compute_optimal,refine \
  --out "$OUT/tts-frozenlake-nav" "$@"
