"""Console entry points: ``cream-train`` (the pipeline, a Hydra app) and ``cream-eval`` (one model)."""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from cream.errors import CreamError
from cream.models.loading import is_local

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger("cream")


def _hub_reachable(timeout: float = 2.0) -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def prepare_environment(cfg: DictConfig) -> None:
    """Offline unless the hub is reachable (no long retries); quiet tokenizers; CPU threads."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    needs_hub = (cfg.model.name_or_path is not None and not is_local(cfg.model.name_or_path)) or cfg.data.source == "hub"
    if "HF_HUB_OFFLINE" not in os.environ and (not needs_hub or not _hub_reachable()):
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def train(cfg: DictConfig) -> float | None:
    """Run (or resume) the CREAM pipeline in the Hydra run dir; returns the last model's average accuracy.
    ``plan=true``: print the plan of the composed config (cream/training/plan.py: sizes, memory per GPU, steps) and exit."""
    from cream.pipeline import run

    prepare_environment(cfg)
    if cfg.get("plan"):
        from cream.training.plan import make_plan, render

        try:
            print(render(make_plan(cfg)))
        except CreamError as e:
            log.error("%s", e)
            raise SystemExit(2) from None
        return None
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    log.info("run dir: %s", run_dir)
    try:
        rows = run(cfg, run_dir)
    except CreamError as e:
        log.error("%s", e)
        raise SystemExit(2) from None
    return rows[-1]["eval_avg"] if rows else None


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def evaluate(cfg: DictConfig) -> None:
    """``cream-eval model.path=DIR``: evaluate one saved model (no training) into the Hydra run dir.

    Its own config (``conf/evaluate.yaml``; ``cream-eval --help`` lists the keys).  Bad input is one
    message on stderr and exit status 2, never a traceback."""
    from cream import artifacts
    from cream.pipeline import Context
    from cream.report.results import FAMILIES, pct
    from cream.stages import evaluate as ev

    if OmegaConf.is_missing(cfg.model, "path"):
        log.error("cream-eval: model.path is required: the folder of a saved model, e.g. "
                  "model.path=outputs/<date>/<time>/iter_1/dpo/model (see cream-eval --help)")
        raise SystemExit(2)
    path = str(cfg.model.path)
    OmegaConf.set_struct(cfg, False)
    cfg.model.name_or_path = path
    prepare_environment(cfg)
    if not Path(path).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
        log.error("cream-eval: model.path=%s: no such folder (and the hub is offline)", path)
        raise SystemExit(2)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        result = ev.run(Context(cfg, run_dir), run_dir, k=0)
    except CreamError as e:
        log.error("cream-eval: %s", e)
        raise SystemExit(2) from None
    artifacts.write_json(run_dir / "result.json", {"model": path, **result})
    for key in FAMILIES:
        for name, acc in (result[key] or {}).items():
            print(f"{key:<14} {name:<14} {pct(acc, result[f'{key}_stderr'][name])}")
        if result[f"{key}_avg"] is not None and len(result[key]) > 1:
            print(f"{key:<14} {'avg':<14} {pct(result[f'{key}_avg'], result[f'{key}_avg_stderr'])}")
    print(f"wrote result.json, predictions.jsonl and predictions_loglik.jsonl to {run_dir}")
