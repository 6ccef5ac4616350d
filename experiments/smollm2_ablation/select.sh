#!/usr/bin/env bash
# The selection of sft.lr and dpo.lr (PLAN.md, "Selection"), on the ARC-Easy dev split with arm A (SRLM),
# seed 0, one iteration; resumable:   experiments/smollm2_ablation/select.sh DATA_DIR OUT_DIR
# 1. SFT lr 1e-5 and 3e-6, each with DPO lr 1e-6 (the second copies the base model and its evaluation);
# 2. the SFT lr whose M1 has the higher dev acc_norm; with it, DPO lr 3e-6 and 1e-5 (copies of everything up
#    to iteration 1's pairs, which do not depend on the DPO lr);
# 3. the largest DPO lr whose M2 neither loops nor loses more than one standard error of dev acc_norm.
# Prints the table and the two values to write into conf/experiment/smollm2_ablation_base.yaml.
# CREAM_OVERRIDES, CREAM_TRAIN, CREAM_PYTHON: as in run.sh.
set -euo pipefail
data_dir=$1 out=$2/select
cd "$(dirname "$0")/../.."
train=${CREAM_TRAIN:-cream-train}
py=${CREAM_PYTHON:-python}
here=experiments/smollm2_ablation
read -r -a extra <<< "${CREAM_OVERRIDES:-}"
candidate() {  # SFT_LR DPO_LR SOURCE_RUN
  local dir=$out/sft$1_dpo$2
  local args=(experiment=smollm2_ablation_select "data.dir=$data_dir" seed=0 "sft.lr=$1" "dpo.lr=$2" "${extra[@]}")
  [ -z "$3" ] || $py $here/procedure.py share "$3" "$dir" "${args[@]}"
  $train "${args[@]}" "hydra.run.dir=$dir"
}
candidate 1e-5 1e-6 ""
candidate 3e-6 1e-6 "$out/sft1e-5_dpo1e-6"
sft=$($py $here/procedure.py select-sft "$out")
for lr in 3e-6 1e-5; do
  candidate "$sft" "$lr" "$out/sft${sft}_dpo1e-6"
done
$py $here/procedure.py select-lr "$out" "$sft"
