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
from cream.models import is_local

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
    ``plan=true``: print the plan of the composed config (cream/plan.py: sizes, memory per GPU, steps) and exit."""
    from cream.pipeline import run

    prepare_environment(cfg)
    if cfg.get("plan"):
        from cream.plan import make_plan, render

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
    """``cream-eval model.path=DIR``: evaluate one saved model (no training) into the Hydra run dir."""
    from cream import artifacts
    from cream.pipeline import Context
    from cream.stages import evaluate as ev

    prepare_environment(cfg)
    path = cfg.model.path
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    OmegaConf.set_struct(cfg, False)
    cfg.model.name_or_path = str(path)
    result = ev.run(Context(cfg, run_dir), run_dir, k=0)
    artifacts.write_json(run_dir / "result.json", {"model": str(path), **result})
    for mode in ("eval", "eval_loglik"):
        for name, acc in result[mode].items():
            print(f"{mode:<12} {name:<14} {100 * acc:.1f}")
