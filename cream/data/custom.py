"""Your own data: unlabeled prompts, a conversational seed set, evaluation sets.

Each source is a JSONL file (one JSON object a line; blank lines skipped) or, for prompts and the seed
set, a local ``datasets`` folder written by ``save_to_disk`` (a ``DatasetDict`` uses its ``train`` split).

Schemas (``messages`` is TRL's conversational format: a list of ``{"role", "content"}`` with role
``system`` | ``user`` | ``assistant``; an optional ``system`` first, then user and assistant turns
alternating, starting with user):

    prompts   (data.pool=file, data.prompts=PATH)
              {"prompt": "text"}  or  {"prompt": [messages ending in a user turn]}  or
              {"messages": [...]}  (turns after the last user turn are dropped); optional "id"
    seed set  (data.seed.source=file, data.seed.path=PATH)
              {"messages": [...]} with at least one assistant turn; optional "id"
    eval set  (data.eval_files={NAME: PATH.jsonl})
              {"question": "text", "choices": ["text", ...], "answer": "B"}   2-5 choices; the answer is a
                                                                              letter A-E or one choice's text
              {"question": "text", "answer": 72}                              no choices: a numeric answer
              optional "id"; one kind per file (all with choices, or all numeric)

A malformed record stops the run with a :class:`DataError` naming the file, line (or record) and field.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cream.data.benchmarks import LETTERS, Example, _read_jsonl
from cream.errors import DataError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Prompt:
    """One unlabeled prompt that is not a benchmark question: ``messages`` ends with a user turn."""

    id: str
    source: str                     # where it came from: "oasst", or the file's stem
    messages: tuple[dict, ...]
    answer: None = None             # never labelled (the pool's benchmark questions carry theirs)


def read_records(path: str | Path, what: str) -> list[tuple[str, dict]]:
    """(where, record) for every record of a JSONL file or a ``datasets`` folder; ``where`` is
    ``"FILE:LINE"`` or ``"FOLDER record I"`` (0-based), for error messages."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what}: {path} does not exist (a JSONL file or a `datasets` folder is expected)")
    if path.is_dir():
        return _read_dataset_folder(path, what)
    out = []
    for i, rec in _read_jsonl(path):  # the benchmarks' reader: blank lines skipped, bad JSON names FILE:LINE
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{i}: expected a JSON object, got {type(rec).__name__}")
        out.append((f"{path}:{i}", rec))
    if not out:
        raise DataError(f"{what}: {path} holds no records")
    return out


