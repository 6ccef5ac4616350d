#!/usr/bin/env bash
# The SmolLM2 miniature (experiments/smollm2/README.md): CREAM and SRLM for each seed, resumable.
#   experiments/smollm2/run.sh DATA_DIR OUT_DIR SEED [SEED ...]
# CREAM_OVERRIDES (space-separated Hydra overrides) is added to both commands (the CI test's tiny budget).
# Each pipeline writes OUT_DIR/<method>_s<seed>/ (weights and samples stay there; collect.sh copies the small
# files into experiments/smollm2/runs/). Rerunning the same command continues where a run stopped.
#
# The two methods of one seed are the same run up to iteration 1's DPO step: the base model, its evaluation,
# SFT (M1), M1's evaluation, and iteration 1's samples, rewards, consistency and pairs do not depend on the
# regularizer. The SRLM run starts from copies of those stage folders of the CREAM run; the pipeline checks
# each copied stage's manifest (config values and input digests) and runs it again if anything differs.
set -euo pipefail
data_dir=$1 out=$2
shift 2
cd "$(dirname "$0")/../.."
train=${CREAM_TRAIN:-cream-train}
read -r -a extra <<< "${CREAM_OVERRIDES:-}"
shared=(base eval/M0 sft eval/M1 iter_1/sample iter_1/reward iter_1/consistency iter_1/pairs)
for seed in "$@"; do
  cream=$out/cream_s$seed srlm=$out/srlm_s$seed
  $train experiment=smollm2_cream "data.dir=$data_dir" seed=$seed "hydra.run.dir=$cream" "${extra[@]}"
  for stage in "${shared[@]}"; do
    if [ ! -e "$srlm/$stage/manifest.json" ]; then
      mkdir -p "$(dirname "$srlm/$stage")" && rm -rf "$srlm/$stage" && cp -a "$cream/$stage" "$srlm/$stage"
    fi
  done
  $train experiment=smollm2_srlm "data.dir=$data_dir" seed=$seed "hydra.run.dir=$srlm" "${extra[@]}"
done
