"""The rows the iteration's stages write and read, one typed record per file (one JSON object a line):

    sample/samples.jsonl          SampleRow       a prompt and its N responses
    reward/rewards.jsonl          RewardRow       M_t's and M_{t-1}'s reward of each response, M_t's log-probs
    consistency/consistency.jsonl ConsistencyRow  C_j of a prompt (and the measure's own statistic)
    pairs/pairs.jsonl             PairRow         y+ and y- of a prompt, their reference log-probs and C_j

One name per quantity: ``ref_logp`` is log pi_t(y|x) of M_t, the reference of iteration t's DPO step
(summed over the response's tokens); ``c`` is the consistency C in [0, 1].  ``read_rows`` reads a file
into records and names the file and line of a bad row.  This module imports nothing heavy (no torch,
no Hydra), so report tools can read run dirs with it.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from cream import artifacts
from cream.errors import ArtifactError

R = TypeVar("R", bound="Row")


class Row:
    """``to_json`` / ``from_json`` for a dataclass record: the fields in order, ``OLD_NAMES`` read too."""

    FILE: ClassVar[str] = ""                 # what the rows are, for error messages
    OLD_NAMES: ClassVar[dict[str, str]] = {}  # a name older run dirs wrote -> the field's name

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls: type[R], obj: Any, where: str = "") -> R:
        """The record of one parsed JSON line; ArtifactError naming ``where`` (FILE:LINE) when it is not one."""
        if not isinstance(obj, dict):
            raise ArtifactError(f"{where}: expected a JSON object ({cls.FILE} row), got {type(obj).__name__}")
        obj = {cls.OLD_NAMES.get(k, k): v for k, v in obj.items()}
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        required = [f.name for f in fields(cls) if _required(f)]  # type: ignore[arg-type]
        missing = [k for k in required if k not in obj]
        if missing:
            raise ArtifactError(f"{where}: a {cls.FILE} row needs {', '.join(missing)} "
                                f"(it has {', '.join(obj) or 'nothing'}); "
                                "it was written by another version of cream or edited by hand: redo its stage "
                                "(delete the stage folder, or use a new run dir)")
        row = cls(**{k: v for k, v in obj.items() if k in names}, **cls._extra(obj, names))  # type: ignore[call-arg]
        row.check(where)
        return row

    @classmethod
    def _extra(cls, obj: dict, names: set[str]) -> dict:
        return {}

    def check(self, where: str) -> None:
        """Raise ArtifactError naming ``where`` when the fields do not fit together."""


def _required(f: Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _same_lengths(where: str, what: str, **lists: list | None) -> None:
    """Every per-response list of one row has one entry per response."""
    bad = [k for k, v in lists.items() if v is not None and not isinstance(v, list)]
    if bad:
        raise ArtifactError(f"{where}: {what} row: {', '.join(bad)} must be a list (one entry per response)")
    lengths = {k: len(v) for k, v in lists.items() if v is not None}
    if len(set(lengths.values())) > 1:
        raise ArtifactError(f"{where}: {what} row: one entry per response expected, got lengths "
                            + ", ".join(f"{k}={n}" for k, n in lengths.items()))


@dataclass(kw_only=True)
class SampleRow(Row):
    """A prompt of the pool and M_t's N responses to it (``samples.jsonl``)."""

    FILE: ClassVar[str] = "samples.jsonl"

    prompt_id: str
    benchmark: str | None = None      # the benchmark, or the pool's source (oasst, file)
    instruction: str | None = None    # the last user turn, as a judge or reward model reads it
    prompt: str                       # the rendered prompt (chat template applied), as the policy reads it
    responses: list[str]
    finished: list[bool] | None = None  # per response: ended its turn before sampling.max_new_tokens

    def check(self, where: str) -> None:
        _same_lengths(where, self.FILE, responses=self.responses, finished=self.finished)


