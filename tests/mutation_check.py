"""The mutation check: break the method on purpose, one line at a time, and require the tests to notice.

    python tests/mutation_check.py            # every mutation of tests/mutations.py (a few minutes)
    python tests/mutation_check.py -k tau     # those whose name contains "tau"
    python tests/mutation_check.py --list     # check that every snippet is still found, and list them

The repository's tracked and untracked-but-not-ignored files are copied to a temporary folder (the
working tree is never modified).  The named tests must first pass on the unmutated copy; then, for each
mutation, the copy gets that one change and its tests must fail.  A snippet that is not found exactly
once is an error ("the code moved: update the mutation"), so the list cannot rot silently.  Exit status 0
when every mutation is killed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from mutations import MUTATIONS  # noqa: E402


class MovedError(Exception):
    pass


def check_snippets(root: Path = ROOT, mutations=MUTATIONS) -> None:
    """Every original snippet occurs exactly once in its file; raise MovedError naming each that does not."""
    bad = []
    for name, file, original, replacement, tests in mutations:
        path = root / file
        n = path.read_text().count(original) if path.is_file() else 0
        if n != 1:
            bad.append(f"{name}: {file} holds {original!r} {n} times (expected once): the code moved: update the "
                       "mutation")
        if original == replacement:
            bad.append(f"{name}: the replacement equals the original")
        for test in tests:
            if not (root / test.split("::")[0]).is_file():
                bad.append(f"{name}: no test file {test.split('::')[0]}")
    if bad:
        raise MovedError("\n".join(bad))


def copy_repo(dest: Path) -> None:
    """The files git would see (tracked and untracked, not ignored) copied to ``dest``."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def run_tests(copy: Path, tests: list[str]) -> subprocess.CompletedProcess:
    """pytest on ``tests`` inside the copy; the copy's ``cream`` is imported first, by child processes too."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy), os.environ.get("PYTHONPATH", "")]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "-m", "not gpu", *tests], cwd=copy, env=env, capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", default="", help="only the mutations whose name contains this text")
    ap.add_argument("--list", action="store_true", help="check the snippets and list the mutations; run nothing")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.k.lower() in m[0].lower()]
    check_snippets(ROOT, chosen)
    if args.list:
        for name, file, *_ in chosen:
            print(f"{file}: {name}")
        return 0
    survivors = []
    with tempfile.TemporaryDirectory(prefix="cream-mutants-") as tmp:
        copy = Path(tmp) / "repo"
        copy_repo(copy)
        every_test = sorted({t for m in chosen for t in m[4]})
        base = run_tests(copy, every_test)
        if base.returncode != 0:
            print(f"the tests fail without any mutation:\n{base.stdout[-3000:]}\n{base.stderr[-2000:]}")
            return 2
        for name, file, original, replacement, tests in chosen:
            path = copy / file
            text = path.read_text()
            path.write_text(text.replace(original, replacement, 1))
            t0 = time.perf_counter()
            proc = run_tests(copy, tests)
            path.write_text(text)
            killed = proc.returncode not in (0, 5)  # 5: no test collected, which kills nothing
            print(f"{'killed  ' if killed else 'SURVIVED'} {time.perf_counter() - t0:5.1f} s  {file}: {name}",
                  flush=True)
            if not killed:
                survivors.append(name)
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutations killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
