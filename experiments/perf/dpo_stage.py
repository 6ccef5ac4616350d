"""One DPO stage of a finished run, again, alone in a fresh process: its wall time and peak resident memory.

    python experiments/perf/dpo_stage.py RUN_DIR_COPY T [key=value ...]

Runs iteration T's DPO stage (``cream.stages.dpo.run``) on RUN_DIR_COPY's pairs and M_T, with the run's own config
(``.hydra/config.yaml``) and the given overrides, e.g. ``dpo.batch_size=4 trainer.accumulate_grad_batches=2``. The
stage writes M_{T+1} into the run dir, so give it a copy (``cp -a RUN RUN_COPY``), never the run itself. The
checkpoints go to a temporary folder. Prints one JSON line: seconds, peak RSS (VmHWM, reset before the stage), steps.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    run, t, overrides = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    from omegaconf import OmegaConf

    import cream.config  # noqa: F401 - the schema's enums
    from cream.stages import dpo
    from cream.stages.context import Context

    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    for item in overrides:
        key, value = item.split("=", 1)
        OmegaConf.update(cfg, key, int(value) if value.isdigit() else value)
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        summary = dpo.run(Context(cfg, run), Path(out), t)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    print(json.dumps({"overrides": overrides, "seconds": round(time.perf_counter() - t0, 1),
                      "peak_rss_mib": round(int(status["VmHWM"].split()[0]) / 1024), "steps": summary["steps"]}))


if __name__ == "__main__":
    main()
