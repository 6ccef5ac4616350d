"""Find ``cream-train`` run dirs, read their overrides and ``results.jsonl``, and group them into methods.

A run dir is any folder holding ``.hydra/overrides.yaml`` (a single run's ``hydra.run.dir`` or one job of a
multirun sweep). Runs are grouped by what they ran: the resolved config minus the seed and the launch/output keys. The
values that differ between groups make up the method's readable name (``regularizer=none`` -> "implicit reward, C = 1",
``cream_avg`` -> "CREAM (avg C)"), whatever was typed to get them.
"""
from __future__ import annotations

import json
import math
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cream.paths import RunPaths, iterations_on_disk

# How a method is named: from the resolved config (.hydra/config.yaml) and the config groups chosen
# (.hydra/hydra.yaml), not from the strings typed on the command line, so a plain run is named for what it ran.
# A group's option is named by what its target does; anything else that differs is shown as ``key=value``.
REGULARIZERS = {"DatasetConsistency": "CREAM (avg C)", "PairConsistency": "CREAM (per-pair C)",
                "FixedConsistency": "fixed C = {c}", "NoRegularizer": "C = 1"}
REWARDERS = {"ImplicitRewarder": "implicit reward", "JudgeRewarder": "LLM-as-a-Judge",
             "RewardModelRewarder": "reward model", "SelfRewardHeadRewarder": "self-reward head"}
CHOICES = {  # group option -> target class, for runs whose .hydra/config.yaml lacks the group
    "regularizer": {"none": "NoRegularizer", "cream_avg": "DatasetConsistency", "cream_dyn": "PairConsistency",
                    "fixed": "FixedConsistency"},
    "rewarder": {"implicit": "ImplicitRewarder", "judge": "JudgeRewarder", "judge_srlm": "JudgeRewarder",
                 "reward_model": "RewardModelRewarder", "self_reward_head": "SelfRewardHeadRewarder"},
}
CONSISTENCY = {"kendall": "Kendall tau", "spearman": "Spearman rho", "toporder": "top-order"}
GROUPS = ("rewarder", "regularizer", "consistency", "loss", "sampler")  # label order

# Keys that never tell methods apart: the seed, where/how a run was launched, where its output went, batch sizes of
# inference, devices.
IGNORED_KEYS = {"seed", "launcher", "logger", "data.dir", "data.allow_sample", "local", "plan", "keep_checkpoints",
                "pipeline.on_config_change", "eval.batch_size", "eval.loglik_batch_size",
                "sampling.batch_size", "debug", "experiment"}
IGNORED_PREFIXES = ("hydra.", "hydra/", "logger.", "trainer.accelerator", "trainer.devices", "trainer.num_nodes",
                    "trainer.strategy", "trainer.cream.")

# Metric -> (per-benchmark dict key, average key) in a results.jsonl row (cream.report.results.FAMILIES); the
# standard errors are under the same keys + "_stderr".
METRICS = {"gen": ("eval", "eval_avg"), "lenient": ("eval_lenient", "eval_lenient_avg"),
           "strict": ("eval_strict", "eval_strict_avg"), "official": ("eval_official", "eval_official_avg"),
           "acc": ("eval_acc", "eval_acc_avg"), "acc_norm": ("eval_acc_norm", "eval_acc_norm_avg")}
METRICS["loglik"] = METRICS["acc_norm"]  # the former name of the log-likelihood accuracy
EXTRA_COLUMNS = ("avg", "C", "pairs")
# the per-iteration diagnostics (cream.report.diagnostics), columns by name (--columns): shares and lengths as they are
DIAGNOSTIC_COLUMNS = ("truncation_rate", "mean_length", "repetition_rate", "distinct_2", "chosen_length",
                      "rejected_length", "good_pairs", "bad_pairs", "other_pairs", "n_verifiable", "auc_c", "auc_c_lo",
                      "auc_c_hi")
