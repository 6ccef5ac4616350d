"""Artifacts on disk: atomic writes, JSONL, and stage manifests.

Every file the pipeline writes goes through :func:`atomic_write` (temp file in the same folder, fsync,
``os.replace``), so a crash leaves either the old file or the new one, never half of one; the file gets the
permissions the umask gives any new file (0644 under umask 022), so colleagues on a shared cluster read it.  A stage is
complete when its folder holds ``manifest.json``, written last, which records

* ``config``: the config values the stage depends on, and their hash;
* ``inputs``: the digests of the upstream stages it read;
* ``outputs``: the files it wrote (relative path -> size and sha256).

A stage whose manifest matches the current config and inputs, and whose outputs are still on disk
unchanged, is skipped on rerun.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from cream.errors import ArtifactError
from cream.paths import MANIFEST

_BIG = 256 * 2**20  # files above this are fingerprinted by size + head/tail hash


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temp file next to ``path``; on success fsync and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600; a file is as readable as open() would make it
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def umask() -> int:
    """The process's umask (read by setting it and setting it back: POSIX has no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def as_umask_allows(folder: str | os.PathLike) -> Path:
    """Give every file below ``folder`` the permissions the umask allows a new file (transformers'
    ``save_pretrained`` writes ``model.safetensors`` through a 0600 temp file); returns ``folder``."""
    folder, mode = Path(folder), 0o666 & ~umask()
    for p in [folder, *folder.rglob("*")] if folder.is_dir() else [folder]:
        if p.is_file() and not p.is_symlink():
            p.chmod(mode | (p.stat().st_mode & 0o111))  # (an executable keeps its x bits)
    return folder


def _clean(obj: Any) -> Any:
    """Make floats JSON-safe (NaN/inf -> None) recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_write(path) as f:
        json.dump(_clean(obj), f, indent=2, sort_keys=False)
        f.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: line {e.lineno}: not valid JSON ({e.msg}); "
                            "delete the file to redo its stage") from e


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(_clean(row)) + "\n")
            n += 1
    return n


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of every non-blank line; ArtifactError naming FILE:LINE for bad JSON."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as e:
                raise ArtifactError(f"{path}:{i}: not valid JSON ({e.msg})") from e


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [row for _, row in iter_jsonl(path)]


class Journal:
    """An append-only JSON-lines file of the finished pieces of a stage's work (a batch of samples, one model's
    scores), kept in the stage's hidden ``.parts/`` so that a killed stage, rerun, reads them back instead of
    computing them again.  Each piece is one line, written whole and flushed when the piece ends; a line the
    kill cut short (the last, with no newline) is dropped on opening.  ``path`` None: nothing is kept.
    ``after_piece(n)``, when given, is called once a piece is saved, n pieces being saved (the stage's fault
    hook, ``cream.faults.before_part``: a test kills the stage there)."""

    def __init__(self, path: str | os.PathLike | None, after_piece: Callable[[int], None] | None = None):
        self.path = None if path is None else Path(path)
        self.after_piece = after_piece
        self.rows: list[dict] = []
        if self.path is None or not self.path.exists():
            return
        text = self.path.read_text(encoding="utf-8")
        whole = text[: text.rfind("\n") + 1]
        if whole != text:  # the kill came mid-line: keep the lines before it, so appends start on a new line
            self.path.write_text(whole, encoding="utf-8")
        for i, line in enumerate(whole.splitlines(), 1):
            try:
                self.rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ArtifactError(f"{self.path}:{i}: not valid JSON ({e.msg}); delete the file to compute "
                                    "its pieces again") from e

    def add(self, row: dict) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(_clean(row)) + "\n")
        self.rows.append(row)
        if self.after_piece is not None:
            self.after_piece(len(self.rows))


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as f:
        if size <= _BIG:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
        else:  # weights of real models: size + first and last 16 MiB
            h.update(str(size).encode())
            h.update(f.read(16 * 2**20))
            f.seek(size - 16 * 2**20)
            h.update(f.read())
    return h.hexdigest()


def config_hash(config: Any) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def output_files(folder: Path) -> dict[str, dict]:
    """size and digest of every file below ``folder`` except the manifest and scratch (hidden, checkpoints)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if not p.is_file() or rel.name == MANIFEST or any(part.startswith(".") for part in rel.parts):
            continue
        if rel.parts[0] in ("checkpoints", "_stale"):
            continue
        out[str(rel)] = {"size": p.stat().st_size, "sha256": file_digest(p)}
    return out


def manifest_digest(manifest: dict) -> str:
    return config_hash({"config": manifest["config_hash"], "inputs": manifest["inputs"],
                        "outputs": manifest["outputs"]})