def _read_dataset_folder(path: Path, what: str) -> list[tuple[str, dict]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001 - not a datasets folder, or a broken one: one clear message
        raise DataError(f"{what}: {path} is a folder but not one written by datasets' save_to_disk ({e})") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(f"{what}: {path} holds the splits {sorted(ds)}; a `train` split is expected")
        ds = ds["train"]
    if len(ds) == 0:
        raise DataError(f"{what}: {path} holds no records")
    return [(f"{path} record {i}", dict(rec)) for i, rec in enumerate(ds)]


def check_messages(messages, where: str, field: str = "messages", end: str | None = None) -> tuple[dict, ...]:
    """``messages`` as a tuple of ``{"role", "content"}``, checked: roles, order, string contents.

    ``end``: the role the conversation must contain ("assistant": a seed conversation; "user": a prompt).
    """
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: field {field!r}: expected a non-empty list of {{'role', 'content'}} objects")
    out = []
    for j, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where}: field '{field}[{j}]': expected an object with 'role' and 'content'")
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise DataError(f"{where}: field '{field}[{j}].role': {role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(content, str) or not content.strip():
            raise DataError(f"{where}: field '{field}[{j}].content': expected non-empty text")
        out.append({"role": role, "content": content})
    turns = out[1:] if out[0]["role"] == "system" else out
    for j, m in enumerate(turns):
        want = "user" if j % 2 == 0 else "assistant"
        if m["role"] != want:
            k = j + len(out) - len(turns)
            raise DataError(f"{where}: field '{field}[{k}].role': {m['role']!r} where {want!r} is expected "
                            "(an optional system message first, then user and assistant turns alternating)")
    if end is not None and not any(m["role"] == end for m in turns):
        raise DataError(f"{where}: field {field!r}: no {end} turn")
    return tuple(out)


def _prompt_messages(rec: dict, where: str) -> tuple[dict, ...]:
    if "prompt" in rec:
        p = rec["prompt"]
        if isinstance(p, str):
            if not p.strip():
                raise DataError(f"{where}: field 'prompt': empty text")
            return ({"role": "user", "content": p},)
        msgs = check_messages(p, where, "prompt", end="user")
        if msgs[-1]["role"] != "user":
            raise DataError(f"{where}: field 'prompt': a prompt must end with a user turn")
        return msgs
    if "messages" in rec:
        msgs = check_messages(rec["messages"], where, end="user")
        last = max(j for j, m in enumerate(msgs) if m["role"] == "user")
        return msgs[: last + 1]
    raise DataError(f"{where}: missing field 'prompt' (text or messages) or 'messages'")


def _id(rec: dict, where: str, default: str) -> str:
    if "id" not in rec or rec["id"] is None:
        return default
    if not isinstance(rec["id"], (str, int)):
        raise DataError(f"{where}: field 'id': expected text or a number")
    return str(rec["id"])


def load_prompts(path: str | Path) -> list[Prompt]:
    """The unlabeled prompts of a prompts file or folder (schema above), in file order; ids must be unique."""
    source = Path(path).stem
    out = []
    for k, (where, rec) in enumerate(read_records(path, "data.prompts")):
        out.append(Prompt(_id(rec, where, f"{source}-{k}"), source, _prompt_messages(rec, where)))
    _unique(out, path)
    return out


def load_conversations(path: str | Path) -> list[dict]:
    """The seed conversations of a file or folder: ``{"id", "messages"}`` with at least one assistant turn."""
    source = Path(path).stem
    out = []
    for k, (where, rec) in enumerate(read_records(path, "data.seed.path")):
        if "messages" not in rec:
            raise DataError(f"{where}: missing field 'messages' (TRL's conversational format)")
        msgs = check_messages(rec["messages"], where, end="assistant")
        last = max(j for j, m in enumerate(msgs) if m["role"] == "assistant")
        out.append({"id": _id(rec, where, f"{source}-{k}"), "messages": list(msgs[: last + 1])})
    _unique(out, path)
    return out


def _unique(items, path) -> None:
    seen = set()
    for x in items:
        i = x.id if isinstance(x, Prompt) else x["id"]
        if i in seen:
            raise DataError(f"{path}: field 'id': {i!r} appears more than once; ids must be unique")
        seen.add(i)


def _number(value, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataError(f"{where}: field 'answer': expected a number (no 'choices'), got {value!r}")
    text = str(value).strip().replace(",", "")
    try:
        float(text)
    except ValueError:
        raise DataError(f"{where}: field 'answer': {value!r} is not a number (a question without 'choices' "
                        "needs a numeric answer)") from None
    return text


def load_eval_file(name: str, path: str | Path) -> list[Example]:
    """An evaluation set (schema above) as benchmark ``Example``s named ``name``, in file order."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"data.eval_files.{name}: {path} is a folder; a JSONL file is expected")
    out = []
    records = read_records(path, f"data.eval_files.{name}")
    for k, (where, rec) in enumerate(records):
        q = rec.get("question")
        if not isinstance(q, str) or not q.strip():
            raise DataError(f"{where}: field 'question': " + ("missing" if q is None else "expected non-empty text"))
        if "answer" not in rec:
            raise DataError(f"{where}: missing field 'answer'")
        ex_id = _id(rec, where, f"{name}-{k}")
        choices = rec.get("choices")
        if choices is None:
            out.append(Example(ex_id, name, q.strip(), None, None, _number(rec["answer"], where)))
            continue
        if (not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS)
                or not all(isinstance(c, str) and c.strip() for c in choices)):
            raise DataError(f"{where}: field 'choices': expected a list of 2-5 non-empty texts, got {choices!r}")
        labels = tuple(LETTERS[: len(choices)])
        texts = tuple(c.strip() for c in choices)
        ans = rec["answer"]
        if isinstance(ans, str) and ans.strip() in labels:
            gold = ans.strip()
        elif isinstance(ans, str) and ans.strip() in texts:
            gold = labels[texts.index(ans.strip())]
        else:
            raise DataError(f"{where}: field 'answer': {ans!r} is neither a letter {'/'.join(labels)} nor the text of "
                            "a choice")
        out.append(Example(ex_id, name, q.strip(), texts, labels, gold))
    _one_kind(out, [where for where, _ in records], name)
    return out


def _one_kind(examples: list[Example], wheres: list[str], name: str) -> None:
    """A set is all multiple choice or all numeric: its accuracy is one quantity, and log-likelihood scoring
    (multiple choice only) covers the whole set or none of it."""
    first = examples[0].is_multiple_choice
    for ex, where in zip(examples, wheres):
        if ex.is_multiple_choice != first:
            kind = {True: "multiple-choice (with 'choices')", False: "numeric (no 'choices')"}
            raise DataError(f"{where}: a {kind[ex.is_multiple_choice]} record in data.eval_files.{name}, whose first "
                            f"record is {kind[first]}; put each kind in its own file (two data.eval_files names)")
