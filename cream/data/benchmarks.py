"""The five benchmarks, from their original release files or from the hub, as one example type.

``data_dir`` is a folder laid out like the original releases (``../shared/data`` in this workplace):

    arc_easy/ARC-Easy-{Train,Dev,Test}.jsonl          arc_challenge/ARC-Challenge-{Train,Dev,Test}.jsonl
    obqa/{train,dev,test}.jsonl                       siqa/{train,dev}.jsonl + {train,dev}-labels.lst
    gsm8k/{train,test}.jsonl

``data_dir=None`` reads the small sample shipped in ``cream/data/sample`` (same layout, first lines of
each file).  ``source="hub"`` loads the same benchmarks with ``datasets`` (online).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

SAMPLE_DIR = Path(__file__).parent / "sample"
BENCHMARKS = ("arc_easy", "arc_challenge", "obqa", "siqa", "gsm8k")
SPLITS = ("train", "validation", "test")
LETTERS = "ABCDE"

# benchmark -> split -> file (relative to data_dir); a split missing here does not exist for it
FILES = {
    "arc_easy": {"train": "arc_easy/ARC-Easy-Train.jsonl", "validation": "arc_easy/ARC-Easy-Dev.jsonl",
                 "test": "arc_easy/ARC-Easy-Test.jsonl"},
    "arc_challenge": {"train": "arc_challenge/ARC-Challenge-Train.jsonl",
                      "validation": "arc_challenge/ARC-Challenge-Dev.jsonl", "test": "arc_challenge/ARC-Challenge-Test.jsonl"},
    "obqa": {"train": "obqa/train.jsonl", "validation": "obqa/dev.jsonl", "test": "obqa/test.jsonl"},
    "siqa": {"train": "siqa/train.jsonl", "validation": "siqa/dev.jsonl"},
    "gsm8k": {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"},
}
HUB = {"arc_easy": ("allenai/ai2_arc", "ARC-Easy"), "arc_challenge": ("allenai/ai2_arc", "ARC-Challenge"),
       "obqa": ("allenai/openbookqa", "main"), "siqa": ("allenai/social_i_qa", None), "gsm8k": ("openai/gsm8k", "main")}


class DataError(ValueError):
    """Bad or missing benchmark data; the message names the file, line and key."""


@dataclass(frozen=True)
class Example:
    id: str
    benchmark: str
    question: str
    choices: tuple[str, ...] | None
    labels: tuple[str, ...] | None
    answer: str
    solution: str | None = None

    @property
    def is_multiple_choice(self) -> bool:
        return self.choices is not None


def _check_name_split(name: str, split: str) -> None:
    if name not in FILES:
        raise DataError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    if split not in FILES[name]:
        raise DataError(f"{name} has no {split!r} split; it has: {', '.join(FILES[name])}")


def _mc(name: str, id_: str, question: str, texts: list, labels: list, answer: str, where: str) -> Example:
    labels = [str(x).strip() for x in labels]
    answer = str(answer).strip()
    if answer not in labels:
        raise DataError(f"{where}: key 'answerKey'/'label': gold {answer!r} is not among the choices {labels}")
    if len(texts) != len(labels) or not 2 <= len(labels) <= 5:
        raise DataError(f"{where}: key 'choices': {len(texts)} texts for {len(labels)} labels (expected 2-5)")
    letters = tuple(LETTERS[i] for i in range(len(labels)))  # numeric 1-4 (and any other scheme) -> A, B, ...
    return Example(id_, name, question.strip(), tuple(str(t).strip() for t in texts), letters, letters[labels.index(answer)])


_CALC = re.compile(r"<<[^>]*>>")


def _gsm8k(id_: str, question: str, answer: str, where: str) -> Example:
    if "####" not in answer:
        raise DataError(f"{where}: key 'answer': no '#### <final answer>' line")
    body, final = answer.rsplit("####", 1)
    final = final.strip().replace(",", "")
    try:
        float(final)
    except ValueError:
        raise DataError(f"{where}: key 'answer': final answer {final!r} is not a number") from None
    return Example(id_, "gsm8k", question.strip(), None, None, final, _CALC.sub("", body).strip())


def _parse_release(name: str, rec: dict, index: int, split: str, where: str, label: str | None = None) -> Example:
    try:
        if name in ("arc_easy", "arc_challenge", "obqa"):
            q = rec["question"]
            return _mc(name, rec["id"], q["stem"], [c["text"] for c in q["choices"]], [c["label"] for c in q["choices"]],
                       rec["answerKey"], where)
        if name == "siqa":
            texts = [rec["answerA"], rec["answerB"], rec["answerC"]]
            return _mc(name, f"siqa-{split}-{index}", f"{rec['context']} {rec['question']}", texts, ["1", "2", "3"], label, where)
        return _gsm8k(f"gsm8k-{split}-{index}", rec["question"], rec["answer"], where)
    except KeyError as e:
        raise DataError(f"{where}: missing field {e.args[0]!r}") from None
    except (TypeError, AttributeError) as e:
        raise DataError(f"{where}: unexpected record layout ({e})") from None


def parse_hub_record(name: str, rec: dict, index: int, split: str) -> Example:
    """One record in the hub datasets' field layout (``allenai/ai2_arc``, ``allenai/openbookqa``, ...)."""
    where = f"hub {HUB[name][0]} {split} record {index}"
    try:
        if name in ("arc_easy", "arc_challenge"):
            return _mc(name, rec["id"], rec["question"], rec["choices"]["text"], rec["choices"]["label"], rec["answerKey"], where)
        if name == "obqa":
            return _mc(name, rec["id"], rec["question_stem"], rec["choices"]["text"], rec["choices"]["label"], rec["answerKey"], where)
        if name == "siqa":
            texts = [rec["answerA"], rec["answerB"], rec["answerC"]]
            return _mc(name, f"siqa-{split}-{index}", f"{rec['context']} {rec['question']}", texts, ["1", "2", "3"], rec["label"], where)
        return _gsm8k(f"gsm8k-{split}-{index}", rec["question"], rec["answer"], where)
    except KeyError as e:
        raise DataError(f"{where}: missing field {e.args[0]!r}") from None


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    out = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append((i, json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: malformed JSON line ({e.msg})") from None
    return out


def load_benchmark(name: str, split: str, data_dir: str | os.PathLike | None = None, source: str = "files") -> list[Example]:
    """All examples of one split of one benchmark, in file order."""
    _check_name_split(name, split)
    if source == "hub":
        return _load_hub(name, split)
    if source != "files":
        raise DataError(f"data.source={source!r}: expected 'files' or 'hub'")
    root = SAMPLE_DIR if data_dir is None else Path(data_dir)
    if not root.is_dir():
        raise DataError(
            f"data dir {root} does not exist. Point data.dir at a folder laid out like the original releases "
            f"(e.g. {root}/{FILES[name][split]}), or load from the hub with data.source=hub ({HUB[name][0]})."
        )
    path = root / FILES[name][split]
    if not path.is_file():
        raise DataError(
            f"{path} is missing: data.dir={root} must hold {FILES[name][split]} (the original release file); "
            f"or load from the hub with data.source=hub ({HUB[name][0]})."
        )
    records = _read_jsonl(path)
    labels: list[str | None] = [None] * len(records)
    if name == "siqa":
        lpath = path.with_name(f"{path.stem}-labels.lst")
        if not lpath.is_file():
            raise DataError(f"{lpath} is missing: Social IQa's gold labels sit in this file, one per line of {path.name}")
        labels = lpath.read_text(encoding="utf-8").split()
        n_lines = sum(1 for _ in path.open(encoding="utf-8"))
        if len(labels) != n_lines:
            raise DataError(f"{lpath}: {len(labels)} labels for {n_lines} lines of {path.name}; they must match line by line")
        labels = [labels[i - 1] for i, _ in records]
        for (i, _), lab in zip(records, labels):
            if lab not in ("1", "2", "3"):
                raise DataError(f"{lpath}:{i}: label {lab!r} is not 1, 2 or 3")
    return [_parse_release(name, rec, k, split, f"{path}:{i}", lab) for k, ((i, rec), lab) in enumerate(zip(records, labels))]


def _load_hub(name: str, split: str) -> list[Example]:
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a dependency
        raise DataError("data.source=hub needs the `datasets` package") from e
    repo, config = HUB[name]
    try:
        ds = datasets.load_dataset(repo, config, split=split)
    except Exception as e:  # noqa: BLE001 - offline, missing, renamed: one clear message
        raise DataError(
            f"cannot load {repo} ({config or 'default'}) split {split!r} from the hub: {e}. "
            "Offline? Use data.source=files with data.dir pointing at the original release files."
        ) from e
    return [parse_hub_record(name, rec, i, split) for i, rec in enumerate(ds)]
