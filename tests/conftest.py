"""Shared fixtures: a tiny model built offline, and composed configs."""
from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CREAM_SHARED_DATA", ROOT.parent / "shared" / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("CREAM_PROGRESS", "0")

TEXTS = [
    "Which gas do plants take in? A. oxygen B. carbon dioxide C. helium D. neon Answer: B",
    "The answer is carbon dioxide. Answer: B. Think step by step about the question.",
    "Natalia sold 48 clips in April and half as many in May. 48/2 = 24. 48 + 24 = 72. Answer: 72",
] * 20

# The test files that take longest (pytest --durations, summed per file), longest first. tests/run.sh hands whole
# files to its two workers in collection order (--dist loadfile --no-loadscope-reorder); starting with the longest
# keeps one worker from running a long file alone at the end. A file missing here runs after these, as collected.
LONGEST_FIRST = ("test_experiments.py", "test_help_examples.py", "test_mutations.py", "test_kill_resume.py",
                 "test_real_model.py", "test_lm_eval_crosscheck.py", "test_pipeline.py", "test_config.py",
                 "test_readme.py", "test_bad_input.py", "test_report.py", "test_smollm2_ablation_experiment.py",
                 "test_slurm.py", "test_ddp.py", "test_decode.py", "test_smollm2_experiment.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A tiny Llama + offline tokenizer saved with save_pretrained (random weights, seed 0)."""
    from cream.models.tiny import build_tiny

    out = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny(out, TEXTS, vocab_size=300, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
               max_position_embeddings=256, seed=0)
    return out


def compose(overrides: list[str] | None = None, config_name: str = "config"):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import cream.config  # noqa: F401  registers the config schema that conf/config.yaml starts from

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides or [])


def run_cli(args: list[str], cwd: Path, check: bool = True, timeout: int = 600, env: dict | None = None,
            script: str = "cream-train") -> subprocess.CompletedProcess:
    """Run an installed console script (next to this interpreter) and return the finished process."""
    exe = Path(sys.executable).parent / script
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} failed "
                             f"({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def read_results(run_dir: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (Path(run_dir) / "results.jsonl").read_text().splitlines()]


def stage_mtimes(run_dir: Path) -> dict[str, float]:
    """When each finished stage wrote its manifest (unchanged = not recomputed)."""
    return {str(p.parent.relative_to(run_dir)): p.stat().st_mtime_ns for p in Path(run_dir).rglob("manifest.json")
            if "_stale" not in p.parts}


def direct_logp(model, ids: list[int], start: int) -> float:
    """log p(response | prompt) the slow way: full logits, token by token."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    return sum(lp[i - 1, ids[i]].item() for i in range(start, len(ids)))


def run_script(path: Path):
    """A script in experiments/ (not a package) as a module, for its functions."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cream_table_printed(runs: str, metric: str, out: Path, capsys) -> str:
    """What ``cream-table RUNS --metric METRIC`` prints, run from the repository root as the pages' commands are (the
    table names incomplete run dirs relative to where it ran)."""
    from cream import cli

    with contextlib.chdir(ROOT):
        assert cli.table([runs, "--metric", metric, "--out", str(out)]) == 0
    return capsys.readouterr().out.strip()
