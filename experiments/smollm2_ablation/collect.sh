#!/usr/bin/env bash
# Copy the small files of each run of the study (results.jsonl, timings.json, .hydra/, the DPO steps' manifests)
# from OUT_DIR into experiments/smollm2_ablation/runs/ (the arms, where cream-table, cream-plot and analysis.py
# read them) and selection/ (the selection runs, with M2's dev answers, which the looping rule reads):
#   experiments/smollm2_ablation/collect.sh OUT_DIR [DEST]
# For an arm, the per-question predictions go with them, cut to id, benchmark and each measure's `correct` and
# `answer`: every evaluated model's generative ones (analysis.py answers) and the last model's log-likelihood ones,
# so that the McNemar tests at M4 (analysis.py questions) need no run dir.
# DEST (default: this folder) holds runs/ and selection/; CREAM_PYTHON names the python.
set -euo pipefail
out=$1
here="$(dirname "$0")"
root=${2:-$here}
py=${CREAM_PYTHON:-python}
for run in "$out"/*_s*/ "$out"/select/sft*/; do
  [ -f "$run/results.jsonl" ] || continue
  rel=${run#"$out"/}
  rel=${rel%/}
  case $rel in select/*) dest=$root/selection rel=${rel#select/} ;; *) dest=$root/runs ;; esac
  mkdir -p "$dest/$rel/.hydra"
  cp "$run/results.jsonl" "$dest/$rel/"
  [ -f "$run/timings.json" ] && cp "$run/timings.json" "$dest/$rel/"
  cp "$run"/.hydra/*.yaml "$dest/$rel/.hydra/"
  if [ "$dest" = "$root/selection" ] && [ -f "$run/eval/M2/predictions.jsonl" ]; then
    mkdir -p "$dest/$rel/eval/M2" && cp "$run/eval/M2/predictions.jsonl" "$dest/$rel/eval/M2/"
  fi
  last=$(find "$run/eval" -maxdepth 2 -name predictions_loglik.jsonl 2>/dev/null | sort -V | tail -n 1)
  if [ "$dest" = "$root/runs" ] && [ -d "$run/eval" ]; then
    rm -rf "$dest/$rel/eval"
    for f in $(find "$run/eval" -mindepth 2 -maxdepth 2 -name predictions.jsonl | sort -V) $last; do
      model=$(basename "$(dirname "$f")")
      mkdir -p "$dest/$rel/eval/$model"
      "$py" -c '
import json, sys
for line in open(sys.argv[1]):
    row = json.loads(line)
    keep = {k: row[k] for k in ("id", "benchmark") if k in row}
    keep.update({k: {f: v[f] for f in ("correct", "answer") if f in v}
                 for k, v in row.items() if isinstance(v, dict) and "correct" in v})
    print(json.dumps(keep))
' "$f" > "$dest/$rel/eval/$model/$(basename "$f")"
    done
  fi
  for m in "$run"/iter_*/dpo/manifest.json; do
    [ -f "$m" ] || continue
    step=$(basename "$(dirname "$(dirname "$m")")")
    mkdir -p "$dest/$rel/$step/dpo" && cp "$m" "$dest/$rel/$step/dpo/"
  done
done
ls "$root/runs" "$root/selection" 2>/dev/null || true