KINDS = {"gen": "generative, eval.extraction rules", "lenient": "generative, lenient extraction",
         "strict": "generative, strict extraction", "official": "generative, official CREAM extraction",
         "acc": "lm-eval acc", "acc_norm": "lm-eval acc_norm", "loglik": "lm-eval acc_norm"}


def default_metric(runs: list[Run]) -> str:
    """``--metric auto``: acc_norm when the runs have log-likelihood accuracies (it means something on every
    model, even one too small to write an answer), else gen."""
    return "acc_norm" if any(r.get("eval_acc_norm") for run in runs for r in run.rows) else "gen"


@dataclass
class Run:
    """One run dir: its overrides, seed, T, result rows, and why it is incomplete (None when complete)."""

    path: Path
    overrides: list[str]
    seed: object = None
    iterations: int | None = None
    rows: list[dict] = field(default_factory=list)
    problem: str | None = None
    config: dict = field(default_factory=dict)
    choices: dict = field(default_factory=dict)
    method: str = ""

    @property
    def complete(self) -> bool:
        return self.problem is None

    @property
    def params(self) -> dict[str, str]:
        """Override key -> value, with ``+``/``++`` prefixes stripped (``~key`` deletions keep their ``~``)."""
        return dict(split_override(o) for o in self.overrides)

    @property
    def method_params(self) -> dict[str, str]:
        return {k: v for k, v in self.params.items() if not ignored(k)}

    def lookup(self, key: str) -> str | None:
        """A key's value: from the overrides, else the config group chosen, else the composed config."""
        params = self.params
        if key in params:
            return params[key]
        if key in self.choices:
            return _str(self.choices[key])
        node = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return _str(node)

    def row(self, model: str) -> dict | None:
        return next((r for r in self.rows if r.get("model") == model), None)

    @property
    def models(self) -> list[str]:
        return [r["model"] for r in self.rows if "model" in r]


