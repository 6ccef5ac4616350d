"""The Open Assistant (OASST1) seed set: one conversation per English message tree, its top-ranked path.

Input, any of the OASST1 release layouts (plain or ``.gz``):

- message rows, one a line (``2023-04-12_oasst_ready.messages.jsonl.gz``, or the hub dataset's rows):
  ``message_id, parent_id, message_tree_id, role (prompter | assistant), text, lang, rank, deleted,
  review_result`` (other fields ignored; ``tree_state`` is honoured when present);
- the message-tree export (``2023-04-12_oasst_ready.trees.jsonl.gz``): one tree a line,
  ``{"message_tree_id", "tree_state", "prompt": {message fields..., "replies": [messages with replies]}}``;
- a ``datasets`` folder written by ``save_to_disk`` (``OpenAssistant/oasst1``: its ``train`` split).

The rule (``top_paths``), per tree in file order:

1. a message is *usable* when it is not deleted, its review did not fail (``review_result`` is not false;
   null, never reviewed, passes: the ``ready`` export holds no failed or deleted messages), its
   ``lang`` is ``lang`` (default ``en``) and its tree, when ``tree_state`` is given, is ``ready_for_export``;
2. the path starts at the tree's root (a usable prompter message without a parent);
3. from the last message, the path takes the *top-ranked* usable reply of the other role: the one with
   the lowest ``rank``; when no usable reply has a rank, the only usable reply, if there is exactly one
   (a lone reply was never ranked against anything); otherwise the path ends;
4. the path is cut after its last assistant message, and after ``max_turns`` assistant messages
   (``None``: no cut; 1: the first exchange, as in the official code's (user, assistant) pairs);
5. a tree whose path holds no assistant message gives no conversation.

Roles become ``user``/``assistant``; a conversation's id is its tree id.  The paper reports about 3.4K
such English examples; this count is not checked here (the release is not available offline).
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from cream.data.custom import read_records
from cream.errors import OasstError

FIELDS = ("message_id", "parent_id", "message_tree_id", "role", "text", "lang", "rank", "deleted", "review_result")
ROLE = {"prompter": "user", "assistant": "assistant"}


def find_release(path: str | Path) -> Path:
    """The file (or ``datasets`` folder) to read: ``path`` itself, or inside the folder ``path`` one
    ``*trees*.jsonl[.gz]`` file, else one ``*messages*.jsonl[.gz]`` file, else the folder as a datasets folder."""
    path = Path(path)
    if not path.exists():
        raise OasstError(f"the OASST1 release is expected at {path}, which does not exist. Download "
                         "2023-04-12_oasst_ready.trees.jsonl.gz (huggingface.co/datasets/OpenAssistant/oasst1) into "
                         "<data.dir>/oasst1/, or point data.seed.path at the file")
    if path.is_file():
        return path
    for pattern in ("*trees*.jsonl*", "*messages*.jsonl*"):
        found = sorted(p for p in path.glob(pattern) if p.suffix in (".jsonl", ".gz"))
        if len(found) > 1:
            raise OasstError(f"{path} holds several OASST1 files ({', '.join(p.name for p in found)}); "
                             "point data.seed.path at the one to use")
        if found:
            return found[0]
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return path
    raise OasstError(f"{path} holds no OASST1 file (*trees*.jsonl[.gz] or *messages*.jsonl[.gz]) and is not a "
                     "datasets folder; see the README's 'Data' section")


def _lines(path: Path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield i, json.loads(line)
                except json.JSONDecodeError as e:
                    raise OasstError(f"{path}:{i}: malformed JSON line ({e.msg} at column {e.colno})") from None


def _check(row, where: str) -> dict:
    if not isinstance(row, dict):
        raise OasstError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in FIELDS:
        if key not in row:
            raise OasstError(f"{where}: missing field {key!r}")
    if row["role"] not in ROLE:
        raise OasstError(f"{where}: field 'role': {row['role']!r} is neither 'prompter' nor 'assistant'")
    if not isinstance(row["text"], str):
        raise OasstError(f"{where}: field 'text': expected text")
    if row["rank"] is not None and (isinstance(row["rank"], bool) or not isinstance(row["rank"], (int, float))):
        raise OasstError(f"{where}: field 'rank': expected a number or null, got {row['rank']!r}")
    return row


def _flatten(node, tree: dict, parent, where: str, out: list) -> None:
    """The messages of one tree-export line, depth first, with parent and tree ids filled in."""
    if not isinstance(node, dict):
        raise OasstError(f"{where}: field 'replies': expected message objects")
    row = {"parent_id": parent, "message_tree_id": tree.get("message_tree_id"), **node}
    if "tree_state" in tree:
        row.setdefault("tree_state", tree["tree_state"])
    out.append((where, _check(row, where)))
    replies = node.get("replies") or []
    if not isinstance(replies, list):
        raise OasstError(f"{where}: field 'replies': expected a list")
    for child in replies:
        _flatten(child, tree, node["message_id"], where, out)


def read_messages(path: str | Path) -> list[tuple[str, dict]]:
    """(where, message row) for every message of an OASST1 file or datasets folder, in file order."""
    path = find_release(path)
    if path.is_dir():
        return [(w, _check(r, w)) for w, r in read_records(path, "data.seed.path")]
    out: list = []
    for i, rec in _lines(path):
        where = f"{path}:{i}"
        if isinstance(rec, dict) and "prompt" in rec and "message_id" not in rec:  # the tree export
            if "message_tree_id" not in rec:
                raise OasstError(f"{where}: missing field 'message_tree_id'")
            _flatten(rec["prompt"], rec, None, where, out)
        else:
            out.append((where, _check(rec, where)))
    return out


def _usable(row: dict, lang: str) -> bool:
    return (not row["deleted"] and row["review_result"] is not False and row["lang"] == lang
            and row.get("tree_state", "ready_for_export") == "ready_for_export")


def _top(replies: list[dict]) -> dict | None:
    ranked = [r for r in replies if r["rank"] is not None]
    if ranked:
        return min(ranked, key=lambda r: (r["rank"], r["message_id"]))
    return replies[0] if len(replies) == 1 else None


def top_paths(rows: list[dict], lang: str = "en", max_turns: int | None = None) -> list[dict]:
    """``{"id", "messages"}`` per tree with a usable path (the rule in the module docstring), in file order."""
    children: dict = {}
    roots, seen = [], set()
    for r in rows:
        if r["message_id"] in seen:
            raise OasstError(f"message_id {r['message_id']!r} appears more than once")
        seen.add(r["message_id"])
        if r["parent_id"] is None:
            roots.append(r)
        else:
            children.setdefault(r["parent_id"], []).append(r)
    out = []
    for root in roots:
        if root["role"] != "prompter" or not _usable(root, lang):
            continue
        path, node = [root], root
        while True:
            want = "assistant" if node["role"] == "prompter" else "prompter"
            node = _top([c for c in children.get(node["message_id"], []) if c["role"] == want and _usable(c, lang)])
            if node is None:
                break
            path.append(node)
        n_assistant = 0
        cut = 0
        for j, m in enumerate(path):
            if m["role"] == "assistant":
                n_assistant += 1
                cut = j + 1
                if max_turns is not None and n_assistant == max_turns:
                    break
        if cut:
            out.append({"id": str(root["message_tree_id"]),
                        "messages": [{"role": ROLE[m["role"]], "content": m["text"]} for m in path[:cut]]})
    return out


def load_oasst(path: str | Path, lang: str = "en", max_turns: int | None = None) -> list[dict]:
    """The OASST1 seed conversations of the release at ``path`` (a file or a folder, see ``find_release``)."""
    return top_paths([r for _, r in read_messages(path)], lang=lang, max_turns=max_turns)
