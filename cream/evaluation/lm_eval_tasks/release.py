"""lm-eval's ``custom_dataset`` for the task files next to this one: the original release files, in the hub
datasets' field layout (the layout lm-eval's own arc, openbookqa and social_iqa tasks read).

Standalone on purpose (json and ``datasets`` only): it parses the releases independently of
``cream.data.benchmarks``, so an lm-eval run with these tasks checks the project's loader too.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _choices(rec: dict) -> dict:
    return {"text": [c["text"] for c in rec["question"]["choices"]],
            "label": [c["label"] for c in rec["question"]["choices"]]}


def _arc(path: Path) -> list[dict]:
    return [{"id": r["id"], "question": r["question"]["stem"], "choices": _choices(r), "answerKey": r["answerKey"]}
            for r in _jsonl(path)]


def _obqa(path: Path) -> list[dict]:
    return [{"id": r["id"], "question_stem": r["question"]["stem"], "choices": _choices(r), "answerKey": r["answerKey"]}
            for r in _jsonl(path)]


def _siqa(path: Path) -> list[dict]:
    """Records and their labels ("1".."3", one a line in ``<split>-labels.lst`` next to the records)."""
    records = _jsonl(path)
    labels_file = path.with_name(path.stem + "-labels.lst")
    labels = labels_file.read_text(encoding="utf-8").split()
    if len(labels) != len(records):
        raise ValueError(f"{labels_file}: {len(labels)} labels for the {len(records)} records of {path}")
    return [{**r, "label": label} for r, label in zip(records, labels)]


LAYOUTS = {"arc": _arc, "obqa": _obqa, "siqa": _siqa}


def load(data_dir: str | None = None, layout: str = "arc", data_files: dict | None = None, **_):
    """{split: datasets.Dataset} from ``data_dir`` / ``data_files[split]`` (``data_dir`` comes from lm-eval's
    ``--metadata``; the other arguments from the task's ``dataset_kwargs``)."""
    import datasets

    if not data_dir:
        raise ValueError("these tasks read the release files: pass --metadata '{\"data_dir\": \"/path/to/data\"}' "
                         "(the folder with arc_easy/, arc_challenge/, obqa/, siqa/)")
    root = Path(os.path.expanduser(data_dir))
    out = {}
    for split, name in (data_files or {}).items():
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such release file (data_dir={data_dir!r}, split {split!r})")
        out[split] = datasets.Dataset.from_list(LAYOUTS[layout](path))
    return datasets.DatasetDict(out)