def _str(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def split_override(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+"), value


def ignored(key: str) -> bool:
    return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES)


def _natural(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def find_run_dirs(dirs) -> list[Path]:
    """Every folder at or below ``dirs`` holding ``.hydra/overrides.yaml`` (not descending into a run), sorted."""
    found: set[Path] = set()
    for d in map(Path, dirs):
        if not d.is_dir():
            continue
        for root, subdirs, _ in os.walk(d):
            if RunPaths(root).hydra_overrides.is_file():
                found.add(Path(root))
                subdirs.clear()
            else:
                subdirs[:] = [s for s in subdirs if not s.startswith((".", "_stale"))]
    return sorted(found, key=_natural)


def _read_yaml(path: Path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_run(path: Path) -> Run:
    """Read one run dir; a missing/short/unreadable ``results.jsonl`` leaves the run incomplete with a reason."""
    path = Path(path)
    paths = RunPaths(path)
    try:
        overrides = _read_yaml(paths.hydra_overrides) or []
    except (OSError, yaml.YAMLError) as e:
        return Run(path=path, overrides=[], problem=f"unreadable .hydra/overrides.yaml ({e})")
    run = Run(path=path, overrides=[str(o) for o in overrides])
    cfg_path = paths.hydra_config
    if cfg_path.is_file():
        try:
            run.config = _read_yaml(cfg_path) or {}
        except (OSError, yaml.YAMLError) as e:
            run.problem = f"unreadable .hydra/config.yaml ({e})"
            return run
        run.iterations = (run.config.get("pipeline") or {}).get("iterations")
        run.seed = run.config.get("seed")
    hydra_path = path / ".hydra" / "hydra.yaml"
    if hydra_path.is_file():
        try:
            run.choices = (((_read_yaml(hydra_path) or {}).get("hydra", {}).get("runtime", {}) or {}).get("choices")
                           or {})
        except (OSError, yaml.YAMLError):
            run.choices = {}
    if "seed" in run.params:
        run.seed = run.params["seed"]
    if isinstance(run.seed, str) and run.seed.lstrip("-").isdigit():
        run.seed = int(run.seed)
    results = paths.results
    if not results.is_file():
        run.problem = "no results.jsonl"
        return run
    try:
        run.rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        run.problem = f"unreadable results.jsonl ({e})"
        return run
    if run.iterations is None:
        run.problem = "no pipeline.iterations in .hydra/config.yaml"
    elif len(run.rows) < run.iterations + 2:
        run.problem = f"{len(run.rows)} of {run.iterations + 2} models in results.jsonl"
    return run


def parse_filters(filters) -> list[tuple[str, str]]:
    out = []
    for f in filters or []:
        if "=" not in f:
            raise ValueError(f"--filter expects key=value, got {f!r}")
        out.append(split_override(f))
    return out


def matches(run: Run, filters: list[tuple[str, str]]) -> bool:
    return all(run.lookup(k) == v for k, v in filters)


def load_runs(dirs, filters=()) -> list[Run]:
    """All runs below ``dirs`` that match every ``key=value`` filter, with ``run.method`` set.

    Methods are named before filtering, so a filtered table keeps the names of the full one.
    """
    flt = parse_filters(filters)
    runs = [load_run(d) for d in find_run_dirs(dirs)]
    name_methods(runs)
    return [r for r in runs if matches(r, flt)]


def runs_or_error(prog: str, dirs, filters) -> list[Run] | None:
    """The runs below ``dirs`` that match ``filters``; None after printing why there are none."""
    import sys

    where = ", ".join(map(str, dirs))
    problem = None
    if not find_run_dirs(dirs):
        problem = f"no runs found under {where} (looked for folders holding .hydra/overrides.yaml)"
    else:
        try:
            runs = load_runs(dirs, filters)
        except ValueError as e:
            problem = str(e)
        else:
            if not runs:
                problem = f"no runs under {where} match {' '.join('--filter ' + f for f in filters)}"
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return None
    return runs


def _flat(node, prefix: str = "") -> dict[str, str]:
    if not isinstance(node, dict):
        return {prefix.rstrip("."): _str(node)} if prefix else {}
    out: dict[str, str] = {}
    for k, v in node.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": _str(v)})
    return out


def resolved_params(run: Run) -> dict[str, str]:
    """What the run ran, as key -> value: the resolved config flattened, each group's option (``regularizer``:
    the choice), and the overrides a config without them (older runs) does not show; ignored keys left out."""
    params = _flat(run.config)
    for group in GROUPS:
        choice = run.choices.get(group) or run.params.get(group)
        if choice is not None:
            params[group] = _str(choice)
    for k, v in run.params.items():
        params.setdefault(k, v)
    return {k: v for k, v in params.items() if not ignored(k)}


def _target(run: Run, params: dict[str, str], group: str) -> str | None:
    target = params.get(f"{group}._target_")
    if target is not None:
        return target.rpartition(".")[2]
    return CHOICES.get(group, {}).get(params.get(group, ""))


def _label(run: Run, params: dict[str, str], key: str, group_keys: set[str]) -> str | None:
    if key in ("rewarder", "rewarder._target_"):
        return REWARDERS.get(_target(run, params, "rewarder") or "", f"rewarder={params.get('rewarder', '?')}")
    if key in ("regularizer", "regularizer._target_"):
        name = REGULARIZERS.get(_target(run, params, "regularizer") or "")
        if name is None:
            return f"regularizer={params.get('regularizer', '?')}"
        return name.format(c=params.get("regularizer.c", "?"))
    if key == "consistency":
        return CONSISTENCY.get(params[key], f"consistency={params[key]}")
    if key.partition(".")[0] in group_keys and not key.endswith("_target_") and key.partition(".")[0] != key:
        return None  # a value inside a group whose option differs: the option names it
    if key.endswith("._target_"):
        return None
    return f"{key}={params[key]}"


def method_name(run: Run, params: dict[str, str], keys: list[str]) -> str:
    """The readable name of what ``run`` ran, from the ``keys`` that differ between the methods of a table."""
    group_keys = {k for k in keys if k in GROUPS} | {k.partition(".")[0] for k in keys if k.endswith("._target_")}
    order = sorted(keys,
                   key=lambda k: (GROUPS.index(k.partition(".")[0])
                                  if k.partition(".")[0] in GROUPS else len(GROUPS), k))
    parts: list[str] = []
    for k in order:
        label = _label(run, params, k, group_keys) if k in params else None
        if label is not None and label not in parts:
            parts.append(label)
    reg = _target(run, params, "regularizer")
    if not parts and reg is not None:  # one method: say what it is
        parts.append(_label(run, params, "regularizer", group_keys) or "")
    if reg == "NoRegularizer":  # C = 1 is plain DPO on whatever reward: name the reward with it
        reward = _label(run, params, "rewarder", group_keys)
        if reward and reward not in parts and _target(run, params, "rewarder") is not None:
            parts.insert(0, reward)
    return ", ".join(p for p in parts if p) or "default"


def name_methods(runs: list[Run]) -> None:
    """Set ``run.method`` from what differs between the runs' resolved configs (seed and launch keys aside)."""
    params = [resolved_params(r) for r in runs]
    keys: list[str] = []
    for p in params:
        keys += [k for k in p if k not in keys]
    varying = [k for k in keys if len({p.get(k) for p in params}) > 1]
    for r, p in zip(runs, params):
        r.method = method_name(r, p, varying)


def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    """Complete runs by method, in order of first appearance."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        if r.complete:
            groups.setdefault(r.method, []).append(r)
    return groups


def model_index(model: str) -> int:
    return int(model[1:]) if model[1:].isdigit() else 10**6


def models_of(runs: list[Run]) -> list[str]:
    return sorted({m for r in runs for m in r.models}, key=model_index)


def benchmarks(runs: list[Run], metric: str = "gen") -> list[str]:
    key = METRICS[metric][0]
    names: list[str] = []
    for r in runs:
        for row in r.rows:
            names += [b for b in (row.get(key) or {}) if b not in names]
    return names


def value(row: dict | None, column: str, metric: str = "gen") -> float | None:
    """A column's number in one results row: accuracy in %, C as a rate, pairs as a count; None when absent."""
    if row is None:
        return None
    per_bench, avg = METRICS[metric]
    if column == "avg":
        v = row.get(avg)
        return None if v is None else 100 * v
    if column == "C":
        return (row.get("consistency") or {}).get("mean")
    if column == "pairs":
        return row.get("n_pairs")
    if column in DIAGNOSTIC_COLUMNS:
        return (row.get("diagnostics") or {}).get(column)
    v = (row.get(per_bench) or {}).get(column)
    return None if v is None else 100 * v


def stderr_value(row: dict | None, column: str, metric: str = "gen") -> float | None:
    """The standard error (in %) of a column's accuracy in one results row; None for C, pairs, or when absent."""
    if row is None or column in ("C", "pairs", *DIAGNOSTIC_COLUMNS):
        return None
    per_bench, avg = METRICS[metric]
    v = row.get(f"{avg}_stderr") if column == "avg" else (row.get(f"{per_bench}_stderr") or {}).get(column)
    return None if v is None else 100 * v


@dataclass
class Stat:
    """Mean and std over seeds; ``se``: the run's own standard error, set only when there is one run."""

    mean: float | None
    std: float | None
    n: int
    se: float | None = None


def summarize(values) -> Stat:
    """Mean and sample std (ddof=1, only with 2+ values) of the non-missing, finite values."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return Stat(None, None, 0)
    return Stat(statistics.mean(vals), statistics.stdev(vals) if len(vals) >= 2 else None, len(vals))


def taus(run: Run) -> dict[int, list[float]]:
    """Per-prompt tau of each iteration (``iter_<t>/consistency/consistency.jsonl``), undefined ones left out."""
    out: dict[int, list[float]] = {}
    paths = RunPaths(run.path)
    for t in iterations_on_disk(run.path):
        f = paths.consistency(t)
        if not f.exists():
            continue
        vals = []
        for line in f.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                if rec.get("defined", True) and rec.get("tau") is not None:
                    vals.append(float(rec["tau"]))
        out[int(t)] = vals
    return dict(sorted(out.items()))
