#!/usr/bin/env bash
# The ablation study's arms (PLAN.md), resumable:
#   experiments/smollm2_ablation/run.sh DATA_DIR OUT_DIR ARMS SEED [SEED ...]
# ARMS: a comma-separated subset of a,b,c,d (run in that order for each seed), or e alone, once every seed
# of arm C is complete (its constant c pools arm C's seeds: give E the same seeds). The study's order (PLAN.md,
# "Budget"): a,b,c for every seed, then d, then e, so that the arms cut first run last.
# Each pipeline writes OUT_DIR/<arm>_s<seed>/ (a_srlm_s0, b_cream_s0, ...); collect.sh copies its summaries.
# CREAM_OVERRIDES (space-separated Hydra overrides) is added to every command (the CI test's tiny budget);
# CREAM_TRAIN and CREAM_PYTHON name the cream-train and python to use.
#
# Arms that compute the same stages share them through copies (procedure.py share: a stage is copied when
# its recorded config equals what the arm would record and its upstream stages are shared; the pipeline
# checks every copy again). B copies from A (everything up to iteration 1's pairs); C and D from each other
# (up to iteration 1's pairs) or else from A (up to iteration 1's samples); E from C (up to iteration 1's pairs).
set -euo pipefail
data_dir=$1 out=$2 arms=$3
shift 3
cd "$(dirname "$0")/../.."
train=${CREAM_TRAIN:-cream-train}
py=${CREAM_PYTHON:-python}
here=experiments/smollm2_ablation
read -r -a extra <<< "${CREAM_OVERRIDES:-}"
declare -A name=([a]=a_srlm [b]=b_cream [c]=c_cream_controls [d]=d_srlm_controls [e]=e_fixed_c)
declare -A sources=([b]=a [c]="d a" [d]="c a" [e]=c)
IFS=, read -r -a chosen <<< "$arms"
for arm in "${chosen[@]}"; do
  [ -n "${name[$arm]:-}" ] || { echo "run.sh: unknown arm '$arm' (a, b, c, d, e)" >&2; exit 2; }
  [ "$arm" != e ] || [ "${#chosen[@]}" -eq 1 ] || { echo "run.sh: run arm e alone, after every seed of arm c" >&2; exit 2; }
done
extra_e=()
if [ "${chosen[0]}" = e ]; then
  c=$($py $here/procedure.py fixed-c "$out" "$@")
  echo "arm E: regularizer.c=$c (mean of arm C's DPO weights at t >= 2, seeds $*)"
  extra_e=("regularizer.c=$c")
fi
for seed in "$@"; do
  for arm in a b c d e; do
    [[ ",$arms," == *",$arm,"* ]] || continue
    dir=$out/${name[$arm]}_s$seed
    args=("experiment=smollm2_ablation_${name[$arm]}" "data.dir=$data_dir" "seed=$seed" "${extra[@]}" "${extra_e[@]}")
    for src in ${sources[$arm]:-}; do
      $py $here/procedure.py share "$out/${name[$src]}_s$seed" "$dir" "${args[@]}"
    done
    $train "${args[@]}" "hydra.run.dir=$dir"
  done
done
