#!/usr/bin/env bash
# Copy the small files of each run (results.jsonl, timings.json, .hydra/, the DPO steps' manifests) from OUT_DIR into
# experiments/smollm2/runs/, where cream-table and cream-plot read them:   experiments/smollm2/collect.sh OUT_DIR
set -euo pipefail
out=$1
dest="$(dirname "$0")/runs"
for run in "$out"/*_s*/; do
  name=$(basename "$run")
  [ -f "$run/results.jsonl" ] || continue
  mkdir -p "$dest/$name/.hydra"
  cp "$run/results.jsonl" "$dest/$name/"
  [ -f "$run/timings.json" ] && cp "$run/timings.json" "$dest/$name/"
  cp "$run"/.hydra/*.yaml "$dest/$name/.hydra/"
  for m in "$run"/iter_*/dpo/manifest.json; do
    [ -f "$m" ] || continue
    step=$(basename "$(dirname "$(dirname "$m")")")
    mkdir -p "$dest/$name/$step/dpo" && cp "$m" "$dest/$name/$step/dpo/"
  done
done
ls "$dest"
