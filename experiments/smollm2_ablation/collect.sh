#!/usr/bin/env bash
# Copy the small files of each run of the study (results.jsonl, timings.json, .hydra/, the DPO steps' manifests)
# from OUT_DIR into experiments/smollm2_ablation/runs/ (the arms, where cream-table, cream-plot and analysis.py
# read them) and selection/ (the selection runs, with M2's dev answers, which the looping rule reads):
#   experiments/smollm2_ablation/collect.sh OUT_DIR
set -euo pipefail
out=$1
here="$(dirname "$0")"
for run in "$out"/*_s*/ "$out"/select/sft*/; do
  [ -f "$run/results.jsonl" ] || continue
  rel=${run#"$out"/}
  rel=${rel%/}
  case $rel in select/*) dest=$here/selection rel=${rel#select/} ;; *) dest=$here/runs ;; esac
  mkdir -p "$dest/$rel/.hydra"
  cp "$run/results.jsonl" "$dest/$rel/"
  [ -f "$run/timings.json" ] && cp "$run/timings.json" "$dest/$rel/"
  cp "$run"/.hydra/*.yaml "$dest/$rel/.hydra/"
  if [ "$dest" = "$here/selection" ] && [ -f "$run/eval/M2/predictions.jsonl" ]; then
    mkdir -p "$dest/$rel/eval/M2" && cp "$run/eval/M2/predictions.jsonl" "$dest/$rel/eval/M2/"
  fi
  for m in "$run"/iter_*/dpo/manifest.json; do
    [ -f "$m" ] || continue
    step=$(basename "$(dirname "$(dirname "$m")")")
    mkdir -p "$dest/$rel/$step/dpo" && cp "$m" "$dest/$rel/$step/dpo/"
  done
done
ls "$here/runs" "$here/selection" 2>/dev/null || true
