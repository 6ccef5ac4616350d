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

from cream.errors import DataError

SAMPLE_DIR = Path(__file__).parent / "sample"
BENCHMARKS = ("arc_easy", "arc_challenge", "obqa", "siqa", "gsm8k")
SPLITS = ("train", "validation", "test")
LETTERS = "ABCDE"

# benchmark -> split -> file (relative to data_dir); a split missing here does not exist for it
FILES = {
    "arc_easy": {"train": "arc_easy/ARC-Easy-Train.jsonl", "validation": "arc_easy/ARC-Easy-Dev.jsonl",
                 "test": "arc_easy/ARC-Easy-Test.jsonl"},
    "arc_challenge": {"train": "arc_challenge/ARC-Challenge-Train.jsonl",
                      "validation": "arc_challenge/ARC-Challenge-Dev.jsonl",
                      "test": "arc_challenge/ARC-Challenge-Test.jsonl"},
    "obqa": {"train": "obqa/train.jsonl", "validation": "obqa/dev.jsonl", "test": "obqa/test.jsonl"},
    "siqa": {"train": "siqa/train.jsonl", "validation": "siqa/dev.jsonl"},
    "gsm8k": {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"},
}
HUB = {"arc_easy": ("allenai/ai2_arc", "ARC-Easy"), "arc_challenge": ("allenai/ai2_arc", "ARC-Challenge"),
       "obqa": ("allenai/openbookqa", "main"), "siqa": ("allenai/social_i_qa", None), "gsm8k": ("openai/gsm8k", "main")}


@dataclass(frozen=True)
class Example:
    """One benchmark question, the same for every benchmark and source.

    ``id``: the record's id (SIQA and GSM8K have none: ``f"{benchmark}-{split}-{index}"``, 0-based index).
    ``question``: ARC/OBQA the stem; SIQA context + " " + question; GSM8K the question.
    ``choices``/``labels``: option texts and their letters "A".."E" (``None`` for GSM8K).
    ``answer``: the gold letter (multiple choice) or the final number string (GSM8K, commas removed).
    ``solution``: GSM8K's worked solution without ``<<calc>>`` annotations and the ``#### x`` line.
    """

    id: str
    benchmark: str
    question: str
    choices: tuple[str, ...] | None
    labels: tuple[str, ...] | None
    answer: str
    solution: str | None = None

    @property
    def is_multiple_choice(self) -> bool:
        """True for the four multiple-choice benchmarks, False for GSM8K."""
        return self.choices is not None


def _check_name(name: str) -> None:
    if name not in FILES:
        raise DataError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(BENCHMARKS)}")


