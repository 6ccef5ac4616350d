"""The mutation check (tests/mutation_check.py, list in tests/mutations.py): every listed one-line bug in the
method's maths and wiring makes its tests fail.  The fast test only checks that the list still matches the
code; the slow one applies every mutation to a copy of the repository and runs the tests."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT


def test_every_mutation_still_matches_the_code():
    from mutation_check import check_snippets
    from mutations import MUTATIONS

    check_snippets()  # raises, naming the mutation, when a snippet is not found exactly once
    assert len(MUTATIONS) >= 12 and len({m[0] for m in MUTATIONS}) == len(MUTATIONS)
    files = {m[1] for m in MUTATIONS}
    assert {"cream/stages/pairs.py", "cream/records.py", "cream/stages/evaluate.py", "cream/pipeline.py",
            "cream/stages/dpo.py", "cream/method/losses.py", "cream/method/ranking.py"} <= files


def test_check_snippets_names_a_mutation_whose_code_moved():
    from mutation_check import MovedError, check_snippets

    moved = [("a stale entry", "cream/stages/pairs.py", "this line is not in the file", "x",
              ["tests/stages/test_pairs.py"])]
    with pytest.raises(MovedError, match="a stale entry: .*the code moved: update the mutation"):
        check_snippets(ROOT, moved)


@pytest.mark.slow
def test_every_mutation_is_killed():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "mutation_check.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
