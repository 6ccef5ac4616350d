"""logger=wandb: one offline wandb run per pipeline, one name per metric, lr/grad_norm per step, eval per model."""
import csv
import json
import struct
from pathlib import Path

import pytest

from conftest import read_results, run_cli

pytestmark = pytest.mark.slow


def wandb_records(path: Path):
    """The protobuf records of a ``.wandb`` file (wandb's LevelDB-style log: a 7-byte header, then 32 KiB
    blocks of chunks, each with a crc32, a length and a type: full, first, middle, last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos: pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7: pos + 7 + length]
        pos += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(pending)
            yield rec
            pending = b""


def history(path: Path) -> list[dict]:
    rows = []
    for rec in wandb_records(path):
        if rec.WhichOneof("record_type") == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
    return rows


NESTED = ("/bins", "/values", "/path", "/sha256", "/size", "/ncols", "/nrows", "/log_mode", "/artifact_path",
          "/_latest_artifact_path")


def test_wandb_offline_run_one_name_per_metric(tmp_path):
    run_dir = tmp_path / "run"
    run_cli(["debug=smoke", "logger=wandb", "pipeline.iterations=2", "data.n_prompts=8", "eval.limit=8",
             f"hydra.run.dir={run_dir}"],
            cwd=tmp_path,
            env={"WANDB_MODE": "offline", "WANDB_API_KEY": "sekrit-key-0123456789abcdef0123456789abcdef01234567"})
    assert len(read_results(run_dir)) == 4  # M0..M3
    runs = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1  # one wandb run for the whole pipeline
    rows = history(runs[0])
    # a histogram or table arrives as nested keys (<name>/_type, ...): its name is the part before them
    keys = {k.split("/_type")[0] for r in rows for k in r if not k.startswith("_") and not k.endswith(NESTED)}
    # per optimizer step: TRL's DPO names with lr and grad_norm, on the dpo/step axis, across both iterations
    dpo = [r for r in rows if "dpo/train/loss" in r]
    for k in ("dpo/train/rewards/margins", "dpo/train/rewards/accuracies", "dpo/train/logps/chosen", "dpo/train/lr",
              "dpo/train/grad_norm", "sft/train/loss", "sft/train/lr", "sft/train/grad_norm"):
        assert k in keys, k
    assert {r["iteration"] for r in dpo} == {1, 2}
    steps = [r["dpo/step"] for r in dpo]
    assert steps == list(range(1, len(steps) + 1))  # one axis, counted on across iterations
    # one spelling per metric: nothing keyed by the iteration's folder name, no Lightning prefixes
    assert not [k for k in keys if "iter_1" in k or "iter_2" in k or k.startswith("trainer/") or "-" in k.split("/")[0]]
    # per iteration: consistency mean and histogram of C_j, reward quality; per model: eval as a curve over k
    per_iter = [r for r in rows if "iter/consistency/mean" in r]
    assert [r["iteration"] for r in per_iter] == [1, 2]
    assert all(r["iter/consistency/c_hist/_type"] == "histogram" for r in per_iter)
    assert sum(per_iter[0]["iter/consistency/c_hist/values"]) == per_iter[0]["iter/consistency/n"]
    assert any("iter/reward_quality/pairwise_accuracy" in r for r in rows)
    evals = [r for r in rows if "eval/acc_norm/arc_easy" in r]
    assert [r["model"] for r in evals] == [0, 1, 2, 3]
    results = {row["model"]: row for row in read_results(run_dir)}
    assert [r["eval/acc_norm/arc_easy"] for r in evals] == pytest.approx([results[f"M{k}"]["eval_acc_norm"]["arc_easy"]
                                                                          for k in range(4)])
    # the CSV logs carry the same keys
    with (run_dir / "metrics.csv").open() as f:
        csv_keys = {r["key"] for r in csv.DictReader(f)}
    assert csv_keys == {k for k in keys if k.startswith(("iter/", "eval/"))} - {"iter/sample_pairs"}
    for dup in ("iter/reward/n_prompts", "iter/pairs/n_prompts", "iter/dpo/n_pairs", "iter/reward_quality/n_dropped"):
        assert dup not in keys, dup  # the same count under a second name
    step_csv = (run_dir / "iter_1" / "dpo" / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"dpo/" + k for k in step_csv if k.startswith("train/")} == {k for k in keys if k.startswith("dpo/train/")}
    # artifacts: the config and the results
    art = [rec.artifact for rec in wandb_records(runs[0]) if rec.WhichOneof("record_type") == "artifact"]
    assert {a.type for a in art} >= {"config", "results"}
    for p in run_dir.rglob("*"):
        if p.is_file():
            assert b"sekrit-key" not in p.read_bytes(), p