@dataclass
class RewardRow(Row):
    """M_t's and M_{t-1}'s reward of every response of a prompt (``rewards.jsonl``).

    ``reward``/``prev_reward``: one float per response, None where the rewarder could not score it;
    ``columns``: the rewarder's own per-prompt columns (the previous model's prefixed ``prev_``), written
    between the rewards and ``ref_logp``; ``ref_logp``: log pi_t(y|x) of each response under M_t (the DPO
    reference; ``policy_logp`` in older run dirs); ``n_tokens``: |y|, its end of turn included.
    """

    FILE: ClassVar[str] = "rewards.jsonl"
    OLD_NAMES: ClassVar[dict[str, str]] = {"policy_logp": "ref_logp"}

    prompt_id: str
    reward: list[float | None]
    prev_reward: list[float | None]
    ref_logp: list[float]
    n_tokens: list[int] | None = None
    columns: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"prompt_id": self.prompt_id, "reward": self.reward, "prev_reward": self.prev_reward, **self.columns,
                "ref_logp": self.ref_logp, "n_tokens": self.n_tokens}

    @classmethod
    def _extra(cls, obj: dict, names: set[str]) -> dict:
        return {"columns": {k: v for k, v in obj.items() if k not in names}}

    def check(self, where: str) -> None:
        _same_lengths(where, self.FILE, reward=self.reward, prev_reward=self.prev_reward, ref_logp=self.ref_logp,
                      n_tokens=self.n_tokens)

    def scored(self) -> tuple[list[float], list[float]]:
        """(M_t's, M_{t-1}'s) rewards of the responses both models could score, in order."""
        keep = [i for i, (a, b) in enumerate(zip(self.reward, self.prev_reward)) if a is not None and b is not None]
        return [self.reward[i] for i in keep], [self.prev_reward[i] for i in keep]  # type: ignore[misc]


@dataclass
class ConsistencyRow(Row):
    """C_j of a prompt (``consistency.jsonl``); None when undefined (a constant reward vector).

    ``statistic``/``value``: the measure's own statistic, when C is an affine map of one (``tau`` for
    Kendall, ``rho`` for Spearman: C = (statistic + 1) / 2); top-order agreement has none.  On disk the
    statistic is a key of its own (``"tau": ...``), written between ``c`` and ``defined``.
    """

    FILE: ClassVar[str] = "consistency.jsonl"
    STATISTICS: ClassVar[tuple[str, ...]] = ("tau", "rho")

    prompt_id: str
    c: float | None
    statistic: str | None = None
    value: float | None = None

    @property
    def defined(self) -> bool:
        return self.c is not None

    @classmethod
    def of(cls, prompt_id: str, c: float | None, statistic: str | None) -> ConsistencyRow:
        """The row of a measure whose C = (statistic + 1) / 2 (``statistic`` None: C is the measure itself)."""
        return cls(prompt_id, c, statistic, None if c is None or statistic is None else 2 * c - 1)

    def to_json(self) -> dict:
        stat = {} if self.statistic is None else {self.statistic: self.value}
        return {"prompt_id": self.prompt_id, "c": self.c, **stat, "defined": self.defined}

    @classmethod
    def _extra(cls, obj: dict, names: set[str]) -> dict:
        name = next((s for s in cls.STATISTICS if s in obj), None)
        return {} if name is None else {"statistic": name, "value": obj[name]}


@dataclass(kw_only=True)
class PairRow(Row):
    """y+ and y- of a prompt (``pairs.jsonl``): the best and the worst response under M_t, their rewards,
    their reference log-probs log pi_t(y|x) and the prompt's C_j (None when undefined)."""

    FILE: ClassVar[str] = "pairs.jsonl"

    prompt_id: str | None = None
    prompt: str
    chosen: str
    rejected: str
    chosen_index: int | None = None
    rejected_index: int | None = None
    reward_chosen: float | None = None
    reward_rejected: float | None = None
    ref_logp_chosen: float
    ref_logp_rejected: float
    c: float | None = None


def iter_rows(path: str | Path, cls: type[R]) -> Iterator[R]:
    """The records of a JSONL file, in order; ArtifactError naming FILE:LINE for a bad one."""
    for line, obj in artifacts.iter_jsonl(path):
        yield cls.from_json(obj, f"{path}:{line}")


def read_rows(path: str | Path, cls: type[R]) -> list[R]:
    return list(iter_rows(path, cls))


def write_rows(path: str | Path, rows: Iterable[Row]) -> int:
    return artifacts.write_jsonl(path, (r.to_json() for r in rows))