def _check_name_split(name: str, split: str) -> None:
    _check_name(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    if split not in FILES[name]:
        raise DataError(f"{name} has no {split!r} split; it has only: {', '.join(FILES[name])}")


def _letter(label: str) -> str:
    """A release label as a letter: "A".."E" stay, numeric "1".."5" become "A".."E"."""
    if len(label) == 1 and label in LETTERS:
        return label
    if label.isdigit() and 1 <= int(label) <= len(LETTERS):
        return LETTERS[int(label) - 1]
    raise ValueError(label)


def _mc(name: str, id_: str, question: str, texts: list, labels: list, answer: object, where: str,
        answer_key: str = "answerKey") -> Example:
    if (not isinstance(texts, list) or not isinstance(labels, list) or len(texts) != len(labels)
            or not 2 <= len(labels) <= 5):
        raise DataError(f"{where}: key 'choices': expected 2-5 options with one label each, got {texts!r} / {labels!r}")
    labels = [str(x).strip() for x in labels]
    gold = str(answer).strip()
    if gold not in labels:
        raise DataError(f"{where}: key {answer_key!r}: gold {gold!r} is not among the choice labels {labels}")
    try:
        letters = tuple(_letter(x) for x in labels)
    except ValueError as e:
        raise DataError(f"{where}: key 'choices': label {e.args[0]!r} is neither a letter A-E "
                        "nor a number 1-5") from None
    if len(set(letters)) != len(letters):
        raise DataError(f"{where}: key 'choices': repeated labels {labels}")
    return Example(str(id_), name, str(question).strip(), tuple(str(t).strip() for t in texts), letters,
                   letters[labels.index(gold)])


_CALC = re.compile(r"<<[^>]*>>")


def _gsm8k(id_: str, question: str, answer: str, where: str) -> Example:
    if not isinstance(answer, str) or "####" not in answer:
        raise DataError(f"{where}: key 'answer': no '#### <final answer>' line")
    body, final = answer.rsplit("####", 1)
    final = final.strip().replace(",", "")
    try:
        float(final)
    except ValueError:
        raise DataError(f"{where}: key 'answer': final answer {final!r} is not a number") from None
    return Example(id_, "gsm8k", str(question).strip(), None, None, final, _CALC.sub("", body).strip())


def _siqa(rec: dict, index: int, split: str, label: object, where: str, answer_key: str) -> Example:
    texts = [rec["answerA"], rec["answerB"], rec["answerC"]]
    question = f"{str(rec['context']).strip()} {str(rec['question']).strip()}"
    return _mc("siqa", f"siqa-{split}-{index}", question, texts, ["1", "2", "3"], label, where, answer_key)


def _parse(name: str, rec: dict, index: int, split: str, where: str, hub: bool, label: object = None) -> Example:
    """One record of either layout; KeyError/TypeError become a DataError naming ``where`` and the key."""
    try:
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        if name in ("arc_easy", "arc_challenge", "obqa"):
            if hub:
                stem = rec["question_stem"] if name == "obqa" else rec["question"]
                texts, labels = rec["choices"]["text"], rec["choices"]["label"]
            else:
                stem = rec["question"]["stem"]
                texts = [c["text"] for c in rec["question"]["choices"]]
                labels = [c["label"] for c in rec["question"]["choices"]]
            return _mc(name, rec["id"], stem, texts, labels, rec["answerKey"], where)
        if name == "siqa":
            return _siqa(rec, index, split, rec["label"] if hub else label, where, "label")
        return _gsm8k(f"gsm8k-{split}-{index}", rec["question"], rec["answer"], where)
    except KeyError as e:
        raise DataError(f"{where}: missing field {e.args[0]!r}") from None
    except (TypeError, AttributeError) as e:
        raise DataError(f"{where}: unexpected record layout ({e})") from None


def parse_hub_record(name: str, record: dict, index: int, split: str) -> Example:
    """One record in the hub datasets' field layout (``allenai/ai2_arc``, ``allenai/openbookqa``,
    ``allenai/social_i_qa`` with its ``label`` "1"-"3", ``openai/gsm8k``); ``index`` is its 0-based position."""
    _check_name(name)
    return _parse(name, record, index, split, f"hub {HUB[name][0]} {split} record {index}", hub=True)


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(1-based line number, parsed object) for every non-blank line."""
    out = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append((i, json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: malformed JSON line ({e.msg} at column {e.colno})") from None
    return out


def _siqa_labels(path: Path, records: list[tuple[int, dict]]) -> list[str]:
    """The gold label ("1"-"3") of each record, from the ``-labels.lst`` file beside ``path``."""
    lpath = path.with_name(f"{path.stem}-labels.lst")
    if not lpath.is_file():
        raise DataError(f"{lpath} is missing: Social IQa's gold labels, one per line of {path.name}, "
                        "are expected there")
    lines = lpath.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    n_lines = records[-1][0] if records else 0
    if len(lines) != n_lines:
        raise DataError(f"{lpath}:{min(len(lines), n_lines) + 1}: key 'label': {len(lines)} labels for {n_lines} lines "
                        f"of {path.name}; they must match line by line")
    out = []
    for i, _ in records:
        lab = lines[i - 1].strip()
        if lab not in ("1", "2", "3"):
            raise DataError(f"{lpath}:{i}: key 'label': {lab!r} is not 1, 2 or 3")
        out.append(lab)
    return out


def _missing(what: str, name: str, split: str, root: Path) -> DataError:
    repo, config = HUB[name]
    return DataError(
        f"{what}: expected the original release file {root / FILES[name][split]}. Point data.dir= at a folder "
        f"laid out like the original releases (holding {FILES[name][split]}), or use data.source=hub to load "
        f"{repo}{f' (config {config})' if config else ''} with `datasets`."
    )


def load_benchmark(name: str, split: str, data_dir: str | os.PathLike | None = None,
                   source: str = "files") -> list[Example]:
    """All examples of one split ("train" | "validation" | "test") of one benchmark, in file order.

    ``source="files"`` reads the original release files under ``data_dir`` (``None``: the sample shipped
    in ``cream/data/sample``); ``source="hub"`` loads the hub dataset with ``datasets`` (needs network or cache).
    """
    _check_name_split(name, split)
    if source == "hub":
        return _load_hub(name, split)
    if source != "files":
        raise DataError(f"data.source={source!r}: expected 'files' or 'hub'")
    root = SAMPLE_DIR if data_dir is None else Path(data_dir)
    if not root.is_dir():
        raise _missing(f"data dir {root} {'is not a folder' if root.exists() else 'does not exist'}", name, split, root)
    path = root / FILES[name][split]
    if not path.is_file():
        raise _missing(f"{path} is missing", name, split, root)
    records = _read_jsonl(path)
    labels = _siqa_labels(path, records) if name == "siqa" else [None] * len(records)
    return [_parse(name, rec, k, split, f"{path}:{i}", hub=False, label=lab)
            for k, ((i, rec), lab) in enumerate(zip(records, labels))]


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
            "Offline? Use data.source=files with data.dir= pointing at a folder laid out like the original releases."
        ) from e
    return [parse_hub_record(name, rec, i, split) for i, rec in enumerate(ds)]
