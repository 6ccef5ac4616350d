"""The consistency stage writes C_j and, next to it, the measure's own statistic (or none)."""
import pytest

from conftest import compose
from cream import artifacts
from cream.paths import RunPaths
from cream.records import RewardRow, write_rows


@pytest.mark.parametrize("measure, key, stats", [
    ("kendall", "tau", [1.0, -1.0, None]), ("spearman", "rho", [1.0, -1.0, None]), ("toporder", None, None)])
def test_each_measure_writes_its_own_statistic(tmp_path, measure, key, stats):
    from cream.pipeline import Context
    from cream.stages import consistency

    paths = RunPaths(tmp_path)
    write_rows(paths.rewards(1), [
        RewardRow("up", [1.0, 2.0, 3.0], [0.1, 0.2, 0.3], [0.0] * 3),
        RewardRow("down", [1.0, 2.0, 3.0], [0.3, 0.2, 0.1], [0.0] * 3),
        RewardRow("flat", [1.0, 1.0, None], [0.3, 0.2, 0.1], [0.0] * 3)])
    summary = consistency.run(Context(compose([f"consistency={measure}"]), tmp_path),
                              paths.stage("iter_1/consistency"), t=1)
    rows = artifacts.read_jsonl(paths.consistency(1))
    assert [r["c"] for r in rows] == [1.0, 0.0, None] and [r["defined"] for r in rows] == [True, True, False]
    if key is None:
        assert all(set(r) == {"prompt_id", "c", "defined"} for r in rows)
    else:
        assert [r[key] for r in rows] == stats and not any({"tau", "rho"} - {key} & set(r) for r in rows)
    assert summary["measure"] == measure and summary["mean"] == 0.5
