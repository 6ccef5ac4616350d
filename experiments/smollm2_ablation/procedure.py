"""The steps of the ablation study's procedure that run.sh and select.sh call (PLAN.md states each rule):

    python experiments/smollm2_ablation/procedure.py share SRC_RUN DST_RUN OVERRIDE ...
    python experiments/smollm2_ablation/procedure.py fixed-c OUT_DIR SEED ...
    python experiments/smollm2_ablation/procedure.py select-sft SELECT_DIR
    python experiments/smollm2_ablation/procedure.py select-lr SELECT_DIR SFT_LR

``share``: copies into DST_RUN every stage of SRC_RUN that the run composed from OVERRIDE (cream-train's
arguments) would compute identically: a stage whose recorded config (its manifest's ``config_hash``) equals
what DST_RUN's config gives that stage, and whose upstream stages are all shared. The pipeline checks each
copied stage again (config and input digests), so a copy is exactly what it would have recomputed.

``fixed-c``: arm E's constant c, the mean of arm C's DPO weights (``mean_weight`` in ``iter_t/dpo/manifest.json``)
at t >= 2 over the given seeds (t = 1 trains with C = 1 in every arm with the controls); each seed's run must
have all its iterations.

``select-sft`` / ``select-lr``: the selection rule on the ARC-Easy dev split (select.sh's run dirs
``sft<SFT_LR>_dpo<DPO_LR>``): the SFT lr whose M1 has the higher dev acc_norm (a tie: the larger lr); then the
largest DPO lr whose M2 loops on fewer than 5% of the greedy dev answers and keeps dev acc_norm within one
standard error of M1's (none passes: the smallest, 1e-6).
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOOP_LIMIT = 0.05  # the share of greedy dev answers of M2 that may loop
DPO_LRS = ("1e-6", "3e-6", "1e-5")
SFT_LRS = ("1e-5", "3e-6")


def _drift():
    """experiments/smollm2/drift.py (its ``looping``: one non-empty line 3 or more times)."""
    spec = importlib.util.spec_from_file_location("smollm2_drift", ROOT / "experiments" / "smollm2" / "drift.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------ share
def _stages(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from cream.paths import conf_dir
    from cream.pipeline import plan
    from cream.stages.context import Context

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[o for o in overrides if not o.startswith("hydra.")])
    return plan(Context(cfg, Path("run")))


def shareable(src: Path, stages) -> list[str]:
    """The stages (in pipeline order) whose finished folder in ``src`` matches their config here, upstream shared."""
    from cream.artifacts import config_hash

    shared: list[str] = []
    for stage in stages:
        manifest = src / stage.name / "manifest.json"
        if not manifest.exists() or not all(d in shared for d in stage.deps):
            continue
        if json.loads(manifest.read_text()).get("config_hash") == config_hash(stage.config):
            shared.append(stage.name)
    return shared


def share(src: Path, dst: Path, overrides: list[str]) -> list[str]:
    """Copy the shareable stages of ``src`` that ``dst`` does not hold yet; returns the names copied."""
    copied = []
    for name in shareable(src, _stages(overrides)):
        if (dst / name / "manifest.json").exists():
            continue
        shutil.rmtree(dst / name, ignore_errors=True)
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src / name, dst / name, symlinks=True)
        copied.append(name)
    return copied


# ---------------------------------------------------------------------------------------------- fixed c
def fixed_c(out: Path, seeds: list[str], arm: str = "c_cream_controls") -> float:
    weights = []
    for seed in seeds:
        run = out / f"{arm}_s{seed}"
        manifests = sorted(run.glob("iter_*/dpo/manifest.json"))
        iterations = _iterations(run)
        if len(manifests) != iterations:
            raise SystemExit(f"{run}: {len(manifests)} of {iterations} DPO steps done; "
                             "arm E needs every seed of arm C complete")
        for m in manifests:
            if int(m.parents[1].name.removeprefix("iter_")) >= 2:
                weights.append(json.loads(m.read_text())["summary"]["mean_weight"])
    if not weights:
        raise SystemExit(f"no DPO step at t >= 2 under {out}/{arm}_s*: arm E's c is the mean of arm C's weights there")
    return round(statistics.mean(weights), 3)


def _iterations(run: Path) -> int:
    import yaml

    path = run / ".hydra" / "config.yaml"
    if not path.exists():
        raise SystemExit(f"{path}: missing (has arm C run for this seed?)")
    return int(yaml.safe_load(path.read_text())["pipeline"]["iterations"])


# -------------------------------------------------------------------------------------------- selection
def _rows(run: Path) -> dict[str, dict]:
    from cream.artifacts import read_jsonl

    return {r["model"]: r for r in read_jsonl(run / "results.jsonl")}


def select_sft(root: Path) -> str:
    """The SFT lr whose M1 has the higher dev acc_norm (equal: the larger lr), from the runs with DPO lr 1e-6."""
    acc = {lr: _rows(root / f"sft{lr}_dpo1e-6")["M1"]["eval_acc_norm"]["arc_easy"] for lr in SFT_LRS}
    return max(SFT_LRS, key=lambda lr: (acc[lr], float(lr)))


def lr_table(root: Path, sft: str) -> list[dict]:
    """Per DPO lr: M1's and M2's dev acc_norm, M1's standard error, M2's looping share, and whether it passes."""
    looping = _drift().looping
    table = []
    for lr in DPO_LRS:
        run = root / f"sft{sft}_dpo{lr}"
        rows = _rows(run)
        m1, m2 = rows["M1"], rows["M2"]
        preds = [json.loads(line) for line in (run / "eval" / "M2" / "predictions.jsonl").read_text().splitlines()
                 if line]
        loops = sum(looping(p["output"]) for p in preds) / len(preds)
        acc1, se1, acc2 = (m1["eval_acc_norm"]["arc_easy"], m1["eval_acc_norm_stderr"]["arc_easy"],
                           m2["eval_acc_norm"]["arc_easy"])
        table.append({"lr": lr, "m1": acc1, "se": se1, "m2": acc2, "looping": loops,
                      "passes": loops < LOOP_LIMIT and acc2 >= acc1 - se1})
    return table


def select_lr(table: list[dict]) -> str:
    passing = [row["lr"] for row in table if row["passes"]]
    return max(passing, key=float) if passing else min(DPO_LRS, key=float)


def _lr_report(root: Path, sft: str) -> str:
    table = lr_table(root, sft)
    lines = [f"sft.lr={sft}", "| dpo.lr | M1 acc_norm (se) | M2 acc_norm | M2 looping | passes |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['lr']} | {100 * r['m1']:.1f} ({100 * r['se']:.1f}) | {100 * r['m2']:.1f} "
              f"| {100 * r['looping']:.1f}% | {'yes' if r['passes'] else 'no'} |" for r in table]
    return "\n".join(lines + [f"dpo.lr={select_lr(table)}"])


def main(argv: list[str]) -> str:
    cmd, args = argv[0], argv[1:]
    if cmd == "share":
        return "\n".join(share(Path(args[0]), Path(args[1]), args[2:]))
    if cmd == "fixed-c":
        return f"{fixed_c(Path(args[0]), args[1:]):.3f}"
    if cmd == "select-sft":
        return select_sft(Path(args[0]))
    if cmd == "select-lr":
        return _lr_report(Path(args[0]), args[1])
    raise SystemExit(__doc__)


if __name__ == "__main__":
    if len(sys.argv) < 3 or not re.fullmatch(r"share|fixed-c|select-sft|select-lr", sys.argv[1]):
        sys.exit(__doc__)
    print(main(sys.argv[1:]))
