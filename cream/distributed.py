"""Several processes (torchrun, srun, or Lightning's DDP launcher): who am I, sharding and gathering.

Every process runs the whole pipeline.  Training stages use Lightning's strategy (DDP / FSDP).
Sampling and scoring split their inputs across ranks inside a :func:`collective` block (the pipeline
opens one around the stages that every rank runs): ``shard`` takes every ``world``-th item starting at
``rank``, ``gather`` puts the pieces back in input order on every rank.  Only rank 0 writes artifacts.

Rank and world size come from ``torch.distributed`` once it is initialized, else from the launcher's
environment (``RANK``/``WORLD_SIZE``, set by torchrun and Lightning; ``SLURM_PROCID``/``SLURM_NTASKS`` under
srun).  With one process every function here is a no-op.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from cream.errors import ConfigError

log = logging.getLogger(__name__)

_collective = False  # inside a block that every rank executes (shard/gather are safe)
_owned = False  # the process group was created by init() here (so shutdown() may destroy it)


def _dist():
    return torch.distributed if torch.distributed.is_available() and torch.distributed.is_initialized() else None


def _env_int(*names: str, default: int) -> int:
    for name in names:
        if os.environ.get(name, "").strip():
            return int(os.environ[name])
    return default


def _srun() -> bool:
    """Inside an srun step (SLURM_STEP_NUM_TASKS is per step; sbatch's own script is one task)."""
    return "RANK" not in os.environ and bool(os.environ.get("SLURM_STEP_NUM_TASKS", "").strip())


def rank() -> int:
    d = _dist()
    if d:
        return d.get_rank()
    return _env_int("SLURM_PROCID", default=0) if _srun() else _env_int("RANK", default=0)


def world_size() -> int:
    d = _dist()
    if d:
        return d.get_world_size()
    return _env_int("SLURM_STEP_NUM_TASKS", default=1) if _srun() else _env_int("WORLD_SIZE", default=1)


def local_rank() -> int:
    return _env_int("SLURM_LOCALID", default=0) if _srun() else _env_int("LOCAL_RANK", default=0)


def is_main() -> bool:
    return rank() == 0


def init(backend: str | None = None, timeout_minutes: int = 120) -> bool:
    """Join the process group when the environment describes several processes (and no group exists yet).

    Lightning reuses a group that is already initialized, so training stages run on this one too.
    Returns whether a group is active.  ``MASTER_ADDR``/``MASTER_PORT`` must be set (torchrun does it;
    under srun set them in the job script).
    """
    if _dist():
        return True
    if world_size() <= 1:
        return False
    if _srun() and not os.environ.get("MASTER_ADDR"):  # the address and port Lightning would pick
        from lightning.fabric.plugins.environments import SLURMEnvironment

        env = SLURMEnvironment()
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = env.main_address, str(env.main_port)
    if not os.environ.get("MASTER_ADDR") or not os.environ.get("MASTER_PORT"):
        raise RuntimeError(
            f"{world_size()} processes but MASTER_ADDR/MASTER_PORT are not set: launch with torchrun, or export "
            "them in the job script (e.g. MASTER_ADDR=$(scontrol show hostnames $SLURM_NODELIST | head -1))."
        )
    os.environ.setdefault("RANK", str(rank()))
    os.environ.setdefault("WORLD_SIZE", str(world_size()))
    os.environ.setdefault("LOCAL_RANK", str(local_rank()))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    torch.distributed.init_process_group(backend, rank=rank(), world_size=world_size(),
                                         timeout=datetime.timedelta(minutes=timeout_minutes))
    global _owned
    _owned = True
    log.info("process group: rank %d of %d (%s)", rank(), world_size(), backend)
    return True


def active() -> bool:
    """Several processes, connected by a process group."""
    d = _dist()
    return d is not None and d.get_world_size() > 1


@contextlib.contextmanager
def collective(enabled: bool = True) -> Iterator[None]:
    """Within this block every rank runs the same code: ``sharded`` work is split and gathered."""
    global _collective
    before, _collective = _collective, enabled
    try:
        yield
    finally:
        _collective = before


def sharding() -> bool:
    """Should work be split across ranks here?  Only in a :func:`collective` block of an active group."""
    return _collective and active()


def shard(items: Sequence[Any]) -> list[Any]:
    """This rank's items: ``items[rank::world]`` (interleaved, so length-sorted work stays balanced)."""
    if not sharding():
        return list(items)
    return list(items[rank()::world_size()])


def gather(local: Sequence[Any]) -> list[Any]:
    """Every rank's ``shard`` results, back in the order of the sharded input (on every rank)."""
    if not sharding():
        return list(local)
    parts: list[list[Any]] = [None] * world_size()  # type: ignore[list-item]
    torch.distributed.all_gather_object(parts, list(local))
    out: list[Any] = [None] * sum(map(len, parts))
    for r, part in enumerate(parts):
        out[r::len(parts)] = part
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (unchanged without a group)."""
    if not active():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        torch.distributed.barrier()


def shutdown() -> None:
    """Leave the group that :func:`init` created: wait for every rank, then destroy it.

    Every rank calls this at the same point.  A rank that simply exits while another is still finishing
    its last collective can take that one down (gloo aborts it with SIGABRT); the barrier rules that out.
    A group made by someone else (Lightning, a test harness) is left alone.
    """
    global _owned
    if not _owned or _dist() is None:
        return
    barrier()
    torch.distributed.destroy_process_group()
    _owned = False


def trainer_world_size(trainer_cfg) -> int:
    """Processes a Lightning Trainer with this config trains on: the launcher's world size when there is
    one, else ``devices x num_nodes`` (``devices`` an int, a list of ids, or -1/"auto" for all GPUs)."""
    if world_size() > 1:
        return world_size()
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, str) and devices != "auto":
        devices = [d for d in devices.split(",") if d.strip()] if "," in devices else int(devices)
    if devices in (-1, "auto"):
        devices = torch.cuda.device_count() if trainer_cfg.get("accelerator") in ("gpu", "cuda", "auto") else 1
    n = len(devices) if not isinstance(devices, int) else int(devices)
    return max(1, n) * int(trainer_cfg.get("num_nodes", 1) or 1)


def check_launch(trainer_cfg) -> None:
    """Several training devices need one process per device, started by a launcher (every process runs the
    pipeline).  Lightning's own launcher would start them only at the first training stage, re-running
    the command: refused with the command to use instead."""
    want = trainer_world_size(trainer_cfg)
    if want > 1 and world_size() == 1:
        n = want // max(1, int(trainer_cfg.get("num_nodes", 1) or 1))
        raise ConfigError(
            f"trainer.devices x trainer.num_nodes = {want} processes, but this is a single process: launch one "
            f"process per device, e.g. `torchrun --nproc_per_node {n} $(which cream-train) ... hydra.run.dir=DIR` "
            "(or srun with one task per device)."
        )
