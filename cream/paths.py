"""The layout of a run dir, in one place: every stage, the reports and the report tools ask ``RunPaths``.

    <run dir>/
      .hydra/                      the composed config and overrides (Hydra)
      base/model/                  M0 when the run builds (tiny) or converts (GGUF) it
      sft/model/                   M1
      iter_<t>/sample/             samples.jsonl, labels.jsonl (gold answers, for the metrics only)
      rewarder/                    what a rewarder trains once from M1 (a quick reward model), when it does
      iter_<t>/reward/             rewards.jsonl
      iter_<t>/consistency/        consistency.jsonl (C_j per prompt), summary.json (dataset-level C)
      iter_<t>/pairs/              pairs.jsonl, summary.json, reward_quality.json
      iter_<t>/dpo/model/          M_{t+1}
      eval/M<k>/                   result.json, predictions.jsonl, predictions_loglik.jsonl
      results.jsonl                one row per model M0..M_{T+1}
      timings.json, metrics.csv    wall time and peak memory per stage; per-stage metrics
      invocations.jsonl            one line per invocation: the stages it ran and skipped, whether it finished

Every stage folder ends with ``manifest.json`` when the stage is complete (``cream.artifacts``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"


def conf_dir() -> Path:
    """The Hydra configs: ``conf/`` of a source checkout (editable install), else the copy a wheel ships in
    the package (``cream/conf``, made by setup.py's build step)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"no Hydra configs next to {here}: expected {here.parent / 'conf'} or {here / 'conf'}")


def iteration_stage(step: str, t: int) -> str:
    """The name (and folder) of a step of iteration t: ``iter_<t>/<step>``."""
    return f"iter_{t}/{step}"


def parse_stage(name: str) -> tuple[str, int | None]:
    """(step, t) of an iteration stage (``iter_2/dpo`` -> ("dpo", 2)); (name, None) for any other stage."""
    head, _, step = name.partition("/")
    if head.startswith("iter_") and head[len("iter_"):].isdigit() and step:
        return step, int(head[len("iter_"):])
    return name, None


def iterations_on_disk(root: Path) -> list[int]:
    """The t of every ``iter_<t>`` folder under a run dir, sorted."""
    return sorted(t for p in Path(root).glob("iter_*") if (t := parse_stage(p.name + "/x")[1]) is not None)


def model_stage(k: int) -> str:
    """The stage that writes M_k: base (M0), sft (M1), iter_<k-1>/dpo (M_k for k >= 2)."""
    return "base" if k == 0 else "sft" if k == 1 else iteration_stage("dpo", k - 1)


def eval_stage(k: int) -> str:
    return f"eval/M{k}"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def stage(self, name: str) -> Path:
        return self.root / name

    def model(self, k: int) -> Path:
        """The folder the run writes M_k to (M0: only when the base stage builds or converts it)."""
        return self.stage(model_stage(k)) / "model"

    @property
    def rewarder(self) -> Path:
        """What a rewarder trains once from M1 (its own stage, before iteration 1: a quick reward model)."""
        return self.stage("rewarder")

    # the iteration's files, in the order the steps write them
    def samples(self, t: int) -> Path:
        return self.stage(iteration_stage("sample", t)) / "samples.jsonl"

    def labels(self, t: int) -> Path:
        return self.stage(iteration_stage("sample", t)) / "labels.jsonl"

    def rewards(self, t: int) -> Path:
        return self.stage(iteration_stage("reward", t)) / "rewards.jsonl"

    def consistency(self, t: int) -> Path:
        return self.stage(iteration_stage("consistency", t)) / "consistency.jsonl"

    def consistency_summary(self, t: int) -> Path:
        return self.stage(iteration_stage("consistency", t)) / "summary.json"

    def pairs(self, t: int) -> Path:
        return self.stage(iteration_stage("pairs", t)) / "pairs.jsonl"

    def pairs_summary(self, t: int) -> Path:
        return self.stage(iteration_stage("pairs", t)) / "summary.json"

    def reward_quality(self, t: int) -> Path:
        return self.stage(iteration_stage("pairs", t)) / "reward_quality.json"

    def manifest(self, name: str) -> Path:
        return self.stage(name) / MANIFEST

    def eval_result(self, k: int) -> Path:
        return self.stage(eval_stage(k)) / "result.json"

    # the run's reports
    @property
    def results(self) -> Path:
        return self.root / "results.jsonl"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    @property
    def invocations(self) -> Path:
        return self.root / "invocations.jsonl"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def hydra_config(self) -> Path:
        return self.root / ".hydra" / "config.yaml"

    @property
    def hydra_overrides(self) -> Path:
        return self.root / ".hydra" / "overrides.yaml"

    @property
    def stale(self) -> Path:
        return self.root / "_stale"
