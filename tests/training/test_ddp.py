"""trainer=ddp: DPO on two CPU processes (gloo, launched by torchrun like a cluster job) ends with the same
weights as one process on the same global batch (1 x batch 4 vs 2 ranks x batch 2): same items per step
(the sampler shards one permutation by rank), same LR schedule (steps count the world size), gradients
averaged across ranks.  The stage runs through the production path: pipeline.run_stage -> stages.dpo.run
-> make_trainer(cfg.trainer) with the composed trainer=ddp config."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import torch
    from hydra import compose, initialize_config_dir
    from cream import distributed
    from cream.pipeline import Context, Stage, run_stage
    from cream.stages import dpo

    conf, run_dir, *overrides = sys.argv[1:]
    torch.set_num_threads(1)
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    distributed.init()                       # what pipeline.run does first
    ctx = Context(cfg, Path(run_dir))
    manifest, ran = run_stage(ctx, Stage("iter_1/dpo", dpo.run, [], {}, {"t": 1}, every_rank=dpo.EVERY_RANK), {})
    assert ran and manifest["summary"]["steps"] > 0
    if distributed.is_main():
        Path(run_dir, "world.json").write_text(json.dumps({"world": distributed.world_size(), **manifest["summary"]}))
    distributed.shutdown()                   # what pipeline.run does last
''')


# torchrun --standalone picks a free port itself (no race with other jobs); gloo on the loopback device
GLOO_ENV = {"GLOO_SOCKET_IFNAME": "lo"} if sys.platform == "linux" else {}


def _prepare(run_dir, tiny_dir):
    """An iteration folder as the pipeline leaves it before DPO: M_1 in sft/model, pairs, consistency."""
    from cream import artifacts
    from cream.models.loading import load_model, load_tokenizer
    from cream.models.scoring import score_sequences
    from cream.models.tokens import encode_pair

    shutil.copytree(tiny_dir, run_dir / "sft" / "model")
    tok = load_tokenizer(tiny_dir)
    words = ["carbon dioxide", "oxygen", "helium", "Answer: B", "72", "48 + 24", "neon", "step by step"]
    pairs = [{"prompt_id": f"p{i}", "prompt": f"Question {i}: which one?", "chosen": words[i % 8] + " yes",
              "rejected": words[(3 * i + 1) % 8], "c": 0.5 + 0.05 * i} for i in range(8)]
    enc = [encode_pair(tok, p["prompt"], p[k], 256, 192) for p in pairs for k in ("chosen", "rejected")]
    ref = score_sequences(load_model(tiny_dir), [e[0] for e in enc], [e[1] for e in enc], tok.pad_token_id,
                          progress=False)
    for i, p in enumerate(pairs):
        p["ref_logp_chosen"], p["ref_logp_rejected"] = ref[2 * i], ref[2 * i + 1]
    artifacts.write_jsonl(run_dir / "iter_1" / "pairs" / "pairs.jsonl", pairs)
    artifacts.write_json(run_dir / "iter_1" / "consistency" / "summary.json", {"mean": 0.7})


def _run(script, run_dir, overrides, nproc):
    from conftest import ROOT

    env = {**os.environ, **GLOO_ENV, "CREAM_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    if nproc == 1:
        cmd = [sys.executable, str(script)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(script)]
    proc = subprocess.run(cmd + [str(ROOT / "conf"), str(run_dir), *overrides], capture_output=True, text=True,
                          timeout=300, env=env, cwd=str(run_dir))
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads((run_dir / "world.json").read_text())


def test_ddp_two_ranks_match_one_process(tiny_dir, tmp_path):
    from safetensors.torch import load_file

    script = tmp_path / "dpo_stage.py"
    script.write_text(SCRIPT)
    common = ["dpo.epochs=2", "dpo.lr=2e-3", "dpo.warmup_ratio=0.25", "loss.beta=0.5", "seed=3"]
    runs = {}
    for name, nproc, overrides in (
        ("single", 1, ["trainer=cpu", "dpo.batch_size=4"]),
        ("ddp", 2, ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
                    "trainer.deterministic=true", "dpo.batch_size=2"]),
        # the same updates in passes of fewer pairs (dpo.micro_batch_size), through the stage's wiring
        ("single_micro", 1, ["trainer=cpu", "dpo.batch_size=4", "dpo.micro_batch_size=2"]),
        ("ddp_micro", 2, ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
                          "trainer.deterministic=true", "dpo.batch_size=2", "dpo.micro_batch_size=1"]),
    ):
        run_dir = tmp_path / name
        _prepare(run_dir, tiny_dir)
        runs[name] = _run(script, run_dir, [*common, *overrides], nproc)
    assert runs["single"]["world"] == runs["single_micro"]["world"] == 1
    assert runs["ddp"]["world"] == runs["ddp_micro"]["world"] == 2
    assert {r["steps"] for r in runs.values()} == {4}  # 8 pairs / global batch 4 x 2 epochs
    weights = {name: load_file(str(tmp_path / name / "iter_1" / "dpo" / "model" / "model.safetensors"))
               for name in runs}
    single = weights["single"]
    base = load_file(str(tiny_dir / "model.safetensors"))
    moved = max((single[k] - base[k]).abs().max().item() for k in single)
    assert moved > 1e-3  # training changed the weights
    for name in ("ddp", "single_micro", "ddp_micro"):
        assert weights[name].keys() == single.keys()
        for k in single:
            torch.testing.assert_close(weights[name][k], single[k], atol=2e-5, rtol=1e-4, msg=f"{name}: {k}")
    # only rank 0 wrote: one manifest, one model, the per-step logs of rank 0
    assert (tmp_path / "ddp" / "iter_1" / "dpo" / "manifest.json").exists()
    assert not (tmp_path / "ddp" / "iter_1" / "dpo" / ".inprogress.json").exists()


def test_pipeline_on_two_processes(tmp_path):
    """The whole smoke pipeline under torchrun (2 CPU ranks): DDP training, sharded sampling/scoring/eval,
    rank 0 writes every artifact once; a rerun finds every stage complete on both ranks."""
    from conftest import read_results, stage_mtimes
    from cream import artifacts

    exe = os.path.join(os.path.dirname(sys.executable), "cream-train")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", exe, "debug=smoke",
           "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
           f"hydra.run.dir={tmp_path}"]
    env = {**os.environ, **GLOO_ENV, "CREAM_PROGRESS": "0", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert [r["model"] for r in read_results(tmp_path)] == ["M0", "M1", "M2"]
    samples = artifacts.read_jsonl(tmp_path / "iter_1" / "sample" / "samples.jsonl")
    rewards = artifacts.read_jsonl(tmp_path / "iter_1" / "reward" / "rewards.jsonl")
    assert len(samples) == 16 and all(len(s["responses"]) == 4 for s in samples)  # both shards gathered, once
    assert [r["prompt_id"] for r in rewards] == [s["prompt_id"] for s in samples]
    assert all(len(r["reward"]) == 4 for r in rewards)
    assert len(artifacts.read_jsonl(tmp_path / "eval" / "M2" / "predictions.jsonl")) == 32
    assert not list(tmp_path.rglob(".inprogress.json"))
    before = stage_mtimes(tmp_path)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    assert stage_mtimes(tmp_path) == before
